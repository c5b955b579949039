// Decoding line protocol in place: every part of an entry located and every number converted, nothing
// copied or allocated per point. This is what InfluxData's own decoder hands its callers; for readers
// that look at a few tags and fields of many points (the verifier, alerting), owned `Point` values would
// cost more than the parsing itself. Same scanner as `validate` and `parse`, so all three agree.

/// A name or string value as it stands in the decoded buffer: a byte range, still escaped, and the
/// position it was found in (which decides how it unescapes).
public struct LineProtocolText: Hashable, Sendable {
    public let range: Range<Int>
    public let element: LineProtocolElement
    /// Whether the text holds a backslash, i.e. whether unescaping could change it.
    public let hasBackslash: Bool

    /// The unescaped text. `buffer` is the one the point was decoded from.
    public func string(in buffer: UnsafeRawBufferPointer) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: buffer[range])
        guard hasBackslash else { return String(decoding: raw, as: UTF8.self) }
        return element.unescapedString(raw)
    }

    /// Whether the text unescapes to exactly `bytes`, without building it.
    public func equals(_ bytes: [UInt8], in buffer: UnsafeRawBufferPointer) -> Bool {
        let raw = UnsafeRawBufferPointer(rebasing: buffer[range])
        if !hasBackslash { return raw.elementsEqual(bytes) }
        return element.unescapedEquals(raw, bytes)
    }
}

/// A field value, converted; a string value stays a range of the buffer.
public enum DecodedFieldValue: Hashable, Sendable {
    case float(Double)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case string(LineProtocolText)
}

public struct DecodedTag: Hashable, Sendable {
    public let key: LineProtocolText
    public let value: LineProtocolText
}

public struct DecodedField: Hashable, Sendable {
    public let key: LineProtocolText
    public let value: DecodedFieldValue
}

/// One valid entry decoded in place. Its texts are ranges of the buffer it was decoded from; keep that
/// buffer to read them. Tags are in written order (a `Point` sorts them).
public struct DecodedPoint: Hashable, Sendable {
    public fileprivate(set) var measurement: LineProtocolText
    public fileprivate(set) var tags: [DecodedTag]
    public fileprivate(set) var fields: [DecodedField]
    /// Nanoseconds, scaled from the parser's precision; nil when the line has no timestamp.
    public fileprivate(set) var timestampNanoseconds: Int64?

    /// The value of the first tag whose unescaped key is `key`.
    public func tagValue(_ key: [UInt8], in buffer: UnsafeRawBufferPointer) -> LineProtocolText? {
        tags.first { $0.key.equals(key, in: buffer) }?.value
    }

    /// The value of the first field whose unescaped key is `key`.
    public func fieldValue(_ key: [UInt8], in buffer: UnsafeRawBufferPointer) -> DecodedFieldValue? {
        fields.first { $0.key.equals(key, in: buffer) }?.value
    }

    /// The owned `Point` (strings unescaped and copied, tags sorted).
    public func point(in buffer: UnsafeRawBufferPointer, defaultTimeNanoseconds: Int64? = nil) -> Point {
        Point(
            measurement: measurement.string(in: buffer),
            tags: tags.map { Tag($0.key.string(in: buffer), $0.value.string(in: buffer)) },
            fields: fields.map { field in
                let value: FieldValue = switch field.value {
                case .float(let number): .float(number)
                case .int(let number): .int(number)
                case .uint(let number): .uint(number)
                case .bool(let truth): .bool(truth)
                case .string(let text): .string(text.string(in: buffer))
                }
                return Field(field.key.string(in: buffer), value)
            },
            timestampNanoseconds: timestampNanoseconds ?? defaultTimeNanoseconds)
    }
}

extension LineProtocolParser {
    /// Decodes every entry of `buffer`, in order, handing each to `body` with the 1-based line it starts
    /// on; blank and comment lines produce nothing, a bad entry arrives as its error without disturbing the
    /// entries around it (as `parse` does). The point's tag and field lists are reused from entry to entry,
    /// so a point `body` does not keep costs no allocation.
    public func decodeEach(
        _ buffer: UnsafeRawBufferPointer, _ body: (_ outcome: Result<DecodedPoint, PointParseError>, _ line: Int) -> Void
    ) {
        var cursor = LineProtocolCursor()
        var recorder = DecodedPointRecorder()
        while true {
            recorder.startEntry()
            guard let scanned = scanNext(in: buffer, cursor: &cursor, visitor: &recorder) else { return }
            if let error = scanned.error {
                body(.failure(error), scanned.line)
            } else {
                body(.success(recorder.point), scanned.line)
            }
        }
    }

    /// Decodes one line (an entry), as `parsePoint` does but in place.
    public func decodePoint(line: UnsafeRawBufferPointer) throws(PointParseError) -> DecodedPoint {
        var recorder = DecodedPointRecorder()
        try scanSingleLine(line, visitor: &recorder)
        return recorder.point
    }
}

/// Records an entry's parts as ranges and converted values.
struct DecodedPointRecorder: LineProtocolEntryVisitor {
    var point = DecodedPoint(
        measurement: LineProtocolText(range: 0..<0, element: .measurement, hasBackslash: false), tags: [], fields: [],
        timestampNanoseconds: nil)

    mutating func startEntry() {
        point.tags.removeAll(keepingCapacity: true)
        point.fields.removeAll(keepingCapacity: true)
        point.timestampNanoseconds = nil
    }

    mutating func visitMeasurement(_ name: ScannedToken) {
        point.measurement = Self.text(name, .measurement)
    }

    mutating func visitTag(key: ScannedToken, value: ScannedToken) {
        point.tags.append(DecodedTag(key: Self.text(key, .tagKey), value: Self.text(value, .tagValue)))
    }

    mutating func visitField(key: ScannedToken, value: ScannedFieldValue) {
        let decoded: DecodedFieldValue = switch value {
        case .float(let number): .float(number)
        case .int(let number): .int(number)
        case .uint(let number): .uint(number)
        case .bool(let truth): .bool(truth)
        case .string(let content): .string(Self.text(content, .stringFieldValue))
        }
        point.fields.append(DecodedField(key: Self.text(key, .fieldKey), value: decoded))
    }

    mutating func visitFieldSetEnd(_ position: Int) {}

    mutating func visitTimestamp(nanoseconds: Int64) {
        point.timestampNanoseconds = nanoseconds
    }

    private static func text(_ token: ScannedToken, _ element: LineProtocolElement) -> LineProtocolText {
        LineProtocolText(range: token.range, element: element, hasBackslash: token.hasBackslash)
    }
}
