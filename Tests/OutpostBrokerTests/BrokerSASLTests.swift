import Foundation
import NIOCore
import NIOPosix
import OutpostKafka
import Synchronization
import Testing
@testable import OutpostBroker

/// A broker in this process with SASL/PLAIN on its (plaintext) listener, driven over TCP: what a
/// connection may do before, during and after authentication, and that refused connections leave the
/// broker serving everyone else.
@Suite(.serialized) struct BrokerSASLTests {
    static let users = ["gateway": SASLPassword("gateway-secret"), "monitor": SASLPassword("monitor-secret")]

    static func start(sasl: Bool = true, configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> TestBroker {
        try await TestBroker.start { configuration in
            if sasl { configuration.sasl = BrokerSASLConfiguration(users: users) }
            configure(&configuration)
        }
    }

    /// ApiVersions, SaslHandshake v1, SaslAuthenticate: the exchange librdkafka and kafka-python make.
    static func authenticate(_ connection: TestConnection, user: String, password: String, version: Int16 = 1) async throws -> SaslAuthenticateResponse {
        let handshake = try await connection.request(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1)
        #expect(handshake.errorCode == .none)
        #expect(handshake.mechanisms == ["PLAIN"])
        return try await connection.request(SaslAuthenticateRequest(plain: SaslPlainToken(username: user, password: password)), version: version)
    }

    func advertisedKeys(_ connection: TestConnection) async throws -> Set<Int16> {
        Set(try await connection.request(ApiVersionsRequest(), version: 2).apiKeys.map(\.apiKey))
    }

    @Test func apiVersionsListsTheSaslApisOnlyWhenSaslIsOn() async throws {
        let plain = try await Self.start(sasl: false)
        let plainKeys = try await advertisedKeys(try await plain.connect())
        #expect(!plainKeys.contains(17) && !plainKeys.contains(36))
        await plain.stop()

        // This connection never authenticates: keep the set-up deadline (30 s by default) out of the way. A
        // fresh-clone CI run, on a machine loaded enough that this test took 91 s, once lost the connection
        // here ("I/O on closed channel"), most likely to that deadline.
        let broker = try await Self.start { $0.security.connectionSetupTimeoutMilliseconds = 600_000 }
        let connection = try await broker.connect()
        let response = try await connection.request(ApiVersionsRequest(), version: 2)
        #expect(response.apiKeys.contains(.init(apiKey: 17, minVersion: 0, maxVersion: 1)))
        #expect(response.apiKeys.contains(.init(apiKey: 36, minVersion: 0, maxVersion: 1)))
        #expect(Set(response.apiKeys.map(\.apiKey)) == plainKeys.union([17, 36]))
        // The flexible first try (librdkafka sends v3) gets the v0-layout fallback, with the SASL keys too.
        let correlation = try await connection.send(ApiVersionsRequest(clientSoftwareName: "librdkafka", clientSoftwareVersion: "2.0.2"), version: 3)
        let fallback = try await connection.receive(ApiVersionsRequest.self, version: 0, correlation: correlation)
        #expect(fallback.errorCode == .unsupportedVersion)
        #expect(Set(fallback.apiKeys.map(\.apiKey)).isSuperset(of: [17, 36]))
        await broker.stop()
    }

    @Test func aRequestBeforeAuthenticationClosesTheConnectionAndTheBrokerServesOthers() async throws {
        let broker = try await Self.start()
        let early = try await broker.connect()
        _ = try await early.request(ApiVersionsRequest(), version: 2)
        try await early.send(MetadataRequest(topics: nil), version: 4)
        #expect(await early.waitForClose(), "Metadata before authenticating: closed without an answer, as Kafka does")

        let afterHandshake = try await broker.connect()
        #expect(try await afterHandshake.request(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1).errorCode == .none)
        try await afterHandshake.send(ProduceRequest(acks: 1, timeoutMs: 1_000, topics: []), version: 7)
        #expect(await afterHandshake.waitForClose(), "only SaslAuthenticate may follow the handshake")

        let fine = try await broker.connect()
        #expect(try await Self.authenticate(fine, user: "gateway", password: "gateway-secret").errorCode == .none)
        #expect(try await fine.request(MetadataRequest(topics: nil), version: 4).topics.map(\.name) == ["t"])
        await broker.stop()
    }

    @Test(arguments: [("gateway", "wrong"), ("gateway", "monitor-secret"), ("intruder", "gateway-secret")])
    func wrongCredentialsGetSaslAuthenticationFailedAndTheConnectionIsClosed(user: String, password: String) async throws {
        let broker = try await Self.start { $0.security.failedAuthenticationDelayMilliseconds = 50 }
        let connection = try await broker.connect()
        let started = ContinuousClock.now
        let response = try await Self.authenticate(connection, user: user, password: password)
        #expect(ContinuousClock.now - started >= .milliseconds(50), "the answer to a failed authentication is delayed")
        #expect(response.errorCode == .saslAuthenticationFailed)
        #expect(response.errorMessage == "Authentication failed: Invalid username or password")
        #expect(await connection.waitForClose())

        let retry = try await broker.connect()
        #expect(try await Self.authenticate(retry, user: "monitor", password: "monitor-secret").errorCode == .none, "the broker keeps serving")
        await broker.stop()
    }

    @Test(arguments: [Int16(0), 1])
    func theRightPasswordAuthenticatesAndTheConnectionIsServedNormally(version: Int16) async throws {
        let broker = try await Self.start()
        let connection = try await broker.connect()
        let response = try await Self.authenticate(connection, user: "gateway", password: "gateway-secret", version: version)
        #expect(response.errorCode == .none)
        #expect(response.errorMessage == nil)
        #expect(response.sessionLifetimeMs == 0, "no re-authentication (KIP-368) is asked for")
        let batch = try BrokerServerTests.batch(["a", "b"])
        let produced = try await connection.request(BrokerServerTests.produce(batch), version: 7)
        #expect(produced.topics.first?.partitions.first?.errorCode == KafkaErrorCode.none)
        let fetched = try await connection.request(BrokerServerTests.fetch(offset: 0), version: 11)
        #expect(fetched.topics.first?.partitions.first?.highWatermark == 2)
        // A second exchange on an authenticated connection is ILLEGAL_SASL_STATE, and the connection stays.
        #expect(try await connection.request(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1).errorCode == .illegalSaslState)
        let again = try await connection.request(SaslAuthenticateRequest(plain: SaslPlainToken(username: "gateway", password: "gateway-secret")), version: 1)
        #expect(again.errorCode == .illegalSaslState)
        #expect(try await connection.request(MetadataRequest(topics: nil), version: 4).brokers.count == 1)
        await broker.stop()
    }

    @Test func anUnknownMechanismIsRefusedWithTheEnabledOnes() async throws {
        let broker = try await Self.start()
        let connection = try await broker.connect()
        let response = try await connection.request(SaslHandshakeRequest(mechanism: "SCRAM-SHA-256"), version: 1)
        #expect(response.errorCode == .unsupportedSaslMechanism)
        #expect(response.mechanisms == ["PLAIN"])
        #expect(await connection.waitForClose())
        await broker.stop()
    }

    @Test func saslRequestsOnAListenerWithoutSaslAreIllegalSaslStateAndTheConnectionStays() async throws {
        let broker = try await Self.start(sasl: false)
        let connection = try await broker.connect()
        let handshake = try await connection.request(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1)
        #expect(handshake.errorCode == .illegalSaslState)
        #expect(handshake.mechanisms.isEmpty)
        let authenticate = try await connection.request(SaslAuthenticateRequest(plain: SaslPlainToken(username: "a", password: "b")), version: 1)
        #expect(authenticate.errorCode == .illegalSaslState)
        #expect(try await connection.request(MetadataRequest(topics: nil), version: 4).brokers.count == 1)
        await broker.stop()
    }

    /// SaslHandshake v0 (KIP-43): the token follows as a bare frame, the answer is an empty frame.
    @Test func theLegacyV0ExchangeUsesBareFrames() async throws {
        let broker = try await Self.start()
        let raw = try await RawConnection.connect(port: broker.port, group: broker.group)
        try await raw.write(KafkaFrame.encodeRequest(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0, correlationId: 1, clientId: "legacy"))
        let handshake = try await raw.readFrame()
        let decoded = try KafkaFrame.decodeResponse(handshake, for: SaslHandshakeRequest.self, version: 0, correlationId: 1)
        #expect(decoded.errorCode == .none)
        var token = ByteBuffer()
        token.writeInteger(Int32(SaslPlainToken(username: "monitor", password: "monitor-secret").encoded().readableBytes))
        var body = SaslPlainToken(username: "monitor", password: "monitor-secret").encoded()
        token.writeBuffer(&body)
        try await raw.write(token)
        #expect(try await raw.readBytes(4) == [0, 0, 0, 0], "an empty frame: authenticated")
        try await raw.write(KafkaFrame.encodeRequest(MetadataRequest(topics: nil), version: 4, correlationId: 2, clientId: "legacy"))
        let metadata = try KafkaFrame.decodeResponse(try await raw.readFrame(), for: MetadataRequest.self, version: 4, correlationId: 2)
        #expect(metadata.topics.map(\.name) == ["t"])
        await raw.close()

        let wrong = try await RawConnection.connect(port: broker.port, group: broker.group)
        try await wrong.write(KafkaFrame.encodeRequest(SaslHandshakeRequest(mechanism: "PLAIN"), version: 0, correlationId: 1, clientId: "legacy"))
        _ = try await wrong.readFrame()
        let before = wrong.receivedBytes
        var bad = ByteBuffer()
        let badToken = SaslPlainToken(username: "monitor", password: "guess").encoded()
        bad.writeInteger(Int32(badToken.readableBytes))
        bad.writeImmutableBuffer(badToken)
        try await wrong.write(bad)
        #expect(await wrong.waitForClose(), "v0 has no error answer: the connection closes")
        #expect(wrong.receivedBytes == before, "nothing after the handshake answer")
        await broker.stop()
    }

    @Test func anUnauthenticatedConnectionCannotSendALargeFrame() async throws {
        let broker = try await Self.start { $0.security.unauthenticatedFrameBytesMax = 64 << 10 }
        let raw = try await RawConnection.connect(port: broker.port, group: broker.group)
        var header = ByteBuffer()
        header.writeInteger(Int32(1 << 20))  // announces 1 MiB, sends 4 bytes of it
        header.writeInteger(Int32(0))
        try await raw.write(header)
        #expect(await raw.waitForClose(), "closed on the size prefix, before buffering the frame")

        // After authentication the normal limit applies.
        let connection = try await broker.connect()
        #expect(try await Self.authenticate(connection, user: "gateway", password: "gateway-secret").errorCode == .none)
        let big = try BrokerServerTests.batch([String(repeating: "x", count: 200 << 10)])
        let produced = try await connection.request(BrokerServerTests.produce(big), version: 7)
        #expect(produced.topics.first?.partitions.first?.errorCode == KafkaErrorCode.none)
        await broker.stop()
    }

    @Test func aConnectionThatDoesNotAuthenticateInTimeIsClosed() async throws {
        // A second to authenticate, for the connections meant to run out of it.
        let broker = try await Self.start { $0.security.connectionSetupTimeoutMilliseconds = 1000 }
        let idle = try await broker.connect()
        let started = ContinuousClock.now
        #expect(await idle.waitForClose())
        // Only a bound against a hang: nothing but the set-up timer closes a quiet connection, and on the
        // loaded 2-core CI machine short timers have fired 5-10 s late.
        #expect(ContinuousClock.now - started < .seconds(30))

        // The handshake must get in within the second, which a starved test can miss: a connection closed,
        // a second or more after connecting, before its handshake was answered was closed by the timer
        // before the test got to it. That says nothing about what a handshake does, so it is tried again (a
        // broker that closes on the handshake fails every try).
        var handshakeAnswered = false
        for _ in 0..<5 where !handshakeAnswered {
            let connecting = ContinuousClock.now
            let slow = try await broker.connect()
            guard let handshake = try? await slow.request(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1) else {
                #expect(ContinuousClock.now - connecting >= .seconds(1), "closed before the set-up timeout, without answering the handshake")
                continue
            }
            handshakeAnswered = true
            #expect(handshake.errorCode == .none)
            #expect(await slow.waitForClose(), "a handshake alone does not stop the clock")
        }
        #expect(handshakeAnswered, "in 5 tries no handshake was answered before the set-up timeout closed the connection")
        await broker.stop()

        // A connection that authenticates in time stays past the deadline. Its own broker gives it 10 s, so
        // a starved test still authenticates in time; the deadline, armed before the answer, has passed once
        // 10 s have gone by since it.
        let patient = try await Self.start { $0.security.connectionSetupTimeoutMilliseconds = 10_000 }
        let prompt = try await patient.connect()
        #expect(try await Self.authenticate(prompt, user: "gateway", password: "gateway-secret").errorCode == .none)
        try await Task.sleep(for: .milliseconds(10_500))
        #expect(try await prompt.request(MetadataRequest(topics: nil), version: 4).brokers.count == 1, "authenticated in time: the connection stays")
        await patient.stop()
    }

    @Test func tooManyRequestsBeforeAuthenticatingCloseTheConnection() async throws {
        let broker = try await Self.start { $0.security.requestsBeforeAuthenticationMax = 3 }
        let connection = try await broker.connect()
        for _ in 0..<3 { _ = try await connection.request(ApiVersionsRequest(), version: 2) }
        try await connection.send(ApiVersionsRequest(), version: 2)
        #expect(await connection.waitForClose())
        await broker.stop()
    }
}

/// A connection that reads raw bytes, for the exchanges that are not Kafka frames (SASL v0, oversized
/// prefixes).
final class RawConnection: Sendable {
    let channel: any Channel
    let collector: ByteCollector

