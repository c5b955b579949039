import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import OutpostCore
import OutpostLog

/// parse → validate and apply limits → enrich → partition → batch → gzip → append with group commit.
///
/// Listeners hand it raw bytes on their event loop. Line protocol is validated in place and the validated
/// bytes are stored as they came (only a timestamp is added when missing); JSON readings and plain MQTT
/// values are decoded to points and written as line protocol. Every stage is bounded: batches by
/// `batchBytesMax`, the queue to the append workers by the back-pressure gate, rejects' dead letters by
/// `RejectReporter`'s byte bound.
public final class IngestPipeline: Sendable {
    public let configuration: GatewayConfiguration
    public let topicLog: TopicLog
    let deadLetterTopic: TopicLog?
    let workers: AppendWorkers
    /// Store and forward to the central brokers, when configured.
    public let replicator: Replicator?
    public let gate: BackPressureGate
    let metrics: GatewayMetrics
    let rejects: RejectReporter
    let logger: Logger
    private let batchers: [ObjectIdentifier: LoopBatcher]
    private let settings: NIOLockedValueBox<Settings>

    /// What a reload (SIGHUP) may change without a restart.
    struct Settings: Sendable {
        var limits: PointLimits
    }

    public init(configuration: GatewayConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        metrics = GatewayMetrics()
        var logConfiguration = configuration.log
        if let replication = configuration.replication, replication.enabled, let budget = replication.diskBudgetBytes {
            // Each partition's share of the budget sizes its segments, so retention (which deletes replicated
            // segments only) can keep the whole topic within it.
            let share = LogConfiguration.forBudget(bytes: budget / Int64(configuration.partitions))
            logConfiguration.segmentBytesMax = min(logConfiguration.segmentBytesMax, share.segmentBytesMax)
            logConfiguration.retentionBytes = share.retentionBytes
        }
        topicLog = try TopicLog(
            dataDirectory: configuration.dataDirectory, topic: configuration.topic,
            partitionCount: configuration.partitions, configuration: logConfiguration)
        for partition in topicLog.partitions {
            let report = partition.recoveryReport
            if report.truncatedBytes > 0 || !report.corruptSealedSegments.isEmpty {
                logger.warning("partition recovered on start", metadata: [
                    "directory": "\(partition.directory)", "truncated_bytes": "\(report.truncatedBytes)",
                    "corrupt_sealed_segments": "\(report.corruptSealedSegments.count)",
                ])
            }
        }
        if let deadLetter = configuration.deadLetterTopic {
            var deadLetterConfiguration = configuration.log
            deadLetterConfiguration.segmentBytesMax = min(deadLetterConfiguration.segmentBytesMax, 16 << 20)
            deadLetterTopic = try TopicLog(
                dataDirectory: configuration.dataDirectory, topic: deadLetter, partitionCount: 1,
                configuration: deadLetterConfiguration)
        } else {
            deadLetterTopic = nil
        }
        let high = configuration.queueBatchesMax
        gate = BackPressureGate(high: high, low: max(0, high / 2))
        let topic = topicLog
        replicator = try configuration.replication.flatMap { $0.enabled ? $0 : nil }.map {
            try Replicator(
                configuration: $0, gatewayId: configuration.gatewayId, topic: topic, dataDirectory: configuration.dataDirectory,
                deviceTag: configuration.deviceTag, group: group, logger: logger)
        }
        workers = AppendWorkers(
            logs: topicLog.partitions, workerCount: configuration.workers, gate: gate, metrics: metrics, logger: logger,
            compression: configuration.compression, compressionLevel: configuration.compressionLevel, budget: replicator?.budget)
        rejects = RejectReporter(
            metrics: metrics, logger: logger, deadLetterLog: deadLetterTopic?.partitions.first, gatewayId: configuration.gatewayId)
        settings = NIOLockedValueBox(Settings(limits: configuration.limits))
        let headers = [RecordHeader(key: "gateway", value: Array(configuration.gatewayId.utf8))]
        var batchers: [ObjectIdentifier: LoopBatcher] = [:]
        let workers = self.workers
        for loop in group.makeIterator() {
            batchers[ObjectIdentifier(loop)] = LoopBatcher(
                eventLoop: loop, partitionCount: configuration.partitions, batchBytesMax: configuration.batchBytesMax,
                lingerMilliseconds: configuration.lingerMilliseconds, headers: headers, submit: { workers.submit($0) })
        }
        self.batchers = batchers
        workers.start()
    }

