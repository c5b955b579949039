// End-to-end benchmark of OutpostLog against the disk's own fsync rate, measured in the same run.
//
//   swift run -c release --package-path Benchmarks outpost-log-bench [--dir DIR] [--seconds S] [--runs N]
//       [--group-commit-only] [--percentiles] [--recovery-mib M] [--segment-mib M] [--cold-spares]
//
// The scratch directories are created inside DIR (default /tmp) and removed at the end; DIR itself and
// anything else in it are never touched.
//
// Reference: a bare loop that writes the same batch bytes to a file and fdatasyncs after each write; and
// the same loop fdatasyncing once per 8 writes, the disk's own ceiling for a group commit of 8 appenders
// appending to a file; and both loops overwriting a file written beforehand (what a recycled segment is).
// Scenarios: fsync always / interval(5ms) / never, with 1 and 8 concurrent appenders, on a log in its
// steady state under a retention budget (128 MiB segments unless --segment-mib, four retained, filled untimed until
// retention has retired a segment, then reopened and appended to untimed for six segments' worth, so rolls reuse
// files as they do for a log that has run a while and the reopen's effects are past), and
// `always` on a fresh log too (every segment a new file); with --cold-spares, the steady-state log's spare
// file is kept out of the page cache while it runs (a box whose retention spans far more than its page
// cache, where a roll finds the file's old contents on the disk only); append→durable latency percentiles under
// `always`; recovery (open) time of a 1 GiB log. Each figure is the median of --runs runs. Output is a
// Markdown table for docs/BENCHMARKS.md.
import Foundation
import Histogram
import OutpostCore
import OutpostLog

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var directory = "/tmp/outpost-log-bench-\(getpid())"
    var seconds = 3.0
    var runs = 3
    var recoveryBytes = 1 << 30
    var groupCommitOnly = false
    var percentiles = false
    /// Segment size of the steady-state log (default: the log's default, 128 MiB).
    var segmentBytes = LogConfiguration().segmentBytesMax
    /// Evict the steady-state log's spare files from the page cache while it runs.
    var coldSpares = false

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            // Our own subdirectory of DIR: the benchmark deletes its scratch directory when done.
            case "--dir": directory = (iterator.next() ?? "/tmp") + "/outpost-log-bench-\(getpid())"
            case "--seconds": seconds = Double(iterator.next() ?? "") ?? seconds
            case "--runs": runs = Int(iterator.next() ?? "") ?? runs
            case "--recovery-mib": recoveryBytes = (Int(iterator.next() ?? "") ?? 1024) << 20
            // Only the references and the group-commit row (8 appenders, fsync always, steady state).
            case "--group-commit-only": groupCommitOnly = true
            // Per run under `always`: p90/p95/p99/p99.9/max, and the mean fsync time and batches per fsync.
            case "--percentiles": percentiles = true
            case "--segment-mib": segmentBytes = (Int(iterator.next() ?? "") ?? 128) << 20
            case "--cold-spares": coldSpares = true
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

/// ~64 KiB gzip batches of ~100-byte points, built once.
func makeBatches(count: Int) throws -> (batches: [[UInt8]], pointsPerBatch: Int) {
    var batches: [[UInt8]] = []
    let compressor = try GzipCompressor(level: 1)
    var sequence = 0
    var pointsPerBatch = 0
    for _ in 0..<count {
        var builder = RecordBatchBuilder()
        var batch: [UInt8] = []
        // Grow until the compressed batch reaches ~64 KiB (checked every 500 points).
        while true {
            for _ in 0..<500 {
                let device = "gh-\(String(format: "%04d", sequence % 1000))"
                let line = "greenhouse,device=\(device),site=north temperature=\(18 + sequence % 9).\(sequence % 97),humidity=4\(sequence % 10).2,seq=\(sequence)i \(1_732_300_000_000_000_000 + sequence * 1_000_000)"
                builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(sequence), key: Array(device.utf8), value: Array(line.utf8))
                sequence += 1
            }
            var probe = builder
            batch = try probe.build(compression: .gzip, compressor: compressor)
            if batch.count >= 60 << 10 { break }
        }
        pointsPerBatch = Int(builder.recordCount)
        batches.append(batch)
    }
    return (batches, pointsPerBatch)
}

