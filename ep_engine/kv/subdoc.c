/*
 * subdoc.c - the sub-document operations of the vtable (v4): subdoc_lookup
 * and subdoc_mutate over the JSON operations of ../subdoc, on a document's
 * body and on its extended attributes.
 *
 * A lookup takes a reference on the document's item under its stripe lock
 * and reads it with no lock held. A mutation reads the document the same way,
 * applies every spec to a copy, and stores the result with the CAS it read
 * (kv_do_store: locks, the disk queue and every store rule apply); if the
 * document changed meanwhile and the caller gave no CAS, it starts again. So
 * a multi-mutation is all or nothing, and no two interleave.
 *
 * Attributes are worked on as one JSON object (key -> value), so a path's
 * first name is the attribute's key and the rest walks into its value. The
 * virtual ones ($document, $vbucket, $XTOC) are an object built for lookups.
 */
#include "kv.h"
#include "../io/io.h"
#include "../subdoc/subdoc.h"
#include "../subdoc/xattr.h"
#include "../waiter.h"
#include "locks.h"
#include "ops.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Attempts of a mutation whose document keeps changing under it. */
#define SUBDOC_RETRIES 100

static const struct {
    uint8_t op;
    sd_op sd;
} ops[] = {
    {ENGINE_SUBDOC_GET, SD_GET},
    {ENGINE_SUBDOC_EXISTS, SD_EXISTS},
    {ENGINE_SUBDOC_GET_COUNT, SD_GET_COUNT},
    {ENGINE_SUBDOC_DICT_ADD, SD_DICT_ADD},
    {ENGINE_SUBDOC_DICT_UPSERT, SD_DICT_UPSERT},
    {ENGINE_SUBDOC_DELETE, SD_DELETE},
    {ENGINE_SUBDOC_REPLACE, SD_REPLACE},
    {ENGINE_SUBDOC_ARRAY_PUSH_LAST, SD_ARRAY_PUSH_LAST},
    {ENGINE_SUBDOC_ARRAY_PUSH_FIRST, SD_ARRAY_PUSH_FIRST},
    {ENGINE_SUBDOC_ARRAY_INSERT, SD_ARRAY_INSERT},
    {ENGINE_SUBDOC_ARRAY_ADD_UNIQUE, SD_ARRAY_ADD_UNIQUE},
    {ENGINE_SUBDOC_COUNTER, SD_COUNTER},
};

/* The JSON operation of a path op, or -1 (a whole-document op, or unknown). */
static int sd_of(uint8_t op)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].op == op)
            return (int)ops[i].sd;
    return -1;
}

static bool is_lookup(uint8_t op)
{
    return op == ENGINE_SUBDOC_GET || op == ENGINE_SUBDOC_EXISTS ||
           op == ENGINE_SUBDOC_GET_COUNT || op == ENGINE_SUBDOC_GET_DOC;
}

static bool is_mutation(uint8_t op)
{
    return op == ENGINE_SUBDOC_SET_DOC || op == ENGINE_SUBDOC_DELETE_DOC ||
           (sd_of(op) >= 0 && !is_lookup(op));
}

static bool whole_doc(uint8_t op)
{
    return op == ENGINE_SUBDOC_GET_DOC || op == ENGINE_SUBDOC_SET_DOC ||
           op == ENGINE_SUBDOC_DELETE_DOC;
}

static engine_errc errc_of(sd_status st)
{
    static const engine_errc map[] = {
        [SD_OK] = ENGINE_SUCCESS,
        [SD_PATH_ENOENT] = ENGINE_SUBDOC_PATH_ENOENT,
        [SD_PATH_MISMATCH] = ENGINE_SUBDOC_PATH_MISMATCH,
        [SD_PATH_EINVAL] = ENGINE_SUBDOC_PATH_EINVAL,
        [SD_PATH_E2BIG] = ENGINE_SUBDOC_PATH_E2BIG,
        [SD_DOC_E2DEEP] = ENGINE_SUBDOC_DOC_E2DEEP,
        [SD_VALUE_CANTINSERT] = ENGINE_SUBDOC_VALUE_CANTINSERT,
        [SD_DOC_NOTJSON] = ENGINE_SUBDOC_DOC_NOT_JSON,
        [SD_NUM_ERANGE] = ENGINE_SUBDOC_NUM_ERANGE,
        [SD_DELTA_EINVAL] = ENGINE_SUBDOC_DELTA_EINVAL,
        [SD_PATH_EEXISTS] = ENGINE_SUBDOC_PATH_EEXISTS,
        [SD_VALUE_ETOODEEP] = ENGINE_SUBDOC_VALUE_ETOODEEP,
        [SD_NO_MEMORY] = ENGINE_NO_MEMORY,
    };
    return (unsigned)st < sizeof(map) / sizeof(map[0]) ? map[st] : ENGINE_FAILED;
}

/* The path flags a spec may carry. */
#define LOOKUP_FLAGS ENGINE_SUBDOC_PATH_XATTR
#define MUTATION_FLAGS                                                                   \
    (ENGINE_SUBDOC_PATH_MKDIR_P | ENGINE_SUBDOC_PATH_XATTR |                             \
     ENGINE_SUBDOC_PATH_EXPAND_MACROS)

/* The attribute key a path starts with: the bytes before '.' or '['. */
static size_t xattr_key_len(const engine_subdoc_spec *s)
{
    size_t n = 0;
    while (n < s->pathlen && s->path[n] != '.' && s->path[n] != '[')
        n++;
    return n;
}

static bool is_vattr(const char *key, size_t klen)
{
    static const char *const names[] = {"$document", "$vbucket", "$XTOC"};
    for (size_t i = 0; i < 3; i++)
        if (strlen(names[i]) == klen && memcmp(names[i], key, klen) == 0)
            return true;
    return false;
}

