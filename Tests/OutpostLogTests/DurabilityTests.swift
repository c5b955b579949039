import Dispatch
import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// fsync policies, group commit and "durable up to offset X".
@Suite struct DurabilityTests {
    /// Collects what durability callbacks saw, from whichever thread they run on.
    final class Observations: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(offset: Offset, durableEnd: Offset, succeeded: Bool)] = []

        func add(_ offset: Offset, durableEnd: Offset, succeeded: Bool) {
            lock.lock()
            entries.append((offset, durableEnd, succeeded))
            lock.unlock()
        }

        var all: [(offset: Offset, durableEnd: Offset, succeeded: Bool)] {
            lock.lock()
            defer { lock.unlock() }
            return entries
        }
    }

    @Test func alwaysCompletesDurabilityOnlyOnceTheOffsetIsFsynced() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .always))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 51)
        let observations = Observations()
        let done = DispatchGroup()
        var model: [StoredBatch] = []
        for _ in 0..<50 {
            let stored = try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)
            done.enter()
            log.whenDurable(through: stored.lastOffset) { result in
                // Runs on the flusher thread, after the fsync: the durable end must already cover the offset.
                observations.add(stored.lastOffset, durableEnd: log.durableEndOffset, succeeded: (try? result.get()) != nil)
                done.leave()
            }
        }
        #expect(done.wait(timeout: .now() + 60) == .success, "not every durability callback ran")
        let seen = observations.all
        #expect(seen.count == 50)
        for entry in seen {
            #expect(entry.succeeded)
            #expect(entry.durableEnd > entry.offset, "callback for \(entry.offset) ran with durable end \(entry.durableEnd)")
        }
        let statistics = log.currentStatistics()
        #expect(statistics.fsyncCount >= 1)
        #expect(statistics.durableEndOffset == log.logEndOffset)

        // Already durable: the callback runs at once, on the caller's thread.
        let immediate = LockedBox(false)
        log.whenDurable(through: 0) { _ in immediate.set(true) }
        #expect(immediate.get())
    }

    @Test func awaitDurableReturnsOnceTheOffsetIsCovered() async throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .always))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 52)
        var model: [StoredBatch] = []
        for _ in 0..<20 {
            let stored = try appendBatch(log, randomRecords(count: 4, using: &generator), into: &model)
            try await log.awaitDurable(through: stored.lastOffset)
            #expect(log.durableEndOffset > stored.lastOffset)
        }
    }

    /// Eight appenders each wait for their own append to be durable before the next: under `always`, the
    /// appends that arrive while an fsync runs share the next one, so there are far fewer fsyncs than appends.
    @Test func concurrentAppendersShareFsyncs() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .always))
        defer { try? log.close() }
        let appenders = 8
        let appendsEach = 150
        let batch = try makeBatch(
            (0..<50).map { TestRecord(key: Array("dev-\($0 % 7)".utf8), value: Array(repeating: UInt8(ascii: "x"), count: 90), timestamp: 1_732_300_000_000 + Int64($0)) },
            compression: .gzip)
        let observations = Observations()
        let failures = LockedBox(0)
        @Sendable func appendAndWait() {
            for _ in 0..<appendsEach {
                guard let result = try? log.append(batch) else {
                    failures.set(failures.get() + 1)
                    continue
                }
                let durable = DispatchSemaphore(value: 0)
                log.whenDurable(through: result.lastOffset) { outcome in
                    observations.add(result.lastOffset, durableEnd: log.durableEndOffset, succeeded: (try? outcome.get()) != nil)
                    durable.signal()
                }
                durable.wait()
            }
        }
        // Real threads, not concurrentPerform (which runs only as many iterations at once as there are cores).
        let finished = DispatchGroup()
        for index in 0..<appenders {
            finished.enter()
            let thread = Thread {
                defer { finished.leave() }
                appendAndWait()
            }
            thread.name = "appender-\(index)"
            thread.start()
        }
        finished.wait()
        #expect(failures.get() == 0)
        let seen = observations.all
        #expect(seen.count == appenders * appendsEach)
        #expect(seen.allSatisfy { $0.succeeded && $0.durableEnd > $0.offset })
        let statistics = log.currentStatistics()
        #expect(statistics.appendedBatches == appenders * appendsEach)
        #expect(statistics.fsyncCount >= 1)
        #expect(
            statistics.fsyncCount * 2 <= statistics.appendedBatches,
            "\(statistics.fsyncCount) fsyncs for \(statistics.appendedBatches) appends: appends are not sharing fsyncs")
        #expect(try readEverything(log).count == appenders * appendsEach)
    }

    @Test func intervalMakesAppendsDurableAtTheNextPeriodicFsync() async throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .interval(milliseconds: 20)))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 53)
        var model: [StoredBatch] = []
        for _ in 0..<10 {
            let stored = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            // Nothing but the periodic fsync makes this return.
            try await log.awaitDurable(through: stored.lastOffset)
            #expect(log.durableEndOffset > stored.lastOffset)
        }
    }

    @Test func intervalDoesNotFsyncBeforeTheIntervalButFlushDoes() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .interval(milliseconds: 600_000)))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 54)
        var model: [StoredBatch] = []
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        try log.flush()
        #expect(log.durableEndOffset == log.logEndOffset)
        // The flusher's very first fsync may run at once, and a flush() that races with an fsync in flight can
        // leave one extra request behind; an append wakes the flusher so such a leftover is used up here. Wait
        // until no request is left and no round is under way (however long a loaded machine's fsync takes),
        // so that no round started before this point lands in the window measured below.
        let settle = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        log.whenDurable(through: settle.lastOffset) { _ in }
        let settleDeadline = Date().addingTimeInterval(60)
        while !log.flusherQuiescentForTesting && Date() < settleDeadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(log.flusherQuiescentForTesting, "the flusher did not settle within a minute")
        let first = log.durableEndOffset
        let fsyncsAfterFlush = log.currentStatistics().fsyncCount

        let stored = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        let fired = LockedBox(false)
        log.whenDurable(through: stored.lastOffset) { _ in fired.set(true) }
        // Time for a wrong fsync to show; a descheduled test thread only shortens the look, nothing is due.
        Thread.sleep(forTimeInterval: 0.3)
        #expect(log.durableEndOffset == first, "fsynced before the 10-minute interval elapsed")
        #expect(!fired.get())
        #expect(log.currentStatistics().fsyncCount == fsyncsAfterFlush)
        try log.flush()
        #expect(log.durableEndOffset == log.logEndOffset)
        #expect(fired.get())
    }

    /// Under `interval`, written-but-unsynced bytes are bounded: past `unsynchronizedBytesMax` an append
    /// waits for an fsync instead of letting the crash-loss window grow, even long before the interval.
    @Test func intervalPushesBackOnceTooMuchIsUnsynced() throws {
        let directory = try ScratchDirectory()
        var configuration = LogConfiguration.testing(fsync: .interval(milliseconds: 600_000))
        configuration.unsynchronizedBytesMax = 64 << 10
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 58)
        var model: [StoredBatch] = []
        var worst = 0
        for _ in 0..<100 {
            let stored = try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model)
            let durable = log.durableEndOffset
            let unsynced = model.filter { $0.baseOffset >= durable }.reduce(0) { $0 + $1.size }
            worst = max(worst, unsynced)
            #expect(unsynced <= (64 << 10) + stored.size, "\(unsynced) bytes written but not fsynced")
        }
        #expect(log.currentStatistics().fsyncCount >= 10, "800 KiB through a 64 KiB bound needs fsyncs")
        #expect(worst > 0)
    }

    @Test func neverLeavesDurabilityToFlushAndClose() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .never))
        var generator = SplitMix64(seed: 55)
        var model: [StoredBatch] = []
        let start = log.durableEndOffset
        let stored = try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)
        let fired = LockedBox<Result<Void, LogError>?>(nil)
        log.whenDurable(through: stored.lastOffset) { fired.set($0) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(log.durableEndOffset == start)
        #expect(fired.get() == nil)
        #expect(log.currentStatistics().fsyncCount == 0)

        try log.flush()
        #expect(log.durableEndOffset == log.logEndOffset)
        #expect(log.currentStatistics().fsyncCount == 1)
        #expect(fired.get().map { (try? $0.get()) != nil } == true)
        try log.flush()  // nothing new: no fsync
        #expect(log.currentStatistics().fsyncCount == 1)

        // Waiters still pending at close are released by close's final fsync.
        let second = try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)
        let atClose = LockedBox<Result<Void, LogError>?>(nil)
        log.whenDurable(through: second.lastOffset) { atClose.set($0) }
        try log.close()
        #expect(atClose.get().map { (try? $0.get()) != nil } == true)
        // And after close, a new waiter is told the log is closed.
        let afterClose = LockedBox<Result<Void, LogError>?>(nil)
        log.whenDurable(through: second.lastOffset + 100) { afterClose.set($0) }
        if case .failure(.closed)? = afterClose.get() {} else { Issue.record("expected .closed, got \(String(describing: afterClose.get()))") }

        let reopened = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .never))
        defer { try? reopened.close() }
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    @Test func neverStillFsyncsSealedSegmentsOnRoll() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(segmentBytesMax: 4096, fsync: .never))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 56)
        var model: [StoredBatch] = []
        // Let the flusher thread start and go idle first, so the roll itself has to get the fsync going.
        Thread.sleep(forTimeInterval: 0.2)
        while try segmentBases(directory.path).count < 2 {
            try appendBatch(log, randomRecords(count: 5, valueBytes: 100...100, using: &generator), into: &model)
        }
        let rolledAt = try segmentBases(directory.path)[1]
        // The flusher picks the sealed segment up by itself, and the checkpoint (two fsyncs of its own)
        // follows; wait for both, bounded generously for a loaded machine.
        let deadline = ContinuousClock.now + .seconds(60)
        let checkpointPath = directory.path + "/checkpoint"
        func recordedRecoveryPoint() -> String {
            let text = (try? String(contentsOfFile: checkpointPath, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix("recovery-point ") }
            return line.map { String($0.dropFirst("recovery-point ".count)) } ?? "missing"
        }
        while (log.durableEndOffset < rolledAt || recordedRecoveryPoint() != String(rolledAt.rawValue)) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(log.durableEndOffset >= rolledAt)
        // The recovery point recorded in the checkpoint moves past the sealed segment.
        #expect(recordedRecoveryPoint() == String(rolledAt.rawValue))
    }

    /// `deinit` says it stops a forgotten flusher: a log dropped without `close()` must be released, and its
    /// thread and open files with it (a leaked descriptor keeps a deleted segment's disk space in use).
    @Test func aLogDroppedWithoutCloseIsReleased() throws {
        let directory = try ScratchDirectory()
        weak var weakLog: PartitionLog?
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .always))
            var generator = SplitMix64(seed: 57)
            var model: [StoredBatch] = []
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            weakLog = log
        }
        // The flusher may hold the log through an idle wait (a second at most) and a round's fsync, which a
        // loaded machine can stretch to seconds: so a generous bound, polled.
        let deadline = Date().addingTimeInterval(30)
        while weakLog != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(weakLog == nil, "the log is still alive 30 s after its last reference was dropped")
    }

    /// A log dropped without `close()` still answers whoever waits for durability: the fsync `deinit`
    /// does makes their offsets durable, and a wait for an offset never assigned fails. Before, `deinit`
    /// dropped the waiters, and an `awaitDurable` hung for ever.
    @Test func aLogDroppedWithoutCloseAnswersItsWaiters() throws {
        let directory = try ScratchDirectory()
        let answers = LockedBox<[Result<Void, LogError>]>([])
        let answered = DispatchGroup()
        var end: Offset = 0
        do {
            // `never`: nothing becomes durable before the log goes, so both waits are still pending then.
            let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .never))
            var generator = SplitMix64(seed: 58)
            var model: [StoredBatch] = []
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            end = log.logEndOffset
            for offset in [Offset(end.rawValue - 1), Offset(end.rawValue + 5)] {
                answered.enter()
                log.whenDurable(through: offset) { result in
                    answers.update { $0.append(result) }
                    answered.leave()
                }
            }
        }
        #expect(answered.wait(timeout: .now() + 30) == .success, "a waiter of a dropped log was never answered")
        let results = answers.get()
        #expect(results.count == 2)
        #expect(results.filter { (try? $0.get()) != nil }.count == 1, "the appended offset is durable: \(results)")
        let reopened = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .never))
        #expect(reopened.logEndOffset == end)
        try reopened.close()
    }

    /// Retention unlinks the files of the segments it deletes on a queue, off the append lock. A log dropped
    /// without `close()` finishes those unlinks before its `deinit` returns, as `close()` does. Before, they
    /// could still be queued when the directory was opened again, and then unlinked a segment the new log
    /// had just recovered and held (here its first: the next open would start the log later).
    @Test func aLogDroppedWithoutCloseFinishesRetentionsUnlinksBeforeAReopen() throws {
        let directory = try ScratchDirectory()
        var configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        configuration.recycleSegments = false
        let gate = DispatchSemaphore(value: 0)
        let answered = DispatchSemaphore(value: 0)
        let removals: DispatchQueue
        var model: [StoredBatch] = []
        weak var weakLog: PartitionLog?
        // The last reference is dropped on a thread of its own: a deinit that waits for the held queue must
        // not hold up this test, which opens the gate (deinit runs on whichever thread drops it last).
        let holder = LockedBox<PartitionLog?>(nil)
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            holder.set(log)
            // Retention's unlinks wait behind this until the gate opens.
            removals = log.fileRemovalQueueForTesting
            removals.async { gate.wait() }
            var generator = SplitMix64(seed: 59)
            for _ in 0..<200 where log.logStartOffset == 0 {
                try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
            }
            try #require(log.logStartOffset > 0, "retention never deleted a segment")
            #expect(FileManager.default.fileExists(atPath: directory.sub(SegmentNames.log(0))), "the unlink should still be queued")
            // Answered at the end of deinit.
            log.whenDurable(through: log.logEndOffset + 1000) { _ in answered.signal() }
            weakLog = log
        }
        Thread { holder.set(nil) }.start()
        // The flusher may hold the log for a second or so; then deinit runs. A deinit that waits for the
        // queued unlinks does not finish until the gate opens.
        let deadline = Date().addingTimeInterval(30)
        while weakLog != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(weakLog == nil, "the log was never released")
        if answered.wait(timeout: .now() + 1) == .timedOut {
            gate.signal()
            try #require(answered.wait(timeout: .now() + 30) == .success, "deinit never finished")
        }

        // Reopened as soon as the dropped log is gone, as a restart of the partition would.
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        gate.signal()
        removals.sync {}
        let start = reopened.logStartOffset
        #expect(FileManager.default.fileExists(atPath: directory.sub(SegmentNames.log(start))), "a segment the reopened log holds was unlinked under it")
        #expect(try readEverything(reopened) == model.filter { $0.baseOffset >= start }.map(\.bytes))
        try reopened.close()
        let again = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? again.close() }
        #expect(again.logStartOffset == start)
    }

    /// A round's fsyncs (after a roll: the directory, the sealed segment with its deferred trim, the new
    /// segment) run at once: each target is done, and the round fails with a failure among them. A failed
    /// trim is no fsync's failure: reported apart, and its file is fsynced all the same.
    @Test func aRoundsFsyncsAllRunAndAFailureFailsTheRound() throws {
        let directory = try ScratchDirectory()
        let sealedPath = directory.sub("sealed.log")
        let activePath = directory.sub("active.log")
        try writeFile(sealedPath, [UInt8](repeating: 0x5A, count: 8192))
        try writeFile(activePath, [UInt8](repeating: 0x5A, count: 8192))
        let sealed = try SegmentFile(path: sealedPath, create: false)
        let active = try SegmentFile(path: activePath, create: false)
        let done = PartitionLog.synchronize([.directory(directory.path), .file(sealed, truncatingTo: 100), .file(active, truncatingTo: nil)])
        #expect(done.failure == nil)
        #expect(done.failedTrims.isEmpty)
        #expect(fileSize(sealedPath) == 100, "the deferred trim was not applied")
        #expect(fileSize(activePath) == 8192)

        let failed = PartitionLog.synchronize([.directory(directory.sub("gone")), .file(sealed, truncatingTo: 50)]).failure
        guard case .io(let operation, let path, _)? = failed else {
            Issue.record("expected the directory's failure, got \(String(describing: failed))")
            return
        }
        #expect(operation == "open directory" && path == directory.sub("gone"))
        #expect(fileSize(sealedPath) == 50, "a failing target must not keep the others from running")

        let trimError = LogError.io(operation: "truncate", path: sealedPath, errno: EIO)
        let untrimmed = PartitionLog.synchronize(
            [.file(sealed, truncatingTo: 20), .file(active, truncatingTo: nil)], trimHook: { () throws(LogError) in throw trimError })
        #expect(untrimmed.failure == nil, "a failed trim failed the round")
        #expect(untrimmed.failedTrims.count == 1)
        #expect(untrimmed.failedTrims[0] == trimError)
        #expect(fileSize(sealedPath) == 50)

        // A file whose trim and fdatasync both fail: the fdatasync's failure is the round's.
        let fdatasyncError = LogError.io(operation: "fdatasync", path: sealedPath, errno: EIO)
        let unsynchronized = PartitionLog.synchronize(
            [.file(sealed, truncatingTo: 20)], trimHook: { () throws(LogError) in throw trimError },
            fileSynchronizeHook: { _ throws(LogError) in throw fdatasyncError })
        #expect(unsynchronized.failure == fdatasyncError)
        #expect(unsynchronized.failedTrims[0] == trimError)
    }

    /// A failed fdatasync of a segment file in a flusher round (EIO, from the testing hook) fails the log,
    /// end to end under `always`: six appenders wait for durability, some in the failing round's group and
    /// the rest queued behind it (the round is held at its fsync until all have appended). Each is answered
    /// exactly once, with the failure; the durable end stays where it was; flush() and close() throw it;
    /// appends are refused, a refused one never called back; a new durability wait fails at once. A reopen
    /// recovers the log and loses nothing acknowledged before the failure.
    @Test func aFailedFdatasyncFailsTheLogAndEveryAppendWaitingForIt() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(fsync: .always)
        var generator = SplitMix64(seed: testSeed(61))
        let acknowledgements = EarlyWriteConcurrencyTests.Acknowledgements()
        var durable: [StoredBatch] = []
        let waiting = LockedBox<[EarlyWriteConcurrencyTests.TrackedAppend]>([])
        var refusedID = -1
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            let gate = FlusherGate()
            defer {
                gate.open()
                try? log.close()
            }
            for _ in 0..<10 {
                try SegmentRecyclingTests.appendDurably(log, randomRecords(count: 3, using: &generator), into: &durable)
            }
            let durableEnd = log.durableEndOffset
            try #require(durableEnd == log.logEndOffset)

            log.fileSynchronizeHookForTesting = { path throws(LogError) in throw .io(operation: "fdatasync", path: path, errno: EIO) }
            log.fsyncHookForTesting = { gate.hold(at: .fsync) }
            let appenders = 6
            let batches = (0..<appenders).map { _ in randomRecords(count: 2, using: &generator) }
            let appended = DispatchGroup()
            let finished = DispatchGroup()
            let appendErrors = LockedBox<[any Error]>([])
            for records in batches {
                appended.enter()
                finished.enter()
                Thread {
                    defer { finished.leave() }
                    do {
                        let append = try EarlyWriteConcurrencyTests.appendTracked(log, records, acknowledgements)
                        waiting.update { $0.append(append) }
                        appended.leave()
                        // Waits for its answer as an appender would.
                        _ = acknowledgements.awaitAnswers([append.id])
                    } catch {
                        appendErrors.update { $0.append(error) }
                        appended.leave()
                    }
                }.start()
            }
            try #require(gate.awaitArrival(1), "no round reached its fsync")
            try #require(appended.wait(timeout: .now() + 60) == .success, "an appender never returned")
            try #require(appendErrors.get().isEmpty, "\(appendErrors.get())")
            // The round is held before its fsync: nothing can have answered them yet.
            #expect(waiting.get().allSatisfy { acknowledgements.answers(of: $0.id).isEmpty }, "an append was answered before its fsync")

            gate.open()
            #expect(finished.wait(timeout: .now() + 60) == .success, "an appender was never answered")
            let failure = try #require(log.failureReason, "a failed fdatasync did not fail the log")
            guard case .failed(let reason) = failure else {
                Issue.record("expected .failed, got \(failure)")
                return
            }
            #expect(reason.contains("fdatasync"), "\(reason)")
            #expect(log.durableEndOffset == durableEnd)

            #expect(throws: failure) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator))) }
            let refused = acknowledgements.register()
            refusedID = refused.id
            #expect(throws: failure) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator)), whenDurable: refused.callback) }
            let lateWait = LockedBox<Result<Void, LogError>?>(nil)
            log.whenDurable(through: log.logEndOffset) { lateWait.set($0) }
            #expect(lateWait.get().map { if case .failure(failure) = $0 { true } else { false } } == true, "\(String(describing: lateWait.get()))")
            #expect(throws: failure) { try log.flush() }
            #expect(throws: failure) { try log.close() }
        }
        // close() returned: every answer has run.
        let failed = waiting.get().sorted { $0.stored.baseOffset < $1.stored.baseOffset }
        #expect(failed.count == 6)
        for append in failed {
            let answers = acknowledgements.answers(of: append.id)
            #expect(answers.count == 1, "append at \(append.stored.baseOffset) answered \(answers.count) times")
            guard case .failure(.failed)? = answers.first else {
                Issue.record("append at \(append.stored.baseOffset): expected the log's failure, got \(String(describing: answers.first))")
                continue
            }
        }
        #expect(acknowledgements.answers(of: refusedID).isEmpty, "a refused append was called back")

        // What the failed round wrote may have reached the file; nothing acknowledged before it is lost.
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.failureReason == nil)
        let batches = try readEverything(reopened)
        #expect(Array(batches.prefix(durable.count)) == durable.map(\.bytes), "a batch acknowledged before the failure is lost")
        let unacknowledged = Array(batches.dropFirst(durable.count))
        #expect(unacknowledged == failed.prefix(unacknowledged.count).map(\.stored.bytes))
        try SegmentRecyclingTests.appendDurably(reopened, randomRecords(count: 2, using: &generator), into: &durable)
        #expect(reopened.durableEndOffset == reopened.logEndOffset)
    }

    /// A round whose sealed segment's deferred trim fails and whose fdatasync of that same file fails (both
    /// from the testing hooks): the failed trim alone would not fail the log, the fdatasync's failure does.
    /// The append that rolled, waiting for that round, gets the failure; a reopen cuts the sealed segment's
    /// old contents and keeps every batch acknowledged before.
    @Test func aFailedTrimInTheRoundOfAFailedFdatasyncStillFailsTheLog() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 12_288)
        var generator = SplitMix64(seed: testSeed(62))
        let acknowledgements = EarlyWriteConcurrencyTests.Acknowledgements()
        var durable: [StoredBatch] = []
        var rolled: EarlyWriteConcurrencyTests.TrackedAppend?
        var start: Offset = 0
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            defer { try? log.close() }
            _ = try SegmentRecyclingTests.fillUntilSpare(log, directory.path, model: &durable, using: &generator)
            let before = try #require(try segmentBases(directory.path).last)
            while try segmentBases(directory.path).last == before {
                try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &durable)
            }
            let recycled = try #require(try segmentBases(directory.path).last)
            let recycledPath = directory.sub(SegmentNames.log(recycled))
            try log.flush()

            let trims = LockedBox(0)
            let failedFdatasyncs = LockedBox(0)
            log.trimHookForTesting = { () throws(LogError) in
                trims.update { $0 += 1 }
                throw .io(operation: "truncate", path: "trimHookForTesting", errno: EIO)
            }
            log.fileSynchronizeHookForTesting = { path throws(LogError) in
                guard path == recycledPath else { return }
                failedFdatasyncs.update { $0 += 1 }
                throw .io(operation: "fdatasync", path: path, errno: EIO)
            }
            // Too large to follow the recycled segment's batch: it rolls, and the next round carries the
            // sealed segment's trim and fdatasync.
            let append = try EarlyWriteConcurrencyTests.appendTracked(log, randomRecords(count: 1, valueBytes: 3600...3600, using: &generator), acknowledgements)
            rolled = append
            try #require(try segmentBases(directory.path).last == append.stored.baseOffset, "the large batch did not roll")
            #expect(acknowledgements.awaitAnswers([append.id]), "the rolling append was never answered")
            #expect(trims.get() == 1 && failedFdatasyncs.get() == 1, "trims \(trims.get()), failed fdatasyncs \(failedFdatasyncs.get())")
            let failure = try #require(log.failureReason, "the failed fdatasync did not fail the log")
            #expect("\(failure)".contains("fdatasync"), "\(failure)")
            #expect(log.currentStatistics().trimFailures == 0, "the round was handled as a failed trim")
            #expect(throws: failure) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator))) }
            start = log.logStartOffset
            #expect(throws: failure) { try log.close() }
        }
        let append = try #require(rolled)
        let answers = acknowledgements.answers(of: append.id)
        #expect(answers.count == 1, "answered \(answers.count) times")
        guard case .failure(.failed)? = answers.first else {
            Issue.record("expected the log's failure, got \(String(describing: answers.first))")
            return
        }

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.failureReason == nil)
        #expect(reopened.logStartOffset == start)
        let kept = durable.filter { $0.baseOffset >= start }.map(\.bytes)
        let batches = try readEverything(reopened)
        #expect(Array(batches.prefix(kept.count)) == kept, "a batch acknowledged before the failure is lost")
        #expect(batches.dropFirst(kept.count).allSatisfy { $0 == append.stored.bytes } && batches.count <= kept.count + 1)
    }

    @Test func fsyncPoliciesParse() {
        #expect(FsyncPolicy(parsing: "always") == .always)
        #expect(FsyncPolicy(parsing: "never") == .never)
        #expect(FsyncPolicy(parsing: "interval(5ms)") == .interval(milliseconds: 5))
        #expect(FsyncPolicy(parsing: "interval(5)") == .interval(milliseconds: 5))
        #expect(FsyncPolicy(parsing: "250ms") == .interval(milliseconds: 250))
        #expect(FsyncPolicy(parsing: "sometimes") == nil)
        #expect(FsyncPolicy(parsing: "interval(0)") == nil)
    }
}
