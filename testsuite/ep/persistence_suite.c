/*
 * persistence_suite.c - ep_engine's durability: data survives a restart,
 * durable writes are acknowledged only once on disk (exactly one notify on
 * every path), batches are group-committed and de-duplicated, every I/O fault
 * of the flusher is reported and recovered from, torn tails are dropped at
 * warmup, dropped collections stay dropped, vbucket states gate data.
 */
#include "../engine_testapp/engine_testapp.h"
#include "../engine_testapp/suite_helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CFG "dbname=@DATA_DIR@;num_writer_threads=1;num_shards=2;flusher_retry_ms=10"

/* An item for key (default collection, vbucket 0) holding val. */
static engine_errc new_item(engine_handle *h, const void *c, const char *key,
                            const char *val, engine_item **it)
{
    engine_doc_key k = doc_key(0, key);
    engine_errc rc = h->allocate(h, c, it, &k, strlen(val), 0, 0, 0, 0);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, *it, &info);
    memcpy(info.value.iov_base, val, strlen(val));
    return ENGINE_SUCCESS;
}

/* A durable set through the host's protocol: would_block, notify, re-call. */
static engine_errc durable_set(engine_handle *h, const test_harness *th, const void *c,
                               const char *key, const char *val, uint64_t *cas)
{
    engine_item *it = NULL;
    engine_errc rc = new_item(h, c, key, val, &it);
    if (rc != ENGINE_SUCCESS)
        return rc;
    HOST_CALL(
        th, c, rc,
        h->store_durable(h, c, it, cas, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST));
    h->release(h, it);
    return rc;
}

static engine_errc durable_remove(engine_handle *h, const test_harness *th, const void *c,
                                  const char *key)
{
    engine_doc_key k = doc_key(0, key);
    engine_errc rc;
    HOST_CALL(th, c, rc,
              h->remove_durable(h, c, &k, 0, 0, NULL, ENGINE_DURABILITY_PERSIST));
    return rc;
}

static engine_handle *restart(const test_harness *th, bool force)
{
    engine_errc rc;
    engine_handle *h = th->restart_engine(force, &rc);
    if (h == NULL || !wait_ready(h)) {
        fprintf(stderr, "restart failed: 0x%x\n", rc);
        return NULL;
    }
    return h;
}

/* ---- restart ---- */

static test_result test_restart_keeps_data(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[32], val[64];
    uint64_t cas42 = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "value-%d", i * 7);
        CHECK_RC(kv_store_full(h, c, 0, (uint16_t)(i % 8), key, val, strlen(val),
                               (uint32_t)i, 0, ENGINE_STORE_SET, 0,
                               i == 42 ? &cas42 : NULL),
                 ENGINE_SUCCESS);
    }
    for (int i = 0; i < 1000; i += 10) {
        snprintf(key, sizeof(key), "k%d", i);
        engine_doc_key k = doc_key(0, key);
        CHECK_RC(h->remove(h, c, &k, 0, (uint16_t)(i % 8), NULL), ENGINE_SUCCESS);
    }
    CHECK_RC(
        kv_store_full(h, c, 0, 0, "short-lived", "x", 1, 0, 5, ENGINE_STORE_SET, 0, NULL),
        ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL); /* a clean shutdown flushes */
    c = th->create_cookie();
    engine_item_info info;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "value-%d", i * 7);
        char got[64];
        engine_errc rc =
            kv_get_full(h, c, 0, (uint16_t)(i % 8), key, got, sizeof(got), &info);
        if (i % 10 == 0) {
            CHECK_RC(rc, ENGINE_NO_SUCH_KEY);
            continue;
        }
        CHECK_RC(rc, ENGINE_SUCCESS);
        CHECK(strcmp(got, val) == 0 && info.flags == (uint32_t)i);
        if (i == 42)
            CHECK(info.cas == cas42);
    }
    CHECK(stat_u64(h, "warmup", "ep_warmup_items_loaded") >= 901);
    CHECK(stat_u64(h, NULL, "curr_items") == 901);
    /* New writes get CAS values above everything loaded. */
    uint64_t cas = 0;
    CHECK_RC(kv_store(h, c, "k42", "new", ENGINE_STORE_SET, 0, &cas), ENGINE_SUCCESS);
    CHECK(cas > cas42);
    /* Expired across the restart: not loaded. */
    th->time_travel(10);
    CHECK((h = restart(th, false)) != NULL);
    CHECK_RC(kv_get(h, c, "short-lived", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK(stat_u64(h, "warmup", "ep_warmup_skipped_expired") >= 1);
    return TEST_PASS;
}

static test_result test_durable_set_survives_forced_stop(engine_handle *h,
                                                         const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas = 0;
    engine_doc_key k = doc_key(0, "d");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 3, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_item_info info;
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, "abc", 3);
    engine_errc rc =
        h->store_durable(h, c, it, &cas, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    CHECK_RC(rc, ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    /* The re-call, with the same arguments, reports the outcome and the CAS. */
    rc = h->store_durable(h, c, it, &cas, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    h->release(h, it);
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK(cas != 0);
    CHECK_RC(durable_set(h, th, c, "e", "def", NULL), ENGINE_SUCCESS);
    CHECK_RC(durable_remove(h, th, c, "e"), ENGINE_SUCCESS);
    CHECK((h = restart(th, true)) != NULL); /* forced: no final flush */
    char got[8];
    CHECK_RC(kv_get_full(h, c, 0, 0, "d", got, sizeof(got), &info), ENGINE_SUCCESS);
    CHECK(strcmp(got, "abc") == 0 && info.cas == cas);
    CHECK_RC(kv_get(h, c, "e", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK(stat_u64(h, "warmup", "ep_warmup_tombstones") >= 1);
    return TEST_PASS;
}

static test_result test_durable_errors(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_errc a =
        h->store_durable(h, NULL, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    engine_errc b =
        h->store_durable(h, c, it, NULL, ENGINE_STORE_SET, (engine_durability)7);
    engine_errc d = h->store_durable(h, c, it, NULL, ENGINE_STORE_REPLACE,
                                     ENGINE_DURABILITY_PERSIST); /* missing key */
    h->release(h, it);
    CHECK_RC(a, ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(b, ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(d, ENGINE_NOT_STORED);
    CHECK(th->reservations(c) == 0);
    CHECK_RC(durable_remove(h, th, c, "missing"), ENGINE_NO_SUCH_KEY);
    CHECK(th->reservations(c) == 0);
    /* Without a data directory there is nothing to be durable on. */
    engine_errc rc;
    engine_handle *mem = th->create_engine("", &rc);
    CHECK(mem != NULL);
    CHECK_RC(mem->allocate(mem, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    rc =
        mem->store_durable(mem, c, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    engine_errc none =
        mem->store_durable(mem, c, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_NONE);
    mem->release(mem, it);
    th->destroy_engine(mem, false);
    CHECK_RC(rc, ENGINE_NOT_SUPPORTED);
    CHECK_RC(none, ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_group_commit_and_dedupe(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[32], val[32];
    CHECK(engine_control(h, th, "hold_writer"));
    for (int i = 0; i < 100; i++) {
        snprintf(val, sizeof(val), "v%d", i);
        CHECK_RC(kv_store(h, c, "hot", val, ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "cold%d", i);
        CHECK_RC(kv_store(h, c, key, "x", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, NULL, "ep_queue_size") == 150);
    CHECK(engine_control(h, th, "release_writer"));
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(wait_stat_eq(h, NULL, "ep_flusher_records", 51));
    CHECK(stat_u64(h, NULL, "ep_flusher_deduplicated") == 99);
    CHECK(stat_u64(h, NULL, "ep_flusher_batches") == 1); /* all 150 writes, one fsync */
    CHECK((h = restart(th, true)) != NULL);
    char got[16];
    CHECK_RC(kv_get(h, c, "hot", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "v99") == 0);
    return TEST_PASS;
}

/* After a batch, plain writes wait for the batch delay; a durable write does
 * not wait, and takes them along. */
static test_result test_batch_delay(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[32];
    CHECK_RC(kv_store(h, c, "first", "x", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0)); /* written, no longer in flight */
    CHECK(stat_u64(h, NULL, "ep_flusher_batches") == 1);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "plain%d", i);
        CHECK_RC(kv_store(h, c, key, "x", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    }
    /* The delay is 1 s: they are still queued. */
    CHECK(stat_u64(h, NULL, "ep_queue_size") == 50);
    CHECK(stat_u64(h, NULL, "ep_flusher_batches") == 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_RC(durable_set(h, th, c, "durable", "y", NULL), ENGINE_SUCCESS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited =
        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (waited >= 0.9) {
        fprintf(stderr, "the durable write waited %.3f s: the batch delay held it\n",
                waited);
        return TEST_FAIL;
    }
    /* One batch took the durable write and the 50 (the writer counts them as
     * in flight until just after it has notified). */
    CHECK(stat_u64(h, NULL, "ep_flusher_batches") == 2);
    CHECK(stat_u64(h, NULL, "ep_flusher_records") == 52);
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(stat_u64(h, NULL, "ep_flusher_batches") == 2);
    return TEST_PASS;
}

/* One flusher I/O fault: the waiting durable write hears a temporary failure
 * naming the step, the value stays readable, and once the fault clears the
 * flusher retries and the write is durable across a forced restart. */
static test_result flush_fault(engine_handle *h, const test_harness *th,
                               const char *fault, const char *step)
{
    const void *c = th->create_cookie();
    CHECK(engine_control(h, th, fault));
    CHECK_RC(durable_set(h, th, c, "k", "value", NULL), ENGINE_TEMPORARY_FAILURE);
    const char *why = th->error_context(c);
    if (strstr(why, step) == NULL || strstr(why, "not durable") == NULL) {
        fprintf(stderr, "reason '%s' does not name '%s'\n", why, step);
        return TEST_FAIL;
    }
    char got[16];
    CHECK_RC(kv_get(h, c, "k", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "value") == 0);
    CHECK(stat_u64(h, NULL, "ep_flusher_failures") >= 1);
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0)); /* retried and written */
    /* Later durable writes succeed. */
    CHECK_RC(durable_set(h, th, c, "k2", "after", NULL), ENGINE_SUCCESS);
    CHECK((h = restart(th, true)) != NULL);
    CHECK_RC(kv_get(h, c, "k", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "value") == 0);
    CHECK_RC(kv_get(h, c, "k2", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "after") == 0);
    return TEST_PASS;
}

static test_result test_fault_write_enospc(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=write;nth=1;errno=ENOSPC", "write");
}

static test_result test_fault_write_eio(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=write;nth=2;errno=EIO", "write");
}

static test_result test_fault_short_write(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=write;nth=2;short=1", "write");
}

static test_result test_fault_fsync(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=fsync;nth=1;errno=EIO", "fsync");
}

static test_result test_fault_create(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=open;nth=1;errno=ENOSPC", "create");
}

static test_result test_fault_dirsync(engine_handle *h, const test_harness *th)
{
    return flush_fault(h, th, "op=dirsync;nth=1;errno=EIO", "directory");
}

/* A batch of several MiB (written out in pieces, one record bigger than the
 * write buffer) fails part way: it is written again whole into a new segment,
 * and a forced restart finds every value exactly. */
static test_result batch_fault(engine_handle *h, const test_harness *th,
                               const char *fault)
{
    enum { N = 3000, VLEN = 1000 };
    const size_t huge = 3u << 20;
    char key[32], val[VLEN], got[VLEN + 1];
    char *big = malloc(huge), *back = malloc(huge + 1);
    CHECK(big != NULL && back != NULL);
    for (size_t i = 0; i < huge; i++)
        big[i] = (char)('A' + i % 23);
    CHECK(engine_control(h, th, "hold_writer")); /* every writer thread */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        memset(val, 'a' + i % 26, VLEN);
        CHECK_RC(kv_store_full(h, NULL, 0, 0, key, val, VLEN, (uint32_t)i, 0,
                               ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK_RC(
        kv_store_full(h, NULL, 0, 0, "huge", big, huge, 7, 0, ENGINE_STORE_SET, 0, NULL),
        ENGINE_SUCCESS);
    CHECK(stat_u64(h, NULL, "ep_queue_size") == N + 1); /* none written yet */
    CHECK(engine_control(h, th, fault));
    CHECK(engine_control(h, th, "release_writer"));
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(stat_u64(h, NULL, "ep_flusher_failures") == 1);
    CHECK(stat_u64(h, NULL, "ep_flusher_records") == N + 1);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == N + 1);
    engine_item_info info;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        memset(val, 'a' + i % 26, VLEN);
        CHECK_RC(kv_get_full(h, NULL, 0, 0, key, got, sizeof(got), &info),
                 ENGINE_SUCCESS);
        CHECK(info.value.iov_len == VLEN && memcmp(got, val, VLEN) == 0);
        CHECK(info.flags == (uint32_t)i);
    }
    CHECK_RC(kv_get_full(h, NULL, 0, 0, "huge", back, huge + 1, &info), ENGINE_SUCCESS);
    CHECK(info.value.iov_len == huge && memcmp(back, big, huge) == 0);
    free(big);
    free(back);
    return TEST_PASS;
}

/* Writes: the segment header, then 1 MiB pieces, then the big record. */
static test_result test_batch_fault_middle(engine_handle *h, const test_harness *th)
{
    return batch_fault(h, th, "op=write;nth=3;errno=EIO");
}

static test_result test_batch_fault_torn(engine_handle *h, const test_harness *th)
{
    return batch_fault(h, th, "op=write;nth=3;short=1");
}

static test_result test_batch_fault_big_record(engine_handle *h, const test_harness *th)
{
    return batch_fault(h, th, "op=write;nth=5;errno=ENOSPC");
}

static test_result test_batch_fault_fsync(engine_handle *h, const test_harness *th)
{
    return batch_fault(h, th, "op=fsync;nth=1;errno=EIO");
}

static test_result test_fault_persistent(engine_handle *h, const test_harness *th)
{
    /* Every write fails for a while: waiters hear so, nothing is lost, and the
     * flusher catches up when the disk comes back. */
    const void *c = th->create_cookie();
    char key[16];
    CHECK(engine_control(h, th, "op=write;nth=1;count=0;errno=ENOSPC"));
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(durable_set(h, th, c, key, "v", NULL), ENGINE_TEMPORARY_FAILURE);
    }
    CHECK(stat_u64(h, NULL, "ep_queue_size") >= 1);
    CHECK(engine_control(h, th, "clear"));
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK((h = restart(th, true)) != NULL);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get(h, c, key, NULL, 0), ENGINE_SUCCESS);
    }
    return TEST_PASS;
}

/* ---- torn tails ---- */

/* How many segment files dir holds. */
static int segments_in(const char *dir)
{
    int segs = 0;
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d && (ent = readdir(d)) != NULL)
        segs += strstr(ent->d_name, ".seg") != NULL;
    if (d != NULL)
        closedir(d);
    return segs;
}

static int newest_segment(const char *dir, char *path, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    unsigned best_shard = 0;
    unsigned long best = 0;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        unsigned shard;
        unsigned long seg;
        if (sscanf(ent->d_name, "shard%u.%lu.seg", &shard, &seg) == 2 && shard == 0 &&
            seg > best) {
            best = seg;
            best_shard = shard;
        }
    }
    if (d)
        closedir(d);
    snprintf(path, cap, "%s/shard%u.%lu.seg", dir, best_shard, best);
    return best ? 0 : -1;
}

static test_result test_torn_tails_dropped(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16], path[512];
    /* Vbucket 0 -> shard 0. Write, restart, write one more record, then cut
     * that record in half as a crash mid-write would. */
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(durable_set(h, th, c, key, "0123456789", NULL), ENGINE_SUCCESS);
    }
    CHECK((h = restart(th, false)) != NULL);
    CHECK_RC(durable_set(h, th, c, "k0", "overwritten-but-torn", NULL), ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL);
    CHECK(newest_segment(th->data_dir, path, sizeof(path)) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK(truncate(path, st.st_size - 10) == 0);
    /* Garbage after a good record in an older segment: also a torn tail. */
    CHECK((h = restart(th, false)) != NULL);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") >= 1);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_bytes") > 0);
    CHECK(th->log_contains("torn"));
    char got[32];
    /* The torn record is never read: k0 has its older, complete value. */
    CHECK_RC(kv_get(h, c, "k0", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "0123456789") == 0);
    for (int i = 1; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get(h, c, key, got, sizeof(got)), ENGINE_SUCCESS);
        CHECK(strcmp(got, "0123456789") == 0);
    }
    /* Writing goes on after a torn tail, into a fresh segment. */
    CHECK_RC(durable_set(h, th, c, "k0", "fresh", NULL), ENGINE_SUCCESS);
    CHECK((h = restart(th, true)) != NULL);
    CHECK_RC(kv_get(h, c, "k0", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "fresh") == 0);
    return TEST_PASS;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The writer writes zeros ahead of its data when idle; a segment that ends in
 * them (a crash before the clean close cuts them) warms up clean, and
 * anything but zeros after the data is still a torn tail. */
static test_result test_prefilled_tails(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16], path[512], got[32];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        CHECK_RC(durable_set(h, th, c, key, "0123456789", NULL), ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, NULL, "ep_flusher_prefills") >= 1);
    CHECK(newest_segment(th->data_dir, path, sizeof(path)) == 0);
    CHECK(file_size(path) >= 128 * 1024); /* the zeros ahead */
    CHECK((h = restart(th, false)) != NULL);
    CHECK(file_size(path) < 4096); /* a clean close cut them */
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") == 0);

    /* As a crash would leave it: data, then zeros. */
    FILE *f = fopen(path, "ab");
    CHECK(f != NULL);
    static const char zeros[100000];
    CHECK(fwrite(zeros, 1, sizeof(zeros), f) == sizeof(zeros));
    fclose(f);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") == 0);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_bytes") == 0);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        CHECK_RC(kv_get(h, c, key, got, sizeof(got)), ENGINE_SUCCESS);
        CHECK(strcmp(got, "0123456789") == 0);
    }
    /* Zeros, then something that is not: a torn tail, reported. */
    f = fopen(path, "ab");
    CHECK(f != NULL);
    fputs("garbage", f);
    fclose(f);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") == 1);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_bytes") == sizeof(zeros) + 7);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        CHECK_RC(kv_get(h, c, key, got, sizeof(got)), ENGINE_SUCCESS);
    }
    return TEST_PASS;
}

