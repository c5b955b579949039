import NIOCore
import OutpostCore
import Testing
@testable import OutpostKafka

/// The client's pure parts: backoff with seeded jitter, the metadata cache, the consumer-group protocol
/// bytes, the range assignor, and how fetched bytes become records.
@Suite struct ClientPureTests {
    // MARK: Backoff

    @Test func backoffDoublesUpToTheMaximumAndResetsOnSuccess() {
        let policy = KafkaBackoffPolicy(initial: .milliseconds(100), maximum: .seconds(1), jitterFraction: 0)
        var backoff = ReconnectBackoff(policy: policy, generator: KafkaJitterGenerator(seed: 9))
        #expect((0..<6).map { _ in backoff.failed() } == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        backoff.succeeded()
        #expect(backoff.failed() == .milliseconds(100))
    }

    @Test func jitterStaysWithinItsFractionAndOneSeedReproducesTheWaits() {
        let policy = KafkaBackoffPolicy(initial: .seconds(1), maximum: .seconds(60), jitterFraction: 0.2)
        func waits(_ seed: UInt64) -> [Duration] {
            var backoff = ReconnectBackoff(policy: policy, generator: KafkaJitterGenerator(seed: seed))
            return (0..<5).map { _ in
                defer { backoff.succeeded() }
                return backoff.failed()
            }
        }
        let first = waits(1)
        #expect(first == waits(1))
        #expect(first != waits(2))
        #expect(first.allSatisfy { $0 >= .milliseconds(800) && $0 <= .milliseconds(1_200) })
        #expect(Set(first).count > 1, "jitter spreads the waits")
    }

    @Test func brokerAddressesParse() {
        #expect(KafkaBrokerAddress(parsing: "broker-1:9092") == KafkaBrokerAddress(host: "broker-1", port: 9092))
        #expect(KafkaBrokerAddress(parsing: "[::1]:9093") == KafkaBrokerAddress(host: "::1", port: 9093))
        #expect(KafkaBrokerAddress(parsing: "nohost") == nil)
        #expect(KafkaBrokerAddress(parsing: ":9092") == nil)
        #expect(KafkaBrokerAddress(parsing: "h:0") == nil)
        #expect(KafkaBrokerAddress.list(parsing: "a:1, b:2") == [KafkaBrokerAddress(host: "a", port: 1), KafkaBrokerAddress(host: "b", port: 2)])
        #expect(KafkaBrokerAddress.list(parsing: "a:1,b") == nil)
        #expect(KafkaBrokerAddress(host: "::1", port: 1).description == "[::1]:1")
    }

    // MARK: Metadata

    @Test func metadataAnswersWhereEachPartitionLeads() {
        var metadata = ClusterMetadata()
        let partition = { (index: Int32) in KafkaTopicPartition(topic: "t", partition: index) }
        #expect(metadata.lookup(partition(0)) == .unknownTopic)
        metadata.apply(MetadataResponse(
            brokers: [.init(nodeId: 1, host: "a", port: 9092), .init(nodeId: 2, host: "b", port: 9093)], clusterId: "c", controllerId: 1,
            topics: [
                .init(name: "t", partitions: [
                    .init(partitionIndex: 0, leaderId: 2, replicaNodes: [2], isrNodes: [2]),
                    .init(errorCode: .leaderNotAvailable, partitionIndex: 1, leaderId: -1, replicaNodes: [1], isrNodes: []),
                    .init(partitionIndex: 2, leaderId: 5, replicaNodes: [5], isrNodes: [5]),
                ]),
                .init(errorCode: .unknownTopicOrPartition, name: "gone", partitions: []),
            ]))
        #expect(metadata.lookup(partition(0)) == .leader(KafkaBrokerNode(nodeId: 2, address: KafkaBrokerAddress(host: "b", port: 9093))))
        #expect(metadata.lookup(partition(1)) == .noLeader)
        #expect(metadata.lookup(partition(2)) == .noLeader, "a leader missing from the broker list")
        #expect(metadata.lookup(partition(3)) == .noSuchPartition)
        #expect(metadata.lookup(KafkaTopicPartition(topic: "gone", partition: 0)) == .noSuchPartition)
        #expect(metadata.topics["t"]?.partitions == [0, 1, 2])
        metadata.invalidate(topic: "t")
        #expect(metadata.lookup(partition(0)) == .unknownTopic)
        #expect(metadata.knownTopics == ["gone"])
    }

    // MARK: Consumer-group protocol