    func batcher(for loop: any EventLoop) -> LoopBatcher {
        guard let batcher = batchers[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop \(loop) is not one of the pipeline's group")
        }
        return batcher
    }

    var limits: PointLimits { settings.withLockedValue { $0.limits } }

    /// Applies reloadable settings (SIGHUP).
    public func reload(limits: PointLimits) {
        settings.withLockedValue { $0.limits = limits }
    }

    /// Wall-clock nanoseconds: the receive time stamped on points without one.
    static func wallClockNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    static func uptimeNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: Shutdown

    /// Hands every open batch to the workers, waits for them to be appended, then fsyncs and closes the logs.
    public func shutdown(group: any EventLoopGroup) async {
        // Replication stops first: what is flushed below stays on disk and is shipped on the next start.
        await replicator?.stop()
        for loop in group.makeIterator() {
            let batcher = batcher(for: loop)
            try? await loop.submit { batcher.flushAll() }.get()
        }
        rejects.flushDeadLetters()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let workers = self.workers
            Thread.detachNewThread {
                workers.stop()
                continuation.resume()
            }
        }
        gate.release()
        do {
            try topicLog.close()
            try deadLetterTopic?.close()
        } catch {
            logger.error("closing the log failed", metadata: ["error": "\(error)"])
        }
    }

    /// Periodic work: dead letters, gauges from the logs, retention. Called by the gateway's timer.
    func maintenance(retention: Bool) {
        rejects.flushDeadLetters()
        for partition in topicLog.partitions where retention { partition.enforceRetention() }
        metrics.log.record(topicLog.partitions.map { $0.currentStatistics() })
        metrics.backPressureSeconds.record(gate.closedSeconds)
    }

    var health: (healthy: Bool, details: [(String, String)]) {
        var details: [(String, String)] = [("gate", gate.isOpen ? "open" : "backpressure"), ("queued_batches", String(workers.queuedBatches))]
        var healthy = true
        for partition in topicLog.partitions {
            let statistics = partition.currentStatistics()
            details.append(("partition_\(partition.directory.split(separator: "-").last ?? "")_end_offset", String(statistics.logEndOffset.rawValue)))
        }
        if let replicator {
            details.append(("replication_lag_records", String(replicator.lagRecords)))
        }
        if let failure = topicLog.partitions.lazy.compactMap(\.failureReason).first {
            healthy = false
            details.append(("log", "\(failure)"))
        }
        return (healthy, details)
    }
}

// MARK: - Decoding paths

extension IngestPipeline {
    /// Outcome of offering a buffer.
    struct StreamProgress {
        /// Bytes fully handled (accepted or rejected); the rest is an incomplete entry to keep.
        var consumed: Int
        /// 1-based number of the line at `consumed`.
        var line: Int
        /// The last entry handled ran into the end of the buffer (it was rejected as too long): the rest of
        /// that line, still to come, must be skipped.
        var endsInsideRejectedLine = false
    }

