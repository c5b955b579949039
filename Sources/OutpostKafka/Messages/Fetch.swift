import NIOCore

/// Fetch (key 1), v0–11.
public struct FetchRequest: KafkaRequestMessage {
    public typealias Response = FetchResponse
    public static let apiKey = KafkaAPIKey.fetch

    public struct Partition: Hashable, Sendable {
        public var partition: Int32
        /// v9+; −1 when the client does not know it.
        public var currentLeaderEpoch: Int32
        public var fetchOffset: Int64
        /// v5+; only meaningful from a follower.
        public var logStartOffset: Int64
        public var partitionMaxBytes: Int32

        public init(partition: Int32, currentLeaderEpoch: Int32 = -1, fetchOffset: Int64, logStartOffset: Int64 = -1, partitionMaxBytes: Int32) {
            self.partition = partition
            self.currentLeaderEpoch = currentLeaderEpoch
            self.fetchOffset = fetchOffset
            self.logStartOffset = logStartOffset
            self.partitionMaxBytes = partitionMaxBytes
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

    public struct ForgottenTopic: Hashable, Sendable {
        public var name: String
        public var partitions: [Int32]

        public init(name: String, partitions: [Int32]) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// −1 for a consumer; a broker id for a follower.
    public var replicaId: Int32
    public var maxWaitMs: Int32
    public var minBytes: Int32
    /// v3+.
    public var maxBytes: Int32
    /// v4+: 0 read uncommitted, 1 read committed.
    public var isolationLevel: Int8
    /// v7+.
    public var sessionId: Int32
    /// v7+.
    public var sessionEpoch: Int32
    public var topics: [Topic]
    /// v7+.
    public var forgottenTopics: [ForgottenTopic]
    /// v11+.
    public var rackId: String

    public init(
        replicaId: Int32 = -1, maxWaitMs: Int32, minBytes: Int32, maxBytes: Int32 = .max, isolationLevel: Int8 = 0,
        sessionId: Int32 = 0, sessionEpoch: Int32 = -1, topics: [Topic], forgottenTopics: [ForgottenTopic] = [], rackId: String = ""
    ) {
        self.replicaId = replicaId
        self.maxWaitMs = maxWaitMs
        self.minBytes = minBytes
        self.maxBytes = maxBytes
        self.isolationLevel = isolationLevel
        self.sessionId = sessionId
        self.sessionEpoch = sessionEpoch
        self.topics = topics
        self.forgottenTopics = forgottenTopics
        self.rackId = rackId
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        replicaId = try reader.readInt32("replica_id")
        maxWaitMs = try reader.readInt32("max_wait_ms")
        minBytes = try reader.readInt32("min_bytes")
        maxBytes = version >= 3 ? try reader.readInt32("max_bytes") : .max
        isolationLevel = version >= 4 ? try reader.readInt8("isolation_level") : 0
        sessionId = version >= 7 ? try reader.readInt32("session_id") : 0
        sessionEpoch = version >= 7 ? try reader.readInt32("session_epoch") : -1
        topics = try reader.readArray("topics") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    let partition = try reader.readInt32("partition")
                    let currentLeaderEpoch = version >= 9 ? try reader.readInt32("current_leader_epoch") : -1
                    let fetchOffset = try reader.readInt64("fetch_offset")
                    let logStartOffset = version >= 5 ? try reader.readInt64("log_start_offset") : -1
                    return Partition(
                        partition: partition, currentLeaderEpoch: currentLeaderEpoch, fetchOffset: fetchOffset,
                        logStartOffset: logStartOffset, partitionMaxBytes: try reader.readInt32("partition_max_bytes"))
                })
        }
        if version >= 7 {
            forgottenTopics = try reader.readArray("forgotten_topics_data") { (reader) throws(KafkaProtocolError) in
                ForgottenTopic(
                    name: try reader.readString("topic"),
                    partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in try reader.readInt32() })
            }
        } else {
            forgottenTopics = []
        }
        rackId = version >= 11 ? try reader.readString("rack_id") : ""
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeInt32(replicaId)
        writer.writeInt32(maxWaitMs)
        writer.writeInt32(minBytes)
        if version >= 3 { writer.writeInt32(maxBytes) }
        if version >= 4 { writer.writeInt8(isolationLevel) }
        if version >= 7 {
            writer.writeInt32(sessionId)
            writer.writeInt32(sessionEpoch)
        }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partition)
                if version >= 9 { writer.writeInt32(partition.currentLeaderEpoch) }
                writer.writeInt64(partition.fetchOffset)
                if version >= 5 { writer.writeInt64(partition.logStartOffset) }
                writer.writeInt32(partition.partitionMaxBytes)
            }
        }
        if version >= 7 {
            writer.writeArray(forgottenTopics) { writer, topic in
                writer.writeString(topic.name)
                writer.writeArray(topic.partitions) { $0.writeInt32($1) }
            }
        }
        if version >= 11 { writer.writeString(rackId) }
    }
}

