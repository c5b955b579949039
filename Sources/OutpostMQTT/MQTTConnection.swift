import CMosquitto
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One libmosquitto client instance and its state. `loop*` methods run on the event loop's thread only;
/// `publish`, `subscribe` and `unsubscribe` run on any thread (libmosquitto in threaded mode allows it).
final class MQTTConnection: @unchecked Sendable {
    // @unchecked: `handle` is used off the loop thread only under `api`; the loop-thread `var`s are never
    // touched elsewhere; everything shared sits in `shared`.

    let configuration: MQTTConfiguration
    let handlers: MQTTClient.Handlers
    let logger: Logger
    let loop: MQTTEventLoop
    let handle: OpaquePointer
    /// Shared between the loop thread and callers.
    let shared = Mutex(SharedState())
    /// Held around every libmosquitto call made off the loop thread; `true` once the handle is destroyed,
    /// so a late publish cannot touch freed memory.
    let api = Mutex(false)
    /// Set when a caller queued packets and asked the loop to write them; cleared by the loop before it
    /// writes, so at most one write request per client sits in the loop's queue.
    let writeRequested = Atomic<Bool>(false)

    // Loop-thread state.
    var registeredDescriptor: Int32 = -1
    /// Index of this client's entry in the loop's poll array; -1 when it has none.
    var pollIndex = -1
    /// libmosquitto closed the socket (on_disconnect ran): the loop must forget the descriptor even if a
    /// new socket reuses its number.
    var loopSocketClosed = false
    private var phase = Phase.idle
    private var failures = 0
    private var activeProtocol: MQTTProtocolVersion
    private var connectCalled = false
    private var propertiesInstalled = false
    private var fallbackPending = false
    private var refusal: String?
    private var random = SystemRandomNumberGenerator()

    enum Phase: Equatable {
        case idle
        case connecting(deadline: UInt64)
        case connected
        case waiting(until: UInt64)
        case stopping
        case stopped
    }

    struct PendingPublish {
        var qos: MQTTQoS
        var token: UInt64
        var epoch: UInt64
        var startedAt: UInt64
        var waiter: CheckedContinuation<Result<MQTTPublishOutcome, MQTTError>, Never>?
    }

    struct SharedState {
        var connected = false
        var closed = false
        /// Counts CONNACKs: a QoS 0 packet queued under an older epoch was dropped by libmosquitto on
        /// reconnect and will never complete by itself.
        var epoch: UInt64 = 0
        var negotiated: MQTTProtocolVersion?
        var pending: [UInt16: PendingPublish] = [:]
        /// Completions that arrived before `publish` had registered the packet id (the loop thread can
        /// write and get the PUBACK before mosquitto_publish's caller gets the id back).
        var early: [UInt16: Int32] = [:]
        /// Window slots taken by publishes between admission and registration.
        var reserved = 0
        var statistics = MQTTClientStatistics()
        var subscriptions: [MQTTSubscription] = []
        /// Filters the broker confirmed in the current session.
        var confirmed: Set<String> = []
        var subscribeRequests: [UInt16: [MQTTSubscription]] = [:]
    }

    init(configuration: MQTTConfiguration, handlers: MQTTClient.Handlers, loop: MQTTEventLoop, logger: Logger) throws(MQTTError) {
        self.configuration = configuration
        self.handlers = handlers
        self.loop = loop
        self.logger = logger
        activeProtocol = configuration.protocolVersion == .v311 ? .v311 : .v5
        let created: OpaquePointer? = configuration.clientID.map { id in
            id.withCString { mosquitto_new($0, configuration.cleanSession, nil) }
        } ?? mosquitto_new(nil, true, nil)
        guard let created else { throw .system(operation: "mosquitto_new", errno: errno) }
        handle = created
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        do {
            try configure()
        } catch {
            mosquitto_destroy(handle)
            throw error
        }
    }

