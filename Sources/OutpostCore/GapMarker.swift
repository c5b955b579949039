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

    /// Whether a record is a gap marker.
    public static func isMarker(_ record: Record) -> Bool {
        record.headers.contains { $0.key == headerKey }
    }
}
