/*
 * wire.c - parsing packets and writing answers (wire.h).
 */
#include "wire.h"

#include "../common/utf8.h"
#include "cluster.h"

#include <jansson.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- responses ---- */

void wire_send(conn *c, const req *r, uint16_t status, const void *extras, uint8_t extlen,
               const void *key, uint16_t keylen, const void *value, uint32_t valuelen,
               uint8_t datatype, uint64_t cas)
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

uint16_t wire_status_of(const conn *c, engine_errc rc)
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
        /* Sub-document statuses: the engine's numbers are the wire's. */
        if ((rc >= ENGINE_SUBDOC_PATH_ENOENT &&
             rc <= ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED) ||
            rc == ENGINE_XATTR_EINVAL)
            return (uint16_t)rc;
        return ST_EINTERNAL;
    }
}

/* Sends an extended-error body {"error":{"context":...}} (and the manifest
 * uid for unknown collections and scopes), built with jansson. The reason may
 * quote a client's bytes or come from an engine that left invalid UTF-8: it is
 * made valid first, so the body is always valid UTF-8 JSON. */
void wire_send_error_body(conn *c, const req *r, uint16_t st, const char *reason,
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
        wire_send(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return;
    }
    wire_send(c, r, st, NULL, 0, NULL, 0, body, (uint32_t)strlen(body), 0x01, 0);
    free(body);
}

void wire_send_json(conn *c, const req *r, uint16_t st, char *json)
{
    if (json == NULL) {
        wire_send(c, r, ST_ENOMEM, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return;
    }
    wire_send(c, r, st, NULL, 0, NULL, 0, json, (uint32_t)strlen(json), 0x01, 0);
    free(json);
}

/* An error answer with a wire status: for clients that asked for extended
 * errors, with the engine's reason. Quiet commands answer errors too. */
void wire_send_error_status(conn *c, const req *r, uint16_t st)
{
    char reason[512];
    uint64_t uid;
    bool has_uid;
    bool has = conn_take_error(c, reason, sizeof(reason), &uid, &has_uid);
    bool uid_body = has_uid && (st == ST_UNKNOWN_COLLECTION || st == ST_UNKNOWN_SCOPE);
    if (!c->xerror || (!has && !uid_body))
        wire_send(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    else
        wire_send_error_body(c, r, st, has ? reason : "", uid_body ? &uid : NULL);
}

void wire_send_error(conn *c, const req *r, engine_errc rc)
{
    if (rc == ENGINE_NOT_MY_VBUCKET && (c->json || c->bucket_selected)) {
        /* A Couchbase client takes the config in the body as its new map. */
        conn_clear_error(c);
        wire_send_json(c, r, ST_NOT_MY_VBUCKET, cluster_config_json(true));
        return;
    }
    wire_send_error_status(c, r, wire_status_of(c, rc));
}

void wire_refuse(conn *c, const req *r, uint16_t st, const char *why)
{
    conn_clear_error(c);
    if (c->xerror)
        wire_send_error_body(c, r, st, why, NULL);
    else
        wire_send(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
}

void wire_invalid(conn *c, const req *r, const char *why)
{
    wire_refuse(c, r, ST_EINVAL, why);
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
bool wire_decode_key(conn *c, req *r)
{
    const uint8_t *k = r->key;
    size_t len = r->keylen;
    uint32_t cid = 0;
    if (c->collections) {
        size_t used;
        if (len > 251 || leb128_decode(k, len, &cid, &used) != 0) {
            wire_invalid(
                c, r,
                "the key's collection id is not a canonical LEB128 of at most 5 bytes");
            return false;
        }
        if (cid >= 1 && cid <= 7) {
            wire_invalid(c, r, "collection ids 1-7 are reserved");
            return false;
        }
        k += used;
        len -= used;
        if (len > (cid == 0 ? 250u : 246u)) {
            wire_invalid(c, r, "key too long for its collection");
            return false;
        }
    }
    if (len == 0 || len > ENGINE_KEY_MAX_LEN) {
        wire_invalid(c, r, len == 0 ? "empty key" : "key longer than 250 bytes");
        return false;
    }
    r->dk = (engine_doc_key){cid, (uint16_t)len, k};
    return true;
}

bool wire_quiet(uint8_t op)
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

uint32_t wire_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

uint64_t wire_be64(const uint8_t *p)
{
    return (uint64_t)wire_be32(p) << 32 | wire_be32(p + 4);
}

/* Reads the durability frame info of a flexible-framing request. */
bool wire_parse_frame(conn *c, req *r)
{
    r->durability = ENGINE_DURABILITY_NONE;
    r->durability_timeout_ms = 0;
    r->preserve_expiry = false;
    for (uint8_t i = 0; i < r->framelen;) {
        uint8_t id = r->frame[i] >> 4, len = r->frame[i] & 0x0f;
        i++;
        if (i + len > r->framelen) {
            wire_invalid(c, r, "framing extras overrun");
            return false;
        }
        if (id == 1) { /* durability requirement: level [, timeout] */
            if (len != 1 && len != 3) {
                wire_invalid(c, r, "durability frame info must be 1 or 3 bytes");
                return false;
            }
            uint8_t level = r->frame[i];
            if (level < 1 || level > 3) {
                wire_invalid(c, r, "unknown durability level");
                return false;
            }
            /* One node: majority is memory; the persist levels mean the disk. */
            r->durability =
                level >= 2 ? ENGINE_DURABILITY_PERSIST : ENGINE_DURABILITY_NONE;
            if (len == 3) {
                uint16_t t = (uint16_t)(r->frame[i + 1] << 8 | r->frame[i + 2]);
                if (t == 0 || t == 0xffff) {
                    wire_invalid(c, r,
                                 "a durability timeout of 0 or 0xffff is not valid");
                    return false;
                }
                r->durability_timeout_ms = t;
            }
        } else if (id == 5) { /* preserve expiry */
            if (len != 0) {
                wire_invalid(c, r, "the preserve-expiry frame info has no value");
                return false;
            }
            r->preserve_expiry = true;
        }
        i = (uint8_t)(i + len);
    }
    return true;
}

/* Parses the packet at the front of the input into r. 1 ready, 0 incomplete,
 * -1 malformed (the connection must close). */
int wire_parse_packet(conn *c, req *r, uint8_t **pkt)
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
    r->bodylen = wire_be32(h + 8);
    memcpy(&r->opaque, h + 12, 4);
    r->cas = wire_be64(h + 16);
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
