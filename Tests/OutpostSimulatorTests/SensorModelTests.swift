import Foundation
import OutpostCore
import Testing

@testable import OutpostSimulator

/// Statistics of each sensor model, from fixed seeds (so every number below is the same on every run).
struct SensorModelTests {
    @Test func constantWithGaussianNoiseHasItsMeanAndSpread() throws {
        let fleet = try sensorFleet("    model: constant\n    value: 20\n    noise: 1.5")
        let values = samples(fleet, count: 20_000).values
        // Standard error of the mean: 1.5/√20000 ≈ 0.011; 5 of them.
        #expect(abs(mean(values) - 20) < 0.055)
        #expect(abs(standardDeviation(values) - 1.5) < 0.05)
        #expect(values.filter { abs($0 - 20) > 3 * 1.5 }.count < 100)  // ~0.27 % beyond 3σ: 54 expected
    }

    @Test func sineFollowsItsPeriodAndAveragesToItsMean() throws {
        let fleet = try sensorFleet("    model: sine\n    mean: 10\n    amplitude: 2\n    period: 60s")
        let values = samples(fleet, count: 600).values
        #expect(abs(values[0] - 10) < 1e-9)
        #expect(abs(values[15] - 12) < 1e-9)  // a quarter period in
        #expect(abs(values[45] - 8) < 1e-9)
        #expect(abs(mean(values) - 10) < 1e-9)  // ten whole periods
        #expect(values.allSatisfy { (8 - 1e-9)...(12 + 1e-9) ~= $0 })
    }

    @Test func diurnalPeaksAtItsTimeOfDay() throws {
        let fleet = try sensorFleet("    model: diurnal\n    mean: 22\n    amplitude: 4\n    peak_at: \"14:00\"", interval: "1m",
                                    extra: "start_time_of_day: \"06:00\"")
        let values = samples(fleet, count: 24 * 60).values
        let peak = values.indices.max { values[$0] < values[$1] }!
        #expect(peak == 8 * 60)  // 06:00 + 8 h = 14:00
        let trough = values.indices.min { values[$0] < values[$1] }!
        #expect(trough == 20 * 60)  // 02:00 next day
        #expect(abs(values[peak] - 26) < 1e-9)
        #expect(abs(mean(values) - 22) < 1e-9)
    }

    @Test func randomWalkStaysWithinItsBoundsAndMoves() throws {
        let fleet = try sensorFleet("    model: random_walk\n    start: 3.5\n    step: 0.3\n    min: 1.5\n    max: 6")
        let values = samples(fleet, count: 50_000).values
        #expect(values.allSatisfy { (1.5...6) ~= $0 })
        #expect(values.min()! < 2 && values.max()! > 5.5)  // it roams the whole range
        #expect(Set(values).count > 49_000)
    }

    @Test func booleanIsOnForItsShareOfTheTime() throws {
        let fleet = try sensorFleet("    model: boolean\n    mean_on: 30s\n    mean_off: 270s")
        let values = samples(fleet, count: 200_000).values
        #expect(values.allSatisfy { $0 == 0 || $0 == 1 })
        let onShare = mean(values)
        #expect(abs(onShare - 0.1) < 0.01)
        let switches = zip(values, values.dropFirst()).filter { $0 != $1 }.count
        // One on-off cycle per 300 s on average: ~1,333 switches in 200,000 s.
        #expect((1_100...1_600).contains(switches))
    }

    @Test func routeMovesAlongItsWaypoints() throws {
        let fleet = try sensorFleet("    model: route\n    waypoints: [[52.52, 13.405], [53.5511, 9.9937]]\n    speed_kmh: 80", interval: "10s")
        let result = samples(fleet, count: 3_000)
        let latitudes = result.values
        let longitudes = samples(fleet, count: 3_000, field: 1).values
        #expect(latitudes.allSatisfy { (52.52...53.5511) ~= $0 })
        #expect(longitudes.allSatisfy { (9.9937...13.405) ~= $0 })
        // 80 km/h for 10 s is ~0.22 km per sample: successive fixes stay close.
        for index in 1..<latitudes.count {
            #expect(abs(latitudes[index] - latitudes[index - 1]) < 0.01)
        }
        #expect(latitudes.max()! - latitudes.min()! > 0.9)  // 8.3 h: it drives the whole ~255 km leg
    }

    @Test func driftAddsItsRatePerHour() throws {
        let fleet = try sensorFleet("    model: constant\n    value: 1\n    drift_per_hour: 0.5", interval: "1m")
        let values = samples(fleet, count: 121).values
        #expect(abs(values[60] - 1.5) < 1e-9)
        #expect(abs(values[120] - 2.0) < 1e-9)
    }

