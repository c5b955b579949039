import Foundation
import Logging
import OutpostCore

/// Where an append landed.
public struct AppendResult: Hashable, Sendable {
    public var firstOffset: Offset
    public var lastOffset: Offset
    public var batchCount: Int
    public var bytes: Int
    public var maxTimestamp: Int64
    public var nextOffset: Offset { lastOffset + 1 }
}

/// Whole batches read from the log, back to back, ready to hand to a socket or a decoder.
public struct LogReadResult: Sendable {
    public var bytes: [UInt8]
    public var batchCount: Int
    /// Offset after the last returned batch: where the next read continues.
    public var nextOffset: Offset
    public var logStartOffset: Offset
    public var logEndOffset: Offset
}

/// A segment whose stored bytes fail validation below the recovery point, where they were known to be
/// fsynced: damage, not a torn write. Reported, kept on disk, never deleted by recovery.
public struct CorruptSegment: Hashable, Sendable {
    public var path: String
    public var position: Int
    public var reason: String
}

/// What opening a log found and did.
public struct RecoveryReport: Hashable, Sendable {
    public var segmentCount = 0
    /// Batches whose CRC-32C was checked during recovery.
    public var batchesValidated = 0
    /// Bytes cut from torn or corrupt tails (including segments removed after a cut).
    public var truncatedBytes = 0
    /// Batches (or batch-shaped fragments) cut.
    public var truncatedBatches = 0
    /// Why the first cut happened, when one did.
    public var truncationReason: String?
    /// Segments removed because they followed a truncation; they held only never-acknowledged data.
    public var deletedSegments: [Offset] = []
    public var corruptSealedSegments: [CorruptSegment] = []
    public var rebuiltIndexes = 0
    public var logStartOffset: Offset = 0
    public var logEndOffset: Offset = 0
    public var recoveryPoint: Offset = 0
    public var durationSeconds: Double = 0

    public init() {}
}

public struct RetentionOutcome: Hashable, Sendable {
    public var deletedSegments: [Offset] = []
    public var deletedBytes = 0
    /// Deleted segments that recovery had found damaged (see `RecoveryReport.corruptSealedSegments`): what
    /// lay past their damage was never readable and is gone with them. Also logged as a warning.
    public var deletedCorruptSegments: [CorruptSegment] = []
    public var logStartOffset: Offset = 0
}

/// Counters for metrics; a snapshot, cheap to take.
public struct LogStatistics: Hashable, Sendable {
    public var appendedBatches = 0
    public var appendedBytes = 0
    /// Vectored writes of queued appends (`append(_:partitionLeaderEpoch:whenDurable:)` under `always`), and
    /// the appends they carried: their ratio is the write side of group commit.
    public var queuedGroupWrites = 0
    public var queuedAppendsWritten = 0
    public var fsyncCount = 0
    public var fsyncSecondsTotal: Double = 0
    public var lastFsyncSeconds: Double = 0
    public var segmentCount = 0
    /// Bytes of batches in the log's segments.
    public var sizeBytes = 0
    /// Bytes the log's files hold: `sizeBytes`, plus a recycled segment's old contents past its end or the
    /// space reserved past it for queued appends (in a sealed segment until its deferred trim is done), and
    /// the spare segment file kept for the next roll (index files not counted). Tracked, not asked of the
    /// file system: a disk budget reads it before every append.
    public var diskBytes = 0
    /// Deferred trims of a sealed segment's file (a recycled file's old contents, or space reserved past its
    /// end) that failed. Nothing of the log lies there, so the log goes on and tries again (at most once a
    /// second, when the flusher fsyncs anyway, and at close); if it stops first, the next open cuts them.
    public var trimFailures = 0
    public var logStartOffset: Offset = 0
    public var logEndOffset: Offset = 0
    public var durableEndOffset: Offset = 0
}

/// One partition's log: a directory of segments, the last one active.
///
/// Thread-safe. Appends write under a lock (a page-cache write); fsyncs run on the log's flusher thread
/// with the lock released, so appends that arrive during an fsync are written meanwhile and share the next
/// one (group commit). Under `fsync: always`, appends that wait for durability
/// (`append(_:partitionLeaderEpoch:whenDurable:)`) are queued instead, and the flusher writes the whole
/// group with one vectored write before its fsync. `whenDurable`/`awaitDurable` complete once an offset is
/// fsynced. Reads hold the lock only to find their segment, then read without it; a segment deleted by
/// retention mid-read stays readable through the reader's reference to its open file.
public final class PartitionLog: @unchecked Sendable {
    public let directory: String
    public let configuration: LogConfiguration
    public let recoveryReport: RecoveryReport
    let clock: @Sendable () -> Int64
    let logger: Logger

    /// Guards every `var` below and is the flusher's condition variable.
    private let lock = MonotonicCondition()
    private var segments: [Segment]
    private var logStart: Offset
    private var nextOffset: Offset
    /// Offsets below this are fsynced.
    private var durableEnd: Offset
    private var recoveryPoint: Offset
    /// Durability callbacks in offset order; `append` marks an append's own (see `groupTarget`).
    private var waiters: [Waiter] = []
    private var synchronizeRequested = false
    private var failure: LogError?
    private var closed = false
    private var flusherRunning = false
    private var retentionFloorOffset: Offset?
    /// Guarded by `lock`; written to disk under `checkpointWriteLock` so writers never interleave, off the
    /// append path (`scheduleCheckpointWrite`): it only speeds recovery up, so it may trail the log.
    private var checkpoint: Checkpoint
    private let checkpointWriteLock = NSLock()
    private let checkpointQueue = DispatchQueue(label: "outpost-log-checkpoint")
    /// Unlinks the files of segments retention removed, off the append lock (see `retire`). Its own queue,
    /// not the checkpoint queue's, so that waiting for it never waits out a spare's cache drop.
    private let fileRemovalQueue = DispatchQueue(label: "outpost-log-file-removal")
    private var checkpointWriteScheduled = false
    /// Directory changes (a segment created or renamed, a spare retired) count up; the flusher fsyncs the
    /// directory before the next round's waiters are released, so a roll does no directory fsync under the
    /// append lock. A new segment's data is never acknowledged before its directory entry is durable.
    /// Kept in a box under `lock`, so that retention's removal tasks count their unlinks without holding
    /// the log: a task that held it could run deinit on the removal queue, which deinit waits for.
    private let directoryChanges = DirectoryChanges()
    private var directoryGeneration: UInt64 {
        get { directoryChanges.generation }
        set { directoryChanges.generation = newValue }
    }
    private var directorySynchronizedGeneration: UInt64 = 0
    private var statistics = LogStatistics()
    /// Waiters of queued appends a full disk voided (see `writeQueueLocked`), for the flusher to answer.
    private var voidedWaiters: [(callback: @Sendable (Result<Void, LogError>) -> Void, error: LogError)] = []
    private var lastSynchronizeUptimeNanoseconds: UInt64 = 0
    /// Retired segment files waiting to be reused by a roll (at most one; see `recycleSegments`).
    private var spares: [SpareFile]
    /// Group commit bookkeeping under `always`: appends since the flusher last started an fsync, how many
    /// the next group should hold (`groupTarget`), when the last fsync ended and how long it took.
    private var appendsSinceSynchronize = 0
    /// The appends the flusher waits for before its next fsync: those that arrived during the last round,
    /// plus one for each append the last round made durable — an appender waiting on its append comes back
    /// with the next one within moments. Counting what the last round carried instead lost an appender
    /// for good whenever one came back late: the next group started one short and left it for the one
    /// after, where the same count left another out (runs of up to ten rounds of 7 of 8 appenders).
    private var groupTarget = 0
    private var lastRoundEndUptimeNanoseconds: UInt64 = 0
    private var lastFsyncNanoseconds: UInt64 = 0
    /// The flusher is in a timed wait for the rest of a group (see `waitForWork`).
    private var flusherGathering = false
    /// The flusher is in a round: it has taken its targets and not yet recorded what became durable.
    private var roundInFlight = false
    /// Testing only: see `fsyncHookForTesting`, `earlyWriteHookForTesting`, `trimHookForTesting`,
    /// `fileSynchronizeHookForTesting`.
    private var fsyncHook: (@Sendable () -> Void)?
    private var earlyWriteHook: (@Sendable () -> Void)?
    private var trimHook: TrimHook?
    private var fileSynchronizeHook: FileSynchronizeHook?
    /// The longest the flusher gathers a group (see `waitForWork`); tests lengthen it.
    private var gatherWindowMaxNanoseconds: UInt64 = 1_000_000
    /// Appends under `always` waiting for the flusher to write them (see
    /// `append(_:partitionLeaderEpoch:whenDurable:)`), in offset order, all for the active segment (a roll
    /// writes them first). Bounded with everything unsynced by `unsynchronizedBytesMax`.
    private var writeQueue: [QueuedAppend] = []
    /// Bytes of `writeQueue`, including its head while the flusher writes it early.
    private var writeQueueBytes = 0
    /// The flusher is writing the queue's first appends with the lock released, while it gathers the rest
    /// of its group (see `writeQueueHeadEarly`): anyone else who needs the queue in the file waits for it.
    private var writeQueueHeadInFlight = false
    /// The flusher wrote early in the group it gathers now: once per round, so that a read or roll waiting
    /// for the file's end waits for one early write at most.
    private var wroteEarlyThisRound = false
    /// `fallocate` failed as unsupported once: queue no more (appends write at once).
    private var reservationUnsupported = false
    /// Set on open when a spare file waits and the active segment has batches: the first append rolls into
    /// the spare. Recovery leaves the active segment ending at its last batch, so appending there extends
    /// the file, and every fsync then also writes the new blocks' allocation and the file's size (on ext4,
    /// fsyncs took 1.7x as long); at an edge box's rates that segment could take days to fill.
    private var rollIntoSpareOnFirstAppend: Bool

    struct SpareFile {
        var path: String
        var bytes: Int
        /// The segment it was, while a reader may still hold it (nil once loaded from disk).
        var retired: Segment?
        /// Reusable once the directory fsync covering its rename is done: overwriting the file while a crash
        /// could still bring back its old name would put new bytes into what looks like an old segment.
        var directoryGeneration: UInt64
        /// Drops the file's cached pages in the background until the file is taken (see `SpareCacheDrop`).
        var cacheDrop: SpareCacheDrop?
    }


