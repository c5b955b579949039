import OutpostCore
import OutpostLog

/// One record of a topic, wherever it was read from.
public struct TopicRecord: Sendable, Hashable {
    public var partition: Int
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var timestampMilliseconds: Int64
    public var headers: [RecordHeader]

    public init(partition: Int, offset: Int64, key: [UInt8]?, value: [UInt8]?, timestampMilliseconds: Int64, headers: [RecordHeader] = []) {
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestampMilliseconds = timestampMilliseconds
        self.headers = headers
    }

    public init(partition: Int, _ record: Record) {
        self.init(
            partition: partition, offset: record.offset, key: record.key, value: record.value,
            timestampMilliseconds: record.timestampMilliseconds, headers: record.headers)
    }

    /// A gateway's declaration of data it dropped (see `GapMarker`): not a reading.
    var isGapMarker: Bool { headers.contains { $0.key == GapMarker.headerKey } }
}

/// Where `outpost verify` reads a topic from: a log directory (`LogTopicSource`) or a Kafka-protocol
/// broker (`KafkaTopicSource`). A source hands over records partition by partition, each partition in
/// offset order (per-device order is only defined within a partition), a batch at a time, so memory
/// stays bounded whatever the topic's size.
public protocol TopicSource: Sendable {
    /// For reports: "log /data, topic telemetry".
    var sourceDescription: String { get }
    /// Calls `visit` with successive batches of records until the topic's end (for a live source: the
    /// end as of the start of the read).
    func readRecords(_ visit: ([TopicRecord]) -> Void) async throws(SimulatorError)
}

/// A topic in an Outpost data directory (`DATA/topics/TOPIC-N/`), read without opening the logs for
/// writing: nothing is recovered or truncated, so it is safe beside a running gateway. An unreadable batch
/// ends that partition's read and is reported in `problems`.
public final class LogTopicSource: TopicSource, @unchecked Sendable {
    // @unchecked: `problems` is written only during `readRecords`, read after it.
    public let dataDirectory: String
    public let topic: String
    public private(set) var problems: [String] = []

    public init(dataDirectory: String, topic: String) {
        self.dataDirectory = dataDirectory
        self.topic = topic
    }

    public var sourceDescription: String { "log \(dataDirectory), topic \(topic)" }

    public func readRecords(_ visit: ([TopicRecord]) -> Void) async throws(SimulatorError) {
        let partitions = LogLayout.partitions(in: dataDirectory).filter { $0.topic == topic }
        guard !partitions.isEmpty else {
            throw .source("no partitions of topic '\(topic)' under \(LogLayout.topicsDirectory(dataDirectory))")
        }
        for partition in partitions {
            do {
                try LogInspector.dump(path: partition.directory, decodeRecords: true) { batch in
                    if let error = batch.decodeError { problems.append("\(batch.path) at byte \(batch.position): \(error)") }
                    guard let records = batch.records else { return }
                    visit(records.map { TopicRecord(partition: partition.partition, $0) })
                } onProblem: { problem in
                    problems.append(problem.description)
                }
            } catch {
                throw .source("reading \(partition.directory): \(error)")
            }
        }
    }
}

/// Checks the records of a topic against a manifest: per device, which sequence numbers are missing,
/// duplicated or out of order. Pure; feed it records with `observe` and ask for the `report`.
public struct SequenceChecker: Sendable {
    struct DeviceState: Sendable {
        var manifest: Manifest.Device
        /// Bit per sequence number up to the highest the manifest knows.
        var seen: [UInt64]
        var seenCount: Int64 = 0
        var duplicates = SequenceRanges()
        var duplicateCount: Int64 = 0
        var outOfOrder: Int64 = 0
        var highest: Int64 = -1
        var unexpected = SequenceRanges()
    }

