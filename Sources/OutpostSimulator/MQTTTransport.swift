import Foundation
import Logging
import OutpostMQTT
import Synchronization

/// MQTT through OutpostMQTT: one connection per device (the default, as real devices connect), or the
/// devices multiplexed over `connections` connections. Clients share a few `MQTTEventLoop` threads, so
/// 10,000 connections cost a handful of threads. A QoS 1 point counts as acknowledged on PUBACK; a QoS 0
/// point as sent once written to the socket. A publish the client refuses (not connected, window full)
/// fails at once and is counted; with `--retry` it is queued (bounded) and published again later.
final class MQTTTransport: Transport, @unchecked Sendable {
    // @unchecked: runner-side members are used on the runner thread only; completions arrive on the loop
    // threads and touch only the ledger (locked), `retryInbox` (a Mutex) and atomics.

    let context: RunContext
    let fleets: [Fleet]
    let qos: [MQTTQoS]
    let loops: [MQTTEventLoop]
    /// clients[fleet][device] for per-device connections; else `shared` is used.
    private var perDevice: [[MQTTClient]] = []
    private var shared: [MQTTClient] = []
    private var deviceBase: [Int] = []
    private var scratch: [UInt8] = []
    let target: String
    let rejectedPublishes = Atomic<Int>(0)
    let notDelivered = Atomic<Int>(0)
    let latencies = Mutex(LatencyRecorder())
    private var retryQueue: RetryQueue

    /// Token layout: 1 bit "ignore" (field messages of plain style), 6 bits fleet, 21 bits device, 36 bits seq.
    static func token(fleet: Int, device: Int, seq: Int64) -> UInt64 {
        (UInt64(fleet) << 57) | (UInt64(device) << 36) | (UInt64(seq) & 0xF_FFFF_FFFF)
    }

    static let ignoreBit: UInt64 = 1 << 63

