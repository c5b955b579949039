import OutpostCore
import OutpostKafka
import OutpostLog
import Synchronization

/// One partition as the broker serves it: the idempotence checks and the append happen here, in one
/// critical section, over a `PartitionReplica`; fetches parked in long poll wait here for the high
/// watermark to move.
public final class BrokerPartition: Sendable {
    public let id: TopicPartition
    public let replica: any PartitionReplica

    /// Held across check → append → record, so idempotence decisions happen in log order.
    private let producers: Mutex<ProducerStateTable>
    /// Parked fetches to wake when the high watermark advances. Bounded by the broker's fetch-waiter limit
    /// (each parked fetch registers once per partition it reads). A lock of its own: with `fsync: never`
    /// the high watermark advances inside an append, i.e. while `producers` is held.
    private let waiters = Mutex<[UInt64: @Sendable () -> Void]>([:])

    public init(replica: any PartitionReplica, producersMax: Int) {
        self.id = replica.topicPartition
        self.replica = replica
        self.producers = Mutex(ProducerStateTable(producersMax: producersMax))
        replica.observeHighWatermark { [weak self] _ in self?.wakeWaiters() }
    }

    /// What became of one produced batch.
    public enum AppendOutcome: Sendable {
        case appended(AppendResult)
        /// A retry of a batch already appended: answer with its original offsets, append nothing.
        case duplicate(ProducerBatch)
        case rejected(KafkaErrorCode, reason: String)
    }

    /// Checks idempotence (for a batch with a producer id) and appends. `batch` is one validated batch and
    /// `header` its header. Appends of one partition are serialized here, so the order of decisions is the
    /// order of the log.
    public func append(batch: [UInt8], header: RecordBatchHeader) -> AppendOutcome {
        producers.withLock { producers in
            let producer = header.producer
            var sequenceRange: (first: Int32, last: Int32)?
            if producer.isIdempotent {
                let first = producer.baseSequence
                let last = ProducerBatch.lastSequence(first: first, lastOffsetDelta: header.lastOffsetDelta)
                sequenceRange = (first, last)
                switch producers.check(
                    producer: ProducerID(producer.producerId), epoch: producer.producerEpoch, firstSequence: first, lastSequence: last)
                {
                case .append: break
                case .duplicate(let original): return .duplicate(original)
                case .reject(let code):
                    return .rejected(code, reason: "producer \(producer.producerId) epoch \(producer.producerEpoch) sequence \(first)…\(last)")
                }
            }
            let result: AppendResult
            do throws(LogError) {
                result = try replica.appendAsLeader(batch)
            } catch {
                return .rejected(Self.errorCode(for: error), reason: "\(error)")
            }
            if let sequenceRange {
                producers.record(
                    producer: ProducerID(producer.producerId), epoch: producer.producerEpoch,
                    batch: ProducerBatch(
                        firstSequence: sequenceRange.first, lastSequence: sequenceRange.last, firstOffset: result.firstOffset,
                        lastOffset: result.lastOffset))
            }
            return .appended(result)
        }
    }

    /// The Kafka answer to a log failure.
    static func errorCode(for error: LogError) -> KafkaErrorCode {
        switch error {
        case .invalidBatch: .corruptMessage
        case .batchTooLarge: .messageTooLarge
        case .closed: .notLeaderOrFollower
        case .overloaded: .requestTimedOut
        case .diskFull, .io, .failed, .corruptSegment: .kafkaStorageError
        case .offsetOutOfRange: .offsetOutOfRange
        case .invalidConfiguration: .unknownServerError
        }
    }

    /// Installs a producer table rebuilt from the stored batches (on open, before serving).
    public func installProducerState(_ table: ProducerStateTable) {
        producers.withLock { $0 = table }
    }

    public var producerState: ProducerStateTable { producers.withLock { $0 } }

    // MARK: Long-poll waiters

    /// Registers `wake` to run (once) when the high watermark moves past `observed`. Returns false, without
    /// registering, if it already has — the caller then re-reads at once instead of sleeping through it.
    func addWaiter(id: UInt64, observedHighWatermark observed: Offset, wake: @escaping @Sendable () -> Void) -> Bool {
        waiters.withLock { waiters in
            guard replica.highWatermark <= observed else { return false }
            waiters[id] = wake
            return true
        }
    }

    func removeWaiter(id: UInt64) {
        _ = waiters.withLock { $0.removeValue(forKey: id) }
    }

    private func wakeWaiters() {
        let woken = waiters.withLock { waiters in
            defer { waiters.removeAll(keepingCapacity: true) }
            return Array(waiters.values)
        }
        for wake in woken { wake() }
    }
}