static test_result test_corrupt_byte(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char path[512];
    CHECK_RC(durable_set(h, th, c, "a", "AAAAAAAAAAAAAAAA", NULL), ENGINE_SUCCESS);
    CHECK_RC(durable_set(h, th, c, "b", "BBBBBBBBBBBBBBBB", NULL), ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL);
    CHECK(newest_segment(th->data_dir, path, sizeof(path)) == 0);
    /* Flip one byte of the last value on disk. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    CHECK(fseek(f, -3, SEEK_END) == 0);
    int ch = fgetc(f);
    CHECK(fseek(f, -3, SEEK_END) == 0);
    fputc(ch ^ 0x20, f);
    fclose(f);
    CHECK((h = restart(th, false)) != NULL);
    char got[32];
    /* No corrupt value is ever returned: the damaged record is not loaded. */
    engine_errc rc = kv_get(h, c, "b", got, sizeof(got));
    CHECK(rc == ENGINE_NO_SUCH_KEY ||
          (rc == ENGINE_SUCCESS && strcmp(got, "BBBBBBBBBBBBBBBB") == 0));
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") >= 1);
    CHECK_RC(kv_get(h, c, "a", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strcmp(got, "AAAAAAAAAAAAAAAA") == 0);
    return TEST_PASS;
}

/* ---- collections and vbuckets ---- */

static test_result test_dropped_collection_not_loaded(engine_handle *h,
                                                      const test_harness *th)
{
    const void *c = th->create_cookie();
    const char *m1 =
        "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
        "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"},{\"name\":\"c\","
        "\"uid\":\"8\"}]}]}";
    const char *m2 = "{\"uid\":\"2\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                     "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]}]}";
    const char *m3 =
        "{\"uid\":\"3\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
        "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"},{\"name\":\"c\","
        "\"uid\":\"8\"}]}]}";
    engine_errc rc;
    HOST_CALL(th, c, rc, h->set_collection_manifest(h, c, m1, strlen(m1)));
    CHECK_RC(rc, ENGINE_SUCCESS);
    char key[16];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(
            kv_store_full(h, c, 8, 0, key, "old", 3, 0, 0, ENGINE_STORE_SET, 0, NULL),
            ENGINE_SUCCESS);
    }
    HOST_CALL(th, c, rc, h->set_collection_manifest(h, c, m2, strlen(m2)));
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL);
    CHECK(stat_u64(h, "warmup", "ep_warmup_skipped_dropped") == 50);
    CHECK(stat_u64(h, NULL, "curr_items") == 0);
    HOST_CALL(th, c, rc, h->set_collection_manifest(h, c, m3, strlen(m3)));
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "k1", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    /* And after another restart the re-added collection still sees nothing old. */
    CHECK_RC(kv_store_full(h, c, 8, 0, "k2", "new", 3, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL);
    CHECK_RC(kv_get_full(h, c, 8, 0, "k1", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    char got[8];
    CHECK_RC(kv_get_full(h, c, 8, 0, "k2", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(got, "new") == 0);
    return TEST_PASS;
}

static test_result test_vbucket_states(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char got[8];
    CHECK_RC(kv_store_full(h, c, 0, 3, "k", "v3", 2, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    const engine_vbucket_state states[] = {ENGINE_VBUCKET_REPLICA, ENGINE_VBUCKET_PENDING,
                                           ENGINE_VBUCKET_DEAD};
    const char *names[] = {"replica", "pending", "dead"};
    for (int i = 0; i < 3; i++) {
        CHECK_RC(h->set_vbucket_state(h, c, 3, states[i]), ENGINE_SUCCESS);
        CHECK_RC(kv_get_full(h, c, 0, 3, "k", NULL, 0, NULL), ENGINE_NOT_MY_VBUCKET);
        CHECK(strstr(th->error_context(c), names[i]) != NULL);
        CHECK_RC(kv_store_full(h, c, 0, 3, "k", "x", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
                 ENGINE_NOT_MY_VBUCKET);
        CHECK(stat_str(h, "vbucket", "vb_3", got, sizeof(got)) &&
              strcmp(got, names[i]) == 0);
    }
    CHECK_RC(kv_get_full(h, c, 0, 2, "k", NULL, 0, NULL),
             ENGINE_NO_SUCH_KEY); /* others serve */
    CHECK_RC(h->set_vbucket_state(h, c, 3, ENGINE_VBUCKET_ACTIVE), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 3, "k", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(got, "v3") == 0);
    CHECK_RC(h->set_vbucket_state(h, c, 3, (engine_vbucket_state)9),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->set_vbucket_state(h, c, 9999, ENGINE_VBUCKET_ACTIVE),
             ENGINE_NOT_MY_VBUCKET);
    return TEST_PASS;
}

/* ---- shutdown and disconnect ---- */

static test_result test_destroy_with_queued_durable(engine_handle *h,
                                                    const test_harness *th)
{
    (void)h;
    engine_errc rc;
    for (int force = 0; force < 2; force++) {
        const void *c = th->create_cookie();
        engine_handle *e = th->create_engine(NULL, &rc);
        CHECK(e != NULL && wait_ready(e));
        CHECK(engine_control(e, th, "hold_writer"));
        engine_doc_key k = doc_key(0, force ? "forced" : "clean");
        engine_item *it = NULL;
        CHECK_RC(e->allocate(e, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
        rc =
            e->store_durable(e, c, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
        e->release(e, it);
        CHECK_RC(rc, ENGINE_WOULD_BLOCK);
        th->destroy_engine(e, force == 1);
        /* Answered before destroy returned, never with success (nobody can
         * re-call a destroyed engine); the reason says whether it is on disk. */
        CHECK_RC(th->wait_for_notify(c), ENGINE_TEMPORARY_FAILURE);
        CHECK(strstr(th->error_context(c),
                     force ? "before the write was durable" : "made durable") != NULL);
        CHECK(th->reservations(c) == 0);
    }
    /* The clean stop wrote it; the forced one did not. */
    engine_handle *e = th->create_engine(NULL, &rc);
    CHECK(e != NULL && wait_ready(e));
    engine_errc clean = kv_get(e, NULL, "clean", NULL, 0);
    engine_errc forced = kv_get(e, NULL, "forced", NULL, 0);
    th->destroy_engine(e, false);
    CHECK_RC(clean, ENGINE_SUCCESS);
    CHECK_RC(forced, ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_disconnect_before_recall(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_errc rc =
        h->store_durable(h, c, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    h->release(h, it);
    CHECK_RC(rc, ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    th->disconnect(h, c); /* the record left for the re-call is freed (ASan checks) */
    return TEST_PASS;
}

static test_result test_flush_is_persisted(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_store(h, c, key, "v", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK_RC(h->flush(h, c), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "after", "v", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    CHECK((h = restart(th, false)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == 1);
    CHECK_RC(kv_get(h, c, "k5", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_segments_roll(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16], val[600];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(durable_set(h, th, c, key, val, NULL), ENGINE_SUCCESS);
    }
    CHECK(segments_in(th->data_dir) > 10); /* 120 KB of records in segments of 8 KiB */
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == 200);
    return TEST_PASS;
}

/* ---- compaction ---- */

static uint64_t disk_bytes(engine_handle *h)
{
    return stat_u64(h, NULL, "ep_disk_bytes");
}

static test_result test_compaction_shrinks(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16], val[128];
    /* 100 keys overwritten 20 times, then half deleted: mostly dead bytes. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(val, sizeof(val), "%d-%d-%080d", i, round, round);
            CHECK_RC(kv_store_full(h, c, 0, (uint16_t)(i % 4), key, val, strlen(val), 0,
                                   0, ENGINE_STORE_SET, 0, NULL),
                     ENGINE_SUCCESS);
        }
        CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    }
    for (int i = 0; i < 100; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        engine_doc_key k = doc_key(0, key);
        CHECK_RC(h->remove(h, c, &k, 0, (uint16_t)(i % 4), NULL), ENGINE_SUCCESS);
    }
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    uint64_t before = disk_bytes(h);
    CHECK(engine_control(h, th, "compact"));
    uint64_t after = disk_bytes(h);
    /* 50 live items of ~140 bytes on disk each, plus headers. */
    uint64_t live = 50 * (40 + 3 + 95);
    fprintf(stderr, "disk before %llu, after %llu, live %llu\n",
            (unsigned long long)before, (unsigned long long)after,
            (unsigned long long)live);
    CHECK(after < before / 10);
    CHECK(after <= live * 13 / 10 + 4 * 32 * 2);
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 1);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == 50);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "%d-%d-%080d", i, 19, 19);
        char got[128];
        engine_errc rc =
            kv_get_full(h, c, 0, (uint16_t)(i % 4), key, got, sizeof(got), NULL);
        if (i % 2 == 0) {
            CHECK_RC(rc, ENGINE_NO_SUCH_KEY);
        } else {
            CHECK_RC(rc, ENGINE_SUCCESS);
            CHECK(strcmp(got, val) == 0);
        }
    }
    return TEST_PASS;
}

static test_result test_compaction_automatic(engine_handle *h, const test_harness *th)
{
    /* Durable writes are each flushed on their own: 200 versions of one key
     * on disk, one of them live. */
    const void *c = th->create_cookie();
    char val[64];
    for (int i = 0; i < 200; i++) {
        snprintf(val, sizeof(val), "value-%04d-%030d", i, i);
        CHECK_RC(durable_set(h, th, c, "same", val, NULL), ENGINE_SUCCESS);
    }
    /* Compactions may start during the writes; once they stop, the next one
     * leaves about one record per shard. */
    for (int i = 0; i < 1000 && disk_bytes(h) >= 4096; i++)
        usleep(10000);
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 1);
    CHECK(disk_bytes(h) < 4096);
    CHECK((h = restart(th, true)) != NULL);
    char got[64];
    CHECK_RC(kv_get(h, c, "same", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strncmp(got, "value-0199", 10) == 0);
    return TEST_PASS;
}

typedef struct loader {
    engine_handle *h;
    _Atomic int stop;
    int rounds;
    int errors;
} loader;

static void *load_main(void *arg)
{
    loader *l = arg;
    char key[16], val[32];
    while (!atomic_load(&l->stop)) {
        for (int i = 0; i < 200; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(val, sizeof(val), "r%d", l->rounds);
            if (kv_store_full(l->h, NULL, 0, (uint16_t)(i % 4), key, val, strlen(val), 0,
                              0, ENGINE_STORE_SET, 0, NULL) != ENGINE_SUCCESS)
                l->errors++;
        }
        l->rounds++;
    }
    return NULL;
}

static test_result test_compaction_under_load(engine_handle *h, const test_harness *th)
{
    loader l = {h, 0, 0, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, load_main, &l) == 0);
    for (int i = 0; i < 20; i++) {
        if (!engine_control(h, th, "compact"))
            break;
        usleep(2000);
    }
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    CHECK(l.errors == 0);
    CHECK(l.rounds > 0);
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 20);
    CHECK((h = restart(th, false)) != NULL);
    char key[16], want[32], got[32];
    snprintf(want, sizeof(want), "r%d", l.rounds - 1);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get_full(h, NULL, 0, (uint16_t)(i % 4), key, got, sizeof(got), NULL),
                 ENGINE_SUCCESS);
        CHECK(strcmp(got, want) == 0);
    }
    return TEST_PASS;
}

static test_result compaction_fault(engine_handle *h, const test_harness *th,
                                    const char *fault)
{
    const void *c = th->create_cookie();
    char key[16];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 50; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            CHECK_RC(kv_store(h, c, key, r == 2 ? "final" : "older", ENGINE_STORE_SET, 0,
                              NULL),
                     ENGINE_SUCCESS);
        }
        CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    }
    CHECK(engine_control(h, th, fault));
    CHECK(engine_control(h, th, "compact"));
    CHECK(stat_u64(h, NULL, "ep_compaction_failures") >= 1);
    CHECK(engine_control(h, th, "clear"));
    /* Writes go on, and a later compaction succeeds. */
    CHECK_RC(durable_set(h, th, c, "after", "v", NULL), ENGINE_SUCCESS);
    CHECK(engine_control(h, th, "compact"));
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 1);
    CHECK((h = restart(th, true)) != NULL);
    char got[16];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get(h, c, key, got, sizeof(got)), ENGINE_SUCCESS);
        CHECK(strcmp(got, "final") == 0);
    }
    CHECK_RC(kv_get(h, c, "after", NULL, 0), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_compaction_fault_write(engine_handle *h, const test_harness *th)
{
    return compaction_fault(h, th, "op=write;nth=1;errno=ENOSPC");
}

static test_result test_compaction_fault_rename(engine_handle *h, const test_harness *th)
{
    return compaction_fault(h, th, "op=rename;nth=1;errno=EIO");
}

static test_result test_compaction_fault_dirsync(engine_handle *h, const test_harness *th)
{
    return compaction_fault(h, th, "op=dirsync;nth=1;errno=EIO");
}

static test_result test_large_files(engine_handle *h, const test_harness *th)
{
    /* Files of several MiB: records straddle the reader's 1 MiB buffer. Values of
     * odd sizes, so record boundaries fall everywhere. */
    const void *c = th->create_cookie();
    char key[32], val[1024];
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "big%d", i);
        size_t len = 100 + (size_t)(i * 37) % 900;
        for (size_t j = 0; j < len; j++)
            val[j] = (char)('a' + (i + (int)j) % 26);
        CHECK_RC(kv_store_full(h, c, 0, 0, key, val, len, (uint32_t)i, 0,
                               ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(stat_u64(h, NULL, "ep_disk_bytes") > 5u << 20);
    /* Warmup takes quota and engine references in blocks: what it holds back
     * must all be returned, so memory is counted exactly as before. */
    uint64_t mem = stat_u64(h, NULL, "mem_used");
    for (int pass = 0; pass < 2; pass++) {
        /* First from segments, then from the base a compaction writes. */
        if (pass == 1)
            CHECK(engine_control(h, th, "compact"));
        CHECK((h = restart(th, false)) != NULL);
        CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") == 0);
        CHECK(stat_u64(h, "warmup", "ep_warmup_items_loaded") == (uint64_t)n);
        CHECK(stat_u64(h, NULL, "mem_used") == mem);
        engine_item_info info;
        char got[1024];
        for (int i = 0; i < n; i += 7) {
            snprintf(key, sizeof(key), "big%d", i);
            size_t len = 100 + (size_t)(i * 37) % 900;
            for (size_t j = 0; j < len; j++)
                val[j] = (char)('a' + (i + (int)j) % 26);
            CHECK_RC(kv_get_full(h, c, 0, 0, key, got, sizeof(got), &info),
                     ENGINE_SUCCESS);
            CHECK(info.value.iov_len == len && memcmp(got, val, len) == 0);
            CHECK(info.flags == (uint32_t)i);
        }
    }
    return TEST_PASS;
}

static test_result test_warmup_million(engine_handle *h, const test_harness *th)
{
    /* 1M items in the plain build (EP_WARMUP_ITEMS sets fewer under the
     * sanitizers, which are many times slower). */
    const char *env = getenv("EP_WARMUP_ITEMS");
    const int n = env ? atoi(env) : 1000000;
    const void *c = th->create_cookie();
    char key[32], val[64];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "w%07d", i);
        int len = snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
        if (kv_store_full(h, c, 0, (uint16_t)(i % 16), key, val, (size_t)len, 0, 0,
                          ENGINE_STORE_SET, 0, NULL) != ENGINE_SUCCESS)
            CHECK(!"store failed");
    }
    CHECK((h = restart(th, false)) != NULL);
    CHECK(stat_u64(h, "warmup", "ep_warmup_items_loaded") == (uint64_t)n);
    CHECK(stat_u64(h, NULL, "curr_items") == (uint64_t)n);
    CHECK(stat_u64(h, "warmup", "ep_warmup_torn_segments") == 0);
    fprintf(stderr, "warmup of %d items: %llu us, %llu items/s\n", n,
            (unsigned long long)stat_u64(h, "warmup", "ep_warmup_duration_us"),
            (unsigned long long)stat_u64(h, "warmup", "ep_warmup_items_per_sec"));
    char got[64];
    for (int i = 0; i < n; i += 997) {
        snprintf(key, sizeof(key), "w%07d", i);
        snprintf(val, sizeof(val), "value-%d-%d", i, i * 7);
        CHECK_RC(kv_get_full(h, c, 0, (uint16_t)(i % 16), key, got, sizeof(got), NULL),
                 ENGINE_SUCCESS);
        CHECK(strcmp(got, val) == 0);
    }
    return TEST_PASS;
}

/* Warmup's items come from the arena when the data fits in the quota; as they
 * are replaced its blocks are given back; with warmup_arena=0 there is none. */
static test_result test_warmup_arena(engine_handle *h, const test_harness *th)
{
    enum { N = 20000 };
    const void *c = th->create_cookie();
    char key[32], val[64], got[64];
    CHECK(stat_u64(h, "memory", "ep_arena_reserved_bytes") == 0); /* nothing on disk */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        int len = snprintf(val, sizeof(val), "old-%d-%d", i, i * 3);
        CHECK_RC(kv_store_full(h, c, 0, (uint16_t)(i % 8), key, val, (size_t)len, 0, 0,
                               ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    uint64_t mem = stat_u64(h, NULL, "mem_used");
    CHECK((h = restart(th, false)) != NULL);
    c = th->create_cookie();
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    CHECK(stat_u64(h, NULL, "mem_used") == mem);
    CHECK(stat_u64(h, "memory", "ep_arena_items") == N);
    uint64_t resident = stat_u64(h, "memory", "ep_arena_resident_bytes");
    CHECK(resident > 0 && resident <= stat_u64(h, "memory", "ep_arena_reserved_bytes"));
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        snprintf(val, sizeof(val), "old-%d-%d", i, i * 3);
        CHECK_RC(kv_get_full(h, c, 0, (uint16_t)(i % 8), key, got, sizeof(got), NULL),
                 ENGINE_SUCCESS);
        CHECK(strcmp(got, val) == 0);
    }
    /* Every key replaced: the arena's items are freed, its blocks given back. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        int len = snprintf(val, sizeof(val), "new-%d", i);
        CHECK_RC(kv_store_full(h, c, 0, (uint16_t)(i % 8), key, val, (size_t)len, 0, 0,
                               ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK(wait_stat_eq(h, "memory", "ep_arena_items", 0));
    CHECK(stat_u64(h, "memory", "ep_arena_resident_bytes") == 0);
    CHECK(stat_u64(h, "memory", "ep_arena_released_blocks") >= 1);
    for (int i = 0; i < N; i += 7) {
        snprintf(key, sizeof(key), "a%d", i);
        snprintf(val, sizeof(val), "new-%d", i);
        CHECK_RC(kv_get_full(h, c, 0, (uint16_t)(i % 8), key, got, sizeof(got), NULL),
                 ENGINE_SUCCESS);
        CHECK(strcmp(got, val) == 0);
    }
    /* Switched off: data loads through malloc. */
    const char *off = "dbname=@DATA_DIR@/off;num_shards=2;warmup_arena=0";
    engine_errc rc;
    for (int run = 0; run < 2; run++) {
        engine_handle *e = th->create_engine(off, &rc);
        CHECK(e != NULL && wait_ready(e));
        if (run == 0) {
            for (int i = 0; i < 100; i++) {
                snprintf(key, sizeof(key), "b%d", i);
                CHECK_RC(kv_store_full(e, NULL, 0, 0, key, "v", 1, 0, 0, ENGINE_STORE_SET,
                                       0, NULL),
                         ENGINE_SUCCESS);
            }
            CHECK(wait_stat_eq(e, NULL, "ep_queue_size", 0));
        } else {
            CHECK(stat_u64(e, NULL, "curr_items") == 100);
            CHECK(stat_u64(e, "memory", "ep_arena_reserved_bytes") == 0);
            CHECK_RC(kv_get_full(e, NULL, 0, 0, "b7", got, sizeof(got), NULL),
                     ENGINE_SUCCESS);
        }
        th->destroy_engine(e, false);
    }
    return TEST_PASS;
}

/* A key whose vbucket moved to another shard (num_shards changed between runs)
 * has records in two shards, which warmup reads at the same time: only the
 * newest version may end up in the table, once. */
static test_result test_key_in_two_shards(engine_handle *h, const test_harness *th)
{
    (void)h;
    enum { N = 3000 };
    const char *cfgs[] = {
        "dbname=@DATA_DIR@/reshard;num_shards=2;num_reader_threads=2", /* vb 3: shard 1 */
        "dbname=@DATA_DIR@/reshard;num_shards=3;num_reader_threads=2", /* vb 3: shard 0 */
    };
    const char *vals[] = {"old", "new"};
    engine_errc rc;
    char key[32], val[32], got[32];
    for (int run = 0; run < 2; run++) {
        engine_handle *e = th->create_engine(cfgs[run], &rc);
        CHECK(e != NULL && wait_ready(e));
        for (int i = 0; i < N; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            int len = snprintf(val, sizeof(val), "%s%d", vals[run], i);
            CHECK_RC(kv_store_full(e, NULL, 0, 3, key, val, (size_t)len, 0, 0,
                                   ENGINE_STORE_SET, 0, NULL),
                     ENGINE_SUCCESS);
        }
        CHECK(wait_stat_eq(e, NULL, "ep_queue_size", 0));
        th->destroy_engine(e, false);
    }
    /* Two shards again: shard 0 holds the new versions, shard 1 the old. */
    engine_handle *e = th->create_engine(cfgs[0], &rc);
    CHECK(e != NULL && wait_ready(e));
    uint64_t items = stat_u64(e, NULL, "curr_items");
    uint64_t loaded = stat_u64(e, "warmup", "ep_warmup_items_loaded");
    uint64_t older = stat_u64(e, "warmup", "ep_warmup_skipped_older");
    bool all_new = true;
    for (int i = 0; i < N && all_new; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "new%d", i);
        all_new =
            kv_get_full(e, NULL, 0, 3, key, got, sizeof(got), NULL) == ENGINE_SUCCESS &&
            strcmp(got, val) == 0;
    }
    th->destroy_engine(e, false);
    CHECK(items == N);
    CHECK(loaded + older == 2 * N);
    CHECK(all_new);
    return TEST_PASS;
}

/* The table grows on a task of its own: wait for it (10 s). */
static bool grew(engine_handle *h)
{
    for (int i = 0; i < 10000 && stat_u64(h, "hash", "ht_resizes") == 0; i++)
        usleep(1000);
    return stat_u64(h, "hash", "ht_resizes") >= 1;
}

/* A clean shutdown leaves the item count; the next warmup starts with a table
 * that holds them (no growth). A garbage hint is ignored. */
static test_result test_items_hint(engine_handle *h, const test_harness *th)
{
    enum { N = 20000 };
    const void *c = th->create_cookie();
    char key[32], path[600];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "h%d", i);
        CHECK_RC(kv_store(h, c, key, "v", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK(grew(h)); /* from 1,024 buckets */
    CHECK((h = restart(th, false)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    CHECK(stat_u64(h, "hash", "ht_buckets") >= N);
    CHECK(stat_u64(h, "hash", "ht_resizes") == 0);
    snprintf(path, sizeof(path), "%s/ep_items.hint", th->data_dir);
    CHECK(access(path, F_OK) != 0); /* read and removed: a crash leaves none */
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("many\n", f);
    fclose(f);
    /* A forced stop writes no hint: the next start reads the garbled one. */
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    CHECK(grew(h)); /* started at 1,024 again */
    return TEST_PASS;
}

/* ---- value eviction and background fetch ---- */

/* A get as the host does it: on would_block, wait for the notify and re-call. */
static engine_errc host_get(engine_handle *h, const test_harness *th, const void *c,
                            const char *key, char *buf, size_t cap,
                            engine_item_info *info)
{
    engine_errc rc;
    HOST_CALL(th, c, rc, kv_get_full(h, c, 0, 0, key, buf, cap, info));
    return rc;
}

static void value_of(int i, char *val, size_t cap)
{
    snprintf(val, cap, "value-%d-%0180d", i, i * 31);
}

/* Stores n keys (vbucket 0) and waits until all are on disk (clean). */
/* Stores keys e0..e(n-1) (vbucket 0; the odd ones expire in odd_ttl seconds
 * if it is not 0) and waits until all are on disk (clean), and also after
 * every `batch` keys if it is not 0: a batch goes to one segment, whatever
 * its size, so small batches make many segments. */
static bool store_keys(engine_handle *h, const void *c, int n, int batch,
                       uint32_t odd_ttl, uint64_t *cas)
{
    char key[32], val[256];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        value_of(i, val, sizeof(val));
        if (kv_store_full(h, c, 0, 0, key, val, strlen(val), (uint32_t)i,
                          i % 2 ? odd_ttl : 0, ENGINE_STORE_SET, 0,
                          cas ? &cas[i] : NULL) != ENGINE_SUCCESS)
            return false;
        if (batch != 0 && i % batch == batch - 1 &&
            !wait_stat_eq(h, NULL, "ep_queue_size", 0))
            return false;
    }
    return wait_stat_eq(h, NULL, "ep_queue_size", 0);
}

static bool store_clean(engine_handle *h, const void *c, int n, uint64_t *cas)
{
    return store_keys(h, c, n, 0, 0, cas);
}

static bool value_is(engine_handle *h, const test_harness *th, const void *c, int i,
                     const uint64_t *cas)
{
    char key[32], val[256], got[256];
    engine_item_info info;
    snprintf(key, sizeof(key), "e%d", i);
    value_of(i, val, sizeof(val));
    engine_errc rc = host_get(h, th, c, key, got, sizeof(got), &info);
    if (rc != ENGINE_SUCCESS || strcmp(got, val) != 0 || info.flags != (uint32_t)i ||
        (cas != NULL && info.cas != cas[i])) {
        fprintf(stderr, "%s: rc 0x%x, value '%.24s...', flags %u\n", key, rc, got,
                info.flags);
        return false;
    }
    return true;
}

/* Arms page-cache misses: every read that must not wait for the disk finds
 * nothing cached, so evicted values are read by the background task. */
#define PAGE_CACHE_MISSES "op=read_cached;nth=1;count=0;errno=EAGAIN"

/* Descriptors this process holds of files under dir (only of deleted ones,
 * each named on stderr, with deleted), or -1 if that cannot be told. */
static int files_open(const char *dir, bool deleted)
{
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL)
        return -1;
    size_t nreal = strlen(real);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    char link[600], target[PATH_MAX + 32];
    while ((de = readdir(d)) != NULL) {
        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strncmp(target, real, nreal) != 0 || target[nreal] != '/')
            continue;
        bool gone = strstr(target, " (deleted)") != NULL;
        if (gone && deleted)
            fprintf(stderr, "open and deleted: %s\n", target);
        n += !deleted || gone;
    }
    closedir(d);
    return n;
}

static int deleted_files_open(const char *dir)
{
    return files_open(dir, true);
}

/* Whether this kernel and file system read with RWF_NOWAIT (what the engine's
 * reads in the call use): a file in dir is written and read back so. */
static bool nowait_reads_work(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/nowait-probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return false;
    char buf[64] = "probe";
    struct iovec v = {buf, sizeof(buf)};
    bool ok = write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
              preadv2(fd, &v, 1, 0, RWF_NOWAIT) == (ssize_t)sizeof(buf);
    close(fd);
    unlink(path);
    return ok;
}

/* A get that meets an evicted value reads it in the call when that cannot
 * wait for the disk (a file the store holds open, the page cache holding the
 * record); otherwise, or when that read fails, in the background. */
static test_result test_fetch_from_page_cache(engine_handle *h, const test_harness *th)
{
    enum { N = 200 };
    if (!nowait_reads_work(th->data_dir)) {
        fprintf(stderr, "# skipped: reads with RWF_NOWAIT do not work in %s\n",
                th->data_dir);
        return TEST_SKIP;
    }
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, N, NULL));
    CHECK(engine_control(h, th, "evict"));
    CHECK(stat_u64(h, NULL, "ep_num_non_resident") == N);
    engine_item *it = NULL;
    /* No file is open for reading yet: the caller's thread never opens one. */
    engine_doc_key k = doc_key(0, "e0");
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK(wait_released(th, c, 10000));
    CHECK(value_is(h, th, c, 0, NULL));
    /* Now it is, and what was just written is in the page cache. */
    char key[16];
    for (int i = 1; i <= 20; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        k = doc_key(0, key);
        CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_SUCCESS);
        h->release(h, it);
        CHECK(value_is(h, th, c, i, NULL));
    }
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 21);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched_inline") == 20);
    /* Not in the page cache: the background task reads it. */
    CHECK(engine_control(h, th, PAGE_CACHE_MISSES));
    k = doc_key(0, "e30");
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK(wait_released(th, c, 10000));
    CHECK(value_is(h, th, c, 30, NULL));
    /* A read that fails on the caller's thread (an error, half a record) is
     * done again in the background, which succeeds. */
    const char *faults[] = {"op=read_cached;nth=1;count=0;errno=EIO",
                            "op=read_cached;nth=1;count=0;short=1"};
    for (int f = 0; f < 2; f++) {
        CHECK(engine_control(h, th, "clear"));
        CHECK(engine_control(h, th, faults[f]));
        snprintf(key, sizeof(key), "e%d", 31 + f);
        k = doc_key(0, key);
        CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
        CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
        CHECK(wait_released(th, c, 10000));
        CHECK(value_is(h, th, c, 31 + f, NULL));
    }
    CHECK(engine_control(h, th, "clear"));
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 24);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched_inline") == 20);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    /* Compaction deletes the files read so far: their descriptors close, and
     * the values, now in the new base, are read as before. */
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(engine_control(h, th, "compact"));
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(engine_control(h, th, "evict"));
    for (int i = 0; i < N; i++)
        CHECK(value_is(h, th, c, i, NULL));
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    return TEST_PASS;
}

