import Foundation
import OutpostCore
import Testing

@testable import OutpostLog

/// Holds a log's flusher at its fsync (`PartitionLog.fsyncHookForTesting`) and in its early group write
/// (`earlyWriteHookForTesting`) until the test lets it on, so the test acts while a round is under way however
/// late its own thread gets there (a slow simulated fsync gave it a window instead, which a descheduled test
/// thread missed). One condition for both points, so that a test can wait for whichever comes first.
final class FlusherGate: @unchecked Sendable {
    enum Point: Int, CaseIterable {
        case fsync = 0
        case earlyWrite = 1
    }

    private let condition = NSCondition()
    /// Arrivals at each point, how many of them may go on, and whether a point lets everything through.
    private var arrived = [0, 0]
    private var letThrough = [0, 0]
    private var opened = [false, false]

    /// Holds the flusher at both points.
    func install(on log: PartitionLog) {
        log.fsyncHookForTesting = { [self] in hold(at: .fsync) }
        log.earlyWriteHookForTesting = { [self] in hold(at: .earlyWrite) }
    }

    /// The hook: counts the arrival in, then waits until it is let through.
    func hold(at point: Point = .fsync) {
        condition.lock()
        arrived[point.rawValue] += 1
        let mine = arrived[point.rawValue]
        condition.broadcast()
        while !opened[point.rawValue] && letThrough[point.rawValue] < mine { condition.wait() }
        condition.unlock()
    }

    func arrivals(at point: Point) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return arrived[point.rawValue]
    }

    /// Waits (a minute at most: a loaded machine's fsyncs can take seconds) until `done` holds of the
    /// arrivals at the fsync and at the early write; false on timeout.
    func awaitArrivals(until done: (_ fsyncs: Int, _ earlyWrites: Int) -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(60)
        while !done(arrived[0], arrived[1]) {
            if !condition.wait(until: deadline) { return done(arrived[0], arrived[1]) }
        }
        return true
    }

    /// Waits (a minute at most) until the `count`th arrival (from 1) at `point`; false on timeout.
    func awaitArrival(_ count: Int, at point: Point = .fsync) -> Bool {
        awaitArrivals { fsyncs, earlyWrites in (point == .fsync ? fsyncs : earlyWrites) >= count }
    }

    /// Lets the flusher held at `point` go on; its next arrival there is held again.
    func letHeldThrough(_ point: Point = .fsync) {
        condition.lock()
        letThrough[point.rawValue] = arrived[point.rawValue]
        condition.broadcast()
        condition.unlock()
    }

    /// Lets everything through at `points` from now on (before close, which waits for the flusher).
    func open(_ points: [Point] = Point.allCases) {
        condition.lock()
        for point in points { opened[point.rawValue] = true }
        condition.broadcast()
        condition.unlock()
    }
}

/// SplitMix64: a tiny seedable generator, identical on every platform, so a failing seed replays exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

/// The seed of a randomized test: `OUTPOST_TEST_SEED` when set (to replay a failure), else `fallback`.
func testSeed(_ fallback: UInt64) -> UInt64 {
    if let text = ProcessInfo.processInfo.environment["OUTPOST_TEST_SEED"], let seed = UInt64(text) { return seed }
    return fallback
}

/// A fresh directory under the system temporary directory, removed when the value goes away.
final class ScratchDirectory {
    let path: String

    /// - Parameter inMemory: put it on /dev/shm when there is one: for tests that open and close hundreds of
    ///   logs and care about recovery logic, not about fsync reaching a disk.
    init(_ name: String = #function, inMemory: Bool = false) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }.prefix(40)
        let base = inMemory && FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        path = base + "outpost-logtests-\(safe)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) -> String { path + "/" + name }
}

/// A wall clock the test moves by hand (milliseconds), for roll and retention by age.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Int64

    init(_ start: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) { current = start }

