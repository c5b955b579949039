/// Which version of each API to speak with one broker: the highest version both sides support.
///
/// The client's ranges start where its logic begins to hold (RecordBatch v2 needs Produce 3 and Fetch 4;
/// the null-means-all-topics Metadata semantics need v1; ListOffsets v1 returns one offset instead of
/// v0's array) and end at what the codecs in this module encode — all non-flexible versions, so every
/// request uses header v1 and every response header v0.
public struct ApiVersionTable: Hashable, Sendable {
    /// The versions the client can use, per API.
    public static let clientRanges: [KafkaAPIKey: ClosedRange<Int16>] = [
        .produce: 3...7,
        .fetch: 4...11,
        .listOffsets: 1...2,
        .metadata: 1...4,
        .offsetCommit: 2...7,
        .offsetFetch: 1...5,
        .findCoordinator: 0...2,
        .joinGroup: 0...5,
        .heartbeat: 0...3,
        .leaveGroup: 0...1,
        .syncGroup: 0...3,
        .apiVersions: 0...2,
        .initProducerId: 0...1,
        // For a `KafkaConnectionAuthenticator` (SASL); the client itself never sends them.
        .saslHandshake: 0...1,
        .saslAuthenticate: 0...1,
    ]

    /// The ApiVersions version sent first. Brokers that do not serve it answer UNSUPPORTED_VERSION with
    /// their range for ApiVersions (kafka-subset.md §2.3), and the handshake retries at that range's top.
    public static let firstApiVersionsVersion: Int16 = 2

    private var chosen: [KafkaAPIKey: Int16]

    /// Negotiates from a broker's ApiVersions answer. APIs the broker does not list, or whose ranges do not
    /// overlap the client's, get no version (`version(for:)` returns nil).
    public init(brokerRanges: [ApiVersionsResponse.ApiVersion]) {
        var chosen: [KafkaAPIKey: Int16] = [:]
        for entry in brokerRanges {
            guard let key = KafkaAPIKey(rawValue: entry.apiKey), let ours = Self.clientRanges[key], entry.minVersion <= entry.maxVersion
            else { continue }
            let top = min(ours.upperBound, entry.maxVersion)
            if top >= max(ours.lowerBound, entry.minVersion) { chosen[key] = top }
        }
        self.chosen = chosen
    }

    /// The version to send `api` at, or nil when the broker offers none the client can use.
    public func version(for api: KafkaAPIKey) -> Int16? { chosen[api] }

    /// For logs: "Produce v7, Fetch v11, …".
    public var summary: String {
        KafkaAPIKey.allCases.compactMap { key in chosen[key].map { "\(key) v\($0)" } }.joined(separator: ", ")
    }
}