static bool is_macro(const engine_subdoc_spec *s)
{
    static const char *const macros[] = {"\"${Mutation.CAS}\"",
                                         "\"${Mutation.value_crc32c}\""};
    for (size_t i = 0; i < 2; i++)
        if (strlen(macros[i]) == s->valuelen &&
            memcmp(macros[i], s->value, s->valuelen) == 0)
            return true;
    return false;
}

/* An attribute spec's key and macro, judged before anything runs (as
 * kv_engine does): the call's error, or ENGINE_SUCCESS. */
static engine_errc check_xattr_spec(ep_engine *e, const void *cookie,
                                    const engine_subdoc_spec *s, size_t i, bool mutation)
{
    size_t klen = xattr_key_len(s);
    const char *why = NULL;
    if (klen == 0)
        return ENGINE_SUCCESS; /* the spec's own path_einval */
    if (s->path[0] == '$') {
        if (mutation)
            return ep_fail(e, cookie, ENGINE_SUBDOC_XATTR_CANT_MODIFY_VATTR,
                           "spec %zu: virtual attributes are read only", i);
        if (!is_vattr(s->path, klen))
            return ep_fail(e, cookie, ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR,
                           "spec %zu: no virtual attribute of that name", i);
        return ENGINE_SUCCESS;
    }
    if (memchr(s->path, '`', klen) != NULL)
        return ep_fail(e, cookie, ENGINE_XATTR_EINVAL,
                       "spec %zu: an attribute's key takes no backticks", i);
    if (!xa_key_valid(s->path, klen, &why))
        return ep_fail(e, cookie, ENGINE_XATTR_EINVAL, "spec %zu: %s", i, why);
    if ((s->flags & ENGINE_SUBDOC_PATH_EXPAND_MACROS) && !is_macro(s))
        return ep_fail(e, cookie, ENGINE_SUBDOC_XATTR_UNKNOWN_MACRO,
                       "spec %zu: the macros are \"${Mutation.CAS}\" and "
                       "\"${Mutation.value_crc32c}\" (no sequence numbers here)",
                       i);
    return ENGINE_SUCCESS;
}

/* The checks of the arguments alone (nothing of the engine's state): spec
 * count, kind, flags and order, attribute keys and macros. */
static engine_errc check_specs(ep_engine *e, const void *cookie,
                               const engine_subdoc_spec *specs, size_t nspecs,
                               bool mutation)
{
    engine_errc rc;
    if (specs == NULL || nspecs == 0 || nspecs > ENGINE_SUBDOC_MAX_SPECS)
        return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO,
                       "%zu specs; a call takes 1 to %d", nspecs,
                       ENGINE_SUBDOC_MAX_SPECS);
    bool body_seen = false;
    for (size_t i = 0; i < nspecs; i++) {
        const engine_subdoc_spec *s = &specs[i];
        if ((s->pathlen > 0 && s->path == NULL) || (s->valuelen > 0 && s->value == NULL))
            return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                           "spec %zu: NULL path or value", i);
        bool ok = mutation ? is_mutation(s->op) : is_lookup(s->op);
        if (!ok)
            return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO,
                           "spec %zu: op 0x%02x is not a %s", i, s->op,
                           mutation ? "mutation" : "lookup");
        if (s->op == ENGINE_SUBDOC_DELETE_DOC && nspecs != 1)
            return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO,
                           "delete_doc must be the only spec");
        bool xattr = s->flags & ENGINE_SUBDOC_PATH_XATTR;
        if ((s->flags & ENGINE_SUBDOC_PATH_EXPAND_MACROS) && !xattr)
            return ep_fail(e, cookie, ENGINE_SUBDOC_XATTR_INVALID_FLAG_COMBO,
                           "spec %zu: macros are expanded only in attribute paths", i);
        if (s->flags & ~(mutation ? MUTATION_FLAGS : LOOKUP_FLAGS))
            return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                           "spec %zu: path flags 0x%02x not supported for op 0x%02x", i,
                           s->flags, s->op);
        if (whole_doc(s->op) && (s->pathlen != 0 || s->flags != 0))
            return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                           "spec %zu: a whole-document op takes no path or flags", i);
        if (xattr && body_seen)
            return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_XATTR_ORDER,
                           "spec %zu: attribute specs come before body specs", i);
        rc = xattr ? check_xattr_spec(e, cookie, s, i, mutation) : ENGINE_SUCCESS;
        if (rc != ENGINE_SUCCESS)
            return rc;
        body_seen = body_seen || !xattr;
    }
    return ENGINE_SUCCESS;
}

/* The checks every call makes: the key and vbucket served here, then the
 * arguments. */
static engine_errc check_call(ep_engine *e, const void *cookie, const engine_doc_key *key,
                              uint16_t vbucket, const engine_subdoc_spec *specs,
                              size_t nspecs, bool mutation)
{
    engine_errc rc = kv_check_key(e, cookie, key, vbucket);
    return rc != ENGINE_SUCCESS ? rc : check_specs(e, cookie, specs, nspecs, mutation);
}

/* ---- a document taken apart ---- */

typedef struct sd_doc {
    ep_engine *e;
    const ep_item *it; /* NULL: a new document */
    const char *section;
    size_t xlen; /* the attribute section, header included (0: none) */
    const char *body;
    size_t blen;
    bool body_json; /* the body's datatype bit */
    json_t *xattrs; /* every attribute, parsed at the first attribute spec */
    json_t *vattrs; /* the virtual ones (lookups) */
    json_t *json;   /* the body, parsed at the first body spec */
    sd_status json_st;
    bool json_tried, body_changed, xattrs_changed;
} sd_doc;

