import NIOCore
import OutpostKafka

/// One connection's SASL exchange on the server side, as Kafka's `SaslServerAuthenticator` runs it — a
/// pure state machine: frames in, an `Action` out; the connection handler carries the action out (sends,
/// waits, closes). No I/O, no clock.
///
/// ```
/// awaitingHandshake ──SaslHandshake v1──▶ awaitingAuthenticate ──SaslAuthenticate ok──▶ authenticated
///   │ ApiVersions: served                 │                          bad credentials ─▶ failed
///   │                                     └ anything else ───────────────────────────▶ failed (closed)
///   ├──SaslHandshake v0──▶ awaitingRawToken ──bare PLAIN token ok──▶ authenticated (empty frame back)
///   │                                        bad token ───────────▶ failed (closed, no answer possible)
///   ├──unknown mechanism──▶ failed (UNSUPPORTED_SASL_MECHANISM, closed)
///   └──any other request──▶ failed (closed, as Kafka does: "Unexpected Kafka request … during SASL handshake")
/// ```
/// Once authenticated every request is served as usual; SASL requests then get ILLEGAL_SASL_STATE from
/// the request handler (re-authentication, KIP-368, is not offered: the session lifetime is 0).
struct SASLServerStateMachine {
    enum State: Equatable {
        case awaitingHandshake
        /// After a SaslHandshake v1: the token comes in a SaslAuthenticate request.
        case awaitingAuthenticate
        /// After a SaslHandshake v0: the token comes as a bare frame.
        case awaitingRawToken
        case authenticated(username: String)
        case failed
    }

    /// What arrived: a parsed request frame, a well-framed request this broker does not serve, or (only in
    /// `awaitingRawToken`) a bare SASL token.
    enum Input {
        case request(KafkaRequestFrame)
        case unsupported(KafkaRequestHeader)
        case rawToken(ByteBuffer)
    }

    /// Reply to send for a request the state machine answers itself.
    enum Answer: Equatable {
        case response(KafkaResponse, version: Int16)
        /// A bare frame body (the v0 exchange).
        case rawToken(ByteBuffer)
    }

    /// Why a connection is refused; `metricLabel` is the `reason` dimension of the failure counter.
    enum FailureReason: String, CaseIterable, Sendable {
        case badCredentials = "bad_credentials"
        case malformedToken = "malformed_token"
        case unsupportedMechanism = "unsupported_mechanism"
        case unexpectedRequest = "unexpected_request"
        case tooManyRequests = "too_many_requests"
    }

    struct Failure: Equatable {
        var reason: FailureReason
        /// For the log: never holds a password or token bytes; client-supplied text is sanitized there.
        var detail: String
        /// The user the client claimed, when it got that far.
        var username: String?
    }

    enum Action: Equatable {
        /// Not the state machine's business: serve the request as usual.
        case serve
        /// Send this answer; the exchange goes on.
        case answer(Answer)
        /// Authentication succeeded: send the answer, then serve everything.
        case authenticated(username: String, answer: Answer)
        /// Authentication failed: after the failed-authentication delay, send the answer (when the
        /// protocol has a way to say so) and close the connection.
        case reject(answer: Answer?, failure: Failure)
        /// A request that may not be sent now: close at once without an answer.
        case close(Failure)
        /// The connection already failed; drop the frame.
        case ignore
    }

    let mechanisms: [String]
    let credentials: SASLCredentials
    let requestsBeforeAuthenticationMax: Int
    private(set) var state: State = .awaitingHandshake
    private var requestsBeforeAuthentication = 0

    init(mechanism: SASLMechanism, credentials: SASLCredentials, requestsBeforeAuthenticationMax: Int) {
        self.mechanisms = [mechanism.rawValue]
        self.credentials = credentials
        self.requestsBeforeAuthenticationMax = requestsBeforeAuthenticationMax
    }

    var isAuthenticated: Bool {
        if case .authenticated = state { return true }
        return false
    }

    /// The next frame is a bare token, not a Kafka request.
    var expectsRawToken: Bool { state == .awaitingRawToken }

    /// The failed-authentication answer Kafka sends; the same whether the user or the password was wrong.
    static let authenticationFailedMessage = "Authentication failed: Invalid username or password"

