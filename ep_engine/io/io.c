/*
 * io.c - file calls with fault injection. It must never hold its fault lock
 * across a real system call (the power-loss model's lock is held across each
 * call, but only while a test has armed it), and a paused call must always be
 * released by io_destroy, so shutdown cannot hang on a test's forgotten pause.
 */
#include "io.h"

#include "crash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct io_fault {
    uint64_t calls;   /* calls of this op so far */
    uint64_t fail_at; /* 0 = no fault; else the call number that starts failing */
    uint64_t count;   /* calls that fail from fail_at on; 0 = all */
    int err;
    bool short_write;
    bool pause;
} io_fault;

struct ep_io {
    /* Held across each file call while the power-loss model is armed (the
     * model's journal must see the calls one at a time, and a cut must not
     * race a call in flight); guards crash. Recursive: io_list_dir's callback
     * may make file calls. Unarmed (always, in the shipped engine), a call
     * only reads `armed` and never takes it. */
    pthread_mutex_t crash_lock;
    io_crash *crash;
    _Atomic bool armed;
    pthread_mutex_t lock; /* guards faults, paused, resumed */
    pthread_cond_t cond;  /* pause / resume / paused changes */
    io_fault faults[IO_NOPS];
    unsigned paused;     /* calls waiting in a pause right now */
    uint64_t resume_gen; /* bumped by "resume" */
    bool closing;
};

static const char *const op_names[IO_NOPS] = {"open",   "write",   "fsync",
                                              "rename", "dirsync", "read",
                                              "unlink", "mkdir",   "read_cached"};

ep_io *io_create(void)
{
    ep_io *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    pthread_mutex_init(&io->lock, NULL);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&io->crash_lock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&io->cond, NULL);
    return io;
}

void io_destroy(ep_io *io)
{
    if (io == NULL)
        return;
    pthread_mutex_lock(&io->lock);
    io->closing = true;
    io->resume_gen++;
    pthread_cond_broadcast(&io->cond);
    while (io->paused > 0)
        pthread_cond_wait(&io->cond, &io->lock);
    pthread_mutex_unlock(&io->lock);
    crash_free(io->crash);
    pthread_mutex_destroy(&io->crash_lock);
    pthread_mutex_destroy(&io->lock);
    pthread_cond_destroy(&io->cond);
    free(io);
}

uint64_t io_calls(ep_io *io, io_op op)
{
    pthread_mutex_lock(&io->lock);
    uint64_t n = io->faults[op].calls;
    pthread_mutex_unlock(&io->lock);
    return n;
}

/* Counts a call and decides its fate: 0 to go on, -errno to fail. *short_write
 * tells a write to write half and then fail. Pauses here if asked. */
static int fault_check(ep_io *io, io_op op, bool *short_write)
{
    int rc = 0;
    pthread_mutex_lock(&io->lock);
    io_fault *f = &io->faults[op];
    uint64_t n = ++f->calls;
    bool hit = f->fail_at != 0 && n >= f->fail_at &&
               (f->count == 0 || n < f->fail_at + f->count);
    if (hit && f->pause && !io->closing) {
        uint64_t gen = io->resume_gen;
        io->paused++;
        pthread_cond_broadcast(&io->cond);
        while (io->resume_gen == gen)
            pthread_cond_wait(&io->cond, &io->lock);
        io->paused--;
        pthread_cond_broadcast(&io->cond);
    } else if (hit && f->short_write) {
        *short_write = true;
    } else if (hit && f->err != 0) {
        rc = -f->err;
    }
    if (hit && f->short_write)
        rc = -(f->err ? f->err : ENOSPC);
    pthread_mutex_unlock(&io->lock);
    return rc;
}

static int errno_by_name(const char *s, size_t len)
{
    static const struct {
        const char *name;
        int value;
    } names[] = {{"EIO", EIO},      {"ENOSPC", ENOSPC}, {"EDQUOT", EDQUOT},
                 {"EROFS", EROFS},  {"EACCES", EACCES}, {"ENOENT", ENOENT},
                 {"EINTR", EINTR},  {"EBADF", EBADF},   {"EFBIG", EFBIG},
                 {"EAGAIN", EAGAIN}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, s, len) == 0)
            return names[i].value;
    return 0;
}

