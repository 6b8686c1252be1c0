/*
 * protocol.c - the memcached binary protocol with Couchbase's collections
 * extensions (../shared/PROTOCOL.md), over the engine's vtable.
 *
 * A packet is consumed only once its command is answered; a command whose
 * engine call returns would_block leaves its packet in the input and parks the
 * connection until the notify, then runs again (on success) or answers with the
 * notify's status. Bad input is answered or the connection is closed; it never
 * reaches the engine unchecked.
 */
#include "kvhost.h"

#include "../common/utf8.h"
#include "authq.h"
#include "cluster.h"

#include <jansson.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    MAGIC_REQ = 0x80,
    MAGIC_RES = 0x81,
    MAGIC_ALT_REQ = 0x08, /* flexible framing: framing extras before the extras */
};

enum {
    OP_GET = 0x00,
    OP_SET = 0x01,
    OP_ADD = 0x02,
    OP_REPLACE = 0x03,
    OP_DELETE = 0x04,
    OP_INCR = 0x05,
    OP_DECR = 0x06,
    OP_QUIT = 0x07,
    OP_FLUSH = 0x08,
    OP_GETQ = 0x09,
    OP_NOOP = 0x0a,
    OP_VERSION = 0x0b,
    OP_GETK = 0x0c,
    OP_GETKQ = 0x0d,
    OP_APPEND = 0x0e,
    OP_PREPEND = 0x0f,
    OP_STAT = 0x10,
    OP_SETQ = 0x11,
    OP_ADDQ = 0x12,
    OP_REPLACEQ = 0x13,
    OP_DELETEQ = 0x14,
    OP_INCRQ = 0x15,
    OP_DECRQ = 0x16,
    OP_QUITQ = 0x17,
    OP_FLUSHQ = 0x18,
    OP_APPENDQ = 0x19,
    OP_PREPENDQ = 0x1a,
    OP_TOUCH = 0x1c,
    OP_GAT = 0x1d,
    OP_GATQ = 0x1e,
    OP_HELLO = 0x1f,
    OP_SASL_LIST_MECHS = 0x20,
    OP_SASL_AUTH = 0x21,
    OP_SASL_STEP = 0x22,
    OP_SELECT_BUCKET = 0x89,
    OP_GET_LOCKED = 0x94,
    OP_UNLOCK_KEY = 0x95,
    OP_GET_META = 0xa0,
    OP_GET_CLUSTER_CONFIG = 0xb5,
    OP_GET_ERROR_MAP = 0xfe,
    OP_SET_MANIFEST = 0xb9,
    OP_GET_MANIFEST = 0xba,
    OP_GET_CID = 0xbb,
    OP_GET_SID = 0xbc,
};

enum {
    ST_SUCCESS = 0x00,
    ST_KEY_ENOENT = 0x01,
    ST_KEY_EEXISTS = 0x02,
    ST_E2BIG = 0x03,
    ST_EINVAL = 0x04,
    ST_NOT_STORED = 0x05,
    ST_DELTA_BADVAL = 0x06,
    ST_NOT_MY_VBUCKET = 0x07,
    ST_NO_BUCKET = 0x08,
    ST_LOCKED = 0x09,
    ST_NOT_LOCKED = 0x0e,
    ST_AUTH_ERROR = 0x20,
    ST_AUTH_CONTINUE = 0x21,
    ST_EACCESS = 0x24,
    ST_UNKNOWN_COMMAND = 0x81,
    ST_ENOMEM = 0x82,
    ST_NOT_SUPPORTED = 0x83,
    ST_EINTERNAL = 0x84,
    ST_EBUSY = 0x85,
    ST_ETMPFAIL = 0x86,
    ST_UNKNOWN_COLLECTION = 0x88,
    ST_CANNOT_APPLY_MANIFEST = 0x8a,
    ST_UNKNOWN_SCOPE = 0x8c,
    ST_DURABILITY_INVALID_LEVEL = 0xa0,
    ST_SYNC_WRITE_AMBIGUOUS = 0xa3,
};

enum {
    FEAT_TCPNODELAY = 0x03,
    FEAT_XERROR = 0x07,
    FEAT_SELECT_BUCKET = 0x08,
    FEAT_JSON = 0x0b,
    FEAT_ALT_REQUEST = 0x10,
    FEAT_SYNC_REPLICATION = 0x11,
    FEAT_COLLECTIONS = 0x12,
    FEAT_PRESERVE_TTL = 0x14,
};

#define HEADER_BYTES 24
/* The largest body taken before authentication: a SASL message and its
 * mechanism name, a HELLO with its agent name and features. */
#define UNAUTHENTICATED_MAX_BODY (AUTH_MAX_PAYLOAD + 1024)

typedef struct req {
    uint8_t magic, opcode, extlen, datatype, framelen;
    uint16_t keylen, vbucket;
    uint32_t bodylen, opaque;
    uint64_t cas;
    const uint8_t *frame, *extras, *key, *value;
    uint32_t valuelen;
    /* Decoded key: */
    engine_doc_key dk;
    engine_durability durability;
    uint16_t durability_timeout_ms; /* 0: none given */
    bool preserve_expiry;           /* frame info 5: keep the document's expiry */
} req;

static int parse(conn *c, req *r, uint8_t **pkt);
static bool parse_frame(conn *c, req *r);

/* ---- responses ---- */

static void send_response(conn *c, const req *r, uint16_t status, const void *extras,
                          uint8_t extlen, const void *key, uint16_t keylen,
                          const void *value, uint32_t valuelen, uint8_t datatype,
                          uint64_t cas)
{
    uint8_t h[HEADER_BYTES];
    uint32_t body = (uint32_t)extlen + keylen + valuelen;
    h[0] = MAGIC_RES;
    h[1] = r->opcode;
    uint16_t kl = htons(keylen), st = htons(status);
    memcpy(h + 2, &kl, 2);
    h[4] = extlen;
    h[5] = datatype;
    memcpy(h + 6, &st, 2);
    uint32_t bl = htonl(body);
    memcpy(h + 8, &bl, 4);
    memcpy(h + 12, &r->opaque, 4); /* echoed as received */
    uint64_t ncas = ((uint64_t)htonl((uint32_t)cas) << 32) | htonl((uint32_t)(cas >> 32));
    memcpy(h + 16, &ncas, 8);
    struct evbuffer *out = c->out;
    /* Room for the whole answer first: a half-written answer would garble
     * every one after it. Without memory the connection ends after the
     * answers already queued. */
    if (evbuffer_expand(out, sizeof(h) + (size_t)body) != 0 ||
        evbuffer_add(out, h, sizeof(h)) != 0 ||
        (extlen && evbuffer_add(out, extras, extlen) != 0) ||
        (keylen && evbuffer_add(out, key, keylen) != 0) ||
        (valuelen && evbuffer_add(out, value, valuelen) != 0)) {
        fprintf(stderr, "kvhost: out of memory for an answer; closing the connection\n");
        c->closing = true;
    }
}

