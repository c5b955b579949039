/// The open-loop schedule: when each point is due, in seconds of wall time after the start, regardless
/// of how fast the target takes them.
///
/// A fleet of n devices sampling every I seconds emits a point every I/n simulated seconds, devices in
/// turn (device d's slot k is at d·I/n + k·I). `--rate` scales simulated time so that all fleets together
/// emit `rate` points per second; ramp-up grows the rate linearly from zero over `rampSeconds`.
public struct Schedule: Sendable {
    public struct Slot: Sendable, Hashable {
        public var fleet: Int
        public var device: Int
        /// Simulated seconds since the start (what sensor models see).
        public var simulatedSeconds: Double
        /// Wall seconds after the start when the slot is due.
        public var dueSeconds: Double
    }

    struct Cursor: Sendable {
        var deviceCount: Int
        var stepSeconds: Double
        var next: Int64 = 0
    }

    var cursors: [Cursor]
    /// Simulated seconds per wall second (1: real time).
    public let timeScale: Double
    public let rampSeconds: Double
    /// No pacing: every slot is due at once (`--rate max`, for measuring throughput).
    public let unpaced: Bool

    public init(fleets: [Fleet], rate: Double?, rampSeconds: Double = 0, unpaced: Bool = false) {
        cursors = fleets.map { Cursor(deviceCount: $0.deviceCount, stepSeconds: $0.intervalSeconds / Double($0.deviceCount)) }
        let natural = fleets.reduce(0) { $0 + $1.naturalRate }
        timeScale = rate.map { $0 / natural } ?? 1
        self.rampSeconds = max(0, rampSeconds)
        self.unpaced = unpaced
    }

    /// Points per second all fleets produce at full rate.
    public var fullRate: Double {
        cursors.reduce(0) { $0 + 1 / $1.stepSeconds } * timeScale
    }

    /// The earliest slot not yet taken, without taking it.
    public func peek() -> Slot {
        var best = 0
        var bestSeconds = Double.infinity
        for (index, cursor) in cursors.enumerated() {
            let seconds = Double(cursor.next) * cursor.stepSeconds
            if seconds < bestSeconds {
                bestSeconds = seconds
                best = index
            }
        }
        let cursor = cursors[best]
        return Slot(fleet: best, device: Int(cursor.next % Int64(cursor.deviceCount)), simulatedSeconds: bestSeconds,
                    dueSeconds: unpaced ? 0 : wallSeconds(simulated: bestSeconds))
    }

    public mutating func take() -> Slot {
        let slot = peek()
        cursors[slot.fleet].next += 1
        return slot
    }

    /// Wall seconds after the start at which simulated time `simulated` is due.
    public func wallSeconds(simulated: Double) -> Double {
        let fullRateSeconds = simulated / timeScale
        guard rampSeconds > 0 else { return fullRateSeconds }
        // Rate rises linearly over the ramp: points by wall time w are ∫ r = R·w²/(2·ramp) for w < ramp.
        if fullRateSeconds < rampSeconds / 2 { return (2 * rampSeconds * fullRateSeconds).squareRoot() }
        return fullRateSeconds + rampSeconds / 2
    }
}
