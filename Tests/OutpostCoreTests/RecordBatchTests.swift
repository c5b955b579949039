import Testing
@testable import OutpostCore

@Suite struct RecordBatchTests {
    func sampleRecords(count: Int, seed: UInt64 = 1) -> [Record] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { index in
            let device = "gh-\(index % 7)"
            let value = "greenhouse,device=\(device) temperature=\(Double(random.next() % 4000) / 100),seq=\(index)i 1732300000\(index)"
            return Record(
                offset: Int64(index), timestampMilliseconds: 1_732_300_000_000 + Int64(random.next() % 2000) - 1000,
                key: Array(device.utf8), value: Array(value.utf8),
                headers: index % 3 == 0 ? [RecordHeader(key: "gateway", value: Array("edge-1".utf8)), RecordHeader(key: "null", value: nil)] : [])
        }
    }

    @Test(arguments: [CompressionCodec.none, .gzip])
    func roundTrip(codec: CompressionCodec) throws {
        let records = sampleRecords(count: 50)
        let producer = ProducerIdentity(producerId: 1000, producerEpoch: 3, baseSequence: 42)
        let bytes = try RecordBatch.encode(records: records, producer: producer, compression: codec)
        let batch = try RecordBatch.decode(bytes)
        #expect(batch.header.compression == codec)
        #expect(batch.header.recordCount == 50)
        #expect(batch.header.lastOffsetDelta == 49)
        #expect(batch.header.producer == producer)
        #expect(batch.header.baseTimestamp == records[0].timestampMilliseconds)
        #expect(batch.header.maxTimestamp == records.map(\.timestampMilliseconds).max())
        #expect(batch.records == records)
    }

    @Test func nullKeyAndValue() throws {
        let records = [Record(offset: 0, timestampMilliseconds: 5, key: nil, value: nil), Record(offset: 1, timestampMilliseconds: 4, key: [], value: [])]
        let batch = try RecordBatch.decode(try RecordBatch.encode(records: records))
        #expect(batch.records == records)
    }

    @Test func rewritingOffsetAndEpochKeepsCRC() throws {
        var bytes = try RecordBatch.encode(records: sampleRecords(count: 5), compression: .gzip)
        let crcBefore = try RecordBatchHeader(bytes: bytes).crc
        RecordBatchValidation.setBaseOffset(1_000_000, in: &bytes)
        RecordBatchValidation.setPartitionLeaderEpoch(7, in: &bytes)
        let batch = try RecordBatch.decode(bytes)
        #expect(batch.header.baseOffset == 1_000_000)
        #expect(batch.header.partitionLeaderEpoch == 7)
        #expect(batch.header.crc == crcBefore)
        #expect(batch.records.map(\.offset) == Array(1_000_000..<1_000_005))
    }

    @Test func rewritingProducerRecomputesCRC() throws {
        var bytes = try RecordBatch.encode(records: sampleRecords(count: 5), compression: .gzip)
        let identity = ProducerIdentity(producerId: 77, producerEpoch: 2, baseSequence: 900)
        try RecordBatchValidation.setProducer(identity, in: &bytes)
        let batch = try RecordBatch.decode(bytes)
        #expect(batch.header.producer == identity)
    }

    @Test func detectsEverySingleByteFlipInsideTheCRCRange() throws {
        let bytes = try RecordBatch.encode(records: sampleRecords(count: 3), compression: .gzip)
        for position in RecordBatchLayout.crcCoveredStart..<bytes.count {
            var damaged = bytes
            damaged[position] ^= 0x5A
            #expect(throws: RecordBatchError.self) { try RecordBatchValidation.validate(damaged) }
        }
    }

    @Test func rejectsTruncationAndBadMagic() throws {
        let bytes = try RecordBatch.encode(records: sampleRecords(count: 3))
        for cut in [0, 10, 60, bytes.count - 1] {
            #expect(throws: RecordBatchError.self) { try RecordBatchValidation.validate(Array(bytes[..<cut])) }
        }
        var badMagic = bytes
        badMagic[RecordBatchLayout.magicPosition] = 1
        #expect(throws: RecordBatchError.unsupportedMagic(1)) { try RecordBatchValidation.validate(badMagic) }
    }

    @Test func iteratorStopsAtFirstDamagedBatch() throws {
        var log: [UInt8] = []
        var boundaries: [Int] = []
        for index in 0..<4 {
            log += try RecordBatch.encode(records: sampleRecords(count: 3, seed: UInt64(index)), compression: .gzip)
            boundaries.append(log.count)
        }
        let intact = RecordBatchIterator(log)
        #expect(intact.map(\.range.upperBound) == boundaries)
        log[boundaries[1] + 30] ^= 1  // inside the third batch's CRC range
        var damaged = RecordBatchIterator(log)
        var seen = 0
        while damaged.next() != nil { seen += 1 }
        #expect(seen == 2)
        #expect(damaged.position == boundaries[1])
        #expect(damaged.stopReason != nil)
    }

    @Test func builderReusesItsBuffer() throws {
        var builder = RecordBatchBuilder()
        builder.append(timestampMilliseconds: 10, key: Array("a".utf8), value: Array("v".utf8))
        let first = try builder.build()
        #expect(builder.isEmpty)
        builder.append(timestampMilliseconds: 20, key: Array("b".utf8), value: Array("w".utf8))
        let second = try RecordBatch.decode(try builder.build())
        #expect(second.records.map(\.key) == [Array("b".utf8)])
        #expect(try RecordBatch.decode(first).records.count == 1)
    }

    @Test func randomGarbageNeverCrashesTheDecoder() throws {
        var random = SeededRandom(seed: 99)
        let valid = try RecordBatch.encode(records: sampleRecords(count: 4), compression: .gzip)
        let uncompressed = try RecordBatch.encode(records: sampleRecords(count: 4))
        for round in 0..<3000 {
            var bytes: [UInt8]
            switch round % 3 {
            case 0:
                bytes = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                bytes = round % 2 == 0 ? valid : uncompressed
                for _ in 0..<(1 + random.next() % 4) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            default:
                bytes = Array(uncompressed[..<Int(random.next() % UInt64(uncompressed.count))])
            }
            // Re-sign mutated bytes half the time so decoding gets past the CRC into the records.
            if round % 2 == 0, bytes.count >= RecordBatchLayout.headerSize {
                let crc = CRC32C.checksum(bytes[RecordBatchLayout.crcCoveredStart...])
                bytes.withUnsafeMutableBytes { $0.storeBytes(of: crc.bigEndian, toByteOffset: RecordBatchLayout.crcPosition, as: UInt32.self) }
            }
            _ = try? RecordBatch.decode(bytes, uncompressedBytesMax: 1 << 20)
        }
    }
}

@Suite struct GzipTests {
    @Test func roundTripAndBounds() throws {
        let compressor = try GzipCompressor(level: 1)
        let decompressor = try GzipDecompressor()
        let text = Array(String(repeating: "greenhouse,device=gh-1 temperature=21.5 1\n", count: 2000).utf8)
        let compressed = try compressor.compress(text)
        #expect(compressed.count < text.count / 10)
        #expect(compressed.prefix(2) == [0x1F, 0x8B])  // gzip magic, as Kafka's codec 1 requires
        #expect(try decompressor.decompress(compressed, outputBytesMax: 1 << 20) == text)
        #expect(throws: CompressionError.tooLarge(limit: 1000)) { try decompressor.decompress(compressed, outputBytesMax: 1000) }
        #expect(throws: CompressionError.self) { try decompressor.decompress(Array(compressed.dropLast(12)), outputBytesMax: 1 << 20) }
        // The same stream objects keep working after errors.
        #expect(try decompressor.decompress(try compressor.compress([1, 2, 3]), outputBytesMax: 10) == [1, 2, 3])
        #expect(try decompressor.decompress(try compressor.compress([]), outputBytesMax: 10) == [])
    }
}
