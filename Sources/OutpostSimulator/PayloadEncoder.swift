import OutpostCore

/// Writes a fleet's readings as bytes: line protocol, JSON readings or plain MQTT values. Per-device
/// prefixes (measurement, device tag, fleet tags) are built once, so the hot path only formats numbers.
/// Numbers are written with the sensor's fixed number of decimals, without going through String.
public final class PayloadEncoder: Sendable {
    public let fleet: Fleet
    public let style: PayloadStyle
    let kinds: [ValueKind]
    let decimals: [Int]
    /// Per field: `name=` (line), `,"name":` (JSON).
    let fieldPrefixes: [[UInt8]]
    /// Per device: `measurement,device=id,tag=v ` (line) or `{"device":"id","measurement":…,"tags":{…}` (JSON).
    let devicePrefixes: [[UInt8]]
    /// Per device, plain style: the topic of each field and, last, of `seq`.
    public let plainTopics: [[String]]
    /// Per device: the MQTT topic for line and JSON payloads.
    public let topics: [String]

    /// - Parameter runID: when set, every point carries a `run` tag with it, so the verifier can tell this
    ///   run's points from others in the same topic.
    public init(fleet: Fleet, style: PayloadStyle, runID: String? = nil) {
        self.fleet = fleet
        self.style = style
        var kinds: [ValueKind] = []
        var decimals: [Int] = []
        var names: [String] = []
        for sensor in fleet.sensors {
            for name in sensor.fieldNames {
                kinds.append(sensor.kind)
                decimals.append(sensor.decimals)
                names.append(name)
            }
        }
        self.kinds = kinds
        self.decimals = decimals
        var tags = fleet.tags
        if let runID { tags.append(FleetTag(key: "run", values: [runID])) }
        switch style {
        case .line, .plain:
            fieldPrefixes = names.map { Array(PayloadEncoder.escapeName($0).utf8) + [UInt8(ascii: "=")] }
        case .json:
            fieldPrefixes = names.map { Array(",\(PayloadEncoder.jsonString($0)):".utf8) }
        }
        devicePrefixes = (0..<fleet.deviceCount).map { index in
            let id = fleet.deviceID(index)
            switch style {
            case .line, .plain:
                var text = PayloadEncoder.escapeName(fleet.measurement) + ",device=" + PayloadEncoder.escapeName(id)
                for tag in tags.sorted(by: { $0.key < $1.key }) { text += "," + PayloadEncoder.escapeName(tag.key) + "=" + PayloadEncoder.escapeName(tag.value(forDevice: index)) }
                return Array((text + " ").utf8)
            case .json:
                var text = "{\"device\":\(PayloadEncoder.jsonString(id)),\"measurement\":\(PayloadEncoder.jsonString(fleet.measurement))"
                if !tags.isEmpty {
                    text += ",\"tags\":{" + tags.map { "\(PayloadEncoder.jsonString($0.key)):\(PayloadEncoder.jsonString($0.value(forDevice: index)))" }.joined(separator: ",") + "}"
                }
                return Array(text.utf8)
            }
        }
        plainTopics = style == .plain
            ? (0..<fleet.deviceCount).map { index in
                let id = fleet.deviceID(index)
                return (names + ["seq"]).map { "sensors/\(id)/\($0)" }
            }
            : []
        topics = (0..<fleet.deviceCount).map { index in
            fleet.topic.replacingOccurrences(of: "{fleet}", with: fleet.name).replacingOccurrences(of: "{device}", with: fleet.deviceID(index))
        }
    }

