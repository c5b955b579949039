import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostCore

/// Newline-delimited line protocol or JSON over TCP (Telegraf's socket_listener format).
///
/// Back-pressure: while the pipeline's gate is closed the handler stops reading its socket (autoRead off),
/// so the kernel's receive buffer fills and TCP flow control slows the sender; nothing is buffered beyond
/// one read and one incomplete line. A line longer than the limit is rejected and skipped to its newline.
final class LineStreamHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let pipeline: IngestPipeline
    let format: PayloadFormat
    private var cumulation: ByteBuffer?
    private var nextLine = 1
    private var discardingOversizeLine = false
    private var paused = false
    private var inputClosed = false

    init(pipeline: IngestPipeline, format: PayloadFormat) {
        self.pipeline = pipeline
        self.format = format
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard var pending = cumulation, pending.readableBytes > 0 else {
            cumulation = incoming
            process(context: context)
            return
        }
        // A read almost always ends inside a line. Rather than copy every read behind that partial line,
        // complete the partial line with the bytes up to the first newline and take the rest in place.
        if !paused, !discardingOversizeLine, let newline = incoming.readableBytesView.firstIndex(of: 0x0A),
            var head = incoming.readSlice(length: newline + 1 - incoming.readerIndex)
        {
            pending.writeBuffer(&head)
            cumulation = pending
            process(context: context)
            if let left = cumulation, left.readableBytes == 0, !paused {
                cumulation = incoming
                process(context: context)
                return
            }
            // Still pending (an entry spanning lines, or the gate closed): fall back to accumulating.
            pending = cumulation ?? pending
        }
        pending.writeBuffer(&incoming)
        cumulation = pending
        process(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            process(context: context)
            context.close(promise: nil)
            return
        }
        if event is IdleStateHandler.IdleStateEvent {
            pipeline.logger.debug("closing idle TCP connection", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A last line without a newline still counts when the peer closed cleanly.
        inputClosed = true
        process(context: context)
        context.fireChannelInactive()
    }

    private func process(context: ChannelHandlerContext) {
        guard var buffer = cumulation, buffer.readableBytes > 0 else { return }
        if !pipeline.gate.isOpen && !inputClosed {
            pause(context: context)
            return
        }
        let limits = pipeline.limits
        if discardingOversizeLine {
            if let newline = buffer.readableBytesView.firstIndex(of: 0x0A) {
                buffer.moveReaderIndex(to: newline + 1)
                discardingOversizeLine = false
                nextLine += 1
            } else {
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            }
        }
        let batcher = pipeline.batcher(for: context.eventLoop)
        let endOfInput = inputClosed
        let firstLine = nextLine
        let progress = buffer.withUnsafeReadableBytes { raw in
            pipeline.ingestLines(raw, endOfInput: endOfInput, format: format, source: .tcp, batcher: batcher, firstLine: firstLine)
        }
        buffer.moveReaderIndex(forwardBy: progress.consumed)
        nextLine = progress.line
        if progress.endsInsideRejectedLine { discardingOversizeLine = true }
        if buffer.readableBytes > limits.lineBytesMax {
            // An incomplete line already longer than allowed: reject it now rather than buffer it.
            let error = PointParseError(.lineTooLong, "line exceeds \(limits.lineBytesMax) bytes", line: nextLine, column: limits.lineBytesMax + 1)
            buffer.withUnsafeReadableBytes { raw in
                pipeline.rejects.reject(error, source: .tcp, raw: UnsafeRawBufferPointer(rebasing: raw.prefix(256)), receivedAt: IngestPipeline.wallClockNanoseconds())
            }
            pipeline.metrics.received[IngestSource.tcp.index].increment()
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            discardingOversizeLine = true
        }
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 1 << 16 {
            buffer.discardReadBytes()
        }
        cumulation = buffer
    }

    private func pause(context: ChannelHandlerContext) {
        guard !paused else { return }
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        pipeline.gate.whenOpen {
            eventLoop.execute {
                let context = loopBoundContext.value
                let handler = handler.value
                handler.paused = false
                guard context.channel.isActive else { return }
                handler.process(context: context)
                if !handler.paused {
                    context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                    context.read()
                }
            }
        }
    }
}

/// Refuses connections beyond the limit at accept time (closing them at once, counted), so a flood of
/// connections cannot exhaust file descriptors or memory.
final class ConnectionLimiter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny

    private let lock = NSLock()
    private var active = 0
    private var channels: [ObjectIdentifier: any Channel] = [:]
    let maximum: Int
    let metrics: GatewayMetrics
    let logger: Logger

    init(maximum: Int, metrics: GatewayMetrics, logger: Logger) {
        self.maximum = maximum
        self.metrics = metrics
        self.logger = logger
    }

    /// Whether a new connection may stay; when it may, it is counted until it closes.
    func admit(_ channel: any Channel) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard active < maximum else { return false }
        active += 1
        channels[ObjectIdentifier(channel)] = channel
        metrics.tcpConnections.record(active)
        channel.closeFuture.whenComplete { [self] _ in release(channel) }
        return true
    }

    private func release(_ channel: any Channel) {
        lock.lock()
        active -= 1
        channels[ObjectIdentifier(channel)] = nil
        metrics.tcpConnections.record(active)
        lock.unlock()
    }

    /// Closes every open connection (shutdown); each hands its last complete lines to the pipeline.
    func closeAll() async {
        for channel in openChannels() { try? await channel.close() }
    }

    private func openChannels() -> [any Channel] {
        lock.withLock { Array(channels.values) }
    }
}

