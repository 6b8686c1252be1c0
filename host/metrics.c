/*
 * metrics.c - GET /metrics for Prometheus (metrics.h).
 *
 * A scrape reads the engine's stats groups through get_stats (the engine
 * takes its locks one stripe at a time: nothing stops for a scrape) and
 * kvhost's own counters (relaxed atomics), and writes them in the text
 * exposition format 0.0.4: a # HELP and # TYPE line per family, counters
 * named *_total, sizes in bytes, times in seconds, histograms with
 * cumulative le buckets from 1 µs to 10 s. Engine figures carry the bucket's
 * name as a label; per-collection and per-scope ones their names.
 *
 * The HTTP side is libevent's evhttp on a thread and event base of its own:
 * other paths answer 404, other methods 405, oversized or malformed requests
 * the 400s evhttp gives them, and a client that sends nothing for a few
 * seconds is cut off; none of it touches the binary protocol's workers.
 */
#include "metrics.h"

#include "../common/utf8.h"
#include "clock.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A connection that sends nothing for this long is cut off (libevent's idle
 * timeout: libevent 2.1's HTTP server has no whole-request deadline and no
 * connection cap). */
#define HTTP_TIMEOUT_S    5
#define HTTP_MAX_HEADERS  8192
#define HTTP_MAX_BODY     1024
#define AUTH_CACHE        8 /* credentials checked recently */
#define AUTH_CACHE_TTL_NS (60ull * 1000000000ull)
#define AUTH_CHECKS_PER_S 10 /* key derivations of failing credentials a second */

static struct {
    struct event_base *base;
    struct evhttp *http;
    pthread_t tid;
    bool running;
    char bucket[128];
    /* Credentials that passed lately (their SHA-256), so a scrape every few
     * seconds does not pay the key derivation each time. Metrics thread only. */
    struct {
        unsigned char digest[32];
        uint64_t at_ns;
    } cache[AUTH_CACHE];
    unsigned next_cache;
    uint64_t fail_second; /* the second of the failures counted in fails */
    unsigned fails;
    _Atomic uint64_t scrapes, auth_failures, not_found;
} m;

/* ---- the text format ---- */

static void family(struct evbuffer *out, const char *name, const char *type,
                   const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped: backslash, double quote and newline. */
static void label_value(char *buf, size_t cap, const char *v, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 3 < cap; i++) {
        char ch = v[i];
        if (ch == '\\' || ch == '"') {
            buf[w++] = '\\';
            buf[w++] = ch;
        } else if (ch == '\n') {
            buf[w++] = '\\';
            buf[w++] = 'n';
        } else {
            buf[w++] = ch;
        }
    }
    buf[w] = '\0';
}

static void sample_u64(struct evbuffer *out, const char *name, const char *labels,
                       uint64_t v)
{
    evbuffer_add_printf(out, "%s%s %" PRIu64 "\n", name, labels, v);
}

static void sample_f(struct evbuffer *out, const char *name, const char *labels, double v)
{
    evbuffer_add_printf(out, "%s%s %.9g\n", name, labels, v);
}

/* A histogram family from cumulative bucket counts at hist_bound_ns. */
static void histogram(struct evbuffer *out, const char *name, const char *labels_inner,
                      const uint64_t *cumulative, uint64_t count, uint64_t sum_ns)
{
    const char *sep = labels_inner[0] ? "," : "";
    for (int i = 0; i < HIST_BUCKETS; i++)
        evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%.9g\"} %" PRIu64 "\n", name,
                            labels_inner, sep, (double)hist_bound_ns(i) / 1e9,
                            cumulative[i]);
    evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name,
                        labels_inner, sep, count);
    evbuffer_add_printf(out, "%s_sum{%s} %.9g\n%s_count{%s} %" PRIu64 "\n", name,
                        labels_inner, (double)sum_ns / 1e9, name, labels_inner, count);
}

/* ---- the engine's stats ---- */

typedef struct stat_kv {
    char *key, *val;
} stat_kv;

typedef struct stat_list {
    stat_kv *v;
    size_t n, cap;
    bool oom;
} stat_list;

static void collect(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                    void *ctx)
{
    stat_list *l = ctx;
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        stat_kv *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    char *k = strndup(key, klen), *s = strndup(val, vlen);
    if (k == NULL || s == NULL) {
        free(k);
        free(s);
        l->oom = true;
        return;
    }
    l->v[l->n++] = (stat_kv){k, s};
}

static void list_free(stat_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].val);
    }
    free(l->v);
    *l = (stat_list){0};
}

static bool read_group(const char *group, stat_list *l)
{
    *l = (stat_list){0};
    engine_errc rc = host.engine->get_stats(host.engine, NULL, group, collect, l);
    if (rc != ENGINE_SUCCESS || l->oom) {
        list_free(l);
        return false;
    }
    return true;
}

