import OutpostCore
import OutpostLog
import OutpostOperations

/// How a payload is read: line protocol, JSON readings, or either, told apart per message by its first
/// non-blank byte (`{` or `[` is JSON).
public enum PayloadFormat: String, Sendable, CaseIterable {
    case lineProtocol = "lp"
    case json
    case auto
}

public struct MQTTIngestSubscription: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// A topic filter (`telemetry/#`) whose payloads are line protocol or JSON readings.
        case readings(filter: String, format: PayloadFormat)
        /// A topic template (`sensors/{device}/{field}`) whose payloads are plain values.
        case plainValues(TopicTemplate)
    }

    public var kind: Kind
    public var qos: Int

    public init(kind: Kind, qos: Int = 1) {
        self.kind = kind
        self.qos = qos
    }

    public var filter: String {
        switch kind {
        case .readings(let filter, _): filter
        case .plainValues(let template): template.subscriptionFilter
        }
    }
}

public struct MQTTListenerConfiguration: Hashable, Sendable {
    public var broker = HostPort(host: "127.0.0.1", port: 1883)
    /// nil: generated from the gateway id, with a warning — a persistent session needs a stable id.
    public var clientId: String?
    public var username: String?
    public var password: String?
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var tlsInsecure = false
    public var keepAliveSeconds = 30
    public var subscriptions: [MQTTIngestSubscription] = MQTTListenerConfiguration.defaultSubscriptions

    public static let defaultSubscriptions: [MQTTIngestSubscription] = {
        var subscriptions = [MQTTIngestSubscription(kind: .readings(filter: "telemetry/#", format: .auto))]
        if let template = try? TopicTemplate("sensors/{device}/{field}") {
            subscriptions.append(MQTTIngestSubscription(kind: .plainValues(template)))
        }
        return subscriptions
    }()

    public init() {}
}

public struct SocketListenerConfiguration: Hashable, Sendable {
    public var listen: HostPort
    public var format: PayloadFormat = .auto

    public init(listen: HostPort) {
        self.listen = listen
    }
}

/// Everything a gateway runs with. Defaults are DESIGN.md's: topic `telemetry`, UDP and TCP on 8094,
/// HTTP on 8086, MQTT broker at 127.0.0.1:1883, metrics on 9100.
public struct GatewayConfiguration: Sendable {
    public var gatewayId = "gateway"
    public var dataDirectory = "/var/lib/outpost/gateway"
    public var topic = "telemetry"
    public var partitions = 3
    public var deviceTag = "device"
    public var log = GatewayConfiguration.defaultLog
    public var limits = PointLimits.standard
    /// Dead-letter topic for rejected input (raw bytes and reason); nil when off.
    public var deadLetterTopic: String? = nil

    /// How long a non-full batch may wait for more records. 5 ms keeps the window between receipt and
    /// commit (and HTTP latency) small while still filling batches at high rates.
    public var lingerMilliseconds = 5
    /// Uncompressed record bytes at which a batch is complete: 256 KiB ≈ 2,500 points, which gzips to a few
    /// tens of KiB.
    public var batchBytesMax = 256 << 10
    public var compressionLevel: Int32 = 1
    public var compression: CompressionCodec = .gzip
    /// Threads compressing and appending batches. Two lets parsing and compression use both cores of a
    /// small box.
    public var workers = 2
    /// Batches queued for compression and append before listeners are paused (back-pressure).
    public var queueBatchesMax = 16

    public var mqtt: MQTTListenerConfiguration? = MQTTListenerConfiguration()
    public var udp: SocketListenerConfiguration? = SocketListenerConfiguration(listen: HostPort(host: "0.0.0.0", port: 8094))
    public var udpReceiveBufferBytes = 8 << 20
    public var tcp: SocketListenerConfiguration? = SocketListenerConfiguration(listen: HostPort(host: "0.0.0.0", port: 8094))
    public var tcpConnectionsMax = 1024
    public var tcpIdleTimeoutMilliseconds: Int64 = 300_000
    public var http: HostPort? = HostPort(host: "0.0.0.0", port: 8086)
    /// Largest HTTP write body (after gzip decoding): 32 MiB, InfluxDB's order of magnitude.
    public var httpBodyBytesMax = 32 << 20
    public var metrics: HostPort? = HostPort(host: "0.0.0.0", port: 9100)
    /// Shipping the local log to central brokers; nil: the gateway only stores.
    public var replication: ReplicationConfiguration? = nil

    public static let defaultLog: LogConfiguration = {
        var configuration = LogConfiguration()
        configuration.fsync = .interval(milliseconds: 5)
        configuration.segmentBytesMax = 64 << 20
        return configuration
    }()

    public init() {}