public struct FetchResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.fetch

    public struct AbortedTransaction: Hashable, Sendable {
        public var producerId: Int64
        public var firstOffset: Int64

        public init(producerId: Int64, firstOffset: Int64) {
            self.producerId = producerId
            self.firstOffset = firstOffset
        }
    }

    public struct Partition: Hashable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode
        public var highWatermark: Int64
        /// v4+. A server must send the high watermark here: librdkafka reads it as the end (P5).
        public var lastStableOffset: Int64
        /// v5+.
        public var logStartOffset: Int64
        /// v4+; nullable. A server sends an empty array.
        public var abortedTransactions: [AbortedTransaction]?
        /// v11+. A server must send −1: anything else makes librdkafka drop the records (P4).
        public var preferredReadReplica: Int32
        /// Whole RecordBatches. A server never sends null (P3): "no data" is empty bytes.
        public var records: ByteBuffer?

        public init(
            partitionIndex: Int32, errorCode: KafkaErrorCode = .none, highWatermark: Int64, lastStableOffset: Int64 = -1,
            logStartOffset: Int64 = -1, abortedTransactions: [AbortedTransaction]? = [], preferredReadReplica: Int32 = -1,
            records: ByteBuffer?
        ) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.highWatermark = highWatermark
            self.lastStableOffset = lastStableOffset
            self.logStartOffset = logStartOffset
            self.abortedTransactions = abortedTransactions
            self.preferredReadReplica = preferredReadReplica
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

    /// v1+, the first field.
    public var throttleTimeMs: Int32
    /// v7+.
    public var errorCode: KafkaErrorCode
    /// v7+; 0 = no fetch session (P7).
    public var sessionId: Int32
    public var topics: [Topic]

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode = .none, sessionId: Int32 = 0, topics: [Topic]) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.sessionId = sessionId
        self.topics = topics
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = version >= 7 ? try reader.readErrorCode() : .none
        sessionId = version >= 7 ? try reader.readInt32("session_id") : 0
        topics = try reader.readArray("responses") { (reader) throws(KafkaProtocolError) in
            Topic(
                name: try reader.readString("topic"),
                partitions: try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in
                    let partitionIndex = try reader.readInt32("partition_index")
                    let errorCode = try reader.readErrorCode()
                    let highWatermark = try reader.readInt64("high_watermark")
                    let lastStableOffset = version >= 4 ? try reader.readInt64("last_stable_offset") : -1
                    let logStartOffset = version >= 5 ? try reader.readInt64("log_start_offset") : -1
                    let aborted: [AbortedTransaction]? =
                        version >= 4
                        ? try reader.readNullableArray("aborted_transactions") { (reader) throws(KafkaProtocolError) in
                            AbortedTransaction(producerId: try reader.readInt64("producer_id"), firstOffset: try reader.readInt64("first_offset"))
                        } : nil
                    let preferredReadReplica = version >= 11 ? try reader.readInt32("preferred_read_replica") : -1
                    return Partition(
                        partitionIndex: partitionIndex, errorCode: errorCode, highWatermark: highWatermark,
                        lastStableOffset: lastStableOffset, logStartOffset: logStartOffset, abortedTransactions: aborted,
                        preferredReadReplica: preferredReadReplica, records: try reader.readNullableBytes("records"))
                })
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
        if version >= 7 {
            writer.writeErrorCode(errorCode)
            writer.writeInt32(sessionId)
        }
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic.name)
            writer.writeArray(topic.partitions) { writer, partition in
                writer.writeInt32(partition.partitionIndex)
                writer.writeErrorCode(partition.errorCode)
                writer.writeInt64(partition.highWatermark)
                if version >= 4 { writer.writeInt64(partition.lastStableOffset) }
                if version >= 5 { writer.writeInt64(partition.logStartOffset) }
                if version >= 4 {
                    writer.writeNullableArray(partition.abortedTransactions) { writer, aborted in
                        writer.writeInt64(aborted.producerId)
                        writer.writeInt64(aborted.firstOffset)
                    }
                }
                if version >= 11 { writer.writeInt32(partition.preferredReadReplica) }
                writer.writeNullableBytes(partition.records)
            }
        }
    }
}
