/*
 * collections_suite.c - ep_engine's collections: every exit path of the
 * set_collection_manifest state machine (success, invalid, not a successor,
 * identical, too busy, persistence failure at each I/O step, data directory
 * gone, client disconnected mid-update, engine destroyed mid-update), warmup of
 * the manifest file, and collection-aware data (unknown ids, maxTTL, drop and
 * purge, re-added ids, stats).
 *
 * The harness checks in every case that each would_block got exactly one notify
 * and that no reservation is left. Faults are driven through the engine's
 * ep_testing_control hook.
 */
#include "../engine_testapp/engine_testapp.h"
#include "../engine_testapp/suite_helpers.h"

#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CFG "dbname=@DATA_DIR@;num_writer_threads=1"

/* As a host: call, and on would_block wait for the notify and call again. */
static engine_errc set_manifest(engine_handle *h, const test_harness *th, const void *c,
                                const char *json)
{
    engine_errc rc;
    HOST_CALL(th, c, rc, h->set_collection_manifest(h, c, json, strlen(json)));
    return rc;
}

/* A manifest: uid, then scopes as "name:uid" each followed by its collections
 * "name:uid[:maxTTL]" until a NULL; the list ends with a second NULL. Built
 * with jansson into buf (cut to "" if it does not fit). */
static const char *manifest(char *buf, size_t cap, const char *uid, ...)
{
    va_list ap;
    va_start(ap, uid);
    json_t *scopes = json_array();
    const char *scope;
    while ((scope = va_arg(ap, const char *)) != NULL) {
        char sname[64], suid[16];
        sscanf(scope, "%63[^:]:%15s", sname, suid);
        json_t *cols = json_array();
        const char *col;
        while ((col = va_arg(ap, const char *)) != NULL) {
            char cname[64], cuid[16];
            int ttl = -1;
            sscanf(col, "%63[^:]:%15[^:]:%d", cname, cuid, &ttl);
            json_t *c = json_pack("{s:s,s:s}", "name", cname, "uid", cuid);
            if (ttl >= 0)
                json_object_set_new(c, "maxTTL", json_integer(ttl));
            json_array_append_new(cols, c);
        }
        json_array_append_new(scopes, json_pack("{s:s,s:s,s:o}", "name", sname, "uid",
                                                suid, "collections", cols));
    }
    va_end(ap);
    json_t *m = json_pack("{s:s,s:o}", "uid", uid, "scopes", scopes);
    size_t n = m ? json_dumpb(m, buf, cap - 1, JSON_COMPACT) : 0;
    buf[n < cap ? n : 0] = '\0';
    json_decref(m);
    return buf;
}

/* Manifest uid 1: _default, and scope s1 (8) with c1 (8) and c2 (9). */
static const char *m1(char *buf, size_t cap)
{
    return manifest(buf, cap, "1", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
                    "c2:9", NULL, NULL);
}

static uint64_t current_uid(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    uint64_t uid = UINT64_MAX;
    uint32_t id;
    h->get_scope_id(h, c, "", 0, &uid, &id);
    return uid;
}

static engine_errc cid_of(engine_handle *h, const test_harness *th, const char *path,
                          uint32_t *id)
{
    const void *c = th->create_cookie();
    uint64_t uid;
    return h->get_collection_id(h, c, path, strlen(path), &uid, id);
}

/* ---- the state machine's exit paths ---- */