    init(context: RunContext, fleets: [Fleet], target: String, connections: Int?, runID: String, loopCount: Int,
         logger: Logger) throws(SimulatorError) {
        guard let (host, port) = Sockets.splitHostPort(target) else { throw .invalidOptions("--mqtt wants HOST:PORT, got '\(target)'") }
        guard fleets.count <= 64, fleets.allSatisfy({ $0.deviceCount < 1 << 21 }) else {
            throw .invalidOptions("MQTT supports at most 64 fleets of 2,097,151 devices")
        }
        self.context = context
        self.fleets = fleets
        self.target = target
        qos = fleets.map { $0.qos == 1 ? .atLeastOnce : .atMostOnce }
        retryQueue = RetryQueue(limit: context.retryLimit)
        do {
            loops = try (0..<max(1, loopCount)).map { index throws(MQTTError) in try MQTTEventLoop(name: "sim-\(index)") }
        } catch {
            throw .invalidOptions("cannot start MQTT network threads: \(error)")
        }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .error)
        let handlers = MQTTClient.Handlers(onPublishCompleted: { [unowned self] completion in completed(completion) })
        func configuration(id: String) -> MQTTConfiguration {
            var configuration = MQTTConfiguration(host: host, port: port, clientID: id, cleanSession: true)
            configuration.keepAliveSeconds = 60
            configuration.tcpNoDelay = true
            configuration.reconnect = MQTTBackoff(initialSeconds: 0.2, maximumSeconds: 5, jitter: 0.5)
            configuration.limits.pendingPublishesMax = connections == nil ? 1_000 : 20_000
            configuration.limits.inflightMessagesMax = connections == nil ? 20 : 1_000
            return configuration
        }
        do {
            var loopIndex = 0
            // Clients are made without libmosquitto's unused wake-up socket pairs: one descriptor per
            // connection instead of three (see MQTTClient.withoutWakeUpDescriptors).
            try MQTTClient.withoutWakeUpDescriptors { () throws(MQTTError) in
            if let connections {
                shared = try (0..<connections).map { index throws(MQTTError) in
                    loopIndex += 1
                    return try MQTTClient(configuration: configuration(id: "outpost-sim-\(runID)-\(index)"), handlers: handlers,
                                          eventLoop: loops[loopIndex % loops.count], logger: quiet)
                }
                var base = 0
                for fleet in fleets {
                    deviceBase.append(base)
                    base += fleet.deviceCount
                }
            } else {
                perDevice = try fleets.map { fleet throws(MQTTError) in
                    try (0..<fleet.deviceCount).map { device throws(MQTTError) in
                        loopIndex += 1
                        return try MQTTClient(configuration: configuration(id: "sim-\(fleet.deviceID(device))"), handlers: handlers,
                                              eventLoop: loops[loopIndex % loops.count], logger: quiet)
                    }
                }
            }
            }
        } catch {
            for loop in loops { loop.shutdown() }
            throw .invalidOptions("cannot create MQTT clients: \(error)")
        }
    }

    var allClients: [MQTTClient] { shared.isEmpty ? perDevice.flatMap { $0 } : shared }

    /// Seconds from starting the clients until all were connected (or the wait gave up).
    private(set) var connectSeconds = 0.0

    /// Starts every client and waits for them to connect: until all are, `timeoutSeconds` pass, or five
    /// seconds go by without one more connecting (the broker is down: the run starts anyway, its sends
    /// fail and are counted, and the clients keep trying). Returns how many connected.
    func connect(timeoutSeconds: Double) -> Int {
        let clients = allClients
        let started = monotonicNow()
        defer { connectSeconds = Double(monotonicNow() - started) / 1e9 }
        for client in clients { client.start() }
        let deadline = started + UInt64(timeoutSeconds * 1e9)
        var connected = 0
        var lastProgress = started
        while monotonicNow() < deadline && monotonicNow() - lastProgress < 5_000_000_000 {
            let now = clients.reduce(0) { $0 + ($1.isConnected ? 1 : 0) }
            if now > connected { lastProgress = monotonicNow() }
            connected = now
            if connected == clients.count || !context.keepAlive() { break }
            usleep(20_000)
        }
        return connected
    }

    private func client(fleet: Int, device: Int) -> MQTTClient {
        if shared.isEmpty { return perDevice[fleet][device] }
        return shared[(deviceBase[fleet] + device) % shared.count]
    }

    func send(_ point: OutgoingPoint, values: [Double]) {
        let encoder = context.encoders[point.fleet]
        let client = client(fleet: point.fleet, device: point.device)
        let token = Self.token(fleet: point.fleet, device: point.device, seq: point.seq)
        let qos = qos[point.fleet]
        do throws(MQTTError) {
            if encoder.style == .plain {
                let topics = encoder.plainTopics[point.device]
                for field in 0..<(topics.count - 1) {
                    scratch.removeAll(keepingCapacity: true)
                    encoder.appendPlain(field: field, seq: point.seq, values: values, to: &scratch)
                    try client.publish(topic: topics[field], payload: scratch, qos: qos, token: Self.ignoreBit)
                }
                scratch.removeAll(keepingCapacity: true)
                encoder.appendPlain(field: topics.count - 1, seq: point.seq, values: values, to: &scratch)
                try client.publish(topic: topics[topics.count - 1], payload: scratch, qos: qos, token: token)
            } else {
                scratch.removeAll(keepingCapacity: true)
                encoder.append(device: point.device, seq: point.seq, timestampNanoseconds: point.timestampNanoseconds, values: values, to: &scratch)
                scratch.removeLast()  // no newline inside a message
                try client.publish(topic: encoder.topics[point.device], payload: scratch, qos: qos, token: token)
            }
        } catch {
            rejectedPublishes.add(1, ordering: .relaxed)
            context.countError()
            if context.retry && encoder.style != .plain {
                retryQueue.push(.init(point: point, bytes: scratch))
            } else {
                context.ledger.record(.failed, fleet: point.fleet, device: point.device, seq: point.seq)
            }
        }
    }

    func sendMalformed(fleet: Int, device: Int, variant: Int) {
        let encoder = context.encoders[fleet]
        scratch.removeAll(keepingCapacity: true)
        encoder.appendMalformed(device: device, variant: variant, to: &scratch)
        if encoder.style != .plain, scratch.last == UInt8(ascii: "\n") { scratch.removeLast() }
        let topic = encoder.style == .plain ? encoder.plainTopics[device][0] : encoder.topics[device]
        if (try? client(fleet: fleet, device: device).publish(topic: topic, payload: scratch, qos: qos[fleet], token: Self.ignoreBit)) != nil {
            context.ledger.countMalformed(fleet: fleet, device: device)
        }
    }

    /// On a loop thread.
    private func completed(_ completion: MQTTPublishCompletion) {
        guard completion.token & Self.ignoreBit == 0 else { return }
        let fleet = Int(completion.token >> 57)
        let device = Int((completion.token >> 36) & 0x1F_FFFF)
        let seq = Int64(completion.token & 0xF_FFFF_FFFF)
        switch completion.outcome {
        case .acknowledged:
            latencies.withLock { $0.record(nanoseconds: completion.latencyNanoseconds) }
            context.ledger.record(.acknowledged, fleet: fleet, device: device, seq: seq)
        case .written:
            context.ledger.record(.sent, fleet: fleet, device: device, seq: seq)
        case .refused, .notDelivered:
            // A QoS 0 packet dropped before it was written never left; a QoS 1 message may have reached
            // the broker before its PUBACK was lost, so it is sent-unacknowledged (and not resent: the
            // payload is gone, and libmosquitto already resent it after every reconnect).
            notDelivered.add(1, ordering: .relaxed)
            context.ledger.record(completion.qos == .atMostOnce ? .failed : .sent, fleet: fleet, device: device, seq: seq)
        }
    }

    func service(now: UInt64) {
        guard context.retry else { return }
        var attempts = 0
        while attempts < 1_000, let item = retryQueue.pop() {
            attempts += 1
            let point = item.point
            let client = client(fleet: point.fleet, device: point.device)
            do throws(MQTTError) {
                try client.publish(topic: context.encoders[point.fleet].topics[point.device], payload: item.bytes, qos: qos[point.fleet],
                                   token: Self.token(fleet: point.fleet, device: point.device, seq: point.seq))
            } catch {
                retryQueue.push(item)
                break
            }
        }
    }

    func finish(deadline: UInt64) {
        while context.retry && !retryQueue.isEmpty && monotonicNow() < deadline && !context.stopRequested.load(ordering: .relaxed) {
            service(now: monotonicNow())
            usleep(20_000)
        }
        for item in retryQueue.items[retryQueue.head...] {
            context.ledger.record(.failed, fleet: item.point.fleet, device: item.point.device, seq: item.point.seq)
        }
        // Wait for PUBACKs of what is in flight, then disconnect cleanly.
        let clients = allClients
        while monotonicNow() < deadline && clients.contains(where: { $0.statistics().publishesPending > 0 }) && !context.stopRequested.load(ordering: .relaxed) {
            usleep(10_000)
        }
        MQTTClient.stop(clients)
        for loop in loops { loop.shutdown() }
    }

    var report: [String: String] {
        let clients = allClients
        let statistics = clients.map { $0.statistics() }
        return [
            "target": "mqtt://\(target)", "connections": "\(clients.count)",
            "connected_now": "\(clients.reduce(0) { $0 + ($1.isConnected ? 1 : 0) })",
            "connects": "\(statistics.reduce(0) { $0 + $1.connects })", "disconnects": "\(statistics.reduce(0) { $0 + $1.disconnects })",
            "connect_failures": "\(statistics.reduce(0) { $0 + $1.connectFailures })", "connect_s": String(format: "%.2f", connectSeconds),
            "rejected_publishes": "\(rejectedPublishes.load(ordering: .relaxed))", "not_delivered": "\(notDelivered.load(ordering: .relaxed))",
        ]
    }
}
