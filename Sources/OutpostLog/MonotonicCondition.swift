#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex with a condition variable whose timed waits run on the monotonic clock.
///
/// Foundation's `NSCondition` waits until a wall-clock `Date`. Edge boxes often have no real-time clock and
/// step theirs when NTP first answers; a step backwards in the middle of the flusher's sub-millisecond gather
/// wait would stretch it by the size of the step (an hour, a year), and appends would wait that long for
/// their fsync. Here deadlines are `uptimeNanoseconds()` values, which never step.
final class MonotonicCondition: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
#if os(Linux)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
#endif
        let mutexResult = pthread_mutex_init(mutex, nil)
        let conditionResult = pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        // Only ENOMEM/EAGAIN can fail these: nothing sensible is left to do then.
        precondition(mutexResult == 0 && conditionResult == 0, "pthread_mutex_init/pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deinitialize(count: 1)
        condition.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// The clock the timed waits use (CLOCK_MONOTONIC on Linux), in nanoseconds.
    static func uptimeNanoseconds() -> UInt64 {
        var now = timespec()
#if os(Linux)
        clock_gettime(CLOCK_MONOTONIC, &now)
#else
        clock_gettime(CLOCK_REALTIME, &now)  // what pthread_cond_timedwait measures there
#endif
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits until woken (lock held; spurious wake-ups happen, callers re-check their condition).
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits until woken or until `uptimeNanoseconds()` reaches `deadline`; false when the deadline passed.
    @discardableResult
    func wait(untilUptimeNanoseconds deadline: UInt64) -> Bool {
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(condition, mutex, &time) != ETIMEDOUT
    }
}
