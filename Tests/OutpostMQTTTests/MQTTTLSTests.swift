import Foundation
import Testing

@testable import OutpostMQTT

/// TLS through libmosquitto's handshake, driven by our network loop, against mosquitto with certificates
/// made by openssl for the test.
@Suite(.serialized)
struct MQTTTLSTests {
    /// A CA, and a server certificate it signed for `commonName` (with `ipAddress` as a SAN when given).
    func makeCertificates(in directory: URL, commonName: String, ipAddress: String?) throws {
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw BrokerError("openssl \(arguments.first ?? "") failed") }
        }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=outpost-test-ca"])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=\(commonName)"])
        let extensions = ipAddress.map { "subjectAltName=IP:\($0)" } ?? "basicConstraints=CA:FALSE"
        try extensions.write(to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext"])
        // mosquitto started as root drops to the `mosquitto` user before it reads its key.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: directory.appendingPathComponent(name).path)
        }
    }

    func broker(commonName: String, ipAddress: String?) throws -> (MosquittoBroker, URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try makeCertificates(in: directory, commonName: commonName, ipAddress: ipAddress)
        let broker = try MosquittoBroker(listenerConfiguration: """
            cafile \(directory.path)/ca.crt
            certfile \(directory.path)/server.crt
            keyfile \(directory.path)/server.key
            """)
        return (broker, directory)
    }

    func client(_ broker: MosquittoBroker, caFile: String, insecure: Bool, events: Collector<MQTTConnectionEvent>, received: Collector<MQTTMessage>) throws -> MQTTClient {
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: "tls-\(insecure)")
        configuration.tls = MQTTTLSConfiguration(caFile: caFile, insecure: insecure)
        configuration.reconnect = MQTTBackoff(initialSeconds: 0.05, maximumSeconds: 0.5)
        let client = try MQTTClient(configuration: configuration, handlers: .init(onMessage: { received.append($0) }, onConnectionEvent: { events.append($0) }))
        try client.subscribe([MQTTSubscription("secure/#")])
        client.start()
        return client
    }

    @Test func connectsOverTLSWithATrustedCertificateAndExchangesMessages() async throws {
        let (broker, directory) = try broker(commonName: "localhost", ipAddress: "127.0.0.1")
        defer { try? FileManager.default.removeItem(at: directory) }
        let events = Collector<MQTTConnectionEvent>()
        let received = Collector<MQTTMessage>()
        let client = try client(broker, caFile: directory.path + "/ca.crt", insecure: false, events: events, received: received)
        defer { client.stop() }
        #expect(client.waitUntilConnected(timeoutSeconds: 10))
        #expect(eventually { events.values.contains(.subscribed(filter: "secure/#", grantedQoS: .atLeastOnce)) })
        #expect(try await client.publishAndWait(topic: "secure/1", payload: Array("hello".utf8), qos: .atLeastOnce) == .acknowledged)
        #expect(eventually { received.values.contains { $0.payload == Array("hello".utf8) } })
    }

    @Test func refusesACertificateForAnotherHostUnlessInsecure() throws {
        let (broker, directory) = try broker(commonName: "elsewhere.example", ipAddress: nil)
        defer { try? FileManager.default.removeItem(at: directory) }
        let strictEvents = Collector<MQTTConnectionEvent>()
        let strict = try client(broker, caFile: directory.path + "/ca.crt", insecure: false, events: strictEvents, received: Collector())
        #expect(eventually { strictEvents.values.contains { if case .connectFailed = $0 { true } else { false } } })
        #expect(!strict.isConnected)
        strict.stop()

        let insecure = try client(broker, caFile: directory.path + "/ca.crt", insecure: true, events: Collector(), received: Collector())
        defer { insecure.stop() }
        #expect(insecure.waitUntilConnected(timeoutSeconds: 10))
    }
}
