/*
 * ep_demo - the embedded default job of scripts/run until the host server
 * exists: loads an engine .so through dlopen as a host would, waits for warmup
 * (what an earlier run left on disk comes back), stores and reads items, makes
 * one write durable, shows the error a bad request gets, and prints the
 * engine's stats.
 *
 *   ep_demo /path/to/ep_engine.so [config]
 */
#include "../engine_api.h"
#include "../testsuite/mock_server/mock_server.h"

#include <dlfcn.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void print_stat(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                       void *ctx)
{
    (void)ctx;
    printf("  %-28.*s %.*s\n", (int)klen, key, (int)vlen, val);
}

static engine_errc set(engine_handle *h, const void *cookie, const char *key,
                       const char *val)
{
    engine_doc_key k = {0, (uint16_t)strlen(key), key};
    engine_item *it;
    engine_errc rc = h->allocate(h, cookie, &it, &k, strlen(val), 0, 0, 0, 0);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    memcpy(info.value.iov_base, val, strlen(val));
    rc = h->store(h, cookie, it, NULL, ENGINE_STORE_SET);
    h->release(h, it);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ep_demo /path/to/ep_engine.so [config]\n");
        return 2;
    }
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "ep_demo: %s\n", dlerror());
        return 1;
    }
    engine_create_instance_fn create;
    *(void **)&create = dlsym(dl, "create_instance");
    if (create == NULL) {
        fprintf(stderr, "ep_demo: no create_instance in %s\n", argv[1]);
        return 1;
    }
    mock_set_log_echo(true);
    engine_handle *h = NULL;
    engine_errc rc = create(ENGINE_API_VERSION, mock_get_server_api, &h);
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "ep_demo: create_instance failed: 0x%x\n", rc);
        return 1;
    }
    const engine_info *info;
    h->get_info(h, &info);
    printf("loaded %s (ABI version %llu)\n", info->description,
           (unsigned long long)h->interface);
    const char *config = argc > 2 ? argv[2] : "";
    rc = h->initialize(h, config);
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "ep_demo: initialize('%s') failed: 0x%x\n", config, rc);
        h->destroy(h, true);
        return 1;
    }
    const void *cookie = mock_cookie_create();
    /* Warmup: data calls answer temporary_failure until it is done. */
    engine_errc probe;
    do {
        engine_doc_key k = {0, 5, "probe"};
        engine_item *it;
        probe = h->get(h, cookie, &it, &k, 0);
        if (probe == ENGINE_SUCCESS)
            h->release(h, it);
        if (probe == ENGINE_TEMPORARY_FAILURE)
            usleep(10000);
    } while (probe == ENGINE_TEMPORARY_FAILURE);
    printf("warmup:\n");
    h->get_stats(h, cookie, "warmup", print_stat, NULL);
    char key[32], val[64];
    const int n = 10000;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "user:%05d", i);
        char name[32];
        snprintf(name, sizeof(name), "user %d", i);
        json_t *doc = json_pack("{s:i,s:s}", "id", i, "name", name);
        size_t vlen = doc ? json_dumpb(doc, val, sizeof(val) - 1, JSON_COMPACT) : 0;
        val[vlen < sizeof(val) ? vlen : 0] = '\0';
        json_decref(doc);
        if ((rc = set(h, cookie, key, val)) != ENGINE_SUCCESS) {
            fprintf(stderr, "store %s failed: 0x%x\n", key, rc);
            return 1;
        }
    }
    printf("stored %d items\n", n);
    int found = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "user:%05d", i);
        engine_doc_key k = {0, (uint16_t)strlen(key), key};
        engine_item *it;
        if (h->get(h, cookie, &it, &k, 0) == ENGINE_SUCCESS) {
            engine_item_info ii;
            h->get_item_info(h, it, &ii);
            if (i == 42)
                printf("get user:00042 -> %.*s (cas %llu)\n", (int)ii.value.iov_len,
                       (const char *)ii.value.iov_base, (unsigned long long)ii.cas);
            found++;
            h->release(h, it);
        }
    }
    printf("read back %d of %d items\n", found, n);
    /* A durable write: would_block, then the notify once it is on disk. */
    engine_doc_key dk = {0, 7, "durable"};
    engine_item *dit;
    if (h->allocate(h, cookie, &dit, &dk, 5, 0, 0, 0, 0) == ENGINE_SUCCESS) {
        engine_item_info ii;
        h->get_item_info(h, dit, &ii);
        memcpy(ii.value.iov_base, "fsync", 5);
        uint64_t t0 = 0, cas = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        mock_call_begin(cookie);
        rc = h->store_durable(h, cookie, dit, &cas, ENGINE_STORE_SET,
                              ENGINE_DURABILITY_PERSIST);
        mock_call_end(cookie, rc);
        if (rc == ENGINE_WOULD_BLOCK &&
            mock_wait_notify(cookie, 30000) == ENGINE_SUCCESS) {
            mock_call_begin(cookie);
            rc = h->store_durable(h, cookie, dit, &cas, ENGINE_STORE_SET,
                                  ENGINE_DURABILITY_PERSIST);
            mock_call_end(cookie, rc);
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t took = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - t0;
        if (rc == ENGINE_SUCCESS)
            printf("durable write: on disk (cas %llu) in %.0f us\n",
                   (unsigned long long)cas, (double)took / 1000.0);
        else
            printf("durable write: status 0x%x: %s\n", rc, mock_cookie_error(cookie));
        h->release(h, dit);
    }
    engine_doc_key bad = {0x77, 3, "key"};
    engine_item *it;
    rc = h->get(h, cookie, &it, &bad, 0);
    printf("get from unknown collection 0x77 -> status 0x%x: %s\n", rc,
           mock_cookie_error(cookie));
    printf("stats:\n");
    h->get_stats(h, cookie, NULL, print_stat, NULL);
    h->destroy(h, false);
    printf("engine destroyed cleanly\n");
    return found == n ? 0 : 1;
}
