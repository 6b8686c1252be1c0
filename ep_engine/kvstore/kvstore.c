/*
 * kvstore.c - segment files of checksummed records (format in kvstore.h).
 *
 * Only a shard's flusher task appends to the shard, and only warmup scans it
 * (before any flusher runs), so a shard needs no lock; the byte counters are
 * atomic because stats read them from other threads. It never appends to a
 * segment after a failed write, nor to a segment of an earlier run (its tail
 * may be torn): it starts a new one.
 */
#include "kvstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MAGIC        "EPSEG\0\0\1"
#define SEG_VERSION      1u
#define SEG_HEADER_BYTES 32u
#define REC_HEADER_BYTES 40u /* crc + length + the fixed fields */
#define REC_FIXED_BYTES  32u /* what `length` counts besides key and value */
#define SCAN_CHUNK       (1u << 20)

typedef struct shard {
    int fd;             /* current segment, -1 if none */
    uint64_t seg_no;    /* number of the current (or last seen) segment */
    uint64_t seg_bytes; /* bytes in the current segment */
    bool start_new;     /* the next append opens a new segment */
    uint64_t *segs;     /* numbers of this shard's segments, ascending */
    size_t nsegs, cap;
    _Atomic uint64_t bytes; /* in all segments */
} shard;

struct kvs {
    ep_io *io;
    char dir[1024];
    unsigned nshards;
    uint64_t segment_max;
    shard *shards;
};

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

static int add_segment(shard *sh, uint64_t seg)
{
    if (sh->nsegs == sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 8;
        uint64_t *grown = realloc(sh->segs, cap * sizeof(uint64_t));
        if (grown == NULL)
            return -ENOMEM;
        sh->segs = grown;
        sh->cap = cap;
    }
    size_t i = sh->nsegs++;
    while (i > 0 && sh->segs[i - 1] > seg) {
        sh->segs[i] = sh->segs[i - 1];
        i--;
    }
    sh->segs[i] = seg;
    if (seg > sh->seg_no)
        sh->seg_no = seg;
    return 0;
}

typedef struct found {
    kvs *s;
    int err;
} found;

static int found_file(const char *name, void *ctx)
{
    found *f = ctx;
    unsigned shard_no;
    uint64_t seg;
    char tail[8];
    if (sscanf(name, "shard%u.%" SCNu64 ".%7s", &shard_no, &seg, tail) != 3 ||
        strcmp(tail, "seg") != 0 || shard_no >= f->s->nshards || seg == 0)
        return 0; /* not ours: other files may live in the data directory */
    f->err = add_segment(&f->s->shards[shard_no], seg);
    return f->err;
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
    for (unsigned i = 0; i < nshards; i++) {
        s->shards[i].fd = -1;
        s->shards[i].start_new = true;
    }
    found f = {s, 0};
    int rc = io_list_dir(io, dir, found_file, &f);
    if (rc < 0 || f.err < 0) {
        snprintf(why, whylen, "cannot list %s: %s", dir, strerror(rc < 0 ? -rc : -f.err));
        kvs_close(s);
        return NULL;
    }
    /* Sizes, for the stats and compaction. */
    char path[1100];
    for (unsigned i = 0; i < nshards; i++) {
        shard *sh = &s->shards[i];
        for (size_t j = 0; j < sh->nsegs; j++) {
            seg_path(s, i, sh->segs[j], path, sizeof(path));
            int fd = io_open(io, path, O_RDONLY, 0);
            if (fd < 0)
                continue;
            int64_t size = io_file_size(io, fd);
            if (size > 0)
                atomic_fetch_add(&sh->bytes, (uint64_t)size);
            io_close(io, fd);
        }
    }
    return s;
}

void kvs_close(kvs *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; s->shards != NULL && i < s->nshards; i++) {
        if (s->shards[i].fd >= 0)
            io_close(s->io, s->shards[i].fd);
        free(s->shards[i].segs);
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
    put32(p, io_crc32(0, p + 4, 4 + len));
    return 8 + len;
}

/* Starts segment seg_no+1: creates it, writes its header, makes the name durable. */
static int open_segment(kvs *s, unsigned shard_no, char *why, size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    if (sh->fd >= 0) {
        io_close(s->io, sh->fd);
        sh->fd = -1;
    }
    char path[1100];
    uint64_t seg = sh->seg_no + 1;
    seg_path(s, shard_no, seg, path, sizeof(path));
    const char *step = "create";
    int fd = io_open(s->io, path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644);
    int rc = fd;
    if (fd < 0)
        goto err;
    unsigned char h[SEG_HEADER_BYTES];
    memcpy(h, SEG_MAGIC, 8);
    put32(h + 8, SEG_VERSION);
    put32(h + 12, shard_no);
    put64(h + 16, seg);
    put32(h + 24, 0);
    put32(h + 28, io_crc32(0, h, 28));
    step = "write header";
    rc = io_write_all(s->io, fd, h, sizeof(h));
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
    sh->start_new = false;
    atomic_fetch_add(&sh->bytes, SEG_HEADER_BYTES);
    return 0;
err:
    /* The number is used up either way: never reuse a name that may exist. */
    sh->seg_no = seg;
    snprintf(why, whylen, "%s of %s failed: %s", step, path, strerror(-rc));
    return rc;
}

