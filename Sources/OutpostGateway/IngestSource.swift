/// Which listener a reading came in through: the `listener` label of every ingest metric.
public enum IngestSource: String, Sendable, CaseIterable {
    case mqtt
    case udp
    case tcp
    case http

    var index: Int {
        switch self {
        case .mqtt: 0
        case .udp: 1
        case .tcp: 2
        case .http: 3
        }
    }
}
