/*
 * mock_server.c - the mock host. All state sits behind one mutex; tests are
 * small, so clarity wins over concurrency here. It never frees a cookie before
 * mock_reset, so a late call from a buggy engine is reported, not a crash.
 */
#include "mock_server.h"

#include "../../common/utf8.h"
#include "../../host/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_VIOLATIONS 16

typedef struct mock_cookie {
    struct mock_cookie *next;
    unsigned magic;
    void *engine_data;
    int reserved;
    int in_call;           /* engine calls in progress with this cookie */
    pthread_t call_thread; /* the thread of the latest such call */
    pthread_t wb_thread;   /* the thread that received the latest would_block */
    bool has_wb_thread;
    unsigned would_blocks; /* would_block results returned */
    unsigned notifies;     /* notify_io_complete calls */
    unsigned consumed;     /* notifies taken by mock_wait_notify */
    engine_errc last_status;
    bool closed;
    char error[512];
    uint64_t error_uid;
} mock_cookie;

#define COOKIE_MAGIC 0xC00C1Eu

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards everything below */
static pthread_cond_t notified = PTHREAD_COND_INITIALIZER;
static mock_cookie *cookies;
static char *log_lines;
static size_t log_len;
static bool log_echo;
static bool destroyed;
static int nviolations;
static char violations[MAX_VIOLATIONS][200];
static host_clock clock_;
static _Atomic bool clock_started;

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    if (nviolations < MAX_VIOLATIONS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(violations[nviolations], sizeof(violations[0]), fmt, ap);
        va_end(ap);
    }
    nviolations++;
}

static mock_cookie *as_cookie(const void *cookie)
{
    mock_cookie *c = (mock_cookie *)cookie;
    if (c == NULL || c->magic != COOKIE_MAGIC) {
        violation("engine passed an invalid cookie %p", cookie);
        return NULL;
    }
    return c;
}

/* ---- clock ---- */

static engine_rel_time get_current_time(void)
{
    return host_clock_now(&clock_);
}

static engine_rel_time realtime(uint32_t exptime)
{
    return host_clock_realtime(&clock_, exptime);
}

static time_t abstime(engine_rel_time t)
{
    return host_clock_abstime(&clock_, t);
}

void mock_time_travel(int seconds)
{
    host_clock_advance(&clock_, seconds);
}

/* ---- log ---- */

static void mock_log(engine_log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    pthread_mutex_lock(&lock);
    char *grown = realloc(log_lines, log_len + len + 2);
    if (grown != NULL) {
        log_lines = grown;
        memcpy(log_lines + log_len, line, len);
        log_len += len;
        log_lines[log_len++] = '\n';
        log_lines[log_len] = '\0';
    }
    bool echo = log_echo || getenv("MOCK_LOG_ECHO") != NULL;
    pthread_mutex_unlock(&lock);
    if (echo)
        fprintf(stderr, "[engine log %d] %s\n", (int)level, line);
}

void mock_set_log_echo(bool on)
{
    pthread_mutex_lock(&lock);
    log_echo = on;
    pthread_mutex_unlock(&lock);
}

bool mock_log_contains(const char *text)
{
    pthread_mutex_lock(&lock);
    bool found = log_lines != NULL && strstr(log_lines, text) != NULL;
    pthread_mutex_unlock(&lock);
    return found;
}

/* ---- cookies ---- */

static void store_engine_specific(const void *cookie, void *data)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL)
        c->engine_data = data;
    pthread_mutex_unlock(&lock);
}

static void *get_engine_specific(const void *cookie)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    void *data = c ? c->engine_data : NULL;
    pthread_mutex_unlock(&lock);
    return data;
}

static void notify_io_complete(const void *cookie, engine_errc status)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c == NULL)
        goto out;
    if (destroyed)
        violation("notify (status %d) after destroy returned", status);
    c->notifies++;
    c->last_status = status;
    if (c->in_call > 0 && pthread_equal(c->call_thread, pthread_self()))
        violation("notify (status %d) on the thread of the engine call", status);
    else if (c->has_wb_thread && pthread_equal(c->wb_thread, pthread_self()))
        violation("notify (status %d) on the thread that received the would_block",
                  status);
    if (c->notifies > c->would_blocks + (unsigned)c->in_call)
        violation(
            "notify (status %d) without a would_block (%u notifies, %u would_blocks)",
            status, c->notifies, c->would_blocks);
    pthread_cond_broadcast(&notified);
out:
    pthread_mutex_unlock(&lock);
}

static engine_errc reserve(const void *cookie)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL)
        c->reserved++;
    pthread_mutex_unlock(&lock);
    return c ? ENGINE_SUCCESS : ENGINE_INVALID_ARGUMENTS;
}

static void release(const void *cookie)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL && --c->reserved < 0)
        violation("cookie released more often than reserved");
    pthread_mutex_unlock(&lock);
}

