/// The Kafka APIs this project speaks, with the version ranges of kafka-subset.md §1.
public enum KafkaAPIKey: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case offsetCommit = 8
    case offsetFetch = 9
    case findCoordinator = 10
    case joinGroup = 11
    case heartbeat = 12
    case leaveGroup = 13
    case syncGroup = 14
    case saslHandshake = 17
    case apiVersions = 18
    case initProducerId = 22
    case saslAuthenticate = 36

    public var name: String {
        switch self {
        case .produce: "Produce"
        case .fetch: "Fetch"
        case .listOffsets: "ListOffsets"
        case .metadata: "Metadata"
        case .offsetCommit: "OffsetCommit"
        case .offsetFetch: "OffsetFetch"
        case .findCoordinator: "FindCoordinator"
        case .joinGroup: "JoinGroup"
        case .heartbeat: "Heartbeat"
        case .leaveGroup: "LeaveGroup"
        case .syncGroup: "SyncGroup"
        case .saslHandshake: "SaslHandshake"
        case .apiVersions: "ApiVersions"
        case .initProducerId: "InitProducerId"
        case .saslAuthenticate: "SaslAuthenticate"
        }
    }

    public var description: String { name }

    /// The versions a server advertises and serves. All are non-flexible (kafka-subset.md §1): advertising
    /// exactly these makes every target client send non-flexible requests.
    public var supportedVersions: ClosedRange<Int16> {
        switch self {
        case .produce: 0...7
        case .fetch: 0...11
        case .listOffsets: 0...2
        case .metadata: 0...4
        case .offsetCommit: 0...7
        case .offsetFetch: 0...5
        case .findCoordinator: 0...2
        case .joinGroup: 0...5
        case .heartbeat: 0...3
        case .leaveGroup: 0...1
        case .syncGroup: 0...3
        case .saslHandshake: 0...1
        case .apiVersions: 0...2
        case .initProducerId: 0...1
        case .saslAuthenticate: 0...1
        }
    }

    /// The SASL APIs (17, 36). A server advertises them only when SASL is enabled on the listener: a
    /// client that sees them may start authenticating (kafka-subset.md §1: advertise only what is served).
    /// librdkafka 2.0.2 needs SaslHandshake 0 in range to negotiate a mechanism at all, and SaslHandshake
    /// 1 with SaslAuthenticate 0–1 to use SaslAuthenticate (`rdkafka_feature.c`), hence 0–1 for both.
    public var isSASL: Bool { self == .saslHandshake || self == .saslAuthenticate }

    /// Request versions this module can decode: the supported ones, plus ApiVersions v3 and v4 — the
    /// flexible first tries of librdkafka and kafka-python, which must be read to be answered with the
    /// UNSUPPORTED_VERSION fallback (§2.3).
    public var decodableRequestVersions: ClosedRange<Int16> {
        switch self {
        case .apiVersions: 0...4
        default: supportedVersions
        }
    }

    /// The first version that uses flexible encoding (request header v2, compact types, tagged fields),
    /// per AK's message schemas.
    public var firstFlexibleVersion: Int16 {
        switch self {
        case .produce: 9
        case .fetch: 12
        case .listOffsets: 6
        case .metadata: 9
        case .offsetCommit: 8
        case .offsetFetch: 6
        case .findCoordinator: 3
        case .joinGroup: 6
        case .heartbeat: 4
        case .leaveGroup: 4
        case .syncGroup: 4
        case .saslHandshake: Int16.max  // never flexible
        case .apiVersions: 3
        case .initProducerId: 2
        case .saslAuthenticate: 2
        }
    }

    public func isFlexible(_ version: Int16) -> Bool { version >= firstFlexibleVersion }

    /// Request header version for a request of this API at `version`: 2 when flexible, else 1.
    public func requestHeaderVersion(_ version: Int16) -> Int16 { isFlexible(version) ? 2 : 1 }

    /// Response header version: 1 when flexible, else 0 — except ApiVersions, whose response header is
    /// always v0 so a client can read the error before it knows the version (AK ApiVersionsResponse.json).
    public func responseHeaderVersion(_ version: Int16) -> Int16 {
        if self == .apiVersions { return 0 }
        return isFlexible(version) ? 1 : 0
    }
}
