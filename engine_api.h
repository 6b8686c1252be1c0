/*
 * engine_api.h - the whole public ABI between a host server and a storage engine.
 *
 * A host loads an engine shared object with dlopen(), looks up the one exported
 * symbol `create_instance`, and from then on talks to the engine only through the
 * engine_handle vtable declared here. The engine talks back only through the
 * engine_server_api the host hands it. Nothing else is shared: this header must
 * never include another header of the project.
 *
 * Versioning. Both tables open with an interface version. The host passes the
 * highest engine interface version it knows to create_instance(); the engine
 * fills in the version it implements (never higher than the one asked for).
 * Later versions only append members to the end of a table, and each member
 * below names the version that introduced it. A host must not read a member
 * newer than the version the engine reported.
 *
 * Naming. Public names start with engine_ / ENGINE_. Engines keep their own
 * names distinct (ep_engine uses ep_, exec_, ht_ ...).
 *
 * Cookies. A cookie is the host's opaque handle for one client request (in
 * practice, one connection). The engine never dereferences it; it only hands it
 * back to the server API. Where a member says "cookie may be NULL", a NULL cookie
 * means "no client": the call then never returns ENGINE_WOULD_BLOCK and leaves no
 * error context.
 *
 * The would_block contract (every member that may return ENGINE_WOULD_BLOCK):
 *  1. Before returning ENGINE_WOULD_BLOCK the engine has arranged exactly one later
 *     call of server->cookie.notify_io_complete(cookie, status), made from a
 *     thread of the engine's own, never from a host thread: not from the one
 *     that received the would_block, not from one inside destroy().
 *  2. The engine reserves the cookie while background work may touch it and
 *     releases it after the notify. The host never frees a reserved cookie.
 *  3. On status ENGINE_SUCCESS the host calls the same member again with the same
 *     cookie and arguments; the engine finds its per-cookie state, completes and
 *     clears it.
 *  4. On any other status the host does not call again: the status is the
 *     command's result. The engine has released every per-subsystem state
 *     before such a notify, and nothing it keeps for the cookie waits for the
 *     host (rule 7 says when what it kept goes).
 *  5. destroy() with work in flight notifies every pending cookie before it
 *     returns; no notify and no engine thread runs after destroy() returns.
 *  6. The host calls disconnect(cookie) when the client goes away; anything the
 *     engine kept on that cookie is freed there. The engine writes a cookie's
 *     engine-specific data only inside a host call that carries that cookie,
 *     never from its own threads, so nothing lands on a cookie after its
 *     disconnect.
 *  7. A host that does not re-call after a success notify (the client left, or
 *     a step of the host's own before the re-call failed) loses the outcome,
 *     not the operation: it was done. The next call on that cookie of a member
 *     that may keep an outcome (store_durable, remove_durable,
 *     set_collection_manifest, a durable subdoc_mutate) that is not the same
 *     request (another member, vbucket, collection, key, value, flags, specs
 *     or manifest) discards the outcome
 *     and is served as a new request; the same request again is taken for the
 *     re-call and gets the outcome (the operation is not done twice). What is
 *     kept is freed at disconnect, or at destroy for a cookie never
 *     disconnected. Such a call on a cookie whose notify has not come yet
 *     answers ENGINE_TOO_BUSY. A host keeps re-calls exact by passing the same
 *     item again, not a new one it must allocate.
 *
 * The server API. Every member of the server API version the host reports is
 * required: create_instance answers ENGINE_INVALID_ARGUMENTS for a table with
 * a NULL member (and logs which, when `log` is there).
 */
#ifndef ENGINE_API_H
#define ENGINE_API_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Interface versions. ENGINE_API_VERSION is the newest one this header declares. */
#define ENGINE_API_VERSION_1 UINT64_C(1)
#define ENGINE_API_VERSION_2 UINT64_C(2) /**< adds durable writes and vbucket states */
#define ENGINE_API_VERSION_3 UINT64_C(3) /**< adds item locks */
#define ENGINE_API_VERSION_4 UINT64_C(4) /**< adds sub-document operations */
#define ENGINE_API_VERSION   ENGINE_API_VERSION_4

/** Version of engine_server_api declared here. */
#define ENGINE_SERVER_API_VERSION UINT64_C(1)

/**
 * Result codes. The numeric values are stable and follow the memcached /
 * Couchbase engine numbering, so a host can map them to wire statuses by value.
 */
