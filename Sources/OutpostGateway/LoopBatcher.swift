import NIOCore
import OutpostCore

/// A batch on its way from a listener's event loop to the append workers.
struct PendingBatch: @unchecked Sendable {
    var partition: Int
    /// Uncompressed records; the worker compresses and frames them.
    var builder: RecordBatchBuilder
    /// Writers (HTTP requests) waiting for these records to be committed.
    var completions: [BatchCompletion]
    /// Receive times (uptime ns) of the MQTT messages in the batch: libmosquitto has already sent their
    /// PUBACK, so commit minus receipt is the window in which a crash loses an acknowledged message.
    var mqttReceivedUptimes: [UInt64]
    /// Records per source, for the committed-points counters.
    var sourceCounts: [Int]
    /// When the first record went in (uptime ns).
    var openedUptime: UInt64
    /// Times the log voided this batch after taking it (a group the disk could not take; see
    /// `AppendWorkers.retryVoided`): sets the backoff before it is appended again.
    var voidedAttempts = 0
}

/// Per-partition accumulation for one event loop. Listeners on that loop add records without locks; a
/// partition's batch leaves when it reaches `batchBytesMax` or when `lingerMilliseconds` have passed
/// since its first record. Records from one connection stay on one loop, so their order is kept.
///
/// Confined to `eventLoop`: every method must be called on it (checked in debug builds).
final class LoopBatcher: @unchecked Sendable {
    let eventLoop: any EventLoop
    let partitionCount: Int
    let batchBytesMax: Int
    let lingerMilliseconds: Int
    /// Stamped on every record (provenance), encoded once.
    let headers: EncodedRecordHeaders
    private let submit: @Sendable (PendingBatch) -> Void
    /// The open batch of each partition; an empty builder means none is open.
    private var batches: [PendingBatch]
    private var lingerScheduled: [Bool]
    private var nextKeylessPartition = 0
    /// Reused for each record's value, so storing a line allocates nothing per record.
    var scratchValue: [UInt8] = []
    var cachedDeviceTagKey: [UInt8] = []

    init(
        eventLoop: any EventLoop, partitionCount: Int, batchBytesMax: Int, lingerMilliseconds: Int,
        headers: [RecordHeader], submit: @escaping @Sendable (PendingBatch) -> Void
    ) {
        self.eventLoop = eventLoop
        self.partitionCount = partitionCount
        self.batchBytesMax = batchBytesMax
        self.lingerMilliseconds = lingerMilliseconds
        self.headers = EncodedRecordHeaders(headers)
        self.submit = submit
        batches = (0..<partitionCount).map { LoopBatcher.emptyBatch($0, capacity: 0) }
        lingerScheduled = Array(repeating: false, count: partitionCount)
    }

    /// Kafka's partitioner: murmur2 of the key, keyless records round-robin.
    func partition(forKey key: UnsafeRawBufferPointer?) -> Int {
        guard let key else {
            nextKeylessPartition = (nextKeylessPartition + 1) % partitionCount
            return nextKeylessPartition
        }
        return Partitioner.partition(forKey: key, partitionCount: partitionCount)
    }

    /// Adds one record. `value` is the point in line protocol; `key` the device id.
    func add(
        key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestampMilliseconds: Int64, source: IngestSource,
        completion: BatchCompletion?, mqttReceivedUptime: UInt64?, now: UInt64
    ) {
        eventLoop.assertInEventLoop()
        let partition = partition(forKey: key)
        if batches[partition].builder.isEmpty {
            batches[partition].openedUptime = now
            scheduleLinger(partition)
        }
        batches[partition].builder.append(timestampMilliseconds: timestampMilliseconds, key: key, value: value, encodedHeaders: headers)
        batches[partition].sourceCounts[source.index] += 1
        if let completion, batches[partition].completions.last !== completion {
            completion.joinBatch()
            batches[partition].completions.append(completion)
        }
        if let mqttReceivedUptime { batches[partition].mqttReceivedUptimes.append(mqttReceivedUptime) }
        if batches[partition].builder.uncompressedRecordBytes >= batchBytesMax {
            flush(partition)
        }
    }

    static func emptyBatch(_ partition: Int, capacity: Int) -> PendingBatch {
        PendingBatch(
            partition: partition, builder: RecordBatchBuilder(recordsCapacity: capacity), completions: [],
            mqttReceivedUptimes: [], sourceCounts: [0, 0, 0, 0], openedUptime: 0)
    }

    private func scheduleLinger(_ partition: Int) {
        guard !lingerScheduled[partition] else { return }
        lingerScheduled[partition] = true
        eventLoop.scheduleTask(in: .milliseconds(Int64(lingerMilliseconds))) { [self] in
            lingerScheduled[partition] = false
            flush(partition)
        }
    }

    /// Hands the partition's open batch to the workers.
    func flush(_ partition: Int) {
        eventLoop.assertInEventLoop()
        guard !batches[partition].builder.isEmpty else { return }
        var ready = LoopBatcher.emptyBatch(partition, capacity: batchBytesMax + 4096)
        swap(&ready, &batches[partition])
        submit(ready)
    }

    func flushAll() {
        for partition in 0..<partitionCount { flush(partition) }
    }
}
