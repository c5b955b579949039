import CMosquitto
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A network thread that drives libmosquitto for one or many clients: poll(2) tells it which sockets are
/// readable or writable, and it calls `mosquitto_loop_read`/`_write` for those, `mosquitto_loop_misc`
/// (keep-alive) once a second for every client, and reconnects clients whose backoff has expired.
///
/// Every libmosquitto call for a client happens on this thread, except `publish`, `subscribe` and
/// `unsubscribe`, which libmosquitto allows from any thread in threaded mode: they queue the packet and
/// ask this thread to write it (`requestWrite`). Handlers (messages, completions, events) run on this
/// thread and must hand work off rather than block: while a handler runs, no client of this loop reads or
/// writes.
///
/// A client created without a loop gets a private one (one thread per client, as libmosquitto's own
/// `mosquitto_loop_start` would). Share one loop among many clients to hold thousands of connections
/// with a few threads. poll(2) rather than epoll: the Glibc module does not expose epoll, and poll has no
/// FD_SETSIZE limit. Its cost grows with the number of sockets, so a loop watching more than
/// `batchingThreshold` sockets polls at most every `batchingIntervalNanoseconds` (each call then serves
/// every socket that became ready meanwhile), which bounds the cost at a few milliseconds of latency.
public final class MQTTEventLoop: @unchecked Sendable {
    // @unchecked: the `loop*` members are touched only by the loop thread; other threads reach the loop
    // only through `commands` (a Mutex) and the wake-up pipe.

    public let name: String
    let wakeReadDescriptor: Int32
    let wakeWriteDescriptor: Int32
    private let commands = Mutex(Commands())
    private let stopped = DispatchSemaphore(value: 0)

    /// Bounded without a limit of its own: a client has at most one register, one unregister and one
    /// write request queued (`MQTTConnection.writeRequested` dedupes writes), so the queue holds at most
    /// three entries per client.
    private struct Commands {
        var queue: [Command] = []
        var wakePending = false
        var shutdownRequested = false
        var shutdownComplete = false
    }

    enum Command {
        case register(MQTTConnection)
        case unregister(MQTTConnection, DispatchSemaphore)
        case write(MQTTConnection)
    }

    // Loop-thread state.
    private var loopConnections: [ObjectIdentifier: MQTTConnection] = [:]
    /// Entry 0 is the wake-up pipe; entry i > 0 belongs to `loopPollOwners[i]`.
    private var loopPollDescriptors: [pollfd] = []
    private var loopPollOwners: [MQTTConnection?] = []
    private var loopNextMiscNanoseconds: UInt64 = 0
    /// Clients waiting out a reconnect delay (kept apart so the loop need not scan every client).
    var loopWaiting: [ObjectIdentifier: MQTTConnection] = [:]

    /// libmosquitto's keep-alive check has one-second resolution; calling it more often buys nothing.
    static let miscIntervalNanoseconds: UInt64 = 1_000_000_000
    /// How often waiting clients are checked for a due reconnect; bounds reconnect-timing error.
    static let reconnectCheckNanoseconds: UInt64 = 10_000_000
    /// Above this many sockets a loop batches its polls (see the type's comment).
    static let batchingThreshold = 256
    /// 5 ms: at 10,000 sockets one poll costs ~0.5 ms, so batching keeps the loop under ~10% of a core.
    static let batchingIntervalNanoseconds: UInt64 = 5_000_000

    public init(name: String = "mqtt") throws(MQTTError) {
        _ = MosquittoLibrary.initialized
        self.name = name
        var pipeDescriptors: [Int32] = [-1, -1]
        guard pipe(&pipeDescriptors) == 0 else { throw .system(operation: "pipe", errno: errno) }
        for descriptor in pipeDescriptors {
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        }
        wakeReadDescriptor = pipeDescriptors[0]
        wakeWriteDescriptor = pipeDescriptors[1]
        loopPollDescriptors = [pollfd(fd: wakeReadDescriptor, events: Int16(POLLIN), revents: 0)]
        loopPollOwners = [nil]
        let thread = Thread { [self] in run() }
        thread.name = "outpost-\(name)"
        thread.start()
    }

    deinit {
        close(wakeReadDescriptor)
        close(wakeWriteDescriptor)
    }

    /// Stops the thread. Clients still registered are stopped first (as `MQTTClient.stop` would).
    /// Blocks until the thread has finished. Must not be called from a handler.
    public func shutdown() {
        let alreadyDone = commands.withLock { state -> Bool in
            if state.shutdownComplete || state.shutdownRequested { return true }
            state.shutdownRequested = true
            return false
        }
        if alreadyDone { return }
        wake()
        stopped.wait()
        commands.withLock { $0.shutdownComplete = true }
    }

    // MARK: Other threads

    func enqueue(_ command: Command) {
        let needsWake = commands.withLock { state -> Bool in
            state.queue.append(command)
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if needsWake { wake() }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteDescriptor, &byte, 1)
    }

    // MARK: Loop thread

