import Foundation
import OutpostCore
import OutpostLog
import Testing

/// The gateway as an MQTT subscriber of a real mosquitto (started on a free port, stopped by PID), fed by
/// mosquitto_pub and paho-mqtt in all three payload styles.
@Suite(.serialized) struct GatewayMQTTTests {
    static let clientIdYAML = "listeners:\n  mqtt:\n    client_id: outpost-test-gateway\n"

    /// Publishes `messages` (topic, payload) at QoS 1 with mosquitto_pub, one process per message.
    static func mosquittoPub(port: Int, _ messages: [(String, String)]) throws {
        for (topic, payload) in messages {
            let result = try runProcess("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), "-q", "1", "-t", topic, "-m", payload])
            try #require(result.status == 0, "mosquitto_pub failed: \(result.stderr)")
        }
    }

    /// Publishes with paho-mqtt (one connection, many messages) at QoS 1.
    static func pahoPublish(port: Int, _ messages: [(String, String)]) throws {
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Interop/mqtt_publish.py").path
        let input = try messages.map { message in
            String(decoding: try JSONSerialization.data(withJSONObject: [message.0, message.1]), as: UTF8.self)
        }.joined(separator: "\n") + "\n"
        let result = try runProcess(try python3(), [script, "127.0.0.1", String(port), "1"], stdin: Data(input.utf8))
        try #require(result.status == 0, "paho publish failed: \(result.stderr)")
    }

    /// Until /healthz reports the MQTT session up and every configured subscription granted by the broker:
    /// a message published before its filter's SUBACK is not delivered to the gateway's session.
    static func waitForConnected(_ gateway: GatewayProcess) -> Bool {
        guard let port = gateway.metricsPort else { return false }
        return waitUntil(seconds: 30, interval: 0.05) {
            guard let body = (try? HTTPClient.request(port: port, method: "GET", path: "/healthz", body: []))?.body,
                body.contains("\"mqtt\":\"connected\""),
                let range = body.range(of: "\"mqtt_subscriptions\":\"")
            else { return false }
            let counts = body[range.upperBound...].prefix { $0 != "\"" }.split(separator: "/").compactMap { Int($0) }
            return counts.count == 2 && counts[1] > 0 && counts[0] == counts[1]
        }
    }

    static func waitForCommitted(_ gateway: GatewayProcess, listener: String = "mqtt", atLeast count: Double, seconds: Double = 30) -> Bool {
        waitUntil(seconds: seconds) { (try? gateway.metric("outpost_gateway_points_committed_total{listener=\"\(listener)\"}")) ?? 0 >= count }
    }

    @Test func allThreePayloadStylesLandWithKeysFieldsAndTimestamps() throws {
        let mosquitto = try MosquittoProcess()
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: Self.clientIdYAML, mqttPort: mosquitto.port)
        let port = mosquitto.port
        #expect(Self.waitForConnected(gateway))
        try Self.mosquittoPub(port: port, [
            ("telemetry/greenhouse", "greenhouse,device=lp-1,site=north temperature=21.5,seq=1i 1732300000000000000"),
            ("telemetry/trucks", "{\"device\":\"json-1\",\"ts\":1732300000123,\"temperature\":4.5,\"door_open\":true,\"seq\":2}"),
            ("sensors/plain-1/temperature", "19.25"),
        ])
        try Self.pahoPublish(port: port, [
            ("telemetry/greenhouse", "greenhouse,device=lp-2 temperature=22.5,seq=3i 1732300000001000000\ngreenhouse,device=lp-2 temperature=22.6,seq=4i 1732300000002000000"),
            ("telemetry/trucks", "[{\"device\":\"json-2\",\"ts\":1732300000500,\"temperature\":5.0,\"seq\":5},{\"device\":\"json-2\",\"ts\":1732300000600,\"temperature\":5.1,\"seq\":6}]"),
            ("sensors/plain-2/door_open", "true"),
        ])
        #expect(Self.waitForCommitted(gateway, atLeast: 8))
        #expect(gateway.stop() == 0)
        let records = try GatewaySystemTests.records(in: directory)
        let byKey = Dictionary(grouping: records, by: { $0.key.map { String(decoding: $0, as: UTF8.self) } ?? "" })
        let text = { (record: Record) in String(decoding: record.value ?? [], as: UTF8.self) }
        #expect(byKey["lp-1"].map { $0.map(text) } == ["greenhouse,device=lp-1,site=north temperature=21.5,seq=1i 1732300000000000000"])
        #expect(byKey["lp-2"]?.count == 2)
        #expect(byKey["json-1"].map { $0.map(text) } == ["telemetry,device=json-1 temperature=4.5,door_open=true,seq=2i 1732300000123000000"])
        #expect(byKey["json-1"]?.first?.timestampMilliseconds == 1_732_300_000_123)
        #expect(byKey["json-2"].map { $0.map(text) } == [
            "telemetry,device=json-2 temperature=5,seq=5i 1732300000500000000",
            "telemetry,device=json-2 temperature=5.1,seq=6i 1732300000600000000",
        ])
        let plain = try #require(byKey["plain-1"]?.first)
        #expect(text(plain).hasPrefix("sensors,device=plain-1 temperature=19.25 "))
        #expect(byKey["plain-2"].map { $0.map(text).map { $0.hasPrefix("sensors,device=plain-2 door_open=true ") } } == [true])
    }

    @Test func aPersistentSessionDeliversWhatWasPublishedWhileTheGatewayWasDown() throws {
        let mosquitto = try MosquittoProcess(extraConfiguration: "max_queued_messages 100000")
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var gateway = try GatewayProcess.start(dataDirectory: directory, yaml: Self.clientIdYAML, mqttPort: mosquitto.port)
        #expect(Self.waitForConnected(gateway))
        #expect(gateway.stop() == 0)
        // The gateway is away; its session (clean session off, stable client id) queues these at QoS 1.
        let messages = (0..<500).map { ("telemetry/away", GatewaySystemTests.line(device: "away-\($0 % 5)", seq: $0)) }
        try Self.pahoPublish(port: mosquitto.port, messages)
        gateway = try GatewayProcess.start(dataDirectory: directory, yaml: Self.clientIdYAML, mqttPort: mosquitto.port)
        #expect(Self.waitForCommitted(gateway, atLeast: 500))
        #expect(gateway.stop() == 0)
        let stored = Set(GatewaySystemTests.seqs(try GatewaySystemTests.records(in: directory)))
        #expect(stored == Set(0..<500))
    }

    @Test func aMosquittoRestartIsSurvivedAndMalformedPayloadsNeverStallIngest() throws {
        let mosquitto = try MosquittoProcess(persistence: true, extraConfiguration: "max_queued_messages 100000")
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory, yaml: Self.clientIdYAML + "dead_letter: true\n", mqttPort: mosquitto.port)
        #expect(Self.waitForConnected(gateway))
        var before: [(String, String)] = []
        for seq in 0..<200 {
            before.append(("telemetry/mixed", GatewaySystemTests.line(device: "mix-\(seq % 7)", seq: seq)))
            if seq % 20 == 0 { before.append(("telemetry/mixed", "garbage \(seq) {not json")) }
            if seq % 50 == 0 { before.append(("sensors/mix-x/temperature", "not-a-number")) }
        }
        try Self.pahoPublish(port: mosquitto.port, before)
        #expect(Self.waitForCommitted(gateway, atLeast: 200))
        mosquitto.stop()
        try mosquitto.start()
        // The gateway reconnects and resubscribes by itself; publish after the restart.
        let after = (200..<400).map { ("telemetry/mixed", GatewaySystemTests.line(device: "mix-\($0 % 7)", seq: $0)) }
        #expect(waitUntil(seconds: 30) { (try? Self.pahoPublish(port: mosquitto.port, after)) != nil })
        #expect(Self.waitForCommitted(gateway, atLeast: 400, seconds: 30))
        #expect(try gateway.metric("outpost_gateway_points_rejected_total{listener=\"mqtt\",reason=\"invalid_field\"}") ?? 0 >= 10)
        #expect(try gateway.metric("outpost_gateway_points_rejected_total{listener=\"mqtt\",reason=\"invalid_payload\"}") ?? 0 >= 4)
        #expect(gateway.stop() == 0)
        let stored = GatewaySystemTests.seqs(try GatewaySystemTests.records(in: directory))
        #expect(Set(stored) == Set(0..<400))
    }

    @Test func aGeneratedClientIdIsWarnedAbout() throws {
        let mosquitto = try MosquittoProcess()
        let directory = try TestEnvironment.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gateway = try GatewayProcess.start(dataDirectory: directory, mqttPort: mosquitto.port)
        #expect(gateway.stderrText.contains("MQTT client id is generated, not configured"))
        #expect(gateway.stop() == 0)
    }
}
