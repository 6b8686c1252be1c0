/*
 * auth.h - SASL PLAIN users for kvhost: loading the users file, checking a
 * password. See auth.c for the file format.
 */
#ifndef KVHOST_AUTH_H
#define KVHOST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_MAX_USERS 256

typedef struct auth_user {
    char name[64];
    bool admin;
    unsigned iterations;
    uint8_t salt[64];
    int salt_len;
    uint8_t hash[32];
} auth_user;

typedef struct auth_db {
    auth_user users[AUTH_MAX_USERS];
    int n;
} auth_db;

int auth_load(auth_db *db, const char *path, char *why, size_t whylen);
/** The user if the password is right, else NULL (constant-time hash compare). */
const auth_user *auth_check(const auth_db *db, const char *user, size_t ulen,
                            const char *password, size_t plen);
void auth_pbkdf2_sha256(const char *password, size_t plen, const uint8_t *salt,
                        size_t slen, unsigned iterations, uint8_t out[32]);

#endif
