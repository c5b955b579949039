import NIOCore

/// The bytes a consumer puts in JoinGroup's protocol metadata: the topics it subscribes to (AK
/// `ConsumerProtocolSubscription.json`). Opaque to the broker; the group leader reads every member's.
/// Written at v0; v1–v3 (owned partitions, generation, rack) are read and their extra fields ignored.
public struct ConsumerProtocolSubscription: Hashable, Sendable {
    public var version: Int16
    public var topics: [String]
    public var userData: ByteBuffer?

    public init(version: Int16 = 0, topics: [String], userData: ByteBuffer? = nil) {
        self.version = version
        self.topics = topics
        self.userData = userData
    }

    public func encoded() -> ByteBuffer {
        var writer = KafkaWriter(capacity: 32)
        writer.writeInt16(0)
        writer.writeArray(topics) { $0.writeString($1) }
        writer.writeNullableBytes(userData)
        return writer.buffer
    }

    public static func decode(_ bytes: ByteBuffer) throws(KafkaProtocolError) -> ConsumerProtocolSubscription {
        var reader = KafkaReader(bytes)
        let version = try reader.readInt16("subscription version")
        guard version >= 0 else { throw .invalidLength(field: "subscription version", length: Int64(version)) }
        let topics = try reader.readArray("subscription topics") { (reader) throws(KafkaProtocolError) in try reader.readString("topic") }
        let userData = reader.isAtEnd ? nil : try reader.readNullableBytes("user_data")
        return ConsumerProtocolSubscription(version: version, topics: topics, userData: userData)
    }
}

/// The bytes the group leader sends each member in SyncGroup: its partitions (AK
/// `ConsumerProtocolAssignment.json`). Written at v0; later versions' extra fields are ignored.
public struct ConsumerProtocolAssignment: Hashable, Sendable {
    public var version: Int16
    public var partitions: [KafkaTopicPartition]
    public var userData: ByteBuffer?

    public init(version: Int16 = 0, partitions: [KafkaTopicPartition], userData: ByteBuffer? = nil) {
        self.version = version
        self.partitions = partitions
        self.userData = userData
    }

    public func encoded() -> ByteBuffer {
        var writer = KafkaWriter(capacity: 64)
        writer.writeInt16(0)
        let byTopic = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }
        writer.writeArray(byTopic) { writer, entry in
            writer.writeString(entry.key)
            writer.writeArray(entry.value.map(\.partition).sorted()) { $0.writeInt32($1) }
        }
        writer.writeNullableBytes(userData)
        return writer.buffer
    }

    /// Empty bytes are an empty assignment (what a broker hands a member the leader gave nothing).
    public static func decode(_ bytes: ByteBuffer) throws(KafkaProtocolError) -> ConsumerProtocolAssignment {
        guard bytes.readableBytes > 0 else { return ConsumerProtocolAssignment(partitions: []) }
        var reader = KafkaReader(bytes)
        let version = try reader.readInt16("assignment version")
        guard version >= 0 else { throw .invalidLength(field: "assignment version", length: Int64(version)) }
        let topics = try reader.readArray("assigned partitions") { (reader) throws(KafkaProtocolError) in
            let topic = try reader.readString("topic")
            let partitions = try reader.readArray("partitions") { (reader) throws(KafkaProtocolError) in try reader.readInt32("partition") }
            return partitions.map { KafkaTopicPartition(topic: topic, partition: $0) }
        }
        let userData = reader.isAtEnd ? nil : try reader.readNullableBytes("user_data")
        return ConsumerProtocolAssignment(version: version, partitions: topics.flatMap { $0 }.sorted(), userData: userData)
    }
}

/// Kafka's range assignor (AK `RangeAssignor`): per topic, the members subscribed to it, sorted by member
/// id, each take a consecutive run of partitions; the first `partitions % members` take one extra.
public enum RangeAssignor {
    public static let protocolName = "range"

    /// - Parameters:
    ///   - subscriptions: member id → the topics it subscribes to.
    ///   - partitionCounts: topic → its number of partitions (topics missing here get nothing assigned).
    /// - Returns: member id → its partitions, sorted; every member appears, possibly with none.
    public static func assign(subscriptions: [String: [String]], partitionCounts: [String: Int]) -> [String: [KafkaTopicPartition]] {
        var result: [String: [KafkaTopicPartition]] = [:]
        for member in subscriptions.keys { result[member] = [] }
        let topics = Set(subscriptions.values.flatMap { $0 }).sorted()
        for topic in topics {
            guard let count = partitionCounts[topic], count > 0 else { continue }
            let members = subscriptions.filter { $0.value.contains(topic) }.keys.sorted()
            guard !members.isEmpty else { continue }
            let each = count / members.count
            let extra = count % members.count
            var next = 0
            for (index, member) in members.enumerated() {
                let take = each + (index < extra ? 1 : 0)
                for partition in next..<(next + take) {
                    result[member, default: []].append(KafkaTopicPartition(topic: topic, partition: Int32(partition)))
                }
                next += take
            }
        }
        return result.mapValues { $0.sorted() }
    }
}
