import Logging
import NIOCore
import NIOPosix
import OutpostCore

/// How a `KafkaClient` reaches and treats a cluster.
public struct KafkaClientConfiguration: Sendable {
    /// Brokers to ask first; the rest of the cluster is learned from Metadata. Several may be given; they
    /// are tried in turn.
    public var bootstrap: [KafkaBrokerAddress]
    /// Per-connection settings (client id, timeouts, pipelining depth, TLS and SASL hooks).
    public var connection: KafkaConnectionConfiguration
    /// Waits between reconnect attempts to one broker: 100 ms doubling to 10 s, ±20 % jitter
    /// (librdkafka's reconnect.backoff.ms / reconnect.backoff.max.ms).
    public var reconnectBackoff: KafkaBackoffPolicy
    /// Waits between retries of a failed request (metadata, offsets, coordinator lookups, produce
    /// resends): 100 ms doubling to 2 s, ±20 % jitter.
    public var retryBackoff: KafkaBackoffPolicy
    /// Attempts of a request the client retries itself (Metadata, ListOffsets, FindCoordinator,
    /// InitProducerId) before giving the error to the caller. 10 attempts ≈ 10 s of backoff.
    public var requestAttemptsMax: Int
    /// Metadata older than this is refreshed before it is used (Kafka's metadata.max.age.ms: 5 min).
    public var metadataMaxAge: Duration
    /// Whether Metadata requests may create a topic the cluster does not know (brokers that allow it).
    /// Off by default, so a misspelt topic is an error rather than a new topic.
    public var allowAutoTopicCreation: Bool
    /// Seed of every jitter this client draws. nil derives it from the client id, so two gateways with
    /// different ids back off differently and one id reproduces its waits.
    public var jitterSeed: UInt64?

    public init(
        bootstrap: [KafkaBrokerAddress], connection: KafkaConnectionConfiguration = KafkaConnectionConfiguration(),
        reconnectBackoff: KafkaBackoffPolicy = KafkaBackoffPolicy(),
        retryBackoff: KafkaBackoffPolicy = KafkaBackoffPolicy(initial: .milliseconds(100), maximum: .seconds(2)),
        requestAttemptsMax: Int = 10, metadataMaxAge: Duration = .seconds(300), allowAutoTopicCreation: Bool = false,
        jitterSeed: UInt64? = nil
    ) {
        precondition(!bootstrap.isEmpty, "at least one bootstrap broker")
        precondition(requestAttemptsMax >= 1, "at least one attempt")
        self.bootstrap = bootstrap
        self.connection = connection
        self.reconnectBackoff = reconnectBackoff
        self.retryBackoff = retryBackoff
        self.requestAttemptsMax = requestAttemptsMax
        self.metadataMaxAge = metadataMaxAge
        self.allowAutoTopicCreation = allowAutoTopicCreation
        self.jitterSeed = jitterSeed
    }

    /// The seed actually used: `jitterSeed`, or FNV-1a of the client id.
    var effectiveJitterSeed: UInt64 {
        jitterSeed ?? KafkaJitterGenerator.seed(from: connection.clientId ?? "")
    }
}

/// Which of a client's connections to a broker a request travels on. A broker answers one connection's
/// requests in order, so a request it holds — a long-polling Fetch, a JoinGroup parked until every member
/// rejoined — delays everything behind it on that connection. Each kind of traffic therefore gets its own
/// connection: control requests (Metadata, ListOffsets, FindCoordinator, InitProducerId, LeaveGroup),
/// produce, and a dedicated lane per consumer (its fetches) and per group member (its coordinator).
public struct KafkaConnectionLane: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64

    public static let control = KafkaConnectionLane(rawValue: 0)
    public static let produce = KafkaConnectionLane(rawValue: 1)
    static let firstDedicated: UInt64 = 16

    public var description: String {
        switch rawValue {
        case 0: "control"
        case 1: "produce"
        default: "lane-\(rawValue)"
        }
    }
}

