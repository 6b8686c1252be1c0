/*
 * ep_suite.c - tests that know ep_engine: its configuration keys, memory quota,
 * vbucket limit, expiry pager, hash table growth, stats groups and error
 * reasons. Engine-agnostic behaviour belongs in testsuite/basic.
 */
#include "../engine_testapp/engine_testapp.h"
#include "../engine_testapp/suite_helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SET ENGINE_STORE_SET

/* Polls a stat until it reaches `want` or `ms` pass. */
static bool wait_stat_at_least(engine_handle *h, const char *group, const char *name,
                               uint64_t want, int ms)
{
    for (int waited = 0; waited <= ms; waited += 10) {
        uint64_t v = stat_u64(h, group, name);
        if (v != UINT64_MAX && v >= want)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* ---- configuration ---- */

static test_result init_expect(engine_handle *h, const test_harness *th,
                               const char *config, engine_errc want, const char *log_text)
{
    engine_errc rc = h->initialize(h, config);
    if (rc != want) {
        fprintf(stderr, "initialize('%s') = 0x%x, wanted 0x%x\n", config, rc, want);
        return TEST_FAIL;
    }
    if (log_text != NULL && !th->log_contains(log_text)) {
        fprintf(stderr, "initialize('%s'): no log line contains '%s'\n", config,
                log_text);
        return TEST_FAIL;
    }
    return TEST_PASS;
}

static test_result test_config_unknown_key(engine_handle *h, const test_harness *th)
{
    return init_expect(h, th, "max_size=10485760;no_such_param=1",
                       ENGINE_INVALID_ARGUMENTS, "unknown key 'no_such_param'");
}

static const struct {
    const char *config;
    const char *names;
} bad_configs[] = {
    {"max_size=abc", "'max_size'"},
    {"max_size=", "'max_size'"},
    {"max_size=-5", "'max_size'"},
    {"max_size=99999999999999999999999", "'max_size'"},
    {"max_size=1", "'max_size'"},
    {"mem_high_wat_pct=0", "'mem_high_wat_pct'"},
    {"mem_high_wat_pct=50;mem_low_wat_pct=60", "mem_low_wat_pct"},
    {"mem_low_wat_pct=100", "'mem_low_wat_pct'"},
    {"max_vbuckets=0", "'max_vbuckets'"},
    {"max_vbuckets=65536", "'max_vbuckets'"},
    {"ht_size=3000", "'ht_size'"},
    {"ht_locks=3", "'ht_locks'"},
    {"num_writer_threads=0", "'num_writer_threads'"},
    {"max_item_size=0", "'max_item_size'"},
    {"ht_size=1024;ht_locks=2048", "ht_locks"},
    {"justakey", "'justakey'"},
    {"=5", "unknown key ''"},
};

static test_result test_config_bad_values(engine_handle *h, const test_harness *th)
{
    (void)h;
    for (size_t i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
        engine_errc rc = ENGINE_SUCCESS;
        engine_handle *e = th->create_engine(bad_configs[i].config, &rc);
        if (e != NULL) {
            th->destroy_engine(e, true);
            fprintf(stderr, "config '%s' was accepted\n", bad_configs[i].config);
            return TEST_FAIL;
        }
        if (rc != ENGINE_INVALID_ARGUMENTS || !th->log_contains(bad_configs[i].names)) {
            fprintf(stderr, "config '%s': rc 0x%x, reason naming %s logged: %d\n",
                    bad_configs[i].config, rc, bad_configs[i].names,
                    th->log_contains(bad_configs[i].names));
            return TEST_FAIL;
        }
    }
    return TEST_PASS;
}

static test_result test_config_accepted(engine_handle *h, const test_harness *th)
{
    (void)h;
    engine_errc rc;
    engine_handle *e = th->create_engine(
        " max_size = 33554432 ; max_vbuckets=8;;ht_size=2048;ht_locks=64;"
        "num_nonio_threads=2;exp_pager_interval_ms=5000;",
        &rc);
    CHECK(e != NULL);
    bool ok = stat_u64(e, "config", "max_size") == 33554432 &&
              stat_u64(e, "config", "max_vbuckets") == 8 &&
              stat_u64(e, "config", "ht_locks") == 64 &&
              stat_u64(e, "tasks", "pool:nonio:threads") == 2 &&
              stat_u64(e, "hash", "ht_buckets") == 2048;
    th->destroy_engine(e, false);
    CHECK(ok);
    return TEST_PASS;
}

static test_result test_initialize_twice(engine_handle *h, const test_harness *th)
{
    (void)th;
    CHECK_RC(h->initialize(h, ""), ENGINE_FAILED);
    CHECK_RC(kv_store(h, NULL, "k", "v", SET, 0, NULL), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_calls_before_initialize(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_FAILED);
    CHECK(strstr(th->error_context(c), "not initialized") != NULL);
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_FAILED);
    CHECK_RC(h->remove(h, c, &k, 0, 0, NULL), ENGINE_FAILED);
    CHECK_RC(h->flush(h, c), ENGINE_FAILED);
    const engine_info *info = NULL;
    CHECK_RC(h->get_info(h, &info), ENGINE_SUCCESS);
    CHECK(info != NULL && info->description != NULL);
    return TEST_PASS;
}

/* ---- limits ---- */

static test_result test_quota(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[32], val[1000];
    memset(val, 'q', sizeof(val));
    uint64_t base = stat_u64(h, NULL, "mem_used");
    int stored = 0;
    engine_errc rc = ENGINE_SUCCESS;
    while (stored < 100000) {
        snprintf(key, sizeof(key), "q%d", stored);
        rc = kv_store_full(h, c, 0, 0, key, val, sizeof(val), 0, 0, SET, 0, NULL);
        if (rc != ENGINE_SUCCESS)
            break;
        stored++;
    }
    CHECK_RC(rc, ENGINE_NO_MEMORY);
    CHECK(strstr(th->error_context(c), "max_size") != NULL);
    /* 1 MiB quota, ~1 KiB items: most of it must be usable. */
    CHECK(stored > 800 && stored < 1100);
    CHECK(stat_u64(h, NULL, "mem_used") <= 1u << 20);
    CHECK(stat_u64(h, NULL, "ep_oom_errors") >= 1);
    /* Existing data is intact, and deleting makes room again. */
    char buf[8];
    CHECK_RC(kv_get(h, c, "q0", buf, sizeof(buf)), ENGINE_SUCCESS);
    CHECK(buf[0] == 'q');
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "q%d", i);
        CHECK_RC(kv_remove(h, c, key, 0), ENGINE_SUCCESS);
    }
    CHECK_RC(kv_store_full(h, c, 0, 0, "after", val, sizeof(val), 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(h->flush(h, c), ENGINE_SUCCESS);
    CHECK(stat_u64(h, NULL, "mem_used") == base);
    return TEST_PASS;
}

static test_result test_append_over_quota(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    static char val[400 * 1024];
    memset(val, 'a', sizeof(val));
    CHECK_RC(kv_store_full(h, c, 0, 0, "a", val, sizeof(val), 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 0, 0, "b", val, sizeof(val), 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    /* Appending needs old + new + the appended item at once: over a 1 MiB quota. */
    CHECK_RC(kv_store_full(h, c, 0, 0, "a", val, 100 * 1024, 0, 0, ENGINE_STORE_APPEND, 0,
                           NULL),
             ENGINE_NO_MEMORY);
    engine_item_info info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "a", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.value.iov_len == sizeof(val));
    return TEST_PASS;
}

static test_result test_max_item_size(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char val[1001];
    memset(val, 'x', sizeof(val));
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1001, 0, 0, 0, 0), ENGINE_TOO_BIG);
    CHECK(strstr(th->error_context(c), "max_item_size") != NULL);
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", val, 1000, 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", val, 1, 0, 0, ENGINE_STORE_APPEND, 0, NULL),
             ENGINE_TOO_BIG);
    engine_item_info info;
    CHECK_RC(kv_get_full(h, c, 0, 0, "k", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.value.iov_len == 1000);
    CHECK(stat_u64(h, NULL, "ep_too_big_errors") == 1);
    return TEST_PASS;
}

