/// Errors of the simulator and verifier. Operating errors only (bad files, unreachable targets are
/// counted, not thrown); a broken invariant traps.
public enum SimulatorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A fleet file is not valid. `path` names the file, `key` the offending key (`sensors.co2.max`).
    case invalidFleet(path: String, key: String, line: Int?, reason: String)
    case invalidOptions(String)
    case io(path: String, reason: String)
    /// A manifest file is not valid.
    case invalidManifest(path: String, line: Int, reason: String)
    /// A topic source failed (log directory unreadable, broker unreachable).
    case source(String)

    public var description: String {
        switch self {
        case .invalidFleet(let path, let key, let line, let reason):
            "\(path)\(line.map { ":\($0)" } ?? ""): \(key.isEmpty ? "" : "\(key): ")\(reason)"
        case .invalidOptions(let reason): reason
        case .io(let path, let reason): "\(path): \(reason)"
        case .invalidManifest(let path, let line, let reason): "\(path):\(line): invalid manifest: \(reason)"
        case .source(let reason): reason
        }
    }
}
