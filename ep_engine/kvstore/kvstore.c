/*
 * kvstore.c - segment files of checksummed records (format in kvstore.h).
 *
 * A shard's flusher task appends, its compaction task replaces old segments by
 * a base, and warmup scans (before either runs); the shard lock serialises
 * appends with the moment a compaction seals and installs, never with the
 * compaction's own writing. A read of one record (a background fetch) takes
 * only the shard's names lock, which nobody holds across I/O, so it never
 * waits for a batch's write or fsync. It never appends to a segment after a failed
 * write, nor to a segment of an earlier run (its tail may be torn).
 */
#include "kvstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEG_MAGIC        "EPSEG\0\0\1"
#define SEG_VERSION      1u
#define SEG_HEADER_BYTES 32u
#define REC_HEADER_BYTES 40u /* crc + length + the fixed fields */
#define REC_FIXED_BYTES  32u /* what `length` counts besides key and value */
#define SCAN_CHUNK       (1u << 20)

/* Files read lately stay open for the next reads (at most OPEN_FILES a shard,
 * and OPEN_FILES_ALL in all: kvhost counts them in its descriptor budget): a
 * read of an evicted value is then one pread, with no open and close. A
 * descriptor is shared by the reads that take it (users); a file that
 * compaction deletes is marked gone and closed by its last
 * reader, who reads the old file meanwhile and checks the record like any
 * other. */
#define OPEN_FILES     8
#define OPEN_FILES_ALL 32

typedef struct open_file {
    uint64_t id; /* the location's kind and number (loc >> KVS_LOC_OFFSET_BITS) */
    int fd;      /* -1: the slot is free */
    unsigned users;
    bool gone;     /* no longer one of the shard's files */
    uint64_t used; /* the shard's open_clock at the last take */
} open_file;

typedef struct shard {
    pthread_mutex_t lock; /* guards everything below but `bytes`; held across a
                             batch's writes and fsync */
    /* Guards segs, nsegs, cap, base and prev_base as well: a writer of those
     * holds both (lock first, briefly), a reader either. */
    pthread_mutex_t names;
    int fd;             /* current segment, -1 if none */
    uint64_t seg_no;    /* number of the current (or last seen) segment or base */
    uint64_t seg_bytes; /* bytes in the current segment */
    uint64_t filled;    /* its file's length: seg_bytes, plus zeros written ahead */
    bool start_new;     /* the next append opens a new segment */
    uint64_t *segs;     /* numbers of this shard's segments, ascending */
    size_t nsegs, cap;
    uint64_t base;      /* number of the base file, 0 if none */
    uint64_t prev_base; /* a base just replaced, until its compaction finishes */
    bool compacting;
    _Atomic uint64_t bytes;     /* in the base and all segments */
    open_file open[OPEN_FILES]; /* guarded by names */
    uint64_t open_clock;        /* ticks at each use of one of them */
    uint64_t open_gen;          /* changes when the shard's files change */
} shard;

#define KIND_SEGMENT 0u
#define KIND_BASE    1u

struct kvs {
    ep_io *io;
    char dir[1024];
    unsigned nshards;
    uint64_t segment_max;
    unsigned open_max; /* descriptors kept open a shard, 1..OPEN_FILES */
    shard *shards;
};

/* ---- locations ---- */

#define LOC_OFFSET_MASK ((UINT64_C(1) << KVS_LOC_OFFSET_BITS) - 1)
#define LOC_NUMBER_MASK ((UINT64_C(1) << KVS_LOC_NUMBER_BITS) - 1)

static uint64_t make_loc(uint32_t kind, uint64_t number, uint64_t offset)
{
    return (uint64_t)kind << (KVS_LOC_OFFSET_BITS + KVS_LOC_NUMBER_BITS) |
           (number & LOC_NUMBER_MASK) << KVS_LOC_OFFSET_BITS | (offset & LOC_OFFSET_MASK);
}

/* ---- little-endian helpers ---- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- opening ---- */

static void seg_path(const kvs *s, unsigned shard_no, uint64_t seg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/shard%u.%" PRIu64 ".seg", s->dir, shard_no, seg);
}

static void base_path(const kvs *s, unsigned shard_no, uint64_t base, bool tmp, char *buf,
                      size_t cap)
{
    snprintf(buf, cap, "%s/shard%u.%" PRIu64 ".base%s", s->dir, shard_no, base,
             tmp ? ".tmp" : "");
}

static void add_file_bytes(kvs *s, shard *sh, const char *path)
{
    int fd = io_open(s->io, path, O_RDONLY, 0);
    if (fd < 0)
        return;
    int64_t size = io_file_size(s->io, fd);
    if (size > 0)
        atomic_fetch_add(&sh->bytes, (uint64_t)size);
    io_close(s->io, fd);
}

static int add_segment(shard *sh, uint64_t seg)
{
    pthread_mutex_lock(&sh->names);
    if (sh->nsegs == sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 8;
        uint64_t *grown = realloc(sh->segs, cap * sizeof(uint64_t));
        if (grown == NULL) {
            pthread_mutex_unlock(&sh->names);
            return -ENOMEM;
        }
        sh->segs = grown;
        sh->cap = cap;
    }
    size_t i = sh->nsegs++;
    while (i > 0 && sh->segs[i - 1] > seg) {
        sh->segs[i] = sh->segs[i - 1];
        i--;
    }
    sh->segs[i] = seg;
    pthread_mutex_unlock(&sh->names);
    if (seg > sh->seg_no)
        sh->seg_no = seg;
    return 0;
}

