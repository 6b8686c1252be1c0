/*
 * authq.c - PLAIN checks on their own threads, and failed logins per address
 * (authq.h).
 */
#include "authq.h"

#include "clock.h"
#include "hostapi.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Checks one client address may have queued or running at once: a single
 * address cannot fill the queue in front of everyone else's logins. */
#define PER_ADDRESS_MAX 4
#define ADDRESS_SLOTS   1024

typedef struct job {
    struct job *next;
    conn *c;
    unsigned slot; /* its address's slot in q.per_address */
    char user[64];
    size_t ulen;
    char *password;
    size_t plen;
} job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, **tail;
    unsigned waiting, max_waiting, nthreads;
    bool stopping;
    pthread_t threads[8];
    unsigned per_address[ADDRESS_SLOTS]; /* checks queued or running, by address hash */
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .tail = &q.head};

static unsigned address_hash(const char *peer)
{
    unsigned h = 2166136261u;
    for (const char *p = peer; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static void finish(job *j, const auth_user *u)
{
    pthread_mutex_lock(&q.lock);
    q.per_address[j->slot]--;
    pthread_mutex_unlock(&q.lock);
    j->c->sasl_user = u;
    j->c->sasl_wait = SASL_CHECKED;
    /* The notify publishes the result: the worker reads it after taking the
     * lock the notify queues under. */
    kvhost_server_api()->cookie.notify_io_complete(j->c, ENGINE_SUCCESS);
    conn_unref(j->c);
    if (j->password != NULL)
        memset(j->password, 0, j->plen);
    free(j->password);
    free(j);
}

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.lock);
    for (;;) {
        while (q.head == NULL && !q.stopping)
            pthread_cond_wait(&q.cond, &q.lock);
        if (q.head == NULL)
            break;
        job *j = q.head;
        q.head = j->next;
        if (q.head == NULL)
            q.tail = &q.head;
        q.waiting--;
        bool stopping = q.stopping;
        pthread_mutex_unlock(&q.lock);
        finish(j, stopping ? NULL
                           : auth_check_plain(host.users, j->user, j->ulen, j->password,
                                              j->plen));
        pthread_mutex_lock(&q.lock);
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

int authq_start(unsigned threads, unsigned max_waiting)
{
    if (threads == 0 || threads > sizeof(q.threads) / sizeof(q.threads[0]))
        return -1;
    q.max_waiting = max_waiting;
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&q.threads[i], NULL, run, NULL) != 0)
            return -1;
        q.nthreads++;
    }
    return 0;
}

void authq_stop(void)
{
    pthread_mutex_lock(&q.lock);
    q.stopping = true;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    for (unsigned i = 0; i < q.nthreads; i++)
        pthread_join(q.threads[i], NULL);
    q.nthreads = 0;
}

bool authq_check_plain(conn *c, const char *user, size_t ulen, const char *password,
                       size_t plen)
{
    job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return false;
    /* A name longer than any user's cannot match: checked as "" at the same
     * cost, so its refusal takes as long as any other. */
    if (ulen < sizeof(j->user)) {
        memcpy(j->user, user, ulen);
        j->ulen = ulen;
    }
    j->password = malloc(plen ? plen : 1);
    if (j->password == NULL) {
        free(j);
        return false;
    }
    memcpy(j->password, password, plen);
    j->plen = plen;
    j->c = c;
    j->slot = address_hash(c->peer) % ADDRESS_SLOTS;
    pthread_mutex_lock(&q.lock);
    bool queued = !q.stopping && q.nthreads > 0 && q.waiting < q.max_waiting &&
                  q.per_address[j->slot] < PER_ADDRESS_MAX;
    if (queued) {
        q.per_address[j->slot]++;
        conn_ref(c);
        c->sasl_wait = SASL_CHECKING;
        *q.tail = j;
        q.tail = &j->next;
        q.waiting++;
        pthread_cond_signal(&q.cond);
    }
    pthread_mutex_unlock(&q.lock);
    if (!queued) {
        memset(j->password, 0, plen);
        free(j->password);
        free(j);
    }
    return queued;
}

/* ---- failed logins per address ---- */

#define FAIL_SLOTS  1024
#define FAIL_WINDOW 60000 /* ms */

static struct {
    pthread_mutex_t lock;
    struct {
        char peer[INET6_ADDRSTRLEN];
        uint64_t since; /* the window's start */
        unsigned failures;
    } slot[FAIL_SLOTS];
} fails = {PTHREAD_MUTEX_INITIALIZER, {{"", 0, 0}}};

unsigned authq_failed(const char *peer)
{
    uint64_t now = host_now_ms();
    unsigned h = address_hash(peer);
    pthread_mutex_lock(&fails.lock);
    /* One slot per address hash: a collision shares a count (a stricter
     * delay for both, never a looser one). */
    unsigned i = h % FAIL_SLOTS;
    if (strcmp(fails.slot[i].peer, peer) != 0 ||
        now - fails.slot[i].since >= FAIL_WINDOW) {
        snprintf(fails.slot[i].peer, sizeof(fails.slot[i].peer), "%s", peer);
        fails.slot[i].since = now;
        fails.slot[i].failures = 0;
    }
    unsigned n = ++fails.slot[i].failures;
    pthread_mutex_unlock(&fails.lock);
    return n;
}