static void doc_open(sd_doc *d, ep_engine *e, const ep_item *it)
{
    memset(d, 0, sizeof(*d));
    d->e = e;
    d->it = it;
    if (it == NULL)
        return;
    const char *v = it->data + it->nkey;
    uint8_t dt = item_datatype(it);
    d->xlen = dt & ENGINE_DATATYPE_XATTR ? xa_size(v, it->nvalue) : 0;
    d->section = v;
    d->body = v + d->xlen;
    d->blen = it->nvalue - d->xlen;
    d->body_json = dt & ENGINE_DATATYPE_JSON;
}

static void doc_close(sd_doc *d)
{
    json_decref(d->xattrs);
    json_decref(d->vattrs);
    json_decref(d->json);
}

/* The body as JSON: parsed once (SD_DOC_NOTJSON for one that is not). */
static sd_status doc_body(sd_doc *d)
{
    if (!d->json_tried) {
        d->json_tried = true;
        d->json_st = sd_parse_doc(d->body, d->blen, &d->json);
    }
    return d->json_st;
}

static sd_status doc_xattrs(sd_doc *d)
{
    if (d->xattrs == NULL)
        d->xattrs = d->xlen > 0 ? xa_to_object(d->section, d->xlen) : json_object();
    return d->xattrs != NULL ? SD_OK : SD_NO_MEMORY;
}

static const char *const datatype_names[] = {"json", "snappy", "xattr"};

/* The virtual attribute a path names ($document, $vbucket or $XTOC, klen
 * bytes), added to d->vattrs the first time a spec asks for it: $XTOC parses
 * the attributes, $document's value_crc32c reads the whole body, so neither
 * is done for a spec that does not ask (the SDK's get withExpiry reads
 * $document.exptime and .flags). */
static sd_status doc_vattr(sd_doc *d, const char *path, size_t pathlen, size_t klen)
{
    if (d->vattrs == NULL && (d->vattrs = json_object()) == NULL)
        return SD_NO_MEMORY;
    const ep_item *it = d->it;
    char name[16];
    snprintf(name, sizeof(name), "%.*s", (int)klen, path);
    json_t *v = json_object_get(d->vattrs, name);
    if (strcmp(name, "$XTOC") == 0 && v == NULL) {
        if (doc_xattrs(d) != SD_OK || (v = json_array()) == NULL)
            return SD_NO_MEMORY;
        const char *k;
        json_t *x;
        json_object_foreach(d->xattrs, k, x) json_array_append_new(v, json_string(k));
    } else if (strcmp(name, "$vbucket") == 0 && v == NULL) {
        char now[24];
        snprintf(now, sizeof(now), "%lld",
                 (long long)d->e->sapi->core.abstime(ep_now(d->e)));
        v = json_pack("{s:{s:s,s:s}}", "HLC", "now", now, "mode", "real");
    } else if (strcmp(name, "$document") == 0) {
        if (v == NULL) {
            char cas[19];
            snprintf(cas, sizeof(cas), "0x%016" PRIx64, it->cas);
            json_t *types = json_array();
            uint8_t dt = item_datatype(it);
            for (unsigned b = 0; types != NULL && b < 3; b++)
                if (dt & (1u << b))
                    json_array_append_new(types, json_string(datatype_names[b]));
            if (types != NULL && json_array_size(types) == 0)
                json_array_append_new(types, json_string("raw"));
            json_int_t exptime =
                it->exptime ? (json_int_t)d->e->sapi->core.abstime(it->exptime) : 0;
            v = json_pack("{s:s,s:I,s:I,s:I,s:o,s:b}", "CAS", cas, "exptime", exptime,
                          "flags", (json_int_t)it->flags, "value_bytes",
                          (json_int_t)d->blen, "datatype", types, "deleted", 0);
            if (v == NULL || json_object_set_new(d->vattrs, name, v) != 0)
                return SD_NO_MEMORY;
        }
        /* The whole $document, or its value_crc32c: the body's checksum. */
        static const char crcpath[] = "$document.value_crc32c";
        bool crc = pathlen == klen || (pathlen >= sizeof(crcpath) - 1 &&
                                       memcmp(path, crcpath, sizeof(crcpath) - 1) == 0);
        if (crc && json_object_get(v, "value_crc32c") == NULL) {
            char sum[11];
            snprintf(sum, sizeof(sum), "0x%08" PRIx32, io_crc32c(0, d->body, d->blen));
            if (json_object_set_new(v, "value_crc32c", json_string(sum)) != 0)
                return SD_NO_MEMORY;
        }
        return SD_OK;
    } else {
        return SD_OK; /* built already */
    }
    if (v == NULL || json_object_set_new(d->vattrs, name, v) != 0)
        return SD_NO_MEMORY;
    return SD_OK;
}

/* Where an attribute spec works: the attribute object, or the virtual one.
 * A bad key is the spec's error. */
static engine_errc xattr_target(sd_doc *d, const engine_subdoc_spec *s, bool mutation,
                                json_t ***doc)
{
    size_t klen = xattr_key_len(s);
    if (klen == 0)
        return ENGINE_SUBDOC_PATH_EINVAL;
    if (s->path[0] == '$') {
        if (!is_vattr(s->path, klen))
            return ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR;
        if (mutation)
            return ENGINE_SUBDOC_XATTR_CANT_MODIFY_VATTR;
        if (doc_vattr(d, s->path, s->pathlen, klen) != SD_OK)
            return ENGINE_NO_MEMORY;
        *doc = &d->vattrs;
        return ENGINE_SUCCESS;
    }
    const char *why;
    if (!xa_key_valid(s->path, klen, &why))
        return ENGINE_XATTR_EINVAL;
    if (doc_xattrs(d) != SD_OK)
        return ENGINE_NO_MEMORY;
    *doc = &d->xattrs;
    return ENGINE_SUCCESS;
}

