import CMosquitto
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An MQTT client: subscriber, publisher or both.
///
/// ```swift
/// var configuration = MQTTConfiguration(host: "127.0.0.1", port: 1883, clientID: "gateway-1", cleanSession: false)
/// let client = try MQTTClient(configuration: configuration, handlers: .init(onMessage: { message in pipeline.offer(message) }))
/// try client.subscribe([MQTTSubscription("telemetry/#", qos: .atLeastOnce)])
/// client.start()
/// ```
/// `start` returns at once; the client connects in the background and keeps reconnecting (with backoff)
/// until `stop`. Subscriptions are remembered and sent again whenever the broker does not hold them
/// (a new session). Handlers run on the network thread (see `MQTTEventLoop`).
///
/// Known libmosquitto 2.0 behaviour the caller should plan for: a received QoS 1 message is acknowledged
/// (PUBACK) before `onMessage` runs, and there is no manual acknowledgement; and a QoS 1 message that was
/// in flight when the connection dropped is sent again after the reconnect, so a subscriber may see it
/// twice (at least once).
public final class MQTTClient: Sendable {
    public struct Handlers: Sendable {
        /// Each received message. Runs on the network thread: hand the message to a bounded queue and
        /// return; while it runs no client of the same loop reads or writes.
        public var onMessage: (@Sendable (MQTTMessage) -> Void)?
        /// Each publish that completed (PUBACK, written, refused, or not delivered).
        public var onPublishCompleted: (@Sendable (MQTTPublishCompletion) -> Void)?
        public var onConnectionEvent: (@Sendable (MQTTConnectionEvent) -> Void)?

        public init(
            onMessage: (@Sendable (MQTTMessage) -> Void)? = nil,
            onPublishCompleted: (@Sendable (MQTTPublishCompletion) -> Void)? = nil,
            onConnectionEvent: (@Sendable (MQTTConnectionEvent) -> Void)? = nil
        ) {
            self.onMessage = onMessage
            self.onPublishCompleted = onPublishCompleted
            self.onConnectionEvent = onConnectionEvent
        }
    }

    public let configuration: MQTTConfiguration
    let connection: MQTTConnection
    let loop: MQTTEventLoop
    let ownsLoop: Bool
    private let lifecycle = Mutex(Lifecycle.created)

    private enum Lifecycle { case created, started, stopped }

    /// The libmosquitto version this process runs against ("2.0.11").
    public static var libraryVersion: String { MosquittoLibrary.version }

    /// - Parameter eventLoop: the network thread to run on; nil gives the client a thread of its own.
    public init(
        configuration: MQTTConfiguration, handlers: Handlers = Handlers(), eventLoop: MQTTEventLoop? = nil,
        logger: Logger = Logger(label: "outpost.mqtt")
    ) throws(MQTTError) {
        guard MosquittoLibrary.initialized else {
            throw .library(code: -1, operation: "mosquitto_lib_init", message: "libmosquitto failed to initialise")
        }
        let configuration = try configuration.validated()
        self.configuration = configuration
        if let eventLoop {
            loop = eventLoop
            ownsLoop = false
        } else {
            loop = try MQTTEventLoop(name: "mqtt-\(configuration.clientID ?? "client")")
            ownsLoop = true
        }
        do throws(MQTTError) {
            connection = try MQTTConnection(configuration: configuration, handlers: handlers, loop: loop, logger: logger)
        } catch {
            if ownsLoop { loop.shutdown() }
            throw error
        }
    }

    deinit {
        // stop() is the orderly path. Here we can only ask: deinit may run on the network thread itself
        // (last reference dropped in a handler), which must not wait for itself.
        let needsStop = lifecycle.withLock { $0 == .started }
        if needsStop {
            connection.markClosed()
            loop.enqueue(.unregister(connection, DispatchSemaphore(value: 0)))
        }
        if ownsLoop { loop.requestShutdown() }
    }

