import DequeModule
import Foundation
import Logging
import OutpostCore
import OutpostLog

/// Threads that compress batches and append them to the partition logs, off the event loops so that
/// parsing and compression use different cores.
///
/// Partition p always goes to worker p mod N, whose queue is FIFO: batches of one partition are appended
/// in the order their loop produced them. The total queue depth drives the back-pressure gate; since
/// listeners stop taking input once it closes, the queue overshoots `high` by at most the batches already
/// open on the event loops.
final class AppendWorkers: @unchecked Sendable {
    private final class Worker: @unchecked Sendable {
        let condition = NSCondition()
        var queue = Deque<PendingBatch>()
        /// Batches the log voided after taking them, in the order their callbacks came (offset order),
        /// appended again before `queue`. Bounded by what was admitted: each was counted in `queued` once
        /// and is counted again while it waits here.
        var retries = Deque<PendingBatch>()
        var stopping = false
        var busy = false
    }

    private let logs: [PartitionLog]
    private let workers: [Worker]
    private let gate: BackPressureGate
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let compression: CompressionCodec
    private let compressionLevel: Int32
    private let budget: DiskBudget?
    private let countLock = NSLock()
    private var queued = 0
    /// Batches put back on a worker after the log voided them (`retryVoided`), for tests.
    private var voidedRetries = 0
    private var threads: [Thread] = []

    /// Delay before retrying an append that failed for lack of disk space; doubles up to the maximum.
    static let diskFullRetryMilliseconds = (initial: 50, maximum: 5_000)

    init(
        logs: [PartitionLog], workerCount: Int, gate: BackPressureGate, metrics: GatewayMetrics, logger: Logger,
        compression: CompressionCodec, compressionLevel: Int32, budget: DiskBudget? = nil
    ) {
        self.budget = budget
        self.logs = logs
        self.workers = (0..<max(1, workerCount)).map { _ in Worker() }
        self.gate = gate
        self.metrics = metrics
        self.logger = logger
        self.compression = compression
        self.compressionLevel = compressionLevel
    }

    func start() {
        for (index, worker) in workers.enumerated() {
            let thread = Thread { [self] in run(worker) }
            thread.name = "outpost-append-\(index)"
            threads.append(thread)
            thread.start()
        }
    }

    var voidedRetriesForTesting: Int {
        countLock.lock()
        defer { countLock.unlock() }
        return voidedRetries
    }

    var queuedBatches: Int {
        countLock.lock()
        defer { countLock.unlock() }
        return queued
    }

    /// Never blocks (it is called on event loops); see the type's note on the bound.
    func submit(_ batch: PendingBatch) {
        let worker = workers[batch.partition % workers.count]
        adjustQueued(by: 1)
        worker.condition.lock()
        worker.queue.append(batch)
        worker.condition.signal()
        worker.condition.unlock()
    }

    private func adjustQueued(by delta: Int) {
        countLock.lock()
        queued += delta
        let depth = queued
        countLock.unlock()
        metrics.queueDepth.record(depth)
        gate.update(queued: depth)
    }

    /// Waits until every submitted batch has been appended (not necessarily fsynced).
    func drain() {
        for worker in workers {
            worker.condition.lock()
            while !worker.queue.isEmpty || !worker.retries.isEmpty || worker.busy { worker.condition.wait() }
            worker.condition.unlock()
        }
    }

    /// Drains, then stops the threads: after it returns no worker appends any more (a batch the log voids
    /// from now on fails instead of coming back).
    func stop() {
        drain()
        for worker in workers {
            worker.condition.lock()
            worker.stopping = true
            worker.condition.broadcast()
            worker.condition.unlock()
        }
        // A voided batch put back between the drain and `stopping` is appended still, before the logs close.
        drain()
    }

    private func run(_ worker: Worker) {
        let compressor: GzipCompressor?
        do {
            compressor = compression == .gzip ? try GzipCompressor(level: compressionLevel) : nil
        } catch {
            logger.critical("cannot initialise zlib", metadata: ["error": "\(error)"])
            compressor = nil
        }
        while true {
            worker.condition.lock()
            while worker.queue.isEmpty && worker.retries.isEmpty && !worker.stopping { worker.condition.wait() }
            if worker.queue.isEmpty && worker.retries.isEmpty && worker.stopping {
                worker.condition.unlock()
                return
            }
            let batch = worker.retries.popFirst() ?? worker.queue.removeFirst()
            worker.busy = true
            worker.condition.unlock()

            if batch.voidedAttempts > 1 {
                // Voided again: give the disk time, as an append refused at once gets. (The first retry goes
                // at once: the failed write's cut often left the room it needs.)
                let delay = min(Self.diskFullRetryMilliseconds.initial << min(batch.voidedAttempts - 2, 16), Self.diskFullRetryMilliseconds.maximum)
                Thread.sleep(forTimeInterval: Double(delay) / 1000)
            }
            let done = appendWithRetry(batch, compressor: compressor, worker: worker)

            worker.condition.lock()
            worker.busy = false
            // Not done: voided batches of its partition came back meanwhile, and go first (they hold its
            // earlier points). It keeps its place in the queue count.
            if !done { worker.queue.prepend(batch) }
            worker.condition.broadcast()
            worker.condition.unlock()
            if done { adjustQueued(by: -1) }
        }
    }

