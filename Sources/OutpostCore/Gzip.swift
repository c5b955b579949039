import CZlib

/// gzip (RFC 1952) through the system zlib: Kafka's compression codec 1.
///
/// A compressor or decompressor owns a zlib stream and reuses it across batches (`deflateReset` instead
/// of a fresh 256 KiB allocation per batch). A compressor also owns its output buffer, grown to the
/// largest batch seen, so compressing a batch allocates nothing once warm. Each instance belongs to one
/// thread or actor at a time, hence not `Sendable`; make one per pipeline stage.
public final class GzipCompressor {
    public let level: Int32
    private let stream: UnsafeMutablePointer<z_stream>
    /// Where deflate writes; `outputCapacity` bytes, grown on demand, never shrunk.
    private var output: UnsafeMutableRawPointer?
    private var outputCapacity = 0

    /// - Parameter level: 1 (fastest) … 9 (smallest). Telemetry batches compress well already at 1.
    public init(level: Int32 = 1) throws(CompressionError) {
        precondition((0...9).contains(level), "zlib levels are 0…9")
        self.level = level
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // windowBits 15 + 16 asks zlib for a gzip wrapper, as librdkafka does.
        let status = outpost_deflateInit2(stream, level, 15 + 16, 8)
        guard status == Z_OK else {
            stream.deallocate()
            throw CompressionError.zlib(status: status, message: "deflateInit2 failed")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        output?.deallocate()
    }

    /// Compresses `input` into one gzip stream and hands the compressed bytes to `body`. They live in the
    /// compressor's own buffer: valid only during the call, overwritten by the next compression.
    public func withCompressed<Result>(
        _ input: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Result
    ) throws(CompressionError) -> Result {
        deflateReset(stream)
        // deflateBound guarantees one Z_FINISH call completes into this much room.
        let bound = Int(deflateBound(stream, uLong(input.count)))
        if bound > outputCapacity {
            output?.deallocate()
            output = .allocate(byteCount: bound, alignment: 16)
            outputCapacity = bound
        }
        guard let output else { throw CompressionError.zlib(status: Z_MEM_ERROR, message: "no output buffer") }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(bound)
        let status = deflate(stream, Z_FINISH)
        let produced = bound - Int(stream.pointee.avail_out)
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        guard status == Z_STREAM_END else { throw CompressionError.zlib(status: status, message: "deflate did not finish") }
        return body(UnsafeRawBufferPointer(start: output, count: produced))
    }

    /// Appends the gzip stream of `input` to `output`.
    public func compress(_ input: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]) throws(CompressionError) {
        try withCompressed(input) { output.append(contentsOf: $0) }
    }

    public func compress(_ input: [UInt8]) throws(CompressionError) -> [UInt8] {
        try input.withBytes { (buffer) throws(CompressionError) in try withCompressed(buffer) { Array($0) } }
    }
}

public final class GzipDecompressor {
    private let stream: UnsafeMutablePointer<z_stream>

    public init() throws(CompressionError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 32: detect gzip or zlib headers, as librdkafka inflates.
        let status = outpost_inflateInit2(stream, 15 + 32)
        guard status == Z_OK else {
            stream.deallocate()
            throw CompressionError.zlib(status: status, message: "inflateInit2 failed")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Appends the decompressed bytes of one gzip stream to `output`.
    ///
    /// - Parameter outputBytesMax: stop with `.tooLarge` beyond this many output bytes, so a small hostile
    ///   input cannot make us allocate gigabytes (a "zip bomb").
    public func decompress(
        _ input: UnsafeRawBufferPointer, appendingTo output: inout [UInt8], outputBytesMax: Int
    ) throws(CompressionError) {
        inflateReset(stream)
        let start = output.count
        var chunk = Swift.max(4096, Swift.min(outputBytesMax, input.count * 4))
        var status: Int32 = Z_OK
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }
        while true {
            let written = output.count - start
            if written >= outputBytesMax {
                output.removeSubrange(start...)
                throw CompressionError.tooLarge(limit: outputBytesMax)
            }
            chunk = Swift.min(chunk, outputBytesMax - written + 1)
            let chunkStart = output.count
            output.append(contentsOf: repeatElement(0, count: chunk))
            var produced = 0
            output.withUnsafeMutableBytes { out in
                stream.pointee.next_out = out.baseAddress?.advanced(by: chunkStart).assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(chunk)
                status = inflate(stream, Z_NO_FLUSH)
                produced = chunk - Int(stream.pointee.avail_out)
            }
            output.removeSubrange((chunkStart + produced)...)
            switch status {
            case Z_STREAM_END:
                if output.count - start > outputBytesMax {
                    output.removeSubrange(start...)
                    throw CompressionError.tooLarge(limit: outputBytesMax)
                }
                return
            case Z_OK:
                continue
            case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                output.removeSubrange(start...)
                throw CompressionError.truncated
            case Z_BUF_ERROR:
                chunk *= 2
                continue
            default:
                output.removeSubrange(start...)
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "inflate failed"
                throw CompressionError.zlib(status: status, message: message)
            }
        }
    }

    public func decompress(_ input: [UInt8], outputBytesMax: Int) throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        try input.withBytes { (buffer) throws(CompressionError) in
            try decompress(buffer, appendingTo: &output, outputBytesMax: outputBytesMax)
        }
        return output
    }
}

public enum CompressionError: Error, Hashable, Sendable, CustomStringConvertible {
    case zlib(status: Int32, message: String)
    /// The compressed stream ended before its end marker.
    case truncated
    /// Decompressing would exceed the caller's bound.
    case tooLarge(limit: Int)

    public var description: String {
        switch self {
        case .zlib(let status, let message): "zlib error \(status): \(message)"
        case .truncated: "compressed data ends before the end of its stream"
        case .tooLarge(let limit): "decompressed data exceeds \(limit) bytes"
        }
    }
}
