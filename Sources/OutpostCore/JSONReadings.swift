/// Which keys of a JSON reading mean what. The default reads
/// `{"device":"gh-7","ts":1732300000123,"temperature":21.5,"humidity":40,"tags":{"site":"north"}}`.
public struct JSONReadingMapping: Hashable, Sendable {
    /// Key holding the device id; it becomes the tag `deviceTag`. A reading without it is rejected.
    public var deviceKey: String = "device"
    /// Tag name the device id is stored under (the record key is its value).
    public var deviceTag: String = "device"
    /// Key holding the timestamp (number in `timestampUnit`, or an RFC 3339 string). Absent: receive time.
    public var timestampKey: String = "ts"
    public var timestampUnit: TimestampPrecision = .milliseconds
    /// Key holding the measurement name; absent or missing in a reading: `defaultMeasurement`.
    public var measurementKey: String = "measurement"
    public var defaultMeasurement: String = "telemetry"
    /// Key whose object value holds string tags.
    public var tagsKey: String = "tags"
    /// Further top-level keys whose (string or scalar) values become tags rather than fields.
    public var tagKeys: Set<String> = []
    /// When set, only these keys become fields; otherwise every remaining scalar does.
    public var fieldKeys: Set<String>? = nil
    /// How numbers are typed. Telegraf's default is every number a float, which avoids field-type
    /// conflicts when a sensor writes `21` one time and `21.5` the next.
    public var numberTyping: NumberTyping = .float
    /// Fields that are always integers whatever `numberTyping` says (sequence numbers and counters).
    public var integerFields: Set<String> = ["seq"]

    public enum NumberTyping: String, Hashable, Sendable {
        /// Every number is a float field.
        case float
        /// Integer literals become integer fields, others floats.
        case inferred
    }

    public init() {}
}

/// Turns JSON readings into points: one object, or an array of objects, per document.
///
/// Nested objects (other than the tags object) are flattened with `_` (`{"gps":{"lat":1}}` → `gps_lat`), as
/// Telegraf's JSON parser does; nulls are skipped. A syntax error rejects the whole document (there is no
/// safe place to resume inside it); a semantic error (no device, bad timestamp) rejects only that reading.
public struct JSONReadingParser: Sendable {
    public var mapping: JSONReadingMapping
    public var limits: PointLimits
    let parser = JSONParser()

    public init(mapping: JSONReadingMapping = JSONReadingMapping(), limits: PointLimits = .standard) {
        self.mapping = mapping
        self.limits = limits
    }

    /// Points of one document. `receivedAtNanoseconds` stamps readings without a timestamp (nil leaves them
    /// without one). `line` is reported in errors.
    public func parse(
        document: UnsafeRawBufferPointer, receivedAtNanoseconds: Int64?, line: Int = 1
    ) -> [Result<Point, PointParseError>] {
        guard document.count <= limits.lineBytesMax else {
            return [.failure(PointParseError(
                .lineTooLong, "JSON document of \(document.count) bytes exceeds \(limits.lineBytesMax)",
                line: line, column: limits.lineBytesMax + 1))]
        }
        let value: JSONValue
        do {
            value = try parser.parse(document)
        } catch {
            return [.failure(PointParseError(.invalidJSON, error.message, line: line, column: error.position + 1))]
        }
        return readings(in: value, receivedAtNanoseconds: receivedAtNanoseconds, line: line)
    }

    public func parse(document: [UInt8], receivedAtNanoseconds: Int64?, line: Int = 1) -> [Result<Point, PointParseError>] {
        document.withUnsafeBytes { parse(document: $0, receivedAtNanoseconds: receivedAtNanoseconds, line: line) }
    }

    /// Readings of an already parsed value.
    public func readings(in value: JSONValue, receivedAtNanoseconds: Int64?, line: Int = 1) -> [Result<Point, PointParseError>] {
        switch value {
        case .object(let members):
            return [point(members: members, receivedAtNanoseconds: receivedAtNanoseconds, line: line)]
        case .array(let elements):
            return elements.map { element in
                guard case .object(let members) = element else {
                    return .failure(PointParseError(.invalidPayload, "array element is not an object", line: line, column: 1))
                }
                return point(members: members, receivedAtNanoseconds: receivedAtNanoseconds, line: line)
            }
        default:
            return [.failure(PointParseError(.invalidPayload, "a JSON reading is an object or an array of objects", line: line, column: 1))]
        }
    }

