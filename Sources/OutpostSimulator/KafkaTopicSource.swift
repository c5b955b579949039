import Logging
import OutpostCore
import OutpostKafka

/// A topic on a Kafka-protocol broker (Outpost's own, or Kafka, Redpanda…), read from the earliest offset
/// of every partition to the end offsets found when the read starts: what `outpost verify --bootstrap`
/// checks after replication. Records arrive partition by partition in offset order, a fetch at a time.
public final class KafkaTopicSource: TopicSource, @unchecked Sendable {
    // @unchecked: `problems` is written only during `readRecords`, read after it.
    public let bootstrap: [KafkaBrokerAddress]
    public let topic: String
    public let connection: KafkaConnectionConfiguration
    public private(set) var problems: [String] = []

    public init(bootstrap: [KafkaBrokerAddress], topic: String, connection: KafkaConnectionConfiguration = KafkaConnectionConfiguration(clientId: "outpost-verify")) {
        self.bootstrap = bootstrap
        self.topic = topic
        self.connection = connection
    }

    public var sourceDescription: String { "brokers \(bootstrap.map(\.description).joined(separator: ",")), topic \(topic)" }

    public func readRecords(_ visit: ([TopicRecord]) -> Void) async throws(SimulatorError) {
        guard !bootstrap.isEmpty else { throw .source("no bootstrap broker given") }
        var logger = Logger(label: "outpost.verify")
        logger.logLevel = .warning
        let client = KafkaClient(configuration: KafkaClientConfiguration(bootstrap: bootstrap, connection: connection, requestAttemptsMax: 4), logger: logger)
        let consumer = KafkaConsumer(client: client, configuration: .init(maxWait: .milliseconds(100), resetPolicy: .fail))
        do {
            try await consumer.readTopic(topic) { fetched in
                visit(fetched.records.map { TopicRecord(partition: Int(fetched.partition.partition), $0) })
            }
        } catch {
            await consumer.close()
            await client.close()
            if case .corruptBatch(let partition, let offset, let reason)? = error as? KafkaClientError {
                problems.append("\(partition) at offset \(offset): \(reason)")
            }
            throw .source("reading topic '\(topic)' from \(sourceDescription): \(error)")
        }
        await consumer.close()
        await client.close()
    }
}
