/*
 * manager.c - set_collection_manifest's state machine, the PersistManifest
 * writer task, and the manifest file.
 *
 * Rules it must never break:
 *  - at most one pending update; it is cleared on every exit path, before the
 *    cookie is notified;
 *  - everything that can fail is checked before the file is written; applying
 *    in memory afterwards cannot fail;
 *  - the cookie is notified exactly once per would_block, from the task (run
 *    or cancel, on a writer thread), and released after the notify;
 *  - the cookie's record (waiter.h) is made on the host's thread before
 *    would_block and only filled in by the task, so a client that never comes
 *    back leaks nothing and nothing lands on its cookie after disconnect.
 *
 * File format (one file, replaced whole):
 *   "EPMF1 <crc32c hex, 8 digits> <payload length, decimal>\n" <payload>
 * The payload is the manifest JSON with each collection's start_cas.
 */
#include "manager.h"

#include "../waiter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAGIC        "EPMF1"
#define TMP_SUFFIX        ".tmp"
#define MANIFEST_FILE_MAX (256u << 20)

typedef struct pending {
    ep_waiter *waiter; /* the cookie's record */
    coll_manifest *next;
    char *payload; /* the file's JSON, made before would_block */
    size_t payload_len;
    bool drops;         /* next drops a collection of the current manifest */
    uint64_t called_ns; /* when the update was asked for */
} pending;

struct coll_manager {
    coll_env env;
    char path[4096];     /* the manifest file */
    char tmp_path[4096]; /* its temp file */
    /* Guards current (which also changes only under every stripe lock), busy,
     * pending and the counters. */
    pthread_mutex_t lock;
    coll_manifest *current;
    bool busy;
    pending pend;
    coll_manager_stats stats;
    hist update_latency; /* from the call to the manifest applied (persisted first) */
};

/* ---- the file ---- */

/* Writes payload durably as the manifest file. 0, or -errno with the step in
 * why. *renamed tells whether the new file had replaced the old one. */