typedef struct found {
    kvs *s;
    int err;
    /* Every base file seen ("shard" * 2^32 + number, numbers < 2^32 here):
     * all but each shard's newest are removed once the listing is done. */
    uint64_t *bases;
    size_t nbases, cap;
} found;

static int found_file(const char *name, void *ctx)
{
    found *f = ctx;
    unsigned shard_no;
    uint64_t seg;
    char tail[16];
    if (sscanf(name, "shard%u.%" SCNu64 ".%15s", &shard_no, &seg, tail) != 3 ||
        shard_no >= f->s->nshards || seg == 0)
        return 0; /* not ours: other files may live in the data directory */
    shard *sh = &f->s->shards[shard_no];
    if (strcmp(tail, "seg") == 0) {
        f->err = add_segment(sh, seg);
    } else if (strcmp(tail, "base") == 0) {
        if (f->nbases == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : 16;
            uint64_t *b = realloc(f->bases, cap * sizeof(uint64_t));
            if (b == NULL)
                return f->err = -ENOMEM;
            f->bases = b;
            f->cap = cap;
        }
        f->bases[f->nbases++] = (uint64_t)shard_no << 32 | (seg & 0xffffffffu);
        if (seg > sh->base)
            sh->base = seg;
        if (seg > sh->seg_no)
            sh->seg_no = seg;
    } else if (strcmp(tail, "base.tmp") == 0) {
        /* A compaction that never finished: not in force; remove it. */
        char path[1100];
        base_path(f->s, shard_no, seg, true, path, sizeof(path));
        io_unlink(f->s->io, path);
    }
    return f->err;
}

/* Drops the files the newest base supersedes: segments up to it and older
 * bases (a crash after an install, or before the unlink of the previous base
 * was made durable, leaves them). How many it removed. */
static size_t remove_replaced(kvs *s, unsigned shard_no, const found *f)
{
    shard *sh = &s->shards[shard_no];
    char path[1100];
    size_t keep = 0, removed = 0;
    for (size_t i = 0; i < sh->nsegs; i++) {
        if (sh->segs[i] <= sh->base) {
            seg_path(s, shard_no, sh->segs[i], path, sizeof(path));
            removed += io_unlink(s->io, path) == 0;
        } else {
            sh->segs[keep++] = sh->segs[i];
        }
    }
    sh->nsegs = keep;
    for (size_t i = 0; i < f->nbases; i++) {
        uint64_t number = f->bases[i] & 0xffffffffu;
        if (f->bases[i] >> 32 == shard_no && number < sh->base) {
            base_path(s, shard_no, number, false, path, sizeof(path));
            removed += io_unlink(s->io, path) == 0;
        }
    }
    return removed;
}

kvs *kvs_open(ep_io *io, const char *dir, unsigned nshards, uint64_t segment_max_bytes,
              char *why, size_t whylen)
{
    kvs *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->shards = calloc(nshards, sizeof(shard))) == NULL) {
        free(s);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->io = io;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->nshards = nshards;
    s->segment_max = segment_max_bytes;
    s->open_max = OPEN_FILES_ALL / nshards;
    s->open_max = s->open_max < 1            ? 1
                  : s->open_max > OPEN_FILES ? OPEN_FILES
                                             : s->open_max;
    for (unsigned i = 0; i < nshards; i++) {
        pthread_mutex_init(&s->shards[i].lock, NULL);
        pthread_mutex_init(&s->shards[i].names, NULL);
        s->shards[i].fd = -1;
        s->shards[i].start_new = true;
        for (int j = 0; j < OPEN_FILES; j++)
            s->shards[i].open[j].fd = -1;
    }
    found f = {s, 0, NULL, 0, 0};
    int rc = io_list_dir(io, dir, found_file, &f);
    if (rc < 0 || f.err < 0) {
        snprintf(why, whylen, "cannot list %s: %s", dir, strerror(rc < 0 ? -rc : -f.err));
        free(f.bases);
        kvs_close(s);
        return NULL;
    }
    /* Old bases and replaced segments go, and the removals are made durable
     * (kvstore.h: at most one base per shard); then sizes, for stats and
     * compaction. */
    char path[1100];
    size_t removed = 0;
    for (unsigned i = 0; i < nshards; i++)
        removed += remove_replaced(s, i, &f);
    free(f.bases);
    if (removed > 0)
        io_fsync_dir(io, dir);
    for (unsigned i = 0; i < nshards; i++) {
        shard *sh = &s->shards[i];
        if (sh->base != 0) {
            base_path(s, i, sh->base, false, path, sizeof(path));
            add_file_bytes(s, sh, path);
        }
        for (size_t j = 0; j < sh->nsegs; j++) {
            seg_path(s, i, sh->segs[j], path, sizeof(path));
            add_file_bytes(s, sh, path);
        }
    }
    return s;
}

/* Closes the shard's current segment, cutting the zeros written ahead of its
 * data (a tidy file; a scan would also take them as the clean end). Under the
 * shard lock. */
static void close_segment(kvs *s, shard *sh)
{
    if (sh->fd < 0)
        return;
    if (sh->filled > sh->seg_bytes && !sh->start_new)
        io_truncate(s->io, sh->fd, sh->seg_bytes);
    io_close(s->io, sh->fd);
    sh->fd = -1;
}

void kvs_close(kvs *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; s->shards != NULL && i < s->nshards; i++) {
        close_segment(s, &s->shards[i]);
        for (int j = 0; j < OPEN_FILES; j++)
            if (s->shards[i].open[j].fd >= 0)
                io_close(s->io, s->shards[i].open[j].fd);
        free(s->shards[i].segs);
        pthread_mutex_destroy(&s->shards[i].lock);
        pthread_mutex_destroy(&s->shards[i].names);
    }
    free(s->shards);
    free(s);
}

