/*
 * kv.h - the data operations of the vtable (kv.c) and the two sweeps that
 * clean up after them, as executor run functions with the engine as arg: the
 * expiry pager (pager.c) and the dropped-collection purger (purger.c).
 *
 * Every operation locks its key's stripe and judges the key's collection
 * against that stripe's manifest view under the lock, so a manifest change is
 * seen whole by each operation. An item is visible only if its collection is
 * in the manifest and it was stored in the collection's current incarnation
 * (CAS above the incarnation's start_cas).
 */
#ifndef EP_KV_H
#define EP_KV_H

#include "../core/core.h"

engine_errc kv_allocate(engine_handle *h, const void *cookie, engine_item **out,
                        const engine_doc_key *key, size_t nbytes, uint32_t flags,
                        uint32_t exptime, uint8_t datatype, uint16_t vbucket);
void kv_release(engine_handle *h, engine_item *item);
engine_errc kv_get(engine_handle *h, const void *cookie, engine_item **out,
                   const engine_doc_key *key, uint16_t vbucket);
engine_errc kv_store(engine_handle *h, const void *cookie, engine_item *item,
                     uint64_t *cas_out, engine_store_op op);
engine_errc kv_remove(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint64_t cas, uint16_t vbucket, uint64_t *cas_out);
engine_errc kv_flush(engine_handle *h, const void *cookie);
engine_errc kv_store_durable(engine_handle *h, const void *cookie, engine_item *item,
                             uint64_t *cas_out, engine_store_op op, engine_durability d);
engine_errc kv_remove_durable(engine_handle *h, const void *cookie,
                              const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                              uint64_t *cas_out, engine_durability d);
engine_errc kv_set_vbucket_state(engine_handle *h, const void *cookie, uint16_t vbucket,
                                 engine_vbucket_state state);
engine_errc kv_get_locked(engine_handle *h, const void *cookie, engine_item **out,
                          const engine_doc_key *key, uint16_t vbucket,
                          uint32_t lock_timeout_s, uint64_t *lock_cas);
engine_errc kv_unlock(engine_handle *h, const void *cookie, const engine_doc_key *key,
                      uint16_t vbucket, uint64_t lock_cas);
engine_errc kv_get_item_info(engine_handle *h, const engine_item *item,
                             engine_item_info *info);
void kv_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas);

/* subdoc.c (v4): sub-document lookups and mutations. */
engine_errc kv_subdoc_lookup(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, engine_subdoc_result_fn result, void *ctx,
                             uint64_t *cas_out);
engine_errc kv_subdoc_mutate(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                             engine_durability d, engine_subdoc_result_fn result,
                             void *ctx, uint64_t *cas_out, size_t *failed);

/* The expiry pager: removes expired items and item locks that ran out. */
int64_t kv_pager_run(exec_task *task, void *arg);
/* The purger: frees items of dropped collections; woken by the manager. */
int64_t kv_purger_run(exec_task *task, void *arg);

#endif
