import Logging
import OutpostCore
import OutpostLog
import Synchronization

/// A topic and its partitions, all led by this broker.
public final class BrokerTopic: Sendable {
    public let name: String
    public let partitions: [BrokerPartition]

    init(name: String, partitions: [BrokerPartition]) {
        self.name = name
        self.partitions = partitions
    }

    public func partition(_ index: Int32) -> BrokerPartition? {
        guard index >= 0, Int(index) < partitions.count else { return nil }
        return partitions[Int(index)]
    }
}

/// The topics this broker serves: those configured, those found on disk, and those auto-created.
public final class TopicRegistry: Sendable {
    let configuration: BrokerConfiguration
    let logger: Logger
    private let topics: Mutex<[String: BrokerTopic]>

    /// The largest producer id found in any stored batch, so new ids are never reused after a restart.
    public let largestStoredProducerId: ProducerID?

    /// Opens every partition found under the data directory and every configured one (creating what is
    /// missing), recovering each log and rebuilding its producer state from the stored batch headers.
    public init(configuration: BrokerConfiguration, logger: Logger) throws(BrokerError) {
        self.configuration = configuration
        self.logger = logger
        var counts: [String: Int] = [:]
        for found in LogLayout.partitions(in: configuration.dataDirectory) {
            counts[found.topic] = max(counts[found.topic] ?? 0, found.partition + 1)
        }
        for topic in configuration.topics {
            let onDisk = counts[topic.name] ?? 0
            if onDisk > topic.partitions {
                logger.warning("topic has more partitions on disk than configured; keeping them all (partitions cannot shrink)", metadata: [
                    "topic": "\(topic.name)", "configured": "\(topic.partitions)", "on_disk": "\(onDisk)",
                ])
            }
            counts[topic.name] = max(onDisk, topic.partitions)
        }
        var opened: [String: BrokerTopic] = [:]
        var largest: ProducerID?
        do throws(BrokerError) {
            for (name, count) in counts.sorted(by: { $0.key < $1.key }) {
                let (topic, producerId) = try Self.openTopic(name: name, partitions: count, configuration: configuration, logger: logger)
                opened[name] = topic
                if let producerId { largest = max(largest ?? producerId, producerId) }
            }
        } catch {
            for topic in opened.values { Self.close(topic, logger: logger) }
            throw error
        }
        self.topics = Mutex(opened)
        self.largestStoredProducerId = largest
    }

    static func openTopic(
        name: String, partitions count: Int, configuration: BrokerConfiguration, logger: Logger
    ) throws(BrokerError) -> (BrokerTopic, ProducerID?) {
        var partitions: [BrokerPartition] = []
        var largest: ProducerID?
        let logConfiguration = configuration.logConfiguration(for: name)
        do throws(BrokerError) {
            for index in 0..<count {
                let id = TopicPartition(topic: name, partition: Int32(index))
                let directory = LogLayout.partitionDirectory(configuration.dataDirectory, topic: name, partition: index)
                let log: PartitionLog
                do throws(LogError) {
                    log = try PartitionLog.open(directory: directory, configuration: logConfiguration, logger: logger)
                } catch {
                    throw BrokerError.storage(partition: id, error)
                }
                let replica = LocalReplica(topicPartition: id, log: log)
                var table = ProducerStateTable(producersMax: configuration.limits.producersPerPartitionMax)
                do throws(LogError) {
                    try replica.forEachStoredBatchHeader { table.replay($0) }
                } catch {
                    try? log.close()
                    throw BrokerError.storage(partition: id, error)
                }
                let partition = BrokerPartition(replica: replica, producersMax: configuration.limits.producersPerPartitionMax)
                partition.installProducerState(table)
                if let producerId = table.largestProducerId { largest = max(largest ?? producerId, producerId) }
                partitions.append(partition)
            }
        } catch {
            close(BrokerTopic(name: name, partitions: partitions), logger: logger)
            throw error
        }
        return (BrokerTopic(name: name, partitions: partitions), largest)
    }

    public func topic(named name: String) -> BrokerTopic? {
        topics.withLock { $0[name] }
    }

    /// Every topic, sorted by name.
    public var allTopics: [BrokerTopic] {
        topics.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    public func partition(_ id: TopicPartition) -> BrokerPartition? {
        topic(named: id.topic)?.partition(id.partition)
    }

    public enum Lookup: Sendable {
        case found(BrokerTopic)
        case unknown
        case invalidName
        /// Creation was attempted and failed (storage); the reason is logged.
        case unavailable
    }

    /// The topic, auto-creating it (with the default partition count) when allowed by both the request
    /// and the configuration. Creation opens empty logs: rare, and quick enough to run in line.
    public func topic(named name: String, autoCreate: Bool) -> Lookup {
        if let topic = topic(named: name) { return .found(topic) }
        guard autoCreate && configuration.autoCreateTopics else { return .unknown }
        guard LogLayout.isValidTopicName(name) else { return .invalidName }
        return topics.withLock { topics -> Lookup in
            if let topic = topics[name] { return .found(topic) }
            guard topics.count < configuration.limits.topicsMax else {
                logger.warning("topic not auto-created: topic limit reached", metadata: ["topic": "\(name)", "limit": "\(configuration.limits.topicsMax)"])
                return .unavailable
            }
            do {
                let (topic, _) = try Self.openTopic(
                    name: name, partitions: configuration.defaultPartitions, configuration: configuration, logger: logger)
                topics[name] = topic
                logger.info("topic auto-created", metadata: ["topic": "\(name)", "partitions": "\(configuration.defaultPartitions)"])
                return .found(topic)
            } catch {
                logger.error("topic auto-creation failed", metadata: ["topic": "\(name)", "error": "\(error)"])
                return .unavailable
            }
        }
    }

    /// Applies retention to every partition (the owner calls this periodically, off the event loops).
    public func enforceRetention() {
        for topic in allTopics {
            for partition in topic.partitions { partition.replica.enforceRetention() }
        }
    }

    /// Closes every log (flushing it). Errors are logged: shutdown continues with the other partitions.
    public func closeAll() {
        for topic in allTopics { Self.close(topic, logger: logger) }
    }

    static func close(_ topic: BrokerTopic, logger: Logger) {
        for partition in topic.partitions {
            do { try partition.replica.close() } catch {
                logger.error("closing a partition log failed", metadata: ["partition": "\(partition.id)", "error": "\(error)"])
            }
        }
    }
}