static const char *find(const stat_list *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0)
            return l->v[i].val;
    return NULL;
}

static double num(const stat_list *l, const char *key, bool *found)
{
    const char *v = find(l, key);
    *found = v != NULL;
    return v != NULL ? strtod(v, NULL) : 0;
}

/* One engine stat as one sample of its own family. */
typedef struct plain_stat {
    const char *key;
    const char *name; /* the metric; families with labels are written elsewhere */
    const char *type;
    double scale; /* to base units */
    const char *help;
} plain_stat;

static const plain_stat default_stats[] = {
    {"curr_items", "kv_items", "gauge", 1, "Documents in the engine"},
    {"mem_used", "kv_memory_used_bytes", "gauge", 1, "Memory the engine's items use"},
    {"ep_max_size", "kv_memory_quota_bytes", "gauge", 1, "The engine's memory quota"},
    {"ep_mem_high_wat", "kv_memory_high_watermark_bytes", "gauge", 1,
     "Memory use at which values start to be evicted"},
    {"ep_mem_low_wat", "kv_memory_low_watermark_bytes", "gauge", 1,
     "Memory use at which eviction stops"},
    {"total_items", "kv_items_stored_total", "counter", 1, "Items stored since start"},
    {"cmd_set", "kv_stores_total", "counter", 1, "Store operations"},
    {"store_failures", "kv_store_failures_total", "counter", 1, "Stores refused"},
    {"ep_pager_runs", "kv_expiry_pager_runs_total", "counter", 1,
     "Runs of the expiry pager"},
    {"ep_collections_purged_items", "kv_collection_purged_items_total", "counter", 1,
     "Items removed from dropped collections"},
    {"ep_collections_purger_runs", "kv_collection_purger_runs_total", "counter", 1,
     "Runs of the dropped-collection purger"},
    {"ep_oom_errors", "kv_out_of_memory_errors_total", "counter", 1,
     "Writes refused at the memory quota"},
    {"ep_too_big_errors", "kv_too_big_errors_total", "counter", 1,
     "Values refused as larger than max_item_size"},
    {"ep_flushes", "kv_flush_all_total", "counter", 1, "flush_all calls"},
    {"ep_max_vbuckets", "kv_vbuckets_max", "gauge", 1, "vbuckets the engine has"},
    {"ep_flusher_batches", "kv_flusher_batches_total", "counter", 1,
     "Batches written to disk (one fsync each)"},
    {"ep_flusher_records", "kv_flusher_records_total", "counter", 1,
     "Records written to disk"},
    {"ep_flusher_bytes", "kv_flusher_written_bytes_total", "counter", 1,
     "Bytes written to disk by the flusher"},
    {"ep_flusher_failures", "kv_flusher_failures_total", "counter", 1,
     "Batches that failed to write (retried)"},
    {"ep_flusher_deduplicated", "kv_flusher_deduplicated_total", "counter", 1,
     "Writes replaced by a newer one before they reached the disk"},
    {"ep_flusher_prefills", "kv_flusher_prefills_total", "counter", 1,
     "Segment space written ahead while idle"},
    {"ep_queue_size", "kv_disk_queue_items", "gauge", 1, "Writes waiting for the disk"},
    {"ep_disk_bytes", "kv_disk_bytes", "gauge", 1, "Bytes of the data files"},
    {"ep_compactions", "kv_compactions_total", "counter", 1, "Shard compactions"},
    {"ep_compaction_failures", "kv_compaction_failures_total", "counter", 1,
     "Shard compactions that failed"},
    {"ep_compaction_last_us", "kv_compaction_last_duration_seconds", "gauge", 1e-6,
     "How long the last compaction took"},
    {"ep_compaction_last_bytes_before", "kv_compaction_last_before_bytes", "gauge", 1,
     "The last compacted shard's bytes before"},
    {"ep_compaction_last_bytes_after", "kv_compaction_last_after_bytes", "gauge", 1,
     "The last compacted shard's bytes after"},
    {"ep_item_pager_runs", "kv_item_pager_runs_total", "counter", 1,
     "Runs of the item pager (value eviction)"},
    {"ep_num_value_ejects", "kv_value_ejects_total", "counter", 1,
     "Values evicted from memory"},
    {"ep_num_non_resident", "kv_items_non_resident", "gauge", 1,
     "Documents whose value is on disk only"},
    {"ep_bg_fetched", "kv_bg_fetches_total", "counter", 1, "Values read back from disk"},
    {"ep_bg_fetched_inline", "kv_bg_fetches_inline_total", "counter", 1,
     "Of those, values read from the page cache on the caller's thread"},
    {"ep_bg_fetch_failed", "kv_bg_fetch_failures_total", "counter", 1,
     "Background fetches that failed"},
};

