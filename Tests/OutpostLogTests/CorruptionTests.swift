import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Recovery on open: torn and corrupt batches in the active segment are cut exactly at the first bad batch;
/// damage in sealed segments is reported and kept; salvage copies every intact batch.
@Suite struct CorruptionTests {
    /// Collects the failed checks of one randomized case so it is reported once, with its seed.
    struct CaseChecker {
        var failures: [String] = []
        mutating func check(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition { failures.append(message()) }
        }
    }

    /// A closed log of a few sealed segments and an active one with several batches, and what it holds.
    struct ClosedLog {
        var model: [StoredBatch]
        var bases: [Offset]
        var configuration: LogConfiguration
        var active: [(position: Int, batch: StoredBatch)]
        var activeBase: Offset { bases[bases.count - 1] }
        var end: Offset { model.last!.nextOffset }
    }

    static func buildClosedLog(_ directory: String, indexIntervalBytes: Int = 1024, using generator: inout SplitMix64) throws -> ClosedLog {
        let configuration = LogConfiguration.testing(segmentBytesMax: 12_000, indexIntervalBytes: indexIntervalBytes)
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        var model: [StoredBatch] = []
        let batches = Int.random(in: 20...70, using: &generator)
        for index in 0..<batches {
            let records = randomRecords(
                count: Int.random(in: 1...8, using: &generator), valueBytes: 10...300, using: &generator)
            try appendBatch(log, records, compression: index % 4 == 3 ? .gzip : .none, into: &model)
        }
        // The active segment gets at least three batches.
        while try layout(model, bases: segmentBases(directory)).last!.batches.count < 3 {
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        }
        try log.close()
        let bases = try segmentBases(directory)
        return ClosedLog(model: model, bases: bases, configuration: configuration, active: layout(model, bases: bases).last!.batches)
    }

    enum Damage: CustomStringConvertible {
        case flip(position: Int, mask: UInt8)
        case truncate(size: Int)
        case junk([UInt8])

        var description: String {
            switch self {
            case .flip(let position, let mask): "flip byte \(position) ^ \(mask)"
            case .truncate(let size): "truncate to \(size)"
            case .junk(let bytes): "append \(bytes.count) junk bytes"
            }
        }
    }

    /// Header fields outside the CRC (baseOffset, partitionLeaderEpoch): their damage is not what a CRC
    /// can catch; `aDamagedBaseOffsetInTheActiveSegmentIsCut` covers baseOffset.
    static func isOutsideCRC(_ position: Int, in active: [(position: Int, batch: StoredBatch)]) -> Bool {
        guard let entry = active.last(where: { $0.position <= position }) else { return false }
        let inBatch = position - entry.position
        return inBatch < 8 || (12..<16).contains(inBatch)
    }

    static var corruptionCases: Int {
        Int(ProcessInfo.processInfo.environment["OUTPOST_CORRUPTION_CASES"] ?? "") ?? 300
    }

    @Test func randomDamageInTheActiveSegmentIsCutExactlyAtTheFirstBadBatch() throws {
        let baseSeed = testSeed(0xC0FF_EE00_0000_0001)
        var failedCases = 0
        var cutCases = 0
        for index in 0..<Self.corruptionCases {
            let seed = baseSeed &+ UInt64(index)
            let failures = try Self.activeSegmentCase(seed: seed, cut: &cutCases)
            if !failures.isEmpty {
                failedCases += 1
                let details = failures.joined(separator: "\n  ")
                Issue.record("case \(index) failed (replay: OUTPOST_TEST_SEED=\(seed) OUTPOST_CORRUPTION_CASES=1):\n  \(details)")
                if failedCases >= 5 { break }
            }
        }
        #expect(cutCases > Self.corruptionCases / 2, "too few cases actually cut anything")
    }

