#if canImport(Glibc)
import Glibc
private let systemRead = Glibc.read
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemRead = Darwin.read
private let systemWrite = Darwin.write
#endif

/// Small broker-level files (producer-id block, group offsets) replaced atomically and durably: write a
/// temporary file, fsync it, rename it over the old one, fsync the directory. A crash leaves either the
/// old or the new contents, never a mix.
enum DurableFile {
    static func message(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    static func createDirectory(_ path: String) throws(BrokerError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw .file(path: prefix, operation: "mkdir", errno: errno) }
        }
    }

    /// The whole file, or nil if it does not exist.
    static func read(_ path: String) throws(BrokerError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw .file(path: path, operation: "open", errno: errno)
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .file(path: path, operation: "read", errno: errno)
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    static func replace(_ path: String, with bytes: [UInt8]) throws(BrokerError) {
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .file(path: temporary, operation: "open", errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                systemWrite(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(descriptor)
                throw .file(path: temporary, operation: "write", errno: code)
            }
            written += count
        }
        if fsync(descriptor) != 0 {
            let code = errno
            close(descriptor)
            throw .file(path: temporary, operation: "fsync", errno: code)
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else { throw .file(path: path, operation: "rename", errno: errno) }
        try synchronizeDirectory(containing: path)
    }

    static func remove(_ path: String) throws(BrokerError) {
        if unlink(path) != 0 && errno != ENOENT { throw .file(path: path, operation: "unlink", errno: errno) }
        try synchronizeDirectory(containing: path)
    }

    static func synchronizeDirectory(containing path: String) throws(BrokerError) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let name = directory.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : directory
        let descriptor = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .file(path: name, operation: "open", errno: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .file(path: name, operation: "fsync", errno: errno) }
    }

    /// Names of the entries of a directory ([] if it does not exist).
    static func entries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// An exclusive lock on a data directory (`flock` on `<dir>/broker.lock`), held while a broker runs, so
/// that a second broker pointed at the same directory refuses to start instead of corrupting the logs.
final class DirectoryLock: Sendable {
    let path: String
    private let descriptor: Int32

    init(directory: String) throws(BrokerError) {
        path = directory + "/broker.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .file(path: path, operation: "open", errno: errno) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            if code == EWOULDBLOCK {
                throw .configuration("data directory \(directory) is in use by another broker (\(path) is locked)")
            }
            throw .file(path: path, operation: "flock", errno: code)
        }
        self.descriptor = descriptor
    }

    /// Releases the lock (also released when the process exits).
    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
