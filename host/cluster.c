/*
 * cluster.c - the cluster config and the error map kvhost serves (cluster.h).
 *
 * Alone, a node serves one bucket with every vbucket active here: the
 * vBucketMap points each at node 0, whose address is written as "$HOST",
 * which a client replaces by the address it dialled. With a cluster map
 * (cluster_use_map) the config lists the map's nodes, and each vbucket
 * points at the node the map names as its active one; this node makes its
 * own vbuckets active and every other one dead, so a request for a vbucket
 * it does not own answers not_my_vbucket with the config.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STATE_FILE "kvhost-cluster.json"

/* A node of the cluster map. */
typedef struct map_node {
    char host[256];
    int port, tls_port; /* tls_port 0: none */
} map_node;

/* A cluster map as read from its file; never changed once made (a reload
 * makes a new one). */
typedef struct cluster_map {
    int64_t rev, rev_epoch;
    char uuid[33]; /* "" when the map names none */
    unsigned nnodes;
    map_node *nodes;
    unsigned nvbuckets;
    uint16_t *owner; /* per vbucket: the index of its active node */
} cluster_map;

static struct {
    engine_handle *engine;
    char bucket[128];
    int port, tls_port; /* tls_port 0: no TLS listener */
    unsigned vbuckets;
    bool durable; /* the engine can make writes durable here */
    bool xattr;   /* the engine has sub-document operations and attributes (v4) */
    char uuid[33];
    int64_t rev_epoch;
    pthread_mutex_t lock; /* guards rev, manifest_uid and map */
    int64_t rev;
    uint64_t manifest_uid;
    cluster_map *map; /* NULL: this node alone */
    unsigned me;      /* with a map: this node's index in it */
    char map_path[4096];
} cl = {.lock = PTHREAD_MUTEX_INITIALIZER};

const char *cluster_bucket(void)
{
    return cl.bucket;
}

static void find_vbuckets(const char *key, uint16_t klen, const char *val, uint32_t vlen,
                          void *ctx)
{
    (void)ctx;
    if (klen == 15 && memcmp(key, "ep_max_vbuckets", 15) == 0 && vlen < 16) {
        char v[16];
        memcpy(v, val, vlen);
        v[vlen] = '\0';
        cl.vbuckets = (unsigned)strtoul(v, NULL, 10);
    }
}

/* Writes the state file durably: a temp file, fsync, rename, directory fsync. */
static int save_state(const char *dir, char *why, size_t whylen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/" STATE_FILE, dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    json_t *st =
        json_pack("{s:s,s:I}", "uuid", cl.uuid, "revEpoch", (json_int_t)cl.rev_epoch);
    char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644) : -1;
    size_t len = text ? strlen(text) : 0;
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    free(text);
    ok = ok && rename(tmp, path) == 0;
    int dfd = ok ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    ok = ok && dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0)
        close(dfd);
    if (!ok)
        snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
    return ok ? 0 : -1;
}

static bool valid_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 32)
        return false;
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The uuid and revEpoch of an earlier run, if its state file is there. */
static int load_state(const char *dir, char *why, size_t whylen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/" STATE_FILE, dir);
    json_error_t err;
    json_t *st = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (st == NULL) {
        if (access(path, F_OK) != 0)
            return 0; /* the first start on this directory */
        snprintf(why, whylen, "%s is not valid JSON: %s", path, err.text);
        return -1;
    }
    const char *uuid = json_string_value(json_object_get(st, "uuid"));
    json_t *epoch = json_object_get(st, "revEpoch");
    int rc = 0;
    if (!valid_uuid(uuid) || !json_is_integer(epoch) || json_integer_value(epoch) < 0) {
        snprintf(why, whylen, "%s: expected {\"uuid\": 32 hex digits, \"revEpoch\": n}",
                 path);
        rc = -1;
    } else {
        snprintf(cl.uuid, sizeof(cl.uuid), "%s", uuid);
        cl.rev_epoch = json_integer_value(epoch);
    }
    json_decref(st);
    return rc;
}

