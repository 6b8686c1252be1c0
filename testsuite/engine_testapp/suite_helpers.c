/*
 * suite_helpers.c - see suite_helpers.h.
 */
#include "suite_helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

engine_doc_key doc_key(uint32_t collection, const char *key)
{
    engine_doc_key k = {collection, (uint16_t)strlen(key), key};
    return k;
}

engine_errc kv_store_full(engine_handle *h, const void *cookie, uint32_t collection,
                          uint16_t vb, const char *key, const void *val, size_t vlen,
                          uint32_t flags, uint32_t exptime, engine_store_op op,
                          uint64_t cas, uint64_t *cas_out)
{
    return kv_store_dt(h, cookie, key, val, vlen, 0, collection, vb, flags, exptime, op,
                       cas, cas_out);
}

engine_errc kv_store_dt(engine_handle *h, const void *cookie, const char *key,
                        const void *val, size_t vlen, uint8_t datatype,
                        uint32_t collection, uint16_t vb, uint32_t flags,
                        uint32_t exptime, engine_store_op op, uint64_t cas,
                        uint64_t *cas_out)
{
    engine_doc_key k = doc_key(collection, key);
    engine_item *it = NULL;
    engine_errc rc = h->allocate(h, cookie, &it, &k, vlen, flags, exptime, datatype, vb);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    rc = h->get_item_info(h, it, &info);
    if (rc == ENGINE_SUCCESS) {
        if (vlen > 0)
            memcpy(info.value.iov_base, val, vlen);
        h->item_set_cas(h, it, cas);
        rc = h->store(h, cookie, it, cas_out, op);
    }
    h->release(h, it);
    return rc;
}

size_t xattr_value(char *buf, size_t cap, const char *const *pairs, const char *body)
{
    size_t at = 4;
    for (size_t i = 0; pairs[i] != NULL; i += 2) {
        size_t kl = strlen(pairs[i]), vl = strlen(pairs[i + 1]), pl = kl + vl + 2;
        if (at + 4 + pl > cap)
            return 0;
        buf[at] = (char)(pl >> 24);
        buf[at + 1] = (char)(pl >> 16);
        buf[at + 2] = (char)(pl >> 8);
        buf[at + 3] = (char)pl;
        memcpy(buf + at + 4, pairs[i], kl + 1);
        memcpy(buf + at + 4 + kl + 1, pairs[i + 1], vl + 1);
        at += 4 + pl;
    }
    size_t total = at - 4, bl = strlen(body);
    if (at + bl > cap)
        return 0;
    buf[0] = (char)(total >> 24);
    buf[1] = (char)(total >> 16);
    buf[2] = (char)(total >> 8);
    buf[3] = (char)total;
    memcpy(buf + at, body, bl);
    return at + bl;
}

size_t xattr_section_len(const void *value, size_t n)
{
    const unsigned char *v = value;
    if (n < 4)
        return 0;
    size_t total =
        4 + ((size_t)v[0] << 24 | (size_t)v[1] << 16 | (size_t)v[2] << 8 | v[3]);
    return total <= n ? total : 0;
}

engine_errc kv_store(engine_handle *h, const void *cookie, const char *key,
                     const char *val, engine_store_op op, uint64_t cas, uint64_t *cas_out)
{
    return kv_store_full(h, cookie, 0, 0, key, val, strlen(val), 0, 0, op, cas, cas_out);
}

engine_errc kv_get_full(engine_handle *h, const void *cookie, uint32_t collection,
                        uint16_t vb, const char *key, char *buf, size_t cap,
                        engine_item_info *info)
{
    engine_doc_key k = doc_key(collection, key);
    engine_item *it = NULL;
    engine_errc rc = h->get(h, cookie, &it, &k, vb);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info local;
    if (info == NULL)
        info = &local;
    rc = h->get_item_info(h, it, info);
    if (rc == ENGINE_SUCCESS && buf != NULL && cap > 0) {
        size_t n = info->value.iov_len < cap - 1 ? info->value.iov_len : cap - 1;
        memcpy(buf, info->value.iov_base, n);
        buf[n] = '\0';
    }
    h->release(h, it);
    /* Pointers in *info are not valid after release; keep only the scalars. */
    info->key.bytes = NULL;
    info->value.iov_base = NULL;
    return rc;
}

