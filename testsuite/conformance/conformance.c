/*
 * conformance.c - ABI conformance tests (Check) for any engine .so of this ABI.
 *
 *   conformance /path/to/engine.so
 *
 * They use only engine_api.h and the mock server; they assume no configuration
 * key of any particular engine (the empty config must be valid).
 */
#include "../../engine_api.h"
#include "../mock_server/mock_server.h"
#include "../unit/run_suite.h"

#include <check.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *engine_path;
static engine_create_instance_fn create_fn;

static void load_engine(void)
{
    void *dl = dlopen(engine_path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "dlopen: %s", dlerror());
    *(void **)&create_fn = dlsym(dl, "create_instance");
    ck_assert_msg(create_fn != NULL, "no create_instance in %s", engine_path);
    mock_reset();
}

static engine_handle *new_engine(const char *config)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->initialize(h, config), ENGINE_SUCCESS);
    return h;
}

static void assert_contract_kept(void)
{
    char buf[4096];
    int n = mock_check(buf, sizeof(buf));
    ck_assert_msg(n == 0, "%s", buf);
}

/* The client leaves, the engine is destroyed: every would_block had its one
 * notify and nothing stays reserved. */
static void finish_engine(engine_handle *h, const void *c)
{
    h->disconnect(h, c);
    h->destroy(h, false);
    mock_engine_destroyed(true);
    assert_contract_kept();
    ck_assert_int_eq(mock_cookie_reservations(c), 0);
}

static engine_errc store_kv(engine_handle *h, const void *cookie, const char *key,
                            const char *val)
{
    engine_doc_key k = {0, (uint16_t)strlen(key), key};
    engine_item *it = NULL;
    mock_call_begin(cookie);
    engine_errc rc = h->allocate(h, cookie, &it, &k, strlen(val), 0, 0, 0, 0);
    mock_call_end(cookie, rc);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    ck_assert_int_eq(h->get_item_info(h, it, &info), ENGINE_SUCCESS);
    memcpy(info.value.iov_base, val, strlen(val));
    mock_call_begin(cookie);
    rc = h->store(h, cookie, it, NULL, ENGINE_STORE_SET);
    mock_call_end(cookie, rc);
    h->release(h, it);
    return rc;
}

START_TEST(version_zero_not_supported)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(0, mock_get_server_api, &h), ENGINE_NOT_SUPPORTED);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(future_version_negotiated_down)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION + 1000, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_ge(h->interface, 1);
    ck_assert_uint_le(h->interface, ENGINE_API_VERSION + 1000);
    h->destroy(h, true);
}
END_TEST

START_TEST(v1_host_gets_v1)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION_1, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_uint_eq(h->interface, ENGINE_API_VERSION_1);
    ck_assert_int_eq(h->initialize(h, ""), ENGINE_SUCCESS);
    ck_assert_int_eq(store_kv(h, NULL, "k", "v"), ENGINE_SUCCESS);
    h->destroy(h, false);
}
END_TEST

START_TEST(own_version_exact)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION_1, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_uint_eq(h->interface, ENGINE_API_VERSION_1);
    h->destroy(h, true);
}
END_TEST

START_TEST(null_arguments_to_create)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, NULL),
                     ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, NULL, &h), ENGINE_INVALID_ARGUMENTS);
    ck_assert_ptr_null(h);
}
END_TEST

START_TEST(mandatory_members_present)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    void (*const *members)(void) =
        (void (*const *)(void))((const char *)h + sizeof(uint64_t));
    /* Every member is a function pointer after the version field: 18 in v1, 21
     * in v2, 23 in v3, 25 in v4. Only those of the version the engine reported
     * are read. */
    ck_assert_uint_eq((sizeof(engine_handle) - sizeof(uint64_t)) / sizeof(void (*)(void)),
                      25);
    size_t n = h->interface >= ENGINE_API_VERSION_4   ? 25
               : h->interface >= ENGINE_API_VERSION_3 ? 23
               : h->interface >= ENGINE_API_VERSION_2 ? 21
                                                      : 18;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(members[i] != NULL, "vtable member %zu is NULL", i);
    h->destroy(h, true);
}
END_TEST

