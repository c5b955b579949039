import OutpostCore

/// Sparse offset index entry: the batch whose base offset is `baseOffset + relativeOffset` starts at
/// `position` in the segment's `.log`. Stored as Kafka does, 8 bytes: i32 relative offset, i32 position.
struct OffsetIndexEntry: Hashable, Sendable {
    var relativeOffset: UInt32
    var position: UInt32
    static let size = 8
}

/// Time index entry: up to and including the batch at `relativeOffset`, the largest timestamp seen is
/// `timestamp`. 12 bytes: i64 timestamp, i32 relative offset (Kafka's layout).
struct TimeIndexEntry: Hashable, Sendable {
    var timestamp: Int64
    var relativeOffset: UInt32
    static let size = 12
}

/// A segment's indexes in memory, and their file encodings. They are caches over the `.log`: on open they
/// are sanity-checked against it and rebuilt when they disagree, never trusted over the data.
struct SegmentIndexes: Sendable {
    var offsets: [OffsetIndexEntry] = []
    var times: [TimeIndexEntry] = []
    /// Log bytes appended since the last offset-index entry.
    var bytesSinceLastEntry = 0
    /// Entries already written to the index files (the rest are pending).
    var offsetsWritten = 0
    var timesWritten = 0

    /// Largest timestamp of all batches noted so far.
    var runningMaxTimestamp = Int64.min

    /// Records a batch appended at `position`; adds entries every `intervalBytes` of log. A time entry is
    /// added with an offset entry when the running maximum timestamp has grown since the last one.
    mutating func note(batchAt position: Int, relativeOffset: UInt32, size: Int, maxTimestamp: Int64, intervalBytes: Int) {
        runningMaxTimestamp = max(runningMaxTimestamp, maxTimestamp)
        // Entries hold 32-bit positions. The log's own segments end below 2 GiB (`segmentBytesMax`); a
        // larger file found on disk is indexed up to 4 GiB only (lookups past it scan from the last entry).
        guard position <= Int(UInt32.max) else { return }
        if offsets.isEmpty || bytesSinceLastEntry >= intervalBytes {
            offsets.append(OffsetIndexEntry(relativeOffset: relativeOffset, position: UInt32(position)))
            bytesSinceLastEntry = 0
            if runningMaxTimestamp > (times.last?.timestamp ?? Int64.min) {
                times.append(TimeIndexEntry(timestamp: runningMaxTimestamp, relativeOffset: relativeOffset))
            }
        }
        bytesSinceLastEntry += size
    }

    /// Position of the last indexed batch at or before `relativeOffset` (0 when none).
    func position(atOrBefore relativeOffset: UInt32) -> Int {
        var low = 0
        var high = offsets.count
        while low < high {
            let middle = (low + high) / 2
            if offsets[middle].relativeOffset <= relativeOffset { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? 0 : Int(offsets[low - 1].position)
    }

    /// Relative offset of the last time entry whose timestamp is below `timestamp`: scanning from its
    /// batch finds the first batch reaching `timestamp`. nil: start at the segment's beginning.
    func relativeOffset(before timestamp: Int64) -> UInt32? {
        var low = 0
        var high = times.count
        while low < high {
            let middle = (low + high) / 2
            if times[middle].timestamp < timestamp { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : times[low - 1].relativeOffset
    }

    /// Drops entries at or beyond `size` bytes / `nextRelativeOffset` (after a truncation).
    mutating func truncate(toSize size: Int, nextRelativeOffset: UInt32) {
        offsets.removeAll { Int($0.position) >= size }
        times.removeAll { $0.relativeOffset >= nextRelativeOffset }
        offsetsWritten = min(offsetsWritten, offsets.count)
        timesWritten = min(timesWritten, times.count)
    }

    static func encode(_ entries: ArraySlice<OffsetIndexEntry>) -> [UInt8] {
        var writer = ByteWriter(capacity: entries.count * OffsetIndexEntry.size)
        for entry in entries {
            writer.write(Int32(bitPattern: entry.relativeOffset))
            writer.write(Int32(bitPattern: entry.position))
        }
        return writer.bytes
    }

    static func encode(_ entries: ArraySlice<TimeIndexEntry>) -> [UInt8] {
        var writer = ByteWriter(capacity: entries.count * TimeIndexEntry.size)
        for entry in entries {
            writer.write(entry.timestamp)
            writer.write(Int32(bitPattern: entry.relativeOffset))
        }
        return writer.bytes
    }

    /// Decodes an offset index, keeping the longest prefix that is strictly increasing and inside a log
    /// of `logSize` bytes. Returns the entries and whether the file was fully sane.
    static func decodeOffsets(_ bytes: [UInt8], logSize: Int) -> (entries: [OffsetIndexEntry], sane: Bool) {
        var entries: [OffsetIndexEntry] = []
        var reader = ByteReader(bytes)
        var sane = bytes.count % OffsetIndexEntry.size == 0
        while reader.remaining >= OffsetIndexEntry.size {
            guard let relative = try? reader.readUInt32(), let position = try? reader.readUInt32() else { break }
            let entry = OffsetIndexEntry(relativeOffset: relative, position: position)
            if let last = entries.last, entry.relativeOffset <= last.relativeOffset || entry.position <= last.position {
                sane = false
                break
            }
            if Int(position) >= logSize || (entries.isEmpty && position != 0) {
                sane = false
                break
            }
            entries.append(entry)
        }
        return (entries, sane)
    }

    static func decodeTimes(_ bytes: [UInt8]) -> (entries: [TimeIndexEntry], sane: Bool) {
        var entries: [TimeIndexEntry] = []
        var reader = ByteReader(bytes)
        var sane = bytes.count % TimeIndexEntry.size == 0
        while reader.remaining >= TimeIndexEntry.size {
            guard let timestamp = try? reader.readInt64(), let relative = try? reader.readUInt32() else { break }
            let entry = TimeIndexEntry(timestamp: timestamp, relativeOffset: relative)
            if let last = entries.last, entry.timestamp <= last.timestamp || entry.relativeOffset <= last.relativeOffset {
                sane = false
                break
            }
            entries.append(entry)
        }
        return (entries, sane)
    }
}
