import Dispatch
import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Under `fsync: always`, appends that wait for durability are queued and written by the flusher, the whole
/// group in one vectored write before its fsync (`append(_:partitionLeaderEpoch:whenDurable:)`).
@Suite struct WriteQueueTests {
    /// What durability callbacks saw, in the order they ran.
    final class Outcomes: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [Result<AppendResult, LogError>] = []
        private let group = DispatchGroup()

        func expect() { group.enter() }

        func record(_ result: Result<AppendResult, LogError>) {
            lock.lock()
            results.append(result)
            lock.unlock()
            group.leave()
        }

        /// Waits (a minute at most: a loaded machine's fsyncs can take seconds) for every expected callback;
        /// false on timeout.
        func wait() -> Bool { group.wait(timeout: .now() + 60) == .success }

        var all: [Result<AppendResult, LogError>] {
            lock.lock()
            defer { lock.unlock() }
            return results
        }
    }

    /// Runs `body` with a log under `always` in a directory of its own, whose rounds wait at their fsync for
    /// the gate; afterwards, however `body` ended, the gate opens (a held flusher would keep `close` waiting)
    /// and the log closes.
    static func withLogHeldAtFsync(_ name: String = #function, _ body: (PartitionLog, FlusherGate, String) throws -> Void) throws {
        let directory = try ScratchDirectory(name)
        let gate = FlusherGate()
        let log = try openHeldAtFsync(directory.path, gate: gate)
        defer {
            gate.open()
            try? log.close()
        }
        try body(log, gate, directory.path)
    }

    /// Opens a log under `always` whose rounds wait at their fsync for `gate`.
    static func openHeldAtFsync(
        _ directory: String, gate: FlusherGate, configuration: LogConfiguration = .testing(fsync: .always)
    ) throws -> PartitionLog {
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        log.fsyncHookForTesting = { gate.hold(at: .fsync) }
        return log
    }

    /// A log under `always` whose every fsync takes `fsyncMilliseconds` longer, so appends made meanwhile
    /// are likely queued (for tests whose assertions hold however the appends are grouped).
    static func slowFsyncConfiguration(fsyncMilliseconds: Int, segmentBytesMax: Int = 1 << 20) -> LogConfiguration {
        var configuration = LogConfiguration.testing(segmentBytesMax: segmentBytesMax, fsync: .always)
        configuration.simulatedFsyncDelayMilliseconds = fsyncMilliseconds
        return configuration
    }

    /// Appends one batch through the durable path; returns what the log must hold for it.
    @discardableResult
    static func appendAwaitingDurability(
        _ log: PartitionLog, _ records: [TestRecord], into model: inout [StoredBatch], outcomes: Outcomes
    ) throws -> StoredBatch {
        var bytes = try makeBatch(records)
        outcomes.expect()
        let result: AppendResult
        do {
            result = try log.append(bytes) { outcomes.record($0) }
        } catch {
            outcomes.record(.failure(error))  // never called back: balance the group here
            throw error
        }
        RecordBatchValidation.setBaseOffset(result.firstOffset.rawValue, in: &bytes)
        let stored = StoredBatch(baseOffset: result.firstOffset, bytes: bytes, records: records, header: try RecordBatchHeader(bytes: bytes))
        model.append(stored)
        return stored
    }

    /// Appends one batch through the durable path and waits until its round is held at its fsync by
    /// `gate`: the flusher has written the batch into the first segment, and the round stays under way
    /// until the test lets it through. Returns the batch and the segment's path.
    static func startRound(
        _ log: PartitionLog, gate: FlusherGate, in directory: String, _ records: [TestRecord], into model: inout [StoredBatch],
        outcomes: Outcomes, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (first: StoredBatch, segment: String) {
        let first = try appendAwaitingDurability(log, records, into: &model, outcomes: outcomes)
        try #require(gate.awaitArrival(1), "the first round never reached its fsync", sourceLocation: sourceLocation)
        return (first, directory + "/" + SegmentNames.log(0))
    }

    /// The group the flusher gathers next counts the appends that arrived during the last round and one
    /// for each append the round made durable (its appender comes back). Counting only what the last round
    /// carried (here 1) started the next fsync one appender short after any late return, and the same count
    /// then left one out round after round.
    @Test func theNextGroupCountsArrivalsDuringTheRoundAndTheAppendsItReleased() throws {
        try Self.withLogHeldAtFsync { log, gate, directory in
            var generator = SplitMix64(seed: 305)
            var model: [StoredBatch] = []
            let outcomes = Outcomes()
            _ = try Self.startRound(log, gate: gate, in: directory, randomRecords(count: 3, using: &generator), into: &model, outcomes: outcomes)
            // Two more while its fsync runs; a durability wait that is not an append's does not count.
            let released = DispatchSemaphore(value: 0)
            log.whenDurable(through: model[0].baseOffset) { _ in released.signal() }
            for _ in 0..<2 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 3, using: &generator), into: &model, outcomes: outcomes)
            }
            gate.letHeldThrough(.fsync)
            #expect(released.wait(timeout: .now() + 60) == .success, "the first round never ended")
            // The next round has started without the first appender (it never came back) and is held at its
            // fsync now: the target it was given stays until it ends.
            #expect(gate.awaitArrival(2), "the next round never reached its fsync")
            #expect(log.groupTargetForTesting == 3)
            gate.open()
            #expect(outcomes.wait(), "not every append became durable")
        }
    }

    @Test func appendsMadeDuringAnFsyncAreQueuedThenWrittenAsOneGroup() throws {
        try Self.withLogHeldAtFsync { log, gate, directory in
            var generator = SplitMix64(seed: 301)
            var model: [StoredBatch] = []
            let outcomes = Outcomes()
            // The first append starts a round: the flusher writes it and is held at its fsync.
            let (first, segment) = try Self.startRound(
                log, gate: gate, in: directory, randomRecords(count: 3, using: &generator), into: &model, outcomes: outcomes)
            #expect(fileSize(segment) == first.size)

            // Twenty more while that fsync runs: queued, not written — the file does not grow.
            for _ in 0..<20 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 3, using: &generator), into: &model, outcomes: outcomes)
            }
            #expect(fileSize(segment) == first.size, "appends under fsync always wrote the file themselves")
            #expect(log.logEndOffset == model.last!.nextOffset)
            // The backlog metric counts queued appends without writing them.
            let queuedBytes = model.dropFirst().reduce(0) { $0 + $1.size }
            #expect(log.approximateBytes(from: first.nextOffset) == queuedBytes)
            #expect(log.approximateBytes(from: model[10].baseOffset) == model[10...].reduce(0) { $0 + $1.size })
            #expect(log.approximateBytes(from: 0) == first.size + queuedBytes)
            #expect(fileSize(segment) == first.size)

            gate.open()
            #expect(outcomes.wait(), "durability callbacks did not all arrive")
            let results = outcomes.all
            #expect(results.count == 21)
            for (result, stored) in zip(results, model) {
                #expect((try? result.get())?.firstOffset == stored.baseOffset)
                #expect((try? result.get())?.lastOffset == stored.lastOffset)
            }
            // One write for the first append, one for the twenty: the queue is written as one group.
            let statistics = log.currentStatistics()
            #expect(statistics.queuedGroupWrites == 2)
            #expect(statistics.queuedAppendsWritten == 21)
            #expect(statistics.fsyncCount == 2)
            #expect(fileSize(segment) == model.reduce(0) { $0 + $1.size })
            #expect(try readEverything(log) == model.map(\.bytes))
        }
    }

    /// While the flusher gathers a group it writes what is queued so far with the lock released
    /// (`writeQueueHeadEarly`). Held in that write: the queue is not in the file yet, appenders still
    /// queue, and whatever needs the file's end — a read of the queued appends, an append that writes at
    /// once, an append that rolls — waits for the write instead of writing over it; afterwards every batch
    /// is where its offset says, in the file and after a reopen.
    @Test func whileTheFlusherWritesTheQueueEarlyNothingElseWritesAtTheFilesEnd() throws {
        let directory = try ScratchDirectory()
        let gate = FlusherGate()
        // The flusher gathers (and writes early) only for as long as the last fsync took: on a tmpfs, or a
        // disk with a fast cache, microseconds, gone before its thread is back to gather.
        let configuration = Self.slowFsyncConfiguration(fsyncMilliseconds: 50, segmentBytesMax: 16 << 10)
        var generator = SplitMix64(seed: 307)
        var model: [StoredBatch] = []
        let outcomes = Outcomes()
        do {
            let log = try Self.openHeldAtFsync(directory.path, gate: gate, configuration: configuration)
            // Gathering waits for its whole group however late the flusher's thread runs.
            log.gatherWindowMaxForTesting = .seconds(60)
            log.earlyWriteHookForTesting = { gate.hold(at: .earlyWrite) }
            defer {
                gate.open()
                try? log.close()
            }
            let (first, segment) = try Self.startRound(
                log, gate: gate, in: directory.path, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator),
                into: &model, outcomes: outcomes)
            // Six more while that fsync is held: the next group is these six and the first's appender (7);
            // six is past half of it, so the flusher writes them early, and is held there.
            for _ in 0..<6 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
            }
            let queued = model[1...].map(\.self)
            gate.letHeldThrough(.fsync)
            try #require(gate.awaitArrival(1, at: .earlyWrite), "the flusher never wrote the queue early")
            #expect(fileSize(segment) == first.size, "the held early write is already in the file")

            // Appenders still queue meanwhile.
            let alsoQueued = try Self.appendAwaitingDurability(log, randomRecords(count: 1, valueBytes: 100...100, using: &generator), into: &model, outcomes: outcomes)

            // Three that need the file's end, each on a thread of its own.
            let waiting = DispatchGroup()
            let read = LockedResult<LogReadResult>()
            let direct = LockedResult<AppendResult>()
            let rolled = LockedResult<AppendResult>()
            let directBytes = try makeBatch(randomRecords(count: 2, using: &generator))
            let rollingRecords = randomRecords(count: 1, valueBytes: 9000...9000, using: &generator)
            let rollingBytes = try makeBatch(rollingRecords)
            outcomes.expect()
            for work in 0..<3 {
                waiting.enter()
                Thread {
                    defer { waiting.leave() }
                    switch work {
                    case 0: read.set(Result { try log.read(from: queued[0].baseOffset, maxBytes: 1 << 20) })
                    case 1: direct.set(Result { try log.append(directBytes) })
                    default: rolled.set(Result { try log.append(rollingBytes) { outcomes.record($0) } })
                    }
                }.start()
            }
            #expect(waiting.wait(timeout: .now() + 0.3) == .timedOut, "something went on while the early write was held")
            #expect(fileSize(segment) == first.size)

            gate.open([.earlyWrite])
            #expect(waiting.wait(timeout: .now() + 60) == .success)
            let readResult = try #require(try read.get())
            let directResult = try #require(try direct.get())
            let rolledResult = try #require(try rolled.get())
            // The read waited for the early write and found the queued appends in place.
            #expect(Array(splitBatches(readResult.bytes).prefix(queued.count)) == queued.map(\.bytes))
            for (bytes, records, result) in [(directBytes, nil, directResult), (rollingBytes, rollingRecords, rolledResult)] {
                var stored = bytes
                RecordBatchValidation.setBaseOffset(result.firstOffset.rawValue, in: &stored)
                model.append(StoredBatch(
                    baseOffset: result.firstOffset, bytes: stored, records: records ?? [], header: try RecordBatchHeader(bytes: stored)))
            }
            model.sort { $0.baseOffset < $1.baseOffset }
            #expect(model.map(\.baseOffset).first == 0)
            #expect(zip(model, model.dropFirst()).allSatisfy { $0.nextOffset == $1.baseOffset }, "offsets are not contiguous")
            #expect(alsoQueued.baseOffset > queued.last!.baseOffset)
            #expect(try segmentBases(directory.path).count == 2, "the large append did not roll")

            gate.open([.fsync])
            #expect(outcomes.wait())
            #expect(outcomes.all.allSatisfy { (try? $0.get()) != nil })
            #expect(try readEverything(log) == model.map(\.bytes))
            try log.close()
        }
        try reopenExpectingIntact(directory.path, configuration, holding: model.map(\.bytes)).close()
    }

    @Test func queuedAppendsAreReadableBeforeTheFlusherWritesThem() throws {
        try Self.withLogHeldAtFsync { log, gate, directory in
            var generator = SplitMix64(seed: 302)
            var model: [StoredBatch] = []
            let outcomes = Outcomes()
            let (first, _) = try Self.startRound(
                log, gate: gate, in: directory, randomRecords(count: 3, using: &generator), into: &model, outcomes: outcomes)
            let later = randomRecords(count: 5, baseTimestamp: first.records[0].timestamp + 60_000, using: &generator)
            let queued = try Self.appendAwaitingDurability(log, later, into: &model, outcomes: outcomes)

            // Read your own append at once, though it waits for the next round: the read writes the queue.
            let read = try log.read(from: queued.baseOffset, maxBytes: 1 << 20)
            #expect(splitBatches(read.bytes) == [queued.bytes])
            #expect(read.nextOffset == queued.nextOffset)
            #expect(try log.offset(forTimestamp: queued.records[0].timestamp)?.offset == queued.baseOffset)
            #expect(log.durableEndOffset <= queued.baseOffset, "the queued append became durable before the held fsync ended")
            gate.open()
            #expect(outcomes.wait())
            #expect(outcomes.all.allSatisfy { (try? $0.get()) != nil })
            #expect(log.durableEndOffset == queued.nextOffset)
        }
    }

    @Test func aRollWritesTheQueueIntoTheSegmentItSeals() throws {
        let directory = try ScratchDirectory()
        let configuration = Self.slowFsyncConfiguration(fsyncMilliseconds: 100, segmentBytesMax: 16 << 10)
        var generator = SplitMix64(seed: 303)
        var model: [StoredBatch] = []
        let outcomes = Outcomes()
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            // ~1.1 KiB batches into 16 KiB segments: several rolls, most of them with appends queued.
            for _ in 0..<120 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
            }
            #expect(outcomes.wait())
            #expect(outcomes.all.allSatisfy { (try? $0.get()) != nil })
            let bases = try segmentBases(directory.path)
            #expect(bases.count >= 6)
            #expect(try readEverything(log, maxBytes: 3000) == model.map(\.bytes))
            // Every segment holds exactly the batches from its base to the next one's.
            for (base, batches) in layout(model, bases: bases) {
                #expect(fileSize(directory.path + "/" + SegmentNames.log(base)) == batches.reduce(0) { $0 + $1.batch.size })
            }
            try log.close()
        }
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(check.isIntact, "\(check.problems)")
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
    }

    @Test func closeWritesAndCommitsWhatIsQueued() throws {
        let directory = try ScratchDirectory()
        let configuration = Self.slowFsyncConfiguration(fsyncMilliseconds: 300)
        var generator = SplitMix64(seed: 304)
        var model: [StoredBatch] = []
        let outcomes = Outcomes()
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            for _ in 0..<10 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 2, using: &generator), into: &model, outcomes: outcomes)
            }
            try log.close()
            #expect(outcomes.wait())
            #expect(outcomes.all.count == 10)
            #expect(outcomes.all.allSatisfy { (try? $0.get()) != nil })
        }
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.logEndOffset == model.last!.nextOffset)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
    }

    @Test func spaceReservedForQueuedAppendsIsCountedAndLeftoversGoOnOpen() throws {
        let directory = try ScratchDirectory()
        // Recycling off: every segment is a new file, where queued appends reserve their space.
        var configuration = LogConfiguration.testing(fsync: .always)
        configuration.recycleSegments = false
        var generator = SplitMix64(seed: 305)
        var model: [StoredBatch] = []
        let outcomes = Outcomes()
        do {
            let gate = FlusherGate()
            let log = try Self.openHeldAtFsync(directory.path, gate: gate, configuration: configuration)
            defer { gate.open() }  // on a throw: the dropped log's flusher must not stay held
            let (first, segment) = try Self.startRound(
                log, gate: gate, in: directory.path, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), into: &model,
                outcomes: outcomes)
            // Queued behind the held fsync: not in the file yet, but their space is taken and counted.
            for _ in 0..<10 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
            }
            let queuedBytes = model.dropFirst().reduce(0) { $0 + $1.size }
            #expect(fileSize(segment) == first.size)
            #expect(Self.allocatedBytes(segment) >= first.size + queuedBytes)
            let statistics = log.currentStatistics()
            #expect(statistics.diskBytes == first.size + queuedBytes)
            gate.open()
            #expect(outcomes.wait())
            #expect(log.currentStatistics().diskBytes == model.reduce(0) { $0 + $1.size })
            try log.close()
        }
        // A crash between reserving and writing leaves blocks past the active segment's end: open gives
        // them back (reserved here the way the log does).
        let segment = directory.path + "/" + SegmentNames.log(0)
        let size = fileSize(segment)
        let file = try SegmentFile(path: segment, create: false)
        #expect(try file.reserve(256 << 10, at: size))
        #expect(Self.allocatedBytes(segment) >= size + (256 << 10))
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        #expect(Self.allocatedBytes(segment) <= Self.blockRounded(size) + 4096)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
    }

    /// A segment sealed while appends queued in it had reserved blocks past its end keeps them until the
    /// flusher's deferred trim; a crash after the roll and before that trim leaves them there, past the
    /// file's size, where no size check sees them. Open gives them back for every segment, whether it trusts
    /// the sealed segment (below the recovery point) or scans it (the checkpoint lost), as it does for the
    /// active one. Before, only the active segment's went: a sealed segment's stayed held, uncounted in
    /// `diskBytes`, until retention deleted the segment.
    @Test(arguments: [true, false]) func spaceReservedPastASealedSegmentsEndGoesOnOpen(withCheckpoint: Bool) throws {
        let directory = try ScratchDirectory()
        // Recycling off: every segment is a new file, where queued appends reserve their space.
        var configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always)
        configuration.recycleSegments = false
        var generator = SplitMix64(seed: 306)
        var model: [StoredBatch] = []
        let outcomes = Outcomes()
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            while try segmentBases(directory.path).count < 4 {
                try Self.appendAwaitingDurability(log, randomRecords(count: 2, valueBytes: 300...600, using: &generator), into: &model, outcomes: outcomes)
            }
            #expect(outcomes.wait())
            try log.close()
        }
        // The crash state, reserved here the way the log does: blocks past each sealed segment's end.
        let bases = try segmentBases(directory.path)
        let sealed = bases.dropLast().map { directory.sub(SegmentNames.log($0)) }
        let reservedBytes = 256 << 10
        for path in sealed {
            let size = fileSize(path)
            #expect(try SegmentFile(path: path, create: false).reserve(reservedBytes, at: size))
            try #require(Self.allocatedBytes(path) >= size + reservedBytes, "the reservation took no blocks")
            #expect(fileSize(path) == size)
        }
        if !withCheckpoint { try FileManager.default.removeItem(atPath: directory.sub("checkpoint")) }

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        for path in sealed {
            #expect(Self.allocatedBytes(path) <= Self.blockRounded(fileSize(path)) + 4096, "blocks past \(path)'s end are still held")
        }
        let logFiles = bases.map { directory.sub(SegmentNames.log($0)) }
        #expect(reopened.currentStatistics().diskBytes == logFiles.reduce(0) { $0 + fileSize($1) })
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
    }

    static func allocatedBytes(_ path: String) -> Int {
        var status = stat()
        guard stat(path, &status) == 0 else { return -1 }
        return Int(status.st_blocks) * 512
    }

    static func blockRounded(_ size: Int) -> Int { (size + 4095) & ~4095 }
}

/// A result one thread sets and another reads.
final class LockedResult<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Value, any Error>?

    func set(_ newValue: Result<Value, any Error>) {
        lock.lock()
        result = newValue
        lock.unlock()
    }

    /// The value, rethrowing the error; nil if never set.
    func get() throws -> Value? {
        lock.lock()
        defer { lock.unlock() }
        return try result?.get()
    }
}
