import Dispatch
import Foundation
import OutpostCore
import OutpostTestSupport
import Testing

@testable import OutpostLog

/// While the flusher gathers a group under `fsync: always` it writes the queue's head early, with the append
/// lock released (`PartitionLog.writeQueueHeadEarly`); whatever needs the file's end waits for that write.
/// `WriteQueueTests` holds it for one read, one direct write and one roll. These hold it for two rolls, for a
/// write that a full disk fails with appends queued behind it, and for close. Each checks the outcome, not
/// the mechanism: every append is answered exactly once, with success only when it is durable and reads
/// back at its offset; offsets are dense; the closed log verifies and reopens with nothing cut.
@Suite(.serialized) struct EarlyWriteConcurrencyTests {
    /// Blocks the durability callback of one append, on the thread that calls it, until the test lets it
    /// return (see `Acknowledgements.hold(_:)`).
    final class AnswerHold: @unchecked Sendable {
        private let entered = DispatchSemaphore(value: 0)
        private let released = DispatchSemaphore(value: 0)

        /// In the callback: says it is there, then waits to be released.
        fileprivate func block() {
            entered.signal()
            released.wait()
        }

        /// Waits (a minute at most) until the callback is blocked here; false on timeout.
        func awaitEntered() -> Bool { entered.wait(timeout: .now() + 60) == .success }

        /// Lets the callback return, or not block if it has not arrived yet. A second call is harmless.
        func release() { released.signal() }
    }

    /// Every durability callback, kept by the append it belongs to: an append answered twice, or never,
    /// shows.
    final class Acknowledgements: @unchecked Sendable {
        private let condition = NSCondition()
        private var answers: [Int: [Result<AppendResult, LogError>]] = [:]
        private var holds: [Int: AnswerHold] = [:]
        private var registered = 0

        /// A new append's id and the `whenDurable` callback to pass with it.
        func register() -> (id: Int, callback: @Sendable (Result<AppendResult, LogError>) -> Void) {
            condition.lock()
            let id = registered
            registered += 1
            answers[id] = []
            condition.unlock()
            return (id, { [self] result in
                condition.lock()
                answers[id, default: []].append(result)
                let hold = holds[id]
                condition.broadcast()
                condition.unlock()
                hold?.block()
            })
        }

        /// Makes the callback of append `id`, once answered (the answer is kept first), block until the
        /// returned hold is released.
        func hold(_ id: Int) -> AnswerHold {
            let hold = AnswerHold()
            condition.lock()
            holds[id] = hold
            condition.unlock()
            return hold
        }

        func answers(of id: Int) -> [Result<AppendResult, LogError>] {
            condition.lock()
            defer { condition.unlock() }
            return answers[id] ?? []
        }

