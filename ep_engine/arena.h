/*
 * arena.h - memory for items that one thread makes in bulk (warmup), taken
 * from a range reserved once instead of from malloc.
 *
 * The range is cut into blocks of ARENA_BLOCK_BYTES. A cursor (one per
 * allocating thread) fills one block front to back, making its pages present
 * in one call when it opens it; any thread may free an item later. A block goes
 * back to the system (its pages dropped, its address range kept) once every
 * item in it has been freed, and it is never handed out again: the arena never
 * reuses an item's memory, so it holds at most what was allocated from it.
 *
 * Why: warmup allocates hundreds of MB of items in a row, and malloc grew its
 * arenas a few pages at a time (an mprotect each, taking the address-space lock
 * for writing, which the other warmup thread waited for), paid a chunk header
 * per item and a page fault per page. It must never be used for memory that is
 * freed and allocated again at a steady rate (the front end's items): that
 * memory would only be given back when a whole block has emptied.
 */
#ifndef EP_ARENA_H
#define EP_ARENA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A block is what one page table maps (2 MiB on x86-64 and arm64 with 4 KiB
 * pages), aligned to it: two threads filling their blocks at once then take
 * different page-table locks (two 1 MiB blocks in one table made the kernel's
 * lock a sixth of warmup's page-populating time). */
#define ARENA_BLOCK_BYTES (2u << 20)
/** Larger allocations are refused (the caller uses malloc): a block's unused
 * tail is then at most 1/16 of it. */
#define ARENA_MAX_ALLOC (ARENA_BLOCK_BYTES / 16)

typedef struct ep_arena ep_arena;

/** One allocating thread's place in the arena. Zero-initialise it; close it
 * with arena_cursor_close when done (its block can be released only then). */
typedef struct arena_cursor {
    char *next, *end; /* free space left in the open block, or NULL */
    uint64_t block;   /* the open block's number */
    uint64_t allocs;  /* made from the open block */
    bool full;        /* the arena had no block left for this cursor */
} arena_cursor;

typedef struct arena_stats {
    uint64_t reserved_bytes; /* the address range */
    uint64_t resident_bytes; /* of blocks handed out, less what was dropped */
    uint64_t live_allocs;    /* allocations not yet freed, in closed blocks */
    uint64_t released_blocks;
} arena_stats;

/** Reserves `bytes` of address space (rounded up to whole blocks); no memory is
 * used until blocks are handed out. NULL if it cannot be reserved. */
ep_arena *arena_new(uint64_t bytes);

/** Unmaps the range. Every allocation must have been freed or never be
 * touched again. NULL is ignored. */
void arena_destroy(ep_arena *a);

/** Whether p is in the arena's range (then arena_free is its free). */
static inline bool arena_owns(const ep_arena *a, const void *p);

/** `bytes` of memory aligned to 8, from the cursor's block; NULL when the
 * request is over ARENA_MAX_ALLOC or no block is left (use malloc). Only the
 * cursor's thread calls it. */
void *arena_alloc(ep_arena *a, arena_cursor *c, size_t bytes);

/** Closes the cursor's block: from now on it is released when its last
 * allocation is freed (at once if none is left). The cursor may be used again. */
void arena_cursor_close(ep_arena *a, arena_cursor *c);

/** Frees an allocation of `bytes` (as asked for); any thread. The block's
 * pages are dropped (one madvise) when this was its last allocation. */
void arena_free(ep_arena *a, void *p, size_t bytes);

void arena_get_stats(ep_arena *a, arena_stats *out);

/* ---- inline ---- */

struct ep_arena {
    char *base; /* aligned to ARENA_BLOCK_BYTES */
    void *map;  /* the mapping, and its length */
    size_t map_bytes;
    uint64_t nblocks;
    _Atomic uint64_t next_block; /* blocks handed out */
    _Atomic uint64_t resident;   /* bytes of them not given back */
    _Atomic uint64_t released;
    /* Per block: allocations not freed, plus ARENA_OPEN while a cursor fills it;
     * and the bytes of its tail given back when its cursor closed it. */
    _Atomic uint64_t *live;
    _Atomic uint32_t *tail;
};

static inline bool arena_owns(const ep_arena *a, const void *p)
{
    uintptr_t at = (uintptr_t)p, base = (uintptr_t)(a != NULL ? a->base : NULL);
    return a != NULL && at >= base && at - base < a->nblocks * ARENA_BLOCK_BYTES;
}

#endif
