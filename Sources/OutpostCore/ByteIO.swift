/// Append-only byte sink with big-endian integer and Kafka varint writers.
///
/// Kafka's wire and batch formats are big-endian; records inside a batch use zig-zag varints.
public struct ByteWriter: Sendable {
    /// The bytes written so far. Mutable so callers can move a buffer in and out without copying.
    public var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: Int8) { bytes.append(UInt8(bitPattern: value)) }
    public mutating func write(_ value: Int16) { writeBigEndian(UInt16(bitPattern: value)) }
    public mutating func write(_ value: Int32) { writeBigEndian(UInt32(bitPattern: value)) }
    public mutating func write(_ value: UInt32) { writeBigEndian(value) }
    public mutating func write(_ value: Int64) { writeBigEndian(UInt64(bitPattern: value)) }

    public mutating func write(contentsOf other: some Sequence<UInt8>) { bytes.append(contentsOf: other) }

    public mutating func write(contentsOf buffer: UnsafeRawBufferPointer) { bytes.append(contentsOf: buffer) }

    mutating func writeBigEndian<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        withUnsafeBytes(of: &big) { bytes.append(contentsOf: $0) }
    }

    /// Zig-zag varint (Kafka `VARINT`), 1–5 bytes.
    public mutating func writeVarint(_ value: Int32) {
        writeUnsignedVarint(UInt64(Varint.zigZag(value)))
    }

    /// Zig-zag varlong (Kafka `VARLONG`), 1–10 bytes.
    public mutating func writeVarlong(_ value: Int64) {
        writeUnsignedVarint(Varint.zigZag(value))
    }

    /// Unsigned LEB128 varint (Kafka `UNSIGNED_VARINT`, used by flexible versions).
    public mutating func writeUnsignedVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// Overwrites 4 bytes at `position` (used to patch a length or CRC once the body is known).
    public mutating func patch(_ value: UInt32, at position: Int) {
        precondition(position >= 0 && position + 4 <= bytes.count, "patch outside written bytes")
        bytes[position] = UInt8(truncatingIfNeeded: value >> 24)
        bytes[position + 1] = UInt8(truncatingIfNeeded: value >> 16)
        bytes[position + 2] = UInt8(truncatingIfNeeded: value >> 8)
        bytes[position + 3] = UInt8(truncatingIfNeeded: value)
    }

    public mutating func patch(_ value: Int32, at position: Int) { patch(UInt32(bitPattern: value), at: position) }

    public mutating func takeBytes() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }
}

/// Reads big-endian integers and varints from a byte array, never past its end.
///
/// Every read is bounds-checked and throws `ByteReader.Truncated`, so hostile input cannot trap.
public struct ByteReader: Sendable {
    public struct Truncated: Error, Hashable, Sendable {
        /// Position at which more bytes were needed.
        public var position: Int
        public var needed: Int
    }

    /// A varint longer than its type allows.
    public struct MalformedVarint: Error, Hashable, Sendable {
        public var position: Int
    }

    public let bytes: [UInt8]
    public private(set) var position: Int
    public let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.end = min(end ?? bytes.count, bytes.count)
        self.position = min(start, self.end)
    }

    public var remaining: Int { end - position }
    public var isAtEnd: Bool { position >= end }

    mutating func need(_ count: Int) throws(Truncated) {
        if count < 0 || count > end - position { throw Truncated(position: position, needed: count) }
    }

    public mutating func readUInt8() throws(Truncated) -> UInt8 {
        try need(1)
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readInt8() throws(Truncated) -> Int8 { Int8(bitPattern: try readUInt8()) }
    public mutating func readInt16() throws(Truncated) -> Int16 { Int16(bitPattern: try readBigEndian(UInt16.self)) }
    public mutating func readInt32() throws(Truncated) -> Int32 { Int32(bitPattern: try readBigEndian(UInt32.self)) }
    public mutating func readUInt32() throws(Truncated) -> UInt32 { try readBigEndian(UInt32.self) }
    public mutating func readInt64() throws(Truncated) -> Int64 { Int64(bitPattern: try readBigEndian(UInt64.self)) }

    mutating func readBigEndian<T: FixedWidthInteger>(_: T.Type) throws(Truncated) -> T {
        let size = MemoryLayout<T>.size
        try need(size)
        var value: T = 0
        for index in position..<(position + size) {
            value = (value << 8) | T(bytes[index])
        }
        position += size
        return value
    }

    public mutating func readBytes(_ count: Int) throws(Truncated) -> [UInt8] {
        try need(count)
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    public mutating func skip(_ count: Int) throws(Truncated) {
        try need(count)
        position += count
    }

    /// Unsigned LEB128, at most `maxBytes` bytes (5 for 32-bit, 10 for 64-bit values).
    public mutating func readUnsignedVarint(maxBytes: Int = 10) throws(ByteReaderError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        for _ in 0..<maxBytes {
            let byte: UInt8
            do { byte = try readUInt8() } catch { throw .truncated(error) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .malformedVarint(MalformedVarint(position: start))
    }

    public mutating func readVarint() throws(ByteReaderError) -> Int32 {
        let raw = try readUnsignedVarint(maxBytes: 5)
        guard raw <= UInt64(UInt32.max) else { throw .malformedVarint(MalformedVarint(position: position)) }
        return Varint.unZigZag(UInt32(raw))
    }

    public mutating func readVarlong() throws(ByteReaderError) -> Int64 {
        Varint.unZigZag(try readUnsignedVarint(maxBytes: 10))
    }
}

/// The two ways a read can fail: not enough bytes, or a varint that never ends.
public enum ByteReaderError: Error, Hashable, Sendable {
    case truncated(ByteReader.Truncated)
    case malformedVarint(ByteReader.MalformedVarint)
}

/// Kafka's zig-zag varint encoding (`ByteUtils.writeVarint`): small magnitudes, positive or negative,
/// take few bytes.
public enum Varint {
    @inlinable public static func zigZag(_ value: Int32) -> UInt32 {
        UInt32(bitPattern: (value << 1) ^ (value >> 31))
    }

    @inlinable public static func zigZag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    @inlinable public static func unZigZag(_ value: UInt32) -> Int32 {
        Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    @inlinable public static func unZigZag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
    }

    /// Bytes an unsigned LEB128 encoding of `value` takes.
    @inlinable public static func encodedSize(unsigned value: UInt64) -> Int {
        // 1 byte per started group of 7 bits; 0 still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    @inlinable public static func encodedSize(_ value: Int32) -> Int { encodedSize(unsigned: UInt64(zigZag(value))) }
    @inlinable public static func encodedSize(_ value: Int64) -> Int { encodedSize(unsigned: zigZag(value)) }
}
