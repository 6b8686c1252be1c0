/*
 * manifest.c - parsing, validating, comparing, looking up and printing
 * collections manifests. It never changes a manifest after it is built (only
 * the counters inside a coll_state move), and it never accepts a manifest that
 * breaks a rule: everything that can be wrong is found here, before the
 * manager writes anything.
 */
#include "manifest.h"

#include "json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_name[] = "_default";
#define DEFAULT_LEN (sizeof(default_name) - 1)
#define SHOWN       48 /* bytes of a name quoted in a reason */

/* ---- hashing for the lookup indexes ---- */

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

static uint64_t hash_name(uint64_t seed, const char *s, size_t len)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325) ^ mix64(seed + 1);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return mix64(h);
}

/* ---- lifetime ---- */

coll_state *coll_state_new(void)
{
    coll_state *s = aligned_alloc(_Alignof(coll_state), sizeof(*s));
    if (s != NULL) {
        memset(s, 0, sizeof(*s));
        atomic_init(&s->refs, 1);
    }
    return s;
}

coll_state *coll_state_ref(coll_state *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void coll_state_unref(coll_state *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
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
    for (size_t i = 0; m->collections != NULL && i < m->ncollections; i++)
        coll_state_unref(m->collections[i].state);
    free(m->names);
    free(m->scopes);
    free(m->collections);
    free(m->by_id);
    free(m->by_scope_name);
    free(m->by_coll_name);
    free(m);
}

static coll_manifest *manifest_alloc(size_t nscopes, size_t ncollections,
                                     size_t name_bytes)
{
    coll_manifest *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    m->scopes = calloc(nscopes ? nscopes : 1, sizeof(coll_scope));
    m->collections = calloc(ncollections ? ncollections : 1, sizeof(coll_collection));
    m->names = malloc(name_bytes ? name_bytes : 1);
    m->names_cap = name_bytes;
    if (m->scopes == NULL || m->collections == NULL || m->names == NULL) {
        coll_manifest_unref(m);
        return NULL;
    }
    return m;
}

/* ---- indexes ---- */

/* Copies a name into the manifest's name block (sized by the parser's count). */
static char *keep_name(coll_manifest *m, const char *s, size_t len)
{
    if (m->names_used + len + 1 > m->names_cap)
        return NULL;
    char *p = m->names + m->names_used;
    memcpy(p, s, len);
    p[len] = '\0';
    m->names_used += len + 1;
    return p;
}

static bool name_eq(const char *name, const char *s, size_t len)
{
    return strncmp(name, s, len) == 0 && name[len] == '\0';
}

/* Builds the three indexes; on a duplicate name writes a reason and returns
 * ENGINE_INVALID_ARGUMENTS. */
static engine_errc build_indexes(coll_manifest *m, char *why, size_t whylen)
{
    size_t n = m->ncollections > m->nscopes ? m->ncollections : m->nscopes;
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    m->index_mask = size - 1;
    m->by_id = malloc(size * sizeof(int32_t));
    m->by_scope_name = malloc(size * sizeof(int32_t));
    m->by_coll_name = malloc(size * sizeof(int32_t));
    if (m->by_id == NULL || m->by_scope_name == NULL || m->by_coll_name == NULL)
        return ENGINE_NO_MEMORY;
    memset(m->by_id, 0xff, size * sizeof(int32_t));
    memset(m->by_scope_name, 0xff, size * sizeof(int32_t));
    memset(m->by_coll_name, 0xff, size * sizeof(int32_t));

    for (size_t i = 0; i < m->nscopes; i++) {
        const coll_scope *s = &m->scopes[i];
        size_t len = strlen(s->name);
        size_t slot = hash_name(0, s->name, len) & m->index_mask;
        for (; m->by_scope_name[slot] >= 0; slot = (slot + 1) & m->index_mask) {
            if (strcmp(m->scopes[m->by_scope_name[slot]].name, s->name) == 0) {
                snprintf(why, whylen, "duplicate scope name '%.*s'", SHOWN, s->name);
                return ENGINE_INVALID_ARGUMENTS;
            }
        }
        m->by_scope_name[slot] = (int32_t)i;
    }
    for (size_t i = 0; i < m->ncollections; i++) {
        const coll_collection *c = &m->collections[i];
        size_t slot = mix64(c->id) & m->index_mask;
        while (m->by_id[slot] >= 0)
            slot = (slot + 1) & m->index_mask;
        m->by_id[slot] = (int32_t)i;

        size_t len = strlen(c->name);
        slot = hash_name(c->scope_id + UINT64_C(1), c->name, len) & m->index_mask;
        for (; m->by_coll_name[slot] >= 0; slot = (slot + 1) & m->index_mask) {
            const coll_collection *o = &m->collections[m->by_coll_name[slot]];
            if (o->scope_id == c->scope_id && strcmp(o->name, c->name) == 0) {
                const coll_scope *s = coll_find_scope(m, c->scope_id);
                snprintf(why, whylen, "duplicate collection name '%.*s' in scope '%.*s'",
                         SHOWN, c->name, SHOWN, s ? s->name : "?");
                return ENGINE_INVALID_ARGUMENTS;
            }
        }
        m->by_coll_name[slot] = (int32_t)i;
        if (c->id == ENGINE_DEFAULT_COLLECTION)
            m->default_collection = c;
    }
    return ENGINE_SUCCESS;
}

const coll_collection *coll_find_collection_slow(const coll_manifest *m, uint32_t id)
{
    for (size_t slot = mix64(id) & m->index_mask; m->by_id[slot] >= 0;
         slot = (slot + 1) & m->index_mask) {
        const coll_collection *c = &m->collections[m->by_id[slot]];
        if (c->id == id)
            return c;
    }
    return NULL;
}

const coll_scope *coll_find_scope(const coll_manifest *m, uint32_t id)
{
    size_t lo = 0, hi = m->nscopes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->scopes[mid].id == id)
            return &m->scopes[mid];
        if (m->scopes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const coll_scope *scope_by_name(const coll_manifest *m, const char *s, size_t len)
{
    for (size_t slot = hash_name(0, s, len) & m->index_mask; m->by_scope_name[slot] >= 0;
         slot = (slot + 1) & m->index_mask) {
        const coll_scope *sc = &m->scopes[m->by_scope_name[slot]];
        if (name_eq(sc->name, s, len))
            return sc;
    }
    return NULL;
}

static const coll_collection *
collection_by_name(const coll_manifest *m, uint32_t scope_id, const char *s, size_t len)
{
    for (size_t slot = hash_name(scope_id + UINT64_C(1), s, len) & m->index_mask;
         m->by_coll_name[slot] >= 0; slot = (slot + 1) & m->index_mask) {
        const coll_collection *c = &m->collections[m->by_coll_name[slot]];
        if (c->scope_id == scope_id && name_eq(c->name, s, len))
            return c;
    }
    return NULL;
}

/* ---- the epoch manifest ---- */

coll_manifest *coll_manifest_epoch(void)
{
    coll_manifest *m = manifest_alloc(1, 1, 2 * (DEFAULT_LEN + 1));
    char why[16];
    if (m == NULL)
        return NULL;
    m->nscopes = 1;
    m->ncollections = 1;
    m->scopes[0].name = keep_name(m, default_name, DEFAULT_LEN);
    m->scopes[0].ncollections = 1;
    m->collections[0].name = keep_name(m, default_name, DEFAULT_LEN);
    if (m->scopes[0].name == NULL || m->collections[0].name == NULL ||
        build_indexes(m, why, sizeof(why)) != ENGINE_SUCCESS) {
        coll_manifest_unref(m);
        return NULL;
    }
    return m;
}

/* ---- parsing ---- */

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

/* A hex string of 1..maxdigits digits, no prefix, any case. */
static bool parse_hex(const jv *v, size_t maxdigits, uint64_t *out)
{
    if (!jv_is(v, JV_STRING))
        return false;
    const char *s = v->u.s;
    size_t len = v->n;
    if (len == 0 || len > maxdigits)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false;
        x = x << 4 | d;
    }
    *out = x;
    return true;
}

typedef struct parse_ctx {
    char *why;
    size_t whylen;
    coll_manifest *m; /* being built: owns the name block */
} parse_ctx;

__attribute__((format(printf, 2, 3))) static engine_errc invalid(parse_ctx *p,
                                                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, p->whylen, fmt, ap);
    va_end(ap);
    return ENGINE_INVALID_ARGUMENTS;
}

