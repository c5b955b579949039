import Foundation
import Logging
import Synchronization

/// Everything `outpost simulate` can be told.
public struct SimulationOptions: Sendable {
    public var seed: UInt64 = 1
    /// Points per second over all fleets; nil: each fleet at its own sampling interval.
    public var rate: Double?
    /// No pacing at all: as fast as the target takes them (throughput measurement).
    public var unpaced = false
    public var durationSeconds: Double?
    public var points: Int64?
    public var rampSeconds: Double = 0
    public var mqttTarget: String?
    public var tcpTarget: String?
    public var udpTarget: String?
    public var httpTarget: String?
    /// Overrides for every fleet.
    public var transport: TransportKind?
    public var payload: PayloadStyle?
    public var qos: Int?
    public var deviceCount: Int?
    public var intervalSeconds: Double?
    /// MQTT: nil for one connection per device, else devices multiplexed over this many.
    public var mqttConnections: Int?
    public var mqttLoops = 2
    public var mqttConnectTimeoutSeconds: Double = 60
    public var retry = false
    /// Bound on points kept for `--retry` per sender. 1,000,000 points is ~150 MB at worst.
    public var retryLimit = 1_000_000
    /// Adds a `run` tag to every point.
    public var tagRun = false
    public var runID: String?
    /// How long the end of a run waits for outstanding acknowledgements.
    public var drainSeconds: Double = 10
    public var tcpBufferBytes = 64 << 10
    public var udpDatagramBytes = 1400
    public var httpConnections = 2
    public var httpBatchPoints = 1000
    /// Bound on points waiting to be sent late.
    public var lateQueueMax = 100_000

    public init() {}
}

/// What a run did, for the end-of-run summary (`--json` prints `json()`).
public struct SimulationSummary: Sendable {
    public var run: String
    public var seed: UInt64
    public var fleets: [String]
    public var devices: Int
    public var elapsedSeconds: Double
    public var points: Int
    public var sent: Int
    public var acknowledged: Int
    public var failed: Int
    public var malformed: Int
    public var silentSlots: Int
    public var errors: Int
    public var scheduledRate: Double
    public var maxBehindMilliseconds: Double
    public var p99BehindMilliseconds: Double
    public var finalBehindMilliseconds: Double
    public var ackLatencyP50Milliseconds: Double?
    public var ackLatencyP99Milliseconds: Double?
    public var mqttConnected: Int?
    public var interrupted: Bool
    public var transports: [[String: String]]
    public var manifestPath: String?

    public var achievedRate: Double { elapsedSeconds > 0 ? Double(points) / elapsedSeconds : 0 }

