import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Segment roll by size and age; retention by size and age, never the active segment, and the floor.
@Suite struct RollAndRetentionTests {
    /// Where segments must start for these batch sizes: a batch that would take the active (non-empty)
    /// segment past `segmentBytesMax` starts a new one.
    static func expectedBases(_ model: [StoredBatch], segmentBytesMax: Int) -> [Offset] {
        var bases: [Offset] = [0]
        var size = 0
        for batch in model {
            if size > 0 && size + batch.size > segmentBytesMax {
                bases.append(batch.baseOffset)
                size = 0
            }
            size += batch.size
        }
        return bases
    }

    @Test func rollsBySize() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 31)
        var built = try buildLog(log, batches: 80, valueBytes: 20...300, using: &generator)
        // A batch larger than a segment still goes in, alone in its segment.
        try appendBatch(log, randomRecords(count: 30, valueBytes: 200...200, using: &generator), into: &built.model)
        #expect(built.model.last!.size > 4096)
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &built.model)

        let bases = try segmentBases(directory.path)
        #expect(bases == Self.expectedBases(built.model, segmentBytesMax: 4096))
        #expect(bases.count > 5)
        for (base, batches) in layout(built.model, bases: bases) {
            let size = fileSize(directory.path + "/" + SegmentNames.log(base))
            #expect(size == batches.reduce(0) { $0 + $1.batch.size })
            #expect(size <= 4096 || batches.count == 1, "segment \(base) is \(size) bytes")
        }
        #expect(log.currentStatistics().segmentCount == bases.count)
        #expect(try readEverything(log) == built.model.map(\.bytes))
    }

    @Test func rollsByAgeOfTheActiveSegment() throws {
        let directory = try ScratchDirectory()
        let clock = ManualClock()
        let configuration = LogConfiguration.testing(segmentAgeMaxMilliseconds: 1000)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration, clock: clock.function)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 32)
        var model: [StoredBatch] = []
        func append() throws -> Offset {
            try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model).baseOffset
        }
        _ = try append()  // segment 0 created at t0
        clock.advance(by: 500)
        _ = try append()
        clock.advance(by: 499)
        _ = try append()  // 999 ms: still young
        #expect(try segmentBases(directory.path) == [0])
        clock.advance(by: 1)
        let rolledAt = try append()  // 1000 ms: rolls before this append
        #expect(try segmentBases(directory.path) == [0, rolledAt])
        clock.advance(by: 999)
        _ = try append()
        #expect(try segmentBases(directory.path) == [0, rolledAt])
        // Idle for an hour: the next append rolls once, not once per elapsed interval.
        clock.advance(by: 3_600_000)
        let secondRoll = try append()
        _ = try append()
        #expect(try segmentBases(directory.path) == [0, rolledAt, secondRoll])
        #expect(try readEverything(log) == model.map(\.bytes))
    }

    /// Roll by age counts from the segment's creation, across restarts too: a process restarted more often
    /// than `segmentAgeMaxMilliseconds` must still roll (and so let retention by age delete) its segments.
    @Test func rollByAgeCountsFromTheSegmentsCreationAcrossAReopen() throws {
        let directory = try ScratchDirectory()
        let hour: Int64 = 3_600_000
        let start = Int64(Date().timeIntervalSince1970 * 1000)
        let clock = ManualClock(start)
        let configuration = LogConfiguration.testing(segmentAgeMaxMilliseconds: 24 * hour)
        var generator = SplitMix64(seed: 37)
        var model: [StoredBatch] = []
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration, clock: clock.function)
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)  // segment 0, created at start
        clock.advance(by: 20 * hour)
        try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model)
        try log.close()
        // The file's last write was at start + 20 h, as it would be had the test really waited.
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSince1970: Double(start + 20 * hour) / 1000)],
            ofItemAtPath: directory.path + "/" + SegmentNames.log(0))

        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration, clock: clock.function)
        defer { try? reopened.close() }
        clock.advance(by: 5 * hour)  // start + 25 h: segment 0 is 25 hours old
        let after = try appendBatch(reopened, randomRecords(count: 2, using: &generator), into: &model)
        #expect(try segmentBases(directory.path) == [0, after.baseOffset], "a 25-hour-old segment was not rolled (limit 24 h)")
    }

    @Test func retentionBySizeDeletesOldestSegmentsOnRoll() throws {
        let directory = try ScratchDirectory()
        let retention: Int64 = 12_288
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: retention)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 33)
        var model: [StoredBatch] = []
        // The model: segments as (base, size); at each roll drop the oldest while the total exceeds retention.
        var segments: [(base: Offset, size: Int)] = [(0, 0)]
        for _ in 0..<150 {
            let records = randomRecords(count: Int.random(in: 1...5, using: &generator), valueBytes: 20...200, using: &generator)
            let batchSize = try makeBatch(records).count
            let last = segments[segments.count - 1]
            if last.size > 0 && last.size + batchSize > 4096 {
                segments.append((model.last!.nextOffset, 0))
                var total = segments.reduce(0) { $0 + $1.size }
                while segments.count > 1 && Int64(total) > retention {
                    total -= segments[0].size
                    segments.removeFirst()
                }
            }
            try appendBatch(log, records, into: &model)
            segments[segments.count - 1].size += batchSize
            // A roll's retention unlinks off the append lock (see `retire`): the files are gone once the
            // removal queue has run, which a loaded machine (the whole suite in parallel) may take a while to do.
            log.awaitFileRemovals()
            #expect(try segmentBases(directory.path) == segments.map(\.base))
            #expect(log.logStartOffset == segments[0].base)
        }
        #expect(log.logStartOffset > 0, "retention never ran")
        let kept = model.filter { $0.baseOffset >= log.logStartOffset }
        #expect(try readEverything(log) == kept.map(\.bytes))
        #expect(throws: LogError.offsetOutOfRange(requested: log.logStartOffset + -1, logStart: log.logStartOffset, logEnd: log.logEndOffset)) {
            _ = try log.read(from: log.logStartOffset + -1, maxBytes: 100)
        }
        // The start survives a reopen.
        let start = log.logStartOffset
        try log.close()
        let reopened = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? reopened.close() }
        #expect(reopened.logStartOffset == start)
        #expect(try readEverything(reopened) == kept.map(\.bytes))
    }

    /// Four sealed segments appended at t0, t0+10s, t0+20s, t0+30s, then an active one at t0+40s.
    static func agedLog(_ directory: ScratchDirectory, clock: ManualClock) throws -> (PartitionLog, [StoredBatch], [Offset]) {
        let configuration = LogConfiguration.testing(retentionMilliseconds: 60_000, segmentAgeMaxMilliseconds: 10_000)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration, clock: clock.function)
        var generator = SplitMix64(seed: 34)
        var model: [StoredBatch] = []
        for _ in 0..<5 {
            for _ in 0..<3 { try appendBatch(log, randomRecords(count: 2, using: &generator), into: &model) }
            clock.advance(by: 10_000)
        }
        let bases = try segmentBases(directory.path)
        return (log, model, bases)
    }

    @Test func retentionByAgeDeletesSegmentsWhoseLastAppendIsTooOldButNeverTheActiveOne() throws {
        let directory = try ScratchDirectory()
        let clock = ManualClock()
        let (log, model, bases) = try Self.agedLog(directory, clock: clock)
        defer { try? log.close() }
        try #require(bases.count == 5)
        // Now t0+50s; segment i's last append was at t0 + 10s·i. Retention is 60 s.
        #expect(log.enforceRetention().deletedSegments.isEmpty)
        clock.advance(by: 10_001)  // segment 0 is 60.001 s old
        let first = log.enforceRetention()
        #expect(first.deletedSegments == [bases[0]])
        #expect(first.deletedBytes == model.filter { $0.baseOffset < bases[1] }.reduce(0) { $0 + $1.size })
        #expect(first.logStartOffset == bases[1])
        #expect(try segmentBases(directory.path) == Array(bases[1...]))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/" + SegmentNames.index(bases[0])))

        clock.advance(by: 1_000_000)  // everything is old now
        let second = log.enforceRetention()
        #expect(second.deletedSegments == Array(bases[1..<4]))
        #expect(try segmentBases(directory.path) == [bases[4]], "the active segment must survive")
        #expect(log.logStartOffset == bases[4])
        #expect(try readEverything(log) == model.filter { $0.baseOffset >= bases[4] }.map(\.bytes))
        // Timestamp lookups only see what is left.
        #expect(try log.offset(forTimestamp: 0)?.offset == bases[4])
    }

    @Test func theRetentionFloorKeepsSegmentsHoldingOffsetsAtOrAboveIt() throws {
        let directory = try ScratchDirectory()
        let clock = ManualClock()
        let (log, model, bases) = try Self.agedLog(directory, clock: clock)
        defer { try? log.close() }
        try #require(bases.count == 5)
        clock.advance(by: 1_000_000)
        // A floor exactly at segment 2's base: segments 0 and 1 hold only offsets below it.
        log.setRetentionFloor(bases[2])
        #expect(log.enforceRetention().deletedSegments == [bases[0], bases[1]])
        // A floor inside segment 2 keeps segment 2 (it holds offsets at and above the floor).
        log.setRetentionFloor(bases[2] + 1)
        #expect(log.enforceRetention().deletedSegments.isEmpty)
        #expect(log.logStartOffset == bases[2])
        // Floor at the segment's last offset: still held. One past it: released.
        log.setRetentionFloor(bases[3] + -1)
        #expect(log.enforceRetention().deletedSegments.isEmpty)
        log.setRetentionFloor(bases[3])
        #expect(log.enforceRetention().deletedSegments == [bases[2]])
        log.setRetentionFloor(nil)
        #expect(log.enforceRetention().deletedSegments == [bases[3]])
        #expect(try readEverything(log) == model.filter { $0.baseOffset >= bases[4] }.map(\.bytes))
    }

    @Test func theRetentionFloorAlsoHoldsBackRetentionBySize() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096, retentionBytes: 8192)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        log.setRetentionFloor(5)
        var generator = SplitMix64(seed: 35)
        let built = try buildLog(log, batches: 100, using: &generator)
        let bases = try segmentBases(directory.path)
        #expect(bases.count > 4)
        #expect(log.logStartOffset == 0, "the segment holding offset 5 must be kept")
        // Segments after the floor's segment are not protected, but deleting stops at the first protected one.
        #expect(try readEverything(log) == built.model.map(\.bytes))
        log.setRetentionFloor(nil)
        log.enforceRetention()
        #expect(Int64(log.currentStatistics().sizeBytes) <= 8192)
        #expect(log.logStartOffset > 0)
    }

    @Test func fsyncIntervalsOutsidePositiveUpToADayAreRefused() throws {
        for milliseconds in [0, -5, LogConfiguration.fsyncIntervalMaxMilliseconds + 1, Int.max] {
            let configuration = LogConfiguration.testing(fsync: .interval(milliseconds: milliseconds))
            #expect(throws: LogError.self, "interval(\(milliseconds)ms)") { _ = try configuration.validated() }
        }
        for milliseconds in [1, 5, LogConfiguration.fsyncIntervalMaxMilliseconds] {
            let configuration = LogConfiguration.testing(fsync: .interval(milliseconds: milliseconds))
            #expect(throws: Never.self, "interval(\(milliseconds)ms)") { _ = try configuration.validated() }
        }
    }

    /// An edge box gives the log 16 MiB: it must stay within that on disk however much is appended.
    @Test func aSixteenMebibyteBudgetKeepsTheLogWithinBudgetAsItGrows() throws {
        let directory = try ScratchDirectory()
        let budget: Int64 = 16 << 20
        var configuration = LogConfiguration.forBudget(bytes: budget)
        configuration.fsync = .never
        #expect(throws: Never.self) { _ = try configuration.validated() }
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 36)
        var largest = 0
        var largestAt = 0
        var model: [StoredBatch] = []
        // ~38 MiB of ~64 KiB uncompressed batches: more than twice the budget.
        for index in 0..<600 {
            let records = randomRecords(count: 64, valueBytes: 1000...1000, using: &generator)
            let stored = try appendBatch(log, records, into: &model)
            if index % 8 == 0 { model.removeAll { $0.baseOffset < log.logStartOffset } }
            let onDisk = directoryBytes(directory.path)
            if onDisk > largest {
                largest = onDisk
                largestAt = index
            }
            #expect(stored.size < 70_000)
        }
        #expect(largest <= Int(budget), "the log reached \(largest) bytes on disk (after append \(largestAt)), budget \(budget)")
        #expect(Int64(log.currentStatistics().sizeBytes) <= budget)
        #expect(log.logStartOffset > 0)
        // What is kept is the newest data, readable.
        let last = model.last!
        #expect(try log.read(from: last.baseOffset, maxBytes: 1).bytes == last.bytes)
    }

    @Test func smallBudgetsGiveValidConfigurations() throws {
        for budget: Int64 in [256 << 10, 1 << 20, 4 << 20, 16 << 20, 1 << 30, 16 << 30] {
            let configuration = LogConfiguration.forBudget(bytes: budget)
            #expect(throws: Never.self, "budget \(budget)") { _ = try configuration.validated() }
            // Retention leaves room for the active segment (which grows until it rolls), the spare segment
            // file recycling keeps, and the indexes.
            let retention = try #require(configuration.retentionBytes)
            #expect(retention + 2 * Int64(configuration.segmentBytesMax) + budget / 64 <= budget, "budget \(budget)")
            #expect(Int64(configuration.segmentBytesMax) * 8 <= max(budget, 8 * 4096))
        }
    }

    /// A corrupt sealed segment ends, for retention, where the next segment starts, not where its damage
    /// does: a replicator that read everything readable holds the floor at the damage, and the intact
    /// batches after it (salvage can save them) are above it. Retention once deleted the segment there.
    @Test func retentionKeepsACorruptSegmentWhoseBatchesAfterTheDamageAreAboveTheFloor() throws {
        let directory = try ScratchDirectory()
        let (segment, path, configuration) = try CorruptionTests.closedLogWithADamagedSealedSegment(directory.path, damagingBatch: 1)
        try #require(segment.batches.count >= 4)
        let damaged = segment.batches[1].batch

        var retaining = configuration
        retaining.retentionBytes = 4096
        let log = try PartitionLog.open(directory: directory.path, configuration: retaining)
        defer { try? log.close() }
        #expect(log.recoveryReport.corruptSealedSegments.map(\.path) == [path])
        // The replicator reads up to the damage and persists its cursor there: that is the floor.
        #expect(try log.read(from: Offset(damaged.baseOffset.rawValue - 1), maxBytes: Int.max).nextOffset == damaged.baseOffset)
        log.setRetentionFloor(damaged.baseOffset)
        let outcome = log.enforceRetention()
        let lostAboveFloor = segment.batches.dropFirst(2).map(\.batch)
        #expect(!outcome.deletedSegments.contains(segment.base),
                "corrupt segment \(segment.base) deleted; \(lostAboveFloor.count) intact batches at offsets \(lostAboveFloor.first!.baseOffset)… above the floor \(damaged.baseOffset) went with it")
        #expect(log.logStartOffset <= damaged.baseOffset)
    }

    /// Past its limits, with no floor holding it, retention deletes a corrupt sealed segment (one damaged
    /// segment must not stop retention and fill the disk), but never silently: its outcome names it with
    /// where the damage began, apart from the healthy segments deleted with it.
    @Test func retentionThatDeletesACorruptSegmentSaysSo() throws {
        let directory = try ScratchDirectory()
        let (segment, path, configuration) = try CorruptionTests.closedLogWithADamagedSealedSegment(directory.path, damagingBatch: 1)

        var retaining = configuration
        retaining.retentionBytes = 4096
        let log = try PartitionLog.open(directory: directory.path, configuration: retaining)
        defer { try? log.close() }
        let reported = try #require(log.recoveryReport.corruptSealedSegments.first)
        #expect(reported.path == path)
        let outcome = log.enforceRetention()
        #expect(outcome.deletedSegments.contains(segment.base))
        #expect(outcome.deletedCorruptSegments == [reported])
        // Healthy segments deleted with it are not named.
        #expect(outcome.deletedSegments.count > outcome.deletedCorruptSegments.count)
    }
}

