import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OutpostCore
import OutpostLog
import OutpostOperations

/// InfluxDB's write API, so Telegraf's influxdb outputs and the InfluxDB client libraries write to the
/// gateway unchanged: `POST /write` (v1: `precision=n|u|ms|s`) and `POST /api/v2/write` (`precision=ns|us|ms|s`),
/// line-protocol bodies, optionally gzip-encoded.
///
/// 204 only once every point of the request is committed (fsynced) to the local log; 400 naming the first
/// bad line and storing nothing; 413 for a body over the limit (checked before and after gzip decoding);
/// 503 while the pipeline pushes back, storing nothing. Also `GET|HEAD /ping` (204), `GET /health` and a
/// no-op `POST /query` for Telegraf's database creation.
final class WriteEndpointHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// How long a request may wait for its commit before the client is told to retry. Reached only when
    /// the disk stalls; the points may then still be stored.
    static let commitTimeout = TimeAmount.seconds(30)

    enum State {
        case idle
        case writing(head: HTTPRequestHead, precision: TimestampPrecision, gzip: Bool, body: ByteBuffer)
        /// The request is answered already (error); its remaining body parts are ignored.
        case discarding
        case awaitingCommit
    }

    let pipeline: IngestPipeline
    let bodyBytesMax: Int
    private var state = State.idle

    init(pipeline: IngestPipeline, bodyBytesMax: Int) {
        self.pipeline = pipeline
        self.bodyBytesMax = bodyBytesMax
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            begin(head, context: context)
        case .body(var chunk):
            guard case .writing(let head, let precision, let gzip, var body) = state else { return }
            if body.readableBytes + chunk.readableBytes > bodyBytesMax {
                state = .discarding
                respond(context, head: head, status: .payloadTooLarge, error: "request body exceeds \(bodyBytesMax) bytes", code: "request too large")
                return
            }
            body.writeBuffer(&chunk)
            state = .writing(head: head, precision: precision, gzip: gzip, body: body)
        case .end:
            switch state {
            case .writing(let head, let precision, let gzip, let body):
                finish(head: head, precision: precision, gzip: gzip, body: body, context: context)
            case .discarding:
                state = .idle
            default:
                break
            }
        }
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let (path, query) = Self.split(head.uri)
        switch (head.method, path) {
        case (.POST, "/write"), (.POST, "/api/v2/write"):
            let v2 = path == "/api/v2/write"
            guard let precision = Self.precision(query["precision"], v2: v2) else {
                state = .discarding
                respond(context, head: head, status: .badRequest, error: "invalid precision '\(query["precision"] ?? "")'", code: "invalid")
                return
            }
            if let length = head.headers.first(name: "Content-Length").flatMap(Int.init), length > bodyBytesMax {
                state = .discarding
                respond(context, head: head, status: .payloadTooLarge, error: "request body of \(length) bytes exceeds \(bodyBytesMax)", code: "request too large")
                return
            }
            guard pipeline.gate.isOpen else {
                state = .discarding
                respond(context, head: head, status: .serviceUnavailable, error: "gateway is pushing back: the log is slower than the inflow; retry shortly", code: "unavailable", retryAfter: true)
                return
            }
            let gzip = head.headers.first(name: "Content-Encoding")?.lowercased() == "gzip"
            state = .writing(head: head, precision: precision, gzip: gzip, body: context.channel.allocator.buffer(capacity: 0))
        case (.GET, "/ping"), (.HEAD, "/ping"):
            state = .discarding
            respond(context, head: head, status: .noContent)
        case (.GET, "/health"):
            state = .discarding
            respond(context, head: head, status: .ok, json: "{\"name\":\"outpost-gateway\",\"status\":\"pass\",\"message\":\"ready for writes\"}")
        case (.POST, "/query"), (.GET, "/query"):
            // Telegraf's influxdb output issues CREATE DATABASE at start; there is nothing to create.
            state = .discarding
            respond(context, head: head, status: .ok, json: "{\"results\":[{\"statement_id\":0}]}")
        case (_, "/write"), (_, "/api/v2/write"):
            state = .discarding
            respond(context, head: head, status: .methodNotAllowed, error: "use POST", code: "method not allowed")
        default:
            state = .discarding
            respond(context, head: head, status: .notFound, error: "no such endpoint: \(path)", code: "not found")
        }
    }

    private func finish(head: HTTPRequestHead, precision: TimestampPrecision, gzip: Bool, body: ByteBuffer, context: ChannelHandlerContext) {
        var bytes = Array(body.readableBytesView)
        if gzip {
            do throws(CompressionError) {
                let decompressor = try GzipDecompressor()
                bytes = try decompressor.decompress(bytes, outputBytesMax: bodyBytesMax)
            } catch {
                state = .idle
                if case .tooLarge = error {
                    respond(context, head: head, status: .payloadTooLarge, error: "decompressed body exceeds \(bodyBytesMax) bytes", code: "request too large")
                } else {
                    let reason = PointParseError(.invalidPayload, "gzip body does not decompress: \(error)", column: 1)
                    bytes.withUnsafeBytes { pipeline.rejects.reject(reason, source: .http, raw: $0, receivedAt: IngestPipeline.wallClockNanoseconds()) }
                    respond(context, head: head, status: .badRequest, error: reason.detail, code: "invalid")
                }
                return
            }
        }
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: eventLoop)
        let responded = NIOLoopBoundBox(false, eventLoop: eventLoop)
        let completion = BatchCompletion { result in
            eventLoop.execute {
                guard !responded.value else { return }
                responded.value = true
                let (handler, context) = bound.value
                handler.state = .idle
                switch result {
                case .success:
                    handler.respond(context, head: head, status: .noContent)
                case .failure(let error):
                    handler.respond(context, head: head, status: .serviceUnavailable, error: "points could not be committed: \(error)", code: "unavailable", retryAfter: true)
                }
            }
        }
        let batcher = pipeline.batcher(for: eventLoop)
        let outcome = bytes.withUnsafeBytes { raw in pipeline.ingestWrite(raw, precision: precision, batcher: batcher, completion: completion) }
        switch outcome {
        case .failure(let error):
            state = .idle
            responded.value = true
            respond(context, head: head, status: .badRequest, error: "line \(error.line), column \(error.column): \(error.detail)", code: "invalid", line: error.line)
        case .success:
            state = .awaitingCommit
            completion.seal()
            eventLoop.scheduleTask(in: Self.commitTimeout) {
                guard !responded.value else { return }
                responded.value = true
                let (handler, context) = bound.value
                handler.state = .idle
                handler.pipeline.logger.warning("HTTP write timed out waiting for its commit")
                handler.respond(context, head: head, status: .serviceUnavailable, error: "commit did not complete within 30 s; the points may still be stored", code: "unavailable", retryAfter: true)
            }
        }
    }

    private func respond(
        _ context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, error: String? = nil,
        code: String? = nil, line: Int? = nil, retryAfter: Bool = false, json: String? = nil
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "X-Influxdb-Version", value: "outpost")
        var body: [UInt8] = []
        if let error {
            var text = "{\"code\":\"\(code ?? "invalid")\",\"message\":" + JSONWriter.quoted(error)
            if let line { text += ",\"line\":\(line)" }
            text += "}"
            body = Array(text.utf8)
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            headers.add(name: "X-Influxdb-Error", value: error)
        } else if let json {
            body = Array(json.utf8)
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        }
        if retryAfter { headers.add(name: "Retry-After", value: "1") }
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive && status != .payloadTooLarge
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        pipeline.metrics.httpResponses[Int(status.code)]?.increment()
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty && head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        let parts = uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? uri
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let keyValue = pair.split(separator: "=", maxSplits: 1)
                guard let key = keyValue.first else { continue }
                query[String(key)] = keyValue.count == 2 ? String(keyValue[1]).removingPercentEncoding ?? String(keyValue[1]) : ""
            }
        }
        return (path, query)
    }

    /// v1 spells precision n, u, ms, s (and rfc3339-less h/m, refused here); v2 spells ns, us, ms, s.
    static func precision(_ text: String?, v2: Bool) -> TimestampPrecision? {
        guard let text, !text.isEmpty else { return .nanoseconds }
        return TimestampPrecision(parsing: text)
    }
}

enum HTTPListener {
    static func start(pipeline: IngestPipeline, listen: HostPort, group: any EventLoopGroup, logger: Logger) async throws -> any Channel {
        let bodyBytesMax = pipeline.configuration.httpBodyBytesMax
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(WriteEndpointHandler(pipeline: pipeline, bodyBytesMax: bodyBytesMax))
                }
            }
            .bind(host: listen.host, port: listen.port)
            .get()
        logger.info("HTTP write endpoint ready", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "paths": "/write /api/v2/write"])
        return channel
    }
}
