import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import OutpostCore
import OutpostMQTT

/// MQTT input: a persistent-session subscriber at the box's broker, feeding the pipeline.
///
/// libmosquitto sends the QoS 1 PUBACK before the message callback runs and has no manual
/// acknowledgement, so a message is acknowledged to the broker before the gateway has committed it. The
/// gap — receipt to fsync of its batch — is kept as small as batching allows (linger) and measured as
/// `outpost_gateway_mqtt_puback_to_commit_seconds`; a crash inside it loses those messages (README).
///
/// Messages move from the network thread to one event loop through a bounded number of in-flight
/// hand-offs; when they run out, or the pipeline's gate is closed, the callback waits, the network thread
/// stops reading, and the broker holds further messages in the session (flow control).
final class MQTTIngest: @unchecked Sendable {
    /// Messages handed to the event loop but not yet processed; the callback blocks beyond it.
    static let inFlightMessagesMax = 4096

    let pipeline: IngestPipeline
    let eventLoop: any EventLoop
    let logger: Logger
    private let client: MQTTClient?
    private let routes: NIOLockedValueBox<[MQTTIngestSubscription]>
    private let state = NIOLockedValueBox("connecting")
    private let slots = DispatchSemaphore(value: MQTTIngest.inFlightMessagesMax)
    private let keepAliveSeconds: Double

    init(configuration: MQTTListenerConfiguration, gatewayId: String, pipeline: IngestPipeline, eventLoop: any EventLoop, logger: Logger) {
        self.pipeline = pipeline
        self.eventLoop = eventLoop
        self.logger = logger
        routes = NIOLockedValueBox(configuration.subscriptions)
        keepAliveSeconds = Double(configuration.keepAliveSeconds)
        let clientId: String
        if let configured = configuration.clientId {
            clientId = configured
        } else {
            clientId = "outpost-" + gatewayId
            logger.warning("MQTT client id is generated, not configured: a persistent session needs a stable id; set listeners.mqtt.client_id", metadata: ["client_id": "\(clientId)"])
        }
        var mqtt = MQTTConfiguration(host: configuration.broker.host, port: configuration.broker.port, clientID: clientId, cleanSession: false)
        mqtt.keepAliveSeconds = configuration.keepAliveSeconds
        mqtt.username = configuration.username
        mqtt.password = configuration.password
        if configuration.caFile != nil || configuration.certificateFile != nil || configuration.tlsInsecure {
            mqtt.tls = MQTTTLSConfiguration(caFile: configuration.caFile, certificateFile: configuration.certificateFile, keyFile: configuration.keyFile, insecure: configuration.tlsInsecure)
        }
        let state = self.state
        let holder = WeakHolder()
        do {
            let client = try MQTTClient(
                configuration: mqtt,
                handlers: .init(
                    onMessage: { message in holder.ingest?.receive(message) },
                    onConnectionEvent: { event in
                        switch event {
                        case .connected(let version, let sessionPresent):
                            state.withLockedValue { $0 = "connected" }
                            logger.info("MQTT connected", metadata: ["protocol": "\(version)", "session_present": "\(sessionPresent)"])
                        case .connectFailed(let reason, let retry):
                            state.withLockedValue { $0 = "reconnecting" }
                            logger.warning("MQTT connect failed; retrying", metadata: ["reason": "\(reason)", "retry_in_seconds": "\(retry)"])
                        case .disconnected(let reason, let expected):
                            state.withLockedValue { $0 = expected ? "stopped" : "reconnecting" }
                            if !expected { logger.warning("MQTT disconnected; reconnecting", metadata: ["reason": "\(reason)"]) }
                        case .subscribed(let filter, let granted):
                            logger.info("MQTT subscribed", metadata: ["filter": "\(filter)", "granted_qos": "\(granted.map { "\($0.rawValue)" } ?? "refused")"])
                        default:
                            break
                        }
                    }),
                logger: logger)
            try client.subscribe(configuration.subscriptions.map { OutpostMQTT.MQTTSubscription($0.filter, qos: $0.qos == 0 ? .atMostOnce : .atLeastOnce) })
            self.client = client
        } catch {
            logger.error("MQTT listener could not be set up", metadata: ["error": "\(error)"])
            self.client = nil
            state.withLockedValue { $0 = "failed: \(error)" }
        }
        holder.ingest = self
    }