    /// Appends one point (with a trailing newline) in line protocol or JSON.
    public func append(device: Int, seq: Int64, timestampNanoseconds: Int64, values: [Double], to output: inout [UInt8]) {
        switch style {
        case .line, .plain:
            output.append(contentsOf: devicePrefixes[device])
            for field in fieldPrefixes.indices {
                output.append(contentsOf: fieldPrefixes[field])
                appendValue(values[field], field: field, integerSuffix: true, to: &output)
                output.append(UInt8(ascii: ","))
            }
            output.append(contentsOf: PayloadEncoder.seqLine)
            PayloadEncoder.appendDecimal(seq, to: &output)
            output.append(UInt8(ascii: "i"))
            output.append(UInt8(ascii: " "))
            PayloadEncoder.appendDecimal(timestampNanoseconds, to: &output)
        case .json:
            output.append(contentsOf: devicePrefixes[device])
            output.append(contentsOf: PayloadEncoder.tsJSON)
            PayloadEncoder.appendDecimal(TelemetryRecordEncoder.milliseconds(fromNanoseconds: timestampNanoseconds), to: &output)
            output.append(contentsOf: PayloadEncoder.seqJSON)
            PayloadEncoder.appendDecimal(seq, to: &output)
            for field in fieldPrefixes.indices {
                output.append(contentsOf: fieldPrefixes[field])
                appendValue(values[field], field: field, integerSuffix: false, to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
        output.append(UInt8(ascii: "\n"))
    }

    /// Plain style: the payload of field `field` (the value alone), or of `seq` when `field` is the
    /// field count.
    public func appendPlain(field: Int, seq: Int64, values: [Double], to output: inout [UInt8]) {
        if field == fieldPrefixes.count {
            PayloadEncoder.appendDecimal(seq, to: &output)
        } else {
            appendValue(values[field], field: field, integerSuffix: false, to: &output)
        }
    }

    /// A payload the gateway must reject (and which carries no sequence number), variant 0...2:
    /// a missing field value, a value that is not a number, or bytes that are not text at all.
    public func appendMalformed(device: Int, variant: Int, to output: inout [UInt8]) {
        switch (style, variant % 3) {
        case (_, 2):
            output.append(contentsOf: [0xFF, 0xFE, 0x00, 0x01, 0x80, 0xC3, 0x28, 0x7F])
        case (.line, 0), (.plain, 0):
            output.append(contentsOf: devicePrefixes[device])
            output.append(contentsOf: fieldPrefixes[0])
        case (.line, _), (.plain, _):
            output.append(contentsOf: devicePrefixes[device])
            output.append(contentsOf: fieldPrefixes[0])
            output.append(contentsOf: "not-a-number".utf8)
        case (.json, 0):
            output.append(contentsOf: devicePrefixes[device])
            output.append(contentsOf: ",\"ts\":".utf8)
        case (.json, _):
            output.append(contentsOf: "{\"ts\":1,\"value\":\"no device\"}".utf8)
        }
        if style != .plain { output.append(UInt8(ascii: "\n")) }
    }

    static let seqLine = Array("seq=".utf8)
    static let tsJSON = Array(",\"ts\":".utf8)
    static let seqJSON = Array(",\"seq\":".utf8)

    @inline(__always)
    func appendValue(_ value: Double, field: Int, integerSuffix: Bool, to output: inout [UInt8]) {
        switch kinds[field] {
        case .boolean:
            output.append(contentsOf: value != 0 ? PayloadEncoder.trueBytes : PayloadEncoder.falseBytes)
        case .integer:
            let rounded = value.rounded()
            PayloadEncoder.appendDecimal(abs(rounded) < 9e18 ? Int64(rounded) : 0, to: &output)
            if integerSuffix { output.append(UInt8(ascii: "i")) }
        case .float:
            PayloadEncoder.appendFixed(value, decimals: decimals[field], to: &output)
        }
    }

    /// Decimal digits of `number`, appended in one go (the hot path writes two per point: seq and time).
    @inline(__always)
    public static func appendDecimal(_ number: Int64, to output: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var magnitude = number.magnitude
            var position = 24
            repeat {
                position -= 1
                buffer[position] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
                magnitude /= 10
            } while magnitude > 0
            if number < 0 {
                position -= 1
                buffer[position] = UInt8(ascii: "-")
            }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[position..<24]))
        }
    }

    static let trueBytes = Array("true".utf8)
    static let falseBytes = Array("false".utf8)
    static let powers: [Double] = (0...9).map { var p = 1.0; for _ in 0..<$0 { p *= 10 }; return p }

    /// `value` rounded to `decimals` places, written as digits (`-3.05`, `21.50`, `0`).
    public static func appendFixed(_ value: Double, decimals: Int, to output: inout [UInt8]) {
        let scale = powers[decimals]
        let scaled = (abs(value) * scale).rounded()
        guard value.isFinite, scaled < 9e15 else {
            // Out of the fast path's range: the shortest round-trip form, still valid in both formats.
            output.append(contentsOf: (value.isFinite ? "\(value)" : "0").utf8)
            return
        }
        var magnitude = Int64(scaled)
        if magnitude == 0 {
            output.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { output.append(UInt8(ascii: "-")) }
        let divisor = Int64(scale)
        PayloadEncoder.appendDecimal(magnitude / divisor, to: &output)
        guard decimals > 0 else { return }
        output.append(UInt8(ascii: "."))
        magnitude %= divisor
        var digits = decimals
        var place = divisor / 10
        while digits > 0 {
            output.append(UInt8(ascii: "0") + UInt8(magnitude / place))
            magnitude %= place
            place /= 10
            digits -= 1
        }
    }

    /// Line-protocol escaping for names and tag values: comma, equals and space.
    static func escapeName(_ text: String) -> String {
        var result = ""
        for character in text {
            if character == "," || character == "=" || character == " " { result.append("\\") }
            result.append(character)
        }
        return result
    }

    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
