import DequeModule
import Logging
import NIOCore
import NIOPosix

/// Adds transport-security handlers (TLS) at the front of a new connection's pipeline, before the Kafka
/// framing. The client has no TLS of its own; the module that brings swift-nio-ssl supplies this.
public protocol KafkaTransportSecurity: Sendable {
    /// Called on the channel's event loop while the pipeline is being built.
    func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, serverHostname: String) throws
}

/// A step run on every new connection after version negotiation and before it carries any other request
/// (SASL: SaslHandshake then SaslAuthenticate). Throwing fails the connection attempt.
public protocol KafkaConnectionAuthenticator: Sendable {
    func authenticate(_ connection: KafkaConnection) async throws
}

/// Settings of one broker connection.
public struct KafkaConnectionConfiguration: Sendable {
    /// Sent in every request header; brokers log it.
    public var clientId: String?
    /// TCP connect plus the ApiVersions handshake (and authentication) must finish within this.
    public var connectTimeout: Duration
    /// A request without a response by then closes the connection (responses arrive in order, so a missing
    /// one cannot be skipped). A Fetch adds its own max wait to this.
    public var requestTimeout: Duration
    /// Requests written and not yet answered (pipelining depth). 32 matches what the Outpost broker reads
    /// ahead per connection; beyond it the broker stops reading anyway.
    public var inFlightRequestsMax: Int
    /// Requests waiting for an in-flight slot. Callers bound themselves (the producer's per-partition
    /// window, one fetch per consumer), so this is a safety net: beyond it a request fails at once with
    /// `requestQueueFull`.
    public var queuedRequestsMax: Int
    /// Largest response frame accepted; a larger one closes the connection. Fetch responses are bounded by
    /// the fetch's max bytes (plus one batch that may exceed it), so 128 MiB leaves room over Kafka's 50 MiB
    /// fetch.max.bytes default.
    public var responseFrameBytesMax: Int
    /// TLS, when configured.
    public var transportSecurity: (any KafkaTransportSecurity)?
    /// SASL, when configured.
    public var authenticator: (any KafkaConnectionAuthenticator)?

    public init(
        clientId: String? = "outpost", connectTimeout: Duration = .seconds(10), requestTimeout: Duration = .seconds(30),
        inFlightRequestsMax: Int = 32, queuedRequestsMax: Int = 1_024, responseFrameBytesMax: Int = 128 << 20,
        transportSecurity: (any KafkaTransportSecurity)? = nil, authenticator: (any KafkaConnectionAuthenticator)? = nil
    ) {
        precondition(inFlightRequestsMax > 0 && queuedRequestsMax >= 0 && responseFrameBytesMax > 0, "connection bounds must be positive")
        self.clientId = clientId
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.inFlightRequestsMax = inFlightRequestsMax
        self.queuedRequestsMax = queuedRequestsMax
        self.responseFrameBytesMax = responseFrameBytesMax
        self.transportSecurity = transportSecurity
        self.authenticator = authenticator
    }
}

/// One TCP connection to one broker, ready to carry requests: connected, framed, versions negotiated.
///
/// Requests are pipelined: `send` writes at once (up to `inFlightRequestsMax` unanswered, then queued),
/// and responses are matched to requests in order by correlation id. Requests given to `send` from one
/// thread or one actor are written in call order. When the connection closes — the broker went away, a
/// request timed out, a response was malformed — every unanswered request fails with the reason and the
/// connection stays closed: `KafkaClient` opens a new one.
public final class KafkaConnection: Sendable {
    public let address: KafkaBrokerAddress
    public let channel: any Channel
    /// The version of each API spoken on this connection.
    public let versions: ApiVersionTable
    let requestTimeout: Duration
    let clientId: String?

    init(address: KafkaBrokerAddress, channel: any Channel, versions: ApiVersionTable, configuration: KafkaConnectionConfiguration) {
        self.address = address
        self.channel = channel
        self.versions = versions
        self.requestTimeout = configuration.requestTimeout
        self.clientId = configuration.clientId
    }

