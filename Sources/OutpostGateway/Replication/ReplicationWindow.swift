import DequeModule
import OutpostCore

/// A replicator's bookkeeping between its local partition and the central brokers, as a pure value.
///
/// Invariant: at most `batchesMax` local batches beyond the *persisted* cursor are outstanding — sent and
/// not yet acknowledged, or acknowledged but not yet written to the cursor file. It equals the brokers'
/// idempotence cache (5 batches per producer and partition): after a crash the replicator resends from the
/// persisted cursor with the same producer identity and sequences, and every batch it resends is either one
/// of those ≤5 (recognised as a duplicate, answered with its original offset) or one never delivered.
public struct ReplicationWindow: Hashable, Sendable {
    public struct Batch: Hashable, Sendable {
        public var localBase: Offset
        public var localNext: Offset
        public var acknowledged: Bool
    }

    /// Kafka's NUM_BATCHES_TO_RETAIN: the broker remembers this many batches per producer and partition.
    public static let batchesMax = 5

    public private(set) var persisted: Offset
    public private(set) var outstanding: Deque<Batch> = []
    /// Where the next batch to send starts.
    public private(set) var nextToSend: Offset

    public init(persisted: Offset) {
        self.persisted = persisted
        nextToSend = persisted
    }

    /// Everything below it is acknowledged by the central brokers.
    public var acknowledged: Offset {
        outstanding.first { !$0.acknowledged }?.localBase ?? nextToSend
    }

    public var canSend: Bool { outstanding.count < Self.batchesMax }
    public var inFlight: Int { outstanding.filter { !$0.acknowledged }.count }

    /// Records that the batch `[localBase, localNext)` was handed to the producer. Batches go in order.
    public mutating func sent(localBase: Offset, localNext: Offset) {
        precondition(canSend, "window full: \(outstanding.count) batches outstanding")
        precondition(localBase >= nextToSend && localNext > localBase, "batches must be sent in order")
        outstanding.append(Batch(localBase: localBase, localNext: localNext, acknowledged: false))
        nextToSend = localNext
    }

    /// The broker acknowledged the batch starting at `localBase`. Returns the new acknowledged cursor.
    @discardableResult
    public mutating func acknowledged(localBase: Offset) -> Offset {
        if let index = outstanding.firstIndex(where: { $0.localBase == localBase }) {
            outstanding[index].acknowledged = true
        }
        return acknowledged
    }

    /// What to write to the cursor file now, or nil when nothing new is acknowledged.
    public var cursorToPersist: Offset? {
        let cursor = acknowledged
        return cursor > persisted ? cursor : nil
    }

    /// The cursor file holds `cursor` durably: its batches leave the window.
    public mutating func persisted(_ cursor: Offset) {
        guard cursor > persisted else { return }
        persisted = cursor
        while let first = outstanding.first, first.acknowledged, first.localNext <= cursor {
            outstanding.removeFirst()
        }
    }

    /// The producer gave up on the unacknowledged batches (connection lost for good, an error): send
    /// again from the first unacknowledged one, with the same sequences.
    public mutating func rewind() {
        while let last = outstanding.last, !last.acknowledged {
            outstanding.removeLast()
        }
        nextToSend = outstanding.last?.localNext ?? persisted
    }

    /// Local data below `offset` is gone (dropped to stay within the disk budget): the window restarts
    /// there. The caller declares the gap and starts a new producer session.
    public mutating func skip(to offset: Offset) {
        outstanding.removeAll()
        persisted = max(persisted, offset)
        nextToSend = persisted
    }
}
