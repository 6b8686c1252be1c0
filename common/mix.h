/*
 * mix.h - a 64-bit finalizer that spreads every input bit over the whole word
 * (MurmurHash3's fmix64 constants): the last step of the engine's key hash and
 * of the manifest's lookup indexes.
 */
#ifndef EP_COMMON_MIX_H
#define EP_COMMON_MIX_H

#include <stdint.h>

static inline uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

#endif
