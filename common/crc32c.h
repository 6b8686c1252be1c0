/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of the sub-document macro
 * ${Mutation.value_crc32c} and of $document.value_crc32c.
 */
#ifndef EP_CRC32C_H
#define EP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/** CRC-32C of len bytes at p (reflected polynomial 0x82f63b78, initial and
 * final value ~0: "123456789" gives 0xe3069283). */
uint32_t crc32c(const void *p, size_t len);

#endif
