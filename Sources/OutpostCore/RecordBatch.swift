/// Kafka RecordBatch v2 (magic 2): the unit the gateway appends, the replicator sends, a broker stores and a
/// consumer fetches. See `kafka-subset.md` §3 and Kafka's `DefaultRecordBatch`.
///
/// ```
/// 0  baseOffset i64            outside the CRC: rewritten on append
/// 8  batchLength i32           bytes after this field
/// 12 partitionLeaderEpoch i32  outside the CRC: rewritten on append
/// 16 magic i8 = 2
/// 17 crc u32                   CRC-32C of bytes [21, end)
/// 21 attributes i16 · 23 lastOffsetDelta i32 · 27 baseTimestamp i64 · 35 maxTimestamp i64
/// 43 producerId i64 · 51 producerEpoch i16 · 53 baseSequence i32 · 57 recordCount i32 · 61 records…
/// ```
public enum RecordBatchLayout {
    public static let baseOffsetPosition = 0
    public static let batchLengthPosition = 8
    public static let partitionLeaderEpochPosition = 12
    public static let magicPosition = 16
    public static let crcPosition = 17
    public static let attributesPosition = 21
    public static let lastOffsetDeltaPosition = 23
    public static let baseTimestampPosition = 27
    public static let maxTimestampPosition = 35
    public static let producerIdPosition = 43
    public static let producerEpochPosition = 51
    public static let baseSequencePosition = 53
    public static let recordCountPosition = 57
    /// Size of the fixed header; records (compressed or not) follow.
    public static let headerSize = 61
    /// baseOffset + batchLength: the part not counted by batchLength.
    public static let logOverhead = 12
    /// The CRC covers everything from the attributes to the end of the batch.
    public static let crcCoveredStart = 21
    public static let magic: Int8 = 2
}

public enum CompressionCodec: Int16, Sendable, CaseIterable {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    public var name: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// Who produced a batch, for idempotent produce. `ProducerIdentity.none` marks a non-idempotent batch.
public struct ProducerIdentity: Hashable, Sendable {
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32

    public init(producerId: Int64, producerEpoch: Int16, baseSequence: Int32) {
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
    }

    public static let none = ProducerIdentity(producerId: -1, producerEpoch: -1, baseSequence: -1)
    public var isIdempotent: Bool { producerId >= 0 }
}

/// The fixed 61-byte header of a batch, readable without touching (or decompressing) its records.
public struct RecordBatchHeader: Hashable, Sendable {
    public var baseOffset: Int64
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producer: ProducerIdentity
    public var recordCount: Int32

    /// Size of the whole batch on disk or on the wire.
    public var totalSize: Int { Int(batchLength) + RecordBatchLayout.logOverhead }
    /// Offset of the last record: baseOffset + lastOffsetDelta. baseOffset lies outside the CRC, so a
    /// damaged file can hold any value there: the sum saturates at Int64.max instead of trapping, and the
    /// checks on offsets then see a batch out of range.
    public var lastOffset: Int64 {
        let (sum, overflow) = baseOffset.addingReportingOverflow(Int64(lastOffsetDelta))
        return overflow ? (lastOffsetDelta < 0 ? Int64.min : Int64.max) : sum
    }
    /// The offset after this batch (saturating, as `lastOffset`).
    public var nextOffset: Int64 { lastOffset == Int64.max ? Int64.max : lastOffset + 1 }

    /// `nil` when the codec bits hold a value Kafka does not define.
    public var compression: CompressionCodec? { CompressionCodec(rawValue: attributes & 0x07) }
    /// Timestamp type bit: false = CreateTime, true = LogAppendTime.
    public var isLogAppendTime: Bool { attributes & 0x08 != 0 }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }

    /// Reads the header at `start` of `bytes`. Checks only that the bytes are there; see `validate`.
    public init(bytes: UnsafeRawBufferPointer, at start: Int = 0) throws(RecordBatchError) {
        guard start >= 0, bytes.count - start >= RecordBatchLayout.headerSize else {
            throw .truncated(needed: RecordBatchLayout.headerSize, available: Swift.max(0, bytes.count - start))
        }
        func int64(_ position: Int) -> Int64 { Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: start + position, as: Int64.self)) }
        func int32(_ position: Int) -> Int32 { Int32(bigEndian: bytes.loadUnaligned(fromByteOffset: start + position, as: Int32.self)) }
        func int16(_ position: Int) -> Int16 { Int16(bigEndian: bytes.loadUnaligned(fromByteOffset: start + position, as: Int16.self)) }
        typealias L = RecordBatchLayout
        baseOffset = int64(L.baseOffsetPosition)
        batchLength = int32(L.batchLengthPosition)
        partitionLeaderEpoch = int32(L.partitionLeaderEpochPosition)
        magic = Int8(bitPattern: bytes[start + L.magicPosition])
        crc = UInt32(bitPattern: int32(L.crcPosition))
        attributes = int16(L.attributesPosition)
        lastOffsetDelta = int32(L.lastOffsetDeltaPosition)
        baseTimestamp = int64(L.baseTimestampPosition)
        maxTimestamp = int64(L.maxTimestampPosition)
        producer = ProducerIdentity(
            producerId: int64(L.producerIdPosition),
            producerEpoch: int16(L.producerEpochPosition),
            baseSequence: int32(L.baseSequencePosition))
        recordCount = int32(L.recordCountPosition)
    }

    public init(bytes: [UInt8], at start: Int = 0) throws(RecordBatchError) {
        self = try bytes.withBytes { (buffer) throws(RecordBatchError) in try RecordBatchHeader(bytes: buffer, at: start) }
    }
}

/// Why batch bytes were refused. Each case maps to a Kafka error (CORRUPT_MESSAGE or INVALID_RECORD).
public enum RecordBatchError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(needed: Int, available: Int)
    case invalidBatchLength(Int32)
    case unsupportedMagic(Int8)
    case crcMismatch(stored: UInt32, computed: UInt32)
    case unsupportedCompression(Int16)
    case invalidRecordCount(recordCount: Int32, lastOffsetDelta: Int32)
    case invalidRecord(String)
    case compression(CompressionError)

    public var description: String {
        switch self {
        case .truncated(let needed, let available): "batch truncated: needs \(needed) bytes, \(available) available"
        case .invalidBatchLength(let length): "invalid batch length \(length)"
        case .unsupportedMagic(let magic): "unsupported magic \(magic) (only RecordBatch v2, magic 2)"
        case .crcMismatch(let stored, let computed):
            "CRC-32C mismatch: stored \(String(stored, radix: 16)), computed \(String(computed, radix: 16))"
        case .unsupportedCompression(let attributes): "unsupported compression codec \(attributes & 7)"
        case .invalidRecordCount(let count, let delta): "record count \(count) does not match lastOffsetDelta \(delta)"
        case .invalidRecord(let reason): "invalid record: \(reason)"
        case .compression(let error): "records do not decompress: \(error)"
        }
    }

    /// True when the bytes are damaged (as opposed to well-formed but unsupported).
    public var isCorruption: Bool {
        switch self {
        case .unsupportedCompression: false
        default: true
        }
    }
}

public struct RecordHeader: Hashable, Sendable {
    public var key: String
    public var value: [UInt8]?

    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// One record inside a batch, with absolute offset and timestamp resolved from the batch header.
public struct Record: Hashable, Sendable {
    public var offset: Int64
    /// Milliseconds since the Unix epoch (Kafka record timestamps are milliseconds).
    public var timestampMilliseconds: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]