static test_result test_vbuckets(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[16];
    CHECK_RC(kv_store_full(h, c, 0, 3, "k", "vb3", 3, 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", "vb0", 3, 0, 0, SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 0, 3, "k", buf, sizeof(buf), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "vb3") == 0);
    CHECK_RC(kv_get_full(h, c, 0, 0, "k", buf, sizeof(buf), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(buf, "vb0") == 0);
    CHECK_RC(kv_get_full(h, c, 0, 1, "k", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_store_full(h, c, 0, 4, "k", "x", 1, 0, 0, SET, 0, NULL),
             ENGINE_NOT_MY_VBUCKET);
    CHECK(strstr(th->error_context(c), "vbucket 4") != NULL);
    CHECK_RC(kv_get_full(h, c, 0, 65535, "k", NULL, 0, NULL), ENGINE_NOT_MY_VBUCKET);
    engine_doc_key k = doc_key(0, "k");
    CHECK_RC(h->remove(h, c, &k, 0, 4, NULL), ENGINE_NOT_MY_VBUCKET);
    /* Four states, and the items of the two vbuckets that hold any. */
    CHECK(stat_count(h, "vbucket") == 6);
    CHECK(stat_u64(h, "vbucket", "vb_0:items") == 1);
    CHECK(stat_u64(h, "vbucket", "vb_3:items") == 1);
    CHECK(stat_u64(h, "vbucket", "vb_1:items") == UINT64_MAX); /* none: no row */
    return TEST_PASS;
}

static test_result test_error_reasons(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    CHECK_RC(kv_store(h, c, key, "v", SET, 0, NULL), ENGINE_INVALID_ARGUMENTS);
    CHECK(strstr(th->error_context(c), "250") != NULL);
    CHECK_RC(kv_store(h, c, "k", "v", ENGINE_STORE_ADD, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "k", "v", ENGINE_STORE_ADD, 0, NULL), ENGINE_KEY_EXISTS);
    CHECK(strstr(th->error_context(c), "exists") != NULL);
    engine_doc_key k = doc_key(0x42, "k");
    engine_item *it = NULL;
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_UNKNOWN_COLLECTION);
    CHECK(strstr(th->error_context(c), "0x42") != NULL);
    CHECK(th->error_manifest_uid(c) == 0);
    k.collection = 0;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0x80, 0), ENGINE_INVALID_ARGUMENTS);
    CHECK(strstr(th->error_context(c), "datatype") != NULL);
    return TEST_PASS;
}

/* ---- background work ---- */

static test_result test_expiry_pager(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        CHECK_RC(kv_store_full(h, c, 0, 0, key, "v", 1, 0, i < 150 ? 5 : 0, SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, NULL, "curr_items") == 200);
    th->time_travel(10);
    /* Nobody touches the keys: only the pager can remove them. */
    CHECK(wait_stat_at_least(h, NULL, "expired_pager", 150, 10000));
    CHECK(stat_u64(h, NULL, "expired_pager") == 150);
    CHECK(stat_u64(h, NULL, "curr_items") == 50);
    CHECK(stat_u64(h, NULL, "expired_access") == 0);
    CHECK(stat_u64(h, "tasks", "task:expiry_pager:runs") >= 1);
    CHECK_RC(kv_get(h, c, "e199", NULL, 0), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_expired_on_access_counted(engine_handle *h,
                                                  const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK_RC(kv_store_full(h, c, 0, 0, "k", "v", 1, 0, 5, SET, 0, NULL), ENGINE_SUCCESS);
    th->time_travel(6);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK(stat_u64(h, NULL, "expired_access") == 1);
    CHECK(stat_u64(h, NULL, "curr_items") == 0);
    CHECK(stat_u64(h, NULL, "mem_used") == 0);
    return TEST_PASS;
}

typedef struct reader_ctx {
    engine_handle *h;
    _Atomic int stop;
    int errors;
    long reads;
} reader_ctx;

static void *grow_reader(void *arg)
{
    reader_ctx *r = arg;
    char buf[32], key[32];
    while (!r->stop) {
        for (int i = 0; i < 1000 && !r->stop; i++) {
            snprintf(key, sizeof(key), "pre%d", i);
            if (kv_get(r->h, NULL, key, buf, sizeof(buf)) != ENGINE_SUCCESS ||
                strcmp(buf, key) != 0)
                r->errors++;
            r->reads++;
        }
    }
    return NULL;
}

static test_result test_hash_table_growth(engine_handle *h, const test_harness *th)
{
    (void)th;
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "pre%d", i);
        CHECK_RC(kv_store(h, NULL, key, key, SET, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, "hash", "ht_buckets") == 1024);
    reader_ctx r = {h, 0, 0, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, grow_reader, &r) == 0);
    const int n = 60000;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "g%d", i);
        if (kv_store(h, NULL, key, key, SET, 0, NULL) != ENGINE_SUCCESS) {
            r.stop = 1;
            pthread_join(t, NULL);
            CHECK(!"store failed during growth");
        }
    }
    bool grew = wait_stat_at_least(h, "hash", "ht_resizes", 1, 10000);
    r.stop = 1;
    pthread_join(t, NULL);
    CHECK(grew);
    CHECK(r.errors == 0);
    CHECK(r.reads > 0);
    CHECK(stat_u64(h, "hash", "ht_buckets") > 1024);
    CHECK(stat_u64(h, "hash", "ht_items") == (uint64_t)n + 1000);
    char buf[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "g%d", i);
        CHECK_RC(kv_get(h, NULL, key, buf, sizeof(buf)), ENGINE_SUCCESS);
        CHECK(strcmp(buf, key) == 0);
    }
    return TEST_PASS;
}