unsigned kvs_shards(const kvs *s)
{
    return s->nshards;
}

uint64_t kvs_shard_bytes(kvs *s, unsigned shard_no)
{
    return atomic_load(&s->shards[shard_no].bytes);
}

size_t kvs_record_size(const kvs_record *r)
{
    return REC_HEADER_BYTES + r->nkey + r->nvalue;
}

/* ---- appending ---- */

static size_t encode(const kvs_record *r, unsigned char *p)
{
    size_t len = REC_FIXED_BYTES + r->nkey + r->nvalue;
    put32(p + 4, (uint32_t)len);
    p[8] = r->type;
    p[9] = r->datatype;
    put16(p + 10, r->vbucket);
    put32(p + 12, r->collection);
    put64(p + 16, r->cas);
    put32(p + 24, r->flags);
    put32(p + 28, r->exptime);
    put16(p + 32, r->nkey);
    put16(p + 34, 0);
    put32(p + 36, r->nvalue);
    memcpy(p + 40, r->key, r->nkey);
    if (r->nvalue > 0)
        memcpy(p + 40 + r->nkey, r->value, r->nvalue);
    put32(p, io_crc32c(0, p + 4, 4 + len));
    return 8 + len;
}

static void make_header(unsigned char *h, unsigned shard_no, uint64_t seg, uint32_t kind)
{
    memcpy(h, SEG_MAGIC, 8);
    put32(h + 8, SEG_VERSION);
    put32(h + 12, shard_no);
    put64(h + 16, seg);
    put32(h + 24, kind);
    put32(h + 28, io_crc32c(0, h, 28));
}

/* Starts segment seg_no+1: creates it, writes its header, makes the name durable.
 * Under the shard lock. */