/* The known keys of a scope or collection object, found in one pass over its
 * keys (cheaper than a hash lookup per key on 100,000-collection manifests). */
typedef struct fields {
    const jv *name, *uid, *collections, *max_ttl;
} fields;

static fields get_fields(const jv *obj)
{
    fields f = {NULL, NULL, NULL, NULL};
    for (uint32_t i = 0; i < obj->n; i++) {
        const char *key = jv_key_at(obj, i)->u.s;
        const jv *v = jv_value_at(obj, i);
        if (strcmp(key, "name") == 0)
            f.name = v;
        else if (strcmp(key, "uid") == 0)
            f.uid = v;
        else if (strcmp(key, "collections") == 0)
            f.collections = v;
        else if (strcmp(key, "maxTTL") == 0)
            f.max_ttl = v;
    }
    return f;
}

/* Who a name or uid belongs to, described only when a reason is written (the
 * common path formats nothing). */
typedef struct owner {
    bool is_scope;
    size_t index;      /* position of a scope, for one without a usable name */
    const char *name;  /* the owner's name once known, else NULL */
    const char *scope; /* a collection's scope name */
} owner;

static const char *describe(const owner *o, char *buf, size_t cap)
{
    if (o->is_scope && o->name == NULL)
        snprintf(buf, cap, "scope #%zu", o->index);
    else if (o->is_scope)
        snprintf(buf, cap, "scope '%.*s'", SHOWN, o->name);
    else if (o->name == NULL)
        snprintf(buf, cap, "a collection of scope '%.*s'", SHOWN, o->scope);
    else
        snprintf(buf, cap, "collection '%.*s' of scope '%.*s'", SHOWN, o->name, SHOWN,
                 o->scope);
    return buf;
}

