import ArgumentParser
import Foundation
import Logging
import OutpostCore
import OutpostLog

/// `outpost log …`: inspect, verify, salvage and import partition logs.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect, verify, repair and import Outpost logs (segments of Kafka RecordBatch v2).",
        subcommands: [LogAppendCommand.self, LogDumpCommand.self, LogVerifyCommand.self])
}

struct LogAppendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append line protocol from stdin to a topic's log (key = the device tag), for imports and debugging.")

    @Option(name: .customLong("dir"), help: "Data directory (the log goes to DIR/topics/TOPIC-N/).")
    var dataDirectory: String

    @Option(help: "Topic name.")
    var topic: String = "telemetry"

    @Option(help: "Partition count of the topic.")
    var partitions: Int = 1

    @Option(help: "Timestamp unit of the input: ns, us, ms or s.")
    var precision: String = "ns"

    @Option(help: "Tag holding the device id (the record key).")
    var deviceTag: String = "device"

    @Option(help: "fsync policy: always, never, or interval(MS).")
    var fsync: String = "always"

    @Option(help: "Compression of each batch: gzip or none.")
    var compression: String = "gzip"

    @Option(name: .customLong("batch-records"), help: "Records per batch (per partition).")
    var batchRecords: Int = 1000

    @Flag(name: .customLong("report-committed"), help: "Print `committed PARTITION FIRST LAST` once each batch is fsynced.")
    var reportCommitted = false

    @Option(name: .customLong("segment-bytes"), help: "Roll segments beyond this size (default 128 MiB).")
    var segmentBytes: Int?

    @Option(name: .customLong("retention-bytes"), help: "Delete (recycle) oldest segments beyond this total size (default: no bound).")
    var retentionBytes: Int64?

    func validate() throws {
        guard TimestampPrecision(parsing: precision) != nil else { throw ValidationError("--precision must be one of ns, us, ms, s") }
        guard FsyncPolicy(parsing: fsync) != nil else { throw ValidationError("--fsync must be always, never or interval(MS)") }
        guard ["gzip", "none"].contains(compression) else { throw ValidationError("--compression must be gzip or none") }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        guard batchRecords >= 1 else { throw ValidationError("--batch-records must be at least 1") }
    }

    func run() throws {
        var configuration = LogConfiguration()
        configuration.fsync = FsyncPolicy(parsing: fsync) ?? .always
        if let segmentBytes { configuration.segmentBytesMax = segmentBytes }
        configuration.retentionBytes = retentionBytes
        let topicLog = try TopicLog(dataDirectory: dataDirectory, topic: topic, partitionCount: partitions, configuration: configuration)
        let parser = LineProtocolParser(precision: TimestampPrecision(parsing: precision) ?? .nanoseconds)
        let encoder = TelemetryRecordEncoder(deviceTag: deviceTag)
        let codec: CompressionCodec = compression == "gzip" ? .gzip : .none
        let compressor = try GzipCompressor(level: 1)
        var batcher = PartitionedBatcher(partitionCount: partitions, batchBytesMax: Int.max, batchRecordsMax: batchRecords)
        var appended = 0
        var rejected = 0
        let report = reportCommitted

        func store(_ ready: PartitionedBatcher.ReadyBatch) throws {
            var builder = ready.builder
            let batch = try builder.build(compression: codec, compressor: compressor)
            let log = topicLog.partitions[ready.partition]
            let result: AppendResult
            if report {
                let partition = ready.partition
                result = try log.append(batch) { outcome in
                    if case .success(let result) = outcome {
                        Output.line("committed \(partition) \(result.firstOffset) \(result.lastOffset)")
                    }
                }
            } else {
                result = try log.append(batch)
            }
            appended += Int(result.lastOffset - result.firstOffset) + 1
        }

        var buffer: [UInt8] = []
        var lineBase = 0
        var endOfInput = false
        var value: [UInt8] = []
        while !endOfInput {
            endOfInput = !StandardInput.read(appendingTo: &buffer)
            var consumed = 0
            var lastLine = 1
            var ready: [PartitionedBatcher.ReadyBatch] = []
            let receivedAt = Int64(Date().timeIntervalSince1970 * 1e9)
            buffer.withUnsafeBytes { raw in
                var cursor = LineProtocolCursor()
                while true {
                    let before = cursor
                    guard let entry = parser.nextEntry(in: raw, cursor: &cursor, deviceTagKey: encoder.deviceTagKey) else {
                        consumed = cursor.position
                        lastLine = cursor.line
                        break
                    }
                    if !entry.terminatedByNewline && !endOfInput && entry.bytes.count <= parser.limits.lineBytesMax {
                        consumed = before.position
                        lastLine = before.line
                        break
                    }
                    switch entry.layout {
                    case .success(let layout):
                        value.removeAll(keepingCapacity: true)
                        let (key, timestamp) = encoder.encode(entry: raw, layout: layout, receivedAtNanoseconds: receivedAt, value: &value)
                        if let batch = batcher.add(key: key, value: value, timestampMilliseconds: timestamp) { ready.append(batch) }
                    case .failure(var error):
                        error.line += lineBase
                        Output.error(PointJSON.encode(error))
                        rejected += 1
                    }
                    consumed = cursor.position
                    lastLine = cursor.line
                }
            }
            buffer.removeSubrange(..<consumed)
            lineBase += lastLine - 1
            for batch in ready { try store(batch) }
        }
        for batch in batcher.drain() { try store(batch) }
        try topicLog.close()
        Output.error("appended \(appended) records to \(topic) (\(partitions) partitions) in \(dataDirectory); rejected \(rejected) lines")
        if rejected > 0 { throw ExitCode(1) }
    }
}