    let deviceTag: String
    let runTag: String?
    var devices: [String: DeviceState] = [:]
    public private(set) var recordsRead: Int64 = 0
    public private(set) var recordsWithoutSeq: Int64 = 0
    public private(set) var recordsOfUnknownDevices: Int64 = 0
    public private(set) var recordsOfOtherRuns: Int64 = 0
    public private(set) var unreadableRecords: Int64 = 0
    public private(set) var gapMarkers: Int64 = 0
    /// Records the gateways declared dropped (the sum of the markers' `records`).
    public private(set) var declaredDroppedRecords: Int64 = 0
    /// Per device, the `seq` ranges gap markers declared dropped.
    var declaredDrops: [String: SequenceRanges] = [:]
    var seenGapMarkers: Set<String> = []
    let parser = LineProtocolParser()
    let deviceTagKey: [UInt8]
    let runTagValue: [UInt8]?
    static let seqFieldKey = Array("seq".utf8)
    static let runTagKey = Array("run".utf8)

    /// What one record says, read without building a Point.
    enum Reading {
        case unreadable
        case withoutSeq
        case otherRun
        case reading(deviceID: String, seq: Int64)
    }

    /// - Parameter runTag: when set, only records whose `run` tag has this value count (others are
    ///   counted as other runs).
    public init(manifest: Manifest, deviceTag: String = "device", runTag: String? = nil) {
        self.deviceTag = deviceTag
        self.runTag = runTag
        deviceTagKey = Array(deviceTag.utf8)
        runTagValue = runTag.map { Array($0.utf8) }
        for device in manifest.devices {
            let highest = max(device.sent.ranges.last?.upperBound ?? -1, device.failed.ranges.last?.upperBound ?? -1)
            devices[device.device] = DeviceState(manifest: device, seen: Array(repeating: 0, count: Int((highest + 64) / 64)))
        }
    }

    public mutating func observe(_ record: TopicRecord) {
        recordsRead += 1
        if record.isGapMarker {
            observeGapMarker(record)
            return
        }
        guard let value = record.value else {
            unreadableRecords += 1
            return
        }
        // Decoded in place: only the seq field and two tags are read, so no Point is built.
        let reading: Reading = value.withUnsafeBytes { buffer in
            guard let point = try? parser.decodePoint(line: buffer) else { return .unreadable }
            let seq: Int64
            switch point.fieldValue(Self.seqFieldKey, in: buffer) {
            case .int(let number)?: seq = number
            case .uint(let number)? where number <= UInt64(Int64.max): seq = Int64(number)
            case .float(let number)? where number >= 0 && number < 9e15 && number == number.rounded(): seq = Int64(number)
            default: return .withoutSeq
            }
            if let runTagValue, point.tagValue(Self.runTagKey, in: buffer)?.equals(runTagValue, in: buffer) != true {
                return .otherRun
            }
            let deviceID = point.tagValue(deviceTagKey, in: buffer)?.string(in: buffer)
                ?? record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
            return .reading(deviceID: deviceID, seq: seq)
        }
        let deviceID: String
        let seq: Int64
        switch reading {
        case .unreadable:
            unreadableRecords += 1
            return
        case .withoutSeq:
            recordsWithoutSeq += 1
            return
        case .otherRun:
            recordsOfOtherRuns += 1
            return
        case .reading(let device, let number):
            deviceID = device
            seq = number
        }
        guard devices[deviceID] != nil else {
            recordsOfUnknownDevices += 1
            return
        }
        devices[deviceID]!.observe(seq: seq)
    }

    public mutating func observe(_ records: [TopicRecord]) {
        for record in records { observe(record) }
    }

    /// A gap marker (see `GapMarker`). One that cannot be read is counted as unreadable: its drop stays
    /// undeclared. A marker can arrive more than once (the gateway carries a marker forward when the
    /// segment holding it is dropped in turn, and it may have been sent already): one declaration per
    /// gateway, partition and offset range.
    mutating func observeGapMarker(_ record: TopicRecord) {
        guard let value = record.value, let gap = GapMarker.description(from: value) else {
            unreadableRecords += 1
            return
        }
        guard seenGapMarkers.insert("\(gap.gatewayId)/\(gap.partition)/\(gap.offsets)").inserted else { return }
        gapMarkers += 1
        declaredDroppedRecords += Int64(gap.records)
        for (device, range) in gap.devices { declaredDrops[device, default: SequenceRanges()].insert(range) }
    }

