import NIOCore
import OutpostKafka
import Testing
@testable import OutpostBroker

/// The SASL exchange as a pure state machine: Kafka's `SaslServerAuthenticator` rules, one per test.
@Suite struct SASLServerStateMachineTests {
    static let credentials = SASLCredentials(users: ["gateway": SASLPassword("right-password"), "monitor": SASLPassword("other")])

    /// The state machine in a box, so `#expect` can step it.
    final class Exchange {
        var machine: SASLServerStateMachine
        init(_ machine: SASLServerStateMachine) { self.machine = machine }
        func receive(_ input: SASLServerStateMachine.Input) -> SASLServerStateMachine.Action { machine.receive(input) }
        func setupDeadlinePassed() -> Bool { machine.setupDeadlinePassed() }
        var state: SASLServerStateMachine.State { machine.state }
        var isAuthenticated: Bool { machine.isAuthenticated }
        var expectsRawToken: Bool { machine.expectsRawToken }
    }

    func machine(requestsMax: Int = 16) -> Exchange {
        Exchange(SASLServerStateMachine(mechanism: .plain, credentials: Self.credentials, requestsBeforeAuthenticationMax: requestsMax))
    }

    func frame(_ request: KafkaRequest, version: Int16, correlation: Int32 = 1) -> SASLServerStateMachine.Input {
        .request(KafkaRequestFrame(header: KafkaRequestHeader(apiKey: request.apiKey, apiVersion: version, correlationId: correlation, clientId: "t"), request: request))
    }

    func handshake(_ mechanism: String = "PLAIN", version: Int16 = 1) -> SASLServerStateMachine.Input {
        frame(.saslHandshake(SaslHandshakeRequest(mechanism: mechanism)), version: version)
    }

    func authenticate(_ user: String, _ password: String, authzid: String = "", version: Int16 = 1) -> SASLServerStateMachine.Input {
        frame(.saslAuthenticate(SaslAuthenticateRequest(plain: SaslPlainToken(username: user, password: password, authorizationId: authzid))), version: version)
    }

    static let metadata = KafkaRequest.metadata(MetadataRequest(topics: nil))

    func failureOf(_ action: SASLServerStateMachine.Action) -> SASLServerStateMachine.Failure? {
        switch action {
        case .reject(_, let failure), .close(let failure): failure
        default: nil
        }
    }

    @Test func apiVersionsIsServedBeforeTheHandshakeAtAnyVersionItArrivesIn() {
        let sasl = machine()
        #expect(sasl.receive(frame(.apiVersions(ApiVersionsRequest()), version: 3)) == .serve, "the flexible first try gets the fallback")
        #expect(sasl.receive(frame(.apiVersions(ApiVersionsRequest()), version: 0)) == .serve)
        #expect(sasl.receive(.unsupported(KafkaRequestHeader(apiKey: .apiVersions, apiVersion: 9, correlationId: 3, clientId: nil))) == .serve)
        #expect(sasl.state == .awaitingHandshake)
    }

    @Test func anyOtherRequestBeforeAuthenticationClosesTheConnection() {
        let sasl = machine()
        let action = sasl.receive(frame(Self.metadata, version: 4))
        guard case .close(let failure) = action else {
            Issue.record("expected close, got \(action)")
            return
        }
        #expect(failure.reason == .unexpectedRequest)
        #expect(failure.detail.contains("Metadata"))
        #expect(sasl.state == .failed)
        #expect(sasl.receive(handshake()) == .ignore, "nothing more is looked at")

        let unknown = machine()
        #expect(failureOf(unknown.receive(.unsupported(KafkaRequestHeader(apiKeyRawValue: 60, apiVersion: 0, correlationId: 1, clientId: nil))))?.reason == .unexpectedRequest)
        let early = machine()
        #expect(failureOf(early.receive(authenticate("gateway", "right-password")))?.reason == .unexpectedRequest, "SaslAuthenticate before the handshake")
    }

    @Test func handshakeV1ThenSaslAuthenticateWithTheRightPasswordAuthenticates() {
        let sasl = machine()
        #expect(sasl.receive(handshake()) == .answer(.response(.saslHandshake(SaslHandshakeResponse(mechanisms: ["PLAIN"])), version: 1)))
        #expect(sasl.state == .awaitingAuthenticate)
        #expect(!sasl.expectsRawToken)
        let action = sasl.receive(authenticate("gateway", "right-password", version: 0))
        #expect(action == .authenticated(username: "gateway", answer: .response(.saslAuthenticate(SaslAuthenticateResponse()), version: 0)))
        #expect(sasl.isAuthenticated)
        #expect(sasl.receive(frame(Self.metadata, version: 4)) == .serve, "everything is served once authenticated")
        #expect(sasl.receive(authenticate("gateway", "right-password")) == .serve, "the request handler answers ILLEGAL_SASL_STATE")
        #expect(!sasl.setupDeadlinePassed(), "an authenticated connection is not timed out")
    }