/* ---- stats ---- */

static test_result test_stats_counters(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t cas;
    CHECK_RC(kv_store(h, c, "a", "1", SET, 0, &cas), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "a", "2", ENGINE_STORE_CAS, cas, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_store(h, c, "a", "3", ENGINE_STORE_CAS, cas, NULL), ENGINE_KEY_EXISTS);
    CHECK_RC(kv_store(h, c, "zz", "3", ENGINE_STORE_CAS, 5, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get(h, c, "a", NULL, 0), ENGINE_SUCCESS);
    CHECK_RC(kv_get(h, c, "b", NULL, 0), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_remove(h, c, "a", 0), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "a", 0), ENGINE_NO_SUCH_KEY);
    CHECK(stat_u64(h, NULL, "cmd_get") == 2);
    CHECK(stat_u64(h, NULL, "get_hits") == 1);
    CHECK(stat_u64(h, NULL, "get_misses") == 1);
    CHECK(stat_u64(h, NULL, "cmd_set") == 4);
    CHECK(stat_u64(h, NULL, "store_failures") == 2);
    CHECK(stat_u64(h, NULL, "cas_hits") == 1);
    CHECK(stat_u64(h, NULL, "cas_badval") == 1);
    CHECK(stat_u64(h, NULL, "cas_misses") == 1);
    CHECK(stat_u64(h, NULL, "delete_hits") == 1);
    CHECK(stat_u64(h, NULL, "delete_misses") == 1);
    CHECK(stat_u64(h, NULL, "curr_items") == 0);
    CHECK(stat_u64(h, NULL, "total_items") == 2);
    h->reset_stats(h, c);
    CHECK(stat_u64(h, NULL, "cmd_get") == 0);
    CHECK(stat_u64(h, NULL, "delete_hits") == 0);
    return TEST_PASS;
}

