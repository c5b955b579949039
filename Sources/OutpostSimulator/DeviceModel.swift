#if canImport(Glibc)
import Glibc
#endif

/// An anomaly fixed for one device: when (simulated seconds since the start) and how much.
public struct ResolvedAnomaly: Sendable, Hashable {
    public var kind: AnomalyKind
    /// Index into the fleet's sensors; nil for a dropout.
    public var sensorIndex: Int?
    public var sensor: String?
    public var startSeconds: Double
    /// `.infinity` when it lasts to the end of the run.
    public var endSeconds: Double
    public var magnitude: Double
    public var ratePerHour: Double

    func isActive(at seconds: Double) -> Bool { seconds >= startSeconds && seconds < endSeconds }
}

/// Turns a fleet's anomaly specs into concrete per-device anomalies, drawn with the seed: which devices
/// (for `devices: {random: N}`) and when (for `random:` timing). The plan is fixed before the run, so the
/// manifest and alert tests can know what to expect.
public enum AnomalyPlan {
    public static func resolve(fleet: Fleet, seed: UInt64) -> [[ResolvedAnomaly]] {
        var perDevice = Array(repeating: [ResolvedAnomaly](), count: fleet.deviceCount)
        let fleetLabel = SeededGenerator.label(fleet.name)
        for (specIndex, spec) in fleet.anomalies.enumerated() {
            var random = SeededGenerator(seed: seed, stream: fleetLabel, SeededGenerator.label("anomalies"), UInt64(specIndex))
            let devices: [Int]
            switch spec.devices {
            case .all:
                devices = Array(0..<fleet.deviceCount)
            case .ids(let ids):
                let indexByID = Dictionary(uniqueKeysWithValues: (0..<fleet.deviceCount).map { (fleet.deviceID($0), $0) })
                devices = ids.compactMap { indexByID[$0] }
            case .random(let count):
                // Partial Fisher–Yates over the device indices.
                var indices = Array(0..<fleet.deviceCount)
                for position in 0..<min(count, indices.count) {
                    let pick = position + Int(random.next() % UInt64(indices.count - position))
                    indices.swapAt(position, pick)
                }
                devices = Array(indices.prefix(count)).sorted()
            }
            let sensorIndex = spec.sensor.flatMap { name in fleet.sensors.firstIndex { $0.name == name } }
            let defaultDuration = spec.kind == .spike ? fleet.intervalSeconds : Double.infinity
            let duration = spec.durationSeconds ?? defaultDuration
            for device in devices {
                let starts: [Double]
                switch spec.timing {
                case .at(let seconds):
                    starts = [seconds]
                case .random(let count, let within):
                    starts = (0..<count).map { _ in (random.nextUnit() * within * 1000).rounded() / 1000 }.sorted()
                }
                for start in starts {
                    perDevice[device].append(ResolvedAnomaly(
                        kind: spec.kind, sensorIndex: sensorIndex, sensor: spec.sensor, startSeconds: start,
                        endSeconds: start + duration, magnitude: spec.magnitude, ratePerHour: spec.ratePerHour))
                }
            }
        }
        return perDevice
    }
}

/// One sensor of one device: its model's state and its own random stream.
struct SensorState: Sendable {
    let spec: SensorSpec
    var random: SeededGenerator
    var walk: Double = 0
    var on = false
    /// Route: where along the out-and-back path (km) the device started, and the path's geometry.
    var routeStartKilometres: Double = 0
    var routeLengths: [Double] = []
    var routeTotal: Double = 0

    init(spec: SensorSpec, random: SeededGenerator, intervalSeconds: Double) {
        self.spec = spec
        self.random = random
        switch spec.model {
        case .randomWalk(let start, _, _, _):
            walk = start
        case .boolean(let meanOn, let meanOff):
            on = self.random.nextUnit() < meanOn / (meanOn + meanOff)
        case .route(let waypoints, _):
            routeLengths = zip(waypoints, waypoints.dropFirst()).map { SensorState.kilometres($0, $1) }
            routeTotal = routeLengths.reduce(0, +)
            routeStartKilometres = self.random.nextUnit() * 2 * routeTotal
        default:
            break
        }
    }

