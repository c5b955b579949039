import Foundation
import Synchronization

/// One point on its way out.
struct OutgoingPoint {
    var fleet: Int
    var device: Int
    var seq: Int64
    var timestampNanoseconds: Int64
}

/// What every sender shares with the run: the ledger, the encoders, the stop flag, and a hook that keeps
/// the status line going while a sender waits for a slow target.
final class RunContext: @unchecked Sendable {
    // @unchecked: `keepAlive` is set before the run and only called on the runner thread.
    let ledger: DeliveryLedger
    let encoders: [PayloadEncoder]
    let retry: Bool
    let stopRequested = Atomic<Bool>(false)
    let errors = Atomic<Int>(0)
    /// Called by senders between waits on the runner thread; returns false once the run must stop.
    var keepAlive: () -> Bool = { true }
    /// Points waiting to be sent again (`--retry`), bounded by `retryLimit`.
    let retryLimit: Int

    init(ledger: DeliveryLedger, encoders: [PayloadEncoder], retry: Bool, retryLimit: Int) {
        self.ledger = ledger
        self.encoders = encoders
        self.retry = retry
        self.retryLimit = retryLimit
    }

    func countError() { errors.add(1, ordering: .relaxed) }
}

/// A way points leave the process. All methods run on the runner thread.
protocol Transport: AnyObject {
    /// Sends (or buffers) one point whose values are in `values`.
    func send(_ point: OutgoingPoint, values: [Double])
    /// Sends a malformed payload for a device (no sequence number).
    func sendMalformed(fleet: Int, device: Int, variant: Int)
    /// Periodic: flush what lingered, reconnect, resend (`--retry`).
    func service(now: UInt64)
    /// Flushes everything, waits until `deadline` for outstanding acknowledgements, closes.
    func finish(deadline: UInt64)
    /// One line for the summary: connections, errors, rejects.
    var report: [String: String] { get }
}

/// A bounded queue of points to send again (`--retry`). Overflow drops the oldest, counted.
struct RetryQueue {
    struct Item {
        var point: OutgoingPoint
        var bytes: [UInt8]
    }

    var items: [Item] = []
    var head = 0
    var dropped = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    var isEmpty: Bool { head >= items.count }
    var count: Int { items.count - head }

    mutating func push(_ item: Item) {
        if count >= limit {
            head += 1
            dropped += 1
        }
        items.append(item)
        if head > 4096 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }

    mutating func pop() -> Item? {
        guard head < items.count else { return nil }
        defer { head += 1 }
        return items[head]
    }
}

/// Line protocol (or JSON lines) over one TCP connection, as Telegraf's socket writer does. Points are
/// buffered up to `bufferBytes` (or `lingerNanoseconds`) and written with one system call; a point counts
/// as sent once its bytes are in the kernel. While the target is down points fail at once (counted, and
/// kept for `--retry`), and the connection is retried with backoff.
final class TCPTransport: Transport {
    let context: RunContext
    let address: Sockets.Address
    let target: String
    let bufferBytes: Int
    let lingerNanoseconds: UInt64 = 20_000_000
    var descriptor: Int32 = -1
    var backoff = SenderBackoff()
    var buffer: [UInt8] = []
    var entries: [(entry: DeliveryLedger.Entry, end: Int)] = []
    var firstBuffered: UInt64 = 0
    var retryQueue: RetryQueue
    var connects = 0
    var failures = 0
    var bytes = 0

    init(context: RunContext, target: String, bufferBytes: Int) throws(SimulatorError) {
        guard let (host, port) = Sockets.splitHostPort(target) else { throw .invalidOptions("--tcp wants HOST:PORT, got '\(target)'") }
        guard let address = Sockets.resolve(host: host, port: port, datagram: false) else { throw .invalidOptions("cannot resolve '\(host)'") }
        self.context = context
        self.address = address
        self.target = target
        self.bufferBytes = bufferBytes
        retryQueue = RetryQueue(limit: context.retryLimit)
        buffer.reserveCapacity(bufferBytes + 4096)
    }

