/*
 * manifest.h - the collections manifest: parsing and validating the JSON a
 * client sends, the successor rules, lookups by id and by path, and printing.
 *
 * A manifest is immutable and reference counted; a new one replaces the old as
 * a whole, so a reader holding a reference sees one consistent view. Each
 * collection points to a coll_state, the mutable part of one incarnation of a
 * collection id (its counters and the CAS at which it began); consecutive
 * manifests that keep a collection share its state.
 */
#ifndef EP_COLL_MANIFEST_H
#define EP_COLL_MANIFEST_H

#include "../../engine_api.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Longest scope or collection name, bytes. */
#define COLL_NAME_MAX 251
/** Largest maxTTL, seconds. */
#define COLL_MAX_TTL_LIMIT 2147483647u

/** One incarnation of a collection id: shared by the manifests that keep it.
 * Every operation on the collection reads start_cas, and its counters are
 * written by every thread that links, unlinks or serves one of its items: the
 * two sit on cache lines of their own, so the reads never wait for a line
 * another core is writing (in a warmup of 1M items that wait was a tenth to a
 * sixth of the readers' time). */
typedef struct coll_state {
    _Atomic uint32_t refs;
    /* Items with a CAS at or below this belong to an earlier incarnation of the
     * id and are invisible. Set when the manifest that created it is applied. */
    uint64_t start_cas;
    _Alignas(64) _Atomic uint64_t items;
    _Atomic uint64_t mem;
    _Atomic uint64_t ops_get;
    _Atomic uint64_t ops_store;
    _Atomic uint64_t ops_delete;
} coll_state;

typedef struct coll_scope {
    uint32_t id;
    char *name;
    size_t ncollections;
} coll_scope;

typedef struct coll_collection {
    uint32_t id;
    uint32_t scope_id;
    char *name;
    bool has_max_ttl;
    uint32_t max_ttl;  /* seconds; 0 = no cap */
    coll_state *state; /* NULL until the manager binds the manifest */
} coll_collection;

typedef struct coll_manifest {
    _Atomic uint32_t refs;
    uint64_t uid;
    size_t nscopes;
    coll_scope *scopes; /* sorted by id */
    size_t ncollections;
    coll_collection *collections; /* sorted by id */
    /* Lookup indexes (open addressing, -1 = empty): by collection id, by scope
     * name, by (scope id, collection name). */
    int32_t *by_id;
    int32_t *by_scope_name;
    int32_t *by_coll_name;
    size_t index_mask;
    const coll_collection *default_collection; /* NULL if dropped */
    char *names; /* every scope and collection name, NUL separated: one block */
    size_t names_used, names_cap;
} coll_manifest;

typedef struct coll_limits {
    size_t max_scopes;
    size_t max_collections;
    size_t max_bytes; /* of the JSON text, checked before parsing; 0 = the default */
} coll_limits;

/** The default size limit of a manifest's JSON text: 64 MiB (a manifest of
 * 100,000 collections takes about 7 MB). */
#define COLL_MANIFEST_MAX_BYTES ((size_t)64 << 20)

/** The epoch manifest: uid 0, the `_default` scope holding `_default`. NULL on
 * out of memory. The caller holds one reference; states are not bound. */
coll_manifest *coll_manifest_epoch(void);

/**
 * Parses and validates a manifest (every rule is in manifest.c, each with its
 * reason). On success returns
 * ENGINE_SUCCESS and a new manifest (one reference, states not bound). Else
 * ENGINE_INVALID_ARGUMENTS (or ENGINE_NO_MEMORY) with a reason in why that names
 * the offending scope or collection.
 */
engine_errc coll_manifest_parse(const char *json, size_t len, const coll_limits *limits,
                                coll_manifest **out, char *why, size_t whylen);

/**
 * Checks that `next` may follow `cur`. ENGINE_SUCCESS with *identical set when
 * next is the same manifest; ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST with a
 * reason otherwise (lower uid, equal uid but different, a renamed scope, a
 * renamed or moved collection).
 */
engine_errc coll_manifest_successor(const coll_manifest *cur, const coll_manifest *next,
                                    bool *identical, char *why, size_t whylen);

coll_manifest *coll_manifest_ref(coll_manifest *m);
void coll_manifest_unref(coll_manifest *m);

coll_state *coll_state_new(void);
coll_state *coll_state_ref(coll_state *s);
void coll_state_unref(coll_state *s);

/** The collection with this id, or NULL. */
static inline const coll_collection *coll_find_collection(const coll_manifest *m,
                                                          uint32_t id);
const coll_collection *coll_find_collection_slow(const coll_manifest *m, uint32_t id);
const coll_scope *coll_find_scope(const coll_manifest *m, uint32_t id);

static inline const coll_collection *coll_find_collection(const coll_manifest *m,
                                                          uint32_t id)
{
    if (id == ENGINE_DEFAULT_COLLECTION)
        return m->default_collection;
    return coll_find_collection_slow(m, id);
}

/** True if `name` (len bytes) is a legal scope or collection name. */
bool coll_name_valid(const char *name, size_t len);

/**
 * Resolves `scope.collection` (empty parts mean `_default`). Returns
 * ENGINE_SUCCESS with *id, ENGINE_INVALID_ARGUMENTS (malformed path; reason in
 * why), ENGINE_UNKNOWN_SCOPE or ENGINE_UNKNOWN_COLLECTION.
 */
engine_errc coll_resolve_collection(const coll_manifest *m, const char *path, size_t len,
                                    uint32_t *id, const char **why);

/** Resolves `scope` (a `.collection` tail is ignored). As above. */
engine_errc coll_resolve_scope(const coll_manifest *m, const char *path, size_t len,
                               uint32_t *id, const char **why);

/** The manifest as JSON text (malloc'd, NUL terminated), or NULL on out of memory.
 * With `with_state`, each collection also carries its incarnation's start CAS
 * (the on-disk form). */
char *coll_manifest_to_json(const coll_manifest *m, bool with_state);

/** Reads the start CAS values written by to_json(with_state) back into a bound
 * manifest's states. Returns the largest, for the engine's CAS counter. */
uint64_t coll_manifest_load_state(coll_manifest *m, const char *json, size_t len);

#endif
