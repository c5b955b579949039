import Foundation
import OutpostCore
import OutpostOperations
import Testing
@testable import OutpostGateway

/// The rules of the replication window, one test per rule.
@Suite struct ReplicationWindowTests {
    @Test func atMostFiveBatchesBeyondThePersistedCursorAreEverOutstanding() {
        var window = ReplicationWindow(persisted: 100)
        for index in 0..<5 {
            #expect(window.canSend)
            window.sent(localBase: Offset(100 + Int64(index) * 10), localNext: Offset(110 + Int64(index) * 10))
        }
        #expect(!window.canSend)
        // Acknowledged but not persisted still counts: the broker may forget it after 5 more.
        window.acknowledged(localBase: 100)
        window.acknowledged(localBase: 110)
        #expect(!window.canSend)
        #expect(window.cursorToPersist == 120)
        window.persisted(120)
        #expect(window.canSend)
        #expect(window.outstanding.count == 3)
    }

    @Test func theAcknowledgedCursorOnlyMovesOverAContiguousPrefix() {
        var window = ReplicationWindow(persisted: 0)
        window.sent(localBase: 0, localNext: 10)
        window.sent(localBase: 10, localNext: 20)
        window.sent(localBase: 20, localNext: 30)
        #expect(window.acknowledged(localBase: 10) == 0)
        #expect(window.cursorToPersist == nil)
        #expect(window.acknowledged(localBase: 0) == 20)
        #expect(window.cursorToPersist == 20)
    }

    @Test func rewindResendsFromTheFirstUnacknowledgedBatch() {
        var window = ReplicationWindow(persisted: 0)
        window.sent(localBase: 0, localNext: 10)
        window.sent(localBase: 10, localNext: 20)
        window.sent(localBase: 20, localNext: 30)
        window.acknowledged(localBase: 0)
        window.rewind()
        #expect(window.nextToSend == 10)
        #expect(window.inFlight == 0)
        #expect(window.outstanding.count == 1)
    }

    @Test func aRestartBeginsAtThePersistedCursorNotTheAcknowledgedOne() {
        // What a crash loses is the in-memory window; the cursor file says where to resend from.
        var window = ReplicationWindow(persisted: 0)
        window.sent(localBase: 0, localNext: 10)
        window.acknowledged(localBase: 0)
        let restarted = ReplicationWindow(persisted: window.persisted)
        #expect(restarted.nextToSend == 0)
    }

    @Test func skippingPastDroppedDataRestartsTheWindow() {
        var window = ReplicationWindow(persisted: 0)
        window.sent(localBase: 0, localNext: 10)
        window.skip(to: 500)
        #expect(window.persisted == 500)
        #expect(window.nextToSend == 500)
        #expect(window.outstanding.isEmpty)
    }

    @Test func sequencesWrapLikeKafkas() {
        #expect(ReplicationCursor.sequence(0) == 0)
        #expect(ReplicationCursor.sequence(Int64(Int32.max)) == Int32.max)
        #expect(ReplicationCursor.sequence(Int64(Int32.max) + 1) == 0)
    }

    @Test func theCursorFileKeepsTheNewestIntactSlot() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cursor-\(UUID().uuidString.prefix(8))/p-0.cursor").path
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let file = try ReplicationCursorFile(path: path)
        #expect(file.load() == nil)
        let first = ReplicationCursor(cursor: 10, producerId: 7, producerEpoch: 0, sequenceOrigin: 0)
        try file.store(first)
        var second = first
        second.cursor = 20
        second.nextSequences = [3, 4, 5]
        second.centralPartitions = 3
        try file.store(second)
        #expect(try ReplicationCursorFile(path: path).load() == second)
        // Tear the newest slot: the previous one is still there.
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seek(toOffset: 0)  // generation 2 lives in slot 0
        handle.write(Data([0xFF, 0xFF, 0xFF]))
        try handle.close()
        #expect(try ReplicationCursorFile(path: path).load() == first)
    }
}

/// `replication:` in the gateway's YAML: what it accepts and how it names what it refuses.
@Suite struct ReplicationConfigurationTests {
    func parse(_ section: String) throws(ConfigurationError) -> ReplicationConfiguration? {
        try GatewayConfiguration.parse(yaml: "replication:\n" + section).replication
    }

