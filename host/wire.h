/*
 * wire.h - the binary protocol's packets (kvhost): opcodes, status codes,
 * HELLO features, a parsed request, and writing answers into a connection's
 * output. The command handlers (cmd_*.c) and the dispatcher (protocol.c)
 * stand on it.
 */
#ifndef KVHOST_WIRE_H
#define KVHOST_WIRE_H

#include "conn.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    MAGIC_REQ = 0x80,
    MAGIC_RES = 0x81,
    MAGIC_ALT_REQ = 0x08, /* flexible framing: framing extras before the extras */
};

enum {
    OP_GET = 0x00,
    OP_SET = 0x01,
    OP_ADD = 0x02,
    OP_REPLACE = 0x03,
    OP_DELETE = 0x04,
    OP_INCR = 0x05,
    OP_DECR = 0x06,
    OP_QUIT = 0x07,
    OP_FLUSH = 0x08,
    OP_GETQ = 0x09,
    OP_NOOP = 0x0a,
    OP_VERSION = 0x0b,
    OP_GETK = 0x0c,
    OP_GETKQ = 0x0d,
    OP_APPEND = 0x0e,
    OP_PREPEND = 0x0f,
    OP_STAT = 0x10,
    OP_SETQ = 0x11,
    OP_ADDQ = 0x12,
    OP_REPLACEQ = 0x13,
    OP_DELETEQ = 0x14,
    OP_INCRQ = 0x15,
    OP_DECRQ = 0x16,
    OP_QUITQ = 0x17,
    OP_FLUSHQ = 0x18,
    OP_APPENDQ = 0x19,
    OP_PREPENDQ = 0x1a,
    OP_TOUCH = 0x1c,
    OP_GAT = 0x1d,
    OP_GATQ = 0x1e,
    OP_HELLO = 0x1f,
    OP_SASL_LIST_MECHS = 0x20,
    OP_SASL_AUTH = 0x21,
    OP_SASL_STEP = 0x22,
    OP_SELECT_BUCKET = 0x89,
    OP_GET_LOCKED = 0x94,
    OP_UNLOCK_KEY = 0x95,
    OP_GET_META = 0xa0,
    OP_GET_CLUSTER_CONFIG = 0xb5,
    OP_GET_ERROR_MAP = 0xfe,
    OP_SET_MANIFEST = 0xb9,
    OP_GET_MANIFEST = 0xba,
    OP_GET_CID = 0xbb,
    OP_GET_SID = 0xbc,
    OP_SUBDOC_GET = 0xc5, /* .. 0xcf: single-path sub-document commands */
    OP_SUBDOC_EXISTS = 0xc6,
    OP_SUBDOC_COUNTER = 0xcf,
    OP_SUBDOC_MULTI_LOOKUP = 0xd0,
    OP_SUBDOC_MULTI_MUTATION = 0xd1,
    OP_SUBDOC_GET_COUNT = 0xd2,
};

/* Whether a sub-document opcode only reads. */
static inline bool wire_subdoc_is_lookup(uint8_t op)
{
    return op == OP_SUBDOC_GET || op == OP_SUBDOC_EXISTS || op == OP_SUBDOC_GET_COUNT ||
           op == OP_SUBDOC_MULTI_LOOKUP;
}

enum {
    ST_SUCCESS = 0x00,
    ST_KEY_ENOENT = 0x01,
    ST_KEY_EEXISTS = 0x02,
    ST_E2BIG = 0x03,
    ST_EINVAL = 0x04,
    ST_NOT_STORED = 0x05,
    ST_DELTA_BADVAL = 0x06,
    ST_NOT_MY_VBUCKET = 0x07,
    ST_NO_BUCKET = 0x08,
    ST_LOCKED = 0x09,
    ST_NOT_LOCKED = 0x0e,
    ST_AUTH_ERROR = 0x20,
    ST_AUTH_CONTINUE = 0x21,
    ST_EACCESS = 0x24,
    ST_UNKNOWN_COMMAND = 0x81,
    ST_ENOMEM = 0x82,
    ST_NOT_SUPPORTED = 0x83,
    ST_EINTERNAL = 0x84,
    ST_EBUSY = 0x85,
    ST_ETMPFAIL = 0x86,
    ST_UNKNOWN_COLLECTION = 0x88,
    ST_CANNOT_APPLY_MANIFEST = 0x8a,
    ST_UNKNOWN_SCOPE = 0x8c,
    ST_DURABILITY_INVALID_LEVEL = 0xa0,
    ST_SYNC_WRITE_AMBIGUOUS = 0xa3,
    ST_SUBDOC_MULTI_PATH_FAILURE = 0xcc, /* 0xc0-0xcc: the engine's numbers */
};