    public init(offset: Int64, timestampMilliseconds: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = []) {
        self.offset = offset
        self.timestampMilliseconds = timestampMilliseconds
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A decoded batch: its header and its records.
public struct RecordBatch: Hashable, Sendable {
    public var header: RecordBatchHeader
    public var records: [Record]

    /// Decodes and fully validates one batch at the start of `bytes` (length, magic, CRC, codec, records).
    ///
    /// - Parameter uncompressedBytesMax: bound on decompressed record bytes (hostile-input guard).
    public static func decode(
        _ bytes: [UInt8], at start: Int = 0, decompressor: GzipDecompressor? = nil,
        uncompressedBytesMax: Int = 64 << 20
    ) throws(RecordBatchError) -> RecordBatch {
        let header = try RecordBatchValidation.validate(bytes, at: start)
        let end = start + header.totalSize
        let recordBytes: [UInt8]
        let recordsStart: Int
        switch header.compression {
        case .none?:
            recordBytes = bytes
            recordsStart = start + RecordBatchLayout.headerSize
        case .gzip?:
            var inflated: [UInt8] = []
            do throws(CompressionError) {
                let inflater = if let decompressor { decompressor } else { try GzipDecompressor() }
                try bytes.withBytes { (buffer) throws(CompressionError) in
                    let compressed = UnsafeRawBufferPointer(rebasing: buffer[(start + RecordBatchLayout.headerSize)..<end])
                    try inflater.decompress(compressed, appendingTo: &inflated, outputBytesMax: uncompressedBytesMax)
                }
            } catch {
                throw .compression(error)
            }
            recordBytes = inflated
            recordsStart = 0
        default:
            throw .unsupportedCompression(header.attributes)
        }
        let recordsEnd = header.compression == CompressionCodec.none ? end : recordBytes.count
        var reader = ByteReader(recordBytes, from: recordsStart, to: recordsEnd)
        var records: [Record] = []
        records.reserveCapacity(Int(Swift.min(header.recordCount, 1 << 16)))
        for _ in 0..<header.recordCount {
            records.append(try Self.decodeRecord(&reader, header: header))
        }
        guard reader.isAtEnd else {
            throw .invalidRecord("\(reader.remaining) bytes left after \(header.recordCount) records")
        }
        return RecordBatch(header: header, records: records)
    }

    static func decodeRecord(_ reader: inout ByteReader, header: RecordBatchHeader) throws(RecordBatchError) -> Record {
        do {
            let length = try reader.readVarint()
            guard length >= 0, Int(length) <= reader.remaining else {
                throw RecordBatchError.invalidRecord("record length \(length) exceeds the \(reader.remaining) bytes left")
            }
            let recordEnd = reader.position + Int(length)
            _ = try reader.readInt8()  // attributes: unused by v2
            let timestampDelta = try reader.readVarlong()
            let offsetDelta = try reader.readVarint()
            guard offsetDelta >= 0, offsetDelta <= header.lastOffsetDelta else {
                throw RecordBatchError.invalidRecord("offset delta \(offsetDelta) outside 0…\(header.lastOffsetDelta)")
            }
            let key = try readNullableBytes(&reader)
            let value = try readNullableBytes(&reader)
            let headerCount = try reader.readVarint()
            guard headerCount >= 0, Int(headerCount) <= reader.remaining else {
                throw RecordBatchError.invalidRecord("header count \(headerCount)")
            }
            var headers: [RecordHeader] = []
            for _ in 0..<headerCount {
                guard let keyBytes = try readNullableBytes(&reader) else {
                    throw RecordBatchError.invalidRecord("null header key")
                }
                guard let key = String(validating: keyBytes, as: UTF8.self) else {
                    throw RecordBatchError.invalidRecord("header key is not UTF-8")
                }
                headers.append(RecordHeader(key: key, value: try readNullableBytes(&reader)))
            }
            guard reader.position == recordEnd else {
                throw RecordBatchError.invalidRecord("record length \(length) does not match its fields")
            }
            // baseOffset lies outside the CRC: a damaged file can make the sum overflow.
            let (offset, overflow) = header.baseOffset.addingReportingOverflow(Int64(offsetDelta))
            guard !overflow else { throw RecordBatchError.invalidRecord("offset \(header.baseOffset) + \(offsetDelta) overflows") }
            return Record(
                offset: offset,
                timestampMilliseconds: header.baseTimestamp &+ timestampDelta,
                key: key, value: value, headers: headers)
        } catch let error as RecordBatchError {
            throw error
        } catch {
            throw .invalidRecord("record data truncated or malformed at byte \(reader.position)")
        }
    }

    static func readNullableBytes(_ reader: inout ByteReader) throws -> [UInt8]? {
        let length = try reader.readVarint()
        if length == -1 { return nil }
        guard length >= 0 else { throw RecordBatchError.invalidRecord("negative length \(length)") }
        return try reader.readBytes(Int(length))
    }
}

/// Checks on stored or received batch bytes that need no decompression: what a broker validates on
/// produce and what log recovery checks on every batch.
public enum RecordBatchValidation {
    /// Validates length, magic, CRC-32C, codec and lastOffsetDelta of the batch at `start`.
    public static func validate(_ bytes: UnsafeRawBufferPointer, at start: Int = 0) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try RecordBatchHeader(bytes: bytes, at: start)
        guard header.magic == RecordBatchLayout.magic else { throw .unsupportedMagic(header.magic) }
        let minimumLength = RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead
        guard header.batchLength >= minimumLength else { throw .invalidBatchLength(header.batchLength) }
        let available = bytes.count - start
        guard header.totalSize <= available else {
            throw .truncated(needed: header.totalSize, available: available)
        }
        let covered = UnsafeRawBufferPointer(
            rebasing: bytes[(start + RecordBatchLayout.crcCoveredStart)..<(start + header.totalSize)])
        let computed = CRC32C.checksum(covered)
        guard computed == header.crc else { throw .crcMismatch(stored: header.crc, computed: computed) }
        guard header.compression != nil else { throw .unsupportedCompression(header.attributes) }
        guard header.recordCount >= 0, header.lastOffsetDelta >= 0,
            header.recordCount == 0 || Int64(header.lastOffsetDelta) >= Int64(header.recordCount) - 1
        else {
            throw .invalidRecordCount(recordCount: header.recordCount, lastOffsetDelta: header.lastOffsetDelta)
        }
        return header
    }

    public static func validate(_ bytes: [UInt8], at start: Int = 0) throws(RecordBatchError) -> RecordBatchHeader {
        try bytes.withBytes { (buffer) throws(RecordBatchError) in try validate(buffer, at: start) }
    }

    /// Rewrites baseOffset in place. It lies outside the CRC, so the batch stays valid.
    public static func setBaseOffset(_ offset: Int64, in bytes: UnsafeMutableRawBufferPointer, at start: Int = 0) {
        precondition(bytes.count - start >= RecordBatchLayout.headerSize, "not a batch header")
        bytes.storeBytes(of: offset.bigEndian, toByteOffset: start + RecordBatchLayout.baseOffsetPosition, as: Int64.self)
    }

    /// Rewrites partitionLeaderEpoch in place; outside the CRC like baseOffset.
    public static func setPartitionLeaderEpoch(_ epoch: Int32, in bytes: UnsafeMutableRawBufferPointer, at start: Int = 0) {
        precondition(bytes.count - start >= RecordBatchLayout.headerSize, "not a batch header")
        bytes.storeBytes(of: epoch.bigEndian, toByteOffset: start + RecordBatchLayout.partitionLeaderEpochPosition, as: Int32.self)
    }

    public static func setBaseOffset(_ offset: Int64, in bytes: inout [UInt8], at start: Int = 0) {
        bytes.withUnsafeMutableBytes { setBaseOffset(offset, in: $0, at: start) }
    }

    public static func setPartitionLeaderEpoch(_ epoch: Int32, in bytes: inout [UInt8], at start: Int = 0) {
        bytes.withUnsafeMutableBytes { setPartitionLeaderEpoch(epoch, in: $0, at: start) }
    }

    /// Rewrites the producer fields (inside the CRC) and recomputes the CRC. No record is decompressed.
    public static func setProducer(_ producer: ProducerIdentity, in bytes: inout [UInt8], at start: Int = 0) throws(RecordBatchError) {
        let header = try RecordBatchHeader(bytes: bytes, at: start)
        guard bytes.count - start >= header.totalSize, header.totalSize >= RecordBatchLayout.headerSize else {
            throw .truncated(needed: header.totalSize, available: bytes.count - start)
        }
        bytes.withUnsafeMutableBytes { buffer in
            typealias L = RecordBatchLayout
            buffer.storeBytes(of: producer.producerId.bigEndian, toByteOffset: start + L.producerIdPosition, as: Int64.self)
            buffer.storeBytes(of: producer.producerEpoch.bigEndian, toByteOffset: start + L.producerEpochPosition, as: Int16.self)
            buffer.storeBytes(of: producer.baseSequence.bigEndian, toByteOffset: start + L.baseSequencePosition, as: Int32.self)
            let covered = UnsafeRawBufferPointer(rebasing: buffer[(start + L.crcCoveredStart)..<(start + header.totalSize)])
            let crc = CRC32C.checksum(covered)
            buffer.storeBytes(of: crc.bigEndian, toByteOffset: start + L.crcPosition, as: UInt32.self)
        }
    }
}

/// A record's header section (count and headers) encoded once, for builders that stamp the same headers
/// on many records.
public struct EncodedRecordHeaders: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(_ headers: [RecordHeader]) {
        var writer = ByteWriter()
        writer.writeVarint(Int32(headers.count))
        for header in headers {
            writer.writeVarint(Int32(header.key.utf8.count))
            writer.write(contentsOf: header.key.utf8)
            if let value = header.value {
                writer.writeVarint(Int32(value.count))
                writer.write(contentsOf: value)
            } else {
                writer.writeVarint(-1)
            }
        }
        bytes = writer.bytes
    }