    public var eventLoop: any EventLoop { channel.eventLoop }
    public var isActive: Bool { channel.isActive }
    /// Completes when the connection has closed, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    /// Sends `request` at the negotiated version; the future holds the decoded response, or fails with a
    /// `KafkaClientError`.
    public func send<Request: KafkaRequestMessage>(_ request: Request, timeout: Duration? = nil) -> EventLoopFuture<Request.Response> {
        guard let version = versions.version(for: Request.apiKey) else {
            return eventLoop.makeFailedFuture(KafkaClientError.unsupportedByBroker(api: Request.apiKey, broker: address))
        }
        return send(request, version: version, timeout: timeout)
    }

    /// Sends `request` at an explicit version.
    public func send<Request: KafkaRequestMessage>(_ request: Request, version: Int16, timeout: Duration? = nil) -> EventLoopFuture<Request.Response> {
        let address = self.address
        let channel = self.channel
        return Self.exchange(request, version: version, timeout: timeout ?? requestTimeout, on: channel, clientId: clientId)
            .flatMapErrorThrowing { error in throw Self.clientError(error, address: address) }
            .flatMapThrowing { body in
                do throws(KafkaProtocolError) {
                    return try Request.Response.decode(body, version: version)
                } catch {
                    // Our decoder and the broker disagree: nothing later on this connection can be trusted.
                    channel.close(promise: nil)
                    throw KafkaClientError.malformedResponse(broker: address, error)
                }
            }
    }

    /// Closes the connection; unanswered requests fail with `connectionClosed`.
    public func close() {
        channel.close(promise: nil)
    }

    // MARK: Connecting