struct Result {
    var bytesPerSecond: Double
    var batchesPerSecond: Double
    var p50Microseconds: Double?
    var p99Microseconds: Double?
    var fsyncs: Int?
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func freshDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

/// The reference: write + fdatasync per batch, one thread. With `groupSize` > 1 it writes that many
/// batches and then fdatasyncs once: the best any group commit of `groupSize` appenders could do on this
/// disk (no locking, no waiting to gather the group). Each batch's latency runs from the start of its own
/// write to the end of the fdatasync that covers it.
///
/// With `overwriting`, the file is first written to 512 MiB and fsynced (untimed), and the loop writes over
/// it from the start (wrapping around): no block allocation, no size change, so no journal commit per fsync.
func bareLoop(directory: String, batches: [[UInt8]], seconds: Double, groupSize: Int = 1, overwriting: Bool = false) -> Result {
    freshDirectory(directory)
    let path = directory + "/bare.log"
    let descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
    precondition(descriptor >= 0)
    defer { close(descriptor) }
    let overwriteBytes = 512 << 20
    if overwriting {
        let block = [UInt8](repeating: 0, count: 1 << 20)
        for index in 0..<(overwriteBytes >> 20) {
            block.withUnsafeBytes { buffer in
                precondition(pwrite(descriptor, buffer.baseAddress, buffer.count, off_t(index << 20)) == buffer.count)
            }
        }
        precondition(fsync(descriptor) == 0)
    }
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    var position = 0
    var bytes = 0
    var count = 0
    var fsyncs = 0
    var writeStarts = [UInt64](repeating: 0, count: groupSize)
    let start = now()
    let deadline = start + UInt64(seconds * 1e9)
    while now() < deadline {
        for member in 0..<groupSize {
            let batch = batches[count % batches.count]
            writeStarts[member] = now()
            batch.withUnsafeBytes { buffer in
                precondition(pwrite(descriptor, buffer.baseAddress, buffer.count, off_t(position)) == buffer.count)
            }
            position += batch.count
            if overwriting && position + 256 << 10 > overwriteBytes { position = 0 }
            bytes += batch.count
            count += 1
        }
        precondition(fdatasync(descriptor) == 0)
        fsyncs += 1
        let synchronized = now()
        for writeStart in writeStarts { histogram.record((synchronized - writeStart) / 1000) }
    }
    let elapsed = Double(now() - start) / 1e9
    return Result(
        bytesPerSecond: Double(bytes) / elapsed, batchesPerSecond: Double(count) / elapsed,
        p50Microseconds: Double(histogram.valueAtPercentile(50)), p99Microseconds: Double(histogram.valueAtPercentile(99)), fsyncs: fsyncs)
}

/// `appenders` threads append for `seconds`. Under `always` each waits for its append to be durable
/// before the next (like a producer with acks), recording append→durable latency.
///
/// `steadyState`: the log has a retention budget and is filled (untimed, fsync never) until retention has
/// retired a segment, whose file the next roll reuses, then reopened and warmed up (see below); otherwise a
/// fresh log with default settings.
func logRun(directory: String, batches: [[UInt8]], policy: FsyncPolicy, appenders: Int, seconds: Double, steadyState: Bool) throws -> Result {
    freshDirectory(directory)
    let partition = directory + "/p-0"
    var configuration = LogConfiguration()
    if steadyState {
        // Default segment size (128 MiB) unless --segment-mib; retention of four segments.
        configuration.segmentBytesMax = options.segmentBytes
        configuration.retentionBytes = Int64(configuration.segmentBytesMax) * 4
        configuration.fsync = .never
        let filling = try PartitionLog.open(directory: partition, configuration: configuration)
        var index = 0
        while !((try? FileManager.default.contentsOfDirectory(atPath: partition)) ?? []).contains(where: { $0.hasSuffix(".spare") }) {
            for _ in 0..<64 {
                _ = try filling.append(batches[index % batches.count])
                index += 1
            }
        }
        try filling.close()
    }
    configuration.fsync = policy
    let evictor = options.coldSpares && steadyState ? SpareEvictor(directory: partition) : nil
    defer { evictor?.stop() }
    let log = try PartitionLog.open(directory: partition, configuration: configuration)
    let waitForDurability = policy == .always
    let histograms = (0..<appenders).map { _ in Box(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)) }
    let appended = (0..<appenders).map { _ in Box(0) }
    // The steady-state log runs untimed first until every file it held at open has been reused: a reopened
    // log's first segments are not the steady state (the partial active segment that close trimmed comes
    // back as a short spare, so one roll extends a file; see docs/BENCHMARKS.md).
    let window = LockedWindow()
    let warmUpBytes = steadyState ? configuration.segmentBytesMax * 6 : 0
    let group = DispatchGroup()
    for appender in 0..<appenders {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            var index = appender
            let done = DispatchSemaphore(value: 0)
            while true {
                let (start, deadline) = window.get()
                let before = now()
                if before >= deadline { break }
                let batch = batches[index % batches.count]
                index += appenders
                if waitForDurability {
                    guard (try? log.append(batch) { _ in done.signal() }) != nil else { fatalError("append failed") }
                    done.wait()
                    if before >= start { histograms[appender].value.record((now() - before) / 1000) }
                } else {
                    guard (try? log.append(batch)) != nil else { fatalError("append failed") }
                }
                if before >= start { appended[appender].value += batch.count }
            }
        }
        thread.start()
    }
    while log.currentStatistics().appendedBytes < warmUpBytes { Thread.sleep(forTimeInterval: 0.005) }
    let before = log.currentStatistics()
    let start = now()
    window.set(start: start, deadline: start + UInt64(seconds * 1e9))
    group.wait()
    try log.flush()
    let elapsed = Double(now() - start) / 1e9
    var statistics = log.currentStatistics()
    statistics.appendedBatches -= before.appendedBatches
    statistics.appendedBytes -= before.appendedBytes
    statistics.fsyncCount -= before.fsyncCount
    statistics.fsyncSecondsTotal -= before.fsyncSecondsTotal
    statistics.queuedGroupWrites -= before.queuedGroupWrites
    statistics.queuedAppendsWritten -= before.queuedAppendsWritten
    try log.close()
    var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    for histogram in histograms { merged.add(histogram.value) }
    if waitForDurability && options.percentiles {
        print("  percentiles µs: p90 \(merged.valueAtPercentile(90)) p95 \(merged.valueAtPercentile(95)) p99 \(merged.valueAtPercentile(99)) p99.9 \(merged.valueAtPercentile(99.9)) max \(merged.max); rolls ~\(steadyState ? statistics.appendedBytes / options.segmentBytes : statistics.segmentCount - 1); mean fsync µs \(Int(statistics.fsyncSecondsTotal / Double(max(1, statistics.fsyncCount)) * 1e6)) over \(statistics.fsyncCount), batches \(statistics.appendedBatches), appends per group write \(String(format: "%.1f", Double(statistics.queuedAppendsWritten) / Double(max(1, statistics.queuedGroupWrites))))")
    }
    let bytes = appended.reduce(0) { $0 + $1.value }
    return Result(
        bytesPerSecond: Double(bytes) / elapsed, batchesPerSecond: Double(statistics.appendedBatches) / elapsed,
        p50Microseconds: waitForDurability ? Double(merged.valueAtPercentile(50)) : nil,
        p99Microseconds: waitForDurability ? Double(merged.valueAtPercentile(99)) : nil,
        fsyncs: statistics.fsyncCount)
}

