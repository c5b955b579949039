import Synchronization

/// A clock that only moves when a test says so: the group state machine reads time from it.
struct ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol, Hashable, Sendable {
        var sinceStart: Duration
        func advanced(by duration: Duration) -> Instant { Instant(sinceStart: sinceStart + duration) }
        func duration(to other: Instant) -> Duration { other.sinceStart - sinceStart }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.sinceStart < rhs.sinceStart }
    }

    final class Storage: Sendable {
        let now = Mutex(Instant(sinceStart: .zero))
    }

    let storage = Storage()

    var now: Instant { storage.now.withLock { $0 } }
    var minimumResolution: Duration { .nanoseconds(1) }

    func advance(by duration: Duration) { storage.now.withLock { $0 = $0.advanced(by: duration) } }
    func set(_ instant: Instant) { storage.now.withLock { $0 = instant } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        // Never used by the state machine (it returns deadlines instead of sleeping).
        preconditionFailure("ManualClock does not sleep")
    }
}
