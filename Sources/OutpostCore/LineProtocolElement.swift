// The escaping rules of InfluxDB line protocol, one set per position in a line.
//
// Line protocol has no single escape rule: which bytes end a token, and which bytes a backslash escapes,
// depend on where the token is. These are the rules of InfluxData's reference decoder
// (github.com/influxdata/line-protocol, package `lineprotocol`); the corpus tests hold us to them.

/// Byte values the line-protocol code talks about, named so the scanner reads as the grammar does.
enum LineProtocolByte {
    static let tab: UInt8 = 0x09
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let hash: UInt8 = 0x23
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
    static let equals: UInt8 = 0x3D
    static let backslash: UInt8 = 0x5C
    static let delete: UInt8 = 0x7F

    /// Control characters and DEL: never allowed in names, and what ends a comment too early.
    @inline(__always)
    static func isNonPrintable(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == delete
    }
}

/// A position in a line-protocol line. Each position has its own escaping rule.
///
/// In names (measurement, tag keys and values, field keys) a backslash escapes only the bytes that would
/// otherwise end the name; any other backslash is kept as it is, so `a\b` means `a\b`. That is why a name
/// may not end in a backslash when written: the backslash would escape the separator after it.
/// In string field values a backslash escapes `\`, `"` and the letters `n`, `r`, `t` (newline, carriage
/// return, tab).
public enum LineProtocolElement: Sendable, CaseIterable {
    case measurement
    case tagKey
    case tagValue
    case fieldKey
    /// The text between the quotes of a string field value.
    case stringFieldValue

    /// The byte an escape sequence `\` + `byte` stands for in this position, or nil when the backslash is
    /// kept literally.
    @inline(__always)
    func unescaped(_ byte: UInt8) -> UInt8? {
        switch self {
        case .measurement:
            return byte == LineProtocolByte.space || byte == LineProtocolByte.comma ? byte : nil
        case .tagKey, .tagValue, .fieldKey:
            return byte == LineProtocolByte.space || byte == LineProtocolByte.comma || byte == LineProtocolByte.equals
                ? byte : nil
        case .stringFieldValue:
            switch byte {
            case LineProtocolByte.backslash, LineProtocolByte.quote: return byte
            case UInt8(ascii: "n"): return LineProtocolByte.newline
            case UInt8(ascii: "r"): return LineProtocolByte.carriageReturn
            case UInt8(ascii: "t"): return LineProtocolByte.tab
            default: return nil
            }
        }
    }

    /// The letter written after a backslash for `byte` in this position, or nil when `byte` is written as is.
    @inline(__always)
    func escapeLetter(_ byte: UInt8) -> UInt8? {
        switch self {
        case .measurement, .tagKey, .tagValue, .fieldKey:
            return unescaped(byte)
        case .stringFieldValue:
            switch byte {
            case LineProtocolByte.backslash, LineProtocolByte.quote: return byte
            case LineProtocolByte.newline: return UInt8(ascii: "n")
            case LineProtocolByte.carriageReturn: return UInt8(ascii: "r")
            case LineProtocolByte.tab: return UInt8(ascii: "t")
            default: return nil
            }
        }
    }

    /// Appends the unescaped bytes of a raw (still escaped) token, e.g. the device tag value of a validated
    /// line, which the gateway uses as the record key.
    public func appendUnescaped(_ raw: UnsafeRawBufferPointer, to output: inout [UInt8]) {
        var index = 0
        let count = raw.count
        while index < count {
            let byte = raw[index]
            if byte == LineProtocolByte.backslash, index + 1 < count, let replacement = unescaped(raw[index + 1]) {
                output.append(replacement)
                index += 2
            } else {
                output.append(byte)
                index += 1
            }
        }
    }

    /// The unescaped text of a raw token already checked to be valid UTF-8, built in one pass.
    public func unescapedString(_ raw: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: raw.count) { output in
            var read = 0
            var written = 0
            while read < raw.count {
                let byte = raw[read]
                if byte == LineProtocolByte.backslash, read + 1 < raw.count, let replacement = unescaped(raw[read + 1]) {
                    output[written] = replacement
                    read += 2
                } else {
                    output[written] = byte
                    read += 1
                }
                written += 1
            }
            return written
        }
    }

    /// The unescaped bytes of a raw (still escaped) token.
    public func unescaped(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(raw.count)
        appendUnescaped(raw, to: &output)
        return output
    }

    /// Whether the raw token `raw` unescapes to exactly `text`, without building the unescaped bytes.
    func unescapedEquals(_ raw: UnsafeRawBufferPointer, _ text: [UInt8]) -> Bool {
        var rawIndex = 0
        var textIndex = 0
        let rawCount = raw.count
        while rawIndex < rawCount {
            guard textIndex < text.count else { return false }
            var byte = raw[rawIndex]
            if byte == LineProtocolByte.backslash, rawIndex + 1 < rawCount, let replacement = unescaped(raw[rawIndex + 1]) {
                byte = replacement
                rawIndex += 2
            } else {
                rawIndex += 1
            }
            if byte != text[textIndex] { return false }
            textIndex += 1
        }
        return textIndex == text.count
    }

    /// Appends `text` escaped for this position (no validity checks; the serializer does those).
    func appendEscaped(_ text: String, to output: inout [UInt8]) {
        for byte in text.utf8 {
            if let letter = escapeLetter(byte) {
                output.append(LineProtocolByte.backslash)
                output.append(letter)
            } else {
                output.append(byte)
            }
        }
    }
}

/// UTF-8 validity as Go's `utf8.Valid` defines it (the reference decoder's check): no overlong forms, no
/// surrogates, nothing above U+10FFFF, no truncated sequences.
@inline(__always)
func isValidUTF8(_ bytes: UnsafeRawPointer, from start: Int, to end: Int) -> Bool {
    var index = start
    while index < end {
        let lead = bytes.load(fromByteOffset: index, as: UInt8.self)
        if lead < 0x80 {
            index += 1
            continue
        }
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return false
        }
        guard end - index >= length else { return false }
        let second = bytes.load(fromByteOffset: index + 1, as: UInt8.self)
        guard second >= low, second <= high else { return false }
        var continuation = 2
        while continuation < length {
            let byte = bytes.load(fromByteOffset: index + continuation, as: UInt8.self)
            guard byte & 0xC0 == 0x80 else { return false }
            continuation += 1
        }
        index += length
    }
    return true
}
