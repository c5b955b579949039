import Foundation
import OutpostCore
import OutpostLog
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Crash test with real processes: `outpost log append --fsync always --report-committed` is killed with
/// SIGKILL at random moments; every offset it reported committed must be present and intact after the
/// log is reopened (recovered), hold exactly the line that was sent, and the log must verify.
///
/// The run is decided by one seed (`OUTPOST_CRASH_SEED`, printed on failure); `OUTPOST_CRASH_ROUNDS` sets
/// the number of rounds (default 50; the recycling variant runs half as many) for a longer run.
///
/// The second test runs the child with 4 KiB segments and 16 KiB retention, so segments roll and retention
/// hands their files back for reuse every few batches: the child is killed while appending into a recycled
/// file, whose old contents follow the new batches until recovery cuts them.
@Suite(.serialized) struct LogCrashTests {
    static let topic = "crash"
    static let partitionCount = 3
    static let batchRecords = 40
    static let roundsPerDirectory = 5
    static let deviceCount = 37

    static var rounds: Int { Int(ProcessInfo.processInfo.environment["OUTPOST_CRASH_ROUNDS"] ?? "") ?? 50 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["OUTPOST_CRASH_SEED"] ?? "") ?? 0x0C4A_5E00_0000_0042 }

    /// SplitMix64: the run's only source of randomness.
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

    /// One input line: what the child receives and, verbatim, the record value it must store.
    struct Line {
        var text: String
        var device: String
        var timestampMilliseconds: Int64
    }

    static func makeLines(from firstSequence: Int, count: Int, using generator: inout SplitMix64) -> [Line] {
        (firstSequence..<(firstSequence + count)).map { sequence in
            let device = String(format: "dev-%02d", Int.random(in: 0..<deviceCount, using: &generator))
            let nanoseconds = Int64(1_732_300_000_000_000_000) + Int64(sequence) * 1_000_123
            let temperature = Double(Int.random(in: -200...400, using: &generator)) / 10
            let text = "climate,device=\(device),site=north temp=\(temperature),seq=\(sequence)i \(nanoseconds)"
            return Line(text: text, device: device, timestampMilliseconds: nanoseconds / 1_000_000)
        }
    }

    /// A running `outpost log append` child: stdin fed from a thread, stdout and stderr collected.
    final class Child: @unchecked Sendable {
        let process = Process()
        private let finished = DispatchGroup()
        private let lock = NSLock()
        private var stdoutData = Data()
        private var stderrData = Data()
        private var sawCommit = false
        private let firstCommit = DispatchSemaphore(value: 0)

        init(dataDirectory: String, input: [UInt8], extraArguments: [String]) throws {
            process.executableURL = TestEnvironment.outpostBinary
            process.arguments = [
                "log", "append", "--dir", dataDirectory, "--topic", LogCrashTests.topic,
                "--partitions", String(LogCrashTests.partitionCount), "--batch-records", String(LogCrashTests.batchRecords),
                "--fsync", "always", "--report-committed",
            ] + extraArguments
            let stdin = Pipe()
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            let writer = stdin.fileHandleForWriting.fileDescriptor
            // Feed the input in pieces, as a stream would arrive; stop quietly when the child is gone.
            finished.enter()
            Thread.detachNewThread { [finished] in
                defer { finished.leave() }
                var position = 0
                input.withUnsafeBytes { raw in
                    while position < raw.count {
                        let count = min(16 << 10, raw.count - position)
                        let written = write(writer, raw.baseAddress! + position, count)
                        if written < 0 {
                            if errno == EINTR { continue }
                            return
                        }
                        position += written
                    }
                }
                try? stdin.fileHandleForWriting.close()
            }
            finished.enter()
            Thread.detachNewThread { [self, finished] in
                defer { finished.leave() }
                // Incrementally, to notice the first commit report as it arrives.
                while true {
                    let chunk = stdout.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    lock.lock()
                    stdoutData.append(chunk)
                    let first = !sawCommit && stdoutData.starts(with: Array("committed ".utf8))
                    if first { sawCommit = true }
                    lock.unlock()
                    if first { firstCommit.signal() }
                }
            }
            finished.enter()
            Thread.detachNewThread { [self, finished] in
                defer { finished.leave() }
                let data = stderr.fileHandleForReading.readDataToEndOfFile()
                lock.lock()
                stderrData = data
                lock.unlock()
            }
        }

        /// Waits (bounded) until the child has reported its first commit. False if it never did.
        func waitForFirstCommit(seconds: Double) -> Bool {
            firstCommit.wait(timeout: .now() + seconds) == .success
        }

        /// Sends SIGKILL if the child is still running. Returns whether it was.
        func killNine() -> Bool {
            guard process.isRunning else { return false }
            kill(process.processIdentifier, SIGKILL)
            return true
        }

        /// Waits for the child and for its pipes to drain.
        func wait() -> (status: Int32, killed: Bool, stdout: String, stderr: String) {
            process.waitUntilExit()
            finished.wait()
            lock.lock()
            defer { lock.unlock() }
            return (
                process.terminationStatus, process.terminationReason == .uncaughtSignal,
                String(decoding: stdoutData, as: UTF8.self), String(decoding: stderrData, as: UTF8.self)
            )
        }
    }

    struct Committed: Hashable {
        var partition: Int
        var first: Int64
        var last: Int64
    }

    static func parseCommitted(_ output: String) -> [Committed] {
        // Only whole lines: a line cut by the kill is not a report.
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        if !output.hasSuffix("\n") { lines.removeLast() }
        return lines.compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 4, fields[0] == "committed", let partition = Int(fields[1]), let first = Int64(fields[2]),
                let last = Int64(fields[3])
            else { return nil }
            return Committed(partition: partition, first: first, last: last)
        }
    }

    /// The records of a partition from `from` to its end, decoded.
    static func records(of log: PartitionLog, from start: Offset) throws -> [Record] {
        var records: [Record] = []
        var next = start
        var reads = 0
        while next < log.logEndOffset, reads < 1_000_000 {
            let result = try log.read(from: next, maxBytes: 1 << 20)
            if result.batchCount == 0 { break }
            var iterator = RecordBatchIterator(result.bytes)
            while let (_, range) = iterator.next() {
                records += try RecordBatch.decode(Array(result.bytes[range])).records
            }
            next = result.nextOffset
            reads += 1
        }
        return records.filter { $0.offset >= start.rawValue }
    }

    @Test func committedRecordsSurviveKillNine() throws {
        try Self.crashRounds(rounds: Self.rounds, seed: Self.seed, extraArguments: [], recycling: false)
    }

    @Test func committedRecordsSurviveKillNineWhileSegmentFilesAreRecycled() throws {
        try Self.crashRounds(
            rounds: max(1, Self.rounds / 2), seed: Self.seed, extraArguments: ["--segment-bytes", "4096", "--retention-bytes", "16384"],
            recycling: true)
    }

    /// With `recycling`, retention deletes old offsets: checks start at the log start offset, and the run must
    /// have seen spare files and cut recycled files' old contents.
    static func crashRounds(rounds: Int, seed: UInt64, extraArguments: [String], recycling: Bool) throws {
        signal(SIGPIPE, SIG_IGN)  // the input feeder writes into a pipe whose reader gets killed
        var generator = SplitMix64(seed: seed)
        let root = try TestEnvironment.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let replay = "replay: OUTPOST_CRASH_SEED=\(seed) OUTPOST_CRASH_ROUNDS=\(Self.rounds)"

        var nextSequence = 0
        var killedRounds = 0
        var killedAfterCommits = 0
        var tornTails = 0
        var committedTotal = 0
        var sparesSeen = 0
        var recycledCuts = 0
        var round = 0
        while round < rounds {
            let dataDirectory = root.appendingPathComponent("data-\(round)").path
            // Per partition: the line at each offset, as the log must hold it.
            var expected: [[Line]] = Array(repeating: [], count: Self.partitionCount)
            let group = min(Self.roundsPerDirectory, rounds - round)
            for _ in 0..<group {
                defer { round += 1 }
                let context = "round \(round) (\(replay))"
                // Every tenth round the child finishes. The others get SIGKILL: one in five at a random moment
                // from its start (often during open and recovery), the rest at a random moment after its
                // first commit report, while it is appending and committing.
                let finishes = round % 10 == 9
                let killEarly = round % 5 == 2
                let lineCount = finishes ? Int.random(in: 100...400, using: &generator) : Int.random(in: 3000...6000, using: &generator)
                let lines = Self.makeLines(from: nextSequence, count: lineCount, using: &generator)
                nextSequence += lineCount
                let delay = killEarly ? Double.random(in: 0...0.4, using: &generator) : Double.random(in: 0...0.6, using: &generator)
                let byPartition = (0..<Self.partitionCount).map { partition in
                    lines.filter { Partitioner.partition(forKey: Array($0.device.utf8), partitionCount: Self.partitionCount) == partition }
                }
                let input = Array(lines.map { $0.text + "\n" }.joined().utf8)

                let child = try Child(dataDirectory: dataDirectory, input: input, extraArguments: extraArguments)
                var killed = false
                if !finishes {
                    if !killEarly {
                        #expect(child.waitForFirstCommit(seconds: 30), "\(context): no commit report within 30 s")
                    }
                    Thread.sleep(forTimeInterval: delay)
                    killed = child.killNine()
                }
                let outcome = child.wait()
                if finishes || !killed {
                    #expect(outcome.status == 0 && !outcome.killed, "\(context): the child failed: \(outcome.stderr.suffix(2000))")
                }
                let committed = Self.parseCommitted(outcome.stdout)
                committedTotal += committed.count
                if killed {
                    killedRounds += 1
                    if !committed.isEmpty { killedAfterCommits += 1 }
                }

                // Reopen (this recovers), then check what must be there.
                for partition in 0..<Self.partitionCount {
                    let directory = LogLayout.partitionDirectory(dataDirectory, topic: Self.topic, partition: partition)
                    let start = expected[partition].count
                    guard FileManager.default.fileExists(atPath: directory) else {
                        #expect(committed.allSatisfy { $0.partition != partition }, "\(context): partition \(partition) reported commits but has no directory")
                        continue
                    }
                    if (try FileManager.default.contentsOfDirectory(atPath: directory)).contains(where: { $0.hasSuffix(".spare") }) {
                        sparesSeen += 1
                    }
                    let log = try PartitionLog.open(directory: directory)
                    defer { try? log.close() }
                    let report = log.recoveryReport
                    if report.truncatedBytes > 0 { tornTails += 1 }
                    if report.truncationReason?.contains("recycled") == true { recycledCuts += 1 }
                    #expect(report.corruptSealedSegments.isEmpty, "\(context): \(report.corruptSealedSegments)")
                    let end = Int(log.logEndOffset.rawValue)
                    #expect(end >= start, "\(context): partition \(partition) lost records of earlier rounds (end \(end) < \(start))")
                    #expect(end - start <= byPartition[partition].count, "\(context): partition \(partition) holds more than was sent")
                    let stored = end - start
                    // Retention may have deleted this round's first offsets (never with `recycling` off).
                    let logStart = Int(log.logStartOffset.rawValue)
                    #expect(recycling || logStart == 0, "\(context)")
                    let checkedFrom = max(start, logStart)

                    for report in committed where report.partition == partition {
                        #expect(report.last < Int64(end), "\(context): committed \(report.first)…\(report.last) of partition \(partition) is gone (end \(end))")
                        #expect(report.first >= Int64(start), "\(context): commit report \(report) for an earlier round's offsets")
                        #expect((report.first - Int64(start)) % Int64(Self.batchRecords) == 0, "\(context): \(report) is not on a batch boundary")
                        #expect(report.last - report.first + 1 <= Int64(Self.batchRecords), "\(context): \(report)")
                    }
                    if finishes || !killed {
                        #expect(stored == byPartition[partition].count, "\(context): a clean exit must leave every line of partition \(partition)")
                    }

                    // The records this round added are exactly the lines sent, in order, with key and timestamp.
                    let added = try Self.records(of: log, from: Offset(Int64(checkedFrom)))
                    #expect(added.count == end - checkedFrom, "\(context): partition \(partition) reads back \(added.count) records from \(checkedFrom), end \(end)")
                    var mismatches: [String] = []
                    for (index, record) in added.prefix(end - checkedFrom).enumerated() {
                        let line = byPartition[partition][checkedFrom - start + index]
                        if record.offset != Int64(checkedFrom + index) || record.value != Array(line.text.utf8)
                            || record.key != Array(line.device.utf8) || record.timestampMilliseconds != line.timestampMilliseconds
                        {
                            mismatches.append("offset \(record.offset): \(String(decoding: record.value ?? [], as: UTF8.self)) ≠ \(line.text)")
                        }
                    }
                    #expect(mismatches.isEmpty, "\(context): partition \(partition): \(mismatches.count) wrong records, e.g. \(mismatches.prefix(3))")
                    expected[partition] += byPartition[partition].prefix(stored)

                    let check = try LogInspector.verify(partitionDirectory: directory)
                    #expect(check.isIntact, "\(context): partition \(partition) does not verify after recovery: \(check.problems)")
                    #expect(check.nextOffset.map { Int($0.rawValue) } ?? 0 == end, "\(context)")
                }
            }
            // Once per directory: the whole of every partition, across all its rounds and recoveries.
            for partition in 0..<Self.partitionCount {
                let directory = LogLayout.partitionDirectory(dataDirectory, topic: Self.topic, partition: partition)
                guard FileManager.default.fileExists(atPath: directory) else { continue }
                let log = try PartitionLog.open(directory: directory)
                defer { try? log.close() }
                #expect(log.recoveryReport.truncatedBytes == 0, "a recovered, cleanly closed log was cut again (\(replay))")
                let logStart = Int(log.logStartOffset.rawValue)
                let all = try Self.records(of: log, from: Offset(Int64(logStart)))
                #expect(all.map(\.value) == expected[partition].dropFirst(logStart).map { Array($0.text.utf8) }, "\(dataDirectory) partition \(partition) differs from what was sent (\(replay))")
            }
        }
        // The run must actually have crashed children that had committed something.
        #expect(killedRounds >= rounds / 2, "only \(killedRounds) of \(rounds) rounds killed a running child (\(replay))")
        #expect(killedAfterCommits >= rounds / 2, "only \(killedAfterCommits) kills came after commits (\(replay))")
        #expect(committedTotal > 0)
        if recycling {
            // Recycling must really have happened: spare files on disk, and kills inside recycled files.
            #expect(sparesSeen > 0, "no spare segment file was ever seen (\(replay))")
            #expect(recycledCuts > 0, "no recovery cut a recycled file's old contents (\(replay))")
        }
        print("crash test\(recycling ? " (recycled segment files)" : ""): \(rounds) rounds, \(killedRounds) kills (\(killedAfterCommits) after commits), \(committedTotal) commit reports, \(tornTails) tails cut (\(recycledCuts) in recycled files), \(sparesSeen) spare files seen; seed \(seed)")
    }
}
