import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostCore
import OutpostOperations
import Prometheus

/// A running gateway: listeners, the ingest pipeline and its log, the operations endpoint.
///
/// `stop()` is the orderly path SIGTERM/SIGINT take: stop accepting input, hand every open batch to the
/// workers, append and fsync everything, close the logs. Nothing accepted is left in memory.
// Unchecked: every stored property is a constant, and the timer (a DispatchSource) is thread-safe.
public final class Gateway: @unchecked Sendable {
    public let pipeline: IngestPipeline
    public let configuration: GatewayConfiguration
    let group: MultiThreadedEventLoopGroup
    let serverChannels: [any Channel]
    public let tcpPort: Int?
    public let udpPort: Int?
    public let httpPort: Int?
    let operations: OperationsServer?
    let connectionLimiter: ConnectionLimiter?
    let mqtt: MQTTIngest?
    let maintenanceTimer: any DispatchSourceTimer
    let logger: Logger

    public var metricsPort: Int? { operations?.port }

    public static func start(
        configuration: GatewayConfiguration, registry: PrometheusCollectorRegistry?, logger: Logger
    ) async throws -> Gateway {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        do {
            return try await start(configuration: configuration, registry: registry, logger: logger, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func start(
        configuration: GatewayConfiguration, registry: PrometheusCollectorRegistry?, logger: Logger,
        group: MultiThreadedEventLoopGroup
    ) async throws -> Gateway {
        let pipeline = try IngestPipeline(configuration: configuration, group: group, logger: logger)
        var channels: [any Channel] = []
        var tcpPort: Int?
        var udpPort: Int?
        var httpPort: Int?
        var limiter: ConnectionLimiter?
        do {
            if let tcp = configuration.tcp {
                let (channel, connections) = try await TCPListener.start(pipeline: pipeline, configuration: tcp, group: group, logger: logger)
                channels.append(channel)
                limiter = connections
                tcpPort = channel.localAddress?.port
            }
            if let udp = configuration.udp {
                let channel = try await UDPListener.start(
                    pipeline: pipeline, configuration: udp, receiveBufferBytes: configuration.udpReceiveBufferBytes, group: group, logger: logger)
                channels.append(channel)
                udpPort = channel.localAddress?.port
            }
            if let http = configuration.http {
                let channel = try await HTTPListener.start(pipeline: pipeline, listen: http, group: group, logger: logger)
                channels.append(channel)
                httpPort = channel.localAddress?.port
            }
        } catch {
            for channel in channels { try? await channel.close() }
            await pipeline.shutdown(group: group)
            throw error
        }
        let mqtt = configuration.mqtt.map {
            MQTTIngest(configuration: $0, gatewayId: configuration.gatewayId, pipeline: pipeline, eventLoop: group.next(), logger: logger)
        }
        mqtt?.start()
        pipeline.replicator?.start()
        var operations: OperationsServer?
        if let metrics = configuration.metrics {
            operations = try await OperationsServer.start(
                host: metrics.host, port: metrics.port, registry: registry, group: group, logger: logger
            ) { [weak pipeline, weak mqtt] in
                guard let pipeline else { return HealthReport(healthy: false, details: [("gateway", "stopped")]) }
                var (healthy, details) = pipeline.health
                if let mqtt { details += [("mqtt", mqtt.connectionState), ("mqtt_subscriptions", mqtt.subscriptionState)] }
                return HealthReport(healthy: healthy, details: details)
            }
        }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "outpost.gateway.maintenance"))
        let ticks = TickCounter()
        let udpListenPort = udpPort
        timer.schedule(deadline: .now() + .milliseconds(100), repeating: .milliseconds(100))
        timer.setEventHandler { [weak pipeline] in
            guard let pipeline else { return }
            let tick = ticks.next()
            pipeline.maintenance(retention: tick % 600 == 0)
            if tick % 10 == 0, let port = udpListenPort, let drops = UDPListener.kernelDrops(port: port) {
                pipeline.metrics.udpKernelDrops.record(drops)
            }
        }
        timer.resume()
        logger.info("gateway started", metadata: [
            "id": "\(configuration.gatewayId)", "data_dir": "\(configuration.dataDirectory)", "topic": "\(configuration.topic)",
            "partitions": "\(configuration.partitions)", "fsync": "\(configuration.log.fsync)",
        ])
        return Gateway(
            pipeline: pipeline, configuration: configuration, group: group, serverChannels: channels, tcpPort: tcpPort,
            udpPort: udpPort, httpPort: httpPort, operations: operations, connectionLimiter: limiter, mqtt: mqtt,
            maintenanceTimer: timer, logger: logger)
    }

    private init(
        pipeline: IngestPipeline, configuration: GatewayConfiguration, group: MultiThreadedEventLoopGroup,
        serverChannels: [any Channel], tcpPort: Int?, udpPort: Int?, httpPort: Int?, operations: OperationsServer?,
        connectionLimiter: ConnectionLimiter?, mqtt: MQTTIngest?, maintenanceTimer: any DispatchSourceTimer, logger: Logger
    ) {
        self.pipeline = pipeline
        self.configuration = configuration
        self.group = group
        self.serverChannels = serverChannels
        self.tcpPort = tcpPort
        self.udpPort = udpPort
        self.httpPort = httpPort
        self.operations = operations
        self.connectionLimiter = connectionLimiter
        self.mqtt = mqtt
        self.maintenanceTimer = maintenanceTimer
        self.logger = logger
    }

    /// Reloads what can change without dropping data: limits and MQTT subscriptions.
    public func reload(_ newConfiguration: GatewayConfiguration) {
        pipeline.reload(limits: newConfiguration.limits)
        if let subscriptions = newConfiguration.mqtt?.subscriptions { mqtt?.resubscribe(subscriptions) }
        pipeline.metrics.configurationReloadsApplied.increment()
        logger.info("configuration reloaded", metadata: ["limits": "\(newConfiguration.limits)"])
    }

    /// A reload whose configuration file could not be read or parsed: counted, and nothing changes.
    public func reloadFailed(_ error: any Error) {
        pipeline.metrics.configurationReloadsFailed.increment()
        logger.error("reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
    }

    /// Stops listeners, flushes and fsyncs everything, closes the logs.
    public func stop() async {
        logger.info("gateway stopping: flushing and fsyncing")
        mqtt?.stop()
        for channel in serverChannels { try? await channel.close() }
        // Close open TCP connections first: closing hands their last complete lines to the pipeline.
        await connectionLimiter?.closeAll()
        await pipeline.shutdown(group: group)
        maintenanceTimer.cancel()
        await operations?.close()
        try? await group.shutdownGracefully()
        logger.info("gateway stopped")
    }
}

final class TickCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
