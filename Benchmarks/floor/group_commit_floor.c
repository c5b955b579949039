// The floor under the log's group commit on this disk: the least any group commit of 8 closed-loop
// appenders can do, written as plainly as possible in C (no log format, no indexes, no CRC, no Swift), to
// tell what the disk allows from what OutpostLog costs. Not part of the product.
//
//   gcc -O2 -pthread Benchmarks/floor/group_commit_floor.c -o /tmp/group-commit-floor
//   /tmp/group-commit-floor DIR [seconds] [runs] [prepare-write-bytes]
//
// Rows (each the median of `runs` runs, latency from the start of an append to the end of the fdatasync
// that covers it):
//   bare: one thread appends 62 KiB to a new file and fdatasyncs after each write (the reference);
//   floor, appenders write: 8 threads each write 62 KiB (and start its writeback with sync_file_range) and
//     wait for durability; one flusher thread fdatasyncs whatever is written, first gathering as many
//     appends as its last fdatasync carried (at most that fdatasync's duration, 1 ms cap). OutpostLog's
//     algorithm under `fsync: always` until the write queue;
//   floor, flusher writes: the same, except that appenders only queue their 62 KiB and the flusher writes
//     the gathered group with one pwritev right before its fdatasync: OutpostLog's algorithm now
//     (`append(_:partitionLeaderEpoch:whenDurable:)`).
// In both, appenders wait on one condition and the flusher on another, woken only once its group is
// complete; the file is written and fsynced beforehand, so appends overwrite it (what a recycled segment
// is). It is written in writes of prepare-write-bytes (default 1 MiB), which sets the size of the pages it
// stays cached in: 62000, as a log's appends write, gives the small pages a recycled segment had cached
// before OutpostLog dropped them (docs/BENCHMARKS.md, issue 3).
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { batch_bytes = 62 * 1024, appenders = 8, max_samples = 4000000, group_max = 64 };
static const long file_bytes = 512L << 20;
static long prepare_write_bytes = 1L << 20;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

struct run {
    int descriptor;
    int flusher_writes;
    pthread_mutex_t lock;
    pthread_cond_t durable_changed, work_arrived;
    long position, appended, durable, last_group;
    uint64_t last_end, last_fsync;
    int stopping;
    long bytes, fsyncs, samples;
    uint64_t *latencies;
};

static char batch[batch_bytes];

/// Where the next `count` bytes go (lock held): the file is reused from its start before it would overflow.
static long take_position(struct run *r, long count) {
    if (r->position + count > file_bytes) r->position = 0;
    long position = r->position;
    r->position += count;
    return position;
}

static void *appender(void *argument) {
    struct run *r = argument;
    for (;;) {
        uint64_t start = now_ns();
        pthread_mutex_lock(&r->lock);
        if (r->stopping) { pthread_mutex_unlock(&r->lock); return NULL; }
        long position = -1;
        if (!r->flusher_writes) {
            position = take_position(r, batch_bytes);
            if (pwrite(r->descriptor, batch, batch_bytes, position) != batch_bytes) { perror("pwrite"); exit(1); }
            r->bytes += batch_bytes;
        }
        long mine = ++r->appended;
        // The flusher is woken once the group it gathers is complete (or it is idle).
        if (r->appended - r->durable >= (r->last_group > 1 ? r->last_group : 1)) pthread_cond_signal(&r->work_arrived);
        pthread_mutex_unlock(&r->lock);
        if (position >= 0) sync_file_range(r->descriptor, position, batch_bytes, SYNC_FILE_RANGE_WRITE);
        pthread_mutex_lock(&r->lock);
        while (r->durable < mine && !r->stopping) pthread_cond_wait(&r->durable_changed, &r->lock);
        if (r->samples < max_samples) r->latencies[r->samples++] = now_ns() - start;
        pthread_mutex_unlock(&r->lock);
    }
}