    public func report() -> VerificationReport {
        var report = VerificationReport()
        report.recordsRead = recordsRead
        report.recordsWithoutSeq = recordsWithoutSeq
        report.recordsOfUnknownDevices = recordsOfUnknownDevices
        report.recordsOfOtherRuns = recordsOfOtherRuns
        report.unreadableRecords = unreadableRecords
        report.gapMarkers = gapMarkers
        report.declaredDroppedRecords = declaredDroppedRecords
        for (id, state) in devices.sorted(by: { $0.key < $1.key }) {
            let present = state.presentRanges()
            let declared = declaredDrops[id] ?? SequenceRanges()
            var device = VerificationReport.Device(device: id, fleet: state.manifest.fleet)
            device.acknowledged = state.manifest.acked.count
            device.sent = state.manifest.sent.count
            device.present = state.seenCount
            // A declared drop is reported, not counted as lost: the gateway said what it dropped and why.
            let missing = state.manifest.sent.subtracting(present)
            device.declaredDropped = missing.subtracting(missing.subtracting(declared))
            device.missingAcknowledged = state.manifest.acked.subtracting(present).subtracting(declared)
            device.missingUnacknowledged = state.manifest.sent.subtracting(state.manifest.acked).subtracting(present).subtracting(declared)
            device.duplicated = state.duplicates
            device.duplicateRecords = state.duplicateCount
            device.outOfOrder = state.outOfOrder
            device.unexpected = state.unexpected
            device.deliveredDespiteFailure = state.manifest.failed.subtracting(state.manifest.failed.subtracting(present)).count
            device.deliberatelyReordered = Int64(state.manifest.reordered + state.manifest.late)
            report.devices.append(device)
        }
        return report
    }
}

extension SequenceChecker.DeviceState {
    mutating func observe(seq: Int64) {
        if seq < highest { outOfOrder += 1 }
        highest = max(highest, seq)
        guard seq >= 0, seq < Int64(seen.count) * 64 else {
            if unexpected.contains(seq) {
                duplicates.insert(seq)
                duplicateCount += 1
            }
            unexpected.insert(seq)
            return
        }
        let word = Int(seq / 64)
        let bit = UInt64(1) << UInt64(seq % 64)
        if seen[word] & bit != 0 {
            duplicates.insert(seq)
            duplicateCount += 1
            return
        }
        seen[word] |= bit
        seenCount += 1
        if !manifest.sent.contains(seq) && !manifest.failed.contains(seq) { unexpected.insert(seq) }
    }

    func presentRanges() -> SequenceRanges {
        var ranges = SequenceRanges()
        for (word, bits) in seen.enumerated() where bits != 0 {
            for bit in 0..<64 where bits & (UInt64(1) << UInt64(bit)) != 0 {
                ranges.insert(Int64(word * 64 + bit))
            }
        }
        return ranges
    }
}

/// The verifier's answer. `passed`: no acknowledged send is missing and no sequence number appears twice
/// (with `requireAllSent`, no sent point may be missing either — for paths without acknowledgements, such
/// as TCP, when no process crashed).
public struct VerificationReport: Sendable {
    public struct Device: Sendable {
        public var device: String
        public var fleet: String
        public var sent: Int64 = 0
        public var acknowledged: Int64 = 0
        public var present: Int64 = 0
        public var missingAcknowledged = SequenceRanges()
        public var missingUnacknowledged = SequenceRanges()
        public var duplicated = SequenceRanges()
        public var duplicateRecords: Int64 = 0
        public var outOfOrder: Int64 = 0
        public var unexpected = SequenceRanges()
        /// Sends recorded as failed that arrived anyway (a write that failed after the target took it).
        public var deliveredDespiteFailure: Int64 = 0
        /// Points the simulator sent late or out of order on purpose (from the manifest).
        public var deliberatelyReordered: Int64 = 0
        /// Missing sequence numbers a gateway's gap marker declared dropped (disk budget, drop-oldest).
        public var declaredDropped = SequenceRanges()

