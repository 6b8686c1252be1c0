/*
 * cmd_subdoc.c - the sub-document commands over the engine's v4 members:
 * multi-lookup 0xd0, multi-mutation 0xd1, and the single-path commands
 * 0xc5-0xcf and 0xd2.
 *
 * Request bodies (big-endian): a multi-lookup spec is op u8, flags u8,
 * pathlen u16, path; a multi-mutation spec adds valuelen u32 after pathlen
 * and the value after the path. Extras: multi-lookup [doc flags u8];
 * multi-mutation [expiry u32][doc flags u8]; single path: pathlen u16,
 * flags u8, [expiry u32], [doc flags u8], then path and value in the value.
 * Answers: a multi-lookup lists status u16, valuelen u32, value per spec
 * (status 0xcc if any failed); a multi-mutation lists index u8, status u16,
 * valuelen u32, value for the specs that return one, or on failure index u8
 * and status u16 of the failing spec (status 0xcc).
 */
#include "commands.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* The largest answer body: sixteen whole-document specs could otherwise ask
 * for sixteen copies of the largest document. */
#define ANSWER_MAX (32u << 20)

typedef struct answer {
    const conn *c;
    struct evbuffer *body;
    bool failed;  /* the evbuffer ran out of memory */
    bool too_big; /* past ANSWER_MAX */
} answer;

static void put(answer *a, const void *p, size_t n)
{
    if (a->failed || n == 0)
        return;
    if (evbuffer_get_length(a->body) + n > ANSWER_MAX)
        a->failed = a->too_big = true;
    else if (evbuffer_add(a->body, p, n) != 0)
        a->failed = true;
}

static void put16(answer *a, uint16_t v)
{
    v = htons(v);
    put(a, &v, 2);
}

static void put32(answer *a, uint32_t v)
{
    v = htonl(v);
    put(a, &v, 4);
}

/* The engine offers the sub-document members (v4). */
static bool offered(conn *c, req *r)
{
    if (host.engine->interface >= ENGINE_API_VERSION_4)
        return true;
    wire_refuse(c, r, ST_NOT_SUPPORTED, "the engine has no sub-document operations");
    return false;
}

/* The document flags a client may send (wire values, the engine's too):
 * mkdoc, add, access_deleted, create_as_deleted, revive. */
#define WIRE_DOC_FLAGS 0x1f

/* Checks what the engine does not judge: document flags, attribute paths on
 * a connection that did not ask for them, durability on a lookup. False if
 * it answered. Adds keep-expiry for a preserve-expiry frame. (A durable
 * mutation parks like a durable store: protocol.c re-calls it at the notify,
 * answers sync-write-ambiguous at its timeout or for a failed batch.) */
