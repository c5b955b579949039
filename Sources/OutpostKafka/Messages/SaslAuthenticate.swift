import NIOCore

/// SaslAuthenticate (key 36), v0–1 (v2+ is flexible and not served; AK `SaslAuthenticateRequest.json`):
/// one SASL token each way, after a SaslHandshake v1. For PLAIN, the client's single token is a
/// `SaslPlainToken` and the server's answer carries no bytes.
///
/// The token holds a credential, so `description` and `debugDescription` show only its length: a request
/// printed into a log line never prints a password.
public struct SaslAuthenticateRequest: KafkaRequestMessage, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public typealias Response = SaslAuthenticateResponse
    public static let apiKey = KafkaAPIKey.saslAuthenticate

    /// The mechanism's token, opaque at this layer.
    public var authBytes: ByteBuffer

    public init(authBytes: ByteBuffer) { self.authBytes = authBytes }

    /// A PLAIN authentication request.
    public init(plain token: SaslPlainToken) { self.authBytes = token.encoded() }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        authBytes = try reader.readBytes("auth_bytes")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeBytes(authBytes)
    }

    public var description: String { "SaslAuthenticateRequest(auth_bytes: \(authBytes.readableBytes) bytes, redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["authBytes": "\(authBytes.readableBytes) bytes, redacted"]) }
}

public struct SaslAuthenticateResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.saslAuthenticate

    /// NONE, SASL_AUTHENTICATION_FAILED (58) or ILLEGAL_SASL_STATE (34).
    public var errorCode: KafkaErrorCode
    /// Why it failed, for the client to show its user; nil on success.
    public var errorMessage: String?
    /// The server's token (empty for PLAIN).
    public var authBytes: ByteBuffer
    /// v1+. Milliseconds until the client must re-authenticate (KIP-368); 0 means never.
    public var sessionLifetimeMs: Int64

    public init(errorCode: KafkaErrorCode = .none, errorMessage: String? = nil, authBytes: ByteBuffer = ByteBuffer(), sessionLifetimeMs: Int64 = 0) {
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.authBytes = authBytes
        self.sessionLifetimeMs = sessionLifetimeMs
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        errorCode = try reader.readErrorCode()
        errorMessage = try reader.readNullableString("error_message")
        authBytes = try reader.readBytes("auth_bytes")
        sessionLifetimeMs = version >= 1 ? try reader.readInt64("session_lifetime_ms") : 0
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeErrorCode(errorCode)
        writer.writeNullableString(errorMessage)
        writer.writeBytes(authBytes)
        if version >= 1 { writer.writeInt64(sessionLifetimeMs) }
    }
}

/// The one token of SASL/PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, all UTF-8. It travels as
/// `SaslAuthenticateRequest.authBytes`, or as a bare frame after a SaslHandshake v0.
///
/// Parsing follows Kafka's `PlainSaslServer`: exactly three fields, a non-empty username and password;
/// an authorization id, when given, must equal the username (the broker checks that). Errors name the
/// field, never its contents. The password is redacted from every printed form.
public struct SaslPlainToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The identity to act as; "" (the usual) means the username itself.
    public var authorizationId: String
    /// RFC 4616's authcid.
    public var username: String
    public var password: String

    public init(username: String, password: String, authorizationId: String = "") {
        self.authorizationId = authorizationId
        self.username = username
        self.password = password
    }

    /// Longest token accepted. RFC 4616 caps each field at 255 bytes, but Kafka enforces no such cap and
    /// some deployments use long secrets (connection strings, tokens) as passwords; 16 KiB fits them all.
    public static let bytesMax = 16 << 10

    /// Reads a token. Throws for a token that is too long, has other than three NUL-separated fields, an
    /// empty username or password, or fields that are not UTF-8.
    public init(parsing bytes: ByteBuffer) throws(KafkaProtocolError) {
        let view = bytes.readableBytesView
        guard view.count <= Self.bytesMax else { throw .invalidLength(field: "PLAIN token", length: Int64(view.count)) }
        let fields = view.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw .invalidLength(field: "PLAIN token fields", length: Int64(fields.count)) }
        func text(_ field: Int, _ name: String) throws(KafkaProtocolError) -> String {
            guard let string = String(validating: fields[field], as: UTF8.self) else { throw .invalidUTF8(field: name) }
            return string
        }
        authorizationId = try text(0, "PLAIN authzid")
        username = try text(1, "PLAIN authcid")
        password = try text(2, "PLAIN passwd")
        guard !username.isEmpty else { throw .invalidLength(field: "PLAIN authcid", length: 0) }
        guard !password.isEmpty else { throw .invalidLength(field: "PLAIN passwd", length: 0) }
    }

    /// The token's bytes, for `SaslAuthenticateRequest` (or a v0 bare frame).
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: authorizationId.utf8.count + username.utf8.count + password.utf8.count + 2)
        buffer.writeString(authorizationId)
        buffer.writeInteger(UInt8(0))
        buffer.writeString(username)
        buffer.writeInteger(UInt8(0))
        buffer.writeString(password)
        return buffer
    }

    public var description: String {
        "SaslPlainToken(username: \(username)\(authorizationId.isEmpty ? "" : ", authzid: \(authorizationId)"), password: redacted)"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["authorizationId": authorizationId, "username": username, "password": "redacted"])
    }
}
