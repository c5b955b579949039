import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

#if canImport(Glibc)
import Glibc
#endif

/// Retention hands a deleted segment's file to the next roll (`LogConfiguration.recycleSegments`): the log
/// must read, recover and verify exactly as with fresh files, and a recycled file's old contents must never
/// be read as batches.
@Suite struct SegmentRecyclingTests {
    static func inode(_ path: String) -> UInt64? {
        var status = stat()
        return stat(path, &status) == 0 ? UInt64(status.st_ino) : nil
    }

    static func names(_ directory: String, suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(suffix) }.sorted()
    }

    /// Appends until retention has retired a segment into the spare file; returns its path.
    static func fillUntilSpare(_ log: PartitionLog, _ directory: String, model: inout [StoredBatch], using generator: inout SplitMix64) throws -> String {
        for _ in 0..<500 {
            if let spare = try names(directory, suffix: ".spare").first { return directory + "/" + spare }
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        Issue.record("retention never produced a spare file")
        throw CancellationError()
    }

    /// A log filled until retention keeps a spare, then `extraBatches` more, then closed (a restart's
    /// starting point); `model` keeps what the log still holds.
    static func closedLogWithSpare(
        _ directory: String, _ configuration: LogConfiguration, extraBatches: Int, model: inout [StoredBatch], using generator: inout SplitMix64
    ) throws {
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        _ = try fillUntilSpare(log, directory, model: &model, using: &generator)
        for _ in 0..<extraBatches { try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model) }
        let start = log.logStartOffset
        try log.close()
        model.removeAll { $0.baseOffset < start }
    }

    @Test func retentionKeepsOneSpareAndTheNextRollReusesItsFile() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 501)
        var model: [StoredBatch] = []
        let spare = try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)
        let spareInode = try #require(Self.inode(spare))
        let spareBytes = fileSize(spare)
        // The retired segment's indexes are gone with it (unlinked off the append lock); only its data file
        // waits.
        log.awaitFileRemovals()
        let stem = String(spare.split(separator: "/").last!.dropLast(".spare".count))
        #expect(!FileManager.default.fileExists(atPath: directory.sub(stem + ".index")))
        #expect(try Self.names(directory.path, suffix: ".spare").count == 1)
        let statistics = log.currentStatistics()
        #expect(statistics.diskBytes >= statistics.sizeBytes + spareBytes)

        // Append until the next roll: the new segment is the spare's file, renamed.
        let basesBefore = try segmentBases(directory.path)
        while try segmentBases(directory.path).last == basesBefore.last {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        let newBase = try #require(try segmentBases(directory.path).last)
        #expect(Self.inode(directory.sub(SegmentNames.log(newBase))) == spareInode, "the roll did not reuse the spare file")
        #expect(!FileManager.default.fileExists(atPath: spare))
        // The file still holds old bytes past the new batches, yet reads return exactly what was appended.
        let active = model.filter { $0.baseOffset >= newBase }
        #expect(fileSize(directory.sub(SegmentNames.log(newBase))) > active.reduce(0) { $0 + $1.size })
        let kept = model.filter { $0.baseOffset >= log.logStartOffset }
        #expect(try readEverything(log) == kept.map(\.bytes))
        #expect(try log.read(from: log.logEndOffset, maxBytes: 1 << 20).batchCount == 0)

        // Once sealed by the next roll, the recycled segment is exactly its batches (Kafka's tools read it):
        // its file is cut by the flusher round that makes the roll durable.
        let recycledBase = newBase
        while try segmentBases(directory.path).last == recycledBase {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        try log.flush()
        let sealed = model.filter { $0.baseOffset >= recycledBase && $0.baseOffset < (try! segmentBases(directory.path).last!) }
        #expect(try fileBytes(directory.sub(SegmentNames.log(recycledBase))) == sealed.flatMap(\.bytes))
    }

    @Test func closeTrimsARecycledActiveSegmentAndReopenCutsNothing() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        var generator = SplitMix64(seed: 502)
        var model: [StoredBatch] = []
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            _ = try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)
            let base = try #require(try segmentBases(directory.path).last)
            while try segmentBases(directory.path).last == base {
                try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
            }
            // One batch into the recycled file, then close.
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            let start = log.logStartOffset
            try log.close()
            model.removeAll { $0.baseOffset < start }
        }
        let activeBase = try #require(try segmentBases(directory.path).last)
        #expect(try fileBytes(directory.sub(SegmentNames.log(activeBase))) == model.filter { $0.baseOffset >= activeBase }.flatMap(\.bytes))
        let reopened = try reopenExpectingIntact(directory.path, configuration, holding: model.map(\.bytes))
        defer { try? reopened.close() }
        // The spare survived the restart and is used by the next roll.
        let spare = try #require(try Self.names(directory.path, suffix: ".spare").first)
        let spareInode = Self.inode(directory.sub(spare))
        while try segmentBases(directory.path).last == activeBase {
            try appendBatch(reopened, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        #expect(Self.inode(directory.sub(SegmentNames.log(try #require(try segmentBases(directory.path).last)))) == spareInode)
    }

    /// Reopened, the active segment ends at its last batch, so appending to it would extend the file (each
    /// fsync then also writes block allocations and the size): the first append rolls into the spare file
    /// instead, and everything reads, reopens and verifies as before.
    @Test func theFirstAppendAfterAReopenRollsIntoTheSpare() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        var generator = SplitMix64(seed: 507)
        var model: [StoredBatch] = []
        try Self.closedLogWithSpare(directory.path, configuration, extraBatches: 1, model: &model, using: &generator)
        let spare = try #require(try Self.names(directory.path, suffix: ".spare").first)
        let spareInode = try #require(Self.inode(directory.sub(spare)))
        let activeBase = try #require(try segmentBases(directory.path).last)
        #expect(fileSize(directory.sub(SegmentNames.log(activeBase))) < configuration.segmentBytesMax / 2, "the test wants a roomy active segment")

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        try appendBatch(reopened, randomRecords(count: 2, using: &generator), into: &model)
        let newBase = try #require(try segmentBases(directory.path).last)
        #expect(newBase == model[model.count - 1].baseOffset, "the first append did not start a segment")
        #expect(Self.inode(directory.sub(SegmentNames.log(newBase))) == spareInode, "the roll did not reuse the spare file")
        // The segment it left is sealed exactly at its batches.
        #expect(try fileBytes(directory.sub(SegmentNames.log(activeBase))) == model.filter { $0.baseOffset >= activeBase && $0.baseOffset < newBase }.flatMap(\.bytes))
        // Later appends stay in the segment, as usual.
        try appendBatch(reopened, randomRecords(count: 2, using: &generator), into: &model)
        #expect(try segmentBases(directory.path).last == newBase)
        let start = reopened.logStartOffset
        model.removeAll { $0.baseOffset < start }
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(check.isIntact, "\(check.problems)")
    }

    /// A segment that retention retires into the spare before its deferred trim keeps the blocks reserved
    /// past its end for queued appends, and a restart knows the spare only by its size: open gives them
    /// back, so `diskBytes` is what the files hold. Before, they stayed held and uncounted until a roll
    /// reused the file and sealed it again.
    @Test func blocksReservedPastTheSparesEndGoOnOpen() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        var generator = SplitMix64(seed: 515)
        var model: [StoredBatch] = []
        try Self.closedLogWithSpare(directory.path, configuration, extraBatches: 1, model: &model, using: &generator)
        let spare = directory.sub(try #require(try Self.names(directory.path, suffix: ".spare").first))
        let spareSize = fileSize(spare)
        // Reserved here the way the log does.
        #expect(try SegmentFile(path: spare, create: false).reserve(256 << 10, at: spareSize))
        try #require(WriteQueueTests.allocatedBytes(spare) >= spareSize + (256 << 10), "the reservation took no blocks")

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(fileSize(spare) == spareSize)
        #expect(WriteQueueTests.allocatedBytes(spare) <= WriteQueueTests.blockRounded(spareSize) + 4096, "blocks past the spare's end are still held")
        let files = try Self.names(directory.path, suffix: ".log") + [URL(fileURLWithPath: spare).lastPathComponent]
        #expect(reopened.currentStatistics().diskBytes == files.reduce(0) { $0 + fileSize(directory.sub($1)) })
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    /// Without a spare file there is nothing to roll into: a reopened log appends to its active segment.
    @Test func withoutASpareTheReopenedLogKeepsItsActiveSegment() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 1 << 20)
        var generator = SplitMix64(seed: 508)
        var model: [StoredBatch] = []
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            try log.close()
        }
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        try appendBatch(reopened, randomRecords(count: 2, using: &generator), into: &model)
        #expect(try segmentBases(directory.path) == [0])
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    /// A crash (the files as they are while the log runs) leaves the recycled file's old contents after the
    /// new batches: recovery keeps every fsynced batch, cuts the rest, says why, and the log verifies.
    @Test func recoveryAfterACrashCutsTheOldContentsOfARecycledFile() throws {
        let directory = try ScratchDirectory()
        let crashed = directory.sub("crashed")
        let configuration = LogConfiguration.testing(segmentBytesMax: 8192, retentionBytes: 24_576)
        let log = try PartitionLog.open(directory: directory.sub("live"), configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 503)
        var model: [StoredBatch] = []
        _ = try Self.fillUntilSpare(log, directory.sub("live"), model: &model, using: &generator)
        let base = try #require(try segmentBases(directory.sub("live")).last)
        while try segmentBases(directory.sub("live")).last == base {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)
        try log.flush()
        let recycledBase = try #require(try segmentBases(directory.sub("live")).last)
        let recycledPath = directory.sub("live") + "/" + SegmentNames.log(recycledBase)
        let newBytes = model.filter { $0.baseOffset >= recycledBase }.reduce(0) { $0 + $1.size }
        let physical = fileSize(recycledPath)
        #expect(physical > newBytes, "the active segment should still hold old contents")

        // The checkpoint, written in the background shortly after a roll, records that the file was recycled
        // (recovery names it in its report); wait for that before the "crash".
        let deadline = Date().addingTimeInterval(10)
        let entry = "segment \(recycledBase.rawValue) created"
        func recorded() -> Bool {
            String(decoding: (try? fileBytes(directory.sub("live/checkpoint"))) ?? [], as: UTF8.self)
                .split(separator: "\n").contains { $0.hasPrefix(entry) && $0.hasSuffix("recycled") }
        }
        while Date() < deadline, !recorded() {
            Thread.sleep(forTimeInterval: 0.02)
        }
        // Copy the directory as a crash would leave it.
        // (File by file: the checkpoint is rewritten in the background, its temporary file comes and goes.)
        try FileManager.default.createDirectory(atPath: crashed, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.sub("live")) where !name.hasSuffix(".tmp") {
            try writeFile(crashed + "/" + name, try fileBytes(directory.sub("live") + "/" + name))
        }
        // Before recovery, verify reports the old contents as not part of the log.
        let before = try LogInspector.verify(partitionDirectory: crashed)
        #expect(!before.isIntact)
        #expect(before.problems.allSatisfy { $0.path.hasSuffix(SegmentNames.log(recycledBase)) }, "\(before.problems)")
        let recovered = try PartitionLog.open(directory: crashed, configuration: configuration)
        defer { try? recovered.close() }
        let report = recovered.recoveryReport
        #expect(report.truncatedBytes == physical - newBytes)
        #expect(report.truncationReason?.contains("recycled") == true, "\(report.truncationReason ?? "nil")")
        #expect(report.corruptSealedSegments.isEmpty)
        #expect(report.deletedSegments.isEmpty)
        let start = recovered.logStartOffset
        #expect(try readEverything(recovered) == model.filter { $0.baseOffset >= start }.map(\.bytes))
        #expect(fileSize(crashed + "/" + SegmentNames.log(recycledBase)) == newBytes)
        #expect(try LogInspector.verify(partitionDirectory: crashed).isIntact)
        // Nothing is counted past what recovery left (once, the cut old contents still were, as reserved
        // space queued appends then skipped reserving): the log holds exactly its files.
        let files = try FileManager.default.contentsOfDirectory(atPath: crashed).filter { $0.hasSuffix(".log") || $0.hasSuffix(".spare") }
        #expect(recovered.currentStatistics().diskBytes == files.reduce(0) { $0 + fileSize(crashed + "/" + $1) })
        // Appends continue at the recovered end.
        var continued = model.filter { $0.baseOffset >= start }
        let next = try appendBatch(recovered, randomRecords(count: 2, using: &generator), into: &continued)
        #expect(next.baseOffset == model.last!.nextOffset)
    }

    /// A sealed segment in a recycled file keeps the file's old contents when its deferred trim failed or a
    /// crash came first: zeros to the page end, then an older segment's batches, past its last batch — which
    /// ends where the next segment starts. Recovery cuts them, whether it trusts the segment (below the
    /// recovery point) or scans it (the checkpoint lost), and keeps every batch: they are not damage to keep
    /// for salvage, and no later segment follows a hole. Before, the first reported the segment corrupt and
    /// the second removed every later segment, acknowledged batches and all.
    @Test(arguments: [true, false]) func recoveryCutsTheOldContentsLeftInASealedSegment(withCheckpoint: Bool) throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: 511)
        var model: [StoredBatch] = []
        for _ in 0..<30 { try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model) }
        try log.close()
        let bases = try segmentBases(directory.path)
        try #require(bases.count >= 4)
        let sealedPath = directory.sub(SegmentNames.log(bases[2]))
        let batches = try fileBytes(sealedPath)
        let page = SegmentFile.pageSize
        let stale = [UInt8](repeating: 0, count: (batches.count + page - 1) / page * page - batches.count)
            + (try fileBytes(directory.sub(SegmentNames.log(bases[0]))))
        try writeFile(sealedPath, batches + stale)
        if !withCheckpoint { try FileManager.default.removeItem(atPath: directory.sub("checkpoint")) }

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        let report = reopened.recoveryReport
        #expect(report.corruptSealedSegments.isEmpty, "\(report.corruptSealedSegments)")
        #expect(report.deletedSegments.isEmpty)
        #expect(report.truncatedBytes == stale.count)
        #expect(report.truncationReason?.contains("recycled") == true, "\(report.truncationReason ?? "nil")")
        #expect(try fileBytes(sealedPath) == batches)
        #expect(reopened.logEndOffset == model[model.count - 1].nextOffset)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
        try reopenExpectingIntact(directory.path, configuration, holding: model.map(\.bytes)).close()
    }

    /// A log dropped without close() stops its spare file's cache drop, as close() does: a reopen at once may
    /// roll into that file, and the old log's drop would go on dropping the pages the new log's appends
    /// write there. The drop waits behind a block held on the checkpoint queue, so it has not started when
    /// the log goes; afterwards it has stopped without dropping a byte: cancelled. Before, deinit left it
    /// running.
    @Test func aLogDroppedWithoutCloseCancelsItsSparesCacheDrop() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        let gate = DispatchSemaphore(value: 0)
        defer { gate.signal() }
        var drops: [SpareCacheDrop] = []
        weak var weakLog: PartitionLog?
        do {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            weakLog = log
            log.checkpointQueueForTesting.async { gate.wait() }
            var generator = SplitMix64(seed: 517)
            var model: [StoredBatch] = []
            _ = try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)
            drops = log.spareCacheDropsForTesting
            try #require(drops.count == 1, "the spare retired by this log has no cache drop")
            let before = drops[0].progressForTesting
            try #require(before.droppedBytes == 0 && !before.stopped, "the drop should wait behind the held queue")
        }
        // The flusher holds the log only while in a round; deinit runs when the last reference goes.
        let deadline = Date().addingTimeInterval(30)
        while weakLog != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        try #require(weakLog == nil, "the log was never released")
        let after = drops[0].progressForTesting
        #expect(after.stopped && after.droppedBytes == 0, "the dropped log left its spare's cache drop running: \(after)")
    }

    /// Fills a log until it rolls into its spare file, then has it roll out again after one batch, with
    /// `trimFails` failing every deferred trim while it is set: the recycled segment, now sealed, keeps its
    /// old contents past its batch. Returns its base and the next segment's.
    static func sealRecycledSegment(
        _ log: PartitionLog, _ directory: String, trimFails: LockedBox<Bool>, model: inout [StoredBatch], using generator: inout SplitMix64
    ) throws -> (sealed: Offset, next: Offset) {
        log.trimHookForTesting = { () throws(LogError) in
            if trimFails.get() { throw .io(operation: "truncate", path: "trimHookForTesting", errno: EIO) }
        }
        _ = try fillUntilSpare(log, directory, model: &model, using: &generator)
        let before = try #require(try segmentBases(directory).last)
        while try segmentBases(directory).last == before {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        let sealed = try #require(try segmentBases(directory).last)
        // A batch that does not fit after the first one rolls again, well inside the old contents.
        try appendBatch(log, randomRecords(count: 1, valueBytes: 3600...3600, using: &generator), into: &model)
        let next = try #require(try segmentBases(directory).last)
        try #require(next != sealed, "the large batch did not roll")
        try log.flush()
        return (sealed, next)
    }

    /// A sealed recycled segment's deferred trim that fails (EIO, from the testing hook) is no failure of the
    /// log: nothing of it lies past the segment's last batch. Appends go on and become durable, the failure
    /// is counted, and a later round tries the trim again. Before, the log failed as after a failed fsync:
    /// no more writes until reopened, every waiter failed.
    @Test func aFailedTrimOfASealedSegmentDoesNotFailTheLogAndIsTriedAgain() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 512)
        var model: [StoredBatch] = []
        let trimFails = LockedBox(true)
        let (sealed, next) = try Self.sealRecycledSegment(log, directory.path, trimFails: trimFails, model: &model, using: &generator)
        let sealedPath = directory.sub(SegmentNames.log(sealed))
        let sealedBatches = model.filter { $0.baseOffset >= sealed && $0.baseOffset < next }.flatMap(\.bytes)
        #expect(log.failureReason == nil)
        #expect(log.currentStatistics().trimFailures >= 1)
        #expect(fileSize(sealedPath) > sealedBatches.count, "the trim should have failed")

        try Self.appendDurably(log, randomRecords(count: 2, using: &generator), into: &model)
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        try log.flush()
        #expect(log.durableEndOffset == log.logEndOffset)
        let start = log.logStartOffset
        #expect(try readEverything(log) == model.filter { $0.baseOffset >= start }.map(\.bytes))

        // Once the disk takes it, a round a retry interval later trims the file.
        trimFails.set(false)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, fileSize(sealedPath) != sealedBatches.count {
            Thread.sleep(forTimeInterval: Double(PartitionLog.trimRetryIntervalNanoseconds) / 1e9 / 4)
            try Self.appendDurably(log, randomRecords(count: 1, using: &generator), into: &model)
        }
        #expect(try fileBytes(sealedPath) == sealedBatches)
        #expect(log.failureReason == nil)
    }

    /// Close tries a failed trim once more. When that fails too, the sealed segment stays untrimmed on disk,
    /// and the next open cuts its old contents and keeps every batch; when it succeeds, the log reopens
    /// with nothing to cut.
    @Test(arguments: [true, false]) func closeTriesAFailedTrimAgainAndAnOpenCutsWhatIsLeft(trimFailsAtClose: Bool) throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: 513)
        var model: [StoredBatch] = []
        let trimFails = LockedBox(true)
        let (sealed, next) = try Self.sealRecycledSegment(log, directory.path, trimFails: trimFails, model: &model, using: &generator)
        let sealedPath = directory.sub(SegmentNames.log(sealed))
        let sealedBatches = model.filter { $0.baseOffset >= sealed && $0.baseOffset < next }.flatMap(\.bytes)
        let failuresBeforeClose = log.currentStatistics().trimFailures
        #expect(failuresBeforeClose >= 1)
        trimFails.set(trimFailsAtClose)
        let start = log.logStartOffset
        try log.close()
        // A round may have tried once more before close did.
        #expect(trimFailsAtClose ? log.currentStatistics().trimFailures > failuresBeforeClose : true)
        model.removeAll { $0.baseOffset < start }

        guard trimFailsAtClose else {
            #expect(try fileBytes(sealedPath) == sealedBatches)
            try reopenExpectingIntact(directory.path, configuration, holding: model.map(\.bytes)).close()
            return
        }
        let untrimmed = fileSize(sealedPath)
        #expect(untrimmed > sealedBatches.count)
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        let report = reopened.recoveryReport
        #expect(report.corruptSealedSegments.isEmpty, "\(report.corruptSealedSegments)")
        #expect(report.deletedSegments.isEmpty)
        #expect(report.truncatedBytes == untrimmed - sealedBatches.count)
        #expect(try fileBytes(sealedPath) == sealedBatches)
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
        try reopenExpectingIntact(directory.path, configuration, holding: model.map(\.bytes)).close()
    }

    /// What the log's segment and spare files hold, by their sizes.
    static func segmentFileBytes(_ directory: String) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") || $0.hasSuffix(".spare") }
            .reduce(0) { $0 + fileSize(directory + "/" + $1) }
    }

    /// `diskBytes`, which a disk budget watches, is what the files hold while a sealed recycled segment's
    /// trim is pending too: from the roll to the flusher's round that cuts the old contents (here held at
    /// its fsync). Before, the roll stopped counting them at once.
    @Test func diskBytesCountsASealedSegmentsOldContentsUntilItsTrimIsDone() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 514)
        var model: [StoredBatch] = []
        _ = try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)
        let before = try #require(try segmentBases(directory.path).last)
        while try segmentBases(directory.path).last == before {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        let recycled = try #require(try segmentBases(directory.path).last)
        try log.flush()
        #expect(log.currentStatistics().diskBytes == (try Self.segmentFileBytes(directory.path)))

        let holding = LockedBox(true)
        let reached = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        log.fsyncHookForTesting = {
            guard holding.get() else { return }
            holding.set(false)
            reached.signal()
            release.wait()
        }
        defer { release.signal() }
        try appendBatch(log, randomRecords(count: 1, valueBytes: 3600...3600, using: &generator), into: &model)
        try #require(try segmentBases(directory.path).last != recycled, "the large batch did not roll")
        try #require(reached.wait(timeout: .now() + 30) == .success, "the flusher never reached its fsync")
        let sealedPath = directory.sub(SegmentNames.log(recycled))
        let sealedBytes = model.filter { $0.baseOffset >= recycled && $0.baseOffset < model[model.count - 1].baseOffset }.reduce(0) { $0 + $1.size }
        #expect(fileSize(sealedPath) > sealedBytes, "the sealed segment's trim should still be pending")
        #expect(log.currentStatistics().diskBytes == (try Self.segmentFileBytes(directory.path)))

        release.signal()
        try log.flush()
        #expect(fileSize(sealedPath) == sealedBytes)
        #expect(log.currentStatistics().diskBytes == (try Self.segmentFileBytes(directory.path)))
    }

    /// A sealed segment whose trim failed still holds its old contents: `diskBytes` counts them, and
    /// `releaseRecyclingReserve` (a full disk budget, before it drops data) cuts them and says so.
    @Test func aFailedTrimStaysCountedUntilTheReserveIsReleased() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 515)
        var model: [StoredBatch] = []
        let trimFails = LockedBox(true)
        let (sealed, next) = try Self.sealRecycledSegment(log, directory.path, trimFails: trimFails, model: &model, using: &generator)
        let sealedPath = directory.sub(SegmentNames.log(sealed))
        let sealedBytes = model.filter { $0.baseOffset >= sealed && $0.baseOffset < next }.reduce(0) { $0 + $1.size }
        let untrimmed = fileSize(sealedPath)
        #expect(untrimmed > sealedBytes, "the trim should have failed")
        let filesBefore = try Self.segmentFileBytes(directory.path)
        #expect(log.currentStatistics().diskBytes == filesBefore)

        trimFails.set(false)
        // At once, although the trim failed a moment ago (a flusher round retries it only a second later): a
        // full budget wants the space before it drops data.
        let freed = log.releaseRecyclingReserve()
        #expect(fileSize(sealedPath) == sealedBytes)
        let filesAfter = try Self.segmentFileBytes(directory.path)
        #expect(freed == filesBefore - filesAfter)
        #expect(freed >= untrimmed - sealedBytes)
        #expect(log.currentStatistics().diskBytes == filesAfter)
        try log.flush()
        #expect(log.failureReason == nil)
    }

    @Test func withRecyclingOffRetentionDeletesFiles() throws {
        let directory = try ScratchDirectory()
        var configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 12_288)
        configuration.recycleSegments = false
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 504)
        var model: [StoredBatch] = []
        for _ in 0..<80 { try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model) }
        #expect(log.logStartOffset > 0)
        #expect(try Self.names(directory.path, suffix: ".spare").isEmpty)
        let statistics = log.currentStatistics()
        #expect(statistics.diskBytes == statistics.sizeBytes)
        // And a spare left by an earlier run with recycling on is removed on open.
        try writeFile(directory.sub(SegmentNames.spare(0)), [UInt8](repeating: 7, count: 4096))
        try log.close()
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(try Self.names(directory.path, suffix: ".spare").isEmpty)
    }

    /// The drop-oldest overflow path frees disk: it deletes, never keeps a spare.
    @Test func droppingTheOldestSegmentDeletesItsFile() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(segmentBytesMax: 4096))
        defer { try? log.close() }
        var generator = SplitMix64(seed: 505)
        var model: [StoredBatch] = []
        for _ in 0..<40 { try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model) }
        let before = log.currentStatistics().diskBytes
        let dropped = try #require(log.dropOldestSegment())
        #expect(try Self.names(directory.path, suffix: ".spare").isEmpty)
        #expect(log.currentStatistics().diskBytes == before - dropped.bytes)
    }

    /// Old batches at a batch boundary after the new ones (what a crash can leave in a recycled file) are
    /// valid batches with offsets below the segment's base: dump must not print them as the segment's.
    @Test func dumpAndSalvageStopAtOldBatchesPastTheNewOnes() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(segmentBytesMax: 4096))
        var generator = SplitMix64(seed: 506)
        var model: [StoredBatch] = []
        for _ in 0..<20 { try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model) }
        try log.close()
        let bases = try segmentBases(directory.path)
        let activePath = directory.sub(SegmentNames.log(bases.last!))
        let newBatches = model.filter { $0.baseOffset >= bases.last! }
        try writeFile(activePath, try fileBytes(activePath) + (try fileBytes(directory.sub(SegmentNames.log(bases[0])))))
        var dumped: [Offset] = []
        var problems: [LogInspector.Problem] = []
        try LogInspector.dump(path: activePath, decodeRecords: false, visit: { dumped.append(Offset($0.header.baseOffset)) }, onProblem: { problems.append($0) })
        #expect(dumped == newBatches.map(\.baseOffset))
        #expect(problems.count == 1)
        #expect(problems.first?.message.contains("recycled") == true, "\(problems)")

        // Salvage keeps the new batches and counts the old ones as lost; the salvaged log opens clean.
        let oldBytes = fileSize(directory.sub(SegmentNames.log(bases[0])))
        let salvaged = directory.sub("salvaged")
        let report = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged)
        #expect(report.lostBytes == oldBytes)
        let reopened = try PartitionLog.open(directory: salvaged, configuration: .testing(segmentBytesMax: 4096))
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty)
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    /// Appends one batch through the write queue (`fsync: always` with a durability callback) and waits until
    /// it is durable.
    static func appendDurably(_ log: PartitionLog, _ records: [TestRecord], into model: inout [StoredBatch]) throws {
        let outcomes = WriteQueueTests.Outcomes()
        try WriteQueueTests.appendAwaitingDurability(log, records, into: &model, outcomes: outcomes)
        #expect(outcomes.wait(), "the append never became durable")
        if case .failure(let error)? = outcomes.all.first { throw error }
    }

    /// A budget of one segment retires the segment a roll just sealed at the next roll, possibly while the
    /// flusher still has to cut that file's old contents: the roll after must not reuse the file until the
    /// cut is done, or the cut would take what the new segment wrote. Concurrent durable appends across
    /// hundreds of such rolls; every batch kept reads back exactly, and the closed log verifies and reopens
    /// with nothing cut.
    @Test func rollsUnderABudgetOfOneSegmentNeverLoseWhatTheReusedFileHolds() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 4096)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        let appenders = 4
        let models = (0..<appenders).map { _ in LockedBox<[StoredBatch]>([]) }
        let failures = LockedBox<[String]>([])
        DispatchQueue.concurrentPerform(iterations: appenders) { appender in
            var generator = SplitMix64(seed: 600 + UInt64(appender))
            var model: [StoredBatch] = []
            for round in 0..<300 {
                do {
                    // Half the appenders do not wait: they roll as fast as they write, many rolls per fsync.
                    if appender % 2 == 0 || round % 50 == 49 {
                        try Self.appendDurably(log, randomRecords(count: 3, valueBytes: 100...300, using: &generator), into: &model)
                    } else {
                        try appendBatch(log, randomRecords(count: 3, valueBytes: 100...300, using: &generator), into: &model)
                    }
                } catch {
                    failures.update { $0.append("\(error)") }
                    return
                }
            }
            models[appender].set(model)
        }
        #expect(failures.get().isEmpty, "\(failures.get())")
        let start = log.logStartOffset
        let kept = models.flatMap { $0.get() }.filter { $0.baseOffset >= start }.sorted { $0.baseOffset < $1.baseOffset }
        #expect(try readEverything(log) == kept.map(\.bytes))
        try log.close()
        try reopenExpectingIntact(directory.path, configuration, holding: kept.map(\.bytes)).close()
    }

    /// A roll that fails (here the new segment's name is taken by a directory, as EMFILE, ENOSPC or EIO
    /// would fail its creation) leaves the recycled active segment as it was: the appends that fit after
    /// it are written there, reported durable, read back and survive a restart. The trim a roll defers to
    /// the flusher was once recorded before the new file existed, and that round then cut these appends.
    @Test func aFailedRollLeavesTheActiveSegmentWhole() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, fsync: .always, retentionBytes: 12_288)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: 901)
        var model: [StoredBatch] = []
        let spareInode = try #require(Self.inode(try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)))
        func activeIsTheSpare() throws -> Bool {
            guard let base = try segmentBases(directory.path).last else { return false }
            return Self.inode(directory.sub(SegmentNames.log(base))) == spareInode
        }
        for _ in 0..<100 where try !activeIsTheSpare() {
            try Self.appendDurably(log, randomRecords(count: 1, valueBytes: 50...60, using: &generator), into: &model)
        }
        try #require(try activeIsTheSpare(), "the active segment is the recycled file")
        let blocker = directory.sub(SegmentNames.log(log.logEndOffset))
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        var refused: [StoredBatch] = []
        #expect(throws: LogError.self, "a batch that does not fit rolls, and the roll fails") {
            try appendBatch(log, randomRecords(count: 1, valueBytes: 3900...3900, using: &generator), into: &refused)
        }
        try FileManager.default.removeItem(atPath: blocker)
        for _ in 0..<2 { try Self.appendDurably(log, randomRecords(count: 1, valueBytes: 50...60, using: &generator), into: &model) }
        let start = log.logStartOffset
        let kept = model.filter { $0.baseOffset >= start }.map(\.bytes)
        #expect(try readEverything(log) == kept)
        try log.close()
        try reopenExpectingIntact(directory.path, configuration, holding: kept).close()
    }

    /// Writes into a recycled file end on a page boundary: zeros from the segment's end to the end of its page,
    /// inside the old contents (the file's size unchanged), so no write makes the kernel read old bytes back
    /// from the disk once the spare's cached pages are dropped. Both write paths: a direct append and a group
    /// written from the write queue.
    @Test func writesIntoARecycledFilePadToThePageEnd() throws {
        let directory = try ScratchDirectory(inMemory: true)
        let configuration = LogConfiguration.testing(segmentBytesMax: 16_384, fsync: .always, retentionBytes: 49_152)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 507)
        var model: [StoredBatch] = []
        _ = try Self.fillUntilSpare(log, directory.path, model: &model, using: &generator)
        let before = try segmentBases(directory.path).last
        while try segmentBases(directory.path).last == before {
            try appendBatch(log, randomRecords(count: 4, valueBytes: 100...300, using: &generator), into: &model)
        }
        let recycledBase = try #require(try segmentBases(directory.path).last)
        let path = directory.sub(SegmentNames.log(recycledBase))
        let oldSize = fileSize(path)
        let page = SegmentFile.pageSize

        func expectPaddedEnd(_ step: String) throws {
            let end = model.filter { $0.baseOffset >= recycledBase }.reduce(0) { $0 + $1.size }
            let bytes = try fileBytes(path)
            #expect(bytes.count == oldSize, "\(step): the file's size changed")
            #expect(end < oldSize, "\(step): the test must stay inside the old contents")
            let pageEnd = min((end + page - 1) / page * page, bytes.count)
            #expect(bytes[end..<pageEnd].allSatisfy { $0 == 0 }, "\(step): bytes \(end)..<\(pageEnd) are not zero padding")
            #expect(Array(bytes[0..<end]) == model.filter { $0.baseOffset >= recycledBase }.flatMap(\.bytes), "\(step)")
        }
        try expectPaddedEnd("after the roll's direct append")
        try appendBatch(log, randomRecords(count: 3, valueBytes: 50...200, using: &generator), into: &model)
        try expectPaddedEnd("after a direct append")
        try Self.appendDurably(log, randomRecords(count: 3, valueBytes: 50...200, using: &generator), into: &model)
        try expectPaddedEnd("after a queued append")
        #expect(log.currentStatistics().queuedGroupWrites > 0)
        #expect(try readEverything(log) == model.filter { $0.baseOffset >= log.logStartOffset }.map(\.bytes))
    }

    /// A retired segment's file (the spare) leaves the page cache: its cached pages are old contents, and a
    /// roll that overwrote them in place would write each group to the disk in as many pieces as they are.
    @Test(.enabled(if: PageCache.dropsCleanPages, "needs a file system whose clean pages posix_fadvise can drop (not tmpfs)"))
    func theSparesCachedPagesAreDropped() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 262_144, fsync: .always, retentionBytes: 786_432)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 508)
        var model: [StoredBatch] = []
        var spare: String?
        // Every append durable before the next: the segment retention retires is clean, so all its pages
        // can go.
        for _ in 0..<2_000 where spare == nil {
            try Self.appendDurably(log, randomRecords(count: 40, valueBytes: 100...300, using: &generator), into: &model)
            spare = try Self.names(directory.path, suffix: ".spare").first.map { directory.sub($0) }
        }
        let sparePath = try #require(spare, "retention never produced a spare file")
        let deadline = Date().addingTimeInterval(10)
        var resident = PageCache.residentPages(sparePath)
        while Date() < deadline, resident != 0 {
            Thread.sleep(forTimeInterval: 0.02)
            resident = PageCache.residentPages(sparePath)
        }
        #expect(resident == 0, "\(resident.map(String.init) ?? "unknown") pages of the spare file are still cached")
    }

    /// A spare found on open is out of the page cache once open returns: the first append may roll into it.
    @Test(.enabled(if: PageCache.dropsCleanPages, "needs a file system whose clean pages posix_fadvise can drop (not tmpfs)"))
    func aSpareFoundOnOpenIsDroppedFromThePageCacheBeforeOpenReturns() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 16_384, retentionBytes: 49_152)
        var generator = SplitMix64(seed: 509)
        var model: [StoredBatch] = []
        try Self.closedLogWithSpare(directory.path, configuration, extraBatches: 0, model: &model, using: &generator)
        let sparePath = directory.sub(try #require(try Self.names(directory.path, suffix: ".spare").first))
        // Read it into the page cache, as a recent run leaves it.
        _ = try Data(contentsOf: URL(fileURLWithPath: sparePath))
        #expect((PageCache.residentPages(sparePath) ?? 0) > 0, "reading the spare did not cache it")
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        let resident = PageCache.residentPages(sparePath)
        #expect(resident == 0, "\(resident.map(String.init) ?? "unknown") pages of the spare file are still cached")
    }

    @Test func checkpointKeepsTheRecycledFlag() {
        var checkpoint = Checkpoint()
        checkpoint.recoveryPoint = 40
        checkpoint.segments[0] = .init(createdMilliseconds: 5, indexChecksum: 0xA1, timeIndexChecksum: 0xB2, recycled: true)
        checkpoint.segments[40] = .init(createdMilliseconds: 9, recycled: true)
        checkpoint.segments[80] = .init(createdMilliseconds: 12)
        #expect(Checkpoint.decode(checkpoint.encoded()) == checkpoint)
    }
}