    /// The sample at simulated time `seconds` (sample `index` of the device). Writes one value, or two for
    /// a route (latitude, longitude), into `values` from `offset`. Booleans are 0/1.
    mutating func sample(seconds: Double, timeOfDayStart: Double, intervalSeconds: Double, values: inout [Double], offset: Int) {
        var value: Double
        switch spec.model {
        case .constant(let constant):
            value = constant
        case .sine(let mean, let amplitude, let period, let phase):
            value = mean + amplitude * _sin(2 * Double.pi * (seconds + phase) / period)
        case .diurnal(let mean, let amplitude, let peak):
            value = mean + amplitude * _cos(2 * Double.pi * (timeOfDayStart + seconds - peak) / 86_400)
        case .randomWalk(_, let step, let lower, let upper):
            walk += step * random.nextGaussian()
            if walk > upper { walk = max(lower, 2 * upper - walk) }
            if walk < lower { walk = min(upper, 2 * lower - walk) }
            value = walk
        case .boolean(let meanOn, let meanOff):
            let leave = 1 - exp(-intervalSeconds / (on ? meanOn : meanOff))
            if random.nextUnit() < leave { on.toggle() }
            values[offset] = on ? 1 : 0
            return
        case .route(let waypoints, let speed):
            var along = (routeStartKilometres + speed * seconds / 3600).truncatingRemainder(dividingBy: 2 * routeTotal)
            if along > routeTotal { along = 2 * routeTotal - along }
            var segment = 0
            while segment < routeLengths.count - 1 && along > routeLengths[segment] {
                along -= routeLengths[segment]
                segment += 1
            }
            let fraction = routeLengths[segment] > 0 ? min(1, along / routeLengths[segment]) : 0
            let from = waypoints[segment]
            let to = waypoints[segment + 1]
            let jitter = spec.noise
            values[offset] = from.latitude + (to.latitude - from.latitude) * fraction + (jitter > 0 ? jitter * random.nextGaussian() : 0)
            values[offset + 1] = from.longitude + (to.longitude - from.longitude) * fraction + (jitter > 0 ? jitter * random.nextGaussian() : 0)
            return
        }
        value += spec.driftPerHour * seconds / 3600
        if spec.noise > 0 { value += spec.noise * random.nextGaussian() }
        if let lower = spec.minimum, value < lower { value = lower }
        if let upper = spec.maximum, value > upper { value = upper }
        values[offset] = value
    }

    static func kilometres(_ a: Waypoint, _ b: Waypoint) -> Double {
        let radians = Double.pi / 180
        let dLat = (b.latitude - a.latitude) * radians
        let dLon = (b.longitude - a.longitude) * radians
        let h = _sin(dLat / 2) * _sin(dLat / 2) + _cos(a.latitude * radians) * _cos(b.latitude * radians) * _sin(dLon / 2) * _sin(dLon / 2)
        return 2 * 6371 * asin(min(1, h.squareRoot()))
    }
}

/// What became of one sample slot of a device.
public struct Sample: Sendable, Hashable {
    /// The sequence number, or nil when the device is silent (dropout): a silent slot uses no number.
    public var seq: Int64?
    /// Sample index (slot) and its simulated time since the start.
    public var index: Int64
    public var seconds: Double
    /// Send `lateDelaySeconds` after its time.
    public var late = false
    /// Hold back and send after the device's next point.
    public var holdBack = false
    /// Follow the point with a malformed payload of this variant.
    public var malformedVariant: Int?
}

/// Where an anomaly actually landed: the sequence numbers sent while it was active.
public struct AnomalyOutcome: Sendable, Hashable {
    public var anomaly: ResolvedAnomaly
    public var firstSeq: Int64?
    public var lastSeq: Int64?
    /// Sample slots inside the window (for a dropout: the silent slots).
    public var samples: Int64 = 0
}

/// One simulated device: produces its samples one slot after another. Pure: everything random comes
/// from streams derived from the seed, the fleet and the device index.
public struct DeviceModel: Sendable {
    public let fleet: Fleet
    public let index: Int
    public let id: String
    /// This device's slots are at `phaseSeconds + k · interval` (devices of a fleet are spread evenly).
    public let phaseSeconds: Double
    public let clockSkewNanoseconds: Int64
    var sensors: [SensorState]
    public private(set) var anomalies: [AnomalyOutcome]
    var stuckValues: [Double?]
    var delivery: SeededGenerator
    public private(set) var nextSeq: Int64 = 0
    public private(set) var nextIndex: Int64 = 0
    let fieldOffsets: [Int]
    public let fieldCount: Int

