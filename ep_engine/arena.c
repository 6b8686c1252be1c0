/*
 * arena.c - blocks of item memory filled by one cursor and released whole once
 * their last allocation is freed (arena.h says when to use it). It never
 * touches an allocation after it is freed and never hands out a block twice.
 */
#include "arena.h"

#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n)   ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Added to an open block's count so that frees cannot bring it to zero while
 * its cursor may still carve from it; taken off (less the allocations made) when
 * the cursor closes it. Larger than any block's allocation count. */
#define ARENA_OPEN (UINT64_C(1) << 40)

ep_arena *arena_new(uint64_t bytes)
{
    uint64_t nblocks = (bytes + ARENA_BLOCK_BYTES - 1) / ARENA_BLOCK_BYTES;
    if (nblocks == 0 || nblocks > SIZE_MAX / ARENA_BLOCK_BYTES)
        return NULL;
    ep_arena *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->live = calloc(nblocks, sizeof(*a->live));
    a->tail = calloc(nblocks, sizeof(*a->tail));
    /* No swap space is set aside: pages are used only as blocks are filled. One
     * block more than needed, so that the blocks can start aligned. */
    a->map_bytes = (nblocks + 1) * ARENA_BLOCK_BYTES;
    a->map = mmap(NULL, a->map_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a->live == NULL || a->tail == NULL || a->map == MAP_FAILED) {
        if (a->map != MAP_FAILED)
            munmap(a->map, a->map_bytes);
        free(a->live);
        free(a->tail);
        free(a);
        return NULL;
    }
    uintptr_t align = ARENA_BLOCK_BYTES;
    a->base = (char *)(((uintptr_t)a->map + align - 1) & ~(align - 1));
    a->nblocks = nblocks;
    return a;
}

void arena_destroy(ep_arena *a)
{
    if (a == NULL)
        return;
    /* The range may be mapped again for something else: no stale poison. */
    ARENA_UNPOISON(a->base, a->nblocks * ARENA_BLOCK_BYTES);
    munmap(a->map, a->map_bytes);
    free(a->live);
    free(a->tail);
    free(a);
}

static char *block_at(const ep_arena *a, uint64_t b)
{
    return a->base + b * ARENA_BLOCK_BYTES;
}

/* The block's last allocation is gone: its pages go back to the system. */
static void release(ep_arena *a, uint64_t b)
{
    (void)madvise(block_at(a, b), ARENA_BLOCK_BYTES, MADV_DONTNEED);
    uint32_t gone = atomic_load_explicit(&a->tail[b], memory_order_relaxed);
    atomic_fetch_sub_explicit(&a->resident, ARENA_BLOCK_BYTES - gone,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&a->released, 1, memory_order_relaxed);
}

/* Drops `n` from block b's count; releases the block if that was the rest. */
static void block_drop(ep_arena *a, uint64_t b, uint64_t n)
{
    if (atomic_fetch_sub_explicit(&a->live[b], n, memory_order_acq_rel) == n)
        release(a, b);
}

void arena_cursor_close(ep_arena *a, arena_cursor *c)
{
    if (c->next != NULL) {
        /* The tail nobody will carve from holds no allocation: drop its pages now
         * (the block itself stays until its allocations are freed). */
        uintptr_t page = 4096, from = ((uintptr_t)c->next + page - 1) & ~(page - 1);
        if (from < (uintptr_t)c->end) {
            uint32_t gone = (uint32_t)((uintptr_t)c->end - from);
            (void)madvise((void *)from, gone, MADV_DONTNEED);
            /* Before the drop below, which may release the block. */
            atomic_store_explicit(&a->tail[c->block], gone, memory_order_relaxed);
            atomic_fetch_sub_explicit(&a->resident, gone, memory_order_relaxed);
        }
        block_drop(a, c->block, ARENA_OPEN - c->allocs);
    }
    c->next = c->end = NULL;
    c->allocs = 0;
}

/* Closes the cursor's block and opens the next free one; false if none is left. */
static bool open_block(ep_arena *a, arena_cursor *c)
{
    arena_cursor_close(a, c);
    uint64_t b = atomic_load_explicit(&a->next_block, memory_order_relaxed);
    do {
        if (b >= a->nblocks) {
            c->full = true;
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &a->next_block, &b, b + 1, memory_order_relaxed, memory_order_relaxed));
    atomic_store_explicit(&a->live[b], ARENA_OPEN, memory_order_relaxed);
    atomic_fetch_add_explicit(&a->resident, ARENA_BLOCK_BYTES, memory_order_relaxed);
    char *at = block_at(a, b);
#if defined(MADV_POPULATE_WRITE)
    /* All its pages in one call, not a fault each as allocations land on them. */
    (void)madvise(at, ARENA_BLOCK_BYTES, MADV_POPULATE_WRITE); /* a hint */
#endif
    c->next = at;
    c->end = at + ARENA_BLOCK_BYTES;
    c->block = b;
    return true;
}

void *arena_alloc(ep_arena *a, arena_cursor *c, size_t bytes)
{
    size_t size = (bytes + 7) & ~(size_t)7;
    if (size > ARENA_MAX_ALLOC || size == 0 || c->full)
        return NULL;
    if ((c->next == NULL || (size_t)(c->end - c->next) < size) && !open_block(a, c))
        return NULL;
    void *p = c->next;
    c->next += size;
    c->allocs++;
    return p;
}

void arena_free(ep_arena *a, void *p, size_t bytes)
{
    ARENA_POISON(p, bytes); /* under ASan, a later touch is reported */
    block_drop(a, (uint64_t)((char *)p - a->base) / ARENA_BLOCK_BYTES, 1);
}

void arena_get_stats(ep_arena *a, arena_stats *out)
{
    *out = (arena_stats){0};
    if (a == NULL)
        return;
    out->reserved_bytes = a->nblocks * ARENA_BLOCK_BYTES;
    out->resident_bytes = atomic_load_explicit(&a->resident, memory_order_relaxed);
    out->released_blocks = atomic_load_explicit(&a->released, memory_order_relaxed);
    uint64_t handed = atomic_load_explicit(&a->next_block, memory_order_relaxed);
    for (uint64_t b = 0; b < handed && b < a->nblocks; b++) {
        uint64_t n = atomic_load_explicit(&a->live[b], memory_order_relaxed);
        if (n < ARENA_OPEN)
            out->live_allocs += n;
    }
}
