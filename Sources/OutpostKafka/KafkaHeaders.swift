import NIOCore

/// Request header v1 (api_key, api_version, correlation_id, client_id) or v2 (v1 + TAG_BUFFER).
///
/// The fixed prefix is the same in every header version — client_id keeps its int16 length even in v2
/// (kafka-subset.md §2.2) — so a server can always learn the correlation id, even for an API it does not
/// know, and answer instead of dropping the connection.
public struct KafkaRequestHeader: Hashable, Sendable {
    /// The raw key: a request for an unknown API still has a header.
    public var apiKeyRawValue: Int16
    public var apiVersion: Int16
    public var correlationId: Int32
    public var clientId: String?

    public init(apiKey: KafkaAPIKey, apiVersion: Int16, correlationId: Int32, clientId: String?) {
        self.apiKeyRawValue = apiKey.rawValue
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    public init(apiKeyRawValue: Int16, apiVersion: Int16, correlationId: Int32, clientId: String?) {
        self.apiKeyRawValue = apiKeyRawValue
        self.apiVersion = apiVersion
        self.correlationId = correlationId
        self.clientId = clientId
    }

    /// nil for an API key this module does not know.
    public var apiKey: KafkaAPIKey? { KafkaAPIKey(rawValue: apiKeyRawValue) }

    /// 2 when the API is known and the version flexible; 1 otherwise (an unknown API's body is never read,
    /// so whether a tag buffer follows does not matter).
    public var headerVersion: Int16 { apiKey?.requestHeaderVersion(apiVersion) ?? 1 }

    /// Reads the header at the start of a frame (after the size prefix), including the tag buffer when
    /// the header is v2.
    public init(from reader: inout KafkaReader) throws(KafkaProtocolError) {
        apiKeyRawValue = try reader.readInt16("request_api_key")
        apiVersion = try reader.readInt16("request_api_version")
        correlationId = try reader.readInt32("correlation_id")
        clientId = try reader.readNullableString("client_id")
        if headerVersion >= 2 { try reader.skipTaggedFields("request header tags") }
    }

    public func encode(to writer: inout KafkaWriter) {
        writer.writeInt16(apiKeyRawValue)
        writer.writeInt16(apiVersion)
        writer.writeInt32(correlationId)
        writer.writeNullableString(clientId)
        if headerVersion >= 2 { writer.writeEmptyTaggedFields() }
    }
}

/// Response header v0 (correlation_id) or v1 (v0 + TAG_BUFFER).
public struct KafkaResponseHeader: Hashable, Sendable {
    public var correlationId: Int32

    public init(correlationId: Int32) { self.correlationId = correlationId }

    public init(from reader: inout KafkaReader, headerVersion: Int16) throws(KafkaProtocolError) {
        correlationId = try reader.readInt32("correlation_id")
        if headerVersion >= 1 { try reader.skipTaggedFields("response header tags") }
    }

    public func encode(to writer: inout KafkaWriter, headerVersion: Int16) {
        writer.writeInt32(correlationId)
        if headerVersion >= 1 { writer.writeEmptyTaggedFields() }
    }
}

/// A Kafka message body: a request or a response of one API, readable and writable at each version in
/// `versions`. Fields a version does not carry are skipped on encode and take their Kafka default on
/// decode.
public protocol KafkaMessage: Sendable, Hashable {
    static var apiKey: KafkaAPIKey { get }
    /// Versions this type can encode and decode.
    static var versions: ClosedRange<Int16> { get }
    init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError)
    func encode(to writer: inout KafkaWriter, version: Int16)
}

public protocol KafkaRequestMessage: KafkaMessage {
    associatedtype Response: KafkaResponseMessage
}

public protocol KafkaResponseMessage: KafkaMessage {}

extension KafkaMessage {
    public static var versions: ClosedRange<Int16> { apiKey.supportedVersions }

    /// Decodes a whole body: the message must use every byte.
    public static func decode(_ body: ByteBuffer, version: Int16) throws(KafkaProtocolError) -> Self {
        guard versions.contains(version) else { throw .unsupportedVersion(apiKey: apiKey.rawValue, version: version) }
        var reader = KafkaReader(body)
        let message = try Self(from: &reader, version: version)
        guard reader.isAtEnd else {
            throw .trailingBytes(count: reader.remaining, apiKey: apiKey.rawValue, version: version)
        }
        return message
    }

    /// The body alone, without header or size prefix.
    public func encoded(version: Int16, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        precondition(Self.versions.contains(version), "\(Self.apiKey) v\(version) is outside \(Self.versions)")
        var writer = KafkaWriter(buffer: allocator.buffer(capacity: 128))
        encode(to: &writer, version: version)
        return writer.buffer
    }
}