    var milliseconds: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    func advance(by milliseconds: Int64) {
        lock.lock()
        current += milliseconds
        lock.unlock()
    }

    var function: @Sendable () -> Int64 { { [self] in milliseconds } }
}

/// A record as the tests build it.
struct TestRecord: Hashable, Sendable {
    var key: [UInt8]?
    var value: [UInt8]?
    var timestamp: Int64
}

func makeBatch(_ records: [TestRecord], compression: CompressionCodec = .none, leaderEpoch: Int32 = -1) throws -> [UInt8] {
    var builder = RecordBatchBuilder()
    builder.partitionLeaderEpoch = leaderEpoch
    for record in records {
        builder.append(timestampMilliseconds: record.timestamp, key: record.key, value: record.value)
    }
    return try builder.build(compression: compression)
}

/// `count` records with random payloads of `valueBytes` bytes and timestamps near `baseTimestamp`.
func randomRecords(
    count: Int, valueBytes: ClosedRange<Int> = 10...120, baseTimestamp: Int64 = 1_732_300_000_000,
    using generator: inout SplitMix64
) -> [TestRecord] {
    (0..<count).map { index in
        let length = Int.random(in: valueBytes, using: &generator)
        var value: [UInt8] = []
        value.reserveCapacity(length + 8)
        while value.count < length {
            // Eight printable bytes per draw: building megabytes of payload stays cheap in debug builds.
            var word = generator.next()
            for _ in 0..<8 {
                value.append(0x21 + UInt8(word & 0x3F))
                word >>= 8
            }
        }
        value.removeLast(value.count - length)
        return TestRecord(
            key: Array("dev-\(Int.random(in: 0..<10, using: &generator))".utf8), value: value,
            timestamp: baseTimestamp + Int64(index))
    }
}

/// What the test knows about one appended batch.
struct StoredBatch: Sendable {
    var baseOffset: Offset
    /// The batch as the log must hold it: the appended bytes with baseOffset (and epoch) rewritten.
    var bytes: [UInt8]
    var records: [TestRecord]
    var header: RecordBatchHeader
    var lastOffset: Offset { Offset(header.lastOffset) }
    var nextOffset: Offset { Offset(header.nextOffset) }
    var size: Int { bytes.count }
    func contains(_ offset: Offset) -> Bool { baseOffset <= offset && offset <= lastOffset }
}

/// Appends one batch and returns what the log must now hold for it.
@discardableResult
func appendBatch(
    _ log: PartitionLog, _ records: [TestRecord], compression: CompressionCodec = .none, into model: inout [StoredBatch]
) throws -> StoredBatch {
    var bytes = try makeBatch(records, compression: compression)
    let result = try log.append(bytes)
    RecordBatchValidation.setBaseOffset(result.firstOffset.rawValue, in: &bytes)
    let stored = StoredBatch(baseOffset: result.firstOffset, bytes: bytes, records: records, header: try RecordBatchHeader(bytes: bytes))
    model.append(stored)
    return stored
}