int cluster_init(engine_handle *engine, const char *bucket, int port, int tls_port,
                 const char *dir, char *why, size_t whylen)
{
    cl.engine = engine;
    snprintf(cl.bucket, sizeof(cl.bucket), "%s", bucket);
    cl.port = port;
    cl.tls_port = tls_port;
    cl.vbuckets = 0;
    engine->get_stats(engine, NULL, "", find_vbuckets, NULL);
    if (cl.vbuckets == 0)
        cl.vbuckets = 1024;
    cl.durable = dir != NULL && engine->interface >= ENGINE_API_VERSION_2;
    cl.xattr = engine->interface >= ENGINE_API_VERSION_4;
    cl.rev = 1;
    cl.uuid[0] = '\0';
    cl.rev_epoch = 0;
    if (dir != NULL && load_state(dir, why, whylen) != 0)
        return -1;
    if (cl.uuid[0] == '\0') {
        uint8_t r[16];
        if (RAND_bytes(r, sizeof(r)) != 1) {
            snprintf(why, whylen, "no random bytes for the bucket uuid");
            return -1;
        }
        for (int i = 0; i < 16; i++)
            snprintf(cl.uuid + 2 * i, 3, "%02x", r[i]);
    }
    if (dir == NULL) {
        /* Nothing to keep it in: the clock's seconds grow across restarts. */
        cl.rev_epoch = (int64_t)time(NULL);
        return 0;
    }
    cl.rev_epoch++;
    return save_state(dir, why, whylen);
}

/* The current manifest uid; the config's rev grows when it changes. */
static int64_t current_rev(uint64_t *uid_out)
{
    uint64_t uid = 0;
    uint32_t sid;
    engine_handle *h = cl.engine;
    h->get_scope_id(h, NULL, "", 0, &uid, &sid);
    pthread_mutex_lock(&cl.lock);
    if (uid != cl.manifest_uid) {
        cl.manifest_uid = uid;
        cl.rev++;
    }
    int64_t rev = cl.rev;
    pthread_mutex_unlock(&cl.lock);
    *uid_out = uid;
    return rev;
}

/* {"kv": port, "kvSSL": tls_port} (no kvSSL without TLS). */
static json_t *services(int port, int tls_port)
{
    json_t *o = json_pack("{s:i}", "kv", port);
    if (o != NULL && tls_port > 0)
        json_object_set_new(o, "kvSSL", json_integer(tls_port));
    return o;
}

/* nodesExt, serverList and vBucketMap: of the map, or of this node alone. */
static void add_nodes(json_t *root, bool bucket, const cluster_map *m)
{
    json_t *ext = json_array(), *servers = json_array(), *vbmap = json_array();
    unsigned n = m != NULL ? m->nnodes : 1;
    for (unsigned i = 0; i < n; i++) {
        const char *host = m != NULL ? m->nodes[i].host : "$HOST";
        int port = m != NULL ? m->nodes[i].port : cl.port;
        int tls = m != NULL ? m->nodes[i].tls_port : cl.tls_port;
        json_array_append_new(ext, json_pack("{s:b,s:s,s:o}", "thisNode",
                                             m == NULL || i == cl.me, "hostname", host,
                                             "services", services(port, tls)));
        char server[300];
        snprintf(server, sizeof(server), "%s:%d", host, port);
        json_array_append_new(servers, json_string(server));
    }
    for (unsigned vb = 0; vb < cl.vbuckets; vb++)
        json_array_append_new(vbmap, json_pack("[i]", m != NULL ? m->owner[vb] : 0));
    json_object_set_new(root, "nodesExt", ext);
    if (bucket) {
        json_object_set_new(root, "name", json_string(cl.bucket));
        json_object_set_new(root, "nodeLocator", json_string("vbucket"));
        json_object_set_new(root, "vBucketServerMap",
                            json_pack("{s:s,s:i,s:o,s:o}", "hashAlgorithm", "CRC",
                                      "numReplicas", 0, "serverList", servers,
                                      "vBucketMap", vbmap));
    } else {
        json_decref(servers);
        json_decref(vbmap);
    }
}