static uint16_t status_of(const conn *c, engine_errc rc)
{
    switch (rc) {
    case ENGINE_SUCCESS:
        return ST_SUCCESS;
    case ENGINE_NO_SUCH_KEY:
        return ST_KEY_ENOENT;
    case ENGINE_KEY_EXISTS:
        return ST_KEY_EEXISTS;
    case ENGINE_TOO_BIG:
        return ST_E2BIG;
    case ENGINE_INVALID_ARGUMENTS:
        return ST_EINVAL;
    case ENGINE_NOT_STORED:
        return ST_NOT_STORED;
    case ENGINE_DELTA_BADVAL:
        return ST_DELTA_BADVAL;
    case ENGINE_LOCKED:
        return ST_LOCKED;
    case ENGINE_NOT_LOCKED:
        return ST_NOT_LOCKED;
    case ENGINE_NOT_MY_VBUCKET:
        return ST_NOT_MY_VBUCKET;
    case ENGINE_NO_MEMORY:
        return ST_ENOMEM;
    case ENGINE_NOT_SUPPORTED:
        return ST_NOT_SUPPORTED;
    case ENGINE_TOO_BUSY:
        return ST_EBUSY;
    case ENGINE_TEMPORARY_FAILURE:
        return ST_ETMPFAIL;
    case ENGINE_UNKNOWN_COLLECTION:
        return c->collections ? ST_UNKNOWN_COLLECTION : ST_EINVAL;
    case ENGINE_UNKNOWN_SCOPE:
        return c->collections ? ST_UNKNOWN_SCOPE : ST_EINVAL;
    case ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST:
        return c->xerror ? ST_CANNOT_APPLY_MANIFEST : ST_EINTERNAL;
    default:
        return ST_EINTERNAL;
    }
}

/* Sends an extended-error body {"error":{"context":...}} (and the manifest
 * uid for unknown collections and scopes), built with jansson. The reason may
 * quote a client's bytes or come from an engine that left invalid UTF-8: it is
 * made valid first, so the body is always valid UTF-8 JSON. */
static void send_error_body(conn *c, const req *r, uint16_t st, const char *reason,
                            const uint64_t *uid)
{
    char valid[1024], hex[17];
    utf8_sanitize(valid, sizeof(valid), reason, strlen(reason));
    json_t *doc = json_pack("{s:{s:s}}", "error", "context", valid);
    if (doc != NULL && uid != NULL) {
        snprintf(hex, sizeof(hex), "%" PRIx64, *uid);
        json_object_set_new(doc, "manifest_uid", json_string(hex));
    }
    char *body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL) { /* out of memory: the status alone */
        send_response(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return;
    }
    send_response(c, r, st, NULL, 0, NULL, 0, body, (uint32_t)strlen(body), 0x01, 0);
    free(body);
}

static void send_json(conn *c, const req *r, uint16_t st, char *json)
{
    if (json == NULL) {
        send_response(c, r, ST_ENOMEM, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return;
    }
    send_response(c, r, st, NULL, 0, NULL, 0, json, (uint32_t)strlen(json), 0x01, 0);
    free(json);
}

/* An error answer with a wire status: for clients that asked for extended
 * errors, with the engine's reason. Quiet commands answer errors too. */
static void send_error_status(conn *c, const req *r, uint16_t st)
{
    char reason[512];
    uint64_t uid;
    bool has_uid;
    bool has = conn_take_error(c, reason, sizeof(reason), &uid, &has_uid);
    bool uid_body = has_uid && (st == ST_UNKNOWN_COLLECTION || st == ST_UNKNOWN_SCOPE);
    if (!c->xerror || (!has && !uid_body))
        send_response(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    else
        send_error_body(c, r, st, has ? reason : "", uid_body ? &uid : NULL);
}

static void send_error(conn *c, const req *r, engine_errc rc)
{
    if (rc == ENGINE_NOT_MY_VBUCKET && (c->json || c->bucket_selected)) {
        /* A Couchbase client takes the config in the body as its new map. */
        conn_clear_error(c);
        send_json(c, r, ST_NOT_MY_VBUCKET, cluster_config_json(true));
        return;
    }
    send_error_status(c, r, status_of(c, rc));
}

/* A durable write the engine cannot make durable: refused whole with
 * durability-invalid-level (never stored as a plain write). `rc` is what the
 * engine answered, or ENGINE_SUCCESS when the host refuses before asking it.
 * True if the request was answered here. */
static bool durability_refused(conn *c, const req *r, engine_errc rc)
{
    if (r->durability == ENGINE_DURABILITY_NONE)
        return false;
    if (host.engine->interface < ENGINE_API_VERSION_2) {
        conn_clear_error(c);
        if (c->xerror)
            send_error_body(c, r, ST_DURABILITY_INVALID_LEVEL,
                            "the engine cannot make writes durable (engine interface "
                            "v1): nothing was stored",
                            NULL);
        else
            send_response(c, r, ST_DURABILITY_INVALID_LEVEL, NULL, 0, NULL, 0, NULL, 0, 0,
                          0);
        return true;
    }
    if (rc == ENGINE_NOT_SUPPORTED) {
        send_error_status(c, r, ST_DURABILITY_INVALID_LEVEL);
        return true;
    }
    return false;
}

/* The durability timeout of a parked durable write ran out: answer
 * sync-write-ambiguous now (the write stays queued and may still reach the
 * disk); the engine's notify, when it comes, ends the park without a second
 * answer. */
static void durable_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    req r;
    uint8_t *pkt = NULL;
    if (c->closed || !c->parked || c->answered_early || parse(c, &r, &pkt) != 1)
        return;
    conn_clear_error(c);
    if (c->xerror)
        send_error_body(c, &r, ST_SYNC_WRITE_AMBIGUOUS,
                        "the durability timeout passed before the write was on disk; "
                        "it stays queued and may still be made durable",
                        NULL);
    else
        send_response(c, &r, ST_SYNC_WRITE_AMBIGUOUS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    c->answered_early = true;
    atomic_fetch_add(&host.durable_timeouts, 1);
    kvhost_flush(c);
}

/* Starts the durability timeout of a write that just parked. */
static void arm_durable_timeout(conn *c, const req *r)
{
    if (r->durability == ENGINE_DURABILITY_NONE || r->durability_timeout_ms == 0)
        return;
    if (c->durable_timer == NULL)
        c->durable_timer = evtimer_new(c->w->base, durable_timeout, c);
    else if (evtimer_pending(c->durable_timer, NULL))
        return; /* parked again by the same command: its deadline stands */
    struct timeval tv = {r->durability_timeout_ms / 1000,
                         (r->durability_timeout_ms % 1000) * 1000};
    if (c->durable_timer != NULL)
        evtimer_add(c->durable_timer, &tv);
}

/* Refuses a packet whose shape is wrong for its command. */
static void invalid(conn *c, const req *r, const char *why)
{
    conn_clear_error(c);
    if (c->xerror)
        send_error_body(c, r, ST_EINVAL, why, NULL);
    else
        send_response(c, r, ST_EINVAL, NULL, 0, NULL, 0, NULL, 0, 0, 0);
}

/* ---- keys ---- */

/* Decodes the canonical unsigned LEB128 collection id at the key's start. */
static int leb128_decode(const uint8_t *p, size_t len, uint32_t *out, size_t *used)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 5; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            if (v > UINT32_MAX || (i > 0 && p[i] == 0))
                return -1; /* too large, or not the shortest encoding */
            *out = (uint32_t)v;
            *used = i + 1;
            return 0;
        }
    }
    return -1;
}

