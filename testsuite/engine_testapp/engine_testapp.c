/*
 * engine_testapp - runs a test suite .so against an engine .so.
 *
 *   engine_testapp -E engine.so -T suite.so [-e config] [-t timeout_s]
 *                  [-n name-regex] [-q]
 *
 * Each case runs in a child process of its own, with its output captured, under
 * a timeout: a crash is reported as DIED, a hang as TIMEOUT, and the run goes
 * on. The engine's vtable is wrapped so that every call carrying a cookie is
 * seen by the mock server, which fails the case if a would_block is not
 * followed by exactly one notify. Ends with `N passed, N failed, N skipped`.
 */
#include "engine_testapp.h"
#include "../mock_server/mock_server.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_TIMEOUT_MS 30000

/* ---- the wrapped vtable ---- */

typedef struct wrapped {
    engine_handle vt; /* first: the test's handle points here */
    engine_handle *real;
} wrapped;

static engine_handle *real_of(engine_handle *h)
{
    return ((wrapped *)h)->real;
}

/* Wraps one cookie-carrying call with the mock server's bookkeeping. */
#define TRACKED(cookie, call)                                                            \
    do {                                                                                 \
        mock_call_begin(cookie);                                                         \
        engine_errc rc_ = (call);                                                        \
        mock_call_end(cookie, rc_);                                                      \
        return rc_;                                                                      \
    } while (0)

static engine_errc w_get_info(engine_handle *h, const engine_info **out)
{
    return real_of(h)->get_info(real_of(h), out);
}

static engine_errc w_initialize(engine_handle *h, const char *config)
{
    return real_of(h)->initialize(real_of(h), config);
}

static void w_destroy(engine_handle *h, bool force)
{
    /* The wrapper outlives destroy: the test may still release items through
     * it, and the engine keeps its vtable alive until they are all released. */
    real_of(h)->destroy(real_of(h), force);
}

static engine_errc w_allocate(engine_handle *h, const void *cookie, engine_item **out,
                              const engine_doc_key *key, size_t nbytes, uint32_t flags,
                              uint32_t exptime, uint8_t datatype, uint16_t vbucket)
{
    TRACKED(cookie, real_of(h)->allocate(real_of(h), cookie, out, key, nbytes, flags,
                                         exptime, datatype, vbucket));
}

static void w_release(engine_handle *h, engine_item *item)
{
    real_of(h)->release(real_of(h), item);
}

static engine_errc w_get(engine_handle *h, const void *cookie, engine_item **out,
                         const engine_doc_key *key, uint16_t vbucket)
{
    TRACKED(cookie, real_of(h)->get(real_of(h), cookie, out, key, vbucket));
}

static engine_errc w_store(engine_handle *h, const void *cookie, engine_item *item,
                           uint64_t *cas_out, engine_store_op op)
{
    TRACKED(cookie, real_of(h)->store(real_of(h), cookie, item, cas_out, op));
}

static engine_errc w_remove(engine_handle *h, const void *cookie,
                            const engine_doc_key *key, uint64_t cas, uint16_t vbucket,
                            uint64_t *cas_out)
{
    TRACKED(cookie, real_of(h)->remove(real_of(h), cookie, key, cas, vbucket, cas_out));
}

static engine_errc w_flush(engine_handle *h, const void *cookie)
{
    TRACKED(cookie, real_of(h)->flush(real_of(h), cookie));
}

static engine_errc w_get_stats(engine_handle *h, const void *cookie, const char *group,
                               engine_add_stat_fn add_stat, void *ctx)
{
    TRACKED(cookie, real_of(h)->get_stats(real_of(h), cookie, group, add_stat, ctx));
}

static void w_reset_stats(engine_handle *h, const void *cookie)
{
    real_of(h)->reset_stats(real_of(h), cookie);
}

static engine_errc w_get_item_info(engine_handle *h, const engine_item *item,
                                   engine_item_info *info)
{
    return real_of(h)->get_item_info(real_of(h), item, info);
}

static void w_item_set_cas(engine_handle *h, engine_item *item, uint64_t cas)
{
    real_of(h)->item_set_cas(real_of(h), item, cas);
}

