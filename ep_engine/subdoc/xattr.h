/*
 * xattr.h - the extended-attribute section of a value (datatype bit 0x04):
 * reading, checking and writing it. It knows bytes and JSON, nothing of items.
 *
 * Layout (the wire's and the disk's): a big-endian u32 with the length of
 * what follows it, then pairs, each a big-endian u32 with the pair's length,
 * the key, a NUL, the value (JSON text), a NUL. The body follows the section.
 *
 * Keys are 1 to XA_MAX_KEY bytes of UTF-8 without control characters, whose
 * first character is no punctuation but for '_' (a system attribute, at
 * least 2 bytes) and '$' (virtual: computed, never stored). System pairs
 * and the header take at most XA_MAX_SYSTEM bytes; the rest counts against
 * the item size limit like the body.
 */
#ifndef EP_XATTR_H
#define EP_XATTR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XA_MAX_KEY    15
#define XA_MAX_SYSTEM ((size_t)1 << 20) /* system pairs and the header, in bytes */

/** Whether key (klen bytes) may name a stored attribute; why not in *why. */
bool xa_key_valid(const char *key, size_t klen, const char **why);

/** Whether key is a system attribute's. */
static inline bool xa_key_system(const char *key)
{
    return key[0] == '_';
}

/**
 * Checks the section at the start of value (len bytes): the header fits,
 * every pair is whole, keys are valid and unique, values are JSON. On
 * success *xlen is the section's size, header included (the body starts
 * there); on failure *why says what is wrong.
 */
bool xa_check(const void *value, size_t len, size_t *xlen, const char **why);

/** The section's size, header included, of a value already checked (0 when
 * it does not fit: treat as damaged). */
size_t xa_size(const void *value, size_t len);

/**
 * The attributes of a checked section as an object (key -> parsed value, in
 * order). NULL when out of memory.
 */
json_t *xa_to_object(const void *section, size_t xlen);

/**
 * Writes obj's attributes (each value compact JSON) as a section into a new
 * buffer: *out (malloc'd, *outlen bytes; NULL and 0 for an empty object, which
 * needs no section). False when out of memory or when the system pairs take
 * more than XA_MAX_SYSTEM (*too_big).
 */
bool xa_from_object(const json_t *obj, char **out, size_t *outlen, bool *too_big);

#endif
