import OutpostKafka
import OutpostLog
import OutpostOperations

/// A per-topic override of a log bound.
public enum LimitOverride: Hashable, Sendable {
    /// Use the broker's `log` setting.
    case inherit
    /// No bound for this topic.
    case unlimited
    case limit(Int64)

    func applied(to base: Int64?) -> Int64? {
        switch self {
        case .inherit: base
        case .unlimited: nil
        case .limit(let value): value
        }
    }
}

/// One topic as configured.
public struct TopicConfiguration: Hashable, Sendable {
    public var name: String
    public var partitions: Int
    public var retentionMilliseconds: LimitOverride
    public var retentionBytes: LimitOverride

    public init(name: String, partitions: Int, retentionMilliseconds: LimitOverride = .inherit, retentionBytes: LimitOverride = .inherit) {
        self.name = name
        self.partitions = partitions
        self.retentionMilliseconds = retentionMilliseconds
        self.retentionBytes = retentionBytes
    }
}

/// Consumer-group timing (kafka-subset.md §5). Defaults are Kafka's unless said otherwise.
public struct GroupConfiguration: Hashable, Sendable {
    /// How long a rebalance of an empty group waits for more members before completing. Kafka waits 3 s;
    /// 500 ms still lets members started together join one generation, and keeps tests and restarts quick.
    public var initialRebalanceDelayMilliseconds: Int64 = 500
    /// Kafka's group.min.session.timeout.ms.
    public var minSessionTimeoutMilliseconds: Int64 = 6_000
    /// Kafka's group.max.session.timeout.ms (30 min).
    public var maxSessionTimeoutMilliseconds: Int64 = 1_800_000
    /// Members per group; beyond it JoinGroup answers GROUP_MAX_SIZE_REACHED. Far above any real group.
    public var membersPerGroupMax: Int = 1_000
    /// Groups known at once (with members or committed offsets). Bounds coordinator memory.
    public var groupsMax: Int = 10_000
    /// Longest committed metadata string; Kafka's offset.metadata.max.bytes.
    public var offsetMetadataBytesMax: Int = 4_096

    public init() {}
}

/// Bounds on what clients can make the broker hold. Reaching one is an answer (an error code, back-pressure
/// or a closed connection with a logged reason), never a crash.
public struct BrokerLimits: Hashable, Sendable {
    /// Largest request frame. 100 MiB is Kafka's socket.request.max.bytes; a produce request holds at most
    /// a few batches of `log.batchBytesMax` (8 MiB) each.
    public var frameBytesMax: Int = 100 << 20
    /// Bytes that large request frames still being received may hold across all connections (Kafka's
    /// queued.max.request.bytes); a frame that does not fit closes its connection. 256 MiB lets a couple of
    /// maximum-size requests arrive at once while keeping `connections × frame limit` off the table.
    public var bufferedRequestBytesMax: Int = 256 << 20
    /// Open client connections; beyond it new connections are closed at once. Kafka has no default bound;
    /// 1024 is far above a fleet of gateways plus consumers and keeps file descriptors in check.
    public var connectionsMax: Int = 1_024
    /// Requests read from one connection whose responses are not yet written. At the bound the connection
    /// stops being read (TCP back-pressure). librdkafka pipelines at most 5 per partition plus a few others.
    public var inFlightRequestsPerConnectionMax: Int = 32
    /// Fetches parked in long poll at once; beyond it a fetch is answered at once (empty).
    public var fetchWaitersMax: Int = 4_096
    /// Idempotent producers remembered per partition; beyond it the least recently active one is
    /// forgotten (its next batch is accepted as if new — dedupe is lost, never data).
    public var producersPerPartitionMax: Int = 10_000
    /// Partitions one topic may have (configured or auto-created).
    public var partitionsPerTopicMax: Int = 1_024
    /// Topics; auto-creation stops here.
    public var topicsMax: Int = 10_000

    public init() {}
}