static int open_segment(kvs *s, unsigned shard_no, char *why, size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    close_segment(s, sh);
    char path[1100];
    uint64_t seg = sh->seg_no + 1;
    seg_path(s, shard_no, seg, path, sizeof(path));
    const char *step = "create";
    int fd = io_open(s->io, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    int rc = fd;
    if (fd < 0)
        goto err;
    unsigned char h[SEG_HEADER_BYTES];
    make_header(h, shard_no, seg, KIND_SEGMENT);
    step = "write header";
    rc = io_pwrite_all(s->io, fd, h, sizeof(h), 0);
    if (rc == 0) {
        step = "fsync of the data directory";
        rc = io_fsync_dir(s->io, s->dir);
    }
    if (rc < 0) {
        io_close(s->io, fd);
        goto err;
    }
    if ((rc = add_segment(sh, seg)) < 0) {
        io_close(s->io, fd);
        goto err;
    }
    sh->fd = fd;
    sh->seg_no = seg;
    sh->seg_bytes = SEG_HEADER_BYTES;
    sh->filled = SEG_HEADER_BYTES;
    sh->start_new = false;
    atomic_fetch_add(&sh->bytes, SEG_HEADER_BYTES);
    return 0;
err:
    /* The number is used up either way: never reuse a name that may exist. */
    sh->seg_no = seg;
    snprintf(why, whylen, "%s of %s failed: %s", step, path, strerror(-rc));
    return rc;
}

#define APPEND_CHUNK (1u << 20) /* written out as it fills: stays in cache */

/* Writes out the encoded part of the buffer; `more` if the batch goes on (the
 * disk then starts on it while the rest is encoded). Under the shard lock. */
static void append_write(kvs_appender *a, bool more)
{
    shard *sh = &a->s->shards[a->shard_no];
    if (a->rc == 0 && a->used > 0) {
        int rc = io_pwrite_all(a->s->io, sh->fd, a->buf, a->used, a->off);
        if (rc < 0) {
            a->rc = rc;
            snprintf(a->why, sizeof(a->why),
                     "write of %zu bytes at offset %" PRIu64 " of shard %u failed: %s",
                     a->used, a->off, a->shard_no, strerror(-rc));
        } else {
            sh->seg_bytes = a->off + a->used;
            if (sh->filled < sh->seg_bytes)
                sh->filled = sh->seg_bytes;
            atomic_fetch_add(&sh->bytes, a->used);
            if (more)
                io_start_writeback(a->s->io, sh->fd, a->off, a->used);
        }
    }
    a->off += a->used;
    a->used = 0;
}

void kvs_append_begin(kvs *s, unsigned shard_no, uint64_t total, kvs_appender *a)
{
    shard *sh = &s->shards[shard_no];
    *a = (kvs_appender){.s = s, .shard_no = shard_no};
    a->cap = total < APPEND_CHUNK ? (size_t)total : APPEND_CHUNK;
    a->buf = malloc(a->cap ? a->cap : 1);
    pthread_mutex_lock(&sh->lock);
    if (a->buf == NULL) {
        a->rc = -ENOMEM;
        snprintf(a->why, sizeof(a->why), "out of memory for a %zu-byte write buffer",
                 a->cap);
        return;
    }
    if (sh->start_new || sh->fd < 0 || sh->seg_bytes + total > s->segment_max)
        a->rc = open_segment(s, shard_no, a->why, sizeof(a->why));
    a->off = sh->seg_bytes;
}

void kvs_append_add(kvs_appender *a, const kvs_record *r, uint64_t *loc)
{
    size_t size = kvs_record_size(r);
    *loc = 0;
    if (a->rc < 0)
        return;
    if (a->used + size > a->cap) {
        append_write(a, true);
        if (size > a->cap) { /* a record bigger than the buffer */
            unsigned char *b = realloc(a->buf, size);
            if (b == NULL) {
                a->rc = -ENOMEM;
                snprintf(a->why, sizeof(a->why),
                         "out of memory for a %zu-byte record buffer", size);
                return;
            }
            a->buf = b;
            a->cap = size;
        }
        if (a->rc < 0)
            return;
    }
    *loc = make_loc(KIND_SEGMENT, a->s->shards[a->shard_no].seg_no, a->off + a->used);
    a->used += encode(r, a->buf + a->used);
}

int kvs_append_commit(kvs_appender *a, char *why, size_t whylen)
{
    shard *sh = &a->s->shards[a->shard_no];
    append_write(a, false);
    if (a->rc == 0) {
        a->rc = io_fsync(a->s->io, sh->fd);
        if (a->rc < 0)
            snprintf(a->why, sizeof(a->why), "fsync of shard %u failed: %s", a->shard_no,
                     strerror(-a->rc));
    }
    if (a->rc < 0)
        sh->start_new = true; /* never append after a failed write */
    pthread_mutex_unlock(&sh->lock);
    free(a->buf);
    a->buf = NULL;
    if (a->rc < 0)
        snprintf(why, whylen, "%s", a->why);
    return a->rc;
}

int kvs_prefill(kvs *s, unsigned shard_no, uint64_t chunk)
{
    static const unsigned char zeros[64 * 1024];
    shard *sh = &s->shards[shard_no];
    int rc = 0;
    pthread_mutex_lock(&sh->lock);
    if (sh->fd >= 0 && !sh->start_new && sh->filled - sh->seg_bytes < chunk / 2 &&
        sh->filled + chunk <= s->segment_max) {
        for (uint64_t off = 0; off < chunk && rc == 0; off += sizeof(zeros)) {
            size_t n =
                chunk - off < sizeof(zeros) ? (size_t)(chunk - off) : sizeof(zeros);
            rc = io_pwrite_all(s->io, sh->fd, zeros, n, sh->filled + off);
        }
        if (rc == 0)
            rc = io_fsync(s->io, sh->fd);
        if (rc == 0) {
            sh->filled += chunk;
            rc = 1;
        } else {
            sh->start_new = true; /* never write after a failed write */
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

/* ---- scanning ---- */

typedef struct reader {
    ep_io *io;
    int fd;
    uint32_t kind;   /* of the file being read */
    uint64_t number; /* of the file being read */
    uint64_t file_size;
    uint64_t off; /* file offset of buf[0] */
    unsigned char *buf;
    size_t len, cap; /* bytes in buf, its size */
} reader;

/* Makes sure `need` bytes from position *at (relative to buf) are in buf,
 * sliding them to the front (and setting *at to 0) when it must read more. 1 if
 * they are there, 0 if the file ends first, -errno on error. */
static int fill(reader *r, size_t *at, size_t need)
{
    if (*at + need <= r->len)
        return 1;
    if (r->off + *at + need > r->file_size)
        return 0;
    memmove(r->buf, r->buf + *at, r->len - *at);
    r->off += *at;
    r->len -= *at;
    *at = 0;
    if (need > r->cap) {
        unsigned char *grown = realloc(r->buf, need);
        if (grown == NULL)
            return -ENOMEM;
        r->buf = grown;
        r->cap = need;
    }
    while (r->len < need) {
        ssize_t got =
            io_pread(r->io, r->fd, r->buf + r->len, r->cap - r->len, r->off + r->len);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return 0;
        r->len += (size_t)got;
    }
    return 1;
}

/* Whether the file holds only zero bytes from position at (relative to buf)
 * on: 1 yes, 0 no, -errno. Moves the reader (the caller's at is stale after). */
static int rest_is_zero(reader *r, size_t at)
{
    while (r->off + at < r->file_size) {
        uint64_t left = r->file_size - (r->off + at);
        size_t need = left < SCAN_CHUNK ? (size_t)left : SCAN_CHUNK;
        int got = fill(r, &at, need);
        if (got <= 0)
            return got;
        for (size_t i = 0; i < need; i++)
            if (r->buf[at + i] != 0)
                return 0;
        at += need;
    }
    return 1;
}

/* Scans one file; `rc` of the callback or -errno. */
static int scan_file(kvs *s, reader *r, const char *path,
                     int (*cb)(const kvs_record *rec, void *ctx), void *ctx,
                     kvs_scan_stats *st, void (*warn)(const char *msg, void *ctx),
                     char *why, size_t whylen)
{
    char msg[1300];
    int rc = 0;
    r->fd = io_open(s->io, path, O_RDONLY, 0);
    if (r->fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(-r->fd));
        return r->fd;
    }
    /* The kernel's own read-ahead keeps the disk ahead of the scan. Asking for
     * each range with WILLNEED instead makes the reader fill the page cache
     * itself and stall at each range's end, where the kernel's asynchronous
     * read-ahead has not been started (BENCHMARKS.md, "Figures behind choices
     * in the code"). */
    io_advise_sequential(s->io, r->fd);
    int64_t size = io_file_size(s->io, r->fd);
    r->file_size = size > 0 ? (uint64_t)size : 0;
    r->off = 0;
    r->len = 0;
    st->segments++;
    size_t at = 0;
    int got = fill(r, &at, SEG_HEADER_BYTES);
    if (got <= 0 || memcmp(r->buf, SEG_MAGIC, 8) != 0 ||
        get32(r->buf + 28) != io_crc32c(0, r->buf, 28)) {
        if (got < 0) {
            rc = got;
            snprintf(why, whylen, "read of %s failed: %s", path, strerror(-rc));
        } else {
            /* A segment whose header never made it: nothing in it was acknowledged. */
            st->torn_segments++;
            st->torn_bytes += r->file_size;
            snprintf(msg, sizeof(msg),
                     "%s: bad or missing header; %" PRIu64 " bytes ignored", path,
                     r->file_size);
            warn(msg, ctx);
        }
        io_close(s->io, r->fd);
        return rc;
    }
    at = SEG_HEADER_BYTES;
    for (;;) {
        got = fill(r, &at, 8);
        if (got <= 0) {
            rc = got;
            break;
        }
        uint32_t crc = get32(r->buf + at), len = get32(r->buf + at + 4);
        if (crc == 0 && len == 0) {
            /* No record is all zeros: this is where the data ends. Zeros
             * written ahead of it (kvs_prefill) are the clean end; anything
             * else after it is a torn tail. */
            uint64_t pos = r->off + at;
            int z = rest_is_zero(r, at);
            if (z < 0) {
                rc = z;
            } else if (z == 0) {
                uint64_t dropped = r->file_size - pos;
                st->torn_segments++;
                st->torn_bytes += dropped;
                snprintf(msg, sizeof(msg),
                         "%s: torn or corrupt record at offset %" PRIu64 "; %" PRIu64
                         " bytes from there ignored",
                         path, pos, dropped);
                warn(msg, ctx);
            }
            break;
        }
        bool torn = len < REC_FIXED_BYTES || (got = fill(r, &at, 8 + (size_t)len)) == 0;
        if (got < 0) {
            rc = got;
            break;
        }
        const unsigned char *p = r->buf + at;
        if (!torn)
            torn = io_crc32c(0, p + 4, 4 + len) != crc ||
                   (size_t)REC_FIXED_BYTES + get16(p + 32) + get32(p + 36) != len ||
                   (p[8] != KVS_SET && p[8] != KVS_DELETE);
        if (torn) {
            uint64_t dropped = r->file_size - (r->off + at);
            st->torn_segments++;
            st->torn_bytes += dropped;
            snprintf(msg, sizeof(msg),
                     "%s: torn or corrupt record at offset %" PRIu64 "; %" PRIu64
                     " bytes from there ignored",
                     path, r->off + at, dropped);
            warn(msg, ctx);
            break;
        }
        kvs_record rec = {p[8],
                          p[9],
                          get16(p + 10),
                          get32(p + 12),
                          get64(p + 16),
                          get32(p + 24),
                          get32(p + 28),
                          get16(p + 32),
                          get32(p + 36),
                          p + 40,
                          p + 40 + get16(p + 32),
                          make_loc(r->kind, r->number, r->off + at)};
        st->records++;
        st->bytes += 8 + len;
        at += 8 + len;
        rc = cb(&rec, ctx);
        if (rc != 0)
            break;
    }
    if (rc < 0 && why[0] == '\0')
        snprintf(why, whylen, "read of %s failed: %s", path, strerror(-rc));
    io_close(s->io, r->fd);
    return rc;
}

int kvs_scan(kvs *s, unsigned shard_no, int (*cb)(const kvs_record *r, void *ctx),
             void *ctx, kvs_scan_stats *st, void (*warn)(const char *msg, void *ctx),
             char *why, size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    char path[1100];
    reader r = {.io = s->io,
                .fd = -1,
                .kind = KIND_BASE,
                .number = sh->base,
                .buf = malloc(SCAN_CHUNK),
                .cap = SCAN_CHUNK};
    int rc = r.buf ? 0 : -ENOMEM;
    if (rc == 0 && sh->base != 0) {
        base_path(s, shard_no, sh->base, false, path, sizeof(path));
        rc = scan_file(s, &r, path, cb, ctx, st, warn, why, whylen);
    }
    for (size_t i = 0; rc == 0 && i < sh->nsegs; i++) {
        r.kind = KIND_SEGMENT;
        r.number = sh->segs[i];
        seg_path(s, shard_no, sh->segs[i], path, sizeof(path));
        rc = scan_file(s, &r, path, cb, ctx, st, warn, why, whylen);
    }
    free(r.buf);
    return rc;
}

/* ---- reading one record ---- */

/* The path of the file a location names, if the shard still has it. Under
 * the shard's names lock. */
static bool loc_path(kvs *s, unsigned shard_no, uint64_t loc, char *buf, size_t cap)
{
    shard *sh = &s->shards[shard_no];
    uint64_t number = loc >> KVS_LOC_OFFSET_BITS & LOC_NUMBER_MASK;
    if (loc >> (KVS_LOC_OFFSET_BITS + KVS_LOC_NUMBER_BITS) == KIND_BASE) {
        uint64_t b = sh->base != 0 && (sh->base & LOC_NUMBER_MASK) == number ? sh->base
                     : sh->prev_base != 0 && (sh->prev_base & LOC_NUMBER_MASK) == number
                         ? sh->prev_base
                         : 0;
        if (b == 0)
            return false;
        base_path(s, shard_no, b, false, buf, cap);
        return true;
    }
    for (size_t i = sh->nsegs; i-- > 0;) {
        if ((sh->segs[i] & LOC_NUMBER_MASK) == number) {
            seg_path(s, shard_no, sh->segs[i], buf, cap);
            return true;
        }
    }
    return false;
}

/* The shard's open descriptor of a file, if any. Under the names lock. */
static open_file *open_find(const kvs *s, shard *sh, uint64_t id)
{
    for (unsigned i = 0; i < s->open_max; i++)
        if (sh->open[i].fd >= 0 && !sh->open[i].gone && sh->open[i].id == id)
            return &sh->open[i];
    return NULL;
}

/* A slot for one more descriptor: a free one, else the least recently used
 * that no read holds (its descriptor to be closed by the caller), else NULL.
 * Under the names lock. */
static open_file *open_slot(const kvs *s, shard *sh)
{
    open_file *best = NULL;
    for (unsigned i = 0; i < s->open_max; i++) {
        open_file *of = &sh->open[i];
        if (of->fd < 0)
            return of;
        if (of->users == 0 && (best == NULL || of->used < best->used))
            best = of;
    }
    return best;
}

/* A descriptor of the file `loc` names, for one read: a shared one (*slot
 * set, given back with file_give), or one of the caller's own (*slot NULL).
 * -ENOENT if the shard no longer has the file (path left empty); -EAGAIN if
 * it is not open and may_open is false; else -errno of the open. */
static int file_take(kvs *s, unsigned shard_no, uint64_t loc, bool may_open,
                     open_file **slot, char *path, size_t cap)
{
    shard *sh = &s->shards[shard_no];
    uint64_t id = loc >> KVS_LOC_OFFSET_BITS;
    *slot = NULL;
    path[0] = '\0';
    pthread_mutex_lock(&sh->names);
    if (!loc_path(s, shard_no, loc, path, cap)) {
        pthread_mutex_unlock(&sh->names);
        return -ENOENT;
    }
    open_file *of = open_find(s, sh, id);
    if (of != NULL) {
        int fd = of->fd;
        of->users++;
        of->used = ++sh->open_clock;
        *slot = of;
        pthread_mutex_unlock(&sh->names);
        return fd;
    }
    uint64_t gen = sh->open_gen;
    pthread_mutex_unlock(&sh->names);
    if (!may_open)
        return -EAGAIN;
    int fd = io_open(s->io, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int spare = -1;
    pthread_mutex_lock(&sh->names);
    if (sh->open_gen != gen) {
        /* The shard's files changed since the path was looked up: this may be
         * a file since deleted. The read keeps it to itself. */
    } else if ((of = open_find(s, sh, id)) != NULL) {
        spare = fd; /* another read opened it meanwhile: share that one */
        fd = of->fd;
    } else if ((of = open_slot(s, sh)) != NULL) {
        spare = of->fd; /* an idle one pushed out, or -1 */
        *of = (open_file){id, fd, 0, false, 0};
    }
    if (of != NULL) {
        of->users++;
        of->used = ++sh->open_clock;
        *slot = of;
    }
    pthread_mutex_unlock(&sh->names);
    if (spare >= 0)
        io_close(s->io, spare);
    return fd;
}

/* Gives back what file_take gave. */
static void file_give(kvs *s, unsigned shard_no, open_file *of, int fd)
{
    if (of == NULL) {
        io_close(s->io, fd);
        return;
    }
    shard *sh = &s->shards[shard_no];
    int close_fd = -1;
    pthread_mutex_lock(&sh->names);
    if (--of->users == 0 && of->gone) {
        close_fd = of->fd;
        *of = (open_file){.fd = -1};
    }
    pthread_mutex_unlock(&sh->names);
    if (close_fd >= 0)
        io_close(s->io, close_fd);
}

/* After the shard's files changed: open descriptors of files it no longer
 * has are closed, or marked gone for their last reader to close. (No file is
 * ever written over under a name it had: kvs_compact_begin.) */
static void files_forget_gone(kvs *s, unsigned shard_no)
{
    shard *sh = &s->shards[shard_no];
    int closing[OPEN_FILES];
    int n = 0;
    char path[1100];
    pthread_mutex_lock(&sh->names);
    sh->open_gen++; /* for reads between a lookup and an open (file_take) */
    for (unsigned i = 0; i < s->open_max; i++) {
        open_file *of = &sh->open[i];
        if (of->fd < 0 || of->gone ||
            loc_path(s, shard_no, of->id << KVS_LOC_OFFSET_BITS, path, sizeof(path)))
            continue;
        if (of->users > 0) {
            of->gone = true;
        } else {
            closing[n++] = of->fd;
            *of = (open_file){.fd = -1};
        }
    }
    pthread_mutex_unlock(&sh->names);
    for (int i = 0; i < n; i++)
        io_close(s->io, closing[i]);
}

/* The record in p (8 + len bytes read: checksum, length and the rest), or
 * false if it is not a whole one. */
static bool record_parse(const unsigned char *p, size_t got, uint64_t loc,
                         kvs_record *out)
{
    if (got < REC_HEADER_BYTES)
        return false;
    uint32_t len = get32(p + 4);
    if (len < REC_FIXED_BYTES ||
        (size_t)REC_FIXED_BYTES + get16(p + 32) + get32(p + 36) != len ||
        got < 8 + (size_t)len || io_crc32c(0, p + 4, 4 + len) != get32(p) ||
        (p[8] != KVS_SET && p[8] != KVS_DELETE))
        return false;
    *out =
        (kvs_record){p[8],          p[9],          get16(p + 10),          get32(p + 12),
                     get64(p + 16), get32(p + 24), get32(p + 28),          get16(p + 32),
                     get32(p + 36), p + 40,        p + 40 + get16(p + 32), loc};
    return true;
}

int kvs_read(kvs *s, unsigned shard_no, uint64_t loc, kvs_record *out, void **buf,
             char *why, size_t whylen)
{
    char path[1100];
    *buf = NULL;
    open_file *of = NULL;
    int fd = shard_no < s->nshards
                 ? file_take(s, shard_no, loc, true, &of, path, sizeof(path))
                 : -ENOENT;
    if (fd == -ENOENT) {
        snprintf(why, whylen, "shard %u: the file of location 0x%" PRIx64 " is gone",
                 shard_no, loc);
        return -ENOENT;
    }
    if (fd < 0) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(-fd));
        return fd;
    }
    uint64_t off = loc & LOC_OFFSET_MASK;
    unsigned char head[REC_HEADER_BYTES], *p = NULL;
    int rc = 0;
    ssize_t got = io_pread(s->io, fd, head, sizeof(head), off);
    if (got >= 0 && (size_t)got < sizeof(head))
        rc = -EBADMSG;
    else if (got < 0)
        rc = (int)got;
    uint32_t len = rc == 0 ? get32(head + 4) : 0;
    if (rc == 0 && (len < REC_FIXED_BYTES ||
                    (size_t)REC_FIXED_BYTES + get16(head + 32) + get32(head + 36) != len))
        rc = -EBADMSG;
    if (rc == 0 && (p = malloc(8 + (size_t)len)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        got = io_pread(s->io, fd, p, 8 + (size_t)len, off);
        if (got < 0)
            rc = (int)got;
        else if (!record_parse(p, (size_t)got, loc, out))
            rc = -EBADMSG;
    }
    file_give(s, shard_no, of, fd);
    if (rc < 0) {
        free(p);
        snprintf(why, whylen, "read of the record at offset %" PRIu64 " of %s failed: %s",
                 off, path,
                 rc == -EBADMSG ? "not a whole record (checksum or length)"
                                : strerror(-rc));
        return rc;
    }
    *buf = p;
    return 0;
}

int kvs_read_cached(kvs *s, unsigned shard_no, uint64_t loc, size_t nkey, size_t nvalue,
                    kvs_record *out, void **buf)
{
    char path[1100];
    *buf = NULL;
    open_file *of = NULL;
    if (shard_no >= s->nshards)
        return -ENOENT;
    int fd = file_take(s, shard_no, loc, false, &of, path, sizeof(path));
    if (fd < 0)
        return fd;
    size_t want = REC_HEADER_BYTES + nkey + nvalue;
    unsigned char *p = malloc(want);
    int rc = p == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        ssize_t got = io_pread_cached(s->io, fd, p, want, loc & LOC_OFFSET_MASK);
        if (got < 0)
            rc = (int)got;
        else if ((size_t)got < want)
            rc = -EAGAIN; /* part of it is not in the page cache */
        else if (!record_parse(p, want, loc, out))
            rc = -EBADMSG;
    }
    file_give(s, shard_no, of, fd);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *buf = p;
    return 0;
}

/* ---- compaction ---- */

struct kvs_compaction {
    kvs *s;
    unsigned shard;
    uint64_t upto; /* the base replaces segments up to this number */
    int fd;
    unsigned char *buf;
    size_t len, cap;
    uint64_t bytes;
};

#define COMPACT_BUFFER (1u << 20)

kvs_compaction *kvs_compact_begin(kvs *s, unsigned shard_no, char *why, size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    pthread_mutex_lock(&sh->lock);
    if (sh->compacting || sh->seg_no == 0) {
        pthread_mutex_unlock(&sh->lock);
        snprintf(why, whylen, "shard %u: %s", shard_no,
                 sh->compacting ? "already compacting" : "nothing to compact");
        return NULL;
    }
    /* Seal: the next append opens segment seg_no + 1, above the base. With
     * nothing written since the last compaction the base would get the
     * number it has now and be renamed over the file that the items'
     * locations name until the compactor moves them: it takes the next
     * number instead (no segment has it), and the old base stays readable
     * under its own name until kvs_compact_finish. */
    uint64_t upto = sh->seg_no;
    if (upto == sh->base)
        upto = ++sh->seg_no;
    close_segment(s, sh);
    sh->start_new = true;
    sh->compacting = true;
    pthread_mutex_unlock(&sh->lock);

    kvs_compaction *c = calloc(1, sizeof(*c));
    char path[1100];
    base_path(s, shard_no, upto, true, path, sizeof(path));
    int fd = io_open(s->io, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (c == NULL || fd < 0 || (c->buf = malloc(COMPACT_BUFFER)) == NULL) {
        snprintf(why, whylen, "cannot start compaction of shard %u: %s", shard_no,
                 fd < 0 ? strerror(-fd) : "out of memory");
        if (fd >= 0)
            io_close(s->io, fd);
        free(c);
        pthread_mutex_lock(&sh->lock);
        sh->compacting = false;
        pthread_mutex_unlock(&sh->lock);
        return NULL;
    }
    *c = (kvs_compaction){s, shard_no, upto, fd, c->buf, 0, COMPACT_BUFFER, 0};
    make_header(c->buf, shard_no, upto, KIND_BASE);
    c->len = SEG_HEADER_BYTES;
    return c;
}

static int compact_flush(kvs_compaction *c, char *why, size_t whylen)
{
    int rc = io_write_all(c->s->io, c->fd, c->buf, c->len);
    if (rc < 0)
        snprintf(why, whylen, "compaction write failed: %s", strerror(-rc));
    c->bytes += c->len;
    c->len = 0;
    return rc;
}

int kvs_compact_add(kvs_compaction *c, const kvs_record *r, uint64_t *loc, char *why,
                    size_t whylen)
{
    size_t need = kvs_record_size(r);
    if (c->len + need > c->cap) {
        int rc = compact_flush(c, why, whylen);
        if (rc < 0)
            return rc;
        if (need > c->cap) {
            unsigned char *grown = realloc(c->buf, need);
            if (grown == NULL) {
                snprintf(why, whylen, "out of memory for a %zu-byte record", need);
                return -ENOMEM;
            }
            c->buf = grown;
            c->cap = need;
        }
    }
    if (loc != NULL)
        *loc = make_loc(KIND_BASE, c->upto, c->bytes + c->len);
    c->len += encode(r, c->buf + c->len);
    return 0;
}

uint64_t kvs_compact_bytes(const kvs_compaction *c)
{
    return c->bytes + c->len;
}

static void compact_free(kvs_compaction *c, bool remove_tmp)
{
    shard *sh = &c->s->shards[c->shard];
    if (c->fd >= 0)
        io_close(c->s->io, c->fd);
    if (remove_tmp) {
        char path[1100];
        base_path(c->s, c->shard, c->upto, true, path, sizeof(path));
        io_unlink(c->s->io, path);
    }
    pthread_mutex_lock(&sh->lock);
    sh->compacting = false;
    pthread_mutex_unlock(&sh->lock);
    free(c->buf);
    free(c);
}

void kvs_compact_abort(kvs_compaction *c)
{
    if (c != NULL)
        compact_free(c, true);
}

int kvs_compact_commit(kvs_compaction *c, char *why, size_t whylen)
{
    kvs *s = c->s;
    shard *sh = &s->shards[c->shard];
    char tmp[1100], path[1100];
    int rc = compact_flush(c, why, whylen);
    if (rc == 0 && (rc = io_fsync(s->io, c->fd)) < 0)
        snprintf(why, whylen, "compaction fsync failed: %s", strerror(-rc));
    base_path(s, c->shard, c->upto, true, tmp, sizeof(tmp));
    base_path(s, c->shard, c->upto, false, path, sizeof(path));
    /* The install: one rename; from here warmup reads the base. */
    bool installed = false;
    if (rc == 0 && (rc = io_rename(s->io, tmp, path)) < 0)
        snprintf(why, whylen, "compaction rename failed: %s", strerror(-rc));
    else if (rc == 0)
        installed = true;
    if (rc == 0 && (rc = io_fsync_dir(s->io, s->dir)) < 0)
        snprintf(why, whylen, "compaction directory fsync failed: %s", strerror(-rc));
    if (rc < 0) {
        /* If the rename happened (it returned 0) but the directory fsync
         * failed, the base may or may not be in force after a crash: both are
         * consistent, so keep using it (the old files stay until the next
         * compaction or start). A failed rename changed nothing. */
        if (installed) {
            pthread_mutex_lock(&sh->lock);
            pthread_mutex_lock(&sh->names);
            if (sh->base != c->upto)
                sh->prev_base = sh->base;
            sh->base = c->upto;
            pthread_mutex_unlock(&sh->names);
            pthread_mutex_unlock(&sh->lock);
            files_forget_gone(s, c->shard);
        }
        compact_free(c, !installed);
        return rc;
    }
    pthread_mutex_lock(&sh->lock);
    pthread_mutex_lock(&sh->names);
    sh->prev_base = sh->base;
    sh->base = c->upto;
    pthread_mutex_unlock(&sh->names);
    pthread_mutex_unlock(&sh->lock);
    files_forget_gone(s, c->shard);
    return 0;
}

void kvs_compact_finish(kvs_compaction *c)
{
    kvs *s = c->s;
    shard *sh = &s->shards[c->shard];
    char tmp[1100], path[1100];
    base_path(s, c->shard, c->upto, false, path, sizeof(path));
    /* Forget and delete what the base replaced. */
    uint64_t old_base;
    pthread_mutex_lock(&sh->lock);
    pthread_mutex_lock(&sh->names);
    old_base = sh->prev_base;
    sh->prev_base = 0;
    size_t keep = 0;
    uint64_t *gone = malloc((sh->nsegs + 1) * sizeof(uint64_t));
    size_t ngone = 0;
    for (size_t i = 0; i < sh->nsegs; i++) {
        if (sh->segs[i] <= c->upto) {
            if (gone != NULL)
                gone[ngone++] = sh->segs[i];
        } else {
            sh->segs[keep++] = sh->segs[i];
        }
    }
    sh->nsegs = keep;
    pthread_mutex_unlock(&sh->names);
    pthread_mutex_unlock(&sh->lock);
    files_forget_gone(s, c->shard);
    if (old_base != 0 && old_base != c->upto) {
        base_path(s, c->shard, old_base, false, tmp, sizeof(tmp));
        io_unlink(s->io, tmp);
    }
    for (size_t i = 0; i < ngone; i++) {
        seg_path(s, c->shard, gone[i], tmp, sizeof(tmp));
        io_unlink(s->io, tmp);
    }
    free(gone);
    /* Recount the shard's bytes from what is left. */
    pthread_mutex_lock(&sh->lock);
    size_t n = sh->nsegs;
    uint64_t *left = malloc((n + 1) * sizeof(uint64_t));
    if (left != NULL)
        memcpy(left, sh->segs, n * sizeof(uint64_t));
    pthread_mutex_unlock(&sh->lock);
    atomic_store(&sh->bytes, 0);
    add_file_bytes(s, sh, path);
    for (size_t i = 0; left != NULL && i < n; i++) {
        seg_path(s, c->shard, left[i], tmp, sizeof(tmp));
        add_file_bytes(s, sh, tmp);
    }
    free(left);
    compact_free(c, false);
}
