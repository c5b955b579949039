import OutpostCore
import OutpostKafka
import OutpostOperations

/// What happens when the local log reaches its disk budget while the central brokers have not yet taken
/// its data.
public enum OverflowPolicy: String, Sendable, CaseIterable {
    /// Stop taking input (back-pressure) until replication frees space. Nothing is lost; senders wait.
    case block
    /// Delete the oldest local segment even though it is not replicated, count every byte, and write a gap
    /// marker that replicates like any record so the central side knows what was dropped.
    case dropOldest = "drop-oldest"
}

/// The `replication:` section: shipping the local log to central brokers.
public struct ReplicationConfiguration: Sendable {
    public var brokers: [KafkaBrokerAddress]
    public var centralTopic = "telemetry"
    /// Total size of the local topic's log the gateway may use. Replicated data is deleted (oldest first)
    /// to stay under it; when unreplicated data alone exceeds it, `overflow` decides. nil: no budget.
    public var diskBudgetBytes: Int64? = nil
    public var overflow: OverflowPolicy = .block
    /// Optional cap on bytes sent per second, for metered links. nil: no cap.
    public var bandwidthBytesPerSecond: Int64? = nil
    public var tlsCAFile: String?
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    public var saslUsername: String?
    public var saslPassword: String?
    /// First wait after a failure to reach the brokers, doubling up to `backoffMaxMilliseconds`, with jitter.
    public var backoffInitialMilliseconds: Int64 = 100
    public var backoffMaxMilliseconds: Int64 = 10_000

    public init(brokers: [KafkaBrokerAddress]) {
        self.brokers = brokers
    }

    /// False when the YAML says `enabled: false`: the settings stand ready for `--brokers`.
    public var enabled = true

    public var usesTLS: Bool { tlsCAFile != nil || tlsCertificateFile != nil }

    static func parse(_ section: ConfigurationSection) throws(ConfigurationError) -> ReplicationConfiguration? {
        try section.rejectUnknownKeys([
            "enabled", "brokers", "central_topic", "disk_budget", "overflow", "bandwidth", "tls", "sasl", "backoff", "backoff_max",
        ])
        // `enabled: false` keeps the settings for `--brokers` to switch on; brokers may then be absent.
        let enabled = try section.bool("enabled") ?? true
        let texts = try section.strings("brokers") ?? []
        if enabled && texts.isEmpty { throw section.error("brokers", "list the central brokers as HOST:PORT") }
        var brokers: [KafkaBrokerAddress] = []
        for text in texts {
            guard let address = KafkaBrokerAddress(parsing: text) else { throw section.error("brokers", "expected HOST:PORT, found '\(text)'") }
            brokers.append(address)
        }
        var configuration = ReplicationConfiguration(brokers: brokers)
        configuration.enabled = enabled
        if let topic = try section.string("central_topic") { configuration.centralTopic = topic }
        configuration.diskBudgetBytes = try section.bytes("disk_budget")
        if let policy = try section.oneOf("overflow", OverflowPolicy.allCases.map(\.rawValue)) {
            configuration.overflow = OverflowPolicy(rawValue: policy) ?? .block
        }
        configuration.bandwidthBytesPerSecond = try section.bytes("bandwidth")
        if let initial = try section.milliseconds("backoff") { configuration.backoffInitialMilliseconds = max(1, initial) }
        if let maximum = try section.milliseconds("backoff_max") { configuration.backoffMaxMilliseconds = max(configuration.backoffInitialMilliseconds, maximum) }
        let tls = try section.section("tls")
        try tls.rejectUnknownKeys(["ca_file", "cert_file", "key_file"])
        configuration.tlsCAFile = try tls.string("ca_file")
        configuration.tlsCertificateFile = try tls.string("cert_file")
        configuration.tlsKeyFile = try tls.string("key_file")
        if (configuration.tlsCertificateFile == nil) != (configuration.tlsKeyFile == nil) {
            throw tls.error("cert_file", "a client certificate needs both cert_file and key_file")
        }
        let sasl = try section.section("sasl")
        try sasl.rejectUnknownKeys(["mechanism", "username", "password"])
        if sasl.contains("username") || sasl.contains("password") {
            _ = try sasl.oneOf("mechanism", ["PLAIN"])
            guard let username = try sasl.string("username"), let password = try sasl.string("password") else {
                throw sasl.error("username", "SASL/PLAIN needs username and password")
            }
            configuration.saslUsername = username
            configuration.saslPassword = password
        }
        return configuration
    }
}
