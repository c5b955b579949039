import DequeModule
import Logging
import NIOCore
import NIOSSL
import OutpostKafka

/// One client connection, after `KafkaFrameDecoder` has cut the stream into frames.
///
/// Parses each frame, hands it to the request handler, and writes the responses strictly in request
/// order (§2.1) — a later request may finish first (a Heartbeat behind a long-polling Fetch), so each
/// request holds a slot until everything before it is written. At `inFlightRequestsPerConnectionMax`
/// unanswered requests, or while the peer is not reading its responses (channel not writable), it stops
/// reading the socket (TCP back-pressure). A frame that is not a well-formed
/// request closes this connection, with the reason logged; an API or version it does not serve gets
/// UNSUPPORTED_VERSION and the connection stays open.
///
/// With SASL on, frames go through the connection's `SASLServerStateMachine` until it has authenticated,
/// and this handler carries out its actions (answer, serve, delay-then-close, close). On a TLS or SASL
/// listener a connection that has not finished setting up (sent a first request over TLS, authenticated
/// with SASL) within `connectionSetupTimeoutMilliseconds` is closed.
final class KafkaConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Slot {
        var frame: ByteBuffer?
        var done = false
    }

    let handler: BrokerRequestHandler
    let inFlightMax: Int
    let metrics: BrokerMetrics
    var logger: Logger
    /// Shared by all connections: protocol problems are logged at a bounded rate.
    let logLimiter: LogRateLimiter
    let security: ListenerSecurity
    /// nil when the listener has no SASL.
    private var sasl: SASLServerStateMachine?
    /// Tells this connection's frame decoder when the pre-authentication frame limit no longer applies.
    private let gate: AuthenticationGate?
    private var setupDeadline: Scheduled<Void>?
    private var sawFirstFrame = false
    /// Authentication failed: nothing more is read or served; the connection closes once `closeAfter`'s
    /// slot is written.
    private var refusing = false
    private var closeAfter: UInt64?

    /// Unanswered requests, oldest first; `firstSequence` is the sequence number of `slots.first`.
    private var slots = Deque<Slot>()
    private var firstSequence: UInt64 = 0
    private var readHeld = false
    private var open = true

    init(
        handler: BrokerRequestHandler, inFlightMax: Int, metrics: BrokerMetrics, logger: Logger, logLimiter: LogRateLimiter,
        security: ListenerSecurity = ListenerSecurity(), sasl: SASLServerStateMachine? = nil, gate: AuthenticationGate? = nil
    ) {
        self.handler = handler
        self.inFlightMax = inFlightMax
        self.metrics = metrics
        self.logger = logger
        self.logLimiter = logLimiter
        self.security = security
        self.sasl = sasl
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        if security.requiresSetup {
            let timeout = security.limits.connectionSetupTimeoutMilliseconds
            setupDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(timeout)) {
                self.setupDeadlinePassed(context: context, milliseconds: timeout)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        setupDeadline?.cancel()
        setupDeadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        open = false
        slots.removeAll()
        setupDeadline?.cancel()
        setupDeadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard open, !refusing else { return }
        let frame = unwrapInboundIn(data)
        metrics.bytesIn.increment(by: frame.readableBytes + 4)
        if !sawFirstFrame {
            sawFirstFrame = true
            // Over TLS, a whole frame means the handshake is done; with SASL, set-up lasts until authenticated.
            if sasl == nil { setupDeadline?.cancel() }
        }
        if let sasl, !sasl.isAuthenticated {
            authenticate(frame, context: context)
        } else {
            let parsed: KafkaRequestFrame.Parsed
            do {
                parsed = try KafkaRequestFrame.parse(frame)
            } catch {
                close(context: context, reason: "malformed request: \(error)")
                return
            }
            serve(parsed, context: context)
        }
        if slots.count >= inFlightMax { readHeld = true }
    }

    /// Hands a request to the request handler (or answers UNSUPPORTED_VERSION), in its slot.
    private func serve(_ parsed: KafkaRequestFrame.Parsed, context: ChannelHandlerContext) {
        let sequence = appendSlot()
        switch parsed {
        case .unsupported(let header):
            metrics.unsupportedRequests.increment()
            if let suppressed = logLimiter.admit() {
                logger.notice("unsupported request answered with UNSUPPORTED_VERSION", metadata: [
                    "api_key": "\(header.apiKeyRawValue)", "api_version": "\(header.apiVersion)",
                    "client_id": "\((header.clientId ?? "-").sanitizedForLog())", "suppressed": "\(suppressed)",
                ])
            }
            complete(sequence, frame: unsupportedResponse(header, allocator: context.channel.allocator), context: context)
        case .request(let request):
            let started = NIODeadline.now()
            let header = request.header
            handler.handle(request, on: context.eventLoop).hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let outcome):
                    if let key = header.apiKey { self.metrics.request(key, nanoseconds: (NIODeadline.now() - started).nanoseconds) }
                    let frame: ByteBuffer? =
                        switch outcome {
                        case .none: nil
                        case .response(let response, let version):
                            KafkaFrame.encodeResponse(
                                correlationId: header.correlationId, apiKey: response.apiKey, version: version,
                                allocator: context.channel.allocator, capacity: Self.estimatedSize(response)
                            ) { writer in response.encode(to: &writer, version: version) }
                        }
                    self.complete(sequence, frame: frame, context: context)
                case .failure(let error):
                    // Only when the broker is stopping (its thread pool is gone).
                    self.close(context: context, reason: "request could not be served: \(error)")
                }
            }
        }
    }

    /// A slot for the next response, in request order.
    private func appendSlot() -> UInt64 {
        let sequence = firstSequence + UInt64(slots.count)
        slots.append(Slot())
        return sequence
    }

    // MARK: SASL

    /// A frame before authentication: the state machine decides, this carries it out.
    private func authenticate(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        guard var machine = sasl else { return }
        let input: SASLServerStateMachine.Input
        var parsed: KafkaRequestFrame.Parsed?
        var header: KafkaRequestHeader?
        if machine.expectsRawToken {
            input = .rawToken(frame)
        } else {
            do {
                let request = try KafkaRequestFrame.parse(frame)
                parsed = request
                switch request {
                case .request(let request):
                    input = .request(request)
                    header = request.header
                case .unsupported(let unsupported):
                    input = .unsupported(unsupported)
                    header = unsupported
                }
            } catch {
                close(context: context, reason: "malformed request before authentication: \(error)")
                return
            }
        }
        let started = NIODeadline.now()
        let action = machine.receive(input)
        sasl = machine
        func answered(_ answer: SASLServerStateMachine.Answer) {
            if let key = header?.apiKey { metrics.request(key, nanoseconds: (NIODeadline.now() - started).nanoseconds) }
            complete(appendSlot(), frame: encode(answer, correlationId: header?.correlationId ?? 0, allocator: context.channel.allocator), context: context)
        }
        switch action {
        case .serve:
            if let parsed { serve(parsed, context: context) }
        case .ignore:
            break
        case .answer(let answer):
            answered(answer)
        case .authenticated(let username, let answer):
            gate?.isAuthenticated = true
            setupDeadline?.cancel()
            setupDeadline = nil
            metrics.saslAuthenticated.increment()
            logger[metadataKey: "user"] = "\(username.sanitizedForLog())"
            logger.debug("SASL authentication succeeded", metadata: ["mechanism": "\(machine.mechanisms.joined(separator: ","))"])
            answered(answer)
        case .reject(let answer, let failure):
            refuse(failure, context: context)
            if let key = header?.apiKey { metrics.request(key, nanoseconds: (NIODeadline.now() - started).nanoseconds) }
            let sequence = appendSlot()
            let frame = answer.map { encode($0, correlationId: header?.correlationId ?? 0, allocator: context.channel.allocator) }
            // The answer waits, then goes out and the connection closes after it (Kafka's
            // connection.failed.authentication.delay.ms): guessing passwords gets slow.
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(security.limits.failedAuthenticationDelayMilliseconds)) {
                self.closeAfter = sequence
                self.complete(sequence, frame: frame, context: context)
            }
        case .close(let failure):
            refuse(failure, context: context)
            closeNow(context: context)
        }
    }

    /// Counts and logs (rate-limited, without any secret) a refused authentication, and stops serving.
    private func refuse(_ failure: SASLServerStateMachine.Failure, context: ChannelHandlerContext) {
        refusing = true
        readHeld = true
        metrics.saslFailed(failure.reason)
        if let suppressed = security.logLimiter.admit() {
            let message: Logger.Message =
                switch failure.reason {
                case .badCredentials, .malformedToken, .unsupportedMechanism: "SASL authentication failed; closing connection"
                case .unexpectedRequest, .tooManyRequests: "request not allowed before SASL authentication; closing connection"
                }
            logger.warning(message, metadata: [
                "reason": "\(failure.reason.rawValue)", "detail": "\(failure.detail.sanitizedForLog(maxLength: 200))",
                "user": "\(failure.username.map { $0.sanitizedForLog() } ?? "-")", "suppressed": "\(suppressed)",
            ])
        }
    }

    private func encode(_ answer: SASLServerStateMachine.Answer, correlationId: Int32, allocator: ByteBufferAllocator) -> ByteBuffer {
        switch answer {
        case .response(let response, let version):
            return KafkaFrame.encodeResponse(correlationId: correlationId, apiKey: response.apiKey, version: version, allocator: allocator) { writer in
                response.encode(to: &writer, version: version)
            }
        case .rawToken(let token):
            // The v0 exchange: a size prefix and the token, no response header.
            var buffer = allocator.buffer(capacity: 4 + token.readableBytes)
            buffer.writeInteger(Int32(token.readableBytes), endianness: .big)
            var copy = token
            buffer.writeBuffer(&copy)
            return buffer
        }
    }

    private func setupDeadlinePassed(context: ChannelHandlerContext, milliseconds: Int64) {
        setupDeadline = nil
        guard open, !refusing else { return }
        let stalled: Bool
        if var machine = sasl {
            stalled = machine.setupDeadlinePassed()
            sasl = machine
        } else {
            stalled = !sawFirstFrame
        }
        guard stalled else { return }
        metrics.connectionSetupTimeouts.increment()
        if let suppressed = security.logLimiter.admit() {
            logger.warning("closing connection: set-up did not finish in time", metadata: [
                "waiting_for": "\(sasl == nil ? "TLS handshake and a first request" : "SASL authentication")",
                "timeout_ms": "\(milliseconds)", "suppressed": "\(suppressed)",
            ])
        }
        closeNow(context: context)
    }

    // MARK: Writing in order

    /// Marks a request answered and writes every answered response at the head, in order.
    private func complete(_ sequence: UInt64, frame: ByteBuffer?, context: ChannelHandlerContext) {
        guard open, sequence >= firstSequence, sequence - firstSequence < UInt64(slots.count) else { return }
        let index = Int(sequence - firstSequence)
        slots[index].frame = frame
        slots[index].done = true
        var wrote = false
        while let first = slots.first, first.done {
            slots.removeFirst()
            firstSequence += 1
            let last = closeAfter == firstSequence - 1
            if let frame = first.frame {
                metrics.bytesOut.increment(by: frame.readableBytes)
                if last {
                    // The refusal: close once it is on its way.
                    context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
                        self.closeNow(context: context)
                    }
                    return
                }
                context.write(wrapOutboundOut(frame), promise: nil)
                wrote = true
            }
            if last {
                if wrote { context.flush() }
                closeNow(context: context)
                return
            }
        }
        if wrote { context.flush() }
        resumeReadingIfPossible(context: context)
    }

    /// Reading resumes once there is room for another request and the peer is reading its responses.
    private var mayRead: Bool { slots.count < inFlightMax && !refusing }

    private func resumeReadingIfPossible(context: ChannelHandlerContext) {
        if readHeld && mayRead && context.channel.isWritable {
            readHeld = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        // A client that sends requests but does not read the answers would otherwise pile responses up in
        // the outbound buffer: stop reading its requests until the socket drains.
        if mayRead && context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReadingIfPossible(context: context)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .frameTooLarge(let size, _) = error as? KafkaProtocolError, size >> 16 == 0x1603 {
            // 0x16 0x03: a TLS handshake record read as a size prefix.
            close(context: context, reason: "a TLS handshake on a plaintext listener (client configured for SSL?)")
        } else if let error = error as? KafkaProtocolError {
            close(context: context, reason: "\(error)")
        } else if case .handshakeFailed(let reason) = error as? NIOSSLError {
            metrics.tlsHandshakeFailures.increment()
            if let suppressed = security.logLimiter.admit() {
                // Also what a plaintext client on this TLS listener looks like (WRONG_VERSION_NUMBER).
                logger.warning("TLS handshake failed; closing connection", metadata: ["error": "\(reason)", "suppressed": "\(suppressed)"])
            }
            closeNow(context: context)
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            if open {
                open = false
                context.close(promise: nil)
            }
        }
    }

    private func close(context: ChannelHandlerContext, reason: String) {
        guard open else { return }
        metrics.protocolErrors.increment()
        if let suppressed = logLimiter.admit() {
            logger.warning("closing connection", metadata: ["reason": "\(reason.sanitizedForLog(maxLength: 300))", "suppressed": "\(suppressed)"])
        }
        closeNow(context: context)
    }

    /// Closes without counting or logging (the caller has).
    private func closeNow(context: ChannelHandlerContext) {
        guard open else { return }
        open = false
        setupDeadline?.cancel()
        setupDeadline = nil
        context.close(promise: nil)
    }

    /// ApiVersions at a version we cannot even decode gets the usual fallback; any other unknown API or
    /// unserved version gets a bare UNSUPPORTED_VERSION error code after the response header (no body layout
    /// is shared by every API, and a client that sends a version it was never offered is already off-script).
    func unsupportedResponse(_ header: KafkaRequestHeader, allocator: ByteBufferAllocator) -> ByteBuffer {
        if header.apiKey == .apiVersions {
            return KafkaFrame.encodeResponse(
                ApiVersionsResponse.unsupportedVersionFallback(includingSASL: security.isSASLEnabled), version: 0, correlationId: header.correlationId,
                allocator: allocator)
        }
        var writer = KafkaWriter(buffer: allocator.buffer(capacity: 10))
        writer.writeInt32(6)
        writer.writeInt32(header.correlationId)
        writer.writeErrorCode(.unsupportedVersion)
        return writer.buffer
    }

    static func estimatedSize(_ response: KafkaResponse) -> Int {
        guard case .fetch(let fetch) = response else { return 256 }
        var size = 64
        for topic in fetch.topics {
            size += topic.name.utf8.count + 8
            for partition in topic.partitions { size += 64 + (partition.records?.readableBytes ?? 0) }
        }
        return size
    }
}
