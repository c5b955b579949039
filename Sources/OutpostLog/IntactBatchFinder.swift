import OutpostCore

/// Where intact batches are in a damaged segment's bytes, for salvage: after damage it tries every byte as a
/// batch start. Checking a candidate's CRC by reading what its length field declares made that search
/// quadratic in the damaged length (garbage declares up to 2 GiB at many bytes; a batch's records can hold
/// bytes that look like headers). Here a candidate's CRC comes from checksums of prefixes of the bytes,
/// kept every `stride` bytes: a try costs at most two partial strides and a CRC shift, whatever it
/// declares, and only a batch that passes is read whole, once (`RecordBatchValidation.validate` has the
/// last word, so what counts as intact is exactly what recovery and `verify` say).
struct IntactBatchFinder {
    /// Bytes between stored prefix checksums: memory `bytes.count / stride * 4`, work per candidate
    /// at most `2 * stride` bytes.
    static let stride = 256

    let bytes: [UInt8]
    /// prefixes[k] = CRC-32C of bytes[0 ..< k * stride].
    private let prefixes: [UInt32]
    /// Bytes checksummed so far (the prefixes, partial strides, and whole batches that passed): the work
    /// done, which tests bound.
    private(set) var checksummedBytes: Int
    /// Positions that got as far as a CRC check.
    private(set) var candidates = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        var prefixes: [UInt32] = [0]
        prefixes.reserveCapacity(bytes.count / Self.stride + 1)
        bytes.withUnsafeBytes { buffer in
            var crc: UInt32 = 0
            var start = 0
            while start + Self.stride <= buffer.count {
                crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + Self.stride)]), continuing: crc)
                prefixes.append(crc)
                start += Self.stride
            }
        }
        self.prefixes = prefixes
        checksummedBytes = (prefixes.count - 1) * Self.stride
    }

    /// CRC-32C of bytes[0 ..< position].
    private mutating func prefix(_ position: Int) -> UInt32 {
        let stored = position / Self.stride
        let from = stored * Self.stride
        checksummedBytes += position - from
        return bytes.withUnsafeBytes { buffer in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[from..<position]), continuing: prefixes[stored])
        }
    }

    /// The header of the batch at `position` when it is intact (as `RecordBatchValidation.validate` decides).
    mutating func intactBatch(at position: Int) -> RecordBatchHeader? {
        typealias L = RecordBatchLayout
        guard position >= 0, bytes.count - position >= L.headerSize, bytes[position + L.magicPosition] == UInt8(L.magic),
            let header = try? RecordBatchHeader(bytes: bytes, at: position),
            header.batchLength >= Int32(L.headerSize - L.logOverhead), header.totalSize <= bytes.count - position,
            header.compression != nil, header.recordCount >= 0, header.lastOffsetDelta >= 0
        else { return nil }
        candidates += 1
        let coveredStart = position + L.crcCoveredStart
        let end = position + header.totalSize
        let covered = CRC32C.checksum(between: prefix(coveredStart), and: prefix(end), count: end - coveredStart)
        guard covered == header.crc else { return nil }
        checksummedBytes += header.totalSize
        return try? RecordBatchValidation.validate(bytes, at: position)
    }

    /// The first position from `start` on where an intact batch begins, with its header; nil when none does.
    mutating func nextIntactBatch(from start: Int) -> (position: Int, header: RecordBatchHeader)? {
        var position = max(start, 0)
        while position + RecordBatchLayout.headerSize <= bytes.count {
            if let header = intactBatch(at: position) { return (position, header) }
            position += 1
        }
        return nil
    }
}
