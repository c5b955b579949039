import Foundation
import OutpostCore
import OutpostLog
import Testing

/// The gateway as users run it: a real `outpost gateway` process, real sockets, signals, kill -9.
@Suite(.serialized) struct GatewaySystemTests {
    static func line(device: String, seq: Int, extra: String = "") -> String {
        "greenhouse,device=\(device),site=north temperature=\(20 + seq % 7).25,seq=\(seq)i\(extra) \(1_732_300_000_000_000_000 + seq * 1_000_000)"
    }

    /// Every record of `topic` in a gateway's data directory (opening the log runs recovery).
    static func records(in directory: String, topic: String = "telemetry", partitions: Int = 3) throws -> [Record] {
        var records: [Record] = []
        for partition in 0..<partitions {
            let log = try PartitionLog.open(directory: LogLayout.partitionDirectory(directory, topic: topic, partition: partition))
            var offset = log.logStartOffset
            while offset < log.logEndOffset {
                let read = try log.read(from: offset, maxBytes: 4 << 20)
                var iterator = RecordBatchIterator(read.bytes)
                while let (_, range) = iterator.next() { records += try RecordBatch.decode(Array(read.bytes[range])).records }
                offset = read.nextOffset
            }
            try log.close()
        }
        return records
    }

    static func seqs(_ records: [Record]) -> [Int] {
        records.compactMap { record in
            guard let value = record.value, let text = String(validating: value, as: UTF8.self),
                let range = text.range(of: "seq=")
            else { return nil }
            return Int(text[range.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test func sigtermFlushesEverythingAndExitsZero() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory)
        let port = try #require(gateway.tcpPort)
        // The connection stays open: its lines are in the gateway's batches, not yet in the log.
        let connection = try HTTPClient.connectTCP(port: port)
        let lines = (0..<5000).map { Self.line(device: "gh-\($0 % 50)", seq: $0) }.joined(separator: "\n") + "\n"
        try HTTPClient.sendAll(connection, Array(lines.utf8))
        // Bytes still unread in the socket at SIGTERM were never accepted: wait until the gateway has parsed
        // every line into its batches (what it counts as received), however long a loaded machine takes.
        let received = "outpost_gateway_points_received_total{listener=\"tcp\"}"
        #expect(gateway.waitForMetric(received, atLeast: 5000))
        #expect(try gateway.metric(received) == 5000)
        #expect(gateway.stop() == 0, "exit status after SIGTERM; stderr: \(gateway.stderrText)")
        close(connection)
        let stored = Self.seqs(try Self.records(in: directory))
        #expect(stored.count == 5000)
        #expect(Set(stored) == Set(0..<5000))
    }

    @Test func killNineNeverLosesAnAcknowledgedHTTPWrite() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SeededRandom(seed: 2026)
        var acknowledged: [Int] = []
        var nextSeq = 0
        let rounds = Int(ProcessInfo.processInfo.environment["OUTPOST_HTTP_KILL_ROUNDS"] ?? "") ?? 8
        for round in 0..<rounds {
            let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: "log: {fsync: interval(5ms)}\n")
            let port = try #require(gateway.httpPort)
            let killAfter = Double(150 + Int(random.next() % 600)) / 1000
            let start = Date()
            let box = AcknowledgedBox()
            let firstSeq = nextSeq
            let writer = Thread {
                var seq = firstSeq
                while Date().timeIntervalSince(start) < killAfter + 1 {
                    let batch = (seq..<(seq + 40)).map { Self.line(device: "http-\($0 % 13)", seq: $0) }.joined(separator: "\n")
                    guard let response = try? HTTPClient.request(port: port, method: "POST", path: "/api/v2/write?precision=ns", body: Array(batch.utf8), timeoutSeconds: 5) else { break }
                    if response.status == 204 { box.add(seq..<(seq + 40)) }
                    seq += 40
                }
                box.finish(next: seq)
            }
            writer.start()
            Thread.sleep(forTimeInterval: killAfter)
            gateway.kill9()
            let (acked, next) = box.wait()
            acknowledged += acked
            nextSeq = next
            #expect(!acked.isEmpty || round > 0, "round \(round) acknowledged nothing before the kill")
        }
        let stored = Set(Self.seqs(try Self.records(in: directory)))
        let missing = acknowledged.filter { !stored.contains($0) }
        #expect(missing.isEmpty, "\(missing.count) acknowledged points missing after kill -9, e.g. \(missing.prefix(5))")
        #expect(acknowledged.count > 0)
    }

