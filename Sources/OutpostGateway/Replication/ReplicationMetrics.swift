import Foundation
import Metrics
import OutpostCore
import OutpostLog

/// Replication's metrics: lag per partition in records, bytes and seconds; backlog on disk; batches in
/// flight; resends; failures; dropped data.
final class ReplicationMetrics: @unchecked Sendable {
    let localPartitionCount: Int
    private let lagRecords: [Gauge]
    private let lagBytes: [Gauge]
    private let lagSeconds: [Gauge]
    private let inFlight: [Gauge]
    private let cursors: [Gauge]
    let sentBytes = Counter(label: "outpost_gateway_replication_sent_bytes_total")
    let sentRecords = Counter(label: "outpost_gateway_replication_sent_records_total")
    let resends = Counter(label: "outpost_gateway_replication_resent_batches_total")
    let failures = Counter(label: "outpost_gateway_replication_failures_total")
    let droppedBytes = Counter(label: "outpost_gateway_replication_dropped_bytes_total")
    let droppedRecords = Counter(label: "outpost_gateway_replication_dropped_records_total")
    let backlog = Gauge(label: "outpost_gateway_replication_backlog_bytes")
    private let lock = NSLock()
    private var lastLagUpdate: [UInt64]
    private var backlogByPartition: [Int]
    private var lagByPartition: [Int64]

    init(localPartitionCount: Int) {
        self.localPartitionCount = localPartitionCount
        let labels = (0..<localPartitionCount).map { [("partition", String($0))] }
        lagRecords = labels.map { Gauge(label: "outpost_gateway_replication_lag_records", dimensions: $0) }
        lagBytes = labels.map { Gauge(label: "outpost_gateway_replication_lag_bytes", dimensions: $0) }
        lagSeconds = labels.map { Gauge(label: "outpost_gateway_replication_lag_seconds", dimensions: $0) }
        inFlight = labels.map { Gauge(label: "outpost_gateway_replication_in_flight_batches", dimensions: $0) }
        cursors = labels.map { Gauge(label: "outpost_gateway_replication_cursor", dimensions: $0) }
        lastLagUpdate = Array(repeating: 0, count: localPartitionCount)
        backlogByPartition = Array(repeating: 0, count: localPartitionCount)
        lagByPartition = Array(repeating: 0, count: localPartitionCount)
    }

    func sent(bytes: Int, records: Int) {
        sentBytes.increment(by: bytes)
        sentRecords.increment(by: records)
    }

    func resent(batches: Int) { if batches > 0 { resends.increment(by: batches) } }
    func failed() { failures.increment() }

    func acknowledged(partition: Int, cursor: Offset) {
        cursors[partition].record(cursor.rawValue)
    }

    /// Records lag; the bytes and seconds need a look at the log, so at most once a second per partition.
    func lag(partition: Int, records: Int64, log: PartitionLog, cursor: Offset, inFlight batches: Int) {
        lagRecords[partition].record(records)
        inFlight[partition].record(batches)
        let now = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        guard now - lastLagUpdate[partition] > 1_000_000_000 || records == 0 else {
            lock.unlock()
            return
        }
        lastLagUpdate[partition] = now
        lagByPartition[partition] = records
        lock.unlock()
        let bytes = log.approximateBytes(from: cursor)
        lagBytes[partition].record(bytes)
        var seconds = 0.0
        if records > 0, let timestamp = try? log.read(from: cursor, maxBytes: 1).bytes, let header = try? RecordBatchHeader(bytes: timestamp) {
            seconds = max(0, Date().timeIntervalSince1970 - Double(header.baseTimestamp) / 1000)
        }
        lagSeconds[partition].record(seconds)
        lock.lock()
        backlogByPartition[partition] = bytes
        let total = backlogByPartition.reduce(0, +)
        lock.unlock()
        backlog.record(total)
    }

    /// Total records not yet acknowledged centrally, as last seen.
    var lagRecordsTotal: Int64 {
        lock.lock()
        defer { lock.unlock() }
        return lagByPartition.reduce(0, +)
    }
}
