import Foundation
import Testing

@testable import OutpostSimulator

struct ManifestTests {
    @Test func sequenceRangesStayCompactAndSubtract() {
        var ranges = SequenceRanges()
        for value in Int64(0)..<100 { ranges.insert(value) }
        ranges.insert(150)
        ranges.insert(101)
        ranges.insert(100)
        ranges.insert(149)
        #expect(ranges.description == "0-101,149-150")
        #expect(ranges.count == 104)
        #expect(ranges.contains(50) && !ranges.contains(120))
        let holes = ranges.subtracting(SequenceRanges([3...5, 100...149]))
        #expect(holes.description == "0-2,6-99,150")
        #expect(SequenceRanges(parsing: "0-2,6-99,150") == holes)
        #expect(SequenceRanges(parsing: "5-3") == nil)
        #expect(SequenceRanges(parsing: "x") == nil)
        #expect(SequenceRanges(parsing: "")?.isEmpty == true)
    }

    @Test func manifestRoundTrips() throws {
        var device = Manifest.Device(device: "gh-\"0001\"", fleet: "greenhouse")
        device.sent = SequenceRanges([0...99])
        device.acked = SequenceRanges([0...57, 60...99])
        device.failed = SequenceRanges([100...104])
        device.malformed = 2
        device.late = 1
        device.reordered = 3
        device.anomalies = [
            Manifest.Anomaly(kind: "spike", sensor: "co2", startSeconds: 1800.5, endSeconds: 1810.5, startNanoseconds: 1_700_000_001_800_500_000,
                             endNanoseconds: 1_700_000_001_810_500_000, firstSeq: 180, lastSeq: 180, magnitude: 1500, ratePerHour: nil),
            Manifest.Anomaly(kind: "drift", sensor: nil, startSeconds: 600, endSeconds: nil, startNanoseconds: 1, endNanoseconds: nil,
                             firstSeq: nil, lastSeq: nil, magnitude: nil, ratePerHour: 1.5),
        ]
        let manifest = Manifest(
            run: "r1", seed: 42, startedAtNanoseconds: 1_700_000_000_000_000_000, endedAtNanoseconds: 1_700_000_100_000_000_000,
            fleets: [Manifest.FleetInfo(name: "greenhouse", transport: "mqtt", payload: "json", qos: 1, acknowledged: true)],
            devices: [device, Manifest.Device(device: "gh-0002", fleet: "greenhouse")])
        let scratch = try ScratchDirectory()
        let path = scratch.path + "/manifest.jsonl"
        try manifest.write(to: path)
        #expect(try Manifest.read(path: path) == manifest)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"acked\":\"0-57,60-99\""))
        #expect(text.split(separator: "\n").count == 3)
    }

    @Test func aBrokenManifestIsRejectedWithItsLine() {
        #expect(throws: SimulatorError.invalidManifest(path: "m", line: 2, reason: "\"sent\" is not a list of ranges like 0-99,101")) {
            try Manifest.parse(Array("{\"outpost_manifest\":1}\n{\"device\":\"d\",\"fleet\":\"f\",\"sent\":\"9-1\"}\n".utf8), path: "m")
        }
        #expect(throws: SimulatorError.self) { try Manifest.parse(Array("{\"outpost_manifest\":2}\n".utf8), path: "m") }
    }
}