static int wait_paused(ep_io *io)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int rc = 0;
    pthread_mutex_lock(&io->lock);
    while (io->paused == 0 && rc == 0)
        rc = pthread_cond_timedwait(&io->cond, &io->lock, &deadline);
    bool ok = io->paused > 0;
    pthread_mutex_unlock(&io->lock);
    return ok ? 0 : -1;
}

/* The power-loss model's commands (io.h). */
static int crash_control(ep_io *io, const char *cmd, char *why, size_t whylen)
{
    pthread_mutex_lock(&io->crash_lock);
    int rc = 0;
    if (strcmp(cmd, "crash_state") == 0) {
        snprintf(why, whylen, "%s",
                 io->crash == NULL         ? "off"
                 : crash_is_cut(io->crash) ? "cut"
                                           : "on");
    } else if (strncmp(cmd, "break=", 6) == 0) {
        bool fs = strcmp(cmd + 6, "fsync") == 0;
        bool ds = strcmp(cmd + 6, "dirsync_after_rename") == 0;
        if (io->crash == NULL || (!fs && !ds)) {
            snprintf(why, whylen, "break=fsync|dirsync_after_rename, after crash=...");
            rc = -1;
        } else {
            crash_break(io->crash, fs, ds);
        }
    } else {
        char mode[16] = "";
        unsigned long long cut = 0;
        unsigned seed = 1;
        if (sscanf(cmd, "crash=%15[a-z];cut_after=%llu;seed=%u", mode, &cut, &seed) < 2 ||
            (strcmp(mode, "drop") != 0 && strcmp(mode, "torn") != 0) ||
            io->crash != NULL) {
            snprintf(why, whylen,
                     "crash=drop|torn;cut_after=N[;seed=S] (once per engine)");
            rc = -1;
        } else {
            io->crash = crash_create(mode[0] == 'd' ? CRASH_DROP : CRASH_TORN, cut, seed);
            rc = io->crash ? 0 : -1;
            atomic_store_explicit(&io->armed, io->crash != NULL, memory_order_release);
        }
    }
    pthread_mutex_unlock(&io->crash_lock);
    return rc;
}