#define WHO(o) describe((o), who, sizeof(who))

/* Reads "name": a legal name. */
static engine_errc parse_name(parse_ctx *p, const jv *v, const owner *o, char **out)
{
    char who[192];
    if (v == NULL)
        return invalid(p, "%s has no \"name\"", WHO(o));
    if (!jv_is(v, JV_STRING))
        return invalid(p, "%s: \"name\" is not a string", WHO(o));
    const char *s = v->u.s;
    size_t len = v->n;
    if (!coll_name_valid(s, len))
        return invalid(p,
                       "%s: name '%.*s' is not 1-%d characters of A-Za-z0-9_-%%$ "
                       "not starting with '$'",
                       WHO(o), (int)(len > SHOWN ? SHOWN : len), s, COLL_NAME_MAX);
    *out = keep_name(p->m, s, len);
    return *out ? ENGINE_SUCCESS : ENGINE_NO_MEMORY;
}

/* Reads "uid" of a scope or collection: 1-8 hex digits, not 1-7; 0 exactly when
 * the name is `_default`. */
static engine_errc parse_id(parse_ctx *p, const jv *v, const owner *o, uint32_t *out)
{
    char who[192];
    uint64_t id;
    if (v == NULL)
        return invalid(p, "%s has no \"uid\"", WHO(o));
    if (!parse_hex(v, 8, &id))
        return invalid(p, "%s: uid is not a string of 1-8 hex digits", WHO(o));
    if (id >= 1 && id <= 7)
        return invalid(p, "%s: uid %" PRIx64 " is reserved (1-7)", WHO(o), id);
    bool is_default = strcmp(o->name, default_name) == 0;
    if (id == 0 && !is_default)
        return invalid(p, "%s: uid 0 belongs to '_default'", WHO(o));
    if (id != 0 && is_default)
        return invalid(p, "%s: '_default' must have uid 0, not %" PRIx64, WHO(o), id);
    *out = (uint32_t)id;
    return ENGINE_SUCCESS;
}

