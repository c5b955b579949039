import OutpostOperations

/// TLS on the Kafka listener (Kafka's SSL listener): the whole listener speaks TLS, or none of it does.
public struct BrokerTLSConfiguration: Hashable, Sendable {
    /// PEM: the server certificate, optionally followed by its intermediates.
    public var certificateFile: String
    /// PEM: the certificate's private key (unencrypted).
    public var privateKeyFile: String
    /// PEM: the CA(s) client certificates must chain to. When set, a client certificate is asked for and,
    /// if presented, verified (Kafka's `ssl.client.auth=requested`); nil: none is asked for.
    public var caFile: String?
    /// A client without a certificate the CA vouches for is refused (Kafka's `ssl.client.auth=required`).
    /// Needs `caFile`.
    public var requireClientCertificate: Bool

    public init(certificateFile: String, privateKeyFile: String, caFile: String? = nil, requireClientCertificate: Bool = false) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.caFile = caFile
        self.requireClientCertificate = requireClientCertificate
    }

    /// Problems that need no file access; the files themselves are checked when the broker starts.
    public func validate() throws(ConfigurationError) {
        guard !certificateFile.isEmpty else { throw ConfigurationError(key: "tls.cert_file", message: "TLS needs a certificate file") }
        guard !privateKeyFile.isEmpty else { throw ConfigurationError(key: "tls.key_file", message: "TLS needs a private key file") }
        if requireClientCertificate && caFile == nil {
            throw ConfigurationError(key: "tls.require_client_certificate", message: "needs tls.ca_file to verify client certificates against")
        }
    }
}

/// A SASL mechanism the broker can offer. PLAIN only: the password travels as is, so use it over TLS
/// (SASL_SSL) anywhere but a trusted network.
public enum SASLMechanism: String, Hashable, Sendable, CaseIterable {
    case plain = "PLAIN"
}

/// A password from the configuration. Every printed form is redacted, so a configuration value that ends
/// up in a log line or a test failure never shows one.
public struct SASLPassword: Hashable, Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let bytes: [UInt8]

    public init(_ text: String) { self.bytes = Array(text.utf8) }

    public var description: String { "<redacted>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// SASL on the Kafka listener (SASL_PLAINTEXT, or SASL_SSL together with `tls`): a connection may send
/// nothing but ApiVersions, SaslHandshake and SaslAuthenticate until it has authenticated.
public struct BrokerSASLConfiguration: Hashable, Sendable {
    public var mechanism: SASLMechanism = .plain
    /// Users given in the configuration itself: name → password.
    public var users: [String: SASLPassword] = [:]
    /// A YAML file of `name: password` lines, read when the broker starts (keeps secrets out of the main
    /// configuration; its users join `users`, a name in both is an error).
    public var usersFile: String?

    public init(mechanism: SASLMechanism = .plain, users: [String: SASLPassword] = [:], usersFile: String? = nil) {
        self.mechanism = mechanism
        self.users = users
        self.usersFile = usersFile
    }

    /// Longest user name and password accepted in the configuration (RFC 4616 allows 255 bytes each; a
    /// longer password is allowed because Kafka has no such cap and some secrets are long).
    public static let usernameBytesMax = 255
    public static let passwordBytesMax = 4_096

    /// Checks one configured user; `key` names where it came from for the error.
    static func validateUser(_ name: String, _ password: String, key: String) throws(ConfigurationError) {
        guard !name.isEmpty, name.utf8.count <= usernameBytesMax, !name.utf8.contains(0) else {
            throw ConfigurationError(key: key, message: "user names must be 1…\(usernameBytesMax) bytes without NUL")
        }
        guard !password.isEmpty, password.utf8.count <= passwordBytesMax, !password.utf8.contains(0) else {
            // The message names the user, never the password.
            throw ConfigurationError(key: key, message: "the password of '\(name)' must be 1…\(passwordBytesMax) bytes without NUL")
        }
    }

    /// Reads a users file's text: a YAML mapping of name → password.
    public static func parseUsers(yaml text: String, source: String) throws(ConfigurationError) -> [String: SASLPassword] {
        let root: ConfigurationSection
        do {
            root = try ConfigurationSection.parse(yaml: text)
        } catch {
            // Yams quotes the offending line, which may hold a password: say only where it is.
            throw ConfigurationError(key: source, message: "not a YAML mapping of user names to passwords")
        }
        var users: [String: SASLPassword] = [:]
        for name in root.keys {
            let password: String?
            do {
                password = try root.string(name)
            } catch {
                throw ConfigurationError(key: source, message: "the password of '\(name)' must be a single value")
            }
            guard let password else { continue }
            try validateUser(name, password, key: source)
            users[name] = SASLPassword(password)
        }
        return users
    }
}

/// Bounds on connections that are still setting up (TLS handshake, SASL exchange). Kafka's defaults
/// where it has one.
public struct SecurityLimits: Hashable, Sendable {
    /// A connection on a TLS or SASL listener must send its first request (TLS) or finish authenticating
    /// (SASL) within this, or it is closed: a peer that stalls a handshake holds a connection slot. 30 s
    /// is librdkafka's socket.connection.setup.timeout.ms, the client's own bound for the same steps.
    public var connectionSetupTimeoutMilliseconds: Int64 = 30_000
    /// How long a failed authentication waits before its answer is sent and the connection closed (Kafka's
    /// connection.failed.authentication.delay.ms): slows password guessing down.
    public var failedAuthenticationDelayMilliseconds: Int64 = 100
    /// Largest frame accepted before authentication (Kafka's sasl.server.max.receive.size): an
    /// unauthenticated peer cannot make the broker buffer a 100 MiB request.
    public var unauthenticatedFrameBytesMax: Int = 512 << 10
    /// Requests before authentication completes; beyond it the connection is closed. A client needs at
    /// most four (ApiVersions twice after the flexible-version fallback, SaslHandshake, SaslAuthenticate).
    public var requestsBeforeAuthenticationMax: Int = 16

    public init() {}
}