    static func activeSegmentCase(seed: UInt64, cut cutCases: inout Int) throws -> [String] {
        var generator = SplitMix64(seed: seed)
        let directory = try ScratchDirectory("activeDamage", inMemory: true)
        let built = try buildClosedLog(directory.path, using: &generator)
        let activePath = directory.path + "/" + SegmentNames.log(built.activeBase)
        let original = try fileBytes(activePath)
        var checker = CaseChecker()
        checker.check(original == built.active.flatMap(\.batch.bytes), "active segment does not hold the appended batches")

        // Plan the damage: flips, then maybe a truncation, then maybe junk at the end.
        var damages: [Damage] = []
        var bytes = original
        for _ in 0..<Int.random(in: 0...3, using: &generator) {
            var position = Int.random(in: 0..<bytes.count, using: &generator)
            while isOutsideCRC(position, in: built.active) { position = Int.random(in: 0..<bytes.count, using: &generator) }
            let mask = UInt8.random(in: 1...255, using: &generator)
            bytes[position] ^= mask
            damages.append(.flip(position: position, mask: mask))
        }
        if damages.isEmpty || Int.random(in: 0..<10, using: &generator) < 4 {
            let size = Int.random(in: 0...bytes.count, using: &generator)
            bytes.removeLast(bytes.count - size)
            damages.append(.truncate(size: size))
        }
        let keptSize = bytes.count
        switch Int.random(in: 0..<6, using: &generator) {
        case 0:
            let count = Int.random(in: 1...200, using: &generator)
            let zeros = Bool.random(using: &generator)
            let junk = (0..<count).map { _ in zeros ? 0 : UInt8.random(in: 0...255, using: &generator) }
            bytes += junk
            damages.append(.junk(junk))
        case 1 where built.bases.count > 1:
            // What a recycled segment file holds past its new batches: an older segment's batches, whole
            // and valid (CRC and all) but with lower offsets, entered at a batch boundary or mid-batch.
            let older = try fileBytes(directory.path + "/" + SegmentNames.log(built.bases[0]))
            let start = Bool.random(using: &generator) ? 0 : Int.random(in: 0..<older.count, using: &generator)
            let stale = Array(older[start..<min(older.count, start + Int.random(in: 1...4000, using: &generator))])
            bytes += stale
            damages.append(.junk(stale))
        default:
            break
        }
        try writeFile(activePath, bytes)

        // Where recovery must cut: the first batch that is flipped or torn; junk after whole batches.
        var expectedCut = keptSize
        var expectedEnd = built.end
        for (position, batch) in built.active {
            let torn = position + batch.size > keptSize
            let flipped = damages.contains {
                if case .flip(let at, _) = $0 { return at >= position && at < position + batch.size && at < keptSize }
                return false
            }
            if torn || flipped {
                expectedCut = position
                expectedEnd = batch.baseOffset
                break
            }
        }
        let expectedTruncated = bytes.count - expectedCut
        if expectedTruncated > 0 { cutCases += 1 }

        let log = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        let report = log.recoveryReport
        let context = "damage \(damages), expected cut at byte \(expectedCut) (offset \(expectedEnd))"
        checker.check(report.truncatedBytes == expectedTruncated, "\(context): truncatedBytes \(report.truncatedBytes), expected \(expectedTruncated)")
        checker.check((report.truncatedBatches > 0) == (expectedTruncated > 0), "\(context): truncatedBatches \(report.truncatedBatches)")
        checker.check((report.truncationReason != nil) == (expectedTruncated > 0), "\(context): reason \(report.truncationReason ?? "nil")")
        checker.check(report.deletedSegments.isEmpty, "\(context): deleted segments \(report.deletedSegments)")
        checker.check(report.corruptSealedSegments.isEmpty, "\(context): corrupt sealed \(report.corruptSealedSegments)")
        checker.check(log.logStartOffset == 0, "\(context): start \(log.logStartOffset)")
        checker.check(log.logEndOffset == expectedEnd, "\(context): end \(log.logEndOffset), expected \(expectedEnd)")
        checker.check(report.logEndOffset == expectedEnd, "\(context): report end \(report.logEndOffset)")
        let onDisk = try fileBytes(activePath)
        checker.check(onDisk == Array(original[0..<expectedCut]), "\(context): the active segment holds \(onDisk.count) bytes, not the \(expectedCut)-byte intact prefix")
        // No batch before the cut is lost, changed or moved.
        let survivors = built.model.filter { $0.baseOffset < expectedEnd }
        let read = try readEverything(log)
        checker.check(read == survivors.map(\.bytes), "\(context): read back \(read.count) batches, expected \(survivors.count) intact ones")
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        checker.check(check.isIntact, "\(context): verify after recovery: \(check.problems)")
        checker.check(check.nextOffset == expectedEnd, "\(context): verify next offset \(String(describing: check.nextOffset))")
        // Appends continue right after the last intact batch.
        var model = survivors
        let appended = try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)
        checker.check(appended.baseOffset == expectedEnd, "\(context): next append at \(appended.baseOffset), expected \(expectedEnd)")
        checker.check(try log.read(from: appended.baseOffset, maxBytes: 1).bytes == appended.bytes, "\(context): appended batch reads back wrong")
        try log.close()