/* More files than a shard keeps open (8): reads push out the descriptor used
 * least lately; every value is right, the descriptors stay bounded, and none
 * is left of a file compaction deleted. */
static test_result test_fetch_many_files(engine_handle *h, const test_harness *th)
{
    enum { N = 1000 };
    const void *c = th->create_cookie();
    CHECK(store_keys(h, c, N, 25, 0, NULL));
    CHECK(segments_in(th->data_dir) > 16); /* 230 KB in segments of 8 KiB */
    for (int pass = 0; pass < 2; pass++) {
        CHECK(engine_control(h, th, "evict"));
        for (int i = 0; i < N; i++)
            CHECK(value_is(h, th, c, pass == 0 ? i : (i * 7919) % N, NULL));
        /* 8 for reads, and the segments being written (one a shard). */
        int open_now = files_open(th->data_dir, false);
        fprintf(stderr, "pass %d: %d files open\n", pass, open_now);
        CHECK(open_now >= 8 && open_now <= 8 + 2);
    }
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    CHECK(engine_control(h, th, "compact"));
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(engine_control(h, th, "evict"));
    for (int i = 0; i < N; i += 3)
        CHECK(value_is(h, th, c, i, NULL));
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    return TEST_PASS;
}

typedef struct paused_get {
    engine_handle *h;
    const test_harness *th;
    const void *c;
    const char *key;
    engine_errc rc;
    char got[256];
} paused_get;

