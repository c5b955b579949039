import Dispatch
import Logging
import NIOCore
import NIOPosix
import OutpostCore
import Synchronization

/// One committed offset.
public struct CommittedOffset: Hashable, Sendable {
    public var offset: Int64
    public var leaderEpoch: Int32
    /// Kafka stores a null metadata string as "" (`OffsetAndMetadata.NoMetadata`).
    public var metadata: String
    public var commitTimestampMilliseconds: Int64

    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String = "", commitTimestampMilliseconds: Int64) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestampMilliseconds = commitTimestampMilliseconds
    }
}

/// Committed group offsets on disk: one small file per group, `<data-dir>/groups/<group>.offsets`,
/// holding all of the group's offsets and replaced atomically (temp file, fsync, rename, fsync dir) on
/// every commit.
///
/// Why a file per group rather than an internal log topic (Kafka's `__consumer_offsets`): a group's
/// offsets are small and bounded by its partitions, so rewriting them whole keeps the store trivially
/// compact — no compaction, no replay of history on start, nothing retention could delete under an idle
/// group. Commits to one group that arrive while its file is being written share the next write (group
/// commit), so a busy group costs one write per fsync, not one per commit. When groups move onto the
/// Raft-replicated cluster, this store is the seam to replace: the state machine never sees it.
///
/// File format (big-endian): "OPGO", version 1 (u8), group id (i16 length + UTF-8), count (i32), then per
/// offset: topic (i16 + UTF-8), partition i32, offset i64, leader epoch i32, metadata (i16 + UTF-8),
/// commit timestamp i64; finally a CRC-32C (u32) of everything before it.
public final class OffsetStore: Sendable {
    public let directory: String
    let threadPool: NIOThreadPool
    let logger: Logger

    /// Longest encoded file name: file systems allow 255 bytes.
    static let fileNameBytesMax = 240
    static let magic: [UInt8] = Array("OPGO".utf8)

    struct GroupWriter {
        var writing = false
        /// The newest snapshot not yet written, with everyone waiting for it.
        var pending: (offsets: [TopicPartition: CommittedOffset], completions: [@Sendable (Result<Void, BrokerError>) -> Void])?
    }

    private let writers = Mutex<[String: GroupWriter]>([:])
    /// Entered while any group has a write chain running; `drain` waits on it.
    private let inFlight = DispatchGroup()

    public init(dataDirectory: String, threadPool: NIOThreadPool, logger: Logger) throws(BrokerError) {
        directory = dataDirectory + "/groups"
        self.threadPool = threadPool
        self.logger = logger
        try DurableFile.createDirectory(directory)
    }

