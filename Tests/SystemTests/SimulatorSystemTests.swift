import Foundation
import OutpostCore
import OutpostLog
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `outpost simulate` and `outpost verify` as processes, against real mosquitto and local sinks.
@Suite(.serialized)
struct SimulatorSystemTests {
    var outpost: String { TestEnvironment.outpostBinary.path }
    var devices: String { TestEnvironment.packageRoot.appendingPathComponent("devices").path }

    func simulate(_ arguments: [String]) throws -> (result: ProcessResult, summary: [String: Any]) {
        let result = try runProcess(outpost, ["simulate"] + arguments + ["--json", "--quiet"])
        #expect(result.status == 0, "simulate failed: \(result.stderr)")
        let summary = (try? JSONSerialization.jsonObject(with: result.stdout)) as? [String: Any] ?? [:]
        return (result, summary)
    }

    /// (device, seq) pairs a sink received, from line protocol or JSON readings; malformed lines skipped.
    func sequenceNumbers(in lines: [String]) -> [String: [Int64]] {
        let parser = LineProtocolParser()
        let json = JSONReadingParser()
        var result: [String: [Int64]] = [:]
        for line in lines where !line.isEmpty {
            let point: Point?
            if line.hasPrefix("{") {
                if case .success(let parsed)? = json.parse(document: Array(line.utf8), receivedAtNanoseconds: 0).first { point = parsed } else { point = nil }
            } else {
                point = try? parser.parsePoint(line)
            }
            guard let point, let device = point.tag("device"), case .int(let seq)? = point.field("seq") else { continue }
            result[device, default: []].append(seq)
        }
        return result
    }

