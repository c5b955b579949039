import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Reads by offset: whole batches, from the middle of a batch, across segments, bounded by bytes and offset.
@Suite struct ReadTests {
    /// About 15 segments of 4 KiB with an index entry every 256 bytes, and the model of what they hold.
    static func makeLog(_ directory: ScratchDirectory) throws -> (PartitionLog, BuiltLog) {
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, indexIntervalBytes: 256)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: 21)
        let built = try buildLog(log, batches: 120, using: &generator)
        return (log, built)
    }

    static func reopen(_ log: PartitionLog, _ directory: ScratchDirectory) throws -> PartitionLog {
        try log.close()
        return try PartitionLog.open(directory: directory.path, configuration: log.configuration)
    }

    @Test(arguments: [false, true])
    func everyOffsetReadsTheWholeBatchThatContainsIt(reopen: Bool) throws {
        let directory = try ScratchDirectory("everyOffset\(reopen)")
        var (log, built) = try Self.makeLog(directory)
        if reopen { log = try Self.reopen(log, directory) }
        defer { try? log.close() }
        #expect(try segmentBases(directory.path).count > 5, "the test needs several segments")
        #expect(built.model.contains { $0.records.count > 1 }, "the test needs multi-record batches")
        for batch in built.model {
            for offset in batch.baseOffset.rawValue...batch.lastOffset.rawValue {
                let result = try log.read(from: Offset(offset), maxBytes: 1)
                #expect(result.batchCount == 1, "offset \(offset)")
                #expect(result.bytes == batch.bytes, "offset \(offset) must return the batch at \(batch.baseOffset)")
                #expect(result.nextOffset == batch.nextOffset)
                #expect(result.logStartOffset == 0)
                #expect(result.logEndOffset == built.end)
            }
        }
    }

    @Test(arguments: [false, true])
    func readsWithByteLimitsAndOffsetBoundsCrossSegmentBoundaries(reopen: Bool) throws {
        let directory = try ScratchDirectory("limits\(reopen)")
        var (log, built) = try Self.makeLog(directory)
        if reopen { log = try Self.reopen(log, directory) }
        defer { try? log.close() }
        var generator = SplitMix64(seed: testSeed(22))
        let end = built.end
        var crossed = 0
        let bases = Set(try segmentBases(directory.path))
        for _ in 0..<600 {
            let offset = Offset(Int64.random(in: 0..<end.rawValue, using: &generator))
            let maxBytes = [1, 100, 700, 2000, 5000, 12_000, Int.max][Int.random(in: 0..<7, using: &generator)]
            let limit: Offset? = Bool.random(using: &generator) ? nil : Offset(Int64.random(in: 0...(end.rawValue + 5), using: &generator))
            let expected = expectedRead(built.model, from: offset, maxBytes: maxBytes, upTo: limit, end: end)
            let result = try log.read(from: offset, maxBytes: maxBytes, upTo: limit)
            let context = "read(from: \(offset), maxBytes: \(maxBytes), upTo: \(limit.map(String.init(describing:)) ?? "nil"))"
            #expect(result.bytes == expected.flatMap(\.bytes), "\(context)")
            #expect(result.batchCount == expected.count, "\(context)")
            #expect(result.nextOffset == (expected.last?.nextOffset ?? offset), "\(context)")
            if let limit, offset < limit {
                #expect(expected.allSatisfy { $0.baseOffset < limit })
            }
            if expected.dropFirst().contains(where: { bases.contains($0.baseOffset) }) { crossed += 1 }
        }
        #expect(crossed > 50, "too few reads crossed a segment boundary to show anything")

        // The whole log in one read, from every segment's first offset and from just before each boundary.
        for base in bases.sorted() where base > 0 {
            let before = base + -1
            let result = try log.read(from: before, maxBytes: Int.max)
            #expect(result.bytes == expectedRead(built.model, from: before, maxBytes: Int.max, upTo: nil, end: end).flatMap(\.bytes))
            #expect(result.nextOffset == end)
        }
        // maxBytes smaller than any batch still returns exactly one batch.
        for maxBytes in [0, 1, 60] {
            let result = try log.read(from: 0, maxBytes: maxBytes)
            #expect(result.batchCount == 1)
            #expect(result.bytes == built.model[0].bytes)
        }
    }

    @Test func readingAtTheEndIsEmptyAndOutsideTheLogIsAnError() throws {
        let directory = try ScratchDirectory()
        let (log, built) = try Self.makeLog(directory)
        defer { try? log.close() }
        let end = built.end
        let atEnd = try log.read(from: end, maxBytes: 1 << 20)
        #expect(atEnd.batchCount == 0)
        #expect(atEnd.bytes.isEmpty)
        #expect(atEnd.nextOffset == end)
        #expect(atEnd.logEndOffset == end)

        // A bound at or below the start offset gives nothing either.
        let bounded = try log.read(from: 10, maxBytes: 1 << 20, upTo: 10)
        #expect(bounded.batchCount == 0)
        #expect(bounded.nextOffset == 10)

        #expect(throws: LogError.offsetOutOfRange(requested: end + 1, logStart: 0, logEnd: end)) {
            _ = try log.read(from: end + 1, maxBytes: 100)
        }
        #expect(throws: LogError.offsetOutOfRange(requested: -1, logStart: 0, logEnd: end)) {
            _ = try log.read(from: -1, maxBytes: 100)
        }
    }

    @Test func anEmptyLogReadsNothingAtOffsetZero() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing())
        defer { try? log.close() }
        #expect(log.logStartOffset == 0)
        #expect(log.logEndOffset == 0)
        let result = try log.read(from: 0, maxBytes: 100)
        #expect(result.batchCount == 0)
        #expect(throws: LogError.offsetOutOfRange(requested: 1, logStart: 0, logEnd: 0)) { _ = try log.read(from: 1, maxBytes: 100) }
        #expect(try log.offset(forTimestamp: 0) == nil)
    }

    @Test func concurrentReadersSeeWholeBatchesWhileAppendsAndRetentionRun() async throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, indexIntervalBytes: 256, retentionBytes: 16384)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 23)
        let built = try buildLog(log, batches: 30, using: &generator)
        let expected = Dictionary(uniqueKeysWithValues: built.model.map { ($0.baseOffset, $0.bytes) })
        let writer = Task {
            var generator = SplitMix64(seed: 24)
            var model: [StoredBatch] = []
            for _ in 0..<300 { try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model) }
            return model
        }
        var problems: [String] = []
        for _ in 0..<300 {
            let start = log.logStartOffset
            do {
                let result = try log.read(from: start, maxBytes: 3000)
                for batch in splitBatches(result.bytes) {
                    let header = try RecordBatchHeader(bytes: batch)
                    if header.baseOffset < start.rawValue { problems.append("batch at \(header.baseOffset) below the start \(start)") }
                    if let known = expected[Offset(header.baseOffset)], known != batch { problems.append("batch \(header.baseOffset) changed") }
                }
            } catch LogError.offsetOutOfRange {
                // Retention moved the start between the two calls: allowed.
            }
        }
        let appended = try await writer.value
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        // The appended tail is intact.
        let tail = try log.read(from: appended.last!.baseOffset, maxBytes: 1)
        #expect(tail.bytes == appended.last!.bytes)
    }
}
