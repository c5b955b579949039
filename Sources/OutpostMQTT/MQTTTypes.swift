/// Delivery guarantee of one publish or subscription. QoS 2 is not offered: nothing in Outpost needs it
/// and every acknowledged path dedupes by device sequence number instead.
public enum MQTTQoS: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// At most once: fire and forget.
    case atMostOnce = 0
    /// At least once: the broker answers PUBACK; unacknowledged messages are resent after a reconnect.
    case atLeastOnce = 1

    public var description: String { "QoS \(rawValue)" }
}

/// Which protocol to speak. `.automatic` tries MQTT v5 and falls back to 3.1.1 when the broker answers
/// "unsupported protocol version"; the fallback lasts for the life of the client.
public enum MQTTProtocolPreference: String, Sendable, Hashable {
    case automatic
    case v5
    case v311
}

/// The protocol a connection actually runs.
public enum MQTTProtocolVersion: String, Sendable, Hashable, CustomStringConvertible {
    case v5 = "5.0"
    case v311 = "3.1.1"

    public var description: String { rawValue }
}

/// A packet identifier as libmosquitto assigns it (1...65535, reused after completion).
public struct MQTTMessageID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public var description: String { String(rawValue) }
}

/// One message received on a subscription, copied out of libmosquitto's buffers.
public struct MQTTMessage: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: MQTTQoS
    public var retain: Bool
    /// Wall-clock time the network thread took the message from libmosquitto, in ns since the epoch.
    public var receivedAtNanoseconds: Int64

    public init(topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool, receivedAtNanoseconds: Int64) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.receivedAtNanoseconds = receivedAtNanoseconds
    }
}

/// How a publish ended.
public enum MQTTPublishOutcome: Sendable, Hashable {
    /// QoS 1: the broker answered PUBACK with a success reason code.
    case acknowledged
    /// QoS 0: the whole packet was written to the socket (there is no acknowledgement to wait for).
    case written
    /// MQTT v5: the broker answered PUBACK with a failure reason code (≥ 0x80), e.g. 0x87 not authorized.
    case refused(reasonCode: Int)
    /// The message never completed: a QoS 0 packet still queued when the connection dropped, or any
    /// message still pending when the client was stopped.
    case notDelivered
}

/// A finished publish as the `onPublishCompleted` handler sees it.
public struct MQTTPublishCompletion: Sendable {
    /// The caller's token passed to `publish`.
    public var token: UInt64
    public var messageID: MQTTMessageID
    public var qos: MQTTQoS
    public var outcome: MQTTPublishOutcome
    /// Monotonic nanoseconds from `publish` to completion.
    public var latencyNanoseconds: UInt64
}

/// A subscription the client keeps: it is (re)sent whenever the broker does not already hold it.
public struct MQTTSubscription: Sendable, Hashable {
    public var filter: String
    public var qos: MQTTQoS

    public init(_ filter: String, qos: MQTTQoS = .atLeastOnce) {
        self.filter = filter
        self.qos = qos
    }
}

/// What happened to the connection, for logs and metrics. Delivered on the network thread.
public enum MQTTConnectionEvent: Sendable, Hashable {
    /// CONNACK accepted. `sessionPresent`: the broker resumed a stored session (subscriptions kept).
    case connected(protocolVersion: MQTTProtocolVersion, sessionPresent: Bool)
    /// CONNACK refused, or the TCP/TLS connect failed; another attempt follows after `retryInSeconds`.
    case connectFailed(reason: String, retryInSeconds: Double)
    /// The broker answered "unsupported protocol version" to a v5 CONNECT: retrying with 3.1.1.
    case fellBackToMQTT311
    /// The connection was lost (or closed by `stop`, with `expected` true).
    case disconnected(reason: String, expected: Bool)
    /// SUBACK: the broker granted `grantedQoS` (nil: refused, reason 0x80 or above).
    case subscribed(filter: String, grantedQoS: MQTTQoS?)
}

/// Errors of this module. Operating errors only: a broken invariant traps.
public enum MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `pendingPublishesMax` publishes are already waiting for completion; nothing was sent. The caller
    /// decides: drop and count, or retry after completions free the window.
    case publishWindowFull(limit: Int)
    /// The client has no connection to the broker right now; nothing was sent.
    case notConnected
    /// `stop()` was called.
    case closed
    case invalidConfiguration(String)
    /// libmosquitto returned an error code.
    case library(code: Int, operation: String, message: String)
    /// A system call failed (epoll, eventfd, thread creation).
    case system(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .publishWindowFull(let limit): "publish window full (\(limit) publishes awaiting completion)"
        case .notConnected: "not connected to the MQTT broker"
        case .closed: "MQTT client is stopped"
        case .invalidConfiguration(let reason): "invalid MQTT configuration: \(reason)"
        case .library(let code, let operation, let message): "\(operation): \(message) (libmosquitto error \(code))"
        case .system(let operation, let errno): "\(operation) failed (errno \(errno))"
        }
    }
}

/// Counters of one client, as a snapshot.
public struct MQTTClientStatistics: Sendable, Hashable {
    public var connects = 0
    public var connectFailures = 0
    public var disconnects = 0
    public var messagesReceived = 0
    public var publishesAccepted = 0
    public var publishesAcknowledged = 0
    public var publishesWritten = 0
    public var publishesNotDelivered = 0
    public var publishesRefused = 0
    /// Publishes rejected up front: window full or not connected.
    public var publishesRejected = 0
    /// Publishes handed over and not yet completed, right now.
    public var publishesPending = 0

    public init() {}
}
