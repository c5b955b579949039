// Every way a line-protocol entry can be refused, kept as plain data while scanning (so the scanner does
// not allocate) and turned into a `PointParseError` with words only when someone asks.

/// What is wrong with an entry. Ranges are byte ranges of the scanned buffer, quoted in the message.
enum LineProtocolProblem: Sendable {
    // Whole line.
    case lineTooLong(limit: Int)
    case noPoint
    case secondPoint
    // Measurement.
    case missingMeasurement
    case invalidMeasurementStart(found: UInt8)
    case invalidCommentCharacter
    // Tags.
    case missingTagKeyAfterComma(found: UInt8?)
    case emptyTagKey
    case missingTagEquals(key: Range<Int>, found: UInt8?)
    case missingTagValue(key: Range<Int>)
    case duplicateTagKey(key: Range<Int>)
    case tooManyTags(limit: Int)
    // Fields.
    case missingFieldSet(found: UInt8?, afterTag: Bool)
    case missingFieldKey(found: UInt8?)
    case missingFieldEquals(key: Range<Int>, found: UInt8?)
    case missingFieldValue(key: Range<Int>)
    case missingClosingQuote(key: Range<Int>)
    case unexpectedAfterField(key: Range<Int>, found: UInt8)
    case tooManyFields(limit: Int)
    // Field values.
    case unrecognizedFieldValue(key: Range<Int>, value: Range<Int>)
    case malformedFieldValue(key: Range<Int>, kind: LineProtocolValueKind, value: Range<Int>)
    case fieldValueOutOfRange(key: Range<Int>, kind: LineProtocolValueKind, value: Range<Int>)
    // Timestamp.
    case invalidTimestamp(Range<Int>)
    case timestampOutOfRange(Range<Int>)
    case unexpectedAfterTimestamp(Range<Int>)
    // Encoding.
    case invalidUTF8(LineProtocolElement)

    var reason: RejectReason {
        switch self {
        case .lineTooLong: .lineTooLong
        case .noPoint, .missingMeasurement, .invalidMeasurementStart, .invalidCommentCharacter: .invalidMeasurement
        case .secondPoint: .invalidPayload
        case .missingTagKeyAfterComma, .emptyTagKey, .missingTagEquals, .missingTagValue, .duplicateTagKey: .invalidTag
        case .tooManyTags: .tooManyTags
        case .missingFieldSet(let found, let afterTag):
            found == nil || found == LineProtocolByte.newline || found == LineProtocolByte.carriageReturn
                ? .invalidField : (afterTag ? .invalidTag : .invalidMeasurement)
        case .missingFieldKey, .missingFieldEquals, .missingFieldValue, .missingClosingQuote, .unexpectedAfterField:
            .invalidField
        case .tooManyFields: .tooManyFields
        case .unrecognizedFieldValue, .malformedFieldValue, .fieldValueOutOfRange: .invalidFieldValue
        case .invalidTimestamp, .timestampOutOfRange, .unexpectedAfterTimestamp: .invalidTimestamp
        case .invalidUTF8: .invalidUTF8
        }
    }

