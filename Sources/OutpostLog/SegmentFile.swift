#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFileIO
import OutpostCore

/// An open file of a segment (log, index or time index), with the few system calls the log needs.
/// Closing happens in `deinit`: a reader holding a segment keeps its file open even after retention
/// unlinked it, so reads never race deletion.
final class SegmentFile: @unchecked Sendable {
    let path: String
    let descriptor: Int32

    /// Opens (creating when `create`) read-write.
    init(path: String, create: Bool) throws(LogError) {
        self.path = path
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let descriptor = open(path, flags, 0o644)
        guard descriptor >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    func size() throws(LogError) -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        return Int(status.st_size)
    }

    /// Writes all of `bytes` at `position`. On failure the file is cut back to `position`, so a failed
    /// append leaves no partial batch behind, and the error is `.diskFull` for ENOSPC/EDQUOT.
    func writeAll(_ bytes: UnsafeRawBufferPointer, at position: Int) throws(LogError) {
        try writeAll([bytes], at: position)
    }

    /// Writes `buffers` back to back at `position` with as few system calls as the kernel allows (pwritev):
    /// the flusher writes a whole group of queued appends at once. Then `zeroPadding` zero bytes (less than
    /// a page; see `Segment.padding(after:)`). On failure the file is cut back to `position`, as with
    /// `writeAll(_:at:)`.
    func writeAll(_ buffers: [UnsafeRawBufferPointer], at position: Int, zeroPadding: Int = 0) throws(LogError) {
        guard zeroPadding > 0 else { return try writeVectors(buffers, at: position) }
        let failure: LogError? = Self.zeroPage.withUnsafeBytes { zeros in
            do throws(LogError) {
                try writeVectors(buffers + [UnsafeRawBufferPointer(rebasing: zeros[..<min(zeroPadding, zeros.count)])], at: position)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// A page of zeros, the source of `writeAll`'s padding.
    private static let zeroPage = [UInt8](repeating: 0, count: pageSize)

    private func writeVectors(_ buffers: [UnsafeRawBufferPointer], at position: Int) throws(LogError) {
        // Empty buffers are left out: a call of only empty vectors writes 0 bytes, and the loop below would
        // wait for progress for ever (salvage writing a segment of which nothing could be saved did).
        var vectors = buffers.filter { $0.count > 0 }.compactMap { buffer in
            buffer.baseAddress.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0), iov_len: buffer.count) }
        }
        var first = 0
        var written = 0
        while first < vectors.count {
            let count = Int32(min(vectors.count - first, Self.vectorsPerCallMax))
            let result = vectors.withUnsafeMutableBufferPointer { all in
                pwritev(descriptor, all.baseAddress.map { $0 + first }, count, off_t(position + written))
            }
            if result < 0 {
                let code = errno
                if code == EINTR { continue }
                _ = ftruncate(descriptor, off_t(position))
                if code == ENOSPC || code == EDQUOT { throw .diskFull(path: path) }
                throw .io(operation: "write", path: path, errno: code)
            }
            if result == 0 {
                _ = ftruncate(descriptor, off_t(position))
                throw .io(operation: "write (no progress)", path: path, errno: EIO)
            }
            written += result
            // Skip what this call wrote; a short write leaves the rest of one buffer for the next call.
            var remaining = result
            while remaining > 0 && first < vectors.count {
                if remaining >= vectors[first].iov_len {
                    remaining -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base += remaining
                    vectors[first].iov_len -= remaining
                    remaining = 0
                }
            }
        }
    }

    /// IOV_MAX on Linux.
    private static let vectorsPerCallMax = 1024