    /// Connects to `address` on `eventLoop`, negotiates versions with ApiVersions and runs the
    /// authenticator. Fails with `KafkaClientError.connectionFailed` (or the authenticator's error).
    public static func connect(
        to address: KafkaBrokerAddress, on eventLoop: any EventLoop, configuration: KafkaConnectionConfiguration, logger: Logger
    ) async throws(KafkaClientError) -> KafkaConnection {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        try configuration.transportSecurity?.addHandlers(to: pipeline, serverHostname: address.host)
                        try pipeline.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameBytes: configuration.responseFrameBytesMax)))
                        try pipeline.addHandler(
                            KafkaClientChannelHandler(
                                address: address, inFlightMax: configuration.inFlightRequestsMax,
                                queuedMax: configuration.queuedRequestsMax))
                    }
                }
                .connect(host: address.host, port: address.port).get()
        } catch {
            throw .connectionFailed(broker: address, reason: "\(error)")
        }
        // The handshake is bounded by the connect timeout as a whole.
        let handshakeTimeout = configuration.connectTimeout
        let watchdog = eventLoop.scheduleTask(in: TimeAmount(handshakeTimeout)) { channel.close(promise: nil) }
        defer { watchdog.cancel() }
        do {
            let versions = try await negotiateVersions(channel: channel, address: address, clientId: configuration.clientId, timeout: handshakeTimeout)
            let connection = KafkaConnection(address: address, channel: channel, versions: versions, configuration: configuration)
            if let authenticator = configuration.authenticator {
                do {
                    try await authenticator.authenticate(connection)
                } catch let error as KafkaClientError {
                    throw error
                } catch {
                    throw KafkaClientError.authenticationFailed(broker: address, reason: "\(error)")
                }
            }
            logger.debug("connected", metadata: ["broker": "\(address)", "versions": "\(versions.summary)"])
            return connection
        } catch {
            channel.close(promise: nil)
            let reason = error as? KafkaClientError ?? .connectionFailed(broker: address, reason: "\(error)")
            if case .connectionClosed = reason { throw .connectionFailed(broker: address, reason: "closed during the handshake") }
            throw reason
        }
    }

    /// ApiVersions at v2 first; a broker that does not serve v2 answers UNSUPPORTED_VERSION in the v0
    /// layout with its own range (kafka-subset.md §2.3), and the request is repeated at that range's top.
    static func negotiateVersions(channel: any Channel, address: KafkaBrokerAddress, clientId: String?, timeout: Duration) async throws -> ApiVersionTable {
        var version = ApiVersionTable.firstApiVersionsVersion
        for _ in 0..<3 {
            let body: ByteBuffer
            do {
                body = try await exchange(ApiVersionsRequest(), version: version, timeout: timeout, on: channel, clientId: clientId).get()
            } catch {
                throw clientError(error, address: address)
            }
            switch interpretApiVersions(body, version: version) {
            case .negotiated(let table): return table
            case .retry(let lower): version = lower
            case .failed(let reason): throw KafkaClientError.connectionFailed(broker: address, reason: "ApiVersions: \(reason)")
            }
        }
        throw KafkaClientError.connectionFailed(broker: address, reason: "ApiVersions: no version agreed")
    }

    enum ApiVersionsOutcome: Equatable {
        case negotiated(ApiVersionTable)
        case retry(version: Int16)
        case failed(String)
    }

    /// Reads an ApiVersions answer to a request sent at `version`. Pure, for tests.
    static func interpretApiVersions(_ body: ByteBuffer, version: Int16) -> ApiVersionsOutcome {
        if let response = try? ApiVersionsResponse.decode(body, version: version) {
            if response.errorCode == .none { return .negotiated(ApiVersionTable(brokerRanges: response.apiKeys)) }
            if response.errorCode != .unsupportedVersion { return .failed("\(response.errorCode)") }
        }
        // The fallback body is always v0: error, keys, no throttle.
        guard let fallback = try? ApiVersionsResponse.decode(body, version: 0) else { return .failed("unreadable response") }
        guard fallback.errorCode == .unsupportedVersion else {
            return fallback.errorCode == .none ? .negotiated(ApiVersionTable(brokerRanges: fallback.apiKeys)) : .failed("\(fallback.errorCode)")
        }
        let theirs = fallback.apiKeys.first { $0.apiKey == KafkaAPIKey.apiVersions.rawValue }?.maxVersion ?? 0
        let next = min(version - 1, theirs)
        return next >= 0 ? .retry(version: next) : .failed("no common ApiVersions version")
    }

    // MARK: Plumbing

    /// Writes a request frame and returns the response body (after the response header).
    static func exchange<Request: KafkaRequestMessage>(
        _ request: Request, version: Int16, timeout: Duration, on channel: any Channel, clientId: String?
    ) -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        // The handler stamps the correlation id when it writes the frame.
        let frame = KafkaFrame.encodeRequest(request, version: version, correlationId: 0, clientId: clientId, allocator: channel.allocator)
        let outbound = KafkaClientChannelHandler.Outbound(frame: frame, apiKey: Request.apiKey, version: version, timeout: timeout, promise: promise)
        // Once the handler has the request it owns `promise` (it succeeds this write at once). A write that
        // never reaches it — the channel closed and its pipeline was torn down before the write got there,
        // as when the broker drops a connection right after accepting it — fails here instead: without
        // this, `promise` would be dropped unfulfilled and its awaiter (a connection handshake, and with
        // it every waiter of that connection slot) would wait forever, since the handler's timers and
        // close handling never saw the request.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in promise.fail(error) }
        channel.writeAndFlush(outbound, promise: written)
        return promise.futureResult
    }

    static func clientError(_ error: any Error, address: KafkaBrokerAddress) -> KafkaClientError {
        if let error = error as? KafkaClientError { return error }
        if let error = error as? KafkaProtocolError { return .malformedResponse(broker: address, error) }
        if error is ChannelError { return .connectionClosed(broker: address) }
        return .connectionClosed(broker: address)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The client end of a broker connection, behind `KafkaFrameDecoder`: assigns correlation ids, keeps at
/// most `inFlightMax` requests unanswered (the rest queued, up to `queuedMax`), matches each response frame
/// to the oldest unanswered request, and fails everything on close, timeout or a mismatched response.
final class KafkaClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    /// A request as `KafkaConnection` hands it to the pipeline: a complete frame with a placeholder
    /// correlation id.
    struct Outbound: Sendable {
        var frame: ByteBuffer
        var apiKey: KafkaAPIKey
        var version: Int16
        var timeout: Duration
        var promise: EventLoopPromise<ByteBuffer>
    }

    struct InFlight {
        var correlationId: Int32
        var apiKey: KafkaAPIKey
        var version: Int16
        var promise: EventLoopPromise<ByteBuffer>
        var timer: Scheduled<Void>?
    }

    /// Where the correlation id sits in a request frame: after size (4), api key (2) and version (2).
    static let correlationIdPosition = 8
    let address: KafkaBrokerAddress
    let inFlightMax: Int
    let queuedMax: Int
    private var nextCorrelationId: Int32 = 1
    private var inFlight = Deque<InFlight>()
    private var queued = Deque<Outbound>()
    /// Once set, the connection is finished: every request fails with this.
    private var failure: KafkaClientError?

    init(address: KafkaBrokerAddress, inFlightMax: Int, queuedMax: Int) {
        self.address = address
        self.inFlightMax = inFlightMax
        self.queuedMax = queuedMax
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        promise?.succeed(())
        if let failure {
            request.promise.fail(failure)
        } else if inFlight.count < inFlightMax && queued.isEmpty {
            transmit(request, context: context)
        } else if queued.count < queuedMax {
            queued.append(request)
        } else {
            request.promise.fail(KafkaClientError.requestQueueFull(broker: address))
        }
    }

    private func transmit(_ request: Outbound, context: ChannelHandlerContext) {
        let correlationId = nextCorrelationId
        nextCorrelationId = nextCorrelationId == .max ? 1 : nextCorrelationId + 1
        var frame = request.frame
        frame.setInteger(correlationId, at: frame.readerIndex + Self.correlationIdPosition, endianness: .big)
        let timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(request.timeout)) {
            self.timedOut(correlationId: correlationId, context: context)
        }
        inFlight.append(InFlight(correlationId: correlationId, apiKey: request.apiKey, version: request.version, promise: request.promise, timer: timer))
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        guard failure == nil else { return }
        guard let head = inFlight.popFirst() else {
            fail(.malformedResponse(broker: address, .truncated(field: "unsolicited response", position: 0, needed: 0)), context: context)
            return
        }
        head.timer?.cancel()
        let header: KafkaResponseHeader
        do {
            var reader = KafkaReader(frame)
            header = try KafkaResponseHeader(from: &reader, headerVersion: head.apiKey.responseHeaderVersion(head.version))
            frame = reader.buffer
        } catch {
            inFlight.prepend(head)
            fail(.malformedResponse(broker: address, error), context: context)
            return
        }
        guard header.correlationId == head.correlationId else {
            inFlight.prepend(head)
            fail(.malformedResponse(broker: address, .correlationMismatch(expected: head.correlationId, received: header.correlationId)), context: context)
            return
        }
        // State first, then the promise: its callbacks may write new requests into this handler.
        var wrote = false
        while inFlight.count < inFlightMax, let next = queued.popFirst() {
            transmit(next, context: context)
            wrote = true
        }
        if wrote { context.flush() }
        head.promise.succeed(frame)
    }

    private func timedOut(correlationId: Int32, context: ChannelHandlerContext) {
        guard failure == nil, let request = inFlight.first(where: { $0.correlationId == correlationId }) else { return }
        fail(.requestTimedOut(api: request.apiKey, broker: address), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.connectionClosed(broker: address), context: context, close: false)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? KafkaProtocolError {
            fail(.malformedResponse(broker: address, error), context: context)
        } else {
            fail(.connectionClosed(broker: address), context: context)
        }
    }

    /// Fails every unanswered and queued request with `error` and closes the connection. State is settled
    /// before any promise runs its callbacks, and later writes fail at once.
    private func fail(_ error: KafkaClientError, context: ChannelHandlerContext, close: Bool = true) {
        guard failure == nil else { return }
        failure = error
        let unanswered = inFlight
        let waiting = queued
        inFlight.removeAll()
        queued.removeAll()
        if close { context.close(promise: nil) }
        for request in unanswered {
            request.timer?.cancel()
            request.promise.fail(error)
        }
        for request in waiting { request.promise.fail(error) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(.connectionClosed(broker: address), context: context, close: false)
    }
}
