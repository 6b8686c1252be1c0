/*
 * auth.c - kvhost's users file and SASL mechanisms (auth.h), on libcrypto.
 *
 * Users file, one user a line ('#' starts a comment), written by
 * scripts/kvhost-user:
 *   user:role:SHA512=i,salt,stored,server:SHA256=i,salt,stored,server:SHA1=...
 * role is "admin" or "user"; i the PBKDF2 iteration count; salt, StoredKey
 * and ServerKey in hex (RFC 5802: SaltedPassword = PBKDF2(password, salt, i),
 * StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key")).
 */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mech_names[AUTH_NMECHS] = {"SCRAM-SHA512", "SCRAM-SHA256",
                                                    "SCRAM-SHA1"};
static const char *const file_names[AUTH_NMECHS] = {"SHA512", "SHA256", "SHA1"};
/* Iterations of a made-up secret: what scripts/kvhost-user writes by default. */
static const unsigned default_iterations[AUTH_NMECHS] = {15000, 15000, 10000};

static const EVP_MD *md_of(auth_mech m)
{
    return m == AUTH_SCRAM_SHA512   ? EVP_sha512()
           : m == AUTH_SCRAM_SHA256 ? EVP_sha256()
                                    : EVP_sha1();
}

static size_t md_len(auth_mech m)
{
    return (size_t)EVP_MD_get_size(md_of(m));
}

auth_mech auth_mech_named(const char *name, size_t len)
{
    for (int m = 0; m < AUTH_NMECHS; m++)
        if (strlen(mech_names[m]) == len && memcmp(mech_names[m], name, len) == 0)
            return (auth_mech)m;
    if (len == 5 && memcmp(name, "PLAIN", 5) == 0)
        return AUTH_PLAIN;
    return AUTH_UNKNOWN;
}

/* ---- the keys ---- */

static bool hmac(auth_mech m, const uint8_t *key, size_t klen, const void *msg,
                 size_t mlen, uint8_t *out)
{
    unsigned n = 0;
    return HMAC(md_of(m), key, (int)klen, msg, mlen, out, &n) != NULL;
}

/* StoredKey and ServerKey of a password, for mechanism m. */
static bool derive(auth_mech m, const char *password, size_t plen, const uint8_t *salt,
                   size_t slen, unsigned iterations, uint8_t *stored, uint8_t *server)
{
    uint8_t salted[AUTH_MAX_KEY], client[AUTH_MAX_KEY];
    size_t n = md_len(m);
    unsigned got = 0;
    bool ok = PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)slen, (int)iterations,
                                md_of(m), (int)n, salted) == 1 &&
              hmac(m, salted, n, "Client Key", 10, client) &&
              EVP_Digest(client, n, stored, &got, md_of(m), NULL) == 1 &&
              (server == NULL || hmac(m, salted, n, "Server Key", 10, server));
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client, sizeof(client));
    return ok;
}

/* The secret of a user that does not exist: a salt and keys made from the
 * database's seed and the name, stable for the process. */
static void fake_secret(const auth_db *db, auth_mech m, const char *name, size_t len,
                        auth_secret *s)
{
    uint8_t h[AUTH_MAX_KEY];
    unsigned n = 0;
    HMAC(EVP_sha512(), db->fake_seed, sizeof(db->fake_seed), (const unsigned char *)name,
         len, h, &n);
    memset(s, 0, sizeof(*s));
    /* The count the users file uses (its first user's), so the answer does
     * not tell a real user from a made-up one. */
    s->iterations = db->n > 0 ? db->users[0].secret[m].iterations : default_iterations[m];
    s->salt_len = 16;
    memcpy(s->salt, h, 16);
    memcpy(s->stored_key, h + 16, 48);
    memcpy(s->server_key, h, sizeof(s->server_key));
}

static const auth_user *find_user(const auth_db *db, const char *name, size_t len)
{
    for (int i = 0; i < db->n; i++)
        if (strlen(db->users[i].name) == len && memcmp(db->users[i].name, name, len) == 0)
            return &db->users[i];
    return NULL;
}

