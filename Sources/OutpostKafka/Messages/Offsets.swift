import NIOCore

/// OffsetCommit (key 8), v0–7.
public struct OffsetCommitRequest: KafkaRequestMessage {
    public typealias Response = OffsetCommitResponse
    public static let apiKey = KafkaAPIKey.offsetCommit

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        public var committedOffset: Int64
        /// v6+.
        public var committedLeaderEpoch: Int32
        /// v1 only.
        public var commitTimestamp: Int64
        public var committedMetadata: String?

        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1, commitTimestamp: Int64 = -1, committedMetadata: String? = "") {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.commitTimestamp = commitTimestamp
            self.committedMetadata = committedMetadata
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

    public var groupId: String
    /// v1+; −1 for a commit outside any generation (simple/admin commit).
    public var generationId: Int32
    /// v1+.
    public var memberId: String
    /// v7+.
    public var groupInstanceId: String?
    /// v2–4 only.
    public var retentionTimeMs: Int64
    public var topics: [Topic]

    public init(
        groupId: String, generationId: Int32 = -1, memberId: String = "", groupInstanceId: String? = nil, retentionTimeMs: Int64 = -1,
        topics: [Topic]
    ) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.retentionTimeMs = retentionTimeMs
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        generationId = version >= 1 ? try reader.readInt32("generation_id") : -1
        memberId = version >= 1 ? try reader.readString("member_id") : ""
        groupInstanceId = version >= 7 ? try reader.readNullableString("group_instance_id") : nil
        retentionTimeMs = (2...4).contains(version) ? try reader.readInt64("retention_time_ms") : -1
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    let index = try reader.readInt32("partition_index")
                    let offset = try reader.readInt64("committed_offset")
                    let epoch = version >= 6 ? try reader.readInt32("committed_leader_epoch") : -1
                    let timestamp = version == 1 ? try reader.readInt64("commit_timestamp") : -1
                    return Partition(
                        partitionIndex: index, committedOffset: offset, committedLeaderEpoch: epoch, commitTimestamp: timestamp,
                        committedMetadata: try reader.readNullableString("committed_metadata"))
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        if version >= 1 {
            writer.writeInt32(generationId)
            writer.writeString(memberId)
        }
        if version >= 7 { writer.writeNullableString(groupInstanceId) }
        if (2...4).contains(version) { writer.writeInt64(retentionTimeMs) }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt64(partition.committedOffset)
                if version >= 6 { writer.writeInt32(partition.committedLeaderEpoch) }
                if version == 1 { writer.writeInt64(partition.commitTimestamp) }
                writer.writeNullableString(partition.committedMetadata)
            }
        }
    }
}

public struct OffsetCommitResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.offsetCommit

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
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

    /// v3+.
    public var throttleTimeMs: Int32
    public var topics: [Topic]

    public init(throttleTimeMs: Int32 = 0, topics: [Topic]) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 3 ? try reader.readInt32("throttle_time_ms") : 0
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    Partition(partitionIndex: try reader.readInt32("partition_index"), errorCode: try reader.readErrorCode())
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 3 { writer.writeInt32(throttleTimeMs) }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeErrorCode(partition.errorCode)
            }
        }
    }
}

/// OffsetFetch (key 9), v0–5.
public struct OffsetFetchRequest: KafkaRequestMessage {
    public typealias Response = OffsetFetchResponse
    public static let apiKey = KafkaAPIKey.offsetFetch

    public struct Topic: Hashable, Sendable {
        public var name: String
        public var partitionIndexes: [Int32]

        public init(name: String, partitionIndexes: [Int32]) {
            self.name = name
            self.partitionIndexes = partitionIndexes
        }
    }

    public var groupId: String
    /// nil (v2+) means every partition the group has committed.
    public var topics: [Topic]?

    public init(groupId: String, topics: [Topic]?) {
        self.groupId = groupId
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        let read = { (reader: inout KafkaReader) throws(KafkaProtocolError) -> Topic in
            Topic(
                name: try reader.readString("topic name"),
                partitionIndexes: try reader.readArray("partition_indexes") { (reader) throws(KafkaProtocolError) in try reader.readInt32() })
        }
        topics = version >= 2 ? try reader.readNullableArray("topics", read) : try reader.readArray("topics", read)
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        let write = { (writer: inout KafkaWriter, topic: Topic) in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitionIndexes) { $0.writeInt32($1) }
        }
        if version >= 2 {
            writer.writeNullableArray(topics, write)
        } else {
            writer.writeArray(topics ?? [], write)
        }
    }
}

public struct OffsetFetchResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.offsetFetch

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        /// −1 when nothing is committed.
        public var committedOffset: Int64
        /// v5+.
        public var committedLeaderEpoch: Int32
        /// "" when nothing is committed.
        public var metadata: String?
        public var errorCode: KafkaErrorCode

        public init(partitionIndex: Int32, committedOffset: Int64, committedLeaderEpoch: Int32 = -1, metadata: String?, errorCode: KafkaErrorCode = .none) {
            self.partitionIndex = partitionIndex
            self.committedOffset = committedOffset
            self.committedLeaderEpoch = committedLeaderEpoch
            self.metadata = metadata
            self.errorCode = errorCode
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

    /// v3+.
    public var throttleTimeMs: Int32
    public var topics: [Topic]
    /// v2+, after the topics (P8).
    public var errorCode: KafkaErrorCode

    public init(throttleTimeMs: Int32 = 0, topics: [Topic], errorCode: KafkaErrorCode = .none) {
        self.throttleTimeMs = throttleTimeMs
        self.topics = topics
        self.errorCode = errorCode
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 3 ? try reader.readInt32("throttle_time_ms") : 0
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic name"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    let index = try reader.readInt32("partition_index")
                    let offset = try reader.readInt64("committed_offset")
                    let epoch = version >= 5 ? try reader.readInt32("committed_leader_epoch") : -1
                    return Partition(
                        partitionIndex: index, committedOffset: offset, committedLeaderEpoch: epoch,
                        metadata: try reader.readNullableString("metadata"), errorCode: try reader.readErrorCode())
                })
        }
        errorCode = version >= 2 ? try reader.readErrorCode() : .none
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 3 { writer.writeInt32(throttleTimeMs) }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt64(partition.committedOffset)
                if version >= 5 { writer.writeInt32(partition.committedLeaderEpoch) }
                writer.writeNullableString(partition.metadata)
                writer.writeErrorCode(partition.errorCode)
            }
        }
        if version >= 2 { writer.writeErrorCode(errorCode) }
    }
}
