import Foundation
import OutpostCore
import OutpostLog
import Testing

/// `outpost log append|dump|verify` as a user runs them.
@Suite struct LogCLITests {
    static let topic = "t"
    static let partitions = 2

    static func outpost(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(TestEnvironment.outpostBinary.path, arguments, stdin: stdin.map { Data($0.utf8) })
    }

    static func lines(_ count: Int) -> [String] {
        (0..<count).map { sequence in
            "env,device=dev-\(sequence % 5),room=r\(sequence % 2) temp=2\(sequence % 10).25,ok=true,seq=\(sequence)i \(1_732_300_000_000_000_000 + Int64(sequence) * 1_000_000)"
        }
    }

    static func device(of line: String) -> String {
        String(line.split(separator: ",")[1].dropFirst("device=".count))
    }

    static func partition(of line: String) -> Int {
        Partitioner.partition(forKey: Array(device(of: line).utf8), partitionCount: partitions)
    }

    /// A data directory filled by `outpost log append` with `lines`.
    static func appended(_ lines: [String], into root: URL, batchRecords: Int = 4) throws -> String {
        let data = root.appendingPathComponent("data").path
        let result = try outpost(
            ["log", "append", "--dir", data, "--topic", topic, "--partitions", String(partitions), "--batch-records", String(batchRecords)],
            stdin: lines.map { $0 + "\n" }.joined())
        try #require(result.status == 0, "append failed: \(result.stderr)")
        #expect(result.stderr.contains("appended \(lines.count) records"), "\(result.stderr)")
        return data
    }

    /// `| offset: …` lines of a dump, per segment file, as (offset, key, payload).
    static func dumpedRecords(_ output: String) -> [String: [(offset: Int64, key: String, payload: String)]] {
        var result: [String: [(offset: Int64, key: String, payload: String)]] = [:]
        var file = ""
        for line in output.split(separator: "\n").map(String.init) {
            if line.hasPrefix("Dumping ") {
                file = String(line.dropFirst("Dumping ".count))
            } else if line.hasPrefix("| offset: ") {
                let offset = Int64(line.dropFirst("| offset: ".count).prefix { $0 != " " }) ?? -1
                guard let keyRange = line.range(of: " key: "), let payloadRange = line.range(of: " payload: ") else { continue }
                let key = String(line[keyRange.upperBound..<payloadRange.lowerBound])
                result[file, default: []].append((offset, key, String(line[payloadRange.upperBound...])))
            }
        }
        return result
    }

    @Test func dumpPrintsEveryRecordWithKeysAndValues() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let lines = Self.lines(37)
        let data = try Self.appended(lines, into: root)

