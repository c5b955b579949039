import DequeModule
import Logging
import NIOCore
import OutpostCore

/// The result of one acknowledged batch.
public struct KafkaProduceReceipt: Hashable, Sendable {
    public var partition: KafkaTopicPartition
    /// The identity stamped into the batch (its producer id, epoch and base sequence); `.none` for a
    /// non-idempotent producer.
    public var producer: ProducerIdentity
    public var recordCount: Int32
    /// The offset the broker gave the batch's first record — the original offset when it recognised a
    /// resent batch as a duplicate. nil when it answered DUPLICATE_SEQUENCE_NUMBER, which carries none.
    public var baseOffset: Offset?

    public init(partition: KafkaTopicPartition, producer: ProducerIdentity, recordCount: Int32, baseOffset: Offset?) {
        self.partition = partition
        self.producer = producer
        self.recordCount = recordCount
        self.baseOffset = baseOffset
    }
}

/// Counts of what a producer did, for metrics and tests.
public struct KafkaProducerStatistics: Hashable, Sendable {
    /// Produce requests written (first attempts and resends).
    public var requestsSent = 0
    /// Of those, resends of a batch after a retriable failure.
    public var resends = 0
    public var acknowledged = 0
    public var failed = 0

    public init() {}
}

/// A batch accepted by `KafkaProducer.send`: where it goes, with what identity, and its result to come.
/// Results of one partition complete in send order.
public struct KafkaProduceTicket: Sendable {
    public let partition: KafkaTopicPartition
    /// The identity stamped into the batch.
    public let producer: ProducerIdentity
    public let recordCount: Int32
    let future: EventLoopFuture<KafkaProduceReceipt>

    /// Waits for the batch's acknowledgement.
    public func result() async throws(KafkaClientError) -> KafkaProduceReceipt {
        do {
            return try await future.get()
        } catch {
            throw error as? KafkaClientError ?? .closed
        }
    }

    /// Calls `body` on the client's event loop when the result is known (in send order per partition).
    public func whenComplete(_ body: @escaping @Sendable (Result<KafkaProduceReceipt, KafkaClientError>) -> Void) {
        future.whenComplete { result in body(result.mapError { $0 as? KafkaClientError ?? .closed }) }
    }
}

