/*
 * subdoc.c - the sub-document operations of the vtable (v4): subdoc_lookup
 * and subdoc_mutate over the JSON operations of ../subdoc.
 *
 * A lookup takes a reference on the document's item under its stripe lock
 * and reads it with no lock held. A mutation reads the document the same way,
 * applies every spec to a copy, and stores the result with the CAS it read
 * (kv_do_store: locks, the disk queue and every store rule apply); if the
 * document changed meanwhile and the caller gave no CAS, it starts again. So
 * a multi-mutation is all or nothing, and no two interleave.
 */
#include "kv.h"
#include "../subdoc/subdoc.h"
#include "ops.h"

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

/* The checks every call makes: arguments, spec count and kind, the key. */
static engine_errc check_call(ep_engine *e, const void *cookie, const engine_doc_key *key,
                              uint16_t vbucket, const engine_subdoc_spec *specs,
                              size_t nspecs, bool mutation)
{
    engine_errc rc = kv_check_key(e, cookie, key, vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (specs == NULL || nspecs == 0 || nspecs > ENGINE_SUBDOC_MAX_SPECS)
        return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO,
                       "%zu specs; a call takes 1 to %d", nspecs,
                       ENGINE_SUBDOC_MAX_SPECS);
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
    }
    return ENGINE_SUCCESS;
}

/* ---- lookups ---- */

