/*
 * crashtest - the two halves of the crash-safety test (scripts/crash-test).
 *
 *   crashtest write  ENGINE.so DIR LOG SEED   durable sets, appends, deletes and
 *                                             manifest updates until killed
 *   crashtest power  ENGINE.so DIR LOG SEED MODE [BREAK]
 *                                             the same, with the I/O layer's
 *                                             power-loss model (MODE drop or
 *                                             torn) cutting the power at a random
 *                                             file call; BREAK (fsync or
 *                                             dirsync_after_rename) breaks the
 *                                             engine's durability on purpose
 *   crashtest verify ENGINE.so DIR LOG        restart on DIR and check
 *
 * The engine compacts every few milliseconds, so kills also land in the middle
 * of compactions; the writer evicts every clean value every 64 operations and the
 * verifier once at the start, so values are read back from disk (half of them
 * through a parked get) while records move. The writer appends to LOG, before each
 * operation, "A <seq> <op> <coll> <key> <value>" (op S set, P append, D delete) and, once
 * the engine acknowledged it, "K <seq>"; an append of a missing key is acknowledged as
 * the no-op it is. Lines reach the kernel with write(2), so a SIGKILL loses none that
 * were written. The verifier replays LOG: for every key, the value found must be the
 * result of its last acknowledged operation or of an operation attempted after it (which
 * may or may not have reached the disk before the kill), each replayed on the key's
 * previous state; a key never written must not appear; a value is "key:seq:check"
 * followed by one
 * "+seq:check" per append, so a corrupt or misplaced piece is seen.
 * With a v4 engine one operation in 14 is a durable sub-document mutation
 * (op X) that sets the extended attribute x.s to its seq, making the document
 * ({} as its body) if it is missing: attributes must survive like values, a
 * set or append keeps them, a delete drops them. The verifier writes a state
 * as the body, then '#' and x.s when the document has attributes.
 */
#include "../../engine_api.h"
#include "../engine_testapp/suite_helpers.h"
#include "../mock_server/mock_server.h"

#include <dirent.h>
#include <dlfcn.h>
#include <jansson.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NKEYS       150
#define COLLECTIONS 2 /* 0 (_default) and 8 (c1) */

static engine_handle *h;
static const void *cookie;
/* ep_engine's test hook, if the engine has it: evicts every clean value, so
 * reads go to disk (background fetches) while compactions move records. */
static int (*control)(engine_handle *h, const char *cmd, char *why, size_t whylen);

static void evict_all(void)
{
    char why[64];
    if (control != NULL && control(h, "evict", why, sizeof(why)) != 0)
        fprintf(stderr, "crashtest: evict: %s\n", why);
}

/* compaction_ms: how often the engine looks for shards to compact. */
static engine_handle *start(const char *so, const char *dir, unsigned compaction_ms)
{
    void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "crashtest: %s\n", dlerror());
        exit(2);
    }
    engine_create_instance_fn create;
    *(void **)&create = dlsym(dl, "create_instance");
    *(void **)&control = dlsym(dl, "ep_testing_control");
    char config[1200];
    snprintf(config, sizeof(config),
             "dbname=%s;num_shards=2;compaction_interval_ms=%u;compaction_min_bytes=0;"
             "compaction_threshold_pct=30",
             dir, compaction_ms);
    engine_handle *e = NULL;
    if (create(ENGINE_API_VERSION, mock_get_server_api, &e) != ENGINE_SUCCESS ||
        e->interface < ENGINE_API_VERSION_2 ||
        e->initialize(e, config) != ENGINE_SUCCESS) {
        fprintf(stderr, "crashtest: engine did not start\n");
        exit(2);
    }
    /* Wait for warmup: data calls answer temporary_failure until it is done. */
    for (int i = 0; i < 3000; i++) {
        engine_doc_key k = {0, 5, "probe"};
        engine_item *it;
        engine_errc rc = e->get(e, NULL, &it, &k, 0);
        if (rc == ENGINE_SUCCESS)
            e->release(e, it);
        if (rc != ENGINE_TEMPORARY_FAILURE)
            return e;
        usleep(10000);
    }
    fprintf(stderr, "crashtest: warmup did not finish\n");
    exit(2);
}

