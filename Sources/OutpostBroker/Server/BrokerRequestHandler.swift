import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostCore
import OutpostKafka
import OutpostLog
import OutpostOperations

/// What a connection does with a request's outcome.
enum HandlerResult: Sendable {
    /// Encode this response at `version` behind the response header.
    case response(KafkaResponse, version: Int16)
    /// Nothing is sent (Produce with acks=0), but the slot keeps later responses in order.
    case none
}

/// Decides the answer to every request: one method per API. Holds no per-connection state; the
/// connection handler owns framing and ordering, and carries out the result.
final class BrokerRequestHandler: Sendable {
    let configuration: BrokerConfiguration
    /// Where clients reach this broker (Metadata brokers[], FindCoordinator).
    let advertised: HostPort
    let topics: TopicRegistry
    let coordinator: GroupCoordinator
    let producerIds: ProducerIdAllocator
    let produce: ProduceHandler
    let fetch: FetchHandler
    let threadPool: NIOThreadPool
    let metrics: BrokerMetrics
    let logger: Logger
    /// The listener's SASL mechanism; nil without SASL. Decides whether ApiVersions lists the SASL APIs.
    let saslMechanism: SASLMechanism?
    let apiVersions: ApiVersionsResponse

    init(
        configuration: BrokerConfiguration, advertised: HostPort, topics: TopicRegistry, coordinator: GroupCoordinator,
        producerIds: ProducerIdAllocator, threadPool: NIOThreadPool, metrics: BrokerMetrics, logger: Logger, saslMechanism: SASLMechanism? = nil
    ) {
        self.saslMechanism = saslMechanism
        self.apiVersions = .advertised(includingSASL: saslMechanism != nil)
        self.configuration = configuration
        self.advertised = advertised
        self.topics = topics
        self.coordinator = coordinator
        self.producerIds = producerIds
        self.threadPool = threadPool
        self.metrics = metrics
        self.logger = logger
        self.produce = ProduceHandler(
            topics: topics, limits: configuration.limits, batchBytesMax: configuration.log.batchBytesMax, metrics: metrics, logger: logger)
        self.fetch = FetchHandler(topics: topics, threadPool: threadPool, limits: configuration.limits, metrics: metrics, logger: logger)
    }

    func handle(_ frame: KafkaRequestFrame, on eventLoop: any EventLoop) -> EventLoopFuture<HandlerResult> {
        let version = frame.header.apiVersion
        func answer(_ response: KafkaResponse) -> EventLoopFuture<HandlerResult> {
            eventLoop.makeSucceededFuture(.response(response, version: version))
        }
        switch frame.request {
        case .apiVersions:
            // v3/v4 (flexible) get the v0-layout UNSUPPORTED_VERSION fallback (§2.3).
            if KafkaAPIKey.apiVersions.supportedVersions.contains(version) {
                return answer(.apiVersions(apiVersions))
            }
            var fallback = apiVersions
            fallback.errorCode = .unsupportedVersion
            return eventLoop.makeSucceededFuture(.response(.apiVersions(fallback), version: 0))
        case .saslHandshake:
            // Authentication itself happens before requests get here (`SASLServerStateMachine`); what
            // reaches this point is a handshake on an authenticated connection or on a listener without
            // SASL. Kafka answers both with ILLEGAL_SASL_STATE.
            return answer(.saslHandshake(SaslHandshakeResponse(errorCode: .illegalSaslState, mechanisms: saslMechanism.map { [$0.rawValue] } ?? [])))
        case .saslAuthenticate:
            let message = saslMechanism == nil ? "SASL is not enabled on this listener" : "SaslAuthenticate request received after successful authentication"
            return answer(.saslAuthenticate(SaslAuthenticateResponse(errorCode: .illegalSaslState, errorMessage: message)))
        case .metadata(let request):
            return answer(.metadata(metadata(request, version: version)))
        case .produce(let request):
            return produce.produce(request, version: version, on: eventLoop).map { response in
                response.map { .response(.produce($0), version: version) } ?? .none
            }
        case .fetch(let request):
            return fetch.fetch(request, on: eventLoop).map { .response(.fetch($0), version: version) }
        case .listOffsets(let request):
            return threadPool.runIfActive(eventLoop: eventLoop) { [self] in
                listOffsets(request, version: version)
            }.map { .response(.listOffsets($0), version: version) }
        case .findCoordinator(let request):
            return answer(.findCoordinator(findCoordinator(request)))
        case .joinGroup(let request):
            return coordinator.join(request, clientId: frame.header.clientId ?? "", on: eventLoop).map { .response(.joinGroup($0), version: version) }
        case .syncGroup(let request):
            return coordinator.sync(request, on: eventLoop).map { .response(.syncGroup($0), version: version) }
        case .heartbeat(let request):
            return answer(.heartbeat(coordinator.heartbeat(request)))
        case .leaveGroup(let request):
            return answer(.leaveGroup(coordinator.leave(request)))
        case .offsetCommit(let request):
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            return coordinator.commit(request, nowMilliseconds: now, on: eventLoop) { [topics] id in topics.partition(id) != nil }
                .map { .response(.offsetCommit($0), version: version) }
        case .offsetFetch(let request):
            return answer(.offsetFetch(coordinator.fetchOffsets(request)))
        case .initProducerId(let request):
            guard request.transactionalId == nil else {
                // Transactions are not supported; idempotence is.
                return answer(.initProducerId(InitProducerIdResponse(errorCode: .invalidRequest, producerId: -1, producerEpoch: -1)))
            }
            return threadPool.runIfActive(eventLoop: eventLoop) { [self] in
                do {
                    let id = try producerIds.allocate()
                    return InitProducerIdResponse(producerId: id.rawValue, producerEpoch: 0)
                } catch {
                    logger.error("allocating a producer id failed", metadata: ["error": "\(error)"])
                    return InitProducerIdResponse(errorCode: .coordinatorNotAvailable, producerId: -1, producerEpoch: -1)
                }
            }.map { .response(.initProducerId($0), version: version) }
        }
    }

