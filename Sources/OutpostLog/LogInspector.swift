import Foundation
import OutpostCore

/// Read-only inspection of log directories for `outpost log dump|verify` and a salvage that copies every
/// intact batch of a damaged log into a new one. Nothing here opens a `PartitionLog` (which would recover,
/// and so truncate, the very damage being inspected).
public enum LogInspector {
    /// A problem found in a partition, with where it is.
    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        public var path: String
        public var position: Int?
        public var message: String
        public var description: String { "\(path)\(position.map { " at byte \($0)" } ?? ""): \(message)" }
    }

    public struct PartitionCheck: Sendable {
        public var directory: String
        public var segmentCount = 0
        public var batchCount = 0
        public var recordCount = 0
        public var bytes = 0
        public var firstOffset: Offset?
        public var nextOffset: Offset?
        public var problems: [Problem] = []
        public var isIntact: Bool { problems.isEmpty }
    }

    /// The `.log` files of a partition directory, by base offset.
    public static func segmentFiles(in directory: String) throws(LogError) -> [(base: Offset, path: String)] {
        try Directory.entries(directory).compactMap { name in
            SegmentNames.baseOffset(ofLogFile: name).map { ($0, directory + "/" + name) }
        }.sorted { $0.base < $1.base }
    }

    /// Checks every batch (length, magic, CRC-32C, codec), that offsets run on without overlap from batch
    /// to batch and segment to segment, and that every index entry points at the batch it claims.
    public static func verify(partitionDirectory directory: String, batchBytesMax: Int = 64 << 20) throws(LogError) -> PartitionCheck {
        var check = PartitionCheck(directory: directory)
        let files = try segmentFiles(in: directory)
        check.segmentCount = files.count
        let checkpoint = Checkpoint.readWithDeclaredGaps(directory: directory)
        var expectedNext: Offset?
        for (base, path) in files {
            let file = try SegmentFile(path: path, create: false)
            let scanner = SegmentScanner(file: file, batchBytesMax: batchBytesMax, verifyChecksums: true)
            var batchStarts: [Int: Int64] = [:]
            var previousNext: Offset? = nil
            var offsetProblems: [Problem] = []
            let recycled = checkpoint.segments[base]?.recycled == true
            let outcome = try scanner.scan(from: 0) { header, position in
                // A recycled file still holds its previous contents past its new batches until it is sealed,
                // closed or recovered: batches from below this segment's base, not part of the log.
                if recycled, Offset(header.lastOffset) < base {
                    return "the old contents of a recycled segment file follow (offset \(header.baseOffset)); the next open cuts them"
                }
                batchStarts[position] = header.baseOffset
                check.batchCount += 1
                check.recordCount += Int(header.recordCount)
                check.bytes += header.totalSize
                if check.firstOffset == nil { check.firstOffset = Offset(header.baseOffset) }
                if let previousNext, Offset(header.baseOffset) < previousNext {
                    offsetProblems.append(Problem(path: path, position: position, message: "batch at offset \(header.baseOffset) overlaps the previous batch (next offset \(previousNext))"))
                }
                if previousNext == nil, Offset(header.baseOffset) < base {
                    offsetProblems.append(Problem(path: path, position: position, message: "first batch offset \(header.baseOffset) is below the segment's base offset \(base)"))
                }
                let expected = previousNext ?? expectedNext ?? base
                if Offset(header.baseOffset) > expected, !checkpoint.allowsDiscontinuity(from: expected.rawValue, to: header.baseOffset) {
                    offsetProblems.append(Problem(path: path, position: position, message: "offsets \(expected)…\(header.baseOffset - 1) are missing and no salvage declared them lost"))
                }
                previousNext = Offset(header.nextOffset)
                return nil
            }
            check.problems += offsetProblems
            if let reason = outcome.stopReason {
                check.problems.append(Problem(path: path, position: outcome.validEnd, message: "\(reason); \(outcome.fileSize - outcome.validEnd) bytes from here are not readable"))
            }
            if let expected = expectedNext, base < expected {
                check.problems.append(Problem(path: path, position: nil, message: "segment base offset \(base) overlaps the previous segment (which ends at \(expected))"))
            }
            expectedNext = previousNext ?? expectedNext ?? base
            check.nextOffset = expectedNext
            check.problems += verifyIndexes(base: base, directory: directory, batchStarts: batchStarts)
        }
        return check
    }

    static func verifyIndexes(base: Offset, directory: String, batchStarts: [Int: Int64]) -> [Problem] {
        var problems: [Problem] = []
        let indexPath = directory + "/" + SegmentNames.index(base)
        if Directory.exists(indexPath), let file = try? SegmentFile(path: indexPath, create: false),
            let bytes = try? file.read((try? file.size()) ?? 0, at: 0)
        {
            if bytes.count % OffsetIndexEntry.size != 0 {
                problems.append(Problem(path: indexPath, position: bytes.count, message: "size \(bytes.count) is not a whole number of entries"))
            }
            var reader = ByteReader(bytes)
            var previous: (UInt32, UInt32)?
            while reader.remaining >= OffsetIndexEntry.size, problems.count < 10 {
                let entryPosition = reader.position
                guard let relative = try? reader.readUInt32(), let position = try? reader.readUInt32() else { break }
                if let (lastRelative, lastPosition) = previous, relative <= lastRelative || position <= lastPosition {
                    problems.append(Problem(path: indexPath, position: entryPosition, message: "entries out of order"))
                }
                if batchStarts[Int(position)] != base.rawValue + Int64(relative) {
                    problems.append(Problem(path: indexPath, position: entryPosition, message: "entry for offset \(base.rawValue + Int64(relative)) points at byte \(position), where no such batch starts"))
                }
                previous = (relative, position)
            }
        }
        let timePath = directory + "/" + SegmentNames.timeIndex(base)
        if Directory.exists(timePath), let file = try? SegmentFile(path: timePath, create: false),
            let bytes = try? file.read((try? file.size()) ?? 0, at: 0)
        {
            let (_, sane) = SegmentIndexes.decodeTimes(bytes)
            if !sane { problems.append(Problem(path: timePath, position: nil, message: "time index entries are not increasing or not whole")) }
        }
        return problems
    }

    /// One batch as `outpost log dump` prints it.
    public struct DumpedBatch: Sendable {
        public var path: String
        public var position: Int
        public var header: RecordBatchHeader
        public var crcValid: Bool
        /// Decoded records when asked for and decodable.
        public var records: [Record]?
        public var decodeError: String?
    }

    /// Walks the batches of a segment file, a partition directory or a data directory, in order.
    /// Stops in each segment at the first unreadable batch (reported through `onProblem`).
    public static func dump(
        path: String, decodeRecords: Bool, visit: (DumpedBatch) -> Void, onProblem: (Problem) -> Void
    ) throws(LogError) {
        var files: [String] = []
        if path.hasSuffix(".log") {
            files = [path]
        } else if !LogLayout.partitions(in: path).isEmpty {
            for partition in LogLayout.partitions(in: path) {
                files += try segmentFiles(in: partition.directory).map(\.path)
            }
        } else {
            files = try segmentFiles(in: path).map(\.path)
        }
        let decompressor = try? GzipDecompressor()
        for file in files {
            let segment = try SegmentFile(path: file, create: false)
            let size = try segment.size()
            let base = SegmentNames.baseOffset(ofLogFile: String(file.split(separator: "/").last ?? ""))
            var position = 0
            while position < size {
                let headerBytes = try segment.read(RecordBatchLayout.headerSize, at: position)
                guard let header = try? RecordBatchHeader(bytes: headerBytes), header.magic == RecordBatchLayout.magic,
                    header.totalSize >= RecordBatchLayout.headerSize, position + header.totalSize <= size
                else {
                    onProblem(Problem(path: file, position: position, message: "unreadable batch; \(size - position) bytes not shown"))
                    break
                }
                // A batch wholly below the segment's base offset is not the segment's: the old contents of a
                // recycled file that a crash left past its last batch (the next open cuts them).
                if let base, Offset(header.lastOffset) < base {
                    onProblem(Problem(path: file, position: position, message: "old contents of a recycled segment file (offset \(header.baseOffset) is below the segment's base \(base)); \(size - position) bytes not shown"))
                    break
                }
                let bytes = try segment.read(header.totalSize, at: position)
                var dumped = DumpedBatch(path: file, position: position, header: header, crcValid: true)
                do {
                    _ = try RecordBatchValidation.validate(bytes)
                } catch {
                    dumped.crcValid = false
                    dumped.decodeError = "\(error)"
                }
                if decodeRecords && dumped.crcValid {
                    do {
                        dumped.records = try RecordBatch.decode(bytes, decompressor: decompressor).records
                    } catch {
                        dumped.decodeError = "\(error)"
                    }
                }
                visit(dumped)
                position += header.totalSize
            }
        }
    }

    public struct SalvageReport: Sendable {
        public var savedBatches = 0
        public var savedBytes = 0
        public var lostBytes = 0
        /// Damaged regions: where, how long, and the offsets that could not be saved (when known).
        public var lostRegions: [(path: String, position: Int, length: Int, offsets: ClosedRange<Int64>?)] = []
        /// Bytes checksummed to tell intact batches from damage: the work done, which tests bound.
        var searchChecksummedBytes = 0
    }

    /// Copies every intact batch of the partition at `source` into a new partition directory
    /// `destination`, keeping offsets and segment boundaries; damaged regions are skipped by searching for
    /// the next position where a batch with a valid CRC begins.
    public static func salvage(
        partitionDirectory source: String, into destination: String, batchBytesMax: Int = 64 << 20,
        createdMilliseconds: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) throws(LogError) -> SalvageReport {
        var report = SalvageReport()
        try Directory.create(destination)
        guard (try Directory.entries(destination)).allSatisfy({ !$0.hasSuffix(".log") }) else {
            throw .invalidConfiguration("salvage destination \(destination) already holds segments")
        }
        let files = try segmentFiles(in: source)
        var lastBase: Offset = 0
        for (index, (base, path)) in files.enumerated() {
            // Damage with no valid batch after it in this file runs to the next segment's base: those offsets
            // are lost too, and must be declared, or the salvaged log opens with a gap it calls damage.
            let nextBase = index + 1 < files.count ? files[index + 1].base.rawValue : nil
            let bytes = try SegmentFile(path: path, create: false).read(try SegmentFile(path: path, create: false).size(), at: 0)
            var saved: [UInt8] = []
            var position = 0
            var lastGoodNext: Int64?
            // Checks candidates in bounded work each, whatever length they declare (see `IntactBatchFinder`).
            var finder = IntactBatchFinder(bytes)
            defer { report.searchChecksummedBytes += finder.checksummedBytes }
            while position < bytes.count {
                if let header = finder.intactBatch(at: position), header.totalSize <= batchBytesMax {
                    if header.lastOffset < base.rawValue || (lastGoodNext.map { header.baseOffset < $0 } ?? false) {
                        // Offsets going backwards: a recycled file's old contents, never part of this segment.
                        let first = lastGoodNext ?? base.rawValue
                        let lostOffsets = nextBase.flatMap { $0 > first ? first...($0 - 1) : nil }
                        report.lostBytes += bytes.count - position
                        report.lostRegions.append((path, position, bytes.count - position, lostOffsets))
                        break
                    }
                    saved += bytes[position..<(position + header.totalSize)]
                    report.savedBatches += 1
                    report.savedBytes += header.totalSize
                    lastGoodNext = header.nextOffset
                    position += header.totalSize
                    continue
                }
                // Damaged: find the next valid batch start.
                let resumed = finder.nextIntactBatch(from: position + 1)
                let resumeHeader = resumed?.header
                let end = resumed?.position ?? bytes.count
                let lostOffsets: ClosedRange<Int64>? = {
                    guard let first = lastGoodNext ?? (position == 0 ? base.rawValue : nil) else { return nil }
                    guard let after = resumeHeader?.baseOffset ?? nextBase else { return nil }
                    return after > first ? first...(after - 1) : nil
                }()
                report.lostBytes += end - position
                report.lostRegions.append((path, position, end - position, lostOffsets))
                position = end
            }
            let target = destination + "/" + SegmentNames.log(base)
            let file = try SegmentFile(path: target, create: true)
            try saved.withBytes { (buffer) throws(LogError) in try file.writeAll(buffer, at: 0) }
            try file.synchronize()
            lastBase = base
        }
        // Everything written is fsynced. The checkpoint declares the lost offset ranges as gaps, so opening
        // the salvaged log keeps them instead of treating them as damage.
        var checkpoint = Checkpoint()
        checkpoint.recoveryPoint = lastBase
        checkpoint.gaps = report.lostRegions.compactMap(\.offsets)
        for (base, _) in files { checkpoint.segments[base] = Checkpoint.SegmentEntry(createdMilliseconds: createdMilliseconds) }
        try checkpoint.write(directory: destination)
        if !checkpoint.gaps.isEmpty { try Checkpoint.writeDeclaredGaps(checkpoint.gaps, directory: destination) }
        return report
    }
}
