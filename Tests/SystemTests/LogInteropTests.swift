import Foundation
import OutpostCore
import OutpostLog
import Testing

/// Segments written by the log are plain RecordBatch v2 files: kafka-python's record decoder
/// (`kafka.record.MemoryRecords` over the raw `.log` bytes) reads them back with the same offsets, keys,
/// values, headers and timestamps, and finds every CRC valid.
@Suite struct LogInteropTests {
    struct PythonBatch: Decodable {
        var base_offset: Int64
        var crc_valid: Bool
        var compression: Int
        var leader_epoch: Int32
        var max_timestamp: Int64
        var records: [PythonRecord]
    }

    struct PythonRecord: Decodable, Equatable, CustomStringConvertible {
        var offset: Int64
        var timestamp: Int64
        var key: String?
        var value: String?
        var headers: [[String?]]
        var description: String { "offset \(offset) ts \(timestamp) key \(key ?? "null") value \(value?.prefix(40) ?? "null") headers \(headers)" }
    }

    static let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Interop/kafka_records.py").path

    static func decodeWithKafkaPython(_ path: String) throws -> [PythonBatch] {
        let result = try runProcess(try python3(), [script, "decode", path])
        if result.status == 3 { Issue.record("kafka-python is missing: \(result.stderr)") }
        try #require(result.status == 0, "kafka_records.py decode \(path) failed: \(result.stderr)")
        return try JSONDecoder().decode([PythonBatch].self, from: result.stdout)
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func describe(_ record: Record) -> PythonRecord {
        PythonRecord(
            offset: record.offset, timestamp: record.timestampMilliseconds, key: record.key.map(hex), value: record.value.map(hex),
            headers: record.headers.map { [$0.key, $0.value.map(hex)] })
    }

    @Test func segmentsWrittenByTheLogDecodeWithKafkaPython() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("interop-0").path
        var configuration = LogConfiguration()
        configuration.segmentBytesMax = 4096
        configuration.fsync = .never
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        // What each offset must hold: the records as built, with the offsets the log assigned.
        var expected: [Int64: Record] = [:]
        var epochs: [Int64: Int32] = [:]
        var compressions: [Int64: Int] = [:]
        for index in 0..<60 {
            var records: [Record] = []
            for recordIndex in 0..<(1 + index % 9) {
                let device = "gh-\((index + recordIndex) % 5)"
                records.append(Record(
                    offset: Int64(recordIndex),
                    // Out of order now and then: a late reading inside the batch.
                    timestampMilliseconds: 1_732_300_000_000 + Int64(index * 100 + recordIndex * 3 - (recordIndex == 2 ? 50 : 0)),
                    key: index % 11 == 0 && recordIndex == 0 ? nil : Array(device.utf8),
                    value: index % 13 == 0 && recordIndex == 1 ? nil
                        : Array("greenhouse,device=\(device) t=2\(recordIndex).\(index),seq=\(index * 10 + recordIndex)i \(1_732_300_000_000_000_000 + index)".utf8),
                    headers: recordIndex % 2 == 0 ? [RecordHeader(key: "gateway", value: Array("edge-1".utf8)), RecordHeader(key: "none", value: nil)] : []))
            }
            let batch = try RecordBatch.encode(records: records, compression: index % 2 == 0 ? .gzip : .none)
            let epoch: Int32? = index < 30 ? nil : 7
            let result = try log.append(batch, partitionLeaderEpoch: epoch)
            for (position, record) in records.enumerated() {
                var stored = record
                stored.offset = result.firstOffset.rawValue + Int64(position)
                expected[stored.offset] = stored
            }
            epochs[result.firstOffset.rawValue] = epoch ?? -1
            compressions[result.firstOffset.rawValue] = index % 2 == 0 ? 1 : 0
        }
        let end = log.logEndOffset.rawValue
        try log.close()

        let segments = try LogInspector.segmentFiles(in: directory)
        #expect(segments.count > 3, "the test wants several segments")
        var seenOffsets: [Int64] = []
        for segment in segments {
            let batches = try Self.decodeWithKafkaPython(segment.path)
            #expect(!batches.isEmpty)
            #expect(batches.first?.base_offset == segment.base.rawValue, "\(segment.path) starts at its base offset")
            for batch in batches {
                #expect(batch.crc_valid, "\(segment.path): batch \(batch.base_offset) CRC")
                #expect(batch.leader_epoch == epochs[batch.base_offset], "batch \(batch.base_offset) leader epoch")
                #expect(batch.compression == compressions[batch.base_offset], "batch \(batch.base_offset) codec")
                #expect(batch.max_timestamp == batch.records.map(\.timestamp).max())
                for record in batch.records {
                    seenOffsets.append(record.offset)
                    guard let want = expected[record.offset] else {
                        Issue.record("kafka-python found offset \(record.offset), which was never appended")
                        continue
                    }
                    #expect(record == Self.describe(want))
                }
            }
        }
        #expect(seenOffsets == Array(0..<end), "kafka-python must see every offset once, in order")
    }

    @Test func segmentsWrittenByTheCLIDecodeWithKafkaPython() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let lines = (0..<500).map { sequence in
            "soil,device=plot-\(sequence % 7),farm=east moisture=\(sequence % 90).5,seq=\(sequence)i \(1_732_300_000_000_000_000 + Int64(sequence) * 1_000_000)"
        }
        let result = try runProcess(
            TestEnvironment.outpostBinary.path,
            ["log", "append", "--dir", root.path, "--topic", "soil", "--partitions", "2", "--batch-records", "25", "--fsync", "never"],
            stdin: Data(lines.map { $0 + "\n" }.joined().utf8))
        try #require(result.status == 0, "outpost log append failed: \(result.stderr)")
        for partition in 0..<2 {
            let wanted = lines.filter {
                let device = String($0.split(separator: ",")[1].dropFirst("device=".count))
                return Partitioner.partition(forKey: Array(device.utf8), partitionCount: 2) == partition
            }
            let directory = LogLayout.partitionDirectory(root.path, topic: "soil", partition: partition)
            var values: [String] = []
            var offsets: [Int64] = []
            for segment in try LogInspector.segmentFiles(in: directory) {
                for batch in try Self.decodeWithKafkaPython(segment.path) {
                    #expect(batch.crc_valid)
                    #expect(batch.compression == 1, "the CLI writes gzip batches")
                    for record in batch.records {
                        offsets.append(record.offset)
                        values.append(String(decoding: Self.bytes(fromHex: record.value ?? ""), as: UTF8.self))
                        let line = wanted[Int(record.offset)]
                        let nanoseconds = Int64(line.split(separator: " ").last!)!
                        #expect(record.timestamp == nanoseconds / 1_000_000)
                    }
                }
            }
            #expect(values == wanted, "partition \(partition)")
            #expect(offsets == Array(0..<Int64(wanted.count)))
        }
    }

    static func bytes(fromHex text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}