static void *paused_get_main(void *arg)
{
    paused_get *g = arg;
    HOST_CALL(g->th, g->c, g->rc,
              kv_get_full(g->h, g->c, 0, 0, g->key, g->got, sizeof(g->got), NULL));
    return NULL;
}

/* With 64 shards a shard keeps one file open. While a read holds it (paused
 * in its pread), a read of another file of the shard opens that file for
 * itself, reads, and closes it: nothing pushed out, nothing left open. */
static test_result test_fetch_with_slots_busy(engine_handle *h, const test_harness *th)
{
    if (!nowait_reads_work(th->data_dir))
        return TEST_SKIP;
    const void *c = th->create_cookie(), *c2 = th->create_cookie();
    CHECK(store_keys(h, c, 200, 25, 0, NULL));
    CHECK(segments_in(th->data_dir) > 4);
    CHECK(engine_control(h, th, "evict"));
    CHECK(value_is(h, th, c, 0, NULL)); /* e0's file is the one kept open */
    int open_before = files_open(th->data_dir, false);
    CHECK(engine_control(h, th, "evict"));
    CHECK(engine_control(h, th, "op=read_cached;nth=1;count=1;pause=1"));
    uint64_t inline_before = stat_u64(h, NULL, "ep_bg_fetched_inline");
    paused_get g = {h, th, c2, "e0", ENGINE_FAILED, ""};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, paused_get_main, &g) == 0);
    /* Checked after the paused read is let go and joined (g is on this
     * stack). e150 is in a later segment: read in the background on a
     * descriptor of its own. */
    bool paused = engine_control(h, th, "wait_paused");
    uint64_t fetched = stat_u64(h, NULL, "ep_bg_fetched");
    bool read_150 = paused && value_is(h, th, c, 150, NULL);
    bool fetched_one = stat_u64(h, NULL, "ep_bg_fetched") == fetched + 1;
    int open_during = files_open(th->data_dir, false);
    engine_control(h, th, "resume");
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(paused && read_150 && fetched_one);
    CHECK(open_during == open_before);
    char want[256];
    value_of(0, want, sizeof(want));
    CHECK(g.rc == ENGINE_SUCCESS && strcmp(g.got, want) == 0);
    /* Its descriptor stayed open under it: the read in the call succeeded. */
    CHECK(stat_u64(h, NULL, "ep_bg_fetched_inline") == inline_before + 1);
    CHECK(engine_control(h, th, "clear"));
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    return TEST_PASS;
}

