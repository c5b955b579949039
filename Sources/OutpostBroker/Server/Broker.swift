import Logging
import NIOCore
import NIOPosix
import NIOSSL
import OutpostKafka
import OutpostOperations
import Prometheus
import Synchronization

/// A running broker: the Kafka listener, its partitions, its group coordinator, and optionally the
/// operations endpoint. `start` opens everything (recovering logs) before accepting a connection; `stop`
/// closes connections, answers parked requests, and closes every log.
public final class Broker: Sendable {
    public let configuration: BrokerConfiguration
    /// The address clients are told to use.
    public let advertised: HostPort
    public let kafkaPort: Int
    public var metricsPort: Int? { operations?.port }

    let group: MultiThreadedEventLoopGroup
    let threadPool: NIOThreadPool
    let topics: TopicRegistry
    let coordinator: GroupCoordinator
    let serverChannel: any Channel
    let operations: OperationsServer?
    let connections: ConnectionRegistry
    let fetchHandler: FetchHandler
    let directoryLock: DirectoryLock
    let retentionTask = Mutex<RepeatedTask?>(nil)
    let logger: Logger

    /// The topics and partitions, for tests and tools in-process.
    public var topicRegistry: TopicRegistry { topics }
    public var groupCoordinator: GroupCoordinator { coordinator }

    public static func start(
        configuration: BrokerConfiguration, registry: PrometheusCollectorRegistry? = nil, logger: Logger = Logger(label: "outpost.broker")
    ) async throws -> Broker {
        // Certificates, keys and users first: a bad file stops the broker before it touches its data.
        let security = try ListenerSecurity(configuration: configuration, logger: logger)
        try DurableFile.createDirectory(configuration.dataDirectory)
        let directoryLock = try DirectoryLock(directory: configuration.dataDirectory)
        let threadPool = NIOThreadPool(numberOfThreads: configuration.ioThreads)
        threadPool.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads ?? System.coreCount)
        do {
            let topics = try TopicRegistry(configuration: configuration, logger: logger)
            let producerIds: ProducerIdAllocator
            let store: OffsetStore
            do {
                producerIds = try ProducerIdAllocator(dataDirectory: configuration.dataDirectory, largestStoredId: topics.largestStoredProducerId)
                store = try OffsetStore(dataDirectory: configuration.dataDirectory, threadPool: threadPool, logger: logger)
            } catch {
                topics.closeAll()
                throw error
            }
            let coordinator = GroupCoordinator(configuration: configuration.groups, store: store, timerLoop: group.next(), logger: logger)
            let metrics = BrokerMetrics()
            let connections = ConnectionRegistry(eventLoop: group.next())
            let logLimiter = LogRateLimiter(perSecond: 20)
            let frameBudget = FrameMemoryBudget(limitBytes: max(configuration.limits.bufferedRequestBytesMax, configuration.limits.frameBytesMax))
            let listen = configuration.resolvedListen
            let limits = configuration.limits
            let serverChannel: any Channel
            do {
                serverChannel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.socketOption(.so_keepalive), value: 1)
                    // Responses may queue this much before the connection stops reading requests.
                    .childChannelOption(.writeBufferWaterMark, value: .init(low: 512 << 10, high: 2 << 20))
                    .childChannelInitializer { channel in
                        // A client that connects between the bind and the request handler's creation (a
                        // reconnecting gateway at start-up) waits for it instead of being closed unanswered.
                        connections.handlerReady.hop(to: channel.eventLoop).flatMap { handler in
                        guard metrics.connectionOpened(limit: limits.connectionsMax) else {
                            if let suppressed = logLimiter.admit() {
                                logger.warning("connection refused: connection limit reached", metadata: [
                                    "peer": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "limit": "\(limits.connectionsMax)",
                                    "suppressed": "\(suppressed)",
                                ])
                            }
                            return channel.close()
                        }
                        connections.add(channel)
                        channel.closeFuture.whenComplete { _ in
                            metrics.connectionClosed()
                            connections.remove(channel)
                        }
                        return channel.eventLoop.makeCompletedFuture {
                            if let tlsContext = security.tlsContext {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                            }
                            let sasl = security.makeSASLStateMachine()
                            let gate = sasl.map { _ in AuthenticationGate() }
                            try channel.pipeline.syncOperations.addHandler(
                                ByteToMessageHandler(
                                    ConnectionFrameDecoder(
                                        frames: KafkaFrameDecoder(maxFrameBytes: limits.frameBytesMax, budget: frameBudget), gate: gate,
                                        unauthenticatedFrameBytesMax: security.limits.unauthenticatedFrameBytesMax)))
                            try channel.pipeline.syncOperations.addHandler(
                                KafkaConnectionHandler(
                                    handler: handler, inFlightMax: limits.inFlightRequestsPerConnectionMax, metrics: metrics,
                                    logger: logger, logLimiter: logLimiter, security: security, sasl: sasl, gate: gate))
                        }
                        }
                    }
                    .bind(host: listen.host, port: listen.port)
                    .get()
            } catch {
                connections.failHandler(error)
                coordinator.stop()
                topics.closeAll()
                throw error
            }
            let boundPort = serverChannel.localAddress?.port ?? listen.port
            var advertised = configuration.advertise ?? HostPort(host: listen.host, port: boundPort)
            if configuration.advertise == nil && ["0.0.0.0", "::", "localhost"].contains(advertised.host) {
                // Clients must reach the address literally (P1): never a wildcard, never "localhost".
                advertised.host = "127.0.0.1"
            }
            let requestHandler = BrokerRequestHandler(
                configuration: configuration, advertised: advertised, topics: topics, coordinator: coordinator, producerIds: producerIds,
                threadPool: threadPool, metrics: metrics, logger: logger, saslMechanism: security.saslMechanism)
            connections.handler = requestHandler

