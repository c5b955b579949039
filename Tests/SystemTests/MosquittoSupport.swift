import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real mosquitto for one system test: config in a temporary directory (`listener PORT 127.0.0.1`,
/// `allow_anonymous true`, persistence when asked), a free loopback port, stopped by PID. Never the
/// system's broker on 1883.
final class MosquittoProcess: @unchecked Sendable {
    let directory: URL
    private(set) var port: Int
    let persistence: Bool
    private(set) var pid: pid_t?
    /// Extra configuration lines (e.g. `max_queued_messages 100000`).
    let extraConfiguration: String

    init(persistence: Bool = false, extraConfiguration: String = "", name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }.prefix(40)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-mosquitto-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.persistence = persistence
        self.extraConfiguration = extraConfiguration
        port = try freeLoopbackPort()
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var logPath: String { directory.appendingPathComponent("mosquitto.log").path }

    /// Starts (or restarts on the same port) and waits until it accepts connections.
    func start() throws {
        let configPath = directory.appendingPathComponent("mosquitto.conf")
        for _ in 0..<3 {
            var config = "listener \(port) 127.0.0.1\nallow_anonymous true\nlog_dest file \(logPath)\n"
            config += persistence ? "persistence true\npersistence_location \(directory.path)/\n" : "persistence false\n"
            config += extraConfiguration + "\n"
            try config.write(to: configPath, atomically: true, encoding: .utf8)
            let started = try spawnWithCleanSignals("/usr/sbin/mosquitto", ["-c", configPath.path])
            pid = started
            if waitUntil(seconds: 10, { !isRunning(started) || canConnect(port: port) }), isRunning(started) { return }
            stop()
            port = try freeLoopbackPort()
        }
        throw SimulatorSystemTestError("mosquitto did not start; see \(logPath)")
    }

    /// SIGTERM by PID, then wait for it to exit.
    func stop() {
        guard let pid else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        self.pid = nil
    }
}

struct SimulatorSystemTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A process started with a clean signal mask and default handlers, output appended to `outputPath`
/// (standard error too, unless `errorPath` names a file or terminal of its own).
/// (Foundation's `Process` hands on the test runner's mask, in which SIGTERM is blocked, so a daemon
/// started that way ignores `kill -TERM`.)
func spawnWithCleanSignals(_ path: String, _ arguments: [String], outputPath: String = "/dev/null", errorPath: String? = nil) throws -> pid_t {
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
    if let errorPath {
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_RDWR | O_NOCTTY, 0)
    } else {
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
    }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
    guard rc == 0 else { throw SimulatorSystemTestError("posix_spawn \(path) failed: \(rc)") }
    return pid
}

func isRunning(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    return waitpid(pid, &status, WNOHANG) == 0
}

/// SIGTERM and reap.
func terminate(_ pid: pid_t) {
    kill(pid, SIGTERM)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

func freeLoopbackPort(datagram: Bool = false) throws -> Int {
    let descriptor = socket(AF_INET, datagram ? Int32(SOCK_DGRAM.rawValue) : Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw SimulatorSystemTestError("socket failed") }
    defer { close(descriptor) }
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
    }
    guard bound else { throw SimulatorSystemTestError("bind failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

func canConnect(port: Int) -> Bool {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// Polls until `condition` holds or `seconds` pass: a bound on waiting for other processes. On the
/// monotonic clock: a step of the wall clock must not cut the wait short or stretch it.
@discardableResult
func waitUntil(seconds: Double, interval: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(useconds_t(interval * 1_000_000))
    }
    return condition()
}
