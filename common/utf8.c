/*
 * utf8.c - UTF-8 well-formedness and repair (utf8.h).
 */
#include "utf8.h"

#include <string.h>

/* The length of the well-formed sequence at s (n bytes available): 1-4; 0 if
 * the bytes there do not begin one; -1 if they begin one that n cuts off. */
static int sequence_at(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    if (b >= 0x01 && b <= 0x7f)
        return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) {
        need = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 3;
        if (b == 0xe0)
            lo = 0xa0; /* no overlong form */
        else if (b == 0xed)
            hi = 0x9f; /* no surrogate */
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 4;
        if (b == 0xf0)
            lo = 0x90; /* no overlong form */
        else if (b == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0; /* NUL, a continuation byte, 0xc0, 0xc1, 0xf5-0xff */
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n)
            return -1;
        unsigned char c = s[i];
        if (i == 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf)
            return 0;
    }
    return need;
}

size_t utf8_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t in = 0, out = 0;
    while (in < len) {
        int n = sequence_at(s + in, len - in);
        if (n < 0)
            break; /* cut off at the end: dropped */
        const char *piece = n > 0 ? src + in : UTF8_REPLACEMENT;
        size_t plen = n > 0 ? (size_t)n : sizeof(UTF8_REPLACEMENT) - 1;
        if (out + plen + 1 > cap)
            break;
        memcpy(dst + out, piece, plen);
        out += plen;
        in += n > 0 ? (size_t)n : 1;
    }
    if (cap > 0)
        dst[out] = '\0';
    return out;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        int n = sequence_at(p + i, len - i);
        if (n <= 0)
            return 0;
        i += (size_t)n;
    }
    return 1;
}
