import OutpostCore

/// Everything that can go wrong with a log, as operating errors the caller handles.
public enum LogError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed. `errno` is the raw error number.
    case io(operation: String, path: String, errno: Int32)
    /// The disk is full (ENOSPC/EDQUOT). The append that hit it stored nothing; later appends may succeed.
    case diskFull(path: String)
    /// The bytes handed to append are not valid RecordBatch v2 batches.
    case invalidBatch(RecordBatchError)
    case batchTooLarge(size: Int, limit: Int)
    case offsetOutOfRange(requested: Offset, logStart: Offset, logEnd: Offset)
    /// Stored bytes fail validation where they were expected to be intact (a sealed segment).
    case corruptSegment(path: String, position: Int, reason: String)
    /// An fsync failed. The page cache can no longer be trusted (Linux may have dropped the dirty pages),
    /// so the log refuses further work until it is reopened and recovered.
    case failed(reason: String)
    case closed
    /// Too many appends are waiting for durability; the caller should back off.
    case overloaded(waiting: Int)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .io(let operation, let path, let errno): "\(operation) \(path): \(SystemError.message(errno)) (errno \(errno))"
        case .diskFull(let path): "disk full writing \(path)"
        case .invalidBatch(let error): "invalid batch: \(error)"
        case .batchTooLarge(let size, let limit): "batch of \(size) bytes exceeds the limit of \(limit)"
        case .offsetOutOfRange(let requested, let start, let end): "offset \(requested) outside the log [\(start), \(end))"
        case .corruptSegment(let path, let position, let reason): "corrupt segment \(path) at byte \(position): \(reason)"
        case .failed(let reason): "log failed: \(reason); reopen it to recover"
        case .closed: "log is closed"
        case .overloaded(let waiting): "\(waiting) appends already waiting for fsync"
        case .invalidConfiguration(let reason): "invalid log configuration: \(reason)"
        }
    }
}
