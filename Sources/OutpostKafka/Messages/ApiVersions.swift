import NIOCore

/// ApiVersions (key 18). Requests v0–2 have an empty body; v3+ (flexible) carry the client's software name
/// and version. Only v0–2 are served: a v3/v4 request is decoded so it can be answered with
/// `ApiVersionsResponse.unsupportedVersionFallback` (kafka-subset.md §2.3).
public struct ApiVersionsRequest: KafkaRequestMessage {
    public typealias Response = ApiVersionsResponse
    public static let apiKey = KafkaAPIKey.apiVersions
    public static let versions: ClosedRange<Int16> = 0...4

    /// v3+.
    public var clientSoftwareName: String
    /// v3+.
    public var clientSoftwareVersion: String

    public init(clientSoftwareName: String = "", clientSoftwareVersion: String = "") {
        self.clientSoftwareName = clientSoftwareName
        self.clientSoftwareVersion = clientSoftwareVersion
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        self.init()
        if version >= 3 {
            clientSoftwareName = try reader.readCompactString("client_software_name")
            clientSoftwareVersion = try reader.readCompactString("client_software_version")
            try reader.skipTaggedFields()
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 3 {
            writer.writeCompactString(clientSoftwareName)
            writer.writeCompactString(clientSoftwareVersion)
            writer.writeEmptyTaggedFields()
        }
    }
}

public struct ApiVersionsResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.apiVersions
    public static let versions: ClosedRange<Int16> = 0...2

    public struct ApiVersion: Hashable, Sendable {
        public var apiKey: Int16
        public var minVersion: Int16
        public var maxVersion: Int16

        public init(apiKey: Int16, minVersion: Int16, maxVersion: Int16) {
            self.apiKey = apiKey
            self.minVersion = minVersion
            self.maxVersion = maxVersion
        }
    }

    public var errorCode: KafkaErrorCode
    public var apiKeys: [ApiVersion]
    /// v1+, the last field.
    public var throttleTimeMs: Int32

    public init(errorCode: KafkaErrorCode = .none, apiKeys: [ApiVersion], throttleTimeMs: Int32 = 0) {
        self.errorCode = errorCode
        self.apiKeys = apiKeys
        self.throttleTimeMs = throttleTimeMs
    }

    /// What a server without SASL advertises: every API in `KafkaAPIKey` but the SASL ones, with its
    /// supported range, and nothing else (advertising an API that is not implemented makes clients use it, §1).
    public static let advertised = advertised(includingSASL: false)

    /// What a server advertises: `advertised`, plus SaslHandshake and SaslAuthenticate when its listener
    /// requires SASL.
    public static func advertised(includingSASL: Bool) -> ApiVersionsResponse {
        ApiVersionsResponse(
            apiKeys: KafkaAPIKey.allCases.filter { includingSASL || !$0.isSASL }.map {
                ApiVersion(apiKey: $0.rawValue, minVersion: $0.supportedVersions.lowerBound, maxVersion: $0.supportedVersions.upperBound)
            })
    }

    /// The answer to an ApiVersions request at an unsupported version: UNSUPPORTED_VERSION with the full
    /// key list, to be encoded at v0 whatever version was asked (no throttle field). librdkafka then retries
    /// at v0, kafka-python at v2.
    public static var unsupportedVersionFallback: ApiVersionsResponse { unsupportedVersionFallback(includingSASL: false) }

    public static func unsupportedVersionFallback(includingSASL: Bool) -> ApiVersionsResponse {
        var response = advertised(includingSASL: includingSASL)
        response.errorCode = .unsupportedVersion
        return response
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        errorCode = try reader.readErrorCode()
        apiKeys = try reader.readArray("api_keys") { (reader) throws(KafkaProtocolError) in
            ApiVersion(
                apiKey: try reader.readInt16("api_key"), minVersion: try reader.readInt16("min_version"),
                maxVersion: try reader.readInt16("max_version"))
        }
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeErrorCode(errorCode)
        writer.writeArray(apiKeys) { writer, key in
            writer.writeInt16(key.apiKey)
            writer.writeInt16(key.minVersion)
            writer.writeInt16(key.maxVersion)
        }
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
    }
}
