/*
 * json.c - the manifest's JSON reader (json.h).
 *
 * One pass, recursive descent. Each value is pushed on a work stack; when a
 * container closes, its children move from the stack into the arena as one
 * contiguous array, so a node costs no allocation of its own and the tree is
 * freed by dropping the arena's few large chunks.
 */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((size_t)256 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} chunk;

struct jv_doc {
    chunk *chunks;
    jv root;
};

typedef struct parser {
    const unsigned char *p, *start, *end;
    jv_doc *doc;
    jv *stack; /* values of containers not yet closed */
    size_t n, cap;
    char *why;
    size_t whylen;
    bool failed;
} parser;

/* ---- arena ---- */

static void *arena(parser *ps, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    chunk *c = ps->doc->chunks;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > CHUNK ? size : CHUNK;
        c = malloc(sizeof(chunk) + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = ps->doc->chunks;
        ps->doc->chunks = c;
    }
    void *out = c->mem + c->used;
    c->used += size;
    return out;
}

/* ---- errors ---- */

__attribute__((format(printf, 2, 3))) static bool fail(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return false;
    ps->failed = true;
    size_t line = 1, col = 1;
    for (const unsigned char *q = ps->start; q < ps->p && q < ps->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ps->why, ps->whylen, "%s at line %zu, column %zu", msg, line, col);
    return false;
}

/* ---- the work stack ---- */

static bool push(parser *ps, jv v)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        jv *grown = realloc(ps->stack, cap * sizeof(jv));
        if (grown == NULL)
            return fail(ps, "out of memory");
        ps->stack = grown;
        ps->cap = cap;
    }
    ps->stack[ps->n++] = v;
    return true;
}

/* Moves the top `count` values into the arena: the container's children. */
static const jv *settle(parser *ps, size_t count)
{
    if (count == 0)
        return NULL;
    jv *kids = arena(ps, count * sizeof(jv));
    if (kids == NULL) {
        fail(ps, "out of memory");
        return NULL;
    }
    ps->n -= count;
    memcpy(kids, ps->stack + ps->n, count * sizeof(jv));
    return kids;
}

