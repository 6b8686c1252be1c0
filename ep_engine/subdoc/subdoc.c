/*
 * subdoc.c - sub-document paths and operations on a jansson tree (subdoc.h).
 */
#include "subdoc.h"

#include "../../common/utf8.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- paths ---- */

/* Reads [n] at p (p points after '['): the index, or -1 for "last". */
static sd_status parse_index(const char **p, const char *end, long *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return SD_PATH_EINVAL;
    long v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (LONG_MAX - 9) / 10)
            return SD_PATH_EINVAL;
        v = v * 10 + (*s++ - '0');
    }
    if (s >= end || *s != ']')
        return SD_PATH_EINVAL;
    if (neg && v != 1)
        return SD_PATH_EINVAL; /* only [-1], the last element */
    *out = neg ? -1 : v;
    *p = s + 1;
    return SD_OK;
}

sd_status sd_path_parse(const char *path, size_t len, sd_path *out)
{
    out->n = 0;
    if (len > SD_MAX_PATH)
        return SD_PATH_E2BIG;
    if (!utf8_valid(path, len))
        return SD_PATH_EINVAL; /* JSON names are UTF-8 */
    const char *p = path, *end = path + len;
    char *w = out->names;
    while (p < end) {
        if (out->n == SD_MAX_DEPTH)
            return SD_PATH_E2BIG;
        sd_component *c = &out->c[out->n];
        if (*p == '[') {
            /* An index: only after a component (or at the start: the root). */
            p++;
            c->is_index = true;
            c->name = NULL;
            sd_status st = parse_index(&p, end, &c->index);
            if (st != SD_OK)
                return st;
        } else {
            /* A name, up to '.', '[' or the end; backticks quote. */
            c->is_index = false;
            c->name = w;
            bool quoted = false;
            const char *start = p;
            while (p < end) {
                if (*p == '`') {
                    if (quoted && p + 1 < end && p[1] == '`') {
                        *w++ = '`';
                        p += 2;
                        continue;
                    }
                    quoted = !quoted;
                    p++;
                    continue;
                }
                if (!quoted && (*p == '.' || *p == '[' || *p == ']'))
                    break;
                if (*p == '\0')
                    return SD_PATH_EINVAL;
                *w++ = *p++;
            }
            if (quoted || p == start || (p < end && *p == ']'))
                return SD_PATH_EINVAL;
            *w++ = '\0';
        }
        out->n++;
        if (p < end && *p == '.') {
            p++;
            if (p == end)
                return SD_PATH_EINVAL; /* a trailing dot */
        } else if (p < end && *p != '[') {
            return SD_PATH_EINVAL;
        }
    }
    return SD_OK;
}

/* ---- documents ---- */