struct LogDumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the batches (and records) of a segment file, partition directory or data directory, like kafka-dump-log.")

    @Argument(help: "A .log segment, a partition directory (TOPIC-N) or a data directory.")
    var path: String

    @Flag(help: "Print each record's offset, timestamp, key and headers.")
    var records = false

    @Flag(help: "With --records, also print keys and values (payloads).")
    var values = false

    func run() throws {
        var problems = 0
        var currentFile = ""
        try LogInspector.dump(path: path, decodeRecords: records) { batch in
            if batch.path != currentFile {
                currentFile = batch.path
                Output.line("Dumping \(batch.path)")
            }
            let header = batch.header
            let lastSequence = header.producer.baseSequence < 0 ? -1 : Int64(header.producer.baseSequence) + Int64(header.lastOffsetDelta)
            Output.line(
                "baseOffset: \(header.baseOffset) lastOffset: \(header.lastOffset) count: \(header.recordCount) "
                    + "baseSequence: \(header.producer.baseSequence) lastSequence: \(lastSequence) producerId: \(header.producer.producerId) "
                    + "producerEpoch: \(header.producer.producerEpoch) partitionLeaderEpoch: \(header.partitionLeaderEpoch) "
                    + "isTransactional: \(header.isTransactional) isControl: \(header.isControl) position: \(batch.position) "
                    + "\(header.isLogAppendTime ? "LogAppendTime" : "CreateTime"): \(header.maxTimestamp) size: \(header.totalSize) "
                    + "magic: \(header.magic) compresscodec: \(header.compression?.name ?? "unknown") crc: \(header.crc) isvalid: \(batch.crcValid)")
            if let error = batch.decodeError { Output.line("| error: \(error)") }
            for record in batch.records ?? [] {
                var line = "| offset: \(record.offset) CreateTime: \(record.timestampMilliseconds) keySize: \(record.key?.count ?? -1) valueSize: \(record.value?.count ?? -1)"
                line += " headerKeys: [\(record.headers.map(\.key).joined(separator: ","))]"
                if values {
                    line += " key: \(record.key.map { String(decoding: $0, as: UTF8.self) } ?? "null")"
                    line += " payload: \(record.value.map { String(decoding: $0, as: UTF8.self) } ?? "null")"
                }
                Output.line(line)
            }
        } onProblem: { problem in
            Output.error("problem: \(problem)")
            problems += 1
        }
        if problems > 0 { throw ExitCode(1) }
    }
}

struct LogVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every batch (CRC, lengths, offsets) and index of a log; exit 0 when intact, 1 otherwise.")

    @Argument(help: "A partition directory (TOPIC-N) or a data directory.")
    var path: String

    @Option(help: "Copy every intact batch into a new log under this directory, and report what could not be saved.")
    var salvage: String?

    func run() throws {
        var partitions = LogLayout.partitions(in: path).map { (name: "\($0.topic)-\($0.partition)", directory: $0.directory) }
        if partitions.isEmpty {
            let name = URL(fileURLWithPath: path).lastPathComponent
            partitions = [(name, path)]
        }
        var damaged = 0
        for partition in partitions {
            let check = try LogInspector.verify(partitionDirectory: partition.directory)
            let range = "\(check.firstOffset.map(String.init(describing:)) ?? "-")..<\(check.nextOffset.map(String.init(describing:)) ?? "-")"
            Output.line("\(partition.name): \(check.isIntact ? "ok" : "DAMAGED") segments=\(check.segmentCount) batches=\(check.batchCount) records=\(check.recordCount) bytes=\(check.bytes) offsets=\(range)")
            for problem in check.problems { Output.line("  problem: \(problem)") }
            if !check.isIntact { damaged += 1 }
            if let salvage {
                let destination = partitions.count == 1 && LogLayout.partitions(in: path).isEmpty
                    ? salvage : LogLayout.topicsDirectory(salvage) + "/" + partition.name
                let report = try LogInspector.salvage(partitionDirectory: partition.directory, into: destination)
                Output.line("  salvaged into \(destination): saved \(report.savedBatches) batches (\(report.savedBytes) bytes), lost \(report.lostBytes) bytes")
                for region in report.lostRegions {
                    let offsets = region.offsets.map { "offsets \($0.lowerBound)…\($0.upperBound)" } ?? "offsets unknown"
                    Output.line("  could not save: \(region.path) bytes \(region.position)..<\(region.position + region.length) (\(offsets))")
                }
            }
        }
        if damaged > 0 { throw ExitCode(1) }
    }
}
