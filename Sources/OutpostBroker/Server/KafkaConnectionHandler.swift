import DequeModule
import Logging
import NIOCore
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

    /// Unanswered requests, oldest first; `firstSequence` is the sequence number of `slots.first`.
    private var slots = Deque<Slot>()
    private var firstSequence: UInt64 = 0
    private var readHeld = false
    private var open = true

    init(handler: BrokerRequestHandler, inFlightMax: Int, metrics: BrokerMetrics, logger: Logger, logLimiter: LogRateLimiter) {
        self.handler = handler
        self.inFlightMax = inFlightMax
        self.metrics = metrics
        self.logger = logger
        self.logLimiter = logLimiter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
    }

    func channelInactive(context: ChannelHandlerContext) {
        open = false
        slots.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard open else { return }
        let frame = unwrapInboundIn(data)
        metrics.bytesIn.increment(by: frame.readableBytes + 4)
        let parsed: KafkaRequestFrame.Parsed
        do {
            parsed = try KafkaRequestFrame.parse(frame)
        } catch {
            close(context: context, reason: "malformed request: \(error)")
            return
        }
        let sequence = firstSequence + UInt64(slots.count)
        slots.append(Slot())
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
        if slots.count >= inFlightMax { readHeld = true }
    }

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
            if let frame = first.frame {
                metrics.bytesOut.increment(by: frame.readableBytes)
                context.write(wrapOutboundOut(frame), promise: nil)
                wrote = true
            }
        }
        if wrote { context.flush() }
        resumeReadingIfPossible(context: context)
    }

    /// Reading resumes once there is room for another request and the peer is reading its responses.
    private var mayRead: Bool { slots.count < inFlightMax }

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
        if let error = error as? KafkaProtocolError {
            close(context: context, reason: "\(error)")
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
        open = false
        metrics.protocolErrors.increment()
        if let suppressed = logLimiter.admit() {
            logger.warning("closing connection", metadata: ["reason": "\(reason.sanitizedForLog(maxLength: 300))", "suppressed": "\(suppressed)"])
        }
        context.close(promise: nil)
    }

    /// ApiVersions at a version we cannot even decode gets the usual fallback; any other unknown API or
    /// unserved version gets a bare UNSUPPORTED_VERSION error code after the response header (no body layout
    /// is shared by every API, and a client that sends a version it was never offered is already off-script).
    func unsupportedResponse(_ header: KafkaRequestHeader, allocator: ByteBufferAllocator) -> ByteBuffer {
        if header.apiKey == .apiVersions {
            return KafkaFrame.encodeResponse(ApiVersionsResponse.unsupportedVersionFallback, version: 0, correlationId: header.correlationId, allocator: allocator)
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