static void ignore_result(size_t index, engine_errc status, const void *value, size_t len,
                          void *ctx)
{
    (void)index, (void)status, (void)value, (void)len, (void)ctx;
}

/* As a host: call, wait for the notify, re-call on success. */
#define HOST(rc, call)                                                                   \
    do {                                                                                 \
        mock_call_begin(cookie);                                                         \
        (rc) = (call);                                                                   \
        mock_call_end(cookie, rc);                                                       \
        while ((rc) == ENGINE_WOULD_BLOCK) {                                             \
            (rc) = mock_wait_notify(cookie, 60000);                                      \
            if ((rc) != ENGINE_SUCCESS)                                                  \
                break;                                                                   \
            mock_call_begin(cookie);                                                     \
            (rc) = (call);                                                               \
            mock_call_end(cookie, rc);                                                   \
        }                                                                                \
    } while (0)

static unsigned check_of(const char *key, unsigned long seq)
{
    unsigned x = (unsigned)seq * 2654435761u;
    for (const char *p = key; *p; p++)
        x = x * 31 + (unsigned char)*p;
    return x % 100000;
}

/* Manifest `uid`: _default, c1 (8) and, with_c2, c2 (9), all in _default. */
static const char *manifest(unsigned long uid, bool with_c2, char *buf, size_t cap)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%lx", uid);
    json_t *cols = json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "_default", "uid", "0",
                             "name", "c1", "uid", "8");
    if (with_c2)
        json_array_append_new(cols, json_pack("{s:s,s:s}", "name", "c2", "uid", "9"));
    json_t *m = json_pack("{s:s,s:[{s:s,s:s,s:o}]}", "uid", hex, "scopes", "name",
                          "_default", "uid", "0", "collections", cols);
    size_t n = m ? json_dumpb(m, buf, cap - 1, JSON_COMPACT) : 0;
    buf[n < cap ? n : 0] = '\0';
    json_decref(m);
    return buf;
}

static void logf_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_line(int fd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (write(fd, line, (size_t)n) != n) {
        perror("crashtest: log");
        exit(2);
    }
}

/* The last sequence number and manifest uid in the log, to go on from. */
static void resume_point(const char *log, unsigned long *seq, unsigned long *uid)
{
    FILE *f = fopen(log, "r");
    char line[512];
    *seq = 0;
    *uid = 1;
    while (f != NULL && fgets(line, sizeof(line), f)) {
        unsigned long s, u;
        char op;
        if (sscanf(line, "A %lu %c", &s, &op) == 2) {
            *seq = s;
            if (op == 'M' && sscanf(line, "A %*u M %lu", &u) == 1)
                *uid = u;
        }
    }
    if (f)
        fclose(f);
}

/* The power-loss model's state ("off", "on", "cut"). */
static bool power_is_cut(void)
{
    char state[16] = "";
    return control != NULL && control(h, "crash_state", state, sizeof(state)) == 0 &&
           strcmp(state, "cut") == 0;
}

/* With `mode` (power mode): arms the model after the first manifest, at a
 * random call among the next few thousand, and stops once the power is cut. */
