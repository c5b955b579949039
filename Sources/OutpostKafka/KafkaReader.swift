import NIOCore

/// Reads Kafka's primitive types (AK `protocol/types/Type.java`) from a `ByteBuffer`.
///
/// Every read is bounds-checked and throws `KafkaProtocolError`; counts and lengths are checked against
/// the bytes left before anything is allocated, so a hostile count cannot make us reserve gigabytes.
/// Field names passed in are only for error messages.
public struct KafkaReader: Sendable {
    public private(set) var buffer: ByteBuffer
    /// Reader index of the message start, so errors report positions relative to it.
    let origin: Int

    public init(_ buffer: ByteBuffer) {
        self.buffer = buffer
        self.origin = buffer.readerIndex
    }

    public var remaining: Int { buffer.readableBytes }
    public var isAtEnd: Bool { buffer.readableBytes == 0 }
    var position: Int { buffer.readerIndex - origin }

    func truncated(_ field: String, _ needed: Int) -> KafkaProtocolError {
        .truncated(field: field, position: position, needed: needed)
    }

    // MARK: Fixed-width integers

    public mutating func readInt8(_ field: String = "int8") throws(KafkaProtocolError) -> Int8 {
        guard let value = buffer.readInteger(as: Int8.self) else { throw truncated(field, 1) }
        return value
    }

    public mutating func readInt16(_ field: String = "int16") throws(KafkaProtocolError) -> Int16 {
        guard let value = buffer.readInteger(endianness: .big, as: Int16.self) else { throw truncated(field, 2) }
        return value
    }

    public mutating func readInt32(_ field: String = "int32") throws(KafkaProtocolError) -> Int32 {
        guard let value = buffer.readInteger(endianness: .big, as: Int32.self) else { throw truncated(field, 4) }
        return value
    }

    public mutating func readInt64(_ field: String = "int64") throws(KafkaProtocolError) -> Int64 {
        guard let value = buffer.readInteger(endianness: .big, as: Int64.self) else { throw truncated(field, 8) }
        return value
    }

    /// BOOLEAN: one byte, any non-zero value is true.
    public mutating func readBool(_ field: String = "bool") throws(KafkaProtocolError) -> Bool {
        try readInt8(field) != 0
    }

    public mutating func readErrorCode(_ field: String = "error_code") throws(KafkaProtocolError) -> KafkaErrorCode {
        KafkaErrorCode(try readInt16(field))
    }

    // MARK: Strings and bytes

    /// STRING: int16 length (≥ 0), then UTF-8.
    public mutating func readString(_ field: String = "string") throws(KafkaProtocolError) -> String {
        let length = try readInt16(field)
        guard length >= 0 else { throw .invalidLength(field: field, length: Int64(length)) }
        return try readUTF8(field, length: Int(length))
    }

    /// NULLABLE_STRING: int16 length, −1 for null.
    public mutating func readNullableString(_ field: String = "nullable string") throws(KafkaProtocolError) -> String? {
        let length = try readInt16(field)
        if length == -1 { return nil }
        guard length >= 0 else { throw .invalidLength(field: field, length: Int64(length)) }
        return try readUTF8(field, length: Int(length))
    }

    mutating func readUTF8(_ field: String, length: Int) throws(KafkaProtocolError) -> String {
        guard let slice = buffer.readSlice(length: length) else { throw truncated(field, length) }
        guard let string = String(validating: slice.readableBytesView, as: UTF8.self) else { throw .invalidUTF8(field: field) }
        return string
    }

    /// BYTES: int32 length (≥ 0), then the bytes, returned as a slice sharing the frame's storage.
    public mutating func readBytes(_ field: String = "bytes") throws(KafkaProtocolError) -> ByteBuffer {
        let length = try readInt32(field)
        guard length >= 0 else { throw .invalidLength(field: field, length: Int64(length)) }
        return try readSlice(field, length: Int(length))
    }