static test_result test_update_success(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    m1(buf, sizeof(buf));
    engine_errc rc = h->set_collection_manifest(h, c, buf, strlen(buf));
    CHECK_RC(rc, ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(c), ENGINE_SUCCESS);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)), ENGINE_SUCCESS);
    CHECK(wait_released(th, c, 5000));
    CHECK(current_uid(h, th) == 1);
    uint32_t id = 0;
    CHECK_RC(cid_of(h, th, "s1.c2", &id), ENGINE_SUCCESS);
    CHECK(id == 9);
    CHECK_RC(kv_store_full(h, c, 9, 0, "k", "in-c2", 5, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    char val[16];
    CHECK_RC(kv_get_full(h, c, 9, 0, "k", val, sizeof(val), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(val, "in-c2") == 0);
    CHECK_RC(kv_get_full(h, c, 8, 0, "k", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get(h, c, "k", NULL, 0), ENGINE_NO_SUCH_KEY); /* _default is apart */
    CHECK(stat_u64(h, "manifest", "manifest_updates") == 1);
    CHECK(stat_u64(h, "manifest", "manifest_pending") == 0);
    /* The file is on disk. */
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/collections.manifest", th->data_dir);
    CHECK(stat(path, &st) == 0 && st.st_size > 0);
    return TEST_PASS;
}

static test_result test_invalid_json(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    const char *bad[] = {
        "",         "{",
        "not json", "{\"uid\":\"1\"}",
        "[]",       "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_RC(h->set_collection_manifest(h, c, bad[i], strlen(bad[i])),
                 ENGINE_INVALID_ARGUMENTS);
        CHECK(th->error_context(c)[0] != '\0');
        CHECK(th->reservations(c) == 0);
    }
    CHECK(stat_u64(h, "manifest", "manifest_rejected") == sizeof(bad) / sizeof(bad[0]));
    CHECK(stat_u64(h, "tasks", "task:persist_manifest:runs") == UINT64_MAX);
    char buf[1024];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_not_a_successor(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    CHECK_RC(set_manifest(h, th, c,
                          manifest(buf, sizeof(buf), "5", "_default:0", "_default:0",
                                   NULL, "s1:8", "c1:8", NULL, NULL)),
             ENGINE_SUCCESS);
    /* Lower uid. */
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    CHECK(strstr(th->error_context(c), "lower") != NULL);
    /* Equal uid, different content. */
    manifest(buf, sizeof(buf), "5", "_default:0", "_default:0", NULL, "s1:8", NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    /* A renamed scope, a renamed collection, a collection moved to another scope. */
    manifest(buf, sizeof(buf), "6", "_default:0", "_default:0", NULL, "renamed:8", "c1:8",
             NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    CHECK(strstr(th->error_context(c), "renamed") != NULL);
    manifest(buf, sizeof(buf), "6", "_default:0", "_default:0", NULL, "s1:8", "other:8",
             NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    manifest(buf, sizeof(buf), "6", "_default:0", "_default:0", "c1:8", NULL, "s1:8",
             NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    CHECK(strstr(th->error_context(c), "moves") != NULL);
    CHECK(current_uid(h, th) == 5);
    CHECK(stat_u64(h, "manifest", "manifest_updates") == 1);
    /* A valid successor: a maxTTL change is allowed. */
    manifest(buf, sizeof(buf), "6", "_default:0", "_default:0", NULL, "s1:8", "c1:8:60",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 6);
    return TEST_PASS;
}

static test_result test_identical(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    /* The same manifest: success at once (no would_block: nothing scheduled). */
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)), ENGINE_SUCCESS);
    CHECK(stat_u64(h, "manifest", "manifest_identical") == 1);
    CHECK(stat_u64(h, "manifest", "manifest_updates") == 1);
    CHECK(stat_u64(h, "manifest", "manifest_pending") == 0);
    /* The epoch manifest again on a fresh engine is identical too. */
    engine_errc rc;
    engine_handle *fresh = th->create_engine("", &rc);
    CHECK(fresh != NULL);
    const char *epoch = "{\"uid\":\"0\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                        "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]}]}";
    rc = fresh->set_collection_manifest(fresh, c, epoch, strlen(epoch));
    th->destroy_engine(fresh, false);
    CHECK_RC(rc, ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_too_busy(engine_handle *h, const test_harness *th)
{
    const void *a = th->create_cookie(), *b = th->create_cookie();
    char buf[1024], buf2[1024];
    CHECK(engine_control(h, th, "op=fsync;nth=1;pause=1"));
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK(engine_control(h, th, "wait_paused"));
    manifest(buf2, sizeof(buf2), "2", "_default:0", "_default:0", NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, b, buf2, strlen(buf2)), ENGINE_TOO_BUSY);
    CHECK(strstr(th->error_context(b), "in progress") != NULL);
    CHECK(th->reservations(b) == 0);
    CHECK(stat_u64(h, "manifest", "manifest_pending") == 1);
    CHECK(engine_control(h, th, "resume"));
    CHECK_RC(th->wait_for_notify(a), ENGINE_SUCCESS);
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_SUCCESS);
    CHECK(stat_u64(h, "manifest", "manifest_busy") == 1);
    /* Served at once afterwards. */
    manifest(buf2, sizeof(buf2), "2", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             "c2:9", NULL, NULL);
    CHECK_RC(set_manifest(h, th, b, buf2), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 2);
    return TEST_PASS;
}

/* One persistence failure: the cookie is notified once with cannot_apply and a
 * reason naming `step`, nothing stays behind, the manifest is unchanged, and the
 * very next update from another cookie succeeds. */
static test_result persist_fails(engine_handle *h, const test_harness *th,
                                 const char *fault, const char *step)
{
    const void *a = th->create_cookie(), *b = th->create_cookie();
    char buf[1024];
    CHECK(engine_control(h, th, fault));
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(a), ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    const char *why = th->error_context(a);
    if (strstr(why, step) == NULL) {
        fprintf(stderr, "reason '%s' does not name '%s'\n", why, step);
        return TEST_FAIL;
    }
    /* Per the contract the host does not call again; nothing is left behind. */
    CHECK(wait_released(th, a, 5000));
    CHECK(current_uid(h, th) == 0);
    uint32_t id;
    CHECK_RC(cid_of(h, th, "s1.c1", &id), ENGINE_UNKNOWN_SCOPE);
    CHECK(stat_u64(h, "manifest", "manifest_pending") == 0);
    CHECK(stat_u64(h, "manifest", "manifest_persist_failures") == 1);
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s/collections.manifest.tmp", th->data_dir);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_RC(set_manifest(h, th, b, buf), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 1);
    /* And the acknowledged manifest is what a restart finds. */
    engine_errc rc;
    h = th->restart_engine(false, &rc);
    CHECK(h != NULL && wait_ready(h));
    CHECK(current_uid(h, th) == 1);
    return TEST_PASS;
}

static test_result test_fail_open(engine_handle *h, const test_harness *th)
{
    return persist_fails(h, th, "op=open;nth=1;errno=EACCES", "open");
}

static test_result test_fail_write(engine_handle *h, const test_harness *th)
{
    return persist_fails(h, th, "op=write;nth=1;errno=ENOSPC", "write");
}

static test_result test_fail_short_write(engine_handle *h, const test_harness *th)
{
    return persist_fails(h, th, "op=write;nth=2;short=1", "write");
}

static test_result test_fail_fsync(engine_handle *h, const test_harness *th)
{
    return persist_fails(h, th, "op=fsync;nth=1;errno=EIO", "fsync");
}

static test_result test_fail_rename(engine_handle *h, const test_harness *th)
{
    return persist_fails(h, th, "op=rename;nth=1;errno=EIO", "rename");
}

static test_result test_fail_dirsync(engine_handle *h, const test_harness *th)
{
    /* The new file had replaced the old when the directory fsync failed: the
     * engine must put the acknowledged manifest back (checked by the restart in
     * persist_fails, which must find uid 0 before the second update... and uid 1
     * after it). */
    return persist_fails(h, th, "op=dirsync;nth=1;errno=EIO",
                         "fsync of the data directory");
}