/* Fills r->dk from the wire key. false (answered) if the key is malformed. */
static bool decode_key(conn *c, req *r)
{
    const uint8_t *k = r->key;
    size_t len = r->keylen;
    uint32_t cid = 0;
    if (c->collections) {
        size_t used;
        if (len > 251 || leb128_decode(k, len, &cid, &used) != 0) {
            invalid(
                c, r,
                "the key's collection id is not a canonical LEB128 of at most 5 bytes");
            return false;
        }
        if (cid >= 1 && cid <= 7) {
            invalid(c, r, "collection ids 1-7 are reserved");
            return false;
        }
        k += used;
        len -= used;
        if (len > (cid == 0 ? 250u : 246u)) {
            invalid(c, r, "key too long for its collection");
            return false;
        }
    }
    if (len == 0 || len > ENGINE_KEY_MAX_LEN) {
        invalid(c, r, len == 0 ? "empty key" : "key longer than 250 bytes");
        return false;
    }
    r->dk = (engine_doc_key){cid, (uint16_t)len, k};
    return true;
}

static bool quiet(uint8_t op)
{
    switch (op) {
    case OP_GETQ:
    case OP_GETKQ:
    case OP_SETQ:
    case OP_ADDQ:
    case OP_REPLACEQ:
    case OP_DELETEQ:
    case OP_INCRQ:
    case OP_DECRQ:
    case OP_QUITQ:
    case OP_FLUSHQ:
    case OP_APPENDQ:
    case OP_PREPENDQ:
    case OP_GATQ:
        return true;
    default:
        return false;
    }
}

static uint32_t be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* ---- commands ---- */

typedef engine_errc (*handler)(conn *c, req *r);

/* Replaces the item with a copy carrying a new expiry (a CAS loop); the new
 * item comes back referenced in *out. */
static engine_errc touch_item(conn *c, req *r, uint32_t exptime, engine_item **out)
{
    engine_handle *h = host.engine;
    for (int tries = 0; tries < 100; tries++) {
        engine_item *it = NULL, *nit = NULL;
        engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info info, ninfo;
        h->get_item_info(h, it, &info);
        rc = h->allocate(h, c, &nit, &r->dk, info.value.iov_len, info.flags, exptime,
                         info.datatype, r->vbucket);
        if (rc == ENGINE_SUCCESS) {
            h->get_item_info(h, nit, &ninfo);
            memcpy(ninfo.value.iov_base, info.value.iov_base, info.value.iov_len);
            h->item_set_cas(h, nit, info.cas);
            rc = h->store(h, c, nit, NULL, ENGINE_STORE_CAS);
        }
        h->release(h, it);
        if (rc == ENGINE_SUCCESS) {
            *out = nit;
            return rc;
        }
        h->release(h, nit);
        if (rc != ENGINE_KEY_EXISTS)
            return rc;
    }
    return ENGINE_TEMPORARY_FAILURE;
}

static engine_errc do_get(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_item *it = NULL;
    engine_errc rc = r->opcode == OP_GAT || r->opcode == OP_GATQ
                         ? touch_item(c, r, be32(r->extras), &it)
                         : h->get(h, c, &it, &r->dk, r->vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    uint32_t flags = htonl(info.flags);
    bool with_key = r->opcode == OP_GETK || r->opcode == OP_GETKQ;
    send_response(c, r, ST_SUCCESS, &flags, 4, with_key ? r->key : NULL,
                  with_key ? r->keylen : 0, info.value.iov_base,
                  (uint32_t)info.value.iov_len, c->json ? info.datatype : 0, info.cas);
    h->release(h, it);
    return ENGINE_SUCCESS;
}

/* GET_LOCKED (getAndLock): extras, if any, the lock time in seconds; the
 * answer is a get's, with the lock's CAS. */
static engine_errc do_get_locked(conn *c, req *r)
{
    engine_handle *h = host.engine;
    if (h->interface < ENGINE_API_VERSION_3)
        return ENGINE_NOT_SUPPORTED;
    engine_item *it = NULL;
    uint64_t lock_cas = 0;
    uint32_t secs = r->extlen == 4 ? be32(r->extras) : 0;
    engine_errc rc = h->get_locked(h, c, &it, &r->dk, r->vbucket, secs, &lock_cas);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    uint32_t flags = htonl(info.flags);
    send_response(c, r, ST_SUCCESS, &flags, 4, NULL, 0, info.value.iov_base,
                  (uint32_t)info.value.iov_len, c->json ? info.datatype : 0, lock_cas);
    h->release(h, it);
    return ENGINE_SUCCESS;
}

/* UNLOCK_KEY: the CAS of the request is the lock's. */
static engine_errc do_unlock(conn *c, req *r)
{
    engine_handle *h = host.engine;
    if (h->interface < ENGINE_API_VERSION_3)
        return ENGINE_NOT_SUPPORTED;
    engine_errc rc = h->unlock(h, c, &r->dk, r->vbucket, r->cas);
    if (rc == ENGINE_SUCCESS)
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}

/* GET_META (the SDK's exists): the metadata of a live document. Extras:
 * deleted (always 0: a deleted document is not found), flags, expiry (Unix
 * time, 0 = none), seqno (0: the engine keeps none), and the datatype when
 * the request asks for version 2. */
static engine_errc do_get_meta(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_item *it = NULL;
    engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    h->get_item_info(h, it, &info);
    uint8_t ext[21];
    uint32_t deleted = 0, flags = htonl(info.flags),
             exp = htonl(info.exptime > 0 ? (uint32_t)info.exptime : 0);
    uint64_t seqno = 0;
    memcpy(ext, &deleted, 4);
    memcpy(ext + 4, &flags, 4);
    memcpy(ext + 8, &exp, 4);
    memcpy(ext + 12, &seqno, 8);
    ext[20] = c->json ? info.datatype : 0;
    bool v2 = r->extlen == 1 && r->extras[0] == 2;
    send_response(c, r, ST_SUCCESS, ext, v2 ? 21 : 20, NULL, 0, NULL, 0, 0, info.cas);
    h->release(h, it);
    return ENGINE_SUCCESS;
}

static engine_errc do_touch(conn *c, req *r)
{
    engine_item *it = NULL;
    engine_errc rc = touch_item(c, r, be32(r->extras), &it);
    if (rc != ENGINE_SUCCESS)
        return rc;
    engine_item_info info;
    host.engine->get_item_info(host.engine, it, &info);
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, info.cas);
    host.engine->release(host.engine, it);
    return ENGINE_SUCCESS;
}