    @Test func scheduledStepSpikeStuckAndDriftLandWhereTheFileSays() throws {
        let fleet = try fleet("""
            fleet: anomalies
            devices: {count: 2, id: "a-{index}"}
            interval: 10s
            protocol: tcp
            sensors:
              temperature: {model: sine, mean: 20, amplitude: 5, period: 10m}
              pressure: {model: constant, value: 1000}
              speed: {model: constant, value: 5}
            anomalies:
              - {kind: step, sensor: temperature, devices: [a-0], at: 5m, duration: 2m, magnitude: -6}
              - {kind: spike, sensor: pressure, devices: [a-0], at: 8m, magnitude: 50}
              - {kind: drift, sensor: speed, devices: [a-0], at: 10m, rate_per_hour: 6}
              - {kind: stuck, sensor: temperature, devices: [a-0], at: 12m, duration: 1m}
            """)
        let plan = AnomalyPlan.resolve(fleet: fleet, seed: 1)
        #expect(plan[1].isEmpty)
        var anomalous = DeviceModel(fleet: fleet, index: 0, seed: 1, anomalies: plan[0])
        var normal = DeviceModel(fleet: fleet, index: 0, seed: 1, anomalies: [])
        var a: [Double] = []
        var b: [Double] = []
        for slot in 0..<120 {
            let seconds = Double(slot) * 10
            let sample = anomalous.nextSample(values: &a)
            _ = normal.nextSample(values: &b)
            #expect(sample.seq == Int64(slot))
            let inStep = (300..<420).contains(seconds)
            #expect(abs(a[0] - b[0] - (inStep ? -6 : 0)) < 1e-9 || (720..<780).contains(seconds))
            #expect(a[1] - b[1] == (seconds == 480 ? 50 : 0))
            let drift = seconds >= 600 ? 6 * (seconds - 600) / 3600 : 0
            #expect(abs(a[2] - b[2] - drift) < 1e-9)
            if (720..<780).contains(seconds) { #expect(a[0] == anomalous.stuckValueForTest(3)) }
        }
        let outcomes = anomalous.anomalies
        #expect(outcomes[0].firstSeq == 30 && outcomes[0].lastSeq == 41)
        #expect(outcomes[1].firstSeq == 48 && outcomes[1].lastSeq == 48)
        #expect(outcomes[2].firstSeq == 60 && outcomes[2].lastSeq == 119)
        #expect(outcomes[3].firstSeq == 72 && outcomes[3].lastSeq == 77)
    }

    @Test func dropoutSilencesTheDeviceWithoutUsingSequenceNumbers() throws {
        let fleet = try sensorFleet("    model: constant\n    value: 1", interval: "10s",
                                    extra: "anomalies:\n  - {kind: dropout, at: 1m, duration: 30s}")
        let taken = samples(fleet, count: 20).samples
        #expect(taken.filter { $0.seq == nil }.map(\.index) == [6, 7, 8])
        #expect(taken.compactMap(\.seq) == Array(0..<17))
    }

    @Test func randomAnomaliesAreDrawnWithTheSeedWithinTheirWindow() throws {
        let yaml = """
            fleet: random
            devices: {count: 50, id: "r-{index:02}"}
            interval: 1s
            protocol: tcp
            sensors:
              v: {model: constant, value: 0}
            anomalies:
              - {kind: spike, sensor: v, devices: {random: 5}, random: {count: 3, within: 1h}, magnitude: 9}
            """
        let fleet = try fleet(yaml)
        let plan = AnomalyPlan.resolve(fleet: fleet, seed: 42)
        let chosen = plan.indices.filter { !plan[$0].isEmpty }
        #expect(chosen.count == 5)
        for device in chosen {
            #expect(plan[device].count == 3)
            #expect(plan[device].allSatisfy { (0..<3600) ~= $0.startSeconds && $0.endSeconds == $0.startSeconds + 1 })
        }
        #expect(AnomalyPlan.resolve(fleet: fleet, seed: 42) == plan)
        #expect(AnomalyPlan.resolve(fleet: fleet, seed: 43) != plan)
    }

    @Test func deliveryQuirksHappenAtTheirRates() throws {
        let fleet = try sensorFleet("    model: constant\n    value: 1", devices: 100,
                                    extra: "delivery: {clock_skew: 2s, late: {fraction: 0.05, delay: 30s}, out_of_order: 0.02, malformed: 0.01}")
        var late = 0
        var held = 0
        var malformed = 0
        var skews: [Int64] = []
        for device in 0..<100 {
            var model = DeviceModel(fleet: fleet, index: device, seed: 3, anomalies: [])
            skews.append(model.clockSkewNanoseconds)
            var values: [Double] = []
            for _ in 0..<1000 {
                let sample = model.nextSample(values: &values)
                if sample.late { late += 1 }
                if sample.holdBack { held += 1 }
                if sample.malformedVariant != nil { malformed += 1 }
            }
        }
        #expect(skews.allSatisfy { abs($0) <= 2_000_000_000 })
        #expect(Set(skews).count == 100)
        #expect((4_500...5_500).contains(late))  // 5 % of 100,000
        #expect((1_700...2_200).contains(held))  // 2 % of those not late
        #expect((850...1_150).contains(malformed))
    }
}

extension DeviceModel {
    func stuckValueForTest(_ position: Int) -> Double? { stuckValues[position] }
}