        /// Waits (a minute at most) until each of `ids` has been answered; false on timeout.
        func awaitAnswers(_ ids: [Int]) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            let deadline = Date().addingTimeInterval(60)
            while !ids.allSatisfy({ !(answers[$0] ?? []).isEmpty }) {
                if !condition.wait(until: deadline) { return false }
            }
            return true
        }
    }

    /// An append made through the durable path (`append(_:partitionLeaderEpoch:whenDurable:)`), and the
    /// batch the log must hold for it once it is acknowledged.
    struct TrackedAppend: Sendable {
        var id: Int
        var stored: StoredBatch
    }

    static func appendTracked(_ log: PartitionLog, _ records: [TestRecord], _ acknowledgements: Acknowledgements) throws -> TrackedAppend {
        var bytes = try makeBatch(records)
        let (id, callback) = acknowledgements.register()
        let result = try log.append(bytes, whenDurable: callback)
        RecordBatchValidation.setBaseOffset(result.firstOffset.rawValue, in: &bytes)
        return TrackedAppend(id: id, stored: StoredBatch(baseOffset: result.firstOffset, bytes: bytes, records: records, header: try RecordBatchHeader(bytes: bytes)))
    }

    /// An append that writes at once (no durability callback).
    static func appendDirect(_ log: PartitionLog, _ records: [TestRecord]) throws -> StoredBatch {
        var model: [StoredBatch] = []
        return try appendBatch(log, records, into: &model)
    }

    /// Under `always`, every fsync 50 ms longer: the flusher gathers a group for as long as the last fsync
    /// took, and writes early only while it gathers (see `holdEarlyWrite`). A tmpfs fsyncs in microseconds:
    /// too short for the flusher to come back and gather.
    static func configuration(segmentBytesMax: Int, retentionBytes: Int64? = nil) -> LogConfiguration {
        var configuration = LogConfiguration.testing(segmentBytesMax: segmentBytesMax, fsync: .always, retentionBytes: retentionBytes)
        configuration.simulatedFsyncDelayMilliseconds = 50
        return configuration
    }

    /// Brings the flusher into an early write and holds it there (installing `gate` on the log, whose gather
    /// window it lengthens first). Starts a round (`append` reaches an idle
    /// flusher at once), holds it at its fsync, queues `appendsPerAttempt` appends meanwhile — past half of
    /// the next group, which is those and the appender the round releases — and lets the round end. The
    /// flusher then gathers that group and, half of it queued, writes the queue early: held there on
    /// return. It gathers only for as long as the last fsync took; a flusher thread that comes back later
    /// writes the group in its next round instead, and the attempt is made again with that round held: a
    /// descheduled flusher thread costs an attempt, not the test. Returns every append made.
    static func holdEarlyWrite(
        _ log: PartitionLog, gate: FlusherGate, appendsPerAttempt: Int = 6, attemptsMax: Int = 8,
        sourceLocation: SourceLocation = #_sourceLocation, append: () throws -> TrackedAppend
    ) throws -> [TrackedAppend] {
        // Gathering lasts as long as the last fsync, not the default 1 ms at most; the gate holds both points.
        log.gatherWindowMaxForTesting = .seconds(60)
        gate.install(on: log)
        var heldRound = gate.arrivals(at: .fsync)
        var made = [try append()]
        for _ in 0..<attemptsMax {
            try #require(gate.awaitArrivals { fsyncs, _ in fsyncs > heldRound }, "no round reached its fsync", sourceLocation: sourceLocation)
            heldRound = gate.arrivals(at: .fsync)
            for _ in 0..<appendsPerAttempt { made.append(try append()) }
            let earlyWrites = gate.arrivals(at: .earlyWrite)
            gate.letHeldThrough(.fsync)
            try #require(
                gate.awaitArrivals { fsyncs, writes in writes > earlyWrites || fsyncs > heldRound },
                "the flusher neither wrote early nor started a round", sourceLocation: sourceLocation)
            if gate.arrivals(at: .earlyWrite) > earlyWrites { return made }
        }
        Issue.record("the flusher never wrote early in \(attemptsMax) attempts", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    /// Offsets run densely from `start` to `end`: no hole, no offset given twice.
    static func expectDense(_ model: [StoredBatch], from start: Offset, to end: Offset, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(model.first?.baseOffset == start, sourceLocation: sourceLocation)
        #expect(model.last?.nextOffset == end, sourceLocation: sourceLocation)
        #expect(zip(model, model.dropFirst()).allSatisfy { $0.nextOffset == $1.baseOffset }, "offsets have a hole or a duplicate", sourceLocation: sourceLocation)
    }

    /// Each append was answered exactly once, with success and its own offsets.
    static func expectAcknowledgedOnce(_ acknowledgements: Acknowledgements, _ appends: [TrackedAppend], sourceLocation: SourceLocation = #_sourceLocation) {
        for append in appends {
            let answers = acknowledgements.answers(of: append.id)
            #expect(answers.count == 1, "append at \(append.stored.baseOffset) answered \(answers.count) times", sourceLocation: sourceLocation)
            let result = try? answers.first?.get()
            #expect(result?.firstOffset == append.stored.baseOffset && result?.lastOffset == append.stored.lastOffset,
                    "append at \(append.stored.baseOffset): \(String(describing: answers.first))", sourceLocation: sourceLocation)
        }
    }

    /// Each append was answered exactly once, with `.diskFull`.
    static func expectFailedOnceForAFullDisk(_ acknowledgements: Acknowledgements, _ appends: [TrackedAppend], sourceLocation: SourceLocation = #_sourceLocation) {
        for append in appends {
            let answers = acknowledgements.answers(of: append.id)
            #expect(answers.count == 1, "append at \(append.stored.baseOffset) answered \(answers.count) times", sourceLocation: sourceLocation)
            guard case .failure(.diskFull)? = answers.first else {
                Issue.record("append at \(append.stored.baseOffset) expected diskFull, got \(String(describing: answers.first))", sourceLocation: sourceLocation)
                continue
            }
        }
    }

    /// Where segments start for `model` (in offset order) by the size rule: a batch that would take its
    /// segment past `segmentBytesMax` starts the next one.
    static func expectedSegmentBases(_ model: [StoredBatch], segmentBytesMax: Int) -> [Offset] {
        var bases: [Offset] = []
        var size = 0
        for batch in model {
            if bases.isEmpty || (size > 0 && size + batch.size > segmentBytesMax) {
                bases.append(batch.baseOffset)
                size = 0
            }
            size += batch.size
        }
        return bases
    }

    /// Waits (a minute at most) until close() has marked `log` closed, which a read bounded at offset 0
    /// shows at once: it reaches no queued append, so it never waits for the flusher, and it is refused
    /// once the log is closed. False on timeout.
    /// Starts `close()` on a thread of its own: the group is left when it returns, with true or its error.
    static func closeOnAThreadOfItsOwn(_ log: PartitionLog) -> (returned: DispatchGroup, outcome: LockedResult<Bool>) {
        let returned = DispatchGroup()
        let outcome = LockedResult<Bool>()
        returned.enter()
        Thread {
            defer { returned.leave() }
            outcome.set(Result { try log.close(); return true })
        }.start()
        return (returned, outcome)
    }

    static func awaitClosed(_ log: PartitionLog) -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            do throws(LogError) {
                _ = try log.read(from: 0, maxBytes: 1, upTo: 0)
            } catch {
                if error == .closed { return true }
            }
            Thread.sleep(forTimeInterval: 0.001)
        }
        return false
    }

    /// Checks a closed log as a restart finds it (`reopenExpectingIntact`), and that recovery reports
    /// nothing cut, removed or damaged.
    static func expectReopensWithNothingCut(
        _ directory: String, _ configuration: LogConfiguration, holding model: [StoredBatch], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let reopened = try reopenExpectingIntact(directory, configuration, holding: model.map(\.bytes), sourceLocation: sourceLocation)
        let report = reopened.recoveryReport
        #expect(report.truncatedBatches == 0 && report.deletedSegments.isEmpty && report.corruptSealedSegments.isEmpty, "\(report)", sourceLocation: sourceLocation)
        #expect(reopened.logEndOffset == model.last?.nextOffset, sourceLocation: sourceLocation)
        try reopened.close()
    }

    /// Makes the active segment a recycled file whose old contents past its batches have no blocks (as a
    /// copy-on-write file system's overwrite needs new ones): queued appends there reserve nothing, so
    /// once the disk is full their group write fails. Returns its path, where its batches end, and where
    /// its old contents end.
    static func recycleActiveSegmentWithoutItsBlocks(
        _ log: PartitionLog, _ directory: String, model: inout [StoredBatch], using generator: inout SplitMix64
    ) throws -> (path: String, batchesEnd: Int, oldContentsEnd: Int) {
        let spareInode = try #require(SegmentRecyclingTests.inode(try SegmentRecyclingTests.fillUntilSpare(log, directory, model: &model, using: &generator)))
        func activeBase() throws -> Offset? {
            guard let base = try segmentBases(directory).last, SegmentRecyclingTests.inode(directory + "/" + SegmentNames.log(base)) == spareInode else { return nil }
            return base
        }
        for _ in 0..<200 where try activeBase() == nil {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        let base = try #require(try activeBase(), "the active segment is the recycled file")
        let path = directory + "/" + SegmentNames.log(base)
        let batchesEnd = model.filter { $0.baseOffset >= base }.reduce(0) { $0 + $1.size }
        let holeStart = (batchesEnd / 4096 + 1) * 4096
        let oldContentsEnd = fileSize(path)
        try #require(oldContentsEnd > holeStart + (24 << 10), "old contents past the batches")
        try SegmentFile(path: path, create: false).releaseSpace(oldContentsEnd - holeStart, at: holeStart)
        try #require(WriteQueueTests.allocatedBytes(path) <= holeStart + 4096, "the old contents' blocks are gone")
        try log.flush()
        return (path, batchesEnd, oldContentsEnd)
    }

    /// Two appends that each need a new segment arrive while an early write is held, with a direct append
    /// and a queued one that fits: the rollers wait for the write (a roll needs the file's end), the
    /// queued one does not. Afterwards there are exactly two new segments, each starting at a roller's
    /// batch; every segment file holds exactly the batches from its base to the next; reads from the
    /// early write's first offset cross both boundaries in order; the log reopens with nothing cut.
    @Test func twoAppendsThatRollWhileAnEarlyWriteIsHeldEachStartASegmentOfTheirOwn() throws {
        let directory = try ScratchDirectory()
        let configuration = Self.configuration(segmentBytesMax: 16 << 10)
        var generator = SplitMix64(seed: testSeed(311))
        let acknowledgements = Acknowledgements()
        var tracked: [TrackedAppend] = []
        var model: [StoredBatch] = []
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            let gate = FlusherGate()
            defer {
                gate.open()
                try? log.close()
            }
            tracked = try Self.holdEarlyWrite(log, gate: gate) {
                try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements)
            }
            let written = log.durableEndOffset
            let basesBefore = try segmentBases(directory.path)
            let activeBase = try #require(basesBefore.last)
            let activePath = directory.path + "/" + SegmentNames.log(activeBase)
            let writtenBytes = tracked.map(\.stored).filter { $0.baseOffset >= activeBase && $0.baseOffset < written }.reduce(0) { $0 + $1.size }
            #expect(fileSize(activePath) == writtenBytes, "the held early write is already in the file")

            // Queued behind the held write.
            tracked.append(try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 100...100, using: &generator), acknowledgements))
            // The active segment holds at least the six ~1 KiB batches being written: 12 KB more does not
            // fit, nor do two such batches in one segment. A small direct append needs the file's end too.
            let rollerRecords = (0..<2).map { _ in randomRecords(count: 1, valueBytes: 12_000...12_000, using: &generator) }
            let directRecords = randomRecords(count: 2, using: &generator)
            let rolled = [LockedResult<TrackedAppend>(), LockedResult<TrackedAppend>()]
            let direct = LockedResult<StoredBatch>()
            let waiting = DispatchGroup()
            for work in 0..<3 {
                waiting.enter()
                Thread {
                    defer { waiting.leave() }
                    if work < 2 {
                        rolled[work].set(Result { try Self.appendTracked(log, rollerRecords[work], acknowledgements) })
                    } else {
                        direct.set(Result { try Self.appendDirect(log, directRecords) })
                    }
                }.start()
            }
            // Whether or not they have reached the lock yet, none may finish while the write is held.
            #expect(waiting.wait(timeout: .now() + 0.3) == .timedOut, "an append that needs the file's end went on during the early write")
            // A queued append that fits still queues meanwhile: offsets before both rollers whatever their timing.
            let queuedMeanwhile = try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 100...100, using: &generator), acknowledgements)
            tracked.append(queuedMeanwhile)
            #expect(try segmentBases(directory.path) == basesBefore)
            #expect(fileSize(activePath) == writtenBytes)

            gate.letHeldThrough(.earlyWrite)
            try #require(waiting.wait(timeout: .now() + 60) == .success, "an append waiting for the early write never went on")
            let rollers = try rolled.map { try #require(try $0.get()) }
            let directBatch = try #require(try direct.get())
            tracked += rollers
            gate.open()
            #expect(acknowledgements.awaitAnswers(tracked.map(\.id)), "not every append was answered")
            Self.expectAcknowledgedOnce(acknowledgements, tracked)

            model = (tracked.map(\.stored) + [directBatch]).sorted { $0.baseOffset < $1.baseOffset }
            Self.expectDense(model, from: 0, to: log.logEndOffset)
            #expect(rollers.allSatisfy { $0.stored.baseOffset > queuedMeanwhile.stored.baseOffset })
            // Exactly two rolls, each at a roller's batch; every other batch where the size rule puts it.
            let bases = try segmentBases(directory.path)
            #expect(bases.count == basesBefore.count + 2, "\(bases)")
            #expect(Array(bases.suffix(2)) == rollers.map(\.stored.baseOffset).sorted())
            #expect(bases == Self.expectedSegmentBases(model, segmentBytesMax: configuration.segmentBytesMax))
            // One read from the early write's first batch crosses both new boundaries, in order.
            let read = try log.read(from: written, maxBytes: 1 << 20)
            #expect(splitBatches(read.bytes) == model.filter { $0.baseOffset >= written }.map(\.bytes))
            #expect(read.nextOffset == log.logEndOffset)
            #expect(try readEverything(log, maxBytes: 3000) == model.map(\.bytes))
            try log.close()
            // Nothing answered again by close.
            Self.expectAcknowledgedOnce(acknowledgements, tracked)
            // Each file holds exactly its segment's batches.
            for (base, batches) in layout(model, bases: bases) {
                let exact = try fileBytes(directory.path + "/" + SegmentNames.log(base)) == batches.flatMap(\.batch.bytes)
                #expect(exact, "segment \(base) does not hold exactly its batches \(batches.map(\.batch.baseOffset))")
            }
        }
        try Self.expectReopensWithNothingCut(directory.path, configuration, holding: model)
    }

    /// An early write that a full disk fails, with appends queued behind it. Its space was never reserved:
    /// it lies in a recycled file's old contents, whose blocks are gone (as a copy-on-write file system's
    /// overwrite needs new ones), and the tmpfs is filled while the write is held. Every append not yet
    /// written — the early write's and those queued during it — is answered `.diskFull`, none with
    /// success; an append waiting for the file's end is refused; until the voided appends are answered,
    /// new appends are refused even with space back; afterwards their retries, in order, get their offsets
    /// and bytes exactly; the log reads and reopens without a hole or a duplicate.
    @Test func aFullDiskFailsTheEarlyWriteAndEveryAppendBehindItAndTheRetriesTakeTheirOffsets() throws {
        let filesystem = try SmallFilesystem(size: "2m")
        defer { filesystem.unmount() }
        let directory = filesystem.path + "/log"
        let configuration = Self.configuration(segmentBytesMax: 65_536, retentionBytes: 131_072)
        var generator = SplitMix64(seed: testSeed(312))
        let acknowledgements = Acknowledgements()
        // What the log holds, from the direct appends that set it up and the acknowledged ones.
        var model: [StoredBatch] = []
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        let gate = FlusherGate()
        defer {
            gate.open()
            try? log.close()
        }

        let (activePath, batchesEnd, oldContentsEnd) = try Self.recycleActiveSegmentWithoutItsBlocks(log, directory, model: &model, using: &generator)
        var tracked = try Self.holdEarlyWrite(log, gate: gate) {
            try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements)
        }
        let written = log.durableEndOffset
        // Queued during the held write.
        for _ in 0..<4 {
            tracked.append(try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements))
        }
        let queuedEnd = batchesEnd + tracked.reduce(0) { $0 + $1.stored.size }
        try #require(queuedEnd <= oldContentsEnd, "the queued appends lie in the old contents, where they reserved nothing")
        // A direct append needs the file's end: it waits for the write.
        let direct = LockedResult<StoredBatch>()
        let directRecords = randomRecords(count: 2, using: &generator)
        let waiting = DispatchGroup()
        waiting.enter()
        Thread {
            defer { waiting.leave() }
            direct.set(Result { try Self.appendDirect(log, directRecords) })
        }.start()

        let filler = filesystem.fillCompletely()
        let fsyncs = gate.arrivals(at: .fsync)
        gate.letHeldThrough(.earlyWrite)
        // The failed write is followed by a round that answers the voided appends: held before it answers.
        try #require(gate.awaitArrivals { arrived, _ in arrived > fsyncs }, "no round came to answer the voided appends")
        let acknowledged = tracked.filter { $0.stored.baseOffset < written }
        let voided = tracked.filter { $0.stored.baseOffset >= written }
        #expect(voided.count >= 6 + 4)
        #expect(log.logEndOffset == written, "the failed write's offsets are given back")
        #expect(log.failureReason == nil, "a full disk does not fail the log")
        #expect(voided.allSatisfy { acknowledgements.answers(of: $0.id).isEmpty }, "a voided append was answered before its round")
        let writtenEnd = batchesEnd + acknowledged.reduce(0) { $0 + $1.stored.size }
        #expect(fileSize(activePath) == writtenEnd, "the failed write left bytes past the written end")

        // Space is back, but the voided appends are not answered yet: whatever comes now is refused, or it
        // would take their offsets ahead of their retries. The direct append that waited is refused too.
        try FileManager.default.removeItem(atPath: filler)
        try #require(waiting.wait(timeout: .now() + 60) == .success, "the direct append never went on")
        do {
            let taken = try direct.get()
            Issue.record("the direct append that waited was taken at \(String(describing: taken?.baseOffset))")
        } catch {
            #expect(logError(error) { DiskFullTests.isDiskFull($0) }, "expected diskFull, got \(error)")
        }
        let refusedRecords = randomRecords(count: 1, using: &generator)
        var refusedID: Int?
        do {
            let refused = try Self.appendTracked(log, refusedRecords, acknowledgements)
            refusedID = refused.id
            Issue.record("an append was taken at \(refused.stored.baseOffset) before the voided ones were answered")
        } catch let error as LogError {
            #expect(DiskFullTests.isDiskFull(error), "expected diskFull, got \(error)")
        }
        #expect(log.logEndOffset == written)

        gate.open()
        #expect(acknowledgements.awaitAnswers(voided.map(\.id)), "a voided append was never answered")
        Self.expectFailedOnceForAFullDisk(acknowledgements, voided)

        // Their retries, in order, take exactly their offsets: the bytes are the same.
        var retried: [TrackedAppend] = []
        for append in voided {
            let retry = try Self.appendTracked(log, append.stored.records, acknowledgements)
            #expect(retry.stored.baseOffset == append.stored.baseOffset)
            let sameBytes = retry.stored.bytes == append.stored.bytes
            #expect(sameBytes, "the retry at \(retry.stored.baseOffset) differs from the voided append")
            retried.append(retry)
        }
        #expect(acknowledgements.awaitAnswers(retried.map(\.id)), "a retried append was never answered")
        Self.expectAcknowledgedOnce(acknowledgements, acknowledged + retried)
        model += (acknowledged + retried).map(\.stored)
        model.sort { $0.baseOffset < $1.baseOffset }
        let kept = model.filter { $0.baseOffset >= log.logStartOffset }
        Self.expectDense(kept, from: log.logStartOffset, to: log.logEndOffset)
        #expect(log.durableEndOffset == log.logEndOffset)
        #expect(try readEverything(log) == kept.map(\.bytes))
        try log.close()

        // Nothing answered twice, nor the refused append at all.
        Self.expectAcknowledgedOnce(acknowledgements, acknowledged + retried)
        Self.expectFailedOnceForAFullDisk(acknowledgements, voided)
        if let refusedID { #expect(acknowledgements.answers(of: refusedID).count <= 1) }
        try Self.expectReopensWithNothingCut(directory, configuration, holding: kept)
    }

    /// close() while an early write is held: close waits for the write (and the round after it) instead
    /// of returning or cutting the file under it; appends made once the log is closed are refused without
    /// a callback; when close returns, every append queued before it — in the early write or behind it —
    /// has been answered exactly once, with success, and is in the reopened log.
    @Test func closeDuringAnEarlyWriteWaitsForItAndAnswersEveryQueuedAppendOnce() throws {
        let directory = try ScratchDirectory()
        let configuration = Self.configuration(segmentBytesMax: 1 << 20)
        var generator = SplitMix64(seed: testSeed(313))
        let acknowledgements = Acknowledgements()
        var tracked: [TrackedAppend] = []
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            let gate = FlusherGate()
            defer {
                gate.open()
                try? log.close()
            }
            tracked = try Self.holdEarlyWrite(log, gate: gate) {
                try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements)
            }
            let written = log.durableEndOffset
            for _ in 0..<3 {
                tracked.append(try Self.appendTracked(log, randomRecords(count: 2, using: &generator), acknowledgements))
            }

            let (closing, closed) = Self.closeOnAThreadOfItsOwn(log)
            try #require(Self.awaitClosed(log), "close never marked the log closed")

            // From now on appends are refused, and a refused append is never called back.
            let (refusedID, refusedCallback) = acknowledgements.register()
            #expect(throws: LogError.closed) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator)), whenDurable: refusedCallback) }
            #expect(throws: LogError.closed) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator))) }
            #expect(closing.wait(timeout: .now() + 0.3) == .timedOut, "close returned while the early write was held")
            #expect(tracked.filter { $0.stored.baseOffset >= written }.allSatisfy { acknowledgements.answers(of: $0.id).isEmpty },
                    "an append was answered before it was written")

            gate.open()
            try #require(closing.wait(timeout: .now() + 60) == .success, "close never returned")
            #expect(try closed.get() == true, "close threw")
            // Answered before close returned: nobody is left to answer later.
            Self.expectAcknowledgedOnce(acknowledgements, tracked)
            #expect(acknowledgements.answers(of: refusedID).isEmpty)
        }
        let model = tracked.map(\.stored).sorted { $0.baseOffset < $1.baseOffset }
        Self.expectDense(model, from: 0, to: model.last!.nextOffset)
        try Self.expectReopensWithNothingCut(directory.path, configuration, holding: model)
    }

    /// close() while an early write is held that a full disk then fails (as in
    /// `aFullDiskFailsTheEarlyWriteAndEveryAppendBehindItAndTheRetriesTakeTheirOffsets`): close waits for
    /// the write, does not throw (a full disk does not fail the log), and every append is answered exactly
    /// once, before close returns — with success what was durable before the write, with `.diskFull` the
    /// early write's appends and those queued behind it. The reopened log holds exactly the acknowledged
    /// ones. The first voided append's callback blocks until the test lets it return: close must still be
    /// waiting then. Before, the flusher counted as stopped before it answered them, and close returned
    /// while it did (caught by chance in 11 of 20 runs, without the block).
    @Test func closeDuringAnEarlyWriteThatAFullDiskFailsAnswersEveryAppendOnce() throws {
        let filesystem = try SmallFilesystem(size: "2m")
        defer { filesystem.unmount() }
        let directory = filesystem.path + "/log"
        let configuration = Self.configuration(segmentBytesMax: 65_536, retentionBytes: 131_072)
        var generator = SplitMix64(seed: testSeed(314))
        let acknowledgements = Acknowledgements()
        var model: [StoredBatch] = []
        var kept: [StoredBatch] = []
        do {
            let log = try PartitionLog.open(directory: directory, configuration: configuration)
            let gate = FlusherGate()
            defer {
                gate.open()
                try? log.close()
            }
            let (_, batchesEnd, oldContentsEnd) = try Self.recycleActiveSegmentWithoutItsBlocks(log, directory, model: &model, using: &generator)
            var tracked = try Self.holdEarlyWrite(log, gate: gate) {
                try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements)
            }
            let written = log.durableEndOffset
            for _ in 0..<3 {
                tracked.append(try Self.appendTracked(log, randomRecords(count: 1, valueBytes: 1000...1000, using: &generator), acknowledgements))
            }
            try #require(batchesEnd + tracked.reduce(0) { $0 + $1.stored.size } <= oldContentsEnd, "the queued appends lie in the old contents")
            let filler = filesystem.fillCompletely()

            let (closing, closed) = Self.closeOnAThreadOfItsOwn(log)
            try #require(Self.awaitClosed(log), "close never marked the log closed")
            #expect(closing.wait(timeout: .now() + 0.3) == .timedOut, "close returned while the early write was held")

            let acknowledged = tracked.filter { $0.stored.baseOffset < written }
            let voided = tracked.filter { $0.stored.baseOffset >= written }
            #expect(voided.count >= 6 + 3)
            let firstVoided = try #require(voided.min { $0.stored.baseOffset < $1.stored.baseOffset })
            let hold = acknowledgements.hold(firstVoided.id)
            defer { hold.release() }
            gate.open()
            try #require(hold.awaitEntered(), "the first voided append was never answered")
            // Its callback runs on the flusher thread, which close() waits for: close cannot return before
            // it does. A close that returned early does so within moments; a second is ample to see it.
            #expect(closing.wait(timeout: .now() + 1) == .timedOut, "close returned while the flusher was still answering voided appends")
            hold.release()
            try #require(closing.wait(timeout: .now() + 60) == .success, "close never returned")
            #expect(try closed.get() == true, "close threw")
            // Answered before close returned, as when the write succeeds: a caller that closes the log and
            // then shuts down what the callbacks use (the gateway stops its event loops) gets none later.
            let unanswered = tracked.filter { acknowledgements.answers(of: $0.id).isEmpty }.map(\.stored.baseOffset)
            #expect(unanswered.isEmpty, "close returned before answering the appends at \(unanswered)")
            #expect(acknowledgements.awaitAnswers(tracked.map(\.id)), "an append was never answered")
            Self.expectAcknowledgedOnce(acknowledgements, acknowledged)
            Self.expectFailedOnceForAFullDisk(acknowledgements, voided)
            model += acknowledged.map(\.stored)
            model.sort { $0.baseOffset < $1.baseOffset }
            kept = model.filter { $0.baseOffset >= log.logStartOffset }
            Self.expectDense(kept, from: log.logStartOffset, to: written)
            try FileManager.default.removeItem(atPath: filler)
        }
        try Self.expectReopensWithNothingCut(directory, configuration, holding: kept)
    }
}