    var connectionState: String { state.withLockedValue { $0 } }

    /// "granted/configured" subscriptions, for /healthz: connected is not yet subscribed, and a message
    /// published before its filter's SUBACK never reaches this session.
    var subscriptionState: String {
        let filters = Set(routes.withLockedValue { $0.map(\.filter) })
        let granted = client?.acknowledgedSubscriptions ?? []
        return "\(filters.intersection(granted).count)/\(filters.count)"
    }

    func start() { client?.start() }

    func stop() { client?.stop() }

    /// SIGHUP: subscribe to what is new, unsubscribe from what is gone, route by the new list.
    func resubscribe(_ subscriptions: [MQTTIngestSubscription]) {
        let old = routes.withLockedValue { current -> [MQTTIngestSubscription] in
            defer { current = subscriptions }
            return current
        }
        let removed = Set(old.map(\.filter)).subtracting(subscriptions.map(\.filter))
        do {
            if !removed.isEmpty { try client?.unsubscribe(Array(removed)) }
            try client?.subscribe(subscriptions.map { OutpostMQTT.MQTTSubscription($0.filter, qos: $0.qos == 0 ? .atMostOnce : .atLeastOnce) })
        } catch {
            logger.error("MQTT resubscribe failed", metadata: ["error": "\(error)"])
        }
    }

    /// On the network thread.
    private func receive(_ message: MQTTMessage) {
        let receivedUptime = IngestPipeline.uptimeNanoseconds()
        if !pipeline.gate.isOpen {
            // Wait, but not past half a keep-alive: the same thread must still answer the broker's pings.
            _ = pipeline.gate.waitUntilOpen(timeoutSeconds: keepAliveSeconds / 2)
        }
        if slots.wait(timeout: .now() + keepAliveSeconds / 2) == .timedOut {
            logger.warning("MQTT hand-off queue stayed full for half a keep-alive; taking the message anyway")
        }
        let route = routes.withLockedValue { subscriptions in subscriptions.first { Self.matches(filter: $0.filter, topic: message.topic, kind: $0.kind) } }
        eventLoop.execute { [self] in
            defer { slots.signal() }
            let batcher = pipeline.batcher(for: eventLoop)
            message.payload.withUnsafeBytes { payload in
                switch route?.kind {
                case .plainValues(let template)?:
                    pipeline.ingestPlainValue(topic: message.topic, payload: payload, template: template, batcher: batcher, receivedUptime: receivedUptime)
                case .readings(_, let format)?:
                    _ = pipeline.ingestLines(payload, endOfInput: true, format: format, source: .mqtt, batcher: batcher, firstLine: 1, mqttReceivedUptime: receivedUptime)
                case nil:
                    pipeline.metrics.received[IngestSource.mqtt.index].increment()
                    let error = PointParseError(.topicMismatch, "no subscription routes topic '\(message.topic)'", column: 1)
                    pipeline.rejects.reject(error, source: .mqtt, raw: payload, receivedAt: message.receivedAtNanoseconds)
                }
            }
        }
    }

    /// MQTT filter matching (`+` one level, `#` the rest); a template also checks its literal levels.
    static func matches(filter: String, topic: String, kind: MQTTIngestSubscription.Kind) -> Bool {
        if case .plainValues(let template) = kind { return template.matches(topic) }
        let filterLevels = filter.split(separator: "/", omittingEmptySubsequences: false)
        let topicLevels = topic.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in filterLevels.enumerated() {
            if level == "#" { return true }
            guard index < topicLevels.count else { return false }
            if level != "+" && level != topicLevels[index] { return false }
        }
        return filterLevels.count == topicLevels.count
    }
}

/// Breaks the cycle client → handler → ingest → client.
private final class WeakHolder: @unchecked Sendable {
    weak var ingest: MQTTIngest?
}