    func manifestDevices(_ path: String) throws -> [String: [String: Any]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
        var devices: [String: [String: Any]] = [:]
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            devices[object["device"] as? String ?? ""] = object
        }
        return devices
    }

    func expand(_ ranges: String) -> [Int64] {
        ranges.split(separator: ",").flatMap { part -> [Int64] in
            let bounds = part.split(separator: "-").compactMap { Int64($0) }
            return bounds.count == 2 ? Array(bounds[0]...bounds[1]) : bounds
        }
    }

    // MARK: MQTT

    @Test func simulateOverMQTTIntoMosquittoReachesACountingSubscriber() throws {
        let broker = try MosquittoProcess(extraConfiguration: "max_queued_messages 100000")
        let scratch = try TestEnvironment.temporaryDirectory()
        let received = scratch.appendingPathComponent("sub.out").path
        let subscriber = try spawnWithCleanSignals("/usr/bin/stdbuf", ["-oL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "telemetry/#", "-q", "1", "-v", "-d", "-i", "counter"], outputPath: received)
        defer { terminate(subscriber) }
        #expect(waitUntil(seconds: 10) { ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").contains("SUBACK") })

        let manifest = scratch.appendingPathComponent("manifest.jsonl").path
        let (_, summary) = try simulate(["\(devices)/greenhouse.yaml", "--mqtt", "127.0.0.1:\(broker.port)", "--points", "400", "--rate", "400",
                                         "--seed", "11", "--manifest", manifest])
        #expect(summary["points"] as? Int == 400)
        #expect(summary["acknowledged"] as? Int == 400)
        #expect(summary["mqtt_connected"] as? Int == 40)

        // QoS 1 from 40 device connections: every acknowledged point reaches the subscriber.
        var seen: [String: [Int64]] = [:]
        #expect(waitUntil(seconds: 15) {
            let lines = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
                .filter { $0.hasPrefix("telemetry/greenhouse/") }.map { String($0.split(separator: " ", maxSplits: 1).last ?? "") }
            seen = sequenceNumbers(in: lines)
            return seen.values.reduce(0) { $0 + $1.count } >= 400
        })
        let expected = try manifestDevices(manifest)
        #expect(expected.count == 40)
        for (device, entry) in expected {
            #expect(seen[device, default: []].sorted() == expand(entry["acked"] as? String ?? ""), "device \(device)")
        }
    }

    @Test func multiplexedPlainValuesOverFewConnections() throws {
        let broker = try MosquittoProcess(extraConfiguration: "max_queued_messages 100000")
        let scratch = try TestEnvironment.temporaryDirectory()
        let received = scratch.appendingPathComponent("sub.out").path
        let subscriber = try spawnWithCleanSignals("/usr/bin/stdbuf", ["-oL", "/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", "\(broker.port)", "-t", "sensors/+/seq", "-q", "1", "-v", "-d"], outputPath: received)
        defer { terminate(subscriber) }
        #expect(waitUntil(seconds: 10) { ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").contains("SUBACK") })
        let (_, summary) = try simulate(["\(devices)/greenhouse.yaml", "--mqtt", "127.0.0.1:\(broker.port)", "--payload", "plain", "--devices", "10",
                                         "--mqtt-connections", "3", "--points", "300", "--rate", "1000"])
        #expect(summary["acknowledged"] as? Int == 300)
        #expect(summary["mqtt_connected"] as? Int == 3)
        #expect(waitUntil(seconds: 15) {
            ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.hasPrefix("sensors/") }.count >= 300
        })
        let lines = try String(contentsOfFile: received, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("sensors/") }
        let pairs = Set(lines.map { String($0) })
        #expect(pairs.count == 300)  // "sensors/gh-0003/seq 7": each once
    }

    // MARK: TCP, UDP, HTTP

    @Test func simulateOverTCPDeliversEverySequenceNumberOnce() throws {
        let sink = try LineSink(kind: .tcp)
        let scratch = try TestEnvironment.temporaryDirectory()
        let manifest = scratch.appendingPathComponent("manifest.jsonl").path
        let (_, summary) = try simulate(["\(devices)/factory.yaml", "--tcp", "127.0.0.1:\(sink.port)", "--points", "4000", "--rate", "4000", "--manifest", manifest])
        #expect(summary["sent"] as? Int == 4000)
        #expect(summary["failed"] as? Int == 0)
        #expect(waitUntil(seconds: 10) { sequenceNumbers(in: sink.lines).values.reduce(0) { $0 + $1.count } >= 4000 })
        let seen = sequenceNumbers(in: sink.lines)
        #expect(seen.count == 8)
        for (device, entry) in try manifestDevices(manifest) {
            #expect(seen[device, default: []].sorted() == expand(entry["sent"] as? String ?? ""), "device \(device)")
        }
    }

    @Test func simulateOverUDPPacksPointsIntoDatagrams() throws {
        let sink = try LineSink(kind: .udp)
        let (_, summary) = try simulate(["\(devices)/factory.yaml", "--udp", "127.0.0.1:\(sink.port)", "--points", "2000", "--rate", "2000"])
        #expect(summary["sent"] as? Int == 2000)
        #expect(waitUntil(seconds: 10) { sequenceNumbers(in: sink.lines).values.reduce(0) { $0 + $1.count } >= 2000 })
        #expect(sink.datagrams < 500)  // ~100-byte points, 1,400-byte datagrams
        let seen = sequenceNumbers(in: sink.lines)
        #expect(seen.values.allSatisfy { Set($0).count == $0.count })
    }

    @Test func httpAcknowledgementsFollowTheStatusCodes() throws {
        // Every third request is refused with 503: without --retry those points are sent but not acknowledged.
        let sink = try LineSink(kind: .http(refuseEvery: 3))
        let scratch = try TestEnvironment.temporaryDirectory()
        let manifest = scratch.appendingPathComponent("manifest.jsonl").path
        let (_, summary) = try simulate(["\(devices)/cold-chain.yaml", "--http", "http://127.0.0.1:\(sink.port)", "--points", "3000", "--rate", "3000",
                                         "--http-batch", "100", "--http-connections", "1", "--manifest", manifest])
        let acknowledged = try #require(summary["acknowledged"] as? Int)
        #expect(summary["sent"] as? Int == 3000)
        #expect(acknowledged > 1500 && acknowledged < 3000)
        let stored = sequenceNumbers(in: sink.lines)
        var ackedInManifest = 0
        for (device, entry) in try manifestDevices(manifest) {
            let acked = expand(entry["acked"] as? String ?? "")
            ackedInManifest += acked.count
            #expect(Set(acked).isSubset(of: Set(stored[device, default: []])), "acknowledged points of \(device) were all answered 204")
        }
        #expect(ackedInManifest == acknowledged)

        // With --retry, refused batches go again until the sink takes them.
        let retried = try LineSink(kind: .http(refuseEvery: 3))
        let (_, again) = try simulate(["\(devices)/cold-chain.yaml", "--http", "http://127.0.0.1:\(retried.port)/api/v2/write", "--points", "1000", "--rate", "2000",
                                       "--http-batch", "100", "--retry"])
        #expect(again["acknowledged"] as? Int == 1000)
    }

    @Test func keepsGoingWhileTheTargetIsDownAndCountsTheFailures() throws {
        let port = try freeLoopbackPort()
        let scratch = try TestEnvironment.temporaryDirectory()
        let manifest = scratch.appendingPathComponent("manifest.jsonl").path
        let output = scratch.appendingPathComponent("summary.json").path
        // Driven by what the simulator reports, not by the clock (a loaded machine starts it late and
        // stalls it): the target comes up once the run has counted failures, and the run is ended (SIGTERM,
        // which drains and writes the summary and manifest) once it has counted sends as well. The duration
        // only bounds a run the test lost track of.
        let run = try SimulatorStatusFollower(outpost, [
            "simulate", "\(devices)/factory.yaml", "--tcp", "127.0.0.1:\(port)", "--duration", "300s", "--rate", "200",
            "--manifest", manifest, "--json",
        ], outputPath: output)
        defer { run.stop() }
        #expect(waitUntil(seconds: 60, interval: 0.05) { run.totals.failed > 50 }, "status: \(run.lastStatus)")
        let sink = try LineSink(kind: .tcp, port: port)
        #expect(waitUntil(seconds: 60, interval: 0.05) { run.totals.sent > 100 }, "status: \(run.lastStatus)")
        #expect(run.stop() == 0)
        let summary = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output)))) as? [String: Any] ?? [:]
        let failed = try #require(summary["failed"] as? Int)
        let sent = try #require(summary["sent"] as? Int)
        #expect(failed > 50 && sent > 100)
        #expect(failed + sent == summary["points"] as? Int)
        let devices = try manifestDevices(manifest)
        #expect(devices.values.allSatisfy { !($0["failed"] as? String ?? "").isEmpty && !($0["sent"] as? String ?? "").isEmpty })
        _ = sink
    }

    // MARK: verify

    @Test func verifyPassesOnACompleteLogAndCatchesADeletedAndADuplicatedRecord() throws {
        let sink = try LineSink(kind: .tcp)
        let scratch = try TestEnvironment.temporaryDirectory()
        let manifest = scratch.appendingPathComponent("manifest.jsonl").path
        _ = try simulate(["\(devices)/factory.yaml", "--tcp", "127.0.0.1:\(sink.port)", "--points", "1600", "--rate", "4000", "--manifest", manifest, "--seed", "3"])
        #expect(waitUntil(seconds: 10) { sequenceNumbers(in: sink.lines).values.reduce(0) { $0 + $1.count } >= 1600 })
        let good = sink.lines.filter { (try? LineProtocolParser().parsePoint($0)) != nil }
        #expect(good.count == 1600)

        func log(_ lines: [String], _ name: String) throws -> String {
            let directory = scratch.appendingPathComponent(name).path
            let appended = try runProcess(outpost, ["log", "append", "--dir", directory, "--partitions", "3"], stdin: Data((lines.joined(separator: "\n") + "\n").utf8))
            #expect(appended.status == 0, "\(appended.stderr)")
            return directory
        }
        let intact = try runProcess(outpost, ["verify", "--manifest", manifest, "--log", try log(good, "intact"), "--require-all-sent"])
        #expect(intact.status == 0, "\(intact.stdoutText)")
        #expect(intact.stdoutText.hasSuffix("PASS\n"))

        let deleted = good.firstIndex { $0.contains("device=press-02") && $0.contains("seq=100i") }!
        let duplicated = good.firstIndex { $0.contains("device=press-05") && $0.contains("seq=7i") }!
        var damaged = good
        damaged.append(good[duplicated])
        damaged.remove(at: deleted)
        let caught = try runProcess(outpost, ["verify", "--manifest", manifest, "--log", try log(damaged, "damaged"), "--require-all-sent"])
        #expect(caught.status == 1)
        #expect(caught.stdoutText.contains("press-02 (factory)") && caught.stdoutText.contains("missing unacknowledged 1 [100]"))
        #expect(caught.stdoutText.contains("press-05 (factory)") && caught.stdoutText.contains("DUPLICATED 1 [7]"))
        let json = try runProcess(outpost, ["verify", "--manifest", manifest, "--log", scratch.appendingPathComponent("damaged").path, "--json"])
        #expect(json.status == 1)  // a duplicate fails even when only acknowledged sends are required
        #expect(json.stdoutText.contains("\"duplicated\":1"))

        let unreadable = try runProcess(outpost, ["verify", "--manifest", "/nonexistent", "--log", scratch.path])
        #expect(unreadable.status == 2)
    }
}

