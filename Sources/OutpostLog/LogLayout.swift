import OutpostCore

/// Where things live under a data directory (DESIGN.md, "On disk"):
/// `<data-dir>/topics/<topic>-<partition>/` holds a partition's segments.
public enum LogLayout {
    public static func topicsDirectory(_ dataDirectory: String) -> String { dataDirectory + "/topics" }

    public static func partitionDirectory(_ dataDirectory: String, topic: String, partition: Int) -> String {
        topicsDirectory(dataDirectory) + "/\(topic)-\(partition)"
    }

    /// Splits a partition directory name `<topic>-<partition>` (topics may contain '-').
    public static func parsePartitionDirectoryName(_ name: String) -> (topic: String, partition: Int)? {
        guard let dash = name.lastIndex(of: "-") else { return nil }
        let topic = String(name[..<dash])
        guard !topic.isEmpty, let partition = Int(name[name.index(after: dash)...]), partition >= 0 else { return nil }
        return (topic, partition)
    }

    /// Kafka's topic-name rules: 1–249 characters of [a-zA-Z0-9._-].
    public static func isValidTopicName(_ name: String) -> Bool {
        guard (1...249).contains(name.utf8.count), name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    /// Partition directories present under a data directory, sorted by topic then partition.
    public static func partitions(in dataDirectory: String) -> [(topic: String, partition: Int, directory: String)] {
        let topics = topicsDirectory(dataDirectory)
        guard let names = try? Directory.entries(topics) else { return [] }
        return names.compactMap { name in
            guard Directory.isDirectory(topics + "/" + name), let parsed = parsePartitionDirectoryName(name) else { return nil }
            return (parsed.topic, parsed.partition, topics + "/" + name)
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }
}

/// A topic's partition logs, opened together.
public final class TopicLog: Sendable {
    public let topic: String
    public let partitions: [PartitionLog]

    public init(dataDirectory: String, topic: String, partitionCount: Int, configuration: LogConfiguration) throws(LogError) {
        guard LogLayout.isValidTopicName(topic) else { throw .invalidConfiguration("invalid topic name '\(topic)'") }
        guard partitionCount >= 1 else { throw .invalidConfiguration("a topic needs at least one partition") }
        self.topic = topic
        var opened: [PartitionLog] = []
        for partition in 0..<partitionCount {
            opened.append(try PartitionLog.open(
                directory: LogLayout.partitionDirectory(dataDirectory, topic: topic, partition: partition),
                configuration: configuration))
        }
        partitions = opened
    }

    public func close() throws(LogError) {
        var firstError: LogError?
        for partition in partitions {
            do { try partition.close() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