/* ---- lookups ---- */

/* One lookup spec: its status, and its value in *out (malloc'd) or *ref (the
 * document's own bytes). */
static engine_errc lookup_one(sd_doc *d, const engine_subdoc_spec *s, char **out,
                              size_t *len, const char **ref)
{
    if (s->op == ENGINE_SUBDOC_GET_DOC) {
        *ref = d->body;
        *len = d->blen;
        return ENGINE_SUCCESS;
    }
    json_t **doc;
    if (s->flags & ENGINE_SUBDOC_PATH_XATTR) {
        engine_errc rc = xattr_target(d, s, false, &doc);
        if (rc != ENGINE_SUCCESS)
            return rc;
    } else {
        sd_status st = doc_body(d);
        if (st != SD_OK)
            return errc_of(st);
        doc = &d->json;
    }
    return errc_of(sd_execute(doc, (sd_op)sd_of(s->op), 0, s->path, s->pathlen, s->value,
                              s->valuelen, out, len));
}

engine_errc kv_subdoc_lookup(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, engine_subdoc_result_fn result, void *ctx,
                             uint64_t *cas_out)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_call(e, cookie, key, vbucket, specs, nspecs, false);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (result == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "result callback is NULL");
    if (doc_flags & ~ENGINE_SUBDOC_DOC_ACCESS_DELETED)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS,
                       "document flags 0x%02x: a lookup takes access_deleted only",
                       doc_flags);
    key_place p;
    rc = kv_find_resident(e, cookie, key, vbucket,
                          ht_hash(vbucket, key->collection, key->bytes, key->len), &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    ep_item *it = p.it;
    bool locked = it != NULL && kv_lock_of(e, p.s, it) != NULL;
    if (it != NULL)
        item_ref(it);
    ht_unlock(p.s);
    if (it == NULL)
        return ep_fail(e, cookie, ENGINE_NO_SUCH_KEY, "key does not exist");
    if (cas_out != NULL)
        *cas_out = locked ? UINT64_MAX : it->cas; /* a lock's CAS is the locker's */
    sd_doc d;
    doc_open(&d, e, it);
    bool all = true;
    for (size_t i = 0; i < nspecs; i++) {
        char *out = NULL;
        const char *ref = NULL;
        size_t len = 0;
        engine_errc st = lookup_one(&d, &specs[i], &out, &len, &ref);
        all = all && st == ENGINE_SUCCESS;
        result(i, st, ref != NULL ? ref : out, len, ctx);
        free(out);
    }
    doc_close(&d);
    ep_item_put(e, it);
    return all ? ENGINE_SUCCESS : ENGINE_SUBDOC_MULTI_PATH_FAILURE;
}

/* ---- mutations ---- */

/* The results a successful mutation gives back. */
typedef struct kept_result {
    size_t index;
    char *value;
    size_t len;
} kept_result;

/* A mutation's macros: the placeholders written where the values go, filled
 * in once the body (CRC-32C) and the CAS are known. */
typedef struct macros {
    char cas[19], crc[11]; /* "0x" and 16 / 8 random hex digits */
    bool any;
} macros;

static bool occurs(const char *hay, size_t n, const char *needle)
{
    return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Strings of the tree equal to text. */
static size_t count_strings(const json_t *v, const char *text)
{
    size_t n = 0, i;
    const char *k;
    json_t *x;
    if (json_is_string(v))
        return strcmp(json_string_value(v), text) == 0;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, k, x) n += count_strings(x, text);
    if (json_is_array(v))
        json_array_foreach(v, i, x) n += count_strings(x, text);
    return n;
}

/* Occurrences of needle (nlen bytes) in hay. */
static size_t count_bytes(const char *hay, size_t n, const char *needle, size_t nlen)
{
    size_t c = 0;
    if (n == 0 || hay == NULL)
        return 0;
    for (const char *p = hay;
         (p = memmem(p, n - (size_t)(p - hay), needle, nlen)) != NULL; p += nlen)
        c++;
    return c;
}

/* Random placeholders found nowhere in the document's attributes or the
 * specs. (build_item also checks that every one in the result is a macro's:
 * a placeholder made some other way picks new ones.) */
static void macros_pick(macros *m, const sd_doc *d, const engine_subdoc_spec *specs,
                        size_t nspecs)
{
    for (;;) {
        uint64_t r[2];
        arc4random_buf(r, sizeof(r));
        snprintf(m->cas, sizeof(m->cas), "0x%016" PRIx64, r[0]);
        snprintf(m->crc, sizeof(m->crc), "0x%08" PRIx32, (uint32_t)r[1]);
        bool clash = occurs(d->section, d->xlen, m->cas + 2) ||
                     occurs(d->section, d->xlen, m->crc + 2);
        for (size_t i = 0; !clash && i < nspecs; i++) {
            const engine_subdoc_spec *s = &specs[i];
            clash = occurs(s->path, s->pathlen, m->cas + 2) ||
                    occurs(s->path, s->pathlen, m->crc + 2) ||
                    occurs(s->value, s->valuelen, m->cas + 2) ||
                    occurs(s->value, s->valuelen, m->crc + 2);
        }
        clash = clash || strstr(m->cas, m->crc + 2) != NULL;
        if (!clash)
            return;
    }
}

/* The value an attribute spec with macros stores: the placeholder as a JSON
 * string, or the macro's error. */
