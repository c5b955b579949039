import Foundation
import OutpostCore

/// What a simulation sent, per device, for `outpost verify` and for alert tests: a JSON Lines file.
///
/// Line 1 is the header; then one line per device; sequence-number sets are compact range strings
/// ("0-99,101,103-200"):
/// ```
/// {"outpost_manifest":1,"run":"…","seed":42,"started_at_ns":…,"ended_at_ns":…,"fleets":[{"name":"greenhouse","transport":"mqtt","payload":"json","qos":1,"acknowledged":true}]}
/// {"device":"gh-0001","fleet":"greenhouse","sent":"0-99","acked":"0-57,60-99","failed":"","malformed":2,"late":1,"reordered":0,"anomalies":[{"kind":"spike","sensor":"temperature","start_s":1800,"end_s":1810,"start_ns":…,"end_ns":…,"first_seq":180,"last_seq":180,"magnitude":8}]}
/// ```
/// `sent`: handed to the transport (written to the socket; for MQTT, completed by libmosquitto);
/// `acked`: confirmed by the target (MQTT QoS 1 PUBACK, HTTP 204) — a subset of `sent`; `failed`: refused
/// before sending (target down, window full). A number is in at most one of `sent` and `failed`.
public struct Manifest: Sendable, Hashable {
    public static let formatVersion = 1

    public struct FleetInfo: Sendable, Hashable {
        public var name: String
        public var transport: String
        public var payload: String
        public var qos: Int
        /// Whether this fleet's path acknowledges sends (MQTT QoS 1, HTTP).
        public var acknowledged: Bool

        public init(name: String, transport: String, payload: String, qos: Int, acknowledged: Bool) {
            self.name = name
            self.transport = transport
            self.payload = payload
            self.qos = qos
            self.acknowledged = acknowledged
        }
    }

    public struct Anomaly: Sendable, Hashable {
        public var kind: String
        public var sensor: String?
        public var startSeconds: Double
        public var endSeconds: Double?
        public var startNanoseconds: Int64
        public var endNanoseconds: Int64?
        public var firstSeq: Int64?
        public var lastSeq: Int64?
        public var magnitude: Double?
        public var ratePerHour: Double?
    }

    public struct Device: Sendable, Hashable {
        public var device: String
        public var fleet: String
        public var sent = SequenceRanges()
        public var acked = SequenceRanges()
        public var failed = SequenceRanges()
        public var malformed = 0
        public var late = 0
        public var reordered = 0
        public var anomalies: [Anomaly] = []

        public init(device: String, fleet: String) {
            self.device = device
            self.fleet = fleet
        }
    }

    public var run: String
    public var seed: UInt64
    public var startedAtNanoseconds: Int64
    public var endedAtNanoseconds: Int64
    public var fleets: [FleetInfo]
    public var devices: [Device]

    public init(run: String, seed: UInt64, startedAtNanoseconds: Int64, endedAtNanoseconds: Int64, fleets: [FleetInfo], devices: [Device]) {
        self.run = run
        self.seed = seed
        self.startedAtNanoseconds = startedAtNanoseconds
        self.endedAtNanoseconds = endedAtNanoseconds
        self.fleets = fleets
        self.devices = devices
    }

    // MARK: Writing

    public func encoded() -> String {
        var text = "{\"outpost_manifest\":\(Self.formatVersion),\"run\":\(PayloadEncoder.jsonString(run)),\"seed\":\(seed),"
        text += "\"started_at_ns\":\(startedAtNanoseconds),\"ended_at_ns\":\(endedAtNanoseconds),\"fleets\":["
        text += fleets.map { fleet in
            "{\"name\":\(PayloadEncoder.jsonString(fleet.name)),\"transport\":\"\(fleet.transport)\",\"payload\":\"\(fleet.payload)\",\"qos\":\(fleet.qos),\"acknowledged\":\(fleet.acknowledged)}"
        }.joined(separator: ",")
        text += "]}\n"
        for device in devices {
            text += "{\"device\":\(PayloadEncoder.jsonString(device.device)),\"fleet\":\(PayloadEncoder.jsonString(device.fleet)),"
            text += "\"sent\":\"\(device.sent)\",\"acked\":\"\(device.acked)\",\"failed\":\"\(device.failed)\","
            text += "\"malformed\":\(device.malformed),\"late\":\(device.late),\"reordered\":\(device.reordered),\"anomalies\":["
            text += device.anomalies.map(Self.encode).joined(separator: ",")
            text += "]}\n"
        }
        return text
    }

