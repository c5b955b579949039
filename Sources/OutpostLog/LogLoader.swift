import Logging
import OutpostCore

/// Opens a partition directory and recovers it, in numbered passes (Kafka's `LogLoader` is the model):
///
/// 1. Inventory: create the directory if needed, drop leftover temporary files and index files whose
///    `.log` is gone, find the segments by their file names.
/// 2. Read the checkpoint: the recovery point (below it every segment was fsynced), each segment's creation
///    time and its index files' checksums, and any offset gaps a salvage declared.
/// 3. Sealed segments below the recovery point are trusted: their index files are used when their
///    checksums match the checkpoint (else rebuilt from the batch headers), and their tail — from the last
///    index entry — is re-validated. Damage there is reported as a corrupt sealed segment and kept, never
///    deleted.
/// 4. Every segment from the recovery point on, and always the active segment, is scanned completely:
///    each batch's length, magic and CRC-32C, and that its offsets continue the previous batch's (a
///    baseOffset lies outside the CRC, so only continuity catches its damage). At the first invalid batch
///    the segment is truncated and any later segment removed: those can only hold data whose predecessors
///    never became durable, so none of it was ever acknowledged.
///    A segment whose file was recycled (a retired segment's, reused) holds that file's old contents past
///    its last batch until it is sealed or closed; they fail the same checks (bad framing, or offsets
///    below the segment's base), so the cut is the same, and the report says the cut includes them.
///    A sealed one holds them still when its deferred trim failed or never ran: then its last batch ends
///    where the next segment starts, nothing of the log lies past it, and in both passes the old contents
///    are cut as such — neither damage kept for salvage nor a cut that removes the later segments.
/// 5. fsync what was scanned (a process crash leaves data in the page cache that is not yet on disk), give
///    back disk blocks reserved past any file's end (for queued appends; invisible to the checks above),
///    rewrite rebuilt indexes, and report.
///
/// Batch lengths are bounded here only by the file (structure), not by the append limit: a log written
/// under a larger `batchBytesMax` must not lose committed batches when reopened under a smaller one.
struct LogLoader {
    let directory: String
    let configuration: LogConfiguration
    let now: Int64
    let logger: Logger

    struct Loaded {
        var segments: [Segment]
        /// Retired segment files kept for reuse (`.spare`), with their sizes.
        var spares: [(path: String, bytes: Int)]
        var report: RecoveryReport
        var checkpoint: Checkpoint
    }