    /// Opens (creating if needed) the log in `directory` and recovers it; see `LogLoader`.
    /// - Parameter clock: wall-clock milliseconds, for roll and retention by age.
    public static func open(
        directory: String, configuration: LogConfiguration = LogConfiguration(),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        logger: Logger = Logger(label: "outpost.log")
    ) throws(LogError) -> PartitionLog {
        let configuration = try configuration.validated()
        let started = DispatchTime.now().uptimeNanoseconds
        var loaded = try LogLoader(directory: directory, configuration: configuration, now: clock(), logger: logger).load()
        loaded.report.durationSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let log = PartitionLog(directory: directory, configuration: configuration, loaded: loaded, clock: clock, logger: logger)
        log.startFlusher()
        let report = loaded.report
        if report.truncatedBytes > 0 || !report.corruptSealedSegments.isEmpty || report.rebuiltIndexes > 0 {
            logger.warning("log recovered", metadata: [
                "directory": "\(directory)", "truncated_bytes": "\(report.truncatedBytes)",
                "truncated_batches": "\(report.truncatedBatches)", "reason": "\(report.truncationReason ?? "-")",
                "deleted_segments": "\(report.deletedSegments.count)",
                "corrupt_sealed_segments": "\(report.corruptSealedSegments.map { "\($0.path)@\($0.position): \($0.reason)" })",
                "rebuilt_indexes": "\(report.rebuiltIndexes)",
            ])
        } else {
            logger.debug("log opened", metadata: ["directory": "\(directory)", "end_offset": "\(report.logEndOffset)"])
        }
        return log
    }

    private init(directory: String, configuration: LogConfiguration, loaded: LogLoader.Loaded, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.directory = directory
        self.configuration = configuration
        self.recoveryReport = loaded.report
        self.clock = clock
        self.logger = logger
        segments = loaded.segments
        logStart = loaded.segments.first?.baseOffset ?? 0
        nextOffset = loaded.segments.last?.nextOffset ?? 0
        durableEnd = nextOffset
        recoveryPoint = loaded.report.recoveryPoint
        checkpoint = loaded.checkpoint
        spares = loaded.spares.map { spare in
            // As when a segment retires, a spare's cached pages are not to be overwritten (`SpareCacheDrop`);
            // dropped here at once, as part of opening: the first append may roll into it.
            if let file = try? SegmentFile(path: spare.path, create: false) { file.adviseDontNeed(at: 0, count: spare.bytes) }
            return SpareFile(path: spare.path, bytes: spare.bytes, retired: nil, directoryGeneration: 0, cacheDrop: nil)
        }
        rollIntoSpareOnFirstAppend = configuration.recycleSegments && !spares.isEmpty && (loaded.segments.last?.size ?? 0) > 0
    }

    deinit {
        // close() is the orderly path. A log dropped without it still gets its written bytes fsynced, its
        // indexes written and retention's unlinks done; the flusher holds only a weak reference, so it ends
        // by itself.
        lock.lock()
        let closing = !closed
        var synchronized = false
        if closing {
            try? writeQueueLocked()
            closed = true
            // As in close(): a reopen of the directory may roll into a spare file at once, and this log's drop
            // would go on dropping the pages the new log's appends write there.
            for spare in spares { spare.cacheDrop?.cancel() }
            if let active = segments.last { try? active.trimToSize() }
            trimSealedSegmentsLocked()
            synchronized = failure == nil
            for segment in segments where segment.needsSynchronize {
                if (try? segment.file.synchronize()) == nil { synchronized = false }
            }
            for segment in segments { segment.writePendingIndexEntries() }
        }
        lock.unlock()
        // Queued unlinks would otherwise run after this, maybe after a reopen of the directory recovered
        // those files as its segments, and unlink them under the new log. No task on that queue holds the
        // log (see `directoryChanges`), so this never runs there.
        fileRemovalQueue.sync {}
        lock.lock()
        var answers: [(callback: @Sendable (Result<Void, LogError>) -> Void, result: Result<Void, LogError>)] = []
        if closing {
            // The unlinks, and a new segment's name: its data is not durable before its directory entry is.
            let directoryDurable = (try? Directory.synchronize(directory)) != nil
            if !directoryDurable && directoryGeneration > directorySynchronizedGeneration { synchronized = false }
            // Whoever still waits is answered, as close() would: nobody else is left to.
            let end = synchronized ? nextOffset : durableEnd
            answers = waiters.map { ($0.callback, $0.offset < end ? .success(()) : .failure(failure ?? .closed)) }
            answers += takeVoidedWaiters().map { ($0.callback, .failure($0.error)) }
            waiters.removeAll()
        }
        lock.broadcast()
        lock.unlock()
        for answer in answers { answer.callback(answer.result) }
    }

    // MARK: Offsets

    public var logStartOffset: Offset { locked { logStart } }
    public var logEndOffset: Offset { locked { nextOffset } }
    /// Offsets below this are fsynced (committed).
    public var durableEndOffset: Offset { locked { durableEnd } }
    /// Set once an fsync failed: the log refuses work until reopened.
    public var failureReason: LogError? { locked { failure } }

    /// `groupTarget`, for tests.
    var groupTargetForTesting: Int { locked { groupTarget } }

    /// No fsync is requested (`flush()`, back-pressure, a leftover request) and no round is under way, for
    /// tests: the flusher's next round then comes only from its policy's own timing.
    var flusherQuiescentForTesting: Bool { locked { !synchronizeRequested && !roundInFlight } }

    /// Testing only: called on the flusher thread when a round reaches its fsync — its group written, the
    /// lock released, nothing made durable yet — and the round waits until it returns. A test holds the
    /// round there to act while it is under way, however late the test thread gets to it. Set it before
    /// the first append; nil (the default) costs one check per round.
    var fsyncHookForTesting: (@Sendable () -> Void)? {
        get { locked { fsyncHook } }
        set { locked { fsyncHook = newValue } }
    }

    /// Testing only: called on the flusher thread when it writes queued appends early, while it gathers
    /// the rest of its group — the lock released, the write not yet made — and the write waits until it
    /// returns (see `writeQueueHeadEarly`).
    var earlyWriteHookForTesting: (@Sendable () -> Void)? {
        get { locked { earlyWriteHook } }
        set { locked { earlyWriteHook = newValue } }
    }

    typealias TrimHook = @Sendable () throws(LogError) -> Void

    /// Testing only: called right before each deferred trim's ftruncate (in a flusher round, at close, in
    /// deinit); an error it throws stands for the ftruncate's, which is then not made.
    var trimHookForTesting: TrimHook? {
        get { locked { trimHook } }
        set { locked { trimHook = newValue } }
    }

    typealias FileSynchronizeHook = @Sendable (_ path: String) throws(LogError) -> Void

    /// Testing only: called in a flusher round right before each segment file's fdatasync, with the file's
    /// path (after its deferred trim, if it has one); an error it throws stands for the fdatasync's, which
    /// is then not made. The fsyncs of close and deinit do not call it.
    var fileSynchronizeHookForTesting: FileSynchronizeHook? {
        get { locked { fileSynchronizeHook } }
        set { locked { fileSynchronizeHook = newValue } }
    }

    /// Testing only: how long the flusher may gather a group (1 ms), so that a test's group is gathered
    /// however late the flusher's thread runs.
    var gatherWindowMaxForTesting: Duration {
        get { locked { .nanoseconds(gatherWindowMaxNanoseconds) } }
        set { locked { gatherWindowMaxNanoseconds = UInt64(newValue / .nanoseconds(1)) } }
    }