    static func encode(_ anomaly: Anomaly) -> String {
        var parts = ["\"kind\":\"\(anomaly.kind)\""]
        if let sensor = anomaly.sensor { parts.append("\"sensor\":\(PayloadEncoder.jsonString(sensor))") }
        parts.append("\"start_s\":\(anomaly.startSeconds)")
        if let end = anomaly.endSeconds { parts.append("\"end_s\":\(end)") }
        parts.append("\"start_ns\":\(anomaly.startNanoseconds)")
        if let end = anomaly.endNanoseconds { parts.append("\"end_ns\":\(end)") }
        if let first = anomaly.firstSeq { parts.append("\"first_seq\":\(first)") }
        if let last = anomaly.lastSeq { parts.append("\"last_seq\":\(last)") }
        if let magnitude = anomaly.magnitude { parts.append("\"magnitude\":\(magnitude)") }
        if let rate = anomaly.ratePerHour { parts.append("\"rate_per_hour\":\(rate)") }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// Writes the manifest atomically (a temporary file renamed into place).
    public func write(to path: String) throws(SimulatorError) {
        do {
            try encoded().write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw .io(path: path, reason: "cannot write manifest: \(error.localizedDescription)")
        }
    }

    // MARK: Reading

    public static func read(path: String) throws(SimulatorError) -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .io(path: path, reason: "cannot read manifest: \(error.localizedDescription)")
        }
        return try parse(Array(data), path: path)
    }

    public static func parse(_ bytes: [UInt8], path: String = "manifest") throws(SimulatorError) -> Manifest {
        let parser = JSONParser()
        var manifest: Manifest?
        var lineNumber = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            let value: JSONValue
            do {
                value = try parser.parse(Array(line))
            } catch {
                throw .invalidManifest(path: path, line: lineNumber, reason: "not JSON: \(error.message)")
            }
            func fail(_ reason: String) -> SimulatorError { .invalidManifest(path: path, line: lineNumber, reason: reason) }
            if lineNumber == 1 {
                guard let version = value["outpost_manifest"]?.integer else { throw fail("the first line must be the header with \"outpost_manifest\"") }
                guard version == Int64(formatVersion) else { throw fail("format version \(version); this build reads \(formatVersion)") }
                var fleets: [FleetInfo] = []
                if case .array(let elements)? = value["fleets"] {
                    for element in elements {
                        guard let name = element["name"]?.string else { throw fail("a fleet needs a name") }
                        fleets.append(FleetInfo(name: name, transport: element["transport"]?.string ?? "", payload: element["payload"]?.string ?? "",
                                                qos: Int(element["qos"]?.integer ?? 0), acknowledged: element["acknowledged"]?.boolean ?? false))
                    }
                }
                manifest = Manifest(
                    run: value["run"]?.string ?? "", seed: UInt64(value["seed"]?.unsigned ?? 0),
                    startedAtNanoseconds: value["started_at_ns"]?.integer ?? 0, endedAtNanoseconds: value["ended_at_ns"]?.integer ?? 0,
                    fleets: fleets, devices: [])
                continue
            }
            guard let deviceID = value["device"]?.string, let fleet = value["fleet"]?.string else { throw fail("a device line needs \"device\" and \"fleet\"") }
            var device = Device(device: deviceID, fleet: fleet)
            func ranges(_ key: String) throws(SimulatorError) -> SequenceRanges {
                guard let text = value[key]?.string else { return SequenceRanges() }
                guard let parsed = SequenceRanges(parsing: text) else { throw fail("\"\(key)\" is not a list of ranges like 0-99,101") }
                return parsed
            }
            device.sent = try ranges("sent")
            device.acked = try ranges("acked")
            device.failed = try ranges("failed")
            device.malformed = Int(value["malformed"]?.integer ?? 0)
            device.late = Int(value["late"]?.integer ?? 0)
            device.reordered = Int(value["reordered"]?.integer ?? 0)
            if case .array(let elements)? = value["anomalies"] {
                for element in elements {
                    device.anomalies.append(Anomaly(
                        kind: element["kind"]?.string ?? "", sensor: element["sensor"]?.string,
                        startSeconds: element["start_s"]?.double ?? 0, endSeconds: element["end_s"]?.double,
                        startNanoseconds: element["start_ns"]?.integer ?? 0, endNanoseconds: element["end_ns"]?.integer,
                        firstSeq: element["first_seq"]?.integer, lastSeq: element["last_seq"]?.integer,
                        magnitude: element["magnitude"]?.double, ratePerHour: element["rate_per_hour"]?.double))
                }
            }
            manifest?.devices.append(device)
        }
        guard let manifest else { throw .invalidManifest(path: path, line: 1, reason: "the file is empty") }
        return manifest
    }
}

