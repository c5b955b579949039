import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Offset lookup by timestamp, the sparse offset and time indexes, and their rebuild when lost or damaged.
@Suite struct IndexTests {
    static let intervalBytes = 512

    static func makeLog(_ directory: ScratchDirectory, seed: UInt64 = 41) throws -> (PartitionLog, BuiltLog) {
        let configuration = LogConfiguration.testing(segmentBytesMax: 6000, indexIntervalBytes: intervalBytes)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: seed)
        let built = try buildLog(log, batches: 150, outOfOrderTimestamps: true, using: &generator)
        return (log, built)
    }

    /// Every interesting timestamp: each record's, one either side, below everything, above everything.
    static func probes(_ model: [StoredBatch]) -> [Int64] {
        let timestamps = Set(model.flatMap { $0.records.map(\.timestamp) })
        var probes = Set<Int64>()
        for timestamp in timestamps { probes.formUnion([timestamp - 1, timestamp, timestamp + 1]) }
        probes.formUnion([Int64.min, -1, 0, timestamps.min()! - 10_000, timestamps.max()! + 1, Int64.max])
        return probes.sorted()
    }

    static func checkTimestampLookups(_ log: PartitionLog, _ model: [StoredBatch], sourceLocation: SourceLocation = #_sourceLocation) throws {
        var wrong: [String] = []
        for probe in probes(model) {
            let expected = expectedOffset(forTimestamp: probe, in: model)
            let found = try log.offset(forTimestamp: probe)
            if found?.offset != expected?.offset || found?.timestamp != expected?.timestamp {
                wrong.append("t=\(probe): expected \(expected.map { "\($0.offset)@\($0.timestamp)" } ?? "nil"), got \(found.map { "\($0.offset)@\($0.timestamp)" } ?? "nil")")
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong lookups, e.g. \(wrong.prefix(5))", sourceLocation: sourceLocation)
    }

    static func checkReads(_ log: PartitionLog, _ model: [StoredBatch], sourceLocation: SourceLocation = #_sourceLocation) {
        var wrong: [String] = []
        for batch in model {
            for offset in [batch.baseOffset, batch.lastOffset] {
                do {
                    let result = try log.read(from: offset, maxBytes: 1)
                    if result.bytes != batch.bytes { wrong.append("offset \(offset): wrong bytes") }
                } catch {
                    wrong.append("offset \(offset): \(error)")
                }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) wrong reads, e.g. \(wrong.prefix(5))", sourceLocation: sourceLocation)
    }

    /// Index entries hold 32-bit positions: a batch past 4 GiB in a file found on disk (the log's own
    /// segments stay under 2 GiB) gets no entry, where the conversion trapped.
    @Test func aBatchPastFourGiBGetsNoIndexEntryInsteadOfATrap() {
        var indexes = SegmentIndexes()
        indexes.note(batchAt: 0, relativeOffset: 0, size: 100, maxTimestamp: 1, intervalBytes: 4096)
        indexes.note(batchAt: (4 << 30) + 100, relativeOffset: 7, size: 100, maxTimestamp: 2, intervalBytes: 1)
        #expect(indexes.offsets.map(\.relativeOffset) == [0])
        #expect(indexes.offsets.allSatisfy { Int($0.position) < 4 << 30 })
    }

    @Test func offsetForTimestampFindsTheFirstOffsetAtOrAfterIt() throws {
        let directory = try ScratchDirectory()
        let (log, built) = try Self.makeLog(directory)
        #expect(try segmentBases(directory.path).count > 4)
        // Out-of-order timestamps are really there: some record is older than one before it.
        let all = built.model.flatMap { $0.records.map(\.timestamp) }
        #expect(zip(all, all.dropFirst()).contains { $0 > $1 })
        try Self.checkTimestampLookups(log, built.model)
        #expect(try log.offset(forTimestamp: Int64.max) == nil)
        #expect(try log.offset(forTimestamp: all.max()! + 1) == nil)
        #expect(try log.offset(forTimestamp: Int64.min)?.offset == 0)

        try log.close()
        let reopened = try PartitionLog.open(directory: directory.path, configuration: log.configuration)
        defer { try? reopened.close() }
        try Self.checkTimestampLookups(reopened, built.model)
    }

    @Test func indexesHoldAnEntryEveryIntervalBytesAndSurviveReopen() throws {
        let directory = try ScratchDirectory()
        let (log, built) = try Self.makeLog(directory)
        try log.close()
        let bases = try segmentBases(directory.path)
        for (base, batches) in layout(built.model, bases: bases) {
            let expected = expectedIndexEntries(batches, base: base, intervalBytes: Self.intervalBytes)
            let offsets = decodeOffsetIndexFile(try fileBytes(directory.path + "/" + SegmentNames.index(base)))
            let times = decodeTimeIndexFile(try fileBytes(directory.path + "/" + SegmentNames.timeIndex(base)))
            #expect(offsets.map(\.relative) == expected.offsets.map(\.relative), "segment \(base)")
            #expect(offsets.map(\.position) == expected.offsets.map(\.position), "segment \(base)")
            #expect(times.map(\.timestamp) == expected.times.map(\.timestamp), "segment \(base)")
            #expect(times.map(\.relative) == expected.times.map(\.relative), "segment \(base)")
            #expect(expected.offsets.count > 2, "segment \(base) should be indexed more than once")
        }
        let reopened = try PartitionLog.open(directory: directory.path, configuration: log.configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.rebuiltIndexes == 0)
        Self.checkReads(reopened, built.model)
        try Self.checkTimestampLookups(reopened, built.model)
    }

    enum IndexDamage: String, CaseIterable, Sendable {
        case deleted, emptied, randomBytes, partialEntry, lastEntryWrong, outOfOrder, timeIndexDeleted, timeIndexRandom
    }

    @Test(arguments: IndexDamage.allCases)
    func damagedIndexesAreRebuiltAndReadsStayCorrect(_ damage: IndexDamage) throws {
        let directory = try ScratchDirectory(damage.rawValue)
        let (log, built) = try Self.makeLog(directory)
        try log.close()
        let bases = try segmentBases(directory.path)
        var generator = SplitMix64(seed: 42)
        // Damage every sealed segment's index (the active segment's are always rebuilt anyway).
        for base in bases.dropLast() {
            let indexPath = directory.path + "/" + SegmentNames.index(base)
            let timePath = directory.path + "/" + SegmentNames.timeIndex(base)
            var entries = decodeOffsetIndexFile(try fileBytes(indexPath))
            switch damage {
            case .deleted:
                try FileManager.default.removeItem(atPath: indexPath)
                try FileManager.default.removeItem(atPath: timePath)
            case .emptied: try writeFile(indexPath, [])
            case .randomBytes: try writeFile(indexPath, (0..<96).map { _ in UInt8.random(in: 0...255, using: &generator) })
            case .partialEntry: try writeFile(indexPath, Array(try fileBytes(indexPath).dropLast(3)))
            case .lastEntryWrong:
                entries[entries.count - 1].position += 1
                try writeFile(indexPath, encodeOffsetIndex(entries))
            case .outOfOrder:
                entries.swapAt(1, 2)
                try writeFile(indexPath, encodeOffsetIndex(entries))
            case .timeIndexDeleted: try FileManager.default.removeItem(atPath: timePath)
            case .timeIndexRandom: try writeFile(timePath, (0..<60).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
        }
        let reopened = try PartitionLog.open(directory: directory.path, configuration: log.configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.rebuiltIndexes == bases.count - 1)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(reopened.recoveryReport.corruptSealedSegments.isEmpty)
        #expect(reopened.logEndOffset == built.end)
        Self.checkReads(reopened, built.model)
        try Self.checkTimestampLookups(reopened, built.model)
        // The rebuilt files are what appending would have written, and verify finds nothing wrong.
        for (base, batches) in layout(built.model, bases: bases) {
            let expected = expectedIndexEntries(batches, base: base, intervalBytes: Self.intervalBytes)
            let offsets = decodeOffsetIndexFile(try fileBytes(directory.path + "/" + SegmentNames.index(base)))
            #expect(offsets.map(\.position) == expected.offsets.map(\.position), "segment \(base)")
            let times = decodeTimeIndexFile(try fileBytes(directory.path + "/" + SegmentNames.timeIndex(base)))
            #expect(times.map(\.timestamp) == expected.times.map(\.timestamp), "segment \(base)")
        }
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(check.isIntact, "\(check.problems)")
    }

    /// An index entry that still looks sane (increasing, inside the file) but points into the middle of a
    /// batch. The indexes are caches: a wrong one must not make reads fail.
    @Test func aPlausibleButWrongOffsetIndexEntryDoesNotBreakReads() throws {
        let directory = try ScratchDirectory()
        let (log, built) = try Self.makeLog(directory)
        try log.close()
        let bases = try segmentBases(directory.path)
        let base = bases[1]
        let indexPath = directory.path + "/" + SegmentNames.index(base)
        var entries = decodeOffsetIndexFile(try fileBytes(indexPath))
        try #require(entries.count >= 3)
        entries[1].position += 1  // still between its neighbours, no longer a batch start
        try writeFile(indexPath, encodeOffsetIndex(entries))

        let reopened = try PartitionLog.open(directory: directory.path, configuration: log.configuration)
        defer { try? reopened.close() }
        Self.checkReads(reopened, built.model)
    }

    /// A time-index entry lowered but still increasing: lookups must still find the first offset.
    @Test func aPlausibleButWrongTimeIndexEntryDoesNotBreakTimestampLookups() throws {
        let directory = try ScratchDirectory()
        let (log, built) = try Self.makeLog(directory, seed: 43)
        try log.close()
        let bases = try segmentBases(directory.path)
        var damagedAny = false
        for base in bases.dropLast() {
            let timePath = directory.path + "/" + SegmentNames.timeIndex(base)
            var entries = decodeTimeIndexFile(try fileBytes(timePath))
            guard entries.count >= 3, entries[2].timestamp - entries[1].timestamp > 2 else { continue }
            entries[2].timestamp = entries[1].timestamp + 1
            try writeFile(timePath, encodeTimeIndex(entries))
            damagedAny = true
        }
        try #require(damagedAny)
        let reopened = try PartitionLog.open(directory: directory.path, configuration: log.configuration)
        defer { try? reopened.close() }
        try Self.checkTimestampLookups(reopened, built.model)
    }
}