START_TEST(get_info_stable)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    const engine_info *before = NULL, *after = NULL;
    ck_assert_int_eq(h->get_info(h, &before), ENGINE_SUCCESS);
    ck_assert_ptr_nonnull(before->description);
    char desc[256];
    snprintf(desc, sizeof(desc), "%s", before->description);
    uint64_t features = before->features;
    ck_assert_int_eq(h->initialize(h, ""), ENGINE_SUCCESS);
    ck_assert_int_eq(store_kv(h, NULL, "k", "v"), ENGINE_SUCCESS);
    ck_assert_int_eq(h->get_info(h, &after), ENGINE_SUCCESS);
    ck_assert_str_eq(after->description, desc);
    ck_assert_uint_eq(after->features, features);
    ck_assert_int_eq(h->get_info(h, NULL), ENGINE_INVALID_ARGUMENTS);
    h->destroy(h, false);
}
END_TEST

START_TEST(bad_config_fails_cleanly)
{
    const char *bad[] = {"this_key_is_not_known_to_any_engine=1", "===", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        engine_handle *h = NULL;
        ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, &h),
                         ENGINE_SUCCESS);
        engine_errc rc = h->initialize(h, bad[i]);
        ck_assert_msg(rc != ENGINE_SUCCESS, "config '%s' accepted", bad[i]);
        h->destroy(h, true);
    }
}
END_TEST

START_TEST(two_instances_independent)
{
    engine_handle *a = new_engine(""), *b = new_engine("");
    ck_assert_int_eq(store_kv(a, NULL, "k", "from-a"), ENGINE_SUCCESS);
    engine_doc_key k = {0, 1, "k"};
    engine_item *it = NULL;
    ck_assert_int_eq(b->get(b, NULL, &it, &k, 0), ENGINE_NO_SUCH_KEY);
    ck_assert_int_eq(store_kv(b, NULL, "k", "from-b"), ENGINE_SUCCESS);
    ck_assert_int_eq(a->flush(a, NULL), ENGINE_SUCCESS);
    ck_assert_int_eq(b->get(b, NULL, &it, &k, 0), ENGINE_SUCCESS);
    engine_item_info info;
    ck_assert_int_eq(b->get_item_info(b, it, &info), ENGINE_SUCCESS);
    ck_assert_uint_eq(info.value.iov_len, 6);
    ck_assert_int_eq(memcmp(info.value.iov_base, "from-b", 6), 0);
    b->release(b, it);
    a->destroy(a, false);
    ck_assert_int_eq(store_kv(b, NULL, "k2", "still-here"), ENGINE_SUCCESS);
    b->destroy(b, false);
}
END_TEST

START_TEST(destroy_while_items_held)
{
    engine_handle *h = new_engine("");
    ck_assert_int_eq(store_kv(h, NULL, "held", "value"), ENGINE_SUCCESS);
    engine_doc_key k = {0, 4, "held"};
    engine_item *got = NULL, *fresh = NULL;
    ck_assert_int_eq(h->get(h, NULL, &got, &k, 0), ENGINE_SUCCESS);
    ck_assert_int_eq(h->allocate(h, NULL, &fresh, &k, 3, 0, 0, 0, 0), ENGINE_SUCCESS);
    h->destroy(h, false);
    engine_item_info info;
    ck_assert_int_eq(h->get_item_info(h, got, &info), ENGINE_SUCCESS);
    ck_assert_int_eq(memcmp(info.value.iov_base, "value", 5), 0);
    h->release(h, fresh);
    h->release(h, got);
}
END_TEST

START_TEST(destroy_without_initialize)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    h->destroy(h, false);
}
END_TEST

/* Every call that may block, with a cookie: a would_block must be answered by
 * exactly one notify from another thread. */
START_TEST(would_block_notified_once)
{
    engine_handle *h = new_engine("");
    const void *c = mock_cookie_create();
    const char *manifest =
        "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
        "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]}]}";
    for (int round = 0; round < 3; round++) {
        engine_errc rc;
        for (;;) {
            mock_call_begin(c);
            rc = h->set_collection_manifest(h, c, manifest, strlen(manifest));
            mock_call_end(c, rc);
            if (rc != ENGINE_WOULD_BLOCK)
                break;
            rc = mock_wait_notify(c, 30000);
            if (rc != ENGINE_SUCCESS)
                break; /* the notify's status is the result; no re-call */
        }
        ck_assert_int_ne(rc, ENGINE_WOULD_BLOCK);
        ck_assert_int_eq(store_kv(h, c, "k", "v"), ENGINE_SUCCESS);
    }
    finish_engine(h, c);
}
END_TEST

/* A host's server API with one member left out (engine_api.h: every member of
 * the version the host reports is required). */
static engine_server_api partial_api;
static const engine_server_api *get_partial_api(void)
{
    return &partial_api;
}