    public init(fleet: Fleet, index: Int, seed: UInt64, anomalies: [ResolvedAnomaly]) {
        self.fleet = fleet
        self.index = index
        id = fleet.deviceID(index)
        phaseSeconds = fleet.intervalSeconds * Double(index) / Double(fleet.deviceCount)
        let fleetLabel = SeededGenerator.label(fleet.name)
        var deviceRandom = SeededGenerator(seed: seed, stream: fleetLabel, UInt64(index), SeededGenerator.label("device"))
        let skew = fleet.delivery.clockSkewSeconds
        clockSkewNanoseconds = skew > 0 ? Int64(((deviceRandom.nextUnit() * 2 - 1) * skew * 1e9).rounded()) : 0
        delivery = SeededGenerator(seed: seed, stream: fleetLabel, UInt64(index), SeededGenerator.label("delivery"))
        sensors = fleet.sensors.enumerated().map { sensorIndex, spec in
            SensorState(spec: spec, random: SeededGenerator(seed: seed, stream: fleetLabel, UInt64(index), UInt64(sensorIndex) + 1),
                        intervalSeconds: fleet.intervalSeconds)
        }
        self.anomalies = anomalies.map { AnomalyOutcome(anomaly: $0) }
        stuckValues = Array(repeating: nil, count: anomalies.count)
        var offsets: [Int] = []
        var offset = 0
        for spec in fleet.sensors {
            offsets.append(offset)
            offset += spec.fieldNames.count
        }
        fieldOffsets = offsets
        fieldCount = offset
    }

    /// Produces the next slot: its values into `values` (`fieldCount` of them, in `fleet.fieldNames`
    /// order) and what to do with it.
    public mutating func nextSample(values: inout [Double]) -> Sample {
        let slot = nextIndex
        nextIndex += 1
        let seconds = phaseSeconds + Double(slot) * fleet.intervalSeconds
        if values.count < fieldCount { values += Array(repeating: 0, count: fieldCount - values.count) }
        for sensorIndex in sensors.indices {
            sensors[sensorIndex].sample(seconds: seconds, timeOfDayStart: fleet.startTimeOfDaySeconds, intervalSeconds: fleet.intervalSeconds,
                                        values: &values, offset: fieldOffsets[sensorIndex])
        }
        var silent = false
        for position in anomalies.indices {
            let anomaly = anomalies[position].anomaly
            guard anomaly.isActive(at: seconds) else {
                stuckValues[position] = nil
                continue
            }
            anomalies[position].samples += 1
            guard let sensorIndex = anomaly.sensorIndex else {
                silent = true
                continue
            }
            let field = fieldOffsets[sensorIndex]
            switch anomaly.kind {
            case .step, .spike:
                values[field] += anomaly.magnitude
            case .drift:
                values[field] += anomaly.ratePerHour * (seconds - anomaly.startSeconds) / 3600
            case .stuck:
                if let stuck = stuckValues[position] { values[field] = stuck } else { stuckValues[position] = values[field] }
            case .dropout:
                silent = true
            }
        }
        var sample = Sample(seq: nil, index: slot, seconds: seconds)
        guard !silent else { return sample }
        let seq = nextSeq
        nextSeq += 1
        sample.seq = seq
        for position in anomalies.indices where anomalies[position].anomaly.kind != .dropout && anomalies[position].anomaly.isActive(at: seconds) {
            if anomalies[position].firstSeq == nil { anomalies[position].firstSeq = seq }
            anomalies[position].lastSeq = seq
        }
        let plan = fleet.delivery
        if plan.lateFraction > 0 { sample.late = delivery.nextUnit() < plan.lateFraction }
        if plan.outOfOrderFraction > 0 { sample.holdBack = !sample.late && delivery.nextUnit() < plan.outOfOrderFraction }
        if plan.malformedFraction > 0, delivery.nextUnit() < plan.malformedFraction {
            sample.malformedVariant = Int(delivery.next() % 3)
        }
        return sample
    }
}
