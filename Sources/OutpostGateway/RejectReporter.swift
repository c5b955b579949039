import Foundation
import Logging
import OutpostCore
import OutpostLog

/// Makes sure no rejected input is silently lost: every reject is counted (by listener and reason),
/// logged at most once per `logIntervalSeconds` per listener and reason with a sample and the number
/// suppressed since, and — when dead-lettering is on — queued with its raw bytes and reason for the
/// `_rejected` topic.
final class RejectReporter: @unchecked Sendable {
    /// One log line per listener and reason per 10 s: enough to notice, never a flood.
    static let logIntervalSeconds: Double = 10
    /// Pending dead letters held before they are written; beyond it they are dropped (and counted).
    /// 4 MiB is thousands of rejected lines — a flood of garbage should not cost the gateway its memory.
    static let deadLetterPendingBytesMax = 4 << 20
    /// Raw bytes kept per dead letter (a rejected 16 MiB HTTP body is not worth keeping whole).
    static let deadLetterSampleBytesMax = 64 << 10

    private let metrics: GatewayMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var lastLogged: [String: (uptime: UInt64, suppressed: Int)] = [:]
    private let deadLetterLog: PartitionLog?
    private var pending: [(source: IngestSource, error: PointParseError, raw: [UInt8], receivedAt: Int64)] = []
    private var pendingBytes = 0
    private let gatewayId: [UInt8]

    init(metrics: GatewayMetrics, logger: Logger, deadLetterLog: PartitionLog?, gatewayId: String) {
        self.metrics = metrics
        self.logger = logger
        self.deadLetterLog = deadLetterLog
        self.gatewayId = Array(gatewayId.utf8)
    }

    func reject(_ error: PointParseError, source: IngestSource, raw: UnsafeRawBufferPointer, receivedAt: Int64) {
        metrics.rejected[source.index][error.reason]?.increment()
        let key = source.rawValue + "/" + error.reason.rawValue
        let now = DispatchTime.now().uptimeNanoseconds
        var logNow = false
        var suppressed = 0
        lock.lock()
        if let last = lastLogged[key], Double(now - last.uptime) / 1e9 < Self.logIntervalSeconds {
            lastLogged[key] = (last.uptime, last.suppressed + 1)
        } else {
            suppressed = lastLogged[key]?.suppressed ?? 0
            lastLogged[key] = (now, 0)
            logNow = true
        }
        var queued = false
        if deadLetterLog != nil {
            let sample = Array(raw.prefix(Self.deadLetterSampleBytesMax))
            if pendingBytes + sample.count <= Self.deadLetterPendingBytesMax {
                pending.append((source, error, sample, receivedAt))
                pendingBytes += sample.count
                queued = true
            }
        }
        lock.unlock()
        if deadLetterLog != nil && !queued { metrics.deadLetterDropped.increment() }
        if logNow {
            let sample = String(decoding: raw.prefix(160), as: UTF8.self)
            logger.warning("rejected input", metadata: [
                "listener": "\(source.rawValue)", "reason": "\(error.reason.rawValue)", "detail": "\(error.detail)",
                "line": "\(error.line)", "column": "\(error.column)", "sample": "\(sample)",
                "suppressed_since_last": "\(suppressed)",
            ])
        }
    }

    /// Writes queued dead letters to the `_rejected` topic. Called by the gateway's maintenance timer.
    func flushDeadLetters() {
        guard let deadLetterLog else { return }
        lock.lock()
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        lock.unlock()
        guard !batch.isEmpty else { return }
        var builder = RecordBatchBuilder()
        for entry in batch {
            let headers = [
                RecordHeader(key: "reason", value: Array(entry.error.reason.rawValue.utf8)),
                RecordHeader(key: "detail", value: Array(entry.error.detail.utf8)),
                RecordHeader(key: "listener", value: Array(entry.source.rawValue.utf8)),
                RecordHeader(key: "line", value: Array(String(entry.error.line).utf8)),
                RecordHeader(key: "column", value: Array(String(entry.error.column).utf8)),
                RecordHeader(key: "gateway", value: gatewayId),
            ]
            builder.append(
                timestampMilliseconds: TelemetryRecordEncoder.milliseconds(fromNanoseconds: entry.receivedAt),
                key: Array(entry.source.rawValue.utf8), value: entry.raw, headers: headers)
        }
        do {
            let bytes = try builder.build(compression: .gzip)
            _ = try deadLetterLog.append(bytes)
            metrics.deadLettered.increment(by: batch.count)
        } catch {
            metrics.deadLetterDropped.increment(by: batch.count)
            logger.error("could not write dead letters", metadata: ["count": "\(batch.count)", "error": "\(error)"])
        }
    }
}