static engine_errc do_store(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_store_op op;
    uint32_t flags = 0, exptime = 0;
    switch (r->opcode) {
    case OP_SET:
    case OP_SETQ:
        op = r->cas ? ENGINE_STORE_CAS : ENGINE_STORE_SET;
        break;
    case OP_ADD:
    case OP_ADDQ:
        op = ENGINE_STORE_ADD;
        break;
    case OP_REPLACE:
    case OP_REPLACEQ:
        op = ENGINE_STORE_REPLACE;
        break;
    case OP_APPEND:
    case OP_APPENDQ:
        op = ENGINE_STORE_APPEND;
        break;
    default:
        op = ENGINE_STORE_PREPEND;
        break;
    }
    if (r->extlen == 8) {
        flags = be32(r->extras);
        exptime = be32(r->extras + 4);
    }
    if (op == ENGINE_STORE_ADD && r->cas != 0)
        return ENGINE_INVALID_ARGUMENTS;
    if (durability_refused(c, r, ENGINE_SUCCESS))
        return ENGINE_SUCCESS;
    uint8_t datatype = c->json ? (r->datatype & 0x01) : 0;
    uint64_t cas = 0, compare = r->cas;
    engine_errc rc = ENGINE_SUCCESS;
    bool own_compare = false; /* the compare CAS is ours (preserve-expiry) */
    /* The re-call after a would_block passes the item of the first call. */
    engine_item *it = c->parked_item;
    c->parked_item = NULL;
    if (it != NULL)
        op = c->parked_op;
    if (it == NULL && r->preserve_expiry &&
        (op == ENGINE_STORE_SET || op == ENGINE_STORE_CAS ||
         op == ENGINE_STORE_REPLACE)) {
        /* Keep the expiry of the document being replaced: read it, and store
         * only over that version (its CAS) so a change meanwhile is not
         * overwritten with a stale expiry. */
        engine_item *cur = NULL;
        rc = h->get(h, c, &cur, &r->dk, r->vbucket);
        if (rc == ENGINE_SUCCESS) {
            engine_item_info ci;
            h->get_item_info(h, cur, &ci);
            exptime = ci.exptime > 0 ? (uint32_t)ci.exptime : 0;
            own_compare = compare == 0;
            compare = compare ? compare : ci.cas;
            op = ENGINE_STORE_CAS;
            h->release(h, cur);
        } else if (rc != ENGINE_NO_SUCH_KEY) {
            return rc; /* would_block (a value read back from disk): run again */
        }
    }
    if (it == NULL) {
        rc = h->allocate(h, c, &it, &r->dk, r->valuelen, flags, exptime, datatype,
                         r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info info;
        h->get_item_info(h, it, &info);
        memcpy(info.value.iov_base, r->value, r->valuelen);
        h->item_set_cas(h, it, compare);
    }
    if (r->durability != ENGINE_DURABILITY_NONE)
        rc = h->store_durable(h, c, it, &cas, op, r->durability);
    else
        rc = h->store(h, c, it, &cas, op);
    if (rc == ENGINE_WOULD_BLOCK) {
        c->parked_item = it;
        c->parked_op = op;
        return rc;
    }
    h->release(h, it);
    if (rc == ENGINE_KEY_EXISTS && own_compare) {
        /* The document changed between reading its expiry and the store. */
        conn_clear_error(c);
        return ENGINE_TEMPORARY_FAILURE;
    }
    if (durability_refused(c, r, rc))
        return ENGINE_SUCCESS;
    if (rc == ENGINE_NOT_STORED && (op == ENGINE_STORE_REPLACE))
        rc = ENGINE_NO_SUCH_KEY; /* memcached answers a replace of a missing key so */
    if (rc == ENGINE_SUCCESS && !quiet(r->opcode))
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, cas);
    return rc;
}

static engine_errc do_delete(conn *c, req *r)
{
    engine_handle *h = host.engine;
    uint64_t cas = 0;
    engine_errc rc;
    if (durability_refused(c, r, ENGINE_SUCCESS))
        return ENGINE_SUCCESS;
    if (r->durability != ENGINE_DURABILITY_NONE)
        rc = h->remove_durable(h, c, &r->dk, r->cas, r->vbucket, &cas, r->durability);
    else
        rc = h->remove(h, c, &r->dk, r->cas, r->vbucket, &cas);
    if (durability_refused(c, r, rc))
        return ENGINE_SUCCESS;
    /* memcached answers a delete with CAS 0; clients of the Couchbase lineage
     * (they negotiate XERROR) get the deletion's CAS. */
    if (rc == ENGINE_SUCCESS && !quiet(r->opcode))
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0,
                      c->xerror ? cas : 0);
    return rc;
}

/* incr/decr: a CAS loop over the ASCII decimal value. */
static engine_errc do_arith(conn *c, req *r)
{
    engine_handle *h = host.engine;
    bool incr = r->opcode == OP_INCR || r->opcode == OP_INCRQ;
    uint64_t delta = be64(r->extras), initial = be64(r->extras + 8);
    uint32_t exptime = be32(r->extras + 16);
    for (int tries = 0; tries < 1000; tries++) {
        engine_item *it = NULL;
        engine_errc rc = h->get(h, c, &it, &r->dk, r->vbucket);
        uint64_t value, cas_in = 0;
        engine_store_op op;
        uint32_t flags = 0, keep_exp = exptime;
        if (rc == ENGINE_NO_SUCH_KEY) {
            if (exptime == 0xffffffffu)
                return ENGINE_NO_SUCH_KEY;
            value = initial;
            op = ENGINE_STORE_ADD;
        } else if (rc != ENGINE_SUCCESS) {
            return rc;
        } else {
            engine_item_info info;
            h->get_item_info(h, it, &info);
            char digits[24];
            size_t n = info.value.iov_len;
            bool numeric = n > 0 && n < sizeof(digits);
            for (size_t i = 0; numeric && i < n; i++)
                numeric = ((const char *)info.value.iov_base)[i] >= '0' &&
                          ((const char *)info.value.iov_base)[i] <= '9';
            if (!numeric) {
                h->release(h, it);
                return ENGINE_DELTA_BADVAL;
            }
            memcpy(digits, info.value.iov_base, n);
            digits[n] = '\0';
            value = strtoull(digits, NULL, 10);
            value = incr ? value + delta : (delta > value ? 0 : value - delta);
            cas_in = info.cas;
            flags = info.flags;
            keep_exp = info.exptime ? (uint32_t)info.exptime : 0;
            op = ENGINE_STORE_CAS;
            h->release(h, it);
            if (r->cas != 0 && r->cas != cas_in)
                return ENGINE_KEY_EXISTS;
        }
        char text[24];
        int len = snprintf(text, sizeof(text), "%" PRIu64, value);
        engine_item *nit = NULL;
        rc = h->allocate(h, c, &nit, &r->dk, (size_t)len, flags,
                         op == ENGINE_STORE_ADD ? exptime : keep_exp, 0, r->vbucket);
        if (rc != ENGINE_SUCCESS)
            return rc;
        engine_item_info ninfo;
        h->get_item_info(h, nit, &ninfo);
        memcpy(ninfo.value.iov_base, text, (size_t)len);
        h->item_set_cas(h, nit, cas_in);
        uint64_t cas = 0;
        rc = h->store(h, c, nit, &cas, op);
        h->release(h, nit);
        if (rc == ENGINE_SUCCESS) {
            if (!quiet(r->opcode)) {
                uint64_t be = ((uint64_t)htonl((uint32_t)value) << 32) |
                              htonl((uint32_t)(value >> 32));
                send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, &be, 8, 0, cas);
            }
            return rc;
        }
        if (rc != ENGINE_KEY_EXISTS || r->cas != 0)
            return rc;
        /* Someone else changed it: read again. */
    }
    return ENGINE_TEMPORARY_FAILURE;
}

