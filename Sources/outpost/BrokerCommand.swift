import ArgumentParser
import Foundation
import Logging
import OutpostBroker
import OutpostLog
import OutpostOperations

/// `outpost broker`: a Kafka-compatible broker. Flags override the YAML file; with neither, one broker
/// with id 0 on 127.0.0.1:9092 and /metrics on 127.0.0.1:9200.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run a broker that speaks the Kafka wire protocol (produce, fetch, consumer groups, idempotence).",
        discussion: """
            Prints "outpost broker ready kafka=PORT metrics=PORT advertised=HOST:PORT security=PROTOCOL" on stdout once it
            accepts connections (PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL).
            TLS and SASL start-up problems (unreadable or mismatched certificate files, no users) exit 1 with the reason.
            SIGTERM or SIGINT: stop accepting, close connections, flush and close every log, exit 0.
            """)

    @Option(help: "YAML configuration file (see config/broker.yaml).")
    var config: String?

    @Option(name: .customLong("id"), help: "Broker (node) id; the default ports are 9092 + id and 9200 + id.")
    var nodeId: Int?

    @Option(name: .customLong("data-dir"), help: "Directory for partitions, committed offsets and producer ids.")
    var dataDirectory: String?

    @Option(help: "Kafka listener ADDR:PORT (default 127.0.0.1:9092 + id; port 0 picks a free one).")
    var listen: String?

    @Option(help: "HOST:PORT clients are told to connect to (default: the listen address).")
    var advertise: String?

    @Option(help: "Operations endpoint (/metrics, /healthz) ADDR:PORT, or 'off'.")
    var metrics: String?

    @Option(name: .customLong("topic"), help: "A topic NAME:PARTITIONS to create or keep (repeatable).")
    var topics: [String] = []

    @Option(help: "fsync policy of the partition logs: always, interval(MS) or never.")
    var fsync: String?

    @Flag(name: .customLong("no-auto-create"), help: "Do not create unknown topics on produce or metadata requests.")
    var noAutoCreate = false

    @Option(name: .customLong("tls-cert"), help: "PEM server certificate (chain): the Kafka listener speaks TLS. Needs --tls-key.")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert (unencrypted).")
    var tlsKey: String?

    @Option(name: .customLong("tls-ca"), help: "PEM CA file: client certificates are asked for and verified against it.")
    var tlsCA: String?

    @Flag(name: .customLong("tls-require-client-cert"), help: "Refuse TLS clients without a certificate from --tls-ca.")
    var tlsRequireClientCertificate = false

    @Option(
        name: .customLong("sasl-users"),
        help: "YAML file of 'name: password' lines: clients must authenticate with SASL/PLAIN as one of them.")
    var saslUsersFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func configuration() throws -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        if let config {
            do {
                configuration = try BrokerConfiguration.parse(yaml: try RoleSupport.readConfigurationFile(config))
            } catch let error as ConfigurationError {
                throw ValidationError("\(config): \(error)")
            }
        }
        if let nodeId {
            guard (0...1_000_000).contains(nodeId) else { throw ValidationError("--id must be 0…1000000") }
            configuration.nodeId = Int32(nodeId)
        }
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let listen { configuration.listen = try RoleSupport.endpoint(listen, flag: "--listen") }
        if let advertise {
            let endpoint = try RoleSupport.endpoint(advertise, flag: "--advertise")
            guard !["0.0.0.0", "::"].contains(endpoint.host), endpoint.port > 0 else {
                throw ValidationError("--advertise must be an address clients can connect to, got '\(advertise)'")
            }
            configuration.advertise = endpoint
        }
        if let metrics {
            if ["off", "none", "false"].contains(metrics.lowercased()) {
                configuration.metricsEnabled = false
            } else {
                configuration.metricsEnabled = true
                configuration.metrics = try RoleSupport.endpoint(metrics, flag: "--metrics")
            }
        }
        if let fsync {
            guard let policy = FsyncPolicy(parsing: fsync) else { throw ValidationError("--fsync must be always, never or interval(MS)") }
            configuration.log.fsync = policy
        }
        if noAutoCreate { configuration.autoCreateTopics = false }
        if tlsCertificate != nil || tlsKey != nil || tlsCA != nil || tlsRequireClientCertificate {
            var tls = configuration.tls ?? BrokerTLSConfiguration(certificateFile: "", privateKeyFile: "")
            if let tlsCertificate { tls.certificateFile = tlsCertificate }
            if let tlsKey { tls.privateKeyFile = tlsKey }
            if let tlsCA { tls.caFile = tlsCA }
            if tlsRequireClientCertificate { tls.requireClientCertificate = true }
            guard !tls.certificateFile.isEmpty, !tls.privateKeyFile.isEmpty else {
                throw ValidationError("TLS needs both --tls-cert and --tls-key (or tls.cert_file and tls.key_file)")
            }
            guard !tls.requireClientCertificate || tls.caFile != nil else {
                throw ValidationError("--tls-require-client-cert needs --tls-ca to verify client certificates against")
            }
            configuration.tls = tls
        }
        if let saslUsersFile {
            var sasl = configuration.sasl ?? BrokerSASLConfiguration()
            sasl.usersFile = saslUsersFile
            configuration.sasl = sasl
        }
        for topic in topics {
            guard let colon = topic.lastIndex(of: ":"), let partitions = Int(topic[topic.index(after: colon)...]),
                (1...configuration.limits.partitionsPerTopicMax).contains(partitions)
            else {
                throw ValidationError("--topic expects NAME:PARTITIONS (1…\(configuration.limits.partitionsPerTopicMax)), got '\(topic)'")
            }
            let name = String(topic[..<colon])
            guard LogLayout.isValidTopicName(name) else { throw ValidationError("--topic: invalid topic name '\(name)'") }
            configuration.topics.removeAll { $0.name == name }
            configuration.topics.append(TopicConfiguration(name: name, partitions: partitions))
        }
        return configuration
    }

    func run() async throws {
        let configuration = try configuration()
        // Before announcing readiness: an early SIGTERM must not get the default action.
        let shutdownRequests = ProcessSignals.shutdownRequests()
        RoleSupport.bootstrapLogging(level: logLevel)
        let logger = Logger(label: "outpost.broker")
        let registry = MetricsBootstrap.bootstrapPrometheus()
        let broker: Broker
        do {
            broker = try await Broker.start(configuration: configuration, registry: registry, logger: logger)
        } catch {
            logger.critical("broker failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        // One line on stdout that scripts and tests wait for.
        Output.line(
            "outpost broker ready kafka=\(broker.kafkaPort) metrics=\(broker.metricsPort.map(String.init) ?? "-") advertised=\(broker.advertised)"
                + " security=\(configuration.securityProtocol)")
        let signal = await shutdownRequests.next()
        logger.info("shutdown requested", metadata: ["signal": "\(signal)"])
        await broker.stop()
    }
}
