import Foundation
import Testing

/// `outpost broker` with TLS and SASL/PLAIN on its Kafka listener, against real clients — kcat (librdkafka
/// 2.0.2), confluent-kafka (librdkafka 2.16) and kafka-python — with certificates openssl makes for the
/// test: SSL, SSL with a required client certificate, SASL_SSL and SASL_PLAINTEXT work; a wrong password,
/// an untrusted CA, a missing client certificate and the wrong protocol fail cleanly while the broker
/// keeps serving; bad certificate files stop it at start-up with the reason.
@Suite(.serialized) struct BrokerSecurityTests {
    func directory(_ name: String = #function) throws -> String {
        try TestEnvironment.temporaryDirectory("broker-security-" + name).path
    }

    /// Writes `messages` as kcat's `-K\t` input file.
    func inputFile(_ messages: [(key: [UInt8], value: [UInt8])], in directory: String) throws -> (path: String, bytes: Data) {
        var input = Data()
        for message in messages {
            input.append(contentsOf: message.key)
            input.append(0x09)
            input.append(contentsOf: message.value)
            input.append(0x0A)
        }
        let path = directory + "/input.txt"
        try input.write(to: URL(fileURLWithPath: path))
        return (path, input)
    }

    /// `kcat -L`, then an idempotent gzip `kcat -P` and `kcat -C -e` read-back, byte for byte, all with `settings`.
    func listProduceAndConsume(_ broker: BrokerProcess, settings: [String], topic: String, seed: UInt64) throws {
        let kcat = try Interop.kcat()
        let listed = try runProcess(kcat, ["-b", broker.bootstrap, "-L", "-m", "10"] + settings)
        try #require(listed.status == 0, "kcat -L failed: \(listed.stderr)")
        #expect(listed.stdoutText.contains("broker 0 at \(broker.bootstrap)"))

        let (inputPath, input) = try inputFile(BrokerInteropTests.randomMessages(count: 500, seed: seed), in: broker.dataDirectory)
        let produced = try runProcess(
            kcat, ["-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", "\t", "-z", "gzip", "-X", "enable.idempotence=true", "-l", inputPath] + settings)
        try #require(produced.status == 0, "kcat -P failed: \(produced.stderr)")
        let consumed = try runProcess(
            kcat, ["-b", broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-K", "\t", "-f", "%k\t%s\n"] + settings)
        try #require(consumed.status == 0, "kcat -C failed: \(consumed.stderr)")
        #expect(consumed.stdout == input, "every key and value back byte for byte")
    }

    /// A kcat that must fail: exits non-zero within its metadata timeout; returns what it printed.
    func kcatFails(_ broker: BrokerProcess, settings: [String]) throws -> String {
        let result = try runProcess(try Interop.kcat(), ["-b", broker.bootstrap, "-L", "-m", "3"] + settings)
        #expect(result.status != 0, "kcat -L \(settings) should have failed: \(result.stdoutText)")
        return result.stderr
    }

    func brokerStillServes(_ broker: BrokerProcess, settings: [String]) throws {
        #expect(broker.isRunning, "the broker died: \(broker.stderrText.suffix(2000))")
        let listed = try runProcess(try Interop.kcat(), ["-b", broker.bootstrap, "-L", "-m", "10"] + settings)
        #expect(listed.status == 0, "a good client is served after the refusals: \(listed.stderr)")
    }

    // MARK: TLS

    @Test func kcatListsProducesAndConsumesOverTLS() throws {
        let fixtures = try SecurityFixtures.make()
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["secure:2"], arguments: fixtures.tlsArguments())
        try listProduceAndConsume(broker, settings: fixtures.kcatSettings("SSL"), topic: "secure", seed: 11)
        #expect(broker.stop() == 0)
    }

    @Test func aRequiredClientCertificateIsAskedForAndVerified() throws {
        let fixtures = try SecurityFixtures.make()
        let broker = try BrokerProcess.start(
            dataDirectory: try directory(), topics: ["mtls:1"], arguments: fixtures.tlsArguments(clientCA: true, requireClientCertificate: true))
        try listProduceAndConsume(broker, settings: fixtures.kcatSettings("SSL", certificate: true), topic: "mtls", seed: 12)

        // No certificate, or one from a CA the broker does not trust: refused during the handshake.
        _ = try kcatFails(broker, settings: fixtures.kcatSettings("SSL"))
        let strangerKey = fixtures.path("other-ca.key")
        let stranger = ["-X", "ssl.certificate.location=\(fixtures.untrustedCAFile)", "-X", "ssl.key.location=\(strangerKey)"]
        _ = try kcatFails(broker, settings: fixtures.kcatSettings("SSL") + stranger)
        #expect(try broker.metric("outpost_broker_tls_handshake_failures_total") ?? 0 >= 2)
        try brokerStillServes(broker, settings: fixtures.kcatSettings("SSL", certificate: true))
        #expect(broker.stop() == 0)
    }

    @Test func anOptionalClientCertificateIsVerifiedOnlyWhenPresented() throws {
        let fixtures = try SecurityFixtures.make()
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["opt:1"], arguments: fixtures.tlsArguments(clientCA: true))
        let kcat = try Interop.kcat()
        let without = try runProcess(kcat, ["-b", broker.bootstrap, "-L", "-m", "10"] + fixtures.kcatSettings("SSL"))
        #expect(without.status == 0, "no certificate is fine when it is not required: \(without.stderr)")
        let with = try runProcess(kcat, ["-b", broker.bootstrap, "-L", "-m", "10"] + fixtures.kcatSettings("SSL", certificate: true))
        #expect(with.status == 0, "\(with.stderr)")
        let stranger = ["-X", "ssl.certificate.location=\(fixtures.untrustedCAFile)", "-X", "ssl.key.location=\(fixtures.path("other-ca.key"))"]
        _ = try kcatFails(broker, settings: fixtures.kcatSettings("SSL") + stranger)
        #expect(broker.stop() == 0)
    }