static engine_errc parse_collection(parse_ctx *p, const jv *obj, const coll_scope *scope,
                                    coll_collection *c)
{
    char who[192];
    owner o = {false, 0, NULL, scope->name};
    if (!jv_is(obj, JV_OBJECT))
        return invalid(p, "%s is not an object", WHO(&o));
    fields f = get_fields(obj);
    engine_errc rc = parse_name(p, f.name, &o, &c->name);
    if (rc != ENGINE_SUCCESS)
        return rc;
    o.name = c->name;
    rc = parse_id(p, f.uid, &o, &c->id);
    if (rc != ENGINE_SUCCESS)
        return rc;
    c->scope_id = scope->id;
    if (c->id == ENGINE_DEFAULT_COLLECTION && scope->id != 0)
        return invalid(p,
                       "the _default collection must be in the _default scope, not in "
                       "'%.*s'",
                       SHOWN, scope->name);
    const jv *ttl = f.max_ttl;
    if (ttl != NULL) {
        if (!jv_is(ttl, JV_INT))
            return invalid(p, "%s: maxTTL is not an integer", WHO(&o));
        int64_t v = ttl->u.i;
        if (v < 0 || v > (int64_t)COLL_MAX_TTL_LIMIT)
            return invalid(p, "%s: maxTTL %lld is outside 0..%u", WHO(&o), (long long)v,
                           COLL_MAX_TTL_LIMIT);
        c->has_max_ttl = true;
        c->max_ttl = (uint32_t)v;
    }
    return ENGINE_SUCCESS;
}

static int by_scope_id(const void *a, const void *b)
{
    uint32_t x = ((const coll_scope *)a)->id, y = ((const coll_scope *)b)->id;
    return x < y ? -1 : x > y;
}

static int by_collection_id(const void *a, const void *b)
{
    uint32_t x = ((const coll_collection *)a)->id, y = ((const coll_collection *)b)->id;
    return x < y ? -1 : x > y;
}

/* Manifests usually list ids in order: skip the sort then. */
static bool sorted_by_id(const void *v, size_t n, size_t size,
                         int (*cmp)(const void *, const void *))
{
    const char *p = v;
    for (size_t i = 1; i < n; i++)
        if (cmp(p + (i - 1) * size, p + i * size) > 0)
            return false;
    return true;
}

static bool is_epoch_shape(const coll_manifest *m)
{
    return m->nscopes == 1 && m->ncollections == 1 && m->collections[0].id == 0 &&
           !m->collections[0].has_max_ttl;
}

/* name_bytes: room for every name; the input's length is enough, since each
 * name stands in it with at least its bytes and two quotes. */