static engine_errc w_set_manifest(engine_handle *h, const void *cookie, const char *json,
                                  size_t len)
{
    TRACKED(cookie, real_of(h)->set_collection_manifest(real_of(h), cookie, json, len));
}

static engine_errc w_get_manifest(engine_handle *h, const void *cookie,
                                  engine_output_fn out, void *ctx)
{
    TRACKED(cookie, real_of(h)->get_collection_manifest(real_of(h), cookie, out, ctx));
}

static engine_errc w_get_cid(engine_handle *h, const void *cookie, const char *path,
                             size_t len, uint64_t *uid, uint32_t *cid)
{
    TRACKED(cookie,
            real_of(h)->get_collection_id(real_of(h), cookie, path, len, uid, cid));
}

static engine_errc w_get_sid(engine_handle *h, const void *cookie, const char *path,
                             size_t len, uint64_t *uid, uint32_t *sid)
{
    TRACKED(cookie, real_of(h)->get_scope_id(real_of(h), cookie, path, len, uid, sid));
}

static void w_disconnect(engine_handle *h, const void *cookie)
{
    real_of(h)->disconnect(real_of(h), cookie);
}

static engine_errc w_store_durable(engine_handle *h, const void *cookie,
                                   engine_item *item, uint64_t *cas_out,
                                   engine_store_op op, engine_durability d)
{
    TRACKED(cookie, real_of(h)->store_durable(real_of(h), cookie, item, cas_out, op, d));
}

static engine_errc w_remove_durable(engine_handle *h, const void *cookie,
                                    const engine_doc_key *key, uint64_t cas,
                                    uint16_t vbucket, uint64_t *cas_out,
                                    engine_durability d)
{
    TRACKED(cookie, real_of(h)->remove_durable(real_of(h), cookie, key, cas, vbucket,
                                               cas_out, d));
}

static engine_errc w_set_vbucket_state(engine_handle *h, const void *cookie,
                                       uint16_t vbucket, engine_vbucket_state state)
{
    TRACKED(cookie, real_of(h)->set_vbucket_state(real_of(h), cookie, vbucket, state));
}

static engine_errc w_get_locked(engine_handle *h, const void *cookie, engine_item **out,
                                const engine_doc_key *key, uint16_t vbucket,
                                uint32_t secs, uint64_t *lock_cas)
{
    TRACKED(cookie, real_of(h)->get_locked(real_of(h), cookie, out, key, vbucket, secs,
                                           lock_cas));
}

static engine_errc w_unlock(engine_handle *h, const void *cookie,
                            const engine_doc_key *key, uint16_t vbucket,
                            uint64_t lock_cas)
{
    TRACKED(cookie, real_of(h)->unlock(real_of(h), cookie, key, vbucket, lock_cas));
}

static engine_errc w_subdoc_lookup(engine_handle *h, const void *cookie,
                                   const engine_doc_key *key, uint16_t vbucket,
                                   const engine_subdoc_spec *specs, size_t nspecs,
                                   uint8_t doc_flags, engine_subdoc_result_fn result,
                                   void *ctx, uint64_t *cas_out)
{
    TRACKED(cookie, real_of(h)->subdoc_lookup(real_of(h), cookie, key, vbucket, specs,
                                              nspecs, doc_flags, result, ctx, cas_out));
}

static engine_errc w_subdoc_mutate(engine_handle *h, const void *cookie,
                                   const engine_doc_key *key, uint16_t vbucket,
                                   const engine_subdoc_spec *specs, size_t nspecs,
                                   uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                   engine_durability d, engine_subdoc_result_fn result,
                                   void *ctx, uint64_t *cas_out, size_t *failed)
{
    TRACKED(cookie, real_of(h)->subdoc_mutate(real_of(h), cookie, key, vbucket, specs,
                                              nspecs, doc_flags, cas, exptime, d, result,
                                              ctx, cas_out, failed));
}

