import Foundation
import NIOCore
import OutpostCore
import OutpostKafka
import Testing
@testable import OutpostBroker

/// A real broker in this process on a free port, driven over TCP with OutpostKafka's own codecs: produce,
/// fetch, list offsets, idempotence, ordering, hardening, restart.
@Suite(.serialized) struct BrokerServerTests {
    static func batch(
        _ values: [String], producer: ProducerIdentity = .none, timestamp: Int64 = 1_700_000_000_000, compression: CompressionCodec = .none
    ) throws -> ByteBuffer {
        var builder = RecordBatchBuilder(producer: producer)
        for (index, value) in values.enumerated() {
            builder.append(timestampMilliseconds: timestamp + Int64(index), key: Array("k\(index)".utf8), value: Array(value.utf8))
        }
        return ByteBuffer(bytes: try builder.build(compression: compression))
    }

    /// A minute for the commit: a loaded CI machine has held an fsync up for seconds, and no test here
    /// asserts the timeout itself.
    static func produce(_ records: ByteBuffer?, topic: String = "t", partition: Int32 = 0, acks: Int16 = -1) -> ProduceRequest {
        ProduceRequest(acks: acks, timeoutMs: 60_000, topics: [.init(name: topic, partitions: [.init(partitionIndex: partition, records: records)])])
    }

    /// Produces as a test's setup and requires the commit, so that a failure names its cause instead of
    /// showing up later as a wrong offset or high watermark.
    func produceCommitted(_ records: ByteBuffer, on connection: TestConnection) async throws {
        try #require(only(try await connection.request(Self.produce(records), version: 7))?.errorCode == KafkaErrorCode.none)
    }

    static func fetch(_ topic: String = "t", partition: Int32 = 0, offset: Int64, maxWaitMs: Int32 = 0, minBytes: Int32 = 1, partitionMaxBytes: Int32 = 1 << 20) -> FetchRequest {
        FetchRequest(
            maxWaitMs: maxWaitMs, minBytes: minBytes, maxBytes: 50 << 20, isolationLevel: 1,
            topics: [.init(name: topic, partitions: [.init(partition: partition, fetchOffset: offset, partitionMaxBytes: partitionMaxBytes)])])
    }

    func only(_ response: ProduceResponse) -> ProduceResponse.Partition? { response.topics.first?.partitions.first }
    func only(_ response: FetchResponse) -> FetchResponse.Partition? { response.topics.first?.partitions.first }

    /// The values of every record in fetched bytes.
    func values(_ records: ByteBuffer?) throws -> [String] {
        guard let records else { return [] }
        let bytes = Array(records.readableBytesView)
        var iterator = RecordBatchIterator(bytes)
        var out: [String] = []
        while let (_, range) = iterator.next() {
            out += try RecordBatch.decode(Array(bytes[range])).records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
        return out
    }

    // MARK: Produce, fetch, list offsets

    @Test func producedBatchesComeBackFromFetchAsStoredWithOnlyOffsetAndEpochRewritten() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        let first = try Self.batch(["a", "b", "c"], compression: .gzip)
        let second = try Self.batch(["d"])
        let one = try await connection.request(Self.produce(first), version: 7)
        let two = try await connection.request(Self.produce(second, acks: 1), version: 7)
        #expect(only(one)?.errorCode == KafkaErrorCode.none)
        #expect(only(one)?.baseOffset == 0)
        #expect(only(two)?.baseOffset == 3)

        // acks=1 answers before the fsync, and the high watermark covers only fsynced data: long-poll until
        // both batches are visible rather than assume they already are.
        let sentBytes = Int32(first.readableBytes + second.readableBytes)
        let fetched = try await connection.request(Self.fetch(offset: 0, maxWaitMs: 60_000, minBytes: sentBytes), version: 11)
        let partition = try #require(only(fetched))
        #expect(partition.errorCode == KafkaErrorCode.none)
        #expect(partition.highWatermark == 4)
        #expect(partition.lastStableOffset == 4, "LSO = high watermark (P5)")
        #expect(partition.preferredReadReplica == -1, "P4")
        let records = try #require(partition.records)
        let stored = Array(records.readableBytesView)
        let sent = Array(first.readableBytesView) + Array(second.readableBytesView)
        try #require(stored.count == sent.count)
        // Bytes 0–7 (base offset) and 12–15 (leader epoch) are the broker's; everything else is the client's.
        let firstSize = first.readableBytes
        for (start, end) in [(0, firstSize), (firstSize, sent.count)] {
            #expect(stored[(start + 8)..<(start + 12)] == sent[(start + 8)..<(start + 12)])
            #expect(stored[(start + 16)..<end] == sent[(start + 16)..<end])
        }
        #expect(try values(records) == ["a", "b", "c", "d"])
        // Fetch from the middle of a batch returns the whole batch (clients skip what they already have).
        let middle = try await connection.request(Self.fetch(offset: 1), version: 11)
        #expect(try values(only(middle)?.records) == ["a", "b", "c", "d"])
        // Fetch at the end: empty, never null (P3).
        let end = try await connection.request(Self.fetch(offset: 4), version: 11)
        #expect(only(end)?.records?.readableBytes == 0)
        await broker.stop()
    }

