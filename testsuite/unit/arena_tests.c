/*
 * arena_tests.c - unit tests (Check) of ep_engine/arena: allocations are
 * aligned, distinct and inside the range; a block is released by the free of
 * its last allocation once its cursor closed it, never before, exactly once
 * when many threads free at the same time, and its pages then leave memory;
 * requests it cannot serve are refused so that the caller uses malloc.
 */
#include "ep_engine/arena.h"

#include "run_suite.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* How many of the pages of [p, p+bytes) are resident (mincore). */
static size_t resident_pages(const void *p, size_t bytes)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = bytes / page, in = 0;
    unsigned char *vec = malloc(n);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore((void *)p, bytes, vec), 0);
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in;
}

START_TEST(allocations_are_aligned_and_distinct)
{
    ep_arena *a = arena_new(4 * (uint64_t)ARENA_BLOCK_BYTES);
    ck_assert_ptr_nonnull(a);
    arena_cursor c = {0};
    enum { N = 1000 };
    unsigned char *p[N];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        len[i] = 1 + (size_t)(i * 37) % 300;
        p[i] = arena_alloc(a, &c, len[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % 8, 0);
        ck_assert(arena_owns(a, p[i]));
        memset(p[i], i & 0xff, len[i]);
    }
    /* Nothing written over another allocation. */
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < len[i]; j++)
            ck_assert_uint_eq(p[i][j], (unsigned)(i & 0xff));
    void *heap = malloc(16);
    ck_assert(!arena_owns(a, heap));
    ck_assert(!arena_owns(NULL, heap));
    free(heap);
    arena_cursor_close(a, &c);
    for (int i = 0; i < N; i++)
        arena_free(a, p[i], len[i]);
    arena_destroy(a);
}
END_TEST

START_TEST(block_released_by_its_last_free_after_close)
{
    ep_arena *a = arena_new(2 * (uint64_t)ARENA_BLOCK_BYTES);
    ck_assert_ptr_nonnull(a);
    arena_cursor c = {0};
    arena_stats st;
    void *x = arena_alloc(a, &c, 100), *y = arena_alloc(a, &c, 100);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.reserved_bytes, 2 * (uint64_t)ARENA_BLOCK_BYTES);
    ck_assert_uint_eq(st.resident_bytes, ARENA_BLOCK_BYTES);
    /* Freed while the cursor can still carve from the block: it stays. */
    arena_free(a, x, 100);
    arena_free(a, y, 100);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.released_blocks, 0);
    ck_assert_uint_eq(st.resident_bytes, ARENA_BLOCK_BYTES);
    void *z = arena_alloc(a, &c, 100);
    ck_assert_ptr_nonnull(z);
    memset(z, 1, 100);
    arena_cursor_close(a, &c);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.released_blocks, 0);
    ck_assert_uint_eq(st.live_allocs, 1);
    arena_free(a, z, 100);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.released_blocks, 1);
    ck_assert_uint_eq(st.resident_bytes, 0);
    ck_assert_uint_eq(st.live_allocs, 0);
    /* A cursor closed with nothing left in its block releases it at once. */
    void *w = arena_alloc(a, &c, 8);
    ck_assert_ptr_nonnull(w);
    arena_free(a, w, 8);
    arena_cursor_close(a, &c);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.released_blocks, 2);
    ck_assert_uint_eq(st.resident_bytes, 0);
    arena_destroy(a);
}
END_TEST

START_TEST(released_pages_leave_memory)
{
    ep_arena *a = arena_new(ARENA_BLOCK_BYTES);
    ck_assert_ptr_nonnull(a);
    arena_cursor c = {0};
    enum { SIZE = 4000 };
    size_t n = ARENA_BLOCK_BYTES / SIZE;
    char **p = malloc(n * sizeof(*p));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = arena_alloc(a, &c, SIZE);
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], 'x', SIZE);
    }
    char *block = (char *)((uintptr_t)p[0] & ~(uintptr_t)(ARENA_BLOCK_BYTES - 1));
    ck_assert_uint_gt(resident_pages(block, ARENA_BLOCK_BYTES), ARENA_BLOCK_BYTES / 8192);
    arena_cursor_close(a, &c);
    for (size_t i = 0; i < n; i++)
        arena_free(a, p[i], SIZE);
    ck_assert_uint_eq(resident_pages(block, ARENA_BLOCK_BYTES), 0);
    free(p);
    arena_destroy(a);
}
END_TEST

