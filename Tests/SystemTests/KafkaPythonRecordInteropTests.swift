import Foundation
import OutpostCore
import Testing

/// RecordBatch v2 interop with an independent implementation, kafka-python's `kafka.record`:
/// our batches decode there (records, headers, timestamps, CRC), theirs decode here.
@Suite struct KafkaPythonRecordInteropTests {
    struct PythonBatch: Decodable {
        var base_offset: Int64?
        var crc_valid: Bool?
        var compression: Int
        var producer_id: Int64
        var producer_epoch: Int
        var base_sequence: Int
        var records: [PythonRecord]
    }

    struct PythonRecord: Decodable, Equatable {
        var offset: Int64
        var timestamp: Int64
        var key: String?
        var value: String?
        var headers: [[String?]]
    }

    static let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Interop/kafka_records.py").path

    func runScript(_ mode: String, _ file: URL) throws -> Data {
        let result = try runProcess(try python3(), [Self.script, mode, file.path])
        if result.status == 3 { Issue.record("kafka-python is missing: \(result.stderr)") }
        try #require(result.status == 0, "kafka_records.py \(mode) failed: \(result.stderr)")
        return result.stdout
    }

    func describe(_ record: Record) -> PythonRecord {
        PythonRecord(
            offset: record.offset, timestamp: record.timestampMilliseconds,
            key: record.key.map(hex), value: record.value.map(hex),
            headers: record.headers.map { [$0.key, $0.value.map(hex)] })
    }

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func ourBatchesDecodeWithKafkaPython() throws {
        var log: [UInt8] = []
        var expected: [[Record]] = []
        for (index, codec) in [CompressionCodec.gzip, .none, .gzip].enumerated() {
            var records: [Record] = []
            for offset in 0..<(10 + index * 20) {
                records.append(Record(
                    offset: Int64(offset), timestampMilliseconds: 1_732_300_000_000 + Int64(offset * 7 - (offset == 2 ? 20 : 0)),
                    key: offset == 3 ? nil : Array("gh-\(offset % 5)".utf8),
                    value: offset == 4 ? nil : Array("greenhouse,device=gh-\(offset % 5) t=21.\(offset),seq=\(offset)i".utf8),
                    headers: offset % 2 == 0 ? [RecordHeader(key: "gw", value: Array("edge".utf8)), RecordHeader(key: "nil", value: nil)] : []))
            }
            var batch = try RecordBatch.encode(
                records: records, producer: ProducerIdentity(producerId: 5, producerEpoch: 1, baseSequence: Int32(index * 100)),
                compression: codec)
            let baseOffset = Int64(index * 1000)
            RecordBatchValidation.setBaseOffset(baseOffset, in: &batch)
            RecordBatchValidation.setPartitionLeaderEpoch(3, in: &batch)
            log += batch
            expected.append(records.map { Record(offset: $0.offset + baseOffset, timestampMilliseconds: $0.timestampMilliseconds, key: $0.key, value: $0.value, headers: $0.headers) })
        }
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ours.bin")
        try Data(log).write(to: file)
        let batches = try JSONDecoder().decode([PythonBatch].self, from: try runScript("decode", file))
        try #require(batches.count == 3)
        for (index, batch) in batches.enumerated() {
            #expect(batch.crc_valid == true, "kafka-python says batch \(index) CRC is invalid")
            #expect(batch.base_offset == Int64(index * 1000))
            #expect(batch.compression == (index == 1 ? 0 : 1))
            #expect(batch.producer_id == 5 && batch.base_sequence == index * 100)
            #expect(batch.records == expected[index].map(describe))
        }
    }

    @Test func kafkaPythonBatchesDecodeWithOutpost() throws {
        let directory = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("theirs.bin")
        let described = try JSONDecoder().decode([PythonBatch].self, from: try runScript("encode", file))
        let bytes = [UInt8](try Data(contentsOf: file))
        var iterator = RecordBatchIterator(bytes)
        var decoded: [RecordBatch] = []
        while let (_, range) = iterator.next() {
            decoded.append(try RecordBatch.decode(Array(bytes[range])))
        }
        #expect(iterator.stopReason == nil, "stopped on \(String(describing: iterator.stopReason))")
        try #require(decoded.count == described.count)
        for (batch, expected) in zip(decoded, described) {
            #expect(batch.header.compression?.rawValue == Int16(expected.compression))
            #expect(batch.header.producer.producerId == expected.producer_id)
            #expect(Int(batch.header.producer.producerEpoch) == expected.producer_epoch)
            #expect(Int(batch.header.producer.baseSequence) == expected.base_sequence)
            #expect(batch.records.map(describe) == expected.records)
        }
    }
}
