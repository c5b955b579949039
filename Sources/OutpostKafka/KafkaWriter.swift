import NIOCore

/// Writes Kafka's primitive types into a `ByteBuffer`. The counterpart of `KafkaReader`.
public struct KafkaWriter: Sendable {
    public var buffer: ByteBuffer

    public init(buffer: ByteBuffer) { self.buffer = buffer }
    public init(capacity: Int = 256) { self.buffer = ByteBufferAllocator().buffer(capacity: capacity) }

    public mutating func writeInt8(_ value: Int8) { buffer.writeInteger(value) }
    public mutating func writeInt16(_ value: Int16) { buffer.writeInteger(value, endianness: .big) }
    public mutating func writeInt32(_ value: Int32) { buffer.writeInteger(value, endianness: .big) }
    public mutating func writeInt64(_ value: Int64) { buffer.writeInteger(value, endianness: .big) }
    public mutating func writeBool(_ value: Bool) { writeInt8(value ? 1 : 0) }
    public mutating func writeErrorCode(_ code: KafkaErrorCode) { writeInt16(code.rawValue) }

    /// STRING. Kafka strings are at most 32,767 bytes; a longer one is a programming error here (every
    /// string we write is a name we validated or generated), so it traps rather than corrupting the frame.
    public mutating func writeString(_ value: String) {
        let count = value.utf8.count
        precondition(count <= Int(Int16.max), "Kafka STRING longer than 32767 bytes")
        writeInt16(Int16(count))
        buffer.writeString(value)
    }

    public mutating func writeNullableString(_ value: String?) {
        guard let value else {
            writeInt16(-1)
            return
        }
        writeString(value)
    }

    public mutating func writeBytes(_ value: ByteBuffer) {
        writeInt32(Int32(value.readableBytes))
        var copy = value
        buffer.writeBuffer(&copy)
    }

    public mutating func writeBytes(_ value: [UInt8]) {
        writeInt32(Int32(value.count))
        buffer.writeBytes(value)
    }

    public mutating func writeNullableBytes(_ value: ByteBuffer?) {
        guard let value else {
            writeInt32(-1)
            return
        }
        writeBytes(value)
    }

    public mutating func writeArray<Element>(_ elements: [Element], _ element: (inout KafkaWriter, Element) -> Void) {
        writeInt32(Int32(elements.count))
        for item in elements { element(&self, item) }
    }

    public mutating func writeNullableArray<Element>(_ elements: [Element]?, _ element: (inout KafkaWriter, Element) -> Void) {
        guard let elements else {
            writeInt32(-1)
            return
        }
        writeArray(elements, element)
    }

    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var rest = value
        while rest >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        buffer.writeInteger(UInt8(rest))
    }

    public mutating func writeCompactNullableString(_ value: String?) {
        guard let value else {
            writeUnsignedVarint(0)
            return
        }
        writeUnsignedVarint(UInt32(value.utf8.count) + 1)
        buffer.writeString(value)
    }

    public mutating func writeCompactString(_ value: String) { writeCompactNullableString(value) }

    /// An empty TAG_BUFFER.
    public mutating func writeEmptyTaggedFields() { writeUnsignedVarint(0) }
}
