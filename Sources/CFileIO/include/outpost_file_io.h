#ifndef OUTPOST_FILE_IO_H
#define OUTPOST_FILE_IO_H

/// Starts writeback of `count` bytes at `offset` of `descriptor` without waiting for it (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which Glibc's Swift module does not export: it needs
/// _GNU_SOURCE). Returns 0 or -1 with errno; elsewhere does nothing and returns 0.
int outpost_start_writeback(int descriptor, long long offset, long long count);

/// Allocates disk blocks for `count` bytes at `offset` of `descriptor` without changing the file's size
/// (Linux `fallocate(FALLOC_FL_KEEP_SIZE)`, also _GNU_SOURCE only), so later writes there cannot run out of
/// space. Returns 0 or -1 with errno (ENOSPC when the disk is full; EOPNOTSUPP where the file system or the
/// system cannot).
int outpost_reserve_space(int descriptor, long long offset, long long count);

/// Gives back the disk blocks of `count` bytes at `offset` of `descriptor` without changing the file's size
/// (Linux `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`): the range reads as zeros afterwards.
/// Returns 0 or -1 with errno.
int outpost_release_space(int descriptor, long long offset, long long count);

#endif
