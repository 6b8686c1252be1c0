/*
 * auth.h - kvhost's users and SASL: the users file, SCRAM-SHA512/256/1
 * (RFC 5802, RFC 7677) as a server, and PLAIN checked against the same
 * stored keys. Cryptography comes from OpenSSL's libcrypto.
 *
 * The users file keeps, per user and mechanism, the salt, the iteration
 * count, StoredKey and ServerKey: never the password, nor anything that logs
 * in by itself (a client proof needs the ClientKey, which is not stored).
 */
#ifndef KVHOST_AUTH_H
#define KVHOST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_MAX_USERS   256
#define AUTH_MAX_KEY     64 /* SHA-512's digest */
#define AUTH_MAX_SALT    64
#define AUTH_MAX_PAYLOAD 4096 /* bytes of a SASL message accepted */

typedef enum auth_mech {
    AUTH_SCRAM_SHA512 = 0,
    AUTH_SCRAM_SHA256 = 1,
    AUTH_SCRAM_SHA1 = 2,
    AUTH_NMECHS = 3,
    AUTH_PLAIN = 100, /* checked against the SHA-512 keys */
    AUTH_UNKNOWN = -1,
} auth_mech;

/** What a mechanism's exchange needs of a user. */
typedef struct auth_secret {
    unsigned iterations;
    uint8_t salt[AUTH_MAX_SALT];
    size_t salt_len;
    uint8_t stored_key[AUTH_MAX_KEY];
    uint8_t server_key[AUTH_MAX_KEY];
} auth_secret;

typedef struct auth_user {
    char name[64];
    bool admin;
    auth_secret secret[AUTH_NMECHS];
} auth_user;

typedef struct auth_db {
    auth_user users[AUTH_MAX_USERS];
    int n;
    /* For a user that does not exist: a salt derived from this and the name,
     * so the exchange looks the same as for one that does. */
    uint8_t fake_seed[32];
} auth_db;

/** The SASL_LIST_MECHS answer. */
#define AUTH_MECHANISMS       "SCRAM-SHA512 SCRAM-SHA256 SCRAM-SHA1 PLAIN"
#define AUTH_MECHANISMS_SCRAM "SCRAM-SHA512 SCRAM-SHA256 SCRAM-SHA1"

/** A mechanism by its SASL name (len bytes), or AUTH_UNKNOWN. */
auth_mech auth_mech_named(const char *name, size_t len);

/** Loads the users file: 0, or -1 with a reason. */
int auth_load(auth_db *db, const char *path, char *why, size_t whylen);

/**
 * SASL PLAIN: the user if the password is right, else NULL. The password is
 * checked by deriving the SHA-512 StoredKey with the user's salt and count
 * (a user that does not exist costs the same derivation).
 */
const auth_user *auth_check_plain(const auth_db *db, const char *user, size_t ulen,
                                  const char *password, size_t plen);

/** One SCRAM exchange on a connection (between its first and final message). */
typedef struct auth_scram {
    bool active;
    auth_mech mech;
    const auth_user *user; /* NULL for a user that does not exist */
    auth_secret fake;      /* that user's made-up secret */
    char gs2[80];          /* the client's GS2 header, e.g. "n,," */
    char *first_bare;      /* client-first-message-bare */
    char *server_first;    /* server-first-message */
    char *nonce;           /* client nonce + server nonce */
} auth_scram;

/**
 * The client-first message: fills `out` with the server-first message (to
 * send with auth-continue) and returns 0; -1 on a malformed message (auth
 * error). Any earlier exchange on `s` is forgotten first.
 */
int auth_scram_start(const auth_db *db, auth_scram *s, auth_mech mech, const char *msg,
                     size_t len, char *out, size_t cap);

/**
 * The client-final message: checks the proof. 0 with the server-final message
 * ("v=...") in `out` and the user in *user; -1 if anything is wrong (the
 * caller says only "auth error"). The exchange ends either way.
 */
int auth_scram_finish(auth_scram *s, const char *msg, size_t len, char *out, size_t cap,
                      const auth_user **user);

/** Forgets an exchange (a connection closing, a new one starting). */
void auth_scram_clear(auth_scram *s);

/* Decodes base64 (len bytes, a multiple of 4) with libcrypto; the byte
 * count, or -1. */
int auth_unb64(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