static engine_errc macro_value(const engine_subdoc_spec *s, macros *m, char *buf,
                               size_t cap, size_t *len)
{
    static const char cas[] = "\"${Mutation.CAS}\"",
                      crc[] = "\"${Mutation.value_crc32c}\"";
    const char *ph = NULL;
    if (s->valuelen == sizeof(cas) - 1 && memcmp(s->value, cas, s->valuelen) == 0)
        ph = m->cas;
    else if (s->valuelen == sizeof(crc) - 1 && memcmp(s->value, crc, s->valuelen) == 0)
        ph = m->crc;
    if (ph == NULL)
        return ENGINE_SUBDOC_XATTR_UNKNOWN_MACRO;
    *len = (size_t)snprintf(buf, cap, "\"%s\"", ph);
    m->any = true;
    return ENGINE_SUCCESS;
}

/* Applies every spec to d; the first failing spec's index in *failed, its
 * status returned. Values to give back are kept in kept[] (*nkept). */
static engine_errc apply_specs(sd_doc *d, const engine_subdoc_spec *specs, size_t nspecs,
                               macros *m, size_t *failed, kept_result *kept,
                               size_t *nkept)
{
    /* Making the document implies making the paths in it. */
    unsigned implied = d->it == NULL ? SD_MKDIR_P : 0;
    *nkept = 0;
    for (size_t i = 0; i < nspecs; i++) {
        const engine_subdoc_spec *s = &specs[i];
        *failed = i;
        if (s->op == ENGINE_SUBDOC_SET_DOC) {
            /* The new body; its bytes are the spec's, valid for the call. */
            json_decref(d->json);
            d->json = NULL;
            d->json_tried = d->body_changed = false;
            d->body = s->value;
            d->blen = s->valuelen;
            /* Parsed once: for its datatype bit, and for body specs after it. */
            d->body_json = doc_body(d) == SD_OK;
            continue;
        }
        json_t **doc;
        const char *value = s->value;
        size_t vlen = s->valuelen;
        char macro[24];
        if (s->flags & ENGINE_SUBDOC_PATH_XATTR) {
            engine_errc rc = xattr_target(d, s, true, &doc);
            if (rc == ENGINE_SUCCESS && (s->flags & ENGINE_SUBDOC_PATH_EXPAND_MACROS)) {
                rc = macro_value(s, m, macro, sizeof(macro), &vlen);
                value = macro;
            }
            if (rc != ENGINE_SUCCESS)
                return rc;
            d->xattrs_changed = true;
        } else {
            sd_status st = doc_body(d);
            if (st != SD_OK)
                return errc_of(st);
            doc = &d->json;
            d->body_changed = true;
        }
        char *out = NULL;
        size_t len = 0;
        unsigned flags = s->flags & ENGINE_SUBDOC_PATH_MKDIR_P ? SD_MKDIR_P : implied;
        sd_status st = sd_execute(doc, (sd_op)sd_of(s->op), flags, s->path, s->pathlen,
                                  value, vlen, &out, &len);
        if (st != SD_OK) {
            free(out);
            return errc_of(st);
        }
        if (out != NULL)
            kept[(*nkept)++] = (kept_result){i, out, len};
    }
    return ENGINE_SUCCESS;
}

/* A missing document's start: {} (or [] when the first body spec pushes onto
 * the root). */
static sd_status new_body(sd_doc *d, const engine_subdoc_spec *specs, size_t nspecs)
{
    const engine_subdoc_spec *first = NULL;
    for (size_t i = 0; i < nspecs && first == NULL; i++)
        if (!(specs[i].flags & ENGINE_SUBDOC_PATH_XATTR))
            first = &specs[i];
    bool array = first != NULL && first->pathlen == 0 &&
                 (first->op == ENGINE_SUBDOC_ARRAY_PUSH_LAST ||
                  first->op == ENGINE_SUBDOC_ARRAY_PUSH_FIRST ||
                  first->op == ENGINE_SUBDOC_ARRAY_ADD_UNIQUE);
    d->json = array ? json_array() : json_object();
    d->json_tried = d->body_changed = d->body_json = true;
    d->json_st = SD_OK;
    return d->json != NULL ? SD_OK : SD_NO_MEMORY;
}

/* Builds the new document's item: the attribute section (rewritten if a spec
 * changed it), the body (printed if a spec changed it), the macros filled in
 * but the CAS (extra->cas_at: where kv_do_store writes it). */
