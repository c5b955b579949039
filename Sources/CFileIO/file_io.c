#define _GNU_SOURCE
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
