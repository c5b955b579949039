import Foundation
import OutpostCore
import OutpostLog
import Testing

/// Store and forward with real processes: a gateway replicating to an `outpost broker`, read back with kcat.
@Suite(.serialized) struct ReplicationSystemTests {
    /// Every record of `topic` at `broker` (kcat, from the beginning to the end): key and value per record.
    static func centralRecords(_ broker: BrokerProcess, topic: String, kcatSettings: [String] = []) throws -> [(key: String, value: String)] {
        let arguments = ["-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n"] + kcatSettings
        let result = try runProcess(try Interop.kcat(), arguments)
        try #require(result.status == 0, "kcat failed: \(result.stderr)")
        return result.stdoutText.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
    }

    static func seq(_ value: String) -> Int? {
        guard let range = value.range(of: "seq=") else { return nil }
        return Int(value[range.upperBound...].prefix { $0.isNumber })
    }

    static func line(_ seq: Int) -> String {
        "greenhouse,device=rep-\(seq % 17),site=north temperature=\(20 + seq % 5).5,seq=\(seq)i \(1_732_300_000_000_000_000 + seq * 1_000_000)"
    }

    /// Sends lines `range` over one TCP connection, `chunk` at a time, pausing `pause` between chunks.
    static func send(port: Int, _ range: Range<Int>, chunk: Int = 500, pause: Double = 0) throws {
        let connection = try HTTPClient.connectTCP(port: port)
        defer { close(connection) }
        var next = range.lowerBound
        while next < range.upperBound {
            let end = min(next + chunk, range.upperBound)
            try HTTPClient.sendAll(connection, Array(((next..<end).map(line).joined(separator: "\n") + "\n").utf8))
            next = end
            if pause > 0 { Thread.sleep(forTimeInterval: pause) }
        }
        shutdown(connection, Int32(SHUT_WR))
        var byte: UInt8 = 0
        _ = recv(connection, &byte, 1, 0)
    }

    static func lagRecords(_ gateway: GatewayProcess) -> Double {
        (0..<3).reduce(0) { $0 + ((try? gateway.metric("outpost_gateway_replication_lag_records{partition=\"\($1)\"}")) ?? 0) }
    }

