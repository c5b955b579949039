import OutpostCore

/// File names of a segment: base offset zero-padded to 20 digits, so `ls` sorts them (Kafka's scheme).
public enum SegmentNames {
    public static func stem(_ baseOffset: Offset) -> String {
        let digits = String(baseOffset.rawValue)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    public static func log(_ baseOffset: Offset) -> String { stem(baseOffset) + ".log" }
    /// A retired segment's `.log` file kept for reuse by the next roll (see `LogConfiguration.recycleSegments`).
    public static func spare(_ baseOffset: Offset) -> String { stem(baseOffset) + ".spare" }
    public static func index(_ baseOffset: Offset) -> String { stem(baseOffset) + ".index" }
    public static func timeIndex(_ baseOffset: Offset) -> String { stem(baseOffset) + ".timeindex" }

    /// The base offset a `.log` file name encodes, or nil for any other name.
    public static func baseOffset(ofLogFile name: String) -> Offset? {
        guard name.hasSuffix(".log") else { return nil }
        let stem = name.dropLast(4)
        // A base within 2^32 of Int64.max is no segment this log wrote: base + a relative offset would overflow.
        guard stem.count == 20, stem.allSatisfy(\.isASCII), let value = Int64(stem), value >= 0, value <= Int64.max - Int64(UInt32.max) - 1
        else { return nil }
        return Offset(value)
    }
}

/// One segment: its `.log` file and indexes. All mutable state is guarded by the owning `PartitionLog`'s
/// lock; the class identity is what readers hold on to (see `SegmentFile`).
final class Segment: @unchecked Sendable {
    let baseOffset: Offset
    let directory: String
    let file: SegmentFile
    var size: Int
    /// Offset after the last batch in this segment.
    var nextOffset: Offset
    /// Largest record timestamp (ms) in the segment; -1 when empty.
    var maxTimestamp: Int64 = -1
    var indexes = SegmentIndexes()
    /// Where damage found on open begins in a sealed segment; reads stop there with an error.
    var corruptFrom: Int?
    /// Bytes known to be on disk (fsynced).
    var synchronizedSize: Int
    /// Where a reused (recycled) file's previous contents end; 0 for a file that was new. Past `size` they
    /// are still there until `trimToSize()` cuts them when the segment is sealed or closed.
    var oldContentsEnd = 0
    /// The file still holds old contents past the segment's batches.
    var recycled: Bool { oldContentsEnd > size }
    /// Zero bytes to write after a write ending at `end`, so that it ends on a page boundary: only inside a
    /// recycled file's old contents (never growing the file). A write that leaves a page partly covered
    /// makes the kernel read the rest of that page from the disk first when it is not cached (a synchronous
    /// read inside the write; a spare's pages are dropped from the cache on purpose, see `SpareCacheDrop`,
    /// and a long retention evicts them anyway). The zeros lie past the segment's end, where the next append
    /// writes; recovery stops at them as it does at old contents. None when an earlier write already padded
    /// through `end` (small appends within one page copy no zeros again).
    func padding(after end: Int) -> Int {
        guard end < oldContentsEnd, end >= paddedThrough else { return 0 }
        let pageEnd = (end + SegmentFile.pageSize - 1) & ~(SegmentFile.pageSize - 1)
        return min(pageEnd, oldContentsEnd) - end
    }
    /// Where the last write's zero padding ended (see `padding(after:)`).
    var paddedThrough = 0
    /// Bytes from the file's start that have disk blocks: its old contents when recycled, or what a
    /// reservation took for queued appends (`SegmentFile.reserve`). A write below it cannot find the disk full.
    var reservedEnd: Int
    /// Bytes the file occupies (until a deferred trim is done, a sealed segment's file still reaches as far
    /// as its old contents or reservation did).
    var fileBytes: Int { max(size, oldContentsEnd, reservedEnd) }
    /// A change the next fdatasync must carry although no bytes were appended (the trim's new file size).
    var metadataDirty = false
    /// The size a deferred trim cuts the file to; the flusher truncates right before its next fdatasync. A
    /// roll trims the segment it seals: freeing the old contents' blocks took up to ~250 µs, too long to
    /// hold the append lock for, and that fdatasync had to follow anyway.
    var pendingTruncation: Int?
    /// The flusher holds this segment's file for a deferred truncation in the round under way: a roll must
    /// not reuse the file meanwhile (retention can retire a just-sealed segment under a small budget), or
    /// the truncation would cut what the new segment wrote.
    var truncationInFlight = false
    /// When the last try at `pendingTruncation` failed (monotonic clock); nil when none did. The log goes on
    /// and tries again later (see `PartitionLog.trimRetryIntervalNanoseconds`).
    var trimFailedAtUptimeNanoseconds: UInt64?