static engine_handle *wrap(engine_handle *real)
{
    wrapped *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->real = real;
    engine_handle *v = &w->vt;
    v->interface = real->interface;
    v->get_info = w_get_info;
    v->initialize = w_initialize;
    v->destroy = w_destroy;
    v->allocate = w_allocate;
    v->release = w_release;
    v->get = w_get;
    v->store = w_store;
    v->remove = w_remove;
    v->flush = w_flush;
    v->get_stats = w_get_stats;
    v->reset_stats = w_reset_stats;
    v->get_item_info = w_get_item_info;
    v->item_set_cas = w_item_set_cas;
    v->set_collection_manifest = w_set_manifest;
    v->get_collection_manifest = w_get_manifest;
    v->get_collection_id = w_get_cid;
    v->get_scope_id = w_get_sid;
    v->disconnect = w_disconnect;
    if (real->interface >= ENGINE_API_VERSION_2) {
        v->store_durable = w_store_durable;
        v->remove_durable = w_remove_durable;
        v->set_vbucket_state = w_set_vbucket_state;
    }
    if (real->interface >= ENGINE_API_VERSION_3) {
        v->get_locked = w_get_locked;
        v->unlock = w_unlock;
    }
    if (real->interface >= ENGINE_API_VERSION_4) {
        v->subdoc_lookup = w_subdoc_lookup;
        v->subdoc_mutate = w_subdoc_mutate;
    }
    return v;
}

/* ---- the harness for one case (in the child) ---- */

static engine_create_instance_fn create_fn;
static void *engine_dl;
static char case_config[8192];
static char case_dir[256];
static engine_handle *case_engine;
static engine_handle *retired[8]; /* wrappers of destroyed engines, freed at exit */
static int nretired;

static void retire(engine_handle *h)
{
    if (nretired < (int)(sizeof(retired) / sizeof(retired[0])))
        retired[nretired++] = h;
}

static engine_handle *new_engine(const char *config, bool init, engine_errc *rc)
{
    engine_handle *real = NULL;
    *rc = create_fn(ENGINE_API_VERSION, mock_get_server_api, &real);
    if (*rc != ENGINE_SUCCESS)
        return NULL;
    engine_handle *h = wrap(real);
    if (h == NULL) {
        real->destroy(real, true);
        *rc = ENGINE_NO_MEMORY;
        return NULL;
    }
    if (init) {
        *rc = h->initialize(h, config);
        if (*rc != ENGINE_SUCCESS) {
            h->destroy(h, true);
            free(h);
            return NULL;
        }
    }
    return h;
}

/* Replaces every @DATA_DIR@ in `in` by the case's directory. */
static void substitute(char *out, size_t cap, const char *in)
{
    static const char token[] = "@DATA_DIR@";
    size_t used = 0;
    out[0] = '\0';
    while (in != NULL && *in != '\0' && used + 1 < cap) {
        if (strncmp(in, token, sizeof(token) - 1) == 0) {
            used += (size_t)snprintf(out + used, cap - used, "%s", case_dir);
            in += sizeof(token) - 1;
        } else {
            out[used++] = *in++;
            out[used] = '\0';
        }
    }
}

static engine_handle *th_create_engine(const char *config, engine_errc *rc)
{
    char expanded[8192];
    substitute(expanded, sizeof(expanded), config ? config : case_config);
    return new_engine(expanded, true, rc);
}

static void *th_engine_symbol(const char *name)
{
    return dlsym(engine_dl, name);
}

static void th_destroy_engine(engine_handle *h, bool force)
{
    h->destroy(h, force);
    retire(h);
}

static engine_handle *th_restart(bool force, engine_errc *rc)
{
    case_engine->destroy(case_engine, force);
    retire(case_engine);
    case_engine = new_engine(case_config, true, rc);
    return case_engine;
}

static void th_disconnect(engine_handle *h, const void *cookie)
{
    h->disconnect(h, cookie);
    mock_cookie_close(cookie);
}

static engine_errc th_wait(const void *cookie)
{
    return mock_wait_notify(cookie, NOTIFY_TIMEOUT_MS);
}

