/*
 * cluster.h - what a Couchbase SDK asks of kvhost before its first KV
 * command: the cluster and bucket configuration (GET_CLUSTER_CONFIG, also the
 * body of a not_my_vbucket reply) and the error map (GET_ERROR_MAP). Both
 * are JSON built with jansson; the handlers in protocol.c send them.
 */
#ifndef KVHOST_CLUSTER_H
#define KVHOST_CLUSTER_H

#include "../engine_api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * At start, after the engine is up: the bucket's name, this node's port and
 * TLS port (0: none), and its data directory (NULL: none). With a directory, the bucket
 * uuid is made once and kept in <dir>/kvhost-cluster.json, and revEpoch there grows by
 * one at every start (persisted before the first config is served), so a client never
 * sees the config go back. 0, or -1 with a reason.
 */
int cluster_init(engine_handle *engine, const char *bucket, int port, int tls_port,
                 const char *dir, char *why, size_t whylen);

/** The bucket's name. */
const char *cluster_bucket(void);

/**
 * The config JSON (malloc'd, NUL-terminated; NULL on out of memory): the
 * bucket config when `bucket`, else the cluster-level one (no name, node
 * locator or vbucket map). `rev` grows when the collections manifest does.
 */
char *cluster_config_json(bool bucket);

/**
 * After cluster_init: serve as node `me` of the cluster map in the file at
 * `path` (JSON: {"rev": n, "revEpoch": n (default 1), "uuid": 32 hex digits,
 * "nodes": [{"host", "port", "tlsPort"}], "vbuckets": [owner index per
 * vbucket]}). This node's
 * vbuckets become active and all others dead; the config lists the map's
 * nodes, and its rev and revEpoch are the map's. 0, or -1 with a reason.
 */
int cluster_use_map(const char *path, unsigned me, char *why, size_t whylen);

/**
 * Reads the map file again (kvhost: on SIGHUP). A map of a newer revision
 * (revEpoch, then rev) is applied: vbuckets change owner, the config follows.
 * 0 (applied; `why` says what changed), 1 (not newer: nothing changed), 2
 * (applied, but the engine refused a vbucket state), or -1 (unreadable or
 * invalid: the map in use stays), with a line in `why`.
 */
int cluster_reload_map(char *why, size_t whylen);

/** The vbuckets this node owns (all without a map). */
unsigned cluster_owned(void);

/** Frees the map at shutdown. */
void cluster_end(void);

/** The error map of `version` (1 or 2) as JSON (malloc'd), or NULL. */
char *cluster_error_map_json(unsigned version);

#endif
