import NIOCore
import NIOEmbedded
import Synchronization
import Testing
@testable import OutpostKafka

/// The client end of a connection, on an embedded channel: correlation ids, in-order matching, the
/// in-flight and queue bounds, and how everything unanswered fails at once on a mismatch, a timeout or a
/// close. Version negotiation, including the UNSUPPORTED_VERSION fallback.
@Suite struct ClientConnectionTests {
    let address = KafkaBrokerAddress(host: "broker", port: 9092)

    /// What happened to one request's promise.
    final class Outcome: Sendable {
        let result = Mutex<Result<ByteBuffer, KafkaClientError>?>(nil)

        var value: Result<ByteBuffer, KafkaClientError>? { result.withLock { $0 } }
        var body: [UInt8]? {
            guard case .success(let buffer) = value else { return nil }
            return Array(buffer.readableBytesView)
        }
        var error: KafkaClientError? {
            guard case .failure(let error) = value else { return nil }
            return error
        }
    }

    func channel(inFlight: Int = 8, queued: Int = 8) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(KafkaClientChannelHandler(address: address, inFlightMax: inFlight, queuedMax: queued))
        return channel
    }

    /// Writes a Metadata request through the handler and returns what becomes of it.
    func send(_ channel: EmbeddedChannel, timeout: Duration = .seconds(30)) -> Outcome {
        let outcome = Outcome()
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        promise.futureResult.whenComplete { result in
            outcome.result.withLock { $0 = result.mapError { $0 as? KafkaClientError ?? .closed } }
        }
        let frame = KafkaFrame.encodeRequest(MetadataRequest(topics: []), version: 4, correlationId: 0, clientId: "c")
        channel.writeAndFlush(KafkaClientChannelHandler.Outbound(frame: frame, apiKey: .metadata, version: 4, timeout: timeout, promise: promise), promise: nil)
        return outcome
    }

    /// The correlation id of the next frame the handler wrote, or nil.
    func nextCorrelationId(_ channel: EmbeddedChannel) throws -> Int32? {
        guard let frame = try channel.readOutbound(as: ByteBuffer.self) else { return nil }
        return frame.getInteger(at: frame.readerIndex + 8, endianness: .big, as: Int32.self)
    }

    /// A response frame as the decoder hands it over: correlation id, then body.
    func response(_ correlationId: Int32, body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationId, endianness: .big)
        buffer.writeBytes(body)
        return buffer
    }

    @Test func requestsGetIncreasingCorrelationIdsAndResponsesAreMatchedInOrder() throws {
        let channel = try channel()
        let outcomes = (0..<3).map { _ in send(channel) }
        #expect(try (0..<3).map { _ in try nextCorrelationId(channel) } == [1, 2, 3])
        try channel.writeInbound(response(1, body: [0xA]))
        #expect(outcomes[0].body == [0xA])
        #expect(outcomes[1].value == nil)
        try channel.writeInbound(response(2, body: [0xB]))
        try channel.writeInbound(response(3, body: [0xC]))
        #expect(outcomes.map(\.body) == [[0xA], [0xB], [0xC]])
        _ = try channel.finish()
    }

    @Test func aMismatchedCorrelationIdFailsEverythingUnansweredAndCloses() throws {
        let channel = try channel()
        let outcomes = (0..<2).map { _ in send(channel) }
        try channel.writeInbound(response(2, body: []))
        let expected = KafkaClientError.malformedResponse(broker: address, .correlationMismatch(expected: 1, received: 2))
        #expect(outcomes.map(\.error) == [expected, expected])
        #expect(!channel.isActive)
        #expect(send(channel).error == expected, "a finished connection fails new requests at once")
    }

    @Test func beyondTheInFlightBoundRequestsWaitAndBeyondTheQueueTheyFail() throws {
        let channel = try channel(inFlight: 1, queued: 1)
        let first = send(channel)
        let second = send(channel)
        let third = send(channel)
        #expect(third.error == .requestQueueFull(broker: address))
        #expect(try nextCorrelationId(channel) == 1)
        #expect(try nextCorrelationId(channel) == nil, "the second waits for an in-flight slot")
        try channel.writeInbound(response(1, body: [1]))
        #expect(first.body == [1])
        #expect(try nextCorrelationId(channel) == 2)
        try channel.writeInbound(response(2, body: [2]))
        #expect(second.body == [2])
        _ = try channel.finish()
    }

    @Test func aRequestTimeoutFailsEveryUnansweredRequestAndClosesTheConnection() throws {
        let channel = try channel()
        let slow = send(channel, timeout: .seconds(5))
        let later = send(channel, timeout: .seconds(60))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(slow.value == nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(slow.error == .requestTimedOut(api: .metadata, broker: address))
        #expect(later.error == .requestTimedOut(api: .metadata, broker: address), "responses are ordered: a lost one cannot be skipped")
        #expect(!channel.isActive)
    }

    @Test func aClosedConnectionFailsEverythingWithConnectionClosed() throws {
        let channel = try channel(inFlight: 1, queued: 4)
        let outcomes = (0..<3).map { _ in send(channel) }
        try channel.close().wait()
        #expect(outcomes.map(\.error) == Array(repeating: .connectionClosed(broker: address), count: 3))
    }

    @Test func aCompletionCallbackMayWriteTheNextRequestAtOnce() throws {
        let channel = try channel(inFlight: 1, queued: 4)
        let follow = Outcome()
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        let frame = KafkaFrame.encodeRequest(MetadataRequest(topics: []), version: 4, correlationId: 0, clientId: nil)
        promise.futureResult.whenSuccess { _ in
            // Re-entering the handler from inside its own channelRead.
            let next = channel.eventLoop.makePromise(of: ByteBuffer.self)
            next.futureResult.whenComplete { result in follow.result.withLock { $0 = result.mapError { $0 as? KafkaClientError ?? .closed } } }
            channel.writeAndFlush(KafkaClientChannelHandler.Outbound(frame: frame, apiKey: .metadata, version: 4, timeout: .seconds(30), promise: next), promise: nil)
        }
        channel.writeAndFlush(KafkaClientChannelHandler.Outbound(frame: frame, apiKey: .metadata, version: 4, timeout: .seconds(30), promise: promise), promise: nil)
        let queued = send(channel)
        #expect(try nextCorrelationId(channel) == 1)
        try channel.writeInbound(response(1, body: []))
        // The queued request goes first, then the one written by the callback.
        #expect(try nextCorrelationId(channel) == 2)
        try channel.writeInbound(response(2, body: [2]))
        #expect(queued.body == [2])
        #expect(try nextCorrelationId(channel) == 3)
        try channel.writeInbound(response(3, body: [3]))
        #expect(follow.body == [3])
        _ = try channel.finish()
    }

    // MARK: Version negotiation

    func apiVersionsBody(_ response: ApiVersionsResponse, version: Int16) -> ByteBuffer { response.encoded(version: version) }

    @Test func theHighestVersionBothSidesSupportIsChosen() {
        let table = ApiVersionTable(brokerRanges: [
            .init(apiKey: KafkaAPIKey.produce.rawValue, minVersion: 0, maxVersion: 9),
            .init(apiKey: KafkaAPIKey.fetch.rawValue, minVersion: 0, maxVersion: 5),
            .init(apiKey: KafkaAPIKey.listOffsets.rawValue, minVersion: 0, maxVersion: 0),
            .init(apiKey: KafkaAPIKey.metadata.rawValue, minVersion: 9, maxVersion: 12),
            .init(apiKey: 999, minVersion: 0, maxVersion: 3),
        ])
        #expect(table.version(for: .produce) == 7, "ours tops out at 7")
        #expect(table.version(for: .fetch) == 5, "theirs tops out at 5")
        #expect(table.version(for: .listOffsets) == nil, "v0 only: below what the client speaks")
        #expect(table.version(for: .metadata) == nil, "flexible only")
        #expect(table.version(for: .joinGroup) == nil, "not offered")
        let outpost = ApiVersionTable(brokerRanges: ApiVersionsResponse.advertised.apiKeys)
        #expect(outpost.version(for: .produce) == 7 && outpost.version(for: .fetch) == 11 && outpost.version(for: .metadata) == 4)
    }

    @Test func anApiVersionsAnswerIsReadAtTheVersionAskedOrAsTheV0Fallback() {
        let normal = ApiVersionsResponse.advertised
        #expect(KafkaConnection.interpretApiVersions(apiVersionsBody(normal, version: 2), version: 2) == .negotiated(ApiVersionTable(brokerRanges: normal.apiKeys)))

        // A broker serving ApiVersions 0–1 only: error 35 in the v0 layout, listing its range.
        let fallback = ApiVersionsResponse(errorCode: .unsupportedVersion, apiKeys: [.init(apiKey: KafkaAPIKey.apiVersions.rawValue, minVersion: 0, maxVersion: 1)])
        #expect(KafkaConnection.interpretApiVersions(apiVersionsBody(fallback, version: 0), version: 2) == .retry(version: 1))
        let bare = ApiVersionsResponse(errorCode: .unsupportedVersion, apiKeys: [])
        #expect(KafkaConnection.interpretApiVersions(apiVersionsBody(bare, version: 0), version: 2) == .retry(version: 0))
        #expect(KafkaConnection.interpretApiVersions(apiVersionsBody(bare, version: 0), version: 0) == .failed("no common ApiVersions version"))

        let refused = ApiVersionsResponse(errorCode: .unknownServerError, apiKeys: [])
        #expect(KafkaConnection.interpretApiVersions(apiVersionsBody(refused, version: 2), version: 2) == .failed("UNKNOWN_SERVER_ERROR (-1)"))
        var garbage = ByteBuffer()
        garbage.writeBytes([1, 2, 3])
        #expect(KafkaConnection.interpretApiVersions(garbage, version: 2) == .failed("unreadable response"))
    }
}