    static func connect(port: Int, group: any EventLoopGroup) async throws -> RawConnection {
        let collector = ByteCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawConnection(channel: channel, collector: collector)
    }

    private init(channel: any Channel, collector: ByteCollector) {
        self.channel = channel
        self.collector = collector
    }

    func write(_ bytes: ByteBuffer) async throws { try await channel.writeAndFlush(bytes).get() }

    var receivedBytes: Int { collector.state.withLock { $0.total } }

    /// Exactly `count` bytes, waiting up to 5 s.
    func readBytes(_ count: Int) async throws -> [UInt8] {
        for _ in 0..<500 {
            let taken: [UInt8]? = collector.state.withLock { state in
                guard state.buffer.readableBytes >= count else { return nil }
                return state.buffer.readBytes(length: count)
            }
            if let taken { return taken }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestError.closed
    }

    /// One size-prefixed frame's body.
    func readFrame() async throws -> ByteBuffer {
        let size = try await readBytes(4).reduce(0) { $0 << 8 | Int($1) }
        return ByteBuffer(bytes: try await readBytes(size))
    }

    func waitForClose() async -> Bool {
        for _ in 0..<500 {
            if collector.state.withLock({ $0.closed }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    func close() async { try? await channel.close() }
}

final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    struct State {
        var buffer = ByteBuffer()
        var total = 0
        var closed = false
    }
    let state = Mutex(State())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        state.withLock {
            $0.total += bytes.readableBytes
            $0.buffer.writeBuffer(&bytes)
        }
    }

    func channelInactive(context: ChannelHandlerContext) { state.withLock { $0.closed = true } }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
