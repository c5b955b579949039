import Foundation
import Synchronization

/// The gateway's InfluxDB-compatible write endpoint (`/api/v2/write`, `/write`): points batched into
/// line-protocol request bodies, sent by `connections` worker threads over keep-alive HTTP/1.1, one
/// request in flight per connection. A device always uses the same connection (devices are sharded by
/// index), so its points arrive in the order it sent them: requests on different connections race each
/// other at the gateway, requests on one connection do not. 204 acknowledges every point of the request; any other answer
/// means none was stored (the endpoint is all or nothing), so those points are sent but unacknowledged
/// (resent with `--retry` when the answer was 429 or 5xx, or the connection failed).
///
/// Batches wait in a queue of 2 per connection; when one is full the runner waits (it falls behind
/// schedule, which it reports) rather than buffering without bound.
final class HTTPTransport: Transport, @unchecked Sendable {
    // @unchecked: the runner-side members are used on the runner thread only; the queue and counters are
    // guarded by `condition` / atomics; workers own their connections.

    struct Batch {
        var body: [UInt8] = []
        var entries: [DeliveryLedger.Entry] = []
        var malformed = false
    }

    let context: RunContext
    let host: String
    let port: Int
    let path: String
    let address: Sockets.Address
    let batchPoints: Int
    let batchBytes = 1 << 20
    let queueLimit: Int
    private let condition = NSCondition()
    /// Per connection: the batches waiting for it, and the one being filled.
    private var queues: [[Batch]]
    private var closing = false
    private var workersRunning = 0
    private var currents: [Batch]
    private var firstBuffered: [UInt64]
    let requests = Atomic<Int>(0)
    let acknowledged = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let connectionErrors = Atomic<Int>(0)
    private let statusCounts = Mutex<[Int: Int]>([:])
    let latencies = Mutex(LatencyRecorder())

    init(context: RunContext, url: String, connections: Int, batchPoints: Int) throws(SimulatorError) {
        guard url.hasPrefix("http://") else { throw .invalidOptions("--http wants http://HOST:PORT[/path], got '\(url)' (https is not supported)") }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        guard let (host, port) = Sockets.splitHostPort(String(authority)) ?? (authority.isEmpty ? nil : (String(authority), 80)) else {
            throw .invalidOptions("--http: cannot read host and port in '\(url)'")
        }
        if path.isEmpty || path == "/" { path = "/api/v2/write?bucket=telemetry" }
        if !path.contains("precision=") { path += (path.contains("?") ? "&" : "?") + "precision=ns" }
        guard let address = Sockets.resolve(host: host, port: port, datagram: false) else { throw .invalidOptions("cannot resolve '\(host)'") }
        self.context = context
        self.host = host
        self.port = port
        self.path = path
        self.address = address
        self.batchPoints = batchPoints
        queueLimit = 2
        let connections = max(1, connections)
        queues = Array(repeating: [], count: connections)
        currents = Array(repeating: Batch(), count: connections)
        firstBuffered = Array(repeating: 0, count: connections)
        for index in 0..<connections {
            workersRunning += 1
            let thread = Thread { [self] in work(shard: index) }
            thread.name = "outpost-sim-http-\(index)"
            thread.start()
        }
    }

    // MARK: Runner thread

    private func shard(fleet: Int, device: Int) -> Int { (fleet &* 7_919 &+ device) % queues.count }

    func send(_ point: OutgoingPoint, values: [Double]) {
        let shard = shard(fleet: point.fleet, device: point.device)
        if currents[shard].entries.isEmpty { firstBuffered[shard] = monotonicNow() }
        context.encoders[point.fleet].append(
            device: point.device, seq: point.seq, timestampNanoseconds: point.timestampNanoseconds, values: values, to: &currents[shard].body)
        currents[shard].entries.append(DeliveryLedger.Entry(fleet: point.fleet, device: point.device, seq: point.seq))
        if currents[shard].entries.count >= batchPoints || currents[shard].body.count >= batchBytes { enqueueCurrent(shard) }
    }