/* ---- scanning ---- */

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int hex4(const unsigned char *q)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = q[i] >= '0' && q[i] <= '9'   ? q[i] - '0'
                : q[i] >= 'a' && q[i] <= 'f' ? q[i] - 'a' + 10
                : q[i] >= 'A' && q[i] <= 'F' ? q[i] - 'A' + 10
                                             : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at q (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *q, const unsigned char *end)
{
    size_t need;
    uint32_t cp, min;
    if (q[0] >= 0xC2 && q[0] <= 0xDF) {
        need = 2, cp = q[0] & 0x1Fu, min = 0x80;
    } else if (q[0] >= 0xE0 && q[0] <= 0xEF) {
        need = 3, cp = q[0] & 0x0Fu, min = 0x800;
    } else if (q[0] >= 0xF0 && q[0] <= 0xF4) {
        need = 4, cp = q[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - q) < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((q[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (q[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/* A string at ps->p (the opening quote): pushed as JV_STRING. */
static bool parse_string(parser *ps)
{
    const unsigned char *q = ps->p + 1;
    /* The decoded text is never longer than the source: size the copy by it. */
    const unsigned char *close = q;
    while (close < ps->end && *close != '"') {
        if (*close == '\\' && close + 1 < ps->end)
            close++;
        close++;
    }
    if (close >= ps->end)
        return fail(ps, "unterminated string");
    size_t max = (size_t)(close - q);
    if (max > UINT32_MAX)
        return fail(ps, "string too long");
    unsigned char *out = arena(ps, max + 1);
    if (out == NULL)
        return fail(ps, "out of memory");
    size_t n = 0;
    while (q < close) {
        unsigned char c = *q;
        if (c < 0x20) {
            ps->p = q;
            return fail(ps, "control character 0x%02x in a string", c);
        }
        if (c >= 0x80) {
            size_t len = utf8_seq(q, close);
            if (len == 0) {
                ps->p = q;
                return fail(ps, "invalid UTF-8 in a string");
            }
            memcpy(out + n, q, len);
            n += len;
            q += len;
            continue;
        }
        if (c != '\\') {
            out[n++] = c;
            q++;
            continue;
        }
        ps->p = q;
        q++;
        switch (*q) {
        case '"':
        case '\\':
        case '/':
            out[n++] = *q++;
            continue;
        case 'b':
            out[n++] = '\b', q++;
            continue;
        case 'f':
            out[n++] = '\f', q++;
            continue;
        case 'n':
            out[n++] = '\n', q++;
            continue;
        case 'r':
            out[n++] = '\r', q++;
            continue;
        case 't':
            out[n++] = '\t', q++;
            continue;
        case 'u':
            break;
        default:
            return fail(ps, "invalid escape in a string");
        }
        int hi = close - q >= 5 ? hex4(q + 1) : -1;
        if (hi < 0)
            return fail(ps, "invalid \\u escape in a string");
        q += 5;
        uint32_t cp = (uint32_t)hi;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(ps, "lone low surrogate \\u%04X in a string", cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = close - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(ps, "high surrogate \\u%04X without its pair in a string",
                            cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            q += 6;
        }
        if (cp == 0)
            return fail(ps, "\\u0000 is not allowed in a string");
        n += put_utf8(out + n, cp);
    }
    out[n] = '\0';
    ps->p = close + 1;
    return push(ps, (jv){JV_STRING, (uint32_t)n, {.s = (const char *)out}});
}

static bool parse_number(parser *ps)
{
    const unsigned char *q = ps->p;
    bool neg = q < ps->end && *q == '-';
    if (neg)
        q++;
    if (q >= ps->end || *q < '0' || *q > '9')
        return fail(ps, "invalid number");
    uint64_t mag = 0;
    bool overflow = false;
    if (*q == '0') {
        q++;
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') {
            unsigned d = (unsigned)(*q - '0');
            if (mag > (UINT64_MAX - d) / 10)
                overflow = true;
            else
                mag = mag * 10 + d;
            q++;
        }
    }
    bool real = false;
    if (q < ps->end && *q == '.') {
        real = true;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            ps->p = q;
            return fail(ps, "invalid number: a digit must follow '.'");
        }
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            ps->p = q;
            return fail(ps, "invalid number: a digit must follow the exponent");
        }
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (!real &&
        (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX)))
        return fail(ps, "integer too big");
    ps->p = q;
    jv v = {real ? JV_REAL : JV_INT, 0, {.i = 0}};
    if (!real)
        v.u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return push(ps, v);
}

static bool literal(parser *ps, const char *word, jv_type t)
{
    size_t len = strlen(word);
    if ((size_t)(ps->end - ps->p) < len || memcmp(ps->p, word, len) != 0)
        return fail(ps, "invalid token");
    ps->p += len;
    return push(ps, (jv){t, 0, {.i = 0}});
}

static int key_order(const jv *x, const jv *y)
{
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->u.s, y->u.s, x->n);
}

static int key_cmp(const void *a, const void *b)
{
    return key_order(*(const jv *const *)a, *(const jv *const *)b);
}

/* Fails if a key appears twice among the n members (pairs) at kids. Small
 * objects compare every pair; big ones sort their keys (no quadratic input). */
static bool unique_keys(parser *ps, const jv *kids, size_t n)
{
    const jv *dup = NULL;
    if (n <= 8) {
        for (size_t i = 1; i < n && dup == NULL; i++)
            for (size_t j = 0; j < i && dup == NULL; j++)
                if (key_order(&kids[2 * i], &kids[2 * j]) == 0)
                    dup = &kids[2 * i];
    } else {
        const jv **keys = malloc(n * sizeof(const jv *));
        if (keys == NULL)
            return fail(ps, "out of memory");
        for (size_t i = 0; i < n; i++)
            keys[i] = &kids[2 * i];
        qsort((void *)keys, n, sizeof(const jv *), key_cmp);
        for (size_t i = 1; i < n && dup == NULL; i++)
            if (key_order(keys[i - 1], keys[i]) == 0)
                dup = keys[i];
        free(keys);
    }
    if (dup != NULL)
        return fail(ps, "duplicate object key \"%.64s\"", dup->u.s);
    return true;
}

static bool parse_value(parser *ps, int depth);

static bool parse_container(parser *ps, int depth, bool object)
{
    if (depth >= JV_MAX_DEPTH)
        return fail(ps, "nested deeper than %d levels", JV_MAX_DEPTH);
    const unsigned char close = object ? '}' : ']';
    size_t base = ps->n;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            skip_ws(ps);
            if (object) {
                if (ps->p >= ps->end || *ps->p != '"')
                    return fail(ps, "string or '}' expected");
                if (!parse_string(ps))
                    return false;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':')
                    return fail(ps, "':' expected");
                ps->p++;
                skip_ws(ps);
            }
            if (!parse_value(ps, depth + 1))
                return false;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            return fail(ps, object ? "',' or '}' expected" : "',' or ']' expected");
        }
    }
    size_t count = ps->n - base;
    if (count / (object ? 2 : 1) > UINT32_MAX)
        return fail(ps, "too many members");
    if (object && count > 0 && !unique_keys(ps, ps->stack + base, count / 2))
        return false;
    const jv *kids = settle(ps, count);
    if (ps->failed)
        return false;
    jv v = {object ? JV_OBJECT : JV_ARRAY,
            (uint32_t)(object ? count / 2 : count),
            {.kids = kids}};
    return push(ps, v);
}

static bool parse_value(parser *ps, int depth)
{
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{':
        return parse_container(ps, depth, true);
    case '[':
        return parse_container(ps, depth, false);
    case '"':
        return parse_string(ps);
    case 't':
        return literal(ps, "true", JV_TRUE);
    case 'f':
        return literal(ps, "false", JV_FALSE);
    case 'n':
        return literal(ps, "null", JV_NULL);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps);
        return fail(ps, "invalid token");
    }
}

jv_doc *jv_parse(const char *text, size_t len, char *why, size_t whylen)
{
    jv_doc *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    const unsigned char *t = (const unsigned char *)(text ? text : "");
    parser ps = {t, t, t + (text ? len : 0), d, NULL, 0, 0, why, whylen, false};
    skip_ws(&ps);
    bool ok;
    if (ps.p < ps.end && (*ps.p == '{' || *ps.p == '['))
        ok = parse_value(&ps, 0);
    else
        ok = fail(&ps, "'{' or '[' expected");
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            ok = fail(&ps, "end of input expected");
    }
    if (ok)
        d->root = ps.stack[0];
    free(ps.stack);
    if (!ok) {
        jv_free(d);
        return NULL;
    }
    return d;
}

const jv *jv_root(const jv_doc *d)
{
    return &d->root;
}

void jv_free(jv_doc *d)
{
    if (d == NULL)
        return;
    for (chunk *c = d->chunks, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(d);
}

const jv *jv_get(const jv *v, const char *key)
{
    if (!jv_is(v, JV_OBJECT))
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < v->n; i++) {
        const jv *k = jv_key_at(v, i);
        if (k->n == len && memcmp(k->u.s, key, len) == 0)
            return jv_value_at(v, i);
    }
    return NULL;
}