    private func run() {
        var nextReconnectCheck: UInt64 = 0
        var lastPoll: UInt64 = 0
        var drain = [UInt8](repeating: 0, count: 256)
        while true {
            var now = monotonicNanoseconds()
            if loopPollDescriptors.count > Self.batchingThreshold, now &- lastPoll < Self.batchingIntervalNanoseconds {
                usleep(UInt32((Self.batchingIntervalNanoseconds - (now &- lastPoll)) / 1_000))
                now = monotonicNanoseconds()
            }
            lastPoll = now
            var timeoutMilliseconds = Int32(max(0, (Int64(loopNextMiscNanoseconds) - Int64(now)) / 1_000_000) + 1)
            if !loopWaiting.isEmpty { timeoutMilliseconds = min(timeoutMilliseconds, 10) }
            let ready = loopPollDescriptors.withUnsafeMutableBufferPointer { buffer in
                poll(buffer.baseAddress, nfds_t(buffer.count), timeoutMilliseconds)
            }
            if ready > 0 {
                if loopPollDescriptors[0].revents != 0 {
                    while read(wakeReadDescriptor, &drain, drain.count) > 0 {}
                }
                var index = 1
                while index < loopPollDescriptors.count {
                    let revents = loopPollDescriptors[index].revents
                    if revents != 0, let connection = loopPollOwners[index] {
                        loopPollDescriptors[index].revents = 0
                        connection.loopHandle(events: revents)
                        updateRegistration(connection)
                    }
                    index += 1
                }
            }
            if runCommands() { break }
            let after = monotonicNanoseconds()
            if after >= nextReconnectCheck, !loopWaiting.isEmpty {
                nextReconnectCheck = after + Self.reconnectCheckNanoseconds
                for connection in Array(loopWaiting.values) {
                    connection.loopReconnectIfDue(now: after)
                    updateRegistration(connection)
                }
            }
            if after >= loopNextMiscNanoseconds {
                loopNextMiscNanoseconds = after + Self.miscIntervalNanoseconds
                for connection in loopConnections.values {
                    connection.loopPeriodic(now: after)
                    updateRegistration(connection)
                }
            }
        }
        stopped.signal()
    }

    /// Carries out queued commands; returns true when the loop should end.
    private func runCommands() -> Bool {
        let (batch, shutdown) = commands.withLock { state -> ([Command], Bool) in
            let taken = state.queue
            state.queue.removeAll(keepingCapacity: true)
            state.wakePending = false
            return (taken, state.shutdownRequested)
        }
        for command in batch {
            switch command {
            case .register(let connection):
                loopConnections[ObjectIdentifier(connection)] = connection
                connection.loopStart(now: monotonicNanoseconds())
                updateRegistration(connection)
            case .write(let connection):
                guard loopConnections[ObjectIdentifier(connection)] != nil else { continue }
                connection.loopFlush()
                updateRegistration(connection)
            case .unregister(let connection, let done):
                if loopConnections.removeValue(forKey: ObjectIdentifier(connection)) != nil {
                    stopConnection(connection)
                }
                done.signal()
            }
        }
        if shutdown {
            for connection in loopConnections.values { stopConnection(connection) }
            loopConnections.removeAll()
            return true
        }
        return false
    }

    private func stopConnection(_ connection: MQTTConnection) {
        loopWaiting[ObjectIdentifier(connection)] = nil
        connection.loopStop()
        forget(connection)
        connection.loopDestroy()
    }

    /// Makes poll watch the client's current socket: readable always, writable while libmosquitto has
    /// bytes to send. Called after every libmosquitto call, since any of them may close or open a socket.
    func updateRegistration(_ connection: MQTTConnection) {
        let socket = connection.loopCurrentSocket()
        if connection.loopSocketClosed || socket != connection.registeredDescriptor {
            forget(connection)
            connection.loopSocketClosed = false
        }
        guard socket >= 0 else { return }
        let wantWrite = connection.loopWantsWrite()
        let events = Int16(POLLIN) | (wantWrite ? Int16(POLLOUT) : 0)
        if connection.pollIndex < 0 {
            connection.pollIndex = loopPollDescriptors.count
            loopPollDescriptors.append(pollfd(fd: socket, events: events, revents: 0))
            loopPollOwners.append(connection)
            connection.registeredDescriptor = socket
        } else {
            loopPollDescriptors[connection.pollIndex].events = events
        }
    }

    /// Drops the client's poll entry (swapping the last entry into its place).
    private func forget(_ connection: MQTTConnection) {
        let index = connection.pollIndex
        connection.registeredDescriptor = -1
        guard index > 0 else { return }
        let last = loopPollDescriptors.count - 1
        if index != last {
            loopPollDescriptors[index] = loopPollDescriptors[last]
            loopPollOwners[index] = loopPollOwners[last]
            loopPollOwners[index]?.pollIndex = index
        }
        loopPollDescriptors.removeLast()
        loopPollOwners.removeLast()
        connection.pollIndex = -1
    }
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func wallClockNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