    @Test(arguments: [("gateway", "wrong-password"), ("gateway", "right-passwor"), ("gateway", "right-password!"), ("nobody", "right-password"), ("monitor", "right-password")])
    func aWrongPasswordOrUnknownUserFailsWithTheSameMessage(user: String, password: String) {
        let sasl = machine()
        _ = sasl.receive(handshake())
        let action = sasl.receive(authenticate(user, password))
        let expected = SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: SASLServerStateMachine.authenticationFailedMessage)
        guard case .reject(let answer, let failure) = action else {
            Issue.record("expected a rejection, got \(action)")
            return
        }
        #expect(answer == .response(.saslAuthenticate(expected), version: 1))
        #expect(failure.reason == .badCredentials)
        #expect(failure.username == user)
        #expect(!failure.detail.contains(password))
        #expect(sasl.state == .failed)
        #expect(sasl.receive(authenticate("gateway", "right-password")) == .ignore, "no second try on the same connection")
    }

    @Test func anAuthorizationIdOtherThanTheUserIsRefusedEvenWithTheRightPassword() {
        let sasl = machine()
        _ = sasl.receive(handshake())
        #expect(failureOf(sasl.receive(authenticate("gateway", "right-password", authzid: "monitor")))?.reason == .badCredentials)
        let same = machine()
        _ = same.receive(handshake())
        guard case .authenticated = same.receive(authenticate("gateway", "right-password", authzid: "gateway")) else {
            Issue.record("authzid equal to the user name is fine")
            return
        }
    }

    @Test func aMalformedTokenFailsAuthentication() {
        let sasl = machine()
        _ = sasl.receive(handshake())
        let action = sasl.receive(frame(.saslAuthenticate(SaslAuthenticateRequest(authBytes: ByteBuffer(string: "no-separators"))), version: 1))
        guard case .reject(.response(.saslAuthenticate(let response), _)?, let failure) = action else {
            Issue.record("expected a rejection with an answer, got \(action)")
            return
        }
        #expect(response.errorCode == .saslAuthenticationFailed)
        #expect(failure.reason == .malformedToken)
    }

    @Test func anUnknownMechanismIsAnsweredWithTheEnabledOnesAndTheConnectionClosed() {
        let sasl = machine()
        let action = sasl.receive(handshake("SCRAM-SHA-512"))
        #expect(action == .reject(
            answer: .response(.saslHandshake(SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: ["PLAIN"])), version: 1),
            failure: .init(reason: .unsupportedMechanism, detail: "client asked for mechanism 'SCRAM-SHA-512'")))
        let lowercase = machine()
        #expect(failureOf(lowercase.receive(handshake("plain")))?.reason == .unsupportedMechanism, "mechanism names are case-sensitive, as in Kafka")
    }

    @Test func afterTheHandshakeOnlySaslAuthenticateIsAccepted() {
        let sasl = machine()
        _ = sasl.receive(handshake())
        #expect(failureOf(sasl.receive(frame(.apiVersions(ApiVersionsRequest()), version: 2)))?.reason == .unexpectedRequest)
        let again = machine()
        _ = again.receive(handshake())
        #expect(failureOf(again.receive(handshake()))?.reason == .unexpectedRequest)
    }

    @Test func handshakeV0IsFollowedByABareTokenAnsweredWithAnEmptyFrame() {
        let sasl = machine()
        #expect(sasl.receive(handshake(version: 0)) == .answer(.response(.saslHandshake(SaslHandshakeResponse(mechanisms: ["PLAIN"])), version: 0)))
        #expect(sasl.expectsRawToken)
        let token = SaslPlainToken(username: "monitor", password: "other").encoded()
        #expect(sasl.receive(.rawToken(token)) == .authenticated(username: "monitor", answer: .rawToken(ByteBuffer())))

        let wrong = machine()
        _ = wrong.receive(handshake(version: 0))
        let action = wrong.receive(.rawToken(SaslPlainToken(username: "monitor", password: "nope").encoded()))
        guard case .reject(let answer, let failure) = action else {
            Issue.record("expected a rejection, got \(action)")
            return
        }
        #expect(answer == nil, "the v0 exchange has no way to say why: the connection just closes")
        #expect(failure.reason == .badCredentials)
    }

    @Test func requestsBeforeAuthenticationAreBounded() {
        let sasl = machine(requestsMax: 3)
        for _ in 0..<3 { #expect(sasl.receive(frame(.apiVersions(ApiVersionsRequest()), version: 0)) == .serve) }
        #expect(failureOf(sasl.receive(frame(.apiVersions(ApiVersionsRequest()), version: 0)))?.reason == .tooManyRequests)
    }

    @Test func theSetUpDeadlineFailsAConnectionThatHasNotAuthenticated() {
        let waiting = machine()
        _ = waiting.receive(handshake())
        #expect(waiting.setupDeadlinePassed())
        #expect(waiting.state == .failed)
        #expect(!waiting.setupDeadlinePassed(), "once")
    }

    @Test func passwordComparisonLooksAtEveryByte() {
        let stored = Array("right-password".utf8)
        #expect(SASLCredentials.constantTimeEquals(stored, Array("right-password".utf8)))
        #expect(!SASLCredentials.constantTimeEquals(stored, Array("right-passworD".utf8)))
        #expect(!SASLCredentials.constantTimeEquals(stored, Array("right-password".utf8) + Array("right-password".utf8)), "a repeat is not a match")
        #expect(!SASLCredentials.constantTimeEquals(stored, [UInt8]()))
        #expect(!SASLCredentials.constantTimeEquals([1], [UInt8](repeating: 1, count: 257)), "lengths differing by a multiple of 256")
        #expect(!Self.credentials.verify(username: "nobody", password: Array("x".utf8)))
    }
}