static ep_item *build_item(ep_engine *e, const void *cookie, const engine_doc_key *key,
                           uint16_t vbucket, sd_doc *d, const macros *m,
                           kv_store_extra *extra, bool *clash, engine_errc *rc)
{
    *clash = false;
    char *section = NULL, *body = NULL;
    size_t slen = d->xlen, blen = d->blen;
    bool too_big = false;
    *rc = ENGINE_SUCCESS;
    if (d->xattrs_changed && !xa_from_object(d->xattrs, &section, &slen, &too_big))
        *rc = too_big ? ep_fail(e, cookie, ENGINE_TOO_BIG,
                                "the system attributes would take more than 1 MiB")
                      : ep_fail(e, cookie, ENGINE_NO_MEMORY,
                                "out of memory writing the attributes");
    if (*rc == ENGINE_SUCCESS && d->body_changed) {
        body = sd_dump(d->json, &blen);
        if (body == NULL)
            *rc = ep_fail(e, cookie, ENGINE_NO_MEMORY, "out of memory printing the body");
    }
    if (*rc == ENGINE_SUCCESS && m->any &&
        (count_bytes(section, slen, m->cas + 2, 16) != count_strings(d->xattrs, m->cas) ||
         count_bytes(section, slen, m->crc + 2, 8) != count_strings(d->xattrs, m->crc) ||
         count_strings(d->xattrs, m->cas) > 16)) {
        *clash = true; /* new placeholders, from the start */
        *rc = ENGINE_FAILED;
    }
    const char *sec = d->xattrs_changed ? section : d->section;
    const char *bod = d->body_changed ? body : d->body;
    size_t n = slen + blen;
    if (*rc == ENGINE_SUCCESS && n > e->cfg.max_item_size)
        *rc = ep_fail(e, cookie, ENGINE_TOO_BIG,
                      "the document would be %zu bytes; max_item_size is %" PRIu64, n,
                      e->cfg.max_item_size);
    ep_item *it = *rc == ENGINE_SUCCESS ? ep_item_alloc(e, cookie, key, n, rc) : NULL;
    if (it != NULL) {
        char *w = item_value(it);
        if (slen > 0 && sec != NULL)
            memcpy(w, sec, slen);
        if (blen > 0 && bod != NULL)
            memcpy(w + slen, bod, blen);
        item_init_datatype(it,
                           (d->body_json || d->body_changed ? ENGINE_DATATYPE_JSON : 0) |
                               (slen > 0 ? ENGINE_DATATYPE_XATTR : 0));
        it->vbucket = vbucket;
        /* Macros: the placeholders are in the section only. */
        if (m->any) {
            char crc[9];
            snprintf(crc, sizeof(crc), "%08" PRIx32, io_crc32c(0, w + slen, blen));
            for (char *p = w;
                 (p = memmem(p, slen - (size_t)(p - w), m->crc + 2, 8)) != NULL; p += 8)
                memcpy(p, crc, 8);
            for (char *p = w;
                 (p = memmem(p, slen - (size_t)(p - w), m->cas + 2, 16)) != NULL; p += 16)
                extra->cas_at[extra->ncas_at++] = (uint32_t)(p - w);
        }
    }
    free(section);
    free(body);
    return it;
}

/* ---- durable mutations: the record on the cookie ---- */

static unsigned char *put_be(unsigned char *w, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *w++ = (unsigned char)(v >> (i * 8));
    return w;
}

/* The request a durable mutation's record names, exactly: document flags,
 * CAS, expiry, then per spec op, flags, path and value with their lengths. */
static unsigned char *request_bytes(const engine_subdoc_spec *specs, size_t n,
                                    uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                    size_t *len)
{
    size_t need = 13;
    for (size_t i = 0; i < n; i++)
        need += 8 + (size_t)specs[i].pathlen + specs[i].valuelen;
    unsigned char *b = malloc(need), *w = b;
    if (b == NULL)
        return NULL;
    *w++ = doc_flags;
    w = put_be(w, cas, 8);
    w = put_be(w, exptime, 4);
    for (size_t i = 0; i < n; i++) {
        const engine_subdoc_spec *s = &specs[i];
        *w++ = s->op;
        *w++ = s->flags;
        w = put_be(w, s->pathlen, 2);
        w = put_be(w, s->valuelen, 4);
        if (s->pathlen > 0)
            memcpy(w, s->path, s->pathlen);
        w += s->pathlen;
        if (s->valuelen > 0)
            memcpy(w, s->value, s->valuelen);
        w += s->valuelen;
    }
    *len = need;
    return b;
}

/* A successful mutation's results as bytes (per result: index u8, length
 * u32, value), kept on the record for the re-call. */
static unsigned char *results_bytes(const kept_result *k, size_t n, size_t *len)
{
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += 5 + k[i].len;
    *len = need;
    unsigned char *b = malloc(need > 0 ? need : 1), *w = b;
    for (size_t i = 0; b != NULL && i < n; i++) {
        *w++ = (unsigned char)k[i].index;
        w = put_be(w, k[i].len, 4);
        memcpy(w, k[i].value, k[i].len);
        w += k[i].len;
    }
    return b;
}

static void results_replay(const unsigned char *b, size_t len,
                           engine_subdoc_result_fn result, void *ctx)
{
    for (size_t at = 0; at + 5 <= len;) {
        size_t n = (size_t)b[at + 1] << 24 | (size_t)b[at + 2] << 16 |
                   (size_t)b[at + 3] << 8 | b[at + 4];
        result(b[at], ENGINE_SUCCESS, b + at + 5, n, ctx);
        at += 5 + n;
    }
}

/* Under the stripe lock: whether the caller may change cur with `cas`
 * (judged now, before any work: a mismatch or a lock answers at once). */
static engine_errc may_change(ep_engine *e, ht_stripe *s, const ep_item *cur,
                              uint64_t cas)
{
    kv_lock *lock = kv_lock_of(e, s, cur);
    if (lock != NULL)
        return cas == lock->lock_cas ? ENGINE_SUCCESS : ENGINE_LOCKED;
    return cas == 0 || cas == cur->cas ? ENGINE_SUCCESS : ENGINE_KEY_EXISTS;
}

static engine_errc mutate_attempts(ep_engine *e, const void *cookie,
                                   const engine_doc_key *key, uint16_t vbucket,
                                   const engine_subdoc_spec *specs, size_t nspecs,
                                   uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                   const waiter_match *m, engine_subdoc_result_fn result,
                                   void *ctx, uint64_t *cas_out, size_t *failed);