int io_control(ep_io *io, const char *cmd, char *why, size_t whylen)
{
    if (strncmp(cmd, "crash", 5) == 0 || strncmp(cmd, "break=", 6) == 0)
        return crash_control(io, cmd, why, whylen);
    if (strcmp(cmd, "resume") == 0 || strcmp(cmd, "clear") == 0) {
        pthread_mutex_lock(&io->lock);
        if (cmd[0] == 'c')
            for (int i = 0; i < IO_NOPS; i++)
                io->faults[i] = (io_fault){.calls = io->faults[i].calls};
        io->resume_gen++;
        pthread_cond_broadcast(&io->cond);
        pthread_mutex_unlock(&io->lock);
        return 0;
    }
    if (strcmp(cmd, "wait_paused") == 0) {
        if (wait_paused(io) == 0)
            return 0;
        snprintf(why, whylen, "no I/O call paused within 10 s");
        return -1;
    }
    io_fault f = {.fail_at = 1, .count = 1};
    int op = -1;
    const char *s = cmd;
    while (*s != '\0') {
        const char *end = strchr(s, ';');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (eq == NULL) {
            snprintf(why, whylen, "fault spec part '%.*s' has no '='", (int)len, s);
            return -1;
        }
        size_t klen = (size_t)(eq - s), vlen = len - klen - 1;
        const char *v = eq + 1;
        char num[24] = "";
        if (vlen < sizeof(num))
            memcpy(num, v, vlen);
        if (klen == 2 && memcmp(s, "op", 2) == 0) {
            for (int i = 0; i < IO_NOPS; i++)
                if (strlen(op_names[i]) == vlen && memcmp(op_names[i], v, vlen) == 0)
                    op = i;
        } else if (klen == 3 && memcmp(s, "nth", 3) == 0) {
            f.fail_at = strtoull(num, NULL, 10);
        } else if (klen == 5 && memcmp(s, "count", 5) == 0) {
            f.count = strtoull(num, NULL, 10);
        } else if (klen == 5 && memcmp(s, "errno", 5) == 0) {
            f.err = errno_by_name(v, vlen);
            if (f.err == 0) {
                snprintf(why, whylen, "unknown errno name '%.*s'", (int)vlen, v);
                return -1;
            }
        } else if (klen == 5 && memcmp(s, "short", 5) == 0) {
            f.short_write = num[0] == '1';
        } else if (klen == 5 && memcmp(s, "pause", 5) == 0) {
            f.pause = num[0] == '1';
        } else {
            snprintf(why, whylen, "unknown fault key '%.*s'", (int)klen, s);
            return -1;
        }
        s += len;
        if (*s == ';')
            s++;
    }
    if (op < 0 || f.fail_at == 0) {
        snprintf(why, whylen, "fault spec needs op=<%s|...> and nth >= 1", op_names[0]);
        return -1;
    }
    if (f.err == 0 && !f.pause && !f.short_write)
        f.err = EIO;
    pthread_mutex_lock(&io->lock);
    f.fail_at += io->faults[op].calls; /* nth counts from now */
    f.calls = io->faults[op].calls;
    io->faults[op] = f;
    pthread_mutex_unlock(&io->lock);
    return 0;
}

/* ---- the calls ---- */

/* Around a file call: with the power-loss model armed, holds the crash lock
 * and returns the model (NULL: not armed, no lock held); *rc is -EIO once the
 * power is off. */
static io_crash *crash_enter(ep_io *io, int *rc)
{
    *rc = 0;
    if (!atomic_load_explicit(&io->armed, memory_order_acquire))
        return NULL;
    pthread_mutex_lock(&io->crash_lock);
    if (io->crash == NULL) {
        pthread_mutex_unlock(&io->crash_lock);
        return NULL;
    }
    *rc = crash_before_call(io->crash);
    return io->crash;
}

static void crash_leave(ep_io *io, io_crash *c)
{
    if (c != NULL)
        pthread_mutex_unlock(&io->crash_lock);
}

