import OutpostCore
import OutpostKafka
import Testing
@testable import OutpostBroker

/// The idempotent-produce rules of kafka-subset.md §4, as a table: state before, incoming batch, decision.
@Suite struct ProducerStateTableTests {
    static let producer = ProducerID(1000)

    /// A table whose producer 1000 is at `epoch` with batches of 10 records, sequences 0…(10·count−1),
    /// at offsets 100, 110, ….
    static func table(epoch: Int16, batches count: Int) -> ProducerStateTable {
        var table = ProducerStateTable()
        for index in 0..<count {
            let first = Int32(index * 10)
            table.record(
                producer: producer, epoch: epoch,
                batch: ProducerBatch(firstSequence: first, lastSequence: first + 9, firstOffset: Offset(Int64(100 + index * 10)), lastOffset: Offset(Int64(109 + index * 10))))
        }
        return table
    }

    struct Row: CustomTestStringConvertible, Sendable {
        var rule: String
        var stateEpoch: Int16?
        var stateBatches: Int
        var epoch: Int16
        var first: Int32
        var last: Int32
        var expected: ProducerStateTable.Decision
        var testDescription: String { rule }
    }

    static let rows: [Row] = [
        Row(rule: "5. no state: any sequence is accepted", stateEpoch: nil, stateBatches: 0, epoch: 0, first: 4711, last: 4720, expected: .append),
        Row(rule: "1. duplicate of the newest batch: original offsets", stateEpoch: 0, stateBatches: 5, epoch: 0, first: 40, last: 49,
            expected: .duplicate(ProducerBatch(firstSequence: 40, lastSequence: 49, firstOffset: 140, lastOffset: 149))),
        Row(rule: "1. duplicate of the oldest retained batch (all 5 are checked, P12)", stateEpoch: 0, stateBatches: 5, epoch: 0, first: 0, last: 9,
            expected: .duplicate(ProducerBatch(firstSequence: 0, lastSequence: 9, firstOffset: 100, lastOffset: 109))),
        Row(rule: "1. only 5 batches are retained: an older one is out of order", stateEpoch: 0, stateBatches: 6, epoch: 0, first: 0, last: 9,
            expected: .reject(.outOfOrderSequenceNumber)),
        Row(rule: "1. same first sequence but a different last one is not a duplicate", stateEpoch: 0, stateBatches: 2, epoch: 0, first: 10, last: 14,
            expected: .reject(.outOfOrderSequenceNumber)),
        Row(rule: "2. stale epoch is fenced", stateEpoch: 3, stateBatches: 1, epoch: 2, first: 10, last: 19, expected: .reject(.invalidProducerEpoch)),
        Row(rule: "2. stale epoch even with a duplicate's sequences", stateEpoch: 3, stateBatches: 1, epoch: 2, first: 0, last: 9, expected: .reject(.invalidProducerEpoch)),
        Row(rule: "3. new epoch starting at 0 is accepted", stateEpoch: 0, stateBatches: 3, epoch: 1, first: 0, last: 4, expected: .append),
        Row(rule: "3. new epoch not starting at 0 is out of order", stateEpoch: 0, stateBatches: 3, epoch: 1, first: 30, last: 39, expected: .reject(.outOfOrderSequenceNumber)),
        Row(rule: "4. same epoch, next sequence is accepted", stateEpoch: 0, stateBatches: 3, epoch: 0, first: 30, last: 39, expected: .append),
        Row(rule: "4. same epoch, a gap is out of order", stateEpoch: 0, stateBatches: 3, epoch: 0, first: 31, last: 40, expected: .reject(.outOfOrderSequenceNumber)),
        Row(rule: "4. same epoch, a sequence already passed is out of order", stateEpoch: 0, stateBatches: 3, epoch: 0, first: 5, last: 14, expected: .reject(.outOfOrderSequenceNumber)),
    ]

    @Test(arguments: ProducerStateTableTests.rows)
    func rule(_ row: Row) {
        let table = row.stateEpoch.map { Self.table(epoch: $0, batches: row.stateBatches) } ?? ProducerStateTable()
        #expect(table.check(producer: Self.producer, epoch: row.epoch, firstSequence: row.first, lastSequence: row.last) == row.expected)
    }

