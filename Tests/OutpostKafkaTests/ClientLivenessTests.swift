import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing
@testable import OutpostKafka

/// Every await in the client ends: a request written to a connection that is already gone fails instead of
/// being dropped unanswered, and a broker that drops a connection right after accepting it (as one that is
/// still starting up does) fails that connection attempt, so the slot is tried again rather than staying
/// "connecting" for ever.
@Suite struct ClientLivenessTests {
    let address = KafkaBrokerAddress(host: "broker", port: 9092)

    /// Runs `body` in a task and waits for it at most `seconds`: nil if it had not finished by then (the
    /// task is left behind, since what it awaits cannot be cancelled — which is the bug these tests catch).
    static func finished<T: Sendable>(within seconds: Int, _ body: @escaping @Sendable () async -> T) async -> T? {
        let result = Mutex<T?>(nil)
        let task = Task {
            let value = await body()
            result.withLock { $0 = value }
        }
        for _ in 0..<(seconds * 50) {
            if let value = result.withLock({ $0 }) { return value }
            try? await Task.sleep(for: .milliseconds(20))
        }
        withExtendedLifetime(task) {}
        return result.withLock { $0 }
    }

    @Test func aRequestSentAfterTheConnectionWasTornDownFailsInsteadOfWaitingForever() async throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(KafkaClientChannelHandler(address: address, inFlightMax: 8, queuedMax: 8))
        // The broker went away: the channel closes and NIO removes its handlers, so the client handler —
        // which fails everything it holds on close and times out what it wrote — never sees later writes.
        try await channel.close()
        channel.embeddedEventLoop.run()
        let outcome = Mutex<Result<ByteBuffer, KafkaClientError>?>(nil)
        let future = KafkaConnection.exchange(MetadataRequest(topics: []), version: 4, timeout: .seconds(30), on: channel, clientId: "c")
        future.whenComplete { result in outcome.withLock { $0 = result.mapError { KafkaConnection.clientError($0, address: self.address) } } }
        channel.embeddedEventLoop.run()
        #expect(outcome.withLock { $0 }.map { if case .failure(.connectionClosed) = $0 { true } else { false } } == true)
        if outcome.withLock({ $0 }) == nil { Self.unfinished.withLock { $0.append(future) } }
    }

    /// Futures a failing run of the test above leaves unfulfilled: kept alive, so that the failure is an
    /// expectation rather than NIO's leak check trapping the whole test process.
    static let unfinished = Mutex<[EventLoopFuture<ByteBuffer>]>([])

    /// Closes each new client connection as soon as it is up — before the handshake's first request is
    /// written — as a broker that accepted it before it could serve requests does.
    struct DropOnConnect: KafkaTransportSecurity {
        final class Dropper: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                context.fireChannelActive()
                context.close(promise: nil)
            }
        }

        func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, serverHostname: String) throws {
            try pipeline.addHandler(Dropper())
        }
    }

    @Test func aConnectionDroppedBeforeTheHandshakeFailsTheAttemptAndTheSlotIsTriedAgain() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        var logger = Logger(label: "test.liveness")
        logger.logLevel = .critical
        let client = KafkaClient(
            configuration: KafkaClientConfiguration(
                bootstrap: [KafkaBrokerAddress(host: "127.0.0.1", port: port)],
                // A short connect timeout: the handshake watchdog firing is not what ends the attempt.
                connection: KafkaConnectionConfiguration(connectTimeout: .seconds(1), requestTimeout: .seconds(1), transportSecurity: DropOnConnect()),
                reconnectBackoff: KafkaBackoffPolicy(initial: .milliseconds(10), maximum: .milliseconds(20)),
                retryBackoff: KafkaBackoffPolicy(initial: .milliseconds(10), maximum: .milliseconds(20)),
                requestAttemptsMax: 3, jitterSeed: 7),
            eventLoopGroup: group, logger: logger)
        let broker = KafkaBrokerAddress(host: "127.0.0.1", port: port)

        // Several times: each attempt must settle the slot so that the next makes a new attempt (and the
        // race between the drop and the first write goes both ways across rounds).
        for round in 1...6 {
            let outcome = await Self.finished(within: 10) { () async -> Result<Void, KafkaClientError> in
                do throws(KafkaClientError) {
                    _ = try await client.connection(to: broker)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            guard case .failure(.connectionFailed)? = outcome else {
                Issue.record("round \(round): connecting to a broker that drops the connection gave \(outcome.map { "\($0)" } ?? "no answer in 10 s")")
                return
            }
        }
        // Metadata (which the gateway's replicators ask first) fails too, after its attempts.
        let metadata = await Self.finished(within: 10) { () async -> KafkaClientError? in
            do throws(KafkaClientError) {
                try await client.refreshMetadata(topics: ["t"])
                return nil
            } catch {
                return error
            }
        }
        if case .some(.some) = metadata {} else { Issue.record("refreshMetadata gave \(String(describing: metadata))") }

        await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