typedef enum engine_errc {
    ENGINE_SUCCESS = 0x00,
    ENGINE_NO_SUCH_KEY = 0x01,       /**< the key (or stat group) does not exist */
    ENGINE_KEY_EXISTS = 0x02,        /**< add of a present key, or a CAS mismatch */
    ENGINE_NO_MEMORY = 0x03,         /**< the memory quota (max_size) is reached */
    ENGINE_NOT_STORED = 0x04,        /**< replace/append/prepend of a missing key */
    ENGINE_INVALID_ARGUMENTS = 0x05, /**< malformed input; see the error context */
    ENGINE_NOT_SUPPORTED = 0x06,     /**< the engine does not offer this */
    ENGINE_WOULD_BLOCK = 0x07,       /**< see the would_block contract above */
    ENGINE_TOO_BIG = 0x08,           /**< a value over the engine's item size limit */
    ENGINE_DISCONNECT = 0x0a,        /**< the host should close the connection */
    ENGINE_NOT_MY_VBUCKET = 0x0c,    /**< the vbucket id is out of range or not active */
    ENGINE_TEMPORARY_FAILURE = 0x0d, /**< try again later (e.g. shutting down) */
    ENGINE_OUT_OF_RANGE = 0x0e,      /**< a numeric argument is out of range */
    ENGINE_DELTA_BADVAL = 0x13,      /**< arithmetic on a non-numeric value */
    ENGINE_LOCKED = 0x14,            /**< the item is locked (get_locked, v3) */
    ENGINE_TOO_BUSY = 0x11,          /**< another request holds the resource */
    ENGINE_UNKNOWN_COLLECTION =
        0x16, /**< the collection id/path is not in the manifest */
    ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST =
        0x19,                    /**< not a successor, or not persisted */
    ENGINE_UNKNOWN_SCOPE = 0x1b, /**< the scope is not in the manifest */
    ENGINE_NOT_LOCKED = 0x80,    /**< unlock of an item that is not locked (v3;
                                      ep-engine's own number) */
    /* Sub-document results (v4; ep-engine's own numbers, those of the wire's
     * sub-document statuses), per path and as a call's result: */
    ENGINE_SUBDOC_PATH_ENOENT = 0xc0,   /**< a component of the path is absent */
    ENGINE_SUBDOC_PATH_MISMATCH = 0xc1, /**< the path treats a value as what it is not */
    ENGINE_SUBDOC_PATH_EINVAL = 0xc2,   /**< the path does not parse or fit the op */
    ENGINE_SUBDOC_PATH_E2BIG = 0xc3,    /**< the path is too long or too deep */
    ENGINE_SUBDOC_DOC_E2DEEP = 0xc4,    /**< the document is nested too deep */
    ENGINE_SUBDOC_VALUE_CANTINSERT = 0xc5, /**< the value is not JSON that fits there */
    ENGINE_SUBDOC_DOC_NOT_JSON = 0xc6,     /**< the document is not JSON */
    ENGINE_SUBDOC_NUM_ERANGE = 0xc7,       /**< a counter would leave the 64-bit range */
    ENGINE_SUBDOC_DELTA_EINVAL = 0xc8, /**< a counter's delta is not a non-zero integer */
    ENGINE_SUBDOC_PATH_EEXISTS = 0xc9, /**< the path (or the unique value) exists */
    ENGINE_SUBDOC_VALUE_ETOODEEP =
        0xca,                           /**< the value would nest the document too deep */
    ENGINE_SUBDOC_INVALID_COMBO = 0xcb, /**< specs that cannot go together */
    ENGINE_SUBDOC_MULTI_PATH_FAILURE = 0xcc, /**< some spec failed (see its result) */
    ENGINE_SUBDOC_XATTR_INVALID_FLAG_COMBO =
        0xce, /**< macros without an attribute path, or a flag a spec cannot take */
    ENGINE_SUBDOC_XATTR_UNKNOWN_MACRO = 0xd0, /**< a macro the engine does not fill */
    ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR = 0xd1, /**< a '$' attribute that does not exist */
    ENGINE_SUBDOC_XATTR_CANT_MODIFY_VATTR = 0xd2, /**< a mutation of a '$' attribute */
    ENGINE_SUBDOC_INVALID_XATTR_ORDER = 0xd4, /**< an attribute spec after a body spec */
    ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED =
        0xd6,                   /**< revive of a live document (none is deleted here) */
    ENGINE_XATTR_EINVAL = 0x87, /**< an attribute's key is not valid */
    ENGINE_FAILED = 0xff        /**< an internal error */
} engine_errc;

/** Log levels for engine_server_api.log. */
typedef enum engine_log_level {
    ENGINE_LOG_DEBUG = 0,
    ENGINE_LOG_INFO = 1,
    ENGINE_LOG_WARNING = 2,
    ENGINE_LOG_ERROR = 3
} engine_log_level;

/** Seconds since the host process started (memcached's rel_time_t). */
typedef uint32_t engine_rel_time;

