import Foundation
import Logging
import NIOCore
import OutpostCore
import OutpostKafka
import OutpostLog

/// Store and forward: ships every local partition to the central topic, one `PartitionReplicator` each,
/// over one Kafka client with an externally sequenced idempotent producer. While the brokers are away the
/// backlog stays on disk (bounded by the disk budget); when they return it drains oldest first while live
/// data keeps arriving.
public final class Replicator: Sendable {
    public let configuration: ReplicationConfiguration
    let client: KafkaClient
    /// One producer per local partition: each has its own producer id, and Kafka's model is one identity
    /// per producer (its in-order window per central partition must not be shared between identities).
    let producers: [KafkaProducer]
    let partitions: [PartitionReplicator]
    let metrics: ReplicationMetrics
    let budget: DiskBudget?
    let logger: Logger
    private let tasks = LockedTasks()

    /// Cursor files live in `<data-dir>/replication/<topic>-<partition>.cursor`.
    public static func cursorPath(dataDirectory: String, topic: String, partition: Int) -> String {
        dataDirectory + "/replication/\(topic)-\(partition).cursor"
    }

    init(
        configuration: ReplicationConfiguration, gatewayId: String, topic: TopicLog, dataDirectory: String, deviceTag: String,
        group: any EventLoopGroup, logger: Logger
    ) throws {
        self.configuration = configuration
        self.logger = logger
        var connection = KafkaConnectionConfiguration(clientId: "outpost-gateway-\(gatewayId)")
        if configuration.usesTLS {
            connection.transportSecurity = try KafkaClientTLS(
                caFile: configuration.tlsCAFile, certificateFile: configuration.tlsCertificateFile, keyFile: configuration.tlsKeyFile)
        }
        if let username = configuration.saslUsername, let password = configuration.saslPassword {
            connection.authenticator = KafkaSASLPlain(username: username, password: password)
        }
        let seed = KafkaJitterGenerator.seed(from: gatewayId)
        client = KafkaClient(
            configuration: KafkaClientConfiguration(
                bootstrap: configuration.brokers, connection: connection,
                reconnectBackoff: KafkaBackoffPolicy(initial: .milliseconds(configuration.backoffInitialMilliseconds), maximum: .milliseconds(configuration.backoffMaxMilliseconds)),
                // The replicator retries forever with its own backoff (and counts and logs each
                // failure); the client giving up early keeps those failures visible.
                requestAttemptsMax: 2, allowAutoTopicCreation: true, jitterSeed: seed),
            eventLoopGroup: group, logger: logger)
        let metrics = ReplicationMetrics(localPartitionCount: topic.partitions.count)
        self.metrics = metrics
        let client = self.client
        let throttle = configuration.bandwidthBytesPerSecond.map { BandwidthThrottle(bytesPerSecond: $0) }
        var replicators: [PartitionReplicator] = []
        var producers: [KafkaProducer] = []
        for (index, log) in topic.partitions.enumerated() {
            let producer = KafkaProducer(client: client, configuration: .init(mode: .externallySequenced), jitterSeed: seed &+ UInt64(index), logger: logger)
            producers.append(producer)
            let file = try ReplicationCursorFile(path: Self.cursorPath(dataDirectory: dataDirectory, topic: topic.topic, partition: index))
            replicators.append(PartitionReplicator(
                localPartition: index, log: log, producer: producer, client: client, centralTopic: configuration.centralTopic,
                cursorFile: file, metrics: metrics, throttle: throttle, logger: logger,
                backoff: (configuration.backoffInitialMilliseconds, configuration.backoffMaxMilliseconds), seed: seed &+ UInt64(index)))
        }
        partitions = replicators
        self.producers = producers
        budget = configuration.diskBudgetBytes.map {
            DiskBudget(budgetBytes: $0, policy: configuration.overflow, gatewayId: gatewayId, deviceTag: deviceTag, logs: topic.partitions, metrics: metrics, logger: logger)
        }
    }

    func start() {
        for partition in partitions {
            tasks.add(Task { await partition.run() })
        }
        let partitions = self.partitions
        tasks.add(Task {
            while !Task.isCancelled {
                for partition in partitions { await partition.refreshLagMetrics() }
                try? await Task.sleep(for: .seconds(1))
            }
        })
        logger.info("replication started", metadata: [
            "brokers": "\(configuration.brokers.map(\.description).joined(separator: ","))", "central_topic": "\(configuration.centralTopic)",
            "tls": "\(configuration.usesTLS)", "sasl": "\(configuration.saslUsername != nil)",
            "disk_budget": "\(configuration.diskBudgetBytes.map(String.init) ?? "none")", "overflow": "\(configuration.overflow.rawValue)",
        ])
    }

    /// Stops replicating. Cursors are persisted as batches are acknowledged, so nothing is left to save.
    func stop() async {
        // Cancel first, then close the producers and the client: an acknowledgement being awaited is a
        // future that cancellation does not reach, closing fails it (nothing is lost: the cursor only
        // moves on acknowledgements, and the next start resends the rest with the same sequences).
        let running = tasks.takeAll()
        for task in running { task.cancel() }
        for producer in producers { await producer.close() }
        await client.close()
        for task in running { await task.value }
    }

    /// Records not yet acknowledged centrally, over all partitions.
    public var lagRecords: Int64 { metrics.lagRecordsTotal }

    /// Each partition's persisted cursor.
    public func cursors() async -> [Offset] {
        var result: [Offset] = []
        for partition in partitions { result.append(await partition.cursor) }
        return result
    }
}

/// Tasks shared between start and stop.
private final class LockedTasks: @unchecked Sendable {
    private let lock = NSLock()
    private var tasks: [Task<Void, Never>] = []
    func add(_ task: Task<Void, Never>) { lock.withLock { tasks.append(task) } }
    func takeAll() -> [Task<Void, Never>] {
        lock.withLock {
            defer { tasks.removeAll() }
            return tasks
        }
    }
}