static test_result test_fail_dirsync_file_restored(engine_handle *h,
                                                   const test_harness *th)
{
    const void *a = th->create_cookie();
    char buf[1024];
    CHECK(engine_control(h, th, "op=dirsync;nth=1;errno=EIO"));
    CHECK_RC(set_manifest(h, th, a, m1(buf, sizeof(buf))),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    engine_errc rc;
    h = th->restart_engine(false, &rc);
    CHECK(h != NULL && wait_ready(h));
    CHECK(current_uid(h, th) == 0); /* never acknowledged: not on disk either */
    return TEST_PASS;
}

static int remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static test_result test_data_dir_removed(engine_handle *h, const test_harness *th)
{
    const void *a = th->create_cookie(), *b = th->create_cookie();
    char buf[1024];
    CHECK(remove_tree(th->data_dir) == 0);
    CHECK_RC(set_manifest(h, th, a, m1(buf, sizeof(buf))),
             ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    CHECK(strstr(th->error_context(a), "No such file") != NULL);
    CHECK(current_uid(h, th) == 0);
    CHECK(mkdir(th->data_dir, 0755) == 0);
    CHECK_RC(set_manifest(h, th, b, buf), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 1);
    return TEST_PASS;
}

static test_result test_disconnect_mid_update(engine_handle *h, const test_harness *th)
{
    const void *a = th->create_cookie(), *b = th->create_cookie();
    char buf[1024], buf2[1024];
    CHECK(engine_control(h, th, "op=rename;nth=1;pause=1"));
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK(engine_control(h, th, "wait_paused"));
    th->disconnect(h, a); /* the client is gone; the host will never re-enter */
    CHECK(th->reservations(a) == 1); /* the engine still holds it */
    CHECK(engine_control(h, th, "resume"));
    /* The task completes anyway: one notify (a host would drop it), applied. */
    CHECK_RC(th->wait_for_notify(a), ENGINE_SUCCESS);
    CHECK(wait_released(th, a, 5000));
    CHECK(current_uid(h, th) == 1);
    /* The next update is served at once. */
    manifest(buf2, sizeof(buf2), "2", "_default:0", "_default:0", NULL, NULL);
    CHECK_RC(set_manifest(h, th, b, buf2), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 2);
    return TEST_PASS;
}

/* A host that reuses cookie objects: the update of a client that left
 * completes after the disconnect and must leave nothing on the cookie, or the
 * next client's update on it would be answered without being applied. */
static test_result test_cookie_reused_after_disconnect(engine_handle *h,
                                                       const test_harness *th)
{
    const void *a = th->create_cookie();
    char buf[1024], buf2[1024];
    CHECK(engine_control(h, th, "hold_writer"));
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    th->disconnect(h, a);
    CHECK(engine_control(h, th, "release_writer"));
    CHECK_RC(th->wait_for_notify(a), ENGINE_SUCCESS);
    CHECK(wait_released(th, a, 5000));
    CHECK(current_uid(h, th) == 1);
    manifest(buf2, sizeof(buf2), "2", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             "c2:9", "c3:a", NULL, NULL);
    CHECK_RC(set_manifest(h, th, a, buf2), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 2);
    uint32_t id = 0;
    CHECK_RC(cid_of(h, th, "s1.c3", &id), ENGINE_SUCCESS);
    CHECK(id == 0xa);
    return TEST_PASS;
}

static test_result test_destroy_mid_update_running(engine_handle *h,
                                                   const test_harness *th)
{
    (void)h;
    const void *a = th->create_cookie();
    char buf[1024];
    engine_errc rc;
    engine_handle *e = th->create_engine(NULL, &rc);
    CHECK(e != NULL && wait_ready(e));
    CHECK(engine_control(e, th, "op=fsync;nth=1;pause=1"));
    m1(buf, sizeof(buf));
    CHECK_RC(e->set_collection_manifest(e, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK(engine_control(e, th, "wait_paused"));
    th->destroy_engine(e, false);
    /* Notified before destroy returned: waiting finds it at once. */
    /* Never success: the host cannot re-call a destroyed engine. */
    CHECK_RC(th->wait_for_notify(a), ENGINE_TEMPORARY_FAILURE);
    CHECK(strstr(th->error_context(a), "persisted and applied") != NULL);
    CHECK(th->reservations(a) == 0);
    return TEST_PASS;
}

static test_result test_destroy_mid_update_queued(engine_handle *h,
                                                  const test_harness *th)
{
    (void)h;
    const void *a = th->create_cookie();
    char buf[1024];
    engine_errc rc;
    engine_handle *e = th->create_engine(NULL, &rc);
    CHECK(e != NULL && wait_ready(e));
    CHECK(engine_control(e, th, "hold_writer"));
    m1(buf, sizeof(buf));
    CHECK_RC(e->set_collection_manifest(e, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    th->destroy_engine(e, false); /* the persist task is still queued: cancelled */
    CHECK_RC(th->wait_for_notify(a), ENGINE_TEMPORARY_FAILURE);
    CHECK(strstr(th->error_context(a), "shutting down") != NULL);
    CHECK(th->reservations(a) == 0);
    /* Nothing was written: a new engine on the same directory has the epoch. */
    engine_handle *again = th->create_engine(NULL, &rc);
    CHECK(again != NULL && wait_ready(again));
    uint64_t uid = current_uid(again, th);
    th->destroy_engine(again, false);
    CHECK(uid == 0);
    return TEST_PASS;
}

static test_result test_queued_update_completes(engine_handle *h, const test_harness *th)
{
    const void *a = th->create_cookie();
    char buf[1024];
    CHECK(engine_control(h, th, "hold_writer"));
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK(stat_u64(h, "manifest", "manifest_pending") == 1);
    CHECK(engine_control(h, th, "release_writer"));
    CHECK_RC(th->wait_for_notify(a), ENGINE_SUCCESS);
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 1);
    return TEST_PASS;
}

static test_result test_memory_only(engine_handle *h, const test_harness *th)
{
    /* No dbname: the update still runs on the writer task, and writes nothing. */
    const void *a = th->create_cookie();
    char buf[1024];
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_WOULD_BLOCK);
    CHECK_RC(th->wait_for_notify(a), ENGINE_SUCCESS);
    CHECK_RC(h->set_collection_manifest(h, a, buf, strlen(buf)), ENGINE_SUCCESS);
    CHECK(current_uid(h, th) == 1);
    char path[512];
    snprintf(path, sizeof(path), "%s/collections.manifest", th->data_dir);
    CHECK(access(path, F_OK) != 0);
    return TEST_PASS;
}

static test_result test_null_cookie(engine_handle *h, const test_harness *th)
{
    char buf[1024];
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, NULL, buf, strlen(buf)),
             ENGINE_INVALID_ARGUMENTS);
    const void *c = th->create_cookie();
    CHECK_RC(h->set_collection_manifest(h, c, NULL, 10), ENGINE_INVALID_ARGUMENTS);
    CHECK(current_uid(h, th) == 0);
    return TEST_PASS;
}

static test_result test_limits(engine_handle *h, const test_harness *th)
{
    /* Config: max_scopes=2, max_collections=2. m1 has 2 scopes, 3 collections. */
    const void *c = th->create_cookie();
    char buf[1024];
    m1(buf, sizeof(buf));
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_INVALID_ARGUMENTS);
    CHECK(strstr(th->error_context(c), "max_collections") != NULL);
    manifest(buf, sizeof(buf), "1", "_default:0", "_default:0", NULL, "s1:8", NULL,
             "s2:9", NULL, NULL);
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)),
             ENGINE_INVALID_ARGUMENTS);
    CHECK(strstr(th->error_context(c), "max_scopes") != NULL);
    manifest(buf, sizeof(buf), "1", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    return TEST_PASS;
}

