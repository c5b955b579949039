import Foundation
import Testing

/// Certificates and a users file made for one test, in a temporary directory: a CA; a server certificate
/// it signed for 127.0.0.1 (subjectAltName IP:127.0.0.1, what clients check the address against); a
/// client certificate it signed; and a second, unrelated CA that vouches for nothing here.
struct SecurityFixtures {
    let directory: URL
    static let username = "gateway-01"
    /// Distinctive, so a test can search the broker's log for them.
    static let password = "Corr3ct-h0rse-battery"
    static let wrongPassword = "Wr0ng-guess-staple"

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    var caFile: String { path("ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    var untrustedCAFile: String { path("other-ca.crt") }
    var usersFile: String { path("users.yaml") }

    static func make(_ name: String = #function) throws -> SecurityFixtures {
        let directory = try TestEnvironment.temporaryDirectory("certs-" + name)
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: which("openssl") ?? "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "openssl \(arguments.prefix(2).joined(separator: " ")) failed")
        }
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=outpost-test-ca"])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=outpost-broker"])
        try "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
            to: directory.appendingPathComponent("server.ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2",
            "-extfile", "server.ext",
        ])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=\(username)"])
        try "extendedKeyUsage=clientAuth\n".write(to: directory.appendingPathComponent("client.ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "client.crt", "-days", "2",
            "-extfile", "client.ext",
        ])
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "2", "-subj", "/CN=someone-else"])
        let users = directory.appendingPathComponent("users.yaml")
        try "\(username): \"\(password)\"\nmonitor: \"monitor-Pa55\"\n".write(to: users, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: users.path)
        return SecurityFixtures(directory: directory)
    }

    /// Broker flags for a TLS listener (optionally verifying client certificates).
    func tlsArguments(clientCA: Bool = false, requireClientCertificate: Bool = false) -> [String] {
        var arguments = ["--tls-cert", serverCertificate, "--tls-key", serverKey]
        if clientCA { arguments += ["--tls-ca", caFile] }
        if requireClientCertificate { arguments += ["--tls-require-client-cert"] }
        return arguments
    }

    var saslArguments: [String] { ["--sasl-users", usersFile] }

    /// kcat `-X` settings for a client speaking `securityProtocol`.
    func kcatSettings(
        _ securityProtocol: String, ca: String? = nil, certificate: Bool = false, username: String = Self.username, password: String = Self.password
    ) -> [String] {
        var settings = ["security.protocol=\(securityProtocol)"]
        if securityProtocol.hasSuffix("SSL") { settings.append("ssl.ca.location=\(ca ?? caFile)") }
        if certificate { settings += ["ssl.certificate.location=\(clientCertificate)", "ssl.key.location=\(clientKey)"] }
        if securityProtocol.hasPrefix("SASL") {
            settings += ["sasl.mechanisms=PLAIN", "sasl.username=\(username)", "sasl.password=\(password)"]
        }
        return settings.flatMap { ["-X", $0] }
    }
}