static int raw_open(ep_io *io, const char *path, int flags, mode_t mode)
{
    bool sw = false;
    int rc = fault_check(io, IO_OPEN, &sw);
    if (rc < 0)
        return rc;
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int io_close(ep_io *io, int fd)
{
    (void)io;
    return close(fd) == 0 ? 0 : -errno;
}

/* Writes all of buf, at `off` or (off < 0) at the file position, after the
 * fault check; a short-write fault writes half and fails. */
static int write_all_at(ep_io *io, int fd, const void *buf, size_t len, int64_t off)
{
    bool short_write = false;
    int rc = fault_check(io, IO_WRITE, &short_write);
    if (rc < 0 && !short_write)
        return rc;
    size_t left = short_write ? len / 2 : len;
    const char *p = buf;
    while (left > 0) {
        ssize_t n = off < 0 ? write(fd, p, left) : pwrite(fd, p, left, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        left -= (size_t)n;
        if (off >= 0)
            off += n;
    }
    return short_write ? rc : 0;
}

static int raw_write_all(ep_io *io, int fd, const void *buf, size_t len)
{
    return write_all_at(io, fd, buf, len, -1);
}

static int raw_pwrite_all(ep_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
    return write_all_at(io, fd, buf, len, (int64_t)off);
}

static int raw_truncate(ep_io *io, int fd, uint64_t len)
{
    (void)io;
    return ftruncate(fd, (off_t)len) == 0 ? 0 : -errno;
}

void io_start_writeback(ep_io *io, int fd, uint64_t off, uint64_t len)
{
    (void)io;
#if defined(__linux__)
    (void)sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
}

void io_advise_sequential(ep_io *io, int fd)
{
    (void)io;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

static int raw_fsync(ep_io *io, int fd)
{
    bool sw = false;
    int rc = fault_check(io, IO_FSYNC, &sw);
    if (rc < 0)
        return rc;
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static int raw_rename(ep_io *io, const char *from, const char *to)
{
    bool sw = false;
    int rc = fault_check(io, IO_RENAME, &sw);
    if (rc < 0)
        return rc;
    return rename(from, to) == 0 ? 0 : -errno;
}

static int raw_fsync_dir(ep_io *io, const char *dir)
{
    bool sw = false;
    int rc = fault_check(io, IO_DIRSYNC, &sw);
    if (rc < 0)
        return rc;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int raw_read_file(ep_io *io, const char *path, size_t max, char **buf, size_t *len)
{
    bool sw = false;
    int rc = fault_check(io, IO_READ, &sw);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, used = 0;
    char *data = malloc(cap + 1);
    rc = data ? 0 : -ENOMEM;
    while (rc == 0) {
        if (used == cap) {
            if (cap >= max) {
                rc = -EFBIG;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *grown = realloc(data, cap + 1);
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            data = grown;
        }
        ssize_t n = read(fd, data + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        else if (n == 0)
            break;
        else
            used += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(data);
        return rc;
    }
    data[used] = '\0';
    *buf = data;
    *len = used;
    return 0;
}

static int raw_unlink(ep_io *io, const char *path)
{
    bool sw = false;
    int rc = fault_check(io, IO_UNLINK, &sw);
    if (rc < 0)
        return rc;
    return unlink(path) == 0 ? 0 : -errno;
}

static int raw_mkdir(ep_io *io, const char *path, mode_t mode)
{
    bool sw = false;
    int rc = fault_check(io, IO_MKDIR, &sw);
    if (rc < 0)
        return rc;
    return mkdir(path, mode) == 0 ? 0 : -errno;
}

static ssize_t raw_pread(ep_io *io, int fd, void *buf, size_t len, uint64_t off)
{
    bool sw = false;
    int rc = fault_check(io, IO_READ, &sw);
    if (rc < 0 && !sw)
        return rc;
    if (sw)
        len /= 2; /* a short read: half of what was asked */
    ssize_t n;
    do
        n = pread(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t raw_pread_cached(ep_io *io, int fd, void *buf, size_t len, uint64_t off)
{
    bool sw = false;
    int rc = fault_check(io, IO_READ_CACHED, &sw);
    if (rc < 0 && !sw)
        return rc;
    if (sw)
        len /= 2;
    struct iovec v = {buf, len};
    ssize_t n;
    do
        n = preadv2(fd, &v, 1, (off_t)off, RWF_NOWAIT);
    while (n < 0 && errno == EINTR);
    /* A kernel or file system without RWF_NOWAIT: as if nothing were cached,
     * so the caller takes the path that may wait. */
    if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL))
        return -EAGAIN;
    return n < 0 ? -errno : n;
}

static int64_t raw_file_size(ep_io *io, int fd)
{
    (void)io;
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : -errno;
}

static int raw_list_dir(ep_io *io, const char *dir,
                        int (*cb)(const char *name, void *ctx), void *ctx)
{
    bool sw = false;
    int rc = fault_check(io, IO_READ, &sw);
    if (rc < 0)
        return rc;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -errno;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        if (cb(ent->d_name, ctx) != 0)
            break;
    }
    closedir(d);
    return 0;
}

/* CRC-32C (Castagnoli): the SSE 4.2 instruction where the processor has it,
 * else slice-by-8 tables. The tables are read-only after their one-time
 * initialisation, so all instances share them. */
#define CRC32C_POLY 0x82F63B78u
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? CRC32C_POLY ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] =
                (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_hw_update(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static uint32_t crc_sw_update(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t io_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_hw_update(crc, buf, len);
#endif
    return ~crc_sw_update(crc, buf, len);
}

uint32_t io_crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_sw_update(~crc, buf, len);
}

/* ---- the calls, through the power-loss model when it is armed ---- */

int io_open(ep_io *io, const char *path, int flags, mode_t mode)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        size_t mark = c != NULL ? crash_mark(c) : 0;
        if (c != NULL)
            crash_on_open(c, path, flags);
        rc = raw_open(io, path, flags, mode);
        if (c != NULL && rc < 0)
            crash_forget_since(c, mark); /* it did not happen */
    }
    crash_leave(io, c);
    return rc;
}

int io_write_all(ep_io *io, int fd, const void *buf, size_t len)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        if (c != NULL)
            crash_on_write(c, fd, -1, len);
        rc = raw_write_all(io, fd, buf, len);
    }
    crash_leave(io, c);
    return rc;
}

int io_pwrite_all(ep_io *io, int fd, const void *buf, size_t len, uint64_t off)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        if (c != NULL)
            crash_on_write(c, fd, (int64_t)off, len);
        rc = raw_pwrite_all(io, fd, buf, len, off);
    }
    crash_leave(io, c);
    return rc;
}

