import Dispatch
import Foundation
import Testing

@testable import OutpostLog

#if canImport(Glibc)
import Glibc
#endif

/// The flusher's timed waits run on the monotonic clock, so a wall clock stepped backwards (NTP correcting an
/// edge box at boot) cannot stretch them.
@Suite struct MonotonicConditionTests {
#if os(Linux)
    /// A deadline on the monotonic clock (hours since boot, far below the wall clock's ~1.7e18 ns) is honoured:
    /// a condition variable measuring the wall clock would see it as long past and return at once.
    @Test func aTimedWaitLastsUntilItsMonotonicDeadline() {
        let condition = MonotonicCondition()
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let start = MonotonicCondition.uptimeNanoseconds()
        #expect(start < UInt64(wall.tv_sec) * 1_000_000_000, "the monotonic clock reads the wall clock here")
        condition.lock()
        let deadline = start + 50_000_000
        // A wait that reports its deadline passed must return at or after it (a spurious wake-up, which
        // reports true, may return early and is retried).
        var timedOut = false
        while !timedOut && MonotonicCondition.uptimeNanoseconds() < deadline {
            timedOut = !condition.wait(untilUptimeNanoseconds: deadline)
            if timedOut {
                let returned = MonotonicCondition.uptimeNanoseconds()
                #expect(returned >= deadline, "the wait timed out \((deadline - min(returned, deadline)) / 1_000_000) ms before its deadline")
            }
        }
        condition.unlock()
        #expect(MonotonicCondition.uptimeNanoseconds() - start >= 50_000_000)
        // The same clock as clock_gettime(CLOCK_MONOTONIC).
        var monotonic = timespec()
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        let reading = UInt64(monotonic.tv_sec) * 1_000_000_000 + UInt64(monotonic.tv_nsec)
        let after = MonotonicCondition.uptimeNanoseconds()
        #expect(after >= reading && after - reading < 1_000_000_000)
    }
#endif

    @Test func aBroadcastEndsATimedWaitBeforeItsDeadline() {
        let condition = MonotonicCondition()
        let flag = LockedBox(false)
        let start = MonotonicCondition.uptimeNanoseconds()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.02)
            condition.lock()
            flag.set(true)
            condition.broadcast()
            condition.unlock()
        }
        condition.lock()
        let deadline = start + 10_000_000_000
        while !flag.get() && MonotonicCondition.uptimeNanoseconds() < deadline {
            condition.wait(untilUptimeNanoseconds: deadline)
        }
        condition.unlock()
        #expect(flag.get())
        #expect(MonotonicCondition.uptimeNanoseconds() - start < 5_000_000_000, "the broadcast did not end the wait")
    }
}
