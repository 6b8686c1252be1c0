/*
 * manifest.h - the collections manifest: an immutable, reference-counted value
 * describing scopes and collections, with lookups by id and by path.
 *
 * A manifest is never changed once built; a new manifest replaces the old one
 * as a whole, so a reader holding a reference always sees one consistent view.
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

typedef struct coll_scope {
    uint32_t id;
    char *name;
} coll_scope;

typedef struct coll_collection {
    uint32_t id;
    uint32_t scope_id;
    char *name;
    bool has_max_ttl;
    uint32_t max_ttl; /* seconds */
} coll_collection;

typedef struct coll_manifest {
    _Atomic uint32_t refs;
    uint64_t uid;
    size_t nscopes;
    coll_scope *scopes;
    size_t ncollections;
    coll_collection *collections;
} coll_manifest;

/** The epoch manifest: uid 0, the `_default` scope holding `_default`. NULL on
 * out of memory. The caller holds one reference. */
coll_manifest *coll_manifest_epoch(void);

coll_manifest *coll_manifest_ref(coll_manifest *m);
void coll_manifest_unref(coll_manifest *m);

const coll_collection *coll_find_collection(const coll_manifest *m, uint32_t id);
const coll_scope *coll_find_scope(const coll_manifest *m, uint32_t id);

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

/** The manifest as JSON text (malloc'd, NUL terminated), or NULL on out of memory. */
char *coll_manifest_to_json(const coll_manifest *m);

#endif
