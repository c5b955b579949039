import Foundation
import Yams

/// Reads fleet files: YAML, one fleet per file, every key checked. Errors name the file, the line and the
/// key path (`sensors.temperature.noise`), and unknown keys are errors (a typo must not silently fall
/// back to a default).
public enum FleetLoader {
    /// Bounds on a fleet file, so a typo cannot ask for a billion devices.
    public static let devicesPerFleetMax = 1_000_000
    public static let sensorsPerFleetMax = 64

    public static func load(path: String) throws(SimulatorError) -> Fleet {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .io(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try parse(yaml: text, source: path)
    }

    /// Every `*.yaml` / `*.yml` in a directory, sorted by name.
    public static func loadDirectory(_ directory: String) throws(SimulatorError) -> [Fleet] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .io(path: directory, reason: "cannot list: \(error.localizedDescription)")
        }
        var fleets: [Fleet] = []
        for name in names.sorted() where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            fleets.append(try load(path: directory + "/" + name))
        }
        return fleets
    }

    public static func parse(yaml: String, source: String) throws(SimulatorError) -> Fleet {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw .invalidFleet(path: source, key: "", line: nil, reason: "not valid YAML: \(error)")
        }
        guard let root else { throw .invalidFleet(path: source, key: "", line: nil, reason: "the file is empty") }
        return try FleetReader(source: source).fleet(YAMLValue(node: root, path: ""))
    }

    /// Checks that device ids are unique across fleets that run together.
    public static func checkDistinctDevices(_ fleets: [Fleet]) throws(SimulatorError) {
        var owners: [String: String] = [:]
        var fleetNames: Set<String> = []
        for fleet in fleets {
            guard fleetNames.insert(fleet.name).inserted else {
                throw .invalidFleet(path: fleet.source, key: "fleet", line: nil, reason: "fleet name '\(fleet.name)' is used by two files")
            }
            for index in 0..<fleet.deviceCount {
                let id = fleet.deviceID(index)
                if let other = owners.updateValue(fleet.name, forKey: id) {
                    throw .invalidFleet(path: fleet.source, key: "devices.id", line: nil,
                                        reason: "device id '\(id)' is produced by fleets '\(other)' and '\(fleet.name)'")
                }
            }
        }
    }
}

/// A YAML node with the key path that leads to it.
struct YAMLValue {
    let node: Node
    let path: String

    var line: Int? { node.mark?.line }

    func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

/// Walks the YAML tree of one fleet file.
struct FleetReader {
    let source: String

    func fail(_ value: YAMLValue, _ reason: String) -> SimulatorError {
        .invalidFleet(path: source, key: value.path, line: value.line, reason: reason)
    }