typedef struct stat_ctx {
    conn *c;
    const req *r;
} stat_ctx;

static void add_stat(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                     void *ctx)
{
    stat_ctx *s = ctx;
    send_response(s->c, s->r, ST_SUCCESS, NULL, 0, key, klen, val, vlen, 0, 0);
}

static void host_stat(stat_ctx *s, const char *key, const char *fmt, uint64_t v)
{
    char val[32];
    snprintf(val, sizeof(val), fmt, v);
    add_stat(key, (uint16_t)strlen(key), val, (uint32_t)strlen(val), s);
}

static engine_errc do_stat(conn *c, req *r)
{
    char group[256] = "";
    if (r->keylen >= sizeof(group))
        return ENGINE_INVALID_ARGUMENTS;
    memcpy(group, r->key, r->keylen);
    stat_ctx s = {c, r};
    if (group[0] == '\0') {
        host_stat(&s, "pid", "%" PRIu64, (uint64_t)getpid());
        host_stat(&s, "curr_connections", "%" PRIu64, atomic_load(&host.conns));
        host_stat(&s, "total_connections", "%" PRIu64, atomic_load(&host.total_conns));
        host_stat(&s, "rejected_connections", "%" PRIu64,
                  atomic_load(&host.rejected_conns));
        host_stat(&s, "notifies_dropped", "%" PRIu64,
                  atomic_load(&host.notifies_dropped));
        host_stat(&s, "durable_timeouts", "%" PRIu64,
                  atomic_load(&host.durable_timeouts));
        host_stat(&s, "notifies_duplicate", "%" PRIu64,
                  atomic_load(&host.notifies_duplicate));
        host_stat(&s, "deadline_closes", "%" PRIu64, atomic_load(&host.deadline_closes));
        host_stat(&s, "accept_pauses", "%" PRIu64, atomic_load(&host.accept_pauses));
        host_stat(&s, "auth_failures", "%" PRIu64, atomic_load(&host.auth_failures));
        const char *v = KVHOST_VERSION;
        add_stat("version", 7, v, (uint32_t)strlen(v), &s);
    }
    engine_errc rc = host.engine->get_stats(host.engine, c, group, add_stat, &s);
    if (rc == ENGINE_SUCCESS)
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}

/* Whether HELLO grants a feature: what kvhost does for every client that asks
 * (alt_request and sync_replication: flexible framing and durability frames
 * are taken; select_bucket: the one bucket can be selected). */
static bool feature_on(uint16_t f)
{
    switch (f) {
    case FEAT_XERROR:
    case FEAT_JSON:
    case FEAT_TCPNODELAY:
    case FEAT_SELECT_BUCKET:
    case FEAT_ALT_REQUEST:
    case FEAT_SYNC_REPLICATION:
    case FEAT_PRESERVE_TTL:
        return true;
    case FEAT_COLLECTIONS:
        return host.info->features & ENGINE_FEATURE_COLLECTIONS;
    default:
        return false;
    }
}

static engine_errc do_hello(conn *c, req *r)
{
    uint16_t enabled[16];
    size_t n = 0;
    c->xerror = c->collections = c->json = c->tcp_nodelay = false;
    for (uint32_t i = 0; i + 1 < r->valuelen && n < 16; i += 2) {
        uint16_t f = (uint16_t)(r->value[i] << 8 | r->value[i + 1]);
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || enabled[k] == htons(f);
        if (dup || !feature_on(f))
            continue;
        enabled[n++] = htons(f);
        c->xerror = c->xerror || f == FEAT_XERROR;
        c->json = c->json || f == FEAT_JSON;
        c->tcp_nodelay = c->tcp_nodelay || f == FEAT_TCPNODELAY;
        c->collections = c->collections || f == FEAT_COLLECTIONS;
    }
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, enabled, (uint32_t)(n * 2), 0, 0);
    return ENGINE_SUCCESS;
}

/* ---- the SDK's bootstrap: bucket, config, error map ---- */

/* One bucket: its name selects it; another is no_access. Without a select,
 * data commands use it anyway (memcached clients never select). */