static const plain_stat memory_stats[] = {
    {"ep_max_item_size", "kv_item_size_max_bytes", "gauge", 1, "The largest value taken"},
    {"ep_items_allocated", "kv_items_allocated", "gauge", 1, "Items allocated"},
    {"ep_ht_memory", "kv_hashtable_memory_bytes", "gauge", 1, "The hash table's memory"},
    {"ep_arena_reserved_bytes", "kv_arena_reserved_bytes", "gauge", 1,
     "Address space reserved by warmup's item arena"},
    {"ep_arena_resident_bytes", "kv_arena_resident_bytes", "gauge", 1,
     "Memory of warmup's item arena in use"},
};

static const plain_stat warmup_stats[] = {
    {"ep_warmup_records", "kv_warmup_records", "gauge", 1,
     "Records read by the last warmup"},
    {"ep_warmup_bytes", "kv_warmup_bytes", "gauge", 1, "Bytes read by the last warmup"},
    {"ep_warmup_items_loaded", "kv_warmup_items_loaded", "gauge", 1,
     "Items the last warmup loaded"},
    {"ep_warmup_duration_us", "kv_warmup_duration_seconds", "gauge", 1e-6,
     "How long the last warmup took"},
    {"ep_warmup_torn_bytes", "kv_warmup_torn_bytes", "gauge", 1,
     "Bytes of torn segment tails warmup dropped"},
};

static const plain_stat manifest_stats[] = {
    {"manifest_scopes", "kv_manifest_scopes", "gauge", 1, "Scopes in the manifest"},
    {"manifest_collections", "kv_manifest_collections", "gauge", 1,
     "Collections in the manifest"},
    {"manifest_pending", "kv_manifest_update_pending", "gauge", 1,
     "1 while a manifest update is being persisted"},
};

static const char *bucket_label(char *buf, size_t cap)
{
    char v[300];
    label_value(v, sizeof(v), m.bucket, strlen(m.bucket));
    snprintf(buf, cap, "bucket=\"%s\"", v);
    return buf;
}

static void plain_group(struct evbuffer *out, const stat_list *l, const plain_stat *t,
                        size_t n, const char *labels)
{
    for (size_t i = 0; i < n; i++) {
        bool found;
        double v = num(l, t[i].key, &found);
        if (!found)
            continue;
        family(out, t[i].name, t[i].type, t[i].help);
        if (t[i].scale == 1)
            sample_u64(out, t[i].name, labels, (uint64_t)v);
        else
            sample_f(out, t[i].name, labels, v * t[i].scale);
    }
}

/* A family with one label whose values come from several stats. */
typedef struct labelled {
    const char *key, *value;
} labelled;

static void labelled_family(struct evbuffer *out, const stat_list *l, const char *name,
                            const char *type, const char *help, const char *bucket,
                            const char *label, const labelled *v, size_t n)
{
    family(out, name, type, help);
    for (size_t i = 0; i < n; i++) {
        bool found;
        double x = num(l, v[i].key, &found);
        if (!found)
            continue;
        char labels[1300];
        snprintf(labels, sizeof(labels), "{%s,%s=\"%s\"}", bucket, label, v[i].value);
        sample_u64(out, name, labels, (uint64_t)x);
    }
}

static void engine_default(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("", &l))
        return;
    char labels[1300];
    snprintf(labels, sizeof(labels), "{%s}", bucket);
    plain_group(out, &l, default_stats, sizeof(default_stats) / sizeof(default_stats[0]),
                labels);
    static const labelled gets[] = {{"get_hits", "hit"}, {"get_misses", "miss"}},
                          cas[] = {{"cas_hits", "hit"},
                                   {"cas_badval", "mismatch"},
                                   {"cas_misses", "missing"}},
                          dels[] = {{"delete_hits", "hit"}, {"delete_misses", "miss"}},
                          expired[] = {{"expired_access", "access"},
                                       {"expired_pager", "pager"}};
    labelled_family(out, &l, "kv_gets_total", "counter", "Get operations by result",
                    bucket, "result", gets, 2);
    labelled_family(out, &l, "kv_cas_stores_total", "counter",
                    "Stores with a CAS by result", bucket, "result", cas, 3);
    labelled_family(out, &l, "kv_deletes_total", "counter", "Deletes by result", bucket,
                    "result", dels, 2);
    labelled_family(out, &l, "kv_expired_total", "counter",
                    "Expired items removed, by who found them", bucket, "by", expired, 2);
    const char *uid = find(&l, "ep_manifest_uid"); /* hex, as manifests write it */
    if (uid != NULL) {
        family(out, "kv_manifest_uid", "gauge", "The collections manifest's uid");
        sample_u64(out, "kv_manifest_uid", labels, strtoull(uid, NULL, 16));
    }
    const char *state = find(&l, "ep_warmup_state");
    if (state != NULL) {
        family(out, "kv_warmup_state", "gauge",
               "1 for the state warmup is in (loading, done, failed)");
        char v[64];
        label_value(v, sizeof(v), state, strlen(state));
        snprintf(labels, sizeof(labels), "{%s,state=\"%s\"}", bucket, v);
        sample_u64(out, "kv_warmup_state", labels, 1);
    }
    list_free(&l);
}