    /// Reads a YAML file's text over the defaults. Unknown keys are errors that name the key.
    public static func parse(yaml text: String) throws(ConfigurationError) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        let root = try ConfigurationSection.parse(yaml: text)
        try root.rejectUnknownKeys(["gateway", "log", "pipeline", "limits", "dead_letter", "listeners", "metrics", "replication", "testing"])

        let gateway = try root.section("gateway")
        try gateway.rejectUnknownKeys(["id", "data_dir", "topic", "partitions", "device_tag"])
        if let id = try gateway.string("id") {
            guard !id.isEmpty else { throw gateway.error("id", "must not be empty") }
            configuration.gatewayId = id
        }
        if let directory = try gateway.string("data_dir") { configuration.dataDirectory = directory }
        if let topic = try gateway.string("topic") {
            guard LogLayout.isValidTopicName(topic) else { throw gateway.error("topic", "invalid topic name '\(topic)'") }
            configuration.topic = topic
        }
        if let partitions = try gateway.int("partitions", range: 1...1024) { configuration.partitions = partitions }
        if let tag = try gateway.string("device_tag") { configuration.deviceTag = tag }

        let log = try root.section("log")
        try log.rejectUnknownKeys(["fsync", "segment_bytes", "segment_age", "retention_bytes", "retention", "unsynced_bytes", "recycle_segments"])
        if let fsync = try log.string("fsync") {
            guard let policy = FsyncPolicy(parsing: fsync) else { throw log.error("fsync", "expected always, never or interval(MS), found '\(fsync)'") }
            configuration.log.fsync = policy
        }
        if let bytes = try log.bytes("segment_bytes") { configuration.log.segmentBytesMax = Int(bytes) }
        if let age = try log.milliseconds("segment_age") { configuration.log.segmentAgeMaxMilliseconds = age }
        if let bytes = try log.bytes("retention_bytes") { configuration.log.retentionBytes = bytes }
        if let age = try log.milliseconds("retention") { configuration.log.retentionMilliseconds = age }
        if let recycle = try log.bool("recycle_segments") { configuration.log.recycleSegments = recycle }
        if let bytes = try log.bytes("unsynced_bytes") { configuration.log.unsynchronizedBytesMax = Int(max(bytes, 4096)) }
        // Rehearsing failures: a slow disk. Never set in production.
        let testing = try root.section("testing")
        try testing.rejectUnknownKeys(["fsync_delay"])
        if let delay = try testing.milliseconds("fsync_delay") { configuration.log.simulatedFsyncDelayMilliseconds = Int(delay) }
        do {
            _ = try configuration.log.validated()
        } catch {
            throw ConfigurationError(key: "log", message: "\(error)")
        }

        let pipeline = try root.section("pipeline")
        try pipeline.rejectUnknownKeys(["linger", "batch_bytes", "compression", "compression_level", "workers", "queue_batches"])
        if let linger = try pipeline.milliseconds("linger") { configuration.lingerMilliseconds = Int(min(linger, 60_000)) }
        if let bytes = try pipeline.bytes("batch_bytes") {
            guard bytes >= 1024, bytes <= Int64(configuration.log.batchBytesMax) else {
                throw pipeline.error("batch_bytes", "must be between 1KiB and \(configuration.log.batchBytesMax) bytes")
            }
            configuration.batchBytesMax = Int(bytes)
        }
        if let codec = try pipeline.oneOf("compression", ["gzip", "none"]) { configuration.compression = codec == "gzip" ? .gzip : .none }
        if let level = try pipeline.int("compression_level", range: 1...9) { configuration.compressionLevel = Int32(level) }
        if let workers = try pipeline.int("workers", range: 1...64) { configuration.workers = workers }
        if let queue = try pipeline.int("queue_batches", range: 1...4096) { configuration.queueBatchesMax = queue }

        let limits = try root.section("limits")
        try limits.rejectUnknownKeys(["max_line_bytes", "max_tags", "max_fields"])
        if let bytes = try limits.bytes("max_line_bytes") {
            guard bytes >= 64, bytes <= 16 << 20 else { throw limits.error("max_line_bytes", "must be between 64 bytes and 16MiB") }
            configuration.limits.lineBytesMax = Int(bytes)
        }
        if let tags = try limits.int("max_tags", range: 1...10_000) { configuration.limits.tagsPerPointMax = tags }
        if let fields = try limits.int("max_fields", range: 1...10_000) { configuration.limits.fieldsPerPointMax = fields }

        if let deadLetter = try root.bool("dead_letter") { configuration.deadLetterTopic = deadLetter ? "_rejected" : nil }

