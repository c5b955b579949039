import ArgumentParser
import Foundation
import Logging
import OutpostSimulator

#if canImport(Glibc)
import Glibc
#endif

/// `outpost simulate`: drive device fleets from devices/*.yaml at a gateway (or any MQTT broker, TCP/UDP
/// line-protocol listener, InfluxDB write endpoint).
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate device fleets (devices/*.yaml) sending telemetry over MQTT, TCP, UDP or HTTP.",
        discussion: """
            Each fleet sends over the protocol its file names; a single target flag sends every fleet there. \
            The schedule is open loop: points fall due on time whatever the target does, and the summary says how \
            far behind schedule the run fell. The same --seed gives the same ids, values, sequence numbers and \
            anomalies; only timestamps follow the clock. --manifest FILE records, per device, the sequence numbers \
            sent and acknowledged (MQTT QoS 1 PUBACK, HTTP 204) and the injected anomalies, for `outpost verify`. \
            Ctrl-C ends the run early and still writes the manifest. Fleet file schema: devices/README.md.
            """)

    @Argument(help: "Fleet files or directories of them (default: devices/).")
    var fleets: [String] = []

    @Option(help: "Seed: the same seed gives the same devices, values, sequence numbers and anomalies.")
    var seed: UInt64 = 1

    @Option(help: "Points per second over all fleets, or 'max' for no pacing. Default: each fleet's own interval.")
    var rate: String?

    @Option(help: "Run time, e.g. 30s, 5m.")
    var duration: String?

    @Option(help: "Stop after this many points.")
    var points: Int64?

    @Option(name: .customLong("ramp-up"), help: "Grow the rate linearly from zero over this time, e.g. 10s.")
    var rampUp: String?

    @Option(help: "MQTT broker HOST:PORT.")
    var mqtt: String?

    @Option(help: "TCP line-protocol listener HOST:PORT.")
    var tcp: String?

    @Option(help: "UDP line-protocol listener HOST:PORT.")
    var udp: String?

    @Option(help: "InfluxDB write endpoint, e.g. http://127.0.0.1:8086 or http://HOST:PORT/write.")
    var http: String?

    @Option(name: .customLong("protocol"), help: "Send every fleet over this protocol: mqtt, tcp, udp, http.")
    var transport: String?

    @Option(help: "Payload style for every fleet: line, json, plain (plain: MQTT only).")
    var payload: String?

    @Option(help: "MQTT QoS for every fleet: 0 or 1.")
    var qos: Int?

    @Option(help: "Devices per fleet (overrides the files).")
    var devices: Int?

    @Option(help: "Sampling interval of every fleet (overrides the files), e.g. 1s.")
    var interval: String?

    @Option(name: .customLong("mqtt-connections"), help: "Multiplex the devices over this many MQTT connections (default: one per device).")
    var mqttConnections: Int?

    @Option(name: .customLong("mqtt-threads"), help: "Network threads shared by the MQTT connections.")
    var mqttThreads: Int = 2

    @Option(name: .customLong("http-connections"), help: "Concurrent HTTP connections.")
    var httpConnections: Int = 2

    @Option(name: .customLong("http-batch"), help: "Points per HTTP request.")
    var httpBatch: Int = 1000

    @Option(name: .customLong("udp-datagram-bytes"), help: "Largest UDP datagram (several points each).")
    var udpDatagramBytes: Int = 1400

    @Flag(help: "Resend what was not sent or acknowledged (default: never resend; failures are only counted).")
    var retry = false

    @Option(help: "Write the manifest (per-device sequence numbers and anomalies) to this file.")
    var manifest: String?

    @Option(name: .customLong("run-id"), help: "Name of this run (default: derived from seed and time).")
    var runID: String?

    @Flag(name: .customLong("tag-run"), help: "Add a `run` tag with the run id to every point.")
    var tagRun = false

    @Option(help: "How long the end of the run waits for outstanding acknowledgements, e.g. 10s.")
    var drain: String = "10s"

    @Flag(help: "Print the summary as JSON on stdout.")
    var json = false

    @Flag(help: "No live status line.")
    var quiet = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    func validate() throws {
        if let rate, rate != "max", !(Double(rate).map { $0 > 0 } ?? false) { throw ValidationError("--rate must be a positive number or 'max'") }
        if let duration, DurationText.seconds(duration) == nil { throw ValidationError("--duration wants a duration such as 30s or 5m") }
        if let rampUp, DurationText.seconds(rampUp) == nil { throw ValidationError("--ramp-up wants a duration such as 10s") }
        if let interval, !(DurationText.seconds(interval).map { $0 > 0 } ?? false) { throw ValidationError("--interval wants a positive duration") }
        if DurationText.seconds(drain) == nil { throw ValidationError("--drain wants a duration such as 10s") }
        if let transport, TransportKind(rawValue: transport) == nil { throw ValidationError("--protocol must be mqtt, tcp, udp or http") }
        if let payload, PayloadStyle(rawValue: payload) == nil { throw ValidationError("--payload must be line, json or plain") }
        if let qos, !(0...1).contains(qos) { throw ValidationError("--qos must be 0 or 1") }
        if let points, points < 1 { throw ValidationError("--points must be at least 1") }
        if let mqttConnections, mqttConnections < 1 { throw ValidationError("--mqtt-connections must be at least 1") }
        guard (1...64).contains(mqttThreads), (1...256).contains(httpConnections), httpBatch >= 1, (64...65_000).contains(udpDatagramBytes) else {
            throw ValidationError("--mqtt-threads 1...64, --http-connections 1...256, --http-batch ≥ 1, --udp-datagram-bytes 64...65000")
        }
        if mqtt == nil && tcp == nil && udp == nil && http == nil { throw ValidationError("give at least one target: --mqtt, --tcp, --udp or --http") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var options = SimulationOptions()
        options.seed = seed
        if rate == "max" { options.unpaced = true } else { options.rate = rate.flatMap(Double.init) }
        options.durationSeconds = duration.flatMap(DurationText.seconds)
        options.points = points
        options.rampSeconds = rampUp.flatMap(DurationText.seconds) ?? 0
        options.mqttTarget = mqtt
        options.tcpTarget = tcp
        options.udpTarget = udp
        options.httpTarget = http
        options.transport = transport.flatMap(TransportKind.init(rawValue:))
        options.payload = payload.flatMap(PayloadStyle.init(rawValue:))
        options.qos = qos
        options.deviceCount = devices
        options.intervalSeconds = interval.flatMap(DurationText.seconds)
        options.mqttConnections = mqttConnections
        options.mqttLoops = mqttThreads
        options.httpConnections = httpConnections
        options.httpBatchPoints = httpBatch
        options.udpDatagramBytes = udpDatagramBytes
        options.retry = retry
        options.runID = runID
        options.tagRun = tagRun
        options.drainSeconds = DurationText.seconds(drain) ?? 10
        if options.durationSeconds == nil && options.points == nil {
            Output.error("no --duration or --points: running until interrupted (Ctrl-C)")
        }

        do {
            let fleetList = try loadFleets()
            let runner = try SimulationRunner(fleets: fleetList, options: options)
            let interactive = !quiet && isatty(2) == 1
            if interactive {
                runner.onStatus = { line in Output.errorRaw("\r" + line + "\u{1B}[K") }
            }
            // Ctrl-C and SIGTERM end the run gracefully: drain, summary, manifest.
            signal(SIGINT, SIG_IGN)
            signal(SIGTERM, SIG_IGN)
            let signalSources = [SIGINT, SIGTERM].map { number in
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { runner.requestStop() }
                source.resume()
                return source
            }
            defer { signalSources.forEach { $0.cancel() } }
            let summary = try runner.run(manifestPath: manifest)
            if interactive { Output.errorRaw("\n") }
            if json {
                Output.line(summary.json())
            } else {
                Output.error(summary.text())
            }
        } catch {
            Output.error("outpost simulate: \(error)")
            throw ExitCode(2)
        }
    }

    func loadFleets() throws(SimulatorError) -> [Fleet] {
        let paths = fleets.isEmpty ? ["devices"] : fleets
        var loaded: [Fleet] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw .io(path: path, reason: "no such file or directory")
            }
            if isDirectory.boolValue {
                loaded += try FleetLoader.loadDirectory(path)
            } else {
                loaded.append(try FleetLoader.load(path: path))
            }
        }
        return loaded
    }
}

extension Output {
    /// Writes to stderr without a newline (for the status line).
    static func errorRaw(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var written = 0
            while written < buffer.count {
                let count = Glibc.write(2, buffer.baseAddress! + written, buffer.count - written)
                if count <= 0 { return }
                written += count
            }
        }
    }
}