const auth_user *auth_check_plain(const auth_db *db, const char *user, size_t ulen,
                                  const char *password, size_t plen)
{
    const auth_user *u = find_user(db, user, ulen);
    auth_secret fake;
    const auth_secret *s = &fake;
    if (u != NULL)
        s = &u->secret[AUTH_SCRAM_SHA512];
    else
        fake_secret(db, AUTH_SCRAM_SHA512, user, ulen, &fake);
    uint8_t stored[AUTH_MAX_KEY];
    bool derived = derive(AUTH_SCRAM_SHA512, password, plen, s->salt, s->salt_len,
                          s->iterations, stored, NULL);
    bool same = CRYPTO_memcmp(stored, s->stored_key, md_len(AUTH_SCRAM_SHA512)) == 0;
    return u != NULL && derived && same ? u : NULL;
}

/* ---- base64 and hex ---- */

/* base64 of n bytes into out (NUL-terminated); its length. */
static size_t b64(const uint8_t *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int auth_unb64(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    if (in[len - 1] == '=')
        n--;
    if (in[len - 2] == '=')
        n--;
    return n;
}

static int unhex(const char *s, size_t len, uint8_t *out, size_t max)
{
    if (len % 2 || len / 2 > max)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        char two[3] = {s[2 * i], s[2 * i + 1], 0};
        char *end;
        v = (unsigned)strtoul(two, &end, 16);
        if (*end != '\0')
            return -1;
        out[i] = (uint8_t)v;
    }
    return (int)(len / 2);
}

/* ---- the users file ---- */

/* "SHA512=i,salt,stored,server" into the user's secret of that mechanism. */
static bool parse_secret(auth_user *u, char *field)
{
    char *eq = strchr(field, '=');
    if (eq == NULL)
        return false;
    *eq = '\0';
    int m = -1;
    for (int i = 0; i < AUTH_NMECHS; i++)
        if (strcmp(field, file_names[i]) == 0)
            m = i;
    if (m < 0)
        return false;
    auth_secret *s = &u->secret[m];
    char *parts[4], *save = NULL;
    char *p = strtok_r(eq + 1, ",", &save);
    for (int i = 0; i < 4; i++, p = strtok_r(NULL, ",", &save))
        if ((parts[i] = p) == NULL)
            return false;
    size_t n = md_len((auth_mech)m);
    char *end;
    unsigned long iters = strtoul(parts[0], &end, 10);
    int salt = unhex(parts[1], strlen(parts[1]), s->salt, sizeof(s->salt));
    if (*end != '\0' || iters == 0 || iters > 10000000 || salt <= 0 ||
        unhex(parts[2], strlen(parts[2]), s->stored_key, n) != (int)n ||
        unhex(parts[3], strlen(parts[3]), s->server_key, n) != (int)n)
        return false;
    s->iterations = (unsigned)iters;
    s->salt_len = (size_t)salt;
    return true;
}

static bool parse_line(auth_user *u, char *line)
{
    char *save = NULL, *name = strtok_r(line, ":", &save);
    char *role = strtok_r(NULL, ":", &save);
    if (name == NULL || role == NULL || strlen(name) >= sizeof(u->name) ||
        (strcmp(role, "admin") != 0 && strcmp(role, "user") != 0))
        return false;
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->admin = strcmp(role, "admin") == 0;
    int have = 0;
    for (char *f = strtok_r(NULL, ":", &save); f != NULL;
         f = strtok_r(NULL, ":", &save)) {
        if (!parse_secret(u, f))
            return false;
        have++;
    }
    for (int m = 0; m < AUTH_NMECHS; m++)
        if (u->secret[m].iterations == 0)
            return false; /* every mechanism is needed */
    return have == AUTH_NMECHS;
}

