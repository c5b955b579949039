import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import NIOPosix
import Prometheus
import Testing
@testable import OutpostOperations

@Suite struct ConfigurationFileTests {
    @Test func sizesDurationsAndEndpointsAsOperatorsWriteThem() throws {
        let section = try ConfigurationSection.parse(yaml: """
            size: 16MiB
            small: 4096
            decimal: 2MB
            wait: 250ms
            long: 7d
            listen: 0.0.0.0:8094
            v6: "[::1]:9092"
            anywhere: ":9100"
            flag: yes
            """)
        #expect(try section.bytes("size") == 16 << 20)
        #expect(try section.bytes("small") == 4096)
        #expect(try section.bytes("decimal") == 2_000_000)
        #expect(try section.milliseconds("wait") == 250)
        #expect(try section.milliseconds("long") == 7 * 86_400_000)
        #expect(try section.endpoint("listen") == HostPort(host: "0.0.0.0", port: 8094))
        #expect(try section.endpoint("v6") == HostPort(host: "::1", port: 9092))
        #expect(try section.endpoint("anywhere") == HostPort(host: "0.0.0.0", port: 9100))
        #expect(try section.bool("flag") == true)
        #expect(try section.string("absent") == nil)
    }

    @Test func everyErrorNamesItsKey() throws {
        let root = try ConfigurationSection.parse(yaml: "outer:\n  inner:\n    size: lots\n    port: 70000\nlist:\n  - {a: 1}\n  - {b: x}\n")
        let inner = try root.section("outer").section("inner")
        #expect(throws: ConfigurationError(key: "outer.inner.size", message: "expected a size such as 65536, 64KiB or 16MiB, found 'lots'")) {
            try inner.bytes("size")
        }
        #expect(throws: ConfigurationError.self) { try inner.int("port", range: 1...65_535) }
        do {
            try root.rejectUnknownKeys(["outer"])
            Issue.record("an unknown key passed")
        } catch {
            #expect(error.key == "list")
        }
        let items = try root.sections("list")
        #expect(items.map(\.path) == ["list[0]", "list[1]"])
        #expect(throws: ConfigurationError.self) { try items[1].int("b") }
        #expect(throws: ConfigurationError.self) { try ConfigurationSection.parse(yaml: "a: [unclosed") }
    }
}

@Suite struct OperationsServerTests {
    @Test func metricsAndHealthAreServed() async throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "outpost", metricName: "test", unitName: "total", helpText: "A counter the test increments.")).increment(by: Int64(3))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let healthy = HealthBox()
        let server = try await OperationsServer.start(
            host: "127.0.0.1", port: 0, registry: registry, group: group, logger: Logger(label: "test")
        ) { HealthReport(healthy: healthy.value, details: [("log", healthy.value ? "ok" : "failed")]) }
        let metrics = try await Self.get(port: server.port, path: "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("outpost_test_total 3"))
        #expect(try await Self.get(port: server.port, path: "/healthz").status == 200)
        healthy.value = false
        let unhealthy = try await Self.get(port: server.port, path: "/healthz")
        #expect(unhealthy.status == 503)
        #expect(unhealthy.body.contains("\"log\":\"failed\""))
        #expect(try await Self.get(port: server.port, path: "/nope").status == 404)
        await server.close()
        try await group.shutdownGracefully()
    }

    final class HealthBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored = true
        var value: Bool {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }

    static func get(port: Int, path: String) async throws -> (status: Int, body: String) {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        let (data, response) = try await URLSession.shared.data(from: url)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}