enum TCPListener {
    static func start(
        pipeline: IngestPipeline, configuration: SocketListenerConfiguration, group: any EventLoopGroup, logger: Logger
    ) async throws -> (any Channel, ConnectionLimiter) {
        let limiter = ConnectionLimiter(maximum: pipeline.configuration.tcpConnectionsMax, metrics: pipeline.metrics, logger: logger)
        let idle = TimeAmount.milliseconds(pipeline.configuration.tcpIdleTimeoutMilliseconds)
        let format = configuration.format
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 262_144))
            .childChannelInitializer { channel in
                guard limiter.admit(channel) else {
                    pipeline.metrics.tcpConnectionsRefused.increment()
                    logger.warning("TCP connection refused: connection limit reached", metadata: ["limit": "\(limiter.maximum)"])
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.addHandler(LineStreamHandler(pipeline: pipeline, format: format))
                }
            }
            .bind(host: configuration.listen.host, port: configuration.listen.port)
            .get()
        logger.info("TCP listener ready", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "format": "\(format.rawValue)"])
        return (channel, limiter)
    }
}

/// Line protocol or JSON datagrams, many lines per datagram. Best effort by nature: what the kernel drops
/// when the socket buffer overflows is read from /proc/net/udp and exported.
final class DatagramHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let pipeline: IngestPipeline
    let format: PayloadFormat
    private var paused = false

    init(pipeline: IngestPipeline, format: PayloadFormat) {
        self.pipeline = pipeline
        self.format = format
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        pipeline.metrics.udpDatagrams.increment()
        let batcher = pipeline.batcher(for: context.eventLoop)
        envelope.data.withUnsafeReadableBytes { raw in
            _ = pipeline.ingestLines(raw, endOfInput: true, format: format, source: .udp, batcher: batcher, firstLine: 1)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard !pipeline.gate.isOpen, !paused else { return }
        // Stop reading: datagrams queue in the kernel buffer, and beyond it the kernel drops (and counts) them.
        paused = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        pipeline.gate.whenOpen {
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.paused = false
                context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                context.read()
            }
        }
    }
}

enum UDPListener {
    /// Datagrams read per system call (recvmmsg) and the largest datagram accepted.
    static let messagesPerRead = 32
    static let datagramBytesMax = 65_507

    static func start(
        pipeline: IngestPipeline, configuration: SocketListenerConfiguration, receiveBufferBytes: Int,
        group: any EventLoopGroup, logger: Logger
    ) async throws -> any Channel {
        let format = configuration.format
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
            .channelOption(.datagramVectorReadMessageCount, value: messagesPerRead)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: messagesPerRead * datagramBytesMax))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramHandler(pipeline: pipeline, format: format))
                }
            }
            .bind(host: configuration.listen.host, port: configuration.listen.port)
            .get()
        logger.info("UDP listener ready", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "receive_buffer_bytes": "\(receiveBufferBytes)",
        ])
        return channel
    }

    /// The kernel's drop counter for the UDP socket bound to `port`, from /proc/net/udp (and udp6).
    static func kernelDrops(port: Int) -> Int? {
        var total: Int?
        for path in ["/proc/net/udp", "/proc/net/udp6"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 13, let local = fields.dropFirst().first,
                    let portHex = local.split(separator: ":").last, Int(portHex, radix: 16) == port,
                    let drops = Int(fields[fields.count - 1])
                else { continue }
                total = (total ?? 0) + drops
            }
        }
        return total
    }
}
