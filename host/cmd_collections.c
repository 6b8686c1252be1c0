/*
 * cmd_collections.c - the collections commands: set and get the manifest, collection and
 * scope ids by path.
 */
#include "commands.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct outbuf {
    conn *c;
    const req *r;
} outbuf;

static void send_manifest(const void *data, size_t len, void *ctx)
{
    outbuf *o = ctx;
    wire_send(o->c, o->r, ST_SUCCESS, NULL, 0, NULL, 0, data, (uint32_t)len, 0x01, 0);
}

engine_errc cmd_collections(conn *c, req *r)
{
    engine_handle *h = host.engine;
    engine_errc rc;
    if (r->opcode == OP_SET_MANIFEST) {
        rc = h->set_collection_manifest(h, c, (const char *)r->value, r->valuelen);
        if (rc == ENGINE_SUCCESS)
            wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
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
        wire_send(c, r, ST_SUCCESS, ext, 12, NULL, 0, NULL, 0, 0, 0);
    }
    return rc;
}
