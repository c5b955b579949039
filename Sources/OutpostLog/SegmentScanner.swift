import OutpostCore

/// Walks the batches of a segment file in large reads, validating each one (length, magic and, when asked,
/// CRC-32C). Recovery, index rebuilds and `outpost log verify` are all this walk with different callbacks.
struct SegmentScanner {
    /// Bytes per read. 1 MiB amortises system calls without holding much memory.
    static let chunkBytes = 1 << 20

    struct Outcome {
        /// End of the last valid batch: where the valid prefix of the file ends.
        var validEnd: Int
        var batchCount: Int
        /// Set when the walk stopped before the end of the file, with the reason.
        var stopReason: String?
        var fileSize: Int
    }

    let file: SegmentFile
    let batchBytesMax: Int
    let verifyChecksums: Bool

    /// Calls `visit(header, position)` for each valid batch from `start` on; stops at the first invalid one,
    /// or at the first batch for which `visit` returns a reason to reject it (e.g. an offset that does not
    /// continue the previous batch's).
    func scan(from start: Int, visit: (RecordBatchHeader, Int) -> String?) throws(LogError) -> Outcome {
        let fileSize = try file.size()
        var position = start
        var count = 0
        var chunk: [UInt8] = []
        var chunkStart = start
        while position < fileSize {
            // Make sure the chunk holds at least the header at `position`.
            if position + RecordBatchLayout.headerSize > chunkStart + chunk.count {
                chunkStart = position
                chunk = try file.read(min(Self.chunkBytes, fileSize - position), at: position)
            }
            let offsetInChunk = position - chunkStart
            guard chunk.count - offsetInChunk >= RecordBatchLayout.logOverhead + 5 else {
                return Outcome(validEnd: position, batchCount: count, stopReason: "torn batch header (\(fileSize - position) bytes at the end)", fileSize: fileSize)
            }
            let header: RecordBatchHeader
            do {
                header = try RecordBatchHeader(bytes: chunk, at: offsetInChunk)
            } catch {
                return Outcome(validEnd: position, batchCount: count, stopReason: "torn batch header (\(fileSize - position) bytes at the end)", fileSize: fileSize)
            }
            let total = header.totalSize
            guard header.magic == RecordBatchLayout.magic else {
                return Outcome(validEnd: position, batchCount: count, stopReason: "bad magic \(header.magic)", fileSize: fileSize)
            }
            guard header.batchLength >= Int32(RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead), total <= batchBytesMax else {
                return Outcome(validEnd: position, batchCount: count, stopReason: "implausible batch length \(header.batchLength)", fileSize: fileSize)
            }
            guard position + total <= fileSize else {
                return Outcome(validEnd: position, batchCount: count, stopReason: "torn batch: \(total) bytes declared, \(fileSize - position) present", fileSize: fileSize)
            }
            if position + total > chunkStart + chunk.count {
                chunkStart = position
                chunk = try file.read(max(Self.chunkBytes, total), at: position)
                // Fewer bytes than the size said: the file shrank while being scanned (another process
                // cut it). Stop here rather than read the same short chunk for ever.
                guard chunk.count >= total else {
                    return Outcome(validEnd: position, batchCount: count, stopReason: "torn batch: \(total) bytes declared, \(chunk.count) readable", fileSize: fileSize)
                }
                continue
            }
            if verifyChecksums {
                do {
                    _ = try RecordBatchValidation.validate(chunk, at: offsetInChunk)
                } catch {
                    return Outcome(validEnd: position, batchCount: count, stopReason: "\(error)", fileSize: fileSize)
                }
            }
            if let rejection = visit(header, position) {
                return Outcome(validEnd: position, batchCount: count, stopReason: rejection, fileSize: fileSize)
            }
            position += total
            count += 1
        }
        return Outcome(validEnd: position, batchCount: count, stopReason: nil, fileSize: fileSize)
    }

    /// Counts how many batch-shaped units (by their length fields alone) follow `position`: a best-effort
    /// figure for reports of what a truncation cut.
    func countBatchShapes(from position: Int) throws(LogError) -> Int {
        let fileSize = try file.size()
        var position = position
        var count = 0
        while position + RecordBatchLayout.logOverhead <= fileSize, count < 1_000_000 {
            let lengthBytes = try file.read(4, at: position + RecordBatchLayout.batchLengthPosition)
            guard lengthBytes.count == 4 else { break }
            let length = Int(Int32(bigEndian: lengthBytes.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
            count += 1
            guard length >= RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead, length <= batchBytesMax else { break }
            position += length + RecordBatchLayout.logOverhead
        }
        return max(count, position < fileSize ? 1 : 0)
    }
}
