#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include "outpost_file_io.h"

int outpost_start_writeback(int descriptor, long long offset, long long count) {
#if defined(__linux__)
    return sync_file_range(descriptor, offset, count, SYNC_FILE_RANGE_WRITE);
#else
    (void)descriptor; (void)offset; (void)count;
    return 0;
#endif
}

int outpost_reserve_space(int descriptor, long long offset, long long count) {
#if defined(__linux__)
    return fallocate(descriptor, FALLOC_FL_KEEP_SIZE, offset, count);
#else
    (void)descriptor; (void)offset; (void)count;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

int outpost_release_space(int descriptor, long long offset, long long count) {
#if defined(__linux__)
    return fallocate(descriptor, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, count);
#else
    (void)descriptor; (void)offset; (void)count;
    errno = EOPNOTSUPP;
    return -1;
#endif
}
