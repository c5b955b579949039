import NIOCore
import NIOSSL

/// TLS for client connections to brokers (Kafka's `security.protocol=SSL`): the brokers' certificates are
/// verified against a CA file (or the system's trust store), and a client certificate is presented when
/// given. Plugs into `KafkaConnectionConfiguration.transportSecurity`.
public struct KafkaClientTLS: KafkaTransportSecurity {
    let context: NIOSSLContext

    /// - Parameters:
    ///   - caFile: PEM bundle of the CAs that sign the brokers' certificates; nil trusts the system's.
    ///   - certificateFile, keyFile: a client certificate and its key (PEM), for brokers that require one.
    public init(caFile: String?, certificateFile: String? = nil, keyFile: String? = nil) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        }
        if let certificateFile, let keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        context = try NIOSSLContext(configuration: configuration)
    }

    public func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, serverHostname: String) throws {
        // SNI must not be an IP address; hostname verification still checks IP SANs.
        let isAddress = serverHostname.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" }
        try pipeline.addHandler(try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : serverHostname))
    }
}

/// SASL/PLAIN on every new connection: SaslHandshake v1 naming PLAIN, then SaslAuthenticate with the
/// credentials (Kafka's `sasl.mechanism=PLAIN`). Use with TLS: PLAIN sends the password as it is.
public struct KafkaSASLPlain: KafkaConnectionAuthenticator, CustomStringConvertible {
    let username: String
    let password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// Never prints the password.
    public var description: String { "SASL/PLAIN as \(username)" }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public func authenticate(_ connection: KafkaConnection) async throws {
        let handshake = try await connection.send(SaslHandshakeRequest(mechanism: "PLAIN"), version: 1).get()
        guard handshake.errorCode == .none else {
            throw Failure(description: "broker refused SASL mechanism PLAIN (\(handshake.errorCode); offers \(handshake.mechanisms.joined(separator: ", ")))")
        }
        let token = SaslPlainToken(username: username, password: password)
        let response = try await connection.send(SaslAuthenticateRequest(plain: token), version: 1).get()
        guard response.errorCode == .none else {
            throw Failure(description: "SASL/PLAIN authentication as \(username) failed: \(response.errorMessage ?? "\(response.errorCode)")")
        }
    }
}