/// Sends pre-built RecordBatch v2 batches (the gateway's stored gzip batches, forwarded as they are) to
/// partition leaders, pipelined and in order.
///
/// Modes:
/// - `.idempotent`: the producer gets its identity from InitProducerId on first use and numbers each
///   partition's batches itself from 0. After `outOfOrderSequence` or `producerFenced` on a partition it
///   refuses that partition until `reinitialize()`.
/// - `.externallySequenced`: the caller supplies the identity and base sequence of every batch
///   (`send(_:to:as:)`). After a restart the replicator resends from its persisted cursor with the same
///   producer id, epoch and sequences as before, so the broker recognises batches it already has and
///   answers with their original offsets. On `outOfOrderSequence` the caller takes a new identity
///   (`KafkaClient.initProducerId()`) and starts its sequences at 0 again.
/// - `.plain(acks:)`: no idempotence (producer id −1); acks 1 or −1. Retries may then duplicate.
///
/// In every mode the producer stamps producer id, epoch and base sequence into the batch with
/// `RecordBatchValidation.setProducer` (the CRC is recomputed; nothing is recompressed), after checking
/// that the bytes are exactly one valid batch with a correct CRC.
///
/// Bounds: at most `inFlightBatchesPerPartitionMax` batches per partition between `send` and their result;
/// `send` suspends (callers queue in arrival order) until one leaves the window. Failed attempts are
/// retried for as long as the producer is open, with backoff; `close()` fails what is left.
public actor KafkaProducer {
    public enum Mode: Hashable, Sendable {
        case idempotent
        case externallySequenced
        /// acks must be 1 (the leader wrote it) or −1 (all in-sync replicas have it).
        case plain(acks: Int16)
    }

    public struct Configuration: Sendable {
        public var mode: Mode
        /// Batches per partition between `send` and their result. At most 5 when idempotent: the broker
        /// recognises duplicates among the last 5 batches of a producer (kafka-subset.md §4).
        public var inFlightBatchesPerPartitionMax: Int
        /// The Produce request's timeout_ms: how long the broker may wait for replication before answering.
        public var brokerTimeout: Duration

        public init(mode: Mode = .idempotent, inFlightBatchesPerPartitionMax: Int = 5, brokerTimeout: Duration = .seconds(30)) {
            if case .plain(let acks) = mode { precondition(acks == 1 || acks == -1, "acks must be 1 or -1") }
            precondition(inFlightBatchesPerPartitionMax >= 1, "at least one batch in flight")
            precondition(mode == .plain(acks: 1) || mode == .plain(acks: -1) || inFlightBatchesPerPartitionMax <= 5, "the broker deduplicates at most 5 batches")
            self.mode = mode
            self.inFlightBatchesPerPartitionMax = inFlightBatchesPerPartitionMax
            self.brokerTimeout = brokerTimeout
        }
    }

    private struct Pending {
        var batch: ByteBuffer
        var producer: ProducerIdentity
        var recordCount: Int32
        var promise: EventLoopPromise<KafkaProduceReceipt>
    }

    private struct PartitionState {
        var pipeline: ProducePipeline
        var pending: [ProducePipeline.EntryID: Pending] = [:]
        /// Window slots taken by enqueued batches and by callers that were given a slot but have not
        /// enqueued yet.
        var occupied = 0
        /// Callers waiting for a slot, in arrival order.
        var slotWaiters = Deque<CheckedContinuation<Void, any Error>>()
        var connection: KafkaConnection?
        var acquiring = false
        var resuming = false
        var refreshLeader = false
        var retryBackoff: ReconnectBackoff
    }

    public nonisolated let client: KafkaClient
    public nonisolated let configuration: Configuration
    nonisolated let logger: Logger
    public nonisolated var unownedExecutor: UnownedSerialExecutor { client.unownedExecutor }

    private var partitions: [KafkaTopicPartition: PartitionState] = [:]
    private var nextEntryId: UInt64 = 1
    /// `.idempotent`: the identity in use, its next sequence per partition, and partitions that need a
    /// new identity.
    private var identity: ProducerIdentity?
    private var identityTask: Task<ProducerIdentity, any Error>?
    private var sequences: [KafkaTopicPartition: Int32] = [:]
    private var needsReinitialization: Set<KafkaTopicPartition> = []
    private var isClosed = false
    private var jitter: KafkaJitterGenerator
    public private(set) var statistics = KafkaProducerStatistics()

    public init(client: KafkaClient, configuration: Configuration = Configuration(), jitterSeed: UInt64? = nil, logger: Logger? = nil) {
        self.client = client
        self.configuration = configuration
        self.logger = logger ?? client.logger
        self.jitter = KafkaJitterGenerator(seed: jitterSeed ?? client.configuration.effectiveJitterSeed &+ 0x70_726f64)
    }

    private var acks: Int16 {
        if case .plain(let acks) = configuration.mode { return acks }
        return -1
    }

    private var idempotent: Bool {
        if case .plain = configuration.mode { return false }
        return true
    }

    /// `.idempotent`: the identity batches are stamped with now (nil before the first send).
    public var currentIdentity: ProducerIdentity? { identity }

    // MARK: Sending

    /// `.idempotent` and `.plain`: sends `batch` (exactly one RecordBatch v2) to `partition`. Suspends while
    /// the partition's window is full; returns once the batch is accepted, with a ticket for its result.
    public func send(_ batch: [UInt8], to partition: KafkaTopicPartition) async throws(KafkaClientError) -> KafkaProduceTicket {
        switch configuration.mode {
        case .externallySequenced:
            throw .invalidUsage("an externally sequenced producer needs the identity of every batch: send(_:to:as:)")
        case .plain:
            return try await enqueue(batch, to: partition, producer: .none)
        case .idempotent:
            let header = try validated(batch)
            let base = try await obtainIdentity()
            try await takeSlot(partition)
            // From here to the enqueue nothing suspends, so sequences follow enqueue order.
            guard !needsReinitialization.contains(partition) else {
                releaseSlot(partition)
                throw .producerNeedsReinitialization(partition)
            }
            let identity = self.identity ?? base
            let sequence = sequences[partition] ?? 0
            let producer = ProducerIdentity(producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence: sequence)
            sequences[partition] = Self.sequence(after: sequence, records: header.lastOffsetDelta + 1)
            return try enqueueHoldingSlot(batch, header: header, to: partition, producer: producer)
        }
    }

    /// `.externallySequenced`: sends `batch` stamped with `producer` (producer id, epoch and base
    /// sequence as the caller decided). Suspends while the partition's window is full.
    public func send(_ batch: [UInt8], to partition: KafkaTopicPartition, as producer: ProducerIdentity) async throws(KafkaClientError) -> KafkaProduceTicket {
        guard configuration.mode == .externallySequenced else {
            throw .invalidUsage("only an externally sequenced producer takes an explicit identity")
        }
        guard producer.isIdempotent, producer.baseSequence >= 0 else {
            throw .invalidUsage("an explicit identity needs a producer id ≥ 0 and a base sequence ≥ 0")
        }
        return try await enqueue(batch, to: partition, producer: producer)
    }

    /// Sends and waits for the result.
    public func produce(_ batch: [UInt8], to partition: KafkaTopicPartition) async throws(KafkaClientError) -> KafkaProduceReceipt {
        try await send(batch, to: partition).result()
    }

    /// Sends with an explicit identity and waits for the result.
    public func produce(_ batch: [UInt8], to partition: KafkaTopicPartition, as producer: ProducerIdentity) async throws(KafkaClientError) -> KafkaProduceReceipt {
        try await send(batch, to: partition, as: producer).result()
    }

    /// The sequence after a batch of `records` records starting at `sequence` (wrapping past Int32.max to
    /// 0, as Kafka does).
    public static func sequence(after sequence: Int32, records: Int32) -> Int32 {
        Int32((Int64(sequence) + Int64(records)) % (Int64(Int32.max) + 1))
    }

    private func enqueue(_ batch: [UInt8], to partition: KafkaTopicPartition, producer: ProducerIdentity) async throws(KafkaClientError) -> KafkaProduceTicket {
        let header = try validated(batch)
        try await takeSlot(partition)
        return try enqueueHoldingSlot(batch, header: header, to: partition, producer: producer)
    }

    private func validated(_ batch: [UInt8]) throws(KafkaClientError) -> RecordBatchHeader {
        guard !isClosed else { throw .closed }
        let header: RecordBatchHeader
        do {
            header = try RecordBatchValidation.validate(batch)
        } catch {
            throw .invalidBatch(error)
        }
        guard header.totalSize == batch.count else {
            throw .invalidBatch(.invalidRecord("\(batch.count - header.totalSize) bytes after the batch; send one batch at a time"))
        }
        guard header.recordCount > 0 else { throw .invalidBatch(.invalidRecord("a batch without records")) }
        return header
    }

    private func enqueueHoldingSlot(
        _ batch: [UInt8], header: RecordBatchHeader, to partition: KafkaTopicPartition, producer: ProducerIdentity
    ) throws(KafkaClientError) -> KafkaProduceTicket {
        guard !isClosed else {
            releaseSlot(partition)
            throw .closed
        }
        var bytes = batch
        if producer != header.producer {
            do {
                try RecordBatchValidation.setProducer(producer, in: &bytes)
            } catch {
                releaseSlot(partition)
                throw .invalidBatch(error)
            }
        }
        let id = ProducePipeline.EntryID(nextEntryId)
        nextEntryId += 1
        let promise = client.eventLoop.makePromise(of: KafkaProduceReceipt.self)
        var state = partitionState(partition)
        state.pipeline.enqueue(id, producer: producer)
        state.pending[id] = Pending(batch: ByteBuffer(bytes: bytes), producer: producer, recordCount: header.recordCount, promise: promise)
        partitions[partition] = state
        pump(partition)
        return KafkaProduceTicket(partition: partition, producer: producer, recordCount: header.recordCount, future: promise.futureResult)
    }

    private func partitionState(_ partition: KafkaTopicPartition) -> PartitionState {
        if let state = partitions[partition] { return state }
        return PartitionState(
            pipeline: ProducePipeline(partition: partition, windowMax: configuration.inFlightBatchesPerPartitionMax, idempotent: idempotent),
            retryBackoff: ReconnectBackoff(policy: client.configuration.retryBackoff, generator: jitter.split()))
    }

    // MARK: Window slots

    /// Takes a window slot for `partition`, waiting (in arrival order) while all are taken.
    private func takeSlot(_ partition: KafkaTopicPartition) async throws(KafkaClientError) {
        // The caller may have suspended since it last checked (obtaining an identity): a waiter queued
        // after `close()` would never be resumed.
        guard !isClosed else { throw .closed }
        var state = partitionState(partition)
        if state.slotWaiters.isEmpty && state.occupied < configuration.inFlightBatchesPerPartitionMax {
            state.occupied += 1
            partitions[partition] = state
            return
        }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                var state = partitionState(partition)
                state.slotWaiters.append(continuation)
                partitions[partition] = state
            }
        } catch {
            throw error as? KafkaClientError ?? .closed
        }
        // `releaseSlot` counted the slot for us before resuming.
    }

    /// Gives a slot back: the next waiter gets it.
    private func releaseSlot(_ partition: KafkaTopicPartition, count: Int = 1) {
        guard var state = partitions[partition] else { return }
        state.occupied -= count
        var resumed: [CheckedContinuation<Void, any Error>] = []
        while state.occupied < configuration.inFlightBatchesPerPartitionMax, let waiter = state.slotWaiters.popFirst() {
            state.occupied += 1
            resumed.append(waiter)
        }
        partitions[partition] = state
        for waiter in resumed { waiter.resume() }
    }

    // MARK: Identity

    private func obtainIdentity() async throws(KafkaClientError) -> ProducerIdentity {
        if let identity { return identity }
        let task: Task<ProducerIdentity, any Error>
        if let identityTask {
            task = identityTask
        } else {
            let client = self.client
            task = Task { try await client.initProducerId() }
            identityTask = task
        }
        do {
            let obtained = try await task.value
            if identity == nil { identity = obtained }
            identityTask = nil
            logger.debug("producer identity", metadata: ["producer_id": "\(obtained.producerId)", "epoch": "\(obtained.producerEpoch)"])
            return identity ?? obtained
        } catch {
            identityTask = nil
            throw error as? KafkaClientError ?? .closed
        }
    }

    /// `.idempotent`: takes a new identity (InitProducerId) and restarts every partition's sequences at 0,
    /// re-opening partitions that failed with a sequence or epoch error. Batches already sent keep their
    /// old identity.
    @discardableResult
    public func reinitialize() async throws(KafkaClientError) -> ProducerIdentity {
        guard configuration.mode == .idempotent else { throw .invalidUsage("only an idempotent producer numbers its own batches") }
        let fresh = try await client.initProducerId()
        identity = fresh
        sequences.removeAll()
        needsReinitialization.removeAll()
        logger.notice("producer re-initialised", metadata: ["producer_id": "\(fresh.producerId)", "epoch": "\(fresh.producerEpoch)"])
        return fresh
    }

    // MARK: Driving the pipelines

    /// Writes whatever the partition's pipeline releases, on its leader's connection; finds the leader
    /// first if there is no usable connection.
    private func pump(_ partition: KafkaTopicPartition) {
        guard !isClosed, var state = partitions[partition] else { return }
        guard let connection = state.connection, connection.isActive, !state.refreshLeader else {
            if !state.acquiring && !state.pipeline.isHolding && state.pipeline.count > state.pipeline.inFlightCount {
                state.acquiring = true
                partitions[partition] = state
                Task { await self.acquireConnection(partition) }
            }
            return
        }
        let ids = state.pipeline.takeSendable()
        partitions[partition] = state
        let timeoutMs = Int32(clamping: configuration.brokerTimeout.components.seconds * 1_000)
        for id in ids {
            guard let pending = state.pending[id] else { continue }
            statistics.requestsSent += 1
            if state.pipeline.attempts(of: id) > 1 { statistics.resends += 1 }
            let request = ProduceRequest(
                acks: acks, timeoutMs: timeoutMs,
                topics: [.init(name: partition.topic, partitions: [.init(partitionIndex: partition.partition, records: pending.batch)])])
            let address = connection.address
            connection.send(request, timeout: connection.requestTimeout + configuration.brokerTimeout).whenComplete { result in
                self.assumeIsolated { $0.answered(partition, id, result, from: address) }
            }
        }
    }

    private func acquireConnection(_ partition: KafkaTopicPartition) async {
        while !isClosed {
            do {
                if partitions[partition]?.refreshLeader == true {
                    await client.invalidateMetadata()
                    partitions[partition]?.refreshLeader = false
                }
                let connection = try await client.leaderConnection(for: partition, lane: .produce)
                partitions[partition]?.connection = connection
                partitions[partition]?.acquiring = false
                pump(partition)
                return
            } catch {
                guard var state = partitions[partition] else { return }
                if error == .closed || isClosed {
                    // The client was closed under this producer: nothing can be sent any more.
                    state.acquiring = false
                    let completions = state.pipeline.failUnsent(.closed)
                    partitions[partition] = state
                    complete(partition, completions)
                    return
                }
                if case .unknownTopicOrPartition = error {
                    // Metadata says the partition does not exist: waiting would not make it appear.
                    state.acquiring = false
                    let completions = state.pipeline.failUnsent(error)
                    partitions[partition] = state
                    if configuration.mode == .idempotent && !completions.isEmpty { needsReinitialization.insert(partition) }
                    logger.warning("producing to a partition that does not exist", metadata: ["partition": "\(partition)"])
                    complete(partition, completions)
                    return
                }
                let wait = state.retryBackoff.failed()
                partitions[partition] = state
                logger.log(
                    level: state.retryBackoff.consecutiveFailures == 1 ? .info : .debug, "no connection to the partition leader",
                    metadata: ["partition": "\(partition)", "error": "\(error)", "retry_in": "\(wait)"])
                try? await Task.sleep(for: wait)
            }
        }
    }

    private func answered(
        _ partition: KafkaTopicPartition, _ id: ProducePipeline.EntryID, _ result: Result<ProduceResponse, any Error>, from address: KafkaBrokerAddress
    ) {
        guard !isClosed, var state = partitions[partition] else { return }
        let answer: ProducePipeline.Answer
        switch result {
        case .success(let response):
            let match = response.topics.first { $0.name == partition.topic }?.partitions.first { $0.partitionIndex == partition.partition }
            if let match {
                answer = .response(match.errorCode, baseOffset: match.baseOffset)
            } else {
                answer = .transport(.malformedResponse(broker: address, .truncated(field: "produce response for \(partition)", position: 0, needed: 0)))
            }
        case .failure(let error):
            answer = .transport(KafkaConnection.clientError(error, address: address))
        }
        let reaction = state.pipeline.answered(id, answer)
        if reaction.refreshLeader {
            state.refreshLeader = true
            state.connection = nil
        }
        if case .response(.none, _) = answer { state.retryBackoff.succeeded() }
        if reaction.identityFailed, configuration.mode == .idempotent {
            needsReinitialization.insert(partition)
            logger.warning("producer sequence or epoch error: re-initialisation needed", metadata: ["partition": "\(partition)", "answer": "\(answer)"])
        }
        partitions[partition] = state
        complete(partition, reaction.completed)
        if partitions[partition]?.pipeline.isReadyToResume == true {
            scheduleResume(partition)
        } else {
            pump(partition)
        }
    }

    private func complete(_ partition: KafkaTopicPartition, _ completions: [ProducePipeline.Completion]) {
        guard !completions.isEmpty, var state = partitions[partition] else { return }
        var settled: [(EventLoopPromise<KafkaProduceReceipt>, Result<KafkaProduceReceipt, KafkaClientError>)] = []
        for completion in completions {
            guard let pending = state.pending.removeValue(forKey: completion.id) else { continue }
            switch completion.outcome {
            case .acknowledged(let offset):
                let receipt = KafkaProduceReceipt(partition: partition, producer: pending.producer, recordCount: pending.recordCount, baseOffset: offset)
                settled.append((pending.promise, .success(receipt)))
                statistics.acknowledged += 1
            case .failed(let error):
                settled.append((pending.promise, .failure(error)))
                statistics.failed += 1
            }
        }
        partitions[partition] = state
        releaseSlot(partition, count: completions.count)
        for (promise, result) in settled {
            switch result {
            case .success(let receipt): promise.succeed(receipt)
            case .failure(let error): promise.fail(error)
            }
        }
    }

    /// Every in-flight answer of a held partition is back: wait the backoff, then resend in order.
    private func scheduleResume(_ partition: KafkaTopicPartition) {
        guard var state = partitions[partition], !state.resuming else { return }
        state.resuming = true
        let wait = state.retryBackoff.failed()
        partitions[partition] = state
        logger.debug("resending after a retriable failure", metadata: ["partition": "\(partition)", "batches": "\(state.pipeline.count)", "wait": "\(wait)"])
        Task {
            try? await Task.sleep(for: wait)
            self.resume(partition)
        }
    }

    private func resume(_ partition: KafkaTopicPartition) {
        guard !isClosed, var state = partitions[partition] else { return }
        state.resuming = false
        if state.pipeline.isReadyToResume { state.pipeline.resume() }
        partitions[partition] = state
        pump(partition)
    }

    // MARK: Flush and close

    /// Waits until every batch sent so far has its result.
    public func flush() async {
        let futures = partitions.values.flatMap { state in state.pending.values.map(\.promise.futureResult) }
        for future in futures { _ = try? await future.get() }
    }

    /// Batches between `send` and their result, per partition.
    public var inFlightBatches: [KafkaTopicPartition: Int] {
        partitions.filter { !$0.value.pipeline.isEmpty }.mapValues { $0.pipeline.count }
    }

    /// Stops: every batch without a result fails with `closed` (one that was on the wire may still have
    /// been appended), waiting senders too. The client stays open.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        var settled: [(EventLoopPromise<KafkaProduceReceipt>, Result<KafkaProduceReceipt, KafkaClientError>)] = []
        var waiters: [CheckedContinuation<Void, any Error>] = []
        for (partition, var state) in partitions {
            for completion in state.pipeline.failAll(.closed) {
                guard let pending = state.pending.removeValue(forKey: completion.id) else { continue }
                switch completion.outcome {
                case .acknowledged(let offset):
                    let receipt = KafkaProduceReceipt(partition: partition, producer: pending.producer, recordCount: pending.recordCount, baseOffset: offset)
                    settled.append((pending.promise, .success(receipt)))
                case .failed(let error):
                    settled.append((pending.promise, .failure(error)))
                }
            }
            waiters += state.slotWaiters
            state.slotWaiters.removeAll()
            partitions[partition] = state
        }
        for (promise, result) in settled { promise.completeWith(result.mapError { $0 as any Error }) }
        for waiter in waiters { waiter.resume(throwing: KafkaClientError.closed) }
    }
}
