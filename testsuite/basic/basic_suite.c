/*
 * basic_suite.c - the engine-agnostic KV suite: what any engine of this ABI must
 * do with the default collection and vbucket 0. It assumes nothing about an
 * engine's configuration keys or internal stats.
 */
#include "../engine_testapp/engine_testapp.h"
#include "../engine_testapp/suite_helpers.h"

#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADD     ENGINE_STORE_ADD
#define SET     ENGINE_STORE_SET
#define REPLACE ENGINE_STORE_REPLACE
#define APPEND  ENGINE_STORE_APPEND
#define PREPEND ENGINE_STORE_PREPEND
#define CASOP   ENGINE_STORE_CAS

static test_result test_get_missing(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK_RC(kv_get(h, c, "nope", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_set_get(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[64];
    CHECK_RC(kv_store(h, c, "k", "v1", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "v1") == 0);
    CHECK_RC(kv_store(h, c, "k", "v2", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "v2") == 0);
    return TEST_PASS;
}

static test_result test_add(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[64];
    CHECK_RC(kv_store(h, c, "k", "first", ADD, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "second", ADD, 0, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "first") == 0);
    CHECK_RC(kv_store(h, c, "k2", "x", ADD, 1234, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_get(h, c, "k2", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_replace(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[64];
    CHECK_RC(kv_store(h, c, "k", "x", REPLACE, 0, NULL), ENGINE_NOT_STORED);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store(h, c, "k", "a", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "b", REPLACE, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "b") == 0);
    return TEST_PASS;
}

static test_result test_append_prepend(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[64];
    CHECK_RC(kv_store(h, c, "k", "x", APPEND, 0, NULL), ENGINE_NOT_STORED);
    CHECK_RC(kv_store(h, c, "k", "x", PREPEND, 0, NULL), ENGINE_NOT_STORED);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", "mid", 3, 0xabcd, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "-end", APPEND, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "start-", PREPEND, 0, NULL), ENGINE_SUCCESS);
    engine_item_info info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "k", buf, sizeof(buf), &info), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "start-mid-end") == 0);
    CHECK(info.flags == 0xabcd); /* the present item's flags are kept */
    return TEST_PASS;
}

static test_result test_cas(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas1 = 0, cas2 = 0, cas3 = 0;
    char buf[64];
    CHECK_RC(kv_store(h, c, "k", "a", SET, 0, &cas1), ENGINE_SUCCESS);
    CHECK(cas1 != 0);
    CHECK_RC(kv_store(h, c, "k", "b", CASOP, cas1 + 1000, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "a") == 0);
    CHECK_RC(kv_store(h, c, "k", "b", CASOP, cas1, &cas2), ENGINE_SUCCESS);
    CHECK(cas2 != 0 && cas2 != cas1);
    CHECK_RC(kv_store(h, c, "k", "c", CASOP, cas1, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_store(h, c, "k", "c", SET, cas2, &cas3), ENGINE_SUCCESS);
    CHECK(cas3 != cas2);
    CHECK_RC(kv_store(h, c, "k", "d", REPLACE, cas2, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_store(h, c, "k", "+", APPEND, cas2, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_store(h, c, "k", "+", APPEND, cas3, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "c+") == 0);
    CHECK_RC(kv_store(h, c, "missing", "x", CASOP, 77, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store(h, c, "k", "x", CASOP, 0, NULL), ENGINE_INVALID_ARGUMENTS);
    return TEST_PASS;
}

static test_result test_cas_in_item_info(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas = 0;
    engine_item_info info;
    CHECK_RC(kv_store(h, c, "k", "a", SET, 0, &cas), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 0, "k", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.cas == cas);
    return TEST_PASS;
}

static test_result test_remove(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas = 0;
    CHECK_RC(kv_remove(h, c, "k", 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store(h, c, "k", "a", SET, 0, &cas), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "k", cas + 1), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "k", cas), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_remove(h, c, "k", 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store(h, c, "k", "b", ADD, 0, NULL), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_expiry_relative(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", "v", 1, 0, 10, SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_SUCCESS);
    th->time_travel(5);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_SUCCESS);
    th->time_travel(6);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    /* An expired key is absent for every operation. */
    CHECK_RC(kv_store(h, c, "k", "x", REPLACE, 0, NULL), ENGINE_NOT_STORED);
    CHECK_RC(kv_store(h, c, "k", "new", ADD, 0, NULL), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_expiry_absolute(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint32_t soon = (uint32_t)time(NULL) + 100;
    engine_item_info info;
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", "v", 1, 0, soon, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 0, "k", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime >= (time_t)soon - 2 && info.exptime <= (time_t)soon + 2);
    th->time_travel(101);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    /* An absolute time in the past is already expired. */
    CHECK_RC(kv_store_full(h, c, 0, 0, "old", "v", 1, 0, 3000000, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "old", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_flush(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_store(h, c, key, "v", SET, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK_RC(h->flush(h, c), ENGINE_SUCCESS);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(kv_get(h, c, key, NULL, 0), ENGINE_NO_SUCH_KEY);
    }
    CHECK_RC(kv_store(h, c, "k1", "again", ADD, 0, NULL), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_item_info(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "info-key");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 5, 0xdeadbeef, 0, 0x01, 0), ENGINE_SUCCESS);
    engine_item_info info;
    CHECK_RC(h->get_item_info(h, it, &info), ENGINE_SUCCESS);
    CHECK(info.value.iov_len == 5);
    memcpy(info.value.iov_base, "{\"a\"}", 5);
    CHECK(info.cas == 0);
    CHECK_RC(h->store(h, c, it, NULL, SET), ENGINE_SUCCESS);
    h->release(h, it);
    it = NULL;
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_SUCCESS);
    CHECK_RC(h->get_item_info(h, it, &info), ENGINE_SUCCESS);
    CHECK(info.flags == 0xdeadbeef);
    CHECK(info.datatype == 0x01);
    CHECK(info.vbucket == 0);
    CHECK(info.exptime == 0);
    CHECK(info.cas != 0);
    CHECK(info.key.collection == 0 && info.key.len == 8);
    CHECK(memcmp(info.key.bytes, "info-key", 8) == 0);
    CHECK(info.value.iov_len == 5 && memcmp(info.value.iov_base, "{\"a\"}", 5) == 0);
    h->release(h, it);
    CHECK_RC(h->get_item_info(h, NULL, &info), ENGINE_INVALID_ARGUMENTS);
    return TEST_PASS;
}

static test_result test_empty_value(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[8] = "junk";
    engine_item_info info;
    CHECK_RC(kv_store(h, c, "empty", "", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 0, "empty", buf, sizeof(buf), &info), ENGINE_SUCCESS);
    CHECK(info.value.iov_len == 0 && buf[0] == '\0');
    CHECK_RC(kv_store(h, c, "empty", "x", APPEND, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "empty", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "x") == 0);
    return TEST_PASS;
}

static test_result test_large_value(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    const size_t n = 1u << 20;
    char *v = malloc(n);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(i * 31 + 7);
    engine_errc rc = kv_store_full(h, c, 0, 0, "big", v, n, 0, 0, SET, 0, NULL);
    if (rc != ENGINE_SUCCESS) {
        free(v);
        CHECK_RC(rc, ENGINE_SUCCESS);
    }
    engine_doc_key k = doc_key(0, "big");
    engine_item *it = NULL;
    engine_item_info info;
    rc = h->get(h, c, &it, &k, 0);
    bool same = rc == ENGINE_SUCCESS &&
                h->get_item_info(h, it, &info) == ENGINE_SUCCESS &&
                info.value.iov_len == n && memcmp(info.value.iov_base, v, n) == 0;
    h->release(h, it);
    free(v);
    CHECK(same);
    return TEST_PASS;
}

static test_result test_too_big_value(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "huge");
    engine_item *it = NULL;
    engine_errc rc = h->allocate(h, c, &it, &k, (size_t)1 << 40, 0, 0, 0, 0);
    CHECK(rc == ENGINE_TOO_BIG || rc == ENGINE_NO_MEMORY);
    CHECK(it == NULL);
    return TEST_PASS;
}

static test_result test_key_limits(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[ENGINE_KEY_MAX_LEN + 2];
    memset(key, 'k', sizeof(key) - 1);
    key[ENGINE_KEY_MAX_LEN] = '\0';
    CHECK_RC(kv_store(h, c, key, "max", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, key, NULL, 0), ENGINE_SUCCESS);
    key[ENGINE_KEY_MAX_LEN] = 'k';
    key[ENGINE_KEY_MAX_LEN + 1] = '\0';
    CHECK_RC(kv_store(h, c, key, "over", SET, 0, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_get(h, c, key, NULL, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_remove(h, c, key, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_store(h, c, "", "empty", SET, 0, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_get(h, c, "", NULL, 0), ENGINE_INVALID_ARGUMENTS);
    /* Binary keys: every byte value, including NUL, is a key byte. */
    char bin[4] = {'\0', '\xff', '.', '\n'};
    engine_doc_key bk = {0, 4, bin};
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &bk, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    CHECK_RC(h->store(h, c, it, NULL, SET), ENGINE_SUCCESS);
    h->release(h, it);
    it = NULL;
    CHECK_RC(h->get(h, c, &it, &bk, 0), ENGINE_SUCCESS);
    h->release(h, it);
    return TEST_PASS;
}

static test_result test_null_arguments(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_doc_key nullbytes = {0, 3, NULL};
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, NULL, &k, 1, 0, 0, 0, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->allocate(h, c, &it, NULL, 1, 0, 0, 0, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->allocate(h, c, &it, &nullbytes, 1, 0, 0, 0, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get(h, c, NULL, &k, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get(h, c, &it, NULL, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->store(h, c, NULL, NULL, SET), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->remove(h, c, NULL, 0, 0, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_info(h, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_stats(h, c, NULL, NULL, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_collection_manifest(h, c, NULL, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_collection_id(h, c, ".", 1, NULL, NULL), ENGINE_INVALID_ARGUMENTS);
    h->release(h, NULL);
    return TEST_PASS;
}

static test_result test_bad_store_op(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK_RC(kv_store(h, c, "k", "v", (engine_store_op)0, 0, NULL),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_store(h, c, "k", "v", (engine_store_op)99, 0, NULL),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

static test_result test_store_twice(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_errc first = h->store(h, c, it, NULL, SET);
    engine_errc second = h->store(h, c, it, NULL, SET);
    h->release(h, it);
    CHECK_RC(first, ENGINE_SUCCESS);
    CHECK_RC(second, ENGINE_INVALID_ARGUMENTS);
    return TEST_PASS;
}

static test_result test_failed_store_retry(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    engine_errc first = h->store(h, c, it, NULL, REPLACE); /* missing: not stored */
    engine_errc second = h->store(h, c, it, NULL, ADD);    /* the item is still usable */
    h->release(h, it);
    CHECK_RC(first, ENGINE_NOT_STORED);
    CHECK_RC(second, ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_held_item_survives(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *old = NULL;
    CHECK_RC(kv_store(h, c, "k", "old", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(h->get(h, c, &old, &k, 0), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "new", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "k", 0), ENGINE_SUCCESS);
    CHECK_RC(h->flush(h, c), ENGINE_SUCCESS);
    engine_item_info info;
    CHECK_RC(h->get_item_info(h, old, &info), ENGINE_SUCCESS);
    bool same = info.value.iov_len == 3 && memcmp(info.value.iov_base, "old", 3) == 0;
    h->release(h, old);
    CHECK(same);
    return TEST_PASS;
}

static test_result test_unknown_collection(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0x99, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_UNKNOWN_COLLECTION);
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_UNKNOWN_COLLECTION);
    CHECK_RC(h->remove(h, c, &k, 0, 0, NULL), ENGINE_UNKNOWN_COLLECTION);
    CHECK(th->error_manifest_uid(c) != UINT64_MAX);
    return TEST_PASS;
}

static test_result test_collection_paths(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t uid = 99;
    uint32_t id = 99;
    CHECK_RC(h->get_collection_id(h, c, ".", 1, &uid, &id), ENGINE_SUCCESS);
    CHECK(id == 0);
    CHECK_RC(h->get_collection_id(h, c, "_default._default", 17, &uid, &id),
             ENGINE_SUCCESS);
    CHECK(id == 0);
    CHECK_RC(h->get_collection_id(h, c, "_default", 8, &uid, &id),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_collection_id(h, c, "a.b.c", 5, &uid, &id), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_collection_id(h, c, "no_such_scope.c", 15, &uid, &id),
             ENGINE_UNKNOWN_SCOPE);
    CHECK_RC(h->get_collection_id(h, c, "_default.no_such", 16, &uid, &id),
             ENGINE_UNKNOWN_COLLECTION);
    CHECK(th->error_manifest_uid(c) == uid);
    CHECK_RC(h->get_collection_id(h, c, "bad name.c", 10, &uid, &id),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_scope_id(h, c, "", 0, &uid, &id), ENGINE_SUCCESS);
    CHECK(id == 0);
    CHECK_RC(h->get_scope_id(h, c, "_default.ignored", 16, &uid, &id), ENGINE_SUCCESS);
    CHECK(id == 0);
    CHECK_RC(h->get_scope_id(h, c, "a.b.c", 5, &uid, &id), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_scope_id(h, c, "nope", 4, &uid, &id), ENGINE_UNKNOWN_SCOPE);
    return TEST_PASS;
}

static void append_out(const void *data, size_t len, void *ctx)
{
    char *buf = ctx;
    size_t n = len < 4095 ? len : 4095;
    memcpy(buf, data, n);
    buf[n] = '\0';
}

static test_result test_get_manifest(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[4096] = "";
    CHECK_RC(h->get_collection_manifest(h, c, append_out, buf), ENGINE_SUCCESS);
    CHECK(strstr(buf, "\"_default\"") != NULL);
    CHECK(strstr(buf, "\"uid\"") != NULL);
    return TEST_PASS;
}

static void ignore_stat(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                        void *ctx)
{
    (void)key, (void)klen, (void)val, (void)vlen, (void)ctx;
}

static test_result test_stats(engine_handle *h, const test_harness *th)
{
    (void)th;
    CHECK(stat_count(h, NULL) > 0);
    CHECK(stat_count(h, "") > 0);
    CHECK_RC(h->get_stats(h, NULL, "no-such-group-xyz", ignore_stat, NULL),
             ENGINE_NO_SUCH_KEY);
    h->reset_stats(h, NULL);
    CHECK(stat_count(h, NULL) > 0);
    return TEST_PASS;
}

/* ---- concurrency ---- */

#define THREADS     4
#define THREAD_OPS  20000
#define THREAD_KEYS 500

typedef struct worker {
    engine_handle *h;
    int id;
    int errors;
} worker;

static void *kv_worker(void *arg)
{
    worker *w = arg;
    char key[32], val[32], buf[64];
    for (int i = 0; i < THREAD_OPS; i++) {
        int n = (i * 7 + w->id * 13) % THREAD_KEYS;
        snprintf(key, sizeof(key), "shared-%d", n);
        if (i % 3 == 0) {
            snprintf(val, sizeof(val), "v-%d", n);
            if (kv_store(w->h, NULL, key, val, ENGINE_STORE_SET, 0, NULL) !=
                ENGINE_SUCCESS)
                w->errors++;
        } else {
            engine_errc rc = kv_get(w->h, NULL, key, buf, sizeof(buf));
            snprintf(val, sizeof(val), "v-%d", n);
            if (rc == ENGINE_SUCCESS ? strcmp(buf, val) != 0 : rc != ENGINE_NO_SUCH_KEY)
                w->errors++;
        }
        /* And a private key per thread, checked exactly. */
        snprintf(key, sizeof(key), "own-%d-%d", w->id, i % 50);
        snprintf(val, sizeof(val), "%d", i);
        if (kv_store(w->h, NULL, key, val, ENGINE_STORE_SET, 0, NULL) != ENGINE_SUCCESS ||
            kv_get(w->h, NULL, key, buf, sizeof(buf)) != ENGINE_SUCCESS ||
            strcmp(buf, val))
            w->errors++;
    }
    return NULL;
}

static test_result test_concurrent(engine_handle *h, const test_harness *th)
{
    (void)th;
    pthread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){h, i, 0};
        CHECK(pthread_create(&t[i], NULL, kv_worker, &w[i]) == 0);
    }
    int errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        errors += w[i].errors;
    }
    if (errors != 0)
        fprintf(stderr, "%d wrong results\n", errors);
    CHECK(errors == 0);
    return TEST_PASS;
}

static void *incr(void *arg);

static test_result test_concurrent_counter(engine_handle *h, const test_harness *th)
{
    /* CAS loops from several threads: no increment may be lost. */
    (void)th;
    CHECK_RC(kv_store(h, NULL, "ctr", "0", SET, 0, NULL), ENGINE_SUCCESS);
    pthread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){h, i, 0};
        CHECK(pthread_create(&t[i], NULL, incr, &w[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char buf[32];
    CHECK_RC(kv_get(h, NULL, "ctr", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(atoi(buf) == THREADS * 1000);
    return TEST_PASS;
}

static void *incr(void *arg)
{
    worker *w = arg;
    engine_handle *h = w->h;
    for (int done = 0; done < 1000;) {
        engine_item_info info;
        char buf[32];
        if (kv_get_full(h, NULL, 0, 0, "ctr", buf, sizeof(buf), &info) != ENGINE_SUCCESS)
            continue;
        char next[32];
        snprintf(next, sizeof(next), "%d", atoi(buf) + 1);
        if (kv_store(h, NULL, "ctr", next, ENGINE_STORE_CAS, info.cas, NULL) ==
            ENGINE_SUCCESS)
            done++;
    }
    return NULL;
}

/* Item locks (ABI v3): skipped for an engine of an older interface. */
static test_result test_locks(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_3)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    uint64_t cas = 0, lock_cas = 0, other = 0, after = 0;
    engine_doc_key k = doc_key(0, "locked"), missing = doc_key(0, "nothing");
    engine_item *it = NULL;
    engine_item_info info;
    CHECK_RC(kv_store(h, c, "locked", "v1", SET, 0, &cas), ENGINE_SUCCESS);
    CHECK_RC(h->get_locked(h, c, &it, &missing, 0, 10, &lock_cas), ENGINE_NO_SUCH_KEY);
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 10, &lock_cas), ENGINE_SUCCESS);
    CHECK(lock_cas != 0 && lock_cas != cas);
    h->release(h, it);
    /* Locked: writes without the lock's CAS, and other locks, are refused. */
    CHECK_RC(kv_store(h, c, "locked", "v2", SET, 0, NULL), ENGINE_LOCKED);
    CHECK_RC(kv_store(h, c, "locked", "v2", CASOP, cas, NULL), ENGINE_LOCKED);
    CHECK_RC(kv_store(h, c, "locked", "+", APPEND, 0, NULL), ENGINE_LOCKED);
    CHECK_RC(kv_remove(h, c, "locked", 0), ENGINE_LOCKED);
    CHECK_RC(kv_remove(h, c, "locked", cas), ENGINE_LOCKED); /* the real CAS too */
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 10, &other), ENGINE_LOCKED);
    /* A get still reads it, its CAS hidden. */
    char buf[16];
    CHECK_RC(kv_get_full(h, c, 0, 0, "locked", buf, sizeof(buf), &info), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "v1") == 0 && info.cas == UINT64_MAX);
    /* Unlock: another CAS is refused; the lock's ends it; then it is not locked. */
    CHECK_RC(h->unlock(h, c, &k, 0, lock_cas + 1), ENGINE_LOCKED);
    CHECK_RC(h->unlock(h, c, &k, 0, lock_cas), ENGINE_SUCCESS);
    CHECK_RC(h->unlock(h, c, &k, 0, lock_cas), ENGINE_NOT_LOCKED);
    CHECK_RC(h->unlock(h, c, &missing, 0, lock_cas), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get_full(h, c, 0, 0, "locked", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.cas == cas);
    /* A write with the lock's CAS is taken and ends the lock. */
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 10, &lock_cas), ENGINE_SUCCESS);
    h->release(h, it);
    CHECK_RC(kv_store(h, c, "locked", "v3", CASOP, lock_cas, &after), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "locked", "v4", SET, 0, NULL), ENGINE_SUCCESS);
    /* So is a remove with it. */
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 10, &lock_cas), ENGINE_SUCCESS);
    h->release(h, it);
    CHECK_RC(kv_remove(h, c, "locked", lock_cas), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "locked", NULL, 0), ENGINE_NO_SUCH_KEY);
    /* A lock ends at its time (the longest the engine gives, at the most). */
    CHECK_RC(kv_store(h, c, "locked", "v5", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 3600, &lock_cas), ENGINE_SUCCESS);
    h->release(h, it);
    CHECK_RC(kv_store(h, c, "locked", "v6", SET, 0, NULL), ENGINE_LOCKED);
    th->time_travel(31);
    CHECK_RC(kv_store(h, c, "locked", "v6", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(h->unlock(h, c, &k, 0, lock_cas), ENGINE_NOT_LOCKED);
    return TEST_PASS;
}

/* ---- sub-document (ABI v4): skipped for an engine of an older interface ---- */

typedef struct sd_results {
    int n;
    engine_errc st[ENGINE_SUBDOC_MAX_SPECS];
    char val[ENGINE_SUBDOC_MAX_SPECS][128];
} sd_results;

static void sd_collect(size_t index, engine_errc status, const void *value, size_t len,
                       void *ctx)
{
    sd_results *r = ctx;
    if (index < ENGINE_SUBDOC_MAX_SPECS) {
        r->st[index] = status;
        snprintf(r->val[index], sizeof(r->val[index]), "%.*s", (int)len,
                 value ? (const char *)value : "");
        r->n++;
    }
}

static engine_subdoc_spec spec(uint8_t op, uint8_t flags, const char *path,
                               const char *value)
{
    return (engine_subdoc_spec){
        op,   flags, (uint16_t)strlen(path), value ? (uint32_t)strlen(value) : 0,
        path, value};
}

static engine_errc sd_lookup(engine_handle *h, const void *c, const char *key,
                             const engine_subdoc_spec *specs, size_t n, sd_results *r)
{
    *r = (sd_results){0};
    engine_doc_key k = doc_key(0, key);
    uint64_t cas;
    return h->subdoc_lookup(h, c, &k, 0, specs, n, 0, sd_collect, r, &cas);
}

static engine_errc sd_mutate(engine_handle *h, const void *c, const char *key,
                             const engine_subdoc_spec *specs, size_t n, uint8_t doc_flags,
                             uint64_t cas, sd_results *r, size_t *failed)
{
    *r = (sd_results){0};
    engine_doc_key k = doc_key(0, key);
    uint64_t cas_out;
    return h->subdoc_mutate(h, c, &k, 0, specs, n, doc_flags, cas, 0,
                            ENGINE_DURABILITY_NONE, sd_collect, r, &cas_out, failed);
}

static test_result test_subdoc_lookups(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    CHECK_RC(
        kv_store(h, c, "doc", "{\"a\":{\"b\":[1,2]},\"n\":1}", ENGINE_STORE_SET, 0, NULL),
        ENGINE_SUCCESS);
    engine_subdoc_spec specs[] = {
        spec(ENGINE_SUBDOC_GET, 0, "a.b[1]", NULL),
        spec(ENGINE_SUBDOC_EXISTS, 0, "n", NULL),
        spec(ENGINE_SUBDOC_GET_COUNT, 0, "a.b", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "a.b[-1]", NULL),
        spec(ENGINE_SUBDOC_GET_DOC, 0, "", NULL),
    };
    sd_results r;
    CHECK_RC(sd_lookup(h, c, "doc", specs, 5, &r), ENGINE_SUCCESS);
    CHECK(r.n == 5 && strcmp(r.val[0], "2") == 0 && r.st[1] == ENGINE_SUCCESS &&
          strcmp(r.val[2], "2") == 0 && strcmp(r.val[3], "2") == 0 &&
          strcmp(r.val[4], "{\"a\":{\"b\":[1,2]},\"n\":1}") == 0);
    /* Each failing spec has its status; the others still answer. */
    engine_subdoc_spec mixed[] = {
        spec(ENGINE_SUBDOC_GET, ENGINE_SUBDOC_PATH_XATTR, "_x", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "x", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "n.x", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "a..b", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "n", NULL),
    };
    CHECK_RC(sd_lookup(h, c, "doc", mixed, 5, &r), ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(r.st[0] == ENGINE_SUBDOC_PATH_ENOENT && r.st[1] == ENGINE_SUBDOC_PATH_ENOENT &&
          r.st[2] == ENGINE_SUBDOC_PATH_MISMATCH &&
          r.st[3] == ENGINE_SUBDOC_PATH_EINVAL && r.st[4] == ENGINE_SUCCESS &&
          strcmp(r.val[4], "1") == 0);
    /* Attribute specs come first; a whole-document op takes no path. */
    engine_subdoc_spec late[] = {mixed[1], mixed[0]};
    CHECK_RC(sd_lookup(h, c, "doc", late, 2, &r), ENGINE_SUBDOC_INVALID_XATTR_ORDER);
    engine_subdoc_spec doc_path = spec(ENGINE_SUBDOC_GET_DOC, 0, "a", NULL);
    CHECK_RC(sd_lookup(h, c, "doc", &doc_path, 1, &r), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(sd_lookup(h, c, "missing", specs, 1, &r), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store(h, c, "text", "not json", ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(sd_lookup(h, c, "text", specs, 1, &r), ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(r.st[0] == ENGINE_SUBDOC_DOC_NOT_JSON);
    engine_subdoc_spec mut = spec(ENGINE_SUBDOC_DICT_UPSERT, 0, "x", "1");
    CHECK_RC(sd_lookup(h, c, "doc", &mut, 1, &r), ENGINE_SUBDOC_INVALID_COMBO);
    engine_subdoc_spec many[ENGINE_SUBDOC_MAX_SPECS + 1];
    for (int i = 0; i <= ENGINE_SUBDOC_MAX_SPECS; i++)
        many[i] = specs[0];
    CHECK_RC(sd_lookup(h, c, "doc", many, ENGINE_SUBDOC_MAX_SPECS + 1, &r),
             ENGINE_SUBDOC_INVALID_COMBO);
    CHECK_RC(sd_lookup(h, c, "doc", many, ENGINE_SUBDOC_MAX_SPECS, &r), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_subdoc_mutations(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    uint64_t cas = 0;
    CHECK_RC(kv_store(h, c, "doc", "{\"n\":1,\"l\":[1]}", ENGINE_STORE_SET, 0, &cas),
             ENGINE_SUCCESS);
    engine_subdoc_spec specs[] = {
        spec(ENGINE_SUBDOC_DICT_UPSERT, ENGINE_SUBDOC_PATH_MKDIR_P, "p.q", "\"v\""),
        spec(ENGINE_SUBDOC_COUNTER, 0, "n", "41"),
        spec(ENGINE_SUBDOC_ARRAY_PUSH_LAST, 0, "l", "2,3"),
        spec(ENGINE_SUBDOC_DELETE, 0, "l[0]", NULL),
    };
    sd_results r;
    size_t failed = 99;
    CHECK_RC(sd_mutate(h, c, "doc", specs, 4, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK(r.n == 1 && r.st[1] == ENGINE_SUCCESS && strcmp(r.val[1], "42") == 0);
    char buf[256];
    CHECK_RC(kv_get(h, c, "doc", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"n\":42,\"l\":[2,3],\"p\":{\"q\":\"v\"}}") == 0);
    /* All or nothing: the third spec fails, nothing changes. */
    engine_subdoc_spec bad[] = {
        spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1"),
        spec(ENGINE_SUBDOC_DICT_UPSERT, 0, "z", "1"),
        spec(ENGINE_SUBDOC_DICT_ADD, 0, "n", "1"),
    };
    CHECK_RC(sd_mutate(h, c, "doc", bad, 3, 0, 0, &r, &failed),
             ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(failed == 2 && r.n == 1 && r.st[2] == ENGINE_SUBDOC_PATH_EEXISTS);
    CHECK_RC(kv_get(h, c, "doc", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"n\":42,\"l\":[2,3],\"p\":{\"q\":\"v\"}}") == 0);
    /* CAS: a stale one is refused, the current one passes. */
    engine_subdoc_spec one = spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1");
    CHECK_RC(sd_mutate(h, c, "doc", &one, 1, 0, cas, &r, &failed), ENGINE_KEY_EXISTS);
    engine_item_info info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "doc", buf, sizeof(buf), &info), ENGINE_SUCCESS);
    CHECK_RC(sd_mutate(h, c, "doc", &one, 1, 0, info.cas, &r, &failed), ENGINE_SUCCESS);
    /* The document: missing, made (mkdoc), refused (add on an existing one). */
    CHECK_RC(sd_mutate(h, c, "new", &one, 1, 0, 0, &r, &failed), ENGINE_NO_SUCH_KEY);
    CHECK_RC(sd_mutate(h, c, "new", &one, 1, ENGINE_SUBDOC_DOC_MKDOC, 0, &r, &failed),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "new", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"n\":1}") == 0);
    CHECK_RC(sd_mutate(h, c, "new", &one, 1, ENGINE_SUBDOC_DOC_ADD, 0, &r, &failed),
             ENGINE_KEY_EXISTS);
    engine_subdoc_spec push = spec(ENGINE_SUBDOC_ARRAY_PUSH_FIRST, 0, "", "1");
    CHECK_RC(sd_mutate(h, c, "list", &push, 1, ENGINE_SUBDOC_DOC_ADD, 0, &r, &failed),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "list", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "[1]") == 0);
    CHECK_RC(sd_mutate(h, c, "new", &one, 1,
                       ENGINE_SUBDOC_DOC_ADD | ENGINE_SUBDOC_DOC_MKDOC, 0, &r, &failed),
             ENGINE_SUBDOC_INVALID_COMBO);
    engine_subdoc_spec get = spec(ENGINE_SUBDOC_GET, 0, "n", NULL);
    CHECK_RC(sd_mutate(h, c, "new", &get, 1, 0, 0, &r, &failed),
             ENGINE_SUBDOC_INVALID_COMBO);
    /* A non-JSON document cannot be changed by path. */
    CHECK_RC(kv_store(h, c, "text", "not json", ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(sd_mutate(h, c, "text", &one, 1, 0, 0, &r, &failed),
             ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(failed == 0 && r.st[0] == ENGINE_SUBDOC_DOC_NOT_JSON);
    /* set_doc, then a path on the new body; delete_doc removes it. */
    engine_subdoc_spec whole[] = {
        spec(ENGINE_SUBDOC_SET_DOC, 0, "", "{\"w\":1}"),
        spec(ENGINE_SUBDOC_COUNTER, 0, "w", "1"),
    };
    CHECK_RC(sd_mutate(h, c, "text", whole, 2, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "text", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"w\":2}") == 0);
    engine_subdoc_spec del = spec(ENGINE_SUBDOC_DELETE_DOC, 0, "", NULL);
    CHECK_RC(sd_mutate(h, c, "text", &del, 1, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "text", buf, sizeof(buf)), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

/* A locked document: only the lock's CAS gets a mutation past the lock. */
static test_result test_subdoc_locked(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    CHECK_RC(kv_store(h, c, "doc", "{\"n\":1}", ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    engine_doc_key k = doc_key(0, "doc");
    engine_item *it;
    uint64_t lock_cas = 0;
    CHECK_RC(h->get_locked(h, c, &it, &k, 0, 10, &lock_cas), ENGINE_SUCCESS);
    h->release(h, it);
    engine_subdoc_spec one = spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1");
    sd_results r;
    size_t failed;
    CHECK_RC(sd_mutate(h, c, "doc", &one, 1, 0, 0, &r, &failed), ENGINE_LOCKED);
    CHECK_RC(sd_mutate(h, c, "doc", &one, 1, 0, lock_cas, &r, &failed), ENGINE_SUCCESS);
    char buf[64];
    CHECK_RC(kv_get(h, c, "doc", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"n\":2}") == 0);
    return TEST_PASS;
}

/* Every path operation and the status of each way it can fail, one spec at a
 * time on a fresh document; a failure leaves the document as it was. */
static test_result test_subdoc_each_op(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    static const char *const doc =
        "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\"}";
    char deep_path[1100], deep_value[128];
    memset(deep_path, 'p', 1025);
    deep_path[1025] = '\0';
    /* 33 levels of nesting: one past the limit. */
    int at = 0;
    for (int i = 0; i < 32; i++)
        deep_value[at++] = '[';
    for (int i = 0; i < 32; i++)
        deep_value[at++] = ']';
    deep_value[at] = '\0';
    const struct {
        uint8_t op, flags;
        const char *path, *value;
        engine_errc want;
        const char *after; /* the document after a success (NULL: unchanged) */
        const char *result;
    } cases[] = {
        {ENGINE_SUBDOC_DICT_ADD, 0, "o.j", "2", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1,\"j\":2},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_DICT_ADD, 0, "o.k", "2", ENGINE_SUBDOC_PATH_EEXISTS, NULL, NULL},
        {ENGINE_SUBDOC_DICT_ADD, 0, "q.r", "2", ENGINE_SUBDOC_PATH_ENOENT, NULL, NULL},
        {ENGINE_SUBDOC_DICT_ADD, ENGINE_SUBDOC_PATH_MKDIR_P, "q.r", "2", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\",\"q\":{\"r\":2}}",
         NULL},
        {ENGINE_SUBDOC_DICT_ADD, 0, "a[0]", "2", ENGINE_SUBDOC_PATH_EINVAL, NULL, NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "o.k", "{\"z\":null}", ENGINE_SUCCESS,
         "{\"o\":{\"k\":{\"z\":null}},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "s.x", "1", ENGINE_SUBDOC_PATH_MISMATCH, NULL,
         NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "o.k", "not json", ENGINE_SUBDOC_VALUE_CANTINSERT,
         NULL, NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "o.k", deep_value, ENGINE_SUBDOC_VALUE_ETOODEEP,
         NULL, NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, deep_path, "1", ENGINE_SUBDOC_PATH_E2BIG, NULL,
         NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "o..k", "1", ENGINE_SUBDOC_PATH_EINVAL, NULL,
         NULL},
        {ENGINE_SUBDOC_DICT_UPSERT, 0, "`o.k`", "1", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\",\"o.k\":1}", NULL},
        {ENGINE_SUBDOC_DELETE, 0, "a[-1]", NULL, ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\"],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_DELETE, 0, "a[9]", NULL, ENGINE_SUBDOC_PATH_ENOENT, NULL, NULL},
        {ENGINE_SUBDOC_REPLACE, 0, "a[1]", "true", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,true,[2]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_REPLACE, 0, "zz", "1", ENGINE_SUBDOC_PATH_ENOENT, NULL, NULL},
        {ENGINE_SUBDOC_ARRAY_PUSH_LAST, 0, "a", "3,4", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2],3,4],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_ARRAY_PUSH_FIRST, 0, "a", "0", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[0,1,\"x\",[2]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_ARRAY_PUSH_LAST, 0, "o", "1", ENGINE_SUBDOC_PATH_MISMATCH, NULL,
         NULL},
        {ENGINE_SUBDOC_ARRAY_PUSH_LAST, ENGINE_SUBDOC_PATH_MKDIR_P, "new.list", "1",
         ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2]],\"n\":5,\"s\":\"t\",\"new\":{\"list\":[1]}"
         "}",
         NULL},
        {ENGINE_SUBDOC_ARRAY_INSERT, 0, "a[1]", "9", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,9,\"x\",[2]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_ARRAY_INSERT, 0, "a[7]", "9", ENGINE_SUBDOC_PATH_ENOENT, NULL,
         NULL},
        {ENGINE_SUBDOC_ARRAY_INSERT, 0, "a", "9", ENGINE_SUBDOC_PATH_EINVAL, NULL, NULL},
        {ENGINE_SUBDOC_ARRAY_ADD_UNIQUE, 0, "a[2]", "3", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2,3]],\"n\":5,\"s\":\"t\"}", NULL},
        {ENGINE_SUBDOC_ARRAY_ADD_UNIQUE, 0, "a[2]", "2", ENGINE_SUBDOC_PATH_EEXISTS, NULL,
         NULL},
        {ENGINE_SUBDOC_ARRAY_ADD_UNIQUE, 0, "a[2]", "[5]", ENGINE_SUBDOC_VALUE_CANTINSERT,
         NULL, NULL},
        {ENGINE_SUBDOC_COUNTER, 0, "n", "-7", ENGINE_SUCCESS,
         "{\"o\":{\"k\":1},\"a\":[1,\"x\",[2]],\"n\":-2,\"s\":\"t\"}", "-2"},
        {ENGINE_SUBDOC_COUNTER, 0, "n", "0", ENGINE_SUBDOC_DELTA_EINVAL, NULL, NULL},
        {ENGINE_SUBDOC_COUNTER, 0, "s", "1", ENGINE_SUBDOC_PATH_MISMATCH, NULL, NULL},
        {ENGINE_SUBDOC_COUNTER, 0, "n", "9223372036854775807",
         ENGINE_SUBDOC_VALUE_CANTINSERT, NULL, NULL},
    };
    char want_doc[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_RC(kv_store(h, c, "each", doc, ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
        engine_subdoc_spec one =
            spec(cases[i].op, cases[i].flags, cases[i].path, cases[i].value);
        sd_results r;
        size_t failed = 99;
        engine_errc rc = sd_mutate(h, c, "each", &one, 1, 0, 0, &r, &failed);
        char buf[512];
        CHECK_RC(kv_get(h, c, "each", buf, sizeof(buf)), ENGINE_SUCCESS);
        snprintf(want_doc, sizeof(want_doc), "%s", cases[i].after ? cases[i].after : doc);
        bool ok = cases[i].want == ENGINE_SUCCESS
                      ? rc == ENGINE_SUCCESS && (cases[i].result == NULL ||
                                                 strcmp(r.val[0], cases[i].result) == 0)
                      : rc == ENGINE_SUBDOC_MULTI_PATH_FAILURE && failed == 0 &&
                            r.st[0] == cases[i].want;
        if (!ok || strcmp(buf, want_doc) != 0) {
            fprintf(stderr, "case %zu (op 0x%02x %.40s): rc 0x%x spec 0x%x, doc %s\n", i,
                    cases[i].op, cases[i].path, rc, r.st[0], buf);
            return TEST_FAIL;
        }
    }
    /* A document nested past the limit; a CAS that does not match. */
    char deep_doc[160];
    snprintf(deep_doc, sizeof(deep_doc), "[%s]", deep_value);
    CHECK_RC(kv_store(h, c, "deep", deep_doc, ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    engine_subdoc_spec get = spec(ENGINE_SUBDOC_GET, 0, "[0]", NULL);
    sd_results r;
    CHECK_RC(sd_lookup(h, c, "deep", &get, 1, &r), ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(r.st[0] == ENGINE_SUBDOC_DOC_E2DEEP);
    uint64_t cas;
    CHECK_RC(kv_store(h, c, "each", doc, ENGINE_STORE_SET, 0, &cas), ENGINE_SUCCESS);
    engine_subdoc_spec one = spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1");
    size_t failed;
    CHECK_RC(sd_mutate(h, c, "each", &one, 1, 0, cas + 1, &r, &failed),
             ENGINE_KEY_EXISTS);
    CHECK_RC(sd_mutate(h, c, "each", &one, 1, 0, cas, &r, &failed), ENGINE_SUCCESS);
    return TEST_PASS;
}

/* ---- extended attributes (v4) ---- */

static engine_errc store_x(engine_handle *h, const void *c, const char *key,
                           const char *const *pairs, const char *body, uint8_t datatype,
                           uint64_t *cas)
{
    char buf[512];
    size_t n = xattr_value(buf, sizeof(buf), pairs, body);
    return kv_store_dt(h, c, key, buf, n, datatype, 0, 0, 0, 0, ENGINE_STORE_SET, 0, cas);
}

/* The body of a stored value and whether it carries attributes. */
static bool body_is(engine_handle *h, const void *c, const char *key, const char *want,
                    bool xattrs)
{
    char buf[512];
    engine_item_info info;
    if (kv_get_full(h, c, 0, 0, key, buf, sizeof(buf), &info) != ENGINE_SUCCESS)
        return false;
    size_t skip = info.datatype & ENGINE_DATATYPE_XATTR
                      ? xattr_section_len(buf, info.value.iov_len)
                      : 0;
    bool ok = info.value.iov_len - skip == strlen(want) &&
              memcmp(buf + skip, want, strlen(want)) == 0 &&
              !!(info.datatype & ENGINE_DATATYPE_XATTR) == xattrs;
    if (!ok)
        fprintf(stderr, "%s: body '%s', datatype 0x%02x\n", key, buf + skip,
                info.datatype);
    return ok;
}

static test_result test_xattr_sections(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    const uint8_t JX = ENGINE_DATATYPE_JSON | ENGINE_DATATYPE_XATTR;
    const char *good[] = {"meta", "{\"a\":1}", "_sys", "\"s\"", NULL};
    CHECK_RC(store_x(h, c, "d", good, "{\"b\":1}", JX, NULL), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "d", "{\"b\":1}", true));
    /* Sections that do not hold are refused whole. */
    const char *dup[] = {"k", "1", "k", "2", NULL};
    const char *notjson[] = {"k", "{oops", NULL};
    const char *virt[] = {"$k", "1", NULL};
    const char *longkey[] = {"abcdefghijklmnop", "1", NULL};
    const char *punct[] = {"-k", "1", NULL};
    const char *lone[] = {"_", "1", NULL};
    const char *const *bad[] = {dup, notjson, virt, longkey, punct, lone};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_RC(store_x(h, c, "bad", bad[i], "{}", JX, NULL), ENGINE_INVALID_ARGUMENTS);
    char cut[64];
    size_t n = xattr_value(cut, sizeof(cut), good, "");
    CHECK_RC(
        kv_store_dt(h, c, "bad", cut, n - 1, JX, 0, 0, 0, 0, ENGINE_STORE_SET, 0, NULL),
        ENGINE_INVALID_ARGUMENTS);
    cut[3] = (char)0xff; /* the total past the value */
    CHECK_RC(kv_store_dt(h, c, "bad", cut, n, JX, 0, 0, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(kv_get(h, c, "bad", NULL, 0), ENGINE_NO_SUCH_KEY);
    /* A plain set keeps the attributes; so do append and prepend. */
    CHECK_RC(kv_store(h, c, "d", "{\"b\":2}", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "d", "{\"b\":2}", true));
    CHECK_RC(kv_store(h, c, "d", "x", ENGINE_STORE_APPEND, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "d", "y", ENGINE_STORE_PREPEND, 0, NULL), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "d", "y{\"b\":2}x", true));
    engine_subdoc_spec get =
        spec(ENGINE_SUBDOC_GET, ENGINE_SUBDOC_PATH_XATTR, "meta.a", NULL);
    sd_results r;
    CHECK_RC(sd_lookup(h, c, "d", &get, 1, &r), ENGINE_SUCCESS);
    CHECK(strcmp(r.val[0], "1") == 0);
    /* A value with a section replaces the old one whole; remove drops it. */
    const char *other[] = {"u", "true", NULL};
    CHECK_RC(store_x(h, c, "d", other, "{}", JX, NULL), ENGINE_SUCCESS);
    CHECK_RC(sd_lookup(h, c, "d", &get, 1, &r), ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(r.st[0] == ENGINE_SUBDOC_PATH_ENOENT);
    CHECK_RC(kv_store(h, c, "d", "{}", ENGINE_STORE_APPEND, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "d", 0), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "d", "{}", ENGINE_STORE_SET, 0, NULL), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "d", "{}", false));
    /* An append cannot bring a section of its own. */
    n = xattr_value(cut, sizeof(cut), other, "");
    CHECK_RC(kv_store_dt(h, c, "d", cut, n, JX, 0, 0, 0, 0, ENGINE_STORE_APPEND, 0, NULL),
             ENGINE_INVALID_ARGUMENTS);
    return TEST_PASS;
}

static test_result test_xattr_subdoc(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    const uint8_t JX = ENGINE_DATATYPE_JSON | ENGINE_DATATYPE_XATTR;
    const char *pairs[] = {"meta", "{\"a\":[1,2]}", "_sys", "\"s\"", NULL};
    uint64_t cas = 0;
    CHECK_RC(store_x(h, c, "d", pairs, "{\"b\":1}", JX, &cas), ENGINE_SUCCESS);
    const uint8_t X = ENGINE_SUBDOC_PATH_XATTR;
    engine_subdoc_spec look[] = {
        spec(ENGINE_SUBDOC_GET, X, "meta.a[1]", NULL),
        spec(ENGINE_SUBDOC_GET, X, "_sys", NULL),
        spec(ENGINE_SUBDOC_GET_COUNT, X, "meta.a", NULL),
        spec(ENGINE_SUBDOC_EXISTS, X, "meta", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$document.value_bytes", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$document.datatype", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$document.CAS", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$document.value_crc32c", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$XTOC", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$vbucket.HLC.mode", NULL),
        spec(ENGINE_SUBDOC_GET, X, "$document.deleted", NULL),
        spec(ENGINE_SUBDOC_GET, 0, "b", NULL),
        spec(ENGINE_SUBDOC_GET_DOC, 0, "", NULL),
    };
    sd_results r;
    CHECK_RC(sd_lookup(h, c, "d", look, 13, &r), ENGINE_SUCCESS);
    char want[32];
    snprintf(want, sizeof(want), "\"0x%016" PRIx64 "\"", cas);
    CHECK(strcmp(r.val[0], "2") == 0 && strcmp(r.val[1], "\"s\"") == 0 &&
          strcmp(r.val[2], "2") == 0 && strcmp(r.val[4], "7") == 0 &&
          strcmp(r.val[5], "[\"json\",\"xattr\"]") == 0 && strcmp(r.val[6], want) == 0 &&
          strcmp(r.val[7], "\"0x87c4659e\"") == 0 &&
          strcmp(r.val[8], "[\"meta\",\"_sys\"]") == 0 &&
          strcmp(r.val[9], "\"real\"") == 0 && strcmp(r.val[10], "false") == 0 &&
          strcmp(r.val[11], "1") == 0 && strcmp(r.val[12], "{\"b\":1}") == 0);
    /* Keys that are not attributes', '$' names that do not exist: the
     * call's error, judged before anything runs. */
    const struct {
        const char *path;
        engine_errc want;
    } badkeys[] = {
        {"$nothing", ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR},
        {"-k", ENGINE_XATTR_EINVAL},
        {"abcdefghijklmnop.x", ENGINE_XATTR_EINVAL},
        {"_a`.`b", ENGINE_XATTR_EINVAL},
    };
    for (size_t i = 0; i < sizeof(badkeys) / sizeof(badkeys[0]); i++) {
        engine_subdoc_spec b = spec(ENGINE_SUBDOC_GET, X, badkeys[i].path, NULL);
        CHECK_RC(sd_lookup(h, c, "d", &b, 1, &r), badkeys[i].want);
        CHECK(r.n == 0);
    }
    engine_subdoc_spec perspec[] = {
        spec(ENGINE_SUBDOC_GET, X, "", NULL),
        spec(ENGINE_SUBDOC_GET, X, "nokey", NULL),
    };
    CHECK_RC(sd_lookup(h, c, "d", perspec, 2, &r), ENGINE_SUBDOC_MULTI_PATH_FAILURE);
    CHECK(r.st[0] == ENGINE_SUBDOC_PATH_EINVAL && r.st[1] == ENGINE_SUBDOC_PATH_ENOENT);
    /* Mutations of attributes leave the body alone, and the other way round;
     * macros are filled with the stored CAS and the body's CRC-32C. */
    engine_subdoc_spec mut[] = {
        spec(ENGINE_SUBDOC_DICT_UPSERT, X | ENGINE_SUBDOC_PATH_MKDIR_P, "new.deep.k",
             "\"v\""),
        spec(ENGINE_SUBDOC_COUNTER, X, "meta.a[0]", "4"),
        spec(ENGINE_SUBDOC_DICT_UPSERT, X | ENGINE_SUBDOC_PATH_EXPAND_MACROS, "_sys",
             "\"${Mutation.CAS}\""),
        spec(ENGINE_SUBDOC_DICT_UPSERT, X | ENGINE_SUBDOC_PATH_EXPAND_MACROS, "meta.crc",
             "\"${Mutation.value_crc32c}\""),
        spec(ENGINE_SUBDOC_COUNTER, 0, "b", "1"),
    };
    size_t failed = 99;
    uint64_t new_cas = 0;
    engine_doc_key k = doc_key(0, "d");
    r = (sd_results){0};
    CHECK_RC(h->subdoc_mutate(h, c, &k, 0, mut, 5, 0, 0, 0, ENGINE_DURABILITY_NONE,
                              sd_collect, &r, &new_cas, &failed),
             ENGINE_SUCCESS);
    CHECK(strcmp(r.val[1], "5") == 0 && strcmp(r.val[4], "2") == 0);
    engine_subdoc_spec after[] = {
        spec(ENGINE_SUBDOC_GET, X, "new", NULL),
        spec(ENGINE_SUBDOC_GET, X, "meta", NULL),
        spec(ENGINE_SUBDOC_GET, X, "_sys", NULL),
        spec(ENGINE_SUBDOC_GET_DOC, 0, "", NULL),
    };
    CHECK_RC(sd_lookup(h, c, "d", after, 4, &r), ENGINE_SUCCESS);
    snprintf(want, sizeof(want), "\"0x%016" PRIx64 "\"", __builtin_bswap64(new_cas));
    CHECK(strcmp(r.val[0], "{\"deep\":{\"k\":\"v\"}}") == 0 &&
          strcmp(r.val[1], "{\"a\":[5,2],\"crc\":\"0xb323cd07\"}") == 0 &&
          strcmp(r.val[2], want) == 0 && strcmp(r.val[3], "{\"b\":2}") == 0);
    /* Macro, virtual-attribute and order errors change nothing. */
    engine_subdoc_spec seqno =
        spec(ENGINE_SUBDOC_DICT_UPSERT, X | ENGINE_SUBDOC_PATH_EXPAND_MACROS, "m",
             "\"${Mutation.seqno}\"");
    engine_subdoc_spec vmut = spec(ENGINE_SUBDOC_DICT_UPSERT, X, "$document.x", "1");
    engine_subdoc_spec nox =
        spec(ENGINE_SUBDOC_DICT_UPSERT, ENGINE_SUBDOC_PATH_EXPAND_MACROS, "m",
             "\"${Mutation.CAS}\"");
    engine_subdoc_spec two[] = {spec(ENGINE_SUBDOC_DICT_UPSERT, X, "ok", "1"), seqno};
    CHECK_RC(sd_mutate(h, c, "d", two, 2, 0, 0, &r, &failed),
             ENGINE_SUBDOC_XATTR_UNKNOWN_MACRO);
    CHECK_RC(sd_mutate(h, c, "d", &vmut, 1, 0, 0, &r, &failed),
             ENGINE_SUBDOC_XATTR_CANT_MODIFY_VATTR);
    CHECK_RC(sd_mutate(h, c, "d", &nox, 1, 0, 0, &r, &failed),
             ENGINE_SUBDOC_XATTR_INVALID_FLAG_COMBO);
    engine_subdoc_spec late[] = {spec(ENGINE_SUBDOC_COUNTER, 0, "b", "1"),
                                 spec(ENGINE_SUBDOC_DICT_UPSERT, X, "ok", "1")};
    CHECK_RC(sd_mutate(h, c, "d", late, 2, 0, 0, &r, &failed),
             ENGINE_SUBDOC_INVALID_XATTR_ORDER);
    engine_item_info info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "d", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.cas == new_cas);
    /* Deleting every attribute leaves a plain document. */
    engine_subdoc_spec drop[] = {spec(ENGINE_SUBDOC_DELETE, X, "new", NULL),
                                 spec(ENGINE_SUBDOC_DELETE, X, "meta", NULL),
                                 spec(ENGINE_SUBDOC_DELETE, X, "_sys", NULL)};
    CHECK_RC(sd_mutate(h, c, "d", drop, 3, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "d", "{\"b\":2}", false));
    /* Attributes on a body that is not JSON; a new document with only an
     * attribute gets {}. */
    CHECK_RC(kv_store(h, c, "bin", "\x01\x02", ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    engine_subdoc_spec tag = spec(ENGINE_SUBDOC_DICT_UPSERT, X, "tag", "[1]");
    CHECK_RC(sd_mutate(h, c, "bin", &tag, 1, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK(body_is(h, c, "bin", "\x01\x02", true));
    CHECK_RC(sd_mutate(h, c, "fresh", &tag, 1, ENGINE_SUBDOC_DOC_MKDOC, 0, &r, &failed),
             ENGINE_SUCCESS);
    CHECK(body_is(h, c, "fresh", "{}", true));
    /* Deleted documents are not kept: revive finds a live one or none;
     * create-as-deleted is not offered. */
    const uint8_t AD = ENGINE_SUBDOC_DOC_ACCESS_DELETED;
    CHECK_RC(
        sd_mutate(h, c, "fresh", &tag, 1, AD | ENGINE_SUBDOC_DOC_REVIVE, 0, &r, &failed),
        ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED);
    CHECK_RC(
        sd_mutate(h, c, "gone", &tag, 1, AD | ENGINE_SUBDOC_DOC_REVIVE, 0, &r, &failed),
        ENGINE_NO_SUCH_KEY);
    CHECK_RC(sd_mutate(h, c, "fresh", &tag, 1, ENGINE_SUBDOC_DOC_REVIVE, 0, &r, &failed),
             ENGINE_SUBDOC_INVALID_COMBO);
    CHECK_RC(
        sd_mutate(h, c, "gone", &tag, 1, ENGINE_SUBDOC_DOC_MKDOC | 0x08, 0, &r, &failed),
        ENGINE_NOT_SUPPORTED);
    CHECK_RC(sd_mutate(h, c, "fresh", &tag, 1, AD, 0, &r, &failed), ENGINE_SUCCESS);
    return TEST_PASS;
}

/* The expiry: set by the call (0: none), or kept with keep_expiry. */
static test_result test_subdoc_expiry(engine_handle *h, const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    const void *c = th->create_cookie();
    CHECK_RC(kv_store_full(h, c, 0, 0, "t", "{}", 2, 7, 1000, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    engine_item_info before, info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "t", NULL, 0, &before), ENGINE_SUCCESS);
    CHECK(before.exptime != 0);
    engine_subdoc_spec one = spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1");
    sd_results r;
    size_t failed;
    CHECK_RC(sd_mutate(h, c, "t", &one, 1, ENGINE_SUBDOC_DOC_KEEP_EXPIRY, 0, &r, &failed),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 0, "t", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime == before.exptime && info.flags == 7);
    CHECK_RC(sd_mutate(h, c, "t", &one, 1, 0, 0, &r, &failed), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 0, "t", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime == 0 && info.flags == 7);
    return TEST_PASS;
}

typedef struct sd_counting {
    engine_handle *h;
    const test_harness *th;
    int n;
    int errors;
} sd_counting;

static void *sd_count_thread(void *arg)
{
    sd_counting *a = arg;
    const void *c = a->th->create_cookie();
    engine_subdoc_spec one = spec(ENGINE_SUBDOC_COUNTER, 0, "n", "1");
    sd_results r;
    size_t failed;
    for (int i = 0; i < a->n; i++)
        if (sd_mutate(a->h, c, "counter", &one, 1, ENGINE_SUBDOC_DOC_MKDOC, 0, &r,
                      &failed) != ENGINE_SUCCESS)
            a->errors++;
    return NULL;
}

/* Counters from several threads add up exactly: no update is lost. */
static test_result test_subdoc_concurrent_counter(engine_handle *h,
                                                  const test_harness *th)
{
    if (h->interface < ENGINE_API_VERSION_4)
        return TEST_SKIP;
    sd_counting a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (sd_counting){h, th, 500, 0};
        pthread_create(&t[i], NULL, sd_count_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK(a[i].errors == 0);
    }
    char buf[64];
    CHECK_RC(kv_get(h, th->create_cookie(), "counter", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "{\"n\":2000}") == 0);
    return TEST_PASS;
}

static const engine_test tests[] = {
    {"get missing key", test_get_missing, NULL, NULL, NULL, false},
    {"set then get", test_set_get, NULL, NULL, NULL, false},
    {"add", test_add, NULL, NULL, NULL, false},
    {"replace", test_replace, NULL, NULL, NULL, false},
    {"append and prepend", test_append_prepend, NULL, NULL, NULL, false},
    {"cas semantics", test_cas, NULL, NULL, NULL, false},
    {"cas in item info", test_cas_in_item_info, NULL, NULL, NULL, false},
    {"item locks (v3)", test_locks, NULL, NULL, NULL, false},
    {"remove", test_remove, NULL, NULL, NULL, false},
    {"expiry relative (mock clock)", test_expiry_relative, NULL, NULL, NULL, false},
    {"expiry absolute (mock clock)", test_expiry_absolute, NULL, NULL, NULL, false},
    {"flush", test_flush, NULL, NULL, NULL, false},
    {"item info", test_item_info, NULL, NULL, NULL, false},
    {"empty value", test_empty_value, NULL, NULL, NULL, false},
    {"large value (1 MiB)", test_large_value, NULL, NULL, NULL, false},
    {"value too big", test_too_big_value, NULL, NULL, NULL, false},
    {"key length limits and binary keys", test_key_limits, NULL, NULL, NULL, false},
    {"NULL arguments", test_null_arguments, NULL, NULL, NULL, false},
    {"bad store operation", test_bad_store_op, NULL, NULL, NULL, false},
    {"an item is stored once", test_store_twice, NULL, NULL, NULL, false},
    {"a refused item can be stored again", test_failed_store_retry, NULL, NULL, NULL,
     false},
    {"held item survives overwrite, delete, flush", test_held_item_survives, NULL, NULL,
     NULL, false},
    {"unknown collection", test_unknown_collection, NULL, NULL, NULL, false},
    {"collection and scope paths", test_collection_paths, NULL, NULL, NULL, false},
    {"get collections manifest", test_get_manifest, NULL, NULL, NULL, false},
    {"stats groups", test_stats, NULL, NULL, NULL, false},
    {"concurrent stores and gets", test_concurrent, NULL, NULL, NULL, false},
    {"concurrent CAS increments", test_concurrent_counter, NULL, NULL, NULL, false},
    {"sub-document lookups (v4)", test_subdoc_lookups, NULL, NULL, NULL, false},
    {"sub-document mutations (v4)", test_subdoc_mutations, NULL, NULL, NULL, false},
    {"sub-document mutation of a locked document (v4)", test_subdoc_locked, NULL, NULL,
     NULL, false},
    {"sub-document: every operation and the status of each failure (v4)",
     test_subdoc_each_op, NULL, NULL, NULL, false},
    {"extended attributes beside the body (v4)", test_xattr_sections, NULL, NULL, NULL,
     false},
    {"sub-document on extended attributes, virtual ones and macros (v4)",
     test_xattr_subdoc, NULL, NULL, NULL, false},
    {"sub-document expiry: set or kept (v4)", test_subdoc_expiry, NULL, NULL, NULL,
     false},
    {"sub-document counters from four threads (v4)", test_subdoc_concurrent_counter, NULL,
     NULL, NULL, false},
    {NULL, NULL, NULL, NULL, NULL, false},
};

__attribute__((visibility("default"))) const engine_test *get_tests(void)
{
    return tests;
}