enum {
    FEAT_TCPNODELAY = 0x03,
    FEAT_XATTR = 0x06,
    FEAT_XERROR = 0x07,
    FEAT_SELECT_BUCKET = 0x08,
    FEAT_JSON = 0x0b,
    FEAT_ALT_REQUEST = 0x10,
    FEAT_SYNC_REPLICATION = 0x11,
    FEAT_COLLECTIONS = 0x12,
    FEAT_PRESERVE_TTL = 0x14,
    FEAT_VATTR = 0x15,
};

#define HEADER_BYTES 24
/* The largest body taken before authentication: a SASL message and its
 * mechanism name, a HELLO with its agent name and features. */
#define UNAUTHENTICATED_MAX_BODY (AUTH_MAX_PAYLOAD + 1024)

typedef struct req {
    uint8_t magic, opcode, extlen, datatype, framelen;
    uint16_t keylen, vbucket;
    uint32_t bodylen, opaque;
    uint64_t cas;
    const uint8_t *frame, *extras, *key, *value;
    uint32_t valuelen;
    /* Decoded key: */
    engine_doc_key dk;
    engine_durability durability;
    uint16_t durability_timeout_ms; /* 0: none given */
    bool preserve_expiry;           /* frame info 5: keep the document's expiry */
} req;

/* A command's handler: answers into c->out, or returns the engine's status
 * for the dispatcher to answer (ENGINE_WOULD_BLOCK: parked). */
typedef engine_errc (*handler)(conn *c, req *r);

/* Parses the packet at the front of the input into r. 1 ready, 0 incomplete,
 * -1 malformed (the connection must close). */
int wire_parse_packet(conn *c, req *r, uint8_t **pkt);
/* Reads the frame infos of a flexible-framing request (durability, preserve
 * expiry); false if it answered a bad one. */
bool wire_parse_frame(conn *c, req *r);
/* Decodes the key (its collection prefix when collections are on); false if
 * it answered a bad one. */
bool wire_decode_key(conn *c, req *r);
/* Whether the opcode is a quiet variant (no answer on success). */
bool wire_quiet(uint8_t op);
uint32_t wire_be32(const uint8_t *p);
uint64_t wire_be64(const uint8_t *p);

/* Appends an answer to c->out (whole, or not at all: then `closing`). */
void wire_send(conn *c, const req *r, uint16_t status, const void *extras, uint8_t extlen,
               const void *key, uint16_t keylen, const void *value, uint32_t valuelen,
               uint8_t datatype, uint64_t cas);
/* The protocol status of an engine status. */
uint16_t wire_status_of(const conn *c, engine_errc rc);
/* An error answer with a JSON body {"error":{"context":reason,...}} (xerror). */
void wire_send_error_body(conn *c, const req *r, uint16_t st, const char *reason,
                          const uint64_t *manifest_uid);
/* A JSON answer (takes json, frees it). */
void wire_send_json(conn *c, const req *r, uint16_t st, char *json);
/* An error answer with the engine's reason, if the client asked for reasons. */
void wire_send_error_status(conn *c, const req *r, uint16_t st);
void wire_send_error(conn *c, const req *r, engine_errc rc);
/* Answers status st, with `why` as the error body for clients that asked
 * for reasons (xerror): for refusals of the host's own (not the engine's). */
void wire_refuse(conn *c, const req *r, uint16_t st, const char *why);
/* Refuses a packet whose shape is wrong for its command. */
void wire_invalid(conn *c, const req *r, const char *why);

#endif
