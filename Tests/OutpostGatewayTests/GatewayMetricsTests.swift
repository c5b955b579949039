import Foundation
import Metrics
import OutpostCore
import Prometheus
import Testing

@testable import OutpostGateway
@testable import OutpostLog

/// The gateway's log gauges, as `/metrics` shows them: recorded from real logs' statistics into a
/// Prometheus registry of the test's own (the process-wide backend stays the no-op one).
@Suite struct GatewayMetricsTests {
    /// A sealed segment's deferred trim that fails leaves the log running (it retries later) with more on
    /// disk than its batches; the failures are exported as `outpost_gateway_log_trim_failures_total`,
    /// summed over the partitions. Before, `LogStatistics.trimFailures` reached no metric.
    @Test func failedTrimsOfSealedSegmentsAreExported() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-metrics-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Small segments and retention: segments retire into a spare file that later rolls reuse, and a reused
        // file sealed shorter than it was holds old contents past its end, which a deferred trim cuts.
        var configuration = LogConfiguration()
        configuration.segmentBytesMax = 4096
        configuration.retentionBytes = 12_288
        configuration.fsync = .always
        let failing = try PartitionLog.open(directory: directory + "/failing", configuration: configuration)
        defer { try? failing.close() }
        failing.trimHookForTesting = { () throws(LogError) in throw .io(operation: "truncate", path: "trimHookForTesting", errno: EIO) }
        let healthy = try PartitionLog.open(directory: directory + "/healthy", configuration: configuration)
        defer { try? healthy.close() }

        let registry = PrometheusCollectorRegistry()
        let metrics = LogMetrics(factory: PrometheusMetricsFactory(registry: registry))
        metrics.record([failing.currentStatistics(), healthy.currentStatistics()])
        #expect(Self.value(of: "outpost_gateway_log_trim_failures_total", in: registry) == 0)

        // Batches of varying size, so that a recycled segment ends short of its file's old contents; each
        // flushed, which has the flusher try the sealed segment's trim first.
        var sequence = 0
        for _ in 0..<500 where failing.currentStatistics().trimFailures == 0 {
            var builder = RecordBatchBuilder()
            let valueBytes = 100 + (sequence * 37) % 900
            for _ in 0..<2 {
                builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(sequence), key: nil, value: Array(repeating: UInt8(sequence & 0x7f), count: valueBytes))
                sequence += 1
            }
            let batch = try builder.build(compression: .none, compressor: nil)
            _ = try failing.append(batch)
            _ = try healthy.append(batch)
            try failing.flush()
            try healthy.flush()
        }
        let failures = failing.currentStatistics().trimFailures
        try #require(failures > 0, "no deferred trim was tried")
        #expect(failing.failureReason == nil)
        #expect(healthy.currentStatistics().trimFailures == 0)

        metrics.record([failing.currentStatistics(), healthy.currentStatistics()])
        #expect(Self.value(of: "outpost_gateway_log_trim_failures_total", in: registry) == Double(failures))
        // Its siblings are still recorded from the same statistics.
        let bytes = failing.currentStatistics().sizeBytes + healthy.currentStatistics().sizeBytes
        #expect(Self.value(of: "outpost_gateway_log_bytes", in: registry) == Double(bytes))
    }

    /// The value of an unlabelled metric in the registry's exposition text, or nil when it has none.
    static func value(of name: String, in registry: PrometheusCollectorRegistry) -> Double? {
        registry.emitToString().split(separator: "\n").lazy.compactMap { line -> Double? in
            let fields = line.split(separator: " ")
            guard fields.count == 2, fields[0] == name else { return nil }
            return Double(fields[1])
        }.first
    }
}