/// A local receiver standing in for the gateway: TCP or UDP line protocol, or an InfluxDB-style HTTP write
/// endpoint that answers 204 (and 503 to every n-th request). Keeps every line it was sent.
final class LineSink: @unchecked Sendable {
    enum Kind {
        case tcp
        case udp
        case http(refuseEvery: Int)
    }

    let port: Int
    let kind: Kind
    private let descriptor: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var datagramCount = 0
    private var requestCount = 0
    private var running = true

    init(kind: Kind, port requested: Int = 0) throws {
        self.kind = kind
        let datagram: Bool
        if case .udp = kind { datagram = true } else { datagram = false }
        let descriptor = socket(AF_INET, datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var size: Int32 = 16 << 20
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: requested)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound, datagram || listen(descriptor, 16) == 0 else { throw SimulatorSystemTestError("sink bind failed") }
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in datagram ? receiveDatagrams() : acceptConnections() }
        thread.start()
    }

    deinit {
        lock.lock()
        running = false
        lock.unlock()
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    var datagrams: Int {
        lock.lock()
        defer { lock.unlock() }
        return datagramCount
    }

    private func store(_ bytes: ArraySlice<UInt8>) {
        let lines = bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }
        lock.lock()
        received += lines
        lock.unlock()
    }

    private func receiveDatagrams() {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { return }
            lock.lock()
            datagramCount += 1
            lock.unlock()
            store(buffer[0..<count])
        }
    }

    private func acceptConnections() {
        while true {
            let connection = accept(descriptor, nil, nil)
            guard connection >= 0 else { return }
            let thread = Thread { [self] in
                if case .http(let refuseEvery) = kind { serveHTTP(connection, refuseEvery: refuseEvery) } else { serveLines(connection) }
                close(connection)
            }
            thread.start()
        }
    }

    private func serveLines(_ connection: Int32) {
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            pending += buffer[0..<count]
            if let last = pending.lastIndex(of: UInt8(ascii: "\n")) {
                store(pending[...last])
                pending.removeSubrange(...last)
            }
        }
        if !pending.isEmpty { store(pending[...]) }
    }

    private func serveHTTP(_ connection: Int32, refuseEvery: Int) {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            // Headers.
            var headerEnd: Int?
            while headerEnd == nil {
                if let end = data.firstRange(of: [13, 10, 13, 10]) {
                    headerEnd = end.upperBound
                    break
                }
                let count = recv(connection, &buffer, buffer.count, 0)
                guard count > 0 else { return }
                data += buffer[0..<count]
            }
            guard let headerEnd else { return }
            let head = String(decoding: data[..<headerEnd], as: UTF8.self).lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
            while data.count < headerEnd + length {
                let count = recv(connection, &buffer, buffer.count, 0)
                guard count > 0 else { return }
                data += buffer[0..<count]
            }
            let body = data[headerEnd..<(headerEnd + length)]
            data.removeSubrange(..<(headerEnd + length))
            lock.lock()
            requestCount += 1
            let refuse = refuseEvery > 0 && requestCount % refuseEvery == 0
            lock.unlock()
            let valid = LineProtocolParser().parse(Array(body)).allSatisfy { if case .point = $0 { true } else { false } }
            let response: String
            if refuse {
                response = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
            } else if !valid {
                response = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            } else {
                store(body)
                response = "HTTP/1.1 204 No Content\r\n\r\n"
            }
            let bytes = Array(response.utf8)
            _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}