static void engine_simple(struct evbuffer *out, const char *group, const plain_stat *t,
                          size_t n, const char *bucket)
{
    stat_list l;
    if (!read_group(group, &l))
        return;
    char labels[1300];
    snprintf(labels, sizeof(labels), "{%s}", bucket);
    plain_group(out, &l, t, n, labels);
    list_free(&l);
}

static void engine_manifest(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("manifest", &l))
        return;
    char labels[1300];
    snprintf(labels, sizeof(labels), "{%s}", bucket);
    plain_group(out, &l, manifest_stats,
                sizeof(manifest_stats) / sizeof(manifest_stats[0]), labels);
    static const labelled updates[] = {{"manifest_updates", "applied"},
                                       {"manifest_identical", "identical"},
                                       {"manifest_rejected", "rejected"},
                                       {"manifest_busy", "busy"},
                                       {"manifest_persist_failures", "persist_failed"},
                                       {"manifest_cancelled", "cancelled"}};
    labelled_family(out, &l, "kv_manifest_updates_total", "counter",
                    "Collections manifest updates by outcome", bucket, "result", updates,
                    6);
    list_free(&l);
}

static void engine_vbuckets(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("vbucket-states", &l)) /* counts only: no walk of the items */
        return;
    static const char *const states[] = {"active", "replica", "pending", "dead"};
    uint64_t count[4] = {0};
    for (int s = 0; s < 4; s++) {
        const char *v = find(&l, states[s]);
        count[s] = v != NULL ? strtoull(v, NULL, 10) : 0;
    }
    family(out, "kv_vbuckets", "gauge", "vbuckets by state");
    for (int s = 0; s < 4; s++) {
        char labels[1300];
        snprintf(labels, sizeof(labels), "{%s,state=\"%s\"}", bucket, states[s]);
        sample_u64(out, "kv_vbuckets", labels, count[s]);
    }
    list_free(&l);
}

/* The executor's pools: "pool:<name>:<field>". */
static void engine_tasks(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("tasks", &l))
        return;
    family(out, "kv_executor_threads", "gauge", "Threads of each executor pool");
    for (size_t i = 0; i < l.n; i++) {
        char pool[32], field[32];
        if (sscanf(l.v[i].key, "pool:%31[^:]:%31s", pool, field) != 2 ||
            strcmp(field, "threads") != 0)
            continue;
        char labels[1300];
        snprintf(labels, sizeof(labels), "{%s,pool=\"%s\"}", bucket, pool);
        sample_u64(out, "kv_executor_threads", labels, strtoull(l.v[i].val, NULL, 10));
    }
    family(out, "kv_executor_tasks", "gauge",
           "Tasks of each executor pool: queued (waiting for their time), ready, "
           "running");
    for (size_t i = 0; i < l.n; i++) {
        char pool[32], field[32];
        if (sscanf(l.v[i].key, "pool:%31[^:]:%31s", pool, field) != 2 ||
            strcmp(field, "threads") == 0)
            continue;
        char labels[1300];
        snprintf(labels, sizeof(labels), "{%s,pool=\"%s\",state=\"%s\"}", bucket, pool,
                 field);
        sample_u64(out, "kv_executor_tasks", labels, strtoull(l.v[i].val, NULL, 10));
    }
    list_free(&l);
}

/* Collections ("0x<scope>:0x<collection>:<field>") or scopes
 * ("0x<scope>:<field>"): the engine gives each one's figures together, so
 * one pass gathers them (a scrape of 1,000 collections stays linear). */
typedef struct named {
    char labels[1100];
    uint64_t items, mem, collections, ops[3];
    bool has[4]; /* items, mem, collections, ops */
} named;

