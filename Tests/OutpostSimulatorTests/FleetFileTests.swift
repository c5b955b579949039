import Foundation
import Testing

@testable import OutpostSimulator

struct FleetFileTests {
    func error(_ yaml: String) -> SimulatorError? {
        do {
            _ = try FleetLoader.parse(yaml: yaml, source: "bad.yaml")
            return nil
        } catch {
            return error
        }
    }

    func expectError(_ yaml: String, key: String, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case .invalidFleet(let path, let errorKey, _, let reason)? = error(yaml) else {
            Issue.record("expected a fleet error at \(key)", sourceLocation: sourceLocation)
            return
        }
        #expect(path == "bad.yaml", sourceLocation: sourceLocation)
        #expect(errorKey == key, sourceLocation: sourceLocation)
        #expect(reason.contains(text), "\(reason)", sourceLocation: sourceLocation)
    }

    let base = """
        fleet: f
        devices: {count: 3}
        interval: 1s
        protocol: tcp
        """

    @Test func theShippedFleetsLoad() throws {
        let fleets = try FleetLoader.loadDirectory(packageRoot.appendingPathComponent("devices").path)
        #expect(Set(fleets.map(\.name)) == ["greenhouse", "cold-chain", "factory"])
        try FleetLoader.checkDistinctDevices(fleets)
        let factory = try #require(fleets.first { $0.name == "factory" })
        #expect(factory.anomalies.contains { $0.kind == .drift && $0.devices == .ids(["press-03"]) && $0.sensor == "vibration_rms" })
        let truck = try #require(fleets.first { $0.name == "cold-chain" })
        #expect(truck.fieldNames == ["temperature", "door_open", "lat", "lon"])
    }

    @Test func errorsNameTheKey() {
        expectError(base + "\nsensors:\n  t: {model: constant, vaule: 3}", key: "sensors.t.vaule", containing: "did you mean 'value'")
        expectError(base + "\nsensors:\n  t: {model: constant, value: warm}", key: "sensors.t.value", containing: "expected a number")
        expectError(base + "\nsensors:\n  t: {model: sine, mean: 1, amplitude: 1}", key: "sensors.t.period", containing: "is required")
        expectError(base + "\nsensors:\n  t: {model: wobble}", key: "sensors.t.model", containing: "expected one of")
        expectError(base + "\nsensors:\n  t: {model: random_walk, min: 5, max: 1, step: 1}", key: "sensors.t", containing: "min must be below max")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1, noise: -1}", key: "sensors.t.noise", containing: "cannot be negative")
        expectError(base + "\nsensors:\n  seq: {model: constant, value: 1}", key: "sensors.seq", containing: "reserved")
        expectError("fleet: f\ndevices: {count: 0}\ninterval: 1s\nsensors:\n  t: {model: constant, value: 1}", key: "devices.count", containing: "must be in 1...")
        expectError("fleet: f\ndevices: {count: 2}\ninterval: often\nsensors:\n  t: {model: constant, value: 1}", key: "interval", containing: "expected a duration")
        expectError("fleet: f\ndevices: {count: 2}\nsensors:\n  t: {model: constant, value: 1}", key: "interval", containing: "is required")
        expectError("fleet: f\ndevices: {count: 2}\ninterval: 1s\nprotocol: tcp\npayload: plain\nsensors:\n  t: {model: constant, value: 1}", key: "payload", containing: "only over MQTT")
        expectError(base + "\nqos: 2\nsensors:\n  t: {model: constant, value: 1}", key: "qos", containing: "must be in 0...1")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1}\nanomalies:\n  - {kind: spike, sensor: x, at: 1m, magnitude: 1}",
                    key: "anomalies[0].sensor", containing: "no sensor 'x'")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1}\nanomalies:\n  - {kind: spike, sensor: t, devices: [f-0009], at: 1m, magnitude: 1}",
                    key: "anomalies[0].devices", containing: "not in this fleet")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1}\nanomalies:\n  - {kind: dropout, at: 1m}", key: "anomalies[0].duration", containing: "is required")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1}\nanomalies:\n  - {kind: step, sensor: t, magnitude: 1}", key: "anomalies[0]", containing: "needs at:")
        expectError(base + "\nsensors:\n  t: {model: constant, value: 1}\ndelivery: {late: {fraction: 2, delay: 1s}}", key: "delivery.late.fraction", containing: "fraction")
        expectError(base + "\nsensors:\n  t: {model: route, waypoints: [[1, 2]], speed_kmh: 5}", key: "sensors.t.waypoints", containing: "at least two")
    }

    @Test func errorMessagesCarryFileAndLine() {
        let yaml = base + "\nsensors:\n  t:\n    model: constant\n    value: 1\n    colour: red\n"
        let message = error(yaml).map(String.init(describing:)) ?? ""
        #expect(message.hasPrefix("bad.yaml:9: sensors.t.colour: unknown key"))
    }

    @Test func deviceIDsMustBeDistinctAcrossFleets() throws {
        let one = try fleet("fleet: a\ndevices: {count: 2, id: \"x-{index}\"}\ninterval: 1s\nsensors:\n  t: {model: constant, value: 1}")
        let two = try fleet("fleet: b\ndevices: {count: 2, id: \"x-{index}\"}\ninterval: 1s\nsensors:\n  t: {model: constant, value: 1}")
        #expect(throws: SimulatorError.self) { try FleetLoader.checkDistinctDevices([one, two]) }
    }

    @Test func durationsReadAsFleetFilesWriteThem() {
        #expect(DurationText.seconds("250ms") == 0.25)
        #expect(DurationText.seconds("1h30m") == 5400)
        #expect(DurationText.seconds("2d") == 172_800)
        #expect(DurationText.seconds("12") == 12)
        #expect(DurationText.seconds("5 minutes") == nil)
        #expect(DurationText.seconds("m") == nil)
    }
}