/// Drops the page cache of every `.spare` file in a directory every 50 ms until stopped (`--cold-spares`).
final class SpareEvictor: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    init(directory: String) {
        let thread = Thread { [self] in
            while !isStopped {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".spare") {
                    let descriptor = open(directory + "/" + name, O_RDONLY | O_CLOEXEC)
                    guard descriptor >= 0 else { continue }
                    _ = posix_fadvise(descriptor, 0, 0, Int32(POSIX_FADV_DONTNEED))
                    close(descriptor)
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            finished.signal()
        }
        thread.start()
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        finished.wait()
    }
}

/// When appends count: from `start` (after the warm-up) until `deadline`.
final class LockedWindow: @unchecked Sendable {
    private let lock = NSLock()
    private var start = UInt64.max
    private var deadline = UInt64.max

    func get() -> (start: UInt64, deadline: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        return (start, deadline)
    }

    func set(start: UInt64, deadline: UInt64) {
        lock.lock()
        self.start = start
        self.deadline = deadline
        lock.unlock()
    }
}

final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// Builds a log of `totalBytes`, closes it cleanly, drops the page cache if allowed, and times open.
func recoveryRun(directory: String, batches: [[UInt8]], totalBytes: Int, deleteIndexes: Bool) throws -> (seconds: Double, report: RecoveryReport) {
    let partition = directory + "/recovery-0"
    if !FileManager.default.fileExists(atPath: partition) {
        freshDirectory(directory)
        var configuration = LogConfiguration()
        configuration.fsync = .never
        let log = try PartitionLog.open(directory: partition, configuration: configuration)
        var written = 0
        var index = 0
        while written < totalBytes {
            let batch = batches[index % batches.count]
            _ = try log.append(batch)
            written += batch.count
            index += 1
        }
        try log.close()
    }
    if deleteIndexes {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: partition)) ?? [] where name.hasSuffix("index") {
            try? FileManager.default.removeItem(atPath: partition + "/" + name)
        }
    }
    // Cold cache when we may (root): recovery reads from disk, as after a reboot.
    if let handle = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") {
        sync()
        handle.write(Data("3\n".utf8))
        try? handle.close()
    }
    let start = now()
    let log = try PartitionLog.open(directory: partition)
    let seconds = Double(now() - start) / 1e9
    let report = log.recoveryReport
    try log.close()
    return (seconds, report)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