START_TEST(incomplete_server_api_refused)
{
    const engine_server_api *full = mock_get_server_api();
    for (int member = 0; member < 3; member++) {
        partial_api = *full;
        if (member == 0)
            partial_api.cookie.set_error_context = NULL;
        else if (member == 1)
            partial_api.cookie.set_error_manifest_uid = NULL;
        else
            partial_api.core.abstime = NULL;
        engine_handle *h = NULL;
        ck_assert_int_eq(create_fn(ENGINE_API_VERSION, get_partial_api, &h),
                         ENGINE_INVALID_ARGUMENTS);
        ck_assert_ptr_null(h);
    }
}
END_TEST

/* Runs set_collection_manifest as a host does, or, with `recall` false, stops
 * at the notify as a host does whose re-call could not be made. */
static engine_errc host_set_manifest(engine_handle *h, const void *c, const char *json,
                                     bool recall)
{
    for (;;) {
        mock_call_begin(c);
        engine_errc rc = h->set_collection_manifest(h, c, json, strlen(json));
        mock_call_end(c, rc);
        if (rc != ENGINE_WOULD_BLOCK)
            return rc;
        rc = mock_wait_notify(c, 30000);
        if (rc != ENGINE_SUCCESS || !recall)
            return rc;
    }
}

/* Rule 7: a host that does not re-call after a success notify leaves an
 * outcome behind; the next call on the cookie that is another request must be
 * served as one, not answered with that outcome. */
START_TEST(no_recall_after_success_notify)
{
    engine_handle *h = new_engine("");
    const engine_info *info;
    ck_assert_int_eq(h->get_info(h, &info), ENGINE_SUCCESS);
    if (!(info->features & ENGINE_FEATURE_COLLECTIONS)) {
        h->destroy(h, true);
        return;
    }
    const void *c = mock_cookie_create();
    const char *m1 = "{\"uid\":\"1\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                     "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]},"
                     "{\"name\":\"s\",\"uid\":\"8\",\"collections\":["
                     "{\"name\":\"one\",\"uid\":\"8\"}]}]}";
    const char *m2 = "{\"uid\":\"2\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                     "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]},"
                     "{\"name\":\"s\",\"uid\":\"8\",\"collections\":["
                     "{\"name\":\"one\",\"uid\":\"8\"},"
                     "{\"name\":\"two\",\"uid\":\"9\"}]}]}";
    ck_assert_int_eq(host_set_manifest(h, c, m1, false), ENGINE_SUCCESS);
    ck_assert_int_eq(host_set_manifest(h, c, m2, true), ENGINE_SUCCESS);
    uint64_t uid = 0;
    uint32_t cid = 0;
    mock_call_begin(c);
    engine_errc rc = h->get_collection_id(h, c, "s.two", 5, &uid, &cid);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_SUCCESS);
    ck_assert_uint_eq(uid, 2);
    ck_assert_uint_eq(cid, 9);
    /* An older manifest is refused, though an outcome is uncollected again. */
    const char *m3 = "{\"uid\":\"3\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                     "\"collections\":[]}]}";
    ck_assert_int_eq(host_set_manifest(h, c, m3, false), ENGINE_SUCCESS);
    ck_assert_int_eq(host_set_manifest(h, c, m1, true),
                     ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST);
    /* An uncollected outcome is freed at disconnect (ASan's leak check). */
    const char *m4 = "{\"uid\":\"4\",\"scopes\":[{\"name\":\"_default\",\"uid\":\"0\","
                     "\"collections\":[{\"name\":\"_default\",\"uid\":\"0\"}]}]}";
    ck_assert_int_eq(host_set_manifest(h, c, m4, false), ENGINE_SUCCESS);
    finish_engine(h, c);
}
END_TEST

/* v3: a lock refuses other writers and locks until unlock with its CAS. */
START_TEST(v3_item_locks)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION_3, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_int_eq(h->initialize(h, ""), ENGINE_SUCCESS);
    if (h->interface < ENGINE_API_VERSION_3) {
        h->destroy(h, true);
        return; /* an engine of an older interface has no locks */
    }
    ck_assert_ptr_nonnull(h->get_locked);
    ck_assert_ptr_nonnull(h->unlock);
    const void *c = mock_cookie_create();
    ck_assert_int_eq(store_kv(h, c, "k", "v"), ENGINE_SUCCESS);
    engine_doc_key k = {0, 1, "k"};
    engine_item *it = NULL;
    uint64_t lock_cas = 0, again = 0;
    mock_call_begin(c);
    engine_errc rc = h->get_locked(h, c, &it, &k, 0, 5, &lock_cas);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_SUCCESS);
    h->release(h, it);
    ck_assert_int_eq(store_kv(h, c, "k", "w"), ENGINE_LOCKED);
    mock_call_begin(c);
    rc = h->get_locked(h, c, &it, &k, 0, 5, &again);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_LOCKED);
    mock_call_begin(c);
    rc = h->unlock(h, c, &k, 0, lock_cas);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_SUCCESS);
    ck_assert_int_eq(store_kv(h, c, "k", "w"), ENGINE_SUCCESS);
    finish_engine(h, c);
}
END_TEST