    public static let none = EncodedRecordHeaders([])
}

/// Builds one batch record by record, writing each record straight into the uncompressed records buffer
/// (no intermediate `Record` values), then compresses once and frames it.
///
/// Record timestamps are milliseconds. The batch's baseTimestamp is the first record's timestamp, as the
/// Java producer does; deltas may be negative when readings arrive out of order.
public struct RecordBatchBuilder: Sendable {
    public private(set) var recordCount: Int32 = 0
    public private(set) var baseTimestamp: Int64 = 0
    public private(set) var maxTimestamp: Int64 = -1
    public var producer: ProducerIdentity
    public var partitionLeaderEpoch: Int32 = -1
    /// The records are `storage[..<recordsEnd]`; the rest of `storage` is spare room, already initialized,
    /// so an append is a few stores and copies through one pointer rather than a chain of Array appends.
    private var storage: [UInt8] = []
    private var recordsEnd = 0

    public init(producer: ProducerIdentity = .none, recordsCapacity: Int = 0) {
        self.producer = producer
        storage.reserveCapacity(recordsCapacity)
    }

    public var isEmpty: Bool { recordCount == 0 }
    public var uncompressedRecordBytes: Int { recordsEnd }
    /// A copy of the uncompressed record bytes written so far.
    public var records: [UInt8] { Array(storage[..<recordsEnd]) }

