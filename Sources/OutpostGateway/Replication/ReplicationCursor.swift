import Foundation
import OutpostCore
import OutpostLog

/// What a partition's replicator must remember across crashes, in
/// `<data-dir>/replication/<topic>-<partition>.cursor`:
///
/// - `cursor`: the next local offset to replicate; everything below it the central brokers acknowledged;
/// - the producer identity the central brokers know this partition's batches by (id, epoch) and how
///   sequence numbers are derived, so a batch resent after a restart carries exactly the sequence it had
///   before and the brokers' idempotence recognises it as a duplicate.
///
/// Sequences: in forwarding mode (central partition = local partition) a batch's baseSequence is its local
/// base offset minus `sequenceOrigin`, so resends are identical by construction. When re-partitioning,
/// `nextSequences[c]` counts the records this producer sent to central partition c up to `cursor`.
public struct ReplicationCursor: Hashable, Sendable {
    public var cursor: Offset
    public var producerId: Int64
    public var producerEpoch: Int16
    /// Local offset whose batch was sent with sequence 0 in this producer session.
    public var sequenceOrigin: Offset
    /// Central partition count the sequences were counted for (re-partitioning mode), 0 in forwarding mode.
    public var centralPartitions: Int
    public var nextSequences: [Int32]

    public init(cursor: Offset, producerId: Int64 = -1, producerEpoch: Int16 = -1, sequenceOrigin: Offset = 0, centralPartitions: Int = 0, nextSequences: [Int32] = []) {
        self.cursor = cursor
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.sequenceOrigin = sequenceOrigin
        self.centralPartitions = centralPartitions
        self.nextSequences = nextSequences
    }

    public var hasProducer: Bool { producerId >= 0 }

    /// Kafka sequences are 31-bit and wrap to 0 after Int32.max.
    public static func sequence(_ distance: Int64) -> Int32 {
        Int32(truncatingIfNeeded: distance & 0x7FFF_FFFF)
    }

    func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.write(cursor.rawValue)
        writer.write(producerId)
        writer.write(producerEpoch)
        writer.write(sequenceOrigin.rawValue)
        writer.write(Int32(centralPartitions))
        writer.write(Int32(nextSequences.count))
        for sequence in nextSequences { writer.write(sequence) }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) -> ReplicationCursor? {
        var reader = ByteReader(bytes)
        guard let cursor = try? reader.readInt64(), let producerId = try? reader.readInt64(),
            let epoch = try? reader.readInt16(), let origin = try? reader.readInt64(),
            let central = try? reader.readInt32(), let count = try? reader.readInt32(),
            cursor >= 0, count >= 0, count <= 100_000
        else { return nil }
        var sequences: [Int32] = []
        for _ in 0..<count {
            guard let sequence = try? reader.readInt32() else { return nil }
            sequences.append(sequence)
        }
        return ReplicationCursor(
            cursor: Offset(cursor), producerId: producerId, producerEpoch: epoch, sequenceOrigin: Offset(origin),
            centralPartitions: Int(central), nextSequences: sequences)
    }
}

/// The cursor file: two fixed slots written alternately, each `magic · generation · length · CRC-32C ·
/// payload`. A persist is one positioned write and one fdatasync (no rename dance), and a torn write can
/// only damage the slot being written — reading takes the valid slot with the highest generation.
public final class ReplicationCursorFile: @unchecked Sendable {
    static let slotBytes = 4096
    static let magic: UInt32 = 0x4F50_5243  // "OPRC"

    public let path: String
    private let descriptor: Int32
    private var generation: UInt64 = 0
    private let lock = NSLock()

    public init(path: String) throws(LogError) {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .io(operation: "mkdir", path: directory, errno: EIO)
        }
        let existed = FileManager.default.fileExists(atPath: path)
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        if !existed {
            // The new file's directory entry must survive a crash before the cursor inside it matters.
            let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY)
            if directoryDescriptor >= 0 {
                fsync(directoryDescriptor)
                close(directoryDescriptor)
            }
        }
    }

    deinit { close(descriptor) }

    /// The newest intact cursor, or nil for a new file (or one with no intact slot).
    public func load() -> ReplicationCursor? {
        lock.lock()
        defer { lock.unlock() }
        var best: (generation: UInt64, cursor: ReplicationCursor)?
        for slot in 0..<2 {
            var buffer = [UInt8](repeating: 0, count: Self.slotBytes)
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, Self.slotBytes, off_t(slot * Self.slotBytes)) }
            guard count >= 20 else { continue }
            var reader = ByteReader(buffer)
            guard let magic = try? reader.readUInt32(), magic == Self.magic,
                let generation = try? reader.readInt64(), let length = try? reader.readInt32(),
                let crc = try? reader.readUInt32(), length >= 0, Int(length) <= Self.slotBytes - 20,
                let payload = try? reader.readBytes(Int(length)), CRC32C.checksum(payload) == crc,
                let cursor = ReplicationCursor.decode(payload)
            else { continue }
            if let current = best, current.generation >= UInt64(generation) { continue }
            best = (UInt64(generation), cursor)
        }
        if let best { generation = best.generation }
        return best?.cursor
    }

    /// Writes `cursor` durably (returns after fdatasync).
    public func store(_ cursor: ReplicationCursor) throws(LogError) {
        let payload = cursor.encoded()
        precondition(payload.count <= Self.slotBytes - 20, "cursor too large for its slot")
        lock.lock()
        defer { lock.unlock() }
        generation += 1
        var writer = ByteWriter(capacity: Self.slotBytes)
        writer.write(Self.magic)
        writer.write(Int64(generation))
        writer.write(Int32(payload.count))
        writer.write(CRC32C.checksum(payload))
        writer.write(contentsOf: payload)
        let slot = Int(generation % 2)
        let bytes = writer.bytes
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(slot * Self.slotBytes)) }
        guard written == bytes.count else {
            if errno == ENOSPC { throw .diskFull(path: path) }
            throw .io(operation: "write", path: path, errno: errno)
        }
        guard fdatasync(descriptor) == 0 else { throw .io(operation: "fdatasync", path: path, errno: errno) }
    }
}
