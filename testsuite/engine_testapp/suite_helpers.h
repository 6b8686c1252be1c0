/*
 * suite_helpers.h - short forms of common engine calls for test suites. They
 * use the default collection and vbucket 0 unless the name says otherwise.
 */
#ifndef SUITE_HELPERS_H
#define SUITE_HELPERS_H

#include "engine_testapp.h"
#include "../sleep_ms.h"

#include <stddef.h>
#include <stdint.h>

engine_doc_key doc_key(uint32_t collection, const char *key);

/** allocate + fill + (item_set_cas) + store, releasing the item. */
engine_errc kv_store_full(engine_handle *h, const void *cookie, uint32_t collection,
                          uint16_t vb, const char *key, const void *val, size_t vlen,
                          uint32_t flags, uint32_t exptime, engine_store_op op,
                          uint64_t cas, uint64_t *cas_out);
/** kv_store_full with a datatype. */
engine_errc kv_store_dt(engine_handle *h, const void *cookie, const char *key,
                        const void *val, size_t vlen, uint8_t datatype,
                        uint32_t collection, uint16_t vb, uint32_t flags,
                        uint32_t exptime, engine_store_op op, uint64_t cas,
                        uint64_t *cas_out);
/** Writes a value with an extended-attribute section (datatype 0x04): the
 * key/value pairs (a NULL-ended list of key, JSON value, key, ...) and the
 * body. Returns its length (0 if it does not fit in cap). */
size_t xattr_value(char *buf, size_t cap, const char *const *pairs, const char *body);
/** The bytes of a value's extended-attribute section, header included (the
 * body starts there); 0 if the total does not fit in n. */
size_t xattr_section_len(const void *value, size_t n);
engine_errc kv_store(engine_handle *h, const void *cookie, const char *key,
                     const char *val, engine_store_op op, uint64_t cas,
                     uint64_t *cas_out);

/** get; copies the value (NUL terminated, truncated to cap-1) and the item info. */
engine_errc kv_get_full(engine_handle *h, const void *cookie, uint32_t collection,
                        uint16_t vb, const char *key, char *buf, size_t cap,
                        engine_item_info *info);
engine_errc kv_get(engine_handle *h, const void *cookie, const char *key, char *buf,
                   size_t cap);

engine_errc kv_remove(engine_handle *h, const void *cookie, const char *key,
                      uint64_t cas);

/** One statistic as an integer; UINT64_MAX if missing or not a number. */
uint64_t stat_u64(engine_handle *h, const char *group, const char *name);
/** One statistic as text into buf; false if missing. */
bool stat_str(engine_handle *h, const char *group, const char *name, char *buf,
              size_t cap);
/** Waits (up to 60 s) until an engine with a warmup stat reports it done;
 * false if it failed or timed out. Engines without the stat are ready. */
bool wait_ready(engine_handle *h);

/** Polls (up to 10 s) until a statistic equals `want`; false (and a message)
 * if it never does. */
bool wait_stat_eq(engine_handle *h, const char *group, const char *name, uint64_t want);

/** Sends a command to ep_engine's test hook ep_testing_control; false (and a
 * message) if the engine has none or refuses. */
bool engine_control(engine_handle *h, const test_harness *th, const char *cmd);

/** A case setup that waits for the engine's warmup. */
bool setup_wait_ready(engine_handle *h, const test_harness *th);

/* The engine releases a cookie just after it notifies: waits (up to `ms`)
 * until the cookie holds no reservation. */
bool wait_released(const test_harness *th, const void *cookie, int ms);

/** Number of statistics the group reports; -1 on error. */
int stat_count(engine_handle *h, const char *group);

#endif
