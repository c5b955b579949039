import Foundation
import OutpostCore
import Testing

@testable import OutpostSimulator

struct DeterminismAndPayloadTests {
    func shippedFleets() throws -> [Fleet] {
        try FleetLoader.loadDirectory(packageRoot.appendingPathComponent("devices").path)
    }

    @Test func sameSeedGivesTheSameReadingsDifferentSeedDifferentOnes() throws {
        let fleets = try shippedFleets()
        let first = generatedBytes(fleets, seed: 42, points: 5_000)
        let again = generatedBytes(fleets, seed: 42, points: 5_000)
        let other = generatedBytes(fleets, seed: 43, points: 5_000)
        #expect(first == again)
        #expect(first != other)
        // Only timestamps follow the clock: a later start changes nothing but them.
        let later = generatedBytes(fleets, seed: 42, points: 5_000, start: 1_800_000_000_000_000_000)
        func withoutTimes(_ bytes: [UInt8]) -> [String] {
            String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
                String(line.replacing(#/\s\d{19}$/#, with: "").replacing(#/"ts":\d+,/#, with: ""))
            }
        }
        #expect(withoutTimes(first) == withoutTimes(later))
        #expect(withoutTimes(first) != withoutTimes(other))
    }

    @Test func everyGeneratedPointParsesWithCoreAndCarriesDeviceAndSeq() throws {
        let fleets = try shippedFleets()
        let lines = String(decoding: generatedBytes(fleets, seed: 9, points: 3_000), as: UTF8.self).split(separator: "\n")
        let lineParser = LineProtocolParser()
        let jsonParser = JSONReadingParser()
        var perDevice: [String: [Int64]] = [:]
        for line in lines {
            let point: Point
            if line.hasPrefix("{") {
                guard case .success(let parsed)? = jsonParser.parse(document: Array(line.utf8), receivedAtNanoseconds: nil).first else {
                    Issue.record("JSON reading did not parse: \(line)")
                    continue
                }
                point = parsed
            } else {
                point = try lineParser.parsePoint(String(line))
            }
            guard let device = point.tag("device"), case .int(let seq)? = point.field("seq") else {
                Issue.record("no device or integer seq in \(line)")
                continue
            }
            perDevice[device, default: []].append(seq)
            #expect(point.timestampNanoseconds != nil)
        }
        #expect(perDevice.count == 68)
        for (device, seqs) in perDevice {
            #expect(seqs == Array(0..<Int64(seqs.count)), "device \(device) numbers its points 0, 1, 2, …")
        }
    }

    @Test func malformedPayloadsAreRejectedByCore() throws {
        for style in [PayloadStyle.line, .json] {
            let fleet = try sensorFleet("    model: constant\n    value: 1")
            let encoder = PayloadEncoder(fleet: fleet, style: style)
            for variant in 0..<3 {
                var bytes: [UInt8] = []
                encoder.appendMalformed(device: 0, variant: variant, to: &bytes)
                if style == .line {
                    let outcomes = LineProtocolParser().parse(bytes)
                    #expect(outcomes.allSatisfy { if case .rejected = $0 { true } else { false } }, "variant \(variant)")
                } else {
                    let results = JSONReadingParser().parse(document: Array(bytes.dropLast()), receivedAtNanoseconds: 1)
                    #expect(results.allSatisfy { if case .failure = $0 { true } else { false } }, "variant \(variant)")
                }
            }
        }
    }

    @Test func plainStyleWritesValuesAndSeqOnTheirOwnTopics() throws {
        var fleet = try sensorFleet("    model: constant\n    value: 21.5\n    decimals: 1")
        fleet.transport = .mqtt
        fleet.payload = .plain
        let encoder = PayloadEncoder(fleet: fleet, style: .plain)
        #expect(encoder.plainTopics[0] == ["sensors/d-000/value", "sensors/d-000/seq"])
        var value: [UInt8] = []
        encoder.appendPlain(field: 0, seq: 7, values: [21.5], to: &value)
        var seq: [UInt8] = []
        encoder.appendPlain(field: 1, seq: 7, values: [21.5], to: &seq)
        #expect(String(decoding: value, as: UTF8.self) == "21.5")
        #expect(String(decoding: seq, as: UTF8.self) == "7")
        let template = try TopicTemplate("sensors/{device}/{field}")
        let point = try seq.withUnsafeBytes { try template.point(topic: "sensors/d-000/seq", payload: $0, receivedAtNanoseconds: 1).get() }
        #expect(point.field("seq") == .int(7))
    }

    @Test func fixedDecimalsAreWrittenExactly() {
        func text(_ value: Double, _ decimals: Int) -> String {
            var output: [UInt8] = []
            PayloadEncoder.appendFixed(value, decimals: decimals, to: &output)
            return String(decoding: output, as: UTF8.self)
        }
        #expect(text(21.456, 2) == "21.46")
        #expect(text(-3.05, 2) == "-3.05")
        #expect(text(-0.001, 2) == "0")
        #expect(text(7, 0) == "7")
        #expect(text(0.5, 3) == "0.500")
        #expect(text(52.520008, 6) == "52.520008")
    }

    @Test func scheduleSpreadsDevicesEvenlyAndRampsUp() throws {
        let fleet = try sensorFleet("    model: constant\n    value: 1", devices: 4, interval: "1s")
        var schedule = Schedule(fleets: [fleet], rate: 400)
        #expect(abs(schedule.fullRate - 400) < 1e-9)
        let slots = (0..<8).map { _ in schedule.take() }
        #expect(slots.map(\.device) == [0, 1, 2, 3, 0, 1, 2, 3])
        #expect(slots.map(\.dueSeconds).enumerated().allSatisfy { abs($0.element - Double($0.offset) / 400) < 1e-12 })
        let ramped = Schedule(fleets: [fleet], rate: 400, rampSeconds: 10)
        // 4 devices at 1 s make 4 points/s, so --rate 400 runs simulated time 100× faster: point k is at
        // simulated k/4 s. Half-way through the ramp (5 s) the rate has reached half; points by then:
        // 400·5²/(2·10) = 500, simulated 125 s.
        #expect(abs(ramped.wallSeconds(simulated: 125) - 5) < 1e-9)
        // After the ramp the schedule runs at full rate, half the ramp behind an unramped one.
        #expect(abs(ramped.wallSeconds(simulated: 2000) - 25) < 1e-9)
    }
}