static test_result test_stats_groups(engine_handle *h, const test_harness *th)
{
    (void)th;
    char buf[64];
    CHECK(stat_str(h, NULL, "ep_version", buf, sizeof(buf)));
    CHECK(stat_u64(h, "memory", "ep_max_size") == 1u << 30);
    CHECK(stat_u64(h, "memory", "ep_item_overhead_bytes") <= 64);
    CHECK(stat_u64(h, "hash", "ht_stripes") == 1024);
    CHECK(stat_u64(h, "config", "max_vbuckets") == 1024);
    CHECK(stat_str(h, "config", "dbname", buf, sizeof(buf)));
    CHECK(stat_u64(h, "tasks", "pool:writer:threads") == 2); /* the default */
    CHECK(stat_u64(h, "tasks", "pool:nonio:queued") != UINT64_MAX);
    CHECK(stat_count(h, "vbucket") == 1024);
    CHECK(stat_str(h, "vbucket", "vb_1023", buf, sizeof(buf)) &&
          strcmp(buf, "active") == 0);
    return TEST_PASS;
}

static test_result test_memory_accounting(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    CHECK(stat_u64(h, NULL, "mem_used") == 0);
    CHECK_RC(kv_store(h, c, "k", "hello", SET, 0, NULL), ENGINE_SUCCESS);
    uint64_t one = stat_u64(h, NULL, "mem_used");
    CHECK(one >= 6 && one <= 6 + 64);
    CHECK_RC(kv_store(h, c, "k", "world", SET, 0, NULL), ENGINE_SUCCESS);
    CHECK(stat_u64(h, NULL, "mem_used") == one);
    engine_doc_key k = doc_key(0, "k");
    engine_item *held = NULL;
    CHECK_RC(h->get(h, c, &held, &k, 0), ENGINE_SUCCESS);
    CHECK_RC(kv_remove(h, c, "k", 0), ENGINE_SUCCESS);
    uint64_t while_held = stat_u64(h, NULL, "mem_used");
    h->release(h, held);
    CHECK(while_held == one);
    CHECK(stat_u64(h, NULL, "mem_used") == 0);
    return TEST_PASS;
}