@Suite struct DropOldestTests {
    @Test func droppingIgnoresTheFloorAndReportsWhatWentAndHeadersCanBeWalked() throws {
        let directory = try ScratchDirectory()
        let configuration = LogConfiguration.testing(segmentBytesMax: 4096)
        let log = try PartitionLog.open(directory: directory.path, configuration: configuration)
        defer { try? log.close() }
        var generator = SplitMix64(seed: 91)
        var model: [StoredBatch] = []
        for _ in 0..<40 { try appendBatch(log, randomRecords(count: 3, valueBytes: 100...300, using: &generator), into: &model) }
        log.setRetentionFloor(0)
        let oldest = try #require(log.oldestSealedSegmentRange)
        #expect(oldest.lowerBound == 0)
        // A caller that looked at another range (retention deleted it since) drops nothing.
        #expect(log.dropOldestSegment(expecting: oldest.upperBound..<(oldest.upperBound + 1)) == nil)
        #expect(log.logStartOffset == 0)
        let dropped = try #require(log.dropOldestSegment(expecting: oldest))
        #expect(dropped.offsets == oldest)
        #expect(dropped.bytes > 0)
        #expect(log.logStartOffset == oldest.upperBound)
        #expect(throws: LogError.self) { try log.read(from: 0, maxBytes: 1) }
        // Header walk from the new start sees every remaining batch, in order, without records.
        var bases: [Int64] = []
        try log.forEachBatchHeader(from: log.logStartOffset) { bases.append($0.baseOffset) }
        #expect(bases == model.filter { $0.baseOffset >= oldest.upperBound }.map(\.baseOffset.rawValue))
    }
}
