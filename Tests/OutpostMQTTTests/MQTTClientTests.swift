import Foundation
import Testing

@testable import OutpostMQTT

#if canImport(Glibc)
import Glibc
#endif

/// Against a real mosquitto 2.0 on a free loopback port (see `MosquittoBroker`).
@Suite(.serialized)
struct MQTTClientTests {
    func configuration(_ broker: MosquittoBroker, id: String? = nil, clean: Bool = true) -> MQTTConfiguration {
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: broker.port, clientID: id, cleanSession: clean)
        configuration.reconnect = MQTTBackoff(initialSeconds: 0.05, maximumSeconds: 0.5)
        return configuration
    }

    func subscriber(_ broker: MosquittoBroker, id: String, clean: Bool = true, filter: String, protocolVersion: MQTTProtocolPreference = .automatic,
                    received: Collector<MQTTMessage>, events: Collector<MQTTConnectionEvent> = Collector()) throws -> MQTTClient {
        var configuration = configuration(broker, id: id, clean: clean)
        configuration.protocolVersion = protocolVersion
        let client = try MQTTClient(configuration: configuration, handlers: .init(
            onMessage: { received.append($0) }, onConnectionEvent: { events.append($0) }))
        try client.subscribe([MQTTSubscription(filter, qos: .atLeastOnce)])
        client.start()
        return client
    }

    func subscribed(_ events: Collector<MQTTConnectionEvent>, count: Int = 1) -> Bool {
        eventually {
            events.values.filter { if case .subscribed(_, let granted) = $0 { return granted != nil } else { return false } }.count >= count
        }
    }

    @Test func publishesAndReceivesAtQoS0AndQoS1() async throws {
        let broker = try MosquittoBroker()
        let received = Collector<MQTTMessage>()
        let events = Collector<MQTTConnectionEvent>()
        let subscriber = try subscriber(broker, id: "sub-qos", filter: "t/#", received: received, events: events)
        defer { subscriber.stop() }
        #expect(subscribed(events))

        let completions = Collector<MQTTPublishCompletion>()
        let publisher = try MQTTClient(configuration: configuration(broker, id: "pub-qos"), handlers: .init(onPublishCompleted: { completions.append($0) }))
        publisher.start()
        defer { publisher.stop() }
        #expect(publisher.waitUntilConnected(timeoutSeconds: 10))

        for index in 0..<200 {
            let qos: MQTTQoS = index % 2 == 0 ? .atMostOnce : .atLeastOnce
            try publisher.publish(topic: "t/\(index % 4)", payload: Array("v\(index)".utf8), qos: qos, token: UInt64(index))
        }
        #expect(eventually { completions.count == 200 })
        for completion in completions.values {
            #expect(completion.outcome == (completion.token % 2 == 0 ? .written : .acknowledged))
            #expect(completion.qos == (completion.token % 2 == 0 ? .atMostOnce : .atLeastOnce))
        }
        #expect(eventually { received.count == 200 })
        let payloads = Set(received.values.map { String(decoding: $0.payload, as: UTF8.self) })
        #expect(payloads == Set((0..<200).map { "v\($0)" }))
        let qos1 = received.values.filter { $0.qos == .atLeastOnce }.count
        #expect(qos1 == 100)
        #expect(received.values.allSatisfy { $0.receivedAtNanoseconds > 1_600_000_000_000_000_000 && $0.topic.hasPrefix("t/") })

        let outcome = try await publisher.publishAndWait(topic: "t/x", payload: [1, 2, 3], qos: .atLeastOnce)
        #expect(outcome == .acknowledged)
        #expect(publisher.statistics().publishesAcknowledged == 101)
    }

    @Test(arguments: [MQTTProtocolPreference.automatic, .v311])
    func persistentSessionDeliversMessagesPublishedWhileAway(protocolVersion: MQTTProtocolPreference) async throws {
        let broker = try MosquittoBroker()
        let id = "gateway-\(protocolVersion.rawValue)"
        let first = Collector<MQTTMessage>()
        let firstEvents = Collector<MQTTConnectionEvent>()
        let away = try subscriber(broker, id: id, clean: false, filter: "telemetry/#", protocolVersion: protocolVersion, received: first, events: firstEvents)
        #expect(subscribed(firstEvents))
        away.stop()

        let publisher = try MQTTClient(configuration: configuration(broker, id: "pub-away"))
        publisher.start()
        defer { publisher.stop() }
        #expect(publisher.waitUntilConnected(timeoutSeconds: 10))
        for index in 0..<50 {
            let outcome = try await publisher.publishAndWait(topic: "telemetry/d\(index % 3)", payload: Array("m\(index)".utf8), qos: .atLeastOnce)
            #expect(outcome == .acknowledged)
        }

        let second = Collector<MQTTMessage>()
        let secondEvents = Collector<MQTTConnectionEvent>()
        let back = try subscriber(broker, id: id, clean: false, filter: "telemetry/#", protocolVersion: protocolVersion, received: second, events: secondEvents)
        defer { back.stop() }
        #expect(eventually { second.count >= 50 })
        #expect(Set(second.values.map { String(decoding: $0.payload, as: UTF8.self) }) == Set((0..<50).map { "m\($0)" }))
        // The broker resumed the session, so the subscription was not sent again.
        #expect(secondEvents.values.contains(.connected(protocolVersion: protocolVersion == .v311 ? .v311 : .v5, sessionPresent: true)))
    }

    @Test func reconnectsAndResubscribesAfterMosquittoRestarts() async throws {
        let broker = try MosquittoBroker()
        let received = Collector<MQTTMessage>()
        let events = Collector<MQTTConnectionEvent>()
        let subscriber = try subscriber(broker, id: "sub-restart", filter: "r/#", received: received, events: events)
        defer { subscriber.stop() }
        #expect(subscribed(events))
        let publisher = try MQTTClient(configuration: configuration(broker, id: "pub-restart"))
        publisher.start()
        defer { publisher.stop() }
        #expect(publisher.waitUntilConnected(timeoutSeconds: 10))
        #expect(try await publisher.publishAndWait(topic: "r/1", payload: Array("before".utf8), qos: .atLeastOnce) == .acknowledged)
        #expect(eventually { received.count == 1 })

        let oldPort = broker.port
        try broker.restart()
        #expect(broker.port == oldPort)
        #expect(eventually { events.values.contains { if case .disconnected(_, false) = $0 { return true } else { return false } } })
        // No persistence: the new broker has no session, so the client must subscribe again by itself.
        #expect(subscribed(events, count: 2))
        #expect(publisher.waitUntilConnected(timeoutSeconds: 15))
        var acknowledgedAfterRestart = false
        for _ in 0..<100 where !acknowledgedAfterRestart {
            acknowledgedAfterRestart = (try? await publisher.publishAndWait(topic: "r/2", payload: Array("after".utf8), qos: .atLeastOnce)) == .acknowledged
            if !acknowledgedAfterRestart { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(acknowledgedAfterRestart)
        #expect(eventually { received.values.contains { $0.payload == Array("after".utf8) } })
        #expect(subscriber.statistics().connects == 2)
        #expect(events.values.contains(.connected(protocolVersion: .v5, sessionPresent: false)))
    }

    @Test func negotiatesMQTT5WithMosquittoAnd311WhenAsked() throws {
        let broker = try MosquittoBroker()
        for (preference, expected) in [(MQTTProtocolPreference.automatic, MQTTProtocolVersion.v5), (.v5, .v5), (.v311, .v311)] {
            var configuration = configuration(broker, id: "negotiate-\(preference.rawValue)")
            configuration.protocolVersion = preference
            let client = try MQTTClient(configuration: configuration)
            client.start()
            #expect(client.waitUntilConnected(timeoutSeconds: 10))
            #expect(client.negotiatedProtocol == expected)
            client.stop()
        }
    }

    /// mosquitto 2.0 always speaks v5, so the fall back is shown against a scripted MQTT 3.1.1-only
    /// peer that answers real CONNECT packets the way pre-v5 brokers do.
    @Test func fallsBackTo311WhenTheBrokerRefusesVersion5() throws {
        let peer = try MQTT311OnlyPeer()
        defer { peer.stop() }
        let events = Collector<MQTTConnectionEvent>()
        var configuration = MQTTConfiguration(host: "127.0.0.1", port: peer.port, clientID: "fallback")
        configuration.reconnect = MQTTBackoff(initialSeconds: 0.05, maximumSeconds: 0.5)
        let client = try MQTTClient(configuration: configuration, handlers: .init(onConnectionEvent: { events.append($0) }))
        client.start()
        defer { client.stop() }
        #expect(client.waitUntilConnected(timeoutSeconds: 10))
        #expect(client.negotiatedProtocol == .v311)
        #expect(events.values.contains(.fellBackToMQTT311))
        #expect(peer.protocolLevels.prefix(2) == [5, 4])
    }

    @Test func fullPublishWindowRejectsAtOnceAndRecoversWhenAcknowledgementsReturn() throws {
        let broker = try MosquittoBroker()
        var configuration = configuration(broker, id: "window")
        configuration.limits.pendingPublishesMax = 5
        let completions = Collector<MQTTPublishCompletion>()
        let client = try MQTTClient(configuration: configuration, handlers: .init(onPublishCompleted: { completions.append($0) }))
        client.start()
        defer { client.stop() }
        #expect(client.waitUntilConnected(timeoutSeconds: 10))

        broker.pause()
        for index in 0..<5 {
            try client.publish(topic: "w", payload: [UInt8(index)], qos: .atLeastOnce, token: UInt64(index))
        }
        #expect(throws: MQTTError.publishWindowFull(limit: 5)) {
            try client.publish(topic: "w", payload: [9], qos: .atLeastOnce)
        }
        #expect(client.statistics().publishesPending == 5)
        #expect(client.statistics().publishesRejected == 1)
        broker.resume()
        #expect(eventually { completions.count == 5 })
        #expect(completions.values.allSatisfy { $0.outcome == .acknowledged })
        try client.publish(topic: "w", payload: [10], qos: .atLeastOnce)
        #expect(client.waitForPendingPublishes(timeoutSeconds: 10) == 0)
    }

    @Test func publishWhileDisconnectedFailsFastAndStopCompletesPendingPublishes() throws {
        let broker = try MosquittoBroker()
        let completions = Collector<MQTTPublishCompletion>()
        let client = try MQTTClient(configuration: configuration(broker, id: "down"), handlers: .init(onPublishCompleted: { completions.append($0) }))
        client.start()
        #expect(client.waitUntilConnected(timeoutSeconds: 10))
        broker.pause()
        try client.publish(topic: "d", payload: [1], qos: .atLeastOnce, token: 7)
        client.stop()
        #expect(completions.values.map(\.outcome) == [.notDelivered])
        #expect(completions.values.map(\.token) == [7])
        #expect(throws: MQTTError.closed) { try client.publish(topic: "d", payload: [2], qos: .atMostOnce) }
        broker.resume()
        broker.stop()

        let offline = try MQTTClient(configuration: configuration(broker, id: "offline"))
        offline.start()
        defer { offline.stop() }
        #expect(throws: MQTTError.notConnected) { try offline.publish(topic: "d", payload: [3], qos: .atLeastOnce) }
    }

    @Test func manyClientsShareOneEventLoop() throws {
        let broker = try MosquittoBroker()
        let loop = try MQTTEventLoop(name: "shared-test")
        defer { loop.shutdown() }
        let completions = Collector<MQTTPublishCompletion>()
        let descriptorsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        // Without libmosquitto's unused wake-up socket pairs: no descriptor until a client connects.
        let clients = try MQTTClient.withoutWakeUpDescriptors { () throws(MQTTError) in
            try (0..<300).map { index throws(MQTTError) in
                try MQTTClient(configuration: configuration(broker, id: "device-\(index)"), handlers: .init(onPublishCompleted: { completions.append($0) }), eventLoop: loop)
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count - descriptorsBefore < 10)
        for client in clients { client.start() }
        #expect(eventually(timeoutSeconds: 30) { clients.allSatisfy(\.isConnected) })
        for (index, client) in clients.enumerated() {
            try client.publish(topic: "fleet/\(index)", payload: Array("x".utf8), qos: .atLeastOnce, token: UInt64(index))
        }
        #expect(eventually(timeoutSeconds: 30) { completions.count == 300 })
        #expect(Set(completions.values.map(\.token)) == Set((0..<300).map(UInt64.init)))
        for client in clients { client.stop() }
    }

    @Test func rejectsConfigurationThatCannotWork() {
        #expect(throws: MQTTError.self) { try MQTTClient(configuration: MQTTConfiguration(clientID: nil, cleanSession: false)) }
        #expect(throws: MQTTError.self) { try MQTTClient(configuration: MQTTConfiguration(port: 0)) }
        var configuration = MQTTConfiguration(clientID: "x")
        configuration.limits.pendingPublishesMax = 70_000
        #expect(throws: MQTTError.self) { try MQTTClient(configuration: configuration) }
    }

    @Test func backoffGrowsToItsMaximumAndJitterOnlyShortens() {
        let backoff = MQTTBackoff(initialSeconds: 0.1, maximumSeconds: 5, jitter: 0.5)
        #expect(backoff.delaySeconds(afterFailures: 0, fraction: 0) == 0.1)
        #expect(backoff.delaySeconds(afterFailures: 3, fraction: 0) == 0.8)
        #expect(backoff.delaySeconds(afterFailures: 50, fraction: 0) == 5)
        #expect(backoff.delaySeconds(afterFailures: 50, fraction: 0.999) > 2.5)
    }
}

/// A TCP peer that speaks just enough MQTT 3.1.1 to accept a client: it refuses a v5 CONNECT with the
/// 3.1.1 CONNACK "unacceptable protocol version" (0x01) and accepts a level-4 CONNECT, as brokers
/// before v5 do. It records each CONNECT's protocol level.
final class MQTT311OnlyPeer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var levels: [UInt8] = []
    private var running = true

    var protocolLevels: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return levels
    }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && getsockname(listener, pointer, &length) == 0
            }
        }
        guard ok, listen(listener, 8) == 0 else { throw BrokerError("peer bind failed") }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    func stop() {
        lock.lock()
        running = false
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    private func serve() {
        while isRunning {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = read(client, &buffer, buffer.count)
            // CONNECT: fixed header, remaining length (1 byte here), "MQTT" name (2+4 bytes), level.
            guard count > 9, buffer[0] == 0x10 else {
                close(client)
                continue
            }
            let level = buffer[8]
            lock.lock()
            levels.append(level)
            lock.unlock()
            if level == 4 {
                _ = write(client, [UInt8]([0x20, 0x02, 0x00, 0x00]), 4)
                // Hold the connection, answering PINGREQ, until the client goes away.
                while isRunning {
                    let got = read(client, &buffer, buffer.count)
                    if got <= 0 { break }
                    if buffer[0] == 0xC0 { _ = write(client, [UInt8]([0xD0, 0x00]), 2) }
                }
            } else {
                _ = write(client, [UInt8]([0x20, 0x02, 0x00, 0x01]), 4)
            }
            close(client)
        }
    }
}