func medianResult(_ runs: [Result]) -> Result {
    Result(
        bytesPerSecond: median(runs.map(\.bytesPerSecond)), batchesPerSecond: median(runs.map(\.batchesPerSecond)),
        p50Microseconds: runs[0].p50Microseconds == nil ? nil : median(runs.compactMap(\.p50Microseconds)),
        p99Microseconds: runs[0].p99Microseconds == nil ? nil : median(runs.compactMap(\.p99Microseconds)),
        fsyncs: runs[0].fsyncs == nil ? nil : Int(median(runs.compactMap { $0.fsyncs.map(Double.init) })))
}

let options = Options(arguments: CommandLine.arguments)
let (batches, pointsPerBatch) = try makeBatches(count: 64)
let averageBatch = batches.reduce(0) { $0 + $1.count } / batches.count
print("batches: \(batches.count) distinct, ~\(averageBatch) bytes gzip each, \(pointsPerBatch) points each (~\(batches[0].count * 0 + 100)-byte points)")
print("directory: \(options.directory), \(options.seconds) s per run, median of \(options.runs) runs\n")

func format(_ result: Result, reference: Result?) -> String {
    let megabytes = result.bytesPerSecond / 1e6
    let points = result.batchesPerSecond * Double(pointsPerBatch)
    let ratio = reference.map { String(format: "%.2fx", result.bytesPerSecond / $0.bytesPerSecond) } ?? "1.00x"
    let p50 = result.p50Microseconds.map { String(format: "%.0f", $0) } ?? "-"
    let p99 = result.p99Microseconds.map { String(format: "%.0f", $0) } ?? "-"
    let p99Ratio = (result.p99Microseconds.flatMap { mine in reference?.p99Microseconds.map { mine / $0 } }).map { String(format: "%.2fx", $0) } ?? "-"
    return String(format: "%8.1f | %10.0f | %@ | %@ | %@ | %@ | %@", megabytes, points, ratio, p50, p99, p99Ratio, result.fsyncs.map(String.init) ?? "-")
}

