import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import OutpostKafka

/// Size-prefixed framing: whole frames out of any split of the stream, limits enforced before buffering.
@Suite struct FramingTests {
    func frame(_ payload: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(payload.count), endianness: .big)
        buffer.writeBytes(payload)
        return Array(buffer.readableBytesView)
    }

    /// Feeds `stream` to the pure framing step in pieces of `chunk` bytes, like a socket would.
    func frames(from stream: [UInt8], chunk: Int, limit: Int = 1 << 20) throws -> [[UInt8]] {
        var buffer = ByteBuffer()
        var out: [[UInt8]] = []
        var position = 0
        while position < stream.count {
            let end = min(position + chunk, stream.count)
            buffer.writeBytes(stream[position..<end])
            position = end
            while let frame = try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: limit) {
                out.append(Array(frame.readableBytesView))
            }
            buffer.discardReadBytes()
        }
        #expect(buffer.readableBytes == 0)
        return out
    }

    static let payloads: [[UInt8]] = [[1], Array(0..<200), [7, 7, 7], Array(repeating: 0xAB, count: 5000), [0]]

    @Test func dripFeedingOneByteAtATimeYieldsEveryFrame() throws {
        let stream = Self.payloads.flatMap(frame)
        #expect(try frames(from: stream, chunk: 1) == Self.payloads)
    }

    @Test(arguments: [2, 3, 5, 64, 4099, 1 << 20])
    func anySplitOfTheStreamYieldsTheSameFrames(chunk: Int) throws {
        let stream = Self.payloads.flatMap(frame)
        #expect(try frames(from: stream, chunk: chunk) == Self.payloads)
    }

    @Test func manyFramesInOneBufferComeOutInOrder() throws {
        let payloads = (0..<1000).map { index in [UInt8](repeating: UInt8(index % 251), count: index % 17 + 1) }
        let stream = payloads.flatMap(frame)
        #expect(try frames(from: stream, chunk: stream.count) == payloads)
    }

    @Test func anOversizedFrameIsRejectedFromItsPrefixAlone() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(1001), endianness: .big)  // nothing after the prefix yet
        #expect(throws: KafkaProtocolError.frameTooLarge(size: 1001, limit: 1000)) {
            _ = try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1000)
        }
    }

    @Test(arguments: [Int32(0), -1, .min])
    func aNonPositiveSizeIsRejected(size: Int32) throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(size, endianness: .big)
        #expect(throws: KafkaProtocolError.invalidFrameSize(size)) {
            _ = try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1000)
        }
    }

    @Test func theMemoryBudgetIsTakenByLargePartialFramesAndGivenBack() throws {
        let budget = FrameMemoryBudget(limitBytes: 300_000)
        #expect(budget.reserve(200_000))
        #expect(!budget.reserve(200_000), "does not fit")
        #expect(budget.reserve(100_000))
        budget.release(300_000)
        #expect(budget.usedBytes == 0)
    }

    @Test func aLargePartialFrameHoldsBudgetUntilItCompletesAndTheNextDoesNotFit() throws {
        let budget = FrameMemoryBudget(limitBytes: 150_000)
        var first = KafkaFrameDecoder(maxFrameBytes: 1 << 20, budget: budget)
        var second = KafkaFrameDecoder(maxFrameBytes: 1 << 20, budget: budget)
        var partial = ByteBuffer()
        partial.writeInteger(Int32(100_000), endianness: .big)
        partial.writeBytes([UInt8](repeating: 0, count: 10))
        try first.reserveForPartialFrame(partial)
        #expect(budget.usedBytes == 100_000)
        try first.reserveForPartialFrame(partial)
        #expect(budget.usedBytes == 100_000, "one reservation per frame")
        #expect(throws: KafkaProtocolError.memoryBudgetExhausted(frameBytes: 100_000, budgetBytes: 150_000)) {
            try second.reserveForPartialFrame(partial)
        }
        var small = ByteBuffer()
        small.writeInteger(Int32(1_000), endianness: .big)
        try second.reserveForPartialFrame(small)
        #expect(budget.usedBytes == 100_000, "small frames are not counted")
        first.releaseReservation()
        #expect(budget.usedBytes == 0)
        try second.reserveForPartialFrame(partial)
        #expect(budget.usedBytes == 100_000)
    }

    @Test func aFrameExactlyAtTheLimitPasses() throws {
        let payload = [UInt8](repeating: 1, count: 1000)
        #expect(try frames(from: frame(payload), chunk: 7, limit: 1000) == [payload])
    }

    /// The decoder inside a real NIO pipeline: a client writes a stream of frames one byte per write, then
    /// many frames in a single write; the server channel sees every frame, in order.
    @Test func theDecoderInAPipelineSeesEveryFrameWhateverTheSegmentation() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let collector = FrameCollector()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: 1 << 16)))
                    try channel.pipeline.syncOperations.addHandler(CollectingHandler(collector: collector))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let client = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port).get()
        let stream = Self.payloads.flatMap(frame)
        for byte in stream {
            try await client.writeAndFlush(ByteBuffer(bytes: [byte])).get()
        }
        try await client.writeAndFlush(ByteBuffer(bytes: stream)).get()
        let expected = Self.payloads + Self.payloads
        let received = await collector.waitFor(count: expected.count)
        #expect(received == expected)
        try await client.close().get()
        try await server.close().get()
        try await group.shutdownGracefully()
    }
}

/// Collects frames in arrival order (channelRead runs on the event loop, in order) and wakes a waiter.
final class FrameCollector: Sendable {
    struct State {
        var frames: [[UInt8]] = []
        var waiter: (count: Int, continuation: CheckedContinuation<[[UInt8]], Never>)?
    }

    let state = Mutex(State())

    func add(_ frame: [UInt8]) {
        let ready: (CheckedContinuation<[[UInt8]], Never>, [[UInt8]])? = state.withLock { state in
            state.frames.append(frame)
            guard let waiter = state.waiter, state.frames.count >= waiter.count else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.frames)
        }
        if let (continuation, frames) = ready { continuation.resume(returning: frames) }
    }

    func waitFor(count: Int) async -> [[UInt8]] {
        await withCheckedContinuation { continuation in
            let frames: [[UInt8]]? = state.withLock { state in
                if state.frames.count >= count { return state.frames }
                state.waiter = (count, continuation)
                return nil
            }
            if let frames { continuation.resume(returning: frames) }
        }
    }
}

final class CollectingHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let collector: FrameCollector
    init(collector: FrameCollector) { self.collector = collector }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        collector.add(Array(unwrapInboundIn(data).readableBytesView))
    }
}