static int write_file(coll_manager *m, const char *payload, size_t len, bool *renamed,
                      char *why, size_t whylen)
{
    ep_io *io = m->env.io;
    char header[64];
    int hlen = snprintf(header, sizeof(header), FILE_MAGIC " %08" PRIx32 " %zu\n",
                        io_crc32c(0, payload, len), len);
    const char *step = "open temp file";
    *renamed = false;
    int fd = io_open(io, m->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = fd;
    if (fd < 0)
        goto err;
    step = "write";
    rc = io_write_all(io, fd, header, (size_t)hlen);
    if (rc == 0)
        rc = io_write_all(io, fd, payload, len);
    if (rc == 0) {
        step = "fsync";
        rc = io_fsync(io, fd);
    }
    io_close(io, fd);
    if (rc < 0)
        goto err_unlink;
    step = "rename";
    rc = io_rename(io, m->tmp_path, m->path);
    if (rc < 0)
        goto err_unlink;
    *renamed = true;
    step = "fsync of the data directory";
    rc = io_fsync_dir(io, m->env.dir);
    if (rc < 0)
        goto err;
    return 0;

err_unlink:
    io_unlink(io, m->tmp_path);
err:
    snprintf(why, whylen, "persisting the manifest failed at %s of %.200s: %s", step,
             *renamed ? m->path : m->tmp_path, strerror(-rc));
    return rc;
}

/* Checks a file's header and checksum; the payload on success. */
static int check_file(const char *data, size_t len, const char **payload, size_t *plen,
                      char *why, size_t whylen)
{
    const char *nl = memchr(data, '\n', len < 64 ? len : 64);
    unsigned crc;
    size_t want;
    char magic[8];
    if (nl == NULL || sscanf(data, "%7s %8x %zu", magic, &crc, &want) != 3 ||
        strcmp(magic, FILE_MAGIC) != 0) {
        snprintf(why, whylen, "bad header");
        return -1;
    }
    *payload = nl + 1;
    *plen = len - (size_t)(nl + 1 - data);
    if (*plen != want) {
        snprintf(why, whylen, "payload is %zu bytes, header says %zu (torn write?)",
                 *plen, want);
        return -1;
    }
    if (io_crc32c(0, *payload, *plen) != crc) {
        snprintf(why, whylen, "checksum mismatch");
        return -1;
    }
    return 0;
}

/* Gives every collection of `next` its state: shared with `cur` when the id
 * survives, new (starting after `start_cas`) otherwise. */
static engine_errc bind_states(const coll_manifest *cur, coll_manifest *next,
                               uint64_t start_cas, bool *drops)
{
    /* Both manifests are sorted by id: walk them together. */
    size_t j = 0, ncur = cur ? cur->ncollections : 0, kept = 0;
    for (size_t i = 0; i < next->ncollections; i++) {
        coll_collection *c = &next->collections[i];
        while (j < ncur && cur->collections[j].id < c->id)
            j++;
        if (j < ncur && cur->collections[j].id == c->id) {
            c->state = coll_state_ref(cur->collections[j].state);
            kept++;
        } else {
            c->state = coll_state_new();
            if (c->state == NULL)
                return ENGINE_NO_MEMORY;
            c->state->start_cas = start_cas;
        }
    }
    *drops = kept < ncur;
    return ENGINE_SUCCESS;
}

static int warmup(coll_manager *m, uint64_t *max_cas, char *why, size_t whylen)
{
    bool drops;
    *max_cas = 0;
    if (m->env.dir[0] == '\0')
        goto epoch;
    int rc = io_mkdir(m->env.io, m->env.dir, 0755);
    if (rc < 0 && rc != -EEXIST) {
        snprintf(why, whylen, "cannot create data directory %s: %s", m->env.dir,
                 strerror(-rc));
        return -1;
    }
    rc = io_unlink(m->env.io, m->tmp_path);
    if (rc == 0)
        m->env.sapi->log(ENGINE_LOG_WARNING, "ep_engine: removed leftover %s",
                         m->tmp_path);
    char *data = NULL;
    size_t len = 0;
    rc = io_read_file(m->env.io, m->path, MANIFEST_FILE_MAX, &data, &len);
    if (rc == -ENOENT)
        goto epoch;
    if (rc < 0) {
        snprintf(why, whylen, "cannot read %s: %s", m->path, strerror(-rc));
        return -1;
    }
    const char *payload;
    size_t plen;
    char detail[256], perr[512];
    if (check_file(data, len, &payload, &plen, detail, sizeof(detail)) != 0) {
        snprintf(why, whylen, "manifest file %s is corrupt: %s", m->path, detail);
        free(data);
        return -1;
    }
    /* The limits in force now need not be those of the run that wrote it. */
    coll_limits any = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    if (coll_manifest_parse(payload, plen, &any, &m->current, perr, sizeof(perr)) !=
            ENGINE_SUCCESS ||
        bind_states(NULL, m->current, 0, &drops) != ENGINE_SUCCESS) {
        snprintf(why, whylen, "manifest file %s is corrupt: %s", m->path, perr);
        free(data);
        return -1;
    }
    *max_cas = coll_manifest_load_state(m->current, payload, plen);
    free(data);
    return 0;
epoch:
    m->current = coll_manifest_epoch();
    if (m->current == NULL ||
        bind_states(NULL, m->current, 0, &drops) != ENGINE_SUCCESS) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

coll_manager *coll_manager_create(const coll_env *env, uint64_t *max_cas, char *why,
                                  size_t whylen)
{
    coll_manager *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    m->env = *env;
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->path, sizeof(m->path), "%s/%s", env->dir, COLL_MANIFEST_FILE);
    snprintf(m->tmp_path, sizeof(m->tmp_path), "%s/%s" TMP_SUFFIX, env->dir,
             COLL_MANIFEST_FILE);
    if (warmup(m, max_cas, why, whylen) != 0) {
        coll_manager_destroy(m);
        return NULL;
    }
    return m;
}

void coll_manager_destroy(coll_manager *m)
{
    if (m == NULL)
        return;
    coll_manifest_unref(m->current);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ---- the state machine ---- */

static void set_reason(coll_manager *m, const void *cookie, const char *why)
{
    cookie_set_reason(m->env.sapi, cookie, why);
}

/* Clears the pending update (under the lock) and returns it. */
static pending take_pending(coll_manager *m)
{
    pthread_mutex_lock(&m->lock);
    pending p = m->pend;
    m->pend = (pending){0};
    m->busy = false;
    pthread_mutex_unlock(&m->lock);
    return p;
}

/* The one way an update ends after would_block: clear, then notify and
 * release (waiter_finish). */
static void update_finish(coll_manager *m, engine_errc status, const char *why)
{
    pending p = take_pending(m);
    coll_manifest_unref(p.next);
    free(p.payload);
    waiter_finish(p.waiter, status, 0, why);
}

static int64_t persist_run(exec_task *task, void *arg)
{
    (void)task;
    coll_manager *m = arg;
    char why[512] = "";
    bool renamed = false;
    uint64_t t0 = exec_now_ns();
    /* The task owns the pending update until update_finish(): read it without racing. */
    pthread_mutex_lock(&m->lock);
    pending p = m->pend;
    pthread_mutex_unlock(&m->lock);

    int rc = 0;
    if (m->env.dir[0] != '\0')
        rc = write_file(m, p.payload, p.payload_len, &renamed, why, sizeof(why));
    if (rc < 0) {
        if (renamed) {
            /* The new file replaced the old but may not be durable: put the
             * acknowledged manifest back so disk never runs ahead of memory. */
            char *old = coll_manifest_to_json(m->current, true);
            char ignored[256];
            bool again;
            if (old == NULL ||
                write_file(m, old, strlen(old), &again, ignored, sizeof(ignored)) != 0)
                m->env.sapi->log(ENGINE_LOG_ERROR,
                                 "ep_engine: could not restore %s after a failed update; "
                                 "it may hold manifest uid %" PRIx64 ", not acknowledged",
                                 m->path, p.next->uid);
            free(old);
        }
        m->env.sapi->log(ENGINE_LOG_WARNING, "ep_engine: %s", why);
        pthread_mutex_lock(&m->lock);
        m->stats.persist_failures++;
        pthread_mutex_unlock(&m->lock);
        update_finish(m, ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST, why);
        return EXEC_DONE;
    }

    /* Apply: cannot fail. The data path sees the new manifest once publish
     * returns; only then may the old one go. */
    pthread_mutex_lock(&m->lock);
    coll_manifest *old = m->current;
    m->current = coll_manifest_ref(p.next);
    m->stats.updates++;
    m->stats.last_persist_us = (exec_now_ns() - t0) / 1000;
    hist_record(&m->update_latency, exec_now_ns() - p.called_ns);
    pthread_mutex_unlock(&m->lock);
    m->env.publish(m->env.ctx, p.next);
    if (m->env.closing(m->env.ctx))
        update_finish(
            m, ENGINE_TEMPORARY_FAILURE,
            "the engine shut down; the manifest was persisted and applied first");
    else
        update_finish(m, ENGINE_SUCCESS, NULL);
    /* Clean-up the client need not wait for: no operation can reach the old
     * manifest any more, and the purge of dropped collections is background work
     * anyway. (Freeing a 100,000-collection manifest costs tens of ms.) */
    coll_manifest_unref(old);
    if (p.drops)
        m->env.dropped(m->env.ctx);
    return EXEC_DONE;
}

static void persist_cancel(exec_task *task, void *arg)
{
    (void)task;
    coll_manager *m = arg;
    pthread_mutex_lock(&m->lock);
    m->stats.cancelled++;
    pthread_mutex_unlock(&m->lock);
    update_finish(m, ENGINE_TEMPORARY_FAILURE,
                  "the engine is shutting down; the manifest was not applied");
}

engine_errc coll_manager_set(coll_manager *m, const void *cookie, const char *json,
                             size_t len)
{
    char why[512];
    if (cookie == NULL)
        return ENGINE_INVALID_ARGUMENTS;
    if (json == NULL && len > 0) {
        set_reason(m, cookie, "manifest is NULL");
        return ENGINE_INVALID_ARGUMENTS;
    }
    uint64_t called_ns = exec_now_ns();
    waiter_match match = {
        .call = WAITER_SET_MANIFEST, .key = json ? json : "", .nkey = len};
    engine_errc done;
    waiter_found found = waiter_collect(m->env.waiters, cookie, &match, &done, NULL);
    if (found == WAITER_DONE)
        return done; /* the re-call after a success notify */
    pthread_mutex_lock(&m->lock);
    bool busy = m->busy || found == WAITER_PENDING;
    if (busy)
        m->stats.busy++;
    pthread_mutex_unlock(&m->lock);
    if (busy) {
        set_reason(m, cookie,
                   found == WAITER_PENDING
                       ? "an earlier request on this connection is still waiting for "
                         "its notify"
                       : "another collections manifest update is in progress");
        return ENGINE_TOO_BUSY;
    }

    coll_manifest *next = NULL;
    engine_errc rc = coll_manifest_parse(json ? json : "", len, &m->env.limits, &next,
                                         why, sizeof(why));
    if (rc != ENGINE_SUCCESS) {
        pthread_mutex_lock(&m->lock);
        m->stats.rejected++;
        pthread_mutex_unlock(&m->lock);
        set_reason(m, cookie, why);
        return rc;
    }

    pending p = {NULL, next, NULL, 0, false, 0};
    bool identical = false;
    pthread_mutex_lock(&m->lock);
    if (m->busy) {
        m->stats.busy++;
        snprintf(why, sizeof(why), "another collections manifest update is in progress");
        rc = ENGINE_TOO_BUSY;
        goto err_unlock;
    }
    rc = coll_manifest_successor(m->current, next, &identical, why, sizeof(why));
    if (rc != ENGINE_SUCCESS) {
        m->stats.rejected++;
        goto err_unlock;
    }
    if (identical) {
        m->stats.identical++;
        pthread_mutex_unlock(&m->lock);
        coll_manifest_unref(next);
        return ENGINE_SUCCESS;
    }
    rc = bind_states(m->current, next, m->env.cas_now(m->env.ctx), &p.drops);
    if (rc == ENGINE_SUCCESS && m->env.dir[0] != '\0') {
        p.payload = coll_manifest_to_json(next, true);
        rc = p.payload ? ENGINE_SUCCESS : ENGINE_NO_MEMORY;
    }
    if (rc != ENGINE_SUCCESS) {
        snprintf(why, sizeof(why), "out of memory preparing the manifest");
        goto err_unlock;
    }
    p.payload_len = p.payload ? strlen(p.payload) : 0;
    p.called_ns = called_ns;
    p.waiter = waiter_begin(m->env.waiters, cookie, &match);
    if (p.waiter == NULL) {
        rc = ENGINE_NO_MEMORY;
        snprintf(why, sizeof(why), "out of memory recording the update");
        goto err_unlock;
    }
    m->busy = true;
    m->pend = p;
    pthread_mutex_unlock(&m->lock);

    exec_task *task = exec_task_new(m->env.pool, "persist_manifest", EXEC_WRITER, 0,
                                    persist_run, persist_cancel, m);
    if (task == NULL || !exec_schedule(task, 0)) {
        exec_task_put(task);
        pending undo = take_pending(m);
        coll_manifest_unref(undo.next);
        free(undo.payload);
        waiter_abandon(undo.waiter);
        set_reason(m, cookie, "the engine is shutting down or out of memory");
        return ENGINE_TEMPORARY_FAILURE;
    }
    exec_task_put(task);
    return ENGINE_WOULD_BLOCK;

err_unlock:
    pthread_mutex_unlock(&m->lock);
    coll_manifest_unref(next);
    free(p.payload);
    set_reason(m, cookie, why);
    return rc;
}

coll_manifest *coll_manager_get(coll_manager *m)
{
    pthread_mutex_lock(&m->lock);
    coll_manifest *c = coll_manifest_ref(m->current);
    pthread_mutex_unlock(&m->lock);
    return c;
}

const hist *coll_manager_update_latency(const coll_manager *m)
{
    return &m->update_latency;
}

void coll_manager_stats_get(coll_manager *m, coll_manager_stats *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->stats;
    out->pending = m->busy ? 1 : 0;
    pthread_mutex_unlock(&m->lock);
}
