// Compiled only once OutpostKafkaTests depends on NIOTestUtils (see the report on issue 6): swift-nio's
// own verifier feeds the decoder every way of splitting the input (one byte at a time, all at once, …) and
// checks it yields exactly the expected frames and leaves nothing behind.
#if canImport(NIOTestUtils)
import NIOCore
import NIOTestUtils
import Testing
@testable import OutpostKafka

@Suite struct FrameDecoderVerifierTests {
    @Test func niosVerifierAcceptsTheFrameDecoder() throws {
        func frame(_ payload: [UInt8]) -> (ByteBuffer, [ByteBuffer]) {
            var input = ByteBuffer()
            input.writeInteger(Int32(payload.count), endianness: .big)
            input.writeBytes(payload)
            return (input, [ByteBuffer(bytes: payload)])
        }
        let pairs = [frame([1]), frame(Array(0..<200)), frame([7, 7, 7]), frame(Array(repeating: 0xAB, count: 5000))]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            KafkaFrameDecoder(maxFrameBytes: 1 << 20)
        }
    }
}
#endif
