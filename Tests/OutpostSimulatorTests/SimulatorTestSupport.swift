import Foundation
import OutpostCore
import Testing

@testable import OutpostSimulator

/// A fleet from YAML text, failing the test with the loader's message when it does not load.
func fleet(_ yaml: String) throws -> Fleet {
    try FleetLoader.parse(yaml: yaml, source: "test.yaml")
}

/// A one-sensor fleet around `sensor` (YAML for the sensor's mapping, indented by 4).
func sensorFleet(_ sensor: String, devices: Int = 1, interval: String = "1s", extra: String = "") throws -> Fleet {
    try fleet("""
        fleet: test
        devices: {count: \(devices), id: "d-{index:03}"}
        interval: \(interval)
        protocol: tcp
        sensors:
          value:
        \(sensor)
        \(extra)
        """)
}

/// `count` samples of device `device`: values of field `field`, and the samples.
func samples(_ fleet: Fleet, device: Int = 0, count: Int, field: Int = 0, seed: UInt64 = 7) -> (values: [Double], samples: [Sample]) {
    let plan = AnomalyPlan.resolve(fleet: fleet, seed: seed)
    var model = DeviceModel(fleet: fleet, index: device, seed: seed, anomalies: plan[device])
    var buffer: [Double] = []
    var values: [Double] = []
    var taken: [Sample] = []
    for _ in 0..<count {
        let sample = model.nextSample(values: &buffer)
        values.append(buffer[field])
        taken.append(sample)
    }
    return (values, taken)
}

func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

func standardDeviation(_ values: [Double]) -> Double {
    let average = mean(values)
    return (values.reduce(0) { $0 + ($1 - average) * ($1 - average) } / Double(values.count - 1)).squareRoot()
}

/// The whole byte stream a run would send (line protocol or JSON lines), from a fixed start time.
func generatedBytes(_ fleets: [Fleet], seed: UInt64, points: Int, start: Int64 = 1_700_000_000_000_000_000) -> [UInt8] {
    var stream = PointStream(fleets: fleets, seed: seed, schedule: Schedule(fleets: fleets, rate: nil), startNanoseconds: start)
    let encoders = fleets.map { PayloadEncoder(fleet: $0, style: $0.payload) }
    var values: [Double] = []
    var output: [UInt8] = []
    var produced = 0
    while produced < points {
        let generated = stream.next(values: &values)
        guard let seq = generated.sample.seq else { continue }
        encoders[generated.fleet].append(device: generated.device, seq: seq, timestampNanoseconds: generated.timestampNanoseconds, values: values, to: &output)
        produced += 1
    }
    return output
}

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh directory, removed when the value goes away.
final class ScratchDirectory {
    let path: String

    init(_ name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }.prefix(40)
        path = NSTemporaryDirectory() + "outpost-simtests-\(safe)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
