/*
 * json.h - a small JSON reader for collections manifests: RFC 8259 text in,
 * a read-only tree out, every node and string in one arena freed at once.
 *
 * It is strict where a manifest must be: the top level is an object or an
 * array; strings are valid UTF-8 with no NUL (also not as \u0000); an object
 * may not repeat a key; integers must fit in 64 bits (numbers with a fraction
 * or an exponent are kept as "real", without a value); nesting is limited to
 * JV_MAX_DEPTH. An error names what was wrong and where (line, column).
 */
#ifndef EP_JSON_H
#define EP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JV_MAX_DEPTH 64

typedef enum jv_type {
    JV_NULL,
    JV_FALSE,
    JV_TRUE,
    JV_INT,
    JV_REAL,
    JV_STRING,
    JV_ARRAY,
    JV_OBJECT
} jv_type;

typedef struct jv {
    jv_type type;
    uint32_t n; /* string: bytes; array: items; object: members */
    union {
        int64_t i;             /* JV_INT */
        const char *s;         /* JV_STRING: n bytes and a NUL */
        const struct jv *kids; /* array: n values; object: n (key, value) pairs */
    } u;
} jv;

typedef struct jv_doc jv_doc;

/** Parses len bytes; NULL with a reason ("... at line L, column C") on bad
 * input or no memory. */
jv_doc *jv_parse(const char *text, size_t len, char *why, size_t whylen);
const jv *jv_root(const jv_doc *d);
void jv_free(jv_doc *d);

static inline bool jv_is(const jv *v, jv_type t)
{
    return v != NULL && v->type == t;
}

/** An object's member by key, or NULL (also when v is not an object). */
const jv *jv_get(const jv *v, const char *key);

/** Items of an array (0 when v is not one) and item i (i < jv_len). */
static inline size_t jv_len(const jv *v)
{
    return jv_is(v, JV_ARRAY) ? v->n : 0;
}

static inline const jv *jv_at(const jv *v, size_t i)
{
    return &v->u.kids[i];
}

/** Member i of an object (i < v->n): its key string and its value. */
static inline const jv *jv_key_at(const jv *v, size_t i)
{
    return &v->u.kids[2 * i];
}

static inline const jv *jv_value_at(const jv *v, size_t i)
{
    return &v->u.kids[2 * i + 1];
}

#endif