int auth_load(auth_db *db, const char *path, char *why, size_t whylen)
{
    memset(db, 0, sizeof(*db));
    if (RAND_bytes(db->fake_seed, sizeof(db->fake_seed)) != 1) {
        snprintf(why, whylen, "no random bytes for the users' seed");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, whylen, "cannot open users file %s", path);
        return -1;
    }
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        auth_user u;
        memset(&u, 0, sizeof(u));
        if (db->n == AUTH_MAX_USERS || !parse_line(&u, line)) {
            snprintf(why, whylen,
                     "users file %s, line %d: expected "
                     "user:role:SHA512=i,salt,stored,server:SHA256=...:SHA1=... "
                     "(scripts/kvhost-user writes it)",
                     path, lineno);
            fclose(f);
            return -1;
        }
        db->users[db->n++] = u;
    }
    fclose(f);
    if (db->n == 0) {
        snprintf(why, whylen, "users file %s has no users", path);
        return -1;
    }
    return 0;
}

/* ---- SCRAM ---- */

void auth_scram_clear(auth_scram *s)
{
    free(s->first_bare);
    free(s->server_first);
    free(s->nonce);
    memset(s, 0, sizeof(*s));
}

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* A SCRAM username (RFC 5802: ',' and '=' escaped as =2C and =3D). */
static bool unescape_name(const char *p, size_t n, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '=') {
            if (n - i < 3)
                return false;
            if (memcmp(p + i, "=2C", 3) == 0)
                c = ',';
            else if (memcmp(p + i, "=3D", 3) == 0)
                c = '=';
            else
                return false;
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    *len = o;
    return o > 0;
}

static bool printable_nonce(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || c == ',')
            return false;
    }
    return n > 0;
}

int auth_scram_start(const auth_db *db, auth_scram *s, auth_mech mech, const char *msg,
                     size_t len, char *out, size_t cap)
{
    auth_scram_clear(s);
    if (mech < 0 || mech >= AUTH_NMECHS || len > AUTH_MAX_PAYLOAD)
        return -1;
    /* gs2-header: "n,," or "y,," with an optional "a=authzid"; no channel
     * binding ("p=" is refused). */
    const char *c1 = memchr(msg, ',', len);
    const char *c2 = c1 ? memchr(c1 + 1, ',', len - (size_t)(c1 + 1 - msg)) : NULL;
    if (c2 == NULL || (msg[0] != 'n' && msg[0] != 'y') || c1 != msg + 1 ||
        (size_t)(c2 + 1 - msg) >= sizeof(s->gs2))
        return -1;
    memcpy(s->gs2, msg, (size_t)(c2 + 1 - msg));
    const char *bare = c2 + 1;
    size_t blen = len - (size_t)(bare - msg);
    /* client-first-message-bare: n=user,r=nonce[,extensions] */
    const char *comma = memchr(bare, ',', blen);
    if (blen < 2 || memcmp(bare, "n=", 2) != 0 || comma == NULL ||
        (size_t)(comma - bare) + 3 > blen || memcmp(comma + 1, "r=", 2) != 0)
        return -1;
    char name[256];
    size_t nlen;
    if (!unescape_name(bare + 2, (size_t)(comma - bare - 2), name, sizeof(name), &nlen))
        return -1;
    const char *cnonce = comma + 3;
    const char *cend = memchr(cnonce, ',', blen - (size_t)(cnonce - bare));
    size_t cnlen = cend ? (size_t)(cend - cnonce) : blen - (size_t)(cnonce - bare);
    if (!printable_nonce(cnonce, cnlen))
        return -1;

    s->mech = mech;
    s->user = find_user(db, name, nlen);
    if (s->user == NULL)
        fake_secret(db, mech, name, nlen, &s->fake);
    const auth_secret *sec = s->user ? &s->user->secret[mech] : &s->fake;
    uint8_t rnd[18];
    char snonce[32], salt[AUTH_MAX_SALT * 2];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -1;
    b64(rnd, sizeof(rnd), snonce); /* 24 characters, no padding, no ',' */
    b64(sec->salt, sec->salt_len, salt);
    s->first_bare = dup_n(bare, blen);
    s->nonce = malloc(cnlen + strlen(snonce) + 1);
    int n = snprintf(out, cap, "r=%.*s%s,s=%s,i=%u", (int)cnlen, cnonce, snonce, salt,
                     sec->iterations);
    if (s->first_bare == NULL || s->nonce == NULL || n < 0 || (size_t)n >= cap) {
        auth_scram_clear(s);
        return -1;
    }
    snprintf(s->nonce, cnlen + strlen(snonce) + 1, "%.*s%s", (int)cnlen, cnonce, snonce);
    s->server_first = dup_n(out, (size_t)n);
    if (s->server_first == NULL) {
        auth_scram_clear(s);
        return -1;
    }
    s->active = true;
    return 0;
}