static test_result test_engine_info(engine_handle *h, const test_harness *th)
{
    (void)th;
    const engine_info *a = NULL, *b = NULL;
    CHECK_RC(h->get_info(h, &a), ENGINE_SUCCESS);
    CHECK_RC(h->get_info(h, &b), ENGINE_SUCCESS);
    CHECK(a == b && strstr(a->description, "ep_engine") != NULL);
    CHECK(a->max_key_len == ENGINE_KEY_MAX_LEN);
    CHECK(a->features & ENGINE_FEATURE_CAS);
    CHECK(a->features & ENGINE_FEATURE_COLLECTIONS);
    CHECK(h->interface == ENGINE_API_VERSION_4);
    /* A host that knows only v1 gets v1. */
    CHECK(a->features & ENGINE_FEATURE_PERSISTENT);
    return TEST_PASS;
}

static test_result test_destroy_with_items_held(engine_handle *h, const test_harness *th)
{
    engine_errc rc;
    engine_handle *e = th->create_engine(NULL, &rc);
    CHECK(e != NULL);
    CHECK_RC(kv_store(e, NULL, "k", "survivor", SET, 0, NULL), ENGINE_SUCCESS);
    engine_doc_key k = doc_key(0, "k");
    engine_item *it = NULL;
    CHECK_RC(e->get(e, NULL, &it, &k, 0), ENGINE_SUCCESS);
    th->destroy_engine(e, false);
    engine_item_info info;
    CHECK_RC(e->get_item_info(e, it, &info), ENGINE_SUCCESS);
    bool same =
        info.value.iov_len == 8 && memcmp(info.value.iov_base, "survivor", 8) == 0;
    e->release(e, it); /* frees the last of the destroyed engine (ASan checks) */
    CHECK(same);
    (void)h;
    return TEST_PASS;
}

#define CFG_1MIB "max_size=1048576"

static const engine_test tests[] = {
    {"config: unknown key fails initialize", test_config_unknown_key, NULL, NULL, NULL,
     true},
    {"config: bad values name their key", test_config_bad_values, NULL, NULL, NULL,
     false},
    {"config: accepted values take effect", test_config_accepted, NULL, NULL, NULL,
     false},
    {"initialize twice fails", test_initialize_twice, NULL, NULL, NULL, false},
    {"calls before initialize", test_calls_before_initialize, NULL, NULL, NULL, true},
    {"memory quota", test_quota, NULL, NULL, CFG_1MIB, false},
    {"append over the memory quota", test_append_over_quota, NULL, NULL, CFG_1MIB, false},
    {"max_item_size", test_max_item_size, NULL, NULL, "max_item_size=1000", false},
    {"vbucket range", test_vbuckets, NULL, NULL, "max_vbuckets=4", false},
    {"error reasons", test_error_reasons, NULL, NULL, NULL, false},
    {"expiry pager", test_expiry_pager, NULL, NULL, "exp_pager_interval_ms=20", false},
    {"expired on access is counted and freed", test_expired_on_access_counted, NULL, NULL,
     NULL, false},
    {"hash table grows while read", test_hash_table_growth, NULL, NULL,
     "ht_size=1024;ht_locks=256", false},
    {"stats counters and reset", test_stats_counters, NULL, NULL, NULL, false},
    {"stats groups", test_stats_groups, NULL, NULL, NULL, false},
    {"memory accounting", test_memory_accounting, NULL, NULL, NULL, false},
    {"engine info", test_engine_info, NULL, NULL, NULL, false},
    {"destroy while the host holds items", test_destroy_with_items_held, NULL, NULL, NULL,
     false},
    {NULL, NULL, NULL, NULL, NULL, false},
};

__attribute__((visibility("default"))) const engine_test *get_tests(void)
{
    return tests;
}