static engine_errc parse_tree(parse_ctx *p, const jv *root, const coll_limits *limits,
                              size_t name_bytes, coll_manifest **out)
{
    if (!jv_is(root, JV_OBJECT))
        return invalid(p, "the manifest is not a JSON object");
    uint64_t uid;
    const jv *juid = jv_get(root, "uid");
    if (juid == NULL)
        return invalid(p, "the manifest has no \"uid\"");
    if (!parse_hex(juid, 16, &uid))
        return invalid(p, "manifest uid is not a string of 1-16 hex digits");
    const jv *scopes = jv_get(root, "scopes");
    if (scopes == NULL)
        return invalid(p, "the manifest has no \"scopes\"");
    if (!jv_is(scopes, JV_ARRAY))
        return invalid(p, "\"scopes\" is not an array");
    size_t nscopes = jv_len(scopes), ncollections = 0;
    if (nscopes > limits->max_scopes)
        return invalid(p, "%zu scopes exceed the limit of %zu (max_scopes)", nscopes,
                       limits->max_scopes);
    for (size_t i = 0; i < nscopes; i++) {
        const jv *cols = jv_get(jv_at(scopes, i), "collections");
        ncollections += jv_is(cols, JV_ARRAY) ? jv_len(cols) : 0;
    }
    if (ncollections > limits->max_collections)
        return invalid(p, "%zu collections exceed the limit of %zu (max_collections)",
                       ncollections, limits->max_collections);

    coll_manifest *m = manifest_alloc(nscopes, ncollections, name_bytes);
    if (m == NULL)
        return ENGINE_NO_MEMORY;
    p->m = m;
    m->uid = uid;
    engine_errc rc = ENGINE_SUCCESS;
    for (size_t i = 0; i < nscopes; i++) {
        const jv *js = jv_at(scopes, i);
        coll_scope *s = &m->scopes[m->nscopes];
        if (!jv_is(js, JV_OBJECT)) {
            rc = invalid(p, "scope #%zu is not an object", i);
            goto err;
        }
        owner o = {true, i, NULL, NULL};
        m->nscopes++;
        fields f = get_fields(js);
        if ((rc = parse_name(p, f.name, &o, &s->name)) != ENGINE_SUCCESS)
            goto err;
        o.name = s->name;
        if ((rc = parse_id(p, f.uid, &o, &s->id)) != ENGINE_SUCCESS)
            goto err;
        const jv *cols = f.collections;
        if (cols == NULL) {
            rc = invalid(p, "scope '%.*s' has no \"collections\" array", SHOWN, s->name);
            goto err;
        }
        if (!jv_is(cols, JV_ARRAY)) {
            rc = invalid(p, "scope '%.*s': \"collections\" is not an array", SHOWN,
                         s->name);
            goto err;
        }
        for (size_t j = 0; j < jv_len(cols); j++) {
            coll_collection *c = &m->collections[m->ncollections++];
            rc = parse_collection(p, jv_at(cols, j), s, c);
            if (rc != ENGINE_SUCCESS)
                goto err;
            s->ncollections++;
        }
    }
    if (!sorted_by_id(m->scopes, m->nscopes, sizeof(coll_scope), by_scope_id))
        qsort(m->scopes, m->nscopes, sizeof(coll_scope), by_scope_id);
    for (size_t i = 1; i < m->nscopes; i++) {
        if (m->scopes[i].id == m->scopes[i - 1].id) {
            rc =
                invalid(p, "scopes '%.*s' and '%.*s' share uid %" PRIx32, SHOWN,
                        m->scopes[i - 1].name, SHOWN, m->scopes[i].name, m->scopes[i].id);
            goto err;
        }
    }
    if (!sorted_by_id(m->collections, m->ncollections, sizeof(coll_collection),
                      by_collection_id))
        qsort(m->collections, m->ncollections, sizeof(coll_collection), by_collection_id);
    for (size_t i = 1; i < m->ncollections; i++) {
        if (m->collections[i].id == m->collections[i - 1].id) {
            rc = invalid(p, "collections '%.*s' and '%.*s' share uid %" PRIx32, SHOWN,
                         m->collections[i - 1].name, SHOWN, m->collections[i].name,
                         m->collections[i].id);
            goto err;
        }
    }
    if (m->nscopes == 0 || m->scopes[0].id != 0) {
        rc = invalid(p, "the _default scope is missing");
        goto err;
    }
    if ((rc = build_indexes(m, p->why, p->whylen)) != ENGINE_SUCCESS)
        goto err;
    if (uid == 0 && !is_epoch_shape(m)) {
        rc = invalid(p, "uid 0 is only valid for the epoch manifest (the _default scope "
                        "holding only the _default collection)");
        goto err;
    }
    *out = m;
    return ENGINE_SUCCESS;
err:
    coll_manifest_unref(m);
    return rc;
}

engine_errc coll_manifest_parse(const char *json, size_t len, const coll_limits *limits,
                                coll_manifest **out, char *why, size_t whylen)
{
    parse_ctx p = {why, whylen, NULL};
    if (json == NULL)
        return invalid(&p, "the manifest is NULL");
    char err[256];
    jv_doc *doc = jv_parse(json, len, err, sizeof(err));
    if (doc == NULL)
        return invalid(&p, "manifest is not valid JSON: %s", err);
    engine_errc rc = parse_tree(&p, jv_root(doc), limits, len, out);
    jv_free(doc);
    return rc;
}

/* ---- successor ---- */

