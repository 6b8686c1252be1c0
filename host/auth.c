/*
 * auth.c - SASL PLAIN for kvhost: the users file and password checks.
 *
 * Users file, one user a line ('#' starts a comment):
 *   user:role:iterations:salt_hex:hash_hex
 * role is "admin" or "user"; hash = PBKDF2-HMAC-SHA256(password, salt,
 * iterations, 32 bytes). scripts/kvhost-user writes such lines. Passwords are
 * never stored, and a hash is compared in constant time.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SHA-256 (FIPS 180-4) ---- */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(sha256 *s, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
             g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) +
                      K[i] + w[i];
        uint32_t t2 =
            (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

static void sha256_init(sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->len = 0;
    s->used = 0;
}

static void sha256_update(sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->buf + s->used, p, take);
        s->used += take;
        p += take;
        n -= take;
        if (s->used == 64) {
            sha256_block(s, s->buf);
            s->used = 0;
        }
    }
}

static void sha256_final(sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, zero = 0, lenbuf[8];
    sha256_update(s, &pad, 1);
    while (s->used != 56)
        sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, lenbuf, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* ---- HMAC-SHA256 and PBKDF2 ---- */

static void hmac_sha256(const uint8_t *key, size_t klen, const uint8_t *msg, size_t mlen,
                        uint8_t out[32])
{
    uint8_t k[64] = {0}, ipad[64], opad[64], inner[32];
    if (klen > 64) {
        sha256 s;
        sha256_init(&s);
        sha256_update(&s, key, klen);
        sha256_final(&s, k);
    } else {
        memcpy(k, key, klen);
    }
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    sha256 s;
    sha256_init(&s);
    sha256_update(&s, ipad, 64);
    sha256_update(&s, msg, mlen);
    sha256_final(&s, inner);
    sha256_init(&s);
    sha256_update(&s, opad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

void auth_pbkdf2_sha256(const char *password, size_t plen, const uint8_t *salt,
                        size_t slen, unsigned iterations, uint8_t out[32])
{
    uint8_t block[128], u[32], t[32];
    size_t n = slen < sizeof(block) - 4 ? slen : sizeof(block) - 4;
    memcpy(block, salt, n);
    block[n] = 0;
    block[n + 1] = 0;
    block[n + 2] = 0;
    block[n + 3] = 1; /* block index 1: 32 bytes are one block */
    hmac_sha256((const uint8_t *)password, plen, block, n + 4, u);
    memcpy(t, u, 32);
    for (unsigned i = 1; i < iterations; i++) {
        hmac_sha256((const uint8_t *)password, plen, u, 32, u);
        for (int j = 0; j < 32; j++)
            t[j] ^= u[j];
    }
    memcpy(out, t, 32);
}

/* ---- the users file ---- */

static int unhex(const char *s, uint8_t *out, size_t max)
{
    size_t n = strlen(s);
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)(n / 2);
}

int auth_load(auth_db *db, const char *path, char *why, size_t whylen)
{
    memset(db, 0, sizeof(*db));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, whylen, "cannot open users file %s", path);
        return -1;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        auth_user u = {0};
        char role[16], salt[160], hash[80];
        unsigned iters;
        if (db->n == AUTH_MAX_USERS ||
            sscanf(line, "%63[^:]:%15[^:]:%u:%159[^:]:%79s", u.name, role, &iters, salt,
                   hash) != 5 ||
            (strcmp(role, "admin") && strcmp(role, "user")) || iters == 0 ||
            (u.salt_len = unhex(salt, u.salt, sizeof(u.salt))) < 0 ||
            unhex(hash, u.hash, sizeof(u.hash)) != 32) {
            snprintf(why, whylen,
                     "users file %s, line %d: expected user:role:iterations:salt:hash",
                     path, lineno);
            fclose(f);
            return -1;
        }
        u.admin = strcmp(role, "admin") == 0;
        u.iterations = iters;
        db->users[db->n++] = u;
    }
    fclose(f);
    if (db->n == 0) {
        snprintf(why, whylen, "users file %s has no users", path);
        return -1;
    }
    return 0;
}

const auth_user *auth_check(const auth_db *db, const char *user, size_t ulen,
                            const char *password, size_t plen)
{
    for (int i = 0; i < db->n; i++) {
        const auth_user *u = &db->users[i];
        if (strlen(u->name) != ulen || memcmp(u->name, user, ulen) != 0)
            continue;
        uint8_t got[32];
        auth_pbkdf2_sha256(password, plen, u->salt, (size_t)u->salt_len, u->iterations,
                           got);
        uint8_t diff = 0;
        for (int j = 0; j < 32; j++)
            diff |= got[j] ^ u->hash[j];
        return diff == 0 ? u : NULL;
    }
    return NULL;
}
