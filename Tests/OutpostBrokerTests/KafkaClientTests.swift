import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostCore
import OutpostKafka
import Testing
@testable import OutpostBroker

/// OutpostKafka's client against a real broker in this process: produce and consume round trips,
/// idempotent resends across a client restart, sequence errors, metadata refresh across a broker move,
/// whole-topic reads and a two-member consumer group.
@Suite(.serialized) struct KafkaClientTests {
    /// A client with its own event loop, for one test.
    struct Harness {
        let group: MultiThreadedEventLoopGroup
        let client: KafkaClient

        static func make(bootstrap: [Int], clientId: String = "client-test", configure: (inout KafkaClientConfiguration) -> Void = { _ in }) -> Harness {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            var configuration = KafkaClientConfiguration(
                bootstrap: bootstrap.map { KafkaBrokerAddress(host: "127.0.0.1", port: $0) },
                connection: KafkaConnectionConfiguration(clientId: clientId, connectTimeout: .seconds(2), requestTimeout: .seconds(10)),
                reconnectBackoff: KafkaBackoffPolicy(initial: .milliseconds(20), maximum: .milliseconds(200)),
                retryBackoff: KafkaBackoffPolicy(initial: .milliseconds(20), maximum: .milliseconds(200)),
                jitterSeed: 42)
            configure(&configuration)
            var logger = Logger(label: "test.client")
            logger.logLevel = .critical
            return Harness(group: group, client: KafkaClient(configuration: configuration, eventLoopGroup: group, logger: logger))
        }

        func shutdown() async {
            await client.close()
            try? await group.shutdownGracefully()
        }
    }

    static func batch(_ values: [String], compression: CompressionCodec = .gzip, timestamp: Int64 = 1_700_000_000_000) throws -> [UInt8] {
        var builder = RecordBatchBuilder()
        for (index, value) in values.enumerated() {
            builder.append(
                timestampMilliseconds: timestamp + Int64(index), key: Array("device-\(index % 3)".utf8), value: Array(value.utf8),
                headers: [RecordHeader(key: "gateway", value: Array("edge-1".utf8))])
        }
        return try builder.build(compression: compression)
    }

    static func values(_ records: [Record]) -> [String] { records.map { String(decoding: $0.value ?? [], as: UTF8.self) } }

    // MARK: Producing and consuming

