/*
 * cmd_bootstrap.c - the SDK's bootstrap commands: HELLO, SELECT_BUCKET,
 * GET_CLUSTER_CONFIG, GET_ERROR_MAP.
 */
#include "commands.h"

#include "cluster.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    case FEAT_XATTR:
    case FEAT_VATTR:
        return host.engine->interface >= ENGINE_API_VERSION_4; /* sub-document */
    default:
        return false;
    }
}

engine_errc cmd_hello(conn *c, req *r)
{
    uint16_t enabled[16];
    size_t n = 0;
    c->xerror = c->collections = c->json = c->tcp_nodelay = c->xattr = false;
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
        c->xattr = c->xattr || f == FEAT_XATTR;
    }
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, enabled, (uint32_t)(n * 2), 0, 0);
    return ENGINE_SUCCESS;
}

/* ---- the SDK's bootstrap: bucket, config, error map ---- */

/* One bucket: its name selects it; another is no_access. Without a select,
 * data commands use it anyway (memcached clients never select). */
engine_errc cmd_select_bucket(conn *c, req *r)
{
    const char *b = cluster_bucket();
    if (r->keylen != strlen(b) || memcmp(r->key, b, r->keylen) != 0) {
        conn_clear_error(c);
        wire_send(c, r, ST_EACCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
        return ENGINE_SUCCESS;
    }
    c->bucket_selected = true;
    wire_send(c, r, ST_SUCCESS, NULL, 0, NULL, 0, NULL, 0, 0, 0);
    return ENGINE_SUCCESS;
}

/* The bucket config once a bucket is selected, else the cluster's. */
engine_errc cmd_cluster_config(conn *c, req *r)
{
    wire_send_json(c, r, ST_SUCCESS, cluster_config_json(c->bucket_selected));
    return ENGINE_SUCCESS;
}

engine_errc cmd_error_map(conn *c, req *r)
{
    uint16_t version = r->valuelen == 2 ? (uint16_t)(r->value[0] << 8 | r->value[1]) : 0;
    if (version == 0) {
        wire_invalid(c, r, "the error map version is a 2-byte value of 1 or more");
        return ENGINE_SUCCESS;
    }
    wire_send_json(c, r, ST_SUCCESS, cluster_error_map_json(version > 2 ? 2 : version));
    return ENGINE_SUCCESS;
}