static void *compact_main(void *arg);
static int bases_of_shard0(const char *dir, unsigned *newest);

/* A compaction with nothing written since the last makes a new base of the
 * same items less the expired ones, at other offsets. Paused in its
 * directory fsync, after the new base is renamed into place and before the
 * items' locations move, reads of evicted values still use the old
 * locations: they find the old base, under its own name (the new base has a
 * number of its own). */
static test_result test_read_while_base_installs(engine_handle *h, const test_harness *th)
{
    enum { N = 200 };
    const void *c = th->create_cookie();
    CHECK(store_keys(h, c, N, 0, 100, NULL));
    CHECK(engine_control(h, th, "compact")); /* the base of the segments */
    uint64_t compactions = stat_u64(h, NULL, "ep_compactions");
    th->time_travel(200); /* the odd keys expire */
    CHECK(engine_control(h, th, "evict"));
    CHECK(engine_control(h, th, "op=dirsync;nth=1;pause=1"));
    void *args[] = {h, (void *)th};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, compact_main, args) == 0);
    bool paused = engine_control(h, th, "wait_paused");
    unsigned newest;
    int wrong = 0, bases = bases_of_shard0(th->data_dir, &newest);
    for (int i = 0; paused && i < N; i += 2)
        wrong += !value_is(h, th, c, i, NULL);
    engine_control(h, th, "resume");
    pthread_join(t, NULL);
    CHECK(paused);
    CHECK(bases == 2); /* the old one and the new, each under its own name */
    CHECK(wrong == 0);
    CHECK(stat_u64(h, NULL, "ep_compactions") == compactions + 1);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    CHECK(engine_control(h, th, "evict"));
    for (int i = 0; i < N; i += 2)
        CHECK(value_is(h, th, c, i, NULL)); /* from the new base */
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(stat_u64(h, NULL, "curr_items") == N / 2);
    for (int i = 0; i < N; i += 2)
        CHECK(value_is(h, th, c, i, NULL));
    return TEST_PASS;
}

static test_result test_evict_and_fetch(engine_handle *h, const test_harness *th)
{
    enum { N = 2000 };
    static uint64_t cas[N];
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, N, cas));
    uint64_t before = stat_u64(h, NULL, "mem_used");
    CHECK(engine_control(h, th, "evict"));
    CHECK(stat_u64(h, NULL, "ep_num_value_ejects") == N);
    CHECK(stat_u64(h, NULL, "ep_num_non_resident") == N);
    CHECK(stat_u64(h, NULL, "curr_items") == N); /* keys stay */
    uint64_t after = stat_u64(h, NULL, "mem_used");
    CHECK(after + (uint64_t)N * 190 <= before); /* the values are gone */

    /* The first get parks, the reader task notifies, the re-call has it. */
    engine_doc_key k = doc_key(0, "e7");
    engine_item *it = NULL;
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK(wait_released(th, c, 10000));
    CHECK(value_is(h, th, c, 7, cas));
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 1);
    CHECK(stat_u64(h, NULL, "ep_num_non_resident") == N - 1);

    /* What needs only metadata never reads the disk. */
    CHECK_RC(kv_store(h, c, "e1", "x", ENGINE_STORE_ADD, 0, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_store(h, c, "e2", "cas-replaced", ENGINE_STORE_CAS, cas[2], NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "e3", "x", ENGINE_STORE_CAS, cas[3] + 1000000, NULL),
             ENGINE_KEY_EXISTS);
    CHECK_RC(kv_remove(h, c, "e4", 0), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "e4", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get(h, c, "missing", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 1);

    /* Without a cookie the read happens in the call. */
    char got[256];
    CHECK_RC(kv_get(h, NULL, "e5", got, sizeof(got)), ENGINE_SUCCESS);
    CHECK(strncmp(got, "value-5-", 8) == 0);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 2);

    for (int i = 0; i < N; i++) {
        if (i == 2 || i == 4)
            continue;
        CHECK(value_is(h, th, c, i, cas));
    }
    /* The flusher holds e4's stub (its deletion) until the deletion is on
     * disk, and a stub counts as non-resident while it exists. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(stat_u64(h, NULL, "ep_num_non_resident") == 0);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    CHECK(stat_u64(h, NULL, "mem_used") <= before);
    /* Evicted again, and across a restart: nothing lost or changed. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(engine_control(h, th, "evict"));
    CHECK((h = restart(th, false)) != NULL);
    c = th->create_cookie();
    CHECK(engine_control(h, th, "evict"));
    for (int i = 0; i < N; i++) {
        if (i == 2 || i == 4)
            continue;
        CHECK(value_is(h, th, c, i, cas));
    }
    CHECK_RC(host_get(h, th, c, "e2", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(got, "cas-replaced") == 0);
    CHECK_RC(host_get(h, th, c, "e4", got, sizeof(got), NULL), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

/* Writing far more than max_size: the item pager evicts clean values, writes
 * that find the quota full are told to retry, and every value reads back. */
static test_result test_eviction_at_quota(engine_handle *h, const test_harness *th)
{
    enum { N = 12000 };
    const void *c = th->create_cookie();
    char key[32], val[1024];
    uint64_t retries = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "q%d", i);
        memset(val, 'a' + i % 26, sizeof(val));
        snprintf(val, 16, "%d-", i);
        engine_errc rc;
        while ((rc = kv_store_full(h, c, 0, (uint16_t)(i % 4), key, val, sizeof(val), 0,
                                   0, ENGINE_STORE_SET, 0, NULL)) ==
                   ENGINE_TEMPORARY_FAILURE &&
               retries < 200000) {
            retries++;
            usleep(200);
        }
        CHECK_RC(rc, ENGINE_SUCCESS);
    }
    uint64_t max = stat_u64(h, "config", "max_size");
    CHECK(stat_u64(h, NULL, "mem_used") <= max);
    CHECK(stat_u64(h, NULL, "ep_item_pager_runs") >= 1);
    CHECK(stat_u64(h, NULL, "ep_num_value_ejects") >= N / 2);
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    fprintf(stderr,
            "%d x 1 KiB into a %" PRIu64 "-byte quota: %" PRIu64 " ejects, %" PRIu64
            " retries\n",
            N, max, stat_u64(h, NULL, "ep_num_value_ejects"), retries);
    char got[1100];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "q%d", i);
        engine_errc rc;
        engine_item_info info;
        for (int tries = 0;; tries++) {
            HOST_CALL(
                th, c, rc,
                kv_get_full(h, c, 0, (uint16_t)(i % 4), key, got, sizeof(got), &info));
            if (rc != ENGINE_TEMPORARY_FAILURE || tries == 1000)
                break;
            usleep(200);
        }
        CHECK_RC(rc, ENGINE_SUCCESS);
        char head[16];
        snprintf(head, sizeof(head), "%d-", i);
        CHECK(info.value.iov_len == sizeof(val) &&
              strncmp(got, head, strlen(head)) == 0 &&
              got[sizeof(val) - 1] == 'a' + i % 26);
    }
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") >= N / 2);
    /* Fetched values come back whatever the quota; the pager then makes room. */
    for (int i = 0; i < 10000 && stat_u64(h, NULL, "mem_used") > max; i++)
        usleep(1000);
    CHECK(stat_u64(h, NULL, "mem_used") <= max);
    /* Three times the quota on disk: warmup evicts as it loads, with malloc (the
     * arena reuses nothing that eviction frees). */
    CHECK((h = restart(th, false)) != NULL);
    c = th->create_cookie();
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    CHECK(stat_u64(h, "memory", "ep_arena_reserved_bytes") == 0);
    CHECK(stat_u64(h, NULL, "ep_num_value_ejects") > 0);
    CHECK(stat_u64(h, NULL, "mem_used") <= max);
    for (int i = 0; i < N; i += 7) {
        snprintf(key, sizeof(key), "q%d", i);
        engine_errc rc;
        HOST_CALL(th, c, rc,
                  kv_get_full(h, c, 0, (uint16_t)(i % 4), key, got, sizeof(got), NULL));
        CHECK_RC(rc, ENGINE_SUCCESS);
        char head[16];
        snprintf(head, sizeof(head), "%d-", i);
        CHECK(strncmp(got, head, strlen(head)) == 0);
    }
    return TEST_PASS;
}

/* The item pager gives what was read since its last pass a second chance:
 * with enough cold values to reach the low watermark, no hot one goes. */
static test_result test_read_values_stay(engine_handle *h, const test_harness *th)
{
    enum { N = 2000, HOT = 1000 };
    const void *c = th->create_cookie();
    char key[32], val[1024], got[1100];
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_store_full(h, c, 0, 0, key, val, sizeof(val), 0, 0, ENGINE_STORE_SET,
                               0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(stat_u64(h, NULL, "mem_used") < stat_u64(h, NULL, "ep_mem_high_wat"));
    for (int i = 0; i < HOT; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get(h, c, key, NULL, 0), ENGINE_SUCCESS);
    }
    CHECK(engine_control(h, th, "evict_pass"));
    uint64_t evicted = stat_u64(h, NULL, "ep_num_non_resident");
    CHECK(evicted >= 300 && evicted <= N - HOT);
    CHECK(stat_u64(h, NULL, "mem_used") < stat_u64(h, NULL, "ep_mem_low_wat"));
    for (int i = 0; i < HOT; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(host_get(h, th, c, key, got, sizeof(got), NULL), ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == 0); /* every hot value was resident */
    for (int i = HOT; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(host_get(h, th, c, key, got, sizeof(got), NULL), ENGINE_SUCCESS);
        CHECK(got[0] == 'v' && got[sizeof(val) - 1] == 'v');
    }
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == evicted);
    return TEST_PASS;
}

/* A failed read reaches the waiting cookie; the item stays, evicted, and is read
 * once the fault clears. A damaged record is refused, never returned. */
static test_result test_bg_fetch_faults(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, 10, NULL));
    CHECK(engine_control(h, th, "evict"));
    /* The open first: once a read has opened the file, the store keeps it open. */
    const char *faults[] = {"op=open;nth=1;count=0;errno=EACCES",
                            "op=read;nth=1;count=0;errno=EIO",
                            "op=read;nth=1;count=0;short=1"};
    for (int f = 0; f < 3; f++) {
        CHECK(engine_control(h, th, PAGE_CACHE_MISSES));
        CHECK(engine_control(h, th, faults[f]));
        engine_doc_key k = doc_key(0, "e3");
        engine_item *it = NULL;
        CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
        engine_errc rc = th->wait_for_notify(c);
        CHECK(rc == ENGINE_TEMPORARY_FAILURE || rc == ENGINE_FAILED);
        CHECK(strstr(th->error_context(c), "background fetch") != NULL);
        CHECK(wait_released(th, c, 10000));
        CHECK(engine_control(h, th, "clear"));
        CHECK(stat_u64(h, NULL, "ep_num_non_resident") == 10);
        CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == (uint64_t)f + 1);
    }
    CHECK(value_is(h, th, c, 3, NULL));

    /* Flip one byte of e9's value on disk (in the newest segment of shard 0,
     * which may end in zeros written ahead). */
    char path[512];
    CHECK(newest_segment(th->data_dir, path, sizeof(path)) == 0);
    FILE *fp = fopen(path, "r+b");
    CHECK(fp != NULL);
    static char file[1 << 20];
    size_t n = fread(file, 1, sizeof(file), fp);
    long at = -1;
    for (size_t i = 0; i + 8 <= n; i++)
        if (memcmp(file + i, "value-9-", 8) == 0)
            at = (long)i + 20;
    CHECK(at > 0);
    CHECK(fseek(fp, at, SEEK_SET) == 0);
    fputc(file[at] ^ 0x01, fp);
    fclose(fp);
    char got[256];
    CHECK_RC(host_get(h, th, c, "e9", got, sizeof(got), NULL), ENGINE_FAILED);
    CHECK(strstr(th->error_context(c), "checksum") != NULL);
    CHECK(th->log_contains("background fetch failed"));
    for (int i = 0; i < 9; i++)
        CHECK(value_is(h, th, c, i, NULL));
    return TEST_PASS;
}

