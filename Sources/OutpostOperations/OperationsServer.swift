import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// What `/healthz` answers. `healthy` false turns the answer into a 503.
public struct HealthReport: Sendable {
    public var healthy: Bool
    /// Short named facts ("log": "ok", "mqtt": "reconnecting", …), printed as a JSON object.
    public var details: [(String, String)]

    public init(healthy: Bool, details: [(String, String)] = []) {
        self.healthy = healthy
        self.details = details
    }
}

/// The operations endpoint: `GET /metrics` (Prometheus text format 0.0.4) and `GET /healthz`.
public final class OperationsServer: Sendable {
    public let localAddress: SocketAddress
    private let channel: any Channel

    public var port: Int { localAddress.port ?? 0 }

    /// Binds `host:port` (port 0: any free port).
    public static func start(
        host: String, port: Int, registry: PrometheusCollectorRegistry?, group: any EventLoopGroup,
        logger: Logger, health: @escaping @Sendable () -> HealthReport
    ) async throws -> OperationsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(OperationsHandler(registry: registry, health: health))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port)
            .get()
        guard let address = channel.localAddress else { throw ChannelError.unknownLocalAddress }
        logger.info("operations endpoint listening", metadata: ["address": "\(address)", "paths": "/metrics /healthz"])
        return OperationsServer(localAddress: address, channel: channel)
    }

    private init(localAddress: SocketAddress, channel: any Channel) {
        self.localAddress = localAddress
        self.channel = channel
    }

    public func close() async {
        try? await channel.close()
    }
}

final class OperationsHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: PrometheusCollectorRegistry?
    let health: @Sendable () -> HealthReport

    init(registry: PrometheusCollectorRegistry?, health: @escaping @Sendable () -> HealthReport) {
        self.registry = registry
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        switch (head.method, path) {
        case (.GET, "/metrics"):
            status = .ok
            contentType = "text/plain; version=0.0.4; charset=utf-8"
            body = registry?.emitToBuffer() ?? []
        case (.GET, "/healthz"):
            let report = health()
            status = report.healthy ? .ok : .serviceUnavailable
            contentType = "application/json"
            var text = "{\"status\":\"\(report.healthy ? "ok" : "unhealthy")\""
            for (key, value) in report.details {
                text += ",\"\(Self.escape(key))\":\"\(Self.escape(value))\""
            }
            text += "}\n"
            body = Array(text.utf8)
        default:
            status = .notFound
            contentType = "text/plain"
            body = Array("not found: GET /metrics or /healthz\n".utf8)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            if character == "\\" || character == "\"" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}