engine_errc kv_get(engine_handle *h, const void *cookie, const char *key, char *buf,
                   size_t cap)
{
    return kv_get_full(h, cookie, 0, 0, key, buf, cap, NULL);
}

engine_errc kv_remove(engine_handle *h, const void *cookie, const char *key, uint64_t cas)
{
    engine_doc_key k = doc_key(0, key);
    return h->remove(h, cookie, &k, cas, 0, NULL);
}

typedef struct stat_find {
    const char *name;
    char *buf;
    size_t cap;
    bool found;
    int count;
} stat_find;

static void find_stat(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                      void *ctx)
{
    stat_find *f = ctx;
    f->count++;
    if (f->name == NULL || strlen(f->name) != klen || memcmp(f->name, key, klen) != 0)
        return;
    size_t n = vlen < f->cap - 1 ? vlen : f->cap - 1;
    memcpy(f->buf, val, n);
    f->buf[n] = '\0';
    f->found = true;
}

bool stat_str(engine_handle *h, const char *group, const char *name, char *buf,
              size_t cap)
{
    stat_find f = {name, buf, cap, false, 0};
    if (h->get_stats(h, NULL, group, find_stat, &f) != ENGINE_SUCCESS)
        return false;
    return f.found;
}

uint64_t stat_u64(engine_handle *h, const char *group, const char *name)
{
    char buf[64], *end;
    if (!stat_str(h, group, name, buf, sizeof(buf)) || buf[0] == '\0')
        return UINT64_MAX;
    uint64_t v = strtoull(buf, &end, 10);
    return *end == '\0' ? v : UINT64_MAX;
}

int stat_count(engine_handle *h, const char *group)
{
    char buf[8];
    stat_find f = {NULL, buf, sizeof(buf), false, 0};
    if (h->get_stats(h, NULL, group, find_stat, &f) != ENGINE_SUCCESS)
        return -1;
    return f.count;
}

bool wait_ready(engine_handle *h)
{
    char state[32];
    for (int i = 0; i < 6000; i++) {
        if (!stat_str(h, "warmup", "ep_warmup_state", state, sizeof(state)))
            return true;
        if (strcmp(state, "done") == 0 || strcmp(state, "none") == 0)
            return true;
        if (strcmp(state, "failed") == 0)
            return false;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

bool wait_stat_eq(engine_handle *h, const char *group, const char *name, uint64_t want)
{
    for (int i = 0; i < 2000; i++) {
        if (stat_u64(h, group, name) == want)
            return true;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "stat %s:%s is %llu, waited for %llu\n", group ? group : "", name,
            (unsigned long long)stat_u64(h, group, name), (unsigned long long)want);
    return false;
}

typedef int (*control_fn)(engine_handle *h, const char *cmd, char *why, size_t whylen);

bool engine_control(engine_handle *h, const test_harness *th, const char *cmd)
{
    control_fn fn = (control_fn)(uintptr_t)th->engine_symbol("ep_testing_control");
    char why[256] = "";
    if (fn == NULL || fn(th->real_handle(h), cmd, why, sizeof(why)) != 0) {
        fprintf(stderr, "control('%s') failed: %s\n", cmd, fn ? why : "no hook");
        return false;
    }
    return true;
}

bool setup_wait_ready(engine_handle *h, const test_harness *th)
{
    (void)th;
    return wait_ready(h);
}

bool wait_released(const test_harness *th, const void *cookie, int ms)
{
    for (int i = 0; i < ms && th->reservations(cookie) != 0; i++)
        sleep_ms(1);
    return th->reservations(cookie) == 0;
}
