import Foundation
import OutpostCore
import OutpostLog
import Testing

@testable import OutpostSimulator

/// The verifier against real logs built with OutpostLog, as the gateway writes them.
struct VerifierTests {
    /// Writes generated points as records (key = device, value = line protocol) into DATA/topics/telemetry-N,
    /// leaving out the (device, seq) pairs in `skip` and writing those in `twice` a second time.
    func buildLog(_ directory: String, fleets: [Fleet], points: Int, partitions: Int = 3,
                  skip: Set<String> = [], twice: Set<String> = [], seed: UInt64 = 5) throws -> Manifest {
        let topic = try TopicLog(dataDirectory: directory, topic: "telemetry", partitionCount: partitions, configuration: LogConfiguration())
        var batcher = PartitionedBatcher(partitionCount: partitions, batchBytesMax: 16 << 10, batchRecordsMax: 200)
        let compressor = try GzipCompressor(level: 1)
        let parser = LineProtocolParser()
        let encoder = TelemetryRecordEncoder()
        let bytes = generatedBytes(fleets, seed: seed, points: points)
        var devices: [String: Manifest.Device] = [:]
        func store(_ ready: PartitionedBatcher.ReadyBatch) throws {
            var builder = ready.builder
            _ = try topic.partitions[ready.partition].append(try builder.build(compression: .gzip, compressor: compressor))
        }
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let entry = Array(line)
            let point = try parser.parsePoint(String(decoding: entry, as: UTF8.self))
            let device = try #require(point.tag("device"))
            guard case .int(let seq)? = point.field("seq") else { throw SimulatorError.source("no seq") }
            devices[device, default: Manifest.Device(device: device, fleet: "test")].sent.insert(seq)
            devices[device]!.acked.insert(seq)
            let key = "\(device)#\(seq)"
            guard !skip.contains(key) else { continue }
            for _ in 0..<(twice.contains(key) ? 2 : 1) {
                let layout = try parser.validate(line: entry, deviceTagKey: encoder.deviceTagKey)
                var value: [UInt8] = []
                let (recordKey, timestamp) = entry.withUnsafeBytes { encoder.encode(entry: $0, layout: layout, receivedAtNanoseconds: 0, value: &value) }
                if let ready = batcher.add(key: recordKey, value: value, timestampMilliseconds: timestamp) { try store(ready) }
            }
        }
        for ready in batcher.drain() { try store(ready) }
        try topic.close()
        return Manifest(run: "t", seed: seed, startedAtNanoseconds: 0, endedAtNanoseconds: 0,
                        fleets: [Manifest.FleetInfo(name: "test", transport: "mqtt", payload: "line", qos: 1, acknowledged: true)],
                        devices: devices.values.sorted { $0.device < $1.device })
    }

    func fleets() throws -> [Fleet] {
        [try fleet("""
            fleet: test
            devices: {count: 20, id: "v-{index:02}"}
            interval: 1s
            protocol: tcp
            sensors:
              t: {model: random_walk, start: 5, step: 0.1, min: 0, max: 10}
              door: {model: boolean, mean_on: 10s, mean_off: 60s}
            """)]
    }

    @Test func anIntactLogPasses() async throws {
        let scratch = try ScratchDirectory()
        let manifest = try buildLog(scratch.path, fleets: try fleets(), points: 2_000)
        let report = try await Verifier.verify(source: LogTopicSource(dataDirectory: scratch.path, topic: "telemetry"), manifest: manifest)
        #expect(report.passed())
        #expect(report.present == 2_000 && report.recordsRead == 2_000)
        #expect(report.missingAcknowledged == 0 && report.duplicated == 0 && report.outOfOrder == 0)
    }

    @Test func catchesADeletedAndADuplicatedRecord() async throws {
        let scratch = try ScratchDirectory()
        let manifest = try buildLog(scratch.path, fleets: try fleets(), points: 2_000, skip: ["v-07#42"], twice: ["v-13#77"])
        let report = try await Verifier.verify(source: LogTopicSource(dataDirectory: scratch.path, topic: "telemetry"), manifest: manifest)
        #expect(!report.passed())
        #expect(report.missingAcknowledged == 1)
        #expect(report.duplicated == 1)
        let missing = try #require(report.devices.first { $0.device == "v-07" })
        #expect(missing.missingAcknowledged.description == "42")
        let duplicated = try #require(report.devices.first { $0.device == "v-13" })
        #expect(duplicated.duplicated.description == "77")
        #expect(report.text().contains("v-07 (test): present 99/100; MISSING acknowledged 1 [42]"))
        #expect(report.text().hasSuffix("FAIL"))
        #expect(report.json().contains("\"passed\":false"))
    }

    @Test func unacknowledgedGapsFailOnlyWhenEverySendIsRequired() async throws {
        let scratch = try ScratchDirectory()
        var manifest = try buildLog(scratch.path, fleets: try fleets(), points: 400, skip: ["v-02#3"])
        for index in manifest.devices.indices { manifest.devices[index].acked = SequenceRanges() }
        let report = try await Verifier.verify(source: LogTopicSource(dataDirectory: scratch.path, topic: "telemetry"), manifest: manifest)
        #expect(report.missingUnacknowledged == 1 && report.missingAcknowledged == 0)
        #expect(report.passed())
        #expect(!report.passed(requireAllSent: true))
    }

    @Test func outOfOrderIsReportedButDoesNotFail() {
        var device = Manifest.Device(device: "d", fleet: "f")
        device.sent = SequenceRanges([0...3])
        device.acked = device.sent
        var checker = SequenceChecker(manifest: Manifest(run: "r", seed: 1, startedAtNanoseconds: 0, endedAtNanoseconds: 0, fleets: [], devices: [device]))
        for seq in [0, 2, 1, 3] {
            checker.observe(TopicRecord(partition: 0, offset: 0, key: nil, value: Array("m,device=d seq=\(seq)i 1".utf8), timestampMilliseconds: 0))
        }
        checker.observe(TopicRecord(partition: 0, offset: 0, key: nil, value: Array("m,device=d t=1 1".utf8), timestampMilliseconds: 0))
        checker.observe(TopicRecord(partition: 0, offset: 0, key: nil, value: Array("m,device=other seq=1i 1".utf8), timestampMilliseconds: 0))
        let report = checker.report()
        #expect(report.outOfOrder == 1 && report.passed())
        #expect(report.recordsWithoutSeq == 1 && report.recordsOfUnknownDevices == 1)
    }

    @Test func runTagEscapedDeviceIdsAndSeqTypesAreReadFromTheLine() {
        var device = Manifest.Device(device: "gh 1,a", fleet: "f")
        device.sent = SequenceRanges([0...3])
        device.acked = device.sent
        let manifest = Manifest(run: "r", seed: 1, startedAtNanoseconds: 0, endedAtNanoseconds: 0, fleets: [], devices: [device])
        var checker = SequenceChecker(manifest: manifest, runTag: "r 7")
        func observe(_ line: String, key: String? = nil) {
            checker.observe(TopicRecord(partition: 0, offset: 0, key: key.map { Array($0.utf8) }, value: Array(line.utf8), timestampMilliseconds: 0))
        }
        observe(#"m,device=gh\ 1\,a,run=r\ 7 seq=0i 1"#)
        observe(#"m,run=r\ 7,device=gh\ 1\,a v=2,seq=1u 1"#)
        observe(#"m,run=r\ 7 seq=2 1"#, key: "gh 1,a")  // no device tag: the record key names the device
        observe(#"m,device=gh\ 1\,a,run=r\ 8 seq=3i 1"#)  // another run
        observe(#"m,device=gh\ 1\,a seq=3i 1"#)  // no run tag: another run
        observe(#"m,device=gh\ 1\,a,run=r\ 7 seq=2.5 1"#)  // not a whole number
        observe("not line protocol")
        let report = checker.report()
        #expect(report.recordsOfOtherRuns == 2)
        #expect(report.recordsWithoutSeq == 1)
        #expect(report.unreadableRecords == 1)
        #expect(report.missingAcknowledged == 1, "seq 3 only came from other runs")
    }
}

/// Gap markers (a gateway's declared drops) against the sequence checker, without a log.
struct GapMarkerVerificationTests {
    func manifest() -> Manifest {
        var device = Manifest.Device(device: "gh-1", fleet: "test")
        for seq in Int64(0)..<10 {
            device.sent.insert(seq)
            device.acked.insert(seq)
        }
        return Manifest(run: "t", seed: 1, startedAtNanoseconds: 0, endedAtNanoseconds: 0,
                        fleets: [Manifest.FleetInfo(name: "test", transport: "tcp", payload: "line", qos: 0, acknowledged: true)],
                        devices: [device])
    }

    func reading(_ seq: Int64, offset: Int64) -> TopicRecord {
        TopicRecord(partition: 0, offset: offset, key: Array("gh-1".utf8), value: Array("m,device=gh-1 v=1,seq=\(seq)i \(seq)".utf8), timestampMilliseconds: 0)
    }

    func marker(_ json: String, offset: Int64) -> TopicRecord {
        TopicRecord(partition: 0, offset: offset, key: Array("_outpost_gap".utf8), value: Array(json.utf8), timestampMilliseconds: 0,
                    headers: [RecordHeader(key: "outpost-gap", value: Array("1".utf8))])
    }

    @Test func aDeclaredDropIsReportedButNotCountedAsMissing() {
        var checker = SequenceChecker(manifest: manifest())
        checker.observe(marker(#"{"gateway":"edge-1","partition":0,"offsets":[0,3],"bytes":400,"records":4,"reason":"disk budget","devices":{"gh-1":[0,3]}}"#, offset: 10))
        for seq in Int64(4)..<10 { checker.observe(reading(seq, offset: 10 + seq)) }
        let report = checker.report()
        #expect(report.passed(requireAllSent: true))
        #expect(report.missingAcknowledged == 0)
        #expect(report.declaredDropped == 4)
        #expect(report.declaredDroppedRecords == 4)
        #expect(report.gapMarkers == 1)
        #expect(report.recordsWithoutSeq == 0, "a marker is not a reading without seq")
        #expect(report.text().contains("gap markers 1"))
    }

    @Test func aMarkerDeliveredTwiceDeclaresItsRecordsOnce() {
        var checker = SequenceChecker(manifest: manifest())
        let value = #"{"gateway":"edge-1","partition":0,"offsets":[0,3],"records":4,"devices":{"gh-1":[0,3]}}"#
        checker.observe(marker(value, offset: 10))
        checker.observe(marker(value, offset: 20))
        let report = checker.report()
        #expect(report.gapMarkers == 1)
        #expect(report.declaredDroppedRecords == 4)
    }

    @Test func aLossOutsideTheDeclaredRangeStillFails() {
        var checker = SequenceChecker(manifest: manifest())
        checker.observe(marker(#"{"records":2,"devices":{"gh-1":[0,1]}}"#, offset: 0))
        for seq in Int64(2)..<10 where seq != 6 { checker.observe(reading(seq, offset: seq)) }
        let report = checker.report()
        #expect(!report.passed())
        #expect(report.missingAcknowledged == 1)
        #expect(report.declaredDropped == 2)
    }

    @Test func anUnreadableMarkerDeclaresNothing() {
        var checker = SequenceChecker(manifest: manifest())
        checker.observe(marker("not json", offset: 0))
        for seq in Int64(1)..<10 { checker.observe(reading(seq, offset: seq)) }
        let report = checker.report()
        #expect(report.unreadableRecords == 1)
        #expect(report.missingAcknowledged == 1)
    }
}