static void engine_collections(struct evbuffer *out, const char *bucket, bool scopes)
{
    stat_list l;
    if (!read_group(scopes ? "scopes" : "collections", &l))
        return;
    /* One record per ":name" key (every collection or scope has one). */
    size_t max = 1;
    for (size_t i = 0; i < l.n; i++) {
        const char *last = strrchr(l.v[i].key, ':');
        max += last != NULL && strcmp(last, ":name") == 0;
    }
    named *v = calloc(max, sizeof(*v));
    size_t nn = 0;
    char cur[48] = "";
    char name[300] = "", scope[300] = "";
    for (size_t i = 0; v != NULL && i < l.n; i++) {
        const char *k = l.v[i].key, *last = strrchr(k, ':');
        if (last == NULL || last - k >= (long)sizeof(cur))
            continue;
        if (strncmp(cur, k, (size_t)(last - k)) != 0 || cur[last - k] != '\0') {
            if (nn == max)
                break; /* a collection without a name: the engine's stats changed */
            snprintf(cur, sizeof(cur), "%.*s", (int)(last - k), k);
            nn++;
            name[0] = scope[0] = '\0';
        }
        named *n = &v[nn - 1];
        const char *field = last + 1, *val = l.v[i].val;
        if (strcmp(field, "name") == 0)
            label_value(name, sizeof(name), val, strlen(val));
        else if (strcmp(field, "scope_name") == 0)
            label_value(scope, sizeof(scope), val, strlen(val));
        else if (strcmp(field, "items") == 0)
            n->items = strtoull(val, NULL, 10), n->has[0] = true;
        else if (strcmp(field, "mem_used") == 0)
            n->mem = strtoull(val, NULL, 10), n->has[1] = true;
        else if (strcmp(field, "collections") == 0)
            n->collections = strtoull(val, NULL, 10), n->has[2] = true;
        else if (strncmp(field, "ops_", 4) == 0) {
            int o = strcmp(field, "ops_get") == 0      ? 0
                    : strcmp(field, "ops_store") == 0  ? 1
                    : strcmp(field, "ops_delete") == 0 ? 2
                                                       : -1;
            if (o >= 0)
                n->ops[o] = strtoull(val, NULL, 10), n->has[3] = true;
        }
        if (scopes)
            snprintf(n->labels, sizeof(n->labels), "%s,scope=\"%s\"", bucket, name);
        else
            snprintf(n->labels, sizeof(n->labels), "%s,scope=\"%s\",collection=\"%s\"",
                     bucket, scope, name);
    }
    const char *what = scopes ? "scope" : "collection";
    char fam[64], help[96], labels[1300];
    static const char *const suffix[3] = {"items", "memory_used_bytes", "collections"};
    static const char *const helps[3] = {
        "Documents in the %s", "Memory of the %s's items", "Collections in the %s"};
    for (int f = 0; v != NULL && f < 3; f++) {
        if (!scopes && f == 2)
            continue;
        snprintf(fam, sizeof(fam), "kv_%s_%s", what, suffix[f]);
        snprintf(help, sizeof(help), helps[f], what);
        family(out, fam, "gauge", help);
        for (size_t i = 0; i < nn; i++) {
            if (!v[i].has[f])
                continue;
            snprintf(labels, sizeof(labels), "{%s}", v[i].labels);
            sample_u64(out, fam, labels,
                       f == 0   ? v[i].items
                       : f == 1 ? v[i].mem
                                : v[i].collections);
        }
    }
    if (v != NULL) {
        static const char *const ops[] = {"get", "store", "delete"};
        snprintf(fam, sizeof(fam), "kv_%s_ops_total", what);
        snprintf(help, sizeof(help), "Operations on the %s's documents, by op", what);
        family(out, fam, "counter", help);
        for (size_t i = 0; i < nn; i++)
            for (int o = 0; v[i].has[3] && o < 3; o++) {
                snprintf(labels, sizeof(labels), "{%s,op=\"%s\"}", v[i].labels, ops[o]);
                sample_u64(out, fam, labels, v[i].ops[o]);
            }
    }
    free(v);
    list_free(&l);
}

/* The engine's latency histograms ("<name>_le_<ns>", "<name>_count",
 * "<name>_sum_ns"). */
static void engine_timings(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("timings", &l))
        return;
    static const struct {
        const char *stat, *name, *help;
    } t[] = {{"bg_fetch", "kv_bg_fetch_seconds",
              "Background fetches: from the request to the value in memory"},
             {"manifest_update", "kv_manifest_update_seconds",
              "Collections manifest updates: from the call to the manifest applied"}};
    for (size_t i = 0; i < 2; i++) {
        uint64_t cum[HIST_BUCKETS];
        char key[96];
        bool found = true, f;
        for (int b = 0; b < HIST_BUCKETS; b++) {
            snprintf(key, sizeof(key), "%s_le_%" PRIu64, t[i].stat, hist_bound_ns(b));
            cum[b] = (uint64_t)num(&l, key, &f);
            found = found && f;
        }
        /* The count is the last cumulative bucket the engine gave (read after
         * the others): never less than a bucket before it. */
        snprintf(key, sizeof(key), "%s_le_inf", t[i].stat);
        uint64_t count = (uint64_t)num(&l, key, &f);
        found = found && f;
        snprintf(key, sizeof(key), "%s_sum_ns", t[i].stat);
        uint64_t sum = (uint64_t)num(&l, key, &f);
        if (!found || !f)
            continue;
        family(out, t[i].name, "histogram", t[i].help);
        histogram(out, t[i].name, bucket, cum, count, sum);
    }
    list_free(&l);
}