    /// The members of a mapping, refusing keys outside `allowed`.
    func mapping(_ value: YAMLValue, allowed: [String]) throws(SimulatorError) -> [String: YAMLValue] {
        guard case .mapping(let mapping) = value.node else { throw fail(value, "expected a mapping (key: value lines)") }
        var members: [String: YAMLValue] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let scalar) = keyNode else { throw fail(value, "keys must be plain words") }
            let key = scalar.string
            let member = YAMLValue(node: valueNode, path: value.child(key))
            guard allowed.contains(key) else {
                let suggestion = allowed.min { distance($0, key) < distance($1, key) }.flatMap { distance($0, key) <= 3 ? " (did you mean '\($0)'?)" : nil } ?? ""
                throw .invalidFleet(path: source, key: member.path, line: keyNode.mark?.line,
                                    reason: "unknown key\(suggestion); expected one of: \(allowed.joined(separator: ", "))")
            }
            members[key] = member
        }
        return members
    }

    func required(_ members: [String: YAMLValue], _ key: String, in parent: YAMLValue) throws(SimulatorError) -> YAMLValue {
        guard let member = members[key] else {
            throw .invalidFleet(path: source, key: parent.child(key), line: parent.line, reason: "is required")
        }
        return member
    }

    func string(_ value: YAMLValue) throws(SimulatorError) -> String {
        guard case .scalar(let scalar) = value.node, !scalar.string.isEmpty else { throw fail(value, "expected a non-empty string") }
        return scalar.string
    }

    func number(_ value: YAMLValue) throws(SimulatorError) -> Double {
        guard case .scalar(let scalar) = value.node, let number = Double(scalar.string), number.isFinite else {
            throw fail(value, "expected a number, got \(describe(value))")
        }
        return number
    }

    func integer(_ value: YAMLValue, in range: ClosedRange<Int>) throws(SimulatorError) -> Int {
        guard case .scalar(let scalar) = value.node, let number = Int(scalar.string) else {
            throw fail(value, "expected a whole number, got \(describe(value))")
        }
        guard range.contains(number) else { throw fail(value, "must be in \(range.lowerBound)...\(range.upperBound), got \(number)") }
        return number
    }

    func fraction(_ value: YAMLValue) throws(SimulatorError) -> Double {
        let number = try number(value)
        guard (0...1).contains(number) else { throw fail(value, "must be a fraction in 0...1, got \(number)") }
        return number
    }

    /// `250ms`, `10s`, `5m`, `1h30m`, `1d`, or a plain number of seconds.
    func duration(_ value: YAMLValue, allowZero: Bool = false) throws(SimulatorError) -> Double {
        guard case .scalar(let scalar) = value.node, let seconds = DurationText.seconds(scalar.string) else {
            throw fail(value, "expected a duration such as 250ms, 10s, 5m, 1h30m, got \(describe(value))")
        }
        guard seconds > 0 || (allowZero && seconds == 0) else { throw fail(value, "must be longer than zero") }
        return seconds
    }

    /// `HH:MM` or `HH:MM:SS`.
    func timeOfDay(_ value: YAMLValue) throws(SimulatorError) -> Double {
        let text = try string(value)
        let parts = text.split(separator: ":").map { Int($0) }
        guard (2...3).contains(parts.count), parts.allSatisfy({ $0 != nil }),
            let hours = parts[0], let minutes = parts[1], (0..<24).contains(hours), (0..<60).contains(minutes)
        else { throw fail(value, "expected a time of day HH:MM, got '\(text)'") }
        let seconds = parts.count == 3 ? (parts[2] ?? 0) : 0
        return Double(hours * 3600 + minutes * 60 + seconds)
    }

    func describe(_ value: YAMLValue) -> String {
        switch value.node {
        case .scalar(let scalar): "'\(scalar.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func sequence(_ value: YAMLValue) throws(SimulatorError) -> [YAMLValue] {
        guard case .sequence(let sequence) = value.node else { throw fail(value, "expected a list") }
        return sequence.enumerated().map { YAMLValue(node: $0.element, path: value.path + "[\($0.offset)]") }
    }

    func isName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128 && text.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
    }

    // MARK: The schema

    func fleet(_ root: YAMLValue) throws(SimulatorError) -> Fleet {
        let members = try mapping(root, allowed: [
            "fleet", "description", "devices", "interval", "measurement", "protocol", "payload", "topic", "qos",
            "start_time_of_day", "sensors", "anomalies", "delivery",
        ])
        let nameValue = try required(members, "fleet", in: root)
        let name = try string(nameValue)
        guard isName(name) else { throw fail(nameValue, "a fleet name is letters, digits, '_', '-', '.'") }

        let devicesValue = try required(members, "devices", in: root)
        let devices = try mapping(devicesValue, allowed: ["count", "id", "first_index", "tags"])
        let count = try integer(try required(devices, "count", in: devicesValue), in: 1...FleetLoader.devicesPerFleetMax)
        let idPattern = try devices["id"].map { (value) throws(SimulatorError) -> String in
            let pattern = try string(value)
            guard pattern.contains("{index") else { throw fail(value, "needs {index} (or {index:04}) so each device gets its own id") }
            return pattern
        } ?? "\(name)-{index:04}"
        let firstIndex = try devices["first_index"].map { (value) throws(SimulatorError) in try integer(value, in: 0...1_000_000_000) } ?? 0
        var tags: [FleetTag] = []
        if let tagsValue = devices["tags"] {
            guard case .mapping(let tagMapping) = tagsValue.node else { throw fail(tagsValue, "expected a mapping of tag: value") }
            for (keyNode, valueNode) in tagMapping {
                guard case .scalar(let keyScalar) = keyNode, isName(keyScalar.string) else {
                    throw fail(tagsValue, "tag keys are letters, digits, '_', '-', '.'")
                }
                let key = keyScalar.string
                let tagValue = YAMLValue(node: valueNode, path: tagsValue.child(key))
                guard key != "device" else { throw fail(tagValue, "'device' is set from devices.id") }
                var values: [String] = []
                if case .sequence = valueNode {
                    for element in try sequence(tagValue) { values.append(try string(element)) }
                    guard !values.isEmpty else { throw fail(tagValue, "a list of tag values must not be empty") }
                } else {
                    values = [try string(tagValue)]
                }
                guard values.allSatisfy({ !$0.contains("\n") && !$0.hasSuffix("\\") }) else { throw fail(tagValue, "tag values cannot hold newlines or end in a backslash") }
                tags.append(FleetTag(key: key, values: values))
            }
        }

        let interval = try duration(try required(members, "interval", in: root))
        let measurement = try members["measurement"].map { (value) throws(SimulatorError) -> String in
            let text = try string(value)
            guard isName(text) else { throw fail(value, "a measurement is letters, digits, '_', '-', '.'") }
            return text
        } ?? name
        let transport = try members["protocol"].map { (value) throws(SimulatorError) -> TransportKind in
            guard let kind = TransportKind(rawValue: try string(value)) else { throw fail(value, "expected one of mqtt, tcp, udp, http") }
            return kind
        } ?? .mqtt
        let payload = try members["payload"].map { (value) throws(SimulatorError) -> PayloadStyle in
            guard let style = PayloadStyle(rawValue: try string(value)) else { throw fail(value, "expected one of line, json, plain") }
            return style
        } ?? .line
        if payload == .plain, transport != .mqtt, let value = members["payload"] {
            throw fail(value, "plain values travel only over MQTT (protocol: mqtt)")
        }
        let topic = try members["topic"].map { (value) throws(SimulatorError) -> String in
            let text = try string(value)
            guard !text.contains("+"), !text.contains("#") else { throw fail(value, "a topic to publish to cannot hold wildcards") }
            return text
        } ?? "telemetry/{fleet}/{device}"
        let qos = try members["qos"].map { (value) throws(SimulatorError) in try integer(value, in: 0...1) } ?? 1
        let startTime = try members["start_time_of_day"].map { (value) throws(SimulatorError) in try timeOfDay(value) } ?? 0

        let sensorsValue = try required(members, "sensors", in: root)
        guard case .mapping(let sensorMapping) = sensorsValue.node, !sensorMapping.isEmpty else {
            throw fail(sensorsValue, "expected a mapping of sensor name: model")
        }
        guard sensorMapping.count <= FleetLoader.sensorsPerFleetMax else { throw fail(sensorsValue, "at most \(FleetLoader.sensorsPerFleetMax) sensors") }
        var sensors: [SensorSpec] = []
        for (keyNode, valueNode) in sensorMapping {
            guard case .scalar(let keyScalar) = keyNode else { throw fail(sensorsValue, "sensor names must be plain words") }
            sensors.append(try sensor(name: keyScalar.string, YAMLValue(node: valueNode, path: sensorsValue.child(keyScalar.string))))
        }
        let fieldNames = sensors.flatMap(\.fieldNames)
        if let duplicate = Dictionary(grouping: fieldNames, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw fail(sensorsValue, "field '\(duplicate)' is written by two sensors")
        }

        var fleet = Fleet(
            name: name, source: source, deviceCount: count, idPattern: idPattern, firstIndex: firstIndex, tags: tags,
            intervalSeconds: interval, measurement: measurement, transport: transport, payload: payload, topic: topic, qos: qos,
            startTimeOfDaySeconds: startTime, sensors: sensors, anomalies: [], delivery: DeliverySpec())
        if let anomaliesValue = members["anomalies"] {
            for element in try sequence(anomaliesValue) {
                fleet.anomalies.append(try anomaly(element, fleet: fleet))
            }
        }
        if let deliveryValue = members["delivery"] {
            fleet.delivery = try delivery(deliveryValue)
        }
        return fleet
    }

    func sensor(name: String, _ value: YAMLValue) throws(SimulatorError) -> SensorSpec {
        guard isName(name), !["seq", "device", "ts", "measurement", "tags"].contains(name) else {
            throw fail(value, "'\(name)' cannot be a sensor name (reserved, or not letters, digits, '_', '-', '.')")
        }
        let common = ["model", "noise", "decimals", "min", "max", "drift_per_hour", "type"]
        guard case .mapping = value.node else { throw fail(value, "expected a mapping with a model") }
        let modelName = try string(try required(try mapping(value, allowed: common + Self.modelKeys), "model", in: value))
        guard let specific = Self.keysByModel[modelName] else {
            throw fail(YAMLValue(node: value.node, path: value.child("model")), "expected one of \(Self.keysByModel.keys.sorted().joined(separator: ", "))")
        }
        let members = try mapping(value, allowed: common + specific)
        func need(_ key: String) throws(SimulatorError) -> Double { try number(try required(members, key, in: value)) }
        func optional(_ key: String, _ fallback: Double) throws(SimulatorError) -> Double {
            try members[key].map { (member) throws(SimulatorError) in try number(member) } ?? fallback
        }
        var spec = SensorSpec(name: name, model: .constant(value: 0))
        switch modelName {
        case "constant":
            spec.model = .constant(value: try need("value"))
        case "sine":
            let period = try duration(try required(members, "period", in: value))
            let phase = try members["phase"].map { (member) throws(SimulatorError) in try duration(member, allowZero: true) } ?? 0
            spec.model = .sine(mean: try need("mean"), amplitude: try need("amplitude"), periodSeconds: period, phaseSeconds: phase)
        case "diurnal":
            let peak = try members["peak_at"].map { (member) throws(SimulatorError) in try timeOfDay(member) } ?? 14 * 3600
            spec.model = .diurnal(mean: try need("mean"), amplitude: try need("amplitude"), peakSecondsOfDay: peak)
        case "random_walk":
            let lower = try need("min")
            let upper = try need("max")
            guard lower < upper, let minValue = members["min"] else { throw fail(value, "min must be below max") }
            let start = try optional("start", (lower + upper) / 2)
            guard (lower...upper).contains(start) else { throw fail(members["start"] ?? minValue, "start must lie within min...max") }
            let step = try need("step")
            guard step >= 0 else { throw fail(members["step"] ?? value, "step must not be negative") }
            spec.model = .randomWalk(start: start, step: step, minimum: lower, maximum: upper)
        case "boolean":
            let on = try duration(try required(members, "mean_on", in: value))
            let off = try duration(try required(members, "mean_off", in: value))
            spec.model = .boolean(meanOnSeconds: on, meanOffSeconds: off)
            spec.kind = .boolean
        case "route":
            let waypointsValue = try required(members, "waypoints", in: value)
            var waypoints: [Waypoint] = []
            for element in try sequence(waypointsValue) {
                let pair = try sequence(element)
                guard pair.count == 2 else { throw fail(element, "a waypoint is [latitude, longitude]") }
                let latitude = try number(pair[0])
                let longitude = try number(pair[1])
                guard (-90...90).contains(latitude), (-180...180).contains(longitude) else { throw fail(element, "latitude must be in ±90, longitude in ±180") }
                waypoints.append(Waypoint(latitude: latitude, longitude: longitude))
            }
            guard waypoints.count >= 2 else { throw fail(waypointsValue, "a route needs at least two waypoints") }
            let speed = try need("speed_kmh")
            guard speed > 0 else { throw fail(members["speed_kmh"] ?? value, "must be positive") }
            spec.model = .route(waypoints: waypoints, speedKilometresPerHour: speed)
            if let fieldsValue = members["fields"] {
                let names = try sequence(fieldsValue).map { (element) throws(SimulatorError) in try string(element) }
                guard names.count == 2, names.allSatisfy(isName) else { throw fail(fieldsValue, "expected two field names, e.g. [lat, lon]") }
                spec.routeFields = (names[0], names[1])
            }
            spec.decimals = 6
        default:
            break
        }
        if let noiseValue = members["noise"] {
            spec.noise = try number(noiseValue)
            guard spec.noise >= 0 else { throw fail(noiseValue, "noise is a standard deviation and cannot be negative") }
        }
        if let decimalsValue = members["decimals"] { spec.decimals = try integer(decimalsValue, in: 0...9) }
        if let minValue = members["min"], modelName != "random_walk" { spec.minimum = try number(minValue) }
        if let maxValue = members["max"], modelName != "random_walk" { spec.maximum = try number(maxValue) }
        if let lower = spec.minimum, let upper = spec.maximum, lower >= upper, let maxValue = members["max"] {
            throw fail(maxValue, "max must be above min")
        }
        if let driftValue = members["drift_per_hour"] { spec.driftPerHour = try number(driftValue) }
        if let typeValue = members["type"] {
            guard let kind = ValueKind(rawValue: try string(typeValue)), kind != .boolean || modelName == "boolean" else {
                throw fail(typeValue, "expected float or integer (boolean comes with model: boolean)")
            }
            spec.kind = kind
        }
        return spec
    }

    static let keysByModel: [String: [String]] = [
        "constant": ["value"],
        "sine": ["mean", "amplitude", "period", "phase"],
        "diurnal": ["mean", "amplitude", "peak_at"],
        "random_walk": ["start", "step"],
        "boolean": ["mean_on", "mean_off"],
        "route": ["waypoints", "speed_kmh", "fields"],
    ]
    static let modelKeys = Array(Set(keysByModel.values.joined())).sorted()

    func anomaly(_ value: YAMLValue, fleet: Fleet) throws(SimulatorError) -> AnomalySpec {
        let members = try mapping(value, allowed: ["kind", "sensor", "devices", "at", "random", "duration", "magnitude", "rate_per_hour", "description"])
        let kindValue = try required(members, "kind", in: value)
        guard let kind = AnomalyKind(rawValue: try string(kindValue)) else {
            throw fail(kindValue, "expected one of \(AnomalyKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var sensor: String?
        if kind != .dropout {
            let sensorValue = try required(members, "sensor", in: value)
            let name = try string(sensorValue)
            guard let spec = fleet.sensors.first(where: { $0.name == name }) else {
                throw fail(sensorValue, "no sensor '\(name)' in this fleet (sensors: \(fleet.sensors.map(\.name).joined(separator: ", ")))")
            }
            if case .boolean = spec.model, kind != .stuck { throw fail(sensorValue, "a boolean sensor can only be stuck") }
            if case .route = spec.model { throw fail(sensorValue, "route sensors take no anomalies") }
            sensor = name
        } else if let sensorValue = members["sensor"] {
            throw fail(sensorValue, "a dropout silences the whole device; it takes no sensor")
        }
        var selector = DeviceSelector.all
        if let devicesValue = members["devices"] {
            switch devicesValue.node {
            case .scalar(let scalar) where scalar.string == "all":
                selector = .all
            case .sequence:
                let ids = try sequence(devicesValue).map { (element) throws(SimulatorError) in try string(element) }
                let known = Set((0..<fleet.deviceCount).map(fleet.deviceID))
                if let unknown = ids.first(where: { !known.contains($0) }) {
                    throw fail(devicesValue, "device '\(unknown)' is not in this fleet (ids run \(fleet.deviceID(0))…\(fleet.deviceID(fleet.deviceCount - 1)))")
                }
                selector = .ids(ids)
            case .mapping:
                let selection = try mapping(devicesValue, allowed: ["random"])
                selector = .random(count: try integer(try required(selection, "random", in: devicesValue), in: 1...fleet.deviceCount))
            default:
                throw fail(devicesValue, "expected all, a list of device ids, or {random: N}")
            }
        }
        let timing: AnomalyTiming
        switch (members["at"], members["random"]) {
        case (let at?, nil):
            timing = .at(seconds: try duration(at, allowZero: true))
        case (nil, let random?):
            let randomMembers = try mapping(random, allowed: ["count", "within"])
            timing = .random(count: try integer(try required(randomMembers, "count", in: random), in: 1...1000),
                             withinSeconds: try duration(try required(randomMembers, "within", in: random)))
        case (_?, _?):
            throw fail(value, "give either at (a scheduled time) or random (random times), not both")
        case (nil, nil):
            throw fail(value, "needs at: (a scheduled time such as 30m) or random: {count: N, within: 1h}")
        }
        var spec = AnomalySpec(kind: kind, sensor: sensor, devices: selector, timing: timing)
        if let durationValue = members["duration"] { spec.durationSeconds = try duration(durationValue) }
        if kind == .dropout && spec.durationSeconds == nil {
            throw .invalidFleet(path: source, key: value.child("duration"), line: value.line, reason: "is required for a dropout")
        }
        if kind == .step || kind == .spike { spec.magnitude = try number(try required(members, "magnitude", in: value)) }
        if kind == .drift { spec.ratePerHour = try number(try required(members, "rate_per_hour", in: value)) }
        return spec
    }

    func delivery(_ value: YAMLValue) throws(SimulatorError) -> DeliverySpec {
        let members = try mapping(value, allowed: ["clock_skew", "late", "out_of_order", "malformed"])
        var spec = DeliverySpec()
        if let skew = members["clock_skew"] { spec.clockSkewSeconds = try duration(skew, allowZero: true) }
        if let late = members["late"] {
            let lateMembers = try mapping(late, allowed: ["fraction", "delay"])
            spec.lateFraction = try fraction(try required(lateMembers, "fraction", in: late))
            spec.lateDelaySeconds = try duration(try required(lateMembers, "delay", in: late))
        }
        if let reorder = members["out_of_order"] { spec.outOfOrderFraction = try fraction(reorder) }
        if let malformed = members["malformed"] { spec.malformedFraction = try fraction(malformed) }
        return spec
    }
}

/// Durations as fleet files and the command line write them: `250ms`, `10s`, `5m`, `1h30m`, `2d`, or a
/// plain number of seconds.
public enum DurationText {
    public static func seconds(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let plain = Double(trimmed) { return plain >= 0 && plain.isFinite ? plain : nil }
        var total = 0.0
        var number = ""
        var index = trimmed.startIndex
        var sawUnit = false
        while index < trimmed.endIndex {
            let character = trimmed[index]
            if character.isNumber || character == "." {
                number.append(character)
                index = trimmed.index(after: index)
                continue
            }
            var unit = String(character)
            let next = trimmed.index(after: index)
            if character == "m", next < trimmed.endIndex, trimmed[next] == "s" {
                unit = "ms"
                index = trimmed.index(after: next)
            } else {
                index = next
            }
            guard let value = Double(number) else { return nil }
            switch unit {
            case "ms": total += value / 1000
            case "s": total += value
            case "m": total += value * 60
            case "h": total += value * 3600
            case "d": total += value * 86_400
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard number.isEmpty, sawUnit else { return nil }
        return total
    }
}

/// Levenshtein distance, for "did you mean" on unknown keys.
func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