    func ensureConnected(now: UInt64) -> Bool {
        if descriptor >= 0 { return true }
        guard backoff.due(now) else { return false }
        switch Sockets.connect(address, datagram: false, timeoutMilliseconds: 1000) {
        case .success(let connected):
            descriptor = connected
            backoff.succeeded()
            connects += 1
            return true
        case .failure:
            backoff.failed(now: monotonicNow())
            context.countError()
            return false
        }
    }

    func send(_ point: OutgoingPoint, values: [Double]) {
        guard descriptor >= 0 || ensureConnected(now: monotonicNow()) else {
            fail(point, values: values)
            return
        }
        if buffer.isEmpty { firstBuffered = monotonicNow() }
        context.encoders[point.fleet].append(device: point.device, seq: point.seq, timestampNanoseconds: point.timestampNanoseconds, values: values, to: &buffer)
        entries.append((DeliveryLedger.Entry(fleet: point.fleet, device: point.device, seq: point.seq), buffer.count))
        if buffer.count >= bufferBytes { flush() }
    }

    private func fail(_ point: OutgoingPoint, values: [Double]) {
        failures += 1
        if context.retry {
            var bytes: [UInt8] = []
            context.encoders[point.fleet].append(device: point.device, seq: point.seq, timestampNanoseconds: point.timestampNanoseconds, values: values, to: &bytes)
            retryQueue.push(.init(point: point, bytes: bytes))
        } else {
            context.ledger.record(.failed, fleet: point.fleet, device: point.device, seq: point.seq)
        }
    }

    func sendMalformed(fleet: Int, device: Int, variant: Int) {
        guard ensureConnected(now: monotonicNow()) else { return }
        if buffer.isEmpty { firstBuffered = monotonicNow() }
        context.encoders[fleet].appendMalformed(device: device, variant: variant, to: &buffer)
        context.ledger.countMalformed(fleet: fleet, device: device)
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        guard descriptor >= 0 else {
            failBuffered(from: 0)
            return
        }
        let result = buffer.withUnsafeBytes { Sockets.writeAll(descriptor, $0, keepAlive: context.keepAlive) }
        bytes += result.written
        if result.error == nil {
            context.ledger.record(.sent, entries.lazy.map(\.entry))
            buffer.removeAll(keepingCapacity: true)
            entries.removeAll(keepingCapacity: true)
            return
        }
        // Points wholly written count as sent; the rest failed (the target may have seen a torn line).
        let whole = entries.prefix { $0.end <= result.written }
        context.ledger.record(.sent, whole.lazy.map(\.entry))
        failBuffered(from: whole.count)
        close(descriptor)
        descriptor = -1
        backoff.failed(now: monotonicNow())
        context.countError()
    }

