/// A parsed JSON value that keeps what telemetry needs and Foundation's JSONSerialization blurs: whether a
/// number was written as an integer, exact 64-bit integers, and the byte position of every syntax error.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    /// Members in document order (a reading's field order is kept).
    case object([JSONMember])

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }
}

public struct JSONMember: Hashable, Sendable {
    public var key: String
    public var value: JSONValue
    /// Byte offset (0-based) of the member's key in the document, for error positions.
    public var position: Int

    public init(key: String, value: JSONValue, position: Int = 0) {
        self.key = key
        self.value = value
        self.position = position
    }
}

public struct JSONNumber: Hashable, Sendable {
    /// The number as written had no fraction and no exponent.
    public var isIntegerLiteral: Bool
    /// Exact value when it is an integer literal that fits in Int64.
    public var int64: Int64?
    /// Exact value when it is a non-negative integer literal that fits in UInt64.
    public var uint64: UInt64?
    public var double: Double

    public init(isIntegerLiteral: Bool, int64: Int64?, uint64: UInt64?, double: Double) {
        self.isIntegerLiteral = isIntegerLiteral
        self.int64 = int64
        self.uint64 = uint64
        self.double = double
    }
}

/// A JSON syntax error at a byte offset (0-based) of the document.
public struct JSONSyntaxError: Error, Hashable, Sendable {
    public var message: String
    public var position: Int
}

/// RFC 8259 JSON parser over bytes. Iterative bookkeeping is not needed: nesting is bounded by
/// `depthMax`, so recursion depth is bounded too and hostile input cannot overflow the stack.
public struct JSONParser: Sendable {
    /// Deepest nesting accepted. Readings are flat; 32 leaves room for structured payloads.
    public var depthMax: Int

    public init(depthMax: Int = 32) {
        self.depthMax = depthMax
    }

    /// Parses exactly one value (surrounding whitespace allowed).
    public func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONSyntaxError) -> JSONValue {
        var cursor = Cursor(bytes: bytes, position: 0, depthMax: depthMax)
        cursor.skipWhitespace()
        let value = try cursor.parseValue(depth: 0)
        cursor.skipWhitespace()
        guard cursor.position == bytes.count else {
            throw JSONSyntaxError(message: "unexpected data after the JSON value", position: cursor.position)
        }
        return value
    }

    public func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        try bytes.withBytes { (buffer) throws(JSONSyntaxError) in try parse(buffer) }
    }

    /// Parses one value starting at `start`, returning it and the position just after it. For streams of
    /// concatenated or newline-delimited documents.
    public func parsePrefix(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(JSONSyntaxError) -> (JSONValue, end: Int) {
        var cursor = Cursor(bytes: bytes, position: start, depthMax: depthMax)
        cursor.skipWhitespace()
        let value = try cursor.parseValue(depth: 0)
        return (value, cursor.position)
    }

    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let depthMax: Int

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        func fail(_ message: String) -> JSONSyntaxError { JSONSyntaxError(message: message, position: position) }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard let byte = current else { throw fail("unexpected end of JSON") }
            switch byte {
            case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
            case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw fail("unexpected character '\(Unicode.Scalar(byte))'")
            }
        }

        mutating func expectLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
            let count = literal.utf8CodeUnitCount
            guard bytes.count - position >= count else { throw fail("invalid literal") }
            for index in 0..<count where bytes[position + index] != literal.utf8Start[index] {
                throw fail("invalid literal")
            }
            position += count
        }

        mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard depth <= depthMax else { throw fail("JSON nested deeper than \(depthMax) levels") }
            position += 1
            var members: [JSONMember] = []
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyPosition = position
                let key = try parseString()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw fail("expected ':' after key") }
                position += 1
                skipWhitespace()
                let value = try parseValue(depth: depth)
                members.append(JSONMember(key: key, value: value, position: keyPosition))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "}"): position += 1; return .object(members)
                default: throw fail("expected ',' or '}' in object")
                }
            }
        }

        mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
            guard depth <= depthMax else { throw fail("JSON nested deeper than \(depthMax) levels") }
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"): position += 1; return .array(elements)
                default: throw fail("expected ',' or ']' in array")
                }
            }
        }

        mutating func parseString() throws(JSONSyntaxError) -> String {
            position += 1  // opening quote
            let start = position
            // Fast path: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
                    guard let text = String(validating: raw, as: UTF8.self) else {
                        throw JSONSyntaxError(message: "string is not valid UTF-8", position: start)
                    }
                    position += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw fail("control character in string") }
                position += 1
            }
            var scalars: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
            while true {
                guard let byte = current else { throw fail("unterminated string") }
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: scalars, as: UTF8.self) else {
                        throw JSONSyntaxError(message: "string is not valid UTF-8", position: start)
                    }
                    return text
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw fail("unterminated escape") }
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append(0x22)
                    case UInt8(ascii: "\\"): scalars.append(0x5C)
                    case UInt8(ascii: "/"): scalars.append(0x2F)
                    case UInt8(ascii: "b"): scalars.append(0x08)
                    case UInt8(ascii: "f"): scalars.append(0x0C)
                    case UInt8(ascii: "n"): scalars.append(0x0A)
                    case UInt8(ascii: "r"): scalars.append(0x0D)
                    case UInt8(ascii: "t"): scalars.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by \u and a low surrogate.
                            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
                                bytes[position + 1] == UInt8(ascii: "u")
                            else { throw fail("unpaired surrogate") }
                            position += 2
                            let low = try parseHex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid low surrogate") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw fail("unpaired surrogate")
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid unicode escape") }
                        scalars.append(contentsOf: String(Character(unicode)).utf8)
                    default:
                        throw fail("invalid escape '\\\(Unicode.Scalar(escape))'")
                    }
                default:
                    if byte < 0x20 { throw fail("control character in string") }
                    scalars.append(byte)
                }
            }
        }

        mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
            guard bytes.count - position >= 4 else { throw fail("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw fail("invalid hex digit in \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        mutating func parseNumber() throws(JSONSyntaxError) -> JSONNumber {
            let start = position
            if current == UInt8(ascii: "-") { position += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw fail("invalid number")
            }
            if first == UInt8(ascii: "0") {
                position += 1
            } else {
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
            }
            var isInteger = true
            if current == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                    throw fail("digits expected after '.'")
                }
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                isInteger = false
                position += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                    throw fail("digits expected in exponent")
                }
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
            }
            // The literal is pure ASCII by construction.
            let literal = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            guard let double = Double(literal), double.isFinite else {
                throw JSONSyntaxError(message: "number out of range", position: start)
            }
            return JSONNumber(
                isIntegerLiteral: isInteger,
                int64: isInteger ? Int64(literal) : nil,
                uint64: isInteger ? UInt64(literal) : nil,
                double: double)
        }
    }
}

/// Writes JSON text. Used for the `outpost parse` output, status lines and sinks.
public struct JSONWriter: Sendable {
    public private(set) var text: String = ""

    public init() {}

    public mutating func raw(_ fragment: String) { text += fragment }

    public mutating func string(_ value: String) {
        text += JSONWriter.quoted(value)
    }

    public static func quoted(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    /// A finite double as JSON (Swift's shortest round-trip form). Non-finite values have no JSON form and
    /// are written as null.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) + ".0" }
        return "\(value)"
    }
}