static void set_error_context(const void *cookie, const char *reason)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    /* The host sends it inside JSON: it must be UTF-8 (engine_api.h). */
    if (reason != NULL && !utf8_valid(reason, strlen(reason)))
        violation("error context is not valid UTF-8: '%.80s'", reason);
    if (c != NULL)
        snprintf(c->error, sizeof(c->error), "%s", reason ? reason : "");
    pthread_mutex_unlock(&lock);
}

static void set_error_manifest_uid(const void *cookie, uint64_t uid)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL)
        c->error_uid = uid;
    pthread_mutex_unlock(&lock);
}

const void *mock_cookie_create(void)
{
    mock_cookie *c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->magic = COOKIE_MAGIC;
    c->error_uid = UINT64_MAX;
    pthread_mutex_lock(&lock);
    c->next = cookies;
    cookies = c;
    pthread_mutex_unlock(&lock);
    return c;
}

void mock_cookie_close(const void *cookie)
{
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL)
        c->closed = true;
    pthread_mutex_unlock(&lock);
}

const char *mock_cookie_error(const void *cookie)
{
    static _Thread_local char copy[512];
    pthread_mutex_lock(&lock);
    memcpy(copy, ((const mock_cookie *)cookie)->error, sizeof(copy));
    pthread_mutex_unlock(&lock);
    return copy;
}

uint64_t mock_cookie_error_uid(const void *cookie)
{
    pthread_mutex_lock(&lock);
    uint64_t uid = ((const mock_cookie *)cookie)->error_uid;
    pthread_mutex_unlock(&lock);
    return uid;
}

int mock_cookie_reservations(const void *cookie)
{
    pthread_mutex_lock(&lock);
    int n = ((const mock_cookie *)cookie)->reserved;
    pthread_mutex_unlock(&lock);
    return n;
}

void mock_call_begin(const void *cookie)
{
    if (cookie == NULL)
        return;
    pthread_mutex_lock(&lock);
    mock_cookie *c = as_cookie(cookie);
    if (c != NULL) {
        c->in_call++;
        c->call_thread = pthread_self();
        c->error[0] = '\0';
    }
    pthread_mutex_unlock(&lock);
}

void mock_call_end(const void *cookie, engine_errc rc)
{
    pthread_mutex_lock(&lock);
    if (cookie == NULL) {
        if (rc == ENGINE_WOULD_BLOCK)
            violation("would_block returned for a NULL cookie");
        goto out;
    }
    mock_cookie *c = as_cookie(cookie);
    if (c == NULL)
        goto out;
    c->in_call--;
    if (rc == ENGINE_WOULD_BLOCK) {
        c->would_blocks++;
        c->wb_thread = pthread_self();
        c->has_wb_thread = true;
    } else if (c->notifies > c->would_blocks + (unsigned)c->in_call)
        violation("notify came for a call that returned %d, not would_block", rc);
out:
    pthread_mutex_unlock(&lock);
}

engine_errc mock_wait_notify(const void *cookie, int timeout_ms)
{
    mock_cookie *c = (mock_cookie *)cookie;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    engine_errc status = ENGINE_FAILED;
    pthread_mutex_lock(&lock);
    while (c->consumed >= c->notifies) {
        if (pthread_cond_timedwait(&notified, &lock, &deadline) != 0 &&
            c->consumed >= c->notifies) {
            violation("no notify within %d ms of a would_block", timeout_ms);
            goto out;
        }
    }
    c->consumed++;
    status = c->last_status;
out:
    pthread_mutex_unlock(&lock);
    return status;
}

void mock_engine_destroyed(bool d)
{
    pthread_mutex_lock(&lock);
    destroyed = d;
    pthread_mutex_unlock(&lock);
}

int mock_check(char *buf, size_t len)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    for (mock_cookie *c = cookies; c != NULL; c = c->next, n++) {
        if (c->notifies != c->would_blocks)
            violation("cookie %d: %u would_blocks but %u notifies", n, c->would_blocks,
                      c->notifies);
        if (c->reserved != 0)
            violation("cookie %d: still reserved %d time(s) at the end", n, c->reserved);
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < nviolations && i < MAX_VIOLATIONS && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "contract violation: %s\n",
                                 violations[i]);
    int total = nviolations;
    nviolations = 0;
    pthread_mutex_unlock(&lock);
    return total;
}

void mock_reset(void)
{
    pthread_mutex_lock(&lock);
    while (cookies != NULL) {
        mock_cookie *c = cookies;
        cookies = c->next;
        c->magic = 0;
        free(c);
    }
    free(log_lines);
    log_lines = NULL;
    log_len = 0;
    nviolations = 0;
    destroyed = false;
    host_clock_init(&clock_, NULL, NULL);
    atomic_store(&clock_started, true);
    pthread_mutex_unlock(&lock);
}

static const engine_server_api api = {
    .interface_version = ENGINE_SERVER_API_VERSION,
    .core = {get_current_time, realtime, abstime},
    .log = mock_log,
    .cookie = {store_engine_specific, get_engine_specific, notify_io_complete, reserve,
               release, set_error_context, set_error_manifest_uid},
};

const engine_server_api *mock_get_server_api(void)
{
    if (!atomic_load(&clock_started))
        mock_reset();
    return &api;
}
