/*
 * utf8.h - makes text that may hold a client's bytes valid UTF-8, for the
 * engine's error contexts and the host's JSON bodies alike (JSON is UTF-8, and
 * jansson refuses anything else).
 *
 * Shared by the engine and the host: it depends on nothing of either.
 */
#ifndef EP_UTF8_H
#define EP_UTF8_H

#include <stddef.h>

/** U+FFFD REPLACEMENT CHARACTER, what an invalid byte becomes. */
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/**
 * Copies `len` bytes of src into dst (`cap` bytes, at least 1) as well-formed
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF)
 * and NUL-terminates it. Each byte that does not begin a well-formed sequence
 * (NUL included) becomes U+FFFD; a sequence that is well-formed so far but
 * cut off by the end of src is dropped (text cut at a byte count). When dst
 * is too small it stops before the first character that does not fit, so the
 * cut is on a character boundary. Returns the bytes written, without the NUL.
 */
size_t utf8_sanitize(char *dst, size_t cap, const char *src, size_t len);

/** Whether `len` bytes are well-formed UTF-8 with no NUL. */
int utf8_valid(const char *s, size_t len);

#endif