    @Test func aNewEpochResetsTheRetainedBatches() {
        var table = Self.table(epoch: 0, batches: 3)
        table.record(producer: Self.producer, epoch: 1, batch: ProducerBatch(firstSequence: 0, lastSequence: 0, firstOffset: 200, lastOffset: 200))
        #expect(table.producers[Self.producer]?.batches.count == 1)
        #expect(table.producers[Self.producer]?.epoch == 1)
        // The old epoch's batches are no longer duplicates: that epoch is now fenced.
        #expect(table.check(producer: Self.producer, epoch: 0, firstSequence: 0, lastSequence: 9) == .reject(.invalidProducerEpoch))
        #expect(table.check(producer: Self.producer, epoch: 1, firstSequence: 1, lastSequence: 1) == .append)
    }

    @Test func sequencesWrapPastInt32MaxToZero() {
        #expect(ProducerBatch.lastSequence(first: .max - 1, lastOffsetDelta: 3) == 1)
        #expect(ProducerBatch.nextSequence(after: .max) == 0)
        var table = ProducerStateTable()
        table.record(producer: Self.producer, epoch: 0, batch: ProducerBatch(firstSequence: .max - 9, lastSequence: .max, firstOffset: 0, lastOffset: 9))
        #expect(table.check(producer: Self.producer, epoch: 0, firstSequence: 0, lastSequence: 9) == .append)
        #expect(table.check(producer: Self.producer, epoch: 0, firstSequence: 1, lastSequence: 9) == .reject(.outOfOrderSequenceNumber))
    }

    @Test func atMostFiveBatchesAreRetainedPerProducer() {
        let table = Self.table(epoch: 0, batches: 12)
        #expect(table.producers[Self.producer]?.batches.map(\.firstSequence) == [70, 80, 90, 100, 110])
    }

    @Test func beyondTheProducerLimitTheLeastRecentlyActiveIsForgotten() {
        var table = ProducerStateTable(producersMax: 2)
        for (id, offset) in [(1, 10), (2, 20), (3, 30)] {
            table.record(producer: ProducerID(Int64(id)), epoch: 0, batch: ProducerBatch(firstSequence: 0, lastSequence: 0, firstOffset: Offset(Int64(offset)), lastOffset: Offset(Int64(offset))))
        }
        #expect(Set(table.producers.keys) == [ProducerID(2), ProducerID(3)])
        // Forgotten means "no state": its next batch is accepted, never refused.
        #expect(table.check(producer: ProducerID(1), epoch: 0, firstSequence: 1, lastSequence: 1) == .append)
    }

    @Test func replayingStoredBatchHeadersRebuildsTheSameState() throws {
        var expected = ProducerStateTable()
        var replayed = ProducerStateTable()
        var offset: Int64 = 0
        for (epoch, first, count) in [(Int16(0), Int32(0), 3), (0, 3, 2), (1, 0, 4), (1, 4, 1)] {
            var builder = RecordBatchBuilder(producer: ProducerIdentity(producerId: 1000, producerEpoch: epoch, baseSequence: first))
            for index in 0..<count { builder.append(timestampMilliseconds: 1_700_000_000_000 + Int64(index), key: nil, value: [1, 2, 3]) }
            var batch = try builder.build()
            RecordBatchValidation.setBaseOffset(offset, in: &batch)
            let header = try RecordBatchHeader(bytes: batch)
            replayed.replay(header)
            expected.record(
                producer: Self.producer, epoch: epoch,
                batch: ProducerBatch(firstSequence: first, lastSequence: first + Int32(count) - 1, firstOffset: Offset(offset), lastOffset: Offset(offset + Int64(count) - 1)))
            offset += Int64(count)
        }
        // Non-idempotent batches leave no trace.
        var plain = RecordBatchBuilder()
        plain.append(timestampMilliseconds: 1, key: nil, value: [0])
        replayed.replay(try RecordBatchHeader(bytes: try plain.build()))
        #expect(replayed == expected)
        #expect(replayed.largestProducerId == Self.producer)
    }
}