static engine_errc do_select_bucket(conn *c, req *r)
{
    const char *b = cluster_bucket();
    if (r->keylen != strlen(b) || memcmp(r->key, b, r->keylen) != 0) {
        conn_clear_error(c);
        send_response(c, r, ST_EACCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return ENGINE_SUCCESS;
    }
    c->bucket_selected = true;
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return ENGINE_SUCCESS;
}

/* The bucket config once a bucket is selected, else the cluster's. */
static engine_errc do_cluster_config(conn *c, req *r)
{
    send_json(c, r, ST_SUCCESS, cluster_config_json(c->bucket_selected));
    return ENGINE_SUCCESS;
}

static engine_errc do_error_map(conn *c, req *r)
{
    uint16_t version = r->valuelen == 2 ? (uint16_t)(r->value[0] << 8 | r->value[1]) : 0;
    if (version == 0) {
        invalid(c, r, "the error map version is a 2-byte value of 1 or more");
        return ENGINE_SUCCESS;
    }
    send_json(c, r, ST_SUCCESS, cluster_error_map_json(version > 2 ? 2 : version));
    return ENGINE_SUCCESS;
}

typedef struct outbuf {
    conn *c;
    const req *r;
} outbuf;

static void send_manifest(const void *data, size_t len, void *ctx)
{
    outbuf *o = ctx;
    send_response(o->c, o->r, ST_SUCCESS, NULL, 0, NULL, 0, data, (uint32_t)len, 0x01, 0);
}

static engine_errc do_collections(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_errc rc;
    if (r->opcode == OP_SET_MANIFEST) {
        rc = h->set_collection_manifest(h, c, (const char *)r->value, r->valuelen);
        if (rc == ENGINE_SUCCESS)
            send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return rc;
    }
    if (r->opcode == OP_GET_MANIFEST) {
        outbuf o = {c, r};
        return h->get_collection_manifest(h, c, send_manifest, &o);
    }
    uint64_t uid = 0;
    uint32_t id = 0;
    /* The path comes in the value (or, from older clients, the key). */
    const char *path = (const char *)(r->valuelen ? r->value : r->key);
    size_t len = r->valuelen ? r->valuelen : r->keylen;
    rc = r->opcode == OP_GET_CID ? h->get_collection_id(h, c, path, len, &uid, &id)
                                 : h->get_scope_id(h, c, path, len, &uid, &id);
    if (rc == ENGINE_SUCCESS) {
        uint8_t ext[12];
        uint64_t be =
            ((uint64_t)htonl((uint32_t)uid) << 32) | htonl((uint32_t)(uid >> 32));
        uint32_t bid = htonl(id);
        memcpy(ext, &be, 8);
        memcpy(ext + 8, &bid, 4);
        send_response(c, r, ST_SUCCESS, ext, 12, NULL, 0, NULL, 0, 0, 0);
    }
    return rc;
}

/* ---- SASL ---- */

/* Failed logins a connection may make before it is closed. */
#define AUTH_FAILURES_MAX 3

static void sasl_refused(conn *c, const req *r)
{
    atomic_fetch_add(&host.auth_failures, 1);
    auth_scram_clear(&c->scram);
    if (c->authed && host.users != NULL)
        c->accepted_at = host_now_ms(); /* logged out: the login deadline starts now */
    c->authed = host.users == NULL;
    c->admin = false;
    send_response(c, r, ST_AUTH_ERROR, NULL, 0, NULL, 0, "Auth failure", 12, 0, 0);
    if (++c->auth_failures >= AUTH_FAILURES_MAX)
        c->closing = true; /* answered, then closed */
}

static void sasl_accepted(conn *c, const req *r, const auth_user *u, const char *value)
{
    c->authed = true;
    c->admin = u == NULL || u->admin; /* no users file: loopback, open */
    c->auth_failures = 0;
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, value, (uint32_t)strlen(value), 0,
                  0);
}

/* Failed logins an address may make in a minute before its refusals are
 * answered late, and how late. */
#define FAILURES_FREE    3
#define FAILURE_DELAY_MS 500

static void sasl_delay_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kvhost_server_api()->cookie.notify_io_complete(arg, ENGINE_SUCCESS);
}

/* A login failed. Past FAILURES_FREE failures from its address in a minute
 * the refusal waits FAILURE_DELAY_MS (the connection parked, the worker
 * serving others); the re-call after the wait answers. */
static engine_errc sasl_failed(conn *c, const req *r)
{
    if (c->sasl_wait == SASL_DELAYING) {
        c->sasl_wait = SASL_NONE;
        sasl_refused(c, r);
        return ENGINE_SUCCESS;
    }
    if (authq_failed(c->peer) > FAILURES_FREE) {
        if (c->sasl_timer == NULL)
            c->sasl_timer = evtimer_new(c->w->base, sasl_delay_over, c);
        struct timeval tv = {0, FAILURE_DELAY_MS * 1000};
        if (c->sasl_timer != NULL && evtimer_add(c->sasl_timer, &tv) == 0) {
            c->sasl_wait = SASL_DELAYING;
            auth_scram_clear(&c->scram);
            return ENGINE_WOULD_BLOCK;
        }
    }
    sasl_refused(c, r);
    return ENGINE_SUCCESS;
}

/* PLAIN: [authzid] NUL user NUL password, checked on the auth threads. */
static engine_errc sasl_plain(conn *c, const req *r)
{
    if (c->sasl_wait == SASL_CHECKED) {
        const auth_user *u = c->sasl_user;
        c->sasl_wait = SASL_NONE;
        c->sasl_user = NULL;
        if (u == NULL)
            return sasl_failed(c, r);
        sasl_accepted(c, r, u, "Authenticated");
        return ENGINE_SUCCESS;
    }
    const char *v = (const char *)r->value, *end = v + r->valuelen;
    const char *nul1 = memchr(v, 0, r->valuelen);
    const char *nul2 = nul1 ? memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1)) : NULL;
    if (nul2 == NULL)
        return sasl_failed(c, r);
    if (!authq_check_plain(c, nul1 + 1, (size_t)(nul2 - nul1 - 1), nul2 + 1,
                           (size_t)(end - nul2 - 1))) {
        send_error_status(c, r, ST_ETMPFAIL); /* too many logins at once: retry */
        return ENGINE_SUCCESS;
    }
    return ENGINE_WOULD_BLOCK; /* SASL_CHECKING until the notify */
}

/* SASL_LIST_MECHS, SASL_AUTH and SASL_STEP. Without a users file (loopback
 * only) every login succeeds at once, whatever the mechanism. One exchange
 * at a time per connection: a new SASL_AUTH forgets an unfinished one. A
 * failure says only "auth error", whatever was wrong. */
static engine_errc do_sasl(conn *c, req *r)
{
    if (r->opcode == OP_SASL_LIST_MECHS) {
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, AUTH_MECHANISMS,
                      (uint32_t)strlen(AUTH_MECHANISMS), 0, 0);
        return ENGINE_SUCCESS;
    }
    if (c->sasl_wait == SASL_DELAYING)
        return sasl_failed(c, r); /* the wait is over: refuse */
    auth_mech mech = auth_mech_named((const char *)r->key, r->keylen);
    if (mech == AUTH_UNKNOWN || r->valuelen > AUTH_MAX_PAYLOAD)
        return sasl_failed(c, r);
    if (host.users == NULL) {
        auth_scram_clear(&c->scram);
        sasl_accepted(c, r, NULL, "Authenticated");
        return ENGINE_SUCCESS;
    }
    char reply[512];
    const auth_user *u = NULL;
    if (r->opcode == OP_SASL_AUTH && mech == AUTH_PLAIN) {
        auth_scram_clear(&c->scram);
        return sasl_plain(c, r);
    }
    if (r->opcode == OP_SASL_AUTH) {
        if (auth_scram_start(host.users, &c->scram, mech, (const char *)r->value,
                             r->valuelen, reply, sizeof(reply)) != 0)
            return sasl_failed(c, r);
        send_response(c, r, ST_AUTH_CONTINUE, NULL, 0, NULL, 0, reply,
                      (uint32_t)strlen(reply), 0, 0);
    } else if (!c->scram.active || c->scram.mech != mech ||
               auth_scram_finish(&c->scram, (const char *)r->value, r->valuelen, reply,
                                 sizeof(reply), &u) != 0) {
        return sasl_failed(c, r);
    } else {
        sasl_accepted(c, r, u, reply);
    }
    return ENGINE_SUCCESS;
}

/* ---- dispatch ---- */

/* Extras lengths a command takes besides one fixed length. */
#define EXT_0_OR_4 (-1)
#define EXT_0_OR_1 (-2)

