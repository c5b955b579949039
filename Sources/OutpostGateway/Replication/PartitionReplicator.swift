import Dispatch
import Foundation
import Logging
import OutpostCore
import OutpostKafka
import OutpostLog

/// Ships one local partition to the central topic, oldest first, exactly once per batch.
///
/// Reads committed (fsynced) batches in order and produces them with an externally sequenced idempotent
/// producer: the producer identity and every batch's sequence are decided here and persisted in the cursor
/// file, so a batch resent after a crash carries exactly the sequence it had before. Forwarding (same
/// partition count centrally) sends the stored gzip batch as it is, with the producer fields stamped and the
/// CRC recomputed; re-partitioning (different count) regroups each local batch's records by key, which is
/// deterministic, so a resent local batch yields identical central batches.
///
/// The window (`ReplicationWindow`) keeps at most 5 batches beyond the persisted cursor outstanding — the
/// brokers' idempotence cache — which is what makes the resends after a crash duplicates the brokers
/// recognise rather than new data.
actor PartitionReplicator {
    let localPartition: Int
    let log: PartitionLog
    let producer: KafkaProducer
    let client: KafkaClient
    let centralTopic: String
    let cursorFile: ReplicationCursorFile
    let metrics: ReplicationMetrics
    let throttle: BandwidthThrottle?
    let logger: Logger
    let backoff: (initial: Int64, maximum: Int64)
    private var random: KafkaJitterGenerator

    private var state: ReplicationCursor
    private var window: ReplicationWindow
    /// Tickets of the batches in flight, oldest first, with the local batch they came from.
    private var inFlight: [(localBase: Offset, tickets: [KafkaProduceTicket], sequencesAfter: [Int32])] = []
    /// Re-partitioning: the sequence each central partition's next batch gets.
    private var sendSequences: [Int32] = []
    /// Re-partitioning: the sequences after each acknowledged local batch not yet in the cursor file.
    private var acknowledgedSequences: [(localBase: Offset, sequencesAfter: [Int32])] = []
    private var centralPartitionCount = 0
    private var failures = 0
    private let persistQueue = DispatchQueue(label: "outpost.replication.cursor")

    init(
        localPartition: Int, log: PartitionLog, producer: KafkaProducer, client: KafkaClient, centralTopic: String,
        cursorFile: ReplicationCursorFile, metrics: ReplicationMetrics, throttle: BandwidthThrottle?, logger: Logger,
        backoff: (initial: Int64, maximum: Int64), seed: UInt64
    ) {
        self.localPartition = localPartition
        self.log = log
        self.producer = producer
        self.client = client
        self.centralTopic = centralTopic
        self.cursorFile = cursorFile
        self.metrics = metrics
        self.throttle = throttle
        self.logger = logger
        self.backoff = backoff
        random = KafkaJitterGenerator(seed: seed)
        let stored = cursorFile.load() ?? ReplicationCursor(cursor: log.logStartOffset)
        state = stored
        sendSequences = stored.nextSequences
        window = ReplicationWindow(persisted: stored.cursor)
        log.setRetentionFloor(stored.cursor)
    }

    var cursor: Offset { state.cursor }

    /// Replicates until cancelled.
    func run() async {
        while !Task.isCancelled {
            do {
                try await step()
                failures = 0
            } catch {
                failures += 1
                await recover(from: error)
            }
        }
    }

    /// One round: make sure the session is set up, fill the window, wait for the oldest result.
    private func step() async throws {
        if centralPartitionCount == 0 { try await discoverCentralTopic() }
        try await handleDroppedData()
        if !state.hasProducer { try await startProducerSession(at: window.acknowledged) }
        var sent = 0
        while window.canSend, let batch = try nextLocalBatch() {
            try await send(batch)
            sent += 1
        }
        updateLagMetrics()
        guard let oldest = inFlight.first else {
            // Nothing to send: wait for the log to grow (a short nap; the log has no change feed for us).
            try await Task.sleep(for: .milliseconds(sent == 0 ? 20 : 1))
            return
        }
        for ticket in oldest.tickets { _ = try await ticket.result() }
        inFlight.removeFirst()
        window.acknowledged(localBase: oldest.localBase)
        if state.centralPartitions > 0 { acknowledgedSequences.append((oldest.localBase, oldest.sequencesAfter)) }
        // One cursor write (an fsync) covers every acknowledgement since the last: the window is written
        // out once its in-flight batches are all acknowledged, not after each one. Persisting after every
        // acknowledgement made the disk's fsync rate the replication rate in batches per second.
        if inFlight.isEmpty { try await persistIfDue() }
    }

    /// Metadata for the central topic decides forwarding (same count) or re-partitioning.
    private func discoverCentralTopic() async throws {
        let partitions = try await client.partitions(of: centralTopic)
        centralPartitionCount = partitions.count
        let localCount = metrics.localPartitionCount
        let repartition = centralPartitionCount != localCount
        if repartition && state.centralPartitions != centralPartitionCount {
            // Counting sequences per central partition starts with a fresh producer session.
            state.centralPartitions = centralPartitionCount
            state.nextSequences = Array(repeating: 0, count: centralPartitionCount)
            sendSequences = state.nextSequences
            state.producerId = -1
        } else if !repartition && state.centralPartitions != 0 {
            state.centralPartitions = 0
            state.nextSequences = []
            state.producerId = -1
        }
        logger.info("replicating", metadata: [
            "local_partition": "\(localPartition)", "central_topic": "\(centralTopic)", "central_partitions": "\(centralPartitionCount)",
            "mode": "\(repartition ? "re-partitioning by key" : "forwarding batches as stored")", "cursor": "\(state.cursor)",
        ])
    }

    /// The disk budget's drop-oldest policy may have deleted data below the cursor: skip to the log start
    /// (a gap marker in the log says what went) with a new producer session, since the sequences jump.
    private func handleDroppedData() async throws {
        let start = log.logStartOffset
        guard window.nextToSend < start || state.cursor < start else { return }
        logger.warning("local data below the replication cursor was dropped; continuing after the gap", metadata: [
            "local_partition": "\(localPartition)", "cursor": "\(state.cursor)", "log_start": "\(start)",
        ])
        inFlight.removeAll()
        acknowledgedSequences.removeAll()
        window.skip(to: start)
        try await startProducerSession(at: start)
    }

    /// InitProducerId; sequences restart at 0. The new session begins at the acknowledged cursor, which is
    /// persisted with it before anything is sent: batches the brokers acknowledged under the old identity
    /// must never be sent again under the new one (a new producer id has no history to recognise them by).
    private func startProducerSession(at origin: Offset) async throws {
        let identity = try await client.initProducerId()
        inFlight.removeAll()
        window.rewind()
        let start = max(origin, window.acknowledged, state.cursor)
        state.producerId = identity.producerId
        state.producerEpoch = identity.producerEpoch
        state.sequenceOrigin = start
        state.cursor = start
        if state.centralPartitions > 0 { state.nextSequences = Array(repeating: 0, count: state.centralPartitions) }
        sendSequences = state.nextSequences
        acknowledgedSequences.removeAll()
        try await store(state)
        window.persisted(start)
        log.setRetentionFloor(start)
        logger.info("producer session started", metadata: [
            "local_partition": "\(localPartition)", "producer_id": "\(identity.producerId)", "epoch": "\(identity.producerEpoch)",
            "sequence_origin": "\(start)",
        ])
    }

    /// The next committed local batch at the window's send position, or nil when there is none yet.
    private func nextLocalBatch() throws -> (header: RecordBatchHeader, bytes: [UInt8])? {
        let durable = log.durableEndOffset
        guard window.nextToSend < durable else { return nil }
        let read = try log.read(from: window.nextToSend, maxBytes: 1, upTo: durable)
        guard read.batchCount > 0 else { return nil }
        let header = try RecordBatchHeader(bytes: read.bytes)
        return (header, Array(read.bytes[0..<header.totalSize]))
    }

    private func send(_ batch: (header: RecordBatchHeader, bytes: [UInt8])) async throws {
        let localBase = Offset(batch.header.baseOffset)
        let localNext = Offset(batch.header.nextOffset)
        if let throttle { await throttle.take(batch.bytes.count) }
        var tickets: [KafkaProduceTicket] = []
        var sequencesAfter: [Int32] = []
        if state.centralPartitions == 0 {
            let identity = ProducerIdentity(
                producerId: state.producerId, producerEpoch: state.producerEpoch,
                baseSequence: ReplicationCursor.sequence(localBase - state.sequenceOrigin))
            let partition = KafkaTopicPartition(topic: centralTopic, partition: Int32(localPartition))
            tickets.append(try await producer.send(batch.bytes, to: partition, as: identity))
        } else {
            var sequences = sendSequences
            for (central, regrouped) in try Repartitioning.split(batch.bytes, into: state.centralPartitions) {
                let identity = ProducerIdentity(producerId: state.producerId, producerEpoch: state.producerEpoch, baseSequence: sequences[central])
                sequences[central] = KafkaProducer.sequence(after: sequences[central], records: regrouped.recordCount)
                let partition = KafkaTopicPartition(topic: centralTopic, partition: Int32(central))
                tickets.append(try await producer.send(regrouped.bytes, to: partition, as: identity))
            }
            sequencesAfter = sequences
            sendSequences = sequences
        }
        window.sent(localBase: localBase, localNext: localNext)
        inFlight.append((localBase, tickets, sequencesAfter))
        metrics.sent(bytes: batch.bytes.count, records: Int(batch.header.recordCount))
    }

    /// Writes the acknowledged cursor (one fdatasync) and lets retention delete what is below it.
    private func persistIfDue() async throws {
        guard let cursor = window.cursorToPersist else { return }
        var next = state
        next.cursor = cursor
        if next.centralPartitions > 0 {
            // The sequences after the last local batch below the cursor.
            if let last = acknowledgedSequences.last(where: { $0.localBase < cursor }) { next.nextSequences = last.sequencesAfter }
            acknowledgedSequences.removeAll { $0.localBase < cursor }
        }
        try await store(next)
        state = next
        window.persisted(cursor)
        log.setRetentionFloor(cursor)
        metrics.acknowledged(partition: localPartition, cursor: cursor)
    }

    private func store(_ cursor: ReplicationCursor) async throws {
        let file = cursorFile
        let result: Result<Void, LogError> = await withCheckedContinuation { continuation in
            persistQueue.async {
                continuation.resume(returning: Result { () throws(LogError) in try file.store(cursor) })
            }
        }
        try result.get()
    }

    /// After an error: sequence trouble restarts the producer session; anything else backs off with jitter
    /// and resends the unacknowledged batches with the same sequences.
    private func recover(from error: any Error) async {
        if error is CancellationError || Task.isCancelled { return }
        let resent = window.inFlight
        inFlight.removeAll()
        window.rewind()
        // Resent batches take the sequences they had: count on from the last acknowledged batch.
        sendSequences = acknowledgedSequences.last?.sequencesAfter ?? state.nextSequences
        metrics.resent(batches: resent)
        // The lag matters most during an outage: keep it current while nothing is acknowledged.
        updateLagMetrics()
        switch error as? KafkaClientError {
        case .outOfOrderSequence?, .producerFenced?, .producerNeedsReinitialization?:
            logger.warning("central brokers refused our sequence; starting a new producer session", metadata: [
                "local_partition": "\(localPartition)", "error": "\(error)",
            ])
            state.producerId = -1
        case .unknownTopicOrPartition?:
            centralPartitionCount = 0
        case .authenticationFailed?:
            // Credentials are configuration: nothing will change until someone fixes them, so every
            // refusal is an error line (the backoff caps how often), and the backlog waits on disk.
            logger.error("central brokers refused the gateway's credentials; the backlog waits on disk", metadata: [
                "local_partition": "\(localPartition)", "error": "\(error)",
            ])
        default:
            break
        }
        let exponent = min(failures - 1, 20)
        let ceiling = min(backoff.maximum, backoff.initial << Int64(exponent))
        let wait = Int64.random(in: ceiling / 2...max(ceiling / 2, ceiling), using: &random)
        if failures == 1 || failures % 20 == 0 {
            logger.warning("central brokers unreachable or refusing; backlog keeps growing on disk", metadata: [
                "local_partition": "\(localPartition)", "error": "\(error)", "retry_in_ms": "\(wait)", "failures": "\(failures)",
            ])
        }
        metrics.failed()
        try? await Task.sleep(for: .milliseconds(wait))
    }

    /// Lag gauges between rounds: a round can wait long for an acknowledgement during an outage, and
    /// that is when the lag matters most.
    func refreshLagMetrics() { updateLagMetrics() }

    private func updateLagMetrics() {
        metrics.lag(partition: localPartition, records: log.durableEndOffset - window.acknowledged, log: log, cursor: window.acknowledged, inFlight: window.inFlight)
    }
}