char *cluster_config_json(bool bucket)
{
    uint64_t uid;
    int64_t rev = current_rev(&uid);
    char uid_hex[17];
    snprintf(uid_hex, sizeof(uid_hex), "%" PRIx64, uid);
    json_t *caps = json_pack("[s,s,s]", "collections", "cccp", "nodesExt");
    if (caps != NULL && cl.durable)
        json_array_append_new(caps, json_string("durableWrite"));
    if (caps != NULL && cl.xattr)
        json_array_append_new(caps, json_string("xattr"));
    pthread_mutex_lock(&cl.lock);
    const cluster_map *m = cl.map;
    /* With a map every node serves the same config: the map's revision. */
    int64_t epoch = m != NULL ? m->rev_epoch : cl.rev_epoch;
    const char *uuid = m != NULL && m->uuid[0] != '\0' ? m->uuid : cl.uuid;
    json_t *root = json_pack(
        "{s:I,s:I,s:s,s:s,s:s,s:o}", "rev", (json_int_t)(m != NULL ? m->rev : rev),
        "revEpoch", (json_int_t)epoch, "uuid", uuid, "collectionsManifestUid", uid_hex,
        "bucketCapabilitiesVer", "", "bucketCapabilities", caps);
    if (root != NULL)
        add_nodes(root, bucket, m);
    pthread_mutex_unlock(&cl.lock);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return out;
}

/* ---- the cluster map ---- */

static void map_free(cluster_map *m)
{
    if (m == NULL)
        return;
    free(m->nodes);
    free(m->owner);
    free(m);
}

/* Reads and checks a map file against this node (its vbuckets, its ports).
 * NULL with a reason. */
static cluster_map *map_read(const char *path, unsigned me, char *why, size_t whylen)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        snprintf(why, whylen, "cluster map %s: %s (line %d)", path, err.text, err.line);
        return NULL;
    }
    cluster_map *m = calloc(1, sizeof(*m));
    json_t *rev = json_object_get(root, "rev"),
           *epoch = json_object_get(root, "revEpoch");
    json_t *uuid = json_object_get(root, "uuid"), *nodes = json_object_get(root, "nodes");
    json_t *vbs = json_object_get(root, "vbuckets");
    const char *bad = NULL;
    if (m == NULL)
        bad = "out of memory";
    else if (!json_is_object(root))
        bad = "not a JSON object";
    else if (!json_is_integer(rev) || json_integer_value(rev) < 1)
        bad = "\"rev\" must be an integer of 1 or more";
    else if (epoch != NULL && (!json_is_integer(epoch) || json_integer_value(epoch) < 0))
        bad = "\"revEpoch\" must be an integer of 0 or more";
    else if (!valid_uuid(json_string_value(uuid)))
        bad = "\"uuid\" (the bucket's, the same on every node) must be 32 lower-case "
              "hex digits";
    else if (!json_is_array(nodes) || json_array_size(nodes) == 0 ||
             json_array_size(nodes) > 1024)
        bad = "\"nodes\" must be an array of 1 to 1024 nodes";
    else if (!json_is_array(vbs) || json_array_size(vbs) != cl.vbuckets)
        bad = "\"vbuckets\" must list one node index per vbucket of the engine";
    else if (me >= json_array_size(nodes))
        bad = "this node's index (-N) is not in \"nodes\"";
    if (bad == NULL) {
        m->rev = json_integer_value(rev);
        m->rev_epoch = epoch != NULL ? json_integer_value(epoch) : 1;
        snprintf(m->uuid, sizeof(m->uuid), "%s", json_string_value(uuid));
        m->nnodes = (unsigned)json_array_size(nodes);
        m->nvbuckets = cl.vbuckets;
        m->nodes = calloc(m->nnodes, sizeof(*m->nodes));
        m->owner = calloc(m->nvbuckets, sizeof(*m->owner));
        if (m->nodes == NULL || m->owner == NULL)
            bad = "out of memory";
    }
    for (unsigned i = 0; bad == NULL && i < m->nnodes; i++) {
        json_t *n = json_array_get(nodes, i);
        const char *host = json_string_value(json_object_get(n, "host"));
        json_t *port = json_object_get(n, "port"), *tls = json_object_get(n, "tlsPort");
        if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(m->nodes[i].host) ||
            !json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535 ||
            (tls != NULL && (!json_is_integer(tls) || json_integer_value(tls) < 1 ||
                             json_integer_value(tls) > 65535))) {
            snprintf(why, whylen,
                     "cluster map %s: node %u must be {\"host\": name, \"port\": 1-65535"
                     "[, \"tlsPort\": 1-65535]}",
                     path, i);
            bad = "";
            break;
        }
        snprintf(m->nodes[i].host, sizeof(m->nodes[i].host), "%s", host);
        m->nodes[i].port = (int)json_integer_value(port);
        m->nodes[i].tls_port = tls != NULL ? (int)json_integer_value(tls) : 0;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(m->nodes[j].host, host) == 0 &&
                m->nodes[j].port == m->nodes[i].port) {
                snprintf(why, whylen, "cluster map %s: nodes %u and %u are both %s:%d",
                         path, j, i, host, m->nodes[i].port);
                bad = "";
                break;
            }
        }
    }
    for (unsigned vb = 0; bad == NULL && vb < m->nvbuckets; vb++) {
        json_t *o = json_array_get(vbs, vb);
        if (!json_is_integer(o) || json_integer_value(o) < 0 ||
            json_integer_value(o) >= (json_int_t)m->nnodes) {
            snprintf(
                why, whylen,
                "cluster map %s: vbucket %u: the owner must be a node index, 0 to %u",
                path, vb, m->nnodes - 1);
            bad = "";
            break;
        }
        m->owner[vb] = (uint16_t)json_integer_value(o);
    }
    if (bad == NULL && m->nodes[me].port != cl.port)
        snprintf(
            why, whylen,
            "cluster map %s: node %u listens on port %d there, but this kvhost on %d",
            path, me, m->nodes[me].port, cl.port),
            bad = "";
    if (bad == NULL && m->nodes[me].tls_port != cl.tls_port)
        snprintf(why, whylen,
                 "cluster map %s: node %u has TLS port %d there, but this kvhost %d (0: "
                 "no TLS)",
                 path, me, m->nodes[me].tls_port, cl.tls_port),
            bad = "";
    json_decref(root);
    if (bad == NULL)
        return m;
    if (bad[0] != '\0')
        snprintf(why, whylen, "cluster map %s: %s", path, bad);
    map_free(m);
    return NULL;
}

