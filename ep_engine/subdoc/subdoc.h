/*
 * subdoc.h - sub-document paths and operations on a JSON document (a jansson
 * tree): the part of sub-document execution that knows JSON and nothing of
 * items, locks or the wire.
 *
 * A path is dot-separated names and [n] indexes ([-1]: the last element);
 * backticks quote a name that holds '.', '[' or ']' (`` is one backtick).
 * Limits: SD_MAX_PATH bytes, SD_MAX_DEPTH components, documents and values
 * nested at most SD_MAX_DEPTH deep.
 */
#ifndef EP_SUBDOC_H
#define EP_SUBDOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SD_MAX_PATH  1024
#define SD_MAX_DEPTH 32

/* The outcome of one operation (the wire's sub-document statuses). */
typedef enum sd_status {
    SD_OK = 0,
    SD_PATH_ENOENT,      /* a component of the path is not there */
    SD_PATH_MISMATCH,    /* the path treats a value as what it is not */
    SD_PATH_EINVAL,      /* the path does not parse, or does not fit the operation */
    SD_PATH_E2BIG,       /* the path is too long or too deep */
    SD_DOC_E2DEEP,       /* the document is nested too deep */
    SD_VALUE_CANTINSERT, /* the value is not JSON that fits there */
    SD_DOC_NOTJSON,      /* the document is not JSON */
    SD_NUM_ERANGE,       /* the counter would leave the 64-bit range */
    SD_DELTA_EINVAL,     /* the delta is not a non-zero integer */
    SD_PATH_EEXISTS,     /* the path (or the value, for add_unique) exists */
    SD_VALUE_ETOODEEP,   /* the value would nest the document too deep */
    SD_NO_MEMORY,
} sd_status;

typedef enum sd_op {
    SD_GET,
    SD_EXISTS,
    SD_GET_COUNT,
    SD_DICT_ADD,
    SD_DICT_UPSERT,
    SD_DELETE,
    SD_REPLACE,
    SD_ARRAY_PUSH_LAST,
    SD_ARRAY_PUSH_FIRST,
    SD_ARRAY_INSERT,
    SD_ARRAY_ADD_UNIQUE,
    SD_COUNTER,
} sd_op;

/* Per operation: create missing intermediate objects (not array elements). */
#define SD_MKDIR_P 0x01

/* One component of a parsed path: a name, or an index (-1: the last). */
typedef struct sd_component {
    bool is_index;
    long index;
    const char *name; /* into the path's own copy, NUL-terminated */
} sd_component;

typedef struct sd_path {
    unsigned n;
    sd_component c[SD_MAX_DEPTH];
    char names[SD_MAX_PATH + 1]; /* unquoted names, each NUL-terminated */
} sd_path;

/** Parses a path (an empty one is the whole document). */
sd_status sd_path_parse(const char *path, size_t len, sd_path *out);

/** Parses a document; SD_DOC_NOTJSON or SD_DOC_E2DEEP when it cannot be used. */
sd_status sd_parse_doc(const void *bytes, size_t len, json_t **doc);

/**
 * Runs op at path on *doc: lookups read it; mutations change it in place
 * (or replace *doc). The value of get and get_count, and counter's new
 * number, come back in *result as JSON text (malloc'd, *rlen bytes); other
 * operations leave *result NULL. On failure the document may be partly
 * changed: a caller that needs all-or-nothing runs a multi-mutation on a
 * copy.
 */
sd_status sd_execute(json_t **doc, sd_op op, unsigned flags, const char *path,
                     size_t pathlen, const char *value, size_t vlen, char **result,
                     size_t *rlen);

/** Compact JSON text of v (malloc'd, *len bytes; NULL when out of memory).
 * Reals get the fewest digits (15 to 17, one count for the whole tree) with
 * which every one reads back as the same number: values are kept, their text
 * may change (1e2 prints as 100.0). */
char *sd_dump(const json_t *v, size_t *len);

/** A short name of a status (for reasons and tests). */
const char *sd_status_name(sd_status st);

#endif
