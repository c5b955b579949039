import CoreMetrics
import Metrics
import OutpostCore

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
    let fsyncs: Gauge
    let fsyncSeconds: Gauge
    let logBytes: Gauge
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
        fsyncs = Gauge(label: "outpost_gateway_log_fsyncs")
        fsyncSeconds = Gauge(label: "outpost_gateway_log_fsync_seconds")
        logBytes = Gauge(label: "outpost_gateway_log_bytes")
        configurationReloadsApplied = Counter(label: "outpost_gateway_config_reloads_total", dimensions: [("result", "applied")])
        configurationReloadsFailed = Counter(label: "outpost_gateway_config_reloads_total", dimensions: [("result", "failed")])
        httpResponses = Dictionary(uniqueKeysWithValues: [204, 400, 404, 405, 413, 500, 503].map {
            ($0, Counter(label: "outpost_gateway_http_responses_total", dimensions: [("status", String($0))]))
        })
    }
}
