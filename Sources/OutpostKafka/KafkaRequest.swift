import NIOCore

/// Any request of the subset, decoded: what a server's request handler switches on.
public enum KafkaRequest: Sendable, Hashable {
    case produce(ProduceRequest)
    case fetch(FetchRequest)
    case listOffsets(ListOffsetsRequest)
    case metadata(MetadataRequest)
    case offsetCommit(OffsetCommitRequest)
    case offsetFetch(OffsetFetchRequest)
    case findCoordinator(FindCoordinatorRequest)
    case joinGroup(JoinGroupRequest)
    case heartbeat(HeartbeatRequest)
    case leaveGroup(LeaveGroupRequest)
    case syncGroup(SyncGroupRequest)
    case apiVersions(ApiVersionsRequest)
    case initProducerId(InitProducerIdRequest)
    case saslHandshake(SaslHandshakeRequest)
    case saslAuthenticate(SaslAuthenticateRequest)

    public var apiKey: KafkaAPIKey {
        switch self {
        case .produce: .produce
        case .fetch: .fetch
        case .listOffsets: .listOffsets
        case .metadata: .metadata
        case .offsetCommit: .offsetCommit
        case .offsetFetch: .offsetFetch
        case .findCoordinator: .findCoordinator
        case .joinGroup: .joinGroup
        case .heartbeat: .heartbeat
        case .leaveGroup: .leaveGroup
        case .syncGroup: .syncGroup
        case .apiVersions: .apiVersions
        case .initProducerId: .initProducerId
        case .saslHandshake: .saslHandshake
        case .saslAuthenticate: .saslAuthenticate
        }
    }

    /// Decodes the body of a request whose header is already read. The caller checks first that the API is
    /// known and the version decodable (`KafkaAPIKey.decodableRequestVersions`); anything else here is a
    /// malformed body.
    public static func decode(apiKey: KafkaAPIKey, version: Int16, body: ByteBuffer) throws(KafkaProtocolError) -> KafkaRequest {
        switch apiKey {
        case .produce: .produce(try .decode(body, version: version))
        case .fetch: .fetch(try .decode(body, version: version))
        case .listOffsets: .listOffsets(try .decode(body, version: version))
        case .metadata: .metadata(try .decode(body, version: version))
        case .offsetCommit: .offsetCommit(try .decode(body, version: version))
        case .offsetFetch: .offsetFetch(try .decode(body, version: version))
        case .findCoordinator: .findCoordinator(try .decode(body, version: version))
        case .joinGroup: .joinGroup(try .decode(body, version: version))
        case .heartbeat: .heartbeat(try .decode(body, version: version))
        case .leaveGroup: .leaveGroup(try .decode(body, version: version))
        case .syncGroup: .syncGroup(try .decode(body, version: version))
        case .apiVersions: .apiVersions(try .decode(body, version: version))
        case .initProducerId: .initProducerId(try .decode(body, version: version))
        case .saslHandshake: .saslHandshake(try .decode(body, version: version))
        case .saslAuthenticate: .saslAuthenticate(try .decode(body, version: version))
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        switch self {
        case .produce(let message): message.encode(to: &writer, version: version)
        case .fetch(let message): message.encode(to: &writer, version: version)
        case .listOffsets(let message): message.encode(to: &writer, version: version)
        case .metadata(let message): message.encode(to: &writer, version: version)
        case .offsetCommit(let message): message.encode(to: &writer, version: version)
        case .offsetFetch(let message): message.encode(to: &writer, version: version)
        case .findCoordinator(let message): message.encode(to: &writer, version: version)
        case .joinGroup(let message): message.encode(to: &writer, version: version)
        case .heartbeat(let message): message.encode(to: &writer, version: version)
        case .leaveGroup(let message): message.encode(to: &writer, version: version)
        case .syncGroup(let message): message.encode(to: &writer, version: version)
        case .apiVersions(let message): message.encode(to: &writer, version: version)
        case .initProducerId(let message): message.encode(to: &writer, version: version)
        case .saslHandshake(let message): message.encode(to: &writer, version: version)
        case .saslAuthenticate(let message): message.encode(to: &writer, version: version)
        }
    }
}

/// Any response of the subset: what a server's request handler returns for the connection to encode.
public enum KafkaResponse: Sendable, Hashable {
    case produce(ProduceResponse)
    case fetch(FetchResponse)
    case listOffsets(ListOffsetsResponse)
    case metadata(MetadataResponse)
    case offsetCommit(OffsetCommitResponse)
    case offsetFetch(OffsetFetchResponse)
    case findCoordinator(FindCoordinatorResponse)
    case joinGroup(JoinGroupResponse)
    case heartbeat(HeartbeatResponse)
    case leaveGroup(LeaveGroupResponse)
    case syncGroup(SyncGroupResponse)
    case apiVersions(ApiVersionsResponse)
    case initProducerId(InitProducerIdResponse)
    case saslHandshake(SaslHandshakeResponse)
    case saslAuthenticate(SaslAuthenticateResponse)