    func load() throws(LogError) -> Loaded {
        var report = RecoveryReport()

        // Pass 1: inventory.
        try Directory.create(directory)
        let names = try Directory.entries(directory)
        for name in names where name.hasSuffix(".tmp") {
            try Directory.remove(directory + "/" + name)
        }
        var spares: [(path: String, bytes: Int)] = []
        for name in names where name.hasSuffix(".spare") {
            let path = directory + "/" + name
            let file = try? SegmentFile(path: path, create: false)
            let bytes = (try? file?.size()) ?? 0
            // One spare is all a roll needs; more (or any, when recycling is off) would only hold disk.
            if configuration.recycleSegments && spares.isEmpty && bytes > 0, let file {
                // A segment retired before its deferred trim keeps blocks reserved past its end (see pass 5).
                releaseBlocksPastEnd(of: file)
                spares.append((path, bytes))
            } else {
                try Directory.remove(path)
            }
        }
        let bases = names.compactMap(SegmentNames.baseOffset(ofLogFile:)).sorted()
        let stems = Set(bases.map(SegmentNames.stem))
        for name in names where name.hasSuffix(".index") || name.hasSuffix(".timeindex") {
            let stem = String(name.prefix { $0 != "." })
            if !stems.contains(stem) { try Directory.remove(directory + "/" + name) }
        }

        // Pass 2: checkpoint.
        // With a salvage's gaps, also kept in a file of their own in case the checkpoint was lost.
        var checkpoint = Checkpoint.readWithDeclaredGaps(directory: directory)
        // The recovery point is the end of the sealed segments, never past the last segment's base: a
        // damaged checkpoint's larger value would have every segment trusted without a scan, and be kept.
        let recoveryPoint = min(checkpoint.recoveryPoint, bases.last ?? 0)

        // Passes 3 and 4: segment by segment.
        var segments: [Segment] = []
        var rewriteIndexes: [Segment] = []
        /// Segments scanned completely or cut: what recovery read or changed is fsynced in pass 5.
        var scannedForRecovery: [Segment] = []
        var index = 0
        while index < bases.count {
            let base = bases[index]
            let segment = try Segment(baseOffset: base, directory: directory, create: false, nowMilliseconds: now)
            if let created = checkpoint.segments[base]?.createdMilliseconds {
                segment.createdAtMilliseconds = created
            }
            let isLast = index == bases.count - 1
            let nextBase = isLast ? nil : bases[index + 1]
            if let nextBase, nextBase <= recoveryPoint {
                let fileSize = segment.size
                if try !loadTrustedSegment(segment, nextBase: nextBase, checkpoint: checkpoint, report: &report) {
                    rewriteIndexes.append(segment)
                }
                if segment.size < fileSize { scannedForRecovery.append(segment) }
                segments.append(segment)
                index += 1
                continue
            }
            let outcome = try scanCompletely(segment, checkpoint: checkpoint)
            report.batchesValidated += outcome.batchCount
            rewriteIndexes.append(segment)
            scannedForRecovery.append(segment)
            segments.append(segment)
            let cut = outcome.stopReason != nil || outcome.validEnd < outcome.fileSize
            let gapToNext = nextBase.map { !checkpoint.allowsDiscontinuity(from: segment.nextOffset.rawValue, to: $0.rawValue) } ?? false
            if cut {
                let recycledNote = if nextBase != nil && !gapToNext {
                    " (past its last batch, where the next segment starts: the old contents of a recycled file, never trimmed)"
                } else if checkpoint.segments[base]?.recycled == true {
                    " (the file was recycled: what follows its last batch includes its previous contents)"
                } else {
                    ""
                }
                try cutTail(of: segment, outcome: outcome, reason: "\(outcome.stopReason ?? "trailing bytes")\(recycledNote)", report: &report)
            }
            // A sealed segment cut past its last batch, which ends where the next one starts, lost nothing the
            // later segments follow: they stay, and are scanned in turn.
            if gapToNext {
                if !cut {
                    report.truncationReason = report.truncationReason
                        ?? "\(SegmentNames.log(base)) ends at offset \(segment.nextOffset) but the next segment starts at \(nextBase.map(String.init(describing:)) ?? "-")"
                }
                // Everything after a hole was never acknowledged: remove the later segments.
                for later in bases[(index + 1)...] {
                    let laterSegment = try Segment(baseOffset: later, directory: directory, create: false, nowMilliseconds: now)
                    let scanner = SegmentScanner(file: laterSegment.file, batchBytesMax: Int.max, verifyChecksums: false)
                    report.truncatedBatches += try scanner.countBatchShapes(from: 0)
                    report.truncatedBytes += laterSegment.size
                    report.deletedSegments.append(later)
                    checkpoint.segments[later] = nil
                    try laterSegment.deleteFiles()
                }
                try Directory.synchronize(directory)
                break
            }
            index += 1
        }

        if segments.isEmpty {
            let first = try Segment(baseOffset: 0, directory: directory, create: true, nowMilliseconds: now)
            try Directory.synchronize(directory)
            segments.append(first)
        }

        // Pass 5: make recovered bytes durable, write indexes, remember what was found.
        for segment in scannedForRecovery where segment.size > 0 {
            try segment.file.synchronize()
        }
        // Appends count the segments' names as durable from here on; a crash just after a roll may have
        // left the newest one's directory entry unsynced (the checkpoint write below fsyncs the directory
        // too, but a failure there is only logged).
        try Directory.synchronize(directory)
        // A cut shortened the file after `Segment.init` read its size: nothing is fsynced or reserved past
        // what is left (a reservation counted from the old size would let queued appends skip theirs).
        for segment in segments {
            segment.synchronizedSize = segment.size
            segment.reservedEnd = segment.size
        }
        // Nor does anything lie in blocks a reservation took past a file's size: a crash before the write
        // into them (the active segment), or before a sealed segment's deferred trim, leaves them held, where
        // no size check sees them and `diskBytes` does not count them. Given back from every file.
        for segment in segments { releaseBlocksPastEnd(of: segment.file) }
        for segment in rewriteIndexes { segment.rewriteIndexFiles() }
        let active = segments[segments.count - 1]
        checkpoint.recoveryPoint = max(recoveryPoint, active.baseOffset)
        var entries: [Offset: Checkpoint.SegmentEntry] = [:]
        for segment in segments {
            var entry = Checkpoint.SegmentEntry(createdMilliseconds: segment.createdAtMilliseconds)
            if segment !== active {
                (entry.indexChecksum, entry.timeIndexChecksum) = segment.indexChecksums()
            }
            entries[segment.baseOffset] = entry
        }
        checkpoint.segments = entries
        do {
            try checkpoint.write(directory: directory)
        } catch {
            logger.warning("could not write the checkpoint; the next open rescans more", metadata: ["directory": "\(directory)", "error": "\(error)"])
        }
        report.segmentCount = segments.count
        report.logStartOffset = segments[0].baseOffset
        report.logEndOffset = active.nextOffset
        report.recoveryPoint = checkpoint.recoveryPoint
        return Loaded(segments: segments, spares: spares, report: report, checkpoint: checkpoint)
    }