/// Everything `outpost broker` runs with. Built from defaults, then the YAML file, then flags.
public struct BrokerConfiguration: Hashable, Sendable {
    public var nodeId: Int32 = 0
    public var dataDirectory = "data/broker"
    /// nil: 127.0.0.1:(9092 + id).
    public var listen: HostPort?
    /// nil: the listen address (its bound port when listening on port 0; 127.0.0.1 for a wildcard host).
    public var advertise: HostPort?
    /// The operations endpoint (/metrics, /healthz). nil: 127.0.0.1:(9200 + id), DESIGN.md's default.
    public var metrics: HostPort?
    /// false: no operations endpoint at all.
    public var metricsEnabled = true
    public var clusterId = "outpost"
    public var autoCreateTopics = true
    /// Partitions of an auto-created topic (Kafka's num.partitions is 1).
    public var defaultPartitions = 1
    public var topics: [TopicConfiguration] = []
    /// Per-partition log settings; topic retention overrides apply on top.
    public var log = LogConfiguration()
    public var groups = GroupConfiguration()
    public var limits = BrokerLimits()
    /// How often retention runs (Kafka's log.retention.check.interval.ms: 5 min).
    public var retentionCheckIntervalMilliseconds: Int64 = 300_000
    /// Threads for blocking file work (fetch reads, offset and producer-id files). Two keep a cold read from
    /// stalling every other fetch on a small machine.
    public var ioThreads = 2
    /// Event-loop threads; nil: one per core.
    public var eventLoopThreads: Int?
    /// nil: the Kafka listener is plaintext.
    public var tls: BrokerTLSConfiguration?
    /// nil: no authentication.
    public var sasl: BrokerSASLConfiguration?
    /// Bounds on connections still in their TLS handshake or SASL exchange.
    public var security = SecurityLimits()

    public init() {}

    public var resolvedListen: HostPort { listen ?? HostPort(host: "127.0.0.1", port: 9092 + Int(nodeId)) }
    public var resolvedMetrics: HostPort? {
        metricsEnabled ? (metrics ?? HostPort(host: "127.0.0.1", port: 9200 + Int(nodeId))) : nil
    }

    /// The log configuration of one topic.
    public func logConfiguration(for topic: String) -> LogConfiguration {
        var configuration = log
        if let topic = topics.first(where: { $0.name == topic }) {
            configuration.retentionMilliseconds = topic.retentionMilliseconds.applied(to: configuration.retentionMilliseconds)
            configuration.retentionBytes = topic.retentionBytes.applied(to: configuration.retentionBytes)
        }
        return configuration
    }

    /// Parses config/broker.yaml's format. Unknown keys are errors (a misspelt key must not silently
    /// fall back to a default).
    public static func parse(yaml text: String) throws(ConfigurationError) -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        let root = try ConfigurationSection.parse(yaml: text)
        try root.rejectUnknownKeys(["broker", "log", "topics", "groups", "limits", "metrics", "tls", "sasl"])

        let broker = try root.section("broker")
        try broker.rejectUnknownKeys([
            "id", "data_dir", "listen", "advertise", "cluster_id", "auto_create_topics", "default_partitions", "io_threads",
            "event_loop_threads", "retention_check_interval",
        ])
        if let id = try broker.int("id", range: 0...1_000_000) { configuration.nodeId = Int32(id) }
        if let directory = try broker.string("data_dir") { configuration.dataDirectory = directory }
        configuration.listen = try broker.endpoint("listen")
        configuration.advertise = try broker.endpoint("advertise")
        if let clusterId = try broker.string("cluster_id") {
            guard !clusterId.isEmpty, clusterId.utf8.count <= 200 else { throw broker.error("cluster_id", "must be 1…200 characters") }
            configuration.clusterId = clusterId
        }
        if let autoCreate = try broker.bool("auto_create_topics") { configuration.autoCreateTopics = autoCreate }
        if let partitions = try broker.int("default_partitions", range: 1...1024) { configuration.defaultPartitions = partitions }
        if let threads = try broker.int("io_threads", range: 1...64) { configuration.ioThreads = threads }
        if let threads = try broker.int("event_loop_threads", range: 1...256) { configuration.eventLoopThreads = threads }
        if let interval = try broker.milliseconds("retention_check_interval") {
            guard interval >= 1_000 else { throw broker.error("retention_check_interval", "must be at least 1s") }
            configuration.retentionCheckIntervalMilliseconds = interval
        }

