/// What the client knows about the cluster: brokers by node id, and per topic its partitions' leaders.
/// A pure value updated from Metadata responses; the client refreshes it when a request says leadership
/// moved (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION) or a connection was lost.
public struct ClusterMetadata: Hashable, Sendable {
    public struct TopicInfo: Hashable, Sendable {
        /// The topic-level error from the last Metadata answer (NONE when the topic exists).
        public var errorCode: KafkaErrorCode
        /// Partition index → leader node id (−1: no leader right now).
        public var leaders: [Int32: Int32]

        public var partitionCount: Int { leaders.count }
        /// 0…n−1, sorted.
        public var partitions: [Int32] { leaders.keys.sorted() }
    }

    /// Where to send a request for a partition.
    public enum Lookup: Hashable, Sendable {
        case leader(KafkaBrokerNode)
        /// Metadata has not been asked about this topic yet.
        case unknownTopic
        /// The broker said the topic does not exist, or the partition is beyond its partition count.
        case noSuchPartition
        /// The partition exists but has no leader (or its leader is not in the broker list).
        case noLeader
    }

    public private(set) var brokers: [Int32: KafkaBrokerNode] = [:]
    public private(set) var topics: [String: TopicInfo] = [:]
    public private(set) var clusterId: String?
    public private(set) var controllerId: Int32 = -1

    /// REPLICA_NOT_AVAILABLE (9): a follower is down; the partition still has its leader.
    static let replicaNotAvailable = KafkaErrorCode(9)

    public init() {}

    /// Applies a Metadata answer. Brokers are replaced (the answer lists all of them); topics in the answer
    /// replace what was known of them, others are kept.
    public mutating func apply(_ response: MetadataResponse) {
        var brokers: [Int32: KafkaBrokerNode] = [:]
        for broker in response.brokers where (1...65_535).contains(broker.port) {
            brokers[broker.nodeId] = KafkaBrokerNode(nodeId: broker.nodeId, address: KafkaBrokerAddress(host: broker.host, port: Int(broker.port)))
        }
        self.brokers = brokers
        clusterId = response.clusterId
        controllerId = response.controllerId
        for topic in response.topics {
            var leaders: [Int32: Int32] = [:]
            if topic.errorCode == .none {
                for partition in topic.partitions {
                    leaders[partition.partitionIndex] = partition.errorCode == .none || partition.errorCode == Self.replicaNotAvailable ? partition.leaderId : -1
                }
            }
            topics[topic.name] = TopicInfo(errorCode: topic.errorCode, leaders: leaders)
        }
    }

    public func lookup(_ partition: KafkaTopicPartition) -> Lookup {
        guard let topic = topics[partition.topic] else { return .unknownTopic }
        if topic.errorCode == .unknownTopicOrPartition || topic.errorCode == .invalidTopicException { return .noSuchPartition }
        if topic.errorCode != .none { return .noLeader }
        guard let leader = topic.leaders[partition.partition] else { return .noSuchPartition }
        guard leader >= 0, let node = brokers[leader] else { return .noLeader }
        return .leader(node)
    }

    /// Forgets a topic's leaders, so the next lookup asks the cluster again.
    public mutating func invalidate(topic: String) { topics[topic] = nil }

    /// The topics whose metadata is held (for a refresh that keeps them all current).
    public var knownTopics: [String] { topics.keys.sorted() }
}