    public func text() -> String {
        var lines = [
            "run \(run) seed \(seed): \(devices) devices in \(fleets.joined(separator: ", ")) for \(format(elapsedSeconds)) s\(interrupted ? " (interrupted)" : "")",
            "points \(points) (\(format(achievedRate)) /s, scheduled \(scheduledRate.isFinite ? format(scheduledRate) : "max") /s): sent \(sent), acknowledged \(acknowledged), failed \(failed); malformed extra \(malformed); silent slots \(silentSlots); errors \(errors)",
            "behind schedule: max \(format(maxBehindMilliseconds)) ms, p99 \(format(p99BehindMilliseconds)) ms, at the end \(format(finalBehindMilliseconds)) ms",
        ]
        if let p50 = ackLatencyP50Milliseconds, let p99 = ackLatencyP99Milliseconds {
            lines.append("acknowledgement latency: p50 \(format(p50)) ms, p99 \(format(p99)) ms")
        }
        if let mqttConnected { lines.append("mqtt connections established: \(mqttConnected)") }
        for transport in transports {
            lines.append("  " + transport.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        if let manifestPath { lines.append("manifest: \(manifestPath)") }
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        var fields: [String] = [
            "\"run\":\(PayloadEncoder.jsonString(run))", "\"seed\":\(seed)",
            "\"fleets\":[\(fleets.map(PayloadEncoder.jsonString).joined(separator: ","))]", "\"devices\":\(devices)",
            "\"elapsed_s\":\(elapsedSeconds)", "\"points\":\(points)", "\"points_per_s\":\(achievedRate)",
            "\"scheduled_per_s\":\(scheduledRate.isFinite ? "\(scheduledRate)" : "null")",
            "\"sent\":\(sent)", "\"acknowledged\":\(acknowledged)", "\"failed\":\(failed)", "\"malformed\":\(malformed)",
            "\"silent_slots\":\(silentSlots)", "\"errors\":\(errors)", "\"interrupted\":\(interrupted)",
            "\"behind_schedule_ms\":{\"max\":\(maxBehindMilliseconds),\"p99\":\(p99BehindMilliseconds),\"final\":\(finalBehindMilliseconds)}",
        ]
        if let p50 = ackLatencyP50Milliseconds, let p99 = ackLatencyP99Milliseconds {
            fields.append("\"ack_latency_ms\":{\"p50\":\(p50),\"p99\":\(p99)}")
        }
        if let mqttConnected { fields.append("\"mqtt_connected\":\(mqttConnected)") }
        fields.append("\"transports\":[" + transports.map { transport in
            "{" + transport.sorted { $0.key < $1.key }.map { "\(PayloadEncoder.jsonString($0.key)):\(PayloadEncoder.jsonString($0.value))" }.joined(separator: ",") + "}"
        }.joined(separator: ",") + "]")
        if let manifestPath { fields.append("\"manifest\":\(PayloadEncoder.jsonString(manifestPath))") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }
}

/// Runs a simulation: the schedule, the device models, the senders, the status line, the manifest.
/// `run()` blocks the calling thread until the run ends (duration, point count, or `requestStop`).
public final class SimulationRunner: @unchecked Sendable {
    // @unchecked: `run` owns every `var`; other threads only call `requestStop` (an atomic).

    public let fleets: [Fleet]
    public let options: SimulationOptions
    public let runID: String
    let logger: Logger
    let context: RunContext
    let ledger: DeliveryLedger
    var transportByFleet: [any Transport] = []
    var transports: [any Transport] = []
    var mqtt: MQTTTransport?
    /// Called about once a second with a one-line status (the CLI prints it on a TTY).
    public var onStatus: (@Sendable (String) -> Void)?

    public init(fleets loaded: [Fleet], options: SimulationOptions, logger: Logger = Logger(label: "outpost.simulate")) throws(SimulatorError) {
        guard !loaded.isEmpty else { throw .invalidOptions("no fleets to simulate") }
        var fleets = loaded
        for index in fleets.indices {
            if let count = options.deviceCount {
                guard (1...FleetLoader.devicesPerFleetMax).contains(count) else { throw .invalidOptions("--devices must be 1...\(FleetLoader.devicesPerFleetMax)") }
                fleets[index].deviceCount = count
            }
            if let interval = options.intervalSeconds { fleets[index].intervalSeconds = interval }
            if let qos = options.qos { fleets[index].qos = qos }
            if let payload = options.payload { fleets[index].payload = payload }
            let targets: [TransportKind: String?] = [.mqtt: options.mqttTarget, .tcp: options.tcpTarget, .udp: options.udpTarget, .http: options.httpTarget]
            let given = targets.filter { $0.value != nil }.map(\.key)
            if let transport = options.transport {
                fleets[index].transport = transport
            } else if given.count == 1, let only = given.first {
                // One target: every fleet goes there, whatever its file says.
                fleets[index].transport = only
            }
            let fleet = fleets[index]
            guard targets[fleet.transport] != nil, (targets[fleet.transport] ?? nil) != nil else {
                throw .invalidOptions("fleet '\(fleet.name)' sends over \(fleet.transport.rawValue) but no --\(fleet.transport.rawValue) target was given")
            }
            if fleet.payload == .plain && fleet.transport != .mqtt {
                throw .invalidOptions("fleet '\(fleet.name)': plain values travel only over MQTT; use --payload line or json")
            }
            if fleet.transport == .http && fleet.payload != .line {
                // The InfluxDB write API takes line protocol only.
                fleets[index].payload = .line
            }
        }
        try FleetLoader.checkDistinctDevices(fleets)
        if options.unpaced == false, let rate = options.rate, !(rate > 0) { throw .invalidOptions("--rate must be positive") }
        self.fleets = fleets
        self.options = options
        self.logger = logger
        runID = options.runID ?? String(format: "%08x", UInt32(truncatingIfNeeded: options.seed &* 0x9E37_79B9 ^ UInt64(wallNow() / 1_000_000)))
        ledger = DeliveryLedger(fleets: fleets)
        let tag = options.tagRun ? runID : nil
        let encoders = fleets.map { PayloadEncoder(fleet: $0, style: $0.payload, runID: tag) }
        context = RunContext(ledger: ledger, encoders: encoders, retry: options.retry, retryLimit: options.retryLimit)
    }

    public func requestStop() { context.stopRequested.store(true, ordering: .relaxed) }

    private func makeTransports() throws(SimulatorError) {
        var byKind: [TransportKind: any Transport] = [:]
        for kind in Set(fleets.map(\.transport)).sorted(by: { $0.rawValue < $1.rawValue }) {
            switch kind {
            case .tcp:
                byKind[kind] = try TCPTransport(context: context, target: options.tcpTarget ?? "", bufferBytes: options.tcpBufferBytes)
            case .udp:
                byKind[kind] = try UDPTransport(context: context, target: options.udpTarget ?? "", datagramBytes: options.udpDatagramBytes)
            case .http:
                byKind[kind] = try HTTPTransport(context: context, url: options.httpTarget ?? "", connections: options.httpConnections, batchPoints: options.httpBatchPoints)
            case .mqtt:
                let mqttFleets = fleets
                let connections = options.mqttConnections
                let clientCount = connections ?? mqttFleets.filter { $0.transport == .mqtt }.reduce(0) { $0 + $1.deviceCount }
                // One descriptor per connection (MQTTTransport makes clients without libmosquitto's wake-up
                // socket pairs), plus room for everything else.
                let needed = clientCount + 1024
                let limit = FileDescriptorLimit.raise(atLeast: needed)
                if limit < clientCount + 64 {
                    throw .invalidOptions("\(clientCount) MQTT connections need about \(needed) file descriptors, and the limit is \(limit); raise the hard limit (ulimit -Hn) or use --mqtt-connections")
                }
                let transport = try MQTTTransport(context: context, fleets: mqttFleets, target: options.mqttTarget ?? "", connections: connections,
                                                  runID: runID, loopCount: options.mqttLoops, logger: logger)
                mqtt = transport
                byKind[kind] = transport
            }
        }
        transportByFleet = fleets.map { fleet in byKind[fleet.transport]! }
        transports = Array(byKind.values)
    }

    struct HeldPoint {
        /// Late points: released once the schedule reaches this simulated time.
        var releaseSeconds: Double
        var point: OutgoingPoint
        var values: [Double]
    }

    /// Runs to the end and returns the summary; writes the manifest when `manifestPath` is given.
    public func run(manifestPath: String? = nil) throws(SimulatorError) -> SimulationSummary {
        try makeTransports()
        var mqttConnected: Int?
        if let mqtt {
            let connected = mqtt.connect(timeoutSeconds: options.mqttConnectTimeoutSeconds)
            mqttConnected = connected
            logger.info("MQTT connections established", metadata: ["connected": "\(connected)", "clients": "\(mqtt.allClients.count)"])
        }
        let startMonotonic = monotonicNow()
        let startWall = wallNow()
        var stream = PointStream(
            fleets: fleets, seed: options.seed,
            schedule: Schedule(fleets: fleets, rate: options.rate, rampSeconds: options.rampSeconds, unpaced: options.unpaced),
            startNanoseconds: startWall)
        var nextStatus = startMonotonic + 1_000_000_000
        var lastStatusPoints = 0
        var points = 0
        var silentSlots = 0
        var values: [Double] = []
        var late = BinaryHeap<HeldPoint> { $0.releaseSeconds < $1.releaseSeconds }
        var simulatedNow = 0.0
        var held: [Int: HeldPoint] = [:]
        var maxBehind: UInt64 = 0
        var lastBehind: UInt64 = 0
        var behindSamples = LatencyRecorder()
        let durationNanoseconds = options.durationSeconds.map { UInt64($0 * 1e9) }
        let pointLimit = options.points
        let deviceOffsets = fleets.indices.map { index in fleets[..<index].reduce(0) { $0 + $1.deviceCount } }

        func status(_ now: UInt64) {
            guard now >= nextStatus, let onStatus else { return }
            let elapsed = Double(now - startMonotonic) / 1e9
            let totals = ledger.currentTotals
            let rate = Double(points - lastStatusPoints) / (1 + Double(now - nextStatus) / 1e9)
            lastStatusPoints = points
            nextStatus = now + 1_000_000_000
            onStatus(String(format: "%6.1fs  rate %8.0f/s  points %d  sent %d  acked %d  failed %d  errors %d  behind %.1f ms",
                            elapsed, rate, points, totals.sent, totals.acked, totals.failed, context.errors.load(ordering: .relaxed), Double(lastBehind) / 1e6))
        }
        context.keepAlive = { [context] in
            status(monotonicNow())
            return !context.stopRequested.load(ordering: .relaxed)
        }

        func emit(_ point: OutgoingPoint, values: [Double]) {
            transportByFleet[point.fleet].send(point, values: values)
        }

        var generating = true
        var checkCounter = 0
        while true {
            var now = monotonicNow()
            if context.stopRequested.load(ordering: .relaxed) { break }
            // Everything due by now.
            var produced = 0
            while generating {
                let due = startMonotonic + UInt64(stream.nextDueSeconds() * 1e9)
                if let durationNanoseconds, due - startMonotonic >= durationNanoseconds && !options.unpaced {
                    generating = false
                    break
                }
                if options.unpaced, let durationNanoseconds, now - startMonotonic >= durationNanoseconds {
                    generating = false
                    break
                }
                if let pointLimit, Int64(points) >= pointLimit {
                    generating = false
                    break
                }
                guard due <= now else { break }
                let generated = stream.next(values: &values)
                let slot = generated.slot
                let sample = generated.sample
                simulatedNow = slot.simulatedSeconds
                guard let seq = sample.seq else {
                    silentSlots += 1
                    continue
                }
                points += 1
                let behind = options.unpaced ? 0 : now - due
                lastBehind = behind
                if behind > maxBehind { maxBehind = behind }
                if points & 63 == 0 { behindSamples.record(nanoseconds: behind) }
                let point = OutgoingPoint(fleet: slot.fleet, device: slot.device, seq: seq, timestampNanoseconds: generated.timestampNanoseconds)
                let key = deviceOffsets[slot.fleet] + slot.device
                if sample.late, late.count < options.lateQueueMax {
                    // Late in simulated time, so the delay scales with --rate like everything else.
                    late.push(HeldPoint(releaseSeconds: slot.simulatedSeconds + fleets[slot.fleet].delivery.lateDelaySeconds, point: point, values: values))
                    ledger.countLate(fleet: slot.fleet, device: slot.device)
                } else if sample.holdBack, held[key] == nil {
                    held[key] = HeldPoint(releaseSeconds: 0, point: point, values: values)
                    ledger.countReordered(fleet: slot.fleet, device: slot.device)
                } else {
                    emit(point, values: values)
                    if !held.isEmpty, let previous = held.removeValue(forKey: key) { emit(previous.point, values: previous.values) }
                }
                if let variant = sample.malformedVariant {
                    transportByFleet[slot.fleet].sendMalformed(fleet: slot.fleet, device: slot.device, variant: variant)
                }
                produced += 1
                checkCounter += 1
                if checkCounter & 1023 == 0 {
                    now = monotonicNow()
                    status(now)
                    if context.stopRequested.load(ordering: .relaxed) { break }
                    if produced >= 100_000 { break }
                }
            }
            while let next = late.peek(), next.releaseSeconds <= simulatedNow || !generating {
                let item = late.pop()!
                emit(item.point, values: item.values)
            }
            now = monotonicNow()
            for transport in transports { transport.service(now: now) }
            status(now)
            if !generating && late.isEmpty { break }
            if produced == 0 {
                // Sleep until the next slot (or a late point) is due, at most 20 ms to keep the status alive.
                var wake = now + 20_000_000
                if generating { wake = min(wake, startMonotonic + UInt64(stream.nextDueSeconds() * 1e9)) }
                if wake > now + 50_000 { usleep(UInt32(min(20_000, (wake - now) / 1000))) }
            }
        }
        let interrupted = context.stopRequested.load(ordering: .relaxed)
        // Held-back points go out now; late points still waiting too (they are late in any case).
        for (_, item) in held.sorted(by: { $0.key < $1.key }) { emit(item.point, values: item.values) }
        while let item = late.pop() { emit(item.point, values: item.values) }
        let finishedGenerating = monotonicNow()
        let deadline = monotonicNow() + UInt64(options.drainSeconds * 1e9)
        for transport in transports { transport.finish(deadline: deadline) }
        let endWall = wallNow()

        let totals = ledger.currentTotals
        let ackLatency: LatencyRecorder? = mqtt?.latencies.withLock { $0 } ?? transports.compactMap { ($0 as? HTTPTransport)?.latencies.withLock { $0 } }.first
        var summary = SimulationSummary(
            run: runID, seed: options.seed, fleets: fleets.map(\.name), devices: fleets.reduce(0) { $0 + $1.deviceCount },
            elapsedSeconds: Double(finishedGenerating - startMonotonic) / 1e9, points: points, sent: totals.sent, acknowledged: totals.acked,
            failed: totals.failed, malformed: totals.malformed, silentSlots: silentSlots, errors: context.errors.load(ordering: .relaxed),
            scheduledRate: options.unpaced ? .infinity : stream.schedule.fullRate,
            maxBehindMilliseconds: Double(maxBehind) / 1e6, p99BehindMilliseconds: behindSamples.percentile(0.99) ?? 0,
            finalBehindMilliseconds: Double(lastBehind) / 1e6,
            ackLatencyP50Milliseconds: ackLatency?.percentile(0.5), ackLatencyP99Milliseconds: ackLatency?.percentile(0.99),
            mqttConnected: mqttConnected, interrupted: interrupted, transports: transports.map(\.report), manifestPath: manifestPath)
        if let manifestPath {
            try manifest(startWall: startWall, endWall: endWall, stream: stream).write(to: manifestPath)
        }
        summary.manifestPath = manifestPath
        return summary
    }

    /// The manifest of the run so far: the ledger plus every device's anomalies with their times.
    func manifest(startWall: Int64, endWall: Int64, stream: PointStream) -> Manifest {
        let schedule = stream.schedule
        let devices = stream.devices
        let records = ledger.devices()
        var entries: [Manifest.Device] = []
        for (fleetIndex, fleet) in fleets.enumerated() {
            for deviceIndex in 0..<fleet.deviceCount {
                var record = records[fleetIndex][deviceIndex]
                record.anomalies = devices[fleetIndex][deviceIndex].anomalies.map { outcome in
                    let anomaly = outcome.anomaly
                    let end = anomaly.endSeconds.isFinite ? anomaly.endSeconds : nil
                    return Manifest.Anomaly(
                        kind: anomaly.kind.rawValue, sensor: anomaly.sensor, startSeconds: anomaly.startSeconds, endSeconds: end,
                        startNanoseconds: startWall + Int64(schedule.wallSeconds(simulated: anomaly.startSeconds) * 1e9),
                        endNanoseconds: end.map { startWall + Int64(schedule.wallSeconds(simulated: $0) * 1e9) },
                        firstSeq: outcome.firstSeq, lastSeq: outcome.lastSeq,
                        magnitude: anomaly.kind == .step || anomaly.kind == .spike ? anomaly.magnitude : nil,
                        ratePerHour: anomaly.kind == .drift ? anomaly.ratePerHour : nil)
                }
                entries.append(record)
            }
        }
        let infos = fleets.map { fleet in
            Manifest.FleetInfo(name: fleet.name, transport: fleet.transport.rawValue, payload: fleet.payload.rawValue, qos: fleet.qos,
                               acknowledged: fleet.transport == .http || (fleet.transport == .mqtt && fleet.qos == 1))
        }
        return Manifest(run: runID, seed: options.seed, startedAtNanoseconds: startWall, endedAtNanoseconds: endWall, fleets: infos, devices: entries)
    }
}

/// A binary min-heap by `precedes`, for points waiting to be sent late.
struct BinaryHeap<Element> {
    private var storage: [Element] = []
    let precedes: (Element, Element) -> Bool

    init(precedes: @escaping (Element, Element) -> Bool) { self.precedes = precedes }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }
    func peek() -> Element? { storage.first }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(storage[child], storage[parent]) else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !storage.isEmpty else { return nil }
        storage.swapAt(0, storage.count - 1)
        let top = storage.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var best = parent
            if left < storage.count && precedes(storage[left], storage[best]) { best = left }
            if right < storage.count && precedes(storage[right], storage[best]) { best = right }
            if best == parent { break }
            storage.swapAt(parent, best)
            parent = best
        }
        return top
    }
}

/// RLIMIT_NOFILE: 10,000 MQTT connections need ~30,000 descriptors, more than the usual soft limit.
public enum FileDescriptorLimit {
    /// Raises the soft limit to at least `needed` (up to the hard limit; as root, the hard limit too, up
    /// to the kernel's nr_open). Returns the soft limit in force afterwards.
    @discardableResult
    public static func raise(atLeast needed: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let wanted = rlim_t(needed)
        if limit.rlim_cur >= wanted { return Int(limit.rlim_cur) }
        if limit.rlim_max < wanted {
            var raised = limit
            raised.rlim_max = wanted
            raised.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return needed }
        }
        limit.rlim_cur = min(wanted, limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Int(limit.rlim_cur)
    }
}