int io_truncate(ep_io *io, int fd, uint64_t len)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        if (c != NULL)
            crash_on_truncate(c, fd, len);
        rc = raw_truncate(io, fd, len);
    }
    crash_leave(io, c);
    return rc;
}

int io_fsync(ep_io *io, int fd)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_fsync(io, fd);
        if (c != NULL && rc == 0)
            crash_on_fsync(c, fd);
    }
    crash_leave(io, c);
    return rc;
}

int io_rename(ep_io *io, const char *from, const char *to)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        size_t mark = c != NULL ? crash_mark(c) : 0;
        if (c != NULL)
            crash_on_rename(c, from, to);
        rc = raw_rename(io, from, to);
        if (c != NULL && rc < 0)
            crash_forget_since(c, mark); /* it did not happen */
    }
    crash_leave(io, c);
    return rc;
}

int io_fsync_dir(ep_io *io, const char *dir)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_fsync_dir(io, dir);
        if (c != NULL && rc == 0)
            crash_on_dirsync(c, dir);
    }
    crash_leave(io, c);
    return rc;
}

int io_read_file(ep_io *io, const char *path, size_t max, char **buf, size_t *len)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_read_file(io, path, max, buf, len);
    }
    crash_leave(io, c);
    return rc;
}

int io_unlink(ep_io *io, const char *path)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        size_t mark = c != NULL ? crash_mark(c) : 0;
        if (c != NULL)
            crash_on_unlink(c, path);
        rc = raw_unlink(io, path);
        if (c != NULL && rc < 0)
            crash_forget_since(c, mark); /* it did not happen */
    }
    crash_leave(io, c);
    return rc;
}

int io_mkdir(ep_io *io, const char *path, mode_t mode)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_mkdir(io, path, mode);
    }
    crash_leave(io, c);
    return rc;
}

ssize_t io_pread(ep_io *io, int fd, void *buf, size_t len, uint64_t off)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    ssize_t rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_pread(io, fd, buf, len, off);
    }
    crash_leave(io, c);
    return rc;
}

ssize_t io_pread_cached(ep_io *io, int fd, void *buf, size_t len, uint64_t off)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    ssize_t rc = cut < 0 ? cut : raw_pread_cached(io, fd, buf, len, off);
    crash_leave(io, c);
    return rc;
}

int64_t io_file_size(ep_io *io, int fd)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int64_t rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_file_size(io, fd);
    }
    crash_leave(io, c);
    return rc;
}

int io_list_dir(ep_io *io, const char *dir, int (*cb)(const char *name, void *ctx),
                void *ctx)
{
    int cut;
    io_crash *c = crash_enter(io, &cut);
    int rc;
    if (cut < 0) {
        rc = cut;
    } else {
        rc = raw_list_dir(io, dir, cb, ctx);
    }
    crash_leave(io, c);
    return rc;
}