static void *flusher(void *argument) {
    struct run *r = argument;
    struct iovec vectors[group_max];
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        long pending = r->appended - r->durable;
        if (pending == 0) { pthread_cond_wait(&r->work_arrived, &r->lock); continue; }
        uint64_t gather_until = r->last_end + (r->last_fsync < 1000000 ? r->last_fsync : 1000000);
        uint64_t now = now_ns();
        if (r->last_group > 1 && pending < r->last_group && now < gather_until) {
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            uint64_t wait = gather_until - now + (uint64_t)deadline.tv_nsec;
            deadline.tv_sec += (time_t)(wait / 1000000000u);
            deadline.tv_nsec = (long)(wait % 1000000000u);
            pthread_cond_timedwait(&r->work_arrived, &r->lock, &deadline);
            continue;
        }
        long target = r->appended;
        r->last_group = pending;
        if (r->flusher_writes) {
            // The whole group in one write, under the lock as in the log.
            int count = pending < group_max ? (int)pending : group_max;
            for (int i = 0; i < count; i++) vectors[i] = (struct iovec){batch, batch_bytes};
            long position = take_position(r, (long)count * batch_bytes);
            if (pwritev(r->descriptor, vectors, count, position) != (ssize_t)count * batch_bytes) { perror("pwritev"); exit(1); }
            r->bytes += (long)count * batch_bytes;
        }
        pthread_mutex_unlock(&r->lock);
        uint64_t started = now_ns();
        if (fdatasync(r->descriptor) != 0) { perror("fdatasync"); exit(1); }
        uint64_t ended = now_ns();
        pthread_mutex_lock(&r->lock);
        r->last_end = ended;
        r->last_fsync = ended - started;
        r->fsyncs++;
        r->durable = target;
        pthread_cond_broadcast(&r->durable_changed);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct figures { double megabytes_per_second, p50_us, p99_us, per_fsync; };

static struct figures summarize(struct run *r, double seconds) {
    qsort(r->latencies, (size_t)r->samples, sizeof(uint64_t), compare);
    struct figures f = {
        r->bytes / seconds / 1e6, r->latencies[r->samples / 2] / 1e3, r->latencies[r->samples * 99 / 100] / 1e3,
        (double)r->samples / (double)r->fsyncs};
    return f;
}

/// One run: mode 0 is the bare loop, 1 the floor with appenders writing, 2 the floor with the flusher writing.
static struct figures run_once(const char *path, int mode, double seconds) {
    struct run r = {0};
    r.latencies = malloc(sizeof(uint64_t) * max_samples);
    r.flusher_writes = mode == 2;
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.durable_changed, NULL);
    pthread_cond_init(&r.work_arrived, NULL);
    r.descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (r.descriptor < 0) { perror(path); exit(1); }
    if (mode > 0) {
        static char zeros[1 << 20];
        for (long at = 0; at < file_bytes; at += prepare_write_bytes)
            if (pwrite(r.descriptor, zeros, prepare_write_bytes, at) != (ssize_t)prepare_write_bytes) { perror("pwrite"); exit(1); }
        if (fsync(r.descriptor) != 0) { perror("fsync"); exit(1); }
    }
    uint64_t start = now_ns();
    if (mode == 0) {
        while (now_ns() - start < (uint64_t)(seconds * 1e9)) {
            uint64_t before = now_ns();
            if (pwrite(r.descriptor, batch, batch_bytes, r.position) != batch_bytes) { perror("pwrite"); exit(1); }
            if (fdatasync(r.descriptor) != 0) { perror("fdatasync"); exit(1); }
            r.position += batch_bytes;
            r.bytes += batch_bytes;
            r.fsyncs++;
            if (r.samples < max_samples) r.latencies[r.samples++] = now_ns() - before;
        }
    } else {
        pthread_t threads[appenders + 1];
        pthread_create(&threads[appenders], NULL, flusher, &r);
        for (int i = 0; i < appenders; i++) pthread_create(&threads[i], NULL, appender, &r);
        usleep((useconds_t)(seconds * 1e6));
        pthread_mutex_lock(&r.lock);
        r.stopping = 1;
        pthread_cond_broadcast(&r.durable_changed);
        pthread_cond_broadcast(&r.work_arrived);
        pthread_mutex_unlock(&r.lock);
        for (int i = 0; i <= appenders; i++) pthread_join(threads[i], NULL);
    }
    double elapsed = (now_ns() - start) / 1e9;
    struct figures f = summarize(&r, elapsed);
    close(r.descriptor);
    unlink(path);
    free(r.latencies);
    return f;
}

static double median(double *values, int count) {
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && values[j - 1] > values[j]; j--) { double t = values[j]; values[j] = values[j - 1]; values[j - 1] = t; }
    return values[count / 2];
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR [seconds] [runs] [prepare-write-bytes]\n", argv[0]); return 2; }
    double seconds = argc > 2 ? atof(argv[2]) : 5;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    if (argc > 4) prepare_write_bytes = atol(argv[4]);
    if (prepare_write_bytes < 4096 || prepare_write_bytes > (1L << 20)) prepare_write_bytes = 1L << 20;
    if (runs < 1 || runs > 32) runs = 3;
    char path[4096];
    snprintf(path, sizeof path, "%s/group-commit-floor-%d.data", argv[1], (int)getpid());
    memset(batch, 0x5a, sizeof batch);
    static const char *names[3] = {
        "bare write+fdatasync loop", "group commit floor, appenders write (C)", "group commit floor, flusher writes the group (C)"};
    double mb[3][32], p50[3][32], p99[3][32], group[3][32];
    for (int i = 0; i < runs; i++)
        for (int mode = 0; mode < 3; mode++) {
            struct figures f = run_once(path, mode, seconds);
            mb[mode][i] = f.megabytes_per_second; p50[mode][i] = f.p50_us; p99[mode][i] = f.p99_us; group[mode][i] = f.per_fsync;
        }
    double bare_mb = median(mb[0], runs), bare_p99 = median(p99[0], runs);
    printf("| scenario | MB/s | vs bare | p50 us | p99 us | p99 vs bare | appends per fdatasync |\n|---|---|---|---|---|---|---|\n");
    for (int mode = 0; mode < 3; mode++) {
        double rate = median(mb[mode], runs), tail = median(p99[mode], runs);
        printf("| %s | %.1f | %.2fx | %.0f | %.0f | %.2fx | %.2f |\n", names[mode], rate, rate / bare_mb,
               median(p50[mode], runs), tail, tail / bare_p99, median(group[mode], runs));
    }
    return 0;
}