print("| scenario | MB/s | points/s | vs bare loop | p50 µs | p99 µs | p99 vs bare | fsyncs |")
print("|---|---|---|---|---|---|---|---|")
let bare = medianResult((0..<options.runs).map { _ in bareLoop(directory: options.directory, batches: batches, seconds: options.seconds) })
print("| bare write+fdatasync loop | \(format(bare, reference: nil)) |")
// The disk's ceiling for group commit: 8 batches per fdatasync with nothing else in the way.
let ideal = medianResult((0..<options.runs).map { _ in bareLoop(directory: options.directory, batches: batches, seconds: options.seconds, groupSize: 8) })
print("| bare loop, 8 writes per fdatasync (ideal group of 8) | \(format(ideal, reference: bare)) |")
let bareOverwriting = medianResult((0..<options.runs).map { _ in
    bareLoop(directory: options.directory, batches: batches, seconds: options.seconds, overwriting: true)
})
print("| bare loop overwriting a written file | \(format(bareOverwriting, reference: bare)) |")
let idealOverwriting = medianResult((0..<options.runs).map { _ in
    bareLoop(directory: options.directory, batches: batches, seconds: options.seconds, groupSize: 8, overwriting: true)
})
print("| bare loop overwriting, 8 writes per fdatasync | \(format(idealOverwriting, reference: bare)) |")
for (policy, appenders, steadyState) in [
    (FsyncPolicy.always, 1, true), (.always, 8, true), (.always, 8, false), (.interval(milliseconds: 5), 1, true),
    (.interval(milliseconds: 5), 8, true), (.never, 1, true), (.never, 8, true),
] where !options.groupCommitOnly || (policy == .always && appenders == 8 && steadyState) {
    let runs = try (0..<options.runs).map { _ in
        try logRun(directory: options.directory, batches: batches, policy: policy, appenders: appenders, seconds: options.seconds, steadyState: steadyState)
    }
    let name = "log fsync \(policy), \(appenders) appender\(appenders == 1 ? "" : "s")\(steadyState ? (options.coldSpares ? ", spares kept out of the page cache" : "") : ", fresh log (no file to recycle)")"
    print("| \(name) | \(format(medianResult(runs), reference: bare)) |")
}
print("\nCRC-32C: \(CRC32C.usesHardware ? "CPU instruction" : "tables")")

if options.groupCommitOnly {
    try? FileManager.default.removeItem(atPath: options.directory)
    exit(0)
}
var cleanOpens: [Double] = []
var rebuildOpens: [Double] = []
var lastReport = RecoveryReport()
let recoveryDirectory = options.directory + "-recovery"
try? FileManager.default.removeItem(atPath: recoveryDirectory)
for _ in 0..<options.runs {
    let (seconds, report) = try recoveryRun(directory: recoveryDirectory, batches: batches, totalBytes: options.recoveryBytes, deleteIndexes: false)
    cleanOpens.append(seconds)
    lastReport = report
}
for _ in 0..<options.runs {
    rebuildOpens.append(try recoveryRun(directory: recoveryDirectory, batches: batches, totalBytes: options.recoveryBytes, deleteIndexes: true).seconds)
}
try? FileManager.default.removeItem(atPath: recoveryDirectory)
print("\nrecovery (open) of a \(options.recoveryBytes >> 20) MiB log, \(lastReport.segmentCount) segments, cold page cache when permitted:")
print(String(format: "  indexes intact:  median %.3f s (runs: %@)", median(cleanOpens), cleanOpens.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
print(String(format: "  indexes deleted: median %.3f s (runs: %@)", median(rebuildOpens), rebuildOpens.map { String(format: "%.3f", $0) }.joined(separator: ", ")))
print("  batches CRC-checked on open: \(lastReport.batchesValidated)")
try? FileManager.default.removeItem(atPath: options.directory)