/* Makes this node's vbuckets of the map active and every other one dead. */
static int map_apply(const cluster_map *m, char *why, size_t whylen)
{
    engine_handle *h = cl.engine;
    for (unsigned vb = 0; vb < m->nvbuckets; vb++) {
        engine_vbucket_state st =
            m->owner[vb] == cl.me ? ENGINE_VBUCKET_ACTIVE : ENGINE_VBUCKET_DEAD;
        engine_errc rc = h->set_vbucket_state(h, NULL, (uint16_t)vb, st);
        if (rc != ENGINE_SUCCESS) {
            snprintf(why, whylen, "the engine refused the state of vbucket %u: 0x%x", vb,
                     rc);
            return -1;
        }
    }
    return 0;
}

int cluster_use_map(const char *path, unsigned me, char *why, size_t whylen)
{
    if (cl.engine->interface < ENGINE_API_VERSION_2) {
        snprintf(why, whylen,
                 "a cluster map needs an engine with vbucket states (interface v2)");
        return -1;
    }
    cl.me = me;
    snprintf(cl.map_path, sizeof(cl.map_path), "%s", path);
    cluster_map *m = map_read(path, me, why, whylen);
    if (m == NULL || map_apply(m, why, whylen) != 0) {
        map_free(m);
        return -1;
    }
    pthread_mutex_lock(&cl.lock);
    cl.map = m;
    pthread_mutex_unlock(&cl.lock);
    return 0;
}