        var hasProblem: Bool {
            !missingAcknowledged.isEmpty || !missingUnacknowledged.isEmpty || !duplicated.isEmpty || outOfOrder > 0 || !unexpected.isEmpty
        }
    }

    public var devices: [Device] = []
    public var recordsRead: Int64 = 0
    public var recordsWithoutSeq: Int64 = 0
    public var recordsOfUnknownDevices: Int64 = 0
    public var recordsOfOtherRuns: Int64 = 0
    public var unreadableRecords: Int64 = 0
    public var gapMarkers: Int64 = 0
    public var declaredDroppedRecords: Int64 = 0
    public var sourceProblems: [String] = []

    public var missingAcknowledged: Int64 { devices.reduce(0) { $0 + $1.missingAcknowledged.count } }
    public var missingUnacknowledged: Int64 { devices.reduce(0) { $0 + $1.missingUnacknowledged.count } }
    public var duplicated: Int64 { devices.reduce(0) { $0 + $1.duplicated.count } }
    public var outOfOrder: Int64 { devices.reduce(0) { $0 + $1.outOfOrder } }
    public var unexpected: Int64 { devices.reduce(0) { $0 + $1.unexpected.count } }
    public var declaredDropped: Int64 { devices.reduce(0) { $0 + $1.declaredDropped.count } }
    public var deliberatelyReordered: Int64 { devices.reduce(0) { $0 + $1.deliberatelyReordered } }
    /// Out-of-order arrivals beyond what the simulator sent late or reordered on purpose, per device.
    public var unexplainedOutOfOrder: Int64 { devices.reduce(0) { $0 + max(0, $1.outOfOrder - $1.deliberatelyReordered) } }
    public var present: Int64 { devices.reduce(0) { $0 + $1.present } }
    public var sent: Int64 { devices.reduce(0) { $0 + $1.sent } }
    public var acknowledged: Int64 { devices.reduce(0) { $0 + $1.acknowledged } }

    public func passed(requireAllSent: Bool = false) -> Bool {
        missingAcknowledged == 0 && duplicated == 0 && (!requireAllSent || missingUnacknowledged == 0)
    }

    /// Human-readable: one line per device with a problem (the first `deviceLinesMax`), then totals.
    public func text(requireAllSent: Bool = false, deviceLinesMax: Int = 50) -> String {
        var lines: [String] = []
        let troubled = devices.filter(\.hasProblem)
        for device in troubled.prefix(deviceLinesMax) {
            var parts = ["\(device.device) (\(device.fleet)): present \(device.present)/\(device.sent)"]
            if !device.missingAcknowledged.isEmpty { parts.append("MISSING acknowledged \(device.missingAcknowledged.count) [\(abbreviated(device.missingAcknowledged))]") }
            if !device.missingUnacknowledged.isEmpty { parts.append("missing unacknowledged \(device.missingUnacknowledged.count) [\(abbreviated(device.missingUnacknowledged))]") }
            if !device.duplicated.isEmpty { parts.append("DUPLICATED \(device.duplicated.count) [\(abbreviated(device.duplicated))]") }
            if device.outOfOrder > 0 { parts.append("out of order \(device.outOfOrder) (\(device.deliberatelyReordered) sent late or reordered on purpose)") }
            if !device.unexpected.isEmpty { parts.append("not in the manifest \(device.unexpected.count) [\(abbreviated(device.unexpected))]") }
            lines.append(parts.joined(separator: "; "))
        }
        if troubled.count > deviceLinesMax { lines.append("… and \(troubled.count - deviceLinesMax) more devices with problems") }
        for problem in sourceProblems.prefix(10) { lines.append("source problem: \(problem)") }
        lines.append("devices \(devices.count), records read \(recordsRead) (without seq \(recordsWithoutSeq), unknown devices \(recordsOfUnknownDevices), other runs \(recordsOfOtherRuns), unreadable \(unreadableRecords))")
        if gapMarkers > 0 {
            lines.append("gap markers \(gapMarkers): \(declaredDroppedRecords) records declared dropped by gateways, \(declaredDropped) of the manifest's sequence numbers among them")
        }
        lines.append("sent \(sent), acknowledged \(acknowledged), present \(present); missing acknowledged \(missingAcknowledged), missing unacknowledged \(missingUnacknowledged), duplicated \(duplicated), out of order \(outOfOrder), not in manifest \(unexpected)")
        lines.append(passed(requireAllSent: requireAllSent) ? "PASS" : "FAIL")
        return lines.joined(separator: "\n")
    }