    /// The file name for a group, or nil when the group id is too long to be one.
    public static func fileName(for group: String) -> String? {
        var name = ""
        for byte in group.utf8 {
            let safe = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            if safe {
                name.append(Character(Unicode.Scalar(byte)))
            } else {
                name += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        name += ".offsets"
        return name.utf8.count <= fileNameBytesMax ? name : nil
    }

    /// Every group's offsets (at start-up). A damaged file is reported and skipped, and left on disk.
    public func loadAll() -> [String: [TopicPartition: CommittedOffset]] {
        var groups: [String: [TopicPartition: CommittedOffset]] = [:]
        for name in DurableFile.entries(directory) where name.hasSuffix(".offsets") {
            let path = directory + "/" + name
            do {
                guard let bytes = try DurableFile.read(path) else { continue }
                let (group, offsets) = try Self.decode(bytes, path: path)
                groups[group] = offsets
            } catch {
                logger.error("committed offsets file skipped", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        return groups
    }

    /// Writes `offsets` as the group's whole state and calls `completion` once it is durable. Writes of one
    /// group never overlap; a snapshot that arrives during a write supersedes any older pending one.
    public func persist(
        group: String, offsets: [TopicPartition: CommittedOffset], completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void
    ) {
        let start: Bool = writers.withLock { writers in
            var writer = writers[group] ?? GroupWriter()
            var completions = writer.pending?.completions ?? []
            completions.append(completion)
            writer.pending = (offsets, completions)
            let start = !writer.writing
            writer.writing = true
            writers[group] = writer
            return start
        }
        if start {
            inFlight.enter()
            writeNext(group: group)
        }
    }

    private func writeNext(group: String) {
        let next = writers.withLock { writers -> (offsets: [TopicPartition: CommittedOffset], completions: [@Sendable (Result<Void, BrokerError>) -> Void])? in
            guard let pending = writers[group]?.pending else {
                writers[group] = nil
                return nil
            }
            writers[group]?.pending = nil
            return pending
        }
        guard let next else {
            inFlight.leave()
            return
        }
        threadPool.submit { [self] _ in
            let result: Result<Void, BrokerError>
            do throws(BrokerError) {
                try write(group: group, offsets: next.offsets)
                result = .success(())
            } catch {
                logger.error("writing committed offsets failed", metadata: ["group": "\(group)", "error": "\(error)"])
                result = .failure(error)
            }
            for completion in next.completions { completion(result) }
            writeNext(group: group)
        }
    }

    func write(group: String, offsets: [TopicPartition: CommittedOffset]) throws(BrokerError) {
        guard let name = Self.fileName(for: group) else { throw .configuration("group id too long for a file name") }
        let path = directory + "/" + name
        if offsets.isEmpty {
            try DurableFile.remove(path)
        } else {
            try DurableFile.replace(path, with: Self.encode(group: group, offsets: offsets))
        }
    }

    /// Waits until no write is in flight or pending (shutdown).
    public func drain() {
        inFlight.wait()
    }

    // MARK: Format

    static func encode(group: String, offsets: [TopicPartition: CommittedOffset]) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 + offsets.count * 48)
        writer.write(contentsOf: magic)
        writer.write(UInt8(1))
        writeString(group, into: &writer)
        writer.write(Int32(offsets.count))
        for (partition, committed) in offsets.sorted(by: { $0.key < $1.key }) {
            writeString(partition.topic, into: &writer)
            writer.write(partition.partition)
            writer.write(committed.offset)
            writer.write(committed.leaderEpoch)
            writeString(committed.metadata, into: &writer)
            writer.write(committed.commitTimestampMilliseconds)
        }
        let crc = writer.bytes.withUnsafeBytes { CRC32C.checksum($0) }
        writer.write(crc)
        return writer.bytes
    }

    static func writeString(_ text: String, into writer: inout ByteWriter) {
        let bytes = Array(text.utf8.prefix(Int(Int16.max)))
        writer.write(Int16(bytes.count))
        writer.write(contentsOf: bytes)
    }

    static func decode(_ bytes: [UInt8], path: String) throws(BrokerError) -> (String, [TopicPartition: CommittedOffset]) {
        guard bytes.count >= magic.count + 1 + 4 + 4, Array(bytes[0..<4]) == magic else {
            throw .corruptFile(path: path, reason: "not an offsets file")
        }
        let body = bytes.count - 4
        let stored = bytes[body..<bytes.count].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        guard stored == computed else { throw .corruptFile(path: path, reason: "CRC-32C mismatch") }
        var reader = ByteReader(bytes, from: 4, to: body)
        do {
            guard try reader.readUInt8() == 1 else { throw BrokerError.corruptFile(path: path, reason: "unknown version") }
            let group = try readString(&reader, path: path)
            let count = try reader.readInt32()
            guard count >= 0, Int(count) <= reader.remaining else { throw BrokerError.corruptFile(path: path, reason: "bad count") }
            var offsets: [TopicPartition: CommittedOffset] = [:]
            for _ in 0..<count {
                let topic = try readString(&reader, path: path)
                let partition = try reader.readInt32()
                let offset = try reader.readInt64()
                let epoch = try reader.readInt32()
                let metadata = try readString(&reader, path: path)
                let timestamp = try reader.readInt64()
                offsets[TopicPartition(topic: topic, partition: partition)] = CommittedOffset(
                    offset: offset, leaderEpoch: epoch, metadata: metadata, commitTimestampMilliseconds: timestamp)
            }
            guard reader.isAtEnd else { throw BrokerError.corruptFile(path: path, reason: "trailing bytes") }
            return (group, offsets)
        } catch let error as BrokerError {
            throw error
        } catch {
            throw .corruptFile(path: path, reason: "truncated")
        }
    }

    static func readString(_ reader: inout ByteReader, path: String) throws -> String {
        let length = try reader.readInt16()
        guard length >= 0 else { throw BrokerError.corruptFile(path: path, reason: "negative string length") }
        guard let text = String(validating: try reader.readBytes(Int(length)), as: UTF8.self) else {
            throw BrokerError.corruptFile(path: path, reason: "string is not UTF-8")
        }
        return text
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
