/*
 * kvstore.h - the engine's on-disk item store: append-only, checksummed records
 * in segment files, spread over shards (a vbucket's records all go to shard
 * vbucket % nshards, so one shard's files hold every version of a key in the
 * order they were written).
 *
 * On-disk format, version 1 (all integers little-endian; checksums are CRC-32C):
 *
 *   file  <dbname>/shard<S>.<N>.seg, N = 1, 2, ... in write order, and at most
 *         one <dbname>/shard<S>.<B>.base: a compacted snapshot that replaces
 *         every segment numbered B or lower (those are ignored, and deleted)
 *   header (32 bytes):
 *     magic "EPSEG\0\0\1" (8) | format version u32 = 1 | shard u32 |
 *     segment number u64 | kind u32 (0 segment, 1 base) |
 *     crc32c of the previous 28 bytes u32
 *   records, back to back:
 *     crc32c u32           of every byte after it, to the end of the record
 *     length u32           bytes after this field: 32 + nkey + nvalue
 *     type u8              1 = set, 2 = delete (tombstone)
 *     datatype u8
 *     vbucket u16
 *     collection u32
 *     cas u64
 *     flags u32
 *     exptime u32          absolute Unix seconds, 0 = never
 *     nkey u16 | pad u16 = 0 | nvalue u32
 *     key bytes, value bytes
 *
 * A shard is read as: its base (if any), then its segments above the base, in
 * number order.
 *
 * A record's location (kept in memory, never on disk) is a 58-bit number:
 * offset in its file (bits 0-39) | file number modulo 2^17 (bits 40-56) |
 * 1 if the file is a base (bit 57). The shard is the vbucket's. Numbers are
 * resolved against the files the shard has now; a location whose file is gone
 * (compacted away) reads as -ENOENT, and a record read by location is checked
 * whole (checksum, and by the caller key and CAS) before it is used.
 *
 * A segment may end in zeros written ahead of its data (kvs_prefill): a record
 * header of eight zero bytes followed by nothing but zeros is the clean end.
 *
 * A record that does not fit in the file or whose checksum does not match ends
 * the readable part of its segment (a torn write): it and whatever follows in
 * that segment are never read as data, and the scan reports the bytes dropped.
 * Writing never appends after a failed write: the next batch starts a new
 * segment.
 */
#ifndef EP_KVSTORE_H
#define EP_KVSTORE_H

#include "../io/io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVS_SET    1
#define KVS_DELETE 2

typedef struct kvs_record {
    uint8_t type;
    uint8_t datatype;
    uint16_t vbucket;
    uint32_t collection;
    uint64_t cas;
    uint32_t flags;
    uint32_t exptime; /* absolute Unix seconds; 0 = never */
    uint16_t nkey;
    uint32_t nvalue;
    const void *key;
    const void *value;
    uint64_t loc; /* where the record is: set by scans and reads, ignored in writes */
} kvs_record;

#define KVS_LOC_OFFSET_BITS 40
#define KVS_LOC_NUMBER_BITS 17
#define KVS_LOC_BITS        58

typedef struct kvs kvs;

/** Opens the store in `dir` (which must exist): finds every shard's segments.
 * NULL with a reason on error. */
kvs *kvs_open(ep_io *io, const char *dir, unsigned nshards, uint64_t segment_max_bytes,
              char *why, size_t whylen);
void kvs_close(kvs *s);

unsigned kvs_shards(const kvs *s);
static inline unsigned kvs_shard_of(unsigned nshards, uint16_t vbucket)
{
    return vbucket % nshards;
}

typedef struct kvs_scan_stats {
    uint64_t segments;
    uint64_t records;
    uint64_t bytes;
    uint64_t torn_segments; /* segments whose tail was dropped */
    uint64_t torn_bytes;    /* bytes dropped */
} kvs_scan_stats;

/** Reads one shard's records in write order. The callback returns 0 to go on or
 * non-zero to stop (returned). -errno with a reason on an I/O error. Torn tails
 * are counted in *st and logged through `warn`, not errors. */
int kvs_scan(kvs *s, unsigned shard, int (*cb)(const kvs_record *r, void *ctx), void *ctx,
             kvs_scan_stats *st, void (*warn)(const char *msg, void *ctx), char *why,
             size_t whylen);