static const test_harness harness = {
    .config = case_config,
    .data_dir = case_dir,
    .engine_symbol = th_engine_symbol,
    .real_handle = real_of,
    .create_cookie = mock_cookie_create,
    .disconnect = th_disconnect,
    .time_travel = mock_time_travel,
    .wait_for_notify = th_wait,
    .error_context = mock_cookie_error,
    .error_manifest_uid = mock_cookie_error_uid,
    .reservations = mock_cookie_reservations,
    .log_contains = mock_log_contains,
    .create_engine = th_create_engine,
    .destroy_engine = th_destroy_engine,
    .restart_engine = th_restart,
    .wait_for_notify_ms = mock_wait_notify,
};

/* The case's config: -e first, then the case's own (later keys win). */
static void join_config(const char *extra, const char *own)
{
    char joined[8192];
    snprintf(joined, sizeof(joined), "%s%s%s", extra ? extra : "",
             (extra && *extra && own && *own) ? ";" : "", own ? own : "");
    substitute(case_config, sizeof(case_config), joined);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Runs one case; the return value is the child's exit status. */
static int run_case(const engine_test *t, const char *extra_config)
{
    mock_reset();
    snprintf(case_dir, sizeof(case_dir), "%s/ep_case.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(case_dir) == NULL) {
        perror("mkdtemp");
        return TEST_FAIL;
    }
    join_config(extra_config, t->cfg);
    engine_errc rc;
    case_engine = new_engine(case_config, !t->no_init, &rc);
    if (case_engine == NULL) {
        fprintf(stderr, "engine create/initialize failed: 0x%x (config '%s')\n",
                (unsigned)rc, case_config);
        return TEST_FAIL;
    }
    test_result r = TEST_PASS;
    if (t->setup != NULL && !t->setup(case_engine, &harness)) {
        fprintf(stderr, "setup failed\n");
        r = TEST_FAIL;
    }
    if (r == TEST_PASS)
        r = t->run(case_engine, &harness);
    if (t->teardown != NULL && case_engine != NULL &&
        !t->teardown(case_engine, &harness)) {
        fprintf(stderr, "teardown failed\n");
        if (r == TEST_PASS)
            r = TEST_FAIL;
    }
    if (case_engine != NULL) {
        case_engine->destroy(case_engine, false);
        retire(case_engine);
        case_engine = NULL;
    }
    mock_engine_destroyed(true);
    char buf[4096];
    if (mock_check(buf, sizeof(buf)) > 0) {
        fputs(buf, stderr);
        r = TEST_FAIL;
    }
    for (int i = 0; i < nretired; i++)
        free(retired[i]);
    mock_reset();
    nftw(case_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return (int)r;
}

/* ---- the parent: one child per case ---- */

typedef enum outcome { OUT_PASS, OUT_FAIL, OUT_SKIP, OUT_DIED, OUT_TIMEOUT } outcome;

/* -a: results in TAP (meson reads them); a case's own output goes to stderr. */
static bool tap;

static void dump_file(int fd)
{
    char buf[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    fflush(stdout);
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)n, tap ? stderr : stdout);
    fflush(tap ? stderr : stdout);
}

static outcome run_isolated(const engine_test *t, const char *config, int timeout_s,
                            int *detail, double *secs)
{
    char path[] = "/tmp/engine_testapp.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    unlink(path);
    fflush(stdout);
    fflush(stderr);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        setvbuf(stdout, NULL, _IONBF, 0);
        int status = run_case(t, config);
        fflush(NULL);
        exit(status);
    }
    int status = 0;
    outcome out;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            out = OUT_TIMEOUT;
            goto done;
        }
        usleep(2000);
    }
    if (WIFSIGNALED(status)) {
        out = OUT_DIED;
        *detail = WTERMSIG(status);
    } else if (WEXITSTATUS(status) == TEST_PASS) {
        out = OUT_PASS;
    } else if (WEXITSTATUS(status) == TEST_SKIP) {
        out = OUT_SKIP;
    } else {
        out = OUT_FAIL;
        *detail = WEXITSTATUS(status);
    }
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    static bool quiet_set, quiet;
    if (!quiet_set) {
        quiet = getenv("ENGINE_TESTAPP_QUIET") != NULL;
        quiet_set = true;
    }
    if (out != OUT_PASS && out != OUT_SKIP)
        dump_file(fd);
    else if (!quiet)
        dump_file(fd);
    close(fd);
    return out;
}

