/*
 * tls.h - kvhost's TLS listener (OpenSSL's libssl): the server context, and
 * reading and writing a connection's bytes through its SSL object. TLS 1.2
 * and 1.3 only; for 1.2, ECDHE key exchange with AES-GCM or ChaCha20-Poly1305.
 */
#ifndef KVHOST_TLS_H
#define KVHOST_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/**
 * The server context: the certificate chain and private key (PEM files) and,
 * with `client_ca`, the CAs whose client certificates are required. NULL with
 * a reason naming the file and what is wrong with it.
 */
SSL_CTX *tls_server_context(const char *chain, const char *key, const char *client_ca,
                            char *why, size_t whylen);

/** How a read or write through SSL ended when it moved no bytes. */
typedef enum tls_io {
    TLS_DONE,       /* bytes moved (the count is returned) */
    TLS_WANT_READ,  /* wait until the socket is readable */
    TLS_WANT_WRITE, /* wait until the socket is writable */
    TLS_EOF,        /* the peer closed (close_notify or plain EOF) */
    TLS_ERROR,      /* a protocol error (not TLS, a bad certificate) or I/O error */
} tls_io;

/** Reads up to `cap` bytes: their count with TLS_DONE, else 0 and why not. */
size_t tls_read(SSL *ssl, void *buf, size_t cap, tls_io *how);
/** Writes up to `len` bytes: as tls_read. */
size_t tls_write(SSL *ssl, const void *buf, size_t len, tls_io *how);

#endif