    /// Gives back a file's blocks past its size. A failure keeps them held, which costs disk but no data:
    /// a warning, and the log opens.
    private func releaseBlocksPastEnd(of file: SegmentFile) {
        do {
            try file.releaseBlocksPastEnd()
        } catch {
            logger.warning("could not give back disk reserved past a file's end", metadata: ["path": "\(file.path)", "error": "\(error)"])
        }
    }

    /// Cuts a segment's file at the end of its valid prefix and reports what went.
    private func cutTail(of segment: Segment, outcome: SegmentScanner.Outcome, reason: String, report: inout RecoveryReport) throws(LogError) {
        let scanner = SegmentScanner(file: segment.file, batchBytesMax: Int.max, verifyChecksums: false)
        report.truncatedBatches += try scanner.countBatchShapes(from: outcome.validEnd)
        report.truncatedBytes += outcome.fileSize - outcome.validEnd
        report.truncationReason = report.truncationReason ?? "\(SegmentNames.log(segment.baseOffset)) at byte \(outcome.validEnd): \(reason)"
        try segment.file.truncate(to: outcome.validEnd)
        segment.size = outcome.validEnd
    }

    /// Scans a whole segment with CRC and continuity checks, rebuilding its indexes and offsets from the data.
    private func scanCompletely(_ segment: Segment, checkpoint: Checkpoint) throws(LogError) -> SegmentScanner.Outcome {
        let scanner = SegmentScanner(file: segment.file, batchBytesMax: Int.max, verifyChecksums: true)
        var indexes = SegmentIndexes()
        var nextOffset = segment.baseOffset
        var maxTimestamp: Int64 = -1
        let intervalBytes = configuration.indexIntervalBytes
        let outcome = try scanner.scan(from: 0) { header, position in
            if let problem = Self.continuityProblem(header, expected: nextOffset, segmentBase: segment.baseOffset, checkpoint: checkpoint) {
                return problem
            }
            indexes.note(
                batchAt: position, relativeOffset: UInt32(clamping: header.baseOffset - segment.baseOffset.rawValue),
                size: header.totalSize, maxTimestamp: header.maxTimestamp, intervalBytes: intervalBytes)
            nextOffset = Offset(header.nextOffset)
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            return nil
        }
        segment.indexes = indexes
        segment.nextOffset = nextOffset
        segment.maxTimestamp = maxTimestamp
        segment.size = outcome.validEnd
        return outcome
    }

    /// Why a batch cannot follow `expected`, or nil when it may: offsets must run on without gaps except
    /// where a salvage declared one, and a batch's offsets must fit in the segment's 32-bit relative range.
    static func continuityProblem(_ header: RecordBatchHeader, expected: Offset, segmentBase: Offset, checkpoint: Checkpoint) -> String? {
        guard checkpoint.allowsDiscontinuity(from: expected.rawValue, to: header.baseOffset) else {
            return "batch base offset \(header.baseOffset) does not continue from \(expected)"
        }
        guard header.lastOffset - segmentBase.rawValue < Int64(UInt32.max) else {
            return "batch offset \(header.lastOffset) out of the segment's range"
        }
        return nil
    }

