import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs mounted for one test, for the disk-full tests of the log and the gateway: a real file
/// system that runs out of space. The tests run as root; without the mount they fail, plainly.
/// Unmounted by `unmount()` or when dropped.
public final class SmallFilesystem {
    public let path: String
    private var mounted = false

    public struct MountFailed: Error, CustomStringConvertible {
        public let description: String
    }

    public init(size: String = "1m", _ name: String = #function) throws {
        path = NSTemporaryDirectory() + "outpost-tmpfs-\(name.filter(\.isLetter).prefix(30))-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = Self.run("mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw MountFailed(description: "could not mount a \(size) tmpfs at \(path) (mount exited \(status): \(output)); the disk-full tests need root and tmpfs")
        }
        mounted = true
    }

    /// Unmounts (lazily if something still holds a file open) and removes the mount point.
    public func unmount() {
        guard mounted else { return }
        mounted = false
        if Self.run("umount", [path]).status != 0 { _ = Self.run("umount", ["-l", path]) }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { unmount() }

    /// Writes one file until the file system refuses even 512 bytes more; returns its path (deleting it is
    /// "space returns").
    public func fillCompletely() -> String {
        let filler = path + "/filler"
        let descriptor = open(filler, O_RDWR | O_CREAT, 0o644)
        defer { close(descriptor) }
        var position = 0
        for chunk in [64 << 10, 4096, 512] {
            let bytes = [UInt8](repeating: 0xAB, count: chunk)
            while bytes.withUnsafeBytes({ pwrite(descriptor, $0.baseAddress, chunk, off_t(position)) }) == chunk { position += chunk }
        }
        return filler
    }

    static func run(_ tool: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