    /// Appends a record. `key`/`value` nil encode as null (length −1).
    public mutating func append(
        timestampMilliseconds: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        headers: [RecordHeader] = []
    ) {
        if headers.isEmpty {
            appendRecord(timestampMilliseconds: timestampMilliseconds, key: key, value: value, headerSection: nil)
        } else {
            append(timestampMilliseconds: timestampMilliseconds, key: key, value: value, encodedHeaders: EncodedRecordHeaders(headers))
        }
    }

    /// The hot path: headers already encoded (a gateway stamps the same headers on every record), the
    /// record's size computed first, then its bytes stored in place.
    public mutating func append(
        timestampMilliseconds: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        encodedHeaders: EncodedRecordHeaders
    ) {
        encodedHeaders.bytes.withUnsafeBytes {
            appendRecord(timestampMilliseconds: timestampMilliseconds, key: key, value: value, headerSection: $0)
        }
    }

    /// `headerSection` is the record's encoded header count and headers; nil for none (the single byte 0,
    /// a count of zero).
    private mutating func appendRecord(
        timestampMilliseconds: Int64, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer?,
        headerSection: UnsafeRawBufferPointer?
    ) {
        if recordCount == 0 { baseTimestamp = timestampMilliseconds }
        maxTimestamp = Swift.max(maxTimestamp, timestampMilliseconds)
        let timestampDelta = timestampMilliseconds &- baseTimestamp
        let offsetDelta = recordCount
        let keyLength = key.map { Int32($0.count) } ?? -1
        let valueLength = value.map { Int32($0.count) } ?? -1
        let bodySize = 1 + Varint.encodedSize(timestampDelta) + Varint.encodedSize(offsetDelta)
            + Varint.encodedSize(keyLength) + Int(max(keyLength, 0))
            + Varint.encodedSize(valueLength) + Int(max(valueLength, 0))
            + (headerSection?.count ?? 1)
        let recordSize = Varint.encodedSize(Int32(bodySize)) + bodySize
        let end = recordsEnd + recordSize
        if storage.count < end {
            // Initialized half again ahead of use (amortized O(1) appends), but never past the reserved
            // capacity without need: reserved pages a small batch never reaches stay untouched (RSS).
            var initialized = Swift.max(end, storage.count + storage.count / 2, 4096)
            if end <= storage.capacity { initialized = Swift.min(initialized, storage.capacity) }
            // Appended from a block of zeros (a bulk copy) rather than element by element.
            while storage.count < initialized {
                storage.append(contentsOf: Self.zeros.prefix(initialized - storage.count))
            }
        }
        storage.withUnsafeMutableBytes { buffer in
            var position = recordsEnd
            Self.put(UInt64(Varint.zigZag(Int32(bodySize))), buffer, &position)
            buffer[position] = 0  // record attributes: unused by v2
            position += 1
            Self.put(Varint.zigZag(timestampDelta), buffer, &position)
            Self.put(UInt64(Varint.zigZag(offsetDelta)), buffer, &position)
            Self.put(UInt64(Varint.zigZag(keyLength)), buffer, &position)
            Self.copy(key, buffer, &position)
            Self.put(UInt64(Varint.zigZag(valueLength)), buffer, &position)
            Self.copy(value, buffer, &position)
            if let headerSection {
                Self.copy(headerSection, buffer, &position)
            } else {
                buffer[position] = 0
                position += 1
            }
            assert(position == end, "record size computed wrong")
        }
        recordsEnd = end
        recordCount += 1
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 16)

