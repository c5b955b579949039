import OutpostCore

/// What a partition remembers about itself beside its segments, in one small text file replaced atomically
/// (`checkpoint`):
///
/// ```
/// recovery-point 4096
/// segment 0 created 1732300000000 index a1b2c3d4 timeindex 00ff00ff
/// segment 4096 created 1732386400000 recycled
/// gap 1200 1299
/// ```
/// - the recovery point: every segment ending at or below it was fsynced, so recovery trusts it;
/// - each segment's creation time (roll by age must survive restarts; a file's mtime changes on every
///   append) and, once sealed, the CRC-32C of its index files as written: index files are caches, used only
///   when they still match, otherwise rebuilt from the batch headers; `recycled` when the segment reuses a
///   retired segment's file (recovery then says a cut may include that file's previous contents);
/// - offset gaps a salvage declared: recovery accepts a discontinuity only where one was declared.
struct Checkpoint: Hashable, Sendable {
    struct SegmentEntry: Hashable, Sendable {
        var createdMilliseconds: Int64
        var indexChecksum: UInt32?
        var timeIndexChecksum: UInt32?
        var recycled = false
    }

    static let fileName = "checkpoint"
    /// A larger file is no checkpoint this log wrote (about 80 bytes a segment and 40 a gap) and is not
    /// read: damage, or a sparse file, could ask for any amount of memory.
    static let bytesMax = 16 << 20

    var recoveryPoint: Offset = 0
    var segments: [Offset: SegmentEntry] = [:]
    var gaps: [ClosedRange<Int64>] = []

    func encoded() -> [UInt8] {
        var text = "recovery-point \(recoveryPoint.rawValue)\n"
        for base in segments.keys.sorted() {
            guard let entry = segments[base] else { continue }
            text += "segment \(base.rawValue) created \(entry.createdMilliseconds)"
            if let index = entry.indexChecksum, let time = entry.timeIndexChecksum {
                text += " index \(String(index, radix: 16)) timeindex \(String(time, radix: 16))"
            }
            if entry.recycled { text += " recycled" }
            text += "\n"
        }
        text += Self.gapLines(gaps)
        return Array(text.utf8)
    }

    /// `gap A B` lines, in the checkpoint and in the declared-gaps file.
    private static func gapLines(_ gaps: [ClosedRange<Int64>]) -> String {
        gaps.map { "gap \($0.lowerBound) \($0.upperBound)\n" }.joined()
    }

    /// Parses a checkpoint; unknown or malformed lines are skipped (the file speeds recovery up and
    /// repeats the declared gaps, which are also in `declaredGapsFileName`: losing it costs a longer scan,
    /// never data).
    static func decode(_ bytes: [UInt8]) -> Checkpoint {
        var checkpoint = Checkpoint()
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let words = line.split(separator: " ")
            switch words.first {
            case "recovery-point":
                if words.count == 2, let value = Int64(words[1]), value >= 0 { checkpoint.recoveryPoint = Offset(value) }
            case "segment":
                // A negative creation time is damage; `now - created` (roll by age) could overflow with one.
                guard words.count >= 4, let base = Int64(words[1]), words[2] == "created", let created = Int64(words[3]), created >= 0
                else { continue }
                var entry = SegmentEntry(createdMilliseconds: created)
                if words.count >= 8, words[4] == "index", words[6] == "timeindex" {
                    entry.indexChecksum = UInt32(words[5], radix: 16)
                    entry.timeIndexChecksum = UInt32(words[7], radix: 16)
                }
                entry.recycled = words.last == "recycled"
                checkpoint.segments[Offset(base)] = entry
            case "gap":
                if words.count == 3, let first = Int64(words[1]), let last = Int64(words[2]), first <= last {
                    checkpoint.gaps.append(first...last)
                }
            default:
                continue
            }
        }
        return checkpoint
    }

    static func read(directory: String) -> Checkpoint? {
        readBounded(directory + "/" + fileName).map(decode)
    }

    /// A file's bytes; nil if it is missing, unreadable or larger than any this log writes.
    private static func readBounded(_ path: String) -> [UInt8]? {
        guard Directory.exists(path), let file = try? SegmentFile(path: path, create: false),
            let size = try? file.size(), size <= bytesMax, let bytes = try? file.read(size, at: 0)
        else { return nil }
        return bytes
    }

    func write(directory: String) throws(LogError) {
        try Directory.writeAtomically(encoded(), to: directory + "/" + Self.fileName, directory: directory)
    }

    /// The offset gaps a salvage declared, kept apart from the checkpoint as well: the checkpoint is
    /// rewritten all the time and may be lost, and without the gaps recovery would take a declared gap for
    /// a lost tail and delete every segment after it. Written once, by salvage; `gap A B` lines.
    static let declaredGapsFileName = "declared-gaps"

    static func writeDeclaredGaps(_ gaps: [ClosedRange<Int64>], directory: String) throws(LogError) {
        try Directory.writeAtomically(Array(gapLines(gaps).utf8), to: directory + "/" + declaredGapsFileName, directory: directory)
    }

    /// The checkpoint (an empty one if there is none) with the declared-gaps file's gaps added: what
    /// recovery and verification go by.
    static func readWithDeclaredGaps(directory: String) -> Checkpoint {
        var checkpoint = read(directory: directory) ?? Checkpoint()
        for gap in readDeclaredGaps(directory: directory) where !checkpoint.gaps.contains(gap) {
            checkpoint.gaps.append(gap)
        }
        return checkpoint
    }

    /// The gaps in the declared-gaps file (none if it is missing, unreadable or implausibly large).
    static func readDeclaredGaps(directory: String) -> [ClosedRange<Int64>] {
        readBounded(directory + "/" + declaredGapsFileName).map { decode($0).gaps } ?? []
    }

    /// Whether a batch may start at `baseOffset` when `expected` was due: equal, or a declared gap
    /// covers exactly the offsets in between.
    func allowsDiscontinuity(from expected: Int64, to baseOffset: Int64) -> Bool {
        if baseOffset == expected { return true }
        guard baseOffset > expected else { return false }
        return gaps.contains { $0.lowerBound <= expected && $0.upperBound >= baseOffset - 1 }
    }
}
