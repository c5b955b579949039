import Foundation
import Logging
import NIOSSL

/// What the Kafka listener enforces, built once at start-up (every file read and checked then) and shared
/// by all connections: TLS, SASL, both or neither — Kafka's PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL.
struct ListenerSecurity: Sendable {
    let tlsContext: NIOSSLContext?
    let saslMechanism: SASLMechanism?
    let credentials: SASLCredentials?
    let limits: SecurityLimits
    /// Failed authentications, TLS handshake failures and set-up timeouts are logged at a bounded rate of
    /// their own, so a password-guessing client cannot crowd out other protocol logs (or the reverse).
    let logLimiter = LogRateLimiter(perSecond: 10)

    /// Reads and checks the TLS files and the SASL users. Throws with a sentence naming the file or key.
    init(configuration: BrokerConfiguration, logger: Logger) throws(BrokerError) {
        if let tls = configuration.tls {
            let server = try TLSFiles.makeServerContext(tls)
            for warning in server.warnings { logger.warning("\(warning)") }
            tlsContext = server.context
        } else {
            tlsContext = nil
        }
        if let sasl = configuration.sasl {
            credentials = try SASLCredentials.load(sasl)
            saslMechanism = sasl.mechanism
            var status = stat()
            if let path = sasl.usersFile, stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
                logger.warning("sasl.users_file holds passwords but other users may read it; chmod 600 it", metadata: ["path": "\(path)"])
            }
        } else {
            credentials = nil
            saslMechanism = nil
        }
        limits = configuration.security
    }

    /// No TLS, no SASL: what tests and plaintext brokers use.
    init(limits: SecurityLimits = SecurityLimits()) {
        tlsContext = nil
        saslMechanism = nil
        credentials = nil
        self.limits = limits
    }

    var isSASLEnabled: Bool { credentials != nil }

    /// Connections must finish TLS or SASL set-up within `limits.connectionSetupTimeoutMilliseconds`.
    var requiresSetup: Bool { tlsContext != nil || credentials != nil }

    /// A fresh per-connection SASL exchange, or nil when SASL is off.
    func makeSASLStateMachine() -> SASLServerStateMachine? {
        guard let credentials, let saslMechanism else { return nil }
        return SASLServerStateMachine(
            mechanism: saslMechanism, credentials: credentials, requestsBeforeAuthenticationMax: limits.requestsBeforeAuthenticationMax)
    }
}

extension BrokerConfiguration {
    /// Kafka's name for what the listener speaks.
    public var securityProtocol: String {
        switch (tls != nil, sasl != nil) {
        case (false, false): "PLAINTEXT"
        case (true, false): "SSL"
        case (false, true): "SASL_PLAINTEXT"
        case (true, true): "SASL_SSL"
        }
    }
}
