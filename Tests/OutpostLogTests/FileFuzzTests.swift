import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Damaged files on disk, fuzzed: one small real log (sealed segments, an active one, index files and a
/// checkpoint), copied and damaged one file at a time, then inspected, salvaged and opened. What may
/// happen is what `LogLoader` documents: a clear `LogError` or a recovery, never a trap, a hang or an
/// allocation the file does not justify, and never the loss of an intact batch before the damage.
@Suite struct FileFuzzTests {
    // MARK: Damage that broke those rules, one focused case each

    /// A closed log with index entries every 256 bytes (so a trusted sealed segment has batches before its
    /// last index entry, which open does not re-validate), its model and segment layout.
    static func closedLogWithDenseIndexes(_ directory: String) throws -> (model: [StoredBatch], segments: [(base: Offset, batches: [(position: Int, batch: StoredBatch)])], configuration: LogConfiguration) {
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, indexIntervalBytes: 256)
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        var generator = SplitMix64(seed: 0xDE45E)
        let built = try buildLog(log, batches: 40, using: &generator)
        try log.close()
        return (built.model, layout(built.model, bases: try segmentBases(directory)), configuration)
    }

    /// Sets the batch length field of the batch at `position` in a segment file.
    static func setBatchLength(_ length: Int32, at position: Int, in path: String) throws {
        var bytes = try fileBytes(path)
        bytes.replaceSubrange((position + 8)..<(position + 12), with: withUnsafeBytes(of: length.bigEndian) { Array($0) })
        try writeFile(path, bytes)
    }

    /// Damage inside a trusted sealed segment (before its last index entry) is not seen on open, by design.
    /// A read that met it threw away the batches it had already read before it: a consumer could never get
    /// past the last intact batch before the damage (found by fuzzing).
    @Test func aReadReturnsTheBatchesBeforeDamageOpenDidNotSee() throws {
        let directory = try ScratchDirectory()
        let (_, segments, configuration) = try Self.closedLogWithDenseIndexes(directory.path)
        let sealed = segments[1]
        try #require(sealed.batches.count >= 4)
        let (damagedPosition, _) = sealed.batches[2]
        try Self.setBatchLength(-1, at: damagedPosition, in: directory.path + "/" + SegmentNames.log(sealed.base))

        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        #expect(log.recoveryReport.corruptSealedSegments.isEmpty, "the damage lies where open trusts the data")
        let result = try log.read(from: sealed.batches[0].batch.baseOffset, maxBytes: Int.max)
        #expect(result.bytes == sealed.batches[0].batch.bytes + sealed.batches[1].batch.bytes)
        #expect(result.nextOffset == sealed.batches[2].batch.baseOffset)
        #expect(throws: LogError.self) { _ = try log.read(from: result.nextOffset, maxBytes: Int.max) }
    }

    /// A batch length that reaches past the segment's end, where open did not look: `offset(forTimestamp:)`
    /// allocated and read what it declared (up to 2 GiB) and `forEachBatchHeader` jumped past the segment's
    /// end without a word. Both now report the segment as corrupt at that batch.
    @Test func aDeclaredLengthPastTheSegmentEndIsACorruptSegment() throws {
        let directory = try ScratchDirectory()
        let (_, segments, configuration) = try Self.closedLogWithDenseIndexes(directory.path)
        let sealed = segments[1]
        try #require(sealed.batches.count >= 4)
        let (damagedPosition, damaged) = sealed.batches[2]
        let path = directory.path + "/" + SegmentNames.log(sealed.base)
        try Self.setBatchLength(1 << 28, at: damagedPosition, in: path)

        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        func isCorruptAtTheDamage(_ error: any Error) -> Bool {
            logError(error) { if case .corruptSegment(path, damagedPosition, _) = $0 { true } else { false } }
        }
        do {
            let found = try log.offset(forTimestamp: damaged.records[0].timestamp)
            Issue.record("offset(forTimestamp:) returned \(String(describing: found))")
        } catch {
            #expect(isCorruptAtTheDamage(error), "\(error)")
        }
        var headers = 0
        do {
            try log.forEachBatchHeader(from: sealed.batches[0].batch.baseOffset) { _ in headers += 1 }
            Issue.record("forEachBatchHeader stepped over the damage")
        } catch {
            #expect(isCorruptAtTheDamage(error), "\(error)")
        }
        #expect(headers == 2)
    }

    /// An index file that does not match the checkpoint is rebuilt from the batch headers without CRCs. The
    /// rebuild took any baseOffset (outside the CRC) as it came: a damaged one indexed nonsense after it, and
    /// one near Int64.min trapped on the subtraction that makes it relative. It now stops where offsets stop
    /// running on, and the tail check reports the damage there.
    @Test func aRebuiltIndexStopsAtADamagedBaseOffset() throws {
        let directory = try ScratchDirectory()
        let (_, segments, configuration) = try Self.closedLogWithDenseIndexes(directory.path)
        let sealed = segments[1]
        try #require(sealed.base > 0 && sealed.batches.count >= 4)
        let (damagedPosition, _) = sealed.batches[2]
        let path = directory.path + "/" + SegmentNames.log(sealed.base)
        var bytes = try fileBytes(path)
        bytes.replaceSubrange(damagedPosition..<(damagedPosition + 8), with: withUnsafeBytes(of: Int64.min.bigEndian) { Array($0) })
        try writeFile(path, bytes)
        try FileManager.default.removeItem(atPath: directory.path + "/" + SegmentNames.index(sealed.base))

        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        #expect(log.recoveryReport.corruptSealedSegments.map(\.position) == [damagedPosition])
        #expect(log.recoveryReport.truncatedBytes == 0)
        #expect(try log.read(from: sealed.batches[0].batch.baseOffset, maxBytes: Int.max).bytes
            == sealed.batches[0].batch.bytes + sealed.batches[1].batch.bytes)
    }

    /// Index files and the checkpoint were read whole, at whatever size they had: a sparse (or damaged,
    /// grown) file asked for that much memory, and a terabyte trapped. Sizes no real file has are not read:
    /// the indexes are rebuilt and the checkpoint counts as missing.
    @Test func indexFilesAndACheckpointOfImpossibleSizeAreNotRead() throws {
        let directory = try ScratchDirectory()
        let (model, segments, configuration) = try Self.closedLogWithDenseIndexes(directory.path)
        for name in [SegmentNames.index(segments[1].base), SegmentNames.timeIndex(segments[2].base), Checkpoint.fileName] {
            let handle = try #require(FileHandle(forWritingAtPath: directory.path + "/" + name))
            try handle.truncate(atOffset: 1 << 40)
            try handle.close()
        }
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        #expect(log.recoveryReport.truncatedBytes == 0)
        #expect(log.recoveryReport.corruptSealedSegments.isEmpty)
        #expect(try readEverything(log) == model.map(\.bytes))
    }

    /// A negative creation time in the checkpoint made `now - created` (roll by age) overflow on the next
    /// append: a trap. Such an entry is damage and is ignored; the file's time stands in.
    @Test func aNegativeCreationTimeInTheCheckpointIsIgnored() throws {
        let directory = try ScratchDirectory()
        var configuration = LogConfiguration.testing(segmentAgeMaxMilliseconds: 60_000)
        configuration.segmentBytesMax = 1 << 20
        var generator = SplitMix64(seed: 0xC4EA7ED)
        var model: [StoredBatch] = []
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        try log.close()
        try writeFile(directory.path + "/" + Checkpoint.fileName, Array("recovery-point 0\nsegment 0 created \(Int64.min)\n".utf8))

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        try appendBatch(reopened, randomRecords(count: 2, using: &generator), into: &model)
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    /// Salvage tries every byte after damage as a batch start. Each try checksummed the length its header
    /// declared, so garbage whose headers declare long batches cost the square of its length (here about
    /// 130 GiB of CRC for 4 MiB). The work is now a pass over the bytes plus a bounded amount per try.
    @Test(.timeLimit(.minutes(1))) func salvageOfMegabytesOfGarbageDoesBoundedWork() throws {
        var generator = SplitMix64(seed: 0x6A4BA6E)
        let first = try makeBatch(randomRecords(count: 3, using: &generator))
        var last = try makeBatch(randomRecords(count: 3, using: &generator))
        RecordBatchValidation.setBaseOffset(3, in: &last)
        // Garbage with a plausible header every 64 bytes, each declaring a batch to near the end.
        let garbageBytes = 4 << 20
        var garbage = (0..<(garbageBytes / 8)).flatMap { _ in withUnsafeBytes(of: generator.next()) { Array($0) } }
        for start in stride(from: 0, to: garbageBytes - RecordBatchLayout.headerSize, by: 64) {
            let length = Int32(garbageBytes - start - RecordBatchLayout.logOverhead)
            garbage.replaceSubrange((start + 8)..<(start + 12), with: withUnsafeBytes(of: length.bigEndian) { Array($0) })
            garbage[start + RecordBatchLayout.magicPosition] = UInt8(RecordBatchLayout.magic)
            // attributes 0 (no compression), lastOffsetDelta 0, recordCount 0: only the CRC can refuse it.
            garbage.replaceSubrange((start + 21)..<(start + 27), with: repeatElement(0, count: 6))
            garbage.replaceSubrange((start + 57)..<(start + 61), with: repeatElement(0, count: 4))
        }
        let segment = first + garbage + last

        var finder = IntactBatchFinder(segment)
        let found = finder.nextIntactBatch(from: 1)
        #expect(found?.position == first.count + garbage.count)
        #expect(finder.candidates >= garbageBytes / 64)
        #expect(finder.checksummedBytes <= 2 * segment.count + finder.candidates * 2 * IntactBatchFinder.stride,
                "\(finder.checksummedBytes) bytes checksummed for \(finder.candidates) candidates")

        let directory = try ScratchDirectory()
        let source = directory.sub("damaged")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try writeFile(source + "/" + SegmentNames.log(0), segment)
        let report = try LogInspector.salvage(partitionDirectory: source, into: directory.sub("salvaged"))
        #expect(report.savedBatches == 2)
        #expect(report.lostBytes == garbage.count)
        // Every byte checksummed at least once (the prefix pass), and little more than that.
        #expect(report.searchChecksummedBytes >= segment.count)
        #expect(report.searchChecksummedBytes <= 3 * segment.count + finder.candidates * 2 * IntactBatchFinder.stride)
        #expect(try fileBytes(directory.sub("salvaged") + "/" + SegmentNames.log(0)) == first + last)
    }
}
