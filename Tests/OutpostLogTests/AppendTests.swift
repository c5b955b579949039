import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Append: offsets, what is rewritten in the batch header, multi-batch appends, and what is refused.
@Suite struct AppendTests {
    @Test func appendAssignsContiguousOffsetsAndRewritesOnlyTheFieldsOutsideTheCRC() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing())
        defer { try? log.close() }
        var generator = SplitMix64(seed: 11)
        var expectedNext: Offset = 0
        for index in 0..<40 {
            let records = randomRecords(count: Int.random(in: 1...12, using: &generator), using: &generator)
            var batch = try makeBatch(records, compression: index % 2 == 0 ? .gzip : .none, leaderEpoch: 77)
            // Whatever baseOffset the producer put there is replaced.
            RecordBatchValidation.setBaseOffset(999_999, in: &batch)
            let original = batch
            let epoch: Int32? = index % 3 == 0 ? Int32(5 + index) : nil
            let result = try log.append(batch, partitionLeaderEpoch: epoch)

            #expect(result.firstOffset == expectedNext)
            #expect(result.lastOffset == expectedNext + Int64(records.count - 1))
            #expect(result.batchCount == 1)
            #expect(result.bytes == batch.count)
            #expect(result.maxTimestamp == records.map(\.timestamp).max())
            #expect(batch == original, "append must not modify the caller's array")
            expectedNext = result.nextOffset

            let read = try log.read(from: result.firstOffset, maxBytes: 1)
            let stored = read.bytes
            try #require(stored.count == batch.count)
            let header = try RecordBatchHeader(bytes: stored)
            #expect(header.baseOffset == result.firstOffset.rawValue)
            #expect(header.partitionLeaderEpoch == (epoch ?? 77))
            #expect(stored[8..<12] == batch[8..<12], "batchLength changed")
            #expect(stored[16...] == batch[16...], "magic, CRC or CRC-covered bytes changed")
            #expect(throws: Never.self) { _ = try RecordBatchValidation.validate(stored) }
            #expect(try RecordBatch.decode(stored).records.map(\.offset) == Array(result.firstOffset.rawValue...result.lastOffset.rawValue))
        }
        #expect(log.logEndOffset == expectedNext)
        #expect(log.logStartOffset == 0)
        #expect(log.currentStatistics().appendedBatches == 40)
    }

    @Test func multiBatchAppendAssignsOffsetsToEachBatchInOrder() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing())
        defer { try? log.close() }
        var generator = SplitMix64(seed: 12)
        var model: [StoredBatch] = []
        try appendBatch(log, randomRecords(count: 3, using: &generator), into: &model)

        var combined: [UInt8] = []
        var counts: [Int] = []
        for index in 0..<5 {
            let records = randomRecords(count: index + 1, using: &generator)
            counts.append(records.count)
            combined += try makeBatch(records, compression: index % 2 == 0 ? .gzip : .none)
        }
        let result = try log.append(combined)
        #expect(result.firstOffset == 3)
        #expect(result.batchCount == 5)
        #expect(result.bytes == combined.count)
        #expect(result.lastOffset == Offset(3 + Int64(counts.reduce(0, +)) - 1))

        let read = try log.read(from: 3, maxBytes: Int.max)
        let batches = splitBatches(read.bytes)
        try #require(batches.count == 5)
        var offset: Int64 = 3
        for (batch, count) in zip(batches, counts) {
            let header = try RecordBatchHeader(bytes: batch)
            #expect(header.baseOffset == offset)
            #expect(Int(header.recordCount) == count)
            offset += Int64(count)
        }
        let after = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        #expect(after.baseOffset == result.nextOffset)
    }

    enum BadInput: String, CaseIterable, Sendable {
        case empty, flippedCRCByte, flippedRecordByte, truncated, badMagic, negativeLength, trailingJunk, secondBatchDamaged, tooLarge
    }

    @Test(arguments: BadInput.allCases)
    func invalidInputIsRejectedAndLeavesTheLogUnchanged(_ input: BadInput) throws {
        let directory = try ScratchDirectory(input.rawValue)
        var configuration = LogConfiguration.testing()
        configuration.batchBytesMax = 4096
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        var generator = SplitMix64(seed: 13)
        var model: [StoredBatch] = []
        for _ in 0..<3 { try appendBatch(log, randomRecords(count: 4, using: &generator), into: &model) }
        let endBefore = log.logEndOffset
        let statisticsBefore = log.currentStatistics()
        let segmentPath = directory.path + "/" + SegmentNames.log(0)
        let sizeBefore = fileSize(segmentPath)

        let good = try makeBatch(randomRecords(count: 5, using: &generator), compression: .gzip)
        var bad = good
        switch input {
        case .empty: bad = []
        case .flippedCRCByte: bad[RecordBatchLayout.crcPosition + 1] ^= 0x10
        case .flippedRecordByte: bad[bad.count - 3] ^= 0x01
        case .truncated: bad.removeLast(7)
        case .badMagic: bad[RecordBatchLayout.magicPosition] = 1
        case .negativeLength: bad.replaceSubrange(8..<12, with: [0xFF, 0xFF, 0xFF, 0xF0])
        case .trailingJunk: bad += [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        case .secondBatchDamaged:
            var second = try makeBatch(randomRecords(count: 2, using: &generator))
            second[second.count - 1] ^= 0xFF
            bad = good + second
        case .tooLarge:
            bad = try makeBatch(randomRecords(count: 60, valueBytes: 100...100, using: &generator))
            try #require(bad.count > 4096)
        }
        do {
            _ = try log.append(bad)
            Issue.record("append of \(input) bytes succeeded")
        } catch {
            switch (input, error) {
            case (.empty, .invalidBatch(.truncated)), (.flippedCRCByte, .invalidBatch(.crcMismatch)),
                (.flippedRecordByte, .invalidBatch(.crcMismatch)), (.truncated, .invalidBatch(.truncated)),
                (.badMagic, .invalidBatch(.unsupportedMagic)), (.negativeLength, .invalidBatch(.invalidBatchLength)),
                (.trailingJunk, .invalidBatch), (.secondBatchDamaged, .invalidBatch(.crcMismatch)), (.tooLarge, .batchTooLarge):
                break
            default:
                Issue.record("\(input): unexpected error \(error)")
            }
        }
        #expect(log.logEndOffset == endBefore)
        #expect(fileSize(segmentPath) == sizeBefore, "a refused append left bytes behind")
        #expect(log.currentStatistics().appendedBatches == statisticsBefore.appendedBatches)
        let next = try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        #expect(next.baseOffset == endBefore)
        #expect(try readEverything(log) == model.map(\.bytes))
        try log.close()

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect(try readEverything(reopened) == model.map(\.bytes))
    }

    @Test func closeAndReopenKeepEverything() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 8192, indexIntervalBytes: 512, fsync: .always)
        var generator = SplitMix64(seed: 14)
        var built = BuiltLog()
        for round in 0..<3 {
            let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
            #expect(log.logEndOffset == built.end, "round \(round)")
            #expect(log.durableEndOffset == built.end)
            #expect(log.recoveryReport.truncatedBytes == 0)
            #expect(log.recoveryReport.corruptSealedSegments.isEmpty)
            #expect(log.recoveryReport.logEndOffset == built.end)
            #expect(try readEverything(log) == built.model.map(\.bytes))
            let more = try buildLog(log, batches: 40, using: &generator)
            // Offsets continue where the previous run ended.
            #expect(more.model.first?.baseOffset == built.end)
            built.model += more.model
            #expect(log.logEndOffset == built.end)
            try log.close()
            try log.close()  // idempotent
            #expect(throws: LogError.closed) { _ = try log.append(try makeBatch(randomRecords(count: 1, using: &generator))) }
            #expect(throws: LogError.closed) { _ = try log.read(from: 0, maxBytes: 100) }
        }
        let check = try LogInspector.verify(partitionDirectory: directory.path)
        #expect(check.isIntact, "\(check.problems)")
        #expect(check.batchCount == built.model.count)
        #expect(check.nextOffset == built.end)
    }

    /// A new batch numbers its records densely. A lastOffsetDelta past the record count (CRC intact) took
    /// up to 2^31 offsets per batch, and three such appends overflowed a segment's 2^32 relative offsets:
    /// a restart then cut or refused what had been accepted (found by fuzzing).
    @Test func appendRefusesABatchWhoseLastOffsetDeltaSkipsOffsets() throws {
        let directory = try ScratchDirectory()
        let log = try PartitionLog.open(directory: directory.path, configuration: .testing())
        defer { try? log.close() }
        var generator = SplitMix64(seed: 93)
        var batch = try makeBatch(randomRecords(count: 1, using: &generator))
        batch.replaceSubrange(23..<27, with: [0x7F, 0xFF, 0xFF, 0xFF])  // lastOffsetDelta = Int32.max
        let crc = CRC32C.checksum(Array(batch[RecordBatchLayout.crcCoveredStart...]))
        batch.replaceSubrange(17..<21, with: withUnsafeBytes(of: crc.bigEndian) { Array($0) })
        #expect(throws: LogError.self) { try log.append(batch) }
        #expect(log.logEndOffset == 0)
        var model: [StoredBatch] = []
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        #expect(try readEverything(log) == model.map(\.bytes))
    }
}