    public func json(requireAllSent: Bool = false) -> String {
        let deviceEntries = devices.filter(\.hasProblem).map { device in
            "{\"device\":\(PayloadEncoder.jsonString(device.device)),\"fleet\":\(PayloadEncoder.jsonString(device.fleet)),\"sent\":\(device.sent),\"acknowledged\":\(device.acknowledged),\"present\":\(device.present),"
                + "\"missing_acknowledged\":\"\(device.missingAcknowledged)\",\"missing_unacknowledged\":\"\(device.missingUnacknowledged)\",\"duplicated\":\"\(device.duplicated)\","
                + "\"out_of_order\":\(device.outOfOrder),\"not_in_manifest\":\"\(device.unexpected)\"}"
        }
        return "{\"passed\":\(passed(requireAllSent: requireAllSent)),\"devices\":\(devices.count),\"records_read\":\(recordsRead),\"records_without_seq\":\(recordsWithoutSeq),"
            + "\"records_of_unknown_devices\":\(recordsOfUnknownDevices),\"records_of_other_runs\":\(recordsOfOtherRuns),\"unreadable_records\":\(unreadableRecords),"
            + "\"sent\":\(sent),\"acknowledged\":\(acknowledged),\"present\":\(present),\"missing_acknowledged\":\(missingAcknowledged),\"missing_unacknowledged\":\(missingUnacknowledged),"
            + "\"duplicated\":\(duplicated),\"out_of_order\":\(outOfOrder),\"not_in_manifest\":\(unexpected),"
            + "\"deliberately_reordered\":\(deliberatelyReordered),\"unexplained_out_of_order\":\(unexplainedOutOfOrder),"
            + "\"gap_markers\":\(gapMarkers),\"declared_dropped_records\":\(declaredDroppedRecords),\"declared_dropped\":\(declaredDropped),"
            + "\"source_problems\":[\(sourceProblems.map(PayloadEncoder.jsonString).joined(separator: ","))],\"problem_devices\":[\(deviceEntries.joined(separator: ","))]}"
    }

    private func abbreviated(_ ranges: SequenceRanges) -> String {
        let text = ranges.description
        return text.count > 80 ? String(text.prefix(77)) + "…" : text
    }
}

/// Reads a whole source through a checker.
public enum Verifier {
    public static func verify(source: some TopicSource, manifest: Manifest, deviceTag: String = "device", runTag: String? = nil) async throws(SimulatorError) -> VerificationReport {
        var checker = SequenceChecker(manifest: manifest, deviceTag: deviceTag, runTag: runTag)
        try await source.readRecords { records in checker.observe(records) }
        var report = checker.report()
        if let log = source as? LogTopicSource { report.sourceProblems = log.problems }
        if let broker = source as? KafkaTopicSource { report.sourceProblems = broker.problems }
        return report
    }
}
