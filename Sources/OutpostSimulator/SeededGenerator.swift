/// xoshiro256** seeded through SplitMix64: fast, small, and the same on every platform, so a seed
/// printed by one run replays exactly on another. Passed around as a value; there is no global generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    public init(seed: UInt64) {
        var splitMix = seed
        func next() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var mixed = splitMix
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            return mixed ^ (mixed >> 31)
        }
        s0 = next()
        s1 = next()
        s2 = next()
        s3 = next()
    }

    /// An independent stream for one purpose (a device, a sensor, the anomaly plan): the seed mixed with
    /// labels. Streams do not depend on how many numbers other streams drew, so a device's readings stay
    /// the same whatever the rate, the transport or the other devices do.
    public init(seed: UInt64, stream labels: UInt64...) {
        var mixed = seed
        for label in labels {
            mixed = SeededGenerator.mix(mixed ^ SeededGenerator.mix(label &+ 0x632B_E59B_D9B4_E019))
        }
        self.init(seed: mixed)
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let shifted = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= shifted
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Standard normal (Box–Muller; the second value of each pair is dropped to keep the generator a
    /// plain value without hidden state).
    public mutating func nextGaussian() -> Double {
        var u1 = nextUnit()
        if u1 < 1e-300 { u1 = 1e-300 }
        let u2 = nextUnit()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// FNV-1a of a string: a stable label for names (Swift's Hasher is seeded per process).
    public static func label(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var mixed = value
        mixed = (mixed ^ (mixed >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        mixed = (mixed ^ (mixed >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return mixed ^ (mixed >> 33)
    }

    private func rotateLeft(_ value: UInt64, _ count: UInt64) -> UInt64 {
        (value << count) | (value >> (64 - count))
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ value: Double) -> Double { Glibc.log(value) }
@inline(__always) func _cos(_ value: Double) -> Double { Glibc.cos(value) }
@inline(__always) func _sin(_ value: Double) -> Double { Glibc.sin(value) }
#else
import Darwin
@inline(__always) func _log(_ value: Double) -> Double { Darwin.log(value) }
@inline(__always) func _cos(_ value: Double) -> Double { Darwin.cos(value) }
@inline(__always) func _sin(_ value: Double) -> Double { Darwin.sin(value) }
#endif
