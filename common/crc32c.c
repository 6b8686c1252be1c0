/*
 * crc32c.c - CRC-32C, a byte at a time through a 256-entry table built once.
 * Neither libcrypto nor zlib computes this polynomial, and Debian packages no
 * C library that does; the table is the whole algorithm.
 */
#include "crc32c.h"

#include <pthread.h>

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        table[i] = c;
    }
}

uint32_t crc32c(const void *p, size_t len)
{
    pthread_once(&table_once, build_table);
    const unsigned char *b = p;
    uint32_t c = ~0u;
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ b[i]) & 0xff] ^ (c >> 8);
    return ~c;
}