        if let text = try root.string("metrics"), ["off", "false", "none", ""].contains(text.lowercased()) {
            configuration.metricsEnabled = false
        } else {
            configuration.metrics = try root.endpoint("metrics")
        }

        let log = try root.section("log")
        try log.rejectUnknownKeys(["fsync", "segment_bytes", "segment_age", "retention_bytes", "retention", "max_batch_bytes", "recycle_segments"])
        if let fsync = try log.string("fsync") {
            guard let policy = FsyncPolicy(parsing: fsync) else { throw log.error("fsync", "expected always, never or interval(MS), found '\(fsync)'") }
            configuration.log.fsync = policy
        }
        if let bytes = try log.bytes("segment_bytes") { configuration.log.segmentBytesMax = Int(bytes) }
        if let age = try log.milliseconds("segment_age") { configuration.log.segmentAgeMaxMilliseconds = age }
        if let bytes = try log.bytes("retention_bytes") { configuration.log.retentionBytes = bytes }
        if let age = try log.milliseconds("retention") { configuration.log.retentionMilliseconds = age }
        if let recycle = try log.bool("recycle_segments") { configuration.log.recycleSegments = recycle }
        if let bytes = try log.bytes("max_batch_bytes") { configuration.log.batchBytesMax = Int(bytes) }
        do {
            _ = try configuration.log.validated()
        } catch {
            throw ConfigurationError(key: "log", message: "\(error)")
        }

        var names = Set<String>()
        for topic in try root.sections("topics") {
            try topic.rejectUnknownKeys(["name", "partitions", "retention", "retention_bytes"])
            guard let name = try topic.string("name") else { throw topic.error("name", "every topic needs a name") }
            guard LogLayout.isValidTopicName(name) else { throw topic.error("name", "invalid topic name '\(name)' (1–249 of a-z A-Z 0-9 . _ -)") }
            guard names.insert(name).inserted else { throw topic.error("name", "topic '\(name)' is listed twice") }
            let partitions = try topic.int("partitions", range: 1...configuration.limits.partitionsPerTopicMax) ?? configuration.defaultPartitions
            var entry = TopicConfiguration(name: name, partitions: partitions)
            entry.retentionMilliseconds = try Self.limitOverride(topic, "retention") { (section, key) throws(ConfigurationError) in try section.milliseconds(key) }
            entry.retentionBytes = try Self.limitOverride(topic, "retention_bytes") { (section, key) throws(ConfigurationError) in try section.bytes(key) }
            configuration.topics.append(entry)
        }

        let groups = try root.section("groups")
        try groups.rejectUnknownKeys(["initial_rebalance_delay", "min_session_timeout", "max_session_timeout", "max_members", "max_groups"])
        if let delay = try groups.milliseconds("initial_rebalance_delay") { configuration.groups.initialRebalanceDelayMilliseconds = delay }
        if let minimum = try groups.milliseconds("min_session_timeout") { configuration.groups.minSessionTimeoutMilliseconds = minimum }
        if let maximum = try groups.milliseconds("max_session_timeout") { configuration.groups.maxSessionTimeoutMilliseconds = maximum }
        guard configuration.groups.minSessionTimeoutMilliseconds <= configuration.groups.maxSessionTimeoutMilliseconds else {
            throw groups.error("min_session_timeout", "must not exceed max_session_timeout")
        }
        if let members = try groups.int("max_members", range: 1...100_000) { configuration.groups.membersPerGroupMax = members }
        if let count = try groups.int("max_groups", range: 1...1_000_000) { configuration.groups.groupsMax = count }

        configuration.tls = try Self.tls(try root.section("tls"))
        configuration.sasl = try Self.sasl(try root.section("sasl"))