static void count_result(size_t index, engine_errc status, const void *value, size_t len,
                         void *ctx)
{
    (void)index, (void)value, (void)len;
    if (status == ENGINE_SUCCESS)
        (*(int *)ctx)++;
}

/* v4: a v3 host gets no sub-document members it could read; a v4 host gets
 * both, and they answer their documented statuses. */
START_TEST(v4_subdoc)
{
    engine_handle *h = NULL;
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION_3, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_uint_le(h->interface, ENGINE_API_VERSION_3);
    h->destroy(h, true);
    ck_assert_int_eq(create_fn(ENGINE_API_VERSION_4, mock_get_server_api, &h),
                     ENGINE_SUCCESS);
    ck_assert_int_eq(h->initialize(h, ""), ENGINE_SUCCESS);
    if (h->interface < ENGINE_API_VERSION_4) {
        h->destroy(h, true);
        return;
    }
    const void *c = mock_cookie_create();
    ck_assert_int_eq(store_kv(h, c, "d", "{\"n\":1}"), ENGINE_SUCCESS);
    engine_doc_key k = {0, 1, "d"}, missing = {0, 1, "m"};
    engine_subdoc_spec get = {ENGINE_SUBDOC_GET, 0, 1, 0, "n", NULL};
    engine_subdoc_spec add = {ENGINE_SUBDOC_COUNTER, 0, 1, 1, "n", "1"};
    int ok = 0;
    uint64_t cas = 0;
    size_t failed = 0;
    mock_call_begin(c);
    engine_errc rc = h->subdoc_lookup(h, c, &k, 0, &get, 1, 0, count_result, &ok, &cas);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_SUCCESS);
    ck_assert_int_eq(ok, 1);
    ck_assert_uint_ne(cas, 0);
    mock_call_begin(c);
    rc = h->subdoc_mutate(h, c, &k, 0, &add, 1, 0, 0, 0, ENGINE_DURABILITY_NONE,
                          count_result, &ok, &cas, &failed);
    mock_call_end(c, rc);
    ck_assert_int_eq(rc, ENGINE_SUCCESS);
    ck_assert_int_eq(ok, 2);
    /* Bad calls: a mutation spec in a lookup, no specs, a missing document, a
     * durable mutation without a data directory, a NULL callback. */
    rc = h->subdoc_lookup(h, c, &k, 0, &add, 1, 0, count_result, &ok, &cas);
    ck_assert_int_eq(rc, ENGINE_SUBDOC_INVALID_COMBO);
    rc = h->subdoc_lookup(h, c, &k, 0, &get, 0, 0, count_result, &ok, &cas);
    ck_assert_int_eq(rc, ENGINE_SUBDOC_INVALID_COMBO);
    rc = h->subdoc_lookup(h, c, &missing, 0, &get, 1, 0, count_result, &ok, &cas);
    ck_assert_int_eq(rc, ENGINE_NO_SUCH_KEY);
    rc = h->subdoc_mutate(h, c, &k, 0, &add, 1, 0, 0, 0, ENGINE_DURABILITY_PERSIST,
                          count_result, &ok, &cas, &failed);
    ck_assert_int_eq(rc, ENGINE_NOT_SUPPORTED);
    rc = h->subdoc_lookup(h, c, &k, 0, &get, 1, 0, NULL, NULL, &cas);
    ck_assert_int_eq(rc, ENGINE_INVALID_ARGUMENTS);
    ck_assert_int_eq(ok, 2);
    finish_engine(h, c);
}
END_TEST

typedef struct hammer {
    engine_handle *h;
    int id;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *m = arg;
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "t%d-%d", m->id, i % 100);
        if (store_kv(m->h, NULL, key, "x") != ENGINE_SUCCESS)
            return (void *)1;
    }
    return NULL;
}