int auth_scram_finish(auth_scram *s, const char *msg, size_t len, char *out, size_t cap,
                      const auth_user **user)
{
    int rc = -1;
    *user = NULL;
    if (!s->active || len > AUTH_MAX_PAYLOAD)
        goto out;
    /* client-final-message: c=<base64 gs2 header>,r=<nonce>[,...],p=<proof> */
    const char *p = NULL;
    for (size_t i = len; i-- > 2;)
        if (msg[i - 2] == ',' && msg[i - 1] == 'p' && msg[i] == '=') {
            p = msg + i - 2;
            break;
        }
    if (p == NULL)
        goto out;
    size_t without = (size_t)(p - msg); /* client-final-message-without-proof */
    char want_c[128];
    int cl = snprintf(want_c, sizeof(want_c), "c=");
    cl += (int)b64((const uint8_t *)s->gs2, strlen(s->gs2), want_c + cl);
    size_t nlen = strlen(s->nonce);
    if (without < (size_t)cl + 3 + nlen || memcmp(msg, want_c, (size_t)cl) != 0 ||
        memcmp(msg + cl, ",r=", 3) != 0 || memcmp(msg + cl + 3, s->nonce, nlen) != 0 ||
        (without != (size_t)cl + 3 + nlen && msg[cl + 3 + nlen] != ','))
        goto out;
    const auth_secret *sec = s->user ? &s->user->secret[s->mech] : &s->fake;
    size_t dl = md_len(s->mech);
    uint8_t proof[AUTH_MAX_KEY + 3], sig[AUTH_MAX_KEY], client_key[AUTH_MAX_KEY],
        stored[AUTH_MAX_KEY], server_sig[AUTH_MAX_KEY];
    const char *pv = p + 3;
    if (auth_unb64(pv, len - (size_t)(pv - msg), proof, sizeof(proof)) != (int)dl)
        goto out;
    /* AuthMessage = client-first-bare "," server-first "," final-without-proof */
    size_t alen = strlen(s->first_bare) + strlen(s->server_first) + without + 2;
    char *am = malloc(alen + 1);
    if (am == NULL)
        goto out;
    /* Built with memcpy: the client's bytes may hold a NUL. */
    size_t fb = strlen(s->first_bare), sf = strlen(s->server_first);
    memcpy(am, s->first_bare, fb);
    am[fb] = ',';
    memcpy(am + fb + 1, s->server_first, sf);
    am[fb + 1 + sf] = ',';
    memcpy(am + fb + 2 + sf, msg, without);
    unsigned got = 0;
    bool ok = hmac(s->mech, sec->stored_key, dl, am, alen, sig);
    for (size_t i = 0; i < dl; i++)
        client_key[i] = proof[i] ^ sig[i];
    ok = ok && EVP_Digest(client_key, dl, stored, &got, md_of(s->mech), NULL) == 1 &&
         hmac(s->mech, sec->server_key, dl, am, alen, server_sig);
    free(am);
    /* Every step is done for a user that does not exist too: no timing hint. */
    bool same = CRYPTO_memcmp(stored, sec->stored_key, dl) == 0;
    if (!ok || !same || s->user == NULL)
        goto out;
    char v[2 * AUTH_MAX_KEY];
    b64(server_sig, dl, v);
    int n = snprintf(out, cap, "v=%s", v);
    if (n < 0 || (size_t)n >= cap)
        goto out;
    *user = s->user;
    rc = 0;
out:
    auth_scram_clear(s);
    return rc;
}
