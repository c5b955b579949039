import ArgumentParser
import Foundation
import Logging
import OutpostGateway
import OutpostKafka
import OutpostLog
import OutpostOperations

/// `outpost gateway`: the edge gateway. Flags override the YAML file; with neither, DESIGN.md's defaults.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the edge gateway: MQTT, UDP, TCP and HTTP ingest into the durable local log.",
        discussion: """
            SIGTERM or SIGINT: stop listeners, flush and fsync everything, exit 0.
            SIGHUP: re-read the configuration file and apply limits and MQTT subscriptions.
            """)

    @Option(help: "YAML configuration file (see config/gateway.yaml).")
    var config: String?

    @Option(name: .customLong("id"), help: "Gateway id (stable: it names the MQTT client and the records' provenance).")
    var gatewayId: String?

    @Option(name: .customLong("data-dir"), help: "Directory of the local log.")
    var dataDirectory: String?

    @Option(help: "Partitions of the local topic.")
    var partitions: Int?

    @Option(help: "fsync policy of the local log: always, interval(MS) or never.")
    var fsync: String?

    @Option(name: .customLong("mqtt-broker"), help: "MQTT broker HOST:PORT to subscribe at.")
    var mqttBroker: String?

    @Flag(name: .customLong("no-mqtt"), help: "Run without MQTT.")
    var noMQTT = false

    @Option(help: "TCP listener ADDR:PORT.")
    var tcp: String?

    @Flag(name: .customLong("no-tcp"), help: "Run without the TCP listener.")
    var noTCP = false

    @Option(help: "UDP listener ADDR:PORT.")
    var udp: String?

    @Flag(name: .customLong("no-udp"), help: "Run without the UDP listener.")
    var noUDP = false

    @Option(help: "HTTP write endpoint ADDR:PORT.")
    var http: String?

    @Flag(name: .customLong("no-http"), help: "Run without the HTTP write endpoint.")
    var noHTTP = false

    @Option(help: "Operations endpoint (/metrics, /healthz) ADDR:PORT.")
    var metrics: String?

    @Option(help: "Central brokers to replicate to: HOST:PORT[,HOST:PORT…].")
    var brokers: String?

    @Option(name: .customLong("central-topic"), help: "Central topic to replicate to (default telemetry).")
    var centralTopic: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func configuration() throws -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        if let config {
            do {
                configuration = try GatewayConfiguration.parse(yaml: try RoleSupport.readConfigurationFile(config))
            } catch let error as ConfigurationError {
                throw ValidationError("\(config): \(error)")
            }
        }
        if let gatewayId { configuration.gatewayId = gatewayId }
        if let dataDirectory { configuration.dataDirectory = dataDirectory }
        if let partitions {
            guard (1...1024).contains(partitions) else { throw ValidationError("--partitions must be 1…1024") }
            configuration.partitions = partitions
        }
        if let fsync {
            guard let policy = FsyncPolicy(parsing: fsync) else { throw ValidationError("--fsync must be always, never or interval(MS)") }
            configuration.log.fsync = policy
        }
        if noMQTT {
            configuration.mqtt = nil
        } else if let mqttBroker {
            var mqtt = configuration.mqtt ?? MQTTListenerConfiguration()
            mqtt.broker = try RoleSupport.endpoint(mqttBroker, flag: "--mqtt-broker")
            configuration.mqtt = mqtt
        }
        if noTCP {
            configuration.tcp = nil
        } else if let tcp {
            configuration.tcp = SocketListenerConfiguration(listen: try RoleSupport.endpoint(tcp, flag: "--tcp"))
        }
        if noUDP {
            configuration.udp = nil
        } else if let udp {
            configuration.udp = SocketListenerConfiguration(listen: try RoleSupport.endpoint(udp, flag: "--udp"))
        }
        if noHTTP {
            configuration.http = nil
        } else if let http {
            configuration.http = try RoleSupport.endpoint(http, flag: "--http")
        }
        if let metrics { configuration.metrics = try RoleSupport.endpoint(metrics, flag: "--metrics") }
        if let brokers {
            guard let addresses = KafkaBrokerAddress.list(parsing: brokers), !addresses.isEmpty else {
                throw ValidationError("--brokers expects HOST:PORT[,HOST:PORT…], got '\(brokers)'")
            }
            var replication = configuration.replication ?? ReplicationConfiguration(brokers: addresses)
            replication.brokers = addresses
            replication.enabled = true
            configuration.replication = replication
        }
        if let centralTopic {
            guard var replication = configuration.replication else { throw ValidationError("--central-topic needs --brokers (or replication: in the config)") }
            guard LogLayout.isValidTopicName(centralTopic) else { throw ValidationError("--central-topic: invalid topic name '\(centralTopic)'") }
            replication.centralTopic = centralTopic
            configuration.replication = replication
        }
        return configuration
    }

    func run() async throws {
        let configuration = try configuration()
        // Take over the signals before announcing readiness: an early SIGTERM or SIGHUP must not get the
        // default action (which ends the process).
        let shutdownRequests = ProcessSignals.shutdownRequests()
        let reloadRequests = ProcessSignals.signals([SIGHUP])
        RoleSupport.bootstrapLogging(level: logLevel)
        let logger = Logger(label: "outpost.gateway")
        let registry = MetricsBootstrap.bootstrapPrometheus()
        let gateway: Gateway
        do {
            gateway = try await Gateway.start(configuration: configuration, registry: registry, logger: logger)
        } catch {
            logger.critical("gateway failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        // One line on stdout that scripts and tests wait for.
        Output.line("outpost gateway ready tcp=\(gateway.tcpPort.map(String.init) ?? "-") udp=\(gateway.udpPort.map(String.init) ?? "-") http=\(gateway.httpPort.map(String.init) ?? "-") metrics=\(gateway.metricsPort.map(String.init) ?? "-")")
        let configPath = config
        let reloads = Task {
            for await _ in reloadRequests {
                guard let configPath else {
                    logger.notice("SIGHUP ignored: no configuration file to re-read")
                    continue
                }
                do {
                    gateway.reload(try GatewayConfiguration.parse(yaml: try RoleSupport.readConfigurationFile(configPath)))
                } catch {
                    gateway.reloadFailed(error)
                }
            }
        }
        let signal = await shutdownRequests.next()
        logger.info("shutdown requested", metadata: ["signal": "\(signal)"])
        reloads.cancel()
        await gateway.stop()
    }
}