int cluster_reload_map(char *why, size_t whylen)
{
    if (cl.map == NULL) {
        snprintf(why, whylen, "no cluster map in use");
        return -1;
    }
    cluster_map *m = map_read(cl.map_path, cl.me, why, whylen);
    if (m == NULL)
        return -1;
    const cluster_map *cur = cl.map;
    if (m->rev_epoch < cur->rev_epoch ||
        (m->rev_epoch == cur->rev_epoch && m->rev <= cur->rev)) {
        snprintf(why, whylen,
                 "cluster map %s: revision %" PRId64 ".%" PRId64
                 " is not newer than the one in use, %" PRId64 ".%" PRId64
                 ": nothing changed",
                 cl.map_path, m->rev_epoch, m->rev, cur->rev_epoch, cur->rev);
        map_free(m);
        return 1;
    }
    /* The new config first, then the states: a not_my_vbucket answered in
     * between already carries the map that explains it. */
    pthread_mutex_lock(&cl.lock);
    cluster_map *old = cl.map;
    cl.map = m;
    pthread_mutex_unlock(&cl.lock);
    char refused[256];
    if (map_apply(m, refused, sizeof(refused)) != 0) {
        /* Only an engine that refuses a valid state: the new map is served,
         * and says which vbuckets this node should have. */
        snprintf(why, whylen,
                 "cluster map %s: revision %" PRId64 ".%" PRId64 " in use, but %s",
                 cl.map_path, m->rev_epoch, m->rev, refused);
        map_free(old);
        return 2;
    }
    unsigned moved = 0;
    for (unsigned vb = 0; vb < m->nvbuckets; vb++)
        moved += old->owner[vb] != m->owner[vb];
    snprintf(why, whylen,
             "cluster map %s: revision %" PRId64 ".%" PRId64 " in use; %u vbuckets "
             "changed owner, this node owns %u",
             cl.map_path, m->rev_epoch, m->rev, moved, cluster_owned());
    map_free(old);
    return 0;
}

unsigned cluster_owned(void)
{
    pthread_mutex_lock(&cl.lock);
    unsigned n = 0;
    for (unsigned vb = 0; vb < cl.vbuckets; vb++)
        n += cl.map == NULL || cl.map->owner[vb] == cl.me;
    pthread_mutex_unlock(&cl.lock);
    return n;
}

void cluster_end(void)
{
    pthread_mutex_lock(&cl.lock);
    map_free(cl.map);
    cl.map = NULL;
    pthread_mutex_unlock(&cl.lock);
}

/* ---- the error map ---- */

typedef struct error_entry {
    uint16_t status;
    const char *name, *desc;
    const char *attrs[4];
} error_entry;

/* Every status kvhost sends, with the attributes that tell a client what to
 * do: retry soon (retry-now), retry after a pause (retry-later), fetch a new
 * config (fetch-config). */
