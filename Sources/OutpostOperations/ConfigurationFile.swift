import Yams

/// A configuration error that names the key it is about, e.g. `listeners.tcp.listen: expected HOST:PORT`.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { key.isEmpty ? message : "\(key): \(message)" }
}

/// Read access to one mapping of a YAML configuration file, remembering its key path for errors.
///
/// Unlike `Codable`, which ignores unknown keys, `rejectUnknownKeys` reports a misspelt key instead of
/// silently running with the default — the mistake operators make most.
public struct ConfigurationSection {
    public let path: String
    let mapping: [(key: String, node: Yams.Node)]

    /// Parses YAML text; an empty document is an empty section.
    public static func parse(yaml text: String) throws(ConfigurationError) -> ConfigurationSection {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError(key: "", message: "not valid YAML: \(error)")
        }
        guard let root else { return ConfigurationSection(path: "", mapping: []) }
        return try section(root, path: "")
    }

    static func section(_ node: Yams.Node, path: String) throws(ConfigurationError) -> ConfigurationSection {
        if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" {
            return ConfigurationSection(path: path, mapping: [])
        }
        guard let mapping = node.mapping else {
            throw ConfigurationError(key: path, message: "expected a mapping of keys to values")
        }
        var entries: [(key: String, node: Yams.Node)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                throw ConfigurationError(key: path, message: "keys must be strings")
            }
            entries.append((name, value))
        }
        return ConfigurationSection(path: path, mapping: entries)
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    public var keys: [String] { mapping.map(\.key) }

    func node(_ key: String) -> Yams.Node? {
        mapping.last { $0.key == key }?.node
    }

    public func contains(_ key: String) -> Bool { node(key) != nil }

    /// Fails on any key not in `allowed`, naming it and listing the valid ones.
    public func rejectUnknownKeys(_ allowed: Set<String>) throws(ConfigurationError) {
        for (key, _) in mapping where !allowed.contains(key) {
            throw ConfigurationError(key: keyPath(key), message: "unknown key; expected one of \(allowed.sorted().joined(separator: ", "))")
        }
    }

    public func section(_ key: String) throws(ConfigurationError) -> ConfigurationSection {
        guard let child = node(key) else { return ConfigurationSection(path: keyPath(key), mapping: []) }
        return try Self.section(child, path: keyPath(key))
    }

    /// Each element of a list of mappings.
    public func sections(_ key: String) throws(ConfigurationError) -> [ConfigurationSection] {
        guard let child = node(key) else { return [] }
        guard let sequence = child.sequence else {
            throw ConfigurationError(key: keyPath(key), message: "expected a list")
        }
        var sections: [ConfigurationSection] = []
        for (index, element) in sequence.enumerated() {
            sections.append(try Self.section(element, path: keyPath(key) + "[\(index)]"))
        }
        return sections
    }

    public func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let child = node(key) else { return nil }
        guard case .scalar(let scalar) = child else {
            throw ConfigurationError(key: keyPath(key), message: "expected a single value")
        }
        return scalar.string
    }

    public func strings(_ key: String) throws(ConfigurationError) -> [String]? {
        guard let child = node(key) else { return nil }
        if case .scalar(let scalar) = child { return [scalar.string] }
        guard let sequence = child.sequence else {
            throw ConfigurationError(key: keyPath(key), message: "expected a list of values")
        }
        var values: [String] = []
        for element in sequence {
            guard case .scalar(let scalar) = element else {
                throw ConfigurationError(key: keyPath(key), message: "expected a list of values")
            }
            values.append(scalar.string)
        }
        return values
    }

    public func int(_ key: String, range: ClosedRange<Int>? = nil) throws(ConfigurationError) -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text.replacingUnderscores()) else {
            throw ConfigurationError(key: keyPath(key), message: "expected an integer, found '\(text)'")
        }
        if let range, !range.contains(value) {
            throw ConfigurationError(key: keyPath(key), message: "must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
        }
        return value
    }

    public func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigurationError(key: keyPath(key), message: "expected true or false, found '\(text)'")
        }
    }

    /// A size: `65536`, `64KiB`, `16MiB`, `1GiB` (also KB/MB/GB as powers of 1000).
    public func bytes(_ key: String) throws(ConfigurationError) -> Int64? {
        guard let text = try string(key) else { return nil }
        guard let value = ByteSize.parse(text) else {
            throw ConfigurationError(key: keyPath(key), message: "expected a size such as 65536, 64KiB or 16MiB, found '\(text)'")
        }
        return value
    }

    /// A duration in milliseconds: `250ms`, `5s`, `2m`, `1h`, `7d`, or a bare number of milliseconds.
    public func milliseconds(_ key: String) throws(ConfigurationError) -> Int64? {
        guard let text = try string(key) else { return nil }
        guard let value = DurationText.milliseconds(text) else {
            throw ConfigurationError(key: keyPath(key), message: "expected a duration such as 250ms, 5s, 2m, 1h or 7d, found '\(text)'")
        }
        return value
    }

    /// `HOST:PORT` (IPv6 as `[::1]:PORT`).
    public func endpoint(_ key: String) throws(ConfigurationError) -> HostPort? {
        guard let text = try string(key) else { return nil }
        guard let endpoint = HostPort(parsing: text) else {
            throw ConfigurationError(key: keyPath(key), message: "expected HOST:PORT, found '\(text)'")
        }
        return endpoint
    }

    public func oneOf(_ key: String, _ choices: [String]) throws(ConfigurationError) -> String? {
        guard let text = try string(key) else { return nil }
        guard choices.contains(text) else {
            throw ConfigurationError(key: keyPath(key), message: "expected one of \(choices.joined(separator: ", ")), found '\(text)'")
        }
        return text
    }

    public func error(_ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(key: keyPath(key), message: message)
    }
}

/// A network endpoint as operators write it.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces()
        var host: Substring
        var portText: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { return nil }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { return nil }
            host = trimmed[..<colon]
            portText = trimmed[trimmed.index(after: colon)...]
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portText), (0...65_535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingSpaces().replacingUnderscores()
        let units: [(String, Int64)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
            ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
            ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1),
        ]
        for (suffix, multiplier) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingSpaces()
            guard let value = Int64(number), value >= 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        guard let value = Int64(trimmed), value >= 0 else { return nil }
        return value
    }
}

public enum DurationText {
    public static func milliseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingSpaces().replacingUnderscores()
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, multiplier) in units where trimmed.hasSuffix(suffix) {
            let number = String(trimmed.dropLast(suffix.count))
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            return Int64(value * Double(multiplier))
        }
        guard let value = Int64(trimmed), value >= 0 else { return nil }
        return value
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }

    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