int kvs_append(kvs *s, unsigned shard_no, const kvs_record *recs, size_t n, char *why,
               size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += kvs_record_size(&recs[i]);
    unsigned char *buf = malloc(total ? total : 1);
    if (buf == NULL) {
        snprintf(why, whylen, "out of memory for a %zu-byte batch", total);
        return -ENOMEM;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += encode(&recs[i], buf + used);
    int rc = 0;
    if (sh->start_new || sh->fd < 0 || sh->seg_bytes + used > s->segment_max)
        rc = open_segment(s, shard_no, why, whylen);
    if (rc == 0) {
        rc = io_write_all(s->io, sh->fd, buf, used);
        if (rc < 0)
            snprintf(why, whylen, "write of a %zu-byte batch to shard %u failed: %s",
                     used, shard_no, strerror(-rc));
    }
    if (rc == 0) {
        sh->seg_bytes += used;
        atomic_fetch_add(&sh->bytes, used);
        rc = io_fsync(s->io, sh->fd);
        if (rc < 0)
            snprintf(why, whylen, "fsync of shard %u failed: %s", shard_no,
                     strerror(-rc));
    }
    if (rc < 0)
        sh->start_new = true; /* never append after a failed write */
    free(buf);
    return rc;
}

/* ---- scanning ---- */

typedef struct reader {
    ep_io *io;
    int fd;
    uint64_t file_size;
    uint64_t off; /* file offset of buf[0] */
    unsigned char *buf;
    size_t len, cap; /* bytes in buf, its size */
} reader;

/* Makes sure `need` bytes from position `at` (relative to buf) are in buf. 1 if
 * they are, 0 if the file ends first, -errno on error. */
static int fill(reader *r, size_t at, size_t need)
{
    if (at + need <= r->len)
        return 1;
    if (r->off + at + need > r->file_size)
        return 0;
    /* Keep from `at` on, move it to the front, grow if needed, read more. */
    memmove(r->buf, r->buf + at, r->len - at);
    r->off += at;
    r->len -= at;
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

int kvs_scan(kvs *s, unsigned shard_no, int (*cb)(const kvs_record *r, void *ctx),
             void *ctx, kvs_scan_stats *st, void (*warn)(const char *msg, void *ctx),
             char *why, size_t whylen)
{
    shard *sh = &s->shards[shard_no];
    char path[1100], msg[1300];
    reader r = {s->io, -1, 0, 0, malloc(SCAN_CHUNK), 0, SCAN_CHUNK};
    int rc = r.buf ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < sh->nsegs; i++) {
        seg_path(s, shard_no, sh->segs[i], path, sizeof(path));
        r.fd = io_open(s->io, path, O_RDONLY, 0);
        if (r.fd < 0) {
            rc = r.fd;
            snprintf(why, whylen, "cannot open %s: %s", path, strerror(-rc));
            break;
        }
        int64_t size = io_file_size(s->io, r.fd);
        r.file_size = size > 0 ? (uint64_t)size : 0;
        r.off = 0;
        r.len = 0;
        st->segments++;
        size_t at = 0;
        int got = fill(&r, 0, SEG_HEADER_BYTES);
        if (got <= 0 || memcmp(r.buf, SEG_MAGIC, 8) != 0 ||
            get32(r.buf + 28) != io_crc32(0, r.buf, 28)) {
            if (got < 0) {
                rc = got;
                snprintf(why, whylen, "read of %s failed: %s", path, strerror(-rc));
            } else {
                /* A segment whose header never made it: nothing in it was
                 * acknowledged. */
                st->torn_segments++;
                st->torn_bytes += r.file_size;
                snprintf(msg, sizeof(msg),
                         "%s: bad or missing header; %" PRIu64 " bytes ignored", path,
                         r.file_size);
                warn(msg, ctx);
            }
            io_close(s->io, r.fd);
            continue;
        }
        at = SEG_HEADER_BYTES;
        for (;;) {
            got = fill(&r, at, 8);
            if (got < 0) {
                rc = got;
                break;
            }
            if (got == 0)
                break;
            uint32_t crc = get32(r.buf + at), len = get32(r.buf + at + 4);
            bool torn =
                len < REC_FIXED_BYTES || (got = fill(&r, at, 8 + (size_t)len)) == 0;
            if (got < 0) {
                rc = got;
                break;
            }
            const unsigned char *p = r.buf + at;
            if (!torn)
                torn = io_crc32(0, p + 4, 4 + len) != crc ||
                       (size_t)REC_FIXED_BYTES + get16(p + 32) + get32(p + 36) != len ||
                       (p[8] != KVS_SET && p[8] != KVS_DELETE);
            if (torn) {
                uint64_t dropped = r.file_size - (r.off + at);
                st->torn_segments++;
                st->torn_bytes += dropped;
                snprintf(msg, sizeof(msg),
                         "%s: torn or corrupt record at offset %" PRIu64 "; %" PRIu64
                         " bytes from there ignored",
                         path, r.off + at, dropped);
                warn(msg, ctx);
                break;
            }
            kvs_record rec = {
                p[8],          p[9],          get16(p + 10),         get32(p + 12),
                get64(p + 16), get32(p + 24), get32(p + 28),         get16(p + 32),
                get32(p + 36), p + 40,        p + 40 + get16(p + 32)};
            st->records++;
            st->bytes += 8 + len;
            at += 8 + len;
            int stop = cb(&rec, ctx);
            if (stop != 0) {
                rc = stop;
                break;
            }
        }
        if (rc < 0 && why[0] == '\0')
            snprintf(why, whylen, "read of %s failed: %s", path, strerror(-rc));
        io_close(s->io, r.fd);
    }
    free(r.buf);
    return rc;
}
