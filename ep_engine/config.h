/*
 * config.h - the engine's configuration: defaults, the `key=value;...` parser,
 * and the `config` stats group. A bad string never half-applies: the parser
 * fills a copy and the engine keeps it only on success.
 */
#ifndef EP_CONFIG_H
#define EP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ep_config {
    uint64_t max_size;              /* memory quota for items, bytes */
    uint64_t max_item_size;         /* largest value, bytes */
    uint64_t max_vbuckets;          /* vbucket ids are 0..max_vbuckets-1 */
    uint64_t ht_size;               /* initial hash table buckets (power of 2) */
    uint64_t ht_locks;              /* hash table lock stripes (power of 2) */
    uint64_t exp_pager_interval_ms; /* expiry pager period */
    uint64_t num_reader_threads;
    uint64_t num_writer_threads;
    uint64_t num_auxio_threads;
    uint64_t num_nonio_threads;
    uint64_t max_scopes;               /* manifest limit, scopes */
    uint64_t max_collections;          /* manifest limit, collections */
    uint64_t num_shards;               /* on-disk shards (vbucket % num_shards) */
    uint64_t segment_max_bytes;        /* a segment file is closed past this size */
    uint64_t segment_prefill_bytes;    /* zeros written ahead when idle; 0 = none */
    uint64_t flusher_retry_ms;         /* wait before retrying a failed batch */
    uint64_t flusher_batch_delay_ms;   /* pause after a batch so the next gathers more */
    uint64_t compaction_interval_ms;   /* how often fragmentation is checked */
    uint64_t compaction_threshold_pct; /* dead share of a shard that compacts it */
    uint64_t compaction_min_bytes;     /* shards smaller than this are left alone */
    uint64_t mem_high_wat_pct; /* memory use (of max_size) that starts value eviction */
    uint64_t mem_low_wat_pct;  /* ... and where eviction stops */
    uint64_t warmup_arena;     /* 1: warmup's items come from an arena (arena.h) */
    uint64_t progress_log_after_ms; /* warmup/compaction log progress past this */
    char dbname[1024];              /* data directory; empty = memory only */
} ep_config;

/** Fills *cfg with the defaults. */
void ep_config_defaults(ep_config *cfg);

/**
 * Parses `key=value;...` over the defaults already in *cfg. Returns 0, or -1 with
 * a reason naming the key in err.
 */
int ep_config_parse(ep_config *cfg, const char *text, char *err, size_t errlen);

/** Reports every parameter as key/value text. */
typedef void (*ep_config_stat_fn)(const char *key, const char *val, void *ctx);
void ep_config_stats(const ep_config *cfg, ep_config_stat_fn add, void *ctx);

#endif
