#if canImport(Glibc)
import Glibc
#endif

/// Thin POSIX socket helpers for the senders: non-blocking sockets, connect with a timeout, and a write
/// that waits for room in slices so the caller can keep its status line and stop flag alive.
enum Sockets {
    struct Address {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        var family: Int32 = AF_INET
    }

    /// Resolves `host:port` (names or numeric, IPv4 or IPv6).
    static func resolve(host: String, port: Int, datagram: Bool) -> Address? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var address = Address()
        address.family = first.pointee.ai_family
        address.length = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &address.storage) { storage in
            storage.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return address
    }

    /// `HOST:PORT` or `[v6]:PORT`.
    static func splitHostPort(_ text: String) -> (host: String, port: Int)? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65_535).contains(port) else { return nil }
            return (host, port)
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    static func setNonBlocking(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// A connected non-blocking socket, or the errno of the failure. Waits at most `timeoutMilliseconds`.
    static func connect(_ address: Address, datagram: Bool, timeoutMilliseconds: Int32) -> Result<Int32, SocketFailure> {
        let descriptor = socket(address.family, (datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue)) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return .failure(SocketFailure(errno)) }
        setNonBlocking(descriptor)
        if !datagram {
            var one: Int32 = 1
            _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, address.length) }
        }
        if rc == 0 { return .success(descriptor) }
        guard errno == EINPROGRESS else {
            let error = errno
            close(descriptor)
            return .failure(SocketFailure(error))
        }
        var waiting = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&waiting, 1, timeoutMilliseconds) == 1 else {
            close(descriptor)
            return .failure(SocketFailure(ETIMEDOUT))
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(descriptor)
            return .failure(SocketFailure(error))
        }
        return .success(descriptor)
    }

    /// Writes all of `bytes`, waiting for room in 100 ms slices; between slices `keepAlive` runs and may
    /// return false to give up. Returns how many bytes went out and the error that stopped it, if any.
    static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, keepAlive: () -> Bool) -> (written: Int, error: SocketFailure?) {
        var written = 0
        while written < bytes.count {
            let count = send(descriptor, bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
            if count > 0 {
                written += count
                continue
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                var waiting = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&waiting, 1, 100)
                if !keepAlive() { return (written, SocketFailure(ECANCELED)) }
                continue
            }
            return (written, SocketFailure(count < 0 ? errno : EPIPE))
        }
        return (written, nil)
    }
}

struct SocketFailure: Error, CustomStringConvertible {
    var errno: Int32
    init(_ errno: Int32) { self.errno = errno }
    var description: String { String(cString: strerror(errno)) }
}

/// Delays between reconnect attempts of a sender: 100 ms doubling to 2 s, so a target that comes back is
/// found within two seconds while a dead one costs a handful of attempts per second at most.
struct SenderBackoff {
    var failures = 0
    var nextAttempt: UInt64 = 0

    mutating func failed(now: UInt64) {
        let delay = min(2_000_000_000, UInt64(100_000_000) << UInt64(min(failures, 5)))
        failures += 1
        nextAttempt = now + delay
    }

    mutating func succeeded() {
        failures = 0
        nextAttempt = 0
    }

    func due(_ now: UInt64) -> Bool { now >= nextAttempt }
}

func monotonicNow() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func wallNow() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