        let dump = try Self.outpost(["log", "dump", data, "--records", "--values"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let dumped = Self.dumpedRecords(dump.stdoutText)
        for partition in 0..<Self.partitions {
            let path = LogLayout.partitionDirectory(data, topic: Self.topic, partition: partition) + "/" + SegmentNames.log(0)
            let wanted = lines.filter { Self.partition(of: $0) == partition }
            let got = dumped[path] ?? []
            #expect(got.map(\.offset) == Array(0..<Int64(wanted.count)), "partition \(partition)")
            #expect(got.map(\.payload) == wanted, "partition \(partition)")
            #expect(got.map(\.key) == wanted.map(Self.device(of:)), "partition \(partition)")
        }
        // Batch lines carry the header fields, like kafka-dump-log.
        let batchLines = dump.stdoutText.split(separator: "\n").filter { $0.hasPrefix("baseOffset: ") }
        let batchCount = (0..<Self.partitions).reduce(0) { total, partition in
            total + (lines.filter { Self.partition(of: $0) == partition }.count + 3) / 4
        }
        #expect(batchLines.count == batchCount)
        #expect(batchLines.allSatisfy { $0.contains("isvalid: true") && $0.contains("compresscodec: gzip") })

        // Without --records, only batches; without --values, no payloads.
        let batchesOnly = try Self.outpost(["log", "dump", data])
        #expect(batchesOnly.status == 0)
        #expect(!batchesOnly.stdoutText.contains("| offset:"))
        let noValues = try Self.outpost(["log", "dump", data, "--records"])
        #expect(noValues.stdoutText.contains("| offset: 0"))
        #expect(!noValues.stdoutText.contains("payload:"))
        // One segment file works too.
        let onePath = LogLayout.partitionDirectory(data, topic: Self.topic, partition: 0) + "/" + SegmentNames.log(0)
        let one = try Self.outpost(["log", "dump", onePath, "--records", "--values"])
        #expect(Self.dumpedRecords(one.stdoutText)[onePath]?.map(\.payload) == lines.filter { Self.partition(of: $0) == 0 })
    }

    @Test func verifyExitsZeroOnAGoodLog() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let lines = Self.lines(50)
        let data = try Self.appended(lines, into: root)
        let verify = try Self.outpost(["log", "verify", data])
        #expect(verify.status == 0, "\(verify.stdoutText)\(verify.stderr)")
        for partition in 0..<Self.partitions {
            let count = lines.filter { Self.partition(of: $0) == partition }.count
            #expect(verify.stdoutText.contains("\(Self.topic)-\(partition): ok segments=1"), "\(verify.stdoutText)")
            #expect(verify.stdoutText.contains("records=\(count) "), "\(verify.stdoutText)")
            #expect(verify.stdoutText.contains("offsets=0..<\(count)"), "\(verify.stdoutText)")
        }
        #expect(!verify.stdoutText.contains("problem"))
        // A single partition directory works as well.
        let one = try Self.outpost(["log", "verify", LogLayout.partitionDirectory(data, topic: Self.topic, partition: 1)])
        #expect(one.status == 0)
        #expect(one.stdoutText.contains(": ok "))
    }

    @Test func verifyExitsOneOnADamagedLogNamesTheProblemAndSalvages() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let lines = Self.lines(60)
        let data = try Self.appended(lines, into: root)
        let partitionDirectory = LogLayout.partitionDirectory(data, topic: Self.topic, partition: 0)
        let segment = partitionDirectory + "/" + SegmentNames.log(0)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
        // Damage a byte inside the second batch's records.
        let firstSize = try RecordBatchHeader(bytes: bytes).totalSize
        let secondSize = try RecordBatchHeader(bytes: bytes, at: firstSize).totalSize
        bytes[firstSize + RecordBatchLayout.headerSize + 5] ^= 0x5A
        try Data(bytes).write(to: URL(fileURLWithPath: segment))

        let verify = try Self.outpost(["log", "verify", data])
        #expect(verify.status == 1)
        #expect(verify.stdoutText.contains("\(Self.topic)-0: DAMAGED"), "\(verify.stdoutText)")
        #expect(verify.stdoutText.contains("\(Self.topic)-1: ok"), "\(verify.stdoutText)")
        let problems = verify.stdoutText.split(separator: "\n").filter { $0.contains("problem:") }
        #expect(problems.contains { $0.contains(segment) && $0.contains("at byte \(firstSize)") && $0.contains("CRC-32C mismatch") }, "\(problems)")

        // --salvage: every intact batch into a new log, which verifies.
        let salvaged = root.appendingPathComponent("salvaged").path
        let salvage = try Self.outpost(["log", "verify", data, "--salvage", salvaged])
        #expect(salvage.status == 1, "the source is still damaged")
        #expect(salvage.stdoutText.contains("salvaged into"), "\(salvage.stdoutText)")
        #expect(salvage.stdoutText.contains("lost \(secondSize) bytes"), "\(salvage.stdoutText)")
        #expect(salvage.stdoutText.contains("could not save: \(segment) bytes \(firstSize)..<\(firstSize + secondSize) (offsets 4…7)"), "\(salvage.stdoutText)")
        let reverify = try Self.outpost(["log", "verify", salvaged])
        #expect(reverify.status == 0, "\(reverify.stdoutText)")
        #expect(reverify.stdoutText.contains("\(Self.topic)-0: ok"))
        #expect(reverify.stdoutText.contains("\(Self.topic)-1: ok"))

