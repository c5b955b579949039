import Foundation
import NIOSSL

/// Turns the `tls:` configuration into a server `NIOSSLContext`, once, at start-up — reading every file
/// then, so a missing, unreadable, malformed or mismatched file stops the broker with a sentence naming
/// the file and the problem instead of failing each handshake later.
enum TLSFiles {
    struct ServerContext {
        let context: NIOSSLContext
        /// Things worth a warning that do not stop the broker (an expired certificate).
        let warnings: [String]
    }

    /// Blocking file I/O and certificate parsing: call it at start-up, off any event loop.
    static func makeServerContext(_ configuration: BrokerTLSConfiguration, now: Date = Date()) throws(BrokerError) -> ServerContext {
        do {
            try configuration.validate()
        } catch {
            throw .configuration("\(error)")
        }
        let certificateFile = configuration.certificateFile
        let keyFile = configuration.privateKeyFile
        try checkReadable(certificateFile, key: "tls.cert_file")
        try checkReadable(keyFile, key: "tls.key_file")
        if let caFile = configuration.caFile { try checkReadable(caFile, key: "tls.ca_file") }

        let chain = try certificates(certificateFile, key: "tls.cert_file")
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw .configuration("tls.key_file \(keyFile): not a PEM private key (an encrypted key is not supported)")
        }

        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        // TLS 1.0 and 1.1 are deprecated (RFC 8996); every supported client speaks 1.2 or 1.3.
        tls.minimumTLSVersion = .tlsv12
        if let caFile = configuration.caFile {
            let authorities = try certificates(caFile, key: "tls.ca_file")
            tls.trustRoots = .certificates(authorities)
            tls.certificateVerification = configuration.requireClientCertificate ? .noHostnameVerification : .optionalVerification
            // Tells clients which CAs are accepted, so one holding several certificates picks the right one.
            tls.sendCANameList = true
        } else {
            tls.certificateVerification = .none
        }

        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // Both files parsed on their own, so what BoringSSL refused is the pair.
            throw .configuration("tls.key_file \(keyFile) is not the private key of the certificate in tls.cert_file \(certificateFile)")
        } catch {
            throw .configuration("TLS set-up failed for tls.cert_file \(certificateFile) and tls.key_file \(keyFile): \(error)")
        }

        var warnings: [String] = []
        if let leaf = chain.first {
            let expiry = Date(timeIntervalSince1970: TimeInterval(leaf.notValidAfter))
            if expiry < now {
                warnings.append("the certificate in tls.cert_file \(certificateFile) expired at \(expiry); clients will refuse it")
            }
        }
        return ServerContext(context: context, warnings: warnings)
    }

    /// Every PEM certificate in `path`, at least one.
    static func certificates(_ path: String, key: String) throws(BrokerError) -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw .configuration("\(key) \(path): not a PEM certificate file")
        }
        guard !certificates.isEmpty else { throw .configuration("\(key) \(path): holds no PEM certificate") }
        return certificates
    }

    static func checkReadable(_ path: String, key: String) throws(BrokerError) {
        guard !path.isEmpty else { throw .configuration("\(key) is empty") }
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw .configuration("\(key) \(path): \(DurableFile.message(errno))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .configuration("\(key) \(path): not a regular file") }
        guard access(path, R_OK) == 0 else { throw .configuration("\(key) \(path): \(DurableFile.message(errno))") }
    }

    /// A short reason for a Foundation file error (its localizedDescription is long and platform-specific).
    static func reason(_ error: any Error) -> String {
        let error = error as NSError
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return DurableFile.message(Int32(underlying.code))
        }
        switch error.code {
        case NSFileReadNoSuchFileError: return DurableFile.message(ENOENT)
        case NSFileReadNoPermissionError: return DurableFile.message(EACCES)
        case NSFileReadInapplicableStringEncodingError: return "not UTF-8 text"
        default: return error.localizedDescription
        }
    }
}