/// The cluster as one client sees it: connections to brokers (opened on demand, reopened with backoff),
/// the metadata cache (brokers, partition leaders) and the requests every role needs — Metadata,
/// ListOffsets, FindCoordinator, InitProducerId. `KafkaProducer`, `KafkaConsumer` and
/// `KafkaGroupConsumer` are built on one.
///
/// Connections are keyed by address, so when a broker's advertised address is the bootstrap address the
/// bootstrap connection is reused (as librdkafka does, kafka-subset.md P1).
public actor KafkaClient {
    public nonisolated let configuration: KafkaClientConfiguration
    /// The loop every connection, and every actor built on this client, runs on.
    public nonisolated let eventLoop: any EventLoop
    nonisolated let logger: Logger

    public nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }

    private struct ConnectionSlot {
        enum State {
            case idle
            case connecting(id: UInt64, Task<KafkaConnection, any Error>)
            case ready(KafkaConnection)
        }

        var state: State = .idle
        var backoff: ReconnectBackoff
        /// No new attempt before this (set after a failed attempt or a lost connection).
        var retryAt: ContinuousClock.Instant?
    }

    private struct SlotKey: Hashable, Comparable {
        var address: KafkaBrokerAddress
        var lane: KafkaConnectionLane

        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.address, lhs.lane.rawValue) < (rhs.address, rhs.lane.rawValue) }
    }

    private var slots: [SlotKey: ConnectionSlot] = [:]
    private var nextLane = KafkaConnectionLane.firstDedicated
    private var nextAttemptId: UInt64 = 0
    private var jitter: KafkaJitterGenerator
    private var cluster = ClusterMetadata()
    private var metadataFetchedAt: ContinuousClock.Instant?
    private var metadataStale = true
    private var metadataRefresh: (id: UInt64, task: Task<Void, any Error>)?
    /// Rotates which bootstrap broker is tried first.
    private var bootstrapCursor = 0
    private var isClosed = false
    private let clock = ContinuousClock()

    /// A client for the cluster at `configuration.bootstrap`. Nothing is connected until the first request.
    public init(
        configuration: KafkaClientConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "outpost.kafka")
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoopGroup.next()
        self.logger = logger
        self.jitter = KafkaJitterGenerator(seed: configuration.effectiveJitterSeed)
    }

    // MARK: Connections

    /// A lane of its own, for a consumer's fetches or a group member's coordinator requests.
    public func makeDedicatedLane() -> KafkaConnectionLane {
        defer { nextLane += 1 }
        return KafkaConnectionLane(rawValue: nextLane)
    }

    /// A ready connection to `address` on `lane`: the open one, the one being opened, or a new one once
    /// the reconnect backoff has passed (this waits for it).
    public func connection(to address: KafkaBrokerAddress, lane: KafkaConnectionLane = .control) async throws(KafkaClientError) -> KafkaConnection {
        let key = SlotKey(address: address, lane: lane)
        // Bounded: each turn either returns, throws, or waits out one backoff and then connects.
        for _ in 0..<4 {
            guard !isClosed else { throw .closed }
            var slot = slots[key] ?? ConnectionSlot(backoff: ReconnectBackoff(policy: configuration.reconnectBackoff, generator: jitter.split()))
            switch slot.state {
            case .ready(let connection) where connection.isActive:
                return connection
            case .ready:
                slot.state = .idle
                slots[key] = slot
                continue
            case .connecting(let id, let task):
                return try await awaitConnect(key, id: id, task: task)
            case .idle:
                if let retryAt = slot.retryAt, clock.now < retryAt {
                    try await sleep(until: retryAt)
                    continue
                }
                nextAttemptId += 1
                let id = nextAttemptId
                let eventLoop = self.eventLoop
                let configuration = self.configuration.connection
                let logger = self.logger
                let task = Task<KafkaConnection, any Error> {
                    try await KafkaConnection.connect(to: address, on: eventLoop, configuration: configuration, logger: logger)
                }
                slot.state = .connecting(id: id, task)
                slots[key] = slot
                return try await awaitConnect(key, id: id, task: task)
            }
        }
        throw .connectionFailed(broker: address, reason: "gave up waiting for a connection")
    }

    private func awaitConnect(_ key: SlotKey, id: UInt64, task: Task<KafkaConnection, any Error>) async throws(KafkaClientError) -> KafkaConnection {
        let address = key.address
        let result: Result<KafkaConnection, KafkaClientError>
        do {
            result = .success(try await task.value)
        } catch {
            result = .failure(error as? KafkaClientError ?? .connectionFailed(broker: address, reason: "\(error)"))
        }
        // Only the first waiter settles the slot; later waiters of the same attempt just read the result.
        if var slot = slots[key], case .connecting(let current, _) = slot.state, current == id {
            switch result {
            case .success(let connection):
                if isClosed {
                    connection.close()
                } else {
                    slot.state = .ready(connection)
                    slot.backoff.succeeded()
                    slot.retryAt = nil
                    connection.closeFuture.whenComplete { _ in
                        self.assumeIsolated { $0.connectionClosed(key, connection: connection) }
                    }
                }
            case .failure(let error):
                slot.state = .idle
                let wait = slot.backoff.failed()
                slot.retryAt = clock.now.advanced(by: wait)
                metadataStale = true
                // The first failure in a row at info; the rest of an outage at debug (one line per attempt).
                logger.log(
                    level: slot.backoff.consecutiveFailures == 1 ? .info : .debug, "broker connection failed",
                    metadata: ["broker": "\(address)", "lane": "\(key.lane)", "error": "\(error)", "retry_in": "\(wait)"])
            }
            slots[key] = slot
        } else if slots[key] == nil, case .success(let connection) = result {
            // The lane was closed while this attempt ran.
            connection.close()
            throw .closed
        }
        return try result.get()
    }

    private func connectionClosed(_ key: SlotKey, connection: KafkaConnection) {
        guard var slot = slots[key], case .ready(let current) = slot.state, current === connection else { return }
        slot.state = .idle
        // A lost connection is not retried in a tight loop: the first reconnect waits the initial backoff.
        slot.retryAt = clock.now.advanced(by: slot.backoff.failed())
        slots[key] = slot
        metadataStale = true
        if !isClosed { logger.info("broker connection closed", metadata: ["broker": "\(key.address)", "lane": "\(key.lane)"]) }
    }

    /// A connection to any broker: an open one if there is one, else the known brokers and the bootstrap
    /// list in turn (each tried at most once per call; one whose backoff has not passed is skipped unless
    /// all are waiting).
    public func anyConnection() async throws(KafkaClientError) -> KafkaConnection {
        guard !isClosed else { throw .closed }
        for (key, slot) in slots.sorted(by: { $0.key < $1.key }) where key.lane == .control {
            if case .ready(let connection) = slot.state, connection.isActive { return connection }
        }
        var candidates: [KafkaBrokerAddress] = []
        let rotation = bootstrapCursor % configuration.bootstrap.count
        bootstrapCursor += 1
        for address in configuration.bootstrap[rotation...] + configuration.bootstrap[..<rotation] where !candidates.contains(address) {
            candidates.append(address)
        }
        for node in cluster.brokers.values.sorted(by: { $0.nodeId < $1.nodeId }) where !candidates.contains(node.address) {
            candidates.append(node.address)
        }
        let now = clock.now
        let retryAt = { (address: KafkaBrokerAddress) in self.slots[SlotKey(address: address, lane: .control)]?.retryAt ?? now }
        let ready = candidates.filter { retryAt($0) <= now }
        // All backing off: wait for the one that is due first.
        let order = ready.isEmpty ? candidates.sorted { retryAt($0) < retryAt($1) }.prefix(1).map { $0 } : ready
        var lastError: KafkaClientError?
        for address in order {
            do {
                return try await connection(to: address)
            } catch .closed {
                throw .closed
            } catch .cancelled {
                throw .cancelled
            } catch {
                lastError = error
            }
        }
        logger.debug("no broker reachable", metadata: ["last_error": "\(lastError.map { "\($0)" } ?? "-")"])
        // Refused credentials are the answer, not an outage: say so instead of "unreachable".
        if case .authenticationFailed? = lastError, let lastError { throw lastError }
        throw .noBrokerAvailable(tried: order)
    }

    private func sleep(until deadline: ContinuousClock.Instant) async throws(KafkaClientError) {
        do {
            try await Task.sleep(until: deadline, clock: clock)
        } catch {
            throw .cancelled
        }
    }

    private func sleep(for duration: Duration) async throws(KafkaClientError) {
        try await sleep(until: clock.now.advanced(by: duration))
    }

    // MARK: Metadata

    /// The metadata as last fetched.
    public var metadata: ClusterMetadata { cluster }

    /// Asks the cluster for its brokers and for these topics plus every topic already known.
    public func refreshMetadata(topics: [String] = []) async throws(KafkaClientError) {
        let wanted = Set(cluster.knownTopics + topics)
        if let running = metadataRefresh {
            // Join the refresh under way; ask again only if it may not cover what is wanted now.
            _ = try? await running.task.value
            if wanted.isSubset(of: Set(cluster.knownTopics)), !metadataStale { return }
        }
        try await withRetries("Metadata") { () async throws(KafkaClientError) in
            let connection = try await anyConnection()
            let request = MetadataRequest(topics: wanted.sorted(), allowAutoTopicCreation: configuration.allowAutoTopicCreation)
            nextAttemptId += 1
            let id = nextAttemptId
            let task = Task<Void, any Error> {
                let response = try await connection.send(request).get()
                self.applyMetadata(response)
            }
            metadataRefresh = (id, task)
            defer { if metadataRefresh?.id == id { metadataRefresh = nil } }
            do {
                try await task.value
            } catch {
                throw KafkaConnection.clientError(error, address: connection.address)
            }
        }
    }

    private func applyMetadata(_ response: MetadataResponse) {
        cluster.apply(response)
        metadataFetchedAt = clock.now
        metadataStale = false
    }

    /// Marks the metadata out of date (a request said leadership moved); the next lookup refreshes it.
    public func invalidateMetadata() { metadataStale = true }

    private var metadataIsFresh: Bool {
        guard !metadataStale, let fetchedAt = metadataFetchedAt else { return false }
        return fetchedAt.duration(to: clock.now) < configuration.metadataMaxAge
    }

    /// The partitions of `topic` (0…n−1), from metadata (fetched if needed).
    /// A topic the cluster is still creating (LEADER_NOT_AVAILABLE) is asked about again, with backoff.
    public func partitions(of topic: String) async throws(KafkaClientError) -> [Int32] {
        var backoff = ReconnectBackoff(policy: configuration.retryBackoff, generator: jitter.split())
        for attempt in 1...configuration.requestAttemptsMax {
            if !metadataIsFresh || cluster.topics[topic]?.errorCode != KafkaErrorCode.none { try await refreshMetadata(topics: [topic]) }
            guard let info = cluster.topics[topic] else { break }
            if info.errorCode == .none && info.partitionCount > 0 { return info.partitions }
            guard info.errorCode == .leaderNotAvailable || info.errorCode.isRetriable && info.errorCode != .unknownTopicOrPartition,
                attempt < configuration.requestAttemptsMax
            else { break }
            metadataStale = true
            try await sleep(for: backoff.failed())
        }
        cluster.invalidate(topic: topic)
        throw .unknownTopicOrPartition(topic: topic, partition: nil)
    }

    /// The current leader of `partition`, from metadata (refreshed when stale or when the topic is new).
    public func leader(for partition: KafkaTopicPartition) async throws(KafkaClientError) -> KafkaBrokerNode {
        if !metadataIsFresh || cluster.lookup(partition) == .unknownTopic { try await refreshMetadata(topics: [partition.topic]) }
        switch cluster.lookup(partition) {
        case .leader(let node): return node
        case .unknownTopic, .noSuchPartition:
            cluster.invalidate(topic: partition.topic)
            throw .unknownTopicOrPartition(topic: partition.topic, partition: partition.partition)
        case .noLeader:
            metadataStale = true
            throw .leaderNotAvailable(partition)
        }
    }

    /// A connection to the leader of `partition` on `lane`.
    public func leaderConnection(for partition: KafkaTopicPartition, lane: KafkaConnectionLane = .control) async throws(KafkaClientError) -> KafkaConnection {
        try await connection(to: try await leader(for: partition).address, lane: lane)
    }

    // MARK: Requests every role needs

    /// A new producer identity from InitProducerId (non-transactional): a fresh producer id with its
    /// epoch; `baseSequence` is 0, where its sequences start on every partition.
    public func initProducerId() async throws(KafkaClientError) -> ProducerIdentity {
        try await withRetries("InitProducerId") { () async throws(KafkaClientError) in
            let connection = try await anyConnection()
            let response = try await value(connection.send(InitProducerIdRequest()), from: connection)
            guard response.errorCode == .none else { throw .broker(response.errorCode, context: "InitProducerId") }
            return ProducerIdentity(producerId: response.producerId, producerEpoch: response.producerEpoch, baseSequence: 0)
        }
    }

    /// Offsets of `partitions` by ListOffsets, asking each partition's leader. For `.timestamp`, a
    /// partition with no record at or after it gets its end offset (where such a record would go).
    public func listOffsets(_ partitions: [KafkaTopicPartition], spec: KafkaOffsetSpec) async throws(KafkaClientError) -> [KafkaTopicPartition: Offset] {
        var found: [KafkaTopicPartition: Offset] = [:]
        var missing: [KafkaTopicPartition] = []
        let remaining = Array(Set(partitions)).sorted()
        try await withRetries("ListOffsets") { () async throws(KafkaClientError) in
            var byLeader: [KafkaBrokerAddress: [KafkaTopicPartition]] = [:]
            for partition in remaining where found[partition] == nil && !missing.contains(partition) {
                byLeader[try await leader(for: partition).address, default: []].append(partition)
            }
            var retriable: KafkaClientError?
            for (address, group) in byLeader.sorted(by: { $0.key < $1.key }) {
                let connection = try await connection(to: address)
                let topics = Dictionary(grouping: group, by: \.topic).sorted { $0.key < $1.key }.map { topic, partitions in
                    ListOffsetsRequest.Topic(
                        name: topic, partitions: partitions.map { ListOffsetsRequest.Partition(partitionIndex: $0.partition, timestamp: spec.wireTimestamp) })
                }
                let response = try await value(connection.send(ListOffsetsRequest(topics: topics)), from: connection)
                for topic in response.topics {
                    for answer in topic.partitions {
                        let partition = KafkaTopicPartition(topic: topic.name, partition: answer.partitionIndex)
                        guard group.contains(partition) else { continue }
                        switch answer.errorCode {
                        case .none:
                            if answer.offset >= 0 { found[partition] = Offset(answer.offset) } else { missing.append(partition) }
                        case let code where code.isRetriable || code.invalidatesMetadata:
                            if code.invalidatesMetadata { metadataStale = true }
                            retriable = .broker(code, context: "ListOffsets \(partition)")
                        case let code:
                            throw .broker(code, context: "ListOffsets \(partition)")
                        }
                    }
                }
            }
            if let retriable { throw retriable }
        }
        if !missing.isEmpty, spec != .latest {
            for (partition, offset) in try await listOffsets(missing, spec: .latest) { found[partition] = offset }
        }
        return found
    }

    /// The coordinator of consumer group `group`.
    public func findCoordinator(group: String) async throws(KafkaClientError) -> KafkaBrokerNode {
        try await withRetries("FindCoordinator") { () async throws(KafkaClientError) in
            let connection = try await anyConnection()
            let response = try await value(connection.send(FindCoordinatorRequest(key: group)), from: connection)
            guard response.errorCode == .none else { throw .broker(response.errorCode, context: "FindCoordinator \(group)") }
            guard (1...65_535).contains(response.port) else { throw .broker(.coordinatorNotAvailable, context: "FindCoordinator \(group)") }
            return KafkaBrokerNode(nodeId: response.nodeId, address: KafkaBrokerAddress(host: response.host, port: Int(response.port)))
        }
    }

    /// Closes every connection; requests under way fail with `closed` or `connectionClosed`, and every
    /// later request fails with `closed`.
    public func close() {
        isClosed = true
        for (key, slot) in slots {
            switch slot.state {
            case .ready(let connection): connection.close()
            case .connecting(_, let task): task.cancel()
            case .idle: break
            }
            slots[key]?.state = .idle
        }
        metadataRefresh?.task.cancel()
    }

    public var closed: Bool { isClosed }

    /// Closes and forgets the connections of one lane (a consumer or group member that is done).
    public func closeConnections(on lane: KafkaConnectionLane) {
        for (key, slot) in slots where key.lane == lane {
            switch slot.state {
            case .ready(let connection): connection.close()
            case .connecting(_, let task): task.cancel()
            case .idle: break
            }
            slots[key] = nil
        }
    }

    // MARK: Helpers

    /// A new jitter stream for a component of this client (a producer's retries, a group member's).
    func makeJitterGenerator() -> KafkaJitterGenerator { jitter.split() }

    /// Runs `body` until it succeeds, fails with a non-retriable error, or `requestAttemptsMax` attempts
    /// failed; waits the retry backoff between attempts and refreshes metadata when an error says
    /// leadership may have moved.
    func withRetries<T>(_ what: String, _ body: () async throws(KafkaClientError) -> T) async throws(KafkaClientError) -> T {
        var backoff = ReconnectBackoff(policy: configuration.retryBackoff, generator: jitter.split())
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch {
                guard error.isRetriable, attempt < configuration.requestAttemptsMax, !isClosed else { throw error }
                if error.invalidatesMetadata { metadataStale = true }
                attempt += 1
                let wait = backoff.failed()
                logger.debug("retrying", metadata: ["request": "\(what)", "error": "\(error)", "attempt": "\(attempt)", "wait": "\(wait)"])
                try await sleep(for: wait)
            }
        }
    }

    /// Awaits a connection's future as a `KafkaClientError`.
    func value<T: Sendable>(_ future: EventLoopFuture<T>, from connection: KafkaConnection) async throws(KafkaClientError) -> T {
        do {
            return try await future.get()
        } catch {
            throw KafkaConnection.clientError(error, address: connection.address)
        }
    }
}