static bool check_request(conn *c, req *r, bool mutation, const engine_subdoc_spec *specs,
                          size_t n, uint8_t *doc_flags)
{
    if (*doc_flags & ~WIRE_DOC_FLAGS) {
        wire_invalid(c, r, "unknown sub-document document flags");
        return false;
    }
    if (*doc_flags & 0x08) {
        wire_refuse(c, r, ST_NOT_SUPPORTED,
                    "create_as_deleted: the engine keeps no deleted documents");
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if ((specs[i].flags & ENGINE_SUBDOC_PATH_XATTR) && !c->xattr) {
            wire_refuse(c, r, ST_NOT_SUPPORTED,
                        "attribute paths need the xattr feature of HELLO");
            return false;
        }
    if (!mutation && r->durability != ENGINE_DURABILITY_NONE) {
        wire_invalid(c, r, "a lookup takes no durability level");
        return false;
    }
    if (mutation && r->preserve_expiry)
        *doc_flags |= ENGINE_SUBDOC_DOC_KEEP_EXPIRY;
    return true;
}

/* Reads the specs of a multi command; false if it answered a bad body. */
static bool read_specs(conn *c, req *r, bool mutation, engine_subdoc_spec *specs,
                       size_t *n)
{
    const uint8_t *p = r->value, *end = r->value + r->valuelen;
    size_t head = mutation ? 8 : 4;
    for (*n = 0; p < end; (*n)++) {
        if (*n == ENGINE_SUBDOC_MAX_SPECS) {
            wire_refuse(c, r, ENGINE_SUBDOC_INVALID_COMBO, "more than 16 specs");
            return false;
        }
        if ((size_t)(end - p) < head) {
            wire_invalid(c, r, "a spec is cut short");
            return false;
        }
        engine_subdoc_spec *s = &specs[*n];
        s->op = p[0];
        s->flags = p[1];
        s->pathlen = (uint16_t)(p[2] << 8 | p[3]);
        s->valuelen = mutation ? wire_be32(p + 4) : 0;
        p += head;
        if ((size_t)(end - p) < (size_t)s->pathlen + s->valuelen) {
            wire_invalid(c, r, "a spec's path or value runs past the body");
            return false;
        }
        s->path = (const char *)p;
        s->value = p + s->pathlen;
        p += s->pathlen + s->valuelen;
    }
    if (*n == 0) {
        wire_refuse(c, r, ENGINE_SUBDOC_INVALID_COMBO, "no specs");
        return false;
    }
    return true;
}

static void collect_lookup(size_t index, engine_errc status, const void *value,
                           size_t len, void *ctx)
{
    (void)index;
    answer *a = ctx;
    put16(a, wire_status_of(a->c, status));
    put32(a, (uint32_t)len);
    put(a, value, len);
}

static void collect_mutation(size_t index, engine_errc status, const void *value,
                             size_t len, void *ctx)
{
    answer *a = ctx;
    uint8_t i = (uint8_t)index;
    put(a, &i, 1);
    put16(a, wire_status_of(a->c, status));
    if (status == ENGINE_SUCCESS) {
        put32(a, (uint32_t)len);
        put(a, value, len);
    }
}

/* Sends an answer whose body was collected (status 0 or multi-path failure). */
static void send_answer(conn *c, req *r, uint16_t st, answer *a, uint64_t cas)
{
    size_t len = evbuffer_get_length(a->body);
    const void *body = len ? evbuffer_pullup(a->body, -1) : NULL;
    if (a->too_big) {
        wire_refuse(c, r, ST_E2BIG, "the answer would be larger than 32 MiB");
        return;
    }
    if (a->failed || (len && body == NULL)) {
        wire_refuse(c, r, ST_ENOMEM, "out of memory for the answer");
        return;
    }
    wire_send(c, r, st, NULL, 0, NULL, 0, body, (uint32_t)len, 0, cas);
}

/* Runs a lookup or a mutation and answers it; the engine's status if it
 * answers nothing (an error, or would_block). */
static engine_errc run(conn *c, req *r, bool mutation, const engine_subdoc_spec *specs,
                       size_t n, uint8_t doc_flags, uint32_t exptime, bool single)
{
    answer a = {c, evbuffer_new(), false, false};
    if (a.body == NULL)
        return ENGINE_NO_MEMORY;
    uint64_t cas = 0;
    size_t failed = 0;
    engine_errc rc =
        mutation
            ? host.engine->subdoc_mutate(host.engine, c, &r->dk, r->vbucket, specs, n,
                                         doc_flags, r->cas, exptime, r->durability,
                                         collect_mutation, &a, &cas, &failed)
            : host.engine->subdoc_lookup(host.engine, c, &r->dk, r->vbucket, specs, n,
                                         doc_flags, collect_lookup, &a, &cas);
    if (rc == ENGINE_NOT_SUPPORTED && mutation &&
        r->durability != ENGINE_DURABILITY_NONE) {
        /* No data directory: the write cannot be made durable. */
        wire_send_error_status(c, r, ST_DURABILITY_INVALID_LEVEL);
        rc = ENGINE_SUCCESS;
    } else if (rc == ENGINE_SUCCESS || rc == ENGINE_SUBDOC_MULTI_PATH_FAILURE) {
        if (single && a.failed) {
            wire_refuse(c, r, a.too_big ? ST_E2BIG : ST_ENOMEM,
                        a.too_big ? "the answer would be larger than 32 MiB"
                                  : "out of memory for the answer");
        } else if (single) {
            /* One path: its status is the answer's, its value the body. */
            size_t len = evbuffer_get_length(a.body);
            uint8_t *b = len ? evbuffer_pullup(a.body, -1) : NULL;
            size_t skip = mutation ? 7 : 6; /* index, status, length; status, length */
            uint16_t st = b && len >= (mutation ? 3u : 2u)
                              ? (uint16_t)(b[mutation ? 1 : 0] << 8 | b[mutation ? 2 : 1])
                              : 0;
            if (rc == ENGINE_SUBDOC_MULTI_PATH_FAILURE) {
                conn_clear_error(c);
                wire_send(c, r, st, NULL, 0, NULL, 0, NULL, 0, 0, 0);
            } else {
                wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0,
                          len > skip ? b + skip : NULL,
                          len > skip ? (uint32_t)(len - skip) : 0, 0, cas);
            }
        } else {
            if (rc == ENGINE_SUBDOC_MULTI_PATH_FAILURE)
                conn_clear_error(c);
            if (rc == ENGINE_SUCCESS)
                conn_clear_error(c); /* a reason left by a retried race */
            send_answer(c, r,
                        rc == ENGINE_SUCCESS ? ST_SUCCESS : ST_SUBDOC_MULTI_PATH_FAILURE,
                        &a, rc == ENGINE_SUCCESS || !mutation ? cas : 0);
        }
        rc = ENGINE_SUCCESS;
    }
    evbuffer_free(a.body);
    return rc;
}