    /// A deferred trim was done: the file ends at the segment's batches.
    func deferredTrimDone() {
        pendingTruncation = nil
        trimFailedAtUptimeNanoseconds = nil
        oldContentsEnd = 0
        reservedEnd = size
    }
    /// Wall-clock time (ms) of the first append since open, or of the file's creation; drives roll by age.
    var createdAtMilliseconds: Int64
    /// Wall-clock time (ms) of the last append; drives retention by age.
    var lastAppendMilliseconds: Int64

    var logPath: String { directory + "/" + SegmentNames.log(baseOffset) }
    var indexPath: String { directory + "/" + SegmentNames.index(baseOffset) }
    var timeIndexPath: String { directory + "/" + SegmentNames.timeIndex(baseOffset) }

    init(baseOffset: Offset, directory: String, create: Bool, nowMilliseconds: Int64) throws(LogError) {
        self.baseOffset = baseOffset
        self.directory = directory
        file = try SegmentFile(path: directory + "/" + SegmentNames.log(baseOffset), create: create)
        // A new segment owns its name: bytes a failed roll left there must not become part of it.
        if create { try file.truncate(to: 0) }
        size = try file.size()
        reservedEnd = size
        synchronizedSize = create ? 0 : size
        nextOffset = baseOffset
        let modified = Directory.modificationTimeMilliseconds(directory + "/" + SegmentNames.log(baseOffset)) ?? nowMilliseconds
        createdAtMilliseconds = create ? nowMilliseconds : modified
        lastAppendMilliseconds = create ? nowMilliseconds : modified
    }

    /// Takes over `spare` (a retired segment's `.log` file) as this new segment's file: renamed to the new
    /// name and overwritten from the start. The caller makes the rename durable (directory fsync).
    static func recycling(spare: String, baseOffset: Offset, directory: String, nowMilliseconds: Int64) throws(LogError) -> Segment {
        try Directory.rename(spare, to: directory + "/" + SegmentNames.log(baseOffset))
        let segment = try Segment(baseOffset: baseOffset, directory: directory, create: false, nowMilliseconds: nowMilliseconds)
        segment.oldContentsEnd = segment.size
        segment.reservedEnd = segment.size
        segment.size = 0
        segment.synchronizedSize = 0
        segment.createdAtMilliseconds = nowMilliseconds
        segment.lastAppendMilliseconds = nowMilliseconds
        return segment
    }

    /// Cuts a recycled file's old contents beyond `size`, so the sealed (or closed) segment is exactly its
    /// batches, as Kafka's tools expect, and gives back blocks reserved past it. A new size becomes durable
    /// with the next fdatasync.
    func trimToSize() throws(LogError) {
        guard recycled || reservedEnd > size else { return }
        try file.truncate(to: size)
        if recycled { metadataDirty = true }
        oldContentsEnd = 0
        reservedEnd = size
    }

