import NIOCore

/// SaslHandshake (key 17), v0–1, never flexible (AK `SaslHandshakeRequest.json`): the client names the SASL
/// mechanism it wants; the server answers with the mechanisms it has enabled.
///
/// What follows a successful handshake depends on its version (KIP-152):
/// - v1: the SASL tokens travel in SaslAuthenticate requests (key 36), with an error code and message on
///   failure. librdkafka ≥ 1.0 and kafka-python use this whenever SaslAuthenticate is advertised.
/// - v0: the tokens travel as bare size-prefixed frames with no Kafka header (`SaslPlainToken` is the
///   whole frame body; the server's answer for PLAIN is an empty frame), and a failure can only be told by
///   closing the connection.
///
/// A server must advertise v0 as well as v1: librdkafka 2.0.2 enables SASL mechanism negotiation only if
/// SaslHandshake v0 is in range, and the SaslAuthenticate path only if v1 is (`rdkafka_feature.c`,
/// features `SaslHandshake` and `SaslAuthReq`).
public struct SaslHandshakeRequest: KafkaRequestMessage {
    public typealias Response = SaslHandshakeResponse
    public static let apiKey = KafkaAPIKey.saslHandshake

    /// SASL mechanism name as registered with IANA, e.g. "PLAIN". Compared exactly (case-sensitive), as Kafka does.
    public var mechanism: String

    public init(mechanism: String) { self.mechanism = mechanism }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        mechanism = try reader.readString("mechanism")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(mechanism)
    }
}

public struct SaslHandshakeResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.saslHandshake

    /// NONE, UNSUPPORTED_SASL_MECHANISM (33) or ILLEGAL_SASL_STATE (34).
    public var errorCode: KafkaErrorCode
    /// The mechanisms the server has enabled (sent with errors too, so a client can say what to use instead).
    public var mechanisms: [String]

    public init(errorCode: KafkaErrorCode = .none, mechanisms: [String]) {
        self.errorCode = errorCode
        self.mechanisms = mechanisms
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        errorCode = try reader.readErrorCode()
        mechanisms = try reader.readArray("mechanisms") { (reader) throws(KafkaProtocolError) in try reader.readString("mechanism") }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeErrorCode(errorCode)
        writer.writeArray(mechanisms) { writer, mechanism in writer.writeString(mechanism) }
    }
}