/* ---- warmup ---- */

/* Warmup counts each collection's items and memory in a tally of a few slots,
 * added to the collections in blocks: with more collections than slots, and
 * records that replace and delete, every count must still come out exact. */
static test_result test_warmup_collection_counts(engine_handle *h, const test_harness *th)
{
    enum { NCOLL = 10 };
    const void *c = th->create_cookie();
    char buf[2048], key[32], val[64], stat[32];
    CHECK_RC(set_manifest(h, th, c,
                          manifest(buf, sizeof(buf), "2", "_default:0", "_default:0",
                                   NULL, "s1:8", "c0:8", "c1:9", "c2:a", "c3:b", "c4:c",
                                   "c5:d", "c6:e", "c7:f", "c8:10", "c9:11", NULL, NULL)),
             ENGINE_SUCCESS);
    /* Interleaved, so that warmup reads the collections' records mixed. */
    for (int r = 0; r < 50 + 20 * (NCOLL - 1); r++) {
        for (int j = 0; j < NCOLL; j++) {
            if (r >= 50 + 20 * j)
                continue;
            snprintf(key, sizeof(key), "k%d", r);
            int len = snprintf(val, sizeof(val), "v%d-%d", j, r);
            CHECK_RC(kv_store_full(h, c, (uint32_t)(8 + j), (uint16_t)(r % 4), key, val,
                                   (size_t)len, 0, 0, ENGINE_STORE_SET, 0, NULL),
                     ENGINE_SUCCESS);
        }
    }
    for (int j = 0; j < NCOLL; j++) {
        /* A longer value replaces k1; every other collection loses k0. */
        CHECK_RC(kv_store_full(h, c, (uint32_t)(8 + j), 1, "k1", "a much longer value",
                               19, 0, 0, ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
        engine_doc_key k0 = doc_key((uint32_t)(8 + j), "k0");
        if (j % 2 == 0)
            CHECK_RC(h->remove(h, c, &k0, 0, 0, NULL), ENGINE_SUCCESS);
    }
    CHECK_RC(
        kv_store_full(h, c, 0, 0, "d", "default", 7, 0, 0, ENGINE_STORE_SET, 0, NULL),
        ENGINE_SUCCESS);
    uint64_t items[NCOLL], mem[NCOLL];
    for (int j = 0; j < NCOLL; j++) {
        snprintf(stat, sizeof(stat), "0x8:0x%x:items", 8 + j);
        items[j] = stat_u64(h, "collections", stat);
        CHECK(items[j] == (uint64_t)(50 + 20 * j - (j % 2 == 0)));
        snprintf(stat, sizeof(stat), "0x8:0x%x:mem_used", 8 + j);
        mem[j] = stat_u64(h, "collections", stat);
    }
    uint64_t scope_items = stat_u64(h, "scopes", "0x8:items");
    engine_errc rc;
    CHECK((h = th->restart_engine(false, &rc)) != NULL && wait_ready(h));
    for (int j = 0; j < NCOLL; j++) {
        snprintf(stat, sizeof(stat), "0x8:0x%x:items", 8 + j);
        CHECK(stat_u64(h, "collections", stat) == items[j]);
        snprintf(stat, sizeof(stat), "0x8:0x%x:mem_used", 8 + j);
        CHECK(stat_u64(h, "collections", stat) == mem[j]);
    }
    CHECK(stat_u64(h, "scopes", "0x8:items") == scope_items);
    CHECK(stat_u64(h, "collections", "0x0:0x0:items") == 1);
    return TEST_PASS;
}

static test_result test_warmup_same_manifest(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024], before[4096] = "", after[4096] = "";
    CHECK_RC(set_manifest(h, th, c,
                          manifest(buf, sizeof(buf), "1f", "_default:0", "_default:0",
                                   NULL, "s1:8", "c1:8:100", "c2:9", NULL, NULL)),
             ENGINE_SUCCESS);
    CHECK(stat_str(h, "manifest", "manifest_uid", before, sizeof(before)));
    engine_errc rc;
    h = th->restart_engine(false, &rc);
    CHECK(h != NULL && wait_ready(h));
    CHECK(stat_str(h, "manifest", "manifest_uid", after, sizeof(after)));
    CHECK(strcmp(before, "1f") == 0 && strcmp(after, "1f") == 0);
    uint32_t id;
    CHECK_RC(cid_of(h, th, "s1.c1", &id), ENGINE_SUCCESS);
    CHECK(id == 8);
    CHECK(stat_u64(h, "collections", "0x8:0x8:maxTTL") == 100);
    /* The same manifest again is identical: nothing to do. */
    CHECK_RC(h->set_collection_manifest(h, c, buf, strlen(buf)), ENGINE_SUCCESS);
    return TEST_PASS;
}

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static bool read_file(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return *len > 0;
}

/* Sets m1, damages the file with `damage`, and expects the restart to fail with a
 * reason containing `reason`. */
static test_result corrupt_case(engine_handle *h, const test_harness *th,
                                void (*damage)(char *buf, size_t *len),
                                const char *reason)
{
    const void *c = th->create_cookie();
    char buf[1024], path[512], file[8192];
    size_t len;
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    snprintf(path, sizeof(path), "%s/collections.manifest", th->data_dir);
    CHECK(read_file(path, file, sizeof(file), &len));
    damage(file, &len);
    CHECK(write_file(path, file, len));
    engine_errc rc = ENGINE_SUCCESS;
    CHECK(th->restart_engine(false, &rc) == NULL);
    CHECK_RC(rc, ENGINE_FAILED);
    if (!th->log_contains("is corrupt") || !th->log_contains(reason)) {
        fprintf(stderr, "no log line says the file is corrupt with '%s'\n", reason);
        return TEST_FAIL;
    }
    return TEST_PASS;
}

static void flip_payload_byte(char *buf, size_t *len)
{
    buf[*len - 3] ^= 0x01;
}

static void truncate_tail(char *buf, size_t *len)
{
    (void)buf;
    *len -= 10;
}

static void bad_header(char *buf, size_t *len)
{
    (void)len;
    memcpy(buf, "XXXX", 4);
}

/* A file whose checksum is right but whose JSON breaks a rule. */
static void valid_crc_bad_manifest(char *buf, size_t *len)
{
    const char *payload = "{\"uid\":\"1\",\"scopes\":[]}";
    unsigned crc = 0xffffffffu;
    for (const char *p = payload; *p; p++) {
        crc ^= (unsigned char)*p;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? 0x82F63B78u ^ (crc >> 1) : crc >> 1; /* CRC-32C */
    }
    *len = (size_t)sprintf(buf, "EPMF1 %08x %zu\n%s", ~crc, strlen(payload), payload);
}

static test_result test_corrupt_checksum(engine_handle *h, const test_harness *th)
{
    return corrupt_case(h, th, flip_payload_byte, "checksum mismatch");
}

static test_result test_corrupt_torn(engine_handle *h, const test_harness *th)
{
    return corrupt_case(h, th, truncate_tail, "torn");
}

static test_result test_corrupt_header(engine_handle *h, const test_harness *th)
{
    return corrupt_case(h, th, bad_header, "bad header");
}

static test_result test_corrupt_rules(engine_handle *h, const test_harness *th)
{
    return corrupt_case(h, th, valid_crc_bad_manifest, "_default scope is missing");
}

static test_result test_leftover_temp_file(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024], tmp[512];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    snprintf(tmp, sizeof(tmp), "%s/collections.manifest.tmp", th->data_dir);
    CHECK(write_file(tmp, "half a manifest", 15));
    engine_errc rc;
    h = th->restart_engine(false, &rc);
    CHECK(h != NULL && wait_ready(h));
    CHECK(current_uid(h, th) == 1);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(th->log_contains("leftover"));
    return TEST_PASS;
}