        // The salvaged partition opens and holds everything but the damaged batch, at the original offsets.
        let log = try PartitionLog.open(directory: LogLayout.partitionDirectory(salvaged, topic: Self.topic, partition: 0))
        defer { try? log.close() }
        let wanted = lines.filter { Self.partition(of: $0) == 0 }
        #expect(log.logEndOffset == Offset(Int64(wanted.count)))
        var values: [Int64: String] = [:]
        var next = log.logStartOffset
        while next < log.logEndOffset {
            let result = try log.read(from: next, maxBytes: 1 << 20)
            var iterator = RecordBatchIterator(result.bytes)
            while let (_, range) = iterator.next() {
                for record in try RecordBatch.decode(Array(result.bytes[range])).records {
                    values[record.offset] = String(decoding: record.value ?? [], as: UTF8.self)
                }
            }
            next = result.nextOffset
        }
        for (offset, line) in wanted.enumerated() {
            #expect(values[Int64(offset)] == ((4...7).contains(offset) ? nil : line), "offset \(offset)")
        }
    }

    @Test func verifyNamesATornTail() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let data = try Self.appended(Self.lines(30), into: root)
        let segment = LogLayout.partitionDirectory(data, topic: Self.topic, partition: 1) + "/" + SegmentNames.log(0)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
        try Data(bytes.dropLast(9)).write(to: URL(fileURLWithPath: segment))
        let verify = try Self.outpost(["log", "verify", data])
        #expect(verify.status == 1)
        #expect(verify.stdoutText.contains("\(Self.topic)-1: DAMAGED"))
        #expect(verify.stdoutText.contains("torn batch"), "\(verify.stdoutText)")
    }

    @Test func appendRejectsBadLinesWithExitOneAndStoresTheGoodOnes() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        var input = Self.lines(20)
        let bad = [3: "this is not line protocol", 8: "env,device=dev-1 temp= 1732300000000000000", 15: "env,device=dev-2 temp=1.5 notatimestamp"]
        for (index, line) in bad.sorted(by: { $0.key < $1.key }) { input.insert(line, at: index) }
        let good = input.enumerated().filter { bad[$0.offset] == nil }.map(\.element)
        let data = root.appendingPathComponent("data").path
        let result = try Self.outpost(
            ["log", "append", "--dir", data, "--topic", Self.topic, "--partitions", String(Self.partitions), "--batch-records", "3"],
            stdin: input.map { $0 + "\n" }.joined())
        #expect(result.status == 1)
        #expect(result.stderr.contains("appended \(good.count) records"), "\(result.stderr)")
        #expect(result.stderr.contains("rejected \(bad.count) lines"), "\(result.stderr)")
        // Each rejection is reported with its line number (1-based).
        for index in bad.keys {
            #expect(result.stderr.contains("\"line\":\(index + 1),"), "line \(index + 1) not reported: \(result.stderr)")
        }
        // The good lines are stored, in order, per partition.
        let dump = try Self.outpost(["log", "dump", data, "--records", "--values"])
        let dumped = Self.dumpedRecords(dump.stdoutText)
        for partition in 0..<Self.partitions {
            let path = LogLayout.partitionDirectory(data, topic: Self.topic, partition: partition) + "/" + SegmentNames.log(0)
            #expect(dumped[path]?.map(\.payload) ?? [] == good.filter { Self.partition(of: $0) == partition }, "partition \(partition)")
        }
        #expect(try Self.outpost(["log", "verify", data]).status == 0)
    }

    @Test func appendRefusesBadOptions() throws {
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data").path
        for arguments in [["--fsync", "sometimes"], ["--partitions", "0"], ["--compression", "zstd"], ["--batch-records", "0"]] {
            let result = try Self.outpost(["log", "append", "--dir", data] + arguments, stdin: "")
            #expect(result.status != 0, "\(arguments) accepted")
        }
        let badTopic = try Self.outpost(["log", "append", "--dir", data, "--topic", "no/slash"], stdin: "m,device=a v=1 1\n")
        #expect(badTopic.status != 0)
    }
}