/// `outpost simulate` with standard error on a pseudo-terminal, where it prints its live status line (about
/// once a second, only on a terminal): the run's sent and failed totals as the simulator counts them.
/// Standard output (the `--json` summary) goes to `outputPath`. Stopped by PID.
final class SimulatorStatusFollower: @unchecked Sendable {
    let pid: pid_t
    private let terminal: Int32
    private let lock = NSLock()
    private var latest = ""
    private var counted: (sent: Int, failed: Int) = (0, 0)
    private var exitStatus: Int32?

    init(_ path: String, _ arguments: [String], outputPath: String) throws {
        // glibc has the pseudo-terminal calls, but Swift's Glibc module leaves them out (they need _XOPEN_SOURCE).
        typealias OnDescriptor = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32
        func libc<F>(_ symbol: String, _: F.Type) -> F? { dlsym(nil, symbol).map { unsafeBitCast($0, to: F.self) } }
        guard let openTerminal = libc("posix_openpt", OnDescriptor.self), let grant = libc("grantpt", OnDescriptor.self),
            let unlock = libc("unlockpt", OnDescriptor.self), let name = libc("ptsname_r", Name.self)
        else { throw SimulatorSystemTestError("no pseudo-terminal calls in libc") }
        let terminal = openTerminal(O_RDWR | O_NOCTTY)
        var device = [CChar](repeating: 0, count: 256)
        guard terminal >= 0, grant(terminal) == 0, unlock(terminal) == 0, name(terminal, &device, device.count) == 0 else {
            if terminal >= 0 { close(terminal) }
            throw SimulatorSystemTestError("no pseudo-terminal: errno \(errno)")
        }
        self.terminal = terminal
        do {
            pid = try spawnWithCleanSignals(path, arguments, outputPath: outputPath, errorPath: String(decoding: device.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        } catch {
            close(terminal)
            throw error
        }
        // Drains the terminal (a full one would stop the simulator) until the child is gone (EIO).
        Thread { [self] in readStatus() }.start()
    }

    deinit { close(terminal) }

    /// The totals of the latest status line.
    var totals: (sent: Int, failed: Int) {
        lock.lock()
        defer { lock.unlock() }
        return counted
    }

    var lastStatus: String {
        lock.lock()
        defer { lock.unlock() }
        return latest
    }

    private func readStatus() {
        var pending = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(terminal, &buffer, buffer.count)
            guard count > 0 else { return }
            pending += String(decoding: buffer[0..<count], as: UTF8.self)
            // Each status line is "\r<line>\u{1B}[K" (rewritten in place).
            while let end = pending.range(of: "\u{1B}[K") {
                let line = pending[..<end.lowerBound].split(separator: "\r").last.map(String.init) ?? ""
                pending.removeSubrange(..<end.upperBound)
                let words = line.split(separator: " ")
                func value(after key: String) -> Int? {
                    words.firstIndex { $0 == key }.flatMap { $0 + 1 < words.count ? Int(words[$0 + 1]) : nil }
                }
                guard let sent = value(after: "sent"), let failed = value(after: "failed") else { continue }
                lock.lock()
                latest = line
                counted = (sent, failed)
                lock.unlock()
            }
        }
    }

    /// SIGTERM (the simulator drains, prints its summary and writes the manifest) and the exit status;
    /// SIGKILL if it has not exited within 60 s.
    @discardableResult
    func stop() -> Int32 {
        lock.lock()
        if let exitStatus {
            lock.unlock()
            return exitStatus
        }
        lock.unlock()
        kill(pid, SIGTERM)
        var status: Int32 = 0
        if !waitUntil(seconds: 60, interval: 0.05, { waitpid(pid, &status, WNOHANG) == pid }) {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
        lock.lock()
        exitStatus = code
        lock.unlock()
        return code
    }
}