static test_result test_dropped_before_restart(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 8, 0, "k", "v", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    manifest(buf, sizeof(buf), "2", "_default:0", "_default:0", NULL, "s1:8", "c2:9",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    engine_errc rc;
    h = th->restart_engine(false, &rc);
    CHECK(h != NULL && wait_ready(h));
    CHECK_RC(kv_get_full(h, c, 8, 0, "k", NULL, 0, NULL), ENGINE_UNKNOWN_COLLECTION);
    m1(buf, sizeof(buf));
    manifest(buf, sizeof(buf), "3", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             "c2:9", NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "k", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    return TEST_PASS;
}

/* ---- collection-aware data ---- */

static test_result test_unknown_collection_ops(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    engine_doc_key k = doc_key(10, "k");
    engine_item *it = NULL;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_UNKNOWN_COLLECTION);
    CHECK(th->error_manifest_uid(c) == 1);
    CHECK_RC(h->get(h, c, &it, &k, 0), ENGINE_UNKNOWN_COLLECTION);
    CHECK_RC(h->remove(h, c, &k, 0, 0, NULL), ENGINE_UNKNOWN_COLLECTION);
    /* An item allocated before its collection was dropped cannot be stored. */
    k.collection = 9;
    CHECK_RC(h->allocate(h, c, &it, &k, 1, 0, 0, 0, 0), ENGINE_SUCCESS);
    manifest(buf, sizeof(buf), "2", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    engine_errc rc = h->store(h, c, it, NULL, ENGINE_STORE_SET);
    h->release(h, it);
    CHECK_RC(rc, ENGINE_UNKNOWN_COLLECTION);
    CHECK(th->error_manifest_uid(c) == 2);
    return TEST_PASS;
}

/* Reasons that quote a client's bytes are valid UTF-8 (the mock server fails
 * the case on any that is not): paths and names with invalid sequences,
 * control characters, quotes and backslashes, and multi-byte characters
 * where a reason cuts its quote. */
static test_result test_reasons_are_utf8(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char path[512], buf[2048];
    const char *paths[] = {"\xff\xfe.\"\\", "s\x01\x1f\".c\\", "\xc3", "\xed\xa0\x80.x"};
    uint64_t uid;
    uint32_t id;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        engine_errc rc =
            h->get_collection_id(h, c, paths[i], strlen(paths[i]), &uid, &id);
        CHECK(rc != ENGINE_SUCCESS);
        CHECK(th->error_context(c)[0] != '\0');
    }
    /* 'a' then two-byte characters: any cut at an even byte count splits one. */
    for (size_t len = 90; len < 260; len += 7) {
        size_t n = 0;
        path[n++] = 'a';
        while (n + 2 <= len) {
            path[n++] = '\xc3';
            path[n++] = '\xa9';
        }
        CHECK(h->get_scope_id(h, c, path, n, &uid, &id) != ENGINE_SUCCESS);
        CHECK(h->get_collection_id(h, c, path, n, &uid, &id) != ENGINE_SUCCESS);
    }
    /* Manifest names the rules refuse, quoted in the reason (written by hand:
     * jansson would escape or refuse what these test). */
    const char *names[] = {"na\\\"me", "\\u0001ctl", "\\u00e9\\u00e9\\u00e9\\u00e9",
                           "x\\\\y"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(
            buf, sizeof(buf),
            "{\"uid\":\"5\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
            "\"collections\":[]},{\"name\":\"%s\",\"uid\":\"8\",\"collections\":[]}]}",
            names[i]);
        CHECK_RC(set_manifest(h, th, c, buf), ENGINE_INVALID_ARGUMENTS);
    }
    /* A long name of two-byte characters, cut where the reason quotes it. */
    size_t n =
        (size_t)snprintf(buf, sizeof(buf),
                         "{\"uid\":\"5\",\"scopes\":[{\"name\":\"_default\",\"uid\":"
                         "\"0\",\"collections\":[]},{\"name\":\"a");
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\xc3\xa9");
    snprintf(buf + n, sizeof(buf) - n, "\",\"uid\":\"8\",\"collections\":[]}]}");
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_INVALID_ARGUMENTS);
    /* Raw bytes that are not UTF-8 inside the JSON. */
    snprintf(
        buf, sizeof(buf),
        "{\"uid\":\"5\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
        "\"collections\":[]},{\"name\":\"\xff\xfe\",\"uid\":\"8\",\"collections\":[]}]}");
    CHECK(set_manifest(h, th, c, buf) != ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_max_ttl(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    manifest(buf, sizeof(buf), "1", "_default:0", "_default:0", NULL, "s1:8",
             "short:8:10", "zero:9:0", NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    time_t before = time(NULL);
    engine_item_info info;
    /* No expiry asked: capped at maxTTL. */
    CHECK_RC(kv_store_full(h, c, 8, 0, "a", "v", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "a", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime >= before + 8 && info.exptime <= before + 12);
    /* A longer expiry is capped; a shorter one is kept. */
    CHECK_RC(kv_store_full(h, c, 8, 0, "b", "v", 1, 0, 1000, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 8, 0, "c", "v", 1, 0, 3, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "c", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime <= before + 5);
    /* maxTTL 0: no cap. */
    CHECK_RC(kv_store_full(h, c, 9, 0, "d", "v", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 9, 0, "d", NULL, 0, &info), ENGINE_SUCCESS);
    CHECK(info.exptime == 0);
    th->time_travel(11);
    CHECK_RC(kv_get_full(h, c, 8, 0, "a", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get_full(h, c, 8, 0, "b", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    CHECK_RC(kv_get_full(h, c, 9, 0, "d", NULL, 0, NULL), ENGINE_SUCCESS);
    return TEST_PASS;
}

static test_result test_drop_hides_and_purges(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024], key[32];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    uint64_t base = stat_u64(h, NULL, "mem_used");
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK_RC(
            kv_store_full(h, c, 8, 0, key, "value", 5, 0, 0, ENGINE_STORE_SET, 0, NULL),
            ENGINE_SUCCESS);
        CHECK_RC(
            kv_store_full(h, c, 9, 0, key, "keep", 4, 0, 0, ENGINE_STORE_SET, 0, NULL),
            ENGINE_SUCCESS);
    }
    CHECK(stat_u64(h, "collections", "0x8:0x8:items") == 500);
    CHECK(stat_u64(h, "scopes", "0x8:items") == 1000);
    uint64_t c1_mem = stat_u64(h, "collections", "0x8:0x8:mem_used");
    CHECK(c1_mem > 500 * 5);
    manifest(buf, sizeof(buf), "2", "_default:0", "_default:0", NULL, "s1:8", "c2:9",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    /* Hidden at once. */
    CHECK_RC(kv_get_full(h, c, 8, 0, "k1", NULL, 0, NULL), ENGINE_UNKNOWN_COLLECTION);
    CHECK_RC(kv_get_full(h, c, 9, 0, "k1", NULL, 0, NULL), ENGINE_SUCCESS);
    /* Freed in the background: memory returns. */
    CHECK(wait_stat_eq(h, NULL, "ep_collections_purged_items", 500));
    CHECK(wait_stat_eq(h, NULL, "curr_items", 500));
    /* Memory returns once the purger (and any flush holding a reference) is done. */
    uint64_t want = base + stat_u64(h, "collections", "0x8:0x9:mem_used");
    CHECK(wait_stat_eq(h, NULL, "mem_used", want));
    return TEST_PASS;
}

static test_result test_readd_sees_nothing_old(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024], key[32];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "old%d", i);
        CHECK_RC(
            kv_store_full(h, c, 8, 0, key, "old", 3, 0, 0, ENGINE_STORE_SET, 0, NULL),
            ENGINE_SUCCESS);
    }
    manifest(buf, sizeof(buf), "2", "_default:0", "_default:0", NULL, "s1:8", "c2:9",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    manifest(buf, sizeof(buf), "3", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             "c2:9", NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    /* Whether or not the purger has reached them, no old item is visible. */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "old%d", i);
        CHECK_RC(kv_get_full(h, c, 8, 0, key, NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    }
    CHECK_RC(kv_store_full(h, c, 8, 0, "old1", "new", 3, 0, 0, ENGINE_STORE_ADD, 0, NULL),
             ENGINE_SUCCESS);
    char val[8];
    CHECK_RC(kv_get_full(h, c, 8, 0, "old1", val, sizeof(val), NULL), ENGINE_SUCCESS);
    CHECK(strcmp(val, "new") == 0);
    CHECK(wait_stat_eq(h, "collections", "0x8:0x8:items", 1));
    CHECK(wait_stat_eq(h, NULL, "curr_items", 1));
    return TEST_PASS;
}

static test_result test_collection_stats(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024], name[64];
    CHECK_RC(set_manifest(h, th, c, m1(buf, sizeof(buf))), ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 8, 0, "a", "1", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_store_full(h, c, 8, 0, "b", "2", 1, 0, 0, ENGINE_STORE_SET, 0, NULL),
             ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "a", NULL, 0, NULL), ENGINE_SUCCESS);
    CHECK_RC(kv_get_full(h, c, 8, 0, "zz", NULL, 0, NULL), ENGINE_NO_SUCH_KEY);
    engine_doc_key k = doc_key(8, "b");
    CHECK_RC(h->remove(h, c, &k, 0, 0, NULL), ENGINE_SUCCESS);
    CHECK(stat_u64(h, "collections", "0x8:0x8:items") == 1);
    CHECK(stat_u64(h, "collections", "0x8:0x8:ops_store") == 2);
    CHECK(stat_u64(h, "collections", "0x8:0x8:ops_get") == 2);
    CHECK(stat_u64(h, "collections", "0x8:0x8:ops_delete") == 1);
    CHECK(stat_u64(h, "collections", "0x0:0x0:items") == 0);
    CHECK(stat_str(h, "collections", "0x8:0x9:name", name, sizeof(name)) &&
          strcmp(name, "c2") == 0);
    CHECK(stat_str(h, "collections", "0x8:0x9:scope_name", name, sizeof(name)) &&
          strcmp(name, "s1") == 0);
    CHECK(stat_u64(h, "scopes", "0x8:collections") == 2);
    CHECK(stat_u64(h, "scopes", "0x8:ops_store") == 2);
    CHECK(stat_str(h, "manifest", "manifest_uid", name, sizeof(name)) &&
          strcmp(name, "1") == 0);
    CHECK(stat_u64(h, "manifest", "manifest_collections") == 3);
    /* A kept collection keeps its counters across manifests. */
    manifest(buf, sizeof(buf), "2", "_default:0", "_default:0", NULL, "s1:8", "c1:8",
             NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    CHECK(stat_u64(h, "collections", "0x8:0x8:ops_store") == 2);
    h->reset_stats(h, c);
    CHECK(stat_u64(h, "collections", "0x8:0x8:ops_store") == 0);
    CHECK(stat_u64(h, "collections", "0x8:0x8:items") == 1);
    return TEST_PASS;
}

static test_result test_paths(engine_handle *h, const test_harness *th)
{
    const void *c = th->create_cookie();
    char buf[1024];
    manifest(buf, sizeof(buf), "a", "_default:0", "_default:0", "dc:a", NULL, "s1:8",
             "c1:8", NULL, NULL);
    CHECK_RC(set_manifest(h, th, c, buf), ENGINE_SUCCESS);
    uint32_t id = 99;
    uint64_t uid = 0;
    CHECK_RC(cid_of(h, th, ".dc", &id), ENGINE_SUCCESS);
    CHECK(id == 0xa);
    CHECK_RC(cid_of(h, th, "_default.dc", &id), ENGINE_SUCCESS);
    CHECK(id == 0xa);
    CHECK_RC(cid_of(h, th, "s1.c1", &id), ENGINE_SUCCESS);
    CHECK(id == 8);
    CHECK_RC(cid_of(h, th, "s1.", &id), ENGINE_UNKNOWN_COLLECTION); /* s1._default */
    CHECK_RC(cid_of(h, th, "s1.dc", &id), ENGINE_UNKNOWN_COLLECTION);
    CHECK_RC(cid_of(h, th, "s2.c1", &id), ENGINE_UNKNOWN_SCOPE);
    CHECK_RC(cid_of(h, th, "s1.c$", &id), ENGINE_UNKNOWN_COLLECTION); /* legal name */
    CHECK_RC(cid_of(h, th, "s1.$c", &id), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(cid_of(h, th, "s 1.c1", &id), ENGINE_INVALID_ARGUMENTS);
    CHECK_RC(h->get_scope_id(h, c, "s1.whatever", 11, &uid, &id), ENGINE_SUCCESS);
    CHECK(id == 8 && uid == 0xa);
    CHECK_RC(h->get_scope_id(h, c, "s1", 2, &uid, &id), ENGINE_SUCCESS);
    CHECK_RC(h->get_scope_id(h, c, "s3", 2, &uid, &id), ENGINE_UNKNOWN_SCOPE);
    CHECK(th->error_manifest_uid(c) == 0xa);
    return TEST_PASS;
}

static test_result test_many_updates(engine_handle *h, const test_harness *th)
{
    /* Add and drop collections over 50 updates from alternating cookies. */
    const void *c[2] = {th->create_cookie(), th->create_cookie()};
    char buf[4096], uid[16], col[32];
    for (int i = 1; i <= 50; i++) {
        snprintf(uid, sizeof(uid), "%x", i);
        snprintf(col, sizeof(col), "c%d:%x", i, 7 + i);
        manifest(buf, sizeof(buf), uid, "_default:0", "_default:0", NULL, "s1:8", col,
                 NULL, NULL);
        CHECK_RC(set_manifest(h, th, c[i % 2], buf), ENGINE_SUCCESS);
        CHECK_RC(kv_store_full(h, c[i % 2], (uint32_t)(7 + i), 0, "k", "v", 1, 0, 0,
                               ENGINE_STORE_SET, 0, NULL),
                 ENGINE_SUCCESS);
    }
    CHECK(current_uid(h, th) == 50);
    CHECK(stat_u64(h, "manifest", "manifest_updates") == 50);
    CHECK(wait_stat_eq(h, NULL, "curr_items", 1));
    return TEST_PASS;
}

static const engine_test tests[] = {
    {"update: success", test_update_success, setup_wait_ready, NULL, CFG, false},
    {"update: invalid JSON and rule breaks", test_invalid_json, setup_wait_ready, NULL,
     CFG, false},
    {"update: not a successor", test_not_a_successor, setup_wait_ready, NULL, CFG, false},
    {"update: identical manifest", test_identical, setup_wait_ready, NULL, CFG, false},
    {"update: too busy while another is in flight", test_too_busy, setup_wait_ready, NULL,
     CFG, false},
    {"update: persist fails at open", test_fail_open, setup_wait_ready, NULL, CFG, false},
    {"update: persist fails at write (ENOSPC)", test_fail_write, setup_wait_ready, NULL,
     CFG, false},
    {"update: persist fails at a short write", test_fail_short_write, setup_wait_ready,
     NULL, CFG, false},
    {"update: persist fails at fsync (EIO)", test_fail_fsync, setup_wait_ready, NULL, CFG,
     false},
    {"update: persist fails at rename", test_fail_rename, setup_wait_ready, NULL, CFG,
     false},
    {"update: persist fails at directory fsync", test_fail_dirsync, setup_wait_ready,
     NULL, CFG, false},
    {"update: failed directory fsync leaves the old file",
     test_fail_dirsync_file_restored, setup_wait_ready, NULL, CFG, false},
    {"update: data directory removed", test_data_dir_removed, setup_wait_ready, NULL, CFG,
     false},
    {"update: a cookie reused after its client left", test_cookie_reused_after_disconnect,
     setup_wait_ready, NULL, CFG, false},
    {"update: client disconnects mid-update", test_disconnect_mid_update,
     setup_wait_ready, NULL, CFG, false},
    {"update: destroy while the persist runs", test_destroy_mid_update_running,
     setup_wait_ready, NULL, CFG, false},
    {"update: destroy while the persist is queued", test_destroy_mid_update_queued,
     setup_wait_ready, NULL, CFG, false},
    {"update: queued behind another writer task", test_queued_update_completes,
     setup_wait_ready, NULL, CFG, false},
    {"update: memory-only engine", test_memory_only, NULL, NULL, "num_writer_threads=1",
     false},
    {"update: NULL cookie or manifest", test_null_cookie, setup_wait_ready, NULL, CFG,
     false},
    {"update: scope and collection limits", test_limits, setup_wait_ready, NULL,
     CFG ";max_collections=2;max_scopes=2", false},
    {"update: 50 updates from two cookies", test_many_updates, setup_wait_ready, NULL,
     CFG, false},
    {"warmup: same manifest and uid", test_warmup_same_manifest, setup_wait_ready, NULL,
     CFG, false},
    {"warmup: checksum mismatch fails initialize", test_corrupt_checksum,
     setup_wait_ready, NULL, CFG, false},
    {"warmup: torn file fails initialize", test_corrupt_torn, setup_wait_ready, NULL, CFG,
     false},
    {"warmup: bad header fails initialize", test_corrupt_header, setup_wait_ready, NULL,
     CFG, false},
    {"warmup: rule-breaking manifest fails initialize", test_corrupt_rules,
     setup_wait_ready, NULL, CFG, false},
    {"warmup: leftover temp file removed", test_leftover_temp_file, setup_wait_ready,
     NULL, CFG, false},
    {"warmup: collection counts exact over more collections than tally slots",
     test_warmup_collection_counts, setup_wait_ready, NULL, CFG, false},
    {"warmup: collection dropped before restart", test_dropped_before_restart,
     setup_wait_ready, NULL, CFG, false},
    {"reasons quoting client bytes are valid UTF-8", test_reasons_are_utf8,
     setup_wait_ready, NULL, CFG, false},
    {"data: unknown collection", test_unknown_collection_ops, setup_wait_ready, NULL, CFG,
     false},
    {"data: maxTTL caps expiry", test_max_ttl, setup_wait_ready, NULL, CFG, false},
    {"data: drop hides at once, purger frees", test_drop_hides_and_purges,
     setup_wait_ready, NULL, CFG, false},
    {"data: re-added id sees none of the old items", test_readd_sees_nothing_old,
     setup_wait_ready, NULL, CFG, false},
    {"data: collection, scope and manifest stats", test_collection_stats,
     setup_wait_ready, NULL, CFG, false},
    {"paths: collection and scope ids", test_paths, setup_wait_ready, NULL, CFG, false},
    {NULL, NULL, NULL, NULL, NULL, false},
};

__attribute__((visibility("default"))) const engine_test *get_tests(void)
{
    return tests;
}