    /// Line-oriented input (TCP stream, UDP datagram): every complete entry is stored or rejected.
    /// An entry cut by the end of the buffer is left unconsumed unless `endOfInput`.
    func ingestLines(
        _ buffer: UnsafeRawBufferPointer, endOfInput: Bool, format: PayloadFormat, source: IngestSource,
        batcher: LoopBatcher, firstLine: Int, completion: BatchCompletion? = nil, mqttReceivedUptime: UInt64? = nil,
        precision: TimestampPrecision = .nanoseconds
    ) -> StreamProgress {
        let limits = self.limits
        let parser = LineProtocolParser(precision: precision, limits: limits)
        let deviceKey = batcher.deviceTagKey(configuration.deviceTag)
        let receivedAt = Self.wallClockNanoseconds()
        let now = Self.uptimeNanoseconds()
        var cursor = LineProtocolCursor()
        var progress = StreamProgress(consumed: 0, line: firstLine)
        var received = 0
        while true {
            let before = cursor
            guard let entry = parser.nextEntry(in: buffer, cursor: &cursor, deviceTagKey: deviceKey) else {
                progress = StreamProgress(consumed: cursor.position, line: firstLine + cursor.line - 1)
                break
            }
            if !entry.terminatedByNewline && !endOfInput && entry.bytes.count <= limits.lineBytesMax {
                progress = StreamProgress(consumed: before.position, line: firstLine + before.line - 1)
                break
            }
            received += 1
            if !entry.terminatedByNewline && !endOfInput { progress.endsInsideRejectedLine = true }
            let raw = UnsafeRawBufferPointer(rebasing: buffer[entry.bytes])
            switch entry.layout {
            case .success(let layout):
                let verbatimEnd = precision == .nanoseconds && layout.hasTimestamp ? entry.bytes.upperBound : nil
                batcher.addLine(buffer, layout: layout, verbatimEnd: verbatimEnd, receivedAt: receivedAt, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
            case .failure(var error):
                error.line += firstLine - 1
                if format != .lineProtocol, let first = raw.first(where: { $0 != 0x20 && $0 != 0x09 }),
                    first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
                {
                    received -= 1
                    received += ingestJSON(raw, source: source, batcher: batcher, line: error.line, receivedAt: receivedAt, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
                } else {
                    rejects.reject(error, source: source, raw: raw, receivedAt: receivedAt)
                }
            }
            progress = StreamProgress(consumed: cursor.position, line: firstLine + cursor.line - 1, endsInsideRejectedLine: progress.endsInsideRejectedLine)
        }
        if received > 0 { metrics.received[source.index].increment(by: received) }
        return progress
    }

    /// One JSON document of readings. Returns how many readings it held (stored or rejected).
    @discardableResult
    func ingestJSON(
        _ document: UnsafeRawBufferPointer, source: IngestSource, batcher: LoopBatcher, line: Int, receivedAt: Int64,
        completion: BatchCompletion?, mqttReceivedUptime: UInt64?, now: UInt64
    ) -> Int {
        var mapping = JSONReadingMapping()
        mapping.deviceKey = configuration.deviceTag
        mapping.deviceTag = configuration.deviceTag
        let parser = JSONReadingParser(mapping: mapping, limits: limits)
        let results = parser.parse(document: document, receivedAtNanoseconds: receivedAt, line: line)
        for result in results {
            switch result {
            case .success(let point):
                batcher.addPoint(point, deviceTag: configuration.deviceTag, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now, rejects: rejects)
            case .failure(let error):
                rejects.reject(error, source: source, raw: document, receivedAt: receivedAt)
            }
        }
        return results.count
    }

    /// An HTTP write body (line protocol): all or nothing. Every line is validated before any is stored;
    /// the first bad line rejects the whole request. Returns the number of points, or the first error.
    func ingestWrite(
        _ body: UnsafeRawBufferPointer, precision: TimestampPrecision, batcher: LoopBatcher, completion: BatchCompletion
    ) -> Result<Int, PointParseError> {
        let parser = LineProtocolParser(precision: precision, limits: limits)
        let deviceKey = batcher.deviceTagKey(configuration.deviceTag)
        var cursor = LineProtocolCursor()
        var layouts: [(layout: LineLayout, end: Int)] = []
        while let entry = parser.nextEntry(in: body, cursor: &cursor, deviceTagKey: deviceKey) {
            switch entry.layout {
            case .success(let layout): layouts.append((layout, entry.bytes.upperBound))
            case .failure(let error):
                let receivedAt = Self.wallClockNanoseconds()
                rejects.reject(error, source: .http, raw: UnsafeRawBufferPointer(rebasing: body[entry.bytes]), receivedAt: receivedAt)
                metrics.received[IngestSource.http.index].increment(by: layouts.count + 1)
                return .failure(error)
            }
        }
        let receivedAt = Self.wallClockNanoseconds()
        let now = Self.uptimeNanoseconds()
        for (layout, end) in layouts {
            let verbatimEnd = precision == .nanoseconds && layout.hasTimestamp ? end : nil
            batcher.addLine(body, layout: layout, verbatimEnd: verbatimEnd, receivedAt: receivedAt, source: .http, completion: completion, mqttReceivedUptime: nil, now: now)
        }
        metrics.received[IngestSource.http.index].increment(by: layouts.count)
        return .success(layouts.count)
    }

    /// A plain MQTT value addressed by a topic template.
    func ingestPlainValue(
        topic: String, payload: UnsafeRawBufferPointer, template: TopicTemplate, batcher: LoopBatcher, receivedUptime: UInt64
    ) {
        let receivedAt = Self.wallClockNanoseconds()
        metrics.received[IngestSource.mqtt.index].increment()
        var template = template
        template.deviceTag = configuration.deviceTag
        switch template.point(topic: topic, payload: payload, receivedAtNanoseconds: receivedAt) {
        case .success(let point):
            batcher.addPoint(point, deviceTag: configuration.deviceTag, source: .mqtt, completion: nil, mqttReceivedUptime: receivedUptime, now: Self.uptimeNanoseconds(), rejects: rejects)
        case .failure(let error):
            rejects.reject(error, source: .mqtt, raw: payload, receivedAt: receivedAt)
        }
    }
}

extension LoopBatcher {
    /// The device tag key as bytes (cached per loop).
    func deviceTagKey(_ tag: String) -> [UInt8] {
        if cachedDeviceTagKey.isEmpty { cachedDeviceTagKey = Array(tag.utf8) }
        return cachedDeviceTagKey
    }

    /// Stores a validated line: its bytes as received up to the end of the field set, then the timestamp
    /// in ns (the receive time when it had none). Key = the unescaped device tag value.
    ///
    /// `verbatimEnd`: when the line already carries a timestamp in ns, the whole line (up to this position)
    /// is the value as it stands, stored straight from the input buffer without a copy.
    func addLine(
        _ buffer: UnsafeRawBufferPointer, layout: LineLayout, verbatimEnd: Int?, receivedAt: Int64, source: IngestSource,
        completion: BatchCompletion?, mqttReceivedUptime: UInt64?, now: UInt64
    ) {
        let nanoseconds = layout.timestampNanoseconds ?? receivedAt
        let timestamp = TelemetryRecordEncoder.milliseconds(fromNanoseconds: nanoseconds)
        if let verbatimEnd {
            addLineValue(buffer, layout: layout, value: UnsafeRawBufferPointer(rebasing: buffer[layout.measurement.lowerBound..<verbatimEnd]), timestamp: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
            return
        }
        scratchValue.removeAll(keepingCapacity: true)
        scratchValue.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[layout.measurement.lowerBound..<layout.fieldSetEnd]))
        scratchValue.append(UInt8(ascii: " "))
        TelemetryRecordEncoder.appendDecimal(nanoseconds, to: &scratchValue)
        let value = scratchValue
        value.withUnsafeBytes { valueBytes in
            addLineValue(buffer, layout: layout, value: valueBytes, timestamp: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
        }
    }

    private func addLineValue(
        _ buffer: UnsafeRawBufferPointer, layout: LineLayout, value valueBytes: UnsafeRawBufferPointer, timestamp: Int64,
        source: IngestSource, completion: BatchCompletion?, mqttReceivedUptime: UInt64?, now: UInt64
    ) {
        guard let range = layout.deviceTagValue else {
            add(key: nil, value: valueBytes, timestampMilliseconds: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
            return
        }
        let rawKey = UnsafeRawBufferPointer(rebasing: buffer[range])
        if !rawKey.contains(UInt8(ascii: "\\")) {
            add(key: rawKey, value: valueBytes, timestampMilliseconds: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
        } else {
            let key = LineProtocolElement.tagValue.unescaped(rawKey)
            key.withUnsafeBytes { keyBytes in
                add(key: keyBytes, value: valueBytes, timestampMilliseconds: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
            }
        }
    }

    /// Stores a decoded point (JSON, plain value) as canonical line protocol.
    func addPoint(
        _ point: Point, deviceTag: String, source: IngestSource, completion: BatchCompletion?, mqttReceivedUptime: UInt64?,
        now: UInt64, rejects: RejectReporter
    ) {
        scratchValue.removeAll(keepingCapacity: true)
        do {
            try LineProtocolSerializer().append(point, to: &scratchValue)
        } catch {
            let detail = PointParseError(error.reason, error.detail, column: 1)
            let text = Array("\(point)".utf8)
            text.withUnsafeBytes { rejects.reject(detail, source: source, raw: $0, receivedAt: point.timestampNanoseconds ?? 0) }
            return
        }
        let timestamp = TelemetryRecordEncoder.milliseconds(fromNanoseconds: point.timestampNanoseconds ?? 0)
        let value = scratchValue
        let key = point.tag(deviceTag).map { Array($0.utf8) }
        value.withUnsafeBytes { valueBytes in
            if let key {
                key.withUnsafeBytes { add(key: $0, value: valueBytes, timestampMilliseconds: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now) }
            } else {
                add(key: nil, value: valueBytes, timestampMilliseconds: timestamp, source: source, completion: completion, mqttReceivedUptime: mqttReceivedUptime, now: now)
            }
        }
    }
}
