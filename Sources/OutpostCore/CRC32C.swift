import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Kafka's RecordBatch v2 uses.
///
/// With the CPU's CRC-32C instruction (x86-64 SSE4.2, ARMv8 CRC) when it has one: every appended batch is
/// checked, and the instruction is several times faster than tables. Otherwise slicing-by-8: eight
/// 256-entry tables let the loop consume 8 bytes per step.
public enum CRC32C {
    /// Whether checksums run on the CPU's CRC-32C instruction (else on tables).
    public static let usesHardware = outpost_crc32c_hardware_available() != 0

    static let polynomial: UInt32 = 0x82F6_3B78

    /// tables[k * 256 + b] = CRC of byte b followed by k zero bytes.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
            tables[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(slice - 1) * 256 + byte]
                tables[slice * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// Checksum of `bytes`, continuing from `crc` (the value returned for the preceding bytes; 0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return softwareChecksum(bytes, continuing: crc) }
        return ~outpost_crc32c_hardware_update(~crc, base, bytes.count)
    }

    /// The table implementation, also what tests compare the instruction's results with.
    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var state = ~crc
        tables.withUnsafeBufferPointer { table in
            guard let tableBase = table.baseAddress, var pointer = bytes.baseAddress else { return }
            var remaining = bytes.count
            // Head: single bytes until the pointer is 8-byte aligned.
            while remaining > 0 && Int(bitPattern: pointer) & 7 != 0 {
                state = (state >> 8) ^ tableBase[Int((state ^ UInt32(pointer.load(as: UInt8.self))) & 0xFF)]
                pointer += 1
                remaining -= 1
            }
            while remaining >= 8 {
                let word = UInt64(littleEndian: pointer.load(as: UInt64.self))
                let low = UInt32(truncatingIfNeeded: word) ^ state
                let high = UInt32(truncatingIfNeeded: word >> 32)
                state = tableBase[7 * 256 + Int(low & 0xFF)]
                    ^ tableBase[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ tableBase[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ tableBase[4 * 256 + Int(low >> 24)]
                    ^ tableBase[3 * 256 + Int(high & 0xFF)]
                    ^ tableBase[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ tableBase[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ tableBase[Int(high >> 24)]
                pointer += 8
                remaining -= 8
            }
            while remaining > 0 {
                state = (state >> 8) ^ tableBase[Int((state ^ UInt32(pointer.load(as: UInt8.self))) & 0xFF)]
                pointer += 1
                remaining -= 1
            }
        }
        return ~state
    }

    public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }
}

/// CRC arithmetic: the checksum of a range from checksums of prefixes, without reading the range again
/// (zlib's `crc32_combine`, for CRC-32C). Log salvage tries a candidate batch at every byte after damage;
/// with these a try costs a few hundred operations whatever length the candidate declares, instead of a
/// pass over that length (which made the search quadratic).
extension CRC32C {
    /// x^(2^k) mod P for k in 0..<67 (enough for any `Int` length times 8), reflected (bit 31 is x^0).
    static let powersOfX: [UInt32] = {
        var powers: [UInt32] = []
        var power: UInt32 = 1 << 30  // x^1
        for _ in 0..<67 {
            powers.append(power)
            power = multiplyModP(power, power)
        }
        return powers
    }()

    /// a·b mod P over GF(2), reflected (zlib's `multmodp`).
    static func multiplyModP(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var factor = b
        for bit in 0..<32 {
            if a & (UInt32(1) << (31 - bit)) != 0 { product ^= factor }
            factor = factor & 1 != 0 ? (factor >> 1) ^ polynomial : factor >> 1
        }
        return product
    }

    /// `crc` carried across `count` more bytes' worth of degree: the term that the checksum of A gives in
    /// the checksum of A followed by `count` bytes. `checksum(A + B) == shifted(checksum(A), by: B.count) ^ checksum(B)`.
    public static func shifted(_ crc: UInt32, by count: Int) -> UInt32 {
        precondition(count >= 0, "a negative length")
        // x^(8·count): the bits of count, each selecting x^(8·2^k) = x^(2^(k+3)).
        var power: UInt32 = 1 << 31  // x^0
        var rest = UInt64(count)
        var k = 3
        while rest != 0 {
            if rest & 1 != 0 { power = multiplyModP(powersOfX[k], power) }
            rest >>= 1
            k += 1
        }
        return multiplyModP(power, crc)
    }

    /// Checksum of the bytes between two prefixes of the same bytes: `prefixEnd` the checksum up to the range's
    /// end, `prefixStart` up to its start, `count` its length.
    public static func checksum(between prefixStart: UInt32, and prefixEnd: UInt32, count: Int) -> UInt32 {
        prefixEnd ^ shifted(prefixStart, by: count)
    }
}
