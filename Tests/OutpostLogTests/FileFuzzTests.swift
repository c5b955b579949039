import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Damaged files on disk, fuzzed: one small real log (sealed segments, an active one, index files and a
/// checkpoint), copied and damaged one file at a time, then inspected, salvaged and opened. What may
/// happen is what `LogLoader` documents: a clear `LogError` or a recovery, never a trap, a hang or an
/// allocation the file does not justify, and never the loss of an intact batch before the damage.
@Suite struct FileFuzzTests {
    /// Which file of the partition a case damages.
    enum Target: CustomStringConvertible {
        case segment(Offset)
        case index(Offset)
        case timeIndex(Offset)
        case checkpoint

        var description: String {
            switch self {
            case .segment(let base): SegmentNames.log(base)
            case .index(let base): SegmentNames.index(base)
            case .timeIndex(let base): SegmentNames.timeIndex(base)
            case .checkpoint: Checkpoint.fileName
            }
        }
    }

    /// A closed log the cases start from, with what it holds.
    struct Fixture {
        let directory: ScratchDirectory
        let model: [StoredBatch]
        let bases: [Offset]
        let configuration: LogConfiguration
        /// Each batch's segment and byte position, in model order.
        let placement: [(base: Offset, position: Int)]

        /// Deterministic wall clock: a case replays exactly from its seed.
        static let now: Int64 = 1_732_400_000_000

        init(seed: UInt64) throws {
            directory = try ScratchDirectory("fuzz-fixture", inMemory: true)
            configuration = LogConfiguration.testing(segmentBytesMax: 4096, indexIntervalBytes: 512)
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration, clock: { Self.now })
            var generator = SplitMix64(seed: seed)
            let built = try buildLog(log, batches: 45, recordsPerBatch: 1...6, valueBytes: 10...160, using: &generator)
            try log.close()
            model = built.model
            bases = try segmentBases(directory.path)
            placement = layout(model, bases: bases).flatMap { segment in segment.batches.map { (segment.base, $0.position) } }
        }
    }

    static var fuzzCases: Int {
        Int(ProcessInfo.processInfo.environment["OUTPOST_FILE_FUZZ_CASES"] ?? "") ?? 100
    }

    @Test(.timeLimit(.minutes(2))) func damagedFilesGiveAnErrorOrASalvageAndKeepEveryIntactBatchBeforeTheDamage() throws {
        let fixture = try Fixture(seed: 0xF11E_F022)
        try #require(fixture.bases.count >= 4, "the fixture needs sealed segments and an active one")
        let baseSeed = testSeed(0xF11E_0000_0000_0001)
        var failedCases: [String] = []
        for index in 0..<Self.fuzzCases {
            let seed = baseSeed &+ UInt64(index)
            let failures = try Self.runCase(fixture, seed: seed)
            if !failures.isEmpty {
                failedCases.append("seed \(seed): \(failures.joined(separator: "; "))")
            }
        }
        #expect(failedCases.isEmpty, "\(failedCases.count) cases failed (replay one with OUTPOST_TEST_SEED=<seed> OUTPOST_FILE_FUZZ_CASES=1):\n\(failedCases.prefix(8).joined(separator: "\n"))")
    }

    /// Damages one copy of the fixture as `seed` decides and checks it; returns what went wrong.
    static func runCase(_ fixture: Fixture, seed: UInt64) throws -> [String] {
        var generator = SplitMix64(seed: seed)
        let scratch = try ScratchDirectory("fuzz-case", inMemory: true)
        let directory = scratch.sub("partition")
        try FileManager.default.copyItem(atPath: fixture.directory.path, toPath: directory)

        let target = chooseTarget(fixture.bases, using: &generator)
        let path = directory + "/" + target.description
        let original = try fileBytes(path)
        let (damaged, what) = damage(original, target: target, fixture: fixture, using: &generator)
        try writeFile(path, damaged)
        let firstDamagedByte = zip(original, damaged).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(original.count, damaged.count)

        // Every batch before the first damaged byte is intact: a prefix of the model.
        let intactCount: Int
        if case .segment(let base) = target, damaged != original {
            intactCount = fixture.model.indices.first { index in
                let (segmentBase, position) = fixture.placement[index]
                return segmentBase > base || (segmentBase == base && position + fixture.model[index].size > firstDamagedByte)
            } ?? fixture.model.count
        } else {
            intactCount = fixture.model.count
        }
        let intact = Array(fixture.model.prefix(intactCount))
        var failures: [String] = []
        func check(_ condition: Bool, _ message: @autoclosure () -> String) {
            if !condition { failures.append("\(target) \(what): \(message())") }
        }

        // The read-only tools first: opening would recover (and so change) the damage.
        do {
            _ = try LogInspector.verify(partitionDirectory: directory)
            try LogInspector.dump(path: directory, decodeRecords: true, visit: { _ in }, onProblem: { _ in })
        } catch {
            check(false, "inspection threw \(error)")
        }
        if case .segment = target {
            failures += salvageKeepsIntactBatches(directory, into: scratch.sub("salvaged"), intact: intact, fixture: fixture)
                .map { "\(target) \(what): \($0)" }
        }

        let log: PartitionLog
        do {
            log = try PartitionLog.open(directory: directory, configuration: fixture.configuration, clock: { Fixture.now })
        } catch {
            // A clear error is allowed, but for a cache (indexes) or the checkpoint it costs a scan, never the log.
            if case .segment = target {} else { check(false, "open threw \(error)") }
            return failures
        }
        if case .segment = target {} else {
            check(log.recoveryReport.truncatedBytes == 0, "a damaged \(target) cut \(log.recoveryReport.truncatedBytes) bytes")
            check(log.logEndOffset == fixture.model.last!.nextOffset, "log end \(log.logEndOffset)")
        }
        check(log.logStartOffset == 0, "log start \(log.logStartOffset)")
        check(log.logEndOffset >= (intact.last?.nextOffset ?? 0), "log end \(log.logEndOffset) is below the intact batches' end \(intact.last?.nextOffset ?? 0)")

        // Intact batches read back exactly, from their first and last offsets.
        for batch in intact {
            for offset in Set([batch.baseOffset, batch.lastOffset]) {
                do {
                    let result = try log.read(from: offset, maxBytes: 1)
                    check(result.bytes == batch.bytes, "read from \(offset) returned other bytes (\(result.bytes.count), expected \(batch.size))")
                } catch {
                    check(false, "read from intact offset \(offset) threw \(error)")
                }
            }
        }
        // Reads from every offset finish, with data or a LogError (the type says which errors can come), and
        // so does a walk over the whole range in large reads, stepping over what fails.
        let end = log.logEndOffset
        var offset = log.logStartOffset
        while offset < end {
            _ = try? log.read(from: offset, maxBytes: 1)
            offset = offset + 1
        }
        offset = log.logStartOffset
        while offset < end {
            let result = try? log.read(from: offset, maxBytes: 1 << 16)
            offset = max(result?.nextOffset ?? offset, offset + 1)
        }
        // Timestamps: the answer is the model's wherever the model's answer lies in the intact prefix.
        let timestamps = fixture.model.flatMap { $0.records.map(\.timestamp) }
        let sample = stride(from: Int.random(in: 0..<4, using: &generator), to: timestamps.count, by: 4).map { timestamps[$0] }
        for timestamp in [timestamps.min()! - 1] + sample + [timestamps.max()! + 1] {
            do {
                let found = try log.offset(forTimestamp: timestamp)
                if let expected = expectedOffset(forTimestamp: timestamp, in: fixture.model), expected.offset < (intact.last?.nextOffset ?? 0) {
                    check(found?.offset == expected.offset && found?.timestamp == expected.timestamp,
                          "offset(forTimestamp: \(timestamp)) = \(String(describing: found)), expected \(expected)")
                }
            } catch {
                if let expected = expectedOffset(forTimestamp: timestamp, in: fixture.model), expected.offset < (intact.last?.nextOffset ?? 0) {
                    check(false, "offset(forTimestamp: \(timestamp)) threw \(error), expected \(expected)")
                }
            }
        }
        // Headers over the whole range: the intact prefix first, then whatever is left or a LogError.
        var headers: [RecordBatchHeader] = []
        do {
            try log.forEachBatchHeader(from: 0) { headers.append($0) }
        } catch {
            check(error is LogError, "forEachBatchHeader threw \(error), not a LogError")
        }
        check(headers.prefix(intact.count).map(\.baseOffset) == intact.map(\.baseOffset.rawValue),
              "forEachBatchHeader gave \(headers.count) headers, not the \(intact.count) intact ones first")

        // Appends go on after any recovery, and survive a restart.
        var model = intact
        do {
            let appended = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
            check(appended.baseOffset == end, "appended at \(appended.baseOffset), log end was \(end)")
            check(try log.read(from: appended.baseOffset, maxBytes: 1).bytes == appended.bytes, "the appended batch reads back other bytes")
            try log.close()
            let reopened = try PartitionLog.open(directory: directory, configuration: fixture.configuration, clock: { Fixture.now })
            defer { try? reopened.close() }
            check(try reopened.read(from: appended.baseOffset, maxBytes: 1).bytes == appended.bytes, "the appended batch is gone after a restart")
            for batch in intact {
                check((try? reopened.read(from: batch.baseOffset, maxBytes: 1).bytes) == batch.bytes, "intact batch \(batch.baseOffset) lost after a restart")
            }
        } catch {
            check(false, "append, close or reopen threw \(error)")
        }
        return failures
    }

    /// Salvages the damaged partition and checks that the copy opens and holds every intact batch.
    static func salvageKeepsIntactBatches(_ directory: String, into destination: String, intact: [StoredBatch], fixture: Fixture) -> [String] {
        do {
            _ = try LogInspector.salvage(partitionDirectory: directory, into: destination, createdMilliseconds: Fixture.now)
            let salvaged = try PartitionLog.open(directory: destination, configuration: fixture.configuration, clock: { Fixture.now })
            defer { try? salvaged.close() }
            for batch in intact where (try? salvaged.read(from: batch.baseOffset, maxBytes: 1).bytes) != batch.bytes {
                return ["salvage lost intact batch \(batch.baseOffset)"]
            }
            return []
        } catch {
            return ["salvage threw \(error)"]
        }
    }

    static func chooseTarget(_ bases: [Offset], using generator: inout SplitMix64) -> Target {
        let base = bases[Int.random(in: 0..<bases.count, using: &generator)]
        switch Int.random(in: 0..<20, using: &generator) {
        case 0..<12: return .segment(base)
        case 12..<15: return .index(base)
        case 15..<18: return .timeIndex(base)
        default: return .checkpoint
        }
    }

    /// One kind of damage, placed at random: flipped bytes, a range of garbage or zeros, a cut, garbage
    /// appended, and (for segments) a batch length field rewritten, the field every reader trusts first.
    static func damage(_ bytes: [UInt8], target: Target, fixture: Fixture, using generator: inout SplitMix64) -> ([UInt8], String) {
        var damaged = bytes
        func garbage(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let kinds = if case .segment = target { 6 } else { 5 }
        switch bytes.isEmpty ? 3 : Int.random(in: 0..<kinds, using: &generator) {
        case 0:
            let count = Int.random(in: 1...4, using: &generator)
            for _ in 0..<count {
                damaged[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            }
            return (damaged, "flip \(count) bytes")
        case 1:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            let count = min(bytes.count - start, Int.random(in: 1...300, using: &generator))
            damaged.replaceSubrange(start..<(start + count), with: garbage(count))
            return (damaged, "garbage over \(start)..<\(start + count)")
        case 2:
            let size = Int.random(in: 0..<bytes.count, using: &generator)
            damaged.removeSubrange(size...)
            return (damaged, "truncate to \(size)")
        case 3:
            let count = Int.random(in: 1...300, using: &generator)
            damaged += garbage(count)
            return (damaged, "append \(count) garbage bytes")
        case 4:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            let count = min(bytes.count - start, Int.random(in: 1...600, using: &generator))
            damaged.replaceSubrange(start..<(start + count), with: repeatElement(0, count: count))
            return (damaged, "zeros over \(start)..<\(start + count)")
        default:
            guard case .segment(let base) = target else { return (damaged, "nothing") }
            let starts = fixture.placement.filter { $0.base == base }.map(\.position)
            let start = starts[Int.random(in: 0..<starts.count, using: &generator)]
            let lengths: [Int32] = [Int32.max, 0x7FFF_0000, 1 << 28, Int32.random(in: 49...Int32.max, using: &generator), -1, 0, 48]
            let length = lengths[Int.random(in: 0..<lengths.count, using: &generator)]
            damaged.replaceSubrange((start + 8)..<(start + 12), with: withUnsafeBytes(of: length.bigEndian) { Array($0) })
            return (damaged, "batch length at \(start) set to \(length)")
        }
    }

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

    /// Damage open found in a sealed segment (a CRC that fails below the recovery point) ends a header walk
    /// with corruptSegment at the damage, after the headers before it: the walk went on silently to the
    /// next segment, leaving a hole its caller could not see.
    @Test func aHeaderWalkStopsWithAnErrorAtDamageFoundOnOpen() throws {
        let directory = try ScratchDirectory()
        let (sealed, path, configuration) = try CorruptionTests.closedLogWithADamagedSealedSegment(directory.path, damagingBatch: 2)
        let damagedPosition = sealed.batches[2].position

        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        try #require(log.recoveryReport.corruptSealedSegments.map(\.path) == [path])
        var seen: [Int64] = []
        do {
            try log.forEachBatchHeader(from: sealed.batches[0].batch.baseOffset) { seen.append($0.baseOffset) }
            Issue.record("forEachBatchHeader went past the damage to \(seen.last.map(String.init) ?? "nothing")")
        } catch {
            #expect(logError(error) { if case .corruptSegment(path, damagedPosition, _) = $0 { true } else { false } }, "\(error)")
        }
        #expect(seen == sealed.batches.prefix(2).map(\.batch.baseOffset.rawValue))
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