extension JSONValue {
    var string: String? { if case .string(let text) = self { return text } else { return nil } }
    var integer: Int64? { if case .number(let number) = self { return number.int64 } else { return nil } }
    var unsigned: UInt64? { if case .number(let number) = self { return number.uint64 ?? number.int64.map { UInt64(max(0, $0)) } } else { return nil } }
    var double: Double? { if case .number(let number) = self { return number.double } else { return nil } }
    var boolean: Bool? { if case .bool(let flag) = self { return flag } else { return nil } }
}

/// Fate of every point while a run goes on, per fleet and device. Transports report from their own
/// threads, so one lock guards it; the hot paths report a whole buffer per acquisition.
public final class DeliveryLedger: @unchecked Sendable {
    // @unchecked: every member is guarded by `lock`.
    private let lock = NSLock()
    private var records: [[Manifest.Device]]
    private var totals = Totals()

    public struct Totals: Sendable, Hashable {
        public var sent = 0
        public var acked = 0
        public var failed = 0
        public var malformed = 0
    }

    public enum Fate: Sendable { case sent, acknowledged, failed }

    public struct Entry: Sendable {
        public var fleet: Int32
        public var device: Int32
        public var seq: Int64

        public init(fleet: Int, device: Int, seq: Int64) {
            self.fleet = Int32(fleet)
            self.device = Int32(device)
            self.seq = seq
        }
    }

    public init(fleets: [Fleet]) {
        records = fleets.map { fleet in (0..<fleet.deviceCount).map { Manifest.Device(device: fleet.deviceID($0), fleet: fleet.name) } }
    }

    public func record(_ fate: Fate, fleet: Int, device: Int, seq: Int64) {
        lock.lock()
        apply(fate, fleet: fleet, device: device, seq: seq)
        lock.unlock()
    }

    public func record<S: Sequence>(_ fate: Fate, _ entries: S) where S.Element == Entry {
        lock.lock()
        for entry in entries { apply(fate, fleet: Int(entry.fleet), device: Int(entry.device), seq: entry.seq) }
        lock.unlock()
    }

    private func apply(_ fate: Fate, fleet: Int, device: Int, seq: Int64) {
        switch fate {
        case .sent:
            records[fleet][device].sent.insert(seq)
            totals.sent += 1
        case .acknowledged:
            records[fleet][device].sent.insert(seq)
            records[fleet][device].acked.insert(seq)
            totals.sent += 1
            totals.acked += 1
        case .failed:
            records[fleet][device].failed.insert(seq)
            totals.failed += 1
        }
    }

    public func countMalformed(fleet: Int, device: Int) {
        lock.lock()
        records[fleet][device].malformed += 1
        totals.malformed += 1
        lock.unlock()
    }

    public func countLate(fleet: Int, device: Int) {
        lock.lock()
        records[fleet][device].late += 1
        lock.unlock()
    }

    public func countReordered(fleet: Int, device: Int) {
        lock.lock()
        records[fleet][device].reordered += 1
        lock.unlock()
    }

    public var currentTotals: Totals {
        lock.lock()
        defer { lock.unlock() }
        return totals
    }

    /// The per-device records, with a failure that was later sent (`--retry`) kept only as sent.
    public func devices() -> [[Manifest.Device]] {
        lock.lock()
        defer { lock.unlock() }
        return records.map { fleet in
            fleet.map { device in
                var device = device
                device.failed = device.failed.subtracting(device.sent)
                return device
            }
        }
    }
}