    func refusal(_ section: String) -> ConfigurationError? {
        do {
            _ = try parse(section)
            return nil
        } catch {
            return error
        }
    }

    @Test func everyKeyIsRead() throws {
        let configuration = try #require(try parse("""
              brokers: ["b1:9092", "b2:9093"]
              central_topic: central
              disk_budget: 2GiB
              overflow: drop-oldest
              bandwidth: 512KiB
              backoff: 250ms
              backoff_max: 5s
              tls: {ca_file: /ca.pem, cert_file: /gw.pem, key_file: /gw.key}
              sasl: {mechanism: PLAIN, username: edge-1, password: secret}
            """))
        #expect(configuration.enabled)
        #expect(configuration.brokers.map(\.description) == ["b1:9092", "b2:9093"])
        #expect(configuration.centralTopic == "central")
        #expect(configuration.diskBudgetBytes == 2 << 30)
        #expect(configuration.overflow == .dropOldest)
        #expect(configuration.bandwidthBytesPerSecond == 512 << 10)
        #expect(configuration.backoffInitialMilliseconds == 250)
        #expect(configuration.backoffMaxMilliseconds == 5000)
        #expect(configuration.usesTLS)
        #expect(configuration.saslUsername == "edge-1")
    }

    @Test func mistakesAreRefusedByKey() {
        #expect(refusal("  central_topic: t\n")?.key.hasSuffix("brokers") == true)
        #expect(refusal("  brokers: [\"no-port\"]\n")?.key.hasSuffix("brokers") == true)
        #expect(refusal("  brokers: [\"b:9092\"]\n  overflow: sometimes\n")?.key.hasSuffix("overflow") == true)
        #expect(refusal("  brokers: [\"b:9092\"]\n  tls: {cert_file: /gw.pem}\n")?.key.hasSuffix("cert_file") == true)
        #expect(refusal("  brokers: [\"b:9092\"]\n  sasl: {username: u}\n")?.key.hasSuffix("username") == true)
        #expect(refusal("  brokers: [\"b:9092\"]\n  sasl: {mechanism: SCRAM-SHA-256, username: u, password: p}\n")?.key.hasSuffix("mechanism") == true)
        #expect(refusal("  brokers: [\"b:9092\"]\n  bandwith: 1MiB\n")?.key.hasSuffix("bandwith") == true)
    }

    @Test func disabledKeepsItsSettingsWithoutBrokers() throws {
        let configuration = try #require(try parse("  enabled: false\n  disk_budget: 1GiB\n"))
        #expect(!configuration.enabled)
        #expect(configuration.diskBudgetBytes == 1 << 30)
    }
}

/// The gap marker's record: what central consumers and `outpost verify` read.
@Suite struct GapMarkerTests {
    @Test func theValueIsJSONWithTheDeclaredRanges() throws {
        let gap = GapMarker.Description(
            gatewayId: "edge-\"1", partition: 2, offsets: Offset(100)..<Offset(250), bytes: 4096, records: 150, reason: "disk budget",
            devices: ["gh-1": 10...80, "gh-2": 5...84])
        let batch = try RecordBatch.decode(try GapMarker.batch(gap, timestampMilliseconds: 1))
        let record = try #require(batch.records.first)
        #expect(GapMarker.isMarker(record))
        #expect(record.key == Array("_outpost_gap".utf8))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(record.value ?? [])) as? [String: Any])
        #expect(json["gateway"] as? String == "edge-\"1")
        #expect(json["partition"] as? Int == 2)
        #expect(json["offsets"] as? [Int] == [100, 249])
        #expect(json["records"] as? Int == 150)
        #expect((json["devices"] as? [String: [Int]])?["gh-2"] == [5, 84])
        // And the reader in OutpostCore gets back what was written.
        let read = try #require(GapMarker.description(from: record.value ?? []))
        #expect(read.gatewayId == gap.gatewayId && read.partition == 2 && read.offsets == gap.offsets)
        #expect(read.records == 150 && read.bytes == 4096 && read.reason == "disk budget" && read.devices == gap.devices)
        #expect(GapMarker.description(from: Array("[1,2]".utf8)) == nil)
    }
}