static bool same_manifest(const coll_manifest *a, const coll_manifest *b)
{
    if (a->uid != b->uid || a->nscopes != b->nscopes ||
        a->ncollections != b->ncollections)
        return false;
    for (size_t i = 0; i < a->nscopes; i++)
        if (a->scopes[i].id != b->scopes[i].id ||
            strcmp(a->scopes[i].name, b->scopes[i].name))
            return false;
    for (size_t i = 0; i < a->ncollections; i++) {
        const coll_collection *x = &a->collections[i], *y = &b->collections[i];
        if (x->id != y->id || x->scope_id != y->scope_id || strcmp(x->name, y->name) ||
            x->has_max_ttl != y->has_max_ttl || x->max_ttl != y->max_ttl)
            return false;
    }
    return true;
}

engine_errc coll_manifest_successor(const coll_manifest *cur, const coll_manifest *next,
                                    bool *identical, char *why, size_t whylen)
{
    const engine_errc no = ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST;
    *identical = false;
    if (next->uid < cur->uid) {
        snprintf(why, whylen,
                 "manifest uid %" PRIx64 " is lower than the current %" PRIx64, next->uid,
                 cur->uid);
        return no;
    }
    if (next->uid == cur->uid) {
        if (same_manifest(cur, next)) {
            *identical = true;
            return ENGINE_SUCCESS;
        }
        snprintf(why, whylen,
                 "manifest uid %" PRIx64 " is the current uid but the manifest differs",
                 next->uid);
        return no;
    }
    /* Both are sorted by id: walk them together. */
    for (size_t i = 0, j = 0; i < next->nscopes && j < cur->nscopes;) {
        const coll_scope *n = &next->scopes[i], *o = &cur->scopes[j];
        if (o->id < n->id) {
            j++;
            continue;
        }
        if (o->id == n->id && strcmp(o->name, n->name) != 0) {
            snprintf(why, whylen,
                     "scope uid %" PRIx32 " is renamed from '%.*s' to '%.*s'", n->id,
                     SHOWN, o->name, SHOWN, n->name);
            return no;
        }
        i++;
    }
    for (size_t i = 0, j = 0; i < next->ncollections && j < cur->ncollections;) {
        const coll_collection *n = &next->collections[i], *o = &cur->collections[j];
        if (o->id < n->id) {
            j++;
            continue;
        }
        i++;
        if (o->id != n->id)
            continue;
        if (strcmp(o->name, n->name) != 0) {
            snprintf(why, whylen,
                     "collection uid %" PRIx32 " is renamed from '%.*s' to '%.*s'", n->id,
                     SHOWN, o->name, SHOWN, n->name);
            return no;
        }
        if (o->scope_id != n->scope_id) {
            snprintf(why, whylen,
                     "collection '%.*s' (uid %" PRIx32 ") moves from scope %" PRIx32
                     " to scope %" PRIx32,
                     SHOWN, n->name, n->id, o->scope_id, n->scope_id);
            return no;
        }
    }
    return ENGINE_SUCCESS;
}

/* ---- paths ---- */

/* An empty path part names `_default`. */
static void part_or_default(const char **s, size_t *len)
{
    if (*len == 0) {
        *s = default_name;
        *len = DEFAULT_LEN;
    }
}

engine_errc coll_resolve_scope(const coll_manifest *m, const char *path, size_t len,
                               uint32_t *id, const char **why)
{
    if (path == NULL && len > 0) {
        *why = "path is NULL";
        return ENGINE_INVALID_ARGUMENTS;
    }
    const char *dot = len ? memchr(path, '.', len) : NULL;
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
    const char *dot = len ? memchr(path, '.', len) : NULL;
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
    const coll_collection *col = collection_by_name(m, sc->id, c, clen);
    if (col == NULL) {
        *why = "unknown collection";
        return ENGINE_UNKNOWN_COLLECTION;
    }
    *id = col->id;
    return ENGINE_SUCCESS;
}

/* ---- printing ---- */

/* A growing output buffer; names need no escaping (coll_name_valid allows only
 * [A-Za-z0-9_%$-]), so the manifest prints without a JSON tree or printf. */
typedef struct outbuf {
    char *p;
    size_t len, cap;
    bool failed;
} outbuf;