static unsigned depth_of(const json_t *v)
{
    unsigned d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            unsigned e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            unsigned e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

sd_status sd_parse_doc(const void *bytes, size_t len, json_t **doc)
{
    json_error_t err;
    /* Deeper than jansson's own limit is refused by jansson (not JSON to us). */
    *doc = json_loadb(bytes, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (*doc == NULL)
        return SD_DOC_NOTJSON;
    if (depth_of(*doc) > SD_MAX_DEPTH) {
        json_decref(*doc);
        *doc = NULL;
        return SD_DOC_E2DEEP;
    }
    return SD_OK;
}

/* The element of array a at index i (-1: the last), or NULL. */
static json_t *element(json_t *a, long i)
{
    size_t n = json_array_size(a);
    if (i == -1)
        return n > 0 ? json_array_get(a, n - 1) : NULL;
    return (size_t)i < n ? json_array_get(a, (size_t)i) : NULL;
}

/*
 * Walks components [0, upto) of path from the root; the node reached in
 * *node. With mkdir_p, missing names are created as objects (indexes are
 * never created).
 */
static sd_status walk(json_t *root, const sd_path *path, unsigned upto, bool mkdir_p,
                      json_t **node)
{
    json_t *cur = root;
    for (unsigned i = 0; i < upto; i++) {
        const sd_component *c = &path->c[i];
        if (c->is_index) {
            if (!json_is_array(cur))
                return SD_PATH_MISMATCH;
            json_t *next = element(cur, c->index);
            if (next == NULL)
                return SD_PATH_ENOENT;
            cur = next;
        } else {
            if (!json_is_object(cur))
                return SD_PATH_MISMATCH;
            json_t *next = json_object_get(cur, c->name);
            if (next == NULL) {
                if (!mkdir_p)
                    return SD_PATH_ENOENT;
                next = json_object();
                if (next == NULL || json_object_set_new(cur, c->name, next) != 0)
                    return SD_NO_MEMORY;
            }
            cur = next;
        }
    }
    *node = cur;
    return SD_OK;
}

/* Parses a value to insert: one JSON value, or (list) several separated by
 * commas, as an array. */
static sd_status parse_value(const char *value, size_t vlen, bool list, json_t **out)
{
    json_error_t err;
    if (!list) {
        *out = json_loadb(value, vlen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    } else {
        char *wrapped = malloc(vlen + 2);
        if (wrapped == NULL)
            return SD_NO_MEMORY;
        wrapped[0] = '[';
        memcpy(wrapped + 1, value, vlen);
        wrapped[vlen + 1] = ']';
        *out = json_loadb(wrapped, vlen + 2, JSON_REJECT_DUPLICATES, &err);
        free(wrapped);
        if (*out != NULL && json_array_size(*out) == 0) {
            json_decref(*out);
            *out = NULL;
        }
    }
    if (vlen == 0 || *out == NULL)
        return SD_VALUE_CANTINSERT;
    return SD_OK;
}

/* Whether every real in v reads back from `digits` significant digits. */
static bool reals_fit(const json_t *v, int digits)
{
    if (json_is_real(v)) {
        char buf[40];
        double d = json_real_value(v);
        snprintf(buf, sizeof(buf), "%.*g", digits, d);
        return strtod(buf, NULL) == d;
    }
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) if (!reals_fit(x, digits)) return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!reals_fit(x, digits)) return false;
    }
    return true;
}

char *sd_dump(const json_t *v, size_t *len)
{
    int digits = 15;
    while (digits < 17 && !reals_fit(v, digits))
        digits++;
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(digits));
    if (s != NULL)
        *len = strlen(s);
    return s;
}

static sd_status dump(const json_t *v, char **result, size_t *rlen)
{
    *result = sd_dump(v, rlen);
    return *result != NULL ? SD_OK : SD_NO_MEMORY;
}