    /// A malformed line travels alone: the endpoint rejects a whole request for one bad line.
    func sendMalformed(fleet: Int, device: Int, variant: Int) {
        var batch = Batch(malformed: true)
        context.encoders[fleet].appendMalformed(device: device, variant: variant, to: &batch.body)
        context.ledger.countMalformed(fleet: fleet, device: device)
        enqueue(batch, shard: shard(fleet: fleet, device: device))
    }

    private func enqueueCurrent(_ shard: Int) {
        guard !currents[shard].entries.isEmpty else { return }
        let batch = currents[shard]
        currents[shard] = Batch()
        currents[shard].body.reserveCapacity(batch.body.count)
        enqueue(batch, shard: shard)
    }

    private func enqueue(_ batch: Batch, shard: Int) {
        condition.lock()
        while queues[shard].count >= queueLimit {
            condition.unlock()
            let keepGoing = context.keepAlive()
            condition.lock()
            if !keepGoing {
                condition.unlock()
                context.ledger.record(.failed, batch.entries)
                return
            }
            if queues[shard].count >= queueLimit { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1)) }
        }
        queues[shard].append(batch)
        condition.broadcast()
        condition.unlock()
    }

    func service(now: UInt64) {
        for shard in currents.indices where !currents[shard].entries.isEmpty && now &- firstBuffered[shard] >= 50_000_000 {
            enqueueCurrent(shard)
        }
    }

    func finish(deadline: UInt64) {
        for shard in currents.indices { enqueueCurrent(shard) }
        condition.lock()
        closing = true
        condition.broadcast()
        while workersRunning > 0 {
            if monotonicNow() >= deadline { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        // Anything still queued past the deadline was never sent.
        let left = queues.flatMap { $0 }
        for shard in queues.indices { queues[shard].removeAll() }
        condition.unlock()
        for batch in left { context.ledger.record(.failed, batch.entries) }
    }

    var report: [String: String] {
        let statuses = statusCounts.withLock { $0 }.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
        return ["target": "http://\(host):\(port)\(path)", "requests": "\(requests.load(ordering: .relaxed))",
                "acknowledged_requests": "\(acknowledged.load(ordering: .relaxed))", "rejected_requests": "\(rejected.load(ordering: .relaxed))",
                "connection_errors": "\(connectionErrors.load(ordering: .relaxed))", "statuses": statuses]
    }

    // MARK: Workers

    private func take(shard: Int) -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while queues[shard].isEmpty {
            if closing { return nil }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        let batch = queues[shard].removeFirst()
        condition.broadcast()
        return batch
    }

    private func work(shard: Int) {
        var connection: Int32 = -1
        var backoff = SenderBackoff()
        defer {
            if connection >= 0 { close(connection) }
            condition.lock()
            workersRunning -= 1
            condition.broadcast()
            condition.unlock()
        }
        while let batch = take(shard: shard) {
            var attempt = 0
            while true {
                attempt += 1
                let started = monotonicNow()
                let outcome = exchange(batch.body, connection: &connection)
                requests.add(1, ordering: .relaxed)
                switch outcome {
                case .status(let status):
                    statusCounts.withLock { $0[status, default: 0] += 1 }
                    if (200..<300).contains(status) {
                        acknowledged.add(1, ordering: .relaxed)
                        latencies.withLock { $0.record(nanoseconds: monotonicNow() &- started) }
                        if !batch.malformed { context.ledger.record(.acknowledged, batch.entries) }
                        backoff.succeeded()
                    } else {
                        rejected.add(1, ordering: .relaxed)
                        if batch.malformed { break }
                        let transient = status == 429 || status >= 500
                        if context.retry && transient && !isClosingPastHope() {
                            backoff.failed(now: monotonicNow())
                            usleep(UInt32(min(2_000_000, 100_000 * attempt)))
                            continue
                        }
                        context.countError()
                        context.ledger.record(.sent, batch.entries)
                    }
                case .connectionFailed:
                    connectionErrors.add(1, ordering: .relaxed)
                    context.countError()
                    if context.retry && !batch.malformed && !isClosingPastHope() {
                        usleep(UInt32(min(2_000_000, 100_000 * attempt)))
                        continue
                    }
                    if !batch.malformed { context.ledger.record(.failed, batch.entries) }
                case .noAnswer:
                    // The request went out but no answer came: the gateway may or may not have stored it.
                    connectionErrors.add(1, ordering: .relaxed)
                    context.countError()
                    if context.retry && !batch.malformed && !isClosingPastHope() {
                        usleep(UInt32(min(2_000_000, 100_000 * attempt)))
                        continue
                    }
                    if !batch.malformed { context.ledger.record(.sent, batch.entries) }
                }
                break
            }
        }
    }

    /// While retrying, give up once the run is stopping.
    private func isClosingPastHope() -> Bool {
        context.stopRequested.load(ordering: .relaxed)
    }

    enum Exchange {
        case status(Int)
        case connectionFailed
        case noAnswer
    }

    /// One request and its response on a keep-alive connection (opened when needed).
    private func exchange(_ body: [UInt8], connection: inout Int32) -> Exchange {
        if connection < 0 {
            guard case .success(let socket) = Sockets.connect(address, datagram: false, timeoutMilliseconds: 2000) else { return .connectionFailed }
            _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) & ~O_NONBLOCK)
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            _ = setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            connection = socket
        }
        var request = Array("POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.count)\r\nUser-Agent: outpost-simulate\r\n\r\n".utf8)
        request.append(contentsOf: body)
        let written = request.withUnsafeBytes { Sockets.writeAll(connection, $0, keepAlive: { true }) }
        guard written.error == nil else {
            close(connection)
            connection = -1
            return written.written == 0 ? .connectionFailed : .noAnswer
        }
        guard let (status, keepOpen) = readResponse(connection) else {
            close(connection)
            connection = -1
            return .noAnswer
        }
        if !keepOpen {
            close(connection)
            connection = -1
        }
        return .status(status)
    }

    /// Reads one response: status, headers, and a Content-Length or chunked body (discarded).
    private func readResponse(_ socket: Int32) -> (status: Int, keepOpen: Bool)? {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        func fill() -> Bool {
            let count = recv(socket, &chunk, chunk.count, 0)
            guard count > 0 else { return false }
            data.append(contentsOf: chunk[0..<count])
            return data.count < 1 << 20
        }
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            guard fill() else { return nil }
            if data.count >= 4 {
                for index in 0...(data.count - 4) where data[index] == 13 && Array(data[index..<(index + 4)]) == terminator {
                    headerEnd = index + 4
                    break
                }
            }
        }
        guard let headerEnd else { return nil }
        let head = String(decoding: data[0..<headerEnd], as: UTF8.self).lowercased()
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.hasPrefix("http/1."), statusLine.count >= 12,
            let status = Int(statusLine.dropFirst(9).prefix(3))
        else { return nil }
        var contentLength = 0
        var chunked = false
        var keepOpen = !statusLine.hasPrefix("http/1.0")
        for line in lines.dropFirst() {
            if line.hasPrefix("content-length:") { contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0 }
            if line.hasPrefix("transfer-encoding:") && line.contains("chunked") { chunked = true }
            if line.hasPrefix("connection:") { keepOpen = line.contains("keep-alive") || (!line.contains("close") && keepOpen) }
        }
        if chunked {
            // Read until the zero-length chunk's terminator.
            let end: [UInt8] = Array("0\r\n\r\n".utf8)
            while !(data.count >= headerEnd + 5 && Array(data[(data.count - 5)...]) == end) {
                guard fill() else { return nil }
            }
        } else {
            while data.count - headerEnd < contentLength {
                guard fill() else { return nil }
            }
        }
        return (status, keepOpen)
    }
}

/// Acknowledgement latencies (HTTP 204, MQTT PUBACK), in microseconds, for the summary.
struct LatencyRecorder: Sendable {
    var samples: [UInt32] = []
    var count = 0
    /// Keeps every n-th sample once `limit` are held, so memory stays bounded on long runs.
    let limit = 200_000
    var stride = 1

    mutating func record(nanoseconds: UInt64) {
        count += 1
        guard count % stride == 0 else { return }
        samples.append(UInt32(min(UInt64(UInt32.max), nanoseconds / 1000)))
        if samples.count >= limit {
            samples = samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
            stride *= 2
        }
    }

    func percentile(_ fraction: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]) / 1000
    }
}
