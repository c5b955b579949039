import Foundation
import NIOCore
import Testing
@testable import OutpostKafka

/// SaslHandshake (17) and SaslAuthenticate (36): both directions at every version, the exact bytes of
/// AK's schemas, the PLAIN token, and that nothing prints a password.
@Suite struct SaslCodecTests {
    static let samples: [any KafkaMessage] = [
        SaslHandshakeRequest(mechanism: "PLAIN"),
        SaslHandshakeResponse(errorCode: .none, mechanisms: ["PLAIN", "SCRAM-SHA-256"]),
        SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: ["PLAIN"]),
        SaslAuthenticateRequest(plain: SaslPlainToken(username: "gateway-01", password: "s3cret")),
        SaslAuthenticateResponse(errorCode: .none, errorMessage: nil, authBytes: ByteBuffer(), sessionLifetimeMs: 3_600_000),
        SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: "Authentication failed", authBytes: ByteBuffer(string: "x"), sessionLifetimeMs: 0),
    ]

    struct Case: CustomTestStringConvertible, Sendable {
        var index: Int
        var version: Int16
        var testDescription: String { "\(type(of: SaslCodecTests.samples[index])) #\(index) v\(version)" }
    }

    static let cases: [Case] = samples.indices.flatMap { index in
        type(of: samples[index]).versions.map { Case(index: index, version: $0) }
    }

    func roundTrip<M: KafkaMessage>(_ message: M, version: Int16) throws -> (first: [UInt8], second: [UInt8], decoded: M) {
        let encoded = message.encoded(version: version)
        let decoded = try M.decode(encoded, version: version)
        return (Array(encoded.readableBytesView), Array(decoded.encoded(version: version).readableBytesView), decoded)
    }

    @Test(arguments: SaslCodecTests.cases)
    func everySaslMessageRoundTripsAtEveryVersion(_ testCase: Case) throws {
        let message = Self.samples[testCase.index]
        let (first, second, decoded) = try roundTrip(message, version: testCase.version)
        #expect(first == second)
        if testCase.version == type(of: message).versions.upperBound {
            #expect(AnyHashable(decoded) == AnyHashable(message))
        }
        // Every proper prefix is an error, never a crash; one byte more is trailing garbage.
        let encoded = message.encoded(version: testCase.version)
        for length in 0..<encoded.readableBytes {
            let prefix = encoded.getSlice(at: encoded.readerIndex, length: length) ?? ByteBuffer()
            #expect(throws: KafkaProtocolError.self) { _ = try type(of: message).decode(prefix, version: testCase.version) }
        }
        var longer = encoded
        longer.writeInteger(UInt8(0))
        #expect(throws: KafkaProtocolError.self) { _ = try type(of: message).decode(longer, version: testCase.version) }
    }

    @Test func versionsAreZeroToOneAndNeverFlexible() {
        #expect(SaslHandshakeRequest.versions == 0...1)
        #expect(SaslHandshakeResponse.versions == 0...1)
        #expect(SaslAuthenticateRequest.versions == 0...1)
        #expect(SaslAuthenticateResponse.versions == 0...1)
        #expect(KafkaAPIKey.saslHandshake.rawValue == 17 && KafkaAPIKey.saslAuthenticate.rawValue == 36)
        for version in Int16(0)...1 {
            #expect(KafkaAPIKey.saslHandshake.requestHeaderVersion(version) == 1)
            #expect(KafkaAPIKey.saslAuthenticate.responseHeaderVersion(version) == 0)
        }
        #expect(KafkaAPIKey.saslAuthenticate.isFlexible(2), "v2 is flexible in AK, so it is not served")
        #expect(!KafkaAPIKey.saslHandshake.isFlexible(Int16.max - 1), "SaslHandshake has no flexible version")
    }

    @Test func layoutsAreAKs() throws {
        // SaslHandshakeRequest: mechanism STRING.
        #expect(Array(SaslHandshakeRequest(mechanism: "PLAIN").encoded(version: 1).readableBytesView) == [0, 5] + Array("PLAIN".utf8))
        // SaslHandshakeResponse: error_code INT16, mechanisms [STRING].
        #expect(
            Array(SaslHandshakeResponse(errorCode: .unsupportedSaslMechanism, mechanisms: ["PLAIN"]).encoded(version: 0).readableBytesView)
                == [0, 33, 0, 0, 0, 1, 0, 5] + Array("PLAIN".utf8))
        // SaslAuthenticateRequest: auth_bytes BYTES.
        #expect(Array(SaslAuthenticateRequest(authBytes: ByteBuffer(bytes: [7, 8])).encoded(version: 1).readableBytesView) == [0, 0, 0, 2, 7, 8])
        // SaslAuthenticateResponse: error_code, error_message NULLABLE_STRING, auth_bytes, session_lifetime_ms INT64 (v1+).
        let failure = SaslAuthenticateResponse(errorCode: .saslAuthenticationFailed, errorMessage: "no", sessionLifetimeMs: 5)
        #expect(Array(failure.encoded(version: 0).readableBytesView) == [0, 58, 0, 2, 0x6E, 0x6F, 0, 0, 0, 0])
        #expect(Array(failure.encoded(version: 1).readableBytesView) == [0, 58, 0, 2, 0x6E, 0x6F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5])
        let success = SaslAuthenticateResponse()
        #expect(Array(success.encoded(version: 1).readableBytesView) == [0, 0, 0xFF, 0xFF, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
    }

    @Test func requestFramesParseIntoTheSaslCasesAndResponsesDecodeOnTheClientSide() throws {
        let token = SaslPlainToken(username: "u", password: "p")
        for version in Int16(0)...1 {
            var frame = KafkaFrame.encodeRequest(SaslAuthenticateRequest(plain: token), version: version, correlationId: 9, clientId: "c")
            let body = try #require(try KafkaFrameDecoder.nextFrame(from: &frame, maxFrameBytes: 1 << 20))
            guard case .request(let parsed) = try KafkaRequestFrame.parse(body), case .saslAuthenticate(let request) = parsed.request else {
                Issue.record("SaslAuthenticate v\(version) did not parse as such")
                continue
            }
            #expect(try SaslPlainToken(parsing: request.authBytes) == token)

            var handshake = KafkaFrame.encodeRequest(SaslHandshakeRequest(mechanism: "PLAIN"), version: version, correlationId: 10, clientId: nil)
            let handshakeBody = try #require(try KafkaFrameDecoder.nextFrame(from: &handshake, maxFrameBytes: 1 << 20))
            guard case .request(let parsedHandshake) = try KafkaRequestFrame.parse(handshakeBody) else {
                Issue.record("SaslHandshake v\(version) did not parse")
                continue
            }
            #expect(parsedHandshake.request == .saslHandshake(SaslHandshakeRequest(mechanism: "PLAIN")))

            var response = KafkaFrame.encodeResponse(SaslAuthenticateResponse(sessionLifetimeMs: 0), version: version, correlationId: 9)
            let responseBody = try #require(try KafkaFrameDecoder.nextFrame(from: &response, maxFrameBytes: 1 << 20))
            let decoded = try KafkaFrame.decodeResponse(responseBody, for: SaslAuthenticateRequest.self, version: version, correlationId: 9)
            #expect(decoded.errorCode == .none)
            let viaEnum = try KafkaResponse.decode(apiKey: .saslAuthenticate, version: version, body: SaslAuthenticateResponse().encoded(version: version))
            #expect(viaEnum.apiKey == .saslAuthenticate)
        }
        // SaslAuthenticate v2 is flexible and not served: the frame parses as unsupported.
        var writer = KafkaWriter()
        KafkaRequestHeader(apiKey: .saslAuthenticate, apiVersion: 2, correlationId: 1, clientId: nil).encode(to: &writer)
        writer.writeUnsignedVarint(1)
        guard case .unsupported = try KafkaRequestFrame.parse(writer.buffer) else {
            Issue.record("SaslAuthenticate v2 should be unsupported")
            return
        }
    }

    // MARK: PLAIN token

    @Test func plainTokensAreAuthzidNulUserNulPassword() throws {
        let token = SaslPlainToken(username: "gateway-01", password: "pässword")
        #expect(Array(token.encoded().readableBytesView) == [0] + Array("gateway-01".utf8) + [0] + Array("pässword".utf8))
        #expect(try SaslPlainToken(parsing: token.encoded()) == token)
        let withAuthzid = SaslPlainToken(username: "u", password: "p", authorizationId: "admin")
        #expect(try SaslPlainToken(parsing: withAuthzid.encoded()) == withAuthzid)
    }

    @Test(arguments: [
        [UInt8](), [0], [0, 0], Array("user".utf8), [0] + Array("user".utf8) + [0],  // no or empty password
        [0, 0] + Array("pw".utf8),  // empty user name
        [0] + Array("u".utf8) + [0] + Array("p".utf8) + [0] + Array("x".utf8),  // four fields
        [0, 0xC3, 0x28, 0, 0x70],  // user name not UTF-8
    ])
    func malformedPlainTokensAreRejected(bytes: [UInt8]) {
        #expect(throws: KafkaProtocolError.self) { _ = try SaslPlainToken(parsing: ByteBuffer(bytes: bytes)) }
    }

    @Test func oversizedPlainTokensAreRejectedBeforeSplitting() {
        let huge = ByteBuffer(bytes: [0] + Array(repeating: 0x61, count: 10) + [0] + Array(repeating: 0x62, count: SaslPlainToken.bytesMax))
        #expect(throws: KafkaProtocolError.invalidLength(field: "PLAIN token", length: Int64(huge.readableBytes))) {
            _ = try SaslPlainToken(parsing: huge)
        }
    }

    @Test func passwordsNeverAppearInPrintedForms() throws {
        let secret = "hunter2-very-secret"
        let token = SaslPlainToken(username: "alice", password: secret)
        let request = SaslAuthenticateRequest(plain: token)
        let frame = KafkaRequestFrame(header: KafkaRequestHeader(apiKey: .saslAuthenticate, apiVersion: 1, correlationId: 1, clientId: nil), request: .saslAuthenticate(request))
        var dumped = ""
        dump(token, to: &dumped)
        dump(request, to: &dumped)
        for text in [
            "\(token)", String(reflecting: token), "\(request)", String(reflecting: request), "\(KafkaRequest.saslAuthenticate(request))",
            String(reflecting: frame), dumped,
        ] {
            #expect(!text.contains(secret), "\(text)")
        }
        #expect("\(token)".contains("alice"))
        // Decode errors name the field, never its bytes.
        do {
            _ = try SaslPlainToken(parsing: ByteBuffer(bytes: Array("alice".utf8) + [0] + Array(secret.utf8)))
            Issue.record("two fields should not parse")
        } catch {
            #expect(!"\(error)".contains(secret))
        }
    }

    @Test func saslErrorCodesHaveKafkasNames() {
        #expect(KafkaErrorCode.unsupportedSaslMechanism.name == "UNSUPPORTED_SASL_MECHANISM")
        #expect(KafkaErrorCode.illegalSaslState.name == "ILLEGAL_SASL_STATE")
        #expect(KafkaErrorCode.saslAuthenticationFailed.name == "SASL_AUTHENTICATION_FAILED")
        #expect([KafkaErrorCode.unsupportedSaslMechanism, .illegalSaslState, .saslAuthenticationFailed].map(\.rawValue) == [33, 34, 58])
    }

    @Test func theSaslApisAreAdvertisedOnlyOnRequest() {
        let plain = Set(ApiVersionsResponse.advertised.apiKeys.map(\.apiKey))
        #expect(!plain.contains(17) && !plain.contains(36), "a listener without SASL must not advertise it (§1)")
        #expect(Set(ApiVersionsResponse.unsupportedVersionFallback.apiKeys.map(\.apiKey)) == plain)
        let sasl = ApiVersionsResponse.advertised(includingSASL: true).apiKeys
        #expect(sasl.contains(.init(apiKey: 17, minVersion: 0, maxVersion: 1)), "librdkafka's SaslHandshake feature needs v0, SaslAuthReq needs v1")
        #expect(sasl.contains(.init(apiKey: 36, minVersion: 0, maxVersion: 1)))
        #expect(Set(sasl.map(\.apiKey)) == plain.union([17, 36]))
        #expect(ApiVersionsResponse.unsupportedVersionFallback(includingSASL: true).errorCode == .unsupportedVersion)
    }
}