    public func currentStatistics() -> LogStatistics {
        locked {
            var snapshot = statistics
            snapshot.segmentCount = segments.count
            snapshot.sizeBytes = segments.reduce(0) { $0 + $1.size }
            snapshot.diskBytes = segments.reduce(0) { $0 + $1.fileBytes } + spares.reduce(0) { $0 + $1.bytes }
            snapshot.logStartOffset = logStart
            snapshot.logEndOffset = nextOffset
            snapshot.durableEndOffset = durableEnd
            return snapshot
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: Append

    /// Appends one or more back-to-back batches, assigning offsets by rewriting each batch's baseOffset
    /// (and partitionLeaderEpoch when given) in place: outside the CRC, so nothing is re-compressed.
    ///
    /// Returns once the bytes are written (page cache). Under `fsync: always` they are committed when
    /// `whenDurable(result.lastOffset)` fires; the flusher has already been woken. Appenders that wait for
    /// durability should use `append(_:partitionLeaderEpoch:whenDurable:)`, which is cheaper under `always`.
    public func append(_ batches: [UInt8], partitionLeaderEpoch: Int32? = nil) throws(LogError) -> AppendResult {
        try append(batches, partitionLeaderEpoch: partitionLeaderEpoch, callback: nil)
    }

    /// Appends like `append(_:partitionLeaderEpoch:)` and calls `whenDurable` with the same result once the
    /// batches are fsynced, or with the error that means they never will be (their offsets are then void and
    /// may be assigned again). If this throws, `whenDurable` is never called. `whenDurable` runs as the
    /// callback of `whenDurable(through:_:)` does: on the flusher thread, short, never calling `close()` or `flush()`.
    ///
    /// Under `fsync: always` the batches are not written here: they join a queue that the flusher writes
    /// right before its next fsync, the whole group in one vectored write (group commit on the write as well
    /// as on the fsync). Appenders then touch neither the file nor its lock in the kernel; a group waits for
    /// no appender's page-cache write.
    /// Disk space for the queue is reserved here, so a full disk still fails this call. The queued batches
    /// are readable at once: a read that reaches them writes the queue first. Under the other policies the
    /// batches are written here, as by `append(_:partitionLeaderEpoch:)`.
    public func append(
        _ batches: [UInt8], partitionLeaderEpoch: Int32? = nil,
        whenDurable: @escaping @Sendable (Result<AppendResult, LogError>) -> Void
    ) throws(LogError) -> AppendResult {
        try append(batches, partitionLeaderEpoch: partitionLeaderEpoch, callback: whenDurable)
    }

    private func append(
        _ batches: [UInt8], partitionLeaderEpoch: Int32?, callback: (@Sendable (Result<AppendResult, LogError>) -> Void)?
    ) throws(LogError) -> AppendResult {
        let (bytes, headers) = try prepare(batches)
        let (result, writeback) = try appendLocked(bytes, headers: headers, partitionLeaderEpoch: partitionLeaderEpoch, whenDurable: callback)
        // A direct write under `always`: the flusher fsyncs within moments, so have the disk start on these
        // bytes now, while it still gathers its group or finishes the previous fsync.
        if let writeback { writeback.file.startWriteback(at: writeback.position, count: bytes.count) }
        return result
    }

    /// Checks the batches and copies them into memory the log owns, where their offsets are written. Done
    /// before taking the lock: CRC checks and copies of concurrent appenders run in parallel.
    private func prepare(_ batches: [UInt8]) throws(LogError) -> (AppendBuffer, [RecordBatchHeader]) {
        var headers: [RecordBatchHeader] = []
        var iterator = RecordBatchIterator(batches)
        while let (header, range) = iterator.next() {
            guard range.count <= configuration.batchBytesMax else {
                throw .batchTooLarge(size: range.count, limit: configuration.batchBytesMax)
            }
            // A new batch numbers its records densely (gaps are what compaction leaves in old batches): a
            // lastOffsetDelta past the record count would take up to 2^31 offsets per batch, and a segment
            // numbers at most 2^32 relative to its base.
            guard header.recordCount >= 1, header.lastOffsetDelta == header.recordCount - 1 else {
                throw .invalidBatch(.invalidRecordCount(recordCount: header.recordCount, lastOffsetDelta: header.lastOffsetDelta))
            }
            headers.append(header)
        }
        if let reason = iterator.stopReason { throw .invalidBatch(reason) }
        guard !headers.isEmpty else { throw .invalidBatch(.truncated(needed: RecordBatchLayout.headerSize, available: 0)) }
        return (AppendBuffer(copying: batches), headers)
    }

    /// The part of an append under the lock: offsets, then the write or a place in the write queue, then
    /// accounting. Returns the file and position to hint writeback for after a direct write under `always`.
    private func appendLocked(
        _ bytes: AppendBuffer, headers: [RecordBatchHeader], partitionLeaderEpoch: Int32?,
        whenDurable callback: (@Sendable (Result<AppendResult, LogError>) -> Void)?
    ) throws(LogError) -> (AppendResult, writeback: (file: SegmentFile, position: Int)?) {
        lock.lock()
        defer { lock.unlock() }
        var now: Int64
        var active: Segment
        var queueing: Bool
        // Decided anew after every wait: the log may have failed, closed, filled or rolled meanwhile.
        decide: while true {
            if closed { throw .closed }
            if let failure { throw failure }
            guard waiters.count < configuration.durabilityWaitersMax else { throw .overloaded(waiting: waiters.count) }
            // The log voided appends for a full disk and has not told their appenders yet: refuse this one
            // the same way until it has, so that it cannot take their offsets ahead of their retry.
            if !voidedWaiters.isEmpty { throw .diskFull(path: directory) }
            // Bound what sits written (or queued) but not fsynced (what a crash can lose under `interval`,
            // and the backlog of acknowledgements under `always`): past it, appends wait for the flusher —
            // back-pressure — instead of outrunning the disk.
            if configuration.fsync != .never && unsynchronizedBytes > configuration.unsynchronizedBytesMax {
                synchronizeRequested = true
                lock.broadcast()
                lock.wait()
                continue decide
            }
            now = clock()
            active = segments[segments.count - 1]
            let rolls = shouldRoll(active, end: active.size + writeQueueBytes, adding: bytes.count, now: now)
            let mayQueue = callback != nil && configuration.fsync == .always && !reservationUnsupported
            // A roll or a direct write needs the file's end, which an early group write in flight still
            // moves (see `writeQueueHeadEarly`): wait it out, then decide again. A queueing append does not
            // wait: queueing during that write is its point.
            if writeQueueHeadInFlight && (rolls || !mayQueue) {
                lock.wait()
                continue decide
            }
            if rolls {
                try writeQueueLocked()
                active = try roll(now: now)
            }
            queueing = mayQueue ? try reserveSpace(in: active, through: active.size + writeQueueBytes + bytes.count) : false
            // The file system just turned out unable to reserve: this append writes at once after all.
            if !queueing && writeQueueHeadInFlight {
                lock.wait()
                continue decide
            }
            break
        }
        // A direct write lands after everything queued before it (no early write is in flight here).
        if !queueing { try writeQueueLocked() }

        // Assign offsets.
        let firstOffset = nextOffset
        var offset = nextOffset
        var maxTimestamp: Int64 = -1
        var position = 0
        for header in headers {
            RecordBatchValidation.setBaseOffset(offset.rawValue, in: bytes.buffer, at: position)
            if let partitionLeaderEpoch {
                RecordBatchValidation.setPartitionLeaderEpoch(partitionLeaderEpoch, in: bytes.buffer, at: position)
            }
            offset = offset + Int64(header.lastOffsetDelta) + 1
            position += header.totalSize
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
        }
        let append = QueuedAppend(bytes: bytes, headers: headers, firstOffset: firstOffset, maxTimestamp: maxTimestamp, appendedAtMilliseconds: now)
        var writeback: (file: SegmentFile, position: Int)?
        if queueing {
            writeQueue.append(append)
            writeQueueBytes += bytes.count
        } else {
            let writePosition = active.size
            let padding = active.padding(after: writePosition + bytes.count)
            do {
                try active.file.writeAll([UnsafeRawBufferPointer(bytes.buffer)], at: writePosition, zeroPadding: padding)
                if padding > 0 { active.paddedThrough = writePosition + bytes.count + padding }
            } catch {
                // writeAll cut the file back to `writePosition`: a recycled file's old contents (or blocks
                // reserved past it) went with it.
                active.oldContentsEnd = min(active.oldContentsEnd, writePosition)
                active.reservedEnd = min(active.reservedEnd, writePosition)
                throw error
            }
            recordWritten(append, at: writePosition, in: active)
            if configuration.fsync == .always { writeback = (active.file, writePosition) }
        }
        nextOffset = offset
        let result = AppendResult(
            firstOffset: firstOffset, lastOffset: offset + -1, batchCount: headers.count, bytes: bytes.count,
            maxTimestamp: maxTimestamp)
        if let callback { waiters.append(Waiter(offset: result.lastOffset, callback: { callback($0.map { result }) }, ofAppend: true)) }
        appendsSinceSynchronize += 1
        statistics.appendedBatches += headers.count
        statistics.appendedBytes += bytes.count
        // Wake the flusher: under `always` to fsync now, under `interval` to start its timer (it sleeps
        // untimed while the log is clean). While it gathers a group it wakes itself once the group is
        // complete or its deadline passes: waking it on every append costs the appenders CPU.
        if !flusherGathering || appendsSinceSynchronize >= groupTarget || (queueing && !wroteEarlyThisRound && writeQueue.count == earlyWriteAppends) {
            lock.broadcast()
        }
        return (result, writeback)
    }

    /// Accounts for an append's bytes written at `writePosition` of `segment` (lock held): indexes, size,
    /// offsets, times.
    private func recordWritten(_ append: QueuedAppend, at writePosition: Int, in segment: Segment) {
        var position = 0
        var batchOffset = append.firstOffset
        for header in append.headers {
            segment.indexes.note(
                batchAt: writePosition + position, relativeOffset: segment.relativeOffset(batchOffset), size: header.totalSize,
                maxTimestamp: header.maxTimestamp, intervalBytes: configuration.indexIntervalBytes)
            batchOffset = batchOffset + Int64(header.lastOffsetDelta) + 1
            position += header.totalSize
        }
        segment.size += append.bytes.count
        segment.reservedEnd = max(segment.reservedEnd, segment.size)
        segment.nextOffset = batchOffset
        segment.maxTimestamp = max(segment.maxTimestamp, append.maxTimestamp)
        segment.lastAppendMilliseconds = append.appendedAtMilliseconds
    }

    /// Writes the queued appends into the active segment with one vectored write (lock held): the flusher
    /// before its fsync, or whoever needs them in the file sooner (a read that reaches them, a roll, a direct
    /// append, close). A failure voids them: their offsets go back to the written end. Their space was
    /// reserved, so a failure is an I/O error and the log takes it, refusing work until reopened (the
    /// flusher fails their waiters) — unless it is a full disk after all: a copy-on-write file system
    /// allocates anew when overwriting a recycled file's old contents, and a reservation can be lost. Then
    /// only these appends fail, with `.diskFull`, as an append refused at once would, and the log goes on.
    ///
    /// While the flusher writes the queue's head early, this waits for that write first (the lock released
    /// meanwhile), then throws if the log failed or closed during the wait.
    private func writeQueueLocked() throws(LogError) {
        if writeQueueHeadInFlight {
            while writeQueueHeadInFlight { lock.wait() }
            if let failure { throw failure }
            if closed { throw .closed }
        }
        guard !writeQueue.isEmpty else { return }
        if let failure { throw failure }
        try writeQueuedAppends(releasingLock: false)
    }

    /// While the flusher gathers its group (lock held): writes the appends queued so far with the lock
    /// released, so that the group's write overlaps the arrival of its last appends instead of following
    /// it; appenders go on queueing meanwhile. A failure is handled as in `writeQueueLocked`.
    private func writeQueueHeadEarly() {
        guard !writeQueue.isEmpty, !writeQueueHeadInFlight, failure == nil else { return }
        try? writeQueuedAppends(releasingLock: true)
    }

    /// Writes the queued appends at the active segment's end and accounts for them (lock held on entry and
    /// return; released during the write when `releasingLock`, with `writeQueueHeadInFlight` set so that
    /// nothing else writes to the file or changes the active segment, while appenders queue more behind).
    private func writeQueuedAppends(releasingLock: Bool) throws(LogError) {
        let active = segments[segments.count - 1]
        let writePosition = active.size
        let count = writeQueue.count
        let queued = writeQueue
        let bytes = queued.reduce(0) { $0 + $1.bytes.count }
        let padding = active.padding(after: writePosition + bytes)
        var outcome: LogError?
        if releasingLock {
            writeQueueHeadInFlight = true
            let hook = earlyWriteHook
            lock.unlock()
            hook?()
        }
        do {
            try active.file.writeAll(queued.map { UnsafeRawBufferPointer($0.bytes.buffer) }, at: writePosition, zeroPadding: padding)
        } catch {
            outcome = error
        }
        if releasingLock {
            lock.lock()
            writeQueueHeadInFlight = false
            lock.broadcast()
        }
        if let error = outcome {
            active.oldContentsEnd = min(active.oldContentsEnd, writePosition)
            active.reservedEnd = min(active.reservedEnd, writePosition)
            // Appends queued during an early write may have reserved blocks past the cut: uncounted now.
            if releasingLock { active.releaseBlocksPastEnd() }
            // Appends queued after these (during an early write) follow their offsets: they go too.
            voidWriteQueueLocked()
            if case .diskFull = error {
                logger.error("disk full writing queued appends; they fail and the log goes on", metadata: [
                    "directory": "\(directory)", "appends": "\(queued.count)", "error": "\(error)",
                ])
                // Every waiter at or past the written end waited for a voided offset (which the next append
                // gets again): the flusher answers them, on its thread as always.
                voidedWaiters += waiters.filter { $0.offset >= nextOffset }.map { ($0.callback, error) }
                waiters.removeAll { $0.offset >= nextOffset }
                lock.broadcast()
                throw error
            }
            logger.critical("writing queued appends failed; the log stops accepting writes until reopened", metadata: [
                "directory": "\(directory)", "appends": "\(queued.count)", "error": "\(error)",
            ])
            failure = .failed(reason: "\(error)")
            lock.broadcast()
            throw error
        }
        if padding > 0 { active.paddedThrough = writePosition + bytes + padding }
        writeQueue.removeFirst(count)
        writeQueueBytes -= bytes
        statistics.queuedGroupWrites += 1
        statistics.queuedAppendsWritten += queued.count
        var position = writePosition
        for append in queued {
            recordWritten(append, at: position, in: active)
            position += append.bytes.count
        }
    }

    /// Drops the queued appends after a failure (lock held): their offsets were never written.
    private func voidWriteQueueLocked() {
        guard !writeQueue.isEmpty else { return }
        writeQueue.removeAll()
        writeQueueBytes = 0
        nextOffset = segments[segments.count - 1].nextOffset
    }

    /// Makes sure `segment` has disk blocks through `end` (lock held): none needed below a recycled file's
    /// old contents, else exactly the queued bytes are reserved — no more, so that what the log holds on
    /// disk (`LogStatistics.diskBytes`, which a disk budget watches) is what it was asked to store. False
    /// where the file system cannot reserve.
    private func reserveSpace(in segment: Segment, through end: Int) throws(LogError) -> Bool {
        let start = max(segment.reservedEnd, segment.size)
        if end <= start { return true }
        if reservationUnsupported { return false }
        let reserved: Bool
        do {
            reserved = try segment.file.reserve(end - start, at: start)
        } catch {
            // A reservation the disk could not complete keeps the blocks it did get (ext4), past the
            // file's end where nothing counts them, holding the disk's last free space; and punching them
            // out does not work past the end. So the queue goes into the file (its space was reserved) and
            // the file is cut to its batches: that frees them, and a recycled file's old contents too.
            try? writeQueueLocked()  // waits for an early write in flight first
            // A roll may have come during that wait: then `segment` is sealed (its trim deferred to the
            // flusher) and the file to cut is the new active one; both give back what is past their end.
            let active = segments[segments.count - 1]
            try? active.trimToSize()
            active.releaseBlocksPastEnd()
            if active !== segment { segment.releaseBlocksPastEnd() }
            throw error
        }
        guard reserved else {
            reservationUnsupported = true
            logger.notice("the file system cannot reserve space; appends under fsync always write at once", metadata: ["directory": "\(directory)"])
            return false
        }
        segment.reservedEnd = end
        return true
    }

    /// Queued appends the gathering flusher writes early, with the lock released (half its group).
    private var earlyWriteAppends: Int { max(2, groupTarget / 2) }

    /// Bytes written or queued but not yet fsynced (lock held).
    private var unsynchronizedBytes: Int {
        segments.reduce(writeQueueBytes) { $0 + ($1.size - $1.synchronizedSize) }
    }

    /// Whether `count` more bytes after `end` (the active segment's size with the write queue) start a new
    /// segment.
    private func shouldRoll(_ active: Segment, end: Int, adding count: Int, now: Int64) -> Bool {
        guard end > 0 else { return false }
        if rollIntoSpareOnFirstAppend && !spares.isEmpty { return true }
        if end + count > configuration.segmentBytesMax { return true }
        if let ageMax = configuration.segmentAgeMaxMilliseconds, now - active.createdAtMilliseconds >= ageMax { return true }
        return false
    }

    /// Seals the active segment and starts a new one at `nextOffset`, in the spare file when there is one.
    /// Caller holds the lock.
    private func roll(now: Int64) throws(LogError) -> Segment {
        rollIntoSpareOnFirstAppend = false
        let sealed = segments[segments.count - 1]
        // Nothing of the sealed segment changes before the new segment exists: a roll that fails (the new
        // file cannot be created) leaves the active segment as it was, and its appends go on in it.
        var reused: Segment?
        if let spare = takeSpare() {
            do {
                reused = try Segment.recycling(spare: spare.path, baseOffset: nextOffset, directory: directory, nowMilliseconds: now)
            } catch {
                logger.warning("could not reuse a spare segment file; creating a new one", metadata: ["path": "\(spare.path)", "error": "\(error)"])
                // Under either name, depending on where reusing it failed: its old contents must not stay
                // as a segment file the log does not hold (a recovery would take them for one).
                try? Directory.remove(spare.path)
                try? Directory.remove(directory + "/" + SegmentNames.log(nextOffset))
            }
        }
        let segment: Segment
        if let reused { segment = reused } else {
            segment = try Segment(baseOffset: nextOffset, directory: directory, create: true, nowMilliseconds: now)
        }
        // The sealed segment's index files (hundreds of KiB for a full segment) are written on the
        // checkpoint queue, off the append lock; its indexes no longer change.
        let sealedOffsets = sealed.indexes.offsets
        let sealedTimes = sealed.indexes.times
        sealed.indexes.offsetsWritten = sealedOffsets.count
        sealed.indexes.timesWritten = sealedTimes.count
        // A recycled file's old contents past the last batch go: the flusher cuts them right before the
        // fdatasync that makes the new size durable, in the round that also covers the new segment. If that
        // cut fails, the recovery point may still pass this segment: recovery cuts old contents past a sealed
        // segment's last batch (see `LogLoader`). Recorded only now: a cut pending on a segment that stayed
        // active would take the appends written after it.
        sealed.deferTrimToSize()
        // The new file's directory entry must be durable before anything in it counts as committed: the
        // flusher fsyncs the directory in the round that first makes its data durable.
        directoryGeneration += 1
        segment.nextOffset = nextOffset
        segments.append(segment)
        checkpoint.segments[sealed.baseOffset] = Checkpoint.SegmentEntry(createdMilliseconds: sealed.createdAtMilliseconds)
        checkpoint.segments[segment.baseOffset] = Checkpoint.SegmentEntry(createdMilliseconds: now, recycled: segment.recycled)
        let sealedBase = sealed.baseOffset  // not the segment itself: a retired one must stay uniquely held
        checkpointQueue.async { [weak self] in
            self?.writeSealedIndexFiles(base: sealedBase, offsets: sealedOffsets, times: sealedTimes)
        }
        scheduleCheckpointWrite()
        if configuration.retentionBytes != nil { applyRetention(now: now) }
        return segment
    }

    /// Writes a sealed segment's index files and records their checksums in the checkpoint (on the
    /// checkpoint queue). Until then, or if this fails, recovery rebuilds them from the batch headers.
    private func writeSealedIndexFiles(base: Offset, offsets: [OffsetIndexEntry], times: [TimeIndexEntry]) {
        // Retention may have removed the segment (and its index files) before this ran: writing them now
        // would leave index files of a segment that is gone.
        guard locked({ segments.contains { $0.baseOffset == base } }) else { return }
        let checksums: (index: UInt32, timeIndex: UInt32)
        do {
            checksums = try Segment.writeIndexFiles(directory: directory, baseOffset: base, offsets: offsets, times: times)
        } catch {
            logger.warning("could not write a sealed segment's index files; recovery rebuilds them", metadata: ["segment": "\(base)", "error": "\(error)"])
            return
        }
        lock.lock()
        // Retention may have removed the segment meanwhile: then its entry (and these files) are moot.
        if checkpoint.segments[base] != nil {
            checkpoint.segments[base]?.indexChecksum = checksums.index
            checkpoint.segments[base]?.timeIndexChecksum = checksums.timeIndex
            scheduleCheckpointWrite()
        }
        let retired = !segments.contains { $0.baseOffset == base }
        lock.unlock()
        // Removed while the files were being written.
        if retired {
            try? Directory.remove(directory + "/" + SegmentNames.index(base))
            try? Directory.remove(directory + "/" + SegmentNames.timeIndex(base))
        }
    }

    /// The spare file a roll may reuse (lock held): not one a reader still holds as the segment it was,
    /// since overwriting it would change bytes under that read.
    private func takeSpare() -> SpareFile? {
        guard configuration.recycleSegments else { return nil }
        for index in spares.indices where spares[index].retired == nil || isKnownUniquelyReferenced(&spares[index].retired) {
            if spares[index].retired?.truncationInFlight == true { continue }
            if spares[index].directoryGeneration > directorySynchronizedGeneration {
                // Rolled again before the flusher got to the directory: make the retirement durable here.
                guard (try? Directory.synchronize(directory)) != nil else { return nil }
                directorySynchronizedGeneration = directoryGeneration
            }
            spares[index].cacheDrop?.cancel()
            return spares.remove(at: index)
        }
        return nil
    }

    /// Removes a segment retention deleted (lock held): its file becomes the spare when recycling and no
    /// spare is kept yet, else it is deleted. Only the rename to the spare happens here: unlinking files
    /// (hundreds of microseconds each, freeing their blocks) is left to the file-removal queue, off the
    /// append lock — retention runs inside a roll, in an appender's call. A crash before then leaves files whose
    /// segment is gone, which the next open removes.
    private func retire(_ segment: Segment) throws(LogError) {
        guard configuration.recycleSegments && spares.isEmpty && segment.size > 0 else {
            fileRemovalQueue.async { [logger] in
                do { try segment.deleteFiles() } catch {
                    logger.error("could not delete a segment", metadata: ["path": "\(segment.logPath)", "error": "\(error)"])
                }
            }
            return
        }
        let path = directory + "/" + SegmentNames.spare(segment.baseOffset)
        try Directory.rename(segment.logPath, to: path)
        directoryGeneration += 1
        // A trim the flusher has not done yet leaves the file longer than the segment (`fileBytes` counts
        // that); one no round has taken up yet is dropped (a spare may be any length), one in flight sets
        // the spare's size when done.
        let bytes = segment.fileBytes
        if !segment.truncationInFlight { segment.pendingTruncation = nil }
        let drop = SpareCacheDrop(file: segment.file, bytes: bytes)
        spares.append(SpareFile(path: path, bytes: bytes, retired: segment, directoryGeneration: directoryGeneration, cacheDrop: drop))
        // Paths, not the segment: it must stay uniquely held by its spare entry (see `takeSpare`).
        let indexPaths = [segment.indexPath, segment.timeIndexPath]
        fileRemovalQueue.async {
            for path in indexPaths { try? Directory.remove(path) }
        }
        checkpointQueue.async { drop.run() }
    }

    /// Gives back the disk held in reserve: deletes the spare file and cuts a recycled active segment's old
    /// contents or the space reserved past its end, and sealed segments' whose deferred trim is not done
    /// yet. For a disk budget that is full, before it drops data. Returns bytes freed.
    @discardableResult
    public func releaseRecyclingReserve() -> Int {
        lock.lock()
        // The queue's reserved space may lie in the old contents cut below: write it first.
        try? writeQueueLocked()
        let released = spares
        spares.removeAll()
        rollIntoSpareOnFirstAppend = false  // that spare is gone; a later one is not a restart's
        for spare in released { spare.cacheDrop?.cancel() }
        var freed = released.reduce(0) { $0 + $1.bytes }
        // Sealed segments' trims the flusher has not done (or could not) free their old contents too: at once,
        // also one that failed a moment ago, since what this frees would otherwise be data dropped.
        freed += trimSealedSegmentsLocked()
        if let active = segments.last, active.recycled || active.reservedEnd > active.size {
            let before = active.fileBytes
            do {
                try active.trimToSize()
                freed += before - active.size
            } catch {
                logger.warning("could not trim the active segment", metadata: ["path": "\(active.logPath)", "error": "\(error)"])
            }
        }
        lock.broadcast()
        lock.unlock()
        for spare in released { try? Directory.remove(spare.path) }
        if !released.isEmpty { directoryChangedOffTheLock() }
        return freed
    }

    // MARK: Durability

    /// Calls `callback` once every offset up to and including `offset` is fsynced (at once if already),
    /// or with the error that makes that impossible. The callback runs on the flusher thread: keep it short,
    /// and do not call `close()` or `flush()` from it (both wait for that thread).
    public func whenDurable(through offset: Offset, _ callback: @escaping @Sendable (Result<Void, LogError>) -> Void) {
        lock.lock()
        if offset < durableEnd {
            lock.unlock()
            callback(.success(()))
            return
        }
        if let failure {
            lock.unlock()
            callback(.failure(failure))
            return
        }
        if closed {
            lock.unlock()
            callback(.failure(.closed))
            return
        }
        // No wake-up: the flusher's decisions depend on appended bytes, not on who waits for them.
        waiters.append(Waiter(offset: offset, callback: callback, ofAppend: false))
        lock.unlock()
    }

    /// Waits until `offset` is fsynced.
    public func awaitDurable(through offset: Offset) async throws(LogError) {
        let result: Result<Void, LogError> = await withCheckedContinuation { continuation in
            whenDurable(through: offset) { continuation.resume(returning: $0) }
        }
        try result.get()
    }

    /// fsyncs everything appended so far and returns when it is durable (any policy).
    public func flush() throws(LogError) {
        let done = DispatchSemaphore(value: 0)
        let outcome = LockedBox<Result<Void, LogError>>(.success(()))
        lock.lock()
        let target = nextOffset
        if target == durableEnd {
            lock.unlock()
            return
        }
        synchronizeRequested = true
        lock.broadcast()
        lock.unlock()
        whenDurable(through: target + -1) { result in
            outcome.set(result)
            done.signal()
        }
        done.wait()
        try outcome.get().get()
    }

    private func startFlusher() {
        lock.lock()
        flusherRunning = true
        lock.unlock()
        // The thread holds the log only while it works on a round: between rounds (every second at most)
        // it holds nothing, so a log dropped without close() is still freed and the thread ends.
        let thread = Thread { [weak self] in
            while let log = self {
                if !log.flusherRound() { break }
            }
        }
        thread.name = "outpost-log-flusher"
        thread.start()
    }

    enum FlusherStep {
        case synchronize
        case idle
        case stop
    }

    /// One round of the flusher: waits (a second at most) for unsynced appends, the interval, or an explicit
    /// request; fsyncs every dirty segment with the lock released; then advances `durableEnd` and releases
    /// waiters. Returns false when the flusher should end.
    private func flusherRound() -> Bool {
        lock.lock()
        switch waitForWork() {
        case .stop:
            // After a failure nothing more becomes durable: answer whoever still waits. Before the flusher
            // counts as stopped, as a round answers its waiters before the next: close() returns only once
            // everyone is answered. None can join them meanwhile: a closed or failed log takes no appends
            // and answers new durability waits at once.
            let failed = failure.map { failure in (failure, waiters.map(\.callback)) }
            if failed != nil { waiters.removeAll() }
            let voided = takeVoidedWaiters()
            lock.unlock()
            for (callback, error) in voided { callback(.failure(error)) }
            if let (failure, callbacks) = failed {
                for callback in callbacks { callback(.failure(failure)) }
            }
            lock.lock()
            flusherRunning = false
            lock.broadcast()
            lock.unlock()
            return false
        case .idle:
            lock.unlock()
            return true
        case .synchronize:
            break
        }
        // The group's queued appends go into the file now, in one write; a failure is the log's failure
        // (logged there), and this round still fsyncs what was written before.
        try? writeQueueLocked()
        let target = nextOffset
        lastSynchronizeUptimeNanoseconds = MonotonicCondition.uptimeNanoseconds()
        appendsSinceSynchronize = 0
        wroteEarlyThisRound = false
        // Files and weak references only: a retired segment must stay uniquely held by its spare entry
        // (see `takeSpare`) while this round fsyncs. A sealed segment whose trim failed comes again when
        // its retry is due.
        let dirty = segments.filter { $0.needsSynchronize || trimRetryDue($0, now: lastSynchronizeUptimeNanoseconds) }.map {
            (segment: WeakSegment(segment: $0), file: $0.file, size: $0.size, trimmed: $0.metadataDirty, truncation: dueTruncation(of: $0))
        }
        for entry in dirty where entry.truncation != nil { entry.segment.segment?.truncationInFlight = true }
        let directoryTarget = directoryGeneration > directorySynchronizedGeneration ? directoryGeneration : nil
        synchronizeRequested = false
        roundInFlight = true
        let fsyncHook = self.fsyncHook
        let trimHook = self.trimHook
        let fileSynchronizeHook = self.fileSynchronizeHook
        lock.unlock()
        fsyncHook?()
        let started = MonotonicCondition.uptimeNanoseconds()
        // The directory last, so that target indexes are those of `dirty`.
        var targets = dirty.map { SynchronizeTarget.file($0.file, truncatingTo: $0.truncation) }
        if directoryTarget != nil { targets.append(.directory(directory)) }
        let outcome = Self.synchronize(targets, trimHook: trimHook, fileSynchronizeHook: fileSynchronizeHook)
        if let delay = configuration.simulatedFsyncDelayMilliseconds, delay > 0 {
            Thread.sleep(forTimeInterval: Double(delay) / 1000)
        }
        let ended = MonotonicCondition.uptimeNanoseconds()
        let seconds = Double(ended - started) / 1e9
        lock.lock()
        for entry in dirty where entry.truncation != nil { entry.segment.segment?.truncationInFlight = false }
        roundInFlight = false
        lastRoundEndUptimeNanoseconds = ended
        lastFsyncNanoseconds = ended - started
        var released: [@Sendable (Result<Void, LogError>) -> Void] = []
        var releasedResult: Result<Void, LogError> = .success(())
        if let error = outcome.failure {
            logger.critical("fsync failed; the log stops accepting writes until reopened", metadata: ["directory": "\(directory)", "error": "\(error)"])
            failure = .failed(reason: "\(error)")
            voidWriteQueueLocked()
            releasedResult = .failure(.failed(reason: "\(error)"))
            released = waiters.map(\.callback)
            waiters.removeAll()
        } else {
            for (index, entry) in dirty.enumerated() {
                guard let segment = entry.segment.segment else { continue }
                segment.synchronizedSize = max(segment.synchronizedSize, entry.size)
                // After a failed trim too: the file's size did not change, so its fdatasync left nothing behind.
                if entry.trimmed { segment.metadataDirty = false }
                guard let truncation = entry.truncation, segment.pendingTruncation == truncation else { continue }
                if let trimError = outcome.failedTrims[index] {
                    trimFailed(segment, trimError, at: ended)
                } else {
                    segment.deferredTrimDone()
                    // Retired during the round: its spare file is now this long.
                    if let spare = spares.firstIndex(where: { $0.retired === segment }) { spares[spare].bytes = truncation }
                }
            }
            if let directoryTarget { directorySynchronizedGeneration = max(directorySynchronizedGeneration, directoryTarget) }
            if !dirty.isEmpty {
                statistics.fsyncCount += 1
                statistics.fsyncSecondsTotal += seconds
                statistics.lastFsyncSeconds = seconds
            }
            durableEnd = max(durableEnd, target)
            var releasedAppends = 0
            if !waiters.isEmpty {
                var remaining: [Waiter] = []
                for waiter in waiters {
                    if waiter.offset < durableEnd {
                        released.append(waiter.callback)
                        if waiter.ofAppend { releasedAppends += 1 }
                    } else {
                        remaining.append(waiter)
                    }
                }
                waiters = remaining
            }
            groupTarget = appendsSinceSynchronize + releasedAppends
        }
        if sealedSynchronizedEnd() { scheduleCheckpointWrite() }
        let voided = takeVoidedWaiters()
        lock.broadcast()  // appenders held back by `unsynchronizedBytesMax`
        lock.unlock()
        for callback in released { callback(releasedResult) }
        for (callback, error) in voided { callback(.failure(error)) }
        return true
    }

    /// Lock held.
    private func takeVoidedWaiters() -> [(callback: @Sendable (Result<Void, LogError>) -> Void, error: LogError)] {
        defer { voidedWaiters.removeAll() }
        return voidedWaiters
    }

    /// A sealed segment's deferred trim (lock held). Never the active segment's and never below a
    /// segment's batches, whatever the bookkeeping says: a cut there would take appends already written.
    private func dueTruncation(of segment: Segment) -> Int? {
        guard segment !== segments.last, let truncation = segment.pendingTruncation, truncation == segment.size else { return nil }
        return truncation
    }

    /// A failed deferred trim is tried again at most this often: a file system that failed it once likely
    /// fails it again, and each failure is logged as an error.
    static let trimRetryIntervalNanoseconds: UInt64 = 1_000_000_000

    /// Whether a sealed segment whose deferred trim failed is due for another try (lock held).
    private func trimRetryDue(_ segment: Segment, now: UInt64) -> Bool {
        guard let failedAt = segment.trimFailedAtUptimeNanoseconds, dueTruncation(of: segment) != nil else { return false }
        return now >= failedAt + Self.trimRetryIntervalNanoseconds
    }

    /// A deferred trim failed (lock held). The log goes on: the bytes past the sealed segment's last batch
    /// hold nothing of it (a recovery cuts them as old contents), so unlike an fsync's, this failure loses
    /// no data. The trim stays pending, for a later round or close.
    private func trimFailed(_ segment: Segment, _ error: LogError, at now: UInt64) {
        segment.trimFailedAtUptimeNanoseconds = now
        statistics.trimFailures += 1
        logger.error("could not trim a sealed segment's old contents; tried again later (the next open cuts them if it must)", metadata: [
            "path": "\(segment.logPath)", "size": "\(segment.size)", "error": "\(error)",
        ])
    }

    /// Does the deferred trims no flusher round holds (lock held), failed ones too, whether or not their
    /// retry is due: at close or in deinit, the last chance, and for a disk budget that wants its space back
    /// before it drops data. A failure is handled as in a round. A trimmed segment's new size needs its next
    /// fdatasync (`metadataDirty`). Returns the bytes freed.
    @discardableResult
    private func trimSealedSegmentsLocked() -> Int {
        var freed = 0
        let now = MonotonicCondition.uptimeNanoseconds()
        for segment in segments where !segment.truncationInFlight {
            guard let truncation = dueTruncation(of: segment) else { continue }
            let before = segment.fileBytes
            do {
                try Self.trim(segment.file, to: truncation, hook: trimHook)
            } catch {
                trimFailed(segment, error, at: now)
                continue
            }
            segment.deferredTrimDone()
            segment.metadataDirty = true
            freed += before - segment.fileBytes
        }
        return freed
    }

    /// A deferred trim's ftruncate, after the testing hook (see `trimHookForTesting`).
    private static func trim(_ file: SegmentFile, to size: Int, hook: TrimHook?) throws(LogError) {
        try hook?()
        try file.truncate(to: size)
    }

    enum SynchronizeTarget {
        case directory(String)
        /// A segment's file, first truncated to a deferred trim's size if it has one.
        case file(SegmentFile, truncatingTo: Int?)
    }

    /// What a round's fsyncs came to.
    struct SynchronizeOutcome {
        /// The first fsync that failed: the round's failure, and the log's.
        var failure: LogError?
        /// Deferred trims that failed, by target index. Their file was still fsynced; a trim's failure is
        /// not the round's (see `trimFailed`).
        var failedTrims: [Int: LogError] = [:]
    }

    /// fsyncs a round's targets, at once when there are several (a roll's round has the directory, the
    /// sealed segment and the new one): no waiter is released before all are done, so their order does
    /// not matter, and the device takes their flushes together instead of one after another.
    static func synchronize(
        _ targets: [SynchronizeTarget], trimHook: TrimHook? = nil, fileSynchronizeHook: FileSynchronizeHook? = nil
    ) -> SynchronizeOutcome {
        let outcome = LockedBox(SynchronizeOutcome())
        let synchronizeTarget: @Sendable (Int) -> Void = { index in
            do throws(LogError) {
                switch targets[index] {
                case .directory(let path):
                    try Directory.synchronize(path)
                case .file(let file, let truncation):
                    if let truncation {
                        do throws(LogError) { try trim(file, to: truncation, hook: trimHook) } catch { outcome.update { $0.failedTrims[index] = error } }
                    }
                    try fileSynchronizeHook?(file.path)
                    try file.synchronize()
                }
            } catch {
                outcome.update { $0.failure = $0.failure ?? error }
            }
        }
        if targets.count > 1 {
            DispatchQueue.concurrentPerform(iterations: targets.count, execute: synchronizeTarget)
        } else if !targets.isEmpty {
            synchronizeTarget(0)
        }
        return outcome.get()
    }

    /// Waits (lock held, at most a second) until there is something to fsync. Deadlines are on the
    /// monotonic clock (see `MonotonicCondition`).
    private func waitForWork() -> FlusherStep {
        let deadline = MonotonicCondition.uptimeNanoseconds() + 1_000_000_000
        while true {
            let directoryBehind = directoryGeneration > directorySynchronizedGeneration
            let unsynced = durableEnd < nextOffset || segments.contains(where: \.needsSynchronize)
            if closed { return (unsynced || directoryBehind) && failure == nil ? .synchronize : .stop }
            if failure != nil { return .stop }
            // Answered at the end of a round, which has nothing to fsync if nothing else is dirty.
            if !voidedWaiters.isEmpty { return .synchronize }
            // Directory changes (a roll, a retired spare) are made durable promptly under every policy.
            if directoryBehind { return .synchronize }
            var wakeAt = deadline
            switch configuration.fsync {
            case .always:
                // Gather: appenders released by the last fsync come back with their next append within
                // moments. Starting the next fsync at the first of them would split them over two fsyncs
                // (two waits each); so wait until the group is complete (`groupTarget`), but no longer
                // than that fsync took (1 ms at most). One appender never waits. Once half the group is
                // queued, the flusher writes it while the rest arrive (`writeQueueHeadEarly`): the group's
                // write then mostly overlaps its gathering instead of following it.
                if unsynced {
                    let now = MonotonicCondition.uptimeNanoseconds()
                    let gatherUntil = lastRoundEndUptimeNanoseconds + min(lastFsyncNanoseconds, gatherWindowMaxNanoseconds)
                    if groupTarget <= 1 || appendsSinceSynchronize >= groupTarget || synchronizeRequested || now >= gatherUntil {
                        return .synchronize
                    }
                    if writeQueue.count >= earlyWriteAppends && !wroteEarlyThisRound {
                        wroteEarlyThisRound = true
                        writeQueueHeadEarly()
                        continue
                    }
                    flusherGathering = true
                    lock.wait(untilUptimeNanoseconds: min(wakeAt, gatherUntil))
                    flusherGathering = false
                    continue
                }
            case .interval(let milliseconds):
                if unsynced && synchronizeRequested { return .synchronize }
                if unsynced {
                    let due = lastSynchronizeUptimeNanoseconds + UInt64(milliseconds) * 1_000_000
                    if MonotonicCondition.uptimeNanoseconds() >= due { return .synchronize }
                    wakeAt = min(wakeAt, due)
                }
            case .never:
                if unsynced && (synchronizeRequested || segments.dropLast().contains(where: \.needsSynchronize)) { return .synchronize }
            }
            if !lock.wait(untilUptimeNanoseconds: wakeAt) && MonotonicCondition.uptimeNanoseconds() >= deadline { return .idle }
        }
    }

    /// Moves the recovery point to the end of the sealed segments when all of them are fsynced and it moved
    /// past the recorded one (lock held); true when it moved. Recovery trusts segments below it.
    private func sealedSynchronizedEnd() -> Bool {
        guard segments.count > 1 else { return false }
        let sealed = segments.dropLast()
        guard !sealed.contains(where: \.needsSynchronize) else { return false }
        let end = segments[segments.count - 1].baseOffset
        guard end > recoveryPoint else { return false }
        recoveryPoint = end
        checkpoint.recoveryPoint = end
        return true
    }

    /// Has the checkpoint written soon on its own queue (lock held): its two fsyncs stay off the append
    /// lock and out of the flusher's rounds. Requests coalesce; the write takes the latest state.
    private func scheduleCheckpointWrite() {
        guard !checkpointWriteScheduled else { return }
        checkpointWriteScheduled = true
        // A little later, so the changes around one roll (new segment, index checksums, recovery point,
        // retention) share one write: each costs the disk journal commits that fsyncs would wait behind.
        checkpointQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [weak self] in self?.writeCheckpoint(unlessClosed: true) }
    }

    /// Writes the current checkpoint. A failure only costs a longer recovery scan next time (and an index
    /// rebuild), so it is logged, not thrown. Never called with `lock` held (lock order: write lock, then
    /// `lock`).
    private func writeCheckpoint(unlessClosed: Bool = false) {
        checkpointWriteLock.lock()
        defer { checkpointWriteLock.unlock() }
        lock.lock()
        checkpointWriteScheduled = false
        let skip = unlessClosed && closed
        let snapshot = checkpoint
        lock.unlock()
        if skip { return }
        do {
            try snapshot.write(directory: directory)
        } catch {
            logger.warning("could not write the checkpoint", metadata: ["directory": "\(directory)", "error": "\(error)"])
        }
    }

    // MARK: Read

    /// Reads whole batches starting with the one that contains `offset`, up to `maxBytes` (always at least
    /// one batch), stopping before any batch at or beyond `limit` (e.g. the high watermark or the durable
    /// end). Reading at the end offset returns no batches.
    public func read(from offset: Offset, maxBytes: Int, upTo limit: Offset? = nil) throws(LogError) -> LogReadResult {
        lock.lock()
        if closed {
            lock.unlock()
            throw .closed
        }
        // Queued appends are part of the log: a read that reaches them puts them in the file first (a failure
        // voids them). Reads bounded below them (a consumer at the high watermark) leave the group alone.
        if !writeQueue.isEmpty && offset < min(limit ?? nextOffset, nextOffset)
            && min(limit ?? nextOffset, nextOffset) > segments[segments.count - 1].nextOffset {
            try? writeQueueLocked()
        }
        let start = logStart
        let end = nextOffset
        let bound = min(limit ?? end, end)
        guard offset >= start && offset <= end else {
            lock.unlock()
            throw .offsetOutOfRange(requested: offset, logStart: start, logEnd: end)
        }
        var result = LogReadResult(bytes: [], batchCount: 0, nextOffset: offset, logStartOffset: start, logEndOffset: end)
        guard offset < bound else {
            lock.unlock()
            return result
        }
        let first = segmentIndex(containing: offset)
        let startPosition = segments[first].indexes.position(atOrBefore: segments[first].relativeOffset(offset))
        let snapshot = segments[first...].map { (segment: $0, size: $0.size, corruptFrom: $0.corruptFrom) }
        let declaredGaps = checkpoint  // only its gaps are used: where offsets may jump
        lock.unlock()

        // Offsets run on from batch to batch (across segments too) except over a declared gap. baseOffset
        // lies outside the CRC, so damage there passes every other check: a value out of place is damage,
        // which a read reports instead of ending early or skipping batches without a word.
        var expected: Offset?
        var header = [UInt8]()
        header.reserveCapacity(RecordBatchLayout.headerSize)
        for (index, entry) in snapshot.enumerated() {
            var position = index == 0 ? startPosition : 0
            // An index entry is a hint: if the batch it points at is not one that can precede `offset`, scan
            // the segment from its start instead of trusting the index over the data.
            var trustingIndexEntry = index == 0 && startPosition > 0
            let readableEnd = entry.corruptFrom.map { min($0, entry.size) } ?? entry.size
            while position < readableEnd {
                header.removeAll(keepingCapacity: true)
                let got = try entry.segment.file.read(RecordBatchLayout.headerSize, at: position, appendingTo: &header)
                let parsed = got == RecordBatchLayout.headerSize ? try? RecordBatchHeader(bytes: header) : nil
                // A length field is only believed when the batch it declares ends inside the readable part.
                let plausible = parsed.map {
                    $0.magic == RecordBatchLayout.magic && $0.totalSize >= RecordBatchLayout.headerSize && position + $0.totalSize <= readableEnd
                } ?? false
                if trustingIndexEntry {
                    trustingIndexEntry = false
                    if !plausible || Offset(parsed?.baseOffset ?? Int64.max) > offset {
                        logger.warning("offset index entry disagrees with the data; scanning the segment", metadata: ["path": "\(entry.segment.logPath)", "position": "\(position)"])
                        position = 0
                        expected = nil
                        continue
                    }
                }
                guard let batch = parsed, plausible else {
                    // Damage open did not see (inside a trusted sealed segment): what was read before it is
                    // returned; the next read, starting here, reports it.
                    if result.batchCount > 0 { return result }
                    throw .corruptSegment(path: entry.segment.logPath, position: position, reason: "unreadable batch header")
                }
                let outOfPlace = Offset(batch.baseOffset) >= end
                    || expected.map { !declaredGaps.allowsDiscontinuity(from: $0.rawValue, to: batch.baseOffset) } ?? false
                if outOfPlace {
                    if result.batchCount > 0 { return result }
                    throw .corruptSegment(
                        path: entry.segment.logPath, position: position,
                        reason: "batch offset \(batch.baseOffset) out of place (\(expected.map { "\($0) expected" } ?? "log end \(end)"))")
                }
                expected = Offset(batch.nextOffset)
                if Offset(batch.baseOffset) >= bound { return result }
                if Offset(batch.lastOffset) < offset {
                    position += batch.totalSize
                    continue
                }
                if result.batchCount > 0 && result.bytes.count + batch.totalSize > maxBytes { return result }
                result.bytes.append(contentsOf: header)
                try entry.segment.file.read(batch.totalSize - RecordBatchLayout.headerSize, at: position + RecordBatchLayout.headerSize, appendingTo: &result.bytes)
                result.batchCount += 1
                result.nextOffset = Offset(batch.nextOffset)
                position += batch.totalSize
            }
            if let corruptFrom = entry.corruptFrom, position >= corruptFrom, result.batchCount == 0 {
                throw .corruptSegment(path: entry.segment.logPath, position: corruptFrom, reason: "damaged region found on open")
            }
            if entry.corruptFrom != nil { return result }
        }
        return result
    }

    /// Index of the segment whose range holds `offset` (lock held).
    private func segmentIndex(containing offset: Offset) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].baseOffset <= offset { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    /// The first offset whose record timestamp (ms) is at or after `timestamp`, and that timestamp;
    /// nil when no record is that late. Decodes only the one batch where the answer lies.
    public func offset(forTimestamp timestamp: Int64) throws(LogError) -> (offset: Offset, timestamp: Int64)? {
        lock.lock()
        try? writeQueueLocked()
        let bound = nextOffset
        let candidates = segments.enumerated().filter { $0.element.maxTimestamp >= timestamp }.map { entry in
            let segment = entry.element
            let startRelative = segment.indexes.relativeOffset(before: timestamp)
            let position = startRelative.map { segment.indexes.position(atOrBefore: $0) } ?? 0
            return (segment: segment, size: segment.size, corruptFrom: segment.corruptFrom, position: position)
        }
        lock.unlock()
        for candidate in candidates {
            var position = candidate.position
            let readableEnd = candidate.corruptFrom.map { min($0, candidate.size) } ?? candidate.size
            while position < readableEnd {
                let header = try candidate.segment.file.read(RecordBatchLayout.headerSize, at: position)
                // The declared length decides how much is read next: believed only when the batch ends inside
                // the readable part, or a damaged header would ask for up to 2 GiB.
                guard let batch = try? RecordBatchHeader(bytes: header), batch.magic == RecordBatchLayout.magic,
                    batch.totalSize >= RecordBatchLayout.headerSize, position + batch.totalSize <= readableEnd
                else {
                    throw .corruptSegment(path: candidate.segment.logPath, position: position, reason: "unreadable batch header")
                }
                if Offset(batch.baseOffset) >= bound { return nil }
                if batch.maxTimestamp >= timestamp {
                    let bytes = try candidate.segment.file.read(batch.totalSize, at: position)
                    let decoded: RecordBatch
                    do {
                        decoded = try RecordBatch.decode(bytes)
                    } catch {
                        // Stored bytes that fail validation are damage, not a bad request.
                        guard error.isCorruption else { throw .invalidBatch(error) }
                        throw .corruptSegment(path: candidate.segment.logPath, position: position, reason: "\(error)")
                    }
                    if let record = decoded.records.first(where: { $0.timestampMilliseconds >= timestamp }) {
                        return (Offset(record.offset), record.timestampMilliseconds)
                    }
                }
                position += batch.totalSize
            }
            // The segment claims a record this late, but the walk reached the damage found on open first:
            // the answer lies in or past it.
            if let corruptFrom = candidate.corruptFrom, position >= corruptFrom {
                throw .corruptSegment(path: candidate.segment.logPath, position: corruptFrom, reason: "damaged region found on open")
            }
        }
        return nil
    }

    /// Calls `body` with the header of every batch from the one holding `offset` to the end, reading only the
    /// 61-byte headers (no records): what a broker needs to rebuild producer state on open.
    public func forEachBatchHeader(from offset: Offset, _ body: (RecordBatchHeader) throws -> Void) throws {
        lock.lock()
        try? writeQueueLocked()
        let start = max(offset, logStart)
        guard start < nextOffset else {
            lock.unlock()
            return
        }
        let first = segmentIndex(containing: start)
        let startPosition = segments[first].indexes.position(atOrBefore: segments[first].relativeOffset(start))
        let snapshot = segments[first...].map { (segment: $0, size: min($0.size, $0.corruptFrom ?? Int.max), corruptFrom: $0.corruptFrom) }
        lock.unlock()
        for (index, entry) in snapshot.enumerated() {
            var position = index == 0 ? startPosition : 0
            while position + RecordBatchLayout.headerSize <= entry.size {
                let bytes = try entry.segment.file.read(RecordBatchLayout.headerSize, at: position)
                guard let header = try? RecordBatchHeader(bytes: bytes), header.magic == RecordBatchLayout.magic,
                    header.totalSize >= RecordBatchLayout.headerSize, position + header.totalSize <= entry.size
                else {
                    throw LogError.corruptSegment(path: entry.segment.logPath, position: position, reason: "unreadable batch header")
                }
                if Offset(header.lastOffset) >= start { try body(header) }
                position += header.totalSize
            }
            // Damage open found ends the walk with an error, as it ends reads: going on to the next segment
            // would hand the caller a history with a hole in it and no word of it.
            if let corruptFrom = entry.corruptFrom {
                throw LogError.corruptSegment(path: entry.segment.logPath, position: corruptFrom, reason: "damaged region found on open")
            }
        }
    }

    /// Bytes of log from `offset` to the end, to index precision (a few KiB): the replication backlog.
    public func approximateBytes(from offset: Offset) -> Int {
        locked {
            guard offset < nextOffset else { return 0 }
            // Queued appends count as they will be written; they are not written for a metric (that would
            // split the flusher's group).
            let writtenEnd = segments[segments.count - 1].nextOffset
            guard offset < writtenEnd else {
                var lastOffset = writtenEnd + -1
                return writeQueue.reduce(0) { total, append in
                    lastOffset = lastOffset + append.headers.reduce(0) { $0 + Int64($1.lastOffsetDelta) + 1 }
                    return lastOffset >= offset ? total + append.bytes.count : total
                }
            }
            let first = segmentIndex(containing: max(offset, logStart))
            let position = segments[first].indexes.position(atOrBefore: segments[first].relativeOffset(max(offset, logStart)))
            return segments[first...].reduce(writeQueueBytes) { $0 + $1.size } - position
        }
    }

    // MARK: Retention

    /// The offsets the oldest sealed segment holds, or nil when only the active segment is left.
    public var oldestSealedSegmentRange: Range<Offset>? {
        locked { segments.count > 1 ? segments[0].baseOffset..<segments[1].baseOffset : nil }
    }

    /// Deletes the oldest sealed segment whatever the retention floor says: the overflow policy
    /// `drop-oldest` when the disk budget is reached with data not yet replicated. Returns what was deleted
    /// (offsets and bytes) so the caller can count it and record the gap; nil when only the active segment
    /// is left, or when the oldest sealed segment is no longer `expected` (the range the caller looked at
    /// in `oldestSealedSegmentRange`: retention may have deleted it since, and what the caller recorded of
    /// it must be what goes). The file is deleted, not kept for recycling: this path exists to free disk.
    public func dropOldestSegment(expecting expected: Range<Offset>? = nil) -> (offsets: Range<Offset>, bytes: Int)? {
        lock.lock()
        guard segments.count > 1, expected.map({ $0 == segments[0].baseOffset..<segments[1].baseOffset }) ?? true else {
            lock.unlock()
            return nil
        }
        let oldest = segments.removeFirst()
        logStart = segments[0].baseOffset
        let newStart = logStart
        checkpoint.segments[oldest.baseOffset] = nil
        lock.unlock()
        do { try oldest.deleteFiles() } catch {
            logger.error("could not delete a dropped segment", metadata: ["path": "\(oldest.logPath)", "error": "\(error)"])
        }
        try? Directory.synchronize(directory)
        writeCheckpoint()
        logger.warning("dropped the oldest segment to stay within the disk budget", metadata: [
            "directory": "\(directory)", "offsets": "\(oldest.baseOffset)..<\(newStart)", "bytes": "\(oldest.size)",
        ])
        if let damagedFrom = oldest.corruptFrom {
            logger.warning("the dropped segment was one recovery had found damaged; what lay past the damage was never salvaged", metadata: [
                "path": "\(oldest.logPath)", "damaged_from": "\(damagedFrom)",
            ])
        }
        return (oldest.baseOffset..<newStart, oldest.size)
    }

    /// The offset retention may not delete from (the replication cursor), nil when there is none.
    public var retentionFloor: Offset? { locked { retentionFloorOffset } }

    /// Keeps retention from deleting any segment holding offsets at or above `offset` (nil: no floor).
    /// The replicator sets it to its cursor so unreplicated data is never deleted by age or size.
    public func setRetentionFloor(_ offset: Offset?) {
        locked { retentionFloorOffset = offset }
    }

    /// Deletes whole oldest segments beyond the size or age bound, never the active segment and never one
    /// that holds offsets at or above the retention floor. The owner calls this periodically (age) — size
    /// is also enforced on every roll. The deleted files are gone from the disk when this returns.
    @discardableResult
    public func enforceRetention() -> RetentionOutcome {
        let outcome = locked { applyRetention(now: clock()) }
        if !outcome.deletedSegments.isEmpty { awaitFileRemovals() }
        return outcome
    }

    /// Returns once the files of segments retention removed so far are unlinked.
    func awaitFileRemovals() {
        fileRemovalQueue.sync {}
    }

    /// Testing only: the queue retention's unlinks run on (see `retire`), for a test to hold them up.
    var fileRemovalQueueForTesting: DispatchQueue { fileRemovalQueue }

    /// Testing only: the queue checkpoint writes, sealed segments' index files and spare files' cache
    /// drops run on (see `retire`), for a test to hold them up.
    var checkpointQueueForTesting: DispatchQueue { checkpointQueue }

    /// Testing only: the cache drops of the spare files retired since open.
    var spareCacheDropsForTesting: [SpareCacheDrop] { locked { spares.compactMap(\.cacheDrop) } }

    /// Files were unlinked without the lock held: the flusher fsyncs the directory promptly (and close,
    /// once the flusher has stopped), so that a crash does not bring them back.
    private func directoryChangedOffTheLock() {
        Self.countDirectoryChange(directoryChanges, lock: lock)
    }

    private static func countDirectoryChange(_ changes: DirectoryChanges, lock: MonotonicCondition) {
        lock.lock()
        changes.generation += 1
        lock.broadcast()
        lock.unlock()
    }

    /// Lock held.
    @discardableResult
    private func applyRetention(now: Int64) -> RetentionOutcome {
        var outcome = RetentionOutcome()
        var total = segments.reduce(0) { $0 + $1.size }
        var count = 0
        while segments.count - count > 1 {
            let candidate = segments[count]
            let overSize = configuration.retentionBytes.map { Int64(total) > $0 } ?? false
            let overAge = configuration.retentionMilliseconds.map { now - candidate.lastAppendMilliseconds > $0 } ?? false
            guard overSize || overAge else { break }
            // The segment's end is where the next one starts: a corrupt sealed segment's own end offset is
            // where its damage starts, and intact batches after the damage (salvage can save them) lie
            // above a floor a reader stuck at the damage set.
            if let floor = retentionFloorOffset, segments[count + 1].baseOffset > floor { break }
            total -= candidate.size
            count += 1
        }
        guard count > 0 else {
            outcome.logStartOffset = logStart
            return outcome
        }
        let removed = segments[..<count]
        segments.removeFirst(count)
        logStart = segments[0].baseOffset
        for segment in removed {
            checkpoint.segments[segment.baseOffset] = nil
            outcome.deletedSegments.append(segment.baseOffset)
            outcome.deletedBytes += segment.size
            if let damagedFrom = segment.corruptFrom {
                let found = recoveryReport.corruptSealedSegments.first { $0.path == segment.logPath }
                outcome.deletedCorruptSegments.append(
                    CorruptSegment(path: segment.logPath, position: damagedFrom, reason: found?.reason ?? "damaged region found on open"))
            }
            do { try retire(segment) } catch {
                logger.error("could not retire a segment", metadata: ["path": "\(segment.logPath)", "error": "\(error)"])
            }
        }
        // A deleted segment that comes back after a crash is only old data again; the directory fsync and
        // the checkpoint follow from the flusher and the checkpoint queue.
        directoryGeneration += 1
        lock.broadcast()
        scheduleCheckpointWrite()
        outcome.logStartOffset = logStart
        // Logged off the lock: a log handler's write is not the appenders' to wait for. Queued after this
        // pass's unlinks, so the directory is marked changed once they are done: a round that fsynced it
        // in between did not make them durable.
        fileRemovalQueue.async { [lock, directoryChanges, logger, directory, outcome] in
            Self.countDirectoryChange(directoryChanges, lock: lock)
            logger.info("retention deleted segments", metadata: [
                "directory": "\(directory)", "segments": "\(outcome.deletedSegments.count)", "bytes": "\(outcome.deletedBytes)",
                "log_start_offset": "\(outcome.logStartOffset)",
            ])
            // Recovery kept these for salvage; retention's limits came first. Said apart, so it is not silent.
            for corrupt in outcome.deletedCorruptSegments {
                logger.warning("retention deleted a segment recovery had found damaged; what lay past the damage was never salvaged", metadata: [
                    "path": "\(corrupt.path)", "damaged_from": "\(corrupt.position)", "reason": "\(corrupt.reason)",
                ])
            }
        }
        return outcome
    }

    // MARK: Close

    /// Flushes everything, writes the indexes and the recovery point, and stops the flusher. Idempotent.
    public func close() throws(LogError) {
        lock.lock()
        if closed {
            lock.unlock()
            return
        }
        closed = true
        for spare in spares { spare.cacheDrop?.cancel() }
        lock.broadcast()
        while flusherRunning { lock.wait() }
        let failure = self.failure
        var leftover = waiters.map(\.callback)
        waiters.removeAll()
        for segment in segments { segment.writePendingIndexEntries() }
        // A deferred trim that failed in a round gets a last try; one that fails again the next open cuts.
        if failure == nil {
            trimSealedSegmentsLocked()
            for segment in segments.dropLast() where segment.needsSynchronize {
                do {
                    try segment.file.synchronize()
                    segment.metadataDirty = false
                } catch {
                    logger.warning("could not fsync a trimmed sealed segment on close", metadata: ["path": "\(segment.logPath)", "error": "\(error)"])
                }
            }
        }
        // The active segment ends at its last batch on disk too: a recycled file's old contents go.
        if failure == nil, let active = segments.last, active.recycled || active.reservedEnd > active.size {
            do {
                try active.trimToSize()
                try active.file.synchronize()
                active.metadataDirty = false
            } catch {
                logger.warning("could not trim the active segment on close; the next open cuts its old contents", metadata: ["path": "\(active.logPath)", "error": "\(error)"])
            }
        }
        let end = nextOffset
        let allSynchronized = failure == nil && !segments.contains(where: \.needsSynchronize)
        if allSynchronized { durableEnd = end }
        lock.unlock()
        if allSynchronized {
            lock.lock()
            checkpoint.recoveryPoint = max(checkpoint.recoveryPoint, segments.last?.baseOffset ?? 0)
            lock.unlock()
        }
        // A scheduled write skips once closed; wait out one already writing, then write the last state here.
        checkpointQueue.sync {}
        awaitFileRemovals()
        // Unlinks done after the flusher's last round: their directory fsync is close's.
        if failure == nil, locked({ directoryGeneration > directorySynchronizedGeneration }) {
            do {
                try Directory.synchronize(directory)
                locked { directorySynchronizedGeneration = directoryGeneration }
            } catch {
                logger.warning("could not fsync the log directory on close", metadata: ["directory": "\(directory)", "error": "\(error)"])
            }
        }
        if allSynchronized {
            for callback in leftover { callback(.success(())) }
            leftover.removeAll()
            writeCheckpoint()
        }
        for callback in leftover { callback(.failure(failure ?? .closed)) }
        if let failure { throw failure }
    }
}

/// An append's bytes in memory the log owns: copied once from the caller outside the lock, offsets written
/// into it under the lock, then written from it by the appender or, queued, by the flusher in one vectored
/// write with the rest of its group (which needs all their addresses at once, hence not an array).
final class AppendBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    var count: Int { buffer.count }

