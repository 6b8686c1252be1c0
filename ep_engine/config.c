/*
 * config.c - one table of parameters drives defaults, parsing and stats, so a
 * parameter cannot be parsed but not reported, or reported with another name.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum param_kind { P_U64, P_POW2, P_STRING };

typedef struct param {
    const char *name;
    size_t offset;
    enum param_kind kind;
    uint64_t def, min, max;
} param;

#define U64(field, d, lo, hi)                                                            \
    {                                                                                    \
#field, offsetof(ep_config, field), P_U64, d, lo, hi                             \
    }
#define POW2(field, d, lo, hi)                                                           \
    {                                                                                    \
#field, offsetof(ep_config, field), P_POW2, d, lo, hi                            \
    }

static const param params[] = {
    U64(max_size, UINT64_C(1) << 30, UINT64_C(1) << 20, UINT64_C(1) << 46),
    U64(max_item_size, 20u << 20, 1, 1u << 30),
    U64(max_vbuckets, 1024, 1, 65535),
    POW2(ht_size, 1u << 16, 1024, UINT64_C(1) << 32),
    POW2(ht_locks, 1024, 1, 65536),
    U64(exp_pager_interval_ms, 60000, 1, 86400000),
    U64(num_reader_threads, 2, 1, 64), /* warmup reads shards in parallel */
    U64(num_writer_threads, 2, 1, 64), /* shards are written in parallel */
    U64(num_auxio_threads, 1, 1, 64),
    U64(num_nonio_threads, 1, 1, 64),
    U64(max_scopes, 1000, 1, 1000000),
    U64(max_collections, 1000, 1, 1000000),
    U64(num_shards, 4, 1, 64),
    U64(segment_max_bytes, UINT64_C(64) << 20, 4096, UINT64_C(1) << 40),
    U64(segment_prefill_bytes, 128u << 10, 0, 16u << 20),
    U64(flusher_retry_ms, 100, 1, 60000),
    U64(flusher_batch_delay_ms, 10, 0, 1000),
    U64(compaction_interval_ms, 10000, 1, 86400000),
    U64(compaction_threshold_pct, 50, 1, 100),
    U64(compaction_min_bytes, 1u << 20, 0, UINT64_C(1) << 40),
    U64(mem_high_wat_pct, 85, 1, 100),
    U64(mem_low_wat_pct, 75, 0, 99),
    U64(warmup_arena, 1, 0, 1),
    U64(progress_log_after_ms, 1000, 0, 86400000),
    {"dbname", offsetof(ep_config, dbname), P_STRING, 0, 0,
     sizeof(((ep_config *)0)->dbname) - 1},
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

void ep_config_defaults(ep_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NPARAMS; i++)
        if (params[i].kind != P_STRING)
            *(uint64_t *)((char *)cfg + params[i].offset) = params[i].def;
}

static const param *find_param(const char *name, size_t len)
{
    for (size_t i = 0; i < NPARAMS; i++)
        if (strlen(params[i].name) == len && memcmp(params[i].name, name, len) == 0)
            return &params[i];
    return NULL;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    unsigned long long v = strtoull(buf, NULL, 10);
    if (errno != 0)
        return false;
    *out = v;
    return true;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int set_param(ep_config *cfg, const param *p, const char *val, size_t vlen,
                     char *err, size_t errlen)
{
    char *field = (char *)cfg + p->offset;
    if (p->kind == P_STRING) {
        if (vlen > p->max || memchr(val, '\0', vlen) != NULL) {
            snprintf(err, errlen,
                     "config: value of '%s' is longer than %" PRIu64 " bytes", p->name,
                     p->max);
            return -1;
        }
        memcpy(field, val, vlen);
        field[vlen] = '\0';
        return 0;
    }
    uint64_t v;
    if (!parse_u64(val, vlen, &v) || v < p->min || v > p->max ||
        (p->kind == P_POW2 && (v & (v - 1)) != 0)) {
        snprintf(err, errlen,
                 "config: bad value '%.*s' for '%s': expected %s integer in %" PRIu64
                 "..%" PRIu64,
                 (int)(vlen > 64 ? 64 : vlen), val, p->name,
                 p->kind == P_POW2 ? "a power-of-two" : "an", p->min, p->max);
        return -1;
    }
    *(uint64_t *)field = v;
    return 0;
}

int ep_config_parse(ep_config *cfg, const char *text, char *err, size_t errlen)
{
    if (text == NULL)
        return 0;
    const char *s = text;
    while (*s != '\0') {
        const char *end = strchr(s, ';');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        const char *key = s;
        size_t klen = eq ? (size_t)(eq - s) : len;
        trim(&key, &klen);
        if (eq == NULL) {
            if (klen > 0) {
                snprintf(err, errlen, "config: '%.*s' has no '=value'",
                         (int)(klen > 64 ? 64 : klen), key);
                return -1;
            }
        } else {
            const char *val = eq + 1;
            size_t vlen = (size_t)(s + len - val);
            trim(&val, &vlen);
            const param *p = find_param(key, klen);
            if (p == NULL) {
                snprintf(err, errlen, "config: unknown key '%.*s'",
                         (int)(klen > 64 ? 64 : klen), key);
                return -1;
            }
            if (set_param(cfg, p, val, vlen, err, errlen) != 0)
                return -1;
        }
        s += len;
        if (*s == ';')
            s++;
    }
    if (cfg->mem_low_wat_pct >= cfg->mem_high_wat_pct) {
        snprintf(err, errlen,
                 "config: mem_low_wat_pct (%" PRIu64
                 ") must be below mem_high_wat_pct (%" PRIu64 ")",
                 cfg->mem_low_wat_pct, cfg->mem_high_wat_pct);
        return -1;
    }
    if (cfg->ht_locks > cfg->ht_size) {
        snprintf(err, errlen,
                 "config: ht_locks (%" PRIu64 ") exceeds ht_size (%" PRIu64 ")",
                 cfg->ht_locks, cfg->ht_size);
        return -1;
    }
    return 0;
}

void ep_config_stats(const ep_config *cfg, ep_config_stat_fn add, void *ctx)
{
    char val[32];
    for (size_t i = 0; i < NPARAMS; i++) {
        const char *field = (const char *)cfg + params[i].offset;
        if (params[i].kind == P_STRING) {
            add(params[i].name, field, ctx);
        } else {
            snprintf(val, sizeof(val), "%" PRIu64, *(const uint64_t *)field);
            add(params[i].name, val, ctx);
        }
    }
}
