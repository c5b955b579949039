/// One fleet as a fleet file describes it (see devices/README.md for the schema), validated.
public struct Fleet: Sendable, Hashable {
    public var name: String
    /// The file it came from, for messages.
    public var source: String
    public var deviceCount: Int
    /// Device id pattern: `{index}`, `{index:04}` (zero-padded), `{fleet}`.
    public var idPattern: String
    public var firstIndex: Int
    public var tags: [FleetTag]
    public var intervalSeconds: Double
    public var measurement: String
    public var transport: TransportKind
    public var payload: PayloadStyle
    /// MQTT topic pattern for line/JSON payloads: `{fleet}`, `{device}`.
    public var topic: String
    public var qos: Int
    /// Simulated local time of day at the start, in seconds: drives diurnal sensors.
    public var startTimeOfDaySeconds: Double
    public var sensors: [SensorSpec]
    public var anomalies: [AnomalySpec]
    public var delivery: DeliverySpec

    public func deviceID(_ index: Int) -> String {
        Fleet.expand(idPattern, index: firstIndex + index, fleet: name)
    }

    /// Field names in payload order (a route sensor contributes two).
    public var fieldNames: [String] { sensors.flatMap(\.fieldNames) }

    /// Points per second the fleet produces at its own sampling interval.
    public var naturalRate: Double { Double(deviceCount) / intervalSeconds }

    static func expand(_ pattern: String, index: Int, fleet: String) -> String {
        var result = ""
        var rest = Substring(pattern)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                result += rest[open...]
                return result
            }
            let placeholder = rest[rest.index(after: open)..<close]
            if placeholder == "fleet" {
                result += fleet
            } else if placeholder.hasPrefix("index") {
                let digits = String(index)
                if let colon = placeholder.firstIndex(of: ":"), let width = Int(placeholder[placeholder.index(after: colon)...]) {
                    result += String(repeating: "0", count: max(0, width - digits.count)) + digits
                } else {
                    result += digits
                }
            } else {
                result += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}

/// A tag every device carries. Several values are dealt out round-robin by device index.
public struct FleetTag: Sendable, Hashable {
    public var key: String
    public var values: [String]

    public func value(forDevice index: Int) -> String { values[index % values.count] }
}

public enum TransportKind: String, Sendable, Hashable, CaseIterable {
    case mqtt, tcp, udp, http
}

public enum PayloadStyle: String, Sendable, Hashable, CaseIterable {
    /// InfluxDB line protocol, one point per line, timestamp in ns.
    case line
    /// `{"device":…,"ts":MS,"seq":N,"measurement":…,"tags":{…},field:value,…}` (Core's JSONReadingParser).
    case json
    /// MQTT only: one message per field on `sensors/{device}/{field}`, the value as the payload, and
    /// `seq` as its own message `sensors/{device}/seq`.
    case plain
}

public enum ValueKind: String, Sendable, Hashable {
    case float, integer, boolean
}

public struct SensorSpec: Sendable, Hashable {
    public var name: String
    public var model: SensorModel
    /// Standard deviation of Gaussian noise added to each sample.
    public var noise: Double = 0
    /// Decimal places written (sensors have a resolution; it also keeps payloads short).
    public var decimals: Int = 2
    public var minimum: Double?
    public var maximum: Double?
    /// A slow linear drift of the whole sensor, per simulated hour.
    public var driftPerHour: Double = 0
    public var kind: ValueKind = .float
    /// Route sensors: the two field names written (latitude, longitude).
    public var routeFields: (String, String) = ("lat", "lon")

    public var fieldNames: [String] {
        if case .route = model { return [routeFields.0, routeFields.1] }
        return [name]
    }

    public static func == (lhs: SensorSpec, rhs: SensorSpec) -> Bool {
        lhs.name == rhs.name && lhs.model == rhs.model && lhs.noise == rhs.noise && lhs.decimals == rhs.decimals
            && lhs.minimum == rhs.minimum && lhs.maximum == rhs.maximum && lhs.driftPerHour == rhs.driftPerHour
            && lhs.kind == rhs.kind && lhs.routeFields == rhs.routeFields
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(model)
    }
}

public enum SensorModel: Sendable, Hashable {
    case constant(value: Double)
    case sine(mean: Double, amplitude: Double, periodSeconds: Double, phaseSeconds: Double)
    /// A 24-hour sine peaking at `peakSecondsOfDay` (simulated local time).
    case diurnal(mean: Double, amplitude: Double, peakSecondsOfDay: Double)
    /// Each sample moves by a Gaussian step of σ `step`, reflected at `minimum`/`maximum`.
    case randomWalk(start: Double, step: Double, minimum: Double, maximum: Double)
    /// Two-state Markov process (door open/closed) with mean holding times.
    case boolean(meanOnSeconds: Double, meanOffSeconds: Double)
    /// Moves at `speedKilometresPerHour` along the waypoints and back; each device starts somewhere else.
    case route(waypoints: [Waypoint], speedKilometresPerHour: Double)
}

public struct Waypoint: Sendable, Hashable {
    public var latitude: Double
    public var longitude: Double
}

public enum AnomalyKind: String, Sendable, Hashable, CaseIterable {
    /// The value shifts by `magnitude` for the duration (default: to the end).
    case step
    /// The value jumps by `magnitude` for the duration (default: one sample).
    case spike
    /// The value moves away by `rate_per_hour` from its start (a failing bearing).
    case drift
    /// The value freezes at what it was when the anomaly began.
    case stuck
    /// The device sends nothing for the duration.
    case dropout
}

public enum DeviceSelector: Sendable, Hashable {
    case all
    case ids([String])
    /// `count` devices drawn with the seed.
    case random(count: Int)
}

public enum AnomalyTiming: Sendable, Hashable {
    /// Simulated seconds after the start.
    case at(seconds: Double)
    /// `count` start times drawn uniformly in [0, within) with the seed, per selected device.
    case random(count: Int, withinSeconds: Double)
}

public struct AnomalySpec: Sendable, Hashable {
    public var kind: AnomalyKind
    public var sensor: String?
    public var devices: DeviceSelector
    public var timing: AnomalyTiming
    public var durationSeconds: Double?
    public var magnitude: Double = 0
    public var ratePerHour: Double = 0
}

/// How a device's sends depart from the ideal.
public struct DeliverySpec: Sendable, Hashable {
    /// Each device's clock is off by a constant drawn uniformly in ±this many seconds.
    public var clockSkewSeconds: Double = 0
    /// Fraction of points sent `lateDelaySeconds` after their timestamp.
    public var lateFraction: Double = 0
    public var lateDelaySeconds: Double = 0
    /// Fraction of points held back and sent after the device's next point.
    public var outOfOrderFraction: Double = 0
    /// Fraction of samples followed by a malformed payload (which carries no sequence number).
    public var malformedFraction: Double = 0

    public init() {}
}
