import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real mosquitto for one test: its own config in a temporary directory, a free loopback port, stopped
/// by PID. Never the system's broker on 1883.
final class MosquittoBroker: @unchecked Sendable {
    let directory: URL
    private(set) var port: Int
    let persistence: Bool
    /// Lines added after the listener (they apply to it), e.g. TLS certificate paths.
    let listenerConfiguration: String
    private var processID: pid_t?

    init(persistence: Bool = false, listenerConfiguration: String = "", name: String = #function) throws {
        self.listenerConfiguration = listenerConfiguration
        let safe = name.filter { $0.isLetter || $0.isNumber }.prefix(40)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-mosquitto-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.persistence = persistence
        port = try Self.freePort()
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var pid: Int32? { processID }

    /// Starts (or restarts, on the same port) the broker and waits until it accepts connections.
    func start() throws {
        let configPath = directory.appendingPathComponent("mosquitto.conf")
        for _ in 0..<3 {
            var config = """
                listener \(port) 127.0.0.1
                \(listenerConfiguration)
                allow_anonymous true
                max_queued_messages 100000
                log_dest file \(directory.path)/mosquitto.log

                """
            config += persistence ? "persistence true\npersistence_location \(directory.path)/\n" : "persistence false\n"
            try config.write(to: configPath, atomically: true, encoding: .utf8)
            let pid = try spawnProcess("/usr/sbin/mosquitto", ["-c", configPath.path])
            processID = pid
            if Self.waitForListener(port: port, pid: pid, timeoutSeconds: 10) { return }
            stop()
            // The port was taken between probing and binding: try another.
            port = try Self.freePort()
        }
        throw BrokerError("mosquitto did not start listening; see \(directory.path)/mosquitto.log")
    }

    /// SIGTERM by PID and wait for the exit (mosquitto saves its persistence file on the way out).
    func stop() {
        guard let processID else { return }
        kill(processID, SIGCONT)
        kill(processID, SIGTERM)
        var status: Int32 = 0
        waitpid(processID, &status, 0)
        self.processID = nil
    }

    func restart() throws {
        stop()
        try start()
    }

    /// SIGSTOP: the broker stops answering (no CONNACK, no PUBACK) while its sockets stay open.
    func pause() { if let pid { kill(pid, SIGSTOP) } }
    func resume() { if let pid { kill(pid, SIGCONT) } }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BrokerError("socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw BrokerError("bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func waitForListener(port: Int, pid: pid_t, timeoutSeconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == 0 else { return false }
            if canConnect(port: port) { return true }
            usleep(20_000)
        }
        return false
    }

    static func canConnect(port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

struct BrokerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` until true or the timeout: a bound on waiting for real network events, not an
/// assertion about how fast they happen.
func eventually(timeoutSeconds: Double = 15, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Collects what handlers deliver, from the network thread, for the test to inspect.
final class Collector<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Element] = []

    func append(_ item: Element) {
        lock.lock()
        items.append(item)
        lock.unlock()
    }

    var values: [Element] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }

    var count: Int { values.count }
}

/// Starts a program with a clean signal mask and default signal handlers. Foundation's `Process` passes on
/// the test runner's mask, in which SIGTERM is blocked, so a broker started that way ignores `kill -TERM`.
func spawnProcess(_ path: String, _ arguments: [String], outputPath: String = "/dev/null") throws -> pid_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    var defaults = sigset_t()
    sigfillset(&defaults)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
    guard rc == 0 else { throw BrokerError("posix_spawn \(path) failed: \(rc)") }
    return pid
}