engine_errc kv_subdoc_lookup(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, engine_subdoc_result_fn result, void *ctx,
                             uint64_t *cas_out)
{
    ep_engine *e = eng(h);
    (void)doc_flags;
    engine_errc rc = check_call(e, cookie, key, vbucket, specs, nspecs, false);
    if (rc != ENGINE_SUCCESS)
        return rc;
    if (result == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "result callback is NULL");
    key_place p;
    rc = kv_find_resident(e, cookie, key, vbucket,
                          ht_hash(vbucket, key->collection, key->bytes, key->len), &p);
    if (rc != ENGINE_SUCCESS)
        return rc;
    ep_item *it = p.it;
    if (it != NULL)
        item_ref(it);
    ht_unlock(p.s);
    if (it == NULL)
        return ep_fail(e, cookie, ENGINE_NO_SUCH_KEY, "key does not exist");
    if (cas_out != NULL)
        *cas_out = it->cas;
    json_t *doc = NULL;
    sd_status parsed = sd_parse_doc(item_value(it), it->nvalue, &doc);
    bool all = true;
    for (size_t i = 0; i < nspecs; i++) {
        const engine_subdoc_spec *s = &specs[i];
        char *out = NULL;
        size_t len = 0;
        engine_errc st;
        if (s->flags & ENGINE_SUBDOC_PATH_XATTR) {
            st = ENGINE_NOT_SUPPORTED;
        } else if (s->op == ENGINE_SUBDOC_GET_DOC) {
            result(i, ENGINE_SUCCESS, item_value(it), it->nvalue, ctx);
            continue;
        } else if (parsed != SD_OK) {
            st = errc_of(parsed);
        } else {
            st = errc_of(sd_execute(&doc, (sd_op)sd_of(s->op), s->flags, s->path,
                                    s->pathlen, s->value, s->valuelen, &out, &len));
        }
        all = all && st == ENGINE_SUCCESS;
        result(i, st, out, len, ctx);
        free(out);
    }
    json_decref(doc);
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

/* Applies every spec to *doc (made for a new document); the first failing
 * spec's index in *failed, its status returned. Values to give back are kept
 * in kept[] (*nkept). */
static engine_errc apply_specs(json_t **doc, const engine_subdoc_spec *specs,
                               size_t nspecs, size_t *failed, kept_result *kept,
                               size_t *nkept)
{
    *nkept = 0;
    for (size_t i = 0; i < nspecs; i++) {
        const engine_subdoc_spec *s = &specs[i];
        *failed = i;
        if (s->flags & ENGINE_SUBDOC_PATH_XATTR)
            return ENGINE_NOT_SUPPORTED;
        if (s->op == ENGINE_SUBDOC_SET_DOC) {
            json_t *v;
            sd_status st = sd_parse_doc(s->value, s->valuelen, &v);
            if (st != SD_OK)
                return ENGINE_SUBDOC_VALUE_CANTINSERT;
            json_decref(*doc);
            *doc = v;
            continue;
        }
        char *out = NULL;
        size_t len = 0;
        sd_status st = sd_execute(doc, (sd_op)sd_of(s->op), s->flags, s->path, s->pathlen,
                                  s->value, s->valuelen, &out, &len);
        if (st != SD_OK) {
            free(out);
            return errc_of(st);
        }
        if (out != NULL)
            kept[(*nkept)++] = (kept_result){i, out, len};
    }
    return ENGINE_SUCCESS;
}

/* The document a mutation starts from: the stored one, or for a missing one
 * {} (or [] when the first spec pushes onto the root); nothing to read when
 * the first spec sets the whole body. */
static sd_status start_doc(const ep_item *cur, const engine_subdoc_spec *specs,
                           json_t **doc)
{
    if (specs[0].op == ENGINE_SUBDOC_SET_DOC) {
        *doc = json_null(); /* replaced by the first spec: the old body is not read */
        return SD_OK;
    }
    if (cur != NULL)
        return sd_parse_doc(item_value((ep_item *)cur), cur->nvalue, doc);
    bool array =
        specs[0].pathlen == 0 && (specs[0].op == ENGINE_SUBDOC_ARRAY_PUSH_LAST ||
                                  specs[0].op == ENGINE_SUBDOC_ARRAY_PUSH_FIRST ||
                                  specs[0].op == ENGINE_SUBDOC_ARRAY_ADD_UNIQUE);
    *doc = array ? json_array() : json_object();
    return *doc != NULL ? SD_OK : SD_NO_MEMORY;
}

/* Writes the new document as an item for key (the old one's flags). */
static ep_item *new_doc_item(ep_engine *e, const void *cookie, const engine_doc_key *key,
                             uint16_t vbucket, const ep_item *cur, const char *json,
                             size_t len, uint32_t exptime, engine_errc *rc)
{
    if (len > e->cfg.max_item_size) {
        *rc = ep_fail(e, cookie, ENGINE_TOO_BIG,
                      "the document would be %zu bytes; max_item_size is %llu", len,
                      (unsigned long long)e->cfg.max_item_size);
        return NULL;
    }
    ep_item *it = ep_item_alloc(e, cookie, key, len, rc);
    if (it == NULL)
        return NULL;
    it->flags = cur != NULL ? cur->flags : 0;
    it->exptime = exptime ? e->sapi->core.realtime(exptime) : 0;
    item_init_datatype(it, 0x01); /* JSON */
    it->vbucket = vbucket;
    memcpy(item_value(it), json, len);
    return it;
}

engine_errc kv_subdoc_mutate(engine_handle *h, const void *cookie,
                             const engine_doc_key *key, uint16_t vbucket,
                             const engine_subdoc_spec *specs, size_t nspecs,
                             uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                             engine_durability d, engine_subdoc_result_fn result,
                             void *ctx, uint64_t *cas_out, size_t *failed)
{
    ep_engine *e = eng(h);
    engine_errc rc = check_call(e, cookie, key, vbucket, specs, nspecs, true);
    if (rc != ENGINE_SUCCESS)
        return rc;
    bool mkdoc = doc_flags & ENGINE_SUBDOC_DOC_MKDOC,
         add = doc_flags & ENGINE_SUBDOC_DOC_ADD;
    if ((mkdoc && add) || (add && cas != 0) || (doc_flags & ~0x03u))
        return ep_fail(e, cookie, ENGINE_SUBDOC_INVALID_COMBO, "document flags 0x%02x%s",
                       doc_flags, add && cas != 0 ? " with a CAS" : "");
    if (result == NULL || failed == NULL)
        return ep_fail(e, cookie, ENGINE_INVALID_ARGUMENTS, "NULL out-parameter");
    if (d != ENGINE_DURABILITY_NONE)
        return ep_fail(e, cookie, ENGINE_NOT_SUPPORTED,
                       "durable sub-document mutations are not offered yet");
    if (specs[0].op == ENGINE_SUBDOC_DELETE_DOC)
        return kv_do_remove(e, cookie, key, cas, vbucket, cas_out, NULL);
    uint64_t hash = ht_hash(vbucket, key->collection, key->bytes, key->len);
    for (int attempt = 0; attempt < SUBDOC_RETRIES; attempt++) {
        key_place p;
        rc = kv_find_resident(e, cookie, key, vbucket, hash, &p);
        if (rc != ENGINE_SUCCESS)
            return rc;
        ep_item *cur = p.it;
        if (cur != NULL)
            item_ref(cur);
        ht_unlock(p.s);
        if (cur == NULL && !mkdoc && !add)
            return ep_fail(e, cookie, ENGINE_NO_SUCH_KEY, "key does not exist");
        if (cur != NULL && add) {
            ep_item_put(e, cur);
            return ep_fail(e, cookie, ENGINE_KEY_EXISTS, "key exists");
        }
        json_t *doc = NULL;
        kept_result kept[ENGINE_SUBDOC_MAX_SPECS];
        size_t nkept = 0;
        sd_status st = start_doc(cur, specs, &doc);
        rc = st != SD_OK ? errc_of(st)
                         : apply_specs(&doc, specs, nspecs, failed, kept, &nkept);
        if (st != SD_OK)
            *failed = 0;
        char *json = NULL;
        if (rc == ENGINE_SUCCESS) {
            json = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
            if (json == NULL)
                rc = ep_fail(e, cookie, ENGINE_NO_MEMORY,
                             "out of memory printing the document");
        } else if (rc != ENGINE_NO_MEMORY) {
            result(*failed, rc, NULL, 0, ctx);
            rc = ep_fail(e, cookie, ENGINE_SUBDOC_MULTI_PATH_FAILURE,
                         "spec %zu failed; nothing was changed", *failed);
        }
        json_decref(doc);
        ep_item *it = NULL;
        if (rc == ENGINE_SUCCESS)
            it = new_doc_item(e, cookie, key, vbucket, cur, json, strlen(json), exptime,
                              &rc);
        free(json);
        if (it != NULL) {
            /* Stored only over the version the specs were applied to. */
            it->cas = cas != 0 ? cas : cur != NULL ? cur->cas : 0;
            rc = kv_do_store(e, cookie, it, cas_out,
                             it->cas != 0 ? ENGINE_STORE_CAS : ENGINE_STORE_ADD, NULL);
            ep_item_put(e, it);
        }
        if (cur != NULL)
            ep_item_put(e, cur);
        /* Someone else changed (or made, or removed) the document between
         * the read and the store: with no CAS of the caller's, read again. */
        bool raced = it != NULL && cas == 0 && !add &&
                     (rc == ENGINE_KEY_EXISTS || rc == ENGINE_NO_SUCH_KEY);
        if (rc == ENGINE_SUCCESS)
            for (size_t i = 0; i < nkept; i++)
                result(kept[i].index, ENGINE_SUCCESS, kept[i].value, kept[i].len, ctx);
        for (size_t i = 0; i < nkept; i++)
            free(kept[i].value);
        if (!raced)
            return rc;
    }
    return ep_fail(e, cookie, ENGINE_TEMPORARY_FAILURE,
                   "the document kept changing under the mutation; retry");
}
