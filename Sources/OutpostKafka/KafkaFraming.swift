import NIOCore
import Synchronization

/// Bytes that partially received request frames may hold across all connections (Kafka's
/// `queued.max.request.bytes`): without it, every connection could announce a maximum-size frame and
/// trickle it in, and memory would be `connections × frame limit`.
public final class FrameMemoryBudget: Sendable {
    public let limitBytes: Int
    private let used = Atomic<Int>(0)

    public init(limitBytes: Int) {
        precondition(limitBytes > 0, "a budget must be positive")
        self.limitBytes = limitBytes
    }

    /// Takes `bytes` if they fit.
    public func reserve(_ bytes: Int) -> Bool {
        var current = used.load(ordering: .relaxed)
        while current + bytes <= limitBytes {
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    public func release(_ bytes: Int) { used.subtract(bytes, ordering: .relaxed) }
    public var usedBytes: Int { used.load(ordering: .relaxed) }
}

/// Splits a byte stream into Kafka frames: `int32 size` (big-endian, excluding itself), then `size` bytes.
/// Emits each frame's bytes (header and body) without the prefix.
///
/// A size above `maxFrameBytes` (or ≤ 0) throws at once, before the frame is buffered, so a peer cannot
/// make the server hold more than one frame's worth of bytes; the pipeline's error handling then closes
/// that connection. With a `budget`, a large frame (over `budgetThresholdBytes`) must also fit the shared
/// budget while it is being received, or the connection is closed (`memoryBudgetExhausted`).
public struct KafkaFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    public let maxFrameBytes: Int
    public let budget: FrameMemoryBudget?
    /// Frames up to this size are never counted against the budget (connections × this is small).
    public let budgetThresholdBytes: Int
    /// Bytes reserved for the frame being received.
    private var reserved = 0

    public init(maxFrameBytes: Int, budget: FrameMemoryBudget? = nil, budgetThresholdBytes: Int = 64 << 10) {
        precondition(maxFrameBytes > 0, "a frame limit must be positive")
        self.maxFrameBytes = maxFrameBytes
        self.budget = budget
        self.budgetThresholdBytes = budgetThresholdBytes
    }

    /// The pure framing step: the next whole frame in `buffer` (consumed), or nil (nothing consumed) when
    /// more bytes are needed.
    public static func nextFrame(from buffer: inout ByteBuffer, maxFrameBytes: Int) throws(KafkaProtocolError) -> ByteBuffer? {
        guard let size = try announcedSize(buffer, maxFrameBytes: maxFrameBytes) else { return nil }
        guard buffer.readableBytes >= 4 + size else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: size)
    }

    /// The size the next frame announces, checked against the limit; nil before 4 bytes have arrived.
    static func announcedSize(_ buffer: ByteBuffer, maxFrameBytes: Int) throws(KafkaProtocolError) -> Int? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else { return nil }
        guard size > 0 else { throw .invalidFrameSize(size) }
        guard Int(size) <= maxFrameBytes else { throw .frameTooLarge(size: Int(size), limit: maxFrameBytes) }
        return Int(size)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, maxFrameBytes: maxFrameBytes) else {
            try reserveForPartialFrame(buffer)
            return .needMoreData
        }
        releaseReservation()
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // Deliver whole frames still buffered; a partial one at EOF is dropped (the peer is gone).
        while let frame = try Self.nextFrame(from: &buffer, maxFrameBytes: maxFrameBytes) {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        releaseReservation()
        return .needMoreData
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        releaseReservation()
    }

    mutating func reserveForPartialFrame(_ buffer: ByteBuffer) throws(KafkaProtocolError) {
        guard let budget, reserved == 0, let size = try Self.announcedSize(buffer, maxFrameBytes: maxFrameBytes),
            size > budgetThresholdBytes
        else { return }
        guard budget.reserve(size) else {
            throw .memoryBudgetExhausted(frameBytes: size, budgetBytes: budget.limitBytes)
        }
        reserved = size
    }

    mutating func releaseReservation() {
        guard reserved > 0 else { return }
        budget?.release(reserved)
        reserved = 0
    }
}

/// Building whole size-prefixed frames.
public enum KafkaFrame {
    /// A request frame: size, request header (v1 or v2 by the API's flexible versions), body.
    public static func encodeRequest<Request: KafkaRequestMessage>(
        _ request: Request, version: Int16, correlationId: Int32, clientId: String?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        precondition(Request.versions.contains(version), "\(Request.apiKey) v\(version) is outside \(Request.versions)")
        var writer = KafkaWriter(buffer: allocator.buffer(capacity: 256))
        writer.writeInt32(0)  // size: patched below
        KafkaRequestHeader(apiKey: Request.apiKey, apiVersion: version, correlationId: correlationId, clientId: clientId)
            .encode(to: &writer)
        request.encode(to: &writer, version: version)
        patchSize(&writer.buffer)
        return writer.buffer
    }

    /// A response frame: size, response header (v0, or v1 when flexible — never for ApiVersions), body.
    public static func encodeResponse(
        correlationId: Int32, apiKey: KafkaAPIKey, version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator(),
        capacity: Int = 256, body: (inout KafkaWriter) -> Void
    ) -> ByteBuffer {
        var writer = KafkaWriter(buffer: allocator.buffer(capacity: capacity))
        writer.writeInt32(0)
        KafkaResponseHeader(correlationId: correlationId).encode(to: &writer, headerVersion: apiKey.responseHeaderVersion(version))
        body(&writer)
        patchSize(&writer.buffer)
        return writer.buffer
    }

    public static func encodeResponse<Response: KafkaResponseMessage>(
        _ response: Response, version: Int16, correlationId: Int32, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        encodeResponse(correlationId: correlationId, apiKey: Response.apiKey, version: version, allocator: allocator) { writer in
            response.encode(to: &writer, version: version)
        }
    }

    /// Writes the frame size into the first 4 bytes of a buffer built with a placeholder there.
    public static func patchSize(_ buffer: inout ByteBuffer) {
        let size = buffer.writerIndex - buffer.readerIndex - 4
        buffer.setInteger(Int32(size), at: buffer.readerIndex, endianness: .big)
    }

    /// Reads a response frame's body (after the size prefix), checking the correlation id: the client side
    /// of `encodeResponse`.
    public static func decodeResponse<Request: KafkaRequestMessage>(
        _ frame: ByteBuffer, for _: Request.Type, version: Int16, correlationId: Int32
    ) throws(KafkaProtocolError) -> Request.Response {
        var reader = KafkaReader(frame)
        let header = try KafkaResponseHeader(from: &reader, headerVersion: Request.apiKey.responseHeaderVersion(version))
        guard header.correlationId == correlationId else {
            throw .correlationMismatch(expected: correlationId, received: header.correlationId)
        }
        return try Request.Response.decode(reader.buffer, version: version)
    }
}
