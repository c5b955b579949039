import NIOCore

/// Metadata (key 3), v0–4.
public struct MetadataRequest: KafkaRequestMessage {
    public typealias Response = MetadataResponse
    public static let apiKey = KafkaAPIKey.metadata

    /// nil means every topic (v1+); at v0 an empty array means every topic, and nil cannot be sent.
    /// At v1+ an empty array means no topic (brokers only). See `requestsAllTopics(version:)`.
    public var topics: [String]?
    /// v4+; earlier versions always allow it.
    public var allowAutoTopicCreation: Bool

    public init(topics: [String]?, allowAutoTopicCreation: Bool = true) {
        self.topics = topics
        self.allowAutoTopicCreation = allowAutoTopicCreation
    }

    /// Kafka's topic-array semantics (kafka-subset.md P2).
    public func requestsAllTopics(version: Int16) -> Bool {
        guard let topics else { return true }
        return version == 0 && topics.isEmpty
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        let read = { (reader: inout KafkaReader) throws(KafkaProtocolError) -> String in try reader.readString("topic name") }
        if version >= 1 {
            topics = try reader.readNullableArray("topics", read)
        } else {
            topics = try reader.readArray("topics", read)
        }
        allowAutoTopicCreation = version >= 4 ? try reader.readBool("allow_auto_topic_creation") : true
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 {
            writer.writeNullableArray(topics) { $0.writeString($1) }
        } else {
            writer.writeArray(topics ?? []) { $0.writeString($1) }
        }
        if version >= 4 { writer.writeBool(allowAutoTopicCreation) }
    }
}

public struct MetadataResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.metadata

    public struct Broker: Hashable, Sendable {
        public var nodeId: Int32
        public var host: String
        public var port: Int32
        /// v1+.
        public var rack: String?

        public init(nodeId: Int32, host: String, port: Int32, rack: String? = nil) {
            self.nodeId = nodeId
            self.host = host
            self.port = port
            self.rack = rack
        }
    }

    public struct Partition: Hashable, Sendable {
        public var errorCode: KafkaErrorCode
        public var partitionIndex: Int32
        public var leaderId: Int32
        public var replicaNodes: [Int32]
        public var isrNodes: [Int32]

        public init(errorCode: KafkaErrorCode = .none, partitionIndex: Int32, leaderId: Int32, replicaNodes: [Int32], isrNodes: [Int32]) {
            self.errorCode = errorCode
            self.partitionIndex = partitionIndex
            self.leaderId = leaderId
            self.replicaNodes = replicaNodes
            self.isrNodes = isrNodes
        }
    }

    public struct Topic: Hashable, Sendable {
        public var errorCode: KafkaErrorCode
        public var name: String
        /// v1+.
        public var isInternal: Bool
        public var partitions: [Partition]

        public init(errorCode: KafkaErrorCode = .none, name: String, isInternal: Bool = false, partitions: [Partition]) {
            self.errorCode = errorCode
            self.name = name
            self.isInternal = isInternal
            self.partitions = partitions
        }
    }

    /// v3+.
    public var throttleTimeMs: Int32
    public var brokers: [Broker]
    /// v2+.
    public var clusterId: String?
    /// v1+.
    public var controllerId: Int32
    public var topics: [Topic]

    public init(throttleTimeMs: Int32 = 0, brokers: [Broker], clusterId: String?, controllerId: Int32, topics: [Topic]) {
        self.throttleTimeMs = throttleTimeMs
        self.brokers = brokers
        self.clusterId = clusterId
        self.controllerId = controllerId
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 3 ? try reader.readInt32("throttle_time_ms") : 0
        brokers = try reader.readArray("brokers") { (reader) throws(KafkaProtocolError) in
            Broker(
                nodeId: try reader.readInt32("node_id"), host: try reader.readString("host"), port: try reader.readInt32("port"),
                rack: version >= 1 ? try reader.readNullableString("rack") : nil)
        }
        clusterId = version >= 2 ? try reader.readNullableString("cluster_id") : nil
        controllerId = version >= 1 ? try reader.readInt32("controller_id") : -1
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            let errorCode = try reader.readErrorCode()
            let name = try reader.readString("topic name")
            let isInternal = version >= 1 ? try reader.readBool("is_internal") : false
            let partitions = try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                Partition(
                    errorCode: try reader.readErrorCode(), partitionIndex: try reader.readInt32("partition_index"),
                    leaderId: try reader.readInt32("leader_id"),
                    replicaNodes: try reader.readArray("replica_nodes") { (reader) throws(KafkaProtocolError) in try reader.readInt32() },
                    isrNodes: try reader.readArray("isr_nodes") { (reader) throws(KafkaProtocolError) in try reader.readInt32() })
            }
            return Topic(errorCode: errorCode, name: name, isInternal: isInternal, partitions: partitions)
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 3 { writer.writeInt32(throttleTimeMs) }
        writer.writeArray(brokers) { writer, broker in
            writer.writeInt32(broker.nodeId)
            writer.writeString(broker.host)
            writer.writeInt32(broker.port)
            if version >= 1 { writer.writeNullableString(broker.rack) }
        }
        if version >= 2 { writer.writeNullableString(clusterId) }
        if version >= 1 { writer.writeInt32(controllerId) }
        writer.writeArray(topics) { writer, topic in
            writer.writeErrorCode(topic.errorCode)
            writer.writeString(topic.name)
            if version >= 1 { writer.writeBool(topic.isInternal) }
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeErrorCode(partition.errorCode)
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt32(partition.leaderId)
                writer.writeArray(partition.replicaNodes) { $0.writeInt32($1) }
                writer.writeArray(partition.isrNodes) { $0.writeInt32($1) }
            }
        }
    }
}