    private func configure() throws(MQTTError) {
        // Threaded mode: publish/subscribe from other threads queue packets instead of writing them.
        try check(mosquitto_threaded_set(handle, true), "mosquitto_threaded_set")
        try check(mosquitto_max_inflight_messages_set(handle, UInt32(configuration.limits.inflightMessagesMax)), "max_inflight_messages")
        if configuration.tcpNoDelay {
            try check(mosquitto_int_option(handle, MOSQ_OPT_TCP_NODELAY, 1), "MOSQ_OPT_TCP_NODELAY")
        }
        if let username = configuration.username {
            let rc = username.withCString { user in
                configuration.password.map { password in password.withCString { mosquitto_username_pw_set(handle, user, $0) } }
                    ?? mosquitto_username_pw_set(handle, user, nil)
            }
            try check(rc, "mosquitto_username_pw_set")
        }
        if let tls = configuration.tls {
            let rc = withOptionalCString(tls.caFile) { caFile in
                withOptionalCString(tls.caDirectory) { caDirectory in
                    withOptionalCString(tls.certificateFile) { certificate in
                        withOptionalCString(tls.keyFile) { key in
                            mosquitto_tls_set(handle, caFile, caDirectory, certificate, key, nil)
                        }
                    }
                }
            }
            try check(rc, "mosquitto_tls_set")
            try check(mosquitto_tls_insecure_set(handle, tls.insecure), "mosquitto_tls_insecure_set")
            if let version = tls.version {
                try check(version.withCString { mosquitto_tls_opts_set(handle, 1, $0, nil) }, "mosquitto_tls_opts_set")
            }
        }
        mosquitto_connect_v5_callback_set(handle) { _, object, reason, flags, _ in
            MQTTConnection.from(object)?.loopDidConnect(reason: reason, flags: flags)
        }
        mosquitto_disconnect_v5_callback_set(handle) { _, object, reason, _ in
            MQTTConnection.from(object)?.loopDidDisconnect(reason: reason)
        }
        mosquitto_publish_v5_callback_set(handle) { _, object, messageID, reason, _ in
            MQTTConnection.from(object)?.didCompletePublish(messageID: messageID, reason: reason)
        }
        mosquitto_message_v5_callback_set(handle) { _, object, message, _ in
            guard let message else { return }
            MQTTConnection.from(object)?.loopDidReceive(message.pointee)
        }
        mosquitto_subscribe_v5_callback_set(handle) { _, object, messageID, count, granted, _ in
            MQTTConnection.from(object)?.loopDidSubscribe(messageID: messageID, granted: UnsafeBufferPointer(start: granted, count: Int(count)))
        }
    }

    static func from(_ object: UnsafeMutableRawPointer?) -> MQTTConnection? {
        object.map { Unmanaged<MQTTConnection>.fromOpaque($0).takeUnretainedValue() }
    }

