import NIOCore

/// ListOffsets (key 2), v0–2.
public struct ListOffsetsRequest: KafkaRequestMessage {
    public typealias Response = ListOffsetsResponse
    public static let apiKey = KafkaAPIKey.listOffsets

    /// Special timestamps (AK `ListOffsetsRequest.java`).
    public static let latestTimestamp: Int64 = -1
    public static let earliestTimestamp: Int64 = -2

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        /// −1 latest, −2 earliest, otherwise milliseconds: the first offset with a timestamp at or after it.
        public var timestamp: Int64
        /// v0 only.
        public var maxNumOffsets: Int32

        public init(partitionIndex: Int32, timestamp: Int64, maxNumOffsets: Int32 = 1) {
            self.partitionIndex = partitionIndex
            self.timestamp = timestamp
            self.maxNumOffsets = maxNumOffsets
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

    public var replicaId: Int32
    /// v2+.
    public var isolationLevel: Int8
    public var topics: [Topic]

    public init(replicaId: Int32 = -1, isolationLevel: Int8 = 0, topics: [Topic]) {
        self.replicaId = replicaId
        self.isolationLevel = isolationLevel
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        replicaId = try reader.readInt32("replica_id")
        isolationLevel = version >= 2 ? try reader.readInt8("isolation_level") : 0
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    Partition(
                        partitionIndex: try reader.readInt32("partition_index"), timestamp: try reader.readInt64("timestamp"),
                        maxNumOffsets: version == 0 ? try reader.readInt32("max_num_offsets") : 1)
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeInt32(replicaId)
        if version >= 2 { writer.writeInt8(isolationLevel) }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt64(partition.timestamp)
                if version == 0 { writer.writeInt32(partition.maxNumOffsets) }
            }
        }
    }
}

public struct ListOffsetsResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.listOffsets

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode
        /// v0 only.
        public var oldStyleOffsets: [Int64]
        /// v1+; −1 for "no timestamp".
        public var timestamp: Int64
        /// v1+; −1 when no offset matches.
        public var offset: Int64

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode = .none, oldStyleOffsets: [Int64] = [], timestamp: Int64 = -1, offset: Int64 = -1) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.oldStyleOffsets = oldStyleOffsets
            self.timestamp = timestamp
            self.offset = offset
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

    /// v2+.
    public var throttleTimeMs: Int32
    public var topics: [Topic]

    public init(throttleTimeMs: Int32 = 0, topics: [Topic]) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 2 ? try reader.readInt32("throttle_time_ms") : 0
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    let index = try reader.readInt32("partition_index")
                    let errorCode = try reader.readErrorCode()
                    if version == 0 {
                        return Partition(
                            partitionIndex: index, errorCode: errorCode,
                            oldStyleOffsets: try reader.readArray("old_style_offsets") { (reader) throws(KafkaProtocolError) in try reader.readInt64() })
                    }
                    return Partition(
                        partitionIndex: index, errorCode: errorCode, timestamp: try reader.readInt64("timestamp"),
                        offset: try reader.readInt64("offset"))
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 2 { writer.writeInt32(throttleTimeMs) }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeErrorCode(partition.errorCode)
                if version == 0 {
                    writer.writeArray(partition.oldStyleOffsets) { $0.writeInt64($1) }
                } else {
                    writer.writeInt64(partition.timestamp)
                    writer.writeInt64(partition.offset)
                }
            }
        }
    }
}