/** Maximum length in bytes of a document key, without its collection id. */
#define ENGINE_KEY_MAX_LEN 250

/** Collection id of the `_default` collection. */
#define ENGINE_DEFAULT_COLLECTION UINT32_C(0)

/**
 * A document key. Every data operation names its collection explicitly; a host
 * speaking the wire protocol decodes the key's LEB128 collection prefix into
 * `collection` and passes the remaining bytes.
 */
typedef struct engine_doc_key {
    uint32_t collection; /**< collection id; 0 is `_default` */
    uint16_t len;        /**< key length in bytes, 1..ENGINE_KEY_MAX_LEN */
    const void *bytes;   /**< key bytes; need not be NUL terminated */
} engine_doc_key;

/** The store operations of engine_handle.store. */
typedef enum engine_store_op {
    ENGINE_STORE_ADD = 1,     /**< store only if the key is absent */
    ENGINE_STORE_SET = 2,     /**< store unconditionally (or on CAS match) */
    ENGINE_STORE_REPLACE = 3, /**< store only if the key is present */
    ENGINE_STORE_APPEND = 4,  /**< append the value to the present value */
    ENGINE_STORE_PREPEND = 5, /**< prepend the value to the present value */
    ENGINE_STORE_CAS = 6      /**< store only if the present CAS equals the item's */
} engine_store_op;

/** Durability a write may ask for (engine_handle.store_durable, v2). */
typedef enum engine_durability {
    ENGINE_DURABILITY_NONE = 0,   /**< acknowledged once in memory */
    ENGINE_DURABILITY_PERSIST = 1 /**< acknowledged once on disk (fsync'd) */
} engine_durability;

/** vbucket states (engine_handle.set_vbucket_state, v2). Only an active vbucket
 * serves data operations; the others answer ENGINE_NOT_MY_VBUCKET. */
typedef enum engine_vbucket_state {
    ENGINE_VBUCKET_ACTIVE = 1,
    ENGINE_VBUCKET_REPLICA = 2,
    ENGINE_VBUCKET_PENDING = 3,
    ENGINE_VBUCKET_DEAD = 4
} engine_vbucket_state;

/** An item: engine-owned, reference counted, opaque to the host. */
typedef struct engine_item engine_item;

/**
 * What the host may read of an item (get_item_info). All pointers point into the
 * item and stay valid until the host releases its reference.
 */
typedef struct engine_item_info {
    uint64_t cas;       /**< the item's CAS; 0 for an item not yet stored */
    time_t exptime;     /**< absolute expiry (Unix seconds); 0 = never */
    uint32_t flags;     /**< the client's opaque flags */
    uint8_t datatype;   /**< wire datatype bits: 0x01 JSON, 0x02 Snappy, 0x04 Xattr */
    uint16_t vbucket;   /**< the vbucket the item belongs to */
    engine_doc_key key; /**< collection and key */
    struct iovec value; /**< the value; writable only between allocate and store */
} engine_item_info;

/**
 * Datatype bits. ENGINE_DATATYPE_XATTR (v4): the value starts with an
 * extended-attribute section (big-endian u32 length of the pairs, then per
 * pair a big-endian u32 length and key NUL value NUL; keys of 1-15 bytes,
 * values JSON; at most 1 MiB) and the body follows it. A store checks the
 * section (ENGINE_INVALID_ARGUMENTS with its reason). A set, replace or CAS
 * store of a value without the bit over a document with attributes keeps
 * them (the new body replaces the old); append and prepend change the body
 * and keep them too; remove drops them all (the engine keeps no deleted
 * documents). Gets return the section with the body; a host strips it from
 * a plain get's answer.
 */
#define ENGINE_DATATYPE_JSON   0x01
#define ENGINE_DATATYPE_SNAPPY 0x02
#define ENGINE_DATATYPE_XATTR  0x04

/** Static facts about an engine (get_info). */
typedef struct engine_info {
    const char *description; /**< human-readable name and version */
    uint64_t features;       /**< ENGINE_FEATURE_* bits */
    uint32_t max_key_len;    /**< longest key accepted, in bytes */
} engine_info;

#define ENGINE_FEATURE_CAS (UINT64_C(1) << 0)
#define ENGINE_FEATURE_COLLECTIONS                                                       \
    (UINT64_C(1) << 1) /**< collections manifest calls work */
#define ENGINE_FEATURE_PERSISTENT (UINT64_C(1) << 2) /**< data survives a restart */

/**
 * Receives one statistic. `key` and `val` are not NUL terminated and are valid
 * only during the call. Called on the thread that called get_stats.
 */
typedef void (*engine_add_stat_fn)(const char *key, uint16_t klen, const char *val,
                                   uint32_t vlen, void *ctx);