    /// Compresses and appends one batch. A full disk is retried with backoff — the queue fills, the gate
    /// closes and the listeners push back — rather than dropping what listeners already took in. Other
    /// errors fail the batch: its waiters are told, and its points are counted as storage errors. Returns
    /// false, leaving the batch to the caller, when between two tries batches of its partition that the log
    /// had voided came back to the worker: they are appended first, so the partition keeps its order (the log
    /// refuses appends until it has answered the ones it voided).
    private func appendWithRetry(_ pending: PendingBatch, compressor: GzipCompressor?, worker: Worker) -> Bool {
        var builder = pending.builder
        let uncompressed = builder.uncompressedRecordBytes
        let recordCount = Int(builder.recordCount)
        let bytes: [UInt8]
        do {
            bytes = try builder.build(compression: compressor == nil ? .none : compression, compressor: compressor)
        } catch {
            fail(pending, error: .invalidBatch(error), recordCount: recordCount)
            return true
        }
        let log = logs[pending.partition]
        // Within the disk budget first: blocks (back-pressure) or drops the oldest, per the overflow policy.
        budget?.makeRoom(for: bytes.count)
        var delay = Self.diskFullRetryMilliseconds.initial
        var loggedDiskFull = false
        while true {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                _ = try log.append(bytes, whenDurable: commitCallback(for: pending))
                metrics.appendLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
                metrics.batchesAppended.increment()
                metrics.batchBytes.record(bytes.count)
                metrics.batchRecords.record(recordCount)
                if !bytes.isEmpty { metrics.compressionRatio.record(Double(uncompressed) / Double(bytes.count)) }
                if loggedDiskFull { logger.notice("disk space is back; appends resumed", metadata: ["partition": "\(pending.partition)"]) }
                return true
            } catch {
                if case .diskFull = error {
                    metrics.storageErrors.increment()
                    if !loggedDiskFull {
                        logger.error("disk full: ingest is paused until appends succeed again", metadata: [
                            "partition": "\(pending.partition)", "log": "\(log.directory)",
                        ])
                        loggedDiskFull = true
                    }
                    // Retention may free space (it never deletes unreplicated data, see the floor).
                    log.enforceRetention()
                    Thread.sleep(forTimeInterval: Double(delay) / 1000)
                    delay = min(delay * 2, Self.diskFullRetryMilliseconds.maximum)
                    worker.condition.lock()
                    let voidedCameBack = worker.retries.contains { $0.partition == pending.partition }
                    worker.condition.unlock()
                    if voidedCameBack { return false }
                    continue
                }
                fail(pending, error: error, recordCount: recordCount)
                return true
            }
        }
    }

    /// What runs once a batch is committed (or can no longer be): metrics, then the waiters' completions.
    private func commitCallback(for pending: PendingBatch) -> @Sendable (Result<AppendResult, LogError>) -> Void {
        let metrics = self.metrics
        let completions = pending.completions
        let mqttTimes = pending.mqttReceivedUptimes
        let counts = pending.sourceCounts
        let opened = pending.openedUptime
        return { [weak self] result in
            if case .failure(.diskFull) = result, let self, self.retryVoided(pending) { return }
            let now = DispatchTime.now().uptimeNanoseconds
            if case .success = result {
                metrics.commitLatency.recordNanoseconds(Int64(now - min(opened, now)))
                for received in mqttTimes { metrics.pubackToCommit.recordNanoseconds(Int64(now - min(received, now))) }
                for source in IngestSource.allCases where counts[source.index] > 0 {
                    metrics.committed[source.index].increment(by: counts[source.index])
                }
            }
            for completion in completions { completion.batchFinished(result.map { _ in }) }
        }
    }

    /// Puts a batch the log voided (a queued group whose write hit a full disk: a copy-on-write file
    /// system allocates anew when overwriting) back on its worker, to be appended again after a backoff;
    /// false once the workers are stopping (the batch then fails). Runs on the log's flusher thread, so it
    /// only queues.
    private func retryVoided(_ pending: PendingBatch) -> Bool {
        let worker = workers[pending.partition % workers.count]
        var retry = pending
        retry.voidedAttempts += 1
        worker.condition.lock()
        guard !worker.stopping else {
            worker.condition.unlock()
            return false
        }
        adjustQueued(by: 1)  // before the worker can take it (and count it out)
        worker.retries.append(retry)
        worker.condition.signal()
        worker.condition.unlock()
        countLock.lock()
        voidedRetries += 1
        countLock.unlock()
        metrics.storageErrors.increment()
        logger.error("disk full: a batch the log had taken could not be written; appending it again", metadata: [
            "partition": "\(pending.partition)", "records": "\(pending.builder.recordCount)", "attempt": "\(retry.voidedAttempts)",
        ])
        return true
    }

    private func fail(_ pending: PendingBatch, error: LogError, recordCount: Int) {
        metrics.storageErrors.increment()
        logger.error("a batch could not be stored", metadata: [
            "partition": "\(pending.partition)", "records": "\(recordCount)", "error": "\(error)",
        ])
        for completion in pending.completions { completion.batchFinished(.failure(error)) }
    }
}