static int run_writer(const char *so, const char *dir, const char *log, unsigned seed,
                      const char *mode, const char *broken)
{
    mock_reset();
    h = start(so, dir, 5); /* compactions every few ms: kills land in them too */
    cookie = mock_cookie_create();
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    unsigned long seq, uid;
    resume_point(log, &seq, &uid);
    srand(seed);
    char buf[1024], key[32], val[64];
    engine_errc rc;
    /* Make sure collection c1 exists (uid 1 the first time, else unchanged). */
    manifest(uid, (uid % 2) == 0, buf, sizeof(buf));
    HOST(rc, h->set_collection_manifest(h, cookie, buf, strlen(buf)));
    if (rc != ENGINE_SUCCESS) {
        fprintf(stderr, "crashtest: initial manifest failed: 0x%x\n", rc);
        return 2;
    }
    if (mode != NULL) {
        char spec[128], why[128];
        snprintf(spec, sizeof(spec), "crash=%s;cut_after=%d;seed=%u", mode,
                 1 + rand() % 2500, seed);
        if (control == NULL || control(h, spec, why, sizeof(why)) != 0 ||
            (broken != NULL && (snprintf(spec, sizeof(spec), "break=%s", broken) < 0 ||
                                control(h, spec, why, sizeof(why)) != 0))) {
            fprintf(stderr, "crashtest: cannot arm the power-loss model: %s\n", why);
            return 2;
        }
    }
    for (unsigned long ops = 0;; ops++) {
        if (mode != NULL && (power_is_cut() || ops == 100000)) {
            /* The machine is off: nothing more reaches the disk. */
            h->destroy(h, true);
            close(fd);
            return 0;
        }
        seq++;
        int r = rand() % 100;
        if (r < 3) {
            /* A manifest update: toggle c2. */
            uid++;
            manifest(uid, (uid % 2) == 0, buf, sizeof(buf));
            logf_line(fd, "A %lu M %lu\n", seq, uid);
            HOST(rc, h->set_collection_manifest(h, cookie, buf, strlen(buf)));
        } else {
            uint32_t coll = (rand() % COLLECTIONS) ? 8 : 0;
            int keyno = rand() % NKEYS;
            uint16_t vb = (uint16_t)(keyno % 4); /* a key lives in one vbucket */
            snprintf(key, sizeof(key), "key%d", keyno);
            engine_doc_key k = {coll, (uint16_t)strlen(key), key};
            if (r < 10 && h->interface >= ENGINE_API_VERSION_4) {
                /* A durable sub-document mutation of the attribute x.s. */
                char num[24];
                snprintf(num, sizeof(num), "%lu", seq);
                engine_subdoc_spec s = {ENGINE_SUBDOC_DICT_UPSERT,
                                        ENGINE_SUBDOC_PATH_XATTR |
                                            ENGINE_SUBDOC_PATH_MKDIR_P,
                                        3,
                                        (uint32_t)strlen(num),
                                        "x.s",
                                        num};
                logf_line(fd, "A %lu X %u %s %s\n", seq, coll, key, num);
                uint64_t cas;
                size_t failed;
                HOST(rc,
                     h->subdoc_mutate(h, cookie, &k, vb, &s, 1, ENGINE_SUBDOC_DOC_MKDOC,
                                      0, 0, ENGINE_DURABILITY_PERSIST, ignore_result,
                                      NULL, &cas, &failed));
            } else if (r < 25) {
                logf_line(fd, "A %lu D %u %s -\n", seq, coll, key);
                HOST(rc, h->remove_durable(h, cookie, &k, 0, vb, NULL,
                                           ENGINE_DURABILITY_PERSIST));
                if (rc == ENGINE_NO_SUCH_KEY)
                    rc = ENGINE_SUCCESS; /* deleted either way */
            } else {
                /* About one write in seven appends "+seq:check" to the value. */
                bool append = r < 35;
                if (append)
                    snprintf(val, sizeof(val), "+%lu:%u", seq, check_of(key, seq));
                else
                    snprintf(val, sizeof(val), "%s:%lu:%u", key, seq, check_of(key, seq));
                logf_line(fd, "A %lu %c %u %s %s\n", seq, append ? 'P' : 'S', coll, key,
                          val);
                engine_item *it = NULL;
                rc = h->allocate(h, cookie, &it, &k, strlen(val), 0, 0, 0, vb);
                if (rc == ENGINE_SUCCESS) {
                    engine_item_info info;
                    h->get_item_info(h, it, &info);
                    memcpy(info.value.iov_base, val, strlen(val));
                    HOST(rc,
                         h->store_durable(h, cookie, it, NULL,
                                          append ? ENGINE_STORE_APPEND : ENGINE_STORE_SET,
                                          ENGINE_DURABILITY_PERSIST));
                    h->release(h, it);
                    if (append && rc == ENGINE_NOT_STORED)
                        rc = ENGINE_SUCCESS; /* the key is absent: nothing to append to */
                }
            }
        }
        if (rc == ENGINE_SUCCESS)
            logf_line(fd, "K %lu\n", seq);
        if (seq % 64 == 0)
            evict_all();
    }
}