    /// Waits until the gateway reports nothing left to replicate (and its local log is not empty) — after
    /// it committed at least `committed` points, when given: a lag of 0 while ingest is still arriving
    /// means nothing.
    ///
    /// The lag gauges are refreshed by each replicator's round (every 20 ms when idle), so a zero read just
    /// after the last commit can predate it: drained means zero on two reads a quarter second apart.
    static func waitForDrain(_ gateway: GatewayProcess, committed: Int? = nil, seconds: Double = 180) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        func drained() -> Bool {
            if let committed, gateway.committedPoints < Double(committed) { return false }
            let sent = (try? gateway.metric("outpost_gateway_replication_sent_records_total")) ?? 0
            return sent > 0 && lagRecords(gateway) == 0
        }
        while Date() < deadline {
            guard waitUntil(seconds: max(0, deadline.timeIntervalSinceNow), interval: 0.05, drained) else { return false }
            Thread.sleep(forTimeInterval: 0.25)
            if drained() { return true }
        }
        return false
    }

    /// For a gateway restarted over an existing log, which may have nothing left to send: the lag gauges
    /// are refreshed every second from the start, so zero after two seconds is a drained log.
    static func waitForDrainAfterRestart(_ gateway: GatewayProcess, seconds: Double = 180) -> Bool {
        Thread.sleep(forTimeInterval: 2)
        return waitUntil(seconds: seconds, interval: 0.05) { lagRecords(gateway) == 0 }
    }

    @Test func killNineDuringReplicationNeverDuplicatesOrLosesCommittedRecords() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try BrokerProcess.start(dataDirectory: directory + "/broker", topics: ["central:3"])
        let gatewayDirectory = directory + "/gateway"
        let arguments = ["--brokers", broker.bootstrap, "--central-topic", "central", "--fsync", "always"]
        let rounds = Int(ProcessInfo.processInfo.environment["OUTPOST_REPLICATION_CRASH_ROUNDS"] ?? "") ?? 20
        var random = SeededRandom(seed: UInt64(ProcessInfo.processInfo.environment["OUTPOST_REPLICATION_CRASH_SEED"] ?? "") ?? 77)
        var sent = 0
        for _ in 0..<rounds {
            let gateway = try GatewayProcess.start(dataDirectory: gatewayDirectory, arguments: arguments)
            let port = try #require(gateway.tcpPort)
            let deadline = Date().addingTimeInterval(Double(100 + Int(random.next() % 700)) / 1000)
            let connection = try HTTPClient.connectTCP(port: port)
            while Date() < deadline {
                try? HTTPClient.sendAll(connection, Array(((sent..<(sent + 400)).map(Self.line).joined(separator: "\n") + "\n").utf8))
                sent += 400
                Thread.sleep(forTimeInterval: 0.005)
            }
            gateway.kill9()
            close(connection)
        }
        // A last, orderly run ships whatever is left.
        let gateway = try GatewayProcess.start(dataDirectory: gatewayDirectory, arguments: arguments)
        #expect(Self.waitForDrainAfterRestart(gateway))
        #expect(gateway.stop() == 0)
        let local = GatewaySystemTests.seqs(try GatewaySystemTests.records(in: gatewayDirectory))
        let central = try Self.centralRecords(broker, topic: "central").compactMap { Self.seq($0.value) }
        let counts = Dictionary(central.map { ($0, 1) }, uniquingKeysWith: +)
        let duplicated = counts.filter { $0.value > 1 }.keys.sorted()
        let missing = Set(local).subtracting(central).sorted()
        let unknown = Set(central).subtracting(local)
        #expect(duplicated.isEmpty, "\(duplicated.count) duplicated centrally, e.g. \(duplicated.prefix(5))")
        #expect(missing.isEmpty, "\(missing.count) committed locally but missing centrally, e.g. \(missing.prefix(5))")
        #expect(unknown.isEmpty)
        #expect(local.count > rounds * 100, "the rounds committed too little to mean anything (\(local.count))")
        print("replication crash test: \(rounds) kill -9 rounds, \(local.count) records committed locally, all central exactly once")
    }

    @Test func aBrokerOutageBuildsABacklogThatDrainsWhileIngestGoesOn() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var broker = try BrokerProcess.start(dataDirectory: directory + "/broker", topics: ["central:3"])
        let gatewayDirectory = directory + "/gateway"
        // Small segments so the backlog spans several of them.
        let yaml = "log: {segment_bytes: 16KiB}\nreplication: {brokers: [\"\(broker.bootstrap)\"], central_topic: central, backoff: 50ms, backoff_max: 500ms}\n"
        let gateway = try GatewayProcess.start(dataDirectory: gatewayDirectory, yaml: yaml)
        let port = try #require(gateway.tcpPort)
        // Points per second. The tests run the debug build, so the rate is modest; the release build's
        // catch-up is measured by Benchmarks/replication_bench.py (docs/BENCHMARKS.md).
        let requestedRate = Double(ProcessInfo.processInfo.environment["OUTPOST_REPLICATION_INGEST_RATE"] ?? "") ?? 2_500
        // Bursts of 500 lines, as a fleet reporting together sends them (each burst makes one batch per
        // partition; the catch-up moves whole batches).
        let chunk = 500
        let pause = Double(chunk) / requestedRate
        // Live ingest for the whole test (about 10 s), at a fixed rate, from a thread.
        let total = Int(requestedRate * 10)
        let sender = Thread { try? Self.send(port: port, 0..<total, chunk: chunk, pause: pause) }
        sender.start()
        Thread.sleep(forTimeInterval: 1.5)
        broker.stop()
        let committedAtStop = gateway.committedPoints
        let outageStarted = Date()
        func segmentCount() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: gatewayDirectory + "/topics/telemetry-0").filter { $0.hasSuffix(".log") }.count
        }
        // At least 4 s of outage, and on until the backlog spans several segments: a loaded machine may
        // ingest less in 4 s than the segment count needs.
        Thread.sleep(forTimeInterval: 4)
        _ = waitUntil(seconds: 30, interval: 0.05) { ((try? segmentCount()) ?? 0) >= 3 }
        // The ingest rate actually achieved (the sender's pauses make it a little lower than asked for).
        let ingestRate = (gateway.committedPoints - committedAtStop) / Date().timeIntervalSince(outageStarted)
        let backlog = Self.lagRecords(gateway)
        let segments = try segmentCount()
        #expect(segments >= 3, "the backlog should span several segments, found \(segments) in partition 0")
        func cursors() -> [Double] {
            (0..<3).map { (try? gateway.metric("outpost_gateway_replication_cursor{partition=\"\($0)\"}")) ?? 0 }
        }
        let cursorsBefore = cursors()
        broker = try broker.restart()
        // Catch-up starts once every partition's replicator has had a resent batch acknowledged (each
        // reconnects after its own backoff, up to backoff_max; neither that nor the broker's own start is the
        // replicator's throughput), and ends when the lag is back to what live ingest alone keeps in flight.
        #expect(waitUntil(seconds: 10, interval: 0.005) { zip(cursors(), cursorsBefore).allSatisfy { $0 > $1 } })
        let resumed = Date()
        let backlogAtResume = Self.lagRecords(gateway)
        #expect(waitUntil(seconds: 30, interval: 0.02) { Self.lagRecords(gateway) <= Double(chunk) })
        let drainSeconds = Date().timeIntervalSince(resumed)
        let catchUpRate = (backlogAtResume + ingestRate * drainSeconds) / drainSeconds
        print("replication outage: backlog \(Int(backlog)) records in \(segments) segments of partition 0 (\(Int(backlogAtResume)) when replication resumed), drained in \(String(format: "%.2f", drainSeconds)) s: catch-up \(Int(catchUpRate)) records/s = \(String(format: "%.1f", catchUpRate / ingestRate))x ingest (\(Int(ingestRate))/s)")
        // The catch-up's rate is a performance figure: measured by Benchmarks/replication_bench.py on the
        // release build, not asserted here, where the debug build and a shared machine set the pace.
        #expect(waitUntil(seconds: 60, interval: 0.1) { !sender.isExecuting }, "the sender never finished: replication did not make room")
        #expect(Self.waitForDrain(gateway, committed: total))
        #expect(gateway.stop() == 0)
        let central = try Self.centralRecords(broker, topic: "central").compactMap { Self.seq($0.value) }
        #expect(central.count == total)
        #expect(Set(central) == Set(0..<total))
    }

    /// A broker with TLS and SASL/PLAIN and a 3-partition topic `secure`.
    static func startSecureBroker(_ fixtures: SecurityFixtures, directory: String) throws -> BrokerProcess {
        try BrokerProcess.start(
            dataDirectory: directory + "/broker", topics: ["secure:3"], arguments: fixtures.tlsArguments() + fixtures.saslArguments)
    }

    /// Gateway configuration replicating to `broker`'s topic `secure` over TLS with SASL/PLAIN.
    static func secureReplicationYAML(_ broker: BrokerProcess, _ fixtures: SecurityFixtures, password: String, backoff: String? = nil) -> String {
        """
        replication:
          brokers: ["\(broker.bootstrap)"]
          central_topic: secure
        \(backoff.map { "  backoff: \($0)\n" } ?? "")  tls: {ca_file: "\(fixtures.caFile)"}
          sasl: {mechanism: PLAIN, username: "\(SecurityFixtures.username)", password: "\(password)"}
        """
    }

    @Test func replicationOverTLSWithSASLPlain() throws {
        let fixtures = try SecurityFixtures.make()
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Self.startSecureBroker(fixtures, directory: directory)
        let yaml = Self.secureReplicationYAML(broker, fixtures, password: SecurityFixtures.password)
        let gateway = try GatewayProcess.start(dataDirectory: directory + "/gateway", yaml: yaml)
        try Self.send(port: try #require(gateway.tcpPort), 0..<3000)
        #expect(Self.waitForDrain(gateway, committed: 3000))
        #expect(gateway.stop() == 0)
        let settings = fixtures.kcatSettings("SASL_SSL")
        let central = try Self.centralRecords(broker, topic: "secure", kcatSettings: settings).compactMap { Self.seq($0.value) }
        #expect(Set(central) == Set(0..<3000))
        #expect(central.count == 3000)
        #expect(!gateway.stderrText.contains(SecurityFixtures.password), "the password must never be logged")
    }

    @Test func aWrongPasswordOrUntrustedBrokerIsRefusedAndTheBacklogWaits() throws {
        let fixtures = try SecurityFixtures.make()
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Self.startSecureBroker(fixtures, directory: directory)
        let yaml = Self.secureReplicationYAML(broker, fixtures, password: SecurityFixtures.wrongPassword, backoff: "50ms")
        let gateway = try GatewayProcess.start(dataDirectory: directory + "/gateway", yaml: yaml)
        try Self.send(port: try #require(gateway.tcpPort), 0..<500)
        #expect(waitUntil(seconds: 10) { ((try? gateway.metric("outpost_gateway_replication_failures_total")) ?? 0) > 0 })
        #expect(try gateway.metric("outpost_gateway_replication_sent_records_total") == nil || (try gateway.metric("outpost_gateway_replication_sent_records_total") ?? 0) == 0)
        #expect(gateway.stop() == 0)
        // Nothing was lost: the records are all in the local log, waiting.
        #expect(Set(GatewaySystemTests.seqs(try GatewaySystemTests.records(in: directory + "/gateway"))) == Set(0..<500))
    }

    @Test func dropOldestDeclaresWhatItDropsInAGapMarkerThatReplicates() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let brokerDirectory = directory + "/broker"
        // The broker is away while far more than the budget arrives.
        let port = try freeLoopbackPort()
        let yaml = """
            log: {segment_bytes: 32KiB}
            replication: {brokers: ["127.0.0.1:\(port)"], central_topic: central, disk_budget: 256KiB, overflow: drop-oldest, backoff: 50ms, backoff_max: 200ms}
            """
        let gateway = try GatewayProcess.start(dataDirectory: directory + "/gateway", yaml: yaml)
        let total = 60_000
        try Self.send(port: try #require(gateway.tcpPort), 0..<total)
        #expect(waitUntil(seconds: 10) { ((try? gateway.metric("outpost_gateway_replication_dropped_records_total")) ?? 0) > 0 })
        let broker = try BrokerProcess.start(dataDirectory: brokerDirectory, port: port, topics: ["central:3"])
        #expect(Self.waitForDrain(gateway, committed: total))
        let droppedRecords = Int(try gateway.metric("outpost_gateway_replication_dropped_records_total") ?? 0)
        #expect(gateway.stop() == 0)
        let central = try Self.centralRecords(broker, topic: "central")
        // A marker may arrive twice (carried forward after it was sent); the same declaration counts once.
        var markerValues = Set<String>()
        let markers = central.filter { $0.key == "_outpost_gap" && markerValues.insert($0.value).inserted }
        #expect(!markers.isEmpty)
        // Every seq is either delivered or inside a range a gap marker declared for its device.
        var declared: [String: [ClosedRange<Int>]] = [:]
        var declaredRecords = 0
        for marker in markers {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(marker.value.utf8)) as? [String: Any])
            declaredRecords += json["records"] as? Int ?? 0
            for (device, range) in json["devices"] as? [String: [Int]] ?? [:] where range.count == 2 {
                declared[device, default: []].append(range[0]...range[1])
            }
        }
        #expect(declaredRecords == droppedRecords, "the gap markers declare \(declaredRecords) records, the metrics counted \(droppedRecords)")
        let delivered = Set(central.compactMap { Self.seq($0.value) })
        let undeclared = (0..<total).filter { seq in
            !delivered.contains(seq) && !(declared["rep-\(seq % 17)"] ?? []).contains { $0.contains(seq) }
        }
        #expect(undeclared.isEmpty, "\(undeclared.count) seqs neither delivered nor declared dropped, e.g. \(undeclared.prefix(5))")
        #expect(delivered.count + declaredRecords >= total)
    }

    @Test func blockPushesBackInsteadOfDropping() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try freeLoopbackPort()
        let yaml = """
            log: {segment_bytes: 32KiB}
            replication: {brokers: ["127.0.0.1:\(port)"], central_topic: central, disk_budget: 256KiB, overflow: block, backoff: 50ms, backoff_max: 200ms}
            """
        let gateway = try GatewayProcess.start(dataDirectory: directory + "/gateway", yaml: yaml)
        let total = 200_000  // more than the queue (16 batches of 256 KiB) holds
        let sender = Thread { try? Self.send(port: gateway.tcpPort ?? 0, 0..<total) }
        sender.start()
        // With the brokers away and the budget full, ingest stops: the sender is held back.
        #expect(waitUntil(seconds: 15) { ((try? gateway.metric("outpost_gateway_backpressure_seconds_total")) ?? 0) > 1 })
        // Held back: the gateway stopped taking points in (what the sender wrote beyond that waits in the
        // kernel's socket buffers, which on loopback can hold all of it).
        let received = (try? gateway.metric("outpost_gateway_points_received_total{listener=\"tcp\"}")) ?? 0
        #expect(received < Double(total), "the gateway took in every point although the budget was full")
        let broker = try BrokerProcess.start(dataDirectory: directory + "/broker", port: port, topics: ["central:3"])
        #expect(waitUntil(seconds: 60, interval: 0.1) { !sender.isExecuting }, "the sender never finished: replication did not make room")
        #expect(
            Self.waitForDrain(gateway, committed: total),
            "committed \(gateway.committedPoints) of \(total), replication lag \(Self.lagRecords(gateway)) records")
        #expect(try gateway.metric("outpost_gateway_replication_dropped_records_total") ?? 0 == 0)
        // (A fresh-clone CI run once saw the drain stop short and the stop hang; the gateway's log, with its
        // threads' stacks when it had to be aborted, is the failure's message.)
        let stopped = gateway.stop()
        #expect(stopped == 0, "gateway stderr (last 60 KB):\n\(String(gateway.stderrText.suffix(60_000)))")
        let central = try Self.centralRecords(broker, topic: "central").compactMap { Self.seq($0.value) }
        #expect(central.count == total)
        #expect(Set(central) == Set(0..<total))
    }
}