    @Test func subscriptionsAndAssignmentsRoundTripAndLaterVersionsAreRead() throws {
        let subscription = ConsumerProtocolSubscription(topics: ["a", "b"])
        #expect(try ConsumerProtocolSubscription.decode(subscription.encoded()) == subscription)
        let assignment = ConsumerProtocolAssignment(partitions: [KafkaTopicPartition(topic: "b", partition: 1), KafkaTopicPartition(topic: "a", partition: 0)])
        #expect(try ConsumerProtocolAssignment.decode(assignment.encoded()).partitions == assignment.partitions.sorted())
        #expect(try ConsumerProtocolAssignment.decode(ByteBuffer()).partitions == [], "empty bytes: nothing assigned")

        // v1 (librdkafka, kafka-python): owned partitions follow user data; they are not needed.
        var writer = KafkaWriter()
        writer.writeInt16(1)
        writer.writeArray(["t"]) { $0.writeString($1) }
        writer.writeNullableBytes(nil)
        writer.writeArray(["t"]) { writer, topic in
            writer.writeString(topic)
            writer.writeArray([Int32(0)]) { $0.writeInt32($1) }
        }
        let decoded = try ConsumerProtocolSubscription.decode(writer.buffer)
        #expect(decoded.version == 1 && decoded.topics == ["t"])
    }

    @Test func theRangeAssignorGivesConsecutiveRunsAndTheFirstMembersTheExtras() {
        let assigned = RangeAssignor.assign(
            subscriptions: ["m-b": ["t"], "m-a": ["t", "u"], "m-c": ["t"]], partitionCounts: ["t": 7, "u": 2])
        func p(_ topic: String, _ indexes: Int32...) -> [KafkaTopicPartition] { indexes.map { KafkaTopicPartition(topic: topic, partition: $0) } }
        #expect(assigned["m-a"] == p("t", 0, 1, 2) + p("u", 0, 1))
        #expect(assigned["m-b"] == p("t", 3, 4))
        #expect(assigned["m-c"] == p("t", 5, 6))
        let crowded = RangeAssignor.assign(subscriptions: ["x": ["t"], "y": ["t"], "z": ["t"]], partitionCounts: ["t": 2])
        #expect(crowded["z"] == [], "more members than partitions: the last get none")
        #expect(RangeAssignor.assign(subscriptions: ["x": ["missing"]], partitionCounts: [:])["x"] == [])
    }

    // MARK: Decoding fetched bytes

    let partition = KafkaTopicPartition(topic: "t", partition: 0)

    func stored(_ batches: [[String]], firstOffset: Int64 = 0) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var offset = firstOffset
        for values in batches {
            var builder = RecordBatchBuilder()
            for value in values { builder.append(timestampMilliseconds: 1, key: nil, value: Array(value.utf8)) }
            var batch = try builder.build(compression: .gzip)
            RecordBatchValidation.setBaseOffset(offset, in: &batch)
            offset += Int64(values.count)
            bytes += batch
        }
        return bytes
    }

    func decode(_ bytes: [UInt8], from position: Int64) throws(KafkaClientError) -> KafkaConsumer.Decoded {
        let decompressor: GzipDecompressor
        do {
            decompressor = try GzipDecompressor()
        } catch {
            throw .invalidBatch(.compression(error))
        }
        return try KafkaConsumer.decode(
            ByteBuffer(bytes: bytes), partition: partition, from: Offset(position), decompressor: decompressor, uncompressedBatchBytesMax: 1 << 20)
    }

    func values(_ decoded: KafkaConsumer.Decoded) -> [String] { decoded.records.map { String(decoding: $0.value ?? [], as: UTF8.self) } }

    @Test func recordsBeforeThePositionAreSkippedAndWholeEarlierBatchesNotEvenDecoded() throws {
        let bytes = try stored([["a", "b", "c"], ["d", "e"], ["f"]], firstOffset: 10)
        let fromMiddle = try decode(bytes, from: 11)
        #expect(values(fromMiddle) == ["b", "c", "d", "e", "f"])
        #expect(fromMiddle.records.map(\.offset) == Array(11...15))
        #expect(fromMiddle.next == Offset(16))
        #expect(values(try decode(bytes, from: 13)) == ["d", "e", "f"])
        #expect(try decode(bytes, from: 16).records.isEmpty)
    }

    @Test func aTruncatedLastBatchIsLeftForTheNextFetchAndCorruptionIsAnError() throws {
        let bytes = try stored([["a", "b"], ["c", "d"]])
        let cut = Array(bytes.dropLast(5))
        let decoded = try decode(cut, from: 0)
        #expect(values(decoded) == ["a", "b"])
        #expect(decoded.next == Offset(2))
        #expect(!decoded.batchDidNotFit)
        let onlyPart = try decode(Array(bytes.prefix(30)), from: 0)
        #expect(onlyPart.records.isEmpty && onlyPart.batchDidNotFit, "not one whole batch: the partition limit must grow")

        var damaged = bytes
        damaged[70] ^= 0xFF
        #expect {
            _ = try decode(damaged, from: 0)
        } throws: { error in
            guard case .corruptBatch(let where_, let offset, .crcMismatch) = error as? KafkaClientError else { return false }
            return where_ == partition && offset == Offset(0)
        }
    }
}