/** Receives an output buffer, valid only during the call. */
typedef void (*engine_output_fn)(const void *data, size_t len, void *ctx);

/* ------------------------------------------------------------------------ */
/* The server API: what the host offers the engine.                          */
/* ------------------------------------------------------------------------ */

typedef struct engine_server_api {
    /** ENGINE_SERVER_API_VERSION of the host. Since v1. */
    uint64_t interface_version;

    /** Clock. All three may be called from any thread. Since v1. */
    struct {
        /** Seconds since the host started. Monotonic: a step of the wall clock
         * does not move it (realtime and abstime convert through the wall-clock
         * time the host read at its start). */
        engine_rel_time (*get_current_time)(void);
        /**
         * Converts a protocol expiry to engine_rel_time: 0 stays 0 (never);
         * up to 30 days (2592000) is relative to now; larger is an absolute Unix
         * time (one at or before the process start maps to 1, already expired).
         */
        engine_rel_time (*realtime)(uint32_t exptime);
        /** Converts an engine_rel_time back to a Unix time. */
        time_t (*abstime)(engine_rel_time t);
    } core;

    /** Logging, from any thread. Since v1. */
    void (*log)(engine_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /** Cookie functions, from any thread. Since v1. */
    struct {
        /** Keeps one pointer of engine data on the cookie (NULL clears it). */
        void (*store_engine_specific)(const void *cookie, void *data);
        /** Returns what store_engine_specific left, or NULL. */
        void *(*get_engine_specific)(const void *cookie);
        /**
         * Completes a request that returned ENGINE_WOULD_BLOCK. Exactly once per
         * would_block, never from the thread that received the would_block.
         */
        void (*notify_io_complete)(const void *cookie, engine_errc status);
        /** Keeps the cookie alive past a client disconnect until release(). */
        engine_errc (*reserve)(const void *cookie);
        /** Drops one reserve(). */
        void (*release)(const void *cookie);
        /**
         * Leaves a human-readable reason for the request's failure, copied by the
         * host, which sends it back with the error status (kvhost: in the body
         * {"error":{"context":...}} of the error answer). NULL
         * clears it. The engine passes valid UTF-8 (it may quote a client's
         * bytes: those are made valid first); a host that sends it in JSON still
         * checks, since it need not trust the engine.
         */
        void (*set_error_context)(const void *cookie, const char *reason);
        /**
         * Leaves the manifest uid an unknown_collection / unknown_scope answer was
         * judged by, for the host's error body.
         */
        void (*set_error_manifest_uid)(const void *cookie, uint64_t uid);
    } cookie;
} engine_server_api;

/** Returns the host's server API; the pointer stays valid for the process. */
typedef const engine_server_api *(*engine_get_server_api_fn)(void);

/* ------------------------------------------------------------------------ */
/* The engine vtable.                                                        */
/* ------------------------------------------------------------------------ */

/**
 * Sub-document operations (v4). The values are the wire's opcodes, so a host
 * may pass them through: path operations, and the whole-document ones
 * (get_doc, set_doc, delete_doc: empty path).
 */
typedef enum engine_subdoc_op {
    ENGINE_SUBDOC_GET_DOC = 0x00,
    ENGINE_SUBDOC_SET_DOC = 0x01,
    ENGINE_SUBDOC_DELETE_DOC = 0x04,
    ENGINE_SUBDOC_GET = 0xc5,
    ENGINE_SUBDOC_EXISTS = 0xc6,
    ENGINE_SUBDOC_DICT_ADD = 0xc7,
    ENGINE_SUBDOC_DICT_UPSERT = 0xc8,
    ENGINE_SUBDOC_DELETE = 0xc9,
    ENGINE_SUBDOC_REPLACE = 0xca,
    ENGINE_SUBDOC_ARRAY_PUSH_LAST = 0xcb,
    ENGINE_SUBDOC_ARRAY_PUSH_FIRST = 0xcc,
    ENGINE_SUBDOC_ARRAY_INSERT = 0xcd,
    ENGINE_SUBDOC_ARRAY_ADD_UNIQUE = 0xce,
    ENGINE_SUBDOC_COUNTER = 0xcf,
    ENGINE_SUBDOC_GET_COUNT = 0xd2,
} engine_subdoc_op;

/** Per spec: create missing intermediate objects. */
#define ENGINE_SUBDOC_PATH_MKDIR_P 0x01
/** Per spec: the path's first name is an extended attribute's key (v4; a
 * '$' key is virtual: $document, $vbucket, $XTOC, read only). */
#define ENGINE_SUBDOC_PATH_XATTR 0x04
/** Per spec (with ENGINE_SUBDOC_PATH_XATTR): the value is a macro, the JSON
 * string "${Mutation.CAS}" or "${Mutation.value_crc32c}", written as the
 * stored document's CAS (its bytes reversed, as "0x" and 16 hex digits) or
 * its body's CRC-32C ("0x" and 8 hex digits). */
#define ENGINE_SUBDOC_PATH_EXPAND_MACROS 0x10
/** Per call (mutations): create the document if it is missing (as set). */
#define ENGINE_SUBDOC_DOC_MKDOC 0x01
/** Per call (mutations): create the document; it must not exist (as add). */
#define ENGINE_SUBDOC_DOC_ADD 0x02
/** Per call: reach deleted documents too. The engine keeps none, so this
 * finds live documents only. */
#define ENGINE_SUBDOC_DOC_ACCESS_DELETED 0x04
/** Per call (mutations): revive a deleted document; with none kept, a live
 * one is ENGINE_SUBDOC_CAN_ONLY_REVIVE_DELETED and a missing one
 * ENGINE_NO_SUCH_KEY. */
#define ENGINE_SUBDOC_DOC_REVIVE 0x10
/** Per call (mutations; not a wire flag): keep the document's expiry instead
 * of setting `exptime`. */
#define ENGINE_SUBDOC_DOC_KEEP_EXPIRY 0x80
/** Specs in one call at most. */
#define ENGINE_SUBDOC_MAX_SPECS 16

/** One path of a sub-document call. Values are JSON text (a counter's, an
 * integer delta; an array push's, one or more comma-separated values). */
typedef struct engine_subdoc_spec {
    uint8_t op;    /**< engine_subdoc_op */
    uint8_t flags; /**< ENGINE_SUBDOC_PATH_* */
    uint16_t pathlen;
    uint32_t valuelen;
    const char *path;
    const void *value;
} engine_subdoc_spec;

/** A spec's outcome: its index, status and value (valid during the call). */
typedef void (*engine_subdoc_result_fn)(size_t index, engine_errc status,
                                        const void *value, size_t len, void *ctx);

typedef struct engine_handle engine_handle;

struct engine_handle {
    /** The interface version the engine implements. Since v1. */
    uint64_t interface;

    /**
     * Static description of the engine. *out points to engine-owned memory that
     * stays valid and unchanged until destroy. Callable before initialize.
     * Returns ENGINE_SUCCESS, or ENGINE_INVALID_ARGUMENTS if out is NULL. Since v1.
     */
    engine_errc (*get_info)(engine_handle *h, const engine_info **out);

    /**
     * Brings the engine up with a configuration string `key=value;key=value`
     * (NULL or "" = all defaults). Called once, before any other member except
     * get_info and destroy. An unknown key or a bad value fails with
     * ENGINE_INVALID_ARGUMENTS and a log line naming the key; other failures
     * (threads, files) give ENGINE_FAILED. After a failure only destroy may be
     * called. Since v1.
     */
    engine_errc (*initialize)(engine_handle *h, const char *config);

    /**
     * Stops every engine thread, notifies every pending cookie (with
     * ENGINE_DISCONNECT or ENGINE_TEMPORARY_FAILURE) and frees the engine. Items
     * the host still holds stay readable until the host releases them, which it
     * must do before dlclose. `force` skips the final flush of dirty data.
     * Valid after a failed or skipped initialize. Since v1.
     */
    void (*destroy)(engine_handle *h, bool force);

    /**
     * Allocates an item for `key` with room for `nbytes` of value, to be filled
     * through get_item_info and then passed to store. `exptime` is a protocol
     * expiry (see engine_server_api.core.realtime). Returns ENGINE_SUCCESS and a
     * reference in *out; ENGINE_INVALID_ARGUMENTS for a NULL out/key or an empty
     * or too long key; ENGINE_TOO_BIG for a value over the item size limit;
     * ENGINE_NO_MEMORY at the memory quota (ENGINE_TEMPORARY_FAILURE from an
     * engine that is evicting values to make room); ENGINE_NOT_MY_VBUCKET for a bad
     * vbucket; ENGINE_UNKNOWN_COLLECTION for an unknown collection. Cookie may be
     * NULL. Any thread. Since v1.
     */
    engine_errc (*allocate)(engine_handle *h, const void *cookie, engine_item **out,
                            const engine_doc_key *key, size_t nbytes, uint32_t flags,
                            uint32_t exptime, uint8_t datatype, uint16_t vbucket);

    /** Drops one reference to an item (NULL is ignored). Any thread. Since v1. */
    void (*release)(engine_handle *h, engine_item *item);

    /**
     * Looks up a live item. Returns ENGINE_SUCCESS and a reference in *out, or
     * ENGINE_NO_SUCH_KEY (missing or expired), plus the errors of allocate for bad
     * keys, vbuckets and collections. Cookie may be NULL. Since v1.
     *
     * An engine that evicts values to disk may, for a host that asked for v2 or
     * later and a non-NULL cookie, return ENGINE_WOULD_BLOCK while it reads the
     * value back (the would_block contract; the re-call returns the item), and
     * then, instead of the item, ENGINE_TEMPORARY_FAILURE (the read failed; try
     * again) or ENGINE_FAILED (the record on disk is damaged), with a reason.
     * For a v1 host or a NULL cookie it reads in the call. append and prepend
     * to an evicted value behave the same way.
     */
    engine_errc (*get)(engine_handle *h, const void *cookie, engine_item **out,
                       const engine_doc_key *key, uint16_t vbucket);

    /**
     * Stores an item from allocate. The compare CAS is the item's CAS as set with
     * item_set_cas (0 = no compare); ENGINE_STORE_CAS needs a non-zero one and
     * ENGINE_STORE_ADD a zero one (else ENGINE_INVALID_ARGUMENTS). Results:
     * ENGINE_SUCCESS (new CAS in *cas_out if not NULL); ENGINE_KEY_EXISTS (add of
     * a present key, CAS mismatch); ENGINE_NO_SUCH_KEY (compare CAS on a missing
     * key); ENGINE_NOT_STORED (replace/append/prepend of a missing key);
     * ENGINE_NO_MEMORY (append/prepend over the quota, or no memory to queue
     * the write for disk: nothing was stored; or as in allocate,
     * ENGINE_TEMPORARY_FAILURE); ENGINE_INVALID_ARGUMENTS
     * (NULL item, an item already stored, a bad op). The caller keeps its
     * reference either way. Append and prepend keep the present flags and expiry.
     * Cookie may be NULL. Since v1.
     */
    engine_errc (*store)(engine_handle *h, const void *cookie, engine_item *item,
                         uint64_t *cas_out, engine_store_op op);

    /**
     * Deletes a key. `cas` 0 deletes whatever is there; otherwise it must match
     * (ENGINE_KEY_EXISTS if not). Returns ENGINE_SUCCESS (the deletion's CAS in
     * *cas_out if not NULL), ENGINE_NO_SUCH_KEY, ENGINE_NO_MEMORY (the deletion
     * could not be queued for disk: nothing was deleted), or the
     * key/vbucket/collection errors of get. Cookie may be NULL. Since v1.
     */
    engine_errc (*remove)(engine_handle *h, const void *cookie, const engine_doc_key *key,
                          uint64_t cas, uint16_t vbucket, uint64_t *cas_out);

    /** Deletes every item of every vbucket. Cookie may be NULL. Since v1. */
    engine_errc (*flush)(engine_handle *h, const void *cookie);

    /**
     * Reports the statistics of one group through add_stat, synchronously. A NULL
     * or empty group is the default group; the engine documents its other group
     * names. An unknown group gives ENGINE_NO_SUCH_KEY. Cookie may be NULL.
     * Since v1.
     */
    engine_errc (*get_stats)(engine_handle *h, const void *cookie, const char *group,
                             engine_add_stat_fn add_stat, void *ctx);

    /** Zeroes the resettable counters (ops, hits, task timings). Since v1. */
    void (*reset_stats)(engine_handle *h, const void *cookie);

    /**
     * Fills *info from an item the caller holds a reference to. Zero copy: the
     * pointers in *info point into the item. ENGINE_INVALID_ARGUMENTS for NULL
     * arguments. Since v1.
     */
    engine_errc (*get_item_info)(engine_handle *h, const engine_item *item,
                                 engine_item_info *info);

    /** Sets the compare CAS of an item not yet stored (see store). Since v1. */
    void (*item_set_cas)(engine_handle *h, engine_item *item, uint64_t cas);

    /**
     * Replaces the collections manifest with the JSON `json` (`len` bytes). May
     * return ENGINE_WOULD_BLOCK (cookie must not be NULL); the re-call with the
     * same cookie reports the outcome. ENGINE_TOO_BUSY while another cookie's
     * update is in flight; ENGINE_INVALID_ARGUMENTS for a malformed manifest;
     * ENGINE_CANNOT_APPLY_COLLECTIONS_MANIFEST for a manifest that is not a
     * successor or could not be persisted; ENGINE_NOT_SUPPORTED from engines
     * without ENGINE_FEATURE_COLLECTIONS. A reason is left in the error context.
     * ENGINE_NO_MEMORY if the request could not be recorded. Since v1.
     */
    engine_errc (*set_collection_manifest)(engine_handle *h, const void *cookie,
                                           const char *json, size_t len);

    /**
     * Calls out(json, len, ctx) once with the current manifest as JSON, then
     * returns ENGINE_SUCCESS. Since v1.
     */
    engine_errc (*get_collection_manifest)(engine_handle *h, const void *cookie,
                                           engine_output_fn out, void *ctx);

    /**
     * Resolves a collection path `scope.collection` (`len` bytes; an empty part
     * means `_default`) to its id and the uid of the manifest that resolved it.
     * ENGINE_INVALID_ARGUMENTS for a malformed path, ENGINE_UNKNOWN_SCOPE or
     * ENGINE_UNKNOWN_COLLECTION otherwise (the manifest uid is still filled in).
     * Since v1.
     */
    engine_errc (*get_collection_id)(engine_handle *h, const void *cookie,
                                     const char *path, size_t len, uint64_t *manifest_uid,
                                     uint32_t *collection_id);

    /**
     * Resolves a scope path `scope` (a `.collection` tail is ignored; empty means
     * `_default`) to its id. Errors as get_collection_id. Since v1.
     */
    engine_errc (*get_scope_id)(engine_handle *h, const void *cookie, const char *path,
                                size_t len, uint64_t *manifest_uid, uint32_t *scope_id);

    /**
     * The client behind `cookie` has gone. The engine frees anything it kept on
     * the cookie; background work that holds a reservation still notifies once
     * and then releases. Since v1.
     */
    void (*disconnect)(engine_handle *h, const void *cookie);

    /* ---- version 2 ---- */

    /**
     * store with a durability level. With ENGINE_DURABILITY_NONE it is store().
     * With ENGINE_DURABILITY_PERSIST the write is applied in memory and the call
     * returns ENGINE_WOULD_BLOCK (cookie must not be NULL); the cookie is notified
     * once the write is on disk (success; the re-call returns ENGINE_SUCCESS and
     * the CAS) or could not be made so (ENGINE_TEMPORARY_FAILURE with a reason:
     * the write stays in memory and is retried, but was not made durable).
     * ENGINE_NOT_SUPPORTED from an engine without a data directory;
     * ENGINE_NO_MEMORY when the write could not be queued for disk (nothing was
     * stored); ENGINE_TOO_BUSY when an earlier request on the cookie has not
     * been notified yet. The re-call must carry the same arguments (rule 7).
     * Since v2.
     */
    engine_errc (*store_durable)(engine_handle *h, const void *cookie, engine_item *item,
                                 uint64_t *cas_out, engine_store_op op,
                                 engine_durability durability);

    /** remove with a durability level; blocking and results as store_durable.
     * Since v2. */
    engine_errc (*remove_durable)(engine_handle *h, const void *cookie,
                                  const engine_doc_key *key, uint64_t cas,
                                  uint16_t vbucket, uint64_t *cas_out,
                                  engine_durability durability);

    /**
     * Sets a vbucket's state. Data operations on a vbucket that is not active
     * answer ENGINE_NOT_MY_VBUCKET; its items are kept. ENGINE_NOT_MY_VBUCKET for
     * an id out of range, ENGINE_INVALID_ARGUMENTS for an unknown state. Since v2.
     */
    engine_errc (*set_vbucket_state)(engine_handle *h, const void *cookie,
                                     uint16_t vbucket, engine_vbucket_state state);

    /* ---- version 3 ---- */

    /**
     * get, and lock the item for `lock_timeout_s` seconds (0 = the engine's
     * default, 15; more than the engine's maximum, 30, is cut to it). The lock
     * is on this version of the item: until it ends, store, store_durable,
     * remove and remove_durable of the key answer ENGINE_LOCKED unless their
     * compare CAS is *lock_cas (that write then ends the lock), get_locked
     * answers ENGINE_LOCKED, and get_item_info reports the item's CAS as
     * UINT64_MAX (the lock's CAS is known only to the locker). It ends with
     * unlock, with such a write, or at its timeout. Results and blocking as
     * get (an evicted value may answer ENGINE_WOULD_BLOCK first; the re-call
     * locks). *lock_cas receives the lock's CAS. Since v3.
     */
    engine_errc (*get_locked)(engine_handle *h, const void *cookie, engine_item **out,
                              const engine_doc_key *key, uint16_t vbucket,
                              uint32_t lock_timeout_s, uint64_t *lock_cas);

    /**
     * Ends the lock of get_locked with its CAS. ENGINE_SUCCESS; ENGINE_LOCKED
     * for another CAS; ENGINE_NOT_LOCKED if the item is not locked;
     * ENGINE_NO_SUCH_KEY if there is no item; the key/vbucket/collection errors
     * of get. Since v3.
     */
    engine_errc (*unlock)(engine_handle *h, const void *cookie, const engine_doc_key *key,
                          uint16_t vbucket, uint64_t lock_cas);

    /* ---- v4: sub-document operations ---- */

    /**
     * Reads parts of a JSON document: 1 to ENGINE_SUBDOC_MAX_SPECS lookup specs
     * (get, exists, get_count, get_doc). `result` is called once per spec, in
     * order, with the spec's status and (get, get_count, get_doc) its value,
     * valid during the call. Returns ENGINE_SUCCESS when every spec
     * succeeded, ENGINE_SUBDOC_MULTI_PATH_FAILURE when some did not (all
     * results were given), or a document-level error with no results
     * (ENGINE_NO_SUCH_KEY, ENGINE_NOT_MY_VBUCKET, ENGINE_UNKNOWN_COLLECTION,
     * ENGINE_SUBDOC_INVALID_COMBO for mutation specs or a bad count,
     * ENGINE_INVALID_ARGUMENTS ...). *cas_out gets the document's CAS. An
     * evicted value may answer ENGINE_WOULD_BLOCK first (cookie not NULL); the
     * re-call with the same arguments gives the results. Paths: dot-separated
     * names, [n] and [-1] indexes, backticks around names holding . [ ].
     * `result` must not call the engine (it runs under the engine's locks).
     * ENGINE_SUBDOC_PATH_XATTR specs read extended attributes (see
     * ENGINE_DATATYPE_XATTR) and come before body specs
     * (ENGINE_SUBDOC_INVALID_XATTR_ORDER); an attribute key that is not valid
     * is ENGINE_XATTR_EINVAL, an unknown '$' one
     * ENGINE_SUBDOC_XATTR_UNKNOWN_VATTR, as the call's result.
     */
    engine_errc (*subdoc_lookup)(engine_handle *h, const void *cookie,
                                 const engine_doc_key *key, uint16_t vbucket,
                                 const engine_subdoc_spec *specs, size_t nspecs,
                                 uint8_t doc_flags, engine_subdoc_result_fn result,
                                 void *ctx, uint64_t *cas_out);

    /**
     * Changes parts of a JSON document, all or nothing: 1 to
     * ENGINE_SUBDOC_MAX_SPECS mutation specs, applied in order to the document
     * as it is (or to {} / [] for a missing one with ENGINE_SUBDOC_DOC_MKDOC or
     * ENGINE_SUBDOC_DOC_ADD); the result is stored only if every spec
     * succeeded, with CAS semantics: `cas` (0: any) must match, a lock's CAS
     * gets past its lock; a document changed by someone else meanwhile is
     * read again (cas 0) or answered ENGINE_KEY_EXISTS (cas given). On
     * success `result` is called for the specs that return a value (counter:
     * the new number), *cas_out gets the new CAS; `exptime` is the stored
     * document's (as allocate's, 0: none). On a spec's failure nothing is
     * stored: ENGINE_SUBDOC_MULTI_PATH_FAILURE, *failed the spec's index and
     * `result` called for it with its status. Document-level errors as
     * subdoc_lookup's, and ENGINE_KEY_EXISTS, ENGINE_LOCKED, ENGINE_TOO_BIG,
     * ENGINE_NO_MEMORY. A delete_doc spec must be the only one: it removes the
     * document. With `d` ENGINE_DURABILITY_PERSIST the mutation is applied
     * and the call answers ENGINE_WOULD_BLOCK until the document is on disk,
     * as store_durable does; the host's re-call with the same arguments gets
     * the outcome and the results (rule 3); ENGINE_NOT_SUPPORTED without a
     * data directory.
     */
    engine_errc (*subdoc_mutate)(engine_handle *h, const void *cookie,
                                 const engine_doc_key *key, uint16_t vbucket,
                                 const engine_subdoc_spec *specs, size_t nspecs,
                                 uint8_t doc_flags, uint64_t cas, uint32_t exptime,
                                 engine_durability d, engine_subdoc_result_fn result,
                                 void *ctx, uint64_t *cas_out, size_t *failed);
};

/**
 * The one exported symbol. `interface` is the highest engine interface version
 * the host knows. On ENGINE_SUCCESS *handle is a new engine whose `interface`
 * member is the version it implements (<= `interface`); the host then calls
 * initialize (or destroy). ENGINE_NOT_SUPPORTED if the engine offers no version
 * <= `interface` (in particular for 0); ENGINE_INVALID_ARGUMENTS for a NULL
 * argument; ENGINE_NO_MEMORY. Instances are independent of each other.
 */
typedef engine_errc (*engine_create_instance_fn)(uint64_t interface,
                                                 engine_get_server_api_fn get_server_api,
                                                 engine_handle **handle);

engine_errc create_instance(uint64_t interface, engine_get_server_api_fn get_server_api,
                            engine_handle **handle);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_API_H */
