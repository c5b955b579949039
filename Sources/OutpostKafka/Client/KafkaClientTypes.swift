// The Kafka client: one `KafkaClient` per cluster (connections, metadata, version negotiation), and on
// top of it `KafkaProducer` (idempotent, pipelined, pre-built batches), `KafkaConsumer` (assigned
// partitions, long-poll fetch, whole-topic reads) and `KafkaGroupConsumer` (classic group membership).
// It is written once and used by the gateway's replicator, the monitor and `outpost verify`.
//
// Threading: a client and everything built on it live on one NIO event loop. Every actor here uses that
// loop as its executor, so network callbacks run on the same serial executor as the actors' methods and
// act in arrival order (an idempotent producer depends on that). CPU-heavy work — decompressing fetched
// batches — runs in the caller's task, not on the loop.
//
// Decisions are pure state machines (`ProducePipeline`, `GroupMembership`, `ReconnectBackoff`,
// `ClusterMetadata`, `ApiVersionTable`); the actors only carry out what they return.
import OutpostCore

/// One partition of one topic.
public struct KafkaTopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)-\(partition)" }
}

/// Where a broker listens: what the bootstrap list holds and what Metadata and FindCoordinator return.
public struct KafkaBrokerAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// "HOST:PORT" or "[IPv6]:PORT"; nil when the text is not that.
    public init?(parsing text: some StringProtocol) {
        let text = Self.trimmed(text)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    /// A comma-separated list ("a:9092,b:9093"); nil when any element is not HOST:PORT or the list is empty.
    public static func list(parsing text: some StringProtocol) -> [KafkaBrokerAddress]? {
        let parts = text.split(separator: ",").map { Self.trimmed($0) }.filter { !$0.isEmpty }
        let addresses = parts.compactMap { KafkaBrokerAddress(parsing: $0) }
        guard !parts.isEmpty, addresses.count == parts.count else { return nil }
        return addresses
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.host, lhs.port) < (rhs.host, rhs.port) }

    private static func trimmed(_ text: some StringProtocol) -> String {
        String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A broker as Metadata describes it.
public struct KafkaBrokerNode: Hashable, Sendable, CustomStringConvertible {
    public var nodeId: Int32
    public var address: KafkaBrokerAddress

    public init(nodeId: Int32, address: KafkaBrokerAddress) {
        self.nodeId = nodeId
        self.address = address
    }

    public var description: String { "\(nodeId)@\(address)" }
}

/// Which offset ListOffsets should find.
public enum KafkaOffsetSpec: Hashable, Sendable {
    /// The log start offset.
    case earliest
    /// The log end offset (the high watermark): the offset the next record will get.
    case latest
    /// The first offset whose record timestamp is at or after this many milliseconds since the epoch.
    case timestamp(milliseconds: Int64)

    var wireTimestamp: Int64 {
        switch self {
        case .earliest: ListOffsetsRequest.earliestTimestamp
        case .latest: ListOffsetsRequest.latestTimestamp
        case .timestamp(let milliseconds): milliseconds
        }
    }
}

/// A record read from a partition: the record as the batch holds it (`offset` is absolute) and where it
/// came from.
public struct KafkaConsumedRecord: Hashable, Sendable {
    public var partition: KafkaTopicPartition
    public var record: Record

    public init(partition: KafkaTopicPartition, record: Record) {
        self.partition = partition
        self.record = record
    }

    public var offset: Offset { Offset(record.offset) }
}

/// What one fetch returned for one partition, decoded.
public struct KafkaFetchedRecords: Hashable, Sendable {
    public var partition: KafkaTopicPartition
    /// In offset order, none before the position the fetch started at.
    public var records: [Record]
    /// Where the next fetch of this partition starts.
    public var nextOffset: Offset
    /// The partition's high watermark when the broker answered (for lag).
    public var highWatermark: Offset

    public init(partition: KafkaTopicPartition, records: [Record], nextOffset: Offset, highWatermark: Offset) {
        self.partition = partition
        self.records = records
        self.nextOffset = nextOffset
        self.highWatermark = highWatermark
    }
}
