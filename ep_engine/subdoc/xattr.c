/*
 * xattr.c - the extended-attribute section of a value (xattr.h).
 */
#include "xattr.h"

#include "../../common/utf8.h"
#include "subdoc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

bool xa_key_valid(const char *key, size_t klen, const char **why)
{
    if (klen == 0) {
        *why = "an attribute's key is empty";
        return false;
    }
    if (klen > XA_MAX_KEY) {
        *why = "an attribute's key is longer than 15 bytes";
        return false;
    }
    if (!utf8_valid(key, klen)) {
        *why = "an attribute's key is not UTF-8";
        return false;
    }
    for (size_t i = 0; i < klen; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f) {
            *why = "an attribute's key holds a control character";
            return false;
        }
    if (key[0] == '$') {
        *why = "an attribute's key starting with '$' is virtual";
        return false;
    }
    if (ispunct((unsigned char)key[0]) && (key[0] != '_' || klen < 2)) {
        *why = "an attribute's key starts with punctuation (or is a lone '_')";
        return false;
    }
    return true;
}

size_t xa_size(const void *value, size_t len)
{
    if (len < 4)
        return 0;
    size_t total = (size_t)be32(value) + 4;
    return total <= len ? total : 0;
}

bool xa_check(const void *value, size_t len, size_t *xlen, const char **why)
{
    const unsigned char *v = value;
    size_t total = xa_size(value, len);
    if (total == 0) {
        *why = "the attribute section is longer than the value";
        return false;
    }
    json_t *seen = json_object(); /* keys so far: no key twice */
    if (seen == NULL) {
        *why = "out of memory";
        return false;
    }
    bool ok = true;
    size_t at = 4, system = 4;
    while (ok && at < total) {
        if (total - at < 4) {
            *why = "an attribute's length is cut";
            ok = false;
            break;
        }
        size_t plen = be32(v + at);
        at += 4;
        const char *k = (const char *)v + at;
        const char *knul = plen <= total - at ? memchr(k, '\0', plen) : NULL;
        const char *vend = knul != NULL ? k + plen - 1 : NULL;
        if (knul == NULL || knul >= vend || *vend != '\0') {
            *why = "an attribute is not key NUL value NUL within its length";
            ok = false;
            break;
        }
        size_t klen = (size_t)(knul - k), vlen = (size_t)(vend - knul - 1);
        ok = xa_key_valid(k, klen, why);
        if (ok && json_object_get(seen, k) != NULL) {
            *why = "an attribute's key appears twice";
            ok = false;
        }
        if (ok && json_object_set_new(seen, k, json_true()) != 0) {
            *why = "out of memory";
            ok = false;
        }
        json_t *parsed = NULL;
        if (ok && sd_parse_doc(knul + 1, vlen, &parsed) != SD_OK) {
            *why = "an attribute's value is not JSON (or nests deeper than 32)";
            ok = false;
        }
        json_decref(parsed);
        if (xa_key_system(k))
            system += 4 + plen;
        at += plen;
    }
    json_decref(seen);
    if (ok && system > XA_MAX_SYSTEM) {
        *why = "the system attributes take more than 1 MiB";
        ok = false;
    }
    if (ok)
        *xlen = total;
    return ok;
}

json_t *xa_to_object(const void *section, size_t xlen)
{
    const unsigned char *v = section;
    json_t *obj = json_object();
    for (size_t at = 4; obj != NULL && at + 4 <= xlen;) {
        size_t plen = be32(v + at);
        const char *k = (const char *)v + at + 4;
        size_t klen = strlen(k);
        at += 4 + plen;
        json_t *val = NULL;
        if (sd_parse_doc(k + klen + 1, plen - klen - 2, &val) != SD_OK ||
            json_object_set_new(obj, k, val) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

bool xa_from_object(const json_t *obj, char **out, size_t *outlen, bool *too_big)
{
    *out = NULL;
    *outlen = 0;
    *too_big = false;
    if (json_object_size(obj) == 0)
        return true;
    size_t cap = 256, len = 4, system = 4;
    unsigned char *buf = malloc(cap);
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val)
    {
        size_t vlen = 0, klen = strlen(k);
        char *text = buf != NULL ? sd_dump(val, &vlen) : NULL;
        size_t need = len + 4 + klen + 1 + vlen + 1;
        if (xa_key_system(k))
            system += need - len;
        if (text != NULL && system > XA_MAX_SYSTEM) {
            *too_big = true;
            free(text);
            text = NULL;
        }
        if (text != NULL && need > cap) {
            while (cap < need)
                cap *= 2;
            unsigned char *grown = realloc(buf, cap);
            if (grown == NULL) {
                free(text);
                text = NULL;
            } else {
                buf = grown;
            }
        }
        if (text == NULL) {
            free(buf);
            return false;
        }
        put_be32(buf + len, (uint32_t)(klen + 1 + vlen + 1));
        memcpy(buf + len + 4, k, klen + 1);
        memcpy(buf + len + 4 + klen + 1, text, vlen);
        buf[len + 4 + klen + 1 + vlen] = '\0';
        len = need;
        free(text);
    }
    put_be32(buf, (uint32_t)(len - 4));
    *out = (char *)buf;
    *outlen = len;
    return true;
}