/* ---- verify ---- */

typedef struct attempt {
    unsigned long seq;
    char op; /* S set, P append, D delete */
    char value[64];
    bool acked;
} attempt;

typedef struct keylog {
    attempt *v;
    size_t n, cap;
} keylog;

static keylog keys[COLLECTIONS][NKEYS];

/* The possible states of one key (NULL: absent), without repeats. */
#define MAX_STATES 64
typedef struct states {
    char *v[MAX_STATES];
    int n;
} states;

/* A state is the body, then '#' and the attribute x.s if the document has
 * attributes. */
static char *apply_op(const attempt *a, const char *state)
{
    if (a->op == 'D' || (a->op == 'P' && state == NULL))
        return NULL;
    const char *mark = state != NULL ? strchr(state, '#') : NULL;
    size_t body = state == NULL  ? 0
                  : mark != NULL ? (size_t)(mark - state)
                                 : strlen(state);
    char *out = malloc(body + strlen(a->value) + 4 + (mark ? strlen(mark) : 0));
    if (a->op == 'X') /* the attribute set; the body kept, {} for a new document */
        sprintf(out, "%.*s#%s", (int)(state ? body : 2), state ? state : "{}", a->value);
    else if (a->op == 'S') /* a set keeps the attributes */
        sprintf(out, "%s%s", a->value, mark ? mark : "");
    else /* append: to the body */
        sprintf(out, "%.*s%s%s", (int)body, state, a->value, mark ? mark : "");
    return out;
}

static bool states_has(const states *st, const char *v)
{
    for (int i = 0; i < st->n; i++)
        if (st->v[i] == v || (st->v[i] != NULL && v != NULL && strcmp(st->v[i], v) == 0))
            return true;
    return false;
}

/* Acknowledged: every state becomes the op's result. Not: either may hold. */
static bool states_apply(states *st, const attempt *a)
{
    states next = {.n = 0};
    bool fits = true;
    for (int pass = a->acked ? 1 : 0; pass < 2; pass++) {
        for (int i = 0; i < st->n; i++) {
            char *v =
                pass == 0 ? (st->v[i] ? strdup(st->v[i]) : NULL) : apply_op(a, st->v[i]);
            if (states_has(&next, v) || next.n == MAX_STATES) {
                fits = fits && states_has(&next, v);
                free(v);
            } else {
                next.v[next.n++] = v;
            }
        }
    }
    for (int i = 0; i < st->n; i++)
        free(st->v[i]);
    *st = next;
    return fits;
}

static void states_free(states *st)
{
    for (int i = 0; i < st->n; i++)
        free(st->v[i]);
}

/* "key:seq:check" (or "{}", a document a sub-document mutation made) then
 * "+seq:check" per append, every check right; then "#seq" for attributes. */