static bool primitive(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

/* A counter's delta: a non-zero integer in the 64-bit range. */
static sd_status parse_delta(const char *value, size_t vlen, long long *delta)
{
    char buf[32];
    if (vlen == 0 || vlen >= sizeof(buf))
        return SD_DELTA_EINVAL;
    memcpy(buf, value, vlen);
    buf[vlen] = '\0';
    char *end;
    errno = 0;
    long long d = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || d == 0 ||
        !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
        return SD_DELTA_EINVAL;
    *delta = d;
    return SD_OK;
}

/* A counter's new number from the current value (NULL: none, counts from 0):
 * PATH_MISMATCH if that is not an integer, VALUE_CANTINSERT if the sum leaves
 * the 64-bit range. */
static sd_status counter_value(const json_t *cur, const char *value, size_t vlen,
                               json_t **out)
{
    long long delta, now = 0;
    sd_status d = parse_delta(value, vlen, &delta);
    if (d != SD_OK)
        return d;
    if (cur != NULL && !json_is_integer(cur))
        return SD_PATH_MISMATCH;
    if (cur != NULL)
        now = json_integer_value(cur);
    if ((delta > 0 && now > LLONG_MAX - delta) || (delta < 0 && now < LLONG_MIN - delta))
        return SD_VALUE_CANTINSERT;
    *out = json_integer(now + delta);
    return *out != NULL ? SD_OK : SD_NO_MEMORY;
}

/* Mutations whose last component names a place in a container. */
static sd_status at_last(json_t *root, const sd_path *path, sd_op op, bool mkdir_p,
                         json_t *val, const char *value, size_t vlen, char **result,
                         size_t *rlen)
{
    json_t *parent;
    const sd_component *last = &path->c[path->n - 1];
    sd_status st = walk(root, path, path->n - 1, mkdir_p, &parent);
    if (st != SD_OK)
        return st;
    if (last->is_index) {
        if (!json_is_array(parent))
            return SD_PATH_MISMATCH;
        size_t n = json_array_size(parent);
        if (op == SD_ARRAY_INSERT) {
            if (last->index < 0)
                return SD_PATH_EINVAL;
            if ((size_t)last->index > n)
                return SD_PATH_ENOENT;
            return json_array_insert(parent, (size_t)last->index, val) ? SD_NO_MEMORY
                                                                       : SD_OK;
        }
        if (n == 0 || (last->index >= 0 && (size_t)last->index >= n))
            return SD_PATH_ENOENT;
        size_t i = last->index < 0 ? n - 1 : (size_t)last->index;
        switch (op) {
        case SD_DELETE:
            return json_array_remove(parent, i) ? SD_NO_MEMORY : SD_OK;
        case SD_REPLACE:
            return json_array_set(parent, i, val) ? SD_NO_MEMORY : SD_OK;
        case SD_COUNTER: {
            json_t *c;
            sd_status d = counter_value(json_array_get(parent, i), value, vlen, &c);
            if (d != SD_OK)
                return d;
            if (json_array_set_new(parent, i, c) != 0)
                return SD_NO_MEMORY;
            return dump(c, result, rlen);
        }
        case SD_DICT_ADD:
        case SD_DICT_UPSERT:
            return SD_PATH_EINVAL; /* a dictionary operation on an array element */
        default:
            break;
        }
        return SD_PATH_EINVAL;
    }
    if (op == SD_ARRAY_INSERT)
        return SD_PATH_EINVAL; /* needs an index */
    if (!json_is_object(parent))
        return SD_PATH_MISMATCH;
    json_t *cur = json_object_get(parent, last->name);
    switch (op) {
    case SD_DICT_ADD:
        if (cur != NULL)
            return SD_PATH_EEXISTS;
        return json_object_set(parent, last->name, val) ? SD_NO_MEMORY : SD_OK;
    case SD_DICT_UPSERT:
        return json_object_set(parent, last->name, val) ? SD_NO_MEMORY : SD_OK;
    case SD_REPLACE:
        if (cur == NULL)
            return SD_PATH_ENOENT;
        return json_object_set(parent, last->name, val) ? SD_NO_MEMORY : SD_OK;
    case SD_DELETE:
        if (cur == NULL)
            return SD_PATH_ENOENT;
        return json_object_del(parent, last->name) ? SD_NO_MEMORY : SD_OK;
    case SD_COUNTER: {
        json_t *n;
        sd_status d = counter_value(cur, value, vlen, &n);
        if (d != SD_OK)
            return d;
        if (json_object_set_new(parent, last->name, n) != 0)
            return SD_NO_MEMORY;
        return dump(n, result, rlen);
    }
    default:
        return SD_PATH_EINVAL;
    }
}

sd_status sd_execute(json_t **doc, sd_op op, unsigned flags, const char *path,
                     size_t pathlen, const char *value, size_t vlen, char **result,
                     size_t *rlen)
{
    *result = NULL;
    *rlen = 0;
    sd_path p;
    sd_status st = sd_path_parse(path, pathlen, &p);
    if (st != SD_OK)
        return st;
    bool mkdir_p = flags & SD_MKDIR_P;
    json_t *node;
    switch (op) {
    case SD_GET:
    case SD_EXISTS:
    case SD_GET_COUNT:
        if (p.n == 0 && op != SD_GET_COUNT)
            return SD_PATH_EINVAL; /* the whole document is a get, not a path */
        st = walk(*doc, &p, p.n, false, &node);
        if (st != SD_OK)
            return st;
        if (op == SD_EXISTS)
            return SD_OK;
        if (op == SD_GET)
            return dump(node, result, rlen);
        if (!json_is_array(node) && !json_is_object(node))
            return SD_PATH_MISMATCH;
        {
            json_t *count =
                json_integer((json_int_t)(json_is_array(node) ? json_array_size(node)
                                                              : json_object_size(node)));
            st = count ? dump(count, result, rlen) : SD_NO_MEMORY;
            json_decref(count);
            return st;
        }
    case SD_ARRAY_PUSH_LAST:
    case SD_ARRAY_PUSH_FIRST:
    case SD_ARRAY_ADD_UNIQUE: {
        json_t *vals;
        st = parse_value(value, vlen, op != SD_ARRAY_ADD_UNIQUE, &vals);
        if (st != SD_OK)
            return st;
        if (op == SD_ARRAY_ADD_UNIQUE && !primitive(vals)) {
            json_decref(vals);
            return SD_VALUE_CANTINSERT;
        }
        st = walk(*doc, &p, p.n, false, &node);
        if (st == SD_PATH_ENOENT && mkdir_p && p.n > 0 && !p.c[p.n - 1].is_index) {
            /* The array itself is missing: made (with its parents). */
            json_t *parent;
            st = walk(*doc, &p, p.n - 1, true, &parent);
            if (st == SD_OK && !json_is_object(parent))
                st = SD_PATH_MISMATCH;
            if (st == SD_OK) {
                node = json_array();
                st = node && !json_object_set_new(parent, p.c[p.n - 1].name, node)
                         ? SD_OK
                         : SD_NO_MEMORY;
            }
        }
        if (st == SD_OK && !json_is_array(node))
            st = SD_PATH_MISMATCH;
        if (st == SD_OK && op == SD_ARRAY_ADD_UNIQUE) {
            size_t i;
            json_t *x;
            json_array_foreach(node, i, x)
            {
                if (!primitive(x)) {
                    st = SD_PATH_MISMATCH;
                    break;
                }
                if (json_equal(x, vals)) {
                    st = SD_PATH_EEXISTS;
                    break;
                }
            }
            if (st == SD_OK && json_array_append(node, vals) != 0)
                st = SD_NO_MEMORY;
        } else if (st == SD_OK && op == SD_ARRAY_PUSH_LAST) {
            if (json_array_extend(node, vals) != 0)
                st = SD_NO_MEMORY;
        } else if (st == SD_OK) {
            /* Push first: the new values, then the old ones. */
            if (json_array_extend(vals, node) != 0 || json_array_clear(node) != 0 ||
                json_array_extend(node, vals) != 0)
                st = SD_NO_MEMORY;
        }
        json_decref(vals);
        if (st == SD_OK && depth_of(*doc) > SD_MAX_DEPTH)
            st = SD_VALUE_ETOODEEP;
        return st;
    }
    case SD_DELETE:
    case SD_COUNTER:
        if (p.n == 0)
            return SD_PATH_EINVAL;
        return at_last(*doc, &p, op, mkdir_p && op == SD_COUNTER, NULL, value, vlen,
                       result, rlen);
    case SD_DICT_ADD:
    case SD_DICT_UPSERT:
    case SD_REPLACE:
    case SD_ARRAY_INSERT: {
        if (p.n == 0)
            return SD_PATH_EINVAL;
        json_t *val;
        st = parse_value(value, vlen, false, &val);
        if (st != SD_OK)
            return st;
        st = at_last(*doc, &p, op, mkdir_p && op != SD_REPLACE, val, value, vlen, result,
                     rlen);
        json_decref(val);
        if (st == SD_OK && depth_of(*doc) > SD_MAX_DEPTH)
            st = SD_VALUE_ETOODEEP;
        return st;
    }
    }
    return SD_PATH_EINVAL;
}

const char *sd_status_name(sd_status st)
{
    static const char *const names[] = {
        "success",
        "path not found",
        "path mismatch",
        "path invalid",
        "path too big",
        "document too deep",
        "value cannot insert",
        "document not JSON",
        "number out of range",
        "delta invalid",
        "path exists",
        "value too deep",
        "out of memory",
    };
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}