    init(copying source: [UInt8]) {
        buffer = .allocate(byteCount: source.count, alignment: 16)
        source.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    deinit { buffer.deallocate() }
}

/// The log's count of directory changes (see `PartitionLog.directoryChanges`); guarded by the log's lock.
final class DirectoryChanges: @unchecked Sendable {
    var generation: UInt64 = 0
}

/// A durability callback and the offset it waits for; `ofAppend` when an append registered it with itself.
struct Waiter {
    var offset: Offset
    var callback: @Sendable (Result<Void, LogError>) -> Void
    var ofAppend: Bool
}

/// An append with its offsets assigned, written or waiting in the write queue.
struct QueuedAppend {
    let bytes: AppendBuffer
    let headers: [RecordBatchHeader]
    let firstOffset: Offset
    let maxTimestamp: Int64
    let appendedAtMilliseconds: Int64
}

struct WeakSegment {
    weak var segment: Segment?
}

/// Drops a spare segment file's cached pages, a slice at a time with pauses between, until done or
/// cancelled (by the roll that takes the file, or by close).
///
/// Why: a spare's cached pages are old contents, cached in the small pages its appends made; a roll that
/// overwrote them in place would send each group write to the disk in that many pieces (on a virtual disk,
/// measurably slower: docs/BENCHMARKS.md, issue 3). Dropped, the new appends get pages of their own size,
/// and nothing reads the old bytes back, since appends pad to page ends (`Segment.padding(after:)`). In
/// slices, because dropping 128 MiB at once takes the kernel ~14 ms of CPU, which stalls a small box's
/// appenders for as long; cancellable and under a lock, because the hint also starts writeback of dirty
/// pages, which must not hit the file once it is a segment again. Holds the file open only until done or
/// cancelled, so a spare deleted for disk space frees its blocks at once.
final class SpareCacheDrop: @unchecked Sendable {
    private let lock = NSLock()
    private var file: SegmentFile?
    private let bytes: Int
    private var dropped = 0
    static let sliceBytes = 2 << 20

