import Foundation
import Testing

/// The whole path with real processes: `outpost simulate` (three fleets over MQTT via mosquitto, TCP and
/// HTTP) → `outpost gateway` → replication → `outpost broker`, then `outpost verify --bootstrap` against
/// the broker: every point once, per-device order kept.
@Suite(.serialized) struct EndToEndTests {
    var outpost: String { TestEnvironment.outpostBinary.path }
    var devices: String { TestEnvironment.packageRoot.appendingPathComponent("devices").path }

    /// Central topic with the local partition count (batches forwarded as stored) and with another count
    /// (records re-partitioned by key).
    @Test(arguments: [3, 5])
    func simulatedFleetsReachTheCentralBrokerExactlyOnceAndInOrder(centralPartitions: Int) throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let mosquitto = try MosquittoProcess(extraConfiguration: "max_queued_messages 100000")
        let broker = try BrokerProcess.start(dataDirectory: directory + "/broker", topics: ["telemetry:\(centralPartitions)"])
        let yaml = """
            gateway: {id: e2e-gateway}
            listeners:
              mqtt: {client_id: outpost-e2e-gateway}
            replication: {brokers: ["\(broker.bootstrap)"], central_topic: telemetry, backoff: 50ms, backoff_max: 500ms}
            """
        let gateway = try GatewayProcess.start(dataDirectory: directory + "/gateway", yaml: yaml, mqttPort: mosquitto.port)
        // The gateway's subscription must exist before the fleets publish (its session then holds the rest).
        #expect(GatewayMQTTTests.waitForConnected(gateway))

        let manifest = directory + "/run.jsonl"
        let simulate = try runProcess(outpost, [
            "simulate", devices, "--mqtt", "127.0.0.1:\(mosquitto.port)", "--tcp", "127.0.0.1:\(try #require(gateway.tcpPort))",
            "--http", "http://127.0.0.1:\(try #require(gateway.httpPort))", "--points", "6000", "--rate", "3000", "--seed", "5", "--retry",
            "--manifest", manifest, "--json", "--quiet",
        ])
        try #require(simulate.status == 0, "simulate failed: \(simulate.stderr)")
        let summary = try #require(try JSONSerialization.jsonObject(with: simulate.stdout) as? [String: Any])
        let sent = try #require(summary["sent"] as? Int)
        #expect(sent == 6000)
        #expect(summary["failed"] as? Int == 0)

        // Everything the fleets sent is committed locally, then replicated.
        #expect(waitUntil(seconds: 30) { gateway.committedPoints >= Double(sent) }, "committed \(gateway.committedPoints) of \(sent)")
        #expect(ReplicationSystemTests.waitForDrain(gateway))

        // The gateway's own log first, so a failure says which stage lost or reordered something.
        let local = try runProcess(outpost, ["verify", "--manifest", manifest, "--log", directory + "/gateway", "--require-all-sent", "--json"])
        #expect(local.status == 0, "verify of the gateway's log: \(local.stdoutText)")
        let localReport = try #require(try JSONSerialization.jsonObject(with: local.stdout) as? [String: Any])
        #expect(localReport["unexplained_out_of_order"] as? Int == 0, "the gateway's log: \(local.stdoutText)")
        let verify = try runProcess(outpost, [
            "verify", "--manifest", manifest, "--bootstrap", broker.bootstrap, "--topic", "telemetry", "--require-all-sent", "--json",
        ])
        #expect(verify.status == 0, "verify: \(verify.stdoutText) \(verify.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: verify.stdout) as? [String: Any])
        #expect(report["passed"] as? Bool == true)
        #expect(report["present"] as? Int == sent)
        #expect(report["missing_acknowledged"] as? Int == 0)
        #expect(report["missing_unacknowledged"] as? Int == 0)
        #expect(report["duplicated"] as? Int == 0)
        // Only the readings the fleets send late on purpose (cold-chain) arrive out of order.
        #expect(report["unexplained_out_of_order"] as? Int == 0, "central: \(verify.stdoutText)\nlocal: \(local.stdoutText)")
        #expect((report["out_of_order"] as? Int ?? 0) <= (report["deliberately_reordered"] as? Int ?? 0))
        #expect(report["devices"] as? Int == 68)
        #expect(gateway.stop() == 0)
    }

    /// `outpost verify --bootstrap` is not a rubber stamp: the same run checked against a central topic
    /// with one record deleted (via a fresh topic holding all but one) fails and names it.
    @Test func verifyAgainstTheBrokerCatchesAMissingRecord() throws {
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try BrokerProcess.start(dataDirectory: directory + "/broker", topics: ["complete:2", "damaged:2"])
        let sink = directory + "/sink"
        try FileManager.default.createDirectory(atPath: sink, withIntermediateDirectories: true)
        // A TCP fleet into a plain line collector, then the lines produced with kcat into two topics.
        let manifest = directory + "/run.jsonl"
        let server = try LineSink(kind: .tcp)
        let simulate = try runProcess(outpost, [
            "simulate", "\(devices)/factory.yaml", "--tcp", "127.0.0.1:\(server.port)", "--points", "400", "--rate", "4000",
            "--manifest", manifest, "--json", "--quiet",
        ])
        try #require(simulate.status == 0, "simulate failed: \(simulate.stderr)")
        #expect(waitUntil(seconds: 10) { server.lines.count >= 400 })
        let lines = server.lines
        try lines.joined(separator: "\n").write(toFile: sink + "/complete.lp", atomically: true, encoding: .utf8)
        try lines.enumerated().filter { $0.offset != 123 }.map(\.element).joined(separator: "\n").write(toFile: sink + "/damaged.lp", atomically: true, encoding: .utf8)
        for topic in ["complete", "damaged"] {
            let produce = try runProcess(try Interop.kcat(), ["-b", broker.bootstrap, "-P", "-t", topic, "-l", sink + "/\(topic).lp"])
            try #require(produce.status == 0, "kcat: \(produce.stderr)")
        }
        let complete = try runProcess(outpost, ["verify", "--manifest", manifest, "--bootstrap", broker.bootstrap, "--topic", "complete", "--require-all-sent"])
        #expect(complete.status == 0, "\(complete.stdoutText)")
        let damaged = try runProcess(outpost, ["verify", "--manifest", manifest, "--bootstrap", broker.bootstrap, "--topic", "damaged", "--require-all-sent"])
        #expect(damaged.status == 1)
        #expect(damaged.stdoutText.contains("missing unacknowledged 1"))
        let nobody = try runProcess(outpost, ["verify", "--manifest", manifest, "--bootstrap", "127.0.0.1:\(try freeLoopbackPort())", "--topic", "complete"])
        #expect(nobody.status == 2, "an unreachable broker is an input error, not a verdict")
    }
}
