// The gap marker is a record format shared by the gateway (which writes it) and every reader of a topic
// (`outpost verify`, central consumers), so it lives beside RecordBatch.

/// A declared drop, written into the log where the data was, so it replicates like any record and central
/// consumers (and `outpost verify`) can tell a declared drop from a loss.
///
/// Record: key `_outpost_gap`, header `outpost-gap: 1`, value a JSON object:
/// `{"gateway":"edge-1","partition":0,"offsets":[first,last],"bytes":N,"records":N,"reason":"…",
///   "devices":{"gh-1":[firstSeq,lastSeq],…}}` — the per-device `seq` ranges the dropped records held.
public enum GapMarker {
    public static let headerKey = "outpost-gap"
    public static let recordKey = "_outpost_gap"

    public struct Description: Sendable {
        public var gatewayId: String
        public var partition: Int
        public var offsets: Range<Offset>
        public var bytes: Int
        public var records: Int
        public var reason: String
        public var devices: [String: ClosedRange<Int64>]

        public init(
            gatewayId: String, partition: Int, offsets: Range<Offset>, bytes: Int, records: Int, reason: String,
            devices: [String: ClosedRange<Int64>]
        ) {
            self.gatewayId = gatewayId
            self.partition = partition
            self.offsets = offsets
            self.bytes = bytes
            self.records = records
            self.reason = reason
            self.devices = devices
        }
    }

    public static func value(_ gap: Description) -> String {
        var text = "{\"gateway\":" + JSONWriter.quoted(gap.gatewayId) + ",\"partition\":\(gap.partition)"
        text += ",\"offsets\":[\(gap.offsets.lowerBound.rawValue),\(gap.offsets.upperBound.rawValue - 1)]"
        text += ",\"bytes\":\(gap.bytes),\"records\":\(gap.records),\"reason\":" + JSONWriter.quoted(gap.reason) + ",\"devices\":{"
        text += gap.devices.keys.sorted().compactMap { device in
            gap.devices[device].map { JSONWriter.quoted(device) + ":[\($0.lowerBound),\($0.upperBound)]" }
        }.joined(separator: ",")
        return text + "}}"
    }

    public static func batch(_ gap: Description, timestampMilliseconds: Int64) throws -> [UInt8] {
        var builder = RecordBatchBuilder()
        builder.append(
            timestampMilliseconds: timestampMilliseconds, key: Array(recordKey.utf8), value: Array(value(gap).utf8),
            headers: [RecordHeader(key: headerKey, value: Array("1".utf8))])
        return try builder.build(compression: .none)
    }

    /// Reads a marker's value back. Fields a marker lacks take empty defaults (an older or foreign writer
    /// may leave some out); nil when the value is not a JSON object.
    public static func description(from value: [UInt8]) -> Description? {
        guard let json = try? JSONParser().parse(value), case .object = json else { return nil }
        func integer(_ value: JSONValue?) -> Int64? {
            if case .number(let number)? = value { return number.int64 }
            return nil
        }
        var offsets = Offset(0)..<Offset(0)
        if case .array(let bounds)? = json["offsets"], bounds.count == 2, let first = integer(bounds[0]), let last = integer(bounds[1]), first <= last {
            offsets = Offset(first)..<Offset(last + 1)
        }
        var devices: [String: ClosedRange<Int64>] = [:]
        if case .object(let members)? = json["devices"] {
            for member in members {
                guard case .array(let bounds) = member.value, bounds.count == 2,
                    let first = integer(bounds[0]), let last = integer(bounds[1]), first <= last
                else { continue }
                devices[member.key] = first...last
            }
        }
        var gatewayId = ""
        if case .string(let text)? = json["gateway"] { gatewayId = text }
        var reason = ""
        if case .string(let text)? = json["reason"] { reason = text }
        return Description(
            gatewayId: gatewayId, partition: integer(json["partition"]).map { Int($0) } ?? -1, offsets: offsets,
            bytes: integer(json["bytes"]).map { Int($0) } ?? 0, records: integer(json["records"]).map { Int($0) } ?? 0,
            reason: reason, devices: devices)
    }

    /// Whether a record is a gap marker.
    public static func isMarker(_ record: Record) -> Bool {
        record.headers.contains { $0.key == headerKey }
    }
}