static void usage(void)
{
    fprintf(stderr, "usage: engine_testapp -E engine.so -T suite.so [-e config] "
                    "[-t timeout_s] [-n name-regex] [-q] [-a]\n"
                    "  -q  print only the cases that fail; -a  results in TAP\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *engine_path = NULL, *suite_path = NULL, *config = "", *filter = NULL;
    int timeout_s = 120, opt;
    bool quiet = false;
    while ((opt = getopt(argc, argv, "E:T:e:t:n:qa")) != -1) {
        switch (opt) {
        case 'E':
            engine_path = optarg;
            break;
        case 'T':
            suite_path = optarg;
            break;
        case 'e':
            config = optarg;
            break;
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'n':
            filter = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'a':
            tap = true;
            break;
        default:
            usage();
        }
    }
    if (engine_path == NULL || suite_path == NULL || timeout_s <= 0)
        usage();
    if (quiet)
        setenv("ENGINE_TESTAPP_QUIET", "1", 1);

    engine_dl = dlopen(engine_path, RTLD_NOW | RTLD_LOCAL);
    if (engine_dl == NULL) {
        fprintf(stderr, "engine_testapp: cannot load engine: %s\n", dlerror());
        return 2;
    }
    *(void **)&create_fn = dlsym(engine_dl, "create_instance");
    if (create_fn == NULL) {
        fprintf(stderr, "engine_testapp: %s has no create_instance\n", engine_path);
        return 2;
    }
    void *sh = dlopen(suite_path, RTLD_NOW | RTLD_LOCAL);
    if (sh == NULL) {
        fprintf(stderr, "engine_testapp: cannot load suite: %s\n", dlerror());
        return 2;
    }
    get_tests_fn get_tests;
    *(void **)&get_tests = dlsym(sh, "get_tests");
    if (get_tests == NULL) {
        fprintf(stderr, "engine_testapp: %s has no get_tests\n", suite_path);
        return 2;
    }
    regex_t re;
    if (filter != NULL && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "engine_testapp: bad regex '%s'\n", filter);
        return 2;
    }

    int passed = 0, failed = 0, skipped = 0;
    static const char *const names[] = {"OK", "FAIL", "SKIP", "DIED", "TIMEOUT"};
    for (const engine_test *t = get_tests(); t->name != NULL; t++) {
        if (filter != NULL && regexec(&re, t->name, 0, NULL, 0) != 0)
            continue;
        int detail = 0;
        double secs = 0;
        outcome o = run_isolated(t, config, timeout_s, &detail, &secs);
        if (o == OUT_PASS)
            passed++;
        else if (o == OUT_SKIP)
            skipped++;
        else
            failed++;
        if (tap) {
            int n = passed + failed + skipped;
            if (o == OUT_PASS || o == OUT_SKIP)
                printf("ok %d - %s%s\n", n, t->name, o == OUT_SKIP ? " # SKIP" : "");
            else if (o == OUT_DIED)
                printf("not ok %d - %s: DIED (signal %d: %s)\n", n, t->name, detail,
                       strsignal(detail));
            else if (o == OUT_FAIL && detail != TEST_FAIL)
                printf("not ok %d - %s: exit %d (sanitizer or harness error)\n", n,
                       t->name, detail);
            else
                printf("not ok %d - %s: %s\n", n, t->name, names[o]);
            fflush(stdout);
        } else if (!quiet || (o != OUT_PASS && o != OUT_SKIP)) {
            printf("%-60s %s", t->name, names[o]);
            if (o == OUT_DIED)
                printf(" (signal %d: %s)", detail, strsignal(detail));
            else if (o == OUT_FAIL && detail != TEST_FAIL)
                printf(" (exit %d: sanitizer or harness error)", detail);
            printf(" [%.2fs]\n", secs);
        }
    }
    if (filter != NULL)
        regfree(&re);
    if (tap)
        printf("1..%d\n# ", passed + failed + skipped);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}
