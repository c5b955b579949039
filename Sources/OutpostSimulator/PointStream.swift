/// The pure heart of a run: the schedule and every device model, producing points in due order. No
/// clock, no I/O: the runner decides when to take the next point; tests take them as fast as they like.
public struct PointStream: Sendable {
    public struct Generated: Sendable {
        public var fleet: Int
        public var device: Int
        public var slot: Schedule.Slot
        public var sample: Sample
        /// The point's timestamp: the run's start plus the slot's due time plus the device's clock skew.
        public var timestampNanoseconds: Int64
    }

    public let fleets: [Fleet]
    public private(set) var schedule: Schedule
    public private(set) var devices: [[DeviceModel]]
    public let startNanoseconds: Int64

    public init(fleets: [Fleet], seed: UInt64, schedule: Schedule, startNanoseconds: Int64) {
        self.fleets = fleets
        self.schedule = schedule
        self.startNanoseconds = startNanoseconds
        devices = fleets.map { fleet in
            let plan = AnomalyPlan.resolve(fleet: fleet, seed: seed)
            return (0..<fleet.deviceCount).map { DeviceModel(fleet: fleet, index: $0, seed: seed, anomalies: plan[$0]) }
        }
    }

    /// When the next slot is due, in wall seconds after the start.
    public func nextDueSeconds() -> Double { schedule.peek().dueSeconds }

    /// Takes the next slot. Its values go into `values` (`sample.seq` is nil for a silent slot).
    public mutating func next(values: inout [Double]) -> Generated {
        let slot = schedule.take()
        let sample = devices[slot.fleet][slot.device].nextSample(values: &values)
        // Unpaced runs have no wall schedule: their points are stamped with simulated time instead.
        let offset = schedule.unpaced ? slot.simulatedSeconds : slot.dueSeconds
        let timestamp = startNanoseconds + Int64(offset * 1e9) + devices[slot.fleet][slot.device].clockSkewNanoseconds
        return Generated(fleet: slot.fleet, device: slot.device, slot: slot, sample: sample, timestampNanoseconds: timestamp)
    }
}