    mutating func receive(_ input: Input) -> Action {
        switch state {
        case .authenticated:
            return .serve
        case .failed:
            return .ignore
        case .awaitingHandshake, .awaitingAuthenticate, .awaitingRawToken:
            break
        }
        requestsBeforeAuthentication += 1
        guard requestsBeforeAuthentication <= requestsBeforeAuthenticationMax else {
            return fail(.close(Failure(reason: .tooManyRequests, detail: "more than \(requestsBeforeAuthenticationMax) requests before authenticating")))
        }
        switch (state, input) {
        case (.awaitingRawToken, .rawToken(let token)):
            return authenticatePlain(token, answer: { _ in .rawToken(ByteBuffer()) }, rejection: { _ in nil })

        case (.awaitingHandshake, .request(let frame)):
            switch frame.request {
            case .apiVersions:
                return .serve
            case .saslHandshake(let request):
                return handshake(request, version: frame.header.apiVersion)
            default:
                return unexpected(frame.header, during: "the SASL handshake")
            }

        case (.awaitingHandshake, .unsupported(let header)):
            // ApiVersions at a version not even decodable still gets the fallback answer (§2.3).
            if header.apiKey == .apiVersions { return .serve }
            return unexpected(header, during: "the SASL handshake")

        case (.awaitingAuthenticate, .request(let frame)):
            guard case .saslAuthenticate(let request) = frame.request else {
                return unexpected(frame.header, during: "SASL authentication")
            }
            let version = frame.header.apiVersion
            return authenticatePlain(
                request.authBytes,
                answer: { _ in .response(.saslAuthenticate(SaslAuthenticateResponse()), version: version) },
                rejection: { message in
                    .response(.saslAuthenticate(SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: message)), version: version)
                })

        case (.awaitingAuthenticate, .unsupported(let header)):
            return unexpected(header, during: "SASL authentication")

        case (_, .rawToken), (.awaitingRawToken, _), (.authenticated, _), (.failed, _):
            // A raw token is only ever fed in `awaitingRawToken`, and that state only takes raw tokens.
            preconditionFailure("SASL state \(state) cannot take this input")
        }
    }

    /// The connection-setup deadline passed: true if it had not authenticated (it is now failed and must be
    /// closed), false if it had.
    mutating func setupDeadlinePassed() -> Bool {
        switch state {
        case .authenticated, .failed: return false
        case .awaitingHandshake, .awaitingAuthenticate, .awaitingRawToken:
            state = .failed
            return true
        }
    }

    private mutating func handshake(_ request: SaslHandshakeRequest, version: Int16) -> Action {
        guard mechanisms.contains(request.mechanism) else {
            let response = SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: mechanisms)
            return fail(.reject(
                answer: .response(.saslHandshake(response), version: version),
                failure: Failure(reason: .unsupportedMechanism, detail: "client asked for mechanism '\(request.mechanism)'")))
        }
        state = version >= 1 ? .awaitingAuthenticate : .awaitingRawToken
        return .answer(.response(.saslHandshake(SaslHandshakeResponse(mechanisms: mechanisms)), version: version))
    }

    /// Checks a PLAIN token the way Kafka's `PlainSaslServer` does.
    private mutating func authenticatePlain(
        _ bytes: ByteBuffer, answer: (String) -> Answer, rejection: (String) -> Answer?
    ) -> Action {
        let token: SaslPlainToken
        do {
            token = try SaslPlainToken(parsing: bytes)
        } catch {
            let message = "Authentication failed: invalid SASL/PLAIN token (\(error))"
            return fail(.reject(answer: rejection(message), failure: Failure(reason: .malformedToken, detail: "\(error)")))
        }
        // The password check runs even when the authorization id is refused, so timing says nothing.
        let passwordMatches = credentials.verify(username: token.username, password: token.password.utf8)
        guard token.authorizationId.isEmpty || token.authorizationId == token.username else {
            let message = "Authentication failed: Client requested an authorization id that is different from username"
            return fail(.reject(
                answer: rejection(message),
                failure: Failure(reason: .badCredentials, detail: "authorization id differs from the user name", username: token.username)))
        }
        guard passwordMatches else {
            return fail(.reject(
                answer: rejection(Self.authenticationFailedMessage),
                failure: Failure(reason: .badCredentials, detail: "unknown user or wrong password", username: token.username)))
        }
        state = .authenticated(username: token.username)
        return .authenticated(username: token.username, answer: answer(token.username))
    }

    private mutating func unexpected(_ header: KafkaRequestHeader, during phase: String) -> Action {
        let name = header.apiKey?.name ?? "api \(header.apiKeyRawValue)"
        return fail(.close(Failure(reason: .unexpectedRequest, detail: "unexpected \(name) v\(header.apiVersion) request during \(phase)")))
    }

    private mutating func fail(_ action: Action) -> Action {
        state = .failed
        return action
    }
}
