import Testing
@testable import OutpostCore

@Suite struct CRC32CTests {
    // Published CRC-32C check values: RFC 3720 (iSCSI) appendix B.4 and the standard "123456789" check.
    @Test func publishedTestVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func incrementalEqualsWholeAtEveryAlignment() {
        var generator = SeededRandom(seed: 42)
        let data = (0..<1000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(data[..<split])
            #expect(CRC32C.checksum(data[split...], continuing: first) == whole)
        }
        // Unaligned starts exercise the head loop.
        for start in 0..<9 {
            let slice = Array(data[start...])
            #expect(CRC32C.checksum(data[start...]) == CRC32C.checksum(slice))
        }
    }

    /// A range's checksum from two prefix checksums, as salvage computes it, equals reading the range.
    @Test func checksumOfARangeFromPrefixChecksums() {
        var generator = SeededRandom(seed: 43)
        let data = (0..<3000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        for (start, end) in [(0, 0), (0, 3000), (21, 61), (1, 2), (255, 2999), (1000, 1000), (7, 2048)] {
            let prefixStart = CRC32C.checksum(data[..<start])
            let prefixEnd = CRC32C.checksum(data[..<end])
            #expect(CRC32C.checksum(between: prefixStart, and: prefixEnd, count: end - start) == CRC32C.checksum(data[start..<end]), "\(start)..<\(end)")
            #expect(CRC32C.shifted(prefixStart, by: end - start) ^ CRC32C.checksum(data[start..<end]) == prefixEnd)
        }
    }

    @Test func matchesBitwiseReference() {
        func bitwise(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var generator = SeededRandom(seed: 7)
        for length in [1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 257] {
            let data = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(CRC32C.checksum(data) == bitwise(data))
        }
    }

    /// The CPU instruction path and the tables agree on every length and alignment, continuing or not;
    /// on a machine without the instruction both calls take the tables (the test says which ran).
    @Test func instructionAndTablesAgree() {
        var generator = SeededRandom(seed: 11)
        let data = (0..<70_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        data.withUnsafeBytes { all in
            for start in 0..<9 {
                for length in [0, 1, 5, 8, 9, 31, 64, 100, 4095, 65_537] {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    let seed = UInt32(truncatingIfNeeded: generator.next())
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice))
                    #expect(CRC32C.checksum(slice, continuing: seed) == CRC32C.softwareChecksum(slice, continuing: seed))
                }
            }
        }
        print("CRC-32C runs on \(CRC32C.usesHardware ? "the CPU instruction" : "tables (no instruction on this CPU)")")
    }
}

@Suite struct VarintTests {
    @Test func zigZagMatchesKafka() {
        // Kafka ByteUtils: 0→0, -1→1, 1→2, -2→3, Int32.max→0xFFFFFFFE, Int32.min→0xFFFFFFFF.
        #expect(Varint.zigZag(Int32(0)) == 0)
        #expect(Varint.zigZag(Int32(-1)) == 1)
        #expect(Varint.zigZag(Int32(1)) == 2)
        #expect(Varint.zigZag(Int32(-2)) == 3)
        #expect(Varint.zigZag(Int32.max) == 0xFFFF_FFFE)
        #expect(Varint.zigZag(Int32.min) == 0xFFFF_FFFF)
        #expect(Varint.zigZag(Int64.min) == UInt64.max)
    }

    @Test func roundTripsAndSizes() throws {
        let values: [Int64] = [0, 1, -1, 63, -64, 64, -65, 8191, 8192, Int64(Int32.max), Int64(Int32.min), Int64.max, Int64.min]
        var writer = ByteWriter()
        for value in values { writer.writeVarlong(value) }
        var reader = ByteReader(writer.bytes)
        for value in values {
            let before = reader.position
            #expect(try reader.readVarlong() == value)
            #expect(reader.position - before == Varint.encodedSize(value))
        }
        #expect(reader.isAtEnd)
        // Known encodings: 300 zig-zags to 600 = 0xD8 0x04.
        var small = ByteWriter()
        small.writeVarint(300)
        #expect(small.bytes == [0xD8, 0x04])
    }

    @Test func rejectsOverlongAndTruncated() {
        var overlong = ByteReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: ByteReaderError.self) { try overlong.readVarint() }
        var truncated = ByteReader([0x80, 0x80])
        #expect(throws: ByteReaderError.self) { try truncated.readVarlong() }
        var empty = ByteReader([])
        #expect(throws: ByteReader.Truncated.self) { try empty.readInt32() }
    }
}

@Suite struct Murmur2Tests {
    // Vectors from Kafka's UtilsTest.testMurmur2 (org.apache.kafka.common.utils).
    @Test func kafkaVectors() {
        let cases: [(String, Int32)] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ]
        for (key, expected) in cases {
            #expect(Murmur2.hash(key) == expected, "murmur2(\(key))")
        }
    }

    @Test func partitionIsPositiveModulo() {
        for key in ["gh-0001", "truck-17", "", "x"] {
            let partition = Partitioner.partition(forKey: key, partitionCount: 6)
            #expect((0..<6).contains(partition))
            #expect(partition == Int(Murmur2.hash(key) & 0x7FFF_FFFF) % 6)
        }
    }
}

/// Deterministic generator for tests: one seed reproduces a run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