    @inline(__always)
    static func put(_ value: UInt64, _ buffer: UnsafeMutableRawBufferPointer, _ position: inout Int) {
        var rest = value
        while rest >= 0x80 {
            buffer[position] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest >>= 7
            position += 1
        }
        buffer[position] = UInt8(rest)
        position += 1
    }

    @inline(__always)
    static func copy(_ source: UnsafeRawBufferPointer?, _ buffer: UnsafeMutableRawBufferPointer, _ position: inout Int) {
        guard let source, let from = source.baseAddress, let to = buffer.baseAddress, !source.isEmpty else { return }
        precondition(position + source.count <= buffer.count, "record bytes overflow the builder's buffer")
        (to + position).copyMemory(from: from, byteCount: source.count)
        position += source.count
    }

    public mutating func append(timestampMilliseconds: Int64, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = []) {
        func withOptional<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
            guard let bytes else { return body(nil) }
            return bytes.withUnsafeBytes { body($0) }
        }
        withOptional(key) { keyBuffer in
            withOptional(value) { valueBuffer in
                append(timestampMilliseconds: timestampMilliseconds, key: keyBuffer, value: valueBuffer, headers: headers)
            }
        }
    }

    /// Frames the records into a batch with baseOffset 0, compressing them with `compression`.
    /// The builder is left empty and ready for the next batch (its buffer capacity kept).
    public mutating func build(
        compression: CompressionCodec = .none, compressor: GzipCompressor? = nil
    ) throws(RecordBatchError) -> [UInt8] {
        precondition(recordCount > 0, "a batch holds at least one record")
        let batch: [UInt8]
        switch compression {
        case .none:
            batch = storage.withUnsafeBytes { frame(UnsafeRawBufferPointer(rebasing: $0[..<recordsEnd]), compression: .none) }
        case .gzip:
            do throws(CompressionError) {
                let deflater = if let compressor { compressor } else { try GzipCompressor() }
                batch = try storage.withBytes { (buffer) throws(CompressionError) in
                    try deflater.withCompressed(UnsafeRawBufferPointer(rebasing: buffer[..<recordsEnd])) { compressed in
                        frame(compressed, compression: .gzip)
                    }
                }
            } catch {
                throw .compression(error)
            }
        default:
            throw .unsupportedCompression(compression.rawValue)
        }
        reset()
        return batch
    }

    /// The batch: the 61-byte header, then `payload` (the records, compressed or not), with batchLength
    /// and CRC-32C filled in. One allocation of exactly the batch's size.
    private func frame(_ payload: UnsafeRawBufferPointer, compression: CompressionCodec) -> [UInt8] {
        typealias L = RecordBatchLayout
        let total = L.headerSize + payload.count
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let batch = UnsafeMutableRawBufferPointer(buffer)
            func store<T: FixedWidthInteger>(_ value: T, at position: Int) {
                batch.storeBytes(of: value.bigEndian, toByteOffset: position, as: T.self)
            }
            store(Int64(0), at: L.baseOffsetPosition)  // assigned by the log on append
            store(Int32(total - L.logOverhead), at: L.batchLengthPosition)
            store(partitionLeaderEpoch, at: L.partitionLeaderEpochPosition)
            store(L.magic, at: L.magicPosition)
            store(compression.rawValue, at: L.attributesPosition)  // codec bits, CreateTime, not transactional
            store(recordCount - 1, at: L.lastOffsetDeltaPosition)
            store(baseTimestamp, at: L.baseTimestampPosition)
            store(maxTimestamp, at: L.maxTimestampPosition)
            store(producer.producerId, at: L.producerIdPosition)
            store(producer.producerEpoch, at: L.producerEpochPosition)
            store(producer.baseSequence, at: L.baseSequencePosition)
            store(recordCount, at: L.recordCountPosition)
            if let from = payload.baseAddress, let to = batch.baseAddress, !payload.isEmpty {
                (to + L.headerSize).copyMemory(from: from, byteCount: payload.count)
            }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[L.crcCoveredStart..<total]))
            store(crc, at: L.crcPosition)
            initialized = total
        }
    }

    public mutating func reset() {
        recordsEnd = 0
        recordCount = 0
        baseTimestamp = 0
        maxTimestamp = -1
    }
}