    @Test func backPressureStopsReadingTheSocketAndBoundsMemory() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A slow disk (300 ms per fsync) and small bounds: the sender must be pushed back.
        let yaml = """
            log: {fsync: always, unsynced_bytes: 256KiB}
            pipeline: {queue_batches: 4, workers: 1}
            testing: {fsync_delay: 300ms}
            """
        let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: yaml)
        let port = try #require(gateway.tcpPort)
        let connection = try HTTPClient.connectTCP(port: port)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        print("back-pressure test: gateway pid \(gateway.pid)")
        var sentLines = 0
        var blockedSeconds = 0.0
        var peakResident = 0
        var residentSamples: [Int] = []
        var lastSample = Date.distantPast
        let started = Date()
        let duration = 6.0
        var chunkStart = 0
        sending: while Date().timeIntervalSince(started) < duration {
            let chunk = (chunkStart..<(chunkStart + 2000)).map { Self.line(device: "bp-\($0 % 97)", seq: $0) }.joined(separator: "\n") + "\n"
            let bytes = Array(chunk.utf8)
            var offset = 0
            while offset < bytes.count {
                let before = Date()
                let result = bytes.withUnsafeBytes { send(connection, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                // A send that waits means the socket buffers are full: the gateway stopped reading.
                let waited = Date().timeIntervalSince(before)
                if waited > 0.005 { blockedSeconds += waited }
                if result > 0 {
                    offset += result
                } else if errno != EAGAIN && errno != EWOULDBLOCK {
                    Issue.record("send failed: errno \(errno)")
                    break sending
                }
                if Date().timeIntervalSince(lastSample) > 0.1, let resident = gateway.residentKilobytes {
                    lastSample = Date()
                    peakResident = max(peakResident, resident)
                    residentSamples.append(resident)
                }
            }
            sentLines += 2000
            chunkStart += 2000
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(blockedSeconds > elapsed / 3, "the sender was blocked only \(blockedSeconds) s of \(elapsed) s (\(sentLines) lines)")
        #expect(try gateway.metric("outpost_gateway_backpressure_seconds_total") ?? 0 > 0)
        #expect(peakResident > 0 && peakResident < 96 * 1024, "gateway RSS peaked at \(peakResident) KiB")
        if residentSamples.count > 10 {
            let early = residentSamples[residentSamples.count / 4]
            let late = residentSamples[residentSamples.count - 1]
            #expect(late - early < 24 * 1024, "RSS kept growing under back-pressure: \(early) → \(late) KiB")
        }
        // Half-close and wait until the gateway has read everything (it closes its side at our EOF):
        // what sits unread in kernel buffers at SIGTERM was never accepted.
        shutdown(connection, Int32(SHUT_WR))
        var byte: UInt8 = 0
        _ = recv(connection, &byte, 1, 0)
        close(connection)
        #expect(gateway.stop() == 0)
        let stored = Self.seqs(try Self.records(in: directory))
        #expect(stored.count == sentLines, "everything the gateway accepted is stored")
    }

    @Test func metricsCountEveryListenerAndRejectReason() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: "dead_letter: true\n")
        let tcp = try HTTPClient.connectTCP(port: try #require(gateway.tcpPort))
        try HTTPClient.sendAll(tcp, Array((Self.line(device: "m-1", seq: 1) + "\nnot a point\n" + Self.line(device: "m-1", seq: 2) + "\n").utf8))
        close(tcp)
        let body = Array((Self.line(device: "m-2", seq: 3) + "\n").utf8)
        #expect(try HTTPClient.request(port: try #require(gateway.httpPort), method: "POST", path: "/write", body: body).status == 204)
        // The TCP lines are committed after a linger and dead letters written by a 100 ms timer: wait for
        // every counter to reach its value, then check that none went past it.
        #expect(gateway.waitForMetric("outpost_gateway_points_received_total{listener=\"tcp\"}", atLeast: 3))
        #expect(gateway.waitForMetric("outpost_gateway_points_rejected_total{listener=\"tcp\",reason=\"invalid_field\"}", atLeast: 1))
        #expect(gateway.waitForMetric("outpost_gateway_points_committed_total{listener=\"tcp\"}", atLeast: 2))
        #expect(gateway.waitForMetric("outpost_gateway_points_committed_total{listener=\"http\"}", atLeast: 1))
        #expect(gateway.waitForMetric("outpost_gateway_dead_letter_total", atLeast: 1))
        #expect(try gateway.metric("outpost_gateway_points_received_total{listener=\"tcp\"}") == 3)
        #expect(try gateway.metric("outpost_gateway_points_rejected_total{listener=\"tcp\",reason=\"invalid_field\"}") == 1)
        #expect(try gateway.metric("outpost_gateway_points_committed_total{listener=\"tcp\"}") == 2)
        #expect(try gateway.metric("outpost_gateway_points_committed_total{listener=\"http\"}") == 1)
        #expect(try gateway.metric("outpost_gateway_dead_letter_total") == 1)
        let health = try HTTPClient.request(port: try #require(gateway.metricsPort), method: "GET", path: "/healthz", body: [])
        #expect(health.status == 200)
        #expect(health.body.contains("\"status\":\"ok\""))
        #expect(gateway.stop() == 0)
    }

    @Test func sighupReloadsLimitsWithoutDroppingData() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: "limits: {max_line_bytes: 64KiB}\n")
        let port = try #require(gateway.tcpPort)
        let long = Self.line(device: "r-1", seq: 1, extra: ",note=\"" + String(repeating: "z", count: 2000) + "\"")
        var connection = try HTTPClient.connectTCP(port: port)
        try HTTPClient.sendAll(connection, Array((long + "\n").utf8))
        close(connection)
        // The first line must be in before the limit shrinks, and the reload applied before the next lines.
        #expect(GatewayMQTTTests.waitForCommitted(gateway, listener: "tcp", atLeast: 1))
        try "limits: {max_line_bytes: 1KiB}\n".write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        gateway.signal(SIGHUP)
        #expect(waitUntil(seconds: 30) { (try? gateway.metric("outpost_gateway_config_reloads_total{result=\"applied\"}")) == 1 })
        // A file that does not parse is counted as a failed reload and changes nothing.
        try "limits: {max_line_bytes: [\n".write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        gateway.signal(SIGHUP)
        #expect(waitUntil(seconds: 30) { (try? gateway.metric("outpost_gateway_config_reloads_total{result=\"failed\"}")) == 1 })
        connection = try HTTPClient.connectTCP(port: port)
        try HTTPClient.sendAll(connection, Array((long.replacingOccurrences(of: "seq=1i", with: "seq=2i") + "\n" + Self.line(device: "r-1", seq: 3) + "\n").utf8))
        close(connection)
        // Both lines in (one rejected, one committed) before the limit is checked and the gateway stopped.
        #expect(gateway.waitForMetric("outpost_gateway_points_rejected_total{listener=\"tcp\",reason=\"line_too_long\"}", atLeast: 1))
        #expect(gateway.waitForMetric("outpost_gateway_points_committed_total{listener=\"tcp\"}", atLeast: 2))
        #expect(try gateway.metric("outpost_gateway_points_rejected_total{listener=\"tcp\",reason=\"line_too_long\"}") == 1)
        #expect(gateway.stop() == 0)
        #expect(Set(Self.seqs(try Self.records(in: directory))) == [1, 3])
    }
}

/// Shared between a writer thread and the test.
final class AcknowledgedBox: @unchecked Sendable {
    private let condition = NSCondition()
    private var acknowledged: [Int] = []
    private var next: Int?

    func add(_ range: Range<Int>) {
        condition.lock()
        acknowledged += range
        condition.unlock()
    }

    func finish(next: Int) {
        condition.lock()
        self.next = next
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> ([Int], Int) {
        condition.lock()
        defer { condition.unlock() }
        while next == nil { condition.wait() }
        return (acknowledged, next ?? 0)
    }
}