            var operations: OperationsServer?
            if let metricsAddress = configuration.resolvedMetrics {
                do {
                    operations = try await OperationsServer.start(
                        host: metricsAddress.host, port: metricsAddress.port, registry: registry, group: group, logger: logger
                    ) {
                        HealthReport(healthy: true, details: [
                            ("topics", "\(topics.allTopics.count)"), ("connections", "\(metrics.openConnectionCount)"),
                        ])
                    }
                } catch {
                    try? await serverChannel.close()
                    coordinator.stop()
                    topics.closeAll()
                    throw error
                }
            }
            let broker = Broker(
                configuration: configuration, advertised: advertised, kafkaPort: boundPort, group: group, threadPool: threadPool,
                topics: topics, coordinator: coordinator, serverChannel: serverChannel, operations: operations, connections: connections,
                fetchHandler: requestHandler.fetch, directoryLock: directoryLock, logger: logger)
            broker.scheduleRetention()
            logger.info("broker started", metadata: [
                "node_id": "\(configuration.nodeId)", "listen": "\(listen.host):\(boundPort)", "advertised": "\(advertised)",
                "security": "\(configuration.securityProtocol)",
                "topics": "\(topics.allTopics.map(\.name))", "data_dir": "\(configuration.dataDirectory)",
            ])
            return broker
        } catch {
            try? await group.shutdownGracefully()
            try? await threadPool.shutdownGracefully()
            directoryLock.release()
            throw error
        }
    }

    private init(
        configuration: BrokerConfiguration, advertised: HostPort, kafkaPort: Int, group: MultiThreadedEventLoopGroup, threadPool: NIOThreadPool,
        topics: TopicRegistry, coordinator: GroupCoordinator, serverChannel: any Channel, operations: OperationsServer?,
        connections: ConnectionRegistry, fetchHandler: FetchHandler, directoryLock: DirectoryLock, logger: Logger
    ) {
        self.configuration = configuration
        self.advertised = advertised
        self.kafkaPort = kafkaPort
        self.group = group
        self.threadPool = threadPool
        self.topics = topics
        self.coordinator = coordinator
        self.serverChannel = serverChannel
        self.operations = operations
        self.connections = connections
        self.fetchHandler = fetchHandler
        self.directoryLock = directoryLock
        self.logger = logger
    }

    private func scheduleRetention() {
        let interval = TimeAmount.milliseconds(configuration.retentionCheckIntervalMilliseconds)
        let task = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { [topics, threadPool] _ in
            threadPool.submit { _ in topics.enforceRetention() }
        }
        retentionTask.withLock { $0 = task }
    }

    /// Orderly shutdown: stop accepting, close connections, answer parked group requests, wait for offset
    /// writes, close (flush) every log, stop threads. Idempotent enough to call once from a signal.
    public func stop() async {
        retentionTask.withLock { $0?.cancel() }
        try? await serverChannel.close()
        await operations?.close()
        coordinator.stop()
        fetchHandler.stop()
        let open = connections.all
        for channel in open { try? await channel.close() }
        topics.closeAll()
        try? await threadPool.shutdownGracefully()
        try? await group.shutdownGracefully()
        directoryLock.release()
        logger.info("broker stopped")
    }
}

/// The open client connections (closed on stop) and the request handler new connections use (set once
/// the listener's address is known, before the first connection can be served).
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let requestHandler = Mutex<BrokerRequestHandler?>(nil)
    private let handlerPromise: EventLoopPromise<BrokerRequestHandler>

    init(eventLoop: any EventLoop) {
        handlerPromise = eventLoop.makePromise()
    }

    /// Completes once the request handler exists (it needs the bound port, so it comes after the bind).
    var handlerReady: EventLoopFuture<BrokerRequestHandler> { handlerPromise.futureResult }

    var handler: BrokerRequestHandler? {
        get { requestHandler.withLock { $0 } }
        set {
            requestHandler.withLock { $0 = newValue }
            if let newValue { handlerPromise.succeed(newValue) }
        }
    }

    func failHandler(_ error: any Error) { handlerPromise.fail(error) }

    func add(_ channel: any Channel) { channels.withLock { $0[ObjectIdentifier(channel)] = channel } }
    func remove(_ channel: any Channel) { _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    var all: [any Channel] { channels.withLock { Array($0.values) } }
}
