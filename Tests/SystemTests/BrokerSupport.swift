import Foundation
import Testing

/// An `outpost broker` child process on a loopback port, stopped by PID.
final class BrokerProcess: @unchecked Sendable {
    let process: Process
    let dataDirectory: String
    let port: Int
    let metricsPort: Int?
    private let errorLog: String

    var bootstrap: String { "127.0.0.1:\(port)" }
    var pid: Int32 { process.processIdentifier }

    /// Starts `outpost broker` with its data in `dataDirectory`, listening on `port` (0: a free one, read
    /// back from the ready line), with `topics` as NAME:PARTITIONS.
    static func start(dataDirectory: String, port: Int = 0, topics: [String] = [], arguments: [String] = []) throws -> BrokerProcess {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = TestEnvironment.outpostBinary
        process.arguments = [
            "broker", "--data-dir", dataDirectory, "--listen", "127.0.0.1:\(port)", "--metrics", "127.0.0.1:0", "--log-level", "notice",
        ] + topics.flatMap { ["--topic", $0] } + arguments
        let output = Pipe()
        process.standardOutput = output
        let errorLog = dataDirectory + "/broker-\(UUID().uuidString.prefix(6)).stderr"
        _ = FileManager.default.createFile(atPath: errorLog, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errorLog)
        try process.run()
        // The ready line: "outpost broker ready kafka=P metrics=P advertised=H:P".
        let handle = output.fileHandleForReading
        var text = ""
        while !text.contains("\n") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }  // the process exited
            text += String(decoding: chunk, as: UTF8.self)
        }
        var fields: [String: String] = [:]
        for field in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = field.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        guard text.hasPrefix("outpost broker ready"), let kafka = fields["kafka"].flatMap({ Int($0) }) else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let stderr = (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? ""
            throw BrokerProcessError(message: "broker did not start: \(text) \(stderr)")
        }
        return BrokerProcess(process: process, dataDirectory: dataDirectory, port: kafka, metricsPort: fields["metrics"].flatMap { Int($0) }, errorLog: errorLog)
    }

    private init(process: Process, dataDirectory: String, port: Int, metricsPort: Int?, errorLog: String) {
        self.process = process
        self.dataDirectory = dataDirectory
        self.port = port
        self.metricsPort = metricsPort
        self.errorLog = errorLog
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        // A shutdown that hangs is a failure to report, not a reason for the suite to hang.
        guard waitUntil(seconds: 30, interval: 0.01, { !process.isRunning }) else {
            kill9()
            return -SIGKILL
        }
        return process.terminationStatus
    }

    func kill9() {
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// The same broker again: same data directory, same port (clients reconnect to their bootstrap).
    func restart(arguments: [String] = []) throws -> BrokerProcess {
        if process.isRunning { stop() }
        return try BrokerProcess.start(dataDirectory: dataDirectory, port: port, arguments: arguments)
    }

    var stderrText: String { (try? String(contentsOfFile: errorLog, encoding: .utf8)) ?? "" }

    /// The /metrics text (through curl).
    func metricsText() throws -> String {
        guard let metricsPort, let curl = which("curl") else { return "" }
        return try runProcess(curl, ["-s", "http://127.0.0.1:\(metricsPort)/metrics"]).stdoutText
    }

    /// The value of one sample (`name{labels}` exactly as printed) on /metrics.
    func metric(_ sample: String) throws -> Double? {
        for line in try metricsText().split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, parts[0] == sample { return Double(parts[1]) }
        }
        return nil
    }

    deinit {
        if process.isRunning { kill9() }
    }
}

struct BrokerProcessError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Helpers for running the interop scripts and tools against a broker.
enum Interop {
    static let scripts = TestEnvironment.packageRoot.appendingPathComponent("Tests/Interop")

    static func kcat() throws -> String {
        guard let kcat = which("kcat") else {
            Issue.record("kcat is not on PATH; scripts/install-deps installs it")
            throw CancellationError()
        }
        return kcat
    }

    /// Runs `Tests/Interop/<script>` and decodes its last stdout line as JSON.
    static func python<Output: Decodable>(_ script: String, _ arguments: [String], as _: Output.Type) throws -> Output {
        let result = try runProcess(try python3(), [scripts.appendingPathComponent(script).path] + arguments)
        if result.status == 3 { Issue.record("a Python Kafka client is missing: \(result.stderr)") }
        try #require(result.status == 0, "\(script) \(arguments) failed (\(result.status)): \(result.stderr.suffix(4000))")
        let lastLine = result.stdoutText.split(separator: "\n").last.map(String.init) ?? ""
        return try JSONDecoder().decode(Output.self, from: Data(lastLine.utf8))
    }
}