    func point(members: [JSONMember], receivedAtNanoseconds: Int64?, line: Int) -> Result<Point, PointParseError> {
        func failure(_ reason: RejectReason, _ detail: String, at position: Int = 0) -> Result<Point, PointParseError> {
            .failure(PointParseError(reason, detail, line: line, column: position + 1))
        }
        var device: String?
        var measurement = mapping.defaultMeasurement
        var timestamp = receivedAtNanoseconds
        var tags: [Tag] = []
        var fields: [Field] = []
        for member in members {
            switch member.key {
            case mapping.deviceKey:
                switch member.value {
                case .string(let text) where !text.isEmpty: device = text
                case .number(let number) where number.isIntegerLiteral: device = number.int64.map(String.init) ?? "\(number.double)"
                default: return failure(.missingDevice, "\"\(mapping.deviceKey)\" must be a non-empty string", at: member.position)
                }
            case mapping.timestampKey:
                guard let nanoseconds = timestampNanoseconds(member.value) else {
                    return failure(.invalidTimestamp, "\"\(mapping.timestampKey)\" is not a timestamp in \(mapping.timestampUnit.rawValue) or RFC 3339", at: member.position)
                }
                timestamp = nanoseconds
            case mapping.measurementKey:
                guard case .string(let name) = member.value, !name.isEmpty else {
                    return failure(.invalidMeasurement, "\"\(mapping.measurementKey)\" must be a non-empty string", at: member.position)
                }
                measurement = name
            case mapping.tagsKey:
                guard case .object(let tagMembers) = member.value else {
                    return failure(.invalidTag, "\"\(mapping.tagsKey)\" must be an object of strings", at: member.position)
                }
                for tag in tagMembers {
                    guard let text = scalarText(tag.value), !text.isEmpty, !tag.key.isEmpty else {
                        return failure(.invalidTag, "tag \"\(tag.key)\" must have a non-empty scalar value", at: tag.position)
                    }
                    tags.append(Tag(tag.key, text))
                }
            case let key where mapping.tagKeys.contains(key):
                guard let text = scalarText(member.value), !text.isEmpty else {
                    return failure(.invalidTag, "tag \"\(key)\" must have a non-empty scalar value", at: member.position)
                }
                tags.append(Tag(key, text))
            default:
                if let selected = mapping.fieldKeys, !selected.contains(member.key) { continue }
                if let error = flatten(member.value, key: member.key, into: &fields, depth: 0) {
                    return failure(.invalidField, error, at: member.position)
                }
            }
        }
        guard let device else {
            return failure(.missingDevice, "reading has no \"\(mapping.deviceKey)\"")
        }
        tags.removeAll { $0.key == mapping.deviceTag }
        tags.append(Tag(mapping.deviceTag, device))
        guard tags.count <= limits.tagsPerPointMax else {
            return failure(.tooManyTags, "\(tags.count) tags exceed the limit of \(limits.tagsPerPointMax)")
        }
        guard !fields.isEmpty else { return failure(.invalidField, "reading has no fields") }
        guard fields.count <= limits.fieldsPerPointMax else {
            return failure(.tooManyFields, "\(fields.count) fields exceed the limit of \(limits.fieldsPerPointMax)")
        }
        return .success(Point(measurement: measurement, tags: tags, fields: fields, timestampNanoseconds: timestamp))
    }

    /// Adds the field(s) for `value`; returns an error message for values that cannot be fields.
    func flatten(_ value: JSONValue, key: String, into fields: inout [Field], depth: Int) -> String? {
        guard !key.isEmpty else { return "empty field key" }
        switch value {
        case .null:
            return nil
        case .bool(let flag):
            fields.append(Field(key, .bool(flag)))
        case .string(let text):
            fields.append(Field(key, .string(text)))
        case .number(let number):
            if mapping.integerFields.contains(key) || (mapping.numberTyping == .inferred && number.isIntegerLiteral) {
                if let exact = number.int64 {
                    fields.append(Field(key, .int(exact)))
                } else if let exact = number.uint64 {
                    fields.append(Field(key, .uint(exact)))
                } else if mapping.integerFields.contains(key) {
                    return "field \"\(key)\" must be an integer"
                } else {
                    fields.append(Field(key, .float(number.double)))
                }
            } else {
                fields.append(Field(key, .float(number.double)))
            }
        case .object(let members):
            for member in members {
                if let error = flatten(member.value, key: key + "_" + member.key, into: &fields, depth: depth + 1) { return error }
            }
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let error = flatten(element, key: key + "_" + String(index), into: &fields, depth: depth + 1) { return error }
            }
        }
        return fields.count > limits.fieldsPerPointMax ? "more than \(limits.fieldsPerPointMax) fields" : nil
    }

    func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let text): text
        case .bool(let flag): flag ? "true" : "false"
        case .number(let number): number.int64.map(String.init) ?? "\(number.double)"
        default: nil
        }
    }

    func timestampNanoseconds(_ value: JSONValue) -> Int64? {
        switch value {
        case .number(let number):
            if let exact = number.int64 {
                let (scaled, overflow) = exact.multipliedReportingOverflow(by: mapping.timestampUnit.nanosecondsPerUnit)
                return overflow ? nil : scaled
            }
            let scaled = number.double * Double(mapping.timestampUnit.nanosecondsPerUnit)
            guard scaled.isFinite, abs(scaled) < 9.2e18 else { return nil }
            return Int64(scaled)
        case .string(let text):
            return RFC3339.nanoseconds(text)
        default:
            return nil
        }
    }
}

/// RFC 3339 timestamps (`2024-11-22T18:26:40.123Z`, `…+01:00`) to nanoseconds since the epoch, without
/// Foundation's formatters (which are slow and locale-sensitive).
public enum RFC3339 {
    public static func nanoseconds(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        var position = 0
        func number(_ digits: Int) -> Int? {
            guard position + digits <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<digits {
                let byte = bytes[position]
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                position += 1
            }
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard position < bytes.count, characters.utf8.contains(bytes[position]) else { return false }
            position += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
            let second = number(2)
        else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var fraction: Int64 = 0
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            var digits = 0
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                if digits < 9 { fraction = fraction * 10 + Int64(bytes[position] - UInt8(ascii: "0")) }
                digits += 1
                position += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { fraction *= 10 }
        }
        var offsetSeconds = 0
        if expect("Zz") {
            // UTC
        } else if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
            let sign = bytes[position] == UInt8(ascii: "-") ? -1 : 1
            position += 1
            guard let offsetHours = number(2), expect(":"), let offsetMinutes = number(2) else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            return nil
        }
        guard position == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        let (total, overflowAdd) = scaled.addingReportingOverflow(fraction)
        return overflowAdd ? nil : total
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil-from-days inverse).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
