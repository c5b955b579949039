/// How a reading becomes a log record (DESIGN.md, "One format from sensor to consumer"):
/// key = the device id, value = the point in line protocol with its timestamp in nanoseconds, record
/// timestamp = the point's time in milliseconds (Kafka's CreateTime).
///
/// The value is built from the validated bytes as they arrived: the measurement, tags and fields are copied
/// verbatim and only the timestamp is (re)written, so nothing is re-serialized on the hot path.
public struct TelemetryRecordEncoder: Sendable {
    /// Unescaped key of the tag that holds the device id.
    public let deviceTagKey: [UInt8]

    public init(deviceTag: String = "device") {
        deviceTagKey = Array(deviceTag.utf8)
    }

    /// Appends the record value for a validated entry to `value` and returns the record's key and
    /// timestamp. A point without a timestamp gets `receivedAtNanoseconds`.
    ///
    /// - Parameters:
    ///   - entry: the buffer `layout` was computed on (its ranges index into it).
    public func encode(
        entry: UnsafeRawBufferPointer, layout: LineLayout, receivedAtNanoseconds: Int64, value: inout [UInt8]
    ) -> (key: [UInt8]?, timestampMilliseconds: Int64) {
        let nanoseconds = layout.timestampNanoseconds ?? receivedAtNanoseconds
        value.append(contentsOf: UnsafeRawBufferPointer(rebasing: entry[layout.measurement.lowerBound..<layout.fieldSetEnd]))
        value.append(UInt8(ascii: " "))
        Self.appendDecimal(nanoseconds, to: &value)
        var key: [UInt8]?
        if let range = layout.deviceTagValue {
            key = LineProtocolElement.tagValue.unescaped(UnsafeRawBufferPointer(rebasing: entry[range]))
        }
        return (key, Self.milliseconds(fromNanoseconds: nanoseconds))
    }

    /// Floor division, so times before the epoch round towards the past as Kafka's do.
    public static func milliseconds(fromNanoseconds nanoseconds: Int64) -> Int64 {
        let (quotient, remainder) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return remainder < 0 ? quotient - 1 : quotient
    }

    /// Appends the decimal digits of `number` without going through String.
    public static func appendDecimal(_ number: Int64, to output: inout [UInt8]) {
        if number == 0 {
            output.append(UInt8(ascii: "0"))
            return
        }
        var magnitude = number.magnitude
        if number < 0 { output.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            while magnitude > 0 {
                buffer[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { output.append(buffer[index]) }
        }
    }
}

/// Per-partition batch accumulation: records go to the partition of their key (Kafka's murmur2
/// partitioner; keyless records round-robin), and a partition's batch is handed out when it reaches
/// `batchBytesMax` of uncompressed records or `batchRecordsMax` records. Pure: no clock, no I/O — the
/// owner decides when lingering batches are due and calls `drain`.
public struct PartitionedBatcher: Sendable {
    public let partitionCount: Int
    /// Uncompressed record bytes at which a batch is complete. 256 KiB compresses to a few tens of KiB of
    /// gzip for telemetry, large enough to amortise the per-batch costs (fsync share, CRC, framing).
    public var batchBytesMax: Int
    public var batchRecordsMax: Int
    public var producer: ProducerIdentity
    private var builders: [RecordBatchBuilder]
    private var nextKeylessPartition = 0

    public struct ReadyBatch: Sendable {
        public var partition: Int
        /// The records as a builder: compress and frame it with `build(compression:compressor:)`.
        public var builder: RecordBatchBuilder
    }

    public init(partitionCount: Int, batchBytesMax: Int = 256 << 10, batchRecordsMax: Int = 10_000, producer: ProducerIdentity = .none) {
        precondition(partitionCount > 0, "a topic has at least one partition")
        self.partitionCount = partitionCount
        self.batchBytesMax = batchBytesMax
        self.batchRecordsMax = batchRecordsMax
        self.producer = producer
        builders = Array(repeating: RecordBatchBuilder(producer: producer), count: partitionCount)
    }

    public func partition(forKey key: [UInt8]?) -> Int {
        guard let key else { return nextKeylessPartition }
        return Partitioner.partition(forKey: key, partitionCount: partitionCount)
    }

    /// Adds a record; returns the partition's batch when it became full.
    public mutating func add(key: [UInt8]?, value: [UInt8], timestampMilliseconds: Int64, headers: [RecordHeader] = []) -> ReadyBatch? {
        let partition = partition(forKey: key)
        if key == nil { nextKeylessPartition = (nextKeylessPartition + 1) % partitionCount }
        builders[partition].append(timestampMilliseconds: timestampMilliseconds, key: key, value: value, headers: headers)
        if builders[partition].uncompressedRecordBytes >= batchBytesMax || Int(builders[partition].recordCount) >= batchRecordsMax {
            return take(partition)
        }
        return nil
    }

    /// Takes the non-empty batch of one partition.
    public mutating func take(_ partition: Int) -> ReadyBatch? {
        guard !builders[partition].isEmpty else { return nil }
        var ready = RecordBatchBuilder(producer: producer)
        swap(&ready, &builders[partition])
        return ReadyBatch(partition: partition, builder: ready)
    }

    /// Takes every non-empty batch (at linger expiry, or at shutdown).
    public mutating func drain() -> [ReadyBatch] {
        (0..<partitionCount).compactMap { take($0) }
    }

    public var pendingRecordCount: Int { builders.reduce(0) { $0 + Int($1.recordCount) } }
}
