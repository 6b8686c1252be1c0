/*
 * manifest.c - parsing, validating, comparing, looking up and printing
 * collections manifests. It never changes a manifest after it is built (only
 * the counters inside a coll_state move), and it never accepts a manifest that
 * breaks a rule: everything that can be wrong is found here, before the
 * manager writes anything.
 */
#include "manifest.h"

#include "../../common/mix.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_name[] = "_default";
#define DEFAULT_LEN (sizeof(default_name) - 1)
#define SHOWN       48 /* bytes of a name quoted in a reason */

/* ---- hashing for the lookup indexes ---- */

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
static bool parse_hex(const json_t *v, size_t maxdigits, uint64_t *out)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
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

/* The known keys of a scope or collection object (unknown keys are ignored). */
typedef struct fields {
    const json_t *name, *uid, *collections, *max_ttl;
} fields;

static fields get_fields(const json_t *obj)
{
    fields f = {json_object_get(obj, "name"), json_object_get(obj, "uid"),
                json_object_get(obj, "collections"), json_object_get(obj, "maxTTL")};
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
static engine_errc parse_name(parse_ctx *p, const json_t *v, const owner *o, char **out)
{
    char who[192];
    if (v == NULL)
        return invalid(p, "%s has no \"name\"", WHO(o));
    if (!json_is_string(v))
        return invalid(p, "%s: \"name\" is not a string", WHO(o));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
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
static engine_errc parse_id(parse_ctx *p, const json_t *v, const owner *o, uint32_t *out)
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

static engine_errc parse_collection(parse_ctx *p, const json_t *obj,
                                    const coll_scope *scope, coll_collection *c)
{
    char who[192];
    owner o = {false, 0, NULL, scope->name};
    if (!json_is_object(obj))
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
    const json_t *ttl = f.max_ttl;
    if (ttl != NULL) {
        if (!json_is_integer(ttl))
            return invalid(p, "%s: maxTTL is not an integer", WHO(&o));
        json_int_t v = json_integer_value(ttl);
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
static engine_errc parse_tree(parse_ctx *p, const json_t *root, const coll_limits *limits,
                              size_t name_bytes, coll_manifest **out)
{
    if (!json_is_object(root))
        return invalid(p, "the manifest is not a JSON object");
    uint64_t uid;
    const json_t *juid = json_object_get(root, "uid");
    if (juid == NULL)
        return invalid(p, "the manifest has no \"uid\"");
    if (!parse_hex(juid, 16, &uid))
        return invalid(p, "manifest uid is not a string of 1-16 hex digits");
    const json_t *scopes = json_object_get(root, "scopes");
    if (scopes == NULL)
        return invalid(p, "the manifest has no \"scopes\"");
    if (!json_is_array(scopes))
        return invalid(p, "\"scopes\" is not an array");
    size_t nscopes = json_array_size(scopes), ncollections = 0;
    if (nscopes > limits->max_scopes)
        return invalid(p, "%zu scopes exceed the limit of %zu (max_scopes)", nscopes,
                       limits->max_scopes);
    for (size_t i = 0; i < nscopes; i++)
        ncollections +=
            json_array_size(json_object_get(json_array_get(scopes, i), "collections"));
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
        const json_t *js = json_array_get(scopes, i);
        coll_scope *s = &m->scopes[m->nscopes];
        if (!json_is_object(js)) {
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
        const json_t *cols = f.collections;
        if (cols == NULL) {
            rc = invalid(p, "scope '%.*s' has no \"collections\" array", SHOWN, s->name);
            goto err;
        }
        if (!json_is_array(cols)) {
            rc = invalid(p, "scope '%.*s': \"collections\" is not an array", SHOWN,
                         s->name);
            goto err;
        }
        for (size_t j = 0; j < json_array_size(cols); j++) {
            coll_collection *c = &m->collections[m->ncollections++];
            rc = parse_collection(p, json_array_get(cols, j), s, c);
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

/* The JSON tree of a manifest's text, with jansson: duplicate keys and NUL in
 * strings (also as \u0000) are refused, and so is anything but one object or
 * array; text that is not UTF-8 is refused by jansson itself. Nesting deeper
 * than jansson's limit (2048 levels in 2.14) is refused with its reason
 * ("maximum parsing depth reached"). */
static json_t *load_tree(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t e;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
    if (root == NULL)
        snprintf(err, errlen, "%s at line %d, column %d", e.text, e.line, e.column);
    return root;
}

engine_errc coll_manifest_parse(const char *json, size_t len, const coll_limits *limits,
                                coll_manifest **out, char *why, size_t whylen)
{
    parse_ctx p = {why, whylen, NULL};
    if (json == NULL)
        return invalid(&p, "the manifest is NULL");
    size_t max_bytes = limits->max_bytes ? limits->max_bytes : COLL_MANIFEST_MAX_BYTES;
    if (len > max_bytes)
        return invalid(&p, "the manifest is %zu bytes; the limit is %zu", len, max_bytes);
    char err[256];
    json_t *root = load_tree(json, len, err, sizeof(err));
    if (root == NULL)
        return invalid(&p, "manifest is not valid JSON: %s", err);
    engine_errc rc = parse_tree(&p, root, limits, len, out);
    /* Freed before the caller answers anyone: jansson's tree is short-lived. */
    json_decref(root);
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
/* A hex string field; false on out of memory. */
static bool set_hex(json_t *obj, const char *key, uint64_t v)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%" PRIx64, v);
    return json_object_set_new(obj, key, json_string(hex)) == 0;
}

/* One collection as a JSON object, or NULL on out of memory. */
static json_t *collection_json(const coll_collection *c, bool with_state)
{
    json_t *o = json_pack("{s:s}", "name", c->name);
    if (o == NULL || !set_hex(o, "uid", c->id) ||
        (c->has_max_ttl &&
         json_object_set_new(o, "maxTTL", json_integer((json_int_t)c->max_ttl)) != 0) ||
        (with_state && c->state != NULL &&
         !set_hex(o, "start_cas", c->state->start_cas))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *coll_manifest_to_json(const coll_manifest *m, bool with_state)
{
    /* Collections are sorted by id, not grouped by scope: each scope's array
     * is filled as its collections come. */
    json_t *root = json_object(), *scopes = json_array();
    json_t **arrays = calloc(m->nscopes + 1, sizeof(json_t *));
    char *out = NULL;
    if (root == NULL || scopes == NULL || arrays == NULL ||
        !set_hex(root, "uid", m->uid) || json_object_set(root, "scopes", scopes) != 0)
        goto out;
    for (size_t i = 0; i < m->nscopes; i++) {
        const coll_scope *sc = &m->scopes[i];
        json_t *so = json_pack("{s:s}", "name", sc->name);
        arrays[i] = json_array();
        if (so == NULL || arrays[i] == NULL || !set_hex(so, "uid", sc->id) ||
            json_object_set(so, "collections", arrays[i]) != 0 ||
            json_array_append_new(scopes, so) != 0) {
            json_decref(so);
            goto out;
        }
    }
    for (size_t j = 0; j < m->ncollections; j++) {
        const coll_collection *c = &m->collections[j];
        size_t i = (size_t)(coll_find_scope(m, c->scope_id) - m->scopes);
        json_t *co = collection_json(c, with_state);
        if (co == NULL || json_array_append_new(arrays[i], co) != 0)
            goto out;
    }
    out = json_dumps(root, JSON_COMPACT);
out:
    for (size_t i = 0; arrays != NULL && i < m->nscopes; i++)
        json_decref(arrays[i]);
    free(arrays);
    json_decref(scopes);
    json_decref(root);
    return out;
}

uint64_t coll_manifest_load_state(coll_manifest *m, const char *json, size_t len)
{
    uint64_t max = 0;
    char err[256];
    json_t *root = load_tree(json, len, err, sizeof(err));
    const json_t *scopes = json_object_get(root, "scopes");
    for (size_t i = 0; i < json_array_size(scopes); i++) {
        const json_t *cols = json_object_get(json_array_get(scopes, i), "collections");
        for (size_t j = 0; j < json_array_size(cols); j++) {
            const json_t *jc = json_array_get(cols, j);
            uint64_t id, cas;
            if (!parse_hex(json_object_get(jc, "uid"), 8, &id) ||
                !parse_hex(json_object_get(jc, "start_cas"), 16, &cas))
                continue;
            const coll_collection *c = coll_find_collection(m, (uint32_t)id);
            if (c != NULL && c->state != NULL) {
                c->state->start_cas = cas;
                if (cas > max)
                    max = cas;
            }
        }
    }
    json_decref(root);
    return max;
}
