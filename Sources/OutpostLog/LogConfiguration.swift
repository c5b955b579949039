import OutpostCore

/// When appended bytes are fsynced, and so when an append counts as committed.
public enum FsyncPolicy: Hashable, Sendable, CustomStringConvertible {
    /// Group commit: an append completes once its bytes are fsynced. Appends that arrive while an fsync is
    /// in flight share the next one, so concurrent appenders cost one fsync per round, not one each. Each
    /// append starts its own writeback, so the disk works while the flusher gathers its group.
    case always
    /// fsync at most every `milliseconds`; an append completes when written, and `awaitDurable` waits for
    /// the next periodic fsync. A crash loses at most about one interval.
    case interval(milliseconds: Int)
    /// Only on segment roll, `flush()` and close; durability is left to the kernel's writeback.
    case never

    public var description: String {
        switch self {
        case .always: "always"
        case .interval(let milliseconds): "interval(\(milliseconds)ms)"
        case .never: "never"
        }
    }

    /// Parses `always`, `never`, `interval(5ms)`, `interval(5)` or `5ms`.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: " ")
        switch trimmed {
        case "always": self = .always
        case "never": self = .never
        default:
            var inner = Substring(trimmed)
            if inner.hasPrefix("interval(") && inner.hasSuffix(")") { inner = inner.dropFirst(9).dropLast() }
            if inner.hasSuffix("ms") { inner = inner.dropLast(2) }
            guard let milliseconds = Int(inner), milliseconds > 0 else { return nil }
            self = .interval(milliseconds: milliseconds)
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = Substring(self)
        while text.first == set { text = text.dropFirst() }
        while text.last == set { text = text.dropLast() }
        return String(text)
    }
}

/// Bounds and policies of one partition log. Every default says why it is what it is.
public struct LogConfiguration: Hashable, Sendable {
    /// Roll to a new segment beyond this size. 128 MiB keeps the full re-scan of the active segment on
    /// open well under a second, and retention (whole segments) reasonably fine-grained.
    public var segmentBytesMax: Int = 128 << 20
    /// Roll a segment this old even if not full, so retention by age can delete it. One day.
    public var segmentAgeMaxMilliseconds: Int64? = 86_400_000
    /// Delete oldest segments while the log is larger than this. nil: no size bound.
    public var retentionBytes: Int64? = nil
    /// Delete segments whose last append is older than this. Seven days, Kafka's default.
    public var retentionMilliseconds: Int64? = 7 * 86_400_000
    public var fsync: FsyncPolicy = .always
    /// Keep the file of one segment retention deletes and reuse it for the next roll, so appends overwrite
    /// blocks the file already has instead of growing a new one. On ext4 an fdatasync after an append must
    /// commit the journal (the file's size and block map changed); after an overwrite it only flushes data:
    /// measured 2.5–5x the bytes per fdatasync (docs/BENCHMARKS.md, `disk_fsync_profile.py`). What
    /// PostgreSQL does with WAL segments and RocksDB with `recycle_log_file_num`. Costs at most one spare
    /// segment file of disk beyond retention (`forBudget` reserves it); a segment is trimmed to its
    /// batches when it is sealed or the log is closed, so Kafka's tools see plain segments.
    public var recycleSegments = true
    /// One offset-index entry per this many bytes of log: 4 KiB, Kafka's default, bounds a lookup's scan.
    public var indexIntervalBytes: Int = 4096
    /// Largest single batch accepted. 8 MiB is above Kafka's default message.max.bytes (1 MiB) and well
    /// above the gateway's batches, and keeps a single read's memory small.
    public var batchBytesMax: Int = 8 << 20
    /// Appends that may wait for durability at once; beyond it appends fail with `.overloaded` so callers
    /// push back. Generous: a gateway pipeline bounds its in-flight batches well below this.
    public var durabilityWaitersMax: Int = 65_536
    /// Under `always` and `interval`, appends wait once this many written bytes are not yet fsynced, so
    /// a disk slower than the inflow pushes back instead of letting the backlog (and, under `interval`, the
    /// crash-loss window) grow. 32 MiB is a fraction of a second of a fast disk's bandwidth.
    public var unsynchronizedBytesMax: Int = 32 << 20
    /// Testing only: extra latency added to every fsync, to rehearse a slow disk (back-pressure tests).
    public var simulatedFsyncDelayMilliseconds: Int? = nil

    public init() {}

    /// A configuration for a log that must fit in `budgetBytes` of disk: segments small enough that
    /// retention by size can keep within it (at least 8 segments), but not smaller than 64 KiB.
    ///
    /// Retention only deletes whole sealed segments, and the active segment keeps growing until it rolls;
    /// so retention is set to the budget minus one segment, minus one more for the spare file segment
    /// recycling keeps, and minus room for the index files (well under 1/64 of the data), and the log's
    /// total on disk stays within the budget.
    public static func forBudget(bytes budgetBytes: Int64) -> LogConfiguration {
        var configuration = LogConfiguration()
        let segment = min(max(budgetBytes / 8, 4096), 128 << 20)
        configuration.segmentBytesMax = Int(segment)
        configuration.retentionBytes = max(segment, budgetBytes - 2 * segment - budgetBytes / 64)
        return configuration
    }

    /// The longest `interval` accepted: a day.
    public static let fsyncIntervalMaxMilliseconds = 86_400_000

    public func validated() throws(LogError) -> LogConfiguration {
        guard segmentBytesMax >= 4096 else { throw .invalidConfiguration("segment size must be at least 4096 bytes") }
        // Index entries hold 32-bit file positions (Kafka's format), as does Kafka's segment.bytes.
        guard segmentBytesMax <= Int(Int32.max) else { throw .invalidConfiguration("segment size must be at most 2 GiB") }
        guard indexIntervalBytes >= 1 else { throw .invalidConfiguration("index interval must be positive") }
        guard batchBytesMax >= RecordBatchLayout.headerSize else { throw .invalidConfiguration("batch limit below one batch header") }
        if let retentionBytes, retentionBytes < Int64(segmentBytesMax) {
            throw .invalidConfiguration("retention of \(retentionBytes) bytes is smaller than one segment (\(segmentBytesMax))")
        }
        if case .interval(let milliseconds) = fsync, milliseconds <= 0 {
            throw .invalidConfiguration("fsync interval must be positive")
        }
        // Longer makes no sense (that is `never`), and the flusher's deadline arithmetic must not overflow.
        if case .interval(let milliseconds) = fsync, milliseconds > Self.fsyncIntervalMaxMilliseconds {
            throw .invalidConfiguration("fsync interval must be at most 24h (use fsync: never)")
        }
        return self
    }
}