        let again = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        checker.check(again.recoveryReport.truncatedBytes == 0, "\(context): second recovery cut \(again.recoveryReport.truncatedBytes) more bytes")
        checker.check(try readEverything(again) == model.map(\.bytes), "\(context): second open reads back differently")
        try again.close()
        return checker.failures
    }

    /// baseOffset is outside the CRC, but the active segment's offsets are assigned contiguously from its
    /// base: a batch whose stored offset does not continue the previous one is damaged and must be cut.
    struct OffsetFlip: Sendable, CustomTestStringConvertible {
        /// 0: the active segment's first batch, 1: a middle one, 2: the last.
        var batchChoice: Int
        var byte: Int
        var mask: UInt8
        var testDescription: String { "batch \(["first", "middle", "last"][batchChoice]), byte \(byte) ^ \(mask)" }
    }

    @Test(arguments: [
        OffsetFlip(batchChoice: 0, byte: 7, mask: 0x01), OffsetFlip(batchChoice: 1, byte: 7, mask: 0x01),
        OffsetFlip(batchChoice: 2, byte: 7, mask: 0x02), OffsetFlip(batchChoice: 1, byte: 3, mask: 0x01),
        OffsetFlip(batchChoice: 2, byte: 0, mask: 0x80), OffsetFlip(batchChoice: 0, byte: 4, mask: 0x10),
    ])
    func aDamagedBaseOffsetInTheActiveSegmentIsCut(_ flip: OffsetFlip) throws {
        let (batchChoice, byte, mask) = (flip.batchChoice, flip.byte, flip.mask)
        var generator = SplitMix64(seed: 61)
        let directory = try ScratchDirectory("baseOffset\(batchChoice)-\(byte)")
        let built = try Self.buildClosedLog(directory.path, using: &generator)
        let active = built.active
        let index = [0, active.count / 2, active.count - 1][batchChoice]
        let (position, batch) = active[index]
        let activePath = directory.path + "/" + SegmentNames.log(built.activeBase)
        var bytes = try fileBytes(activePath)
        bytes[position + byte] ^= mask
        try writeFile(activePath, bytes)

        let log = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        defer { try? log.close() }
        let stored = try RecordBatchHeader(bytes: bytes, at: position).baseOffset
        #expect(log.recoveryReport.truncatedBytes == bytes.count - position, "batch \(batch.baseOffset) now claims offset \(stored)")
        #expect(log.logEndOffset == batch.baseOffset, "batch \(batch.baseOffset) now claims offset \(stored)")
        #expect(try readEverything(log) == built.model.filter { $0.baseOffset < batch.baseOffset }.map(\.bytes))
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(check.isIntact, "\(check.problems)")
    }

    /// Damage in a sealed segment below the recovery point: the tail check from the last index entry finds
    /// it; it is reported, kept as it is, reads into it fail, and salvage saves everything else.
    @Test func damageInASealedSegmentIsReportedKeptAndSalvageable() throws {
        var generator = SplitMix64(seed: 62)
        let directory = try ScratchDirectory()
        let built = try Self.buildClosedLog(directory.path, indexIntervalBytes: 4096, using: &generator)
        try #require(built.bases.count >= 3)
        // A sealed segment (not the last sealed one) with two batches after its last index entry: recovery
        // re-validates a trusted segment from there. Damage the first of them, not the segment's first batch.
        let segments = layout(built.model, bases: built.bases)
        func tailBatches(_ segment: (base: Offset, batches: [(position: Int, batch: StoredBatch)])) throws -> [(position: Int, batch: StoredBatch)] {
            let entries = decodeOffsetIndexFile(try fileBytes(directory.path + "/" + SegmentNames.index(segment.base)))
            return segment.batches.filter { $0.position >= Int(entries.last!.position) && $0.position > 0 }
        }
        let candidates = try segments.dropLast(2).filter { try tailBatches($0).count >= 2 }
        let sealed = try #require(candidates.first, "no sealed segment has two batches after its last index entry")
        let sealedPath = directory.path + "/" + SegmentNames.log(sealed.base)
        let tail = try tailBatches(sealed)
        let (damagedPosition, damaged) = tail[tail.count - 2]
        let following = tail[tail.count - 1].batch
        var bytes = try fileBytes(sealedPath)
        bytes[damagedPosition + RecordBatchLayout.headerSize + 2] ^= 0x40  // a record byte, under the CRC
        try writeFile(sealedPath, bytes)

        let log = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        let report = log.recoveryReport
        #expect(report.corruptSealedSegments.map(\.path) == [sealedPath])
        #expect(report.corruptSealedSegments.first?.position == damagedPosition)
        #expect(report.truncatedBytes == 0)
        #expect(report.deletedSegments.isEmpty)
        #expect(try fileBytes(sealedPath) == bytes, "the damaged segment must be kept exactly as found")
        #expect(try segmentBases(directory.path) == built.bases)
        #expect(log.logEndOffset == built.end)

        // Reads before the damage work and stop at it; reads into it (or past it, in that segment) fail.
        let before = sealed.batches.first!.batch
        let upToDamage = try log.read(from: before.baseOffset, maxBytes: Int.max)
        #expect(upToDamage.bytes == sealed.batches.prefix { $0.position < damagedPosition }.flatMap(\.batch.bytes))
        #expect(upToDamage.nextOffset == damaged.baseOffset)
        for offset in [damaged.baseOffset, damaged.lastOffset, following.baseOffset] {
            #expect(throws: LogError.self, "read from \(offset)") { _ = try log.read(from: offset, maxBytes: 1 << 20) }
            do {
                _ = try log.read(from: offset, maxBytes: 1 << 20)
            } catch {
                if case .corruptSegment(let path, _, _) = error { #expect(path == sealedPath) } else { Issue.record("read from \(offset): \(error)") }
            }
        }
        // Later segments are unaffected, and appends go on.
        let nextSegment = segments[segments.firstIndex { $0.base == sealed.base }! + 1].batches.first!.batch
        #expect(try log.read(from: nextSegment.baseOffset, maxBytes: 1).bytes == nextSegment.bytes)
        var model = built.model
        let appended = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        #expect(appended.baseOffset == built.end)
        try log.close()

        // Still reported, still there, on the next open.
        let again = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        #expect(again.recoveryReport.corruptSealedSegments.map(\.path) == [sealedPath])
        #expect(try fileBytes(sealedPath) == bytes)
        try again.close()

        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(!check.isIntact)
        #expect(check.problems.contains { $0.path == sealedPath && $0.position == damagedPosition })

        // Salvage: every intact batch, with its offsets, in a log that opens clean.
        let salvaged = directory.sub("salvaged")
        let salvage = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged)
        #expect(salvage.savedBatches == model.count - 1)
        #expect(salvage.lostBytes == damaged.size)
        #expect(salvage.lostRegions.count == 1)
        #expect(salvage.lostRegions.first?.path == sealedPath)
        #expect(salvage.lostRegions.first?.position == damagedPosition)
        #expect(salvage.lostRegions.first?.offsets == damaged.baseOffset.rawValue...damaged.lastOffset.rawValue)
        let salvagedCheck = try LogInspector.verify(partitionDirectory: salvaged)
        #expect(salvagedCheck.isIntact, "\(salvagedCheck.problems)")

        let reopened = try PartitionLog.open(directory: salvaged, configuration: built.configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty)
        #expect(reopened.logStartOffset == 0)
        #expect(reopened.logEndOffset == appended.nextOffset)
        for batch in model where batch.baseOffset != damaged.baseOffset {
            #expect(try reopened.read(from: batch.baseOffset, maxBytes: 1).bytes == batch.bytes, "offset \(batch.baseOffset)")
        }
        // The lost offsets read as the gap they are: the next batch.
        #expect(try reopened.read(from: damaged.baseOffset, maxBytes: 1).bytes == following.bytes)
        #expect(try readEverything(reopened) == model.filter { $0.baseOffset != damaged.baseOffset }.map(\.bytes))
        let next = try appendBatch(reopened, randomRecords(count: 1, using: &generator), into: &model)
        #expect(next.baseOffset == appended.nextOffset)
    }

    @Test func salvageOfAnIntactLogCopiesEverything() throws {
        var generator = SplitMix64(seed: 63)
        let directory = try ScratchDirectory()
        let built = try Self.buildClosedLog(directory.path, using: &generator)
        let salvaged = directory.sub("copy")
        let report = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged)
        #expect(report.savedBatches == built.model.count)
        #expect(report.lostBytes == 0)
        #expect(report.lostRegions.isEmpty)
        for base in built.bases {
            #expect(try fileBytes(salvaged + "/" + SegmentNames.log(base)) == fileBytes(directory.path + "/" + SegmentNames.log(base)))
        }
        // A second salvage into the same place is refused rather than mixed in.
        #expect(throws: LogError.self) { _ = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged) }
    }

    /// Without a recovery point (a crash before one was written) every segment is scanned; a torn batch in
    /// a middle segment cuts there, and the later segments (never acknowledged) are removed and counted.
    @Test func withoutARecoveryPointACutInAnEarlierSegmentRemovesTheLaterOnes() throws {
        var generator = SplitMix64(seed: 64)
        let directory = try ScratchDirectory()
        let built = try Self.buildClosedLog(directory.path, using: &generator)
        try #require(built.bases.count >= 3)
        try FileManager.default.removeItem(atPath: directory.path + "/checkpoint")
        let segments = layout(built.model, bases: built.bases)
        let victim = segments[segments.count - 2]
        let (position, batch) = victim.batches[victim.batches.count / 2]
        let victimPath = directory.path + "/" + SegmentNames.log(victim.base)
        let tornSize = position + batch.size / 2
        try writeFile(victimPath, Array(try fileBytes(victimPath).prefix(tornSize)))
        let laterBytes = fileSize(directory.path + "/" + SegmentNames.log(built.activeBase))

        let log = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        defer { try? log.close() }
        let report = log.recoveryReport
        #expect(report.truncatedBytes == tornSize - position + laterBytes)
        #expect(report.deletedSegments == [built.activeBase])
        #expect(report.corruptSealedSegments.isEmpty)
        #expect(log.logEndOffset == batch.baseOffset)
        #expect(try segmentBases(directory.path) == Array(built.bases.dropLast()))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/" + SegmentNames.index(built.activeBase)))
        #expect(try readEverything(log) == built.model.filter { $0.baseOffset < batch.baseOffset }.map(\.bytes))
        #expect(try LogInspector.verify(partitionDirectory: directory.path).isIntact)
    }

    @Test func withoutARecoveryPointAnIntactLogLosesNothing() throws {
        var generator = SplitMix64(seed: 65)
        let directory = try ScratchDirectory()
        let built = try Self.buildClosedLog(directory.path, using: &generator)
        try FileManager.default.removeItem(atPath: directory.path + "/checkpoint")
        let log = try PartitionLog.open(directory: directory.path, configuration: built.configuration)
        defer { try? log.close() }
        #expect(log.recoveryReport.truncatedBytes == 0)
        #expect(log.recoveryReport.batchesValidated == built.model.count)
        #expect(log.recoveryReport.segmentCount == built.bases.count)
        #expect(try readEverything(log) == built.model.map(\.bytes))
    }

    /// `batchBytesMax` bounds what append accepts. Lowering it later must not make recovery cut batches
    /// that were accepted (and committed) under the old limit.
    @Test func reopeningWithASmallerBatchLimitKeepsCommittedBatches() throws {
        var generator = SplitMix64(seed: 66)
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing(fsync: .always))
        var model: [StoredBatch] = []
        try appendBatch(log, randomRecords(count: 4, using: &generator), into: &model)
        let large = try appendBatch(log, randomRecords(count: 100, valueBytes: 1000...1000, using: &generator), into: &model)
        try appendBatch(log, randomRecords(count: 4, using: &generator), into: &model)
        try log.flush()
        try log.close()
        #expect(large.size > 64 << 10)

        var smaller = LogConfiguration.testing(fsync: .always)
        smaller.batchBytesMax = 64 << 10
        let reopened = try PartitionLog.open(directory: directory.path, configuration: smaller)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.truncatedBytes == 0, "\(reopened.recoveryReport.truncationReason ?? "")")
        #expect(reopened.logEndOffset == model.last!.nextOffset)
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    /// `closedLogWithSmallSegments` with a byte under the CRC of batch `batchIndex` of its second segment
    /// flipped: a corrupt sealed segment for the next open to find. That segment's layout and path.
    static func closedLogWithADamagedSealedSegment(
        _ directory: String, damagingBatch batchIndex: Int
    ) throws -> (segment: (base: Offset, batches: [(position: Int, batch: StoredBatch)]), path: String, configuration: LogConfiguration) {
        let (model, bases, configuration) = try closedLogWithSmallSegments(directory)
        try #require(bases.count >= 4)
        let segment = layout(model, bases: bases)[1]
        try #require(segment.batches.count > batchIndex)
        let path = directory + "/" + SegmentNames.log(segment.base)
        var bytes = try fileBytes(path)
        bytes[segment.batches[batchIndex].position + RecordBatchLayout.headerSize + 2] ^= 0x40
        try writeFile(path, bytes)
        return (segment, path, configuration)
    }

    /// A closed log with ≥ 4 segments whose indexes hold one entry each (the tail check covers whole
    /// segments), its model and bases.
    static func closedLogWithSmallSegments(_ directory: String) throws -> (model: [StoredBatch], bases: [Offset], configuration: LogConfiguration) {
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, indexIntervalBytes: 1 << 20)
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        var generator = SplitMix64(seed: 77)
        let built = try buildLog(log, batches: 80, using: &generator)
        try log.close()
        return (built.model, try segmentBases(directory), configuration)
    }

    /// Damage at the tail of a sealed segment (no valid batch after it in the file) loses the offsets up to
    /// the next segment: salvage declares them, so the salvaged log opens clean and reads step over them.
    /// It once declared nothing there, and the salvaged log opened with a corrupt sealed segment.
    /// A closed log whose second segment's last batch is damaged (no valid batch after it in the file),
    /// salvaged into `salvaged`.
    static func salvagedLogWithTailDamage(_ directory: ScratchDirectory) throws -> (
        model: [StoredBatch], configuration: LogConfiguration, damaged: StoredBatch, salvaged: String, report: LogInspector.SalvageReport
    ) {
        let (model, bases, configuration) = try closedLogWithSmallSegments(directory.path)
        try #require(bases.count >= 4)
        let segment = layout(model, bases: bases)[1]
        let (damagedPosition, damaged) = segment.batches.last!
        let path = directory.path + "/" + SegmentNames.log(segment.base)
        var bytes = try fileBytes(path)
        bytes[damagedPosition + RecordBatchLayout.headerSize + 2] ^= 0x40
        try writeFile(path, bytes)
        let salvaged = directory.sub("salvaged")
        let report = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged)
        return (model, configuration, damaged, salvaged, report)
    }

    @Test func salvageOfTailDamageInASealedSegmentOpensClean() throws {
        let directory = try ScratchDirectory()
        let (_, configuration, damaged, salvaged, report) = try Self.salvagedLogWithTailDamage(directory)
        #expect(report.lostRegions.count == 1)
        #expect(report.lostRegions.first?.offsets == damaged.baseOffset.rawValue...damaged.lastOffset.rawValue,
                "lost region declared as \(String(describing: report.lostRegions.first?.offsets))")
        let check = try LogInspector.verify(partitionDirectory: salvaged)
        #expect(check.isIntact, "\(check.problems)")
        let reopened = try PartitionLog.open(directory: salvaged, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty, "\(reopened.recoveryReport.corruptSealedSegments)")
        var next = damaged.baseOffset
        do {
            let result = try reopened.read(from: next, maxBytes: 1)
            next = result.nextOffset
        } catch {
            Issue.record("read from the lost offset \(next) fails: \(error)")
        }
        #expect(next > damaged.lastOffset)
    }

    /// The recovery point (sealed segments below it are trusted as fsynced) is at most the last segment's
    /// base. A damaged checkpoint's larger one was kept and written back, so after later rolls and a crash
    /// segments never fsynced would have been trusted without a scan.
    @Test func aRecoveryPointPastTheLogIsNotBelieved() throws {
        let directory = try ScratchDirectory()
        let (model, bases, configuration) = try Self.closedLogWithSmallSegments(directory.path)
        let path = directory.path + "/" + Checkpoint.fileName
        var text = String(decoding: try fileBytes(path), as: UTF8.self)
        text = text.split(separator: "\n").map { $0.hasPrefix("recovery-point ") ? "recovery-point 1000000000000" : String($0) }.joined(separator: "\n") + "\n"
        try writeFile(path, Array(text.utf8))
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        #expect(reopened.recoveryReport.recoveryPoint <= bases.last!, "recovery point \(reopened.recoveryReport.recoveryPoint)")
        #expect(try readEverything(reopened) == model.map(\.bytes))
        try reopened.close()
        let written = Checkpoint.read(directory: directory.path)
        #expect(written.map { $0.recoveryPoint <= bases.last! } == true, "the checkpoint kept \(String(describing: written?.recoveryPoint))")
    }

    /// baseOffset lies outside the CRC. Damage there in a sealed segment that open trusts (before its last
    /// index entry) made reads end early at a value past the log's end — an empty answer for ever, no
    /// error — or step over the batch when the value was small, silently losing its records. Reads now
    /// check that offsets run on, and report the batch as corrupt.
    @Test(arguments: [Int64(1) << 50, 0])
    func aDamagedBaseOffsetIsReportedByReadsNotSkipped(damagedValue: Int64) throws {
        let directory = try ScratchDirectory()
        let (_, segments, configuration) = try FileFuzzTests.closedLogWithDenseIndexes(directory.path)
        try #require(segments.count >= 4)
        // The third batch of the second segment, well before its last index entry.
        let sealed = segments[1]
        try #require(sealed.batches.count >= 6)
        let (position, damaged) = sealed.batches[2]
        let previous = sealed.batches[1].batch
        let path = directory.path + "/" + SegmentNames.log(sealed.base)
        var bytes = try fileBytes(path)
        bytes.replaceSubrange(position..<(position + 8), with: withUnsafeBytes(of: damagedValue.bigEndian) { Array($0) })
        try writeFile(path, bytes)

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        // Reading across it returns what lies before it and never what lies after it.
        if let across = try? reopened.read(from: previous.baseOffset, maxBytes: 1 << 20) {
            #expect(across.nextOffset <= damaged.baseOffset, "a read stepped over the damaged batch to \(across.nextOffset)")
        }
        // Reading from it reports it.
        do throws(LogError) {
            let result = try reopened.read(from: damaged.baseOffset, maxBytes: 1 << 20)
            Issue.record("a read of the damaged batch answered \(result.batchCount) batches up to \(result.nextOffset)")
        } catch {
            guard case .corruptSegment = error else {
                Issue.record("expected corruptSegment, got \(error)")
                return
            }
        }
    }

    /// The gaps a salvage declares are what lets the salvaged log open with them: kept only in the
    /// checkpoint, a lost checkpoint made the next open take the gap for a lost tail and delete every
    /// segment after it (found by the file fuzz's review). They are also in a file of their own now.
    @Test func aSalvagedLogKeepsItsDeclaredGapsWhenItsCheckpointIsLost() throws {
        let directory = try ScratchDirectory()
        let (model, configuration, damaged, salvaged, report) = try Self.salvagedLogWithTailDamage(directory)
        try #require(report.lostRegions.count == 1)

        try FileManager.default.removeItem(atPath: salvaged + "/" + Checkpoint.fileName)
        let check = try LogInspector.verify(partitionDirectory: salvaged)
        #expect(check.isIntact, "\(check.problems)")
        let reopened = try PartitionLog.open(directory: salvaged, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.deletedSegments.isEmpty, "segments after the gap deleted: \(reopened.recoveryReport.deletedSegments)")
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(try readEverything(reopened) == model.filter { $0.baseOffset != damaged.baseOffset }.map(\.bytes))
    }

    /// baseOffset lies outside the CRC, so a damaged file can hold any value there, and one near the end of
    /// the offset range made the batch's last offset overflow: salvage and dump trapped (found by fuzzing).
    /// Verify, salvage and open now report the batch as out of place, and dump shows it.
    @Test func aBaseOffsetNearTheEndOfTheOffsetRangeIsReportedNotATrap() throws {
        let directory = try ScratchDirectory()
        let (model, bases, configuration) = try Self.closedLogWithSmallSegments(directory.path)
        let segment = layout(model, bases: bases)[1]
        let (position, _) = try #require(segment.batches.first { $0.batch.records.count > 1 })
        let path = directory.path + "/" + SegmentNames.log(segment.base)
        var bytes = try fileBytes(path)
        bytes.replaceSubrange(position..<(position + 8), with: withUnsafeBytes(of: (Int64.max - 1).bigEndian) { Array($0) })
        try writeFile(path, bytes)

        #expect(try !LogInspector.verify(partitionDirectory: directory.path).isIntact)
        // Dump shows what the file holds, the odd offsets included (as kafka-dump-log would).
        var dumped = 0
        try LogInspector.dump(path: path, decodeRecords: true, visit: { _ in dumped += 1 }, onProblem: { _ in })
        #expect(dumped == segment.batches.count)
        let report = try LogInspector.salvage(partitionDirectory: directory.path, into: directory.sub("salvaged"))
        #expect(report.lostBytes > 0)
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(!reopened.recoveryReport.corruptSealedSegments.isEmpty || reopened.recoveryReport.truncatedBytes > 0)
        _ = try? readEverything(reopened)
    }

    /// A segment file of which nothing can be saved (all garbage) gives an empty segment in the salvaged
    /// log. Writing that empty file once looped for ever (an empty vector write makes no progress; found by
    /// fuzzing).
    @Test(.timeLimit(.minutes(1))) func salvageOfASegmentWithNothingIntactFinishes() throws {
        let directory = try ScratchDirectory()
        let (model, bases, configuration) = try Self.closedLogWithSmallSegments(directory.path)
        let segment = layout(model, bases: bases)[1]
        var generator = SplitMix64(seed: 94)
        try writeFile(directory.path + "/" + SegmentNames.log(segment.base), (0..<2790).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let salvaged = directory.sub("salvaged")
        let report = try LogInspector.salvage(partitionDirectory: directory.path, into: salvaged)
        #expect(report.lostBytes >= 2790)
        #expect(fileSize(salvaged + "/" + SegmentNames.log(segment.base)) == 0)
        let reopened = try PartitionLog.open(directory: salvaged, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty, "\(reopened.recoveryReport.corruptSealedSegments)")
    }
}
