/*
 * engine_testapp.h - what a test suite .so sees of the harness.
 *
 * A suite exports `const engine_test *get_tests(void)`, a table ended by an
 * entry with a NULL name. engine_testapp runs each case in its own child
 * process: it loads the engine, creates and initializes an instance (suite
 * config, then `-e`, then the case's cfg; later keys win), calls setup, the
 * test, teardown, destroys the engine and checks the would_block contract.
 */
#ifndef ENGINE_TESTAPP_H
#define ENGINE_TESTAPP_H

#include "../../engine_api.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum test_result { TEST_PASS = 0, TEST_FAIL = 1, TEST_SKIP = 2 } test_result;

typedef struct test_harness {
    /** The effective config string of the case. */
    const char *config;
    /** A fresh empty directory for this case, removed after it. `@DATA_DIR@` in
     * any config string (-e, the case's cfg, create_engine) is replaced by it. */
    const char *data_dir;
    /** A symbol of the engine .so (for engine-specific test hooks), or NULL. */
    void *(*engine_symbol)(const char *name);
    /** The engine's own handle behind the harness's wrapper (for such hooks). */
    engine_handle *(*real_handle)(engine_handle *h);
    /** A client request handle, freed by the harness at the end of the case. */
    const void *(*create_cookie)(void);
    /** The client behind the cookie went away: calls the engine's disconnect. */
    void (*disconnect)(engine_handle *h, const void *cookie);
    /** Moves the server clock forward. */
    void (*time_travel)(int seconds);
    /** Waits for the notify that follows a would_block; returns its status. */
    engine_errc (*wait_for_notify)(const void *cookie);
    /** The error context and manifest uid the engine left on the cookie. */
    const char *(*error_context)(const void *cookie);
    uint64_t (*error_manifest_uid)(const void *cookie);
    /** Reservations the engine holds on the cookie right now. */
    int (*reservations)(const void *cookie);
    /** True if an engine log line contains `text`. */
    bool (*log_contains)(const char *text);
    /** Creates and initializes another instance of the engine under test
     * (config NULL = the case's config). NULL with *rc on failure. */
    engine_handle *(*create_engine)(const char *config, engine_errc *rc);
    /** Destroys an instance from create_engine. */
    void (*destroy_engine)(engine_handle *h, bool force);
    /** Destroys the case's engine and brings up a new one with the same config
     * (warmup tests). Returns the new handle, NULL if initialize failed. */
    engine_handle *(*restart_engine)(bool force, engine_errc *rc);
    /** wait_for_notify with a timeout of the test's: ENGINE_FAILED (and a
     * contract violation) if no notify comes within timeout_ms. */
    engine_errc (*wait_for_notify_ms)(const void *cookie, int timeout_ms);
} test_harness;

typedef struct engine_test {
    const char *name;
    test_result (*run)(engine_handle *h, const test_harness *th);
    bool (*setup)(engine_handle *h, const test_harness *th);    /* may be NULL */
    bool (*teardown)(engine_handle *h, const test_harness *th); /* may be NULL */
    const char *cfg;                                            /* may be NULL */
    bool no_init; /* hand the test an engine that was created but not initialized */
} engine_test;

typedef const engine_test *(*get_tests_fn)(void);

/* ---- assertions for suites ---- */

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);     \
            return TEST_FAIL;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_RC(expr, want)                                                             \
    do {                                                                                 \
        engine_errc rc_ = (expr);                                                        \
        if (rc_ != (want)) {                                                             \
            fprintf(stderr, "%s:%d: %s returned 0x%x, wanted 0x%x (%s)\n", __FILE__,     \
                    __LINE__, #expr, (unsigned)rc_, (unsigned)(want), #want);            \
            return TEST_FAIL;                                                            \
        }                                                                                \
    } while (0)

/**
 * Calls `call` (an expression using the cookie) as a host would: on would_block
 * waits for the notify and, on success, calls again. Leaves the result in rc.
 */
#define HOST_CALL(th, cookie, rc, call)                                                  \
    do {                                                                                 \
        (rc) = (call);                                                                   \
        while ((rc) == ENGINE_WOULD_BLOCK) {                                             \
            (rc) = (th)->wait_for_notify(cookie);                                        \
            if ((rc) == ENGINE_SUCCESS)                                                  \
                (rc) = (call);                                                           \
        }                                                                                \
    } while (0)

#endif
