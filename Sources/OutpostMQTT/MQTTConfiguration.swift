/// Everything a client needs to reach its broker. Every bound has its unit and a one-line reason.
public struct MQTTConfiguration: Sendable, Hashable {
    public var host: String = "127.0.0.1"
    public var port: Int = 1883
    /// The client id. A persistent session is keyed by it, so a subscriber that wants the messages
    /// published while it was away must configure a stable one; nil lets the broker assign one.
    public var clientID: String?
    /// false: a persistent session (MQTT 3.1.1 clean session off; MQTT v5 clean start off plus a session
    /// expiry interval), so QoS 1 messages published while the client is away wait for it at the broker.
    public var cleanSession: Bool = true
    /// MQTT v5 session expiry when `cleanSession` is false. A week: longer than any planned outage of an
    /// edge box, short enough that a decommissioned gateway's session does not queue forever.
    public var sessionExpirySeconds: UInt32 = 7 * 86_400
    /// Keep-alive: the broker drops a silent client after 1.5 times this, and so do we a silent broker.
    /// 30 s notices a dead link within a minute without noticeable ping traffic.
    public var keepAliveSeconds: Int = 30
    public var protocolVersion: MQTTProtocolPreference = .automatic
    public var username: String?
    public var password: String?
    public var tls: MQTTTLSConfiguration?
    /// Local address to bind outgoing connections to.
    public var bindAddress: String?
    /// Disable Nagle's algorithm: lower publish latency at the cost of more packets.
    public var tcpNoDelay: Bool = false
    public var limits = MQTTLimits()
    public var reconnect = MQTTBackoff()

    public init(host: String = "127.0.0.1", port: Int = 1883, clientID: String? = nil, cleanSession: Bool = true) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.cleanSession = cleanSession
    }

    func validated() throws(MQTTError) -> MQTTConfiguration {
        guard !host.isEmpty else { throw .invalidConfiguration("host is empty") }
        guard (1...65_535).contains(port) else { throw .invalidConfiguration("port \(port) is not in 1...65535") }
        if let clientID, clientID.isEmpty || clientID.utf8.count > 65_535 {
            throw .invalidConfiguration("client id must be 1...65535 bytes")
        }
        if clientID == nil && !cleanSession {
            throw .invalidConfiguration("a persistent session (cleanSession false) needs a client id")
        }
        guard (0...65_535).contains(keepAliveSeconds), keepAliveSeconds == 0 || keepAliveSeconds >= 5 else {
            throw .invalidConfiguration("keep-alive must be 0 (off) or 5...65535 s")
        }
        if password != nil && username == nil { throw .invalidConfiguration("a password needs a username") }
        try limits.validate()
        try reconnect.validate()
        return self
    }
}

public struct MQTTTLSConfiguration: Sendable, Hashable {
    /// PEM file of trusted CA certificates; or `caDirectory` (c_rehash'ed), or both.
    public var caFile: String?
    public var caDirectory: String?
    /// Client certificate and key (PEM) for brokers that require client authentication.
    public var certificateFile: String?
    public var keyFile: String?
    /// Skip the check that the broker's certificate names `host`. Testing only: it allows a
    /// man-in-the-middle.
    public var insecure: Bool = false
    /// "tlsv1.3", "tlsv1.2"; nil: libmosquitto's default (v1.2 or later).
    public var version: String?

    public init(caFile: String? = nil, caDirectory: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.caDirectory = caDirectory
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.insecure = insecure
    }
}

/// Bounds of one client. Reaching one is a defined outcome, never a crash or an unbounded queue.
public struct MQTTLimits: Sendable, Hashable {
    /// QoS 1 messages on the wire awaiting PUBACK (libmosquitto's max_inflight_messages; a v5 broker's
    /// Receive Maximum may lower it). Beyond it libmosquitto holds messages back until PUBACKs return.
    /// 100 keeps a loopback or LAN link busy without a long redelivery burst after a reconnect.
    public var inflightMessagesMax: Int = 100
    /// Publishes handed to the client and not yet completed (PUBACK for QoS 1, written for QoS 0),
    /// including those libmosquitto holds back behind the in-flight window. libmosquitto's own queues have
    /// no bound, so this is the bound. When it is reached `publish` throws `.publishWindowFull` at once and
    /// sends nothing (it never blocks the caller); the caller drops and counts, or retries later.
    /// 10,000 is a few seconds of a busy multiplexed publisher at a few MB of memory.
    public var pendingPublishesMax: Int = 10_000
    /// A connection attempt (TCP, TLS, CONNECT/CONNACK) that takes longer is abandoned and retried.
    public var connectTimeoutSeconds: Double = 10

    public init() {}

    func validate() throws(MQTTError) {
        guard (1...65_535).contains(inflightMessagesMax) else { throw .invalidConfiguration("inflightMessagesMax must be 1...65535") }
        // Packet ids are 16 bits: more pending publishes than ids would reuse an id still in flight.
        guard (1...60_000).contains(pendingPublishesMax) else { throw .invalidConfiguration("pendingPublishesMax must be 1...60000") }
        guard connectTimeoutSeconds > 0 else { throw .invalidConfiguration("connectTimeoutSeconds must be positive") }
    }
}

/// Reconnect delays: `initialSeconds`, doubling per failed attempt up to `maximumSeconds`, each delay
/// shortened by a random fraction up to `jitter` so that thousands of clients cut off together (a broker
/// restart) do not all come back in the same instant.
public struct MQTTBackoff: Sendable, Hashable {
    public var initialSeconds: Double = 0.1
    public var maximumSeconds: Double = 10
    public var jitter: Double = 0.3

    public init(initialSeconds: Double = 0.1, maximumSeconds: Double = 10, jitter: Double = 0.3) {
        self.initialSeconds = initialSeconds
        self.maximumSeconds = maximumSeconds
        self.jitter = jitter
    }

    func validate() throws(MQTTError) {
        guard initialSeconds > 0, maximumSeconds >= initialSeconds else {
            throw .invalidConfiguration("reconnect delays must satisfy 0 < initial <= maximum")
        }
        guard (0...1).contains(jitter) else { throw .invalidConfiguration("reconnect jitter must be 0...1") }
    }

    /// Delay before attempt number `failures + 1`, given a uniform random `fraction` in 0..<1.
    public func delaySeconds(afterFailures failures: Int, fraction: Double) -> Double {
        let exponent = Double(min(failures, 30))
        let base = min(maximumSeconds, initialSeconds * pow2(exponent))
        return base * (1 - jitter * fraction)
    }

    private func pow2(_ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 {
            result *= 2
            remaining -= 1
        }
        return result
    }
}
