/// Kafka's default partitioner: murmur2 of the key bytes, made positive, modulo the partition count
/// (`org.apache.kafka.common.utils.Utils.murmur2` and `toPositive`). Using Kafka's exact function keeps
/// per-device order when the same key is produced by any Kafka client.
public enum Murmur2 {
    /// Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit value like Java's.
    public static func hash(_ key: UnsafeRawBufferPointer) -> Int32 {
        let m: UInt32 = 0x5BD1_E995
        let r: UInt32 = 24
        let length = key.count
        var h: UInt32 = 0x9747_B28C ^ UInt32(truncatingIfNeeded: length)
        let wordCount = length / 4
        for wordIndex in 0..<wordCount {
            let base = wordIndex * 4
            var k = UInt32(key[base]) | UInt32(key[base + 1]) << 8 | UInt32(key[base + 2]) << 16
                | UInt32(key[base + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = wordCount * 4
        switch length % 4 {
        case 3:
            h ^= UInt32(key[tail + 2]) << 16
            h ^= UInt32(key[tail + 1]) << 8
            h ^= UInt32(key[tail])
            h = h &* m
        case 2:
            h ^= UInt32(key[tail + 1]) << 8
            h ^= UInt32(key[tail])
            h = h &* m
        case 1:
            h ^= UInt32(key[tail])
            h = h &* m
        default:
            break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    public static func hash(_ key: [UInt8]) -> Int32 {
        key.withUnsafeBytes { hash($0) }
    }

    public static func hash(_ key: String) -> Int32 {
        var key = key
        return key.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }
}

/// Kafka's default partitioner for keyed records.
public enum Partitioner {
    public static func partition(forKey key: UnsafeRawBufferPointer, partitionCount: Int) -> Int {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return Int(Murmur2.hash(key) & 0x7FFF_FFFF) % partitionCount
    }

    public static func partition(forKey key: String, partitionCount: Int) -> Int {
        var key = key
        return key.withUTF8 { partition(forKey: UnsafeRawBufferPointer($0), partitionCount: partitionCount) }
    }

    public static func partition(forKey key: [UInt8], partitionCount: Int) -> Int {
        key.withUnsafeBytes { partition(forKey: $0, partitionCount: partitionCount) }
    }
}