extension RecordBatch {
    /// Encodes records into one batch; offsets are taken relative to the first record's offset.
    public static func encode(
        records: [Record], producer: ProducerIdentity = .none, compression: CompressionCodec = .none,
        compressor: GzipCompressor? = nil
    ) throws(RecordBatchError) -> [UInt8] {
        var builder = RecordBatchBuilder(producer: producer)
        for record in records {
            builder.append(
                timestampMilliseconds: record.timestampMilliseconds, key: record.key, value: record.value,
                headers: record.headers)
        }
        return try builder.build(compression: compression, compressor: compressor)
    }
}

/// Walks a buffer of back-to-back batches (a segment file, a Produce or Fetch payload).
public struct RecordBatchIterator: Sequence, IteratorProtocol {
    let bytes: [UInt8]
    public private(set) var position: Int
    /// Set when iteration stopped on damaged bytes rather than at the end.
    public private(set) var stopReason: RecordBatchError?

    public init(_ bytes: [UInt8], from start: Int = 0) {
        self.bytes = bytes
        self.position = start
    }

    /// Each valid batch's header and its byte range. Stops at the end or at the first invalid batch
    /// (see `stopReason`); `position` is then where the valid prefix ends.
    public mutating func next() -> (header: RecordBatchHeader, range: Range<Int>)? {
        guard position < bytes.count else { return nil }
        do {
            let header = try RecordBatchValidation.validate(bytes, at: position)
            let range = position..<(position + header.totalSize)
            position = range.upperBound
            return (header, range)
        } catch {
            stopReason = error
            return nil
        }
    }
}