static const error_entry errors[] = {
    {0x00, "SUCCESS", "Success", {"success"}},
    {0x01, "KEY_ENOENT", "Not found", {"item-only"}},
    {0x02, "KEY_EEXISTS", "Key exists, or CAS mismatch", {"item-only"}},
    {0x03, "E2BIG", "Value too big", {"invalid-input"}},
    {0x04, "EINVAL", "Invalid arguments", {"invalid-input"}},
    {0x05, "NOT_STORED", "Not stored", {"item-only"}},
    {0x06, "DELTA_BADVAL", "Not a number", {"invalid-input"}},
    {0x07, "NOT_MY_VBUCKET", "Not my vbucket", {"fetch-config", "retry-later"}},
    {0x08, "NO_BUCKET", "No bucket selected", {"conn-state-invalidated"}},
    {0x09, "LOCKED", "The document is locked", {"item-locked", "item-only"}},
    {0x0e, "NOT_LOCKED", "The document is not locked", {"item-only"}},
    {0x20, "AUTH_ERROR", "Authentication failed", {"auth"}},
    {0x21, "AUTH_CONTINUE", "Authentication continues", {"auth", "special-handling"}},
    {0x24, "EACCESS", "No access", {"support"}},
    {0x81, "UNKNOWN_COMMAND", "Unknown command", {"support"}},
    {0x82, "ENOMEM", "Out of memory", {"temp", "retry-later"}},
    {0x83, "NOT_SUPPORTED", "Not supported", {"support"}},
    {0x84, "EINTERNAL", "Internal error", {"internal"}},
    {0x85, "EBUSY", "Busy", {"temp", "retry-now"}},
    {0x86, "ETMPFAIL", "Temporary failure", {"temp", "retry-later"}},
    {0x88, "UNKNOWN_COLLECTION", "Unknown collection", {"item-only", "fetch-config"}},
    {0x8a,
     "CANNOT_APPLY_COLLECTIONS_MANIFEST",
     "Cannot apply the manifest",
     {"internal"}},
    {0x8c, "UNKNOWN_SCOPE", "Unknown scope", {"item-only", "fetch-config"}},
    {0xa0,
     "DURABILITY_INVALID_LEVEL",
     "Durability level not available",
     {"invalid-input"}},
    {0xc0, "SUBDOC_PATH_ENOENT", "Sub-document path not found", {"subdoc", "item-only"}},
    {0xc1, "SUBDOC_PATH_MISMATCH", "Sub-document path mismatch", {"subdoc", "item-only"}},
    {0xc2,
     "SUBDOC_PATH_EINVAL",
     "Sub-document path invalid",
     {"subdoc", "invalid-input"}},
    {0xc3, "SUBDOC_PATH_E2BIG", "Sub-document path too big", {"subdoc", "invalid-input"}},
    {0xc4, "SUBDOC_DOC_E2DEEP", "The document is too deep", {"subdoc", "item-only"}},
    {0xc5,
     "SUBDOC_VALUE_CANTINSERT",
     "The value cannot be inserted there",
     {"subdoc", "invalid-input"}},
    {0xc6, "SUBDOC_DOC_NOT_JSON", "The document is not JSON", {"subdoc", "item-only"}},
    {0xc7, "SUBDOC_NUM_ERANGE", "The number is out of range", {"subdoc", "item-only"}},
    {0xc8, "SUBDOC_DELTA_EINVAL", "The delta is invalid", {"subdoc", "invalid-input"}},
    {0xc9, "SUBDOC_PATH_EEXISTS", "The path exists", {"subdoc", "item-only"}},
    {0xca, "SUBDOC_VALUE_ETOODEEP", "The value is too deep", {"subdoc", "invalid-input"}},
    {0xcb,
     "SUBDOC_INVALID_COMBO",
     "Invalid combination of specs",
     {"subdoc", "invalid-input"}},
    {0xcc,
     "SUBDOC_MULTI_PATH_FAILURE",
     "Some sub-document specs failed",
     {"subdoc", "special-handling"}},
    {0xce,
     "SUBDOC_XATTR_INVALID_FLAG_COMBO",
     "Macros are expanded only in attribute paths",
     {"subdoc", "invalid-input"}},
    {0xd0, "SUBDOC_XATTR_UNKNOWN_MACRO", "Unknown macro", {"subdoc", "invalid-input"}},
    {0xd1,
     "SUBDOC_XATTR_UNKNOWN_VATTR",
     "Unknown virtual attribute",
     {"subdoc", "invalid-input"}},
    {0xd2,
     "SUBDOC_XATTR_CANT_MODIFY_VATTR",
     "Virtual attributes cannot be changed",
     {"subdoc", "invalid-input"}},
    {0xd4,
     "SUBDOC_INVALID_XATTR_ORDER",
     "Attribute specs must come before body specs",
     {"subdoc", "invalid-input"}},
    {0xd6,
     "SUBDOC_CAN_ONLY_REVIVE_DELETED_DOCUMENTS",
     "Only a deleted document can be revived",
     {"subdoc", "invalid-input"}},
    {0x87, "XATTR_EINVAL", "Invalid extended attribute", {"subdoc", "invalid-input"}},
    {0xa3,
     "SYNC_WRITE_AMBIGUOUS",
     "The durable write's outcome is not known: it may or may not be on disk",
     {"special-handling"}},
};

char *cluster_error_map_json(unsigned version)
{
    json_t *map = json_object();
    for (size_t i = 0; map != NULL && i < sizeof(errors) / sizeof(errors[0]); i++) {
        const error_entry *e = &errors[i];
        json_t *attrs = json_array();
        for (int a = 0; a < 4 && e->attrs[a] != NULL; a++)
            json_array_append_new(attrs, json_string(e->attrs[a]));
        char code[8];
        snprintf(code, sizeof(code), "%x", e->status);
        json_object_set_new(
            map, code,
            json_pack("{s:s,s:s,s:o}", "name", e->name, "desc", e->desc, "attrs", attrs));
    }
    json_t *root =
        json_pack("{s:i,s:i,s:o}", "version", (int)version, "revision", 1, "errors", map);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return out;
}