/* Warmup and compaction while they run. */
static void engine_progress(struct evbuffer *out, const char *bucket)
{
    stat_list l;
    if (!read_group("progress", &l))
        return;
    static const char *const works[] = {"warmup", "compaction"};
    static const struct {
        const char *field, *suffix, *help;
        double scale;
    } f[] = {
        {"running", "running", "1 while it runs", 1},
        {"records", "progress_records", "Records done by the current (or last) run", 1},
        {"bytes", "progress_bytes", "Bytes read or written by the current (or last) run",
         1},
        {"fraction", "progress_ratio", "How far the current (or last) run is, 0 to 1", 1},
        {"bytes_per_sec", "rate_bytes_per_second", "Its pace so far", 1},
        {"seconds_left", "remaining_seconds",
         "Its time left at that pace (-1: no pace yet; 0 when idle)", 1},
    };
    for (size_t w = 0; w < 2; w++)
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
            char key[64], name[96], help[160], labels[1300];
            snprintf(key, sizeof(key), "%s_%s", works[w], f[i].field);
            bool found;
            double v = num(&l, key, &found);
            if (!found)
                continue;
            snprintf(name, sizeof(name), "kv_%s_%s", works[w], f[i].suffix);
            snprintf(help, sizeof(help), "%s: %s", works[w], f[i].help);
            family(out, name, "gauge", help);
            snprintf(labels, sizeof(labels), "{%s}", bucket);
            sample_f(out, name, labels, v);
        }
    list_free(&l);
}

/* ---- kvhost's own figures ---- */

static const char *command_name(unsigned op)
{
    static const char *const names[256] = {
        [0x00] = "get",
        [0x01] = "set",
        [0x02] = "add",
        [0x03] = "replace",
        [0x04] = "delete",
        [0x05] = "incr",
        [0x06] = "decr",
        [0x07] = "quit",
        [0x08] = "flush",
        [0x09] = "getq",
        [0x0a] = "noop",
        [0x0b] = "version",
        [0x0c] = "getk",
        [0x0d] = "getkq",
        [0x0e] = "append",
        [0x0f] = "prepend",
        [0x10] = "stat",
        [0x11] = "setq",
        [0x12] = "addq",
        [0x13] = "replaceq",
        [0x14] = "deleteq",
        [0x15] = "incrq",
        [0x16] = "decrq",
        [0x17] = "quitq",
        [0x18] = "flushq",
        [0x19] = "appendq",
        [0x1a] = "prependq",
        [0x1c] = "touch",
        [0x1d] = "gat",
        [0x1e] = "gatq",
        [0x1f] = "hello",
        [0x20] = "sasl_list_mechs",
        [0x21] = "sasl_auth",
        [0x22] = "sasl_step",
        [0x89] = "select_bucket",
        [0x94] = "get_locked",
        [0x95] = "unlock_key",
        [0xa0] = "get_meta",
        [0xb5] = "get_cluster_config",
        [0xb9] = "set_collections_manifest",
        [0xba] = "get_collections_manifest",
        [0xbb] = "get_collection_id",
        [0xbc] = "get_scope_id",
        [0xc5] = "subdoc_get",
        [0xc6] = "subdoc_exists",
        [0xc7] = "subdoc_dict_add",
        [0xc8] = "subdoc_dict_upsert",
        [0xc9] = "subdoc_delete",
        [0xca] = "subdoc_replace",
        [0xcb] = "subdoc_array_push_last",
        [0xcc] = "subdoc_array_push_first",
        [0xcd] = "subdoc_array_insert",
        [0xce] = "subdoc_array_add_unique",
        [0xcf] = "subdoc_counter",
        [0xd0] = "subdoc_multi_lookup",
        [0xd1] = "subdoc_multi_mutation",
        [0xd2] = "subdoc_get_count",
        [0xfe] = "get_error_map",
    };
    return op < 256 && names[op] != NULL ? names[op] : NULL;
}