    /// Loads a segment below the recovery point: indexes from their files when they match the checksums the
    /// checkpoint recorded (else rebuilt from batch headers), then validates the tail from the last index
    /// entry. Returns whether the index files could be used as they were.
    private func loadTrustedSegment(_ segment: Segment, nextBase: Offset, checkpoint: Checkpoint, report: inout RecoveryReport) throws(LogError) -> Bool {
        let fileSize = segment.size
        var indexesUsable = false
        if let recorded = checkpoint.segments[segment.baseOffset], let indexChecksum = recorded.indexChecksum,
            let timeChecksum = recorded.timeIndexChecksum, Directory.exists(segment.indexPath), Directory.exists(segment.timeIndexPath)
        {
            // At most one entry per batch: larger files are not this segment's indexes, and are not read
            // (a file grown by damage, or sparse, could ask for any amount of memory).
            let entriesMax = fileSize / RecordBatchLayout.headerSize + 1
            let indexFile = try SegmentFile(path: segment.indexPath, create: false)
            let timeFile = try SegmentFile(path: segment.timeIndexPath, create: false)
            let indexBytes = try indexFile.size()
            let timeIndexBytes = try timeFile.size()
            let plausibleSizes = indexBytes <= entriesMax * OffsetIndexEntry.size && timeIndexBytes <= entriesMax * TimeIndexEntry.size
            let offsetBytes = plausibleSizes ? try indexFile.read(indexBytes, at: 0) : []
            let timeBytes = plausibleSizes ? try timeFile.read(timeIndexBytes, at: 0) : []
            if plausibleSizes && CRC32C.checksum(offsetBytes) == indexChecksum && CRC32C.checksum(timeBytes) == timeChecksum {
                let (offsets, offsetsSane) = SegmentIndexes.decodeOffsets(offsetBytes, logSize: fileSize)
                let (times, timesSane) = SegmentIndexes.decodeTimes(timeBytes)
                if offsetsSane && timesSane && !offsets.isEmpty {
                    segment.indexes.offsets = offsets
                    segment.indexes.times = times
                    segment.indexes.offsetsWritten = offsets.count
                    segment.indexes.timesWritten = times.count
                    segment.indexes.runningMaxTimestamp = times.last?.timestamp ?? Int64.min
                    indexesUsable = true
                }
            }
        }
        if !indexesUsable {
            // Rebuild from headers alone (no CRC): fast, and the tail check below still validates the end.
            // Offsets must run on as in the tail check: a damaged baseOffset (outside the CRC) stops the
            // index there, so the tail check starts before it and reports it, rather than indexing nonsense.
            let scanner = SegmentScanner(file: segment.file, batchBytesMax: Int.max, verifyChecksums: false)
            var indexes = SegmentIndexes()
            var expected = segment.baseOffset
            let intervalBytes = configuration.indexIntervalBytes
            _ = try scanner.scan(from: 0) { header, position in
                if let problem = Self.continuityProblem(header, expected: expected, segmentBase: segment.baseOffset, checkpoint: checkpoint) {
                    return problem
                }
                expected = Offset(header.nextOffset)
                indexes.note(
                    batchAt: position, relativeOffset: UInt32(clamping: header.baseOffset - segment.baseOffset.rawValue),
                    size: header.totalSize, maxTimestamp: header.maxTimestamp, intervalBytes: intervalBytes)
                return nil
            }
            segment.indexes = indexes
            report.rebuiltIndexes += 1
        }
        // Tail check from the last index entry, with CRCs and continuity.
        let tailStart = Int(segment.indexes.offsets.last?.position ?? 0)
        let scanner = SegmentScanner(file: segment.file, batchBytesMax: Int.max, verifyChecksums: true)
        var nextOffset = Offset(segment.baseOffset.rawValue + Int64(segment.indexes.offsets.last?.relativeOffset ?? 0))
        var maxTimestamp = segment.indexes.times.last?.timestamp ?? -1
        let outcome = try scanner.scan(from: tailStart) { header, _ in
            if let problem = Self.continuityProblem(header, expected: nextOffset, segmentBase: segment.baseOffset, checkpoint: checkpoint) {
                return problem
            }
            nextOffset = Offset(header.nextOffset)
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            return nil
        }
        report.batchesValidated += outcome.batchCount
        segment.maxTimestamp = maxTimestamp
        segment.nextOffset = nextOffset
        let continuesIntoNext = checkpoint.allowsDiscontinuity(from: nextOffset.rawValue, to: nextBase.rawValue)
        // Its batches end where the next segment starts, and bytes follow: the old contents of a recycled
        // file whose deferred trim failed or never ran (its batches were fsynced, the cut was not). Nothing
        // of the log lies in them, so they are cut as in the active segment, not kept as damage.
        if continuesIntoNext && outcome.validEnd < fileSize {
            try cutTail(
                of: segment, outcome: outcome,
                reason: "\(outcome.stopReason ?? "trailing bytes") past the sealed segment's last batch (the old contents of a recycled file, never trimmed)",
                report: &report)
            return indexesUsable
        }
        if outcome.stopReason != nil || outcome.validEnd != fileSize || !continuesIntoNext {
            let reason = outcome.stopReason ?? (continuesIntoNext ? "trailing bytes" : "ends at offset \(nextOffset), next segment starts at \(nextBase)")
            segment.corruptFrom = outcome.validEnd
            report.corruptSealedSegments.append(CorruptSegment(path: segment.logPath, position: outcome.validEnd, reason: reason))
            logger.error("corrupt sealed segment kept for inspection (outpost log verify --salvage)", metadata: [
                "path": "\(segment.logPath)", "position": "\(outcome.validEnd)", "reason": "\(reason)",
            ])
        }
        return indexesUsable
    }
}
