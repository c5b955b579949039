import OutpostCore

/// Regrouping one local batch's records by key for a central topic with a different partition count.
///
/// Deterministic by construction — same records, same order, same grouping (Kafka's murmur2 of the key;
/// keyless records by offset), same zlib level — so a local batch resent after a crash yields exactly the
/// central batches it yielded before, with the same sequences, and the brokers recognise them.
enum Repartitioning {
    struct CentralBatch {
        var bytes: [UInt8]
        var recordCount: Int32
    }

    /// The central batches for `localBatch`, by central partition, in partition order.
    static func split(_ localBatch: [UInt8], into partitionCount: Int) throws -> [(Int, CentralBatch)] {
        let batch = try RecordBatch.decode(localBatch)
        var groups: [Int: RecordBatchBuilder] = [:]
        for record in batch.records {
            let partition = record.key.map { Partitioner.partition(forKey: $0, partitionCount: partitionCount) }
                ?? Int(record.offset % Int64(partitionCount))
            groups[partition, default: RecordBatchBuilder()].append(
                timestampMilliseconds: record.timestampMilliseconds, key: record.key, value: record.value, headers: record.headers)
        }
        let compressor = try GzipCompressor(level: 1)
        return try groups.keys.sorted().map { partition in
            guard var builder = groups[partition] else { preconditionFailure("grouped partition vanished") }
            let count = builder.recordCount
            return (partition, CentralBatch(bytes: try builder.build(compression: batch.header.compression ?? .gzip, compressor: compressor), recordCount: count))
        }
    }
}

/// A token bucket shared by all of a gateway's replicators: at most `bytesPerSecond` on average, bursts of
/// up to one second's worth. A batch larger than the bucket is let through and paid for afterwards.
actor BandwidthThrottle {
    let bytesPerSecond: Double
    private var tokens: Double
    private var last = ContinuousClock.now

    init(bytesPerSecond: Int64) {
        self.bytesPerSecond = Double(max(1, bytesPerSecond))
        tokens = self.bytesPerSecond
    }

    func take(_ bytes: Int) async {
        let now = ContinuousClock.now
        let elapsed = now - last
        last = now
        tokens = min(bytesPerSecond, tokens + bytesPerSecond * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
        tokens -= Double(bytes)
        if tokens < 0 {
            let wait = -tokens / bytesPerSecond
            try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
        }
    }
}