/* ---- progress of long work ---- */

static void *compact_main(void *arg)
{
    void **a = arg;
    engine_control(a[0], a[1], "compact");
    return NULL;
}

static bool stat_is(engine_handle *h, const char *group, const char *name,
                    const char *want)
{
    char buf[64];
    bool ok = stat_str(h, group, name, buf, sizeof(buf)) && strcmp(buf, want) == 0;
    if (!ok)
        fprintf(stderr, "%s %s = '%s', want '%s'\n", group, name, buf, want);
    return ok;
}

/* Warmup and compaction log their progress (here from the start:
 * progress_log_after_ms=0) and show it in the "progress" group while they
 * run, their last figures after. */
static test_result test_progress(engine_handle *h, const test_harness *th)
{
    enum { N = 3000 };
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, N, NULL));
    CHECK(store_clean(h, c, N, NULL)); /* the first versions are dead */
    CHECK((h = restart(th, false)) != NULL);
    CHECK(th->log_contains("ep_engine: warmup: "));
    CHECK(th->log_contains("records,"));
    CHECK(stat_is(h, "progress", "warmup_running", "0"));
    CHECK(stat_u64(h, "progress", "warmup_records") == 2 * N);
    CHECK(stat_is(h, "progress", "warmup_fraction", "1.0000"));
    CHECK(stat_u64(h, "progress", "warmup_bytes") ==
          stat_u64(h, "warmup", "ep_warmup_bytes"));
    /* A compaction paused in its fsync: running, with its figures. */
    CHECK(stat_is(h, "progress", "compaction_running", "0"));
    CHECK(engine_control(h, th, "op=fsync;nth=1;pause=1"));
    pthread_t t;
    void *args[2] = {h, (void *)th};
    CHECK(pthread_create(&t, NULL, compact_main, args) == 0);
    CHECK(engine_control(h, th, "wait_paused"));
    bool running = stat_is(h, "progress", "compaction_running", "1");
    uint64_t records = stat_u64(h, "progress", "compaction_records");
    CHECK(engine_control(h, th, "resume"));
    pthread_join(t, NULL);
    CHECK(running);
    CHECK(records > 0 && records <= N);
    CHECK(stat_is(h, "progress", "compaction_running", "0"));
    CHECK(th->log_contains("ep_engine: compaction of shard "));
    CHECK(stat_is(h, "progress", "compaction_fraction", "1.0000"));
    return TEST_PASS;
}

/* Compaction writes evicted values from their records, and moves every
 * location to the base before the old files go. */
static test_result test_compaction_with_evicted(engine_handle *h, const test_harness *th)
{
    enum { N = 500 };
    static uint64_t cas[N];
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, N, NULL));
    CHECK(store_clean(h, c, N, cas)); /* the first versions are now dead */
    CHECK(engine_control(h, th, "evict"));
    uint64_t disk = stat_u64(h, NULL, "ep_disk_bytes");
    CHECK(engine_control(h, th, "compact"));
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 1);
    CHECK(stat_u64(h, NULL, "ep_disk_bytes") < disk);
    CHECK(stat_u64(h, NULL, "ep_num_non_resident") == N);
    for (int i = 0; i < N; i += 2)
        CHECK(value_is(h, th, c, i, cas)); /* read from the base */
    /* Again: locations in a base move to the next base. */
    CHECK(engine_control(h, th, "evict"));
    CHECK(engine_control(h, th, "compact"));
    for (int i = 0; i < N; i++)
        CHECK(value_is(h, th, c, i, cas));
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(engine_control(h, th, "evict"));
    for (int i = 0; i < N; i++)
        CHECK(value_is(h, th, c, i, cas));
    return TEST_PASS;
}

static void *evict_loop(void *arg)
{
    void **a = arg;
    engine_handle *h = a[0];
    const test_harness *th = a[1];
    atomic_bool *stop = a[2];
    while (!atomic_load(stop)) {
        engine_control(h, th, "evict");
        engine_control(h, th, "compact");
    }
    return NULL;
}

/* Gets racing evictions and compactions: every read is the right value. */
static test_result test_fetch_races_compaction(engine_handle *h, const test_harness *th)
{
    enum { N = 300 };
    static uint64_t cas[N];
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, N, cas));
    atomic_bool stop = false;
    void *args[] = {h, (void *)th, &stop};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, evict_loop, args) == 0);
    bool ok = true;
    /* At least 10 rounds of reads and 5 compactions under them. */
    for (int round = 0;
         ok && round < 5000 && (round < 10 || stat_u64(h, NULL, "ep_compactions") < 5);
         round++)
        for (int i = 0; i < N && ok; i++)
            ok = value_is(h, th, c, i, cas);
    atomic_store(&stop, true);
    pthread_join(t, NULL);
    CHECK(ok);
    fprintf(stderr,
            "%" PRIu64 " fetches (%" PRIu64 " in the call) under %" PRIu64
            " compactions\n",
            stat_u64(h, NULL, "ep_bg_fetched"), stat_u64(h, NULL, "ep_bg_fetched_inline"),
            stat_u64(h, NULL, "ep_compactions"));
    CHECK(stat_u64(h, NULL, "ep_compactions") >= 5);
    /* Files that compaction deleted under a read were closed by that read. */
    CHECK(deleted_files_open(th->data_dir) == 0);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") >= 1);
    CHECK(stat_u64(h, NULL, "ep_bg_fetch_failed") == 0);
    return TEST_PASS;
}

/* ---- extended attributes on disk ---- */

typedef struct x_results {
    int n;
    engine_errc st[4];
    char val[4][64];
} x_results;

static void x_collect(size_t index, engine_errc status, const void *value, size_t len,
                      void *ctx)
{
    x_results *r = ctx;
    if (index < 4) {
        r->st[index] = status;
        snprintf(r->val[index], sizeof(r->val[index]), "%.*s", (int)len,
                 value ? (const char *)value : "");
        r->n++;
    }
}

/* An attribute's value and the body, as a host reads them (an evicted value
 * is fetched first). */
static bool x_doc_is(engine_handle *h, const test_harness *th, const void *c,
                     const char *key, const char *xpath, const char *xwant,
                     const char *body)
{
    engine_subdoc_spec specs[] = {
        {ENGINE_SUBDOC_GET, ENGINE_SUBDOC_PATH_XATTR, (uint16_t)strlen(xpath), 0, xpath,
         NULL},
        {ENGINE_SUBDOC_GET_DOC, 0, 0, 0, "", NULL},
    };
    engine_doc_key k = doc_key(0, key);
    x_results r;
    uint64_t cas;
    engine_errc rc;
    HOST_CALL(th, c, rc,
              (r = (x_results){0},
               h->subdoc_lookup(h, c, &k, 0, specs, 2, 0, x_collect, &r, &cas)));
    bool ok = rc == ENGINE_SUCCESS && strcmp(r.val[0], xwant) == 0 &&
              strcmp(r.val[1], body) == 0;
    if (!ok)
        fprintf(stderr, "%s: rc 0x%x, %s = '%s', body '%s'\n", key, rc, xpath, r.val[0],
                r.val[1]);
    return ok;
}