    private func failBuffered(from index: Int) {
        var start = index > 0 ? entries[index - 1].end : 0
        for position in index..<entries.count {
            let entry = entries[position].entry
            failures += 1
            if context.retry {
                let point = OutgoingPoint(fleet: Int(entry.fleet), device: Int(entry.device), seq: entry.seq, timestampNanoseconds: 0)
                retryQueue.push(.init(point: point, bytes: Array(buffer[start..<entries[position].end])))
            } else {
                context.ledger.record(.failed, fleet: Int(entry.fleet), device: Int(entry.device), seq: entry.seq)
            }
            start = entries[position].end
        }
        buffer.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    func service(now: UInt64) {
        if !buffer.isEmpty && now &- firstBuffered >= lingerNanoseconds { flush() }
        if context.retry && !retryQueue.isEmpty && ensureConnected(now: now) {
            var moved = 0
            while moved < 10_000, let item = retryQueue.pop() {
                if buffer.isEmpty { firstBuffered = now }
                buffer.append(contentsOf: item.bytes)
                entries.append((DeliveryLedger.Entry(fleet: item.point.fleet, device: item.point.device, seq: item.point.seq), buffer.count))
                moved += 1
                if buffer.count >= bufferBytes { flush() }
            }
        }
    }

    func finish(deadline: UInt64) {
        flush()
        while context.retry && !retryQueue.isEmpty && monotonicNow() < deadline && !context.stopRequested.load(ordering: .relaxed) {
            service(now: monotonicNow())
            flush()
            if descriptor < 0 { usleep(50_000) }
        }
        for item in retryQueue.items[retryQueue.head...] {
            context.ledger.record(.failed, fleet: item.point.fleet, device: item.point.device, seq: item.point.seq)
        }
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
    }

    var report: [String: String] {
        ["target": "tcp://\(target)", "connects": "\(connects)", "bytes": "\(bytes)", "failed_points": "\(failures)", "retry_dropped": "\(retryQueue.dropped)"]
    }
}

/// Line protocol (or JSON lines) in UDP datagrams of up to `datagramBytes`, several points each. A point
/// counts as sent once its datagram left (UDP has no acknowledgement and may still lose it).
final class UDPTransport: Transport {
    let context: RunContext
    let target: String
    let datagramBytes: Int
    var descriptor: Int32 = -1
    let address: Sockets.Address
    var buffer: [UInt8] = []
    var entries: [DeliveryLedger.Entry] = []
    var scratch: [UInt8] = []
    var firstBuffered: UInt64 = 0
    var datagrams = 0
    var sendErrors = 0
    var failures = 0

    init(context: RunContext, target: String, datagramBytes: Int) throws(SimulatorError) {
        guard let (host, port) = Sockets.splitHostPort(target) else { throw .invalidOptions("--udp wants HOST:PORT, got '\(target)'") }
        guard let address = Sockets.resolve(host: host, port: port, datagram: true) else { throw .invalidOptions("cannot resolve '\(host)'") }
        self.context = context
        self.target = target
        self.address = address
        self.datagramBytes = datagramBytes
        if case .success(let socket) = Sockets.connect(address, datagram: true, timeoutMilliseconds: 1000) {
            descriptor = socket
            var size: Int32 = 4 << 20
            _ = setsockopt(socket, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    func send(_ point: OutgoingPoint, values: [Double]) {
        scratch.removeAll(keepingCapacity: true)
        context.encoders[point.fleet].append(device: point.device, seq: point.seq, timestampNanoseconds: point.timestampNanoseconds, values: values, to: &scratch)
        if !buffer.isEmpty && buffer.count + scratch.count > datagramBytes { flush() }
        if buffer.isEmpty { firstBuffered = monotonicNow() }
        buffer.append(contentsOf: scratch)
        entries.append(DeliveryLedger.Entry(fleet: point.fleet, device: point.device, seq: point.seq))
    }

    func sendMalformed(fleet: Int, device: Int, variant: Int) {
        flush()
        context.encoders[fleet].appendMalformed(device: device, variant: variant, to: &buffer)
        context.ledger.countMalformed(fleet: fleet, device: device)
        flush(malformedOnly: true)
    }

    func flush(malformedOnly: Bool = false) {
        guard !buffer.isEmpty else { return }
        var ok = false
        if descriptor >= 0 {
            ok = buffer.withUnsafeBytes { Sockets.writeAll(descriptor, $0, keepAlive: context.keepAlive).error == nil }
        }
        datagrams += 1
        if !malformedOnly {
            if ok {
                context.ledger.record(.sent, entries)
            } else {
                sendErrors += 1
                failures += entries.count
                context.countError()
                context.ledger.record(.failed, entries)
            }
        }
        buffer.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    func service(now: UInt64) {
        if !buffer.isEmpty && now &- firstBuffered >= 20_000_000 { flush() }
    }

    func finish(deadline: UInt64) {
        flush()
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    var report: [String: String] {
        ["target": "udp://\(target)", "datagrams": "\(datagrams)", "send_errors": "\(sendErrors)", "failed_points": "\(failures)"]
    }
}