static bool well_formed(const char *key, const char *v)
{
    size_t kl = strlen(key);
    const char *p;
    if (strncmp(v, "{}", 2) == 0)
        p = v + 2;
    else if (strncmp(v, key, kl) == 0 && v[kl] == ':')
        p = v + kl;
    else
        return false;
    while (*p != '\0' && *p != '#') {
        unsigned long s;
        unsigned chk;
        int used = 0;
        if ((*p != ':' && *p != '+') || (*p == ':' && p != v + kl) ||
            (*p == ':' && v[0] == '{') ||
            sscanf(p + 1, "%lu:%u%n", &s, &chk, &used) != 2 || used == 0 ||
            chk != check_of(key, s))
            return false;
        p += 1 + used;
    }
    if (*p == '#') {
        unsigned long s;
        int used = 0;
        return sscanf(p + 1, "%lu%n", &s, &used) == 1 && p[1 + used] == '\0';
    }
    return true;
}

/* The state of a value read back: the body, and "#" and x.s if it has
 * attributes (NULL if they are damaged or x.s is missing). */
static char *state_of(const engine_item_info *info)
{
    const unsigned char *v = info->value.iov_base;
    size_t n = info->value.iov_len;
    if (!(info->datatype & ENGINE_DATATYPE_XATTR))
        return strndup((const char *)v, n);
    size_t total = xattr_section_len(v, n);
    if (total == 0)
        return NULL;
    json_t *x = NULL;
    for (size_t at = 4; at + 4 <= total;) {
        size_t plen = (size_t)v[at] << 24 | (size_t)v[at + 1] << 16 |
                      (size_t)v[at + 2] << 8 | v[at + 3];
        const char *k = (const char *)v + at + 4;
        if (plen < 2 || at + 4 + plen > total)
            return NULL;
        if (strcmp(k, "x") == 0)
            x = json_loadb(k + 2, plen - 3, 0, NULL);
        at += 4 + plen;
    }
    json_t *s = json_object_get(x, "s");
    char *out = NULL;
    if (json_is_integer(s) &&
        asprintf(&out, "%.*s#%lld", (int)(n - total), (const char *)v + total,
                 (long long)json_integer_value(s)) < 0)
        out = NULL;
    json_decref(x);
    return out;
}

static int coll_index(unsigned coll)
{
    return coll == 8 ? 1 : 0;
}

/* The bytes of the data files in dir; a shard with more than one base is an
 * error. */
static uint64_t data_files(const char *dir, const char *when, int *errors)
{
    uint64_t disk = 0;
    unsigned bases[8] = {0};
    DIR *dh = opendir(dir);
    struct dirent *ent;
    while (dh != NULL && (ent = readdir(dh)) != NULL) {
        unsigned shard, no;
        char tail[8], path[4400];
        struct stat st;
        if (sscanf(ent->d_name, "shard%u.%u.%7s", &shard, &no, tail) != 3)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        if (stat(path, &st) == 0)
            disk += (uint64_t)st.st_size;
        if (strcmp(tail, "base") == 0 && shard < 8 && ++bases[shard] > 1) {
            fprintf(stderr, "shard %u has %u bases %s\n", shard, bases[shard], when);
            (*errors)++;
        }
    }
    if (dh != NULL)
        closedir(dh);
    return disk;
}

