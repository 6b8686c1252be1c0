/*
 * manifest.c - building, looking up and printing collections manifests. It never
 * changes a manifest after it is built.
 */
#include "manifest.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_name[] = "_default";

coll_manifest *coll_manifest_epoch(void)
{
    coll_manifest *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    m->scopes = calloc(1, sizeof(coll_scope));
    m->collections = calloc(1, sizeof(coll_collection));
    if (m->scopes == NULL || m->collections == NULL)
        goto err;
    m->nscopes = 1;
    m->ncollections = 1;
    m->scopes[0].name = strdup(default_name);
    m->collections[0].name = strdup(default_name);
    if (m->scopes[0].name == NULL || m->collections[0].name == NULL)
        goto err;
    return m;
err:
    coll_manifest_unref(m);
    return NULL;
}

coll_manifest *coll_manifest_ref(coll_manifest *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void coll_manifest_unref(coll_manifest *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; m->scopes != NULL && i < m->nscopes; i++)
        free(m->scopes[i].name);
    for (size_t i = 0; m->collections != NULL && i < m->ncollections; i++)
        free(m->collections[i].name);
    free(m->scopes);
    free(m->collections);
    free(m);
}

const coll_collection *coll_find_collection(const coll_manifest *m, uint32_t id)
{
    for (size_t i = 0; i < m->ncollections; i++)
        if (m->collections[i].id == id)
            return &m->collections[i];
    return NULL;
}

const coll_scope *coll_find_scope(const coll_manifest *m, uint32_t id)
{
    for (size_t i = 0; i < m->nscopes; i++)
        if (m->scopes[i].id == id)
            return &m->scopes[i];
    return NULL;
}

bool coll_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > COLL_NAME_MAX || name[0] == '$')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '%' || c == '$'))
            return false;
    }
    return true;
}

static bool name_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

/* Splits a path part; an empty part names `_default`. */
static void part_or_default(const char **s, size_t *len)
{
    if (*len == 0) {
        *s = default_name;
        *len = sizeof(default_name) - 1;
    }
}

static const coll_scope *scope_by_name(const coll_manifest *m, const char *s, size_t len)
{
    for (size_t i = 0; i < m->nscopes; i++)
        if (name_is(m->scopes[i].name, s, len))
            return &m->scopes[i];
    return NULL;
}

engine_errc coll_resolve_scope(const coll_manifest *m, const char *path, size_t len,
                               uint32_t *id, const char **why)
{
    const char *dot = path ? memchr(path, '.', len) : NULL;
    if (path == NULL && len > 0) {
        *why = "path is NULL";
        return ENGINE_INVALID_ARGUMENTS;
    }
    if (dot != NULL && memchr(dot + 1, '.', len - (size_t)(dot + 1 - path)) != NULL) {
        *why = "scope path has more than one '.'";
        return ENGINE_INVALID_ARGUMENTS;
    }
    size_t slen = dot ? (size_t)(dot - path) : len;
    const char *s = path;
    part_or_default(&s, &slen);
    if (!coll_name_valid(s, slen)) {
        *why = "invalid scope name";
        return ENGINE_INVALID_ARGUMENTS;
    }
    const coll_scope *sc = scope_by_name(m, s, slen);
    if (sc == NULL) {
        *why = "unknown scope";
        return ENGINE_UNKNOWN_SCOPE;
    }
    *id = sc->id;
    return ENGINE_SUCCESS;
}

engine_errc coll_resolve_collection(const coll_manifest *m, const char *path, size_t len,
                                    uint32_t *id, const char **why)
{
    const char *dot = path ? memchr(path, '.', len) : NULL;
    if (dot == NULL || memchr(dot + 1, '.', len - (size_t)(dot + 1 - path)) != NULL) {
        *why = "collection path must be 'scope.collection' with exactly one '.'";
        return ENGINE_INVALID_ARGUMENTS;
    }
    const char *s = path, *c = dot + 1;
    size_t slen = (size_t)(dot - path), clen = len - slen - 1;
    part_or_default(&s, &slen);
    part_or_default(&c, &clen);
    if (!coll_name_valid(s, slen)) {
        *why = "invalid scope name";
        return ENGINE_INVALID_ARGUMENTS;
    }
    if (!coll_name_valid(c, clen)) {
        *why = "invalid collection name";
        return ENGINE_INVALID_ARGUMENTS;
    }
    const coll_scope *sc = scope_by_name(m, s, slen);
    if (sc == NULL) {
        *why = "unknown scope";
        return ENGINE_UNKNOWN_SCOPE;
    }
    for (size_t i = 0; i < m->ncollections; i++) {
        const coll_collection *col = &m->collections[i];
        if (col->scope_id == sc->id && name_is(col->name, c, clen)) {
            *id = col->id;
            return ENGINE_SUCCESS;
        }
    }
    *why = "unknown collection";
    return ENGINE_UNKNOWN_COLLECTION;
}

static json_t *hex_string(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIx64, v);
    return json_string(buf);
}

char *coll_manifest_to_json(const coll_manifest *m)
{
    json_t *root = json_object(), *scopes = json_array();
    char *text = NULL;
    if (root == NULL || scopes == NULL)
        goto out;
    json_object_set_new(root, "uid", hex_string(m->uid));
    for (size_t i = 0; i < m->nscopes; i++) {
        json_t *scope = json_object(), *cols = json_array();
        if (scope == NULL || cols == NULL) {
            json_decref(scope);
            json_decref(cols);
            goto out;
        }
        json_object_set_new(scope, "name", json_string(m->scopes[i].name));
        json_object_set_new(scope, "uid", hex_string(m->scopes[i].id));
        for (size_t j = 0; j < m->ncollections; j++) {
            const coll_collection *c = &m->collections[j];
            if (c->scope_id != m->scopes[i].id)
                continue;
            json_t *col = json_object();
            if (col == NULL)
                continue;
            json_object_set_new(col, "name", json_string(c->name));
            json_object_set_new(col, "uid", hex_string(c->id));
            if (c->has_max_ttl)
                json_object_set_new(col, "maxTTL", json_integer(c->max_ttl));
            json_array_append_new(cols, col);
        }
        json_object_set_new(scope, "collections", cols);
        json_array_append_new(scopes, scope);
    }
    json_object_set(root, "scopes", scopes);
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(scopes);
    json_decref(root);
    return text;
}