    /// The human-readable detail, quoting the offending bytes of `bytes` (the scanned buffer).
    func detail(in bytes: UnsafeRawBufferPointer) -> String {
        func quoted(_ range: Range<Int>) -> String { LineProtocolQuoting.quoted(bytes, range) }
        func found(_ byte: UInt8?) -> String { byte.map(LineProtocolQuoting.quoted) ?? "end of line" }
        switch self {
        case .lineTooLong(let limit):
            return "line longer than \(limit) bytes"
        case .noPoint:
            return "no point: the line is blank or a comment"
        case .secondPoint:
            return "text continues after the point; one line holds one point"
        case .missingMeasurement:
            return "no measurement name found"
        case .invalidMeasurementStart(let byte):
            return "invalid character \(found(byte)) at start of measurement name"
        case .invalidCommentCharacter:
            return "comment line holds a control character"
        case .missingTagKeyAfterComma(let byte):
            return "expected tag key after comma, found \(found(byte))"
        case .emptyTagKey:
            return "empty tag key"
        case .missingTagEquals(let key, let byte):
            return "expected '=' after tag key \(quoted(key)), found \(found(byte))"
        case .missingTagValue(let key):
            return "missing value for tag key \(quoted(key))"
        case .duplicateTagKey(let key):
            return "duplicate tag key \(quoted(key))"
        case .tooManyTags(let limit):
            return "more than \(limit) tags"
        case .missingFieldSet(let byte, let afterTag):
            if byte == nil || byte == LineProtocolByte.newline || byte == LineProtocolByte.carriageReturn {
                return "no fields: the line ends after the \(afterTag ? "tags" : "measurement name")"
            }
            return "invalid character \(found(byte)) after \(afterTag ? "tag value" : "measurement name")"
        case .missingFieldKey(let byte):
            return byte == nil ? "expected field key, found end of line" : "invalid character \(found(byte)) at start of field key"
        case .missingFieldEquals(let key, let byte):
            return "expected '=' after field key \(quoted(key)), found \(found(byte))"
        case .missingFieldValue(let key):
            return "missing value for field \(quoted(key))"
        case .missingClosingQuote(let key):
            return "missing closing quote of string field \(quoted(key))"
        case .unexpectedAfterField(let key, let byte):
            return "unexpected character \(found(byte)) after field \(quoted(key))"
        case .tooManyFields(let limit):
            return "more than \(limit) fields"
        case .unrecognizedFieldValue(let key, let value):
            return "value \(quoted(value)) of field \(quoted(key)) has no recognised type"
        case .malformedFieldValue(let key, let kind, let value):
            return "invalid \(kind.name) \(quoted(value)) for field \(quoted(key))"
        case .fieldValueOutOfRange(let key, let kind, let value):
            return "\(kind.name) \(quoted(value)) for field \(quoted(key)) is out of range"
        case .invalidTimestamp(let range):
            return "invalid timestamp \(quoted(range))"
        case .timestampOutOfRange(let range):
            return "timestamp \(quoted(range)) is out of range at this precision"
        case .unexpectedAfterTimestamp(let range):
            return "unexpected text \(quoted(range)) after timestamp"
        case .invalidUTF8(let element):
            return "invalid UTF-8 in \(element.name)"
        }
    }
}

extension LineProtocolValueKind {
    var name: String {
        switch self {
        case .float: "float"
        case .int: "integer"
        case .uint: "unsigned integer"
        case .bool: "boolean"
        case .string: "string"
        }
    }
}

extension LineProtocolElement {
    var name: String {
        switch self {
        case .measurement: "measurement name"
        case .tagKey: "tag key"
        case .tagValue: "tag value"
        case .fieldKey: "field key"
        case .stringFieldValue: "string field value"
        }
    }
}

/// Quotes input bytes for error messages: printable ASCII as is, everything else escaped, long text cut.
enum LineProtocolQuoting {
    static let quotedBytesMax = 64

    static func quoted(_ byte: UInt8) -> String {
        "'" + escaped(byte) + "'"
    }

    static func quoted(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        let clamped = range.clamped(to: 0..<bytes.count)
        let shown = clamped.prefix(quotedBytesMax)
        var text = "\""
        if let base = bytes.baseAddress, isValidUTF8(base, from: shown.lowerBound, to: shown.upperBound) {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[shown])
            for scalar in String(decoding: slice, as: UTF8.self).unicodeScalars {
                text += scalar.isASCII ? escaped(UInt8(scalar.value)) : String(scalar)
            }
        } else {
            for index in shown { text += escaped(bytes[index]) }
        }
        if clamped.count > quotedBytesMax { text += "..." }
        return text + "\""
    }

    private static func escaped(_ byte: UInt8) -> String {
        switch byte {
        case LineProtocolByte.newline: return "\\n"
        case LineProtocolByte.carriageReturn: return "\\r"
        case LineProtocolByte.tab: return "\\t"
        case LineProtocolByte.backslash: return "\\\\"
        case LineProtocolByte.quote: return "\\\""
        case 0x20..<0x7F: return String(UnicodeScalar(byte))
        default:
            let hex = String(byte, radix: 16, uppercase: true)
            return "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
}
