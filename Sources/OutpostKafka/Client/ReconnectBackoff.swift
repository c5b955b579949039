/// Exponential backoff with jitter: how long to wait before the next attempt after consecutive failures.
public struct KafkaBackoffPolicy: Hashable, Sendable {
    /// Wait after the first failure (librdkafka's reconnect.backoff.ms is 100 ms).
    public var initial: Duration
    /// Upper bound on any wait (librdkafka's reconnect.backoff.max.ms is 10 s).
    public var maximum: Duration
    /// Each further failure multiplies the wait by this.
    public var multiplier: Double
    /// The wait is spread uniformly over ±this fraction, so clients that lost the same broker at the same
    /// moment do not all come back at the same moment.
    public var jitterFraction: Double

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(10), multiplier: Double = 2, jitterFraction: Double = 0.2) {
        precondition(initial > .zero && maximum >= initial, "backoff bounds must be positive and ordered")
        precondition(multiplier >= 1, "backoff must not shrink")
        precondition((0...1).contains(jitterFraction), "jitter is a fraction")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitterFraction = jitterFraction
    }

    /// The un-jittered wait after `failures` consecutive failures (≥ 1).
    public func baseDelay(afterFailures failures: Int) -> Duration {
        let exponent = Double(max(0, failures - 1))
        let seconds = Self.seconds(initial) * pow(multiplier, exponent)
        return Swift.min(maximum, Self.duration(seconds: Swift.min(seconds, Self.seconds(maximum))))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func duration(seconds: Double) -> Duration { .nanoseconds(Int64(seconds * 1e9)) }

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        // Integer exponents only; bounded so a long outage cannot overflow.
        var result = 1.0
        var remaining = Int(Swift.min(exponent, 64))
        while remaining > 0 {
            result *= base
            remaining -= 1
        }
        return result
    }
}

/// A small seeded generator (SplitMix64) for jitter: one seed reproduces a run; no global RNG is read.
public struct KafkaJitterGenerator: RandomNumberGenerator, Hashable, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A seed from text (FNV-1a), for seeds derived from a client id or group id.
    public static func seed(from text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A new generator for a sub-component, derived from this one (so each connection has its own stream,
    /// still decided by the one seed).
    public mutating func split() -> KafkaJitterGenerator { KafkaJitterGenerator(seed: next()) }
}

/// Consecutive failures of one thing (a broker connection, a retried request) and the wait before the
/// next attempt. Pure: the caller supplies the time and sleeps.
public struct ReconnectBackoff: Hashable, Sendable {
    public let policy: KafkaBackoffPolicy
    public private(set) var consecutiveFailures = 0
    private var generator: KafkaJitterGenerator

    public init(policy: KafkaBackoffPolicy, generator: KafkaJitterGenerator) {
        self.policy = policy
        self.generator = generator
    }

    /// Records a failure and returns how long to wait before the next attempt.
    public mutating func failed() -> Duration {
        consecutiveFailures = Swift.min(consecutiveFailures + 1, 1_000)
        let base = KafkaBackoffPolicy.seconds(policy.baseDelay(afterFailures: consecutiveFailures))
        let spread = policy.jitterFraction * (2 * Double.random(in: 0..<1, using: &generator) - 1)
        let jittered = Swift.max(0, base * (1 + spread))
        return Swift.min(policy.maximum, KafkaBackoffPolicy.duration(seconds: jittered))
    }

    /// Records a success: the next failure waits `policy.initial` (jittered) again.
    public mutating func succeeded() { consecutiveFailures = 0 }
}
