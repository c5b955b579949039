import OutpostLog
import OutpostOperations
import Testing
@testable import OutpostBroker

@Suite struct BrokerConfigurationTests {
    @Test func theSampleConfigurationParses() throws {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let text = try String(contentsOfFile: "/" + path + "/config/broker.yaml", encoding: .utf8)
        let configuration = try BrokerConfiguration.parse(yaml: text)
        #expect(configuration.nodeId == 0)
        #expect(configuration.resolvedListen == HostPort(host: "127.0.0.1", port: 9092))
        #expect(configuration.topics.map(\.name) == ["telemetry", "alerts"])
        #expect(configuration.logConfiguration(for: "telemetry").retentionBytes == 10 << 30)
        #expect(configuration.logConfiguration(for: "alerts").retentionMilliseconds == Int64(2_592_000_000))
        #expect(configuration.resolvedMetrics == HostPort(host: "127.0.0.1", port: 9200))
    }

    @Test func defaultsFollowTheNodeId() throws {
        var configuration = try BrokerConfiguration.parse(yaml: "broker:\n  id: 2\n")
        #expect(configuration.resolvedListen.port == 9094)
        #expect(configuration.resolvedMetrics?.port == 9202)
        configuration = try BrokerConfiguration.parse(yaml: "metrics: off\n")
        #expect(configuration.resolvedMetrics == nil)
    }

    @Test(arguments: [
        "brokr:\n  id: 1\n", "topics:\n  - name: a/b\n", "topics:\n  - name: a\n  - name: a\n", "limits:\n  max_frame_bytes: 10\n",
        "groups:\n  min_session_timeout: 10s\n  max_session_timeout: 5s\n", "topics:\n  - partitions: 3\n",
    ])
    func mistakesAreReportedNotIgnored(yaml: String) {
        #expect(throws: ConfigurationError.self) { _ = try BrokerConfiguration.parse(yaml: yaml) }
    }

    @Test func perTopicRetentionCanBeUnlimited() throws {
        let configuration = try BrokerConfiguration.parse(yaml: "log:\n  retention: 1d\ntopics:\n  - name: keep\n    retention: unlimited\n")
        #expect(configuration.logConfiguration(for: "keep").retentionMilliseconds == nil)
        #expect(configuration.logConfiguration(for: "other").retentionMilliseconds == 86_400_000)
    }
}
