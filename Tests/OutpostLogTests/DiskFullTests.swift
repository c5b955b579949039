import Foundation
import OutpostCore
import OutpostTestSupport
import Testing

@testable import OutpostLog

/// A full disk (ENOSPC) on a real 1 MiB tmpfs: the append fails with `.diskFull`, nothing partial stays,
/// the log stays readable and verifiable, and appends succeed again once space returns.
@Suite(.serialized) struct DiskFullTests {
    /// The 256 KiB filler of a 1 MiB tmpfs (`SmallFilesystem`, shared with the gateway's tests), so the
    /// log fills the rest; deleting the file is "space returns". Returns its path.
    static func fillQuarter(_ filesystem: SmallFilesystem) throws -> String {
        let filler = filesystem.path + "/filler"
        try writeFile(filler, Array(repeating: 0xAB, count: 256 << 10))
        return filler
    }

    /// Appends ~8 KiB batches until one fails; returns that error (nil if the bound was reached first).
    static func fill(_ log: PartitionLog, model: inout [StoredBatch], generator: inout SplitMix64, limit: Int = 2000) -> LogError? {
        for _ in 0..<limit {
            do {
                try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model)
            } catch let error as LogError {
                return error
            } catch {
                Issue.record("unexpected error \(error)")
                return nil
            }
        }
        return nil
    }

    static func isDiskFull(_ error: LogError?) -> Bool {
        if case .diskFull? = error { return true }
        return false
    }

    @Test func appendsFailWithDiskFullLeaveNothingPartialAndResumeWhenSpaceReturns() throws {
        let filesystem = try SmallFilesystem()
        defer { filesystem.unmount() }
        let filler = try Self.fillQuarter(filesystem)
        let directory = filesystem.path + "/log"
        let configuration = LogConfiguration.testing(fsync: .always)
        var generator = SplitMix64(seed: 71)
        var model: [StoredBatch] = []
        do {
            let log = try PartitionLog.open(directory: directory, configuration: configuration)
            let error = Self.fill(log, model: &model, generator: &generator)
            #expect(Self.isDiskFull(error), "expected diskFull, got \(String(describing: error))")
            if case .diskFull(let path)? = error { #expect(path.hasSuffix(".log")) }
            #expect(model.count > 10, "the tmpfs filled up before anything was appended")
            let end = model.last!.nextOffset
            #expect(log.logEndOffset == end)

            // Nothing partial: the segment holds exactly the appended batches, which all read back and verify.
            let segmentPath = directory + "/" + SegmentNames.log(0)
            #expect(fileSize(segmentPath) == model.reduce(0) { $0 + $1.size })
            #expect(try readEverything(log) == model.map(\.bytes))
            let check = try LogInspector.verify(partitionDirectory: directory)
            #expect(check.isIntact, "\(check.problems)")
            #expect(check.nextOffset == end)
            // What was appended before the failure is durable.
            try log.flush()
            #expect(log.durableEndOffset == end)

            // Still full: the same again fails the same way, still without leaving anything.
            #expect(Self.isDiskFull(Self.fill(log, model: &model, generator: &generator, limit: 1)))
            #expect(log.logEndOffset == end)
            #expect(fileSize(segmentPath) == model.reduce(0) { $0 + $1.size })

            // Space returns: appends succeed again, continuing the offsets.
            try FileManager.default.removeItem(atPath: filler)
            let resumed = try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model)
            #expect(resumed.baseOffset == end)
            for _ in 0..<10 { try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model) }
            try log.flush()
            #expect(try readEverything(log) == model.map(\.bytes))
            try log.close()
        }
        let reopened = try PartitionLog.open(directory: directory, configuration: configuration)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.logEndOffset == model.last!.nextOffset)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        let check = try LogInspector.verify(partitionDirectory: directory)
        #expect(check.isIntact, "\(check.problems)")
        try reopened.close()
    }

    /// Queued appends (`fsync: always`, awaiting durability) are written later by the flusher, so the space
    /// they need is reserved when they are accepted: the append that does not fit fails at once, and every
    /// one accepted before it commits.
    @Test func queuedAppendsFailWithDiskFullWhenAcceptedAndEveryAcceptedOneCommits() throws {
        let filesystem = try SmallFilesystem()
        defer { filesystem.unmount() }
        let filler = try Self.fillQuarter(filesystem)
        let directory = filesystem.path + "/log"
        let configuration = LogConfiguration.testing(fsync: .always)
        var generator = SplitMix64(seed: 73)
        var model: [StoredBatch] = []
        let outcomes = WriteQueueTests.Outcomes()
        do {
            let log = try PartitionLog.open(directory: directory, configuration: configuration)
            var failure: LogError?
            for _ in 0..<2000 {
                do {
                    try WriteQueueTests.appendAwaitingDurability(
                        log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
                } catch let error as LogError {
                    failure = error
                    break
                }
            }
            #expect(Self.isDiskFull(failure), "expected diskFull, got \(String(describing: failure))")
            #expect(model.count > 10, "the tmpfs filled up before anything was appended")
            let end = model.last!.nextOffset
            #expect(log.logEndOffset == end)
            #expect(outcomes.wait(), "durability callbacks did not all arrive")
            let results = outcomes.all
            #expect(results.count == model.count + 1)  // the refused append is counted as one failure
            #expect(results.filter { (try? $0.get()) != nil }.count == model.count)
            #expect(log.durableEndOffset == end)
            #expect(log.failureReason == nil)

            // Nothing partial, everything readable and verifiable.
            let segmentPath = directory + "/" + SegmentNames.log(0)
            #expect(fileSize(segmentPath) == model.reduce(0) { $0 + $1.size })
            #expect(try readEverything(log) == model.map(\.bytes))
            let check = try LogInspector.verify(partitionDirectory: directory)
            #expect(check.isIntact, "\(check.problems)")

            // Space returns: queued appends are accepted again and commit, continuing the offsets.
            try FileManager.default.removeItem(atPath: filler)
            let resumed = try WriteQueueTests.appendAwaitingDurability(
                log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
            #expect(resumed.baseOffset == end)
            for _ in 0..<10 {
                try WriteQueueTests.appendAwaitingDurability(
                    log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model, outcomes: outcomes)
            }
            #expect(outcomes.wait())
            #expect(outcomes.all.count == model.count + 1)
            #expect(log.durableEndOffset == model.last!.nextOffset)
            try log.close()
        }
        let reopened = try PartitionLog.open(directory: directory, configuration: configuration)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.logEndOffset == model.last!.nextOffset)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        #expect(try LogInspector.verify(partitionDirectory: directory).isIntact)
        try reopened.close()
    }

    @Test func retentionFreesSpaceOnAFullDiskAndAppendsResume() throws {
        let filesystem = try SmallFilesystem()
        defer { filesystem.unmount() }
        let directory = filesystem.path + "/log"
        let clock = ManualClock()
        let configuration = LogConfiguration.testing(segmentBytesMax: 64 << 10, fsync: .always, retentionMilliseconds: 60_000)
        var generator = SplitMix64(seed: 72)
        var model: [StoredBatch] = []
        let log = try PartitionLog.open(directory: directory, configuration: configuration, clock: clock.function)
        // Old data first, then (100 s later) new data until the disk is full.
        for _ in 0..<40 { try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model) }
        clock.advance(by: 100_000)
        let error = Self.fill(log, model: &model, generator: &generator)
        #expect(Self.isDiskFull(error), "expected diskFull, got \(String(describing: error))")
        let end = model.last!.nextOffset
        #expect(log.logEndOffset == end)
        #expect(try readEverything(log) == model.map(\.bytes))
        #expect(try LogInspector.verify(partitionDirectory: directory).isIntact)

        // Retention by age deletes the old segments only; that makes room.
        clock.advance(by: 1000)
        let outcome = log.enforceRetention()
        #expect(!outcome.deletedSegments.isEmpty)
        let start = log.logStartOffset
        #expect(start > 0)
        #expect(model.filter { $0.baseOffset < start }.allSatisfy { $0.lastOffset < Offset(40 * 8) }, "retention deleted new data")
        let resumed = try appendBatch(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model)
        #expect(resumed.baseOffset == end)
        try log.flush()
        let kept = model.filter { $0.baseOffset >= start }
        #expect(try readEverything(log) == kept.map(\.bytes))
        try log.close()

        let reopened = try PartitionLog.open(directory: directory, configuration: configuration, clock: clock.function)
        #expect(reopened.logStartOffset == start)
        #expect(reopened.logEndOffset == resumed.nextOffset)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(try readEverything(reopened) == kept.map(\.bytes))
        #expect(try LogInspector.verify(partitionDirectory: directory).isIntact)
        try reopened.close()
    }

    /// The space a queued append counted on may not be there when the flusher writes its group: a
    /// copy-on-write file system (btrfs) allocates anew when overwriting a recycled file's old contents,
    /// and blocks can go. Here the old contents past the recycled active segment's batches are punched out
    /// on a full disk: the append is accepted (no reservation is needed there), its group write fails, and
    /// only that append fails, with `.diskFull`; the log does not fail, and once space returns the next
    /// append commits at the same offset. It used to take the log down until reopened.
    @Test func aQueuedGroupTheDiskCannotTakeFailsAloneAndTheLogGoesOn() throws {
        let filesystem = try SmallFilesystem(size: "2m")
        defer { filesystem.unmount() }
        let directory = filesystem.path + "/log"
        let configuration = LogConfiguration.testing(segmentBytesMax: 65_536, fsync: .always, retentionBytes: 131_072)
        var generator = SplitMix64(seed: 4243)
        var model: [StoredBatch] = []
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        defer { try? log.close() }
        let spareInode = try #require(SegmentRecyclingTests.inode(try SegmentRecyclingTests.fillUntilSpare(log, directory, model: &model, using: &generator)))
        func activeBase() throws -> Offset? {
            guard let base = try segmentBases(directory).last, SegmentRecyclingTests.inode(directory + "/" + SegmentNames.log(base)) == spareInode else { return nil }
            return base
        }
        for _ in 0..<200 where try activeBase() == nil {
            try SegmentRecyclingTests.appendDurably(log, randomRecords(count: 2, valueBytes: 100...300, using: &generator), into: &model)
        }
        let base = try #require(try activeBase(), "the active segment is the recycled file")
        let activePath = directory + "/" + SegmentNames.log(base)
        let batchesEnd = model.filter { $0.baseOffset >= base }.reduce(0) { $0 + $1.size }
        let holeStart = (batchesEnd / 4096 + 1) * 4096
        try #require(fileSize(activePath) > holeStart + 16_384, "old contents past the batches")
        let oldSize = fileSize(activePath)
        try SegmentFile(path: activePath, create: false).releaseSpace(oldSize - holeStart, at: holeStart)
        // Only whole pages go: the file's last, partial page stays.
        try #require(fileSize(activePath) == oldSize && WriteQueueTests.allocatedBytes(activePath) <= holeStart + 4096, "the old contents' blocks are gone")
        let filler = filesystem.fillCompletely()
        // The round that voids the append is held before it answers: until it has, the log refuses new
        // appends, which would otherwise take the voided offsets ahead of the voided append's retry.
        try log.flush()
        let settleDeadline = ContinuousClock.now + .seconds(60)
        while !log.flusherQuiescentForTesting && ContinuousClock.now < settleDeadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(log.flusherQuiescentForTesting, "the flusher did not settle within a minute")
        let arrived = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        log.fsyncHookForTesting = {
            arrived.signal()
            release.wait()
        }

        let outcomes = WriteQueueTests.Outcomes()
        var refused: [StoredBatch] = []
        let voided = try WriteQueueTests.appendAwaitingDurability(
            log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &refused, outcomes: outcomes)
        #expect(arrived.wait(timeout: .now() + 60) == .success, "the flusher's round never came")
        let meanwhile = try makeBatch(randomRecords(count: 1, using: &generator))
        do throws(LogError) {
            _ = try log.append(meanwhile)
            Issue.record("an append was taken before the voided one was answered")
        } catch {
            #expect(Self.isDiskFull(error), "expected diskFull, got \(error)")
        }
        log.fsyncHookForTesting = nil
        release.signal()
        #expect(outcomes.wait(), "the voided append's waiter was never answered")
        let results = outcomes.all
        #expect(results.count == 1)
        if case .failure(let error)? = results.first {
            #expect(Self.isDiskFull(error), "expected diskFull, got \(error)")
        } else {
            Issue.record("an append the disk could not take was reported durable")
        }
        #expect(log.failureReason == nil, "a full disk does not fail the log")
        #expect(log.logEndOffset == voided.baseOffset, "the voided offsets are given out again")
        // What retention keeps.
        func kept() -> [[UInt8]] { model.filter { $0.baseOffset >= log.logStartOffset }.map(\.bytes) }
        #expect(try readEverything(log) == kept())

        try FileManager.default.removeItem(atPath: filler)
        try SegmentRecyclingTests.appendDurably(log, randomRecords(count: 8, valueBytes: 1000...1000, using: &generator), into: &model)
        #expect(model.last?.baseOffset == voided.baseOffset)
        let held = kept()
        #expect(try readEverything(log) == held)
        try log.close()
        try reopenExpectingIntact(directory, configuration, holding: held).close()
    }
}
