import Foundation
import OutpostCore
import OutpostKafka
import Testing

/// OutpostKafka's client against `outpost broker` as a child process: pipelined idempotent production
/// across a `kill -9` of the broker, and batches written by our producer read back by kafka-python.
@Suite(.serialized) struct KafkaClientSystemTests {
    func directory(_ name: String = #function) throws -> String {
        try TestEnvironment.temporaryDirectory("client-" + name).path
    }

    static func client(port: Int, clientId: String) -> KafkaClient {
        KafkaClient(
            configuration: KafkaClientConfiguration(
                bootstrap: [KafkaBrokerAddress(host: "127.0.0.1", port: port)],
                connection: KafkaConnectionConfiguration(clientId: clientId, connectTimeout: .seconds(2), requestTimeout: .seconds(10)),
                reconnectBackoff: KafkaBackoffPolicy(initial: .milliseconds(20), maximum: .milliseconds(250)),
                retryBackoff: KafkaBackoffPolicy(initial: .milliseconds(20), maximum: .milliseconds(250)),
                jitterSeed: 7))
    }

    static func batch(_ values: [String], key: String) throws -> [UInt8] {
        var builder = RecordBatchBuilder()
        for (index, value) in values.enumerated() {
            builder.append(
                timestampMilliseconds: 1_700_000_000_000 + Int64(index), key: Array(key.utf8), value: Array(value.utf8),
                headers: [RecordHeader(key: "seq", value: Array(value.utf8))])
        }
        return try builder.build(compression: .gzip)
    }

    @Test func pipelinedBatchesArriveExactlyOnceAndInOrderAcrossABrokerKill() async throws {
        let killed = try BrokerProcess.start(dataDirectory: try directory(), topics: ["t:3"])
        let client = Self.client(port: killed.port, clientId: "crash-producer")
        let producer = KafkaProducer(client: client)
        let total = 300
        var tickets: [KafkaProduceTicket] = []
        var sent: [Int32: [String]] = [:]
        var restarted: Task<BrokerProcess, any Error>?
        var requestsBeforeStop = 0
        for index in 0..<total {
            let partition = Int32(index % 3)
            let values = (0..<4).map { "\(index)-\($0)" }
            // Suspends while a partition's window is full — for as long as the broker is down.
            tickets.append(try await producer.send(try Self.batch(values, key: "device-\(partition)"), to: KafkaTopicPartition(topic: "t", partition: partition)))
            sent[partition, default: []] += values
            if index == total / 3 {
                // Some acknowledged first; then the broker stops answering (SIGSTOP: its socket still
                // takes bytes), so what is sent next is written and stays unacknowledged.
                _ = try await tickets[index - 10].result()
                kill(killed.pid, SIGSTOP)
                requestsBeforeStop = await producer.statistics.requestsSent
            }
            if index == total / 3 + 3 {
                // The three batches sent since are surely in flight once written: kill -9 mid-stream, and
                // bring the broker back on the same port a little later.
                let deadline = ContinuousClock.now.advanced(by: .seconds(20))
                while await producer.statistics.requestsSent < requestsBeforeStop + 3, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                killed.kill9()
                restarted = Task {
                    try await Task.sleep(for: .milliseconds(700))
                    return try killed.restart()
                }
            }
        }
        let broker = try #require(try await restarted?.value)
        var lastOffset: [Int32: Int64] = [:]
        for ticket in tickets {
            let receipt = try await ticket.result()
            let offset = try #require(receipt.baseOffset).rawValue
            #expect(offset > lastOffset[ticket.partition.partition] ?? -1, "acknowledgements come in order")
            lastOffset[ticket.partition.partition] = offset
        }
        let statistics = await producer.statistics
        #expect(statistics.resends > 0, "batches in flight at the kill were sent again")
        #expect(statistics.acknowledged == total)
        let consumer = KafkaConsumer(client: client)
        var read: [Int32: [String]] = [:]
        try await consumer.readTopic("t") { fetched in
            read[fetched.partition.partition, default: []] += fetched.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
        #expect(read == sent, "every record exactly once, in send order per partition")
        await client.close()
        broker.stop()
    }

    struct PythonRecords: Decodable {
        var records: [[PythonField]]
    }

    enum PythonField: Decodable, Equatable {
        case int(Int64)
        case text(String)
        case null
        case list([[String?]])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let value = try? container.decode(Int64.self) {
                self = .int(value)
            } else if let value = try? container.decode(String.self) {
                self = .text(value)
            } else {
                self = .list(try container.decode([[String?]].self))
            }
        }
    }

    static func hex(_ bytes: [UInt8]?) -> PythonField {
        guard let bytes else { return .null }
        return .text(bytes.map { String(format: "%02x", $0) }.joined())
    }

    @Test func batchesOurProducerWroteAreReadCorrectlyByKafkaPython() async throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["interop:2"])
        let client = Self.client(port: broker.port, clientId: "interop-producer")
        // Both modes stamp identities into pre-built batches (CRC recomputed): kafka-python checks the CRCs.
        let automatic = KafkaProducer(client: client)
        let external = KafkaProducer(client: client, configuration: .init(mode: .externallySequenced))
        let identity = try await client.initProducerId()
        var expected: [[PythonField]] = []
        var sequence: Int32 = 0
        for round in 0..<6 {
            let values = (0..<5).map { "r\(round)-v\($0)" }
            let bytes = try Self.batch(values, key: "dev-\(round)")
            let receipt: KafkaProduceReceipt
            if round % 2 == 0 {
                receipt = try await automatic.produce(bytes, to: KafkaTopicPartition(topic: "interop", partition: 0))
            } else {
                receipt = try await external.produce(
                    bytes, to: KafkaTopicPartition(topic: "interop", partition: 1),
                    as: ProducerIdentity(producerId: identity.producerId, producerEpoch: identity.producerEpoch, baseSequence: sequence))
                sequence += 5
            }
            let base = try #require(receipt.baseOffset).rawValue
            for (index, record) in try RecordBatch.decode(bytes).records.enumerated() {
                expected.append([
                    .int(Int64(receipt.partition.partition)), .int(base + Int64(index)), Self.hex(record.key), Self.hex(record.value),
                    .int(record.timestampMilliseconds), .list(record.headers.map { [$0.key, Self.hex($0.value).textValue] }),
                ])
            }
        }
        let read = try Interop.python("kafka_python_consume.py", ["--bootstrap", broker.bootstrap, "--topic", "interop"], as: PythonRecords.self)
        expected.sort { ($0[0].intValue, $0[1].intValue) < ($1[0].intValue, $1[1].intValue) }
        #expect(read.records.count == 30)
        #expect(read.records == expected)
        await client.close()
        broker.stop()
    }
}

extension KafkaClientSystemTests.PythonField {
    var intValue: Int64 {
        if case .int(let value) = self { return value }
        return -1
    }

    var textValue: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}