    /// `trimToSize` for a segment being sealed: the flusher truncates the file right before the fdatasync
    /// that makes the new size durable (see `pendingTruncation`); until then (`deferredTrimDone`) the file
    /// still holds what lies past `size`, and `fileBytes` counts it. Never for the active segment, whose
    /// appends would be cut.
    func deferTrimToSize() {
        guard recycled || reservedEnd > size else { return }
        pendingTruncation = size
        metadataDirty = true
    }

    /// Gives back blocks a reservation took past the file's end that nothing will write (appends the log
    /// gave up on): the file no longer says how far it reaches, so writes reserve afresh. Best effort: what
    /// stays is given back when the segment is sealed, or by the next open (see `LogLoader`, pass 5).
    func releaseBlocksPastEnd() {
        _ = try? file.releaseBlocksPastEnd()
    }

    /// Unsynced bytes or an unsynced trim.
    var needsSynchronize: Bool { synchronizedSize < size || metadataDirty }

    func relativeOffset(_ offset: Offset) -> UInt32 { UInt32(clamping: offset - baseOffset) }

    /// Writes index entries not yet in the index files. The files are caches, so a failure here (a full
    /// disk) only leaves them short; they are completed later or rebuilt on open.
    func writePendingIndexEntries() {
        if indexes.offsetsWritten < indexes.offsets.count {
            let bytes = SegmentIndexes.encode(indexes.offsets[indexes.offsetsWritten...])
            if (try? Self.appendToFile(indexPath, bytes, at: indexes.offsetsWritten * OffsetIndexEntry.size)) != nil {
                indexes.offsetsWritten = indexes.offsets.count
            }
        }
        if indexes.timesWritten < indexes.times.count {
            let bytes = SegmentIndexes.encode(indexes.times[indexes.timesWritten...])
            if (try? Self.appendToFile(timeIndexPath, bytes, at: indexes.timesWritten * TimeIndexEntry.size)) != nil {
                indexes.timesWritten = indexes.times.count
            }
        }
    }

    /// Rewrites both index files from memory (after recovery or truncation).
    func rewriteIndexFiles() {
        indexes.offsetsWritten = 0
        indexes.timesWritten = 0
        _ = try? SegmentFile(path: indexPath, create: true).truncate(to: 0)
        _ = try? SegmentFile(path: timeIndexPath, create: true).truncate(to: 0)
        writePendingIndexEntries()
    }

    /// Writes a sealed segment's whole index files from a copy of its entries (no segment state: any
    /// thread) and returns their CRC-32Cs, for the checkpoint.
    static func writeIndexFiles(
        directory: String, baseOffset: Offset, offsets: [OffsetIndexEntry], times: [TimeIndexEntry]
    ) throws(LogError) -> (index: UInt32, timeIndex: UInt32) {
        let offsetBytes = SegmentIndexes.encode(offsets[...])
        let timeBytes = SegmentIndexes.encode(times[...])
        try appendToFile(directory + "/" + SegmentNames.index(baseOffset), offsetBytes, at: 0)
        try appendToFile(directory + "/" + SegmentNames.timeIndex(baseOffset), timeBytes, at: 0)
        return (CRC32C.checksum(offsetBytes), CRC32C.checksum(timeBytes))
    }

    private static func appendToFile(_ path: String, _ bytes: [UInt8], at position: Int) throws(LogError) {
        let indexFile = try SegmentFile(path: path, create: true)
        try indexFile.truncate(to: position)
        try bytes.withBytes { (buffer) throws(LogError) in try indexFile.writeAll(buffer, at: position) }
    }

    /// CRC-32C of the index files' full contents as they are written from memory; recorded in the
    /// checkpoint when the segment is sealed.
    func indexChecksums() -> (UInt32, UInt32) {
        (CRC32C.checksum(SegmentIndexes.encode(indexes.offsets[...])), CRC32C.checksum(SegmentIndexes.encode(indexes.times[...])))
    }

    func deleteFiles() throws(LogError) {
        try Directory.remove(logPath)
        try Directory.remove(indexPath)
        try Directory.remove(timeIndexPath)
    }
}