    /// Runs `body`, which should create plain-TCP clients on an existing shared `MQTTEventLoop`, with the
    /// process's descriptor limit lowered to zero for its duration, so that libmosquitto cannot create the
    /// wake-up socket pair every `mosquitto_new` opens (two descriptors per client; it warns and carries on
    /// without it). The pair only interrupts libmosquitto's own select loop, which `MQTTEventLoop` never
    /// runs, so nothing is lost — and 10,000 clients need 10,000 descriptors instead of 30,000, which
    /// matters where the hard limit cannot be raised. While `body` runs no thread of the process can open a
    /// descriptor (nor can `body` create a client with its own loop or with TLS, which opens its CA file):
    /// call it at start-up, before anything else runs.
    public static func withoutWakeUpDescriptors<Value>(_ body: () throws(MQTTError) -> Value) throws(MQTTError) -> Value {
        _ = MosquittoLibrary.initialized
        var saved = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) == 0 else { return try body() }
        var lowered = saved
        lowered.rlim_cur = 0
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered)
        defer { _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) }
        return try body()
    }

    /// Starts connecting in the background. Returns at once.
    public func start() {
        let shouldStart = lifecycle.withLock { state -> Bool in
            guard state == .created else { return false }
            state = .started
            return true
        }
        if shouldStart { loop.enqueue(.register(connection)) }
    }

    /// Disconnects cleanly (DISCONNECT, so the broker does not publish a will or count a failure),
    /// completes every pending publish with `.notDelivered`, frees libmosquitto's state and, for a client
    /// with its own thread, ends the thread. Blocks until done (a few milliseconds). Not from a handler.
    public func stop() {
        Self.stop([self])
    }

    /// Stops many clients at once: every disconnect is queued before any is waited for, so clients
    /// sharing a loop are stopped in one pass of it rather than one after another.
    public static func stop(_ clients: [MQTTClient]) {
        var pending: [DispatchSemaphore] = []
        for client in clients {
            if let done = client.beginStop() { pending.append(done) }
        }
        for done in pending { done.wait() }
        for client in clients where client.ownsLoop { client.loop.shutdown() }
    }

    private func beginStop() -> DispatchSemaphore? {
        let wasStarted = lifecycle.withLock { state -> Bool in
            defer { state = .stopped }
            return state == .started
        }
        connection.markClosed()
        guard wasStarted else {
            connection.destroyUnstarted()
            return nil
        }
        let done = DispatchSemaphore(value: 0)
        loop.enqueue(.unregister(connection, done))
        return done
    }

    /// Adds subscriptions. They are sent now when connected and again after every reconnect that did
    /// not resume a session holding them. `SUBACK`s arrive as `.subscribed` events.
    public func subscribe(_ subscriptions: [MQTTSubscription]) throws(MQTTError) {
        try connection.subscribe(subscriptions)
    }

    /// Removes subscriptions (sent now when connected; forgotten for later reconnects either way).
    public func unsubscribe(_ filters: [String]) throws(MQTTError) {
        try connection.unsubscribe(filters)
    }

    /// Hands a message to libmosquitto and returns its packet id; completion arrives through
    /// `onPublishCompleted` with `token`. Never blocks: when the client is not connected it throws
    /// `.notConnected`, when `pendingPublishesMax` publishes are pending `.publishWindowFull`; nothing is
    /// sent or queued then.
    @discardableResult
    public func publish(
        topic: String, payload: UnsafeRawBufferPointer, qos: MQTTQoS, retain: Bool = false, token: UInt64 = 0
    ) throws(MQTTError) -> MQTTMessageID {
        try connection.publish(topic: topic, payload: payload, qos: qos, retain: retain, token: token, waiter: nil)
    }

    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool = false, token: UInt64 = 0) throws(MQTTError) -> MQTTMessageID {
        try payload.withUnsafeBytes { buffer in
            Result { () throws(MQTTError) in
                try connection.publish(topic: topic, payload: buffer, qos: qos, retain: retain, token: token, waiter: nil)
            }
        }.get()
    }

    /// Publishes and waits for completion: PUBACK for QoS 1, the packet written for QoS 0. Same
    /// admission rules as `publish` (throws at once rather than waiting for a free slot).
    public func publishAndWait(topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool = false) async throws(MQTTError) -> MQTTPublishOutcome {
        let result: Result<MQTTPublishOutcome, MQTTError> = await withCheckedContinuation { continuation in
            let admitted = payload.withUnsafeBytes { buffer in
                Result { () throws(MQTTError) in
                    try connection.publish(topic: topic, payload: buffer, qos: qos, retain: retain, token: 0, waiter: continuation)
                }
            }
            if case .failure(let error) = admitted { continuation.resume(returning: .failure(error)) }
        }
        return try result.get()
    }

    /// True between an accepted CONNACK and the next disconnect.
    public var isConnected: Bool { connection.shared.withLock { $0.connected } }

    /// Filters the broker has granted (SUBACK) in the current session. A connection that did not resume a
    /// session starts with none again, until the resent SUBSCRIBEs are acknowledged.
    public var acknowledgedSubscriptions: Set<String> { connection.shared.withLock { $0.confirmed } }

    /// The protocol of the current (or last) connection; nil before the first CONNACK.
    public var negotiatedProtocol: MQTTProtocolVersion? { connection.shared.withLock { $0.negotiated } }

    public func statistics() -> MQTTClientStatistics {
        connection.shared.withLock { state in
            var snapshot = state.statistics
            snapshot.publishesPending = state.pending.count + state.reserved
            return snapshot
        }
    }

    /// Waits (polling every 5 ms: start-up and tests only) until connected; false on timeout.
    public func waitUntilConnected(timeoutSeconds: Double) -> Bool {
        poll(timeoutSeconds: timeoutSeconds) { isConnected }
    }

    /// Waits until no publish is pending or the timeout passes; returns how many are still pending.
    public func waitForPendingPublishes(timeoutSeconds: Double) -> Int {
        _ = poll(timeoutSeconds: timeoutSeconds) { statistics().publishesPending == 0 }
        return statistics().publishesPending
    }

    private func poll(timeoutSeconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicNanoseconds() + UInt64(max(0, timeoutSeconds) * 1e9)
        while !condition() {
            if monotonicNanoseconds() >= deadline { return false }
            usleep(5_000)
        }
        return true
    }
}

extension MQTTEventLoop {
    /// Asks the thread to end without waiting (for deinit, which may run on the thread itself).
    func requestShutdown() {
        let thread = Thread { [self] in shutdown() }
        thread.start()
    }
}