static void host_figures(struct evbuffer *out)
{
    static host_counts sum; /* the metrics thread's (one scrape at a time) */
    host_counts_sum(&sum);
    family(out, "kvhost_connections", "gauge", "Client connections open");
    sample_u64(out, "kvhost_connections", "", atomic_load(&host.conns));
    static const struct {
        _Atomic uint64_t *v;
        const char *name, *help;
    } counters[] = {
        {&host.total_conns, "kvhost_connections_total", "Client connections accepted"},
        {&host.rejected_conns, "kvhost_rejected_connections_total",
         "Connections refused at the limit"},
        {&sum.bytes_in, "kvhost_received_bytes_total", "Bytes read from clients"},
        {&sum.bytes_out, "kvhost_sent_bytes_total", "Bytes written to clients"},
        {&host.auth_failures, "kvhost_auth_failures_total", "Failed SASL logins"},
        {&host.notifies_dropped, "kvhost_notifies_dropped_total",
         "Engine notifies for connections already gone"},
        {&host.notifies_duplicate, "kvhost_notifies_duplicate_total",
         "Engine notifies for a connection not waiting for one"},
        {&host.durable_timeouts, "kvhost_durable_timeouts_total",
         "Durable writes answered sync-write-ambiguous at their timeout"},
        {&host.deadline_closes, "kvhost_deadline_closes_total",
         "Connections closed for a missed deadline (request, login, idle)"},
        {&host.accept_pauses, "kvhost_accept_pauses_total",
         "Pauses of accepting when file descriptors ran out"},
        {&host.tls_conns, "kvhost_tls_connections_total",
         "Connections accepted on the TLS port"},
        {&host.tls_errors, "kvhost_tls_errors_total",
         "TLS connections dropped for a TLS error"},
        {&m.auth_failures, "kvhost_metrics_auth_failures_total",
         "Requests to this port with wrong or missing credentials"},
        {&m.scrapes, "kvhost_metrics_scrapes_total", "Answers to GET /metrics"},
        {&m.not_found, "kvhost_metrics_not_found_total",
         "Requests to this port for another path (404)"},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        family(out, counters[i].name, "counter", counters[i].help);
        sample_u64(out, counters[i].name, "", atomic_load(counters[i].v));
    }
    family(out, "kvhost_commands_total", "counter",
           "Commands received, by opcode (a parked one counts once)");
    for (unsigned op = 0; op < 256; op++) {
        uint64_t n = sum.commands[op];
        if (n == 0)
            continue;
        const char *name = command_name(op);
        char labels[96];
        snprintf(labels, sizeof(labels), "{opcode=\"0x%02x\",command=\"%s\"}", op,
                 name != NULL ? name : "unknown");
        sample_u64(out, "kvhost_commands_total", labels, n);
    }
    static const char *const kinds[HOST_OP_KINDS] = {
        "get",           "store",           "durable_store", "delete",
        "subdoc_lookup", "subdoc_mutation", "other"};
    family(
        out, "kvhost_operation_seconds", "histogram",
        "Operations from their first run to the answer (a parked one's wait included)");
    for (int k = 0; k < HOST_OP_KINDS; k++) {
        uint64_t cum[HIST_BUCKETS];
        const hist *h = &sum.latency[k];
        for (int b = 0; b < HIST_BUCKETS; b++)
            cum[b] = hist_cumulative(h, b);
        char labels[64];
        snprintf(labels, sizeof(labels), "op=\"%s\"", kinds[k]);
        /* The count from the buckets read: a sample never shows more in a
         * bucket than in the total. */
        uint64_t count = hist_cumulative(h, HIST_BUCKETS);
        histogram(out, "kvhost_operation_seconds", labels, cum, count,
                  atomic_load_explicit(&((hist *)h)->sum_ns, memory_order_relaxed));
    }
}

/* One scrape into out: what GET /metrics answers. */
static void metrics_render(struct evbuffer *out)
{
    char bucket[400];
    bucket_label(bucket, sizeof(bucket));
    host_figures(out);
    engine_default(out, bucket);
    engine_simple(out, "memory", memory_stats,
                  sizeof(memory_stats) / sizeof(memory_stats[0]), bucket);
    engine_simple(out, "warmup", warmup_stats,
                  sizeof(warmup_stats) / sizeof(warmup_stats[0]), bucket);
    engine_manifest(out, bucket);
    engine_vbuckets(out, bucket);
    engine_tasks(out, bucket);
    engine_collections(out, bucket, false);
    engine_collections(out, bucket, true);
    engine_timings(out, bucket);
    engine_progress(out, bucket);
}

/* ---- HTTP ---- */

static void reply_text(struct evhttp_request *req, int code, const char *reason,
                       const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b != NULL)
        evbuffer_add_printf(b, "%s\n", text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    if (b != NULL)
        evbuffer_free(b);
}

typedef enum auth_result { AUTH_OK, AUTH_FAILED, AUTH_THROTTLED } auth_result;

/* With a users file: whether the request's basic-auth credentials are a
 * user's. Failing credentials cost a key derivation each; past
 * AUTH_CHECKS_PER_S failures in a second the rest of that second is refused
 * unchecked, so a client looping on bad passwords cannot keep a core busy. */