    /// NULLABLE_BYTES (and RECORDS in non-flexible versions): int32 length, −1 for null.
    public mutating func readNullableBytes(_ field: String = "nullable bytes") throws(KafkaProtocolError) -> ByteBuffer? {
        let length = try readInt32(field)
        if length == -1 { return nil }
        guard length >= 0 else { throw .invalidLength(field: field, length: Int64(length)) }
        return try readSlice(field, length: Int(length))
    }

    mutating func readSlice(_ field: String, length: Int) throws(KafkaProtocolError) -> ByteBuffer {
        guard let slice = buffer.readSlice(length: length) else { throw truncated(field, length) }
        return slice
    }

    // MARK: Arrays

    /// ARRAY: int32 count (≥ 0), then the elements. Each element takes at least one byte, so a count above
    /// the bytes left is rejected before any element is read.
    public mutating func readArray<Element>(
        _ field: String = "array", _ element: (inout KafkaReader) throws(KafkaProtocolError) -> Element
    ) throws(KafkaProtocolError) -> [Element] {
        guard let elements = try readNullableArray(field, element) else {
            throw .invalidLength(field: field, length: -1)
        }
        return elements
    }

    /// ARRAY with −1 meaning null (nullable in some versions).
    public mutating func readNullableArray<Element>(
        _ field: String = "array", _ element: (inout KafkaReader) throws(KafkaProtocolError) -> Element
    ) throws(KafkaProtocolError) -> [Element]? {
        let count = try readInt32(field)
        if count == -1 { return nil }
        guard count >= 0, Int(count) <= remaining else { throw .invalidLength(field: field, length: Int64(count)) }
        var elements: [Element] = []
        elements.reserveCapacity(Int(count))
        for _ in 0..<count { elements.append(try element(&self)) }
        return elements
    }

    // MARK: Flexible-version types (only ApiVersions v3+ requests reach us in that form)

    /// UNSIGNED_VARINT: LEB128, at most 5 bytes for a 32-bit value.
    public mutating func readUnsignedVarint(_ field: String = "unsigned varint") throws(KafkaProtocolError) -> UInt32 {
        var result: UInt32 = 0
        for index in 0..<5 {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw truncated(field, 1) }
            if index == 4 && byte > 0x0F { throw .malformedVarint(field: field) }
            result |= UInt32(byte & 0x7F) << (7 * UInt32(index))
            if byte & 0x80 == 0 { return result }
        }
        throw .malformedVarint(field: field)
    }

    /// COMPACT_NULLABLE_STRING: uvarint(length + 1), 0 for null.
    public mutating func readCompactNullableString(_ field: String = "compact string") throws(KafkaProtocolError) -> String? {
        let lengthPlusOne = try readUnsignedVarint(field)
        if lengthPlusOne == 0 { return nil }
        let length = Int(lengthPlusOne - 1)
        guard length <= remaining else { throw truncated(field, length) }
        return try readUTF8(field, length: length)
    }

    /// COMPACT_STRING: as the nullable form, but null is invalid.
    public mutating func readCompactString(_ field: String = "compact string") throws(KafkaProtocolError) -> String {
        guard let string = try readCompactNullableString(field) else { throw .invalidLength(field: field, length: -1) }
        return string
    }

    /// TAG_BUFFER: uvarint count, then (uvarint tag, uvarint size, bytes) each. Tags are skipped: no field
    /// this module reads is tagged.
    public mutating func skipTaggedFields(_ field: String = "tagged fields") throws(KafkaProtocolError) {
        let count = try readUnsignedVarint(field)
        guard Int(count) <= remaining else { throw .invalidLength(field: field, length: Int64(count)) }
        for _ in 0..<count {
            _ = try readUnsignedVarint(field)
            let size = Int(try readUnsignedVarint(field))
            guard buffer.readSlice(length: size) != nil else { throw truncated(field, size) }
        }
    }
}