    init(file: SegmentFile, bytes: Int) {
        self.file = file
        self.bytes = bytes
    }

    /// Drops slice after slice, pausing a millisecond between them.
    func run() {
        while dropNextSlice() {
            Thread.sleep(forTimeInterval: 0.001)
        }
    }

    /// False once done or cancelled.
    private func dropNextSlice() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let file else { return false }
        let count = min(Self.sliceBytes, bytes - dropped)
        file.adviseDontNeed(at: dropped, count: count)
        dropped += count
        if dropped >= bytes { self.file = nil }
        return self.file != nil
    }

    /// Stops the drop; returns once no slice is being dropped.
    func cancel() {
        lock.lock()
        file = nil
        lock.unlock()
    }

    /// Testing only: the bytes dropped so far, and whether the drop has stopped (done or cancelled).
    var progressForTesting: (droppedBytes: Int, stopped: Bool) {
        lock.lock()
        defer { lock.unlock() }
        return (dropped, file == nil)
    }
}

/// A value shared between a callback and a waiting thread.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ newValue: Value) { lock.lock(); value = newValue; lock.unlock() }
    func get() -> Value { lock.lock(); defer { lock.unlock() }; return value }
    func update(_ body: (inout Value) -> Void) { lock.lock(); body(&value); lock.unlock() }
}