START_TEST(refuses_what_it_cannot_serve)
{
    ep_arena *a = arena_new(1); /* one block */
    ck_assert_ptr_nonnull(a);
    arena_cursor c = {0};
    ck_assert_ptr_null(arena_alloc(a, &c, ARENA_MAX_ALLOC + 1));
    ck_assert_ptr_null(arena_alloc(a, &c, 0));
    ck_assert(!c.full);
    /* Fill the one block, then ask for more: refused, and stays refused. */
    size_t got = 0;
    while (arena_alloc(a, &c, ARENA_MAX_ALLOC) != NULL)
        got++;
    ck_assert_uint_eq(got, ARENA_BLOCK_BYTES / ARENA_MAX_ALLOC);
    ck_assert(c.full);
    ck_assert_ptr_null(arena_alloc(a, &c, 8));
    /* A second cursor finds no block either. */
    arena_cursor d = {0};
    ck_assert_ptr_null(arena_alloc(a, &d, 8));
    ck_assert(d.full);
    arena_stats st;
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.live_allocs, got); /* closed when it looked for the next */
    arena_cursor_close(a, &c);
    arena_cursor_close(a, &d);
    arena_destroy(a);
}
END_TEST

/* Threads free interleaved allocations of several blocks at once. */
enum { FREERS = 4, PER_BLOCK = 500, BLOCKS = 6 };
typedef struct freer {
    ep_arena *a;
    void **p;
    size_t n, first;
} freer;

static void *free_every_fourth(void *arg)
{
    freer *f = arg;
    for (size_t i = f->first; i < f->n; i += FREERS)
        arena_free(f->a, f->p[i], 64);
    return NULL;
}

START_TEST(concurrent_frees_release_each_block_once)
{
    ep_arena *a = arena_new(BLOCKS * (uint64_t)ARENA_BLOCK_BYTES);
    ck_assert_ptr_nonnull(a);
    size_t n = (size_t)BLOCKS * PER_BLOCK;
    void **p = malloc(n * sizeof(*p));
    ck_assert_ptr_nonnull(p);
    /* Each cursor fills one block: PER_BLOCK allocations, then closes it. */
    for (int b = 0; b < BLOCKS; b++) {
        arena_cursor c = {0};
        for (int i = 0; i < PER_BLOCK; i++) {
            p[b * PER_BLOCK + i] = arena_alloc(a, &c, 64);
            ck_assert_ptr_nonnull(p[b * PER_BLOCK + i]);
        }
        arena_cursor_close(a, &c);
    }
    arena_stats st;
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.live_allocs, n);
    /* Each closed block keeps the pages its allocations touch; its tail went. */
    ck_assert_uint_eq(st.resident_bytes,
                      BLOCKS * (((uint64_t)PER_BLOCK * 64 + 4095) & ~4095u));
    pthread_t t[FREERS];
    freer f[FREERS];
    for (int i = 0; i < FREERS; i++) {
        f[i] = (freer){a, p, n, (size_t)i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, free_every_fourth, &f[i]), 0);
    }
    for (int i = 0; i < FREERS; i++)
        pthread_join(t[i], NULL);
    arena_get_stats(a, &st);
    ck_assert_uint_eq(st.released_blocks, BLOCKS);
    ck_assert_uint_eq(st.resident_bytes, 0);
    ck_assert_uint_eq(st.live_allocs, 0);
    free(p);
    arena_destroy(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, allocations_are_aligned_and_distinct);
    tcase_add_test(tc, block_released_by_its_last_free_after_close);
    tcase_add_test(tc, released_pages_leave_memory);
    tcase_add_test(tc, refuses_what_it_cannot_serve);
    tcase_add_test(tc, concurrent_frees_release_each_block_once);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