        let listeners = try root.section("listeners")
        try listeners.rejectUnknownKeys(["mqtt", "udp", "tcp", "http"])
        if listeners.contains("mqtt") { configuration.mqtt = try parseMQTT(try listeners.section("mqtt")) }
        if listeners.contains("udp") {
            let udp = try listeners.section("udp")
            try udp.rejectUnknownKeys(["enabled", "listen", "format", "receive_buffer_bytes"])
            configuration.udp = try parseSocket(udp, default: configuration.udp ?? SocketListenerConfiguration(listen: HostPort(host: "0.0.0.0", port: 8094)))
            if let bytes = try udp.bytes("receive_buffer_bytes") { configuration.udpReceiveBufferBytes = Int(bytes) }
        }
        if listeners.contains("tcp") {
            let tcp = try listeners.section("tcp")
            try tcp.rejectUnknownKeys(["enabled", "listen", "format", "max_connections", "idle_timeout"])
            configuration.tcp = try parseSocket(tcp, default: configuration.tcp ?? SocketListenerConfiguration(listen: HostPort(host: "0.0.0.0", port: 8094)))
            if let connections = try tcp.int("max_connections", range: 1...1_000_000) { configuration.tcpConnectionsMax = connections }
            if let idle = try tcp.milliseconds("idle_timeout") { configuration.tcpIdleTimeoutMilliseconds = idle }
        }
        if listeners.contains("http") {
            let http = try listeners.section("http")
            try http.rejectUnknownKeys(["enabled", "listen", "max_body_bytes"])
            if try http.bool("enabled") == false {
                configuration.http = nil
            } else {
                if let listen = try http.endpoint("listen") { configuration.http = listen }
                if let bytes = try http.bytes("max_body_bytes") { configuration.httpBodyBytesMax = Int(bytes) }
            }
        }

        if root.contains("replication") {
            configuration.replication = try ReplicationConfiguration.parse(try root.section("replication"))
        }

        let metrics = try root.section("metrics")
        try metrics.rejectUnknownKeys(["enabled", "listen"])
        if try metrics.bool("enabled") == false {
            configuration.metrics = nil
        } else if let listen = try metrics.endpoint("listen") {
            configuration.metrics = listen
        }
        return configuration
    }

    static func parseSocket(_ section: ConfigurationSection, default base: SocketListenerConfiguration) throws(ConfigurationError) -> SocketListenerConfiguration? {
        if try section.bool("enabled") == false { return nil }
        var listener = base
        if let listen = try section.endpoint("listen") { listener.listen = listen }
        if let format = try section.oneOf("format", PayloadFormat.allCases.map(\.rawValue)) {
            listener.format = PayloadFormat(rawValue: format) ?? .auto
        }
        return listener
    }

    static func parseMQTT(_ section: ConfigurationSection) throws(ConfigurationError) -> MQTTListenerConfiguration? {
        try section.rejectUnknownKeys([
            "enabled", "broker", "client_id", "username", "password", "tls", "keepalive", "subscriptions",
        ])
        if try section.bool("enabled") == false { return nil }
        var mqtt = MQTTListenerConfiguration()
        if let broker = try section.endpoint("broker") { mqtt.broker = broker }
        mqtt.clientId = try section.string("client_id")
        mqtt.username = try section.string("username")
        mqtt.password = try section.string("password")
        if let keepAlive = try section.milliseconds("keepalive") { mqtt.keepAliveSeconds = Int(max(5, keepAlive / 1000)) }
        let tls = try section.section("tls")
        try tls.rejectUnknownKeys(["ca_file", "cert_file", "key_file", "insecure"])
        mqtt.caFile = try tls.string("ca_file")
        mqtt.certificateFile = try tls.string("cert_file")
        mqtt.keyFile = try tls.string("key_file")
        mqtt.tlsInsecure = try tls.bool("insecure") ?? false
        if section.contains("subscriptions") {
            var subscriptions: [MQTTIngestSubscription] = []
            for entry in try section.sections("subscriptions") {
                try entry.rejectUnknownKeys(["topic", "template", "format", "qos"])
                let qos = try entry.int("qos", range: 0...1) ?? 1
                if let template = try entry.string("template") {
                    guard try entry.string("topic") == nil else { throw entry.error("template", "give either topic or template, not both") }
                    do {
                        subscriptions.append(MQTTIngestSubscription(kind: .plainValues(try TopicTemplate(template)), qos: qos))
                    } catch {
                        throw entry.error("template", error.description)
                    }
                } else if let topic = try entry.string("topic") {
                    let format = PayloadFormat(rawValue: try entry.oneOf("format", PayloadFormat.allCases.map(\.rawValue)) ?? "auto") ?? .auto
                    subscriptions.append(MQTTIngestSubscription(kind: .readings(filter: topic, format: format), qos: qos))
                } else {
                    throw ConfigurationError(key: entry.path, message: "a subscription needs topic (readings) or template (plain values)")
                }
            }
            mqtt.subscriptions = subscriptions
        }
        return mqtt
    }
}