static void put_bytes(outbuf *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap + n) * 2;
        char *grown = realloc(o->p, cap);
        if (grown == NULL) {
            o->failed = true;
            return;
        }
        o->p = grown;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put(outbuf *o, const char *s)
{
    put_bytes(o, s, strlen(s));
}

static void put_num(outbuf *o, uint64_t v, unsigned base)
{
    char buf[24];
    size_t i = sizeof(buf);
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    put_bytes(o, buf + i, sizeof(buf) - i);
}

static void put_hex_field(outbuf *o, const char *key, uint64_t v)
{
    put(o, key);
    put_num(o, v, 16);
    put_bytes(o, "\"", 1);
}

char *coll_manifest_to_json(const coll_manifest *m, bool with_state)
{
    outbuf o = {malloc(256 + m->ncollections * 64), 0, 256 + m->ncollections * 64, false};
    if (o.p == NULL)
        return NULL;
    /* Collections are sorted by id, not grouped by scope: order them by scope. */
    size_t *order = malloc((m->ncollections + 1) * sizeof(size_t));
    size_t *start = calloc(m->nscopes + 1, sizeof(size_t));
    size_t *scope_of = malloc((m->ncollections + 1) * sizeof(size_t));
    if (order == NULL || start == NULL || scope_of == NULL)
        o.failed = true;
    for (size_t j = 0; !o.failed && j < m->ncollections; j++) {
        scope_of[j] =
            (size_t)(coll_find_scope(m, m->collections[j].scope_id) - m->scopes);
        start[scope_of[j] + 1]++;
    }
    for (size_t i = 0; !o.failed && i < m->nscopes; i++)
        start[i + 1] += start[i];
    for (size_t j = 0; !o.failed && j < m->ncollections; j++)
        order[start[scope_of[j]]++] = j;
    put_hex_field(&o, "{\"uid\":\"", m->uid);
    put(&o, ",\"scopes\":[");
    size_t next = 0;
    for (size_t i = 0; !o.failed && i < m->nscopes; i++) {
        const coll_scope *s = &m->scopes[i];
        put(&o, i ? ",{\"name\":\"" : "{\"name\":\"");
        put(&o, s->name);
        put_hex_field(&o, "\",\"uid\":\"", s->id);
        put(&o, ",\"collections\":[");
        for (size_t k = 0; k < s->ncollections; k++) {
            const coll_collection *c = &m->collections[order[next++]];
            put(&o, k ? ",{\"name\":\"" : "{\"name\":\"");
            put(&o, c->name);
            put_hex_field(&o, "\",\"uid\":\"", c->id);
            if (c->has_max_ttl) {
                put(&o, ",\"maxTTL\":");
                put_num(&o, c->max_ttl, 10);
            }
            if (with_state && c->state != NULL)
                put_hex_field(&o, ",\"start_cas\":\"", c->state->start_cas);
            put(&o, "}");
        }
        put(&o, "]}");
    }
    put(&o, "]}");
    free(order);
    free(start);
    free(scope_of);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

uint64_t coll_manifest_load_state(coll_manifest *m, const char *json, size_t len)
{
    uint64_t max = 0;
    char err[256];
    jv_doc *doc = jv_parse(json, len, err, sizeof(err));
    const jv *scopes = doc ? jv_get(jv_root(doc), "scopes") : NULL;
    for (size_t i = 0; i < jv_len(scopes); i++) {
        const jv *cols = jv_get(jv_at(scopes, i), "collections");
        for (size_t j = 0; j < jv_len(cols); j++) {
            const jv *jc = jv_at(cols, j);
            uint64_t id, cas;
            if (!parse_hex(jv_get(jc, "uid"), 8, &id) ||
                !parse_hex(jv_get(jc, "start_cas"), 16, &cas))
                continue;
            const coll_collection *c = coll_find_collection(m, (uint32_t)id);
            if (c != NULL && c->state != NULL) {
                c->state->start_cas = cas;
                if (cas > max)
                    max = cas;
            }
        }
    }
    jv_free(doc);
    return max;
}