    /// Allocates disk blocks for `count` bytes at `position` without changing the file's size, so writes
    /// there cannot fail for want of space later. True when reserved, false where the file system cannot
    /// reserve (the caller then writes at once, learning of a full disk from the write); throws `.diskFull`
    /// when the disk has no room.
    func reserve(_ count: Int, at position: Int) throws(LogError) -> Bool {
        while outpost_reserve_space(descriptor, Int64(position), Int64(count)) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == ENOSPC || code == EDQUOT { throw .diskFull(path: path) }
            return false
        }
        return true
    }

    /// Gives back the blocks of `count` bytes at `position` inside the file, its size unchanged (the
    /// range then reads as zeros). Tests use it to take blocks away under a recycled file's old contents,
    /// as a copy-on-write file system's overwrite needs new ones.
    func releaseSpace(_ count: Int, at position: Int) throws(LogError) {
        while outpost_release_space(descriptor, Int64(position), Int64(count)) != 0 {
            let code = errno
            if code == EINTR { continue }
            throw .io(operation: "fallocate", path: path, errno: code)
        }
    }

    /// Gives back the blocks past the file's end that a reservation took and nothing wrote (the file's
    /// size does not show them): truncating to its own size frees them, and cuts no byte. One fstat when
    /// there are none.
    func releaseBlocksPastEnd() throws(LogError) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        let size = Int(status.st_size)
        let blockRoundedSize = (size + Self.pageSize - 1) & ~(Self.pageSize - 1)
        guard Int(status.st_blocks) * 512 > blockRoundedSize else { return }
        try truncate(to: size)
    }

    /// Bytes of disk the file holds (its blocks, which a reservation can take past its size).
    func allocatedBytes() throws(LogError) -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        return Int(status.st_blocks) * 512
    }

    /// Reads up to `count` bytes at `position`, appending them to `output`. Returns how many were read
    /// (fewer at end of file).
    @discardableResult
    func read(_ count: Int, at position: Int, appendingTo output: inout [UInt8]) throws(LogError) -> Int {
        guard count > 0 else { return 0 }
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count))
        var total = 0
        var failure: Int32 = 0
        output.withUnsafeMutableBytes { buffer in
            while total < count {
                let result = pread(descriptor, buffer.baseAddress! + start + total, count - total, off_t(position + total))
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if result == 0 { return }
                total += result
            }
        }
        output.removeSubrange((start + total)...)
        if failure != 0 { throw .io(operation: "read", path: path, errno: failure) }
        return total
    }

    func read(_ count: Int, at position: Int) throws(LogError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        try read(count, at: position, appendingTo: &bytes)
        return bytes
    }

    func truncate(to size: Int) throws(LogError) {
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw .io(operation: "truncate", path: path, errno: errno) }
    }

    /// Drops the clean cached pages of `count` bytes at `position` from the page cache (a hint; errors
    /// ignored). It starts writeback of dirty ones, which stay.
    func adviseDontNeed(at position: Int, count: Int) {
        _ = posix_fadvise(descriptor, off_t(position), off_t(count), Int32(POSIX_FADV_DONTNEED))
    }

    /// Starts writing the whole pages among `count` bytes just written at `position` back to the disk,
    /// without waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`): the fdatasync that follows finds them
    /// written or on their way. The last, partial page is left to the next append's hint (or the fdatasync):
    /// hinting it would write it once per append, and on devices that need stable pages the next append's
    /// write into it would wait for that writeback. A hint: without the WAIT flags it consumes no writeback
    /// error, so the fdatasync still reports one.
    func startWriteback(at position: Int, count: Int) {
        let start = position & ~(Self.pageSize - 1)
        let end = (position + count) & ~(Self.pageSize - 1)
        guard end > start else { return }
        _ = outpost_start_writeback(descriptor, Int64(start), Int64(end - start))
    }

    static let pageSize: Int = {
        let size = Int(sysconf(Int32(_SC_PAGESIZE)))
        // A power of two on every system we know; fall back to 4 KiB if sysconf says otherwise.
        return size > 0 && size & (size - 1) == 0 ? size : 4096
    }()

    /// fdatasync: the data and the metadata needed to read it (size) reach the disk.
    func synchronize() throws(LogError) {
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw .io(operation: "fdatasync", path: path, errno: errno)
        }
    }
}

/// Directory operations: an fsync of the directory makes a created, renamed or deleted entry durable.
enum Directory {
    static func synchronize(_ path: String) throws(LogError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(operation: "open directory", path: path, errno: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw .io(operation: "fsync directory", path: path, errno: errno) }
    }

    static func create(_ path: String) throws(LogError) {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += (prefix.isEmpty && !path.hasPrefix("/") ? "" : "/") + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw .io(operation: "mkdir", path: prefix, errno: errno)
            }
        }
    }

    static func entries(_ path: String) throws(LogError) -> [String] {
        guard let handle = opendir(path) else { throw .io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    static func remove(_ path: String) throws(LogError) {
        if unlink(path) != 0 && errno != ENOENT { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    static func rename(_ from: String, to: String) throws(LogError) {
        guard Glibc.rename(from, to) == 0 else { throw .io(operation: "rename", path: from, errno: errno) }
    }

    /// Writes `bytes` to `path` atomically: a temporary file, fsynced, renamed over, directory fsynced.
    static func writeAtomically(_ bytes: [UInt8], to path: String, directory: String) throws(LogError) {
        let temporary = path + ".tmp"
        let file = try SegmentFile(path: temporary, create: true)
        try file.truncate(to: 0)
        try bytes.withBytes { (buffer) throws(LogError) in try file.writeAll(buffer, at: 0) }
        try file.synchronize()
        try rename(temporary, to: path)
        try synchronize(directory)
    }

    static func modificationTimeMilliseconds(_ path: String) -> Int64? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return Int64(status.st_mtim.tv_sec) * 1000 + Int64(status.st_mtim.tv_nsec) / 1_000_000
    }
}
