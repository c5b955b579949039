import Foundation
import Logging
import OutpostCore
import OutpostLog

/// Keeps the local topic within its disk budget when replication falls behind.
///
/// Replicated data goes first (retention never deletes below the replication cursor, the floor). When
/// unreplicated data alone exceeds the budget, the policy decides: `block` makes appends wait — the queue
/// fills, the gate closes, listeners push back — until replication catches up; `drop-oldest` deletes the
/// oldest segment anyway, counts and logs every byte, and writes a gap marker in its place.
final class DiskBudget: @unchecked Sendable {
    let budgetBytes: Int64
    let policy: OverflowPolicy
    let gatewayId: String
    let deviceTag: String
    let logs: [PartitionLog]
    let metrics: ReplicationMetrics
    let logger: Logger
    private let lock = NSLock()
    private var lastBlockedLog: UInt64 = 0
    /// Held from reading a segment's summary to writing its gap marker: append workers call `makeRoom`
    /// concurrently, and two of them must not drop two segments under one segment's description.
    private let dropLock = NSLock()

    init(budgetBytes: Int64, policy: OverflowPolicy, gatewayId: String, deviceTag: String, logs: [PartitionLog], metrics: ReplicationMetrics, logger: Logger) {
        self.budgetBytes = budgetBytes
        self.policy = policy
        self.gatewayId = gatewayId
        self.deviceTag = deviceTag
        self.logs = logs
        self.metrics = metrics
        self.logger = logger
    }

    /// What the logs hold on disk, spare segment files included: the budget is disk.
    var usedBytes: Int64 { logs.reduce(0) { $0 + Int64($1.currentStatistics().diskBytes) } }

    /// Called before appending `incoming` bytes. Returns when there is room (or the policy made room).
    func makeRoom(for incoming: Int) {
        guard usedBytes + Int64(incoming) > budgetBytes else { return }
        for log in logs { log.enforceRetention() }
        // Spare segment files (kept to be overwritten instead of appended to) are the cheapest bytes to
        // give back: before any data is dropped or ingest blocks.
        if usedBytes + Int64(incoming) > budgetBytes {
            for log in logs { log.releaseRecyclingReserve() }
        }
        var delayMilliseconds = 10
        while usedBytes + Int64(incoming) > budgetBytes {
            switch policy {
            case .dropOldest:
                guard dropOldest(making: incoming) else { return }  // only active segments left: nothing more to drop
            case .block:
                let now = DispatchTime.now().uptimeNanoseconds
                lock.lock()
                let shouldLog = now - lastBlockedLog > 10_000_000_000
                if shouldLog { lastBlockedLog = now }
                lock.unlock()
                if shouldLog {
                    logger.warning("disk budget reached with unreplicated data: ingest is blocked until replication catches up", metadata: [
                        "budget_bytes": "\(budgetBytes)", "used_bytes": "\(usedBytes)",
                    ])
                }
                Thread.sleep(forTimeInterval: Double(delayMilliseconds) / 1000)
                delayMilliseconds = min(delayMilliseconds * 2, 1000)
                for log in logs { log.enforceRetention() }
            }
        }
    }

    /// Drops the oldest sealed segment across partitions and writes its gap marker. False when none is left.
    private func dropOldest(making incoming: Int) -> Bool {
        dropLock.lock()
        defer { dropLock.unlock() }
        // Another worker may have made room while this one waited for the lock.
        if usedBytes + Int64(incoming) <= budgetBytes { return true }
        let candidates = logs.enumerated().compactMap { index, log in log.oldestSealedSegmentRange.map { (index, log, $0) } }
        guard let (partition, log, range) = candidates.min(by: { $0.1.currentStatistics().logStartOffset < $1.1.currentStatistics().logStartOffset }) else {
            return false
        }
        let (devices, records, carried) = summarize(log, range)
        // Another worker's retention may have deleted that segment since (its floor moved): then its bytes
        // are free already, and the caller's loop looks again rather than drop the next one unsummarized.
        guard let dropped = log.dropOldestSegment(expecting: range) else { return true }
        metrics.droppedBytes.increment(by: dropped.bytes)
        metrics.droppedRecords.increment(by: records)
        let gap = GapMarker.Description(
            gatewayId: gatewayId, partition: partition, offsets: dropped.offsets, bytes: dropped.bytes, records: records,
            reason: "disk budget of \(budgetBytes) bytes reached before replication (overflow: drop-oldest)", devices: devices)
        logger.error("dropped unreplicated data to stay within the disk budget", metadata: [
            "partition": "\(partition)", "offsets": "\(dropped.offsets.lowerBound)..<\(dropped.offsets.upperBound)",
            "bytes": "\(dropped.bytes)", "records": "\(records)", "devices": "\(devices.count)",
        ])
        do {
            // Markers of earlier drops that were still waiting in this segment go forward again: a
            // declaration must not vanish with the next drop.
            if !carried.isEmpty {
                var builder = RecordBatchBuilder()
                for marker in carried {
                    builder.append(timestampMilliseconds: marker.timestampMilliseconds, key: marker.key, value: marker.value, headers: marker.headers)
                }
                _ = try log.append(try builder.build(compression: .none))
            }
            _ = try log.append(try GapMarker.batch(gap, timestampMilliseconds: Int64(Date().timeIntervalSince1970 * 1000)))
        } catch {
            logger.critical("could not write the gap marker for dropped data", metadata: ["partition": "\(partition)", "error": "\(error)"])
        }
        return true
    }

    /// Per-device `seq` ranges and the record count of what is about to be dropped, and the gap markers it
    /// holds. Records below the replication cursor (the retention floor) already reached the brokers: they
    /// are neither counted nor declared.
    private func summarize(_ log: PartitionLog, _ range: Range<Offset>) -> (
        devices: [String: ClosedRange<Int64>], records: Int, carried: [Record]
    ) {
        var devices: [String: ClosedRange<Int64>] = [:]
        var records = 0
        var carried: [Record] = []
        let parser = LineProtocolParser()
        let start = max(range.lowerBound, log.retentionFloor ?? range.lowerBound)
        var offset = start
        let decompressor = try? GzipDecompressor()
        while offset < range.upperBound, let read = try? log.read(from: offset, maxBytes: 1 << 20, upTo: range.upperBound), read.batchCount > 0 {
            var iterator = RecordBatchIterator(read.bytes)
            while let (_, batchRange) = iterator.next() {
                guard let batch = try? RecordBatch.decode(Array(read.bytes[batchRange]), decompressor: decompressor) else { continue }
                for record in batch.records where record.offset >= start.rawValue {
                    if GapMarker.isMarker(record) {
                        carried.append(record)
                        continue
                    }
                    records += 1
                    guard let value = record.value, let point = try? value.withUnsafeBytes({ try parser.parsePoint(line: $0) }),
                        let device = point.tag(deviceTag), case .int(let seq)? = point.field("seq")
                    else { continue }
                    devices[device] = devices[device].map { min($0.lowerBound, seq)...max($0.upperBound, seq) } ?? seq...seq
                }
            }
            offset = read.nextOffset
        }
        return (devices, records, carried)
    }
}