typedef struct command {
    handler fn;
    int extlen;    /* required extras length, or EXT_0_OR_4 / EXT_0_OR_1 */
    bool key;      /* needs a key (decoded for collections) */
    bool value_ok; /* may carry a value */
    bool no_key;   /* must not carry a key */
    bool admin;    /* with a users file: the admin role only (bucket-wide) */
} command;

static engine_errc do_noop(conn *c, req *r)
{
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return ENGINE_SUCCESS;
}

static engine_errc do_version(conn *c, req *r)
{
    char v[128];
    int n = snprintf(v, sizeof(v), "%s", KVHOST_VERSION);
    send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, v, (uint32_t)n, 0, 0);
    return ENGINE_SUCCESS;
}

static engine_errc do_quit(conn *c, req *r)
{
    if (r->opcode == OP_QUIT)
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    c->closing = true;
    return ENGINE_SUCCESS;
}

static engine_errc do_flush(conn *c, req *r)
{
    if (r->extlen == 4 && be32(r->extras) != 0)
        return ENGINE_NOT_SUPPORTED; /* delayed flush */
    engine_errc rc = host.engine->flush(host.engine, c);
    if (rc == ENGINE_SUCCESS && r->opcode == OP_FLUSH)
        send_response(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return rc;
}

static const command *command_of(uint8_t op)
{
    static const command get = {do_get, 0, true, false, false, false};
    static const command store = {do_store, 8, true, true, false, false};
    static const command concat = {do_store, 0, true, true, false, false};
    static const command del = {do_delete, 0, true, false, false, false};
    static const command arith = {do_arith, 20, true, false, false, false};
    static const command quit = {do_quit, 0, false, false, true, false};
    static const command flush = {do_flush, EXT_0_OR_4, false, false, true, true};
    static const command get_meta = {do_get_meta, EXT_0_OR_1, true, false, false, false};
    static const command get_locked = {do_get_locked, EXT_0_OR_4, true,
                                       false,         false,      false};
    static const command unlock = {do_unlock, 0, true, false, false, false};
    static const command noop = {do_noop, 0, false, false, true, false};
    static const command version = {do_version, 0, false, false, true, false};
    static const command stat = {do_stat, 0, false, false, false, false};
    static const command touch = {do_touch, 4, true, false, false, false};
    static const command gat = {do_get, 4, true, false, false, false};
    static const command hello = {do_hello, 0, false, true, false, false};
    static const command set_manifest = {do_collections, 0, false, true, true, true};
    static const command get_manifest = {do_collections, 0, false, false, true, false};
    static const command ids = {do_collections, 0, false, true, false, false};
    static const command sasl = {do_sasl, 0, false, true, false, false};
    static const command select_bucket = {
        do_select_bucket, 0, false, false, false, false};
    static const command cluster_config = {
        do_cluster_config, 0, false, false, true, false};
    static const command error_map = {do_error_map, 0, false, true, true, false};
    switch (op) {
    case OP_GET:
    case OP_GETQ:
    case OP_GETK:
    case OP_GETKQ:
        return &get;
    case OP_SET:
    case OP_SETQ:
    case OP_ADD:
    case OP_ADDQ:
    case OP_REPLACE:
    case OP_REPLACEQ:
        return &store;
    case OP_APPEND:
    case OP_APPENDQ:
    case OP_PREPEND:
    case OP_PREPENDQ:
        return &concat;
    case OP_DELETE:
    case OP_DELETEQ:
        return &del;
    case OP_INCR:
    case OP_INCRQ:
    case OP_DECR:
    case OP_DECRQ:
        return &arith;
    case OP_QUIT:
    case OP_QUITQ:
        return &quit;
    case OP_FLUSH:
    case OP_FLUSHQ:
        return &flush;
    case OP_NOOP:
        return &noop;
    case OP_VERSION:
        return &version;
    case OP_STAT:
        return &stat;
    case OP_TOUCH:
        return &touch;
    case OP_GAT:
    case OP_GATQ:
        return &gat;
    case OP_HELLO:
        return &hello;
    case OP_SET_MANIFEST:
        return &set_manifest;
    case OP_GET_MANIFEST:
        return &get_manifest;
    case OP_GET_CID:
    case OP_GET_SID:
        return &ids;
    case OP_SASL_LIST_MECHS:
    case OP_SASL_AUTH:
    case OP_SASL_STEP:
        return &sasl;
    case OP_SELECT_BUCKET:
        return &select_bucket;
    case OP_GET_META:
        return &get_meta;
    case OP_GET_LOCKED:
        return &get_locked;
    case OP_UNLOCK_KEY:
        return &unlock;
    case OP_GET_CLUSTER_CONFIG:
        return &cluster_config;
    case OP_GET_ERROR_MAP:
        return &error_map;
    default:
        return NULL;
    }
}

/* Reads the durability frame info of a flexible-framing request. */
static bool parse_frame(conn *c, req *r)
{
    r->durability = ENGINE_DURABILITY_NONE;
    r->durability_timeout_ms = 0;
    r->preserve_expiry = false;
    for (uint8_t i = 0; i < r->framelen;) {
        uint8_t id = r->frame[i] >> 4, len = r->frame[i] & 0x0f;
        i++;
        if (i + len > r->framelen) {
            invalid(c, r, "framing extras overrun");
            return false;
        }
        if (id == 1) { /* durability requirement: level [, timeout] */
            if (len != 1 && len != 3) {
                invalid(c, r, "durability frame info must be 1 or 3 bytes");
                return false;
            }
            uint8_t level = r->frame[i];
            if (level < 1 || level > 3) {
                invalid(c, r, "unknown durability level");
                return false;
            }
            /* One node: majority is memory; the persist levels mean the disk. */
            r->durability =
                level >= 2 ? ENGINE_DURABILITY_PERSIST : ENGINE_DURABILITY_NONE;
            if (len == 3) {
                uint16_t t = (uint16_t)(r->frame[i + 1] << 8 | r->frame[i + 2]);
                if (t == 0 || t == 0xffff) {
                    invalid(c, r, "a durability timeout of 0 or 0xffff is not valid");
                    return false;
                }
                r->durability_timeout_ms = t;
            }
        } else if (id == 5) { /* preserve expiry */
            if (len != 0) {
                invalid(c, r, "the preserve-expiry frame info has no value");
                return false;
            }
            r->preserve_expiry = true;
        }
        i = (uint8_t)(i + len);
    }
    return true;
}

/* Runs the command of a parsed packet. true if it is finished (the packet can
 * be consumed); false if it is parked on would_block. */
static bool execute(conn *c, req *r)
{
    const command *cmd = command_of(r->opcode);
    c->commands++;
    if (cmd == NULL) {
        conn_clear_error(c);
        send_response(c, r, ST_UNKNOWN_COMMAND, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    bool ext_ok = cmd->extlen == EXT_0_OR_1   ? r->extlen <= 1
                  : cmd->extlen == EXT_0_OR_4 ? (r->extlen == 0 || r->extlen == 4)
                                              : r->extlen == cmd->extlen;
    if (!ext_ok || (cmd->key && r->keylen == 0) || (cmd->no_key && r->keylen != 0) ||
        (!cmd->value_ok && r->valuelen != 0 && r->opcode != OP_STAT)) {
        invalid(c, r, "wrong extras, key or value for this command");
        return true;
    }
    if (!c->authed && host.users != NULL && r->opcode != OP_HELLO &&
        r->opcode != OP_NOOP && r->opcode != OP_SASL_LIST_MECHS &&
        r->opcode != OP_SASL_AUTH && r->opcode != OP_SASL_STEP) {
        conn_clear_error(c);
        send_response(c, r, ST_AUTH_ERROR, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    if (cmd->admin && host.users != NULL && !c->admin) {
        conn_clear_error(c);
        send_response(c, r, ST_EACCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return true;
    }
    if (r->magic == MAGIC_ALT_REQ && !parse_frame(c, r))
        return true;
    if (r->durability != ENGINE_DURABILITY_NONE && cmd->fn != do_store &&
        cmd->fn != do_delete && cmd->fn != do_arith) {
        invalid(c, r, "a durability requirement on a command that writes nothing");
        return true;
    }
    if (cmd->key && !decode_key(c, r))
        return true;
    engine_errc rc = cmd->fn(c, r);
    if (rc == ENGINE_WOULD_BLOCK) {
        arm_durable_timeout(c, r);
        return false;
    }
    conn_drop_parked_item(c); /* a store finished: its item is released already */
    if (rc != ENGINE_SUCCESS) {
        bool silent =
            rc == ENGINE_NO_SUCH_KEY &&
            (r->opcode == OP_GETQ || r->opcode == OP_GETKQ || r->opcode == OP_GATQ);
        if (silent)
            conn_clear_error(c);
        else
            send_error(c, r, rc);
    }
    return true;
}

/* Parses the packet at the front of the input into r. 1 ready, 0 incomplete,
 * -1 malformed (the connection must close). */
static int parse(conn *c, req *r, uint8_t **pkt)
{
    struct evbuffer *in = c->in;
    size_t avail = evbuffer_get_length(in);
    if (avail < HEADER_BYTES)
        return 0;
    uint8_t *h = evbuffer_pullup(in, HEADER_BYTES);
    if (h == NULL)
        return -1; /* out of memory */
    r->magic = h[0];
    if (r->magic != MAGIC_REQ && r->magic != MAGIC_ALT_REQ)
        return -1;
    r->opcode = h[1];
    if (r->magic == MAGIC_ALT_REQ) {
        r->framelen = h[2];
        r->keylen = h[3];
    } else {
        r->framelen = 0;
        r->keylen = (uint16_t)(h[2] << 8 | h[3]);
    }
    r->durability = ENGINE_DURABILITY_NONE; /* flexible framing may ask for more */
    r->durability_timeout_ms = 0;
    r->preserve_expiry = false;
    r->extlen = h[4];
    r->datatype = h[5];
    r->vbucket = (uint16_t)(h[6] << 8 | h[7]);
    r->bodylen = be32(h + 8);
    memcpy(&r->opaque, h + 12, 4);
    r->cas = be64(h + 16);
    if (r->bodylen > host.max_packet ||
        (uint64_t)r->framelen + r->extlen + r->keylen > r->bodylen)
        return -1;
    /* Before SASL succeeds only the small packets of a login are taken. */
    if (host.users != NULL && !c->authed && r->bodylen > UNAUTHENTICATED_MAX_BODY)
        return -1;
    if (avail < HEADER_BYTES + (size_t)r->bodylen)
        return 0;
    *pkt = evbuffer_pullup(in, HEADER_BYTES + (ssize_t)r->bodylen);
    if (*pkt == NULL)
        return -1; /* out of memory */
    r->frame = *pkt + HEADER_BYTES;
    r->extras = r->frame + r->framelen;
    r->key = r->extras + r->extlen;
    r->value = r->key + r->keylen;
    r->valuelen = r->bodylen - r->framelen - r->extlen - r->keylen;
    return 1;
}

bool protocol_read(conn *c)
{
    uint64_t now = host_now_ms();
    while (!c->parked && !c->closed && !c->closing) {
        req r;
        uint8_t *pkt = NULL;
        int got = parse(c, &r, &pkt);
        if (got == 0)
            return false;
        if (got < 0) {
            /* The answers of the packets before it go out, then the close. */
            if (host.verbose)
                fprintf(stderr, "kvhost: malformed packet; closing the connection\n");
            evbuffer_drain(c->in, evbuffer_get_length(c->in));
            c->closing = true;
            return false;
        }
        if (evbuffer_get_length(c->out) >= conn_output_limit(c))
            return true; /* the client is not reading its answers: wait */
        if (!execute(c, &r)) {
            c->parked = true;
            return true;
        }
        evbuffer_drain(c->in, HEADER_BYTES + (size_t)r.bodylen);
        c->last_done = now;
        c->req_started = evbuffer_get_length(c->in) > 0 ? now : 0;
    }
    return false;
}

void protocol_resume(conn *c, engine_errc status)
{
    if (c->closed || !c->parked)
        return;
    req r;
    uint8_t *pkt = NULL;
    if (parse(c, &r, &pkt) != 1) {
        kvhost_close(c);
        return;
    }
    c->parked = false;
    if (c->durable_timer != NULL)
        evtimer_del(c->durable_timer);
    if (c->answered_early) {
        /* Answered at its durability timeout: the outcome goes unsaid (a
         * success stays with the engine until another request, rule 7). */
        c->answered_early = false;
        c->sasl_wait = SASL_NONE;
        c->sasl_user = NULL;
        conn_drop_parked_item(c);
        conn_clear_error(c);
    } else if (status == ENGINE_SUCCESS) {
        if (!execute(c, &r)) {
            c->parked = true;
            return;
        }
    } else {
        conn_drop_parked_item(c); /* no re-call: the status is the answer */
        if (r.magic == MAGIC_ALT_REQ)
            parse_frame(c, &r); /* checked when the command first ran */
        /* A durable write that waited and failed may or may not be on disk
         * (its batch is retried): sync-write-ambiguous, never
         * temporary_failure, which clients retry as if nothing happened. A
         * refusal before any wait says what it says (nothing was written). */
        if (r.durability != ENGINE_DURABILITY_NONE && status == ENGINE_TEMPORARY_FAILURE)
            send_error_status(c, &r, ST_SYNC_WRITE_AMBIGUOUS);
        else
            send_error(c, &r, status);
    }
    evbuffer_drain(c->in, HEADER_BYTES + (size_t)r.bodylen);
    c->last_done = host_now_ms();
    c->req_started = evbuffer_get_length(c->in) > 0 ? c->last_done : 0;
    kvhost_pump(c); /* what the client sent meanwhile */
}
