import Foundation
import Testing
@testable import OutpostCore

/// The RecordBatches inside Produce requests captured from real clients (kcat/librdkafka, confluent-kafka,
/// kafka-python; see Tests/Fixtures/README.md) decode with OutpostCore: CRC, codec, records and headers.
@Suite struct CapturedProduceFrameTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kafka-requests")

    /// Extracts the records bytes of every partition of a Produce v3+ request frame (non-flexible layout).
    func producedRecordSets(frame: [UInt8]) throws -> [[UInt8]] {
        var reader = ByteReader(frame)
        let size = try reader.readInt32()
        #expect(Int(size) == frame.count - 4)
        #expect(try reader.readInt16() == 0)  // api key: Produce
        let version = try reader.readInt16()
        #expect(version >= 3)
        _ = try reader.readInt32()  // correlation id
        let clientIdLength = try reader.readInt16()
        if clientIdLength > 0 { try reader.skip(Int(clientIdLength)) }
        let transactionalIdLength = try reader.readInt16()
        if transactionalIdLength > 0 { try reader.skip(Int(transactionalIdLength)) }
        _ = try reader.readInt16()  // acks
        _ = try reader.readInt32()  // timeout
        var sets: [[UInt8]] = []
        for _ in 0..<(try reader.readInt32()) {
            try reader.skip(Int(try reader.readInt16()))  // topic name
            for _ in 0..<(try reader.readInt32()) {
                _ = try reader.readInt32()  // partition
                let length = try reader.readInt32()
                if length >= 0 { sets.append(try reader.readBytes(Int(length))) }
            }
        }
        #expect(reader.isAtEnd)
        return sets
    }

    @Test(arguments: ["kcat-P", "kcat-C", "kcat-G", "confluent-kafka", "confluent-kafka-group", "kafka-python"])
    func produceFramesCarryDecodableBatches(client: String) throws {
        let directory = Self.fixtures.appendingPathComponent(client)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("00-") }.sorted()
        try #require(!names.isEmpty, "no Produce frames in \(directory.path)")
        var batchCount = 0
        for name in names {
            let frame = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            for recordSet in try producedRecordSets(frame: frame) {
                var iterator = RecordBatchIterator(recordSet)
                while let (header, range) = iterator.next() {
                    let batch = try RecordBatch.decode(Array(recordSet[range]))
                    #expect(batch.records.count == Int(header.recordCount))
                    #expect(batch.header.compression == .gzip || batch.header.compression == CompressionCodec.none)
                    for record in batch.records {
                        #expect(record.value != nil, "\(client)/\(name): record without value")
                        #expect(record.timestampMilliseconds > 1_600_000_000_000)
                    }
                    batchCount += 1
                }
                #expect(iterator.stopReason == nil, "\(client)/\(name): \(String(describing: iterator.stopReason))")
            }
        }
        #expect(batchCount > 0)
    }

    @Test func clientsProduceWhatTheCaptureREADMESays() throws {
        // confluent-kafka and kafka-python were captured as idempotent gzip producers with headers.
        for client in ["confluent-kafka", "kafka-python"] {
            let frame = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent("\(client)/00-v7-0.bin")))
            let recordSet = try #require(try producedRecordSets(frame: frame).first)
            let batch = try RecordBatch.decode(recordSet)
            #expect(batch.header.compression == .gzip, "\(client)")
            #expect(batch.header.producer.isIdempotent, "\(client)")
            #expect(batch.records.contains { !$0.headers.isEmpty }, "\(client) records carry headers")
        }
    }
}