static int run_verify(const char *so, const char *dir, const char *log)
{
    FILE *f = fopen(log, "r");
    if (f == NULL) {
        perror("crashtest: log");
        return 2;
    }
    /* Sequence numbers index two tables: size them by the log's highest (a
     * long run goes past any fixed bound, and a bound silently drops lines). */
    char line[512];
    unsigned long max_seq = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long seq;
        if (sscanf(line, "A %lu", &seq) == 1 && seq > max_seq)
            max_seq = seq;
    }
    rewind(f);
    attempt **by_seq = calloc(max_seq + 1, sizeof(*by_seq));
    unsigned long *uid_of_seq = calloc(max_seq + 1, sizeof(*uid_of_seq));
    if (by_seq == NULL || uid_of_seq == NULL) {
        fprintf(stderr, "crashtest: out of memory for %lu attempts\n", max_seq);
        return 2;
    }
    unsigned long acked_uid = 0, tried_uid = 0, n_acked = 0, n_attempts = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long seq, uid;
        unsigned coll;
        int keyno;
        char op, val[64];
        if (sscanf(line, "K %lu", &seq) == 1) {
            if (seq <= max_seq && uid_of_seq[seq] > acked_uid)
                acked_uid = uid_of_seq[seq];
            n_acked++;
            continue;
        }
        if (sscanf(line, "A %lu M %lu", &seq, &uid) == 2 && seq <= max_seq) {
            uid_of_seq[seq] = uid;
            n_attempts++;
            if (uid > tried_uid)
                tried_uid = uid;
            continue;
        }
        if (sscanf(line, "A %lu %c %u key%d %63s", &seq, &op, &coll, &keyno, val) != 5 ||
            keyno < 0 || keyno >= NKEYS || seq > max_seq) {
            /* A line cut by the kill can only be the last one: ignore it (and
             * the log must not grow while it is read: the writer is dead). */
            continue;
        }
        keylog *kl = &keys[coll_index(coll)][keyno];
        if (kl->n == kl->cap) {
            kl->cap = kl->cap ? kl->cap * 2 : 16;
            kl->v = realloc(kl->v, kl->cap * sizeof(attempt));
        }
        attempt *a = &kl->v[kl->n++];
        *a = (attempt){seq, op, "", false};
        snprintf(a->value, sizeof(a->value), "%s", val);
        n_attempts++;
    }
    fclose(f);
    /* Map acks now that every key's array is final (realloc moved them). */
    f = fopen(log, "r");
    for (int c = 0; c < COLLECTIONS; c++)
        for (int k = 0; k < NKEYS; k++)
            for (size_t i = 0; i < keys[c][k].n; i++)
                by_seq[keys[c][k].v[i].seq] = &keys[c][k].v[i];
    while (fgets(line, sizeof(line), f)) {
        unsigned long seq;
        if (sscanf(line, "K %lu", &seq) == 1 && seq <= max_seq && by_seq[seq] != NULL)
            by_seq[seq]->acked = true;
    }
    fclose(f);

    mock_reset();
    /* No compaction of its own: the files are looked at as the start left them. */
    h = start(so, dir, 3600000);
    cookie = mock_cookie_create();
    evict_all(); /* every value below is read back from disk */
    int errors = 0;
    uint64_t live_bytes = 0; /* records of the values found: header, key, value */
    /* The manifest: at least the last acknowledged one, at most the last tried. */
    uint64_t uid = 0;
    uint32_t sid;
    h->get_scope_id(h, cookie, "", 0, &uid, &sid);
    if (uid < acked_uid || (tried_uid > 0 && uid > tried_uid)) {
        fprintf(stderr, "manifest uid %llx, acknowledged %lx, tried %lx\n",
                (unsigned long long)uid, acked_uid, tried_uid);
        errors++;
    }
    for (int c = 0; c < COLLECTIONS; c++) {
        for (int k = 0; k < NKEYS; k++) {
            keylog *kl = &keys[c][k];
            char key[32], *got = NULL;
            snprintf(key, sizeof(key), "key%d", k);
            engine_doc_key dk = {c ? 8u : 0u, (uint16_t)strlen(key), key};
            bool found = false;
            {
                engine_item *it;
                engine_errc rc;
                if (k % 2)
                    HOST(rc, h->get(h, cookie, &it, &dk, (uint16_t)(k % 4)));
                else /* no cookie: the value is read in the call */
                    rc = h->get(h, NULL, &it, &dk, (uint16_t)(k % 4));
                if (rc == ENGINE_SUCCESS) {
                    engine_item_info info;
                    h->get_item_info(h, it, &info);
                    got = state_of(&info);
                    live_bytes += 40 + strlen(key) + info.value.iov_len;
                    h->release(h, it);
                    found = true;
                }
            }
            /* The states the key may be in: replay its attempts from absent. An
             * acknowledged one was applied to whatever state the key was in; one
             * never acknowledged (in flight at a kill or cut) may or may not have
             * been. An append extends the value; of an absent key it is a no-op. */
            states st = {.n = 1}; /* {absent} */
            size_t from = 0;
            bool any_acked = false;
            for (size_t i = 0; i < kl->n; i++) {
                if (kl->v[i].acked) {
                    from = i;
                    any_acked = true;
                }
                if (!states_apply(&st, &kl->v[i])) {
                    fprintf(stderr, "%u/%s: more than %d possible states\n", c ? 8u : 0u,
                            key, MAX_STATES);
                    errors++;
                }
            }
            bool ok = false;
            for (int i = 0; i < st.n && !ok; i++)
                ok = st.v[i] == NULL ? !found : got != NULL && strcmp(got, st.v[i]) == 0;
            states_free(&st);
            if (found && (got == NULL || !well_formed(key, got))) {
                fprintf(stderr, "%u/%s: corrupt value '%s'\n", c ? 8u : 0u, key,
                        got ? got : "(damaged attributes)");
                errors++;
                free(got);
                continue;
            }
            if (!ok) {
                fprintf(stderr,
                        "%u/%s: found %s'%s'; %zu attempts, last acked #%zu (%c %s)\n",
                        c ? 8u : 0u, key, found ? "" : "nothing ", found ? got : "",
                        kl->n, from, any_acked ? kl->v[from].op : '-',
                        any_acked ? kl->v[from].value : "");
                errors++;
            }
            free(got);
        }
    }
    /* kvstore.h: one base per shard as the start left the files (a cut must
     * not bring superseded ones back), and after a compaction the files hold
     * little more than the live records. */
    uint64_t disk_at_start = data_files(dir, "at the start", &errors);
    char why[64];
    if (control != NULL && control(h, "compact", why, sizeof(why)) != 0)
        fprintf(stderr, "crashtest: compact: %s\n", why);
    uint64_t disk = data_files(dir, "after a compaction", &errors);
    if (live_bytes > 0 && (double)disk > 1.3 * (double)live_bytes + 256) {
        fprintf(stderr, "%llu bytes of files for %llu live bytes after a compaction\n",
                (unsigned long long)disk, (unsigned long long)live_bytes);
        errors++;
    }
    uint64_t fetched = stat_u64(h, "", "ep_bg_fetched");
    uint64_t torn = stat_u64(h, "warmup", "ep_warmup_torn_segments");
    uint64_t torn_bytes = stat_u64(h, "warmup", "ep_warmup_torn_bytes");
    h->destroy(h, true);
    printf(
        "verify: %lu attempts, %lu acknowledged, manifest uid %llx, %llu values read "
        "back "
        "from disk, %llu torn tails (%llu bytes) dropped at warmup, files %.2fx the live "
        "records (%.2fx before a compaction): %s\n",
        n_attempts, n_acked, (unsigned long long)uid, (unsigned long long)fetched,
        (unsigned long long)torn, (unsigned long long)torn_bytes,
        live_bytes ? (double)disk / (double)live_bytes : 0.0,
        live_bytes ? (double)disk_at_start / (double)live_bytes : 0.0,
        errors ? "FAILED" : "ok");
    free(by_seq);
    free(uid_of_seq);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "write") == 0)
        return run_writer(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]), NULL, NULL);
    if (argc >= 7 && strcmp(argv[1], "power") == 0)
        return run_writer(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]), argv[6],
                          argc >= 8 ? argv[7] : NULL);
    if (argc >= 5 && strcmp(argv[1], "verify") == 0)
        return run_verify(argv[2], argv[3], argv[4]);
    fprintf(stderr,
            "usage: crashtest write ENGINE DIR LOG SEED | power ENGINE DIR LOG SEED "
            "drop|torn [fsync|dirsync_after_rename] | verify ENGINE DIR LOG\n");
    return 2;
}
