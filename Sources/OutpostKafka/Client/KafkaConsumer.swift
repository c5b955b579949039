import Logging
import NIOCore
import OutpostCore

/// Reads assigned partitions with Fetch (long poll), decoding the batches into records.
///
/// Partitions are assigned explicitly, each with a position (the offset of the next record to return).
/// `poll()` sends one Fetch to each leader of an assigned partition, waits up to `maxWait` for
/// `minBytes`, decodes what came back — off the event loop, in the caller's task — and advances the
/// positions. A fetched batch may start before the position (the broker returns whole batches); records
/// before the position are skipped. `readTopic` reads a whole topic up to the end offsets it finds at
/// its start (what `outpost verify --bootstrap` needs).
///
/// One `poll` at a time per consumer; a second concurrent one fails with `invalidUsage`.
public actor KafkaConsumer {
    /// What to do when a position is outside the partition (OFFSET_OUT_OF_RANGE).
    public enum ResetPolicy: Hashable, Sendable {
        case earliest
        case latest
        /// Fail the poll with `offsetOutOfRange`.
        case fail
    }

    public struct Configuration: Sendable {
        /// How long the broker may hold a Fetch while there is less than `minBytes` (Kafka's
        /// fetch.max.wait.ms: 500 ms).
        public var maxWait: Duration
        public var minBytes: Int32
        /// Bound on one Fetch response (Kafka's fetch.max.bytes: 50 MiB).
        public var maxBytes: Int32
        /// Bound per partition (Kafka's max.partition.fetch.bytes: 1 MiB). A partition whose next batch is
        /// larger gets twice the limit on the next fetch, up to `maxBytes`.
        public var partitionMaxBytes: Int32
        public var resetPolicy: ResetPolicy
        /// Bound on one batch's decompressed records (a hostile or broken batch cannot exhaust memory).
        public var uncompressedBatchBytesMax: Int

        public init(
            maxWait: Duration = .milliseconds(500), minBytes: Int32 = 1, maxBytes: Int32 = 50 << 20, partitionMaxBytes: Int32 = 1 << 20,
            resetPolicy: ResetPolicy = .earliest, uncompressedBatchBytesMax: Int = 64 << 20
        ) {
            precondition(minBytes >= 0 && maxBytes > 0 && partitionMaxBytes > 0 && uncompressedBatchBytesMax > 0, "fetch bounds must be positive")
            self.maxWait = maxWait
            self.minBytes = minBytes
            self.maxBytes = maxBytes
            self.partitionMaxBytes = partitionMaxBytes
            self.resetPolicy = resetPolicy
            self.uncompressedBatchBytesMax = uncompressedBatchBytesMax
        }
    }

    /// One partition's part of a Fetch answer, still encoded.
    struct RawPartition: Sendable {
        var partition: KafkaTopicPartition
        var position: Offset
        var answer: FetchResponse.Partition
    }

    public nonisolated let client: KafkaClient
    public nonisolated let configuration: Configuration
    nonisolated let logger: Logger
    public nonisolated var unownedExecutor: UnownedSerialExecutor { client.unownedExecutor }

    private var positions: [KafkaTopicPartition: Offset] = [:]
    /// Partitions whose next batch did not fit `partitionMaxBytes`: their current limit.
    private var partitionLimits: [KafkaTopicPartition: Int32] = [:]
    private var polling = false
    /// This consumer's own connections (its long polls delay nobody else's requests).
    private var lane: KafkaConnectionLane?
    private var isClosed = false
    private var retryBackoff: ReconnectBackoff

    public init(client: KafkaClient, configuration: Configuration = Configuration(), logger: Logger? = nil) {
        self.client = client
        self.configuration = configuration
        self.logger = logger ?? client.logger
        self.retryBackoff = ReconnectBackoff(
            policy: client.configuration.retryBackoff, generator: KafkaJitterGenerator(seed: client.configuration.effectiveJitterSeed &+ 0x636f_6e73))
    }

    // MARK: Assignment

    /// The assigned partitions and the offset each will be read from next.
    public var assignment: [KafkaTopicPartition: Offset] { positions }

    /// Adds (or moves) partitions with the positions to read them from.
    public func assign(_ assigned: [KafkaTopicPartition: Offset]) {
        for (partition, offset) in assigned { positions[partition] = offset }
    }

    /// Adds partitions, positioned by ListOffsets (earliest, latest or by timestamp).
    public func assign(_ partitions: [KafkaTopicPartition], at spec: KafkaOffsetSpec) async throws(KafkaClientError) {
        let offsets = try await client.listOffsets(partitions, spec: spec)
        for partition in partitions {
            guard let offset = offsets[partition] else { throw .unknownTopicOrPartition(topic: partition.topic, partition: partition.partition) }
            positions[partition] = offset
        }
    }

    /// Moves one assigned partition's position.
    public func seek(_ partition: KafkaTopicPartition, to offset: Offset) {
        if positions[partition] != nil { positions[partition] = offset }
    }

    public func unassign(_ partitions: some Sequence<KafkaTopicPartition>) {
        for partition in partitions {
            positions[partition] = nil
            partitionLimits[partition] = nil
        }
    }

    public func unassignAll() {
        positions.removeAll()
        partitionLimits.removeAll()
    }

    /// Stops: later polls fail with `closed`, and this consumer's connections close. The client stays open.
    public func close() async {
        isClosed = true
        if let lane { await client.closeConnections(on: lane) }
    }

    // MARK: Polling

    /// One fetch round over every assigned partition: the records that arrived (decoded, in offset order,
    /// none before the partition's position), with each partition's next offset and high watermark.
    /// Partitions whose leader could not be reached are left out of this round (and retried on the next).
    /// Returns an empty array at once when nothing is assigned.
    public nonisolated func poll() async throws(KafkaClientError) -> [KafkaFetchedRecords] {
        let raw = try await fetchRaw()
        var fetched: [KafkaFetchedRecords] = []
        var grow: [KafkaTopicPartition] = []
        let decompressor: GzipDecompressor
        do {
            decompressor = try GzipDecompressor()
        } catch {
            await finishPoll(advancing: [], growing: [])
            throw .invalidBatch(.compression(error))
        }
        do throws(KafkaClientError) {
            for part in raw {
                let decoded = try Self.decode(
                    part.answer.records, partition: part.partition, from: part.position, decompressor: decompressor,
                    uncompressedBatchBytesMax: configuration.uncompressedBatchBytesMax)
                if decoded.batchDidNotFit { grow.append(part.partition) }
                fetched.append(
                    KafkaFetchedRecords(partition: part.partition, records: decoded.records, nextOffset: decoded.next, highWatermark: Offset(part.answer.highWatermark)))
            }
        } catch {
            await finishPoll(advancing: [], growing: grow)
            throw error
        }
        await finishPoll(advancing: zip(raw, fetched).map { ($0.partition, $0.position, $1.nextOffset) }, growing: grow)
        return fetched
    }

    /// Sends the Fetch requests and collects the answers (on the loop; nothing is decoded here).
    private func fetchRaw() async throws(KafkaClientError) -> [RawPartition] {
        guard !isClosed else { throw .closed }
        guard !polling else { throw .invalidUsage("one poll at a time per consumer") }
        guard !positions.isEmpty else { return [] }
        polling = true
        let requested = positions

        var byLeader: [KafkaBrokerAddress: [KafkaTopicPartition]] = [:]
        var firstError: KafkaClientError?
        for partition in requested.keys.sorted() {
            do {
                byLeader[try await client.leader(for: partition).address, default: []].append(partition)
            } catch .closed {
                polling = false
                throw .closed
            } catch .unknownTopicOrPartition(let topic, let index) {
                polling = false
                throw .unknownTopicOrPartition(topic: topic, partition: index)
            } catch {
                firstError = firstError ?? error
            }
        }
        let maxWaitMs = Int32(clamping: configuration.maxWait.components.seconds * 1_000 + configuration.maxWait.components.attoseconds / 1_000_000_000_000_000)
        var inFlight: [(KafkaConnection, EventLoopFuture<FetchResponse>, [KafkaTopicPartition])] = []
        for (address, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
            let connection: KafkaConnection
            do {
                connection = try await client.connection(to: address, lane: await fetchLane())
            } catch {
                firstError = firstError ?? error
                continue
            }
            let topics = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, members in
                FetchRequest.Topic(
                    name: topic,
                    partitions: members.sorted().map { partition in
                        FetchRequest.Partition(
                            partition: partition.partition, fetchOffset: requested[partition]?.rawValue ?? 0,
                            partitionMaxBytes: partitionLimits[partition] ?? configuration.partitionMaxBytes)
                    })
            }
            let request = FetchRequest(
                maxWaitMs: maxWaitMs, minBytes: configuration.minBytes, maxBytes: configuration.maxBytes, isolationLevel: 0, topics: topics)
            inFlight.append((connection, connection.send(request, timeout: connection.requestTimeout + configuration.maxWait), partitions))
        }

        var raw: [RawPartition] = []
        for (connection, future, partitions) in inFlight {
            let response: FetchResponse
            do {
                response = try await client.value(future, from: connection)
            } catch {
                firstError = firstError ?? error
                continue
            }
            guard response.errorCode == .none else {
                firstError = firstError ?? .broker(response.errorCode, context: "Fetch from \(connection.address)")
                continue
            }
            for topic in response.topics {
                for answer in topic.partitions {
                    let partition = KafkaTopicPartition(topic: topic.name, partition: answer.partitionIndex)
                    guard partitions.contains(partition), let position = requested[partition] else { continue }
                    switch answer.errorCode {
                    case .none:
                        raw.append(RawPartition(partition: partition, position: position, answer: answer))
                    case .offsetOutOfRange:
                        do {
                            try await reset(partition, from: position)
                        } catch {
                            polling = false
                            throw error
                        }
                    case let code where code.isRetriable || code.invalidatesMetadata:
                        if code.invalidatesMetadata { await client.invalidateMetadata() }
                        firstError = firstError ?? .broker(code, context: "Fetch \(partition)")
                    case let code:
                        polling = false
                        throw .broker(code, context: "Fetch \(partition)")
                    }
                }
            }
        }
        if let firstError {
            logger.debug("fetch incomplete", metadata: ["error": "\(firstError)"])
            if firstError.invalidatesMetadata { await client.invalidateMetadata() }
            if raw.isEmpty {
                // Nothing answered: pace the next poll instead of spinning against an unreachable leader.
                let wait = retryBackoff.failed()
                try? await Task.sleep(for: wait)
            }
        } else {
            retryBackoff.succeeded()
        }
        return raw
    }

    private func fetchLane() async -> KafkaConnectionLane {
        if let lane { return lane }
        let fresh = await client.makeDedicatedLane()
        lane = fresh
        return fresh
    }

    private func reset(_ partition: KafkaTopicPartition, from position: Offset) async throws(KafkaClientError) {
        let spec: KafkaOffsetSpec
        switch configuration.resetPolicy {
        case .earliest: spec = .earliest
        case .latest: spec = .latest
        case .fail: throw .offsetOutOfRange(partition, offset: position)
        }
        let offsets = try await client.listOffsets([partition], spec: spec)
        guard let offset = offsets[partition], positions[partition] == position else { return }
        logger.notice("position out of range; reset", metadata: ["partition": "\(partition)", "from": "\(position)", "to": "\(offset)"])
        positions[partition] = offset
    }

    private func finishPoll(advancing advanced: [(KafkaTopicPartition, Offset, Offset)], growing: [KafkaTopicPartition]) {
        polling = false
        for (partition, from, to) in advanced where positions[partition] == from {
            // Unless the caller moved it meanwhile (seek, unassign).
            positions[partition] = to
            if from != to { partitionLimits[partition] = nil }
        }
        for partition in growing where positions[partition] != nil {
            let current = partitionLimits[partition] ?? configuration.partitionMaxBytes
            partitionLimits[partition] = current >= configuration.maxBytes / 2 ? configuration.maxBytes : current * 2
        }
    }

    // MARK: Decoding

    struct Decoded: Hashable, Sendable {
        var records: [Record]
        var next: Offset
        /// Bytes came back but not one whole batch: the partition limit is smaller than the next batch.
        var batchDidNotFit: Bool
    }

    /// Decodes a Fetch answer's record bytes: every whole batch, records from `position` on. A truncated
    /// last batch is normal (the broker cut at the byte limit); any other damage is `corruptBatch`.
    static func decode(
        _ records: ByteBuffer?, partition: KafkaTopicPartition, from position: Offset, decompressor: GzipDecompressor,
        uncompressedBatchBytesMax: Int
    ) throws(KafkaClientError) -> Decoded {
        guard let records, records.readableBytes > 0 else { return Decoded(records: [], next: position, batchDidNotFit: false) }
        let bytes = Array(records.readableBytesView)
        var iterator = RecordBatchIterator(bytes)
        var out: [Record] = []
        var next = position
        var batches = 0
        while let (header, range) = iterator.next() {
            batches += 1
            guard header.nextOffset > next.rawValue else { continue }
            if !header.isControl && header.recordCount > 0 {
                let batch: RecordBatch
                do {
                    batch = try RecordBatch.decode(bytes, at: range.lowerBound, decompressor: decompressor, uncompressedBytesMax: uncompressedBatchBytesMax)
                } catch {
                    throw .corruptBatch(partition, offset: Offset(header.baseOffset), error)
                }
                for record in batch.records where record.offset >= next.rawValue { out.append(record) }
            }
            next = Offset(header.nextOffset)
        }
        if let stop = iterator.stopReason {
            if case .truncated = stop {
                return Decoded(records: out, next: next, batchDidNotFit: batches == 0)
            }
            throw .corruptBatch(partition, offset: next, stop)
        }
        return Decoded(records: out, next: next, batchDidNotFit: false)
    }

    // MARK: Whole topics

    /// Reads every partition of `topic` from its start to `until` (per partition; by default the end
    /// offsets as ListOffsets gives them when the read starts), calling `visit` with each partition's
    /// records as they arrive — in offset order within a partition; partitions interleave. Records written
    /// after the end offsets were captured are not returned. Uses this consumer's assignment (replacing it).
    public nonisolated func readTopic(
        _ topic: String, until ends: [Int32: Offset]? = nil, visit: (KafkaFetchedRecords) async throws -> Void
    ) async throws {
        let partitions = try await client.partitions(of: topic).map { KafkaTopicPartition(topic: topic, partition: $0) }
        let starts = try await client.listOffsets(partitions, spec: .earliest)
        var stops: [KafkaTopicPartition: Offset] = [:]
        if let ends {
            for partition in partitions { stops[partition] = ends[partition.partition] ?? Offset(0) }
        } else {
            stops = try await client.listOffsets(partitions, spec: .latest)
        }
        var remaining: [KafkaTopicPartition: Offset] = [:]
        for partition in partitions {
            let start = starts[partition] ?? Offset(0)
            if let stop = stops[partition], start < stop { remaining[partition] = start }
        }
        await unassignAll()
        await assign(remaining)
        while !remaining.isEmpty {
            try Task.checkCancellation()
            for var fetched in try await poll() {
                guard let stop = stops[fetched.partition], remaining[fetched.partition] != nil else { continue }
                fetched.records.removeAll { $0.offset >= stop.rawValue }
                if !fetched.records.isEmpty { try await visit(fetched) }
                // Done at the end offset — or when the partition ends below it (it was truncated).
                if fetched.nextOffset >= stop || (fetched.highWatermark <= fetched.nextOffset && fetched.records.isEmpty && fetched.highWatermark < stop) {
                    remaining[fetched.partition] = nil
                    await unassign([fetched.partition])
                }
            }
        }
    }
}