/// What the page cache holds of a file (Linux `mincore` over a read-only mapping).
enum PageCache {
    static func residentPages(_ path: String) -> Int? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        let size = Int(status.st_size)
        guard size > 0 else { return 0 }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_SHARED, descriptor, 0), mapping != UnsafeMutableRawPointer(bitPattern: -1) else {
            return nil
        }
        defer { munmap(mapping, size) }
        var vector = [UInt8](repeating: 0, count: (size + SegmentFile.pageSize - 1) / SegmentFile.pageSize)
        guard mincore(mapping, size, &vector) == 0 else { return nil }
        return vector.filter { $0 & 1 != 0 }.count
    }

    /// Whether this machine's temporary directory drops a written, fsynced file's pages on
    /// `POSIX_FADV_DONTNEED` (tmpfs keeps them: they are its storage).
    static let dropsCleanPages: Bool = {
        let path = NSTemporaryDirectory() + "outpost-pagecache-probe-\(UUID().uuidString.prefix(8))"
        defer { unlink(path) }
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let bytes = [UInt8](repeating: 7, count: 65_536)
        guard bytes.withUnsafeBytes({ pwrite(descriptor, $0.baseAddress, $0.count, 0) }) == bytes.count, fsync(descriptor) == 0 else {
            return false
        }
        _ = posix_fadvise(descriptor, 0, 0, Int32(POSIX_FADV_DONTNEED))
        return residentPages(path) == 0
    }()
}