static test_result test_xattrs_on_disk(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    char v[128];
    const char *pairs[] = {"meta", "{\"a\":1}", "_s", "\"s\"", NULL};
    size_t n = xattr_value(v, sizeof(v), pairs, "{\"b\":1}");
    CHECK_RC(kv_store_dt(h, c, "x1", v, n, ENGINE_DATATYPE_JSON | ENGINE_DATATYPE_XATTR,
                         0, 0, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    engine_subdoc_spec mut[] = {
        {ENGINE_SUBDOC_COUNTER, ENGINE_SUBDOC_PATH_XATTR | ENGINE_SUBDOC_PATH_MKDIR_P, 3,
         1, "m.v", "7"},
        {ENGINE_SUBDOC_COUNTER, 0, 1, 1, "n", "1"},
    };
    engine_doc_key k2 = doc_key(0, "x2");
    x_results r = {0};
    size_t failed;
    uint64_t cas;
    CHECK_RC(h->subdoc_mutate(h, c, &k2, 0, mut, 2, ENGINE_SUBDOC_DOC_MKDOC, 0, 0,
                              ENGINE_DURABILITY_NONE, x_collect, &r, &cas, &failed),
             ENGINE_SUCCESS);
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    /* Evicted: a lookup reads the record back, attributes and all. */
    CHECK(engine_control(h, th, "evict"));
    CHECK(x_doc_is(h, th, c, "x1", "meta.a", "1", "{\"b\":1}"));
    /* A plain set over an evicted document reads it back to keep them. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(engine_control(h, th, "evict"));
    engine_errc rc;
    HOST_CALL(th, c, rc, kv_store(h, c, "x1", "{\"b\":9}", ENGINE_STORE_SET, 0, NULL));
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK(x_doc_is(h, th, c, "x1", "_s", "\"s\"", "{\"b\":9}"));
    /* Compacted, restarted, evicted: still there. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(engine_control(h, th, "compact"));
    CHECK((h = restart(th, false)) != NULL);
    c = th->create_cookie();
    CHECK(x_doc_is(h, th, c, "x1", "meta.a", "1", "{\"b\":9}"));
    CHECK(x_doc_is(h, th, c, "x2", "m.v", "7", "{\"n\":1}"));
    CHECK(engine_control(h, th, "evict"));
    CHECK(x_doc_is(h, th, c, "x2", "m", "{\"v\":7}", "{\"n\":1}"));
    return TEST_PASS;
}

/* A durable sub-document mutation answers once on disk; the re-call gets its
 * results; it survives a stop without the final flush. */
static test_result test_durable_subdoc(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    engine_subdoc_spec mut[] = {
        {ENGINE_SUBDOC_DICT_UPSERT, ENGINE_SUBDOC_PATH_XATTR | ENGINE_SUBDOC_PATH_MKDIR_P,
         5, 3, "m.tag", "\"t\""},
        {ENGINE_SUBDOC_COUNTER, 0, 1, 2, "n", "41"},
    };
    engine_doc_key k = doc_key(0, "ds");
    x_results r = {0};
    size_t failed;
    uint64_t cas = 0;
    CHECK_RC(h->subdoc_mutate(h, c, &k, 0, mut, 2, ENGINE_SUBDOC_DOC_MKDOC, 0, 0,
                              ENGINE_DURABILITY_PERSIST, x_collect, &r, &cas, &failed),
             ENGINE_WOULD_BLOCK);
    CHECK(r.n == 0); /* results come with the outcome */
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    /* The vbucket stops being active before the re-call: the write is on
     * disk, so the re-call still gets its outcome (not not_my_vbucket, which
     * would make a client apply it again elsewhere). */
    CHECK_RC(h->set_vbucket_state(h, NULL, 0, ENGINE_VBUCKET_REPLICA), ENGINE_SUCCESS);
    CHECK_RC(h->subdoc_mutate(h, c, &k, 0, mut, 2, ENGINE_SUBDOC_DOC_MKDOC, 0, 0,
                              ENGINE_DURABILITY_PERSIST, x_collect, &r, &cas, &failed),
             ENGINE_SUCCESS);
    CHECK(r.n == 1 && r.st[1] == ENGINE_SUCCESS && strcmp(r.val[1], "41") == 0 &&
          cas != 0);
    CHECK_RC(h->subdoc_mutate(h, c, &k, 0, mut, 2, ENGINE_SUBDOC_DOC_MKDOC, 0, 0,
                              ENGINE_DURABILITY_PERSIST, x_collect, &r, &cas, &failed),
             ENGINE_NOT_MY_VBUCKET); /* collected once: now a new request */
    CHECK_RC(h->set_vbucket_state(h, NULL, 0, ENGINE_VBUCKET_ACTIVE), ENGINE_SUCCESS);
    /* Another request on the cookie is a new one: it waits again. */
    engine_errc rc;
    HOST_CALL(th, c, rc,
              (r = (x_results){0}, h->subdoc_mutate(h, c, &k, 0, mut + 1, 1, 0, 0, 0,
                                                    ENGINE_DURABILITY_PERSIST, x_collect,
                                                    &r, &cas, &failed)));
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK(r.n == 1 && strcmp(r.val[0], "82") == 0);
    /* A failing spec: nothing waits, nothing is written. */
    engine_subdoc_spec bad = {ENGINE_SUBDOC_DICT_ADD, 0, 1, 1, "n", "1"};
    CHECK_RC(h->subdoc_mutate(h, c, &k, 0, &bad, 1, 0, 0, 0, ENGINE_DURABILITY_PERSIST,
                              x_collect, &r, &cas, &failed),
             ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK((h = restart(th, true)) != NULL); /* forced: no final flush */
    c = th->create_cookie();
    CHECK(x_doc_is(h, th, c, "ds", "m.tag", "\"t\"", "{\"n\":82}"));
    return TEST_PASS;
}

static test_result test_append_to_evicted(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, 3, NULL));
    CHECK(engine_control(h, th, "evict"));
    engine_doc_key k = doc_key(0, "e1");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 4, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_item_info info;
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, "-end", 4);
    engine_errc rc = h->store(h, c, it, NULL, ENGINE_STORE_APPEND);
    CHECK_RC(rc, ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK_RC(h->store(h, c, it, NULL, ENGINE_STORE_APPEND), ENGINE_SUCCESS);
    h->release(h, it);
    char val[256], got[300];
    value_of(1, val, sizeof(val));
    strcat(val, "-end");
    CHECK_RC(host_get(h, th, c, "e1", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(got, val) == 0);
    /* Prepend with no cookie reads in the call. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(engine_control(h, th, "evict"));
    CHECK_RC(kv_store_full(h, NULL, 0, 0, "e2", "start-", 6, 0, 0, ENGINE_STORE_PREPEND,
                           0, NULL),
             ENGINE_SUCCESS);
    value_of(2, val, sizeof(val));
    CHECK_RC(host_get(h, th, c, "e2", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strncmp(got, "start-", 6) == 0 && strcmp(got + 6, val) == 0);
    /* A durable append: one would_block for the read, one for the disk. */
    CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
    CHECK(engine_control(h, th, "evict"));
    uint64_t fetched = stat_u64(h, NULL, "ep_bg_fetched");
    k = doc_key(0, "e0");
    CHECK_RC(h->allocate(h, c, &it, &k, 2, 0, 0, 0, 0), ENGINE_SUCCESS);
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, "-d", 2);
    HOST_CALL(
        th, c, rc,
        h->store_durable(h, c, it, NULL, ENGINE_STORE_APPEND, ENGINE_DURABILITY_PERSIST));
    h->release(h, it);
    CHECK_RC(rc, ENGINE_SUCCESS);
    CHECK(stat_u64(h, NULL, "ep_bg_fetched") == fetched + 1);
    CHECK(wait_released(th, c, 10000));
    CHECK((h = restart(th, true)) != NULL);
    value_of(0, val, sizeof(val));
    strcat(val, "-d");
    CHECK_RC(host_get(h, th, c, "e0", got, sizeof(got), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(got, val) == 0);
    return TEST_PASS;
}

/* destroy with a fetch in flight (its read paused) or queued: each cookie is
 * answered once, before destroy returns, never with success. */
static test_result test_destroy_with_parked_fetch(engine_handle *h,
                                                  const test_harness *th)
{
    (void)h;
    engine_errc rc;
    for (int force = 0; force < 2; force++) {
        const void *c1 = th->create_cookie(), *c2 = th->create_cookie();
        engine_handle *e = th->create_engine(NULL, &rc);
        CHECK(e != NULL && wait_ready(e));
        CHECK(store_clean(e, c1, 5, NULL));
        CHECK(engine_control(e, th, "evict"));
        CHECK(engine_control(e, th, PAGE_CACHE_MISSES));
        CHECK(engine_control(e, th, "op=read;nth=1;pause=1"));
        engine_doc_key k1 = doc_key(0, "e1"), k2 = doc_key(0, "e2");
        engine_item *it = NULL;
        CHECK_RC(e->get(e, c1, &it, &k1, 0), ENGINE_WOULD_BLOCK);
        CHECK(engine_control(e, th, "wait_paused"));
        CHECK_RC(e->get(e, c2, &it, &k2, 0), ENGINE_WOULD_BLOCK);
        th->destroy_engine(e, force == 1);
        CHECK_RC(th->wait_for_notify(c1), ENGINE_TEMPORARY_FAILURE);
        CHECK_RC(th->wait_for_notify(c2), ENGINE_TEMPORARY_FAILURE);
        CHECK(strstr(th->error_context(c2), "shut") != NULL);
        CHECK(th->reservations(c1) == 0 && th->reservations(c2) == 0);
    }
    return TEST_PASS;
}

/* A client that goes away while its fetch is parked: notified once, released. */
static test_result test_disconnect_during_fetch(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK(store_clean(h, c, 2, NULL));
    CHECK(engine_control(h, th, "evict"));
    CHECK(engine_control(h, th, "op=read;nth=1;pause=1"));
    engine_doc_key k = doc_key(0, "e0");
    engine_item *it = NULL;
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_WOULD_BLOCK);
    CHECK(engine_control(h, th, "wait_paused"));
    h->disconnect(h, c);
    CHECK(engine_control(h, th, "resume"));
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK(wait_stat_eq(h, NULL, "ep_bg_fetched", 1));
    CHECK(wait_released(th, c, 10000));
    return TEST_PASS;
}

/* ---- the cookie's record (trust) ---- */

/* The first call of a durable set: its result (would_block when accepted). */
static engine_errc durable_start(engine_handle *h, const void *c, const char *key,
                                 const char *val)
{
    engine_item *it = NULL;
    engine_errc rc = new_item(h, c, key, val, &it);
    if (rc != ENGINE_SUCCESS)
        return rc;
    rc = h->store_durable(h, c, it, NULL, ENGINE_STORE_SET, ENGINE_DURABILITY_PERSIST);
    h->release(h, it);
    return rc;
}

/* A durable set that stops at the notify, as a host does whose re-call never
 * reached store_durable (its allocate failed: vbucket gone, quota full). */
static engine_errc durable_set_no_recall(engine_handle *h, const test_harness *th,
                                         const void *c, const char *key, const char *val)
{
    engine_errc rc = durable_start(h, c, key, val);
    return rc == ENGINE_WOULD_BLOCK ? th->wait_for_notify(c) : rc;
}

static bool value_eq(engine_handle *h, const char *key, const char *want)
{
    char got[64] = "";
    engine_errc rc = kv_get(h, NULL, key, got, sizeof(got));
    if (rc != ENGINE_SUCCESS || strcmp(got, want) != 0) {
        fprintf(stderr, "%s: rc 0x%x, value '%s', wanted '%s'\n", key, rc, got, want);
        return false;
    }
    return true;
}

/* An outcome left uncollected never answers the next durable write. */
static test_result test_uncollected_outcome_not_reused(engine_handle *h,
                                                       const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas_a = 0, cas_b = 0;
    CHECK_RC(durable_set(h, th, c, "a", "first", &cas_a), ENGINE_SUCCESS);
    CHECK_RC(durable_set_no_recall(h, th, c, "a", "second"), ENGINE_SUCCESS);
    /* Another key: stored, with a CAS of its own. */
    CHECK_RC(durable_set(h, th, c, "b", "bee", &cas_b), ENGINE_SUCCESS);
    CHECK(value_eq(h, "b", "bee"));
    CHECK(cas_b > cas_a + 1);
    /* The same key with another value: stored too. */
    CHECK_RC(durable_set_no_recall(h, th, c, "k", "v1"), ENGINE_SUCCESS);
    CHECK_RC(durable_set(h, th, c, "k", "v2", NULL), ENGINE_SUCCESS);
    CHECK(value_eq(h, "k", "v2"));
    /* A durable remove after an uncollected set, and a set after an
     * uncollected remove. */
    CHECK_RC(durable_set_no_recall(h, th, c, "x", "1"), ENGINE_SUCCESS);
    CHECK_RC(durable_remove(h, th, c, "b"), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, NULL, "b", NULL, 0), ENGINE_NO_SUCH_KEY);
    engine_doc_key kx = doc_key(0, "x");
    engine_errc rc = h->remove_durable(h, c, &kx, 0, 0, NULL, ENGINE_DURABILITY_PERSIST);
    CHECK_RC(rc, ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK_RC(durable_set(h, th, c, "y", "why", NULL), ENGINE_SUCCESS);
    CHECK(value_eq(h, "y", "why"));
    CHECK_RC(kv_get(h, NULL, "x", NULL, 0), ENGINE_NO_SUCH_KEY);
    /* Everything above is on disk. */
    CHECK((h = restart(th, true)) != NULL);
    CHECK(value_eq(h, "a", "second") && value_eq(h, "k", "v2") &&
          value_eq(h, "y", "why"));
    CHECK_RC(kv_get(h, NULL, "b", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

/* A host that reuses its cookie objects: the write of a client that left
 * finishes after the disconnect and must leave nothing on the cookie. */
static test_result test_nothing_stored_after_disconnect(engine_handle *h,
                                                        const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK(engine_control(h, th, "hold_writer"));
    CHECK_RC(durable_start(h, c, "gone", "v"), ENGINE_WOULD_BLOCK);
    h->disconnect(h, c); /* the client leaves; the host keeps the cookie object */
    CHECK(engine_control(h, th, "release_writer"));
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK(wait_released(th, c, 10000));
    /* The same cookie object, a new client: its durable write is stored. */
    CHECK_RC(durable_set(h, th, c, "next", "client", NULL), ENGINE_SUCCESS);
    CHECK(value_eq(h, "next", "client"));
    return TEST_PASS;
}

/* A host whose cookie objects outlive an engine instance: what the engine
 * left on the cookie is gone with the engine (ASan checks that nothing reads
 * freed memory), and the next engine serves the cookie afresh. */
static test_result test_cookie_outlives_engine(engine_handle *h, const test_harness *th)
{
    (void)h;
    const void *c = th->create_cookie();
    engine_errc rc;
    for (int round = 0; round < 2; round++) {
        engine_handle *e = th->create_engine(NULL, &rc);
        CHECK(e != NULL && wait_ready(e));
        char key[16];
        snprintf(key, sizeof(key), "k%d", round);
        CHECK_RC(durable_set(e, th, c, key, "kept", NULL), ENGINE_SUCCESS);
        CHECK(value_eq(e, key, "kept"));
        /* An outcome left uncollected on the cookie at destroy. */
        CHECK_RC(durable_set_no_recall(e, th, c, key, "again"), ENGINE_SUCCESS);
        th->destroy_engine(e, false);
    }
    return TEST_PASS;
}

/* Hundreds of durable writers leave before their batch is on disk: every one
 * is notified and released, and nothing is left behind (ASan's leak check
 * runs at the end of the case). */
static test_result test_departed_durable_clients(engine_handle *h, const test_harness *th)
{
    enum { N = 300 };
    const void *c[N];
    CHECK(engine_control(h, th, "hold_writer"));
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "left%d", i);
        c[i] = th->create_cookie();
        CHECK_RC(durable_start(h, c[i], key, "12345678"), ENGINE_WOULD_BLOCK);
    }
    for (int i = 0; i < N; i++)
        th->disconnect(h, c[i]);
    CHECK(engine_control(h, th, "release_writer"));
    for (int i = 0; i < N; i++) {
        CHECK_RC(th->wait_for_notify(c[i]), ENGINE_SUCCESS);
        CHECK(wait_released(th, c[i], 10000));
    }
    CHECK(stat_u64(h, NULL, "curr_items") == N);
    return TEST_PASS;
}

/* The flusher's queue cannot take a write: the write is refused with
 * no_memory on the caller's thread, nothing is applied, and no notify comes
 * (the mock server fails the case on a notify on the caller's thread). */
static test_result test_queue_full_refuses_write(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK_RC(durable_set(h, th, c, "kept", "old", NULL), ENGINE_SUCCESS);
    for (int durable = 0; durable < 2; durable++) {
        CHECK(engine_control(h, th, "fail_enqueue=1"));
        engine_doc_key k = doc_key(0, "kept");
        engine_item *it = NULL;
        CHECK_RC(h->allocate(h, c, &it, &k, 3, 0, 0, 0, 0), ENGINE_SUCCESS);
        engine_item_info info;
        h->get_item_info(h, it, &info);
        memcpy(info.value.iov_base, "new", 3);
        engine_errc rc = durable ? h->store_durable(h, c, it, NULL, ENGINE_STORE_SET,
                                                    ENGINE_DURABILITY_PERSIST)
                                 : h->store(h, c, it, NULL, ENGINE_STORE_SET);
        CHECK_RC(rc, ENGINE_NO_MEMORY);
        CHECK(strstr(th->error_context(c), "nothing was stored") != NULL);
        CHECK(value_eq(h, "kept", "old"));
        CHECK(wait_released(th, c, 10000));
        /* The host may try the same item again. */
        rc = durable ? h->store_durable(h, c, it, NULL, ENGINE_STORE_SET,
                                        ENGINE_DURABILITY_PERSIST)
                     : h->store(h, c, it, NULL, ENGINE_STORE_SET);
        if (rc == ENGINE_WOULD_BLOCK)
            rc = th->wait_for_notify(c) == ENGINE_SUCCESS
                     ? h->store_durable(h, c, it, NULL, ENGINE_STORE_SET,
                                        ENGINE_DURABILITY_PERSIST)
                     : ENGINE_FAILED;
        h->release(h, it);
        CHECK_RC(rc, ENGINE_SUCCESS);
        CHECK(value_eq(h, "kept", "new"));
        CHECK_RC(durable_set(h, th, c, "kept", "old", NULL), ENGINE_SUCCESS);

        CHECK(engine_control(h, th, "fail_enqueue=1"));
        rc = durable ? h->remove_durable(h, c, &k, 0, 0, NULL, ENGINE_DURABILITY_PERSIST)
                     : h->remove(h, c, &k, 0, 0, NULL);
        CHECK_RC(rc, ENGINE_NO_MEMORY);
        CHECK(strstr(th->error_context(c), "nothing was deleted") != NULL);
        CHECK(value_eq(h, "kept", "old"));
        CHECK(wait_released(th, c, 10000));
    }
    /* What is on disk is what was acknowledged. */
    CHECK((h = restart(th, true)) != NULL);
    CHECK(value_eq(h, "kept", "old"));
    return TEST_PASS;
}

/* A background fetch does not wait for a batch's fsync: with the flusher
 * paused inside fdatasync, a get of an evicted value (same shard) is answered
 * at once. */
static test_result test_fetch_not_behind_fsync(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie(), *w = th->create_cookie();
    CHECK(store_clean(h, c, 4, NULL));
    CHECK(engine_control(h, th, "evict"));
    CHECK(engine_control(h, th, "op=fsync;nth=1;pause=1"));
    CHECK_RC(durable_start(h, w, "busy", "v"), ENGINE_WOULD_BLOCK);
    CHECK(engine_control(h, th, "wait_paused"));
    engine_doc_key e0 = doc_key(0, "e0");
    engine_item *got = NULL;
    engine_errc rc = h->get(h, c, &got, &e0, 0);
    if (rc == ENGINE_WOULD_BLOCK) {
        rc = th->wait_for_notify_ms(c, 5000);
        if (rc == ENGINE_SUCCESS)
            rc = h->get(h, c, &got, &e0, 0);
    }
    CHECK(engine_control(h, th, "resume"));
    CHECK_RC(th->wait_for_notify(w), ENGINE_SUCCESS);
    CHECK_RC(durable_start(h, w, "busy", "v"), ENGINE_SUCCESS); /* the re-call */
    CHECK_RC(rc, ENGINE_SUCCESS);
    h->release(h, got);
    return TEST_PASS;
}

/* initialize creates the data directory through the I/O layer: a failure
 * there is a clear error, not a crash or an engine on no directory. */
static test_result test_fault_mkdir(engine_handle *h, const test_harness *th)
{
    CHECK(engine_control(h, th, "op=mkdir;nth=1;errno=EACCES"));
    CHECK_RC(h->initialize(h, th->config), ENGINE_FAILED);
    CHECK(th->log_contains("cannot create data directory"));
    CHECK(th->log_contains("Permission denied"));
    return TEST_PASS;
}

/* Counts the base files of shard 0 and finds the newest's number. */
static int bases_of_shard0(const char *dir, unsigned *newest)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    int n = 0;
    *newest = 0;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        unsigned no;
        char tail[8];
        if (sscanf(ent->d_name, "shard0.%u.%7s", &no, tail) == 2 &&
            strcmp(tail, "base") == 0) {
            n++;
            if (no > *newest)
                *newest = no;
        }
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* kvstore.h promises one base per shard: a start removes every base the
 * newest supersedes (a power cut can bring back one whose unlink was not
 * made durable), and the data is the newest base's. */
static test_result test_old_bases_removed(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    for (int round = 0; round < 2; round++) {
        char key[16], val[32];
        for (int i = 0; i < 20; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(val, sizeof(val), "v%d-%d", i, round);
            CHECK_RC(kv_store(h, c, key, val, ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
        }
        CHECK(wait_stat_eq(h, NULL, "ep_queue_size", 0));
        CHECK(engine_control(h, th, "compact"));
    }
    unsigned newest;
    CHECK(bases_of_shard0(th->data_dir, &newest) == 1 && newest > 1);
    /* An older base comes back, as after a cut. */
    char from[1200], to[1200], cmd[2600];
    snprintf(from, sizeof(from), "%s/shard0.%u.base", th->data_dir, newest);
    snprintf(to, sizeof(to), "%s/shard0.%u.base", th->data_dir, newest - 1);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    CHECK(system(cmd) == 0);
    CHECK(bases_of_shard0(th->data_dir, &newest) == 2);
    CHECK((h = restart(th, true)) != NULL);
    CHECK(bases_of_shard0(th->data_dir, &newest) == 1);
    CHECK(value_eq(h, "k7", "v7-1"));
    return TEST_PASS;
}

static const engine_test tests[] = {
    {"restart keeps data, deletes and CAS", test_restart_keeps_data, setup_wait_ready,
     NULL, CFG, false},
    {"durable set and remove survive a forced stop",
     test_durable_set_survives_forced_stop, setup_wait_ready, NULL, CFG, false},
    {"durable write errors", test_durable_errors, setup_wait_ready, NULL, CFG, false},
    {"warmup's items come from an arena that gives its blocks back", test_warmup_arena,
     setup_wait_ready, NULL, CFG, false},
    {"group commit and de-duplication", test_group_commit_and_dedupe, setup_wait_ready,
     NULL, CFG, false},
    {"batch delay: plain writes gather, durable ones do not wait", test_batch_delay,
     setup_wait_ready, NULL, CFG ";flusher_batch_delay_ms=1000", false},
    {"fault: write ENOSPC", test_fault_write_enospc, setup_wait_ready, NULL, CFG, false},
    {"fault: write EIO", test_fault_write_eio, setup_wait_ready, NULL, CFG, false},
    {"fault: short write", test_fault_short_write, setup_wait_ready, NULL, CFG, false},
    {"fault: fsync EIO", test_fault_fsync, setup_wait_ready, NULL, CFG, false},
    {"fault: segment create ENOSPC", test_fault_create, setup_wait_ready, NULL, CFG,
     false},
    {"fault: directory fsync EIO", test_fault_dirsync, setup_wait_ready, NULL, CFG,
     false},
    {"fault: a batch of several MiB fails in its second piece", test_batch_fault_middle,
     setup_wait_ready, NULL, CFG, false},
    {"fault: a batch of several MiB is torn in its second piece", test_batch_fault_torn,
     setup_wait_ready, NULL, CFG ";num_writer_threads=2", false},
    {"fault: the write of a record bigger than the buffer fails",
     test_batch_fault_big_record, setup_wait_ready, NULL, CFG, false},
    {"fault: the fsync of a batch of several MiB fails", test_batch_fault_fsync,
     setup_wait_ready, NULL, CFG, false},
    {"fault: disk full for a while", test_fault_persistent, setup_wait_ready, NULL, CFG,
     false},
    {"torn tails are dropped at warmup", test_torn_tails_dropped, setup_wait_ready, NULL,
     CFG, false},
    {"zeros written ahead are the clean end of a segment", test_prefilled_tails,
     setup_wait_ready, NULL, CFG, false},
    {"a corrupt byte is never read as data", test_corrupt_byte, setup_wait_ready, NULL,
     CFG, false},
    {"dropped collection not loaded at warmup", test_dropped_collection_not_loaded,
     setup_wait_ready, NULL, CFG, false},
    {"vbucket states", test_vbucket_states, setup_wait_ready, NULL, CFG, false},
    {"destroy with a queued durable write", test_destroy_with_queued_durable,
     setup_wait_ready, NULL, CFG, false},
    {"disconnect before the re-call", test_disconnect_before_recall, setup_wait_ready,
     NULL, CFG, false},
    {"flush is persisted", test_flush_is_persisted, setup_wait_ready, NULL, CFG, false},
    {"compaction shrinks the files and keeps the data", test_compaction_shrinks,
     setup_wait_ready, NULL, CFG, false},
    {"compaction starts at the fragmentation threshold", test_compaction_automatic,
     setup_wait_ready, NULL,
     CFG
     ";compaction_interval_ms=20;compaction_min_bytes=4096;compaction_threshold_pct=50",
     false},
    {"compaction under concurrent writes", test_compaction_under_load, setup_wait_ready,
     NULL, CFG, false},
    {"compaction fault: write", test_compaction_fault_write, setup_wait_ready, NULL, CFG,
     false},
    {"compaction fault: rename", test_compaction_fault_rename, setup_wait_ready, NULL,
     CFG, false},
    {"compaction fault: directory fsync", test_compaction_fault_dirsync, setup_wait_ready,
     NULL, CFG, false},
    {"files of several MiB are read whole", test_large_files, setup_wait_ready, NULL,
     CFG ";num_shards=1", false},
    {"warmup of a million items", test_warmup_million, setup_wait_ready, NULL, CFG,
     false},
    {"segments roll over", test_segments_roll, setup_wait_ready, NULL,
     CFG ";segment_max_bytes=8192", false},
    {"a key with records in two shards is loaded once, newest", test_key_in_two_shards,
     setup_wait_ready, NULL, CFG, false},
    {"a clean shutdown sizes the next warmup's table", test_items_hint, setup_wait_ready,
     NULL, CFG ";ht_size=1024", false},
    {"evicted values are read back by the reader task", test_evict_and_fetch,
     setup_wait_ready, NULL, CFG, false},
    {"eviction at the memory quota", test_eviction_at_quota, setup_wait_ready, NULL,
     CFG ";max_size=4194304;mem_high_wat_pct=70;mem_low_wat_pct=50", false},
    {"values read since the last pass stay resident", test_read_values_stay,
     setup_wait_ready, NULL,
     CFG ";max_size=4194304;mem_high_wat_pct=60;mem_low_wat_pct=40", false},
    {"background fetch faults", test_bg_fetch_faults, setup_wait_ready, NULL, CFG, false},
    {"compaction of evicted items", test_compaction_with_evicted, setup_wait_ready, NULL,
     CFG, false},
    {"warmup and compaction show their progress", test_progress, setup_wait_ready, NULL,
     CFG ";progress_log_after_ms=0;num_shards=1", false},
    {"fetches race evictions and compactions", test_fetch_races_compaction,
     setup_wait_ready, NULL, CFG, false},
    {"append and prepend to an evicted value", test_append_to_evicted, setup_wait_ready,
     NULL, CFG, false},
    {"a durable sub-document mutation waits for the disk and survives a forced stop (v4)",
     test_durable_subdoc, setup_wait_ready, NULL, CFG, false},
    {"extended attributes survive eviction, compaction and restart (v4)",
     test_xattrs_on_disk, setup_wait_ready, NULL, CFG, false},
    {"evicted values in the page cache are read in the call", test_fetch_from_page_cache,
     setup_wait_ready, NULL, CFG, false},
    {"more files than are kept open", test_fetch_many_files, setup_wait_ready, NULL,
     CFG ";segment_max_bytes=8192", false},
    {"reads while a compaction installs its base", test_read_while_base_installs,
     setup_wait_ready, NULL, CFG, false},
    {"every kept descriptor in use", test_fetch_with_slots_busy, setup_wait_ready, NULL,
     "dbname=@DATA_DIR@;num_writer_threads=1;num_shards=64;flusher_retry_ms=10;"
     "segment_max_bytes=8192",
     false},
    {"destroy with parked background fetches", test_destroy_with_parked_fetch,
     setup_wait_ready, NULL, CFG, false},
    {"disconnect during a background fetch", test_disconnect_during_fetch,
     setup_wait_ready, NULL, CFG, false},
    {"an uncollected durable outcome never answers another write",
     test_uncollected_outcome_not_reused, setup_wait_ready, NULL, CFG, false},
    {"nothing is stored on a cookie after its disconnect",
     test_nothing_stored_after_disconnect, setup_wait_ready, NULL, CFG, false},
    {"a cookie that outlives its engine", test_cookie_outlives_engine, setup_wait_ready,
     NULL, CFG, false},
    {"hundreds of durable clients leave before their batch",
     test_departed_durable_clients, setup_wait_ready, NULL, CFG, false},
    {"a write the flusher's queue cannot take is refused whole",
     test_queue_full_refuses_write, setup_wait_ready, NULL, CFG, false},
    {"a background fetch does not wait for a batch's fsync", test_fetch_not_behind_fsync,
     setup_wait_ready, NULL, CFG, false},
    {"fault: creating the data directory", test_fault_mkdir, NULL, NULL, CFG, true},
    {"a start removes the bases the newest supersedes", test_old_bases_removed,
     setup_wait_ready, NULL, CFG ";num_shards=1", false},
    {NULL, NULL, NULL, NULL, NULL, false},
};

__attribute__((visibility("default"))) const engine_test *get_tests(void)
{
    return tests;
}
