import DequeModule
import OutpostCore
import OutpostKafka

/// The sequence range and offsets of one appended idempotent batch.
public struct ProducerBatch: Hashable, Sendable {
    public var firstSequence: Int32
    public var lastSequence: Int32
    public var firstOffset: Offset
    public var lastOffset: Offset

    public init(firstSequence: Int32, lastSequence: Int32, firstOffset: Offset, lastOffset: Offset) {
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
    }

    /// A batch's last sequence: base + lastOffsetDelta, wrapping past Int32.max to 0 as Kafka's does.
    public static func lastSequence(first: Int32, lastOffsetDelta: Int32) -> Int32 {
        Int32((Int64(first) + Int64(lastOffsetDelta)) % (Int64(Int32.max) + 1))
    }

    /// The sequence expected after `sequence` (Int32.max wraps to 0).
    public static func nextSequence(after sequence: Int32) -> Int32 {
        sequence == .max ? 0 : sequence + 1
    }
}

/// What one partition remembers of one producer: its epoch and its last batches.
public struct ProducerEntry: Hashable, Sendable {
    public var epoch: Int16
    /// Oldest first; at most `ProducerStateTable.batchesRetained`.
    public var batches: Deque<ProducerBatch>
    /// The last offset appended by this producer, for least-recently-active eviction.
    public var lastActivity: Offset
}

/// Idempotent-produce rules for one partition (kafka-subset.md §4, after Kafka's `ProducerAppendInfo`).
///
/// A pure value: `check` decides, `record` remembers an append. The caller runs check → append → record
/// under one lock so that decisions and appends happen in the same order.
public struct ProducerStateTable: Hashable, Sendable {
    /// Batches remembered per producer: librdkafka keeps at most 5 requests in flight per partition, and
    /// after a reconnect may resend any of them (P12), so all 5 must be recognised as duplicates.
    public static let batchesRetained = 5

    public enum Decision: Hashable, Sendable {
        /// Append it.
        case append
        /// Already appended: answer success with the original offsets, append nothing.
        case duplicate(ProducerBatch)
        /// Refuse with this error (OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH).
        case reject(KafkaErrorCode)
    }

    public private(set) var producers: [ProducerID: ProducerEntry] = [:]
    public let producersMax: Int

    public init(producersMax: Int = 10_000) {
        precondition(producersMax > 0, "must remember at least one producer")
        self.producersMax = producersMax
    }

    /// Decides what to do with a batch of producer `id` at `epoch` carrying sequences
    /// `firstSequence…lastSequence`. The rules apply in §4's order.
    public func check(producer id: ProducerID, epoch: Int16, firstSequence: Int32, lastSequence: Int32) -> Decision {
        // 5. No state yet: accept any sequence (Kafka does; UNKNOWN_PRODUCER_ID is not used).
        guard let entry = producers[id] else { return .append }
        // 1. Duplicate of one of the retained batches.
        if epoch == entry.epoch,
            let original = entry.batches.first(where: { $0.firstSequence == firstSequence && $0.lastSequence == lastSequence })
        {
            return .duplicate(original)
        }
        // 2. Stale epoch: a fenced (older) producer instance.
        if epoch < entry.epoch { return .reject(.invalidProducerEpoch) }
        // 3. New epoch: the producer restarts its sequences at 0.
        if epoch > entry.epoch { return firstSequence == 0 ? .append : .reject(.outOfOrderSequenceNumber) }
        // 4. Same epoch: exactly the next sequence. An entry with no batches (none retained) accepts any.
        guard let last = entry.batches.last else { return .append }
        return firstSequence == ProducerBatch.nextSequence(after: last.lastSequence) ? .append : .reject(.outOfOrderSequenceNumber)
    }

    /// Remembers an appended batch (after `check` said `.append`, or while rebuilding from the log).
    public mutating func record(producer id: ProducerID, epoch: Int16, batch: ProducerBatch) {
        var entry = producers[id] ?? ProducerEntry(epoch: epoch, batches: [], lastActivity: batch.lastOffset)
        if epoch > entry.epoch {
            entry.epoch = epoch
            entry.batches.removeAll()
        }
        entry.batches.append(batch)
        while entry.batches.count > Self.batchesRetained { entry.batches.removeFirst() }
        entry.lastActivity = batch.lastOffset
        producers[id] = entry
        if producers.count > producersMax { evictLeastRecentlyActive(keeping: id) }
    }

    /// Forgets the producer least recently active. Its next batch is then accepted as from a new producer:
    /// dedupe for it is lost, never data.
    mutating func evictLeastRecentlyActive(keeping kept: ProducerID) {
        var victim: (id: ProducerID, activity: Offset)?
        for (id, entry) in producers where id != kept {
            if let current = victim, entry.lastActivity >= current.activity { continue }
            victim = (id, entry.lastActivity)
        }
        if let victim { producers[victim.id] = nil }
    }

    /// Rebuilds state from one stored batch header (restart): the same bookkeeping as `record`, no checks.
    public mutating func replay(_ header: RecordBatchHeader) {
        guard header.producer.isIdempotent else { return }
        let first = header.producer.baseSequence
        record(
            producer: ProducerID(header.producer.producerId), epoch: header.producer.producerEpoch,
            batch: ProducerBatch(
                firstSequence: first, lastSequence: ProducerBatch.lastSequence(first: first, lastOffsetDelta: header.lastOffsetDelta),
                firstOffset: Offset(header.baseOffset), lastOffset: Offset(header.lastOffset)))
    }

    /// The largest producer id seen, so InitProducerId never hands out one already in the log.
    public var largestProducerId: ProducerID? { producers.keys.max() }
}
