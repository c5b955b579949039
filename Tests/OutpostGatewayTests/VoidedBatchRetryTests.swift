import Foundation
import Logging
import OutpostCore
import OutpostTestSupport
import Testing

@testable import OutpostGateway
@testable import OutpostLog

/// A batch the log took and then voided — its queued group's write hit a full disk, as a copy-on-write
/// file system's overwrite of a recycled file can — goes back to its append worker and is appended again
/// after a backoff, as an append the disk refused at once is; it used to fail, and with it points that
/// MQTT had acknowledged and TCP/UDP senders cannot resend.
@Suite(.serialized) struct VoidedBatchRetryTests {
    @Test func aBatchTheLogVoidsForAFullDiskIsAppendedAgain() throws {
        let filesystem = try SmallFilesystem(size: "2m")
        defer { filesystem.unmount() }
        let directory = filesystem.path + "/log"
        var configuration = LogConfiguration()
        configuration.segmentBytesMax = 65_536
        configuration.retentionBytes = 131_072
        configuration.fsync = .always
        let log = try PartitionLog.open(directory: directory, configuration: configuration)
        defer { try? log.close() }

        // Fill until retention has retired a segment into the spare file, then on until a roll has
        // reused it: the active segment is a recycled file, whose old contents need no reservation.
        var sequence = 0
        func appendFiller() throws {
            var builder = RecordBatchBuilder()
            for _ in 0..<4 {
                builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(sequence), key: nil, value: Array(repeating: UInt8(sequence & 0x7f), count: 200))
                sequence += 1
            }
            _ = try log.append(try builder.build(compression: .none, compressor: nil))
            try log.flush()
        }
        func names(_ suffix: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
        }
        func inode(_ path: String) -> UInt64? {
            var status = stat()
            return stat(path, &status) == 0 ? UInt64(status.st_ino) : nil
        }
        for _ in 0..<500 where names(".spare").isEmpty { try appendFiller() }
        let spare = try #require(names(".spare").first, "retention never kept a spare file")
        let spareInode = try #require(inode(directory + "/" + spare))
        func activeIsRecycled() -> Bool { names(".log").last.map { inode(directory + "/" + $0) == spareInode } ?? false }
        for _ in 0..<500 where !activeIsRecycled() { try appendFiller() }
        try #require(activeIsRecycled(), "no roll reused the spare file")

        // Take the blocks under the old contents away and fill the disk: the next queued group's write
        // needs blocks the disk no longer has.
        let activePath = directory + "/" + (names(".log").last ?? "")
        let activeSize = try #require(try FileManager.default.attributesOfItem(atPath: activePath)[.size] as? NSNumber).intValue
        let activeBase = try #require(Int64(String(names(".log").last?.prefix(20) ?? "")))
        let batchesEnd = try log.read(from: Offset(activeBase), maxBytes: 1 << 20).bytes.count
        let holeStart = (batchesEnd / 4096 + 1) * 4096
        try #require(activeSize > holeStart + 16_384, "the recycled file has old contents past its batches")
        try SegmentFile(path: activePath, create: false).releaseSpace(activeSize - holeStart, at: holeStart)
        let filler = filesystem.fillCompletely()

        let metrics = GatewayMetrics()
        var logger = Logger(label: "outpost.test")
        logger.logLevel = .critical
        let workers = AppendWorkers(
            logs: [log], workerCount: 1, gate: BackPressureGate(high: 1000, low: 500), metrics: metrics, logger: logger,
            compression: .none, compressionLevel: 1)
        workers.start()
        defer { workers.stop() }
        let outcome = LockedOutcome()
        let completion = BatchCompletion { outcome.set($0) }
        completion.joinBatch()
        var builder = RecordBatchBuilder()
        let values = (0..<8).map { index in Array("greenhouse,device=gh-\(index) temperature=2\(index).5 1732300000000000000".utf8) + Array(repeating: UInt8(0x20), count: 1000) }
        for (index, value) in values.enumerated() {
            builder.append(timestampMilliseconds: 1_732_300_000_000 + Int64(index), key: Array("gh-\(index)".utf8), value: value)
        }
        let endBefore = log.logEndOffset
        workers.submit(PendingBatch(
            partition: 0, builder: builder, completions: [completion], mqttReceivedUptimes: [], sourceCounts: IngestSource.allCases.map { _ in 0 },
            openedUptime: DispatchTime.now().uptimeNanoseconds))
        completion.seal()

        // The log takes it and voids it; the worker puts it back and appends it again after a backoff (the
        // failed write's cut may already have left it the room it needs; else it waits for space).
        #expect(Self.waitUntil { workers.voidedRetriesForTesting >= 1 }, "the voided batch was not put back on its worker")
        #expect(log.failureReason == nil)

        try FileManager.default.removeItem(atPath: filler)
        #expect(Self.waitUntil { outcome.get() != nil }, "the batch was never answered")
        guard case .success? = outcome.get() else {
            Issue.record("the batch failed: \(String(describing: outcome.get()))")
            return
        }
        // Committed once, at the offsets the voided attempts had been given, and readable.
        #expect(log.logEndOffset == endBefore + 8)
        let read = try log.read(from: endBefore, maxBytes: 1 << 20)
        let batch = try RecordBatch.decode(read.bytes)
        #expect(batch.records.map(\.value) == values.map { Optional($0) })
        #expect(batch.records.first?.offset == endBefore.rawValue)
    }

    static func waitUntil(seconds: Double = 60, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }
}

/// The result a completion fired with, once.
final class LockedOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Void, LogError>?

    func set(_ newValue: Result<Void, LogError>) {
        lock.lock()
        result = newValue
        lock.unlock()
    }

    func get() -> Result<Void, LogError>? {
        lock.lock()
        defer { lock.unlock() }
        return result
    }
}