engine_errc cmd_subdoc_multi(conn *c, req *r)
{
    if (!offered(c, r))
        return ENGINE_SUCCESS;
    bool mutation = r->opcode == OP_SUBDOC_MULTI_MUTATION;
    uint8_t doc_flags = 0;
    uint32_t exptime = 0;
    if (mutation ? !(r->extlen == 0 || r->extlen == 1 || r->extlen == 4 || r->extlen == 5)
                 : r->extlen > 1) {
        wire_invalid(c, r, "sub-document extras are [expiry u32][doc flags u8]");
        return ENGINE_SUCCESS;
    }
    if (r->extlen >= 4)
        exptime = wire_be32(r->extras);
    if (r->extlen == 1 || r->extlen == 5)
        doc_flags = r->extras[r->extlen - 1];
    engine_subdoc_spec specs[ENGINE_SUBDOC_MAX_SPECS];
    size_t n;
    if (!read_specs(c, r, mutation, specs, &n) ||
        !check_request(c, r, mutation, specs, n, &doc_flags))
        return ENGINE_SUCCESS;
    return run(c, r, mutation, specs, n, doc_flags, exptime, false);
}

engine_errc cmd_subdoc_single(conn *c, req *r)
{
    if (!offered(c, r))
        return ENGINE_SUCCESS;
    bool lookup = wire_subdoc_is_lookup(r->opcode);
    if (!(r->extlen == 3 || r->extlen == 4 ||
          (!lookup && (r->extlen == 7 || r->extlen == 8)))) {
        wire_invalid(c, r,
                     "sub-document extras are pathlen u16, flags u8[, expiry u32][, doc "
                     "flags u8]");
        return ENGINE_SUCCESS;
    }
    engine_subdoc_spec s;
    s.op = r->opcode;
    s.pathlen = (uint16_t)(r->extras[0] << 8 | r->extras[1]);
    s.flags = r->extras[2];
    uint32_t exptime = r->extlen >= 7 ? wire_be32(r->extras + 3) : 0;
    uint8_t doc_flags = r->extlen == 4 || r->extlen == 8 ? r->extras[r->extlen - 1] : 0;
    if (s.pathlen > r->valuelen) {
        wire_invalid(c, r, "the path runs past the body");
        return ENGINE_SUCCESS;
    }
    s.path = (const char *)r->value;
    s.value = r->value + s.pathlen;
    s.valuelen = r->valuelen - s.pathlen;
    if (lookup && s.valuelen != 0) {
        wire_invalid(c, r, "a lookup takes no value");
        return ENGINE_SUCCESS;
    }
    if (!check_request(c, r, !lookup, &s, 1, &doc_flags))
        return ENGINE_SUCCESS;
    return run(c, r, !lookup, &s, 1, doc_flags, exptime, true);
}