static auth_result authorized(struct evhttp_request *req)
{
    if (host.users == NULL)
        return AUTH_OK;
    const char *h =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
        return AUTH_FAILED;
    const char *b64 = h + 6;
    size_t n = strlen(b64);
    if (n > 512)
        return AUTH_FAILED;
    unsigned char plain[400];
    int len = auth_unb64(b64, n, plain, sizeof(plain));
    if (len < 0)
        return AUTH_FAILED;
    unsigned char digest[32];
    unsigned dlen = 0;
    EVP_Digest(plain, (size_t)len, digest, &dlen, EVP_sha256(), NULL);
    uint64_t now = host_now_ns();
    auth_result r = AUTH_FAILED;
    for (unsigned i = 0; i < AUTH_CACHE && r != AUTH_OK; i++)
        if (m.cache[i].at_ns != 0 && now - m.cache[i].at_ns < AUTH_CACHE_TTL_NS &&
            CRYPTO_memcmp(m.cache[i].digest, digest, 32) == 0)
            r = AUTH_OK;
    const unsigned char *colon = memchr(plain, ':', (size_t)len);
    if (r != AUTH_OK && colon != NULL) {
        uint64_t second = now / 1000000000u;
        if (second != m.fail_second) {
            m.fail_second = second;
            m.fails = 0;
        }
        if (m.fails >= AUTH_CHECKS_PER_S) {
            r = AUTH_THROTTLED;
        } else {
            size_t ulen = (size_t)(colon - plain);
            bool ok =
                auth_check_plain(host.users, (const char *)plain, ulen,
                                 (const char *)colon + 1, (size_t)len - ulen - 1) != NULL;
            if (ok) {
                memcpy(m.cache[m.next_cache].digest, digest, 32);
                m.cache[m.next_cache].at_ns = now;
                m.next_cache = (m.next_cache + 1) % AUTH_CACHE;
                r = AUTH_OK;
            } else {
                m.fails++;
            }
        }
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return r;
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, 405, "Method Not Allowed", "only GET /metrics is served");
        return;
    }
    auth_result a = authorized(req);
    if (a == AUTH_THROTTLED) {
        atomic_fetch_add(&m.auth_failures, 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        reply_text(req, 429, "Too Many Requests",
                   "too many failed logins this second: try again");
        return;
    }
    if (a != AUTH_OK) {
        atomic_fetch_add(&m.auth_failures, 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"kvhost metrics\", charset=\"UTF-8\"");
        reply_text(req, 401, "Unauthorized",
                   "basic auth of a user of kvhost's users file is required");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        reply_text(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    atomic_fetch_add(&m.scrapes, 1);
    metrics_render(b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    atomic_fetch_add(&m.not_found, 1);
    reply_text(req, 404, "Not Found", "not found: kvhost serves GET /metrics here");
}

static void *metrics_loop(void *arg)
{
    (void)arg;
    event_base_dispatch(m.base);
    return NULL;
}

int metrics_start(const char *addr, int port, const char *bucket, int *bound, char *why,
                  size_t whylen)
{
    utf8_sanitize(m.bucket, sizeof(m.bucket), bucket, strlen(bucket));
    m.base = event_base_new();
    m.http = m.base ? evhttp_new(m.base) : NULL;
    if (m.http == NULL) {
        snprintf(why, whylen, "cannot set up the metrics HTTP server");
        goto fail;
    }
    evhttp_set_timeout(m.http, HTTP_TIMEOUT_S);
    evhttp_set_max_headers_size(m.http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(m.http, HTTP_MAX_BODY);
    /* Every method reaches on_metrics, which answers 405 for all but GET and
     * HEAD (libevent would answer the others 501). */
    evhttp_set_allowed_methods(
        m.http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_cb(m.http, "/metrics", on_metrics, NULL);
    evhttp_set_gencb(m.http, on_other, NULL);
    struct evhttp_bound_socket *s =
        evhttp_bind_socket_with_handle(m.http, addr, (ev_uint16_t)port);
    if (s == NULL) {
        snprintf(why, whylen, "cannot listen for metrics on %s port %d", addr, port);
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *bound = port;
    if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &sl) == 0)
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    if (pthread_create(&m.tid, NULL, metrics_loop, NULL) != 0) {
        snprintf(why, whylen, "cannot start the metrics thread");
        goto fail;
    }
    m.running = true;
    return 0;
fail:
    if (m.http != NULL)
        evhttp_free(m.http);
    if (m.base != NULL)
        event_base_free(m.base);
    m.http = NULL;
    m.base = NULL;
    return -1;
}

void metrics_stop(void)
{
    if (!m.running)
        return;
    /* loopexit, not loopbreak: a break sent before the thread's loop
     * started would be lost, and the join would wait for ever. */
    event_base_loopexit(m.base, NULL);
    pthread_join(m.tid, NULL);
    evhttp_free(m.http);
    event_base_free(m.base);
    m.running = false;
}