engine_errc kv_subdoc_mutate(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                             engine_durability d, engine_subdoc_result_fn result,
                             void *ctx, uint64_t *cas_out, size_t *failed)
{
    ep_engine *e = eng(h);
    /* The arguments first; the engine's state (warmup, the vbucket) only for a
     * new request: a durable one whose outcome waits on the cookie is
     * collected whatever happened since (rule 3). */
    if (key == NULL || (key->len > 0 && key->bytes == NULL))
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "key is NULL");
    engine_errc rc = check_specs(e, cookie, specs, nspecs, true);
    if (rc != ENGINE_SUCCESS)
        return rc;
    bool mkdoc = doc_flags & ENGINE_SUBDOC_DOC_MKDOC,
         add = doc_flags & ENGINE_SUBDOC_DOC_ADD,
         revive = doc_flags & ENGINE_SUBDOC_DOC_REVIVE;
    const unsigned known = ENGINE_SUBDOC_DOC_MKDOC | ENGINE_SUBDOC_DOC_ADD |
                           ENGINE_SUBDOC_DOC_ACCESS_DELETED | ENGINE_SUBDOC_DOC_REVIVE |
                           ENGINE_SUBDOC_DOC_KEEP_EXPIRY;
    if (doc_flags & 0x08)
        return ep_fail(e, cookie, ENGINE_NOT_SUPPORTED,
                       "create_as_deleted: the engine keeps no deleted documents");
    if ((mkdoc && add) || (add && cas != 0) || (doc_flags & ~known) ||
        (revive && !(doc_flags & ENGINE_SUBDOC_DOC_ACCESS_DELETED)))
        return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO, "document flags 0x%02x%s",
                       doc_flags, add && cas != 0 ? " with a CAS" : "");
    if (result == NULL || failed == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "NULL out-parameter");
    if (specs[0].op == ENGINE_SUBDOC_DELETE_DOC && d != ENGINE_DURABILITY_NONE)
        return kv_remove_durable(h, cookie, key, cas, vbucket, cas_out, d);
    /* A durable mutation: the host's re-call collects its outcome and results
     * (rule 3); a new one leaves a record naming the whole request. */
    waiter_match m = {.call = 0};
    unsigned char *req = NULL;
    if (d != ENGINE_DURABILITY_NONE) {
        rc = kv_durable_allowed(e, cookie, d);
        if (rc != ENGINE_SUCCESS)
            return rc;
        size_t nreq = 0;
        req = request_bytes(specs, nspecs, doc_flags, cas, exptime, &nreq);
        if (req == NULL)
            return ep_fail(e, cookie, ENGINE_NO_MEMORY, "out of memory for the request");
        m = (waiter_match){.call = WAITER_SUBDOC_DURABLE,
                           .vbucket = vbucket,
                           .collection = key->collection,
                           .key = key->bytes,
                           .nkey = key->len,
                           .value = req,
                           .nvalue = nreq};
        void *kept = NULL;
        size_t nkept = 0;
        switch (
            waiter_collect_kept(e->waiters, cookie, &m, &rc, cas_out, &kept, &nkept)) {
        case WAITER_DONE:
            results_replay(kept, nkept, result, ctx);
            free(kept);
            free(req);
            return rc;
        case WAITER_PENDING:
            free(req);
            return ep_fail(e, cookie, ENGINE_TOO_BUSY,
                           "an earlier request on this connection is still waiting for "
                           "its notify");
        case WAITER_NEW:
            break;
        }
    }
    rc = kv_check_key(e, cookie, key, vbucket);
    if (rc == ENGINE_SUCCESS && specs[0].op == ENGINE_SUBDOC_DELETE_DOC)
        rc = kv_do_remove(e, cookie, key, cas, vbucket, cas_out, NULL);
    else if (rc == ENGINE_SUCCESS)
        rc = mutate_attempts(e, cookie, key, vbucket, specs, nspecs, doc_flags, cas,
                             exptime, req != NULL ? &m : NULL, result, ctx, cas_out,
                             failed);
    free(req);
    return rc;
}

/* Sub-document mutations of one key run one at a time: without this, two
 * threads changing one document keep reading the same version, and the one
 * that loses can lose every attempt. (A plain write in between still makes a
 * mutation start again.) Keys share these by hash. */
#define MUTATION_LOCKS 256
static pthread_mutex_t mutation_locks[MUTATION_LOCKS];
static pthread_once_t mutation_locks_once = PTHREAD_ONCE_INIT;

static void mutation_locks_init(void)
{
    for (int i = 0; i < MUTATION_LOCKS; i++)
        pthread_mutex_init(&mutation_locks[i], NULL);
}

static engine_errc mutate_locked(ep_engine *e, const void *cookie,
                                 const engine_doc_key *key, uint16_t vbucket,
                                 const engine_subdoc_spec *specs, size_t nspecs,
                                 uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                 const waiter_match *m, engine_subdoc_result_fn result,
                                 void *ctx, uint64_t *cas_out, size_t *failed);

static engine_errc mutate_attempts(ep_engine *e, const void *cookie,
                                   const engine_doc_key *key, uint16_t vbucket,
                                   const engine_subdoc_spec *specs, size_t nspecs,
                                   uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                   const waiter_match *m, engine_subdoc_result_fn result,
                                   void *ctx, uint64_t *cas_out, size_t *failed)
{
    pthread_once(&mutation_locks_once, mutation_locks_init);
    pthread_mutex_t *lock =
        &mutation_locks[ht_hash(vbucket, key->collection, key->bytes, key->len) %
                        MUTATION_LOCKS];
    pthread_mutex_lock(lock);
    engine_errc rc = mutate_locked(e, cookie, key, vbucket, specs, nspecs, doc_flags, cas,
                                   exptime, m, result, ctx, cas_out, failed);
    pthread_mutex_unlock(lock);
    return rc;
}

/* The attempts of a mutation (again while a plain write changes the
 * document); with m, a durable one whose record is made before its store. */