    @Test func producedBatchesAreStoredByteForByteAndReadBackInOrder() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 2)])
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client)
        let partition = KafkaTopicPartition(topic: "t", partition: 1)
        let batches = [try Self.batch(["a", "b", "c"]), try Self.batch(["d"], compression: .none), try Self.batch(["e", "f"])]
        // Pipelined: all three accepted before any result is awaited.
        var tickets: [KafkaProduceTicket] = []
        for batch in batches { tickets.append(try await producer.send(batch, to: partition)) }
        var receipts: [KafkaProduceReceipt] = []
        for ticket in tickets { receipts.append(try await ticket.result()) }
        #expect(receipts.map(\.baseOffset) == [Offset(0), Offset(3), Offset(4)])
        #expect(receipts.map(\.producer.baseSequence) == [0, 3, 4], "sequences count records")
        let identity = try #require(await producer.currentIdentity)
        #expect(receipts.allSatisfy { $0.producer.producerId == identity.producerId })

        // The broker holds exactly the stamped bytes: only base offset and leader epoch differ.
        let connection = try await broker.connect()
        let fetched = try await connection.request(BrokerServerTests.fetch(partition: 1, offset: 0), version: 11)
        let stored = Array(try #require(fetched.topics.first?.partitions.first?.records).readableBytesView)
        var expected: [UInt8] = []
        for (batch, receipt) in zip(batches, receipts) {
            var stamped = batch
            try RecordBatchValidation.setProducer(receipt.producer, in: &stamped)
            expected += stamped
        }
        #expect(stored.count == expected.count)
        var position = 0
        for batch in batches {
            let end = position + batch.count
            #expect(stored[(position + 8)..<(position + 12)] == expected[(position + 8)..<(position + 12)])
            #expect(stored[(position + 16)..<end] == expected[(position + 16)..<end])
            position = end
        }
        await connection.close()

        // The consumer decodes the same records: keys, values, headers, timestamps, offsets.
        let consumer = KafkaConsumer(client: harness.client)
        await consumer.assign([partition: Offset(0)])
        var records: [Record] = []
        while records.count < 6 {
            for fetched in try await consumer.poll() { records += fetched.records }
        }
        #expect(Self.values(records) == ["a", "b", "c", "d", "e", "f"])
        #expect(records.map(\.offset) == Array(0..<6))
        let original = try batches.flatMap { try RecordBatch.decode($0).records }
        #expect(records.map(\.key) == original.map(\.key))
        #expect(records.map(\.headers) == original.map(\.headers))
        #expect(records.map(\.timestampMilliseconds) == original.map(\.timestampMilliseconds))
        await harness.shutdown()
        await broker.stop()
    }

    @Test func aConsumerSkipsTheRecordsBeforeItsPositionInsideTheFirstBatch() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 1)])
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client, configuration: .init(mode: .plain(acks: 1)))
        let partition = KafkaTopicPartition(topic: "t", partition: 0)
        _ = try await producer.produce(try Self.batch(["0", "1", "2", "3", "4"]), to: partition)
        _ = try await producer.produce(try Self.batch(["5", "6"]), to: partition)
        let consumer = KafkaConsumer(client: harness.client)
        await consumer.assign([partition: Offset(3)])
        var got: [Record] = []
        var next = Offset(3)
        while next < Offset(7) {
            for fetched in try await consumer.poll() {
                got += fetched.records
                next = fetched.nextOffset
            }
        }
        #expect(Self.values(got) == ["3", "4", "5", "6"])
        #expect(await consumer.assignment[partition] == Offset(7))
        await harness.shutdown()
        await broker.stop()
    }

    @Test func listOffsetsFindsEarliestLatestAndByTimestamp() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 1)])
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client)
        let partition = KafkaTopicPartition(topic: "t", partition: 0)
        _ = try await producer.produce(try Self.batch(["a", "b"], timestamp: 1_000), to: partition)
        _ = try await producer.produce(try Self.batch(["c", "d"], timestamp: 5_000), to: partition)
        #expect(try await harness.client.listOffsets([partition], spec: .earliest)[partition] == Offset(0))
        #expect(try await harness.client.listOffsets([partition], spec: .latest)[partition] == Offset(4))
        #expect(try await harness.client.listOffsets([partition], spec: .timestamp(milliseconds: 5_000))[partition] == Offset(2))
        #expect(try await harness.client.listOffsets([partition], spec: .timestamp(milliseconds: 9_000))[partition] == Offset(4), "nothing that late: the end")
        await harness.shutdown()
        await broker.stop()
    }

    @Test func readTopicReadsEveryPartitionToTheEndOffsetsCapturedAtTheStart() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "telemetry", partitions: 3)])
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client)
        var sent: [Int32: [String]] = [:]
        for round in 0..<20 {
            let partition = Int32(round % 3)
            let values = (0..<5).map { "r\(round)-\($0)" }
            _ = try await producer.send(try Self.batch(values), to: KafkaTopicPartition(topic: "telemetry", partition: partition))
            sent[partition, default: []] += values
        }
        await producer.flush()
        let consumer = KafkaConsumer(client: harness.client, configuration: .init(maxWait: .milliseconds(100), partitionMaxBytes: 200))
        var read: [Int32: [String]] = [:]
        var late = false
        try await consumer.readTopic("telemetry") { fetched in
            read[fetched.partition.partition, default: []] += Self.values(fetched.records)
            if !late {
                // Written after the end offsets were captured: not part of this read.
                late = true
                _ = try await producer.produce(try Self.batch(["late"]), to: KafkaTopicPartition(topic: "telemetry", partition: 0))
            }
        }
        #expect(read == sent)
        await harness.shutdown()
        await broker.stop()
    }

    // MARK: Idempotence

    @Test func aBatchResentWithTheSameIdentityAfterAClientRestartGetsItsOriginalOffset() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 1)])
        let partition = KafkaTopicPartition(topic: "t", partition: 0)
        let batches = try (0..<4).map { try Self.batch(["b\($0)-0", "b\($0)-1"]) }
        var first = Harness.make(bootstrap: [broker.port], clientId: "edge-1")
        let identity = try await first.client.initProducerId()
        var producer = KafkaProducer(client: first.client, configuration: .init(mode: .externallySequenced))
        var original: [Offset?] = []
        for (index, batch) in batches.enumerated() {
            let stamped = ProducerIdentity(producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence: Int32(index * 2))
            original.append(try await producer.produce(batch, to: partition, as: stamped).baseOffset)
        }
        #expect(original == [Offset(0), Offset(2), Offset(4), Offset(6)])
        await producer.close()
        await first.shutdown()

        // A "restart": new client, new producer, the persisted identity and cursor. The last three batches
        // are resent as they were; the broker recognises them and appends nothing.
        first = Harness.make(bootstrap: [broker.port], clientId: "edge-1")
        producer = KafkaProducer(client: first.client, configuration: .init(mode: .externallySequenced))
        var tickets: [KafkaProduceTicket] = []
        for index in 1..<4 {
            let stamped = ProducerIdentity(producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence: Int32(index * 2))
            tickets.append(try await producer.send(batches[index], to: partition, as: stamped))
        }
        var resent: [Offset?] = []
        for ticket in tickets { resent.append(try await ticket.result().baseOffset) }
        #expect(resent == Array(original[1...]))
        #expect(try await first.client.listOffsets([partition], spec: .latest)[partition] == Offset(8), "nothing appended twice")
        // The next batch continues the sequence.
        let next = ProducerIdentity(producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence: 8)
        #expect(try await producer.produce(try Self.batch(["new"]), to: partition, as: next).baseOffset == Offset(8))
        await first.shutdown()
        await broker.stop()
    }

    @Test func aSequenceGapIsADistinctErrorAndANewIdentityStartsOver() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 1)])
        let partition = KafkaTopicPartition(topic: "t", partition: 0)
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client, configuration: .init(mode: .externallySequenced))
        let identity = try await harness.client.initProducerId()
        func stamp(_ sequence: Int32, _ base: ProducerIdentity = identity) -> ProducerIdentity {
            ProducerIdentity(producerId: base.producerId, producerEpoch: base.producerEpoch, baseSequence: sequence)
        }
        _ = try await producer.produce(try Self.batch(["a", "b", "c"]), to: partition, as: stamp(0))
        // A declared drop left sequences 3…9 unsent.
        let gap = try await producer.send(try Self.batch(["k"]), to: partition, as: stamp(10))
        let behind = try await producer.send(try Self.batch(["l"]), to: partition, as: stamp(11))
        await #expect(throws: KafkaClientError.outOfOrderSequence(partition, producer: stamp(10))) { try await gap.result() }
        // Behind the gap: aborted if it was in the window when the gap failed, else refused in its own right.
        do {
            _ = try await behind.result()
            Issue.record("a batch behind a gap cannot be appended")
        } catch {
            #expect(error == .abortedAfterEarlierFailure(partition) || error == .outOfOrderSequence(partition, producer: stamp(11)))
        }
        let fresh = try await harness.client.initProducerId()
        #expect(fresh.producerId != identity.producerId)
        #expect(try await producer.produce(try Self.batch(["k"]), to: partition, as: stamp(0, fresh)).baseOffset == Offset(3))

        // The automatic mode refuses the partition until re-initialised.
        let automatic = KafkaProducer(client: harness.client)
        _ = try await automatic.produce(try Self.batch(["x"]), to: partition)
        await #expect(throws: KafkaClientError.invalidUsage("only an externally sequenced producer takes an explicit identity")) {
            _ = try await automatic.send(try Self.batch(["y"]), to: partition, as: stamp(1))
        }
        await harness.shutdown()
        await broker.stop()
    }

    @Test func manyBatchesPipelinedOverTwoPartitionsArriveOnceAndInOrder() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 2)])
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client)
        var tickets: [KafkaProduceTicket] = []
        for index in 0..<60 {
            let partition = KafkaTopicPartition(topic: "t", partition: Int32(index % 2))
            tickets.append(try await producer.send(try Self.batch(["\(index)"]), to: partition))
            #expect((await producer.inFlightBatches[partition] ?? 0) <= 5, "the window is bounded")
        }
        var offsets: [Int32: [Int64]] = [:]
        for ticket in tickets { offsets[ticket.partition.partition, default: []].append(try #require(try await ticket.result().baseOffset).rawValue) }
        #expect(offsets[0] == Array(0..<30))
        #expect(offsets[1] == Array(0..<30))
        await harness.shutdown()
        await broker.stop()
    }

    // MARK: Metadata

    @Test func whenTheBrokerMovesTheClientFindsItThroughTheOtherBootstrapAddressAndResendsOnce() async throws {
        let directory = TestBroker.directory()
        var broker = try await TestBroker.start(directory: directory, topics: [TopicConfiguration(name: "t", partitions: 1)])
        let spare = try await Self.freePort()
        let harness = Harness.make(bootstrap: [broker.port, spare])
        let producer = KafkaProducer(client: harness.client)
        let partition = KafkaTopicPartition(topic: "t", partition: 0)
        _ = try await producer.produce(try Self.batch(["before"]), to: partition)
        #expect(await harness.client.metadata.brokers[0]?.address.port == broker.port)

        await broker.stop(removeData: false)
        // Sent while no broker runs: retried until the broker is back, at another address.
        var tickets: [KafkaProduceTicket] = []
        for index in 0..<3 { tickets.append(try await producer.send(try Self.batch(["during-\(index)"]), to: partition)) }
        broker = try await TestBroker.start(directory: directory, topics: [TopicConfiguration(name: "t", partitions: 1)]) {
            $0.listen = .init(host: "127.0.0.1", port: spare)
        }
        var offsets: [Offset?] = []
        for ticket in tickets { offsets.append(try await ticket.result().baseOffset) }
        #expect(offsets == [Offset(1), Offset(2), Offset(3)])
        #expect(await harness.client.metadata.brokers[0]?.address.port == spare, "metadata refreshed after the connection was lost")
        let consumer = KafkaConsumer(client: harness.client)
        var values: [String] = []
        try await consumer.readTopic("t") { values += Self.values($0.records) }
        #expect(values == ["before", "during-0", "during-1", "during-2"])
        await harness.shutdown()
        await broker.stop()
    }

    @Test func anUnknownTopicFailsTheSendInsteadOfWaitingForever() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "t", partitions: 1)]) { $0.autoCreateTopics = false }
        let harness = Harness.make(bootstrap: [broker.port])
        let producer = KafkaProducer(client: harness.client)
        let missing = KafkaTopicPartition(topic: "nope", partition: 0)
        let ticket = try await producer.send(try Self.batch(["x"]), to: missing)
        await #expect(throws: KafkaClientError.unknownTopicOrPartition(topic: "nope", partition: 0)) { try await ticket.result() }
        await #expect(throws: KafkaClientError.unknownTopicOrPartition(topic: "nope", partition: nil)) { try await harness.client.partitions(of: "nope") }
        await harness.shutdown()
        await broker.stop()
    }

    // MARK: Groups

    @Test func twoMembersSplitThePartitionsAndTheSurvivorTakesOverWhenOneLeaves() async throws {
        let broker = try await TestBroker.start(topics: [TopicConfiguration(name: "g", partitions: 4)]) {
            $0.groups.initialRebalanceDelayMilliseconds = 200
        }
        let producerHarness = Harness.make(bootstrap: [broker.port], clientId: "producer")
        let producer = KafkaProducer(client: producerHarness.client)
        for index in 0..<40 {
            _ = try await producer.send(try Self.batch(["\(index)"]), to: KafkaTopicPartition(topic: "g", partition: Int32(index % 4)))
        }
        await producer.flush()

        func member(_ name: String) -> (Harness, KafkaGroupConsumer) {
            let harness = Harness.make(bootstrap: [broker.port], clientId: name)
            // Nothing here waits for a session to expire or a rebalance to time out (B leaves with LeaveGroup),
            // so both are long: a member starved past either is dropped, and records it read but had not
            // committed are handed out again, which "exactly once" below would report.
            let membership = GroupMembershipConfiguration(
                groupId: "readers", topics: ["g"], sessionTimeout: .seconds(30), rebalanceTimeout: .seconds(60), heartbeatInterval: .milliseconds(200))
            let consumer = KafkaGroupConsumer(
                client: harness.client, configuration: .init(membership: membership, consumer: .init(maxWait: .milliseconds(100))))
            return (harness, consumer)
        }
        let (harnessA, a) = member("member-a")
        let (harnessB, b) = member("member-b")
        await a.start()
        await b.start()

        var seen: [String] = []
        // Until both own two partitions each, read what is handed out.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            for fetched in try await a.poll() { seen += Self.values(fetched.records) }
            for fetched in try await b.poll() { seen += Self.values(fetched.records) }
            let (ownedA, ownedB) = (await a.assignment, await b.assignment)
            if ownedA.count == 2 && ownedB.count == 2 && Set(ownedA).isDisjoint(with: ownedB) && seen.count >= 20 { break }
        }
        let split = (await a.assignment, await b.assignment)
        #expect(split.0.count == 2 && split.1.count == 2)
        #expect(Set(split.0 + split.1) == Set((0..<4).map { KafkaTopicPartition(topic: "g", partition: $0) }))
        try await a.commit()
        try await b.commit()

        // B leaves (committing on the way out); A rebalances and takes every partition, resuming at the
        // committed offsets.
        await b.close()
        while ContinuousClock.now < deadline {
            for fetched in try await a.poll() { seen += Self.values(fetched.records) }
            if await a.assignment.count == 4 && seen.count >= 40 { break }
        }
        #expect(await a.assignment.count == 4)
        #expect(seen.sorted() == (0..<40).map(String.init).sorted(), "every record exactly once")
        await a.close()
        let committed = try await broker.connect().request(
            OffsetFetchRequest(groupId: "readers", topics: [.init(name: "g", partitionIndexes: [0, 1, 2, 3])]), version: 5)
        #expect(committed.topics.first?.partitions.map(\.committedOffset) == [10, 10, 10, 10], "closing committed what was read")
        await harnessA.shutdown()
        await harnessB.shutdown()
        await producerHarness.shutdown()
        await broker.stop()
    }

    /// A loopback port nothing listens on (bound and released at once).
    static func freePort() async throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        try await group.shutdownGracefully()
        return port
    }
}
