import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostKafka
import Synchronization
@testable import OutpostBroker

/// A bare Kafka connection for tests: sends frames built with OutpostKafka's request types and reads
/// response frames in arrival order. Deliberately dumb (no retries, no metadata) so tests see exactly
/// what the broker answers.
final class TestConnection: Sendable {
    let channel: any Channel
    let inbox: FrameInbox
    let nextCorrelation = Atomic<Int32>(0)

    static func connect(port: Int, group: any EventLoopGroup) async throws -> TestConnection {
        let inbox = FrameInbox()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: 256 << 20)))
                    try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return TestConnection(channel: channel, inbox: inbox)
    }

    private init(channel: any Channel, inbox: FrameInbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Sends a request and returns its correlation id (for pipelining).
    @discardableResult
    func send<R: KafkaRequestMessage>(_ request: R, version: Int16) async throws -> Int32 {
        let correlation = nextCorrelation.add(1, ordering: .relaxed).newValue
        try await channel.writeAndFlush(KafkaFrame.encodeRequest(request, version: version, correlationId: correlation, clientId: "test")).get()
        return correlation
    }

    func sendRaw(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    /// The next response frame, or nil once the broker closed the connection.
    func nextFrame() async -> ByteBuffer? { await inbox.next() }

    func receive<R: KafkaRequestMessage>(_: R.Type, version: Int16, correlation: Int32) async throws -> R.Response {
        guard let frame = await nextFrame() else { throw TestError.closed }
        return try KafkaFrame.decodeResponse(frame, for: R.self, version: version, correlationId: correlation)
    }

    func request<R: KafkaRequestMessage>(_ request: R, version: Int16) async throws -> R.Response {
        let correlation = try await send(request, version: version)
        return try await receive(R.self, version: version, correlation: correlation)
    }

    /// True once the broker has closed this connection (waits for it).
    func waitForClose() async -> Bool {
        await nextFrame() == nil
    }

    func close() async {
        try? await channel.close()
    }
}

enum TestError: Error { case closed }

/// Frames in arrival order; `next()` waits for one or for the close.
final class FrameInbox: Sendable {
    struct State {
        var frames: [ByteBuffer] = []
        var closed = false
        var waiter: CheckedContinuation<ByteBuffer?, Never>?
    }

    let state = Mutex(State())

    func push(_ frame: ByteBuffer) {
        let waiter = state.withLock { state -> CheckedContinuation<ByteBuffer?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.frames.append(frame)
            return nil
        }
        waiter?.resume(returning: frame)
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<ByteBuffer?, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    func next() async -> ByteBuffer? {
        await withCheckedContinuation { continuation in
            let ready: (ByteBuffer?, Bool) = state.withLock { state in
                if !state.frames.isEmpty { return (state.frames.removeFirst(), true) }
                if state.closed { return (nil, true) }
                state.waiter = continuation
                return (nil, false)
            }
            if ready.1 { continuation.resume(returning: ready.0) }
        }
    }
}

final class InboxHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let inbox: FrameInbox
    init(inbox: FrameInbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { inbox.push(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { inbox.close() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// A broker in this process on a free loopback port, with its own data directory.
struct TestBroker {
    let broker: Broker
    let directory: String
    let group: MultiThreadedEventLoopGroup

    static func directory(_ name: String = #function) -> String {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        return FileManager.default.temporaryDirectory.appendingPathComponent("outpost-broker-\(safe)-\(UUID().uuidString.prefix(8))").path
    }

    static func start(
        directory: String = TestBroker.directory(), topics: [TopicConfiguration] = [TopicConfiguration(name: "t", partitions: 2)],
        configure: (inout BrokerConfiguration) -> Void = { _ in }
    ) async throws -> TestBroker {
        var configuration = BrokerConfiguration()
        configuration.dataDirectory = directory
        configuration.listen = .init(host: "127.0.0.1", port: 0)
        configuration.metricsEnabled = false
        configuration.topics = topics
        configuration.eventLoopThreads = 2
        configure(&configuration)
        var logger = Logger(label: "test.broker")
        logger.logLevel = .critical
        let broker = try await Broker.start(configuration: configuration, logger: logger)
        return TestBroker(broker: broker, directory: directory, group: MultiThreadedEventLoopGroup(numberOfThreads: 1))
    }

    var port: Int { broker.kafkaPort }

    func connect() async throws -> TestConnection { try await TestConnection.connect(port: port, group: group) }

    func stop(removeData: Bool = true) async {
        await broker.stop()
        try? await group.shutdownGracefully()
        if removeData { try? FileManager.default.removeItem(atPath: directory) }
    }
}