static engine_errc mutate_locked(ep_engine *e, const void *cookie,
                                 const engine_doc_key *key, uint16_t vbucket,
                                 const engine_subdoc_spec *specs, size_t nspecs,
                                 uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                 const waiter_match *wm, engine_subdoc_result_fn result,
                                 void *ctx, uint64_t *cas_out, size_t *failed)
{
    engine_errc rc;
    bool mkdoc = doc_flags & ENGINE_SUBDOC_DOC_MKDOC,
         add = doc_flags & ENGINE_SUBDOC_DOC_ADD,
         revive = doc_flags & ENGINE_SUBDOC_DOC_REVIVE,
         keep_expiry = doc_flags & ENGINE_SUBDOC_DOC_KEEP_EXPIRY;
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    for (int attempt = 0; attempt < SUBDOC_RETRIES; attempt++) {
        bool durable_wait = false;
        key_place p;
        rc = kv_find_resident(e, cookie, key, vbucket, hash, &p);
        if (rc != ENGINE_SUCCESS)
            return rc;
        ep_item *cur = p.it;
        rc = cur != NULL ? may_change(e, p.s, cur, cas) : ENGINE_SUCCESS;
        if (cur != NULL && rc == ENGINE_SUCCESS)
            item_ref(cur);
        ht_unlock(p.s);
        if (rc == ENGINE_LOCKED)
            return kv_locked(e, cookie);
        if (rc == ENGINE_KEY_EXISTS)
            return ep_fail(e, cookie, rc, "CAS mismatch");
        if (cur == NULL && (revive || (!mkdoc && !add)))
            return ep_fail(e, cookie, ENGINE_NO_SUCH_KEY, "key does not exist");
        if (cur != NULL && (add || revive)) {
            ep_item_put(e, cur);
            return revive ? ep_fail(e, cookie, ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED,
                                    "the document is not deleted")
                          : ep_fail(e, cookie, ENGINE_KEY_EXISTS, "key exists");
        }
        sd_doc doc;
        doc_open(&doc, e, cur);
        macros m = {.any = false};
        kept_result kept[ENGINE_SUBDOC_MAX_SPECS];
        size_t nkept = 0;
        sd_status st = cur == NULL ? new_body(&doc, specs, nspecs) : SD_OK;
        for (size_t i = 0; i < nspecs; i++)
            if (specs[i].flags & ENGINE_SUBDOC_PATH_EXPAND_MACROS) {
                macros_pick(&m, &doc, specs, nspecs);
                break;
            }
        rc = st != SD_OK ? errc_of(st)
                         : apply_specs(&doc, specs, nspecs, &m, failed, kept, &nkept);
        if (rc != ENGINE_SUCCESS && rc != ENGINE_NO_MEMORY) {
            result(*failed, rc, NULL, 0, ctx);
            rc = ep_fail(e, cookie, ENGINE_SUBDOC_MULTI_PATH_FAILURE,
                         "spec %zu failed; nothing was changed", *failed);
        } else if (rc == ENGINE_NO_MEMORY) {
            rc = ep_fail(e, cookie, rc, "out of memory applying the specs");
        }
        kv_store_extra extra = {.ncas_at = 0};
        bool clash = false;
        ep_item *it = rc == ENGINE_SUCCESS ? build_item(e, cookie, key, vbucket, &doc, &m,
                                                        &extra, &clash, &rc)
                                           : NULL;
        doc_close(&doc);
        if (clash) {
            for (size_t i = 0; i < nkept; i++)
                free(kept[i].value);
            if (cur != NULL)
                ep_item_put(e, cur);
            continue;
        }
        if (it != NULL) {
            it->flags = cur != NULL ? cur->flags : 0;
            it->exptime = keep_expiry && cur != NULL ? cur->exptime
                          : exptime                  ? e->sapi->core.realtime(exptime)
                                                     : 0;
            /* Stored only over the version the specs were applied to (a
             * lock's CAS gets past its lock). */
            it->cas = cas != 0 ? cas : cur != NULL ? cur->cas : 0;
            ep_waiter *w = NULL;
            if (wm != NULL) {
                size_t nb = 0;
                unsigned char *b = results_bytes(kept, nkept, &nb);
                w = b != NULL ? waiter_begin_keep(e->waiters, cookie, wm, b, nb) : NULL;
                free(b);
                rc = w != NULL ? ENGINE_SUCCESS
                               : ep_fail(e, cookie, ENGINE_NO_MEMORY,
                                         "out of memory recording the durable write");
            }
            if (rc == ENGINE_SUCCESS)
                rc = kv_do_store(e, cookie, it, cas_out,
                                 it->cas != 0 ? ENGINE_STORE_CAS : ENGINE_STORE_ADD, w,
                                 &extra);
            if (w != NULL && rc != ENGINE_SUCCESS)
                waiter_abandon(w);
            else if (w != NULL)
                durable_wait = true;
            ep_item_put(e, it);
        }
        if (cur != NULL)
            ep_item_put(e, cur);
        /* Someone else changed (or made, or removed) the document between
         * the read and the store: with no CAS of the caller's, read again. */
        bool raced = it != NULL && cas == 0 && !add &&
                     (rc == ENGINE_KEY_EXISTS || rc == ENGINE_NO_SUCH_KEY);
        if (rc == ENGINE_SUCCESS && !durable_wait)
            for (size_t i = 0; i < nkept; i++)
                result(kept[i].index, ENGINE_SUCCESS, kept[i].value, kept[i].len, ctx);
        for (size_t i = 0; i < nkept; i++)
            free(kept[i].value);
        if (durable_wait)
            return ENGINE_WOULD_BLOCK; /* the flusher notifies once it is on disk */
        if (!raced)
            return rc;
    }
    return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                   "the document kept changing under the mutation; retry");
}