    // MARK: SASL

    @Test func kcatAuthenticatesWithPlainOverTLSAndAWrongPasswordIsRefused() throws {
        let fixtures = try SecurityFixtures.make()
        let broker = try BrokerProcess.start(
            dataDirectory: try directory(), topics: ["sasl:1"], arguments: fixtures.tlsArguments() + fixtures.saslArguments)
        try listProduceAndConsume(broker, settings: fixtures.kcatSettings("SASL_SSL"), topic: "sasl", seed: 13)

        let refused = try kcatFails(broker, settings: fixtures.kcatSettings("SASL_SSL", password: SecurityFixtures.wrongPassword))
        #expect(refused.contains("Authentication failed: Invalid username or password"), "\(refused)")
        let unknown = try kcatFails(broker, settings: fixtures.kcatSettings("SASL_SSL", username: "nobody"))
        #expect(unknown.contains("Authentication failed"), "\(unknown)")
        // A client that does not do SASL at all is closed at its first request after ApiVersions.
        _ = try kcatFails(broker, settings: fixtures.kcatSettings("SSL"))

        #expect(try broker.metric("outpost_broker_sasl_authentication_failures_total{reason=\"bad_credentials\"}") ?? 0 >= 2)
        #expect(try broker.metric("outpost_broker_sasl_authentication_failures_total{reason=\"unexpected_request\"}") ?? 0 >= 1)
        #expect(try broker.metric("outpost_broker_sasl_authentications_total") ?? 0 >= 3)
        try brokerStillServes(broker, settings: fixtures.kcatSettings("SASL_SSL"))
        #expect(broker.stop() == 0)
        let log = broker.stderrText
        #expect(log.contains("SASL authentication failed"), "failures are logged")
        #expect(log.contains("user=\(SecurityFixtures.username)"))
        #expect(!log.contains(SecurityFixtures.wrongPassword) && !log.contains(SecurityFixtures.password), "no password in the log")
    }

