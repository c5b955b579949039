import NIOCore
import OutpostKafka

/// Whether a connection is still unauthenticated: written by its `KafkaConnectionHandler`, read by its
/// `ConnectionFrameDecoder`. Both live on the channel's event loop, so a plain class suffices; the decoder
/// sees the change before it cuts the next frame, because the handler decides synchronously while the
/// decoder is delivering the frame that authenticated.
final class AuthenticationGate {
    var isAuthenticated = false
}

/// `KafkaFrameDecoder`, with a much smaller frame limit until the connection has authenticated (Kafka's
/// sasl.server.max.receive.size): a peer that has not proven who it is cannot make the broker buffer a
/// maximum-size request. Without a gate (no SASL) it is `KafkaFrameDecoder` unchanged.
struct ConnectionFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    var frames: KafkaFrameDecoder
    let gate: AuthenticationGate?
    let unauthenticatedFrameBytesMax: Int

    init(frames: KafkaFrameDecoder, gate: AuthenticationGate?, unauthenticatedFrameBytesMax: Int) {
        self.frames = frames
        self.gate = gate
        self.unauthenticatedFrameBytesMax = unauthenticatedFrameBytesMax
    }

    func checkUnauthenticatedSize(_ buffer: ByteBuffer) throws(KafkaProtocolError) {
        guard let gate, !gate.isAuthenticated,
            let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self),
            Int(size) > unauthenticatedFrameBytesMax
        else { return }
        throw .frameTooLarge(size: Int(size), limit: unauthenticatedFrameBytesMax)
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try checkUnauthenticatedSize(buffer)
        return try frames.decode(context: context, buffer: &buffer)
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try checkUnauthenticatedSize(buffer)
        return try frames.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }

    mutating func decoderRemoved(context: ChannelHandlerContext) {
        frames.decoderRemoved(context: context)
    }
}
