import OutpostCore
import OutpostLog
import Synchronization

/// The seam between the broker's partition logic and where a partition's data lives and how it is
/// committed.
///
/// The broker (`BrokerPartition`) decides *whether* to append (validation, idempotence) and answers
/// clients; a replica appends, says when offsets are committed, and serves reads up to the high
/// watermark. Today's replica is `LocalReplica`: one node, committed = fsynced. In the cluster a replica
/// is a Raft group member: `appendAsLeader` proposes, the high watermark is the Raft commit index (a
/// majority fsynced it), `leaderEpoch` is the Raft term, and a follower answers `isLeader == false` so
/// the broker returns NOT_LEADER_OR_FOLLOWER. The high watermark is kept apart from the log end for that
/// reason: a leader may hold appended but uncommitted offsets, and consumers must not see them.
public protocol PartitionReplica: AnyObject, Sendable {
    var topicPartition: TopicPartition { get }
    /// The epoch of the current leadership, stamped into every appended batch's partitionLeaderEpoch.
    var leaderEpoch: Int32 { get }
    var isLeader: Bool { get }
    var logStartOffset: Offset { get }
    /// The offset the next append gets.
    var logEndOffset: Offset { get }
    /// Offsets below this are committed: consumers may read them and acks=all producers are answered.
    var highWatermark: Offset { get }

    /// Appends whole batches (already validated) as leader, assigning offsets. Not yet committed.
    func appendAsLeader(_ batches: [UInt8]) throws(LogError) -> AppendResult
    /// Calls back once every offset through `offset` is committed, or with the error that prevents it. May
    /// run on any thread; keep it short.
    func whenCommitted(through offset: Offset, _ callback: @escaping @Sendable (Result<Void, LogError>) -> Void)
    /// Called with the new high watermark each time it advances (from any thread).
    func observeHighWatermark(_ observer: @escaping @Sendable (Offset) -> Void)
    /// Whole committed batches from the one containing `offset`, up to `maxBytes` (at least one batch).
    func read(from offset: Offset, maxBytes: Int) throws(LogError) -> LogReadResult
    /// The first committed offset whose record timestamp is at or after `timestamp`, with that timestamp.
    func offset(forTimestamp timestamp: Int64) throws(LogError) -> (offset: Offset, timestamp: Int64)?
    /// Deletes old data per the retention bounds.
    func enforceRetention()
    func close() throws(LogError)
}

/// A single-node replica over a `PartitionLog`: always the leader (epoch 0); an offset is committed once
/// it is fsynced (group commit), or once written when the log's fsync policy is `never`.
public final class LocalReplica: PartitionReplica {
    public let topicPartition: TopicPartition
    public let log: PartitionLog
    public let leaderEpoch: Int32 = 0
    public var isLeader: Bool { true }
    /// With `fsync: never` nothing is fsynced until a roll or close, so waiting for durability would
    /// stall consumers and acks=all; written counts as committed instead (the operator chose that).
    let commitsWhenWritten: Bool

    struct State {
        var highWatermark: Offset
        var observer: (@Sendable (Offset) -> Void)?
    }

    private let state: Mutex<State>

    public init(topicPartition: TopicPartition, log: PartitionLog) {
        self.topicPartition = topicPartition
        self.log = log
        self.commitsWhenWritten = log.configuration.fsync == .never
        // Recovery leaves only intact batches; the log's durable end starts at its end.
        self.state = Mutex(State(highWatermark: log.durableEndOffset))
    }

    public var logStartOffset: Offset { log.logStartOffset }
    public var logEndOffset: Offset { log.logEndOffset }
    public var highWatermark: Offset { state.withLock { $0.highWatermark } }

    public func appendAsLeader(_ batches: [UInt8]) throws(LogError) -> AppendResult {
        if commitsWhenWritten {
            let result = try log.append(batches, partitionLeaderEpoch: leaderEpoch)
            advanceHighWatermark(to: result.nextOffset)
            return result
        }
        // Registered with the append, before any producer's commit wait on these offsets, and the log
        // releases waiters in order, so the high watermark moves before an acks=all answer goes out.
        return try log.append(batches, partitionLeaderEpoch: leaderEpoch) { [weak self] outcome in
            if case .success(let result) = outcome { self?.advanceHighWatermark(to: result.nextOffset) }
        }
    }

    public func whenCommitted(through offset: Offset, _ callback: @escaping @Sendable (Result<Void, LogError>) -> Void) {
        if commitsWhenWritten {
            callback(offset < log.logEndOffset ? .success(()) : .failure(.closed))
            return
        }
        log.whenDurable(through: offset) { [weak self] outcome in
            if case .success = outcome { self?.advanceHighWatermark(to: offset + 1) }
            callback(outcome)
        }
    }

    public func observeHighWatermark(_ observer: @escaping @Sendable (Offset) -> Void) {
        state.withLock { $0.observer = observer }
    }

    func advanceHighWatermark(to offset: Offset) {
        let observer: (@Sendable (Offset) -> Void)? = state.withLock { state in
            guard offset > state.highWatermark else { return nil }
            state.highWatermark = offset
            return state.observer
        }
        observer?(offset)
    }

    public func read(from offset: Offset, maxBytes: Int) throws(LogError) -> LogReadResult {
        try log.read(from: offset, maxBytes: maxBytes, upTo: highWatermark)
    }

    public func offset(forTimestamp timestamp: Int64) throws(LogError) -> (offset: Offset, timestamp: Int64)? {
        guard let found = try log.offset(forTimestamp: timestamp), found.offset < highWatermark else { return nil }
        return found
    }

    public func enforceRetention() { log.enforceRetention() }

    public func close() throws(LogError) { try log.close() }

    /// Every stored batch header from the log start, in offset order: for rebuilding producer state on
    /// restart. Reads whole batches in bounded chunks (the log has no header-only scan yet).
    public func forEachStoredBatchHeader(_ body: (RecordBatchHeader) -> Void) throws(LogError) {
        var offset = log.logStartOffset
        let end = log.logEndOffset
        while offset < end {
            let chunk = try log.read(from: offset, maxBytes: 8 << 20)
            guard chunk.batchCount > 0 else { break }
            var iterator = RecordBatchIterator(chunk.bytes)
            while let (header, _) = iterator.next() { body(header) }
            if let reason = iterator.stopReason { throw .invalidBatch(reason) }
            guard chunk.nextOffset > offset else { break }
            offset = chunk.nextOffset
        }
    }
}
