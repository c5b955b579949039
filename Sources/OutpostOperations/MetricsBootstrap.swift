import Metrics
import Prometheus

/// Installs Prometheus as the process-wide swift-metrics backend. Call once, at start-up, from the
/// executable (swift-metrics allows one bootstrap per process); tests leave the default no-op backend.
public enum MetricsBootstrap {
    public static func bootstrapPrometheus() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Finer than the default (which starts at 5 ms): fsync, append and PUBACK→commit latencies live in
        // the 100 µs – 100 ms range.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
        ]
        factory.defaultValueHistogramBuckets = [
            64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304,
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }
}
