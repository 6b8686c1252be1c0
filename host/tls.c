/*
 * tls.c - the TLS context and TLS reads and writes (tls.h).
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>

/* TLS 1.2 suites: forward secrecy and AEAD only. (TLS 1.3's are all of that.) */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

/* The reason of the last OpenSSL error, for a message naming the file. */
static void fail(char *why, size_t whylen, const char *what, const char *path)
{
    char err[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, err, sizeof(err));
    ERR_clear_error();
    snprintf(why, whylen, "cannot use %s %s: %s", what, path, err);
}

SSL_CTX *tls_server_context(const char *chain, const char *key, const char *client_ca,
                            char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(why, whylen, "cannot make a TLS context (out of memory)");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A client that closes without close_notify is done, not in error: the
     * protocol frames its own packets, so no truncation goes unseen. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* Sessions are resumed only into this server's context (needed with
     * client certificates, harmless without). */
    static const unsigned char sid_ctx[] = "kvhost";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    /* The output buffer moves between a write that wants to be retried and
     * its retry; a write may take part of what it is given. */
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        fail(why, whylen, "the cipher list", TLS12_CIPHERS);
        goto err;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1) {
        fail(why, whylen, "the certificate chain", chain);
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fail(why, whylen, "the private key", key);
        goto err;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fail(why, whylen, "the private key", key);
        goto err;
    }
    if (client_ca != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            fail(why, whylen, "the client CA file", client_ca);
            goto err;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
err:
    SSL_CTX_free(ctx);
    return NULL;
}

/* What SSL_get_error says of a call that moved nothing. */
static tls_io outcome(SSL *ssl, int rc)
{
    int err = SSL_get_error(ssl, rc);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    case SSL_ERROR_SYSCALL:
        /* EOF without close_notify (errno 0), or a socket error. */
        if (ERR_peek_error() == 0 && errno == 0) {
            ERR_clear_error();
            return TLS_EOF;
        }
        ERR_clear_error();
        return TLS_ERROR;
    default:
        ERR_clear_error();
        return TLS_ERROR;
    }
}

size_t tls_read(SSL *ssl, void *buf, size_t cap, tls_io *how)
{
    ERR_clear_error(); /* SSL_get_error reads the queue: nothing stale in it */
    errno = 0;
    int rc = SSL_read(ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (rc > 0) {
        *how = TLS_DONE;
        return (size_t)rc;
    }
    *how = outcome(ssl, rc);
    return 0;
}

size_t tls_write(SSL *ssl, const void *buf, size_t len, tls_io *how)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (rc > 0) {
        *how = TLS_DONE;
        return (size_t)rc;
    }
    *how = outcome(ssl, rc);
    return 0;
}