    @Test func kcatAuthenticatesWithPlainOverPlaintext() throws {
        let fixtures = try SecurityFixtures.make()
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["sp:1"], arguments: fixtures.saslArguments)
        try listProduceAndConsume(broker, settings: fixtures.kcatSettings("SASL_PLAINTEXT"), topic: "sp", seed: 14)
        let refused = try kcatFails(broker, settings: fixtures.kcatSettings("SASL_PLAINTEXT", password: SecurityFixtures.wrongPassword))
        #expect(refused.contains("Authentication failed"), "\(refused)")
        _ = try kcatFails(broker, settings: [])
        try brokerStillServes(broker, settings: fixtures.kcatSettings("SASL_PLAINTEXT"))
        #expect(broker.stop() == 0)
    }

    struct RoundTripReport: Decodable {
        var delivered: Int
        var consumed: Int
        var distinct: Int
        var duplicates: Int
        var missing: Int
        var errors: [String]
    }

    struct RefusedReport: Decodable {
        var refused: Bool
        var errors: [String]
    }

    func pythonArguments(_ fixtures: SecurityFixtures, _ broker: BrokerProcess, client: String, password: String = SecurityFixtures.password) -> [String] {
        [
            "--bootstrap", broker.bootstrap, "--client", client, "--security-protocol", "SASL_SSL", "--ca", fixtures.caFile,
            "--username", SecurityFixtures.username, "--password", password,
        ]
    }

    /// An idempotent gzip producer, then a group consumer (its own coordinator connection, authenticated
    /// too) that commits: the whole client feature set over SASL_SSL.
    @Test(arguments: ["confluent", "kafka-python"])
    func pythonClientsProduceAndConsumeOverSASLSSL(client: String) throws {
        let fixtures = try SecurityFixtures.make("python-\(client)")
        let broker = try BrokerProcess.start(
            dataDirectory: try directory("python-\(client)"), topics: ["py:3"], arguments: fixtures.tlsArguments() + fixtures.saslArguments)
        let report = try Interop.python(
            "broker_security.py", ["roundtrip", "--topic", "py", "--count", "600"] + pythonArguments(fixtures, broker, client: client),
            as: RoundTripReport.self)
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.delivered == 600)
        #expect(report.distinct == 600)
        #expect(report.missing == 0)
        #expect(report.duplicates == 0)

        let refused = try Interop.python(
            "broker_security.py",
            ["refused", "--topic", "py"] + pythonArguments(fixtures, broker, client: client, password: SecurityFixtures.wrongPassword),
            as: RefusedReport.self)
        #expect(refused.refused, "a wrong password must not get metadata")
        if client == "confluent" {
            #expect(refused.errors.contains { $0.contains("Authentication failed") }, "\(refused.errors)")
        }
        #expect(broker.isRunning)
        #expect(broker.stop() == 0)
        #expect(!broker.stderrText.contains(SecurityFixtures.wrongPassword))
    }

    // MARK: Misconfigured clients

    @Test func misconfiguredClientsFailCleanlyAndTheBrokerKeepsServing() throws {
        let fixtures = try SecurityFixtures.make()
        let tls = try BrokerProcess.start(dataDirectory: try directory("tls"), topics: ["m:1"], arguments: fixtures.tlsArguments())
        // A CA that did not sign the broker's certificate: the client refuses the broker.
        let untrusted = try kcatFails(tls, settings: fixtures.kcatSettings("SSL", ca: fixtures.untrustedCAFile))
        #expect(untrusted.contains("certificate verify failed"), "\(untrusted)")
        // Plaintext to the TLS port: the broker refuses the bytes as a TLS handshake.
        let plaintext = try kcatFails(tls, settings: [])
        #expect(plaintext.contains("Disconnected"), "\(plaintext)")
        #expect(try tls.metric("outpost_broker_tls_handshake_failures_total") ?? 0 >= 1)
        try brokerStillServes(tls, settings: fixtures.kcatSettings("SSL"))
        #expect(tls.stop() == 0)
        #expect(tls.stderrText.contains("TLS handshake failed"))

        // TLS to a plaintext port: closed at the first bytes, with a reason that says what happened.
        let plain = try BrokerProcess.start(dataDirectory: try directory("plain"), topics: ["m:1"])
        _ = try kcatFails(plain, settings: fixtures.kcatSettings("SSL"))
        try brokerStillServes(plain, settings: [])
        #expect(plain.stop() == 0)
        #expect(plain.stderrText.contains("TLS handshake on a plaintext listener"), "\(plain.stderrText.suffix(1000))")
    }

    @Test func badCertificateFilesStopTheBrokerAtStartUpWithTheReason() throws {
        let fixtures = try SecurityFixtures.make()
        let data = try directory() + "/data"
        func start(_ arguments: [String]) throws -> ProcessResult {
            try runProcess(
                TestEnvironment.outpostBinary.path,
                ["broker", "--data-dir", data, "--listen", "127.0.0.1:0", "--metrics", "off"] + arguments)
        }
        let mismatched = try start(["--tls-cert", fixtures.serverCertificate, "--tls-key", fixtures.clientKey])
        #expect(mismatched.status == 1)
        #expect(mismatched.stderr.contains("is not the private key of the certificate"), "\(mismatched.stderr)")
        let missing = try start(["--tls-cert", fixtures.path("missing.crt"), "--tls-key", fixtures.serverKey])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("missing.crt: No such file or directory"), "\(missing.stderr)")
        let notPEM = try start(["--tls-cert", fixtures.usersFile, "--tls-key", fixtures.serverKey])
        #expect(notPEM.status == 1)
        #expect(notPEM.stderr.contains("not a PEM certificate"), "\(notPEM.stderr)")
        #expect(!notPEM.stderr.contains(SecurityFixtures.password), "the users file's contents are not echoed")
        let noUsers = try start(["--sasl-users", fixtures.path("nobody.yaml")])
        #expect(noUsers.status == 1)
        #expect(noUsers.stderr.contains("sasl.users_file"), "\(noUsers.stderr)")
        let halfTLS = try start(["--tls-cert", fixtures.serverCertificate])
        #expect(halfTLS.status != 0)
        #expect(halfTLS.stderr.contains("--tls-key"), "\(halfTLS.stderr)")
        #expect(!FileManager.default.fileExists(atPath: data), "nothing was created")
    }
}