/// Splits back-to-back batch bytes; records an issue if they do not parse to the end.
func splitBatches(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> [[UInt8]] {
    var iterator = RecordBatchIterator(bytes)
    var batches: [[UInt8]] = []
    while let (_, range) = iterator.next() { batches.append(Array(bytes[range])) }
    #expect(iterator.stopReason == nil, "read result does not parse as whole valid batches", sourceLocation: sourceLocation)
    return batches
}

/// Every batch from the log start to the end, read in chunks of `maxBytes`.
func readEverything(_ log: PartitionLog, maxBytes: Int = 1 << 20) throws -> [[UInt8]] {
    var batches: [[UInt8]] = []
    var next = log.logStartOffset
    let end = log.logEndOffset
    var rounds = 0
    while next < end, rounds < 1_000_000 {
        let result = try log.read(from: next, maxBytes: maxBytes)
        if result.batchCount == 0 { break }
        batches += splitBatches(result.bytes)
        next = result.nextOffset
        rounds += 1
    }
    return batches
}

/// Checks a closed log as a restart finds it — it verifies, and reopening cuts nothing and reads exactly
/// `batches` — and returns the reopened log.
func reopenExpectingIntact(
    _ directory: String, _ configuration: LogConfiguration, holding batches: [[UInt8]],
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> PartitionLog {
    let check = try LogInspector.verify(partitionDirectory: directory)
    #expect(check.isIntact, "\(check.problems)", sourceLocation: sourceLocation)
    let reopened = try PartitionLog.open(directory: directory, configuration: configuration)
    #expect(reopened.recoveryReport.truncatedBytes == 0, sourceLocation: sourceLocation)
    #expect(try readEverything(reopened) == batches, sourceLocation: sourceLocation)
    return reopened
}

/// The batches a read must return according to `read`'s contract.
func expectedRead(_ model: [StoredBatch], from offset: Offset, maxBytes: Int, upTo limit: Offset?, end: Offset) -> [StoredBatch] {
    let bound = min(limit ?? end, end)
    guard offset < bound else { return [] }
    var out: [StoredBatch] = []
    var bytes = 0
    for batch in model where batch.lastOffset >= offset {
        if batch.baseOffset >= bound { break }
        if !out.isEmpty && bytes + batch.size > maxBytes { break }
        out.append(batch)
        bytes += batch.size
    }
    return out
}

/// The first (offset, timestamp) with timestamp ≥ `timestamp`, from the model.
func expectedOffset(forTimestamp timestamp: Int64, in model: [StoredBatch]) -> (offset: Offset, timestamp: Int64)? {
    for batch in model {
        for (index, record) in batch.records.enumerated() where record.timestamp >= timestamp {
            return (batch.baseOffset + Int64(index), record.timestamp)
        }
    }
    return nil
}

func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}

/// Total size of the regular files in a directory (what the log costs on disk).
func directoryBytes(_ path: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { $0 + max(0, fileSize(path + "/" + $1)) }
}

/// The `.log` files of a partition directory by base offset.
func segmentBases(_ directory: String) throws -> [Offset] {
    try LogInspector.segmentFiles(in: directory).map(\.base)
}

/// Groups the model's batches by segment, with each batch's byte position in its segment file.
func layout(_ model: [StoredBatch], bases: [Offset]) -> [(base: Offset, batches: [(position: Int, batch: StoredBatch)])] {
    bases.enumerated().map { index, base in
        let next = index + 1 < bases.count ? bases[index + 1] : Offset(Int64.max)
        var position = 0
        var batches: [(position: Int, batch: StoredBatch)] = []
        for batch in model where batch.baseOffset >= base && batch.baseOffset < next {
            batches.append((position, batch))
            position += batch.size
        }
        return (base, batches)
    }
}

/// The offset-index and time-index entries `indexIntervalBytes` must produce for a segment's batches.
func expectedIndexEntries(_ batches: [(position: Int, batch: StoredBatch)], base: Offset, intervalBytes: Int)
    -> (offsets: [(relative: UInt32, position: UInt32)], times: [(timestamp: Int64, relative: UInt32)])
{
    var offsets: [(relative: UInt32, position: UInt32)] = []
    var times: [(timestamp: Int64, relative: UInt32)] = []
    var sinceLast = 0
    var runningMax = Int64.min
    for (position, batch) in batches {
        runningMax = max(runningMax, batch.header.maxTimestamp)
        let relative = UInt32(batch.baseOffset - base)
        if offsets.isEmpty || sinceLast >= intervalBytes {
            offsets.append((relative, UInt32(position)))
            sinceLast = 0
            if runningMax > (times.last?.timestamp ?? Int64.min) { times.append((runningMax, relative)) }
        }
        sinceLast += batch.size
    }
    return (offsets, times)
}

func decodeOffsetIndexFile(_ bytes: [UInt8]) -> [(relative: UInt32, position: UInt32)] {
    var reader = ByteReader(bytes)
    var entries: [(relative: UInt32, position: UInt32)] = []
    while reader.remaining >= 8, let relative = try? reader.readUInt32(), let position = try? reader.readUInt32() {
        entries.append((relative, position))
    }
    return entries
}

func decodeTimeIndexFile(_ bytes: [UInt8]) -> [(timestamp: Int64, relative: UInt32)] {
    var reader = ByteReader(bytes)
    var entries: [(timestamp: Int64, relative: UInt32)] = []
    while reader.remaining >= 12, let timestamp = try? reader.readInt64(), let relative = try? reader.readUInt32() {
        entries.append((timestamp, relative))
    }
    return entries
}

func encodeOffsetIndex(_ entries: [(relative: UInt32, position: UInt32)]) -> [UInt8] {
    var writer = ByteWriter()
    for entry in entries {
        writer.write(Int32(bitPattern: entry.relative))
        writer.write(Int32(bitPattern: entry.position))
    }
    return writer.bytes
}

func encodeTimeIndex(_ entries: [(timestamp: Int64, relative: UInt32)]) -> [UInt8] {
    var writer = ByteWriter()
    for entry in entries {
        writer.write(entry.timestamp)
        writer.write(Int32(bitPattern: entry.relative))
    }
    return writer.bytes
}

/// Whether a thrown error is the expected `LogError` case.
func logError(_ error: any Error, matches predicate: (LogError) -> Bool) -> Bool {
    guard let error = error as? LogError else { return false }
    return predicate(error)
}

extension LogConfiguration {
    /// A configuration for tests: small segments, no age-based behaviour unless asked for.
    static func testing(
        segmentBytesMax: Int = 1 << 20, indexIntervalBytes: Int = 4096, fsync: FsyncPolicy = .never,
        retentionBytes: Int64? = nil, retentionMilliseconds: Int64? = nil, segmentAgeMaxMilliseconds: Int64? = nil
    ) -> LogConfiguration {
        var configuration = LogConfiguration()
        configuration.segmentBytesMax = segmentBytesMax
        configuration.indexIntervalBytes = indexIntervalBytes
        configuration.fsync = fsync
        configuration.retentionBytes = retentionBytes
        configuration.retentionMilliseconds = retentionMilliseconds
        configuration.segmentAgeMaxMilliseconds = segmentAgeMaxMilliseconds
        return configuration
    }
}

/// A multi-segment log with random batches (1–6 records, uncompressed and gzip mixed), and its model.
struct BuiltLog {
    var model: [StoredBatch] = []
    var end: Offset { model.last?.nextOffset ?? 0 }
}

func buildLog(
    _ log: PartitionLog, batches: Int, recordsPerBatch: ClosedRange<Int> = 1...6, valueBytes: ClosedRange<Int> = 10...160,
    outOfOrderTimestamps: Bool = false, using generator: inout SplitMix64
) throws -> BuiltLog {
    var built = BuiltLog()
    var clock: Int64 = 1_732_300_000_000
    for index in 0..<batches {
        let count = Int.random(in: recordsPerBatch, using: &generator)
        var records = randomRecords(count: count, valueBytes: valueBytes, baseTimestamp: clock, using: &generator)
        if outOfOrderTimestamps {
            // Late readings: some records (and sometimes a whole batch) older than what came before.
            for recordIndex in records.indices where Int.random(in: 0..<4, using: &generator) == 0 {
                records[recordIndex].timestamp -= Int64.random(in: 1...400, using: &generator)
            }
            if Int.random(in: 0..<6, using: &generator) == 0 {
                for recordIndex in records.indices { records[recordIndex].timestamp -= 700 }
            }
        }
        clock += Int64(count) + Int64.random(in: 0...40, using: &generator)
        try appendBatch(log, records, compression: index % 3 == 2 ? .gzip : .none, into: &built.model)
    }
    return built
}