    public var apiKey: KafkaAPIKey {
        switch self {
        case .produce: .produce
        case .fetch: .fetch
        case .listOffsets: .listOffsets
        case .metadata: .metadata
        case .offsetCommit: .offsetCommit
        case .offsetFetch: .offsetFetch
        case .findCoordinator: .findCoordinator
        case .joinGroup: .joinGroup
        case .heartbeat: .heartbeat
        case .leaveGroup: .leaveGroup
        case .syncGroup: .syncGroup
        case .apiVersions: .apiVersions
        case .initProducerId: .initProducerId
        case .saslHandshake: .saslHandshake
        case .saslAuthenticate: .saslAuthenticate
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        switch self {
        case .produce(let message): message.encode(to: &writer, version: version)
        case .fetch(let message): message.encode(to: &writer, version: version)
        case .listOffsets(let message): message.encode(to: &writer, version: version)
        case .metadata(let message): message.encode(to: &writer, version: version)
        case .offsetCommit(let message): message.encode(to: &writer, version: version)
        case .offsetFetch(let message): message.encode(to: &writer, version: version)
        case .findCoordinator(let message): message.encode(to: &writer, version: version)
        case .joinGroup(let message): message.encode(to: &writer, version: version)
        case .heartbeat(let message): message.encode(to: &writer, version: version)
        case .leaveGroup(let message): message.encode(to: &writer, version: version)
        case .syncGroup(let message): message.encode(to: &writer, version: version)
        case .apiVersions(let message): message.encode(to: &writer, version: version)
        case .initProducerId(let message): message.encode(to: &writer, version: version)
        case .saslHandshake(let message): message.encode(to: &writer, version: version)
        case .saslAuthenticate(let message): message.encode(to: &writer, version: version)
        }
    }

    /// Decodes a response body of `apiKey` at `version` (the client side).
    public static func decode(apiKey: KafkaAPIKey, version: Int16, body: ByteBuffer) throws(KafkaProtocolError) -> KafkaResponse {
        switch apiKey {
        case .produce: .produce(try .decode(body, version: version))
        case .fetch: .fetch(try .decode(body, version: version))
        case .listOffsets: .listOffsets(try .decode(body, version: version))
        case .metadata: .metadata(try .decode(body, version: version))
        case .offsetCommit: .offsetCommit(try .decode(body, version: version))
        case .offsetFetch: .offsetFetch(try .decode(body, version: version))
        case .findCoordinator: .findCoordinator(try .decode(body, version: version))
        case .joinGroup: .joinGroup(try .decode(body, version: version))
        case .heartbeat: .heartbeat(try .decode(body, version: version))
        case .leaveGroup: .leaveGroup(try .decode(body, version: version))
        case .syncGroup: .syncGroup(try .decode(body, version: version))
        case .apiVersions: .apiVersions(try .decode(body, version: version))
        case .initProducerId: .initProducerId(try .decode(body, version: version))
        case .saslHandshake: .saslHandshake(try .decode(body, version: version))
        case .saslAuthenticate: .saslAuthenticate(try .decode(body, version: version))
        }
    }
}

/// A request frame read off a connection: its header and the decoded body.
public struct KafkaRequestFrame: Sendable {
    public var header: KafkaRequestHeader
    public var request: KafkaRequest

    /// What a server makes of one frame.
    public enum Parsed: Sendable {
        /// A request it can serve.
        case request(KafkaRequestFrame)
        /// A well-framed request for an API or version it does not serve: answer UNSUPPORTED_VERSION,
        /// keep the connection.
        case unsupported(KafkaRequestHeader)
    }

    public init(header: KafkaRequestHeader, request: KafkaRequest) {
        self.header = header
        self.request = request
    }

    /// Parses a frame (without its size prefix). Throws only for bytes that are not a well-formed request
    /// (the connection is then closed); an unknown API or an unserved version is `.unsupported`, except
    /// ApiVersions v3/v4, which decode so the fallback can answer them.
    public static func parse(_ frame: ByteBuffer) throws(KafkaProtocolError) -> Parsed {
        var reader = KafkaReader(frame)
        let header = try KafkaRequestHeader(from: &reader)
        guard let apiKey = header.apiKey, apiKey.decodableRequestVersions.contains(header.apiVersion) else {
            return .unsupported(header)
        }
        let request = try KafkaRequest.decode(apiKey: apiKey, version: header.apiVersion, body: reader.buffer)
        return .request(KafkaRequestFrame(header: header, request: request))
    }
}
