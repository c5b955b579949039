import Foundation

/// Open while the pipeline has room; closed while too many batches wait for compression and append.
///
/// Listeners check it before taking more input: TCP and UDP stop reading their sockets (the kernel's
/// buffers and TCP flow control push back on senders), HTTP answers 503, MQTT stops consuming (so the
/// broker holds messages). Closing at `high` and reopening at `low` (hysteresis) avoids flapping.
public final class BackPressureGate: @unchecked Sendable {
    private let lock = NSCondition()
    private var open = true
    private var resumers: [@Sendable () -> Void] = []
    private var closedSince: UInt64?
    private var closedNanosecondsTotal: UInt64 = 0
    let high: Int
    let low: Int

    init(high: Int, low: Int) {
        self.high = high
        self.low = low
    }

    public var isOpen: Bool {
        lock.lock()
        defer { lock.unlock() }
        return open
    }

    /// Total time spent closed, for the back-pressure metric.
    public var closedSeconds: Double {
        lock.lock()
        defer { lock.unlock() }
        var total = closedNanosecondsTotal
        if let closedSince { total += DispatchTime.now().uptimeNanoseconds - closedSince }
        return Double(total) / 1e9
    }

    /// Calls `resume` once the gate is open again; at once (returning true) if it is open now.
    @discardableResult
    func whenOpen(_ resume: @escaping @Sendable () -> Void) -> Bool {
        lock.lock()
        if open {
            lock.unlock()
            resume()
            return true
        }
        resumers.append(resume)
        lock.unlock()
        return false
    }

    /// Blocks the calling (non-event-loop) thread until the gate is open or `timeoutSeconds` passed.
    func waitUntilOpen(timeoutSeconds: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while !open {
            if !lock.wait(until: deadline) { return open }
        }
        return true
    }

    /// Reports the current queue depth; opens or closes the gate accordingly.
    func update(queued: Int) {
        var toResume: [@Sendable () -> Void] = []
        lock.lock()
        if open && queued >= high {
            open = false
            closedSince = DispatchTime.now().uptimeNanoseconds
        } else if !open && queued <= low {
            open = true
            if let closedSince { closedNanosecondsTotal += DispatchTime.now().uptimeNanoseconds - closedSince }
            closedSince = nil
            toResume = resumers
            resumers.removeAll()
            lock.broadcast()
        }
        lock.unlock()
        for resume in toResume { resume() }
    }

    /// Opens for good (shutdown): nobody must stay paused forever.
    func release() {
        lock.lock()
        open = true
        let toResume = resumers
        resumers.removeAll()
        lock.broadcast()
        lock.unlock()
        for resume in toResume { resume() }
    }
}
