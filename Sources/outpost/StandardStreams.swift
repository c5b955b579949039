#if canImport(Glibc)
import Glibc
#endif

/// Reads standard input in bounded chunks, so a CLI can stream inputs of any size.
struct StandardInput {
    /// Bytes per read: 1 MiB.
    static let chunkBytes = 1 << 20

    /// Appends up to `chunkBytes` to `buffer`; returns false at end of input.
    static func read(appendingTo buffer: inout [UInt8]) -> Bool {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunkBytes))
        var count = 0
        buffer.withUnsafeMutableBytes { raw in
            while true {
                count = Glibc.read(0, raw.baseAddress! + start, chunkBytes)
                if count < 0 && errno == EINTR { continue }
                break
            }
        }
        buffer.removeSubrange((start + max(count, 0))...)
        return count > 0
    }

    static func readAll(limit: Int) -> [UInt8]? {
        var buffer: [UInt8] = []
        while read(appendingTo: &buffer) {
            if buffer.count > limit { return nil }
        }
        return buffer
    }
}

/// Line-oriented output to stdout/stderr without Foundation's buffering surprises: each call writes
/// whole lines, and `flush` pushes them out (a process killed with -9 loses only unflushed lines).
struct Output {
    static func line(_ text: String) {
        var text = text
        text.append("\n")
        text.withUTF8 { write(1, $0) }
    }

    static func error(_ text: String) {
        var text = text
        text.append("\n")
        text.withUTF8 { write(2, $0) }
    }

    private static func write(_ descriptor: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        var written = 0
        while written < bytes.count {
            let result = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                return
            }
            written += result
        }
    }
}