    @Test func fetchRespectsPartitionLimitsButAlwaysReturnsOneBatch() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        for index in 0..<3 {
            try await produceCommitted(try Self.batch([String(repeating: "\(index)", count: 500)]), on: connection)
        }
        let tiny = try await connection.request(Self.fetch(offset: 0, partitionMaxBytes: 10), version: 11)
        #expect(try values(only(tiny)?.records).count == 1, "one batch even though it exceeds the limit")
        let all = try await connection.request(Self.fetch(offset: 0), version: 11)
        #expect(try values(only(all)?.records).count == 3)
        await broker.stop()
    }

    @Test func fetchOutsideTheLogIsOffsetOutOfRangeAndUnknownPartitionsAreReported() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        try await produceCommitted(try Self.batch(["x"]), on: connection)
        #expect(only(try await connection.request(Self.fetch(offset: 5), version: 11))?.errorCode == .offsetOutOfRange)
        #expect(only(try await connection.request(Self.fetch(offset: -1), version: 11))?.errorCode == .offsetOutOfRange)
        #expect(only(try await connection.request(Self.fetch(partition: 9, offset: 0), version: 11))?.errorCode == .unknownTopicOrPartition)
        #expect(only(try await connection.request(Self.fetch("nope", offset: 0), version: 11))?.errorCode == .unknownTopicOrPartition)
        await broker.stop()
    }

    @Test func listOffsetsAnswersEarliestLatestAndByTimestamp() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        try await produceCommitted(try Self.batch(["a", "b"], timestamp: 1_000), on: connection)
        try await produceCommitted(try Self.batch(["c", "d"], timestamp: 2_000), on: connection)
        func list(_ timestamp: Int64, version: Int16 = 2) async throws -> ListOffsetsResponse.Partition? {
            try await connection.request(
                ListOffsetsRequest(isolationLevel: 1, topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: timestamp)])]),
                version: version
            ).topics.first?.partitions.first
        }
        #expect(try await list(-2)?.offset == 0)
        #expect(try await list(-1)?.offset == 4)
        let byTime = try await list(1_001)
        #expect(byTime?.offset == 1)
        #expect(byTime?.timestamp == 1_001)
        #expect(try await list(2_000)?.offset == 2)
        let none = try await list(9_999)
        #expect(none?.offset == -1 && none?.timestamp == -1, "no such record: −1/−1 (P11)")
        #expect(try await list(-1, version: 0)?.oldStyleOffsets == [4])
        await broker.stop()
    }

    // MARK: Validation

    @Test func invalidProduceRequestsGetThePartitionErrorsOfSection3() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        var corrupt = try Self.batch(["x"])
        corrupt.setInteger(UInt8(0xFF), at: corrupt.readerIndex + 70)
        #expect(only(try await connection.request(Self.produce(corrupt), version: 7))?.errorCode == .corruptMessage)
        var twoBatches = try Self.batch(["x"])
        var another = try Self.batch(["y"])
        twoBatches.writeBuffer(&another)
        #expect(only(try await connection.request(Self.produce(twoBatches), version: 7))?.errorCode == .invalidRecord, "v3+: one batch per partition")
        #expect(only(try await connection.request(Self.produce(try Self.batch(["x"]), acks: 2), version: 7))?.errorCode == .invalidRequiredAcks)
        #expect(only(try await connection.request(Self.produce(try Self.batch(["x"]), partition: 7), version: 7))?.errorCode == .unknownTopicOrPartition)
        #expect(only(try await connection.request(Self.produce(nil), version: 7))?.errorCode == .invalidRecord)
        // Nothing above was appended.
        let fetched = try await connection.request(Self.fetch(offset: 0), version: 11)
        #expect(only(fetched)?.highWatermark == 0)
        await broker.stop()
    }

    @Test func metadataListsTopicsAutoCreatesWhenAllowedAndNamesErrors() async throws {
        let broker = try await TestBroker.start { $0.defaultPartitions = 3 }
        let connection = try await broker.connect()
        let all = try await connection.request(MetadataRequest(topics: nil), version: 4)
        #expect(all.topics.map(\.name) == ["t"])
        #expect(all.brokers == [.init(nodeId: 0, host: "127.0.0.1", port: Int32(broker.port), rack: nil)])
        #expect(all.controllerId == 0)
        #expect(all.topics.first?.partitions.map(\.isrNodes) == [[0], [0]], "the leader is its own ISR (P1)")
        let none = try await connection.request(MetadataRequest(topics: []), version: 4)
        #expect(none.topics.isEmpty, "v1+: an empty list means no topics (P2)")
        let refused = try await connection.request(MetadataRequest(topics: ["fresh"], allowAutoTopicCreation: false), version: 4)
        #expect(refused.topics.first?.errorCode == .unknownTopicOrPartition)
        let created = try await connection.request(MetadataRequest(topics: ["fresh"], allowAutoTopicCreation: true), version: 4)
        #expect(created.topics.first?.errorCode == KafkaErrorCode.none)
        #expect(created.topics.first?.partitions.count == 3)
        let invalid = try await connection.request(MetadataRequest(topics: ["bad/name"]), version: 4)
        #expect(invalid.topics.first?.errorCode == .invalidTopicException)
        // Produce auto-creates too.
        #expect(only(try await connection.request(Self.produce(try Self.batch(["x"]), topic: "made-by-produce"), version: 7))?.errorCode == KafkaErrorCode.none)
        let v0 = try await connection.request(MetadataRequest(topics: []), version: 0)
        #expect(v0.topics.map(\.name) == ["fresh", "made-by-produce", "t"], "v0: an empty list means all topics")
        await broker.stop()
    }

    // MARK: Idempotence

    @Test func idempotentRetriesAreAnsweredWithTheOriginalOffsetAndGapsAndStaleEpochsAreRefused() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        let id = try await connection.request(InitProducerIdRequest(), version: 1)
        #expect(id.errorCode == KafkaErrorCode.none)
        #expect(id.producerEpoch == 0)
        let pid = id.producerId
        func batch(_ sequence: Int32, epoch: Int16 = 0, count: Int = 2) throws -> ByteBuffer {
            try Self.batch((0..<count).map { "s\(sequence)-\($0)" }, producer: ProducerIdentity(producerId: pid, producerEpoch: epoch, baseSequence: sequence))
        }
        #expect(only(try await connection.request(Self.produce(try batch(0)), version: 7))?.baseOffset == 0)
        #expect(only(try await connection.request(Self.produce(try batch(2)), version: 7))?.baseOffset == 2)
        let retry = try await connection.request(Self.produce(try batch(0)), version: 7)
        #expect(only(retry)?.errorCode == KafkaErrorCode.none)
        #expect(only(retry)?.baseOffset == 0, "a duplicate is answered with its original base offset")
        #expect(only(try await connection.request(Self.produce(try batch(7)), version: 7))?.errorCode == .outOfOrderSequenceNumber)
        #expect(only(try await connection.request(Self.produce(try batch(0, epoch: 1)), version: 7))?.baseOffset == 4, "a new epoch restarts at 0")
        #expect(only(try await connection.request(Self.produce(try batch(4, epoch: 0)), version: 7))?.errorCode == .invalidProducerEpoch)
        let fetched = try await connection.request(Self.fetch(offset: 0), version: 11)
        #expect(only(fetched)?.highWatermark == 6, "the duplicate was not appended again")
        let next = try await connection.request(InitProducerIdRequest(), version: 1)
        #expect(next.producerId > pid)
        await broker.stop()
    }

    @Test func producerStateAndProducerIdsSurviveARestart() async throws {
        let directory = TestBroker.directory()
        var broker = try await TestBroker.start(directory: directory)
        var connection = try await broker.connect()
        let pid = try await connection.request(InitProducerIdRequest(), version: 1).producerId
        let first = try Self.batch(["a"], producer: ProducerIdentity(producerId: pid, producerEpoch: 0, baseSequence: 0))
        try await produceCommitted(first, on: connection)
        try await produceCommitted(try Self.batch(["b"], producer: ProducerIdentity(producerId: pid, producerEpoch: 0, baseSequence: 1)), on: connection)
        await connection.close()
        await broker.stop(removeData: false)

        broker = try await TestBroker.start(directory: directory)
        connection = try await broker.connect()
        let retry = try await connection.request(Self.produce(first), version: 7)
        #expect(only(retry)?.baseOffset == 0, "rebuilt from the stored batch headers: still a duplicate")
        #expect(only(try await connection.request(Self.produce(try Self.batch(["c"], producer: ProducerIdentity(producerId: pid, producerEpoch: 0, baseSequence: 5))), version: 7))?.errorCode == .outOfOrderSequenceNumber)
        #expect(only(try await connection.request(Self.produce(try Self.batch(["c"], producer: ProducerIdentity(producerId: pid, producerEpoch: 0, baseSequence: 2))), version: 7))?.baseOffset == 2)
        #expect(try await connection.request(InitProducerIdRequest(), version: 1).producerId > pid, "ids are never handed out twice")
        await broker.stop()
    }

    // MARK: Ordering and long poll

    @Test func acksZeroGetsNoResponseAndLaterResponsesStayInOrder() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        try await connection.send(Self.produce(try Self.batch(["quiet"]), acks: 0), version: 7)
        // The acks=0 append becomes readable at its fsync, which a loaded CI machine can hold up for
        // longer than a short max wait: the fetch long-polls, and returns as soon as the record is there.
        let fetchId = try await connection.send(Self.fetch(offset: 0, maxWaitMs: 10_000), version: 11)
        let metadataId = try await connection.send(MetadataRequest(topics: nil), version: 4)
        // The fetch (sent first, possibly parked) is answered before the metadata request.
        let fetched = try await connection.receive(FetchRequest.self, version: 11, correlation: fetchId)
        #expect(try values(only(fetched)?.records) == ["quiet"])
        let metadata = try await connection.receive(MetadataRequest.self, version: 4, correlation: metadataId)
        #expect(metadata.topics.count == 1)
        await broker.stop()
    }

    @Test func aParkedFetchIsWokenByAProduceOnAnotherConnection() async throws {
        let broker = try await TestBroker.start()
        let consumer = try await broker.connect()
        let producer = try await broker.connect()
        // A long max wait: if the wake-up were missing, the fetch would come back empty after it.
        let fetchId = try await consumer.send(Self.fetch(offset: 0, maxWaitMs: 30_000), version: 11)
        let heartbeatId = try await consumer.send(HeartbeatRequest(groupId: "nobody", generationId: 1, memberId: "m"), version: 3)
        try await produceCommitted(try Self.batch(["wake"]), on: producer)
        let fetched = try await consumer.receive(FetchRequest.self, version: 11, correlation: fetchId)
        #expect(try values(only(fetched)?.records) == ["wake"])
        let heartbeat = try await consumer.receive(HeartbeatRequest.self, version: 3, correlation: heartbeatId)
        #expect(heartbeat.errorCode == .unknownMemberId, "answered after the fetch, in request order")
        await broker.stop()
    }

    @Test func aFetchWithNothingToReadReturnsEmptyAfterItsMaxWait() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        let fetched = try await connection.request(Self.fetch(offset: 0, maxWaitMs: 100), version: 11)
        #expect(only(fetched)?.errorCode == KafkaErrorCode.none)
        #expect(only(fetched)?.records?.readableBytes == 0)
        await broker.stop()
    }

    @Test func stoppingTheBrokerReleasesParkedFetchesAndGroupRequests() async throws {
        let broker = try await TestBroker.start { $0.groups.initialRebalanceDelayMilliseconds = 60_000 }
        let consumer = try await broker.connect()
        let member = try await broker.connect()
        try await consumer.send(Self.fetch(offset: 0, maxWaitMs: 60_000), version: 11)
        try await member.send(
            JoinGroupRequest(groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 60_000, protocols: [.init(name: "range", metadata: ByteBuffer())]),
            version: 5)
        // Both are parked (a minute of waiting each) before the stop, which must neither hang nor leak them.
        let deadline = ContinuousClock.now + .seconds(60)
        while broker.broker.fetchHandler.parkedFetches < 1 || broker.broker.groupCoordinator.describe(group: "g")?.members.count != 1 {
            try #require(ContinuousClock.now < deadline, "the fetch and the join were never parked")
            try await Task.sleep(for: .milliseconds(10))
        }
        await broker.stop()
        _ = await consumer.nextFrame()
        _ = await member.nextFrame()
    }

    @Test func aSecondBrokerOnTheSameDataDirectoryRefusesToStart() async throws {
        let broker = try await TestBroker.start()
        await #expect(throws: BrokerError.self) { _ = try await TestBroker.start(directory: broker.directory) }
        await broker.stop()
    }

    // MARK: Hardening

    @Test func unsupportedVersionsAreAnsweredAndTheConnectionStaysOpen() async throws {
        let broker = try await TestBroker.start()
        let connection = try await broker.connect()
        // librdkafka's first ApiVersions is v3 (flexible): the v0-layout fallback with error 35.
        let fallbackId = try await connection.send(ApiVersionsRequest(clientSoftwareName: "librdkafka", clientSoftwareVersion: "2.0.2"), version: 3)
        var fallback = KafkaReader(try #require(await connection.nextFrame()))
        #expect(try fallback.readInt32() == fallbackId)
        #expect(try ApiVersionsResponse(from: &fallback, version: 0).errorCode == .unsupportedVersion)
        #expect(fallback.isAtEnd)
        // An API this broker does not serve (CreateTopics, key 19).
        var writer = KafkaWriter()
        writer.writeInt32(0)
        KafkaRequestHeader(apiKeyRawValue: 19, apiVersion: 0, correlationId: 99, clientId: "x").encode(to: &writer)
        writer.writeInt32(0)
        KafkaFrame.patchSize(&writer.buffer)
        try await connection.sendRaw(writer.buffer)
        var unsupported = KafkaReader(try #require(await connection.nextFrame()))
        #expect(try unsupported.readInt32() == 99)
        #expect(try unsupported.readInt16() == 35)
        // Still usable.
        let versions = try await connection.request(ApiVersionsRequest(), version: 2)
        #expect(versions == .advertised)
        await broker.stop()
    }

    @Test func aMalformedRequestClosesOnlyItsOwnConnection() async throws {
        let broker = try await TestBroker.start()
        let bystander = try await broker.connect()
        let offender = try await broker.connect()
        var writer = KafkaWriter()
        writer.writeInt32(0)
        KafkaRequestHeader(apiKey: .metadata, apiVersion: 4, correlationId: 1, clientId: "bad").encode(to: &writer)
        writer.writeInt32(3)  // three topic names follow… but none does
        KafkaFrame.patchSize(&writer.buffer)
        try await offender.sendRaw(writer.buffer)
        #expect(await offender.waitForClose())
        #expect(try await bystander.request(MetadataRequest(topics: nil), version: 4).topics.count == 1)
        await broker.stop()
    }

    @Test func anOversizedFrameClosesTheConnectionBeforeItIsBuffered() async throws {
        let broker = try await TestBroker.start { $0.limits.frameBytesMax = 64 << 10 }
        let connection = try await broker.connect()
        var prefix = ByteBuffer()
        prefix.writeInteger(Int32(1 << 30))
        try await connection.sendRaw(prefix)
        #expect(await connection.waitForClose())
        let next = try await broker.connect()
        #expect(try await next.request(ApiVersionsRequest(), version: 0).errorCode == KafkaErrorCode.none)
        await broker.stop()
    }

    @Test func connectionsBeyondTheLimitAreClosedAtOnce() async throws {
        let broker = try await TestBroker.start { $0.limits.connectionsMax = 2 }
        let first = try await broker.connect()
        let second = try await broker.connect()
        _ = try await first.request(ApiVersionsRequest(), version: 2)
        _ = try await second.request(ApiVersionsRequest(), version: 2)
        let third = try await broker.connect()
        #expect(await third.waitForClose())
        await first.close()
        // A slot frees once the first connection is gone; the broker serves a new one.
        var served = false
        for _ in 0..<50 where !served {
            let retry = try await broker.connect()
            served = (try? await retry.request(ApiVersionsRequest(), version: 2)) != nil
        }
        #expect(served)
        await broker.stop()
    }

    // MARK: Groups over the wire

    @Test func committedOffsetsSurviveARestartAndAreSharedAcrossConnections() async throws {
        let directory = TestBroker.directory()
        var broker = try await TestBroker.start(directory: directory)
        let first = try await broker.connect()
        let commit = OffsetCommitRequest(
            groupId: "readers", generationId: -1, memberId: "",
            topics: [.init(name: "t", partitions: [.init(partitionIndex: 1, committedOffset: 42, committedMetadata: "note"), .init(partitionIndex: 5, committedOffset: 1)])])
        let committed = try await first.request(commit, version: 7)
        #expect(committed.topics.first?.partitions.map(\.errorCode) == [KafkaErrorCode.none, .unknownTopicOrPartition])
        let other = try await broker.connect()
        let seen = try await other.request(OffsetFetchRequest(groupId: "readers", topics: [.init(name: "t", partitionIndexes: [0, 1])]), version: 5)
        #expect(seen.topics.first?.partitions.map(\.committedOffset) == [-1, 42])
        #expect(seen.topics.first?.partitions.map(\.metadata) == ["", "note"])
        await broker.stop(removeData: false)

        broker = try await TestBroker.start(directory: directory)
        let again = try await broker.connect()
        let all = try await again.request(OffsetFetchRequest(groupId: "readers", topics: nil), version: 5)
        #expect(all.topics.first?.partitions.map(\.committedOffset) == [42])
        await broker.stop()
    }

    @Test func findCoordinatorPointsAtThisBrokerAndAJoinSyncRoundTripWorks() async throws {
        let broker = try await TestBroker.start { $0.groups.initialRebalanceDelayMilliseconds = 0 }
        let connection = try await broker.connect()
        let coordinator = try await connection.request(FindCoordinatorRequest(key: "g"), version: 2)
        #expect(coordinator.errorCode == KafkaErrorCode.none)
        #expect(coordinator.nodeId == 0)
        #expect(coordinator.port == Int32(broker.port))
        let joined = try await connection.request(
            JoinGroupRequest(groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, protocols: [.init(name: "range", metadata: ByteBuffer(string: "m"))]),
            version: 5)
        #expect(joined.errorCode == KafkaErrorCode.none)
        #expect(joined.generationId == 1)
        #expect(joined.memberId.hasPrefix("test-"))
        let synced = try await connection.request(
            SyncGroupRequest(groupId: "g", generationId: 1, memberId: joined.memberId, assignments: [.init(memberId: joined.memberId, assignment: ByteBuffer(string: "all"))]),
            version: 3)
        #expect(synced.assignment == ByteBuffer(string: "all"))
        #expect(try await connection.request(HeartbeatRequest(groupId: "g", generationId: 1, memberId: joined.memberId), version: 3).errorCode == KafkaErrorCode.none)
        #expect(try await connection.request(LeaveGroupRequest(groupId: "g", memberId: joined.memberId), version: 1).errorCode == KafkaErrorCode.none)
        await broker.stop()
    }
}
