import CoreMetrics
import Metrics
import OutpostCore
import OutpostLog

/// The gateway's metrics, created once (swift-metrics handles are cheap to update, costly to create).
/// Exported by OutpostOperations as `outpost_gateway_*` on `/metrics`.
final class GatewayMetrics: Sendable {
    let received: [Counter]
    /// rejected[source.index][reason]
    let rejected: [[RejectReason: Counter]]
    let committed: [Counter]
    let batchesAppended: Counter
    let batchBytes: Recorder
    let batchRecords: Recorder
    let compressionRatio: Recorder
    let appendLatency: Metrics.Timer
    let commitLatency: Metrics.Timer
    let pubackToCommit: Metrics.Timer
    let queueDepth: Gauge
    let backPressureSeconds: Gauge
    let tcpConnections: Gauge
    let tcpConnectionsRefused: Counter
    let udpDatagrams: Counter
    let udpKernelDrops: Gauge
    let deadLettered: Counter
    let deadLetterDropped: Counter
    let storageErrors: Counter
    let log = LogMetrics()
    let httpResponses: [Int: Counter]
    /// SIGHUP reloads, by result: `applied` or `failed` (a bad file keeps the running configuration).
    let configurationReloadsApplied: Counter
    let configurationReloadsFailed: Counter

    init() {
        received = IngestSource.allCases.map { Counter(label: "outpost_gateway_points_received_total", dimensions: [("listener", $0.rawValue)]) }
        rejected = IngestSource.allCases.map { source in
            Dictionary(uniqueKeysWithValues: RejectReason.allCases.map { reason in
                (reason, Counter(label: "outpost_gateway_points_rejected_total", dimensions: [("listener", source.rawValue), ("reason", reason.rawValue)]))
            })
        }
        committed = IngestSource.allCases.map { Counter(label: "outpost_gateway_points_committed_total", dimensions: [("listener", $0.rawValue)]) }
        batchesAppended = Counter(label: "outpost_gateway_batches_appended_total")
        batchBytes = Recorder(label: "outpost_gateway_batch_bytes", aggregate: true)
        batchRecords = Recorder(label: "outpost_gateway_batch_records", aggregate: true)
        compressionRatio = Recorder(label: "outpost_gateway_compression_ratio", aggregate: false)
        appendLatency = Metrics.Timer(label: "outpost_gateway_append_seconds")
        commitLatency = Metrics.Timer(label: "outpost_gateway_batch_commit_seconds")
        pubackToCommit = Metrics.Timer(label: "outpost_gateway_mqtt_puback_to_commit_seconds")
        queueDepth = Gauge(label: "outpost_gateway_queue_batches")
        backPressureSeconds = Gauge(label: "outpost_gateway_backpressure_seconds_total")
        tcpConnections = Gauge(label: "outpost_gateway_tcp_connections")
        tcpConnectionsRefused = Counter(label: "outpost_gateway_tcp_connections_refused_total")
        udpDatagrams = Counter(label: "outpost_gateway_udp_datagrams_total")
        udpKernelDrops = Gauge(label: "outpost_gateway_udp_kernel_drops")
        deadLettered = Counter(label: "outpost_gateway_dead_letter_total")
        deadLetterDropped = Counter(label: "outpost_gateway_dead_letter_dropped_total")
        storageErrors = Counter(label: "outpost_gateway_storage_errors_total")
        configurationReloadsApplied = Counter(label: "outpost_gateway_config_reloads_total", dimensions: [("result", "applied")])
        configurationReloadsFailed = Counter(label: "outpost_gateway_config_reloads_total", dimensions: [("result", "failed")])
        httpResponses = Dictionary(uniqueKeysWithValues: [204, 400, 404, 405, 413, 500, 503].map {
            ($0, Counter(label: "outpost_gateway_http_responses_total", dimensions: [("status", String($0))]))
        })
    }
}

/// What the topic's partition logs count (`LogStatistics`), summed over the partitions and recorded at each
/// maintenance tick. Each is a total since the logs were opened, so a restart starts them again from zero.
final class LogMetrics: Sendable {
    let fsyncs: Gauge
    let fsyncSeconds: Gauge
    let bytes: Gauge
    /// Deferred trims of a sealed segment's stale tail that failed (`LogStatistics.trimFailures`): the file
    /// system refused a truncation. The log goes on and retries, and each failure is logged at error level
    /// with the segment's path; until a retry or the next open cuts them, the disk holds more than `bytes`.
    let trimFailures: Gauge

    /// - Parameter factory: the swift-metrics backend; tests pass one of their own.
    init(factory: any MetricsFactory = MetricsSystem.factory) {
        fsyncs = Gauge(label: "outpost_gateway_log_fsyncs", factory: factory)
        fsyncSeconds = Gauge(label: "outpost_gateway_log_fsync_seconds", factory: factory)
        bytes = Gauge(label: "outpost_gateway_log_bytes", factory: factory)
        trimFailures = Gauge(label: "outpost_gateway_log_trim_failures_total", factory: factory)
    }

    func record(_ partitions: [LogStatistics]) {
        fsyncs.record(partitions.reduce(0) { $0 + $1.fsyncCount })
        fsyncSeconds.record(partitions.reduce(0) { $0 + $1.fsyncSecondsTotal })
        bytes.record(partitions.reduce(0) { $0 + $1.sizeBytes })
        trimFailures.record(partitions.reduce(0) { $0 + $1.trimFailures })
    }
}
