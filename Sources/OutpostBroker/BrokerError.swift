import OutpostLog
import OutpostOperations

/// Why the broker could not start or keep running. Per-request problems are Kafka error codes, not these.
public enum BrokerError: Error, Sendable, CustomStringConvertible {
    case storage(partition: TopicPartition, LogError)
    /// A broker-level file (producer ids, group offsets) could not be read or written.
    case file(path: String, operation: String, errno: Int32)
    case corruptFile(path: String, reason: String)
    case configuration(String)

    public var description: String {
        switch self {
        case .storage(let partition, let error): "partition \(partition): \(error)"
        case .file(let path, let operation, let errno): "\(operation) \(path): \(DurableFile.message(errno)) (errno \(errno))"
        case .corruptFile(let path, let reason): "\(path) is damaged: \(reason)"
        case .configuration(let reason): "configuration: \(reason)"
        }
    }
}
