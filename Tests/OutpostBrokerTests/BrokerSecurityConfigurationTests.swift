import Foundation
import Logging
import OutpostOperations
import Testing
@testable import OutpostBroker

/// `tls:` and `sasl:` in the YAML, and the start-up checks of their files: every mistake is a sentence
/// naming the key or file, and no password is ever printed.
@Suite struct BrokerSecurityConfigurationTests {
    @Test func tlsAndSaslParse() throws {
        let configuration = try BrokerConfiguration.parse(yaml: """
            tls:
              cert_file: /etc/outpost/broker.crt
              key_file: /etc/outpost/broker.key
              ca_file: /etc/outpost/ca.crt
              require_client_certificate: true
            sasl:
              mechanism: PLAIN
              users:
                gateway-01: "s3cret: with colon"
                monitor: 12345
              users_file: /etc/outpost/users.yaml
            limits:
              connection_setup_timeout: 10s
            """)
        #expect(configuration.tls == BrokerTLSConfiguration(
            certificateFile: "/etc/outpost/broker.crt", privateKeyFile: "/etc/outpost/broker.key", caFile: "/etc/outpost/ca.crt",
            requireClientCertificate: true))
        #expect(configuration.sasl?.mechanism == .plain)
        #expect(configuration.sasl?.users == ["gateway-01": SASLPassword("s3cret: with colon"), "monitor": SASLPassword("12345")])
        #expect(configuration.sasl?.usersFile == "/etc/outpost/users.yaml")
        #expect(configuration.security.connectionSetupTimeoutMilliseconds == 10_000)
        #expect(configuration.securityProtocol == "SASL_SSL")
        #expect(!"\(configuration)".contains("s3cret") && !String(reflecting: configuration).contains("12345"), "passwords are redacted")
    }

    @Test func withoutTheSectionsTheListenerIsPlaintext() throws {
        let configuration = try BrokerConfiguration.parse(yaml: "broker:\n  id: 1\n")
        #expect(configuration.tls == nil && configuration.sasl == nil)
        #expect(configuration.securityProtocol == "PLAINTEXT")
        let tlsOnly = try BrokerConfiguration.parse(yaml: "tls:\n  cert_file: a.crt\n  key_file: a.key\n")
        #expect(tlsOnly.securityProtocol == "SSL")
        #expect(tlsOnly.tls?.caFile == nil && tlsOnly.tls?.requireClientCertificate == false)
        #expect(try BrokerConfiguration.parse(yaml: "sasl:\n  users:\n    a: b\n").securityProtocol == "SASL_PLAINTEXT")
    }

    @Test(arguments: [
        ("tls:\n  cert_file: a.crt\n", "tls.key_file"),
        ("tls:\n  key_file: a.key\n", "tls.cert_file"),
        ("tls:\n  cert_file: a\n  key_file: b\n  require_client_certificate: true\n", "tls.require_client_certificate"),
        ("tls:\n  cert_file: a\n  key_file: b\n  ciphers: all\n", "tls.ciphers"),
        ("sasl:\n  mechanism: SCRAM-SHA-256\n  users:\n    a: b\n", "sasl.mechanism"),
        ("sasl:\n  mechanism: PLAIN\n", "sasl.users"),
        ("sasl:\n  users:\n    alice: \"\"\n", "sasl.users.alice"),
        ("sasl:\n  users:\n    alice:\n      nested: x\n", "sasl.users.alice"),
        ("limits:\n  connection_setup_timeout: 10ms\n", "limits.connection_setup_timeout"),
    ])
    func mistakesNameTheirKey(yaml: String, key: String) {
        do {
            _ = try BrokerConfiguration.parse(yaml: yaml)
            Issue.record("\(yaml) should not parse")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }

    @Test func aBadPasswordIsReportedWithoutShowingIt() {
        do {
            _ = try BrokerConfiguration.parse(yaml: "sasl:\n  users:\n    alice: \"has\\0nul-secret\"\n")
            Issue.record("a NUL in a password cannot be sent with PLAIN")
        } catch {
            #expect("\(error)".contains("alice"))
            #expect(!"\(error)".contains("secret"))
        }
    }

    // MARK: Users file

    func temporaryFile(_ text: String, mode: Int = 0o600) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-users-\(UUID().uuidString.prefix(8)).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    @Test func usersFromTheFileJoinThoseInTheConfiguration() throws {
        let path = try temporaryFile("monitor: monitor-secret\nops: \"ops secret\"\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let credentials = try SASLCredentials.load(BrokerSASLConfiguration(users: ["gateway": SASLPassword("g")], usersFile: path))
        #expect(credentials.userCount == 3)
        #expect(credentials.verify(username: "ops", password: Array("ops secret".utf8)))
        #expect(credentials.verify(username: "gateway", password: Array("g".utf8)))
        #expect(!credentials.verify(username: "monitor", password: Array("g".utf8)))
    }

    @Test func usersFileMistakesStopTheBrokerWithTheReason() throws {
        func failure(_ configuration: BrokerSASLConfiguration) -> String {
            do {
                _ = try SASLCredentials.load(configuration)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(failure(BrokerSASLConfiguration(usersFile: "/nonexistent/users.yaml")).contains("No such file"))
        let duplicate = try temporaryFile("gateway: other-secret\n")
        defer { try? FileManager.default.removeItem(atPath: duplicate) }
        let message = failure(BrokerSASLConfiguration(users: ["gateway": SASLPassword("g")], usersFile: duplicate))
        #expect(message.contains("'gateway' is also in sasl.users"))
        #expect(!message.contains("other-secret"))
        let broken = try temporaryFile("gateway: [unterminated-secret\n")
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let brokenMessage = failure(BrokerSASLConfiguration(usersFile: broken))
        #expect(brokenMessage.contains(broken))
        #expect(!brokenMessage.contains("unterminated-secret"), "YAML errors quote lines; this one must not")
        let empty = try temporaryFile("")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(failure(BrokerSASLConfiguration(usersFile: empty)).contains("no users"))
    }

    // MARK: TLS files

    @Test func tlsFilesAreCheckedAtStartUp() throws {
        let directory = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func failure(_ tls: BrokerTLSConfiguration) -> String {
            do {
                _ = try TLSFiles.makeServerContext(tls)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(failure(BrokerTLSConfiguration(certificateFile: path("server.crt"), privateKeyFile: path("server.key"))) == "")
        #expect(failure(BrokerTLSConfiguration(
            certificateFile: path("server.crt"), privateKeyFile: path("server.key"), caFile: path("ca.crt"), requireClientCertificate: true)) == "")

        let missing = failure(BrokerTLSConfiguration(certificateFile: path("nope.crt"), privateKeyFile: path("server.key")))
        #expect(missing.contains("tls.cert_file") && missing.contains("nope.crt") && missing.contains("No such file"), "\(missing)")
        let mismatched = failure(BrokerTLSConfiguration(certificateFile: path("server.crt"), privateKeyFile: path("client.key")))
        #expect(mismatched.contains("is not the private key of the certificate"), "\(mismatched)")
        let notPEM = failure(BrokerTLSConfiguration(certificateFile: path("server.ext"), privateKeyFile: path("server.key")))
        #expect(notPEM.contains("not a PEM certificate"), "\(notPEM)")
        let keyNotPEM = failure(BrokerTLSConfiguration(certificateFile: path("server.crt"), privateKeyFile: path("server.crt")))
        #expect(keyNotPEM.contains("tls.key_file") && keyNotPEM.contains("not a PEM private key"), "\(keyNotPEM)")
        let badCA = failure(BrokerTLSConfiguration(certificateFile: path("server.crt"), privateKeyFile: path("server.key"), caFile: path("server.key")))
        #expect(badCA.contains("tls.ca_file"), "\(badCA)")
        let directoryAsFile = failure(BrokerTLSConfiguration(certificateFile: directory.path, privateKeyFile: path("server.key")))
        #expect(directoryAsFile.contains("not a regular file"), "\(directoryAsFile)")
        if getuid() != 0 {  // root reads anything
            try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: path("server.key"))
            #expect(failure(BrokerTLSConfiguration(certificateFile: path("server.crt"), privateKeyFile: path("server.key"))).contains("Permission denied"))
        }
    }

    @Test func aBrokerWithABadCertificateDoesNotStartOrTouchItsData() async throws {
        let directory = try TestCertificates.make()
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = TestBroker.directory()
        await #expect(throws: BrokerError.self) {
            _ = try await TestBroker.start(directory: data) { configuration in
                configuration.tls = BrokerTLSConfiguration(
                    certificateFile: directory.appendingPathComponent("server.crt").path, privateKeyFile: directory.appendingPathComponent("client.key").path)
            }
        }
        #expect(!FileManager.default.fileExists(atPath: data), "checked before the data directory is created")
    }
}

/// Certificates made by openssl for a test: a CA; a server certificate it signed for 127.0.0.1 (SAN
/// IP:127.0.0.1); a client certificate it signed.
enum TestCertificates {
    static func make() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-certs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw BrokerError.configuration("openssl \(arguments.prefix(2)) failed") }
        }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=outpost-test-ca"])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1\n".write(to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2",
            "-extfile", "server.ext",
        ])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=gateway-01"])
        try openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.crt", "-days", "2"])
        return directory
    }
}
