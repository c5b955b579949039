/// One typed field value, as line protocol types them: `1.5`, `3i`, `4u`, `"x"`, `true`.
public enum FieldValue: Hashable, Sendable {
    case float(Double)
    case int(Int64)
    case uint(UInt64)
    case string(String)
    case bool(Bool)
}

public struct Tag: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

public struct Field: Hashable, Sendable {
    public var key: String
    public var value: FieldValue

    public init(_ key: String, _ value: FieldValue) {
        self.key = key
        self.value = value
    }
}

/// A reading: measurement, tags, typed fields and an optional timestamp in nanoseconds since the Unix epoch.
///
/// Tags are kept sorted by key (byte order), as InfluxDB stores them, so two points that differ only in
/// the order their tags were written compare equal and serialize identically. Fields keep their order.
public struct Point: Hashable, Sendable {
    public var measurement: String
    public private(set) var tags: [Tag]
    public var fields: [Field]
    public var timestampNanoseconds: Int64?

    public init(measurement: String, tags: [Tag] = [], fields: [Field], timestampNanoseconds: Int64? = nil) {
        self.measurement = measurement
        self.tags = Point.sortedTags(tags)
        self.fields = fields
        self.timestampNanoseconds = timestampNanoseconds
    }

    /// The value of tag `key`, if present.
    public func tag(_ key: String) -> String? {
        tags.first { $0.key == key }?.value
    }

    /// Sets (or replaces) a tag, keeping the tag list sorted.
    public mutating func setTag(_ key: String, _ value: String) {
        if let index = tags.firstIndex(where: { $0.key == key }) {
            tags[index].value = value
        } else {
            tags.append(Tag(key, value))
            tags = Point.sortedTags(tags)
        }
    }

    public func field(_ key: String) -> FieldValue? {
        fields.first { $0.key == key }?.value
    }

    static func sortedTags(_ tags: [Tag]) -> [Tag] {
        // Byte-wise order (not String's Unicode order) so the canonical form matches InfluxDB's.
        if tags.count < 2 { return tags }
        let precedes: (Tag, Tag) -> Bool = { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        // Devices usually write tags sorted already (InfluxDB recommends it): skip the copy then.
        if zip(tags, tags.dropFirst()).allSatisfy({ !precedes($1, $0) }) { return tags }
        return tags.sorted(by: precedes)
    }
}

/// Timestamp precision of incoming line protocol: how many nanoseconds one unit of a written timestamp is.
public enum TimestampPrecision: String, Sendable, CaseIterable {
    case nanoseconds = "ns"
    case microseconds = "us"
    case milliseconds = "ms"
    case seconds = "s"

    public var nanosecondsPerUnit: Int64 {
        switch self {
        case .nanoseconds: 1
        case .microseconds: 1_000
        case .milliseconds: 1_000_000
        case .seconds: 1_000_000_000
        }
    }

    /// Accepts the spellings in use: `ns`, `us`, `µs`, `u`, `ms`, `s`, and InfluxDB's `n`, plus `1ns`-style.
    public init?(parsing text: String) {
        var name = Substring(text)
        if name.first == "1" { name = name.dropFirst() }
        switch name {
        case "ns", "n": self = .nanoseconds
        case "us", "u", "µs": self = .microseconds
        case "ms": self = .milliseconds
        case "s": self = .seconds
        default: return nil
        }
    }
}
