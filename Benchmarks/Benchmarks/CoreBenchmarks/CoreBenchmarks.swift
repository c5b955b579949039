// Core codec benchmarks. Each benchmark's name says how much data one iteration handles, so throughput
// (iterations/s) converts directly: see docs/BENCHMARKS.md for the figures and the conversion.
import Benchmark
import OutpostCore
import ZlibReference

/// ~100-byte realistic points, the size the issue's targets are stated for.
func samplePoints(count: Int) -> [(key: [UInt8], value: [UInt8])] {
    (0..<count).map { index in
        let line = samplePointLine(index)
        let device = "gh-\(String(format: "%04d", index % 500))"
        return (Array(device.utf8), Array(line.utf8))
    }
}

/// A ~100-byte point, e.g.
/// `greenhouse,device=gh-0007,site=north temperature=21.53,humidity=40.2,seq=100007i 1732300000007000000`.
func samplePointLine(_ index: Int) -> String {
    let device = "gh-\(String(format: "%04d", index % 500))"
    let temperature = String(format: "%.2f", 18.0 + Double((index * 37) % 900) / 100)
    let humidity = String(format: "%.1f", 35.0 + Double((index * 53) % 300) / 10)
    return "greenhouse,device=\(device),site=north temperature=\(temperature),humidity=\(humidity),seq=\(100_000 + index)i \(1_732_300_000_000_000_000 + index * 1_000_000)"
}

/// The uncompressed records section the builder produces for `points`, the same bytes zlib alone is fed.
func recordsBytes(_ points: [(key: [UInt8], value: [UInt8])]) -> [UInt8] {
    var builder = RecordBatchBuilder()
    for (index, point) in points.enumerated() {
        builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(index), key: point.key, value: point.value)
    }
    return builder.records
}

/// zlib alone: one reused deflate stream, level 1, gzip wrapper, output buffer sized by deflateBound.
final class ReferenceDeflater {
    var stream = z_stream()
    var output: [UInt8]

    init(level: Int32, inputSize: Int) {
        precondition(reference_deflateInit2(&stream, level) == Z_OK)
        output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(inputSize))))
    }

    deinit { deflateEnd(&stream) }

    func deflateAll(_ input: [UInt8]) -> Int {
        deflateReset(&stream)
        let capacity = output.count
        return input.withUnsafeBytes { inputBuffer in
            output.withUnsafeMutableBytes { outputBuffer in
                stream.next_in = UnsafeMutablePointer(mutating: inputBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(capacity)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
                return capacity - Int(stream.avail_out)
            }
        }
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal], warmupIterations: 5,
        scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 1_000_000)

    // Line-protocol parsing: 10,000 ~100-byte lines per iteration, as one buffer (the TCP/HTTP path).
    let lineCount = 10_000
    let text = Array((0..<lineCount).map(samplePointLine).joined(separator: "\n").utf8) + [0x0A]
    let averageLine = text.count / lineCount
    let parser = LineProtocolParser()
    let deviceKey = Array("device".utf8)

    Benchmark("Line protocol validate in place (\(lineCount) lines of ~\(averageLine) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            var valid = 0
            text.withUnsafeBytes { buffer in
                var cursor = LineProtocolCursor()
                while let entry = parser.nextEntry(in: buffer, cursor: &cursor, deviceTagKey: deviceKey) {
                    if case .success = entry.layout { valid += 1 }
                }
            }
            precondition(valid == lineCount)
            blackHole(valid)
        }
    }

    // Every entry decoded in place: each tag located, each field's key located and its value converted, all
    // handed to the caller (as InfluxData's decoder does); the body touches every value so none is elided.
    Benchmark("Line protocol decode in place (\(lineCount) lines of ~\(averageLine) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            var points = 0
            var checksum = 0
            text.withUnsafeBytes { buffer in
                parser.decodeEach(buffer) { outcome, _ in
                    guard case .success(let point) = outcome else { return }
                    points += 1
                    checksum &+= point.measurement.range.count &+ Int(truncatingIfNeeded: point.timestampNanoseconds ?? 0)
                    for tag in point.tags { checksum &+= tag.key.range.count &+ tag.value.range.count }
                    for field in point.fields {
                        switch field.value {
                        case .float(let number): checksum &+= Int(number)
                        case .int(let number): checksum &+= Int(truncatingIfNeeded: number)
                        case .uint(let number): checksum &+= Int(truncatingIfNeeded: number)
                        case .bool(let truth): checksum &+= truth ? 1 : 0
                        case .string(let content): checksum &+= content.range.count
                        }
                    }
                }
            }
            precondition(points == lineCount)
            blackHole(checksum)
        }
    }

    Benchmark("Line protocol parse to Point (\(lineCount) lines of ~\(averageLine) B)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(parser.parse(text, defaultTimeNanoseconds: nil))
        }
    }

    // One gateway batch: ~640 points of ~100 bytes ≈ 64 KiB of uncompressed records.
    let batchPoints = samplePoints(count: 600)
    let batchRecords = recordsBytes(batchPoints)
    let batchLabel = "\(batchRecords.count / 1024) KiB records, \(batchPoints.count) points"

    Benchmark("Batch encode+gzip L1 (\(batchLabel))") { benchmark in
        let compressor = try GzipCompressor(level: 1)
        var builder = RecordBatchBuilder(recordsCapacity: batchRecords.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for (index, point) in batchPoints.enumerated() {
                builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(index), key: point.key, value: point.value)
            }
            blackHole(try builder.build(compression: .gzip, compressor: compressor))
        }
    }

    Benchmark("zlib deflate L1 alone (\(batchLabel))") { benchmark in
        let deflater = ReferenceDeflater(level: 1, inputSize: batchRecords.count)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(deflater.deflateAll(batchRecords))
        }
    }

    var encodeBuilder = RecordBatchBuilder()
    for (index, point) in batchPoints.enumerated() {
        encodeBuilder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(index), key: point.key, value: point.value)
    }
    let gzipBatch = (try? encodeBuilder.build(compression: .gzip, compressor: try GzipCompressor(level: 1))) ?? []
    let gzipPayload = Array(gzipBatch[RecordBatchLayout.headerSize...])

    Benchmark("Batch decode+gunzip (\(batchLabel))") { benchmark in
        let decompressor = try GzipDecompressor()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try RecordBatch.decode(gzipBatch, decompressor: decompressor))
        }
    }

    Benchmark("zlib inflate alone (\(batchLabel))") { benchmark in
        let decompressor = try GzipDecompressor()
        var output: [UInt8] = []
        output.reserveCapacity(batchRecords.count * 2)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            output.removeAll(keepingCapacity: true)
            try gzipPayload.withBytes { (buffer) throws(CompressionError) in
                try decompressor.decompress(buffer, appendingTo: &output, outputBytesMax: 1 << 24)
            }
            blackHole(output)
        }
    }

    // CRC-32C over 1 MiB per iteration.
    let megabyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
    Benchmark("CRC-32C (1 MiB)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(CRC32C.checksum(megabyte))
        }
    }
}
