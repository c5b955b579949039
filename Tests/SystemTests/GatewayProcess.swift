import Foundation
import Testing

/// An `outpost gateway` child process on free loopback ports, stopped by PID.
final class GatewayProcess: @unchecked Sendable {
    let process: Process
    let dataDirectory: String
    let tcpPort: Int?
    let udpPort: Int?
    let httpPort: Int?
    let metricsPort: Int?
    private let errorLog: String

    /// Starts `outpost gateway --config <yaml>` plus `arguments`, and waits for its ready line.
    static func start(dataDirectory: String, yaml: String = "", arguments: [String] = [], mqttPort: Int? = nil) throws -> GatewayProcess {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let configPath = dataDirectory + "/gateway.yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = TestEnvironment.outpostBinary
        process.arguments = [
            "gateway", "--config", configPath, "--data-dir", dataDirectory,
            mqttPort.map { "--mqtt-broker=127.0.0.1:\($0)" } ?? "--no-mqtt",
            "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
            "--log-level", "notice",
        ] + arguments
        let output = Pipe()
        process.standardOutput = output
        let errorLog = dataDirectory + "/gateway-\(UUID().uuidString.prefix(6)).stderr"
        _ = FileManager.default.createFile(atPath: errorLog, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errorLog)
        // A gateway that hangs on stop is sent SIGABRT (see `stop`): Swift's backtracer then writes every
        // thread's stack into the error log, for the failure message.
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=yes,interactive=no,preset=full,registers=none,images=none,output-to=stderr"
        process.environment = environment
        try process.run()
        // The ready line: "outpost gateway ready tcp=P udp=P http=P metrics=P".
        let handle = output.fileHandleForReading
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while !text.contains("\n") && Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard text.hasPrefix("outpost gateway ready") else {
            process.terminate()
            let stderr = (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? ""
            throw GatewayProcessError(message: "gateway did not start: \(text) \(stderr)")
        }
        var ports: [String: Int] = [:]
        for field in text.split(separator: " ") {
            let parts = field.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "=")
            if parts.count == 2 { ports[String(parts[0])] = Int(parts[1]) }
        }
        return GatewayProcess(
            process: process, dataDirectory: dataDirectory, tcpPort: ports["tcp"], udpPort: ports["udp"],
            httpPort: ports["http"], metricsPort: ports["metrics"], errorLog: errorLog)
    }

    private init(process: Process, dataDirectory: String, tcpPort: Int?, udpPort: Int?, httpPort: Int?, metricsPort: Int?, errorLog: String) {
        self.process = process
        self.dataDirectory = dataDirectory
        self.tcpPort = tcpPort
        self.udpPort = udpPort
        self.httpPort = httpPort
        self.metricsPort = metricsPort
        self.errorLog = errorLog
    }

    var pid: Int32 { process.processIdentifier }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        // A shutdown that hangs is a failure to report, not a reason for the suite to hang: abort it so the
        // backtracer records where its threads are (`stderrText`), then kill it.
        guard waitUntil(seconds: 30, interval: 0.01, { !process.isRunning }) else {
            kill(pid, SIGABRT)
            _ = waitUntil(seconds: 30, interval: 0.05, { !process.isRunning })
            kill9()
            return -SIGKILL
        }
        return process.terminationStatus
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Resident set size in KiB, from /proc.
    var residentKilobytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    var stderrText: String { (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "" }

    /// The value of one metric sample from /metrics (`name{labels}` as printed), or nil.
    func metric(_ sample: String) throws -> Double? {
        guard let port = metricsPort else { return nil }
        let response = try HTTPClient.request(port: port, method: "GET", path: "/metrics", body: [])
        for line in response.body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, parts[0] == sample { return Double(parts[1]) }
        }
        return nil
    }

    /// Polls `sample` (a counter: it only grows) until it reaches `value`; false if `seconds` pass first.
    /// The gateway counts what it has taken in, so a test waits on that rather than on a guess at how
    /// long a loaded machine needs.
    func waitForMetric(_ sample: String, atLeast value: Double, seconds: Double = 30) -> Bool {
        waitUntil(seconds: seconds, interval: 0.05) { ((try? metric(sample)) ?? 0) >= value }
    }

    /// Points committed to the local log, over every listener.
    var committedPoints: Double {
        ["mqtt", "tcp", "udp", "http"].reduce(0) { total, listener in
            total + ((try? metric("outpost_gateway_points_committed_total{listener=\"\(listener)\"}")) ?? 0)
        }
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

struct GatewayProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Minimal blocking HTTP/1.1 and TCP clients for system tests.
enum HTTPClient {
    struct Response {
        var status: Int
        var body: String
    }

    static func request(port: Int, method: String, path: String, body: [UInt8], headers: [String: String] = [:], timeoutSeconds: Int = 60) throws -> Response {
        let descriptor = try connectTCP(port: port, timeoutSeconds: timeoutSeconds)
        defer { close(descriptor) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try sendAll(descriptor, Array((request + "\r\n").utf8) + body)
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { break }
            response += chunk[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first else { throw POSIXError(.EBADMSG) }
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return Response(status: status, body: body)
    }

    static func connectTCP(port: Int, timeoutSeconds: Int = 60) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED)
        }
        return descriptor
    }

    static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        try bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                let result = send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard result > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPIPE) }
                sent += result
            }
        }
    }
}
