/*
 * cluster.c - the cluster config and the error map kvhost serves (cluster.h).
 *
 * One node serving one bucket: every vbucket of the engine is active here,
 * so the vBucketMap points each at node 0. The node's address is written as
 * "$HOST", which a client replaces by the address it dialled.
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

static struct {
    engine_handle *engine;
    char bucket[128];
    int port;
    unsigned vbuckets;
    bool durable; /* the engine can make writes durable here */
    char uuid[33];
    int64_t rev_epoch;
    pthread_mutex_t lock; /* guards rev and manifest_uid */
    int64_t rev;
    uint64_t manifest_uid;
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

int cluster_init(engine_handle *engine, const char *bucket, int port, const char *dir,
                 char *why, size_t whylen)
{
    cl.engine = engine;
    snprintf(cl.bucket, sizeof(cl.bucket), "%s", bucket);
    cl.port = port;
    cl.vbuckets = 0;
    engine->get_stats(engine, NULL, "", find_vbuckets, NULL);
    if (cl.vbuckets == 0)
        cl.vbuckets = 1024;
    cl.durable = dir != NULL && engine->interface >= ENGINE_API_VERSION_2;
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

char *cluster_config_json(bool bucket)
{
    uint64_t uid;
    int64_t rev = current_rev(&uid);
    char uid_hex[17], server[64];
    snprintf(uid_hex, sizeof(uid_hex), "%" PRIx64, uid);
    snprintf(server, sizeof(server), "$HOST:%d", cl.port);
    json_t *caps = json_pack("[s,s,s]", "collections", "cccp", "nodesExt");
    if (caps != NULL && cl.durable)
        json_array_append_new(caps, json_string("durableWrite"));
    json_t *root = json_pack(
        "{s:I,s:I,s:s,s:s,s:s,s:o,s:[{s:b,s:s,s:{s:i}}]}", "rev", (json_int_t)rev,
        "revEpoch", (json_int_t)cl.rev_epoch, "uuid", cl.uuid, "collectionsManifestUid",
        uid_hex, "bucketCapabilitiesVer", "", "bucketCapabilities", caps, "nodesExt",
        "thisNode", 1, "hostname", "$HOST", "services", "kv", cl.port);
    if (root != NULL && bucket) {
        json_t *map = json_array();
        for (unsigned vb = 0; map != NULL && vb < cl.vbuckets; vb++)
            json_array_append_new(map, json_pack("[i]", 0));
        json_object_set_new(root, "name", json_string(cl.bucket));
        json_object_set_new(root, "nodeLocator", json_string("vbucket"));
        json_object_set_new(root, "vBucketServerMap",
                            json_pack("{s:s,s:i,s:[s],s:o}", "hashAlgorithm", "CRC",
                                      "numReplicas", 0, "serverList", server,
                                      "vBucketMap", map));
    }
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return out;
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
