import DequeModule
import OutpostCore

/// One partition's batches between `send` and their acknowledgement: the ordering and retry rules of an
/// idempotent producer, as a pure state machine. `KafkaProducer` feeds it and carries out what it says.
///
/// The rules (after librdkafka's idempotent producer, kafka-subset.md §4):
/// - At most `windowMax` batches (5: the broker remembers the last 5 per producer and partition) are
///   between `send` and their result. They are written in order, all on one connection, so the broker
///   sees them in sequence order.
/// - A retriable failure (a transport error, NOT_LEADER_OR_FOLLOWER, …) puts the batch back to waiting and
///   *holds* the partition: nothing more is written until every in-flight batch has its answer. Then,
///   after a backoff, every unacknowledged batch is written again, in order, with the same producer id,
///   epoch and sequence — the broker answers the ones it already has as duplicates (NONE with the original
///   offset, or DUPLICATE_SEQUENCE_NUMBER), which count as delivered.
/// - OUT_OF_ORDER_SEQUENCE_NUMBER is expected for a batch behind one that failed (the broker never saw
///   its predecessor), and is then retried like any retriable error. For the oldest unacknowledged batch
///   it is fatal: the broker expected another sequence.
/// - A fatal failure fails that batch; every batch that was in the window with it and is not acknowledged
///   fails too (`abortedAfterEarlierFailure`) — their sequences follow the failed one and can no longer
///   be accepted. Batches enqueued after the failure (with a new identity) proceed normally.
/// - Results leave in order: a batch's result is released only after every earlier batch's.
public struct ProducePipeline: Sendable {
    /// Identifies one batch in one pipeline; increasing in enqueue order.
    public struct EntryID: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var rawValue: UInt64
        public init(_ rawValue: UInt64) { self.rawValue = rawValue }
        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String { "#\(rawValue)" }
    }

    /// What one Produce attempt for one batch came back with.
    public enum Answer: Hashable, Sendable {
        /// The broker's answer for the partition: its error code and base offset.
        case response(KafkaErrorCode, baseOffset: Int64)
        /// No answer: the request failed on the way (connection lost, timed out, …).
        case transport(KafkaClientError)
    }

    /// A batch's final result.
    public enum Outcome: Hashable, Sendable {
        /// Appended (or recognised as already appended). The base offset is nil when the broker answered
        /// DUPLICATE_SEQUENCE_NUMBER, which carries none.
        case acknowledged(baseOffset: Offset?)
        case failed(KafkaClientError)
    }

    /// A batch's result, released in enqueue order.
    public struct Completion: Hashable, Sendable {
        public var id: EntryID
        public var outcome: Outcome
    }

    /// What an answer changes beyond the pipeline.
    public struct Reaction: Hashable, Sendable {
        /// Results released by this answer, in enqueue order.
        public var completed: [Completion] = []
        /// Leadership may have moved or the connection is gone: look the leader up again before resending.
        public var refreshLeader = false
        /// The answer was a fatal sequence or epoch error (the identity must change).
        public var identityFailed = false
    }

    enum State: Hashable, Sendable {
        /// Not on the wire: never sent, or waiting to be resent.
        case waiting
        case inFlight
        case done(Outcome)
    }

    struct Entry: Hashable, Sendable {
        var id: EntryID
        var producer: ProducerIdentity
        var state: State
        var attempts: Int
    }

    public let partition: KafkaTopicPartition
    /// Batches between enqueue and result, at most.
    public let windowMax: Int
    /// Whether sequence errors are interpreted (an idempotent producer) or are plain errors.
    public let idempotent: Bool
    private var entries = Deque<Entry>()
    public private(set) var inFlightCount = 0
    /// A retriable failure happened: nothing is written until `resume()`.
    public private(set) var isHolding = false
    /// Entries with an id below this were in the window when a fatal failure happened: they are not retried.
    private var abortBelow = EntryID(0)

    public init(partition: KafkaTopicPartition, windowMax: Int, idempotent: Bool) {
        precondition(windowMax >= 1, "a window holds at least one batch")
        self.partition = partition
        self.windowMax = windowMax
        self.idempotent = idempotent
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var hasRoom: Bool { entries.count < windowMax }
    /// Holding, and every in-flight answer is back: wait the backoff, then `resume()`.
    public var isReadyToResume: Bool { isHolding && inFlightCount == 0 }
    /// Unsettled batches, oldest first (for close and flush).
    public var pendingIDs: [EntryID] { entries.map(\.id) }

    public func producer(of id: EntryID) -> ProducerIdentity? { entries.first { $0.id == id }?.producer }

    /// How often batch `id` has been written (1 after its first `takeSendable`).
    public func attempts(of id: EntryID) -> Int { entries.first { $0.id == id }?.attempts ?? 0 }

    /// Adds a batch at the end. The caller made sure there is room.
    public mutating func enqueue(_ id: EntryID, producer: ProducerIdentity) {
        precondition(hasRoom, "the producer waits for room before enqueueing")
        precondition(entries.last.map { $0.id < id } ?? true, "entry ids increase")
        entries.append(Entry(id: id, producer: producer, state: .waiting, attempts: 0))
    }

    /// The batches to write now, in order; they count as in flight from here. Empty while holding.
    public mutating func takeSendable() -> [EntryID] {
        guard !isHolding else { return [] }
        var ids: [EntryID] = []
        for index in entries.indices where entries[index].state == .waiting {
            entries[index].state = .inFlight
            entries[index].attempts += 1
            inFlightCount += 1
            ids.append(entries[index].id)
        }
        return ids
    }

    /// The answer for batch `id`, which was in flight.
    public mutating func answered(_ id: EntryID, _ answer: Answer) -> Reaction {
        var reaction = Reaction()
        guard let index = entries.firstIndex(where: { $0.id == id }), entries[index].state == .inFlight else { return reaction }
        inFlightCount -= 1
        let entry = entries[index]
        let earlierUnsettled = entries[..<index].contains { if case .done = $0.state { false } else { true } }
        let aborted = id < abortBelow

        switch classify(answer, entry: entry, earlierUnsettled: earlierUnsettled) {
        case .delivered(let offset):
            entries[index].state = .done(.acknowledged(baseOffset: offset))
        case .retry(let refresh):
            reaction.refreshLeader = reaction.refreshLeader || refresh
            if aborted {
                entries[index].state = .done(.failed(.abortedAfterEarlierFailure(partition)))
            } else {
                entries[index].state = .waiting
                isHolding = true
            }
        case .fatal(let error, let identityFailed):
            if aborted {
                entries[index].state = .done(.failed(.abortedAfterEarlierFailure(partition)))
            } else {
                entries[index].state = .done(.failed(error))
                reaction.identityFailed = identityFailed
                abortFollowers(of: index)
            }
        }
        reaction.completed = settle()
        return reaction
    }

    /// After a fatal failure at `index`: every later entry already in the window is not retried. Those not
    /// on the wire fail now; those in flight fail when their answer comes (unless it is a success).
    private mutating func abortFollowers(of index: Int) {
        if let last = entries.last { abortBelow = EntryID(last.id.rawValue + 1) }
        for later in entries.indices where later > index && entries[later].state == .waiting {
            entries[later].state = .done(.failed(.abortedAfterEarlierFailure(partition)))
        }
        if !entries.contains(where: { $0.state == .waiting }) { isHolding = false }
    }

    private enum Classification {
        case delivered(Offset?)
        case retry(refreshLeader: Bool)
        case fatal(KafkaClientError, identityFailed: Bool)
    }

    private func classify(_ answer: Answer, entry: Entry, earlierUnsettled: Bool) -> Classification {
        switch answer {
        case .transport(let error):
            return error.isRetriable ? .retry(refreshLeader: error.invalidatesMetadata) : .fatal(error, identityFailed: false)
        case .response(let code, let baseOffset):
            switch code {
            case .none:
                return .delivered(baseOffset >= 0 ? Offset(baseOffset) : nil)
            case .duplicateSequenceNumber where idempotent:
                return .delivered(baseOffset >= 0 ? Offset(baseOffset) : nil)
            case .outOfOrderSequenceNumber where idempotent:
                // Behind a batch that failed: the broker never saw the predecessor. Resend in order.
                if earlierUnsettled || isHolding { return .retry(refreshLeader: false) }
                return .fatal(.outOfOrderSequence(partition, producer: entry.producer), identityFailed: true)
            case .invalidProducerEpoch where idempotent, .unknownProducerId where idempotent:
                return .fatal(.producerFenced(partition, code), identityFailed: true)
            case .corruptMessage, .invalidRecord, .messageTooLarge, .recordListTooLarge, .unsupportedCompressionType:
                // The same bytes would be refused again.
                return .fatal(.broker(code, context: "Produce to \(partition)"), identityFailed: false)
            case let code where code.isRetriable || code.invalidatesMetadata:
                return .retry(refreshLeader: code.invalidatesMetadata)
            default:
                return .fatal(.broker(code, context: "Produce to \(partition)"), identityFailed: false)
            }
        }
    }

    /// Ends a hold: every waiting batch may be written again (by `takeSendable`).
    public mutating func resume() {
        precondition(inFlightCount == 0, "resume only once every in-flight answer is back")
        isHolding = false
    }

    /// Fails every batch that is not on the wire with `error` (the partition cannot be reached for good,
    /// e.g. its topic does not exist). Batches in flight keep waiting for their answers.
    public mutating func failUnsent(_ error: KafkaClientError) -> [Completion] {
        for index in entries.indices where entries[index].state == .waiting {
            entries[index].state = .done(.failed(error))
        }
        if let last = entries.last { abortBelow = max(abortBelow, EntryID(last.id.rawValue + 1)) }
        isHolding = false
        return settle()
    }

    /// Fails every unsettled batch with `error` (the producer is closing). In-flight answers that arrive
    /// later are ignored.
    public mutating func failAll(_ error: KafkaClientError) -> [Completion] {
        let failed = entries.map { entry -> Completion in
            if case .done(let outcome) = entry.state { return Completion(id: entry.id, outcome: outcome) }
            return Completion(id: entry.id, outcome: .failed(error))
        }
        entries.removeAll()
        inFlightCount = 0
        isHolding = false
        return failed
    }

    /// Pops settled entries off the front.
    private mutating func settle() -> [Completion] {
        var completed: [Completion] = []
        while let first = entries.first, case .done(let outcome) = first.state {
            entries.removeFirst()
            completed.append(Completion(id: first.id, outcome: outcome))
        }
        if isHolding && !entries.contains(where: { $0.state == .waiting }) { isHolding = false }
        return completed
    }
}