    private func check(_ rc: Int32, _ operation: String) throws(MQTTError) {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw Self.libraryError(rc, operation) }
    }

    static func libraryError(_ rc: Int32, _ operation: String) -> MQTTError {
        .library(code: Int(rc), operation: operation, message: describe(rc))
    }

    static func describe(_ rc: Int32) -> String {
        if rc == MOSQ_ERR_ERRNO.rawValue { return String(cString: strerror(errno)) }
        return mosquitto_strerror(rc).map { String(cString: $0) } ?? "error \(rc)"
    }

    // MARK: Any thread

    func markClosed() {
        shared.withLock { $0.closed = true }
    }

    /// For a client stopped before it was started: no loop ever saw the handle.
    func destroyUnstarted() {
        api.withLock { destroyed in
            guard !destroyed else { return }
            destroyed = true
            mosquitto_destroy(handle)
        }
    }

    func requestWrite() {
        if !writeRequested.exchange(true, ordering: .acquiringAndReleasing) {
            loop.enqueue(.write(self))
        }
    }

    func publish(
        topic: String, payload: UnsafeRawBufferPointer, qos: MQTTQoS, retain: Bool, token: UInt64,
        waiter: CheckedContinuation<Result<MQTTPublishOutcome, MQTTError>, Never>?
    ) throws(MQTTError) -> MQTTMessageID {
        let limit = configuration.limits.pendingPublishesMax
        let epoch = try shared.withLock { (state) throws(MQTTError) -> UInt64 in
            guard !state.closed else { throw .closed }
            guard state.connected else {
                state.statistics.publishesRejected += 1
                throw .notConnected
            }
            guard state.pending.count + state.reserved < limit else {
                state.statistics.publishesRejected += 1
                throw .publishWindowFull(limit: limit)
            }
            state.reserved += 1
            return state.epoch
        }
        let startedAt = monotonicNanoseconds()
        var messageID: Int32 = 0
        let rc = api.withLock { destroyed -> Int32 in
            guard !destroyed else { return -1_000 }
            return topic.withCString { topicPointer in
                mosquitto_publish_v5(handle, &messageID, topicPointer, Int32(payload.count), payload.baseAddress, Int32(qos.rawValue), retain, nil)
            }
        }
        // MOSQ_ERR_NO_CONN for QoS 1 still leaves the message in libmosquitto's queue (it is sent after the
        // reconnect), so it is pending like any other; for QoS 0 it means the packet was dropped.
        let accepted = rc == MOSQ_ERR_SUCCESS.rawValue || (rc == MOSQ_ERR_NO_CONN.rawValue && qos == .atLeastOnce)
        guard accepted else {
            shared.withLock { state in
                state.reserved -= 1
                state.statistics.publishesRejected += 1
            }
            if rc == -1_000 { throw .closed }
            if rc == MOSQ_ERR_NO_CONN.rawValue { throw .notConnected }
            throw Self.libraryError(rc, "mosquitto_publish")
        }
        let id = UInt16(truncatingIfNeeded: messageID)
        let entry = PendingPublish(qos: qos, token: token, epoch: epoch, startedAt: startedAt, waiter: waiter)
        let earlyReason = shared.withLock { state -> Int32? in
            state.reserved -= 1
            state.statistics.publishesAccepted += 1
            if let reason = state.early.removeValue(forKey: id) { return reason }
            state.pending[id] = entry
            return nil
        }
        if let earlyReason {
            finish(id: id, entry: entry, outcome: Self.outcome(qos: qos, reason: earlyReason))
        }
        requestWrite()
        return MQTTMessageID(rawValue: id)
    }

    func subscribe(_ subscriptions: [MQTTSubscription]) throws(MQTTError) {
        let connected = try shared.withLock { (state) throws(MQTTError) -> Bool in
            guard !state.closed else { throw .closed }
            for subscription in subscriptions {
                state.subscriptions.removeAll { $0.filter == subscription.filter }
                state.subscriptions.append(subscription)
                state.confirmed.remove(subscription.filter)
            }
            return state.connected
        }
        if connected {
            let sent = api.withLock { destroyed in destroyed ? false : sendSubscribe(subscriptions) }
            if sent { requestWrite() }
        }
    }

    func unsubscribe(_ filters: [String]) throws(MQTTError) {
        let connected = try shared.withLock { (state) throws(MQTTError) -> Bool in
            guard !state.closed else { throw .closed }
            state.subscriptions.removeAll { filters.contains($0.filter) }
            for filter in filters { state.confirmed.remove(filter) }
            return state.connected
        }
        guard connected else { return }
        api.withLock { destroyed in
            guard !destroyed else { return }
            for filter in filters {
                _ = filter.withCString { mosquitto_unsubscribe_v5(handle, nil, $0, nil) }
            }
        }
        requestWrite()
    }

    /// Sends SUBSCRIBE packets (queued; the loop writes them). Caller holds `api` or is the loop thread.
    private func sendSubscribe(_ subscriptions: [MQTTSubscription]) -> Bool {
        var any = false
        for subscription in subscriptions {
            var messageID: Int32 = 0
            let rc = subscription.filter.withCString {
                mosquitto_subscribe_v5(handle, &messageID, $0, Int32(subscription.qos.rawValue), 0, nil)
            }
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                shared.withLock { $0.subscribeRequests[UInt16(truncatingIfNeeded: messageID)] = [subscription] }
                any = true
            } else {
                logger.warning("subscribe failed", metadata: ["filter": "\(subscription.filter)", "error": "\(Self.describe(rc))"])
            }
        }
        return any
    }

    /// on_publish: PUBACK for QoS 1, written for QoS 0. Runs on the loop thread.
    private func didCompletePublish(messageID: Int32, reason: Int32) {
        let id = UInt16(truncatingIfNeeded: messageID)
        let entry = shared.withLock { state -> PendingPublish? in
            if let entry = state.pending.removeValue(forKey: id) { return entry }
            state.early[id] = reason
            return nil
        }
        if let entry { finish(id: id, entry: entry, outcome: Self.outcome(qos: entry.qos, reason: reason)) }
    }

    private static func outcome(qos: MQTTQoS, reason: Int32) -> MQTTPublishOutcome {
        if reason >= 0x80 { return .refused(reasonCode: Int(reason)) }
        return qos == .atMostOnce ? .written : .acknowledged
    }

    /// Reports a completion (the entry is already out of `pending`).
    private func finish(id: UInt16, entry: PendingPublish, outcome: MQTTPublishOutcome) {
        shared.withLock { state in
            switch outcome {
            case .acknowledged: state.statistics.publishesAcknowledged += 1
            case .written: state.statistics.publishesWritten += 1
            case .refused: state.statistics.publishesRefused += 1
            case .notDelivered: state.statistics.publishesNotDelivered += 1
            }
        }
        if let waiter = entry.waiter {
            waiter.resume(returning: .success(outcome))
        } else if let handler = handlers.onPublishCompleted {
            let latency = monotonicNanoseconds() &- entry.startedAt
            handler(MQTTPublishCompletion(token: entry.token, messageID: MQTTMessageID(rawValue: id), qos: entry.qos, outcome: outcome, latencyNanoseconds: latency))
        }
    }

    /// Completes as `.notDelivered` the pending publishes `selected` picks.
    private func abandonPending(where selected: (PendingPublish) -> Bool) {
        let abandoned = shared.withLock { state -> [(UInt16, PendingPublish)] in
            let picked = state.pending.filter { selected($0.value) }
            for (id, _) in picked { state.pending[id] = nil }
            return picked.map { ($0.key, $0.value) }
        }
        for (id, entry) in abandoned { finish(id: id, entry: entry, outcome: .notDelivered) }
    }

    // MARK: Loop thread

    var isWaitingToReconnect: Bool {
        if case .waiting = phase { return true }
        return false
    }

    func loopCurrentSocket() -> Int32 {
        switch phase {
        case .stopped, .idle: -1
        default: mosquitto_socket(handle)
        }
    }

    func loopWantsWrite() -> Bool { mosquitto_want_write(handle) }

    func loopStart(now: UInt64) {
        guard phase == .idle else { return }
        loopConnect(now: now)
    }

    private func loopConnect(now: UInt64) {
        loop.loopWaiting[ObjectIdentifier(self)] = nil
        refusal = nil
        let protocolValue = activeProtocol == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        _ = mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, Int32(protocolValue))
        let keepAlive = Int32(configuration.keepAliveSeconds)
        let port = Int32(configuration.port)
        let rc: Int32
        let wantsSessionExpiry = activeProtocol == .v5 && !configuration.cleanSession
        if !connectCalled && wantsSessionExpiry {
            // MQTT v5 ends a session at disconnect unless CONNECT carries a session expiry interval.
            // libmosquitto takes CONNECT properties only in its blocking connect; it keeps them for the
            // asynchronous reconnects that follow.
            var properties: OpaquePointer?
            _ = mosquitto_property_add_int32(&properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), configuration.sessionExpirySeconds)
            rc = configuration.host.withCString { host in
                withOptionalCString(configuration.bindAddress) { bind in
                    mosquitto_connect_bind_v5(handle, host, port, keepAlive, bind, properties)
                }
            }
            mosquitto_property_free_all(&properties)
            propertiesInstalled = true
        } else if activeProtocol == .v311 && propertiesInstalled {
            // After a fall back to 3.1.1 the v5 properties must go: only connect_bind_v5 clears them.
            rc = configuration.host.withCString { host in
                withOptionalCString(configuration.bindAddress) { bind in
                    mosquitto_connect_bind_v5(handle, host, port, keepAlive, bind, nil)
                }
            }
            propertiesInstalled = false
        } else if !connectCalled {
            rc = configuration.host.withCString { host in
                withOptionalCString(configuration.bindAddress) { bind in
                    mosquitto_connect_bind_async(handle, host, port, keepAlive, bind)
                }
            }
        } else {
            rc = mosquitto_reconnect_async(handle)
        }
        connectCalled = true
        if rc == MOSQ_ERR_SUCCESS.rawValue {
            phase = .connecting(deadline: now + UInt64(configuration.limits.connectTimeoutSeconds * 1e9))
        } else {
            loopScheduleRetry(reason: Self.describe(rc), now: now)
        }
    }

    private func loopScheduleRetry(reason: String, now: UInt64) {
        var delay = configuration.reconnect.delaySeconds(afterFailures: failures, fraction: Double.random(in: 0..<1, using: &random))
        if fallbackPending {
            fallbackPending = false
            delay = 0
        } else {
            failures += 1
        }
        phase = .waiting(until: now + UInt64(delay * 1e9))
        loop.loopWaiting[ObjectIdentifier(self)] = self
        shared.withLock { $0.statistics.connectFailures += 1 }
        if failures <= 3 || failures % 20 == 0 {
            logger.warning("MQTT connect failed", metadata: [
                "broker": "\(configuration.host):\(configuration.port)", "client_id": "\(configuration.clientID ?? "-")",
                "reason": "\(reason)", "attempt": "\(failures)", "retry_in_s": "\(delay)",
            ])
        }
        handlers.onConnectionEvent?(.connectFailed(reason: reason, retryInSeconds: delay))
    }

    func loopReconnectIfDue(now: UInt64) {
        guard case .waiting(let until) = phase, now >= until else { return }
        loopConnect(now: now)
    }

    func loopHandle(events: Int16) {
        let readable = Int16(POLLIN) | Int16(POLLERR) | Int16(POLLHUP) | Int16(POLLNVAL)
        var rc = MOSQ_ERR_SUCCESS.rawValue
        if events & readable != 0 {
            rc = mosquitto_loop_read(handle, 1)
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue, events & Int16(POLLOUT) != 0, !loopSocketClosed {
            rc = mosquitto_loop_write(handle, 1)
        }
        loopCheckFailure(rc)
    }

    func loopFlush() {
        writeRequested.store(false, ordering: .releasing)
        switch phase {
        case .connected, .connecting:
            loopCheckFailure(mosquitto_loop_write(handle, 1))
        default:
            break
        }
    }

    /// libmosquitto reports most failures through on_disconnect; a few (a failed TLS handshake) only
    /// through the return code. Treat those as a lost connection too.
    private func loopCheckFailure(_ rc: Int32) {
        guard rc != MOSQ_ERR_SUCCESS.rawValue, !loopSocketClosed else { return }
        switch phase {
        case .connecting, .connected:
            if rc == MOSQ_ERR_NO_CONN.rawValue || rc == MOSQ_ERR_TLS.rawValue || rc == MOSQ_ERR_TLS_HANDSHAKE.rawValue
                || mosquitto_socket(handle) < 0
            {
                loopSocketClosed = true
                loopLost(reason: Self.describe(rc))
            }
        default:
            break
        }
    }

    func loopPeriodic(now: UInt64) {
        switch phase {
        case .connecting(let deadline) where now > deadline:
            // Stop watching the socket; the next reconnect closes it.
            loopSocketClosed = true
            loopLost(reason: "no CONNACK within \(configuration.limits.connectTimeoutSeconds) s")
        case .connected:
            loopCheckFailure(mosquitto_loop_misc(handle))
        default:
            break
        }
    }

    func loopStop() {
        let wasConnected = phase == .connected
        phase = .stopping
        if wasConnected {
            _ = mosquitto_disconnect_v5(handle, 0, nil)
            // Best effort: push DISCONNECT out now; libmosquitto closes the socket once it is written.
            _ = mosquitto_loop_write(handle, 1)
        }
        phase = .stopped
        shared.withLock { $0.connected = false }
        abandonPending { _ in true }
        if wasConnected {
            handlers.onConnectionEvent?(.disconnected(reason: "client stopped", expected: true))
        }
    }

    func loopDestroy() {
        api.withLock { destroyed in
            guard !destroyed else { return }
            destroyed = true
            mosquitto_destroy(handle)
        }
    }

    private func loopDidConnect(reason: Int32, flags: Int32) {
        guard reason == 0 else {
            let refusedVersion = reason == Int32(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION.rawValue)
                || (activeProtocol == .v311 && reason == 1)
            if refusedVersion && configuration.protocolVersion == .automatic && activeProtocol == .v5 {
                activeProtocol = .v311
                fallbackPending = true
                logger.notice("broker does not speak MQTT v5; falling back to 3.1.1", metadata: ["broker": "\(configuration.host):\(configuration.port)"])
                handlers.onConnectionEvent?(.fellBackToMQTT311)
            }
            refusal = "CONNACK refused: " + (activeProtocol == .v5 || fallbackPending
                ? (mosquitto_reason_string(reason).map { String(cString: $0) } ?? "reason \(reason)")
                : (mosquitto_connack_string(reason).map { String(cString: $0) } ?? "code \(reason)"))
            return
        }
        let sessionPresent = flags & 1 != 0
        phase = .connected
        failures = 0
        let protocolVersion = activeProtocol
        let toSubscribe = shared.withLock { state -> [MQTTSubscription] in
            state.connected = true
            state.epoch += 1
            state.negotiated = protocolVersion
            state.statistics.connects += 1
            if !sessionPresent { state.confirmed.removeAll() }
            return state.subscriptions.filter { !state.confirmed.contains($0.filter) }
        }
        let currentEpoch = shared.withLock { $0.epoch }
        abandonPending { $0.qos == .atMostOnce && $0.epoch < currentEpoch }
        if !toSubscribe.isEmpty { _ = sendSubscribe(toSubscribe) }
        logger.info("MQTT connected", metadata: [
            "broker": "\(configuration.host):\(configuration.port)", "client_id": "\(configuration.clientID ?? "-")",
            "protocol": "\(protocolVersion)", "session_present": "\(sessionPresent)", "resubscribed": "\(toSubscribe.count)",
        ])
        handlers.onConnectionEvent?(.connected(protocolVersion: protocolVersion, sessionPresent: sessionPresent))
    }

    private func loopDidDisconnect(reason: Int32) {
        loopSocketClosed = true
        switch phase {
        case .stopping, .stopped, .waiting, .idle:
            return
        case .connecting, .connected:
            loopLost(reason: refusal ?? (reason == 0 ? "closed" : Self.describe(reason)))
        }
    }

    /// The connection (or the attempt) is gone: fail what cannot complete any more, schedule the retry.
    private func loopLost(reason: String) {
        let now = monotonicNanoseconds()
        let wasConnected = phase == .connected
        shared.withLock { state in
            if state.connected { state.statistics.disconnects += 1 }
            state.connected = false
        }
        // QoS 0 packets still queued are dropped by libmosquitto on reconnect; QoS 1 stay and are resent.
        let currentEpoch = shared.withLock { $0.epoch }
        abandonPending { $0.qos == .atMostOnce && $0.epoch <= currentEpoch }
        if wasConnected {
            failures = 0
            logger.warning("MQTT connection lost", metadata: ["broker": "\(configuration.host):\(configuration.port)", "reason": "\(reason)"])
            handlers.onConnectionEvent?(.disconnected(reason: reason, expected: false))
            let delay = configuration.reconnect.delaySeconds(afterFailures: 0, fraction: Double.random(in: 0..<1, using: &random))
            phase = .waiting(until: now + UInt64(delay * 1e9))
            loop.loopWaiting[ObjectIdentifier(self)] = self
        } else {
            loopScheduleRetry(reason: reason, now: now)
        }
    }

    private func loopDidReceive(_ message: mosquitto_message) {
        let received = wallClockNanoseconds()
        let topic = message.topic.map { String(cString: $0) } ?? ""
        let payload: [UInt8] = message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(message.payloadlen))) } ?? []
        shared.withLock { $0.statistics.messagesReceived += 1 }
        handlers.onMessage?(MQTTMessage(
            topic: topic, payload: payload, qos: message.qos >= 1 ? .atLeastOnce : .atMostOnce, retain: message.retain,
            receivedAtNanoseconds: received))
    }

    private func loopDidSubscribe(messageID: Int32, granted: UnsafeBufferPointer<Int32>) {
        let id = UInt16(truncatingIfNeeded: messageID)
        let subscriptions = shared.withLock { state -> [MQTTSubscription] in
            let requested = state.subscribeRequests.removeValue(forKey: id) ?? []
            for (subscription, grant) in zip(requested, granted) where grant < 0x80 {
                state.confirmed.insert(subscription.filter)
            }
            return requested
        }
        for (subscription, grant) in zip(subscriptions, granted) {
            let grantedQoS: MQTTQoS? = grant < 0x80 ? MQTTQoS(rawValue: Int(min(grant, 1))) : nil
            if grantedQoS == nil {
                logger.warning("subscription refused", metadata: ["filter": "\(subscription.filter)", "reason": "\(grant)"])
            }
            handlers.onConnectionEvent?(.subscribed(filter: subscription.filter, grantedQoS: grantedQoS))
        }
    }
}

/// `withCString` for an optional string: nil passes a null pointer.
func withOptionalCString<Result>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