START_TEST(concurrent_calls_from_host_threads)
{
    engine_handle *h = new_engine("");
    pthread_t t[4];
    hammer m[4];
    for (int i = 0; i < 4; i++) {
        m[i] = (hammer){h, i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_main, &m[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(t[i], &res);
        ck_assert_ptr_null(res);
    }
    h->destroy(h, false);
}
END_TEST

START_TEST(error_codes_have_stable_values)
{
    ck_assert_int_eq(ENGINE_SUCCESS, 0x00);
    ck_assert_int_eq(ENGINE_NO_SUCH_KEY, 0x01);
    ck_assert_int_eq(ENGINE_KEY_EXISTS, 0x02);
    ck_assert_int_eq(ENGINE_NO_MEMORY, 0x03);
    ck_assert_int_eq(ENGINE_NOT_STORED, 0x04);
    ck_assert_int_eq(ENGINE_INVALID_ARGUMENTS, 0x05);
    ck_assert_int_eq(ENGINE_NOT_SUPPORTED, 0x06);
    ck_assert_int_eq(ENGINE_WOULD_BLOCK, 0x07);
    ck_assert_int_eq(ENGINE_TOO_BIG, 0x08);
    ck_assert_int_eq(ENGINE_DISCONNECT, 0x0a);
    ck_assert_int_eq(ENGINE_NOT_MY_VBUCKET, 0x0c);
    ck_assert_int_eq(ENGINE_TEMPORARY_FAILURE, 0x0d);
    ck_assert_int_eq(ENGINE_OUT_OF_RANGE, 0x0e);
    ck_assert_int_eq(ENGINE_TOO_BUSY, 0x11);
    ck_assert_int_eq(ENGINE_DELTA_BADVAL, 0x13);
    ck_assert_int_eq(ENGINE_LOCKED, 0x14);
    ck_assert_int_eq(ENGINE_NOT_LOCKED, 0x80);
    ck_assert_int_eq(ENGINE_UNKNOWN_COLLECTION, 0x16);
    ck_assert_int_eq(ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST, 0x19);
    ck_assert_int_eq(ENGINE_UNKNOWN_SCOPE, 0x1b);
    ck_assert_int_eq(ENGINE_SUBDOC_PATH_ENOENT, 0xc0);
    ck_assert_int_eq(ENGINE_SUBDOC_MULTI_PATH_FAILURE, 0xcc);
    ck_assert_int_eq(ENGINE_SUBDOC_XATTR_INVALID_FLAG_COMBO, 0xce);
    ck_assert_int_eq(ENGINE_SUBDOC_XATTR_UNKNOWN_MACRO, 0xd0);
    ck_assert_int_eq(ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR, 0xd1);
    ck_assert_int_eq(ENGINE_SUBDOC_XATTR_CANT_MODIFY_VATTR, 0xd2);
    ck_assert_int_eq(ENGINE_SUBDOC_INVALID_XATTR_ORDER, 0xd4);
    ck_assert_int_eq(ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED, 0xd6);
    ck_assert_int_eq(ENGINE_XATTR_EINVAL, 0x87);
    ck_assert_int_eq(ENGINE_FAILED, 0xff);
}
END_TEST

static Suite *conformance_suite(void)
{
    Suite *s = suite_create("abi conformance");
    TCase *tc = tcase_create("contract");
    tcase_add_unchecked_fixture(tc, load_engine, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, version_zero_not_supported);
    tcase_add_test(tc, future_version_negotiated_down);
    tcase_add_test(tc, own_version_exact);
    tcase_add_test(tc, v1_host_gets_v1);
    tcase_add_test(tc, null_arguments_to_create);
    tcase_add_test(tc, mandatory_members_present);
    tcase_add_test(tc, get_info_stable);
    tcase_add_test(tc, bad_config_fails_cleanly);
    tcase_add_test(tc, two_instances_independent);
    tcase_add_test(tc, destroy_while_items_held);
    tcase_add_test(tc, destroy_without_initialize);
    tcase_add_test(tc, would_block_notified_once);
    tcase_add_test(tc, concurrent_calls_from_host_threads);
    tcase_add_test(tc, error_codes_have_stable_values);
    tcase_add_test(tc, incomplete_server_api_refused);
    tcase_add_test(tc, no_recall_after_success_notify);
    tcase_add_test(tc, v3_item_locks);
    tcase_add_test(tc, v4_subdoc);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    engine_path = argc > 1 ? argv[1] : getenv("ENGINE_SO");
    if (engine_path == NULL) {
        fprintf(stderr, "usage: conformance /path/to/engine.so\n");
        return 2;
    }
    return run_suite(conformance_suite());
}