    // MARK: Metadata, FindCoordinator

    func metadata(_ request: MetadataRequest, version: Int16) -> MetadataResponse {
        let node = configuration.nodeId
        func describe(_ topic: BrokerTopic) -> MetadataResponse.Topic {
            MetadataResponse.Topic(name: topic.name, partitions: topic.partitions.map { partition in
                // One broker leads every partition (P13); the leader is its own in-sync replica set.
                MetadataResponse.Partition(partitionIndex: partition.id.partition, leaderId: node, replicaNodes: [node], isrNodes: [node])
            })
        }
        var described: [MetadataResponse.Topic] = []
        if request.requestsAllTopics(version: version) {
            described = topics.allTopics.map(describe)
        } else {
            var seen = Set<String>()
            for name in request.topics ?? [] where seen.insert(name).inserted {
                switch topics.topic(named: name, autoCreate: request.allowAutoTopicCreation) {
                case .found(let topic): described.append(describe(topic))
                case .unknown: described.append(.init(errorCode: .unknownTopicOrPartition, name: name, partitions: []))
                case .invalidName: described.append(.init(errorCode: .invalidTopicException, name: name, partitions: []))
                case .unavailable: described.append(.init(errorCode: .leaderNotAvailable, name: name, partitions: []))
                }
            }
        }
        return MetadataResponse(
            brokers: [.init(nodeId: node, host: advertised.host, port: Int32(advertised.port))], clusterId: configuration.clusterId,
            controllerId: node, topics: described)
    }

    func findCoordinator(_ request: FindCoordinatorRequest) -> FindCoordinatorResponse {
        guard request.keyType == FindCoordinatorRequest.groupKeyType else {
            return FindCoordinatorResponse(
                errorCode: .coordinatorNotAvailable, errorMessage: "transactions are not supported", nodeId: -1, host: "", port: -1)
        }
        guard !request.key.isEmpty else {
            return FindCoordinatorResponse(errorCode: .invalidRequest, errorMessage: "empty group id", nodeId: -1, host: "", port: -1)
        }
        return FindCoordinatorResponse(nodeId: configuration.nodeId, host: advertised.host, port: Int32(advertised.port))
    }

    // MARK: ListOffsets

    /// Blocking (a timestamp lookup decodes one batch): runs on the thread pool.
    func listOffsets(_ request: ListOffsetsRequest, version: Int16) -> ListOffsetsResponse {
        ListOffsetsResponse(topics: request.topics.map { topic in
            let found = topics.topic(named: topic.name)
            return .init(name: topic.name, partitions: topic.partitions.map { requested in
                let index = requested.partitionIndex
                guard let partition = found?.partition(index) else {
                    return .init(partitionIndex: index, errorCode: .unknownTopicOrPartition)
                }
                let replica = partition.replica
                guard replica.isLeader else { return .init(partitionIndex: index, errorCode: .notLeaderOrFollower) }
                let found: (offset: Offset, timestamp: Int64)?
                switch requested.timestamp {
                case ListOffsetsRequest.latestTimestamp:
                    // The end a consumer can read to: the high watermark (= last stable offset) (P11).
                    found = (replica.highWatermark, -1)
                case ListOffsetsRequest.earliestTimestamp:
                    found = (replica.logStartOffset, -1)
                case let timestamp where timestamp >= 0:
                    do throws(LogError) {
                        found = try replica.offset(forTimestamp: timestamp)
                    } catch {
                        logger.error("offset lookup by time failed", metadata: ["partition": "\(partition.id)", "error": "\(error)"])
                        return .init(partitionIndex: index, errorCode: BrokerPartition.errorCode(for: error))
                    }
                default:
                    return .init(partitionIndex: index, errorCode: .invalidRequest)
                }
                if version == 0 {
                    let offsets = found.map { [$0.offset.rawValue] } ?? []
                    return .init(partitionIndex: index, oldStyleOffsets: requested.maxNumOffsets > 0 ? offsets : [])
                }
                return .init(partitionIndex: index, timestamp: found?.timestamp ?? -1, offset: found?.offset.rawValue ?? -1)
            })
        })
    }
}
