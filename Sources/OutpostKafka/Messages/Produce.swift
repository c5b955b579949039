import NIOCore

/// Produce (key 0), v0–7. Records are RecordBatch bytes, carried opaque (RECORDS = NULLABLE_BYTES).
public struct ProduceRequest: KafkaRequestMessage {
    public typealias Response = ProduceResponse
    public static let apiKey = KafkaAPIKey.produce

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        /// Concatenated RecordBatches; v3+ requires exactly one batch per partition.
        public var records: ByteBuffer?

        public init(partitionIndex: Int32, records: ByteBuffer?) {
            self.partitionIndex = partitionIndex
            self.records = records
        }
    }

    public struct Topic: Hashable, Sendable {
        public var name: String
        public var partitions: [Partition]

        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// v3+; nil unless transactional.
    public var transactionalId: String?
    /// 0: no response; 1: the leader wrote it; −1: committed (all in-sync replicas).
    public var acks: Int16
    public var timeoutMs: Int32
    public var topics: [Topic]

    public init(transactionalId: String? = nil, acks: Int16, timeoutMs: Int32, topics: [Topic]) {
        self.transactionalId = transactionalId
        self.acks = acks
        self.timeoutMs = timeoutMs
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        transactionalId = version >= 3 ? try reader.readNullableString("transactional_id") : nil
        acks = try reader.readInt16("acks")
        timeoutMs = try reader.readInt32("timeout_ms")
        topics = try reader.readArray("topic_data") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partition_data") { (reader) throws(KafkaProtocolError) in
                    Partition(partitionIndex: try reader.readInt32("index"), records: try reader.readNullableBytes("records"))
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 3 { writer.writeNullableString(transactionalId) }
        writer.writeInt16(acks)
        writer.writeInt32(timeoutMs)
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeNullableBytes(partition.records)
            }
        }
    }
}

public struct ProduceResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.produce

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode
        public var baseOffset: Int64
        /// v2+; −1 under CreateTime.
        public var logAppendTimeMs: Int64
        /// v5+.
        public var logStartOffset: Int64

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode, baseOffset: Int64 = -1, logAppendTimeMs: Int64 = -1, logStartOffset: Int64 = -1) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.baseOffset = baseOffset
            self.logAppendTimeMs = logAppendTimeMs
            self.logStartOffset = logStartOffset
        }
    }

    public struct Topic: Hashable, Sendable {
        public var name: String
        public var partitions: [Partition]

        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    public var topics: [Topic]
    /// v1+, the last field (§2.4).
    public var throttleTimeMs: Int32

    public init(topics: [Topic], throttleTimeMs: Int32 = 0) {
        self.topics = topics
        self.throttleTimeMs = throttleTimeMs
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        topics = try reader.readArray("responses") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    Partition(
                        partitionIndex: try reader.readInt32("index"), errorCode: try reader.readErrorCode(),
                        baseOffset: try reader.readInt64("base_offset"),
                        logAppendTimeMs: version >= 2 ? try reader.readInt64("log_append_time_ms") : -1,
                        logStartOffset: version >= 5 ? try reader.readInt64("log_start_offset") : -1)
                })
        }
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeErrorCode(partition.errorCode)
                writer.writeInt64(partition.baseOffset)
                if version >= 2 { writer.writeInt64(partition.logAppendTimeMs) }
                if version >= 5 { writer.writeInt64(partition.logStartOffset) }
            }
        }
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
    }
}