/**
 * Appending a batch of records to a shard and making it durable, record by
 * record (group commit): kvs_append_begin takes the shard, kvs_append_add
 * encodes a record into a buffer that is written out as it fills (so the
 * batch is never held encoded whole), kvs_append_commit writes the rest,
 * fsyncs once and lets the shard go. A new segment is started first when
 * `total` (the records' kvs_record_size sum) does not fit in the current one,
 * or it is new, or it saw a failed write. Begin and add never fail on their
 * own: an error is kept and returned by commit, which must always be called.
 * Only after commit returns 0 are the locations add gave durable.
 */
typedef struct kvs_appender {
    /* private */
    kvs *s;
    unsigned shard_no;
    unsigned char *buf;
    size_t used, cap;
    uint64_t off; /* file offset of buf[0] */
    int rc;
    char why[1400]; /* room for a path */
} kvs_appender;

void kvs_append_begin(kvs *s, unsigned shard, uint64_t total, kvs_appender *a);
/** Encodes one record; *loc is where it will be (0 after an error). */
void kvs_append_add(kvs_appender *a, const kvs_record *r, uint64_t *loc);
/** 0, or -errno with the failed step in why: then none of the batch may be
 * assumed durable. */
int kvs_append_commit(kvs_appender *a, char *why, size_t whylen);

/**
 * Writes zeros ahead of the current segment's data (chunk bytes, made
 * durable), when less than half a chunk of them is left: an append into them
 * changes neither the file's size nor its extents, so its fdatasync commits
 * no metadata (about a third cheaper than an append on ext4). For the
 * shard's writer when it is idle. A scan takes the zeros as the clean end of
 * the segment; a clean close cuts them. 1 if it wrote, 0 if there was no
 * need, or -errno (the next append then starts a new segment).
 */
int kvs_prefill(kvs *s, unsigned shard, uint64_t chunk);

/**
 * Reads the record at `loc` in a shard (any thread; no lock held while
 * reading). On success *out points into *buf, which the caller frees. -ENOENT
 * if the file is gone, -EBADMSG if what is there is not a whole record, else
 * -errno; a reason in why either way.
 */
int kvs_read(kvs *s, unsigned shard, uint64_t loc, kvs_record *out, void **buf, char *why,
             size_t whylen);

/**
 * kvs_read for a record of known key and value lengths, that never waits for
 * the disk (for a host's own thread): only through a file already open and
 * only what the page cache holds; -EAGAIN if that is not the whole record
 * (kvs_read then may wait), -ENOENT if the file is gone, -EBADMSG if what is
 * there is not the record asked for.
 */
int kvs_read_cached(kvs *s, unsigned shard, uint64_t loc, size_t nkey, size_t nvalue,
                    kvs_record *out, void **buf);

/* ---- compaction ----
 * kvs_compact_begin seals the shard (the next append starts a new segment) and
 * opens a temporary base covering every segment up to the sealed one; the caller
 * adds the live records; kvs_compact_commit makes the base durable, installs it
 * with one rename (from then on warmup reads it instead of the old segments);
 * kvs_compact_finish deletes what it replaced. Appends go on meanwhile. */
typedef struct kvs_compaction kvs_compaction;
kvs_compaction *kvs_compact_begin(kvs *s, unsigned shard, char *why, size_t whylen);
/** Adds a record; *loc (if not NULL) is where it will be once committed. */
int kvs_compact_add(kvs_compaction *c, const kvs_record *r, uint64_t *loc, char *why,
                    size_t whylen);
/** 0 once the base is in force; the old files stay readable (locations in
 * them still resolve) until kvs_compact_finish deletes them and frees the
 * compaction. Else -errno, the compaction is freed and nothing changed. */
int kvs_compact_commit(kvs_compaction *c, char *why, size_t whylen);
void kvs_compact_finish(kvs_compaction *c);
void kvs_compact_abort(kvs_compaction *c);
/** Bytes written to a compaction so far. */
uint64_t kvs_compact_bytes(const kvs_compaction *c);

/** Bytes a record takes on disk. */
size_t kvs_record_size(const kvs_record *r);

/** Total bytes in a shard's segments. */
uint64_t kvs_shard_bytes(kvs *s, unsigned shard);

#endif