        let limits = try root.section("limits")
        try limits.rejectUnknownKeys([
            "max_frame_bytes", "max_connections", "max_in_flight_requests", "max_fetch_waiters", "max_producers_per_partition",
            "max_buffered_request_bytes", "connection_setup_timeout",
        ])
        if let timeout = try limits.milliseconds("connection_setup_timeout") {
            guard (100...600_000).contains(timeout) else { throw limits.error("connection_setup_timeout", "must be between 100ms and 10m") }
            configuration.security.connectionSetupTimeoutMilliseconds = timeout
        }
        if let bytes = try limits.bytes("max_frame_bytes") {
            guard bytes >= 64 << 10, bytes <= 1 << 30 else { throw limits.error("max_frame_bytes", "must be between 64KiB and 1GiB") }
            configuration.limits.frameBytesMax = Int(bytes)
        }
        if let bytes = try limits.bytes("max_buffered_request_bytes") {
            guard bytes >= Int64(configuration.limits.frameBytesMax) else {
                throw limits.error("max_buffered_request_bytes", "must be at least max_frame_bytes (\(configuration.limits.frameBytesMax))")
            }
            configuration.limits.bufferedRequestBytesMax = Int(bytes)
        }
        if let count = try limits.int("max_connections", range: 1...1_000_000) { configuration.limits.connectionsMax = count }
        if let count = try limits.int("max_in_flight_requests", range: 1...1_024) { configuration.limits.inFlightRequestsPerConnectionMax = count }
        if let count = try limits.int("max_fetch_waiters", range: 0...1_000_000) { configuration.limits.fetchWaitersMax = count }
        if let count = try limits.int("max_producers_per_partition", range: 1...10_000_000) { configuration.limits.producersPerPartitionMax = count }
        return configuration
    }

    /// `tls:` — absent or empty: a plaintext listener.
    static func tls(_ section: ConfigurationSection) throws(ConfigurationError) -> BrokerTLSConfiguration? {
        guard !section.keys.isEmpty else { return nil }
        try section.rejectUnknownKeys(["cert_file", "key_file", "ca_file", "require_client_certificate"])
        guard let certificate = try section.string("cert_file") else { throw section.error("cert_file", "TLS needs a certificate file") }
        guard let key = try section.string("key_file") else { throw section.error("key_file", "TLS needs a private key file") }
        let tls = BrokerTLSConfiguration(
            certificateFile: certificate, privateKeyFile: key, caFile: try section.string("ca_file"),
            requireClientCertificate: try section.bool("require_client_certificate") ?? false)
        try tls.validate()
        return tls
    }

    /// `sasl:` — absent or empty: no authentication. Users come from `users` (name: password) and/or
    /// `users_file` (read at start-up).
    static func sasl(_ section: ConfigurationSection) throws(ConfigurationError) -> BrokerSASLConfiguration? {
        guard !section.keys.isEmpty else { return nil }
        try section.rejectUnknownKeys(["mechanism", "users", "users_file"])
        var sasl = BrokerSASLConfiguration()
        if let mechanism = try section.oneOf("mechanism", SASLMechanism.allCases.map(\.rawValue)) {
            sasl.mechanism = SASLMechanism(rawValue: mechanism) ?? .plain
        }
        let users = try section.section("users")
        for name in users.keys {
            guard let password = try users.string(name) else { throw users.error(name, "needs a password") }
            try BrokerSASLConfiguration.validateUser(name, password, key: users.path + "." + name)
            sasl.users[name] = SASLPassword(password)
        }
        sasl.usersFile = try section.string("users_file")
        guard !sasl.users.isEmpty || sasl.usersFile != nil else {
            throw section.error("users", "SASL needs users (sasl.users or sasl.users_file)")
        }
        return sasl
    }

    /// A per-topic bound: absent (inherit), `unlimited`/`-1`, or a value.
    static func limitOverride(
        _ section: ConfigurationSection, _ key: String, _ parse: (ConfigurationSection, String) throws(ConfigurationError) -> Int64?
    ) throws(ConfigurationError) -> LimitOverride {
        guard let text = try section.string(key) else { return .inherit }
        if ["unlimited", "-1", "none"].contains(text.lowercased()) { return .unlimited }
        guard let value = try parse(section, key) else { return .inherit }
        return .limit(value)
    }
}
