/* What an OpenSSL call's result means for the engine, and the program's
 * own OpenSSL errors kept apart from nestls's on the program's thread. */
#include "engine/tls_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

enum nl_tls_result nl_tls_result(const SSL *ssl, int ret, int *ssl_err)
{
    *ssl_err = SSL_ERROR_NONE;
    if (ret > 0)
        return NL_TLS_DONE;
    *ssl_err = SSL_get_error(ssl, ret);
    switch (*ssl_err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return NL_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return NL_TLS_PEER_CLOSED;
    default:
        return NL_TLS_FAILED;
    }
}

/* The program's own errors, set aside while nestls works on its thread.
 * SSL_get_error() reads the oldest error in the queue, so an error the
 * program left there (a failed handshake of its own, say) would turn
 * nestls's next "want read" into a failure of the layer: the queue must
 * be empty while nestls uses it, and be the program's again afterwards.
 * Each is copied whole: OpenSSL 3 keeps its own copies of file and func
 * (and the data) in the queue's slots, freed when the queue is cleared.
 * Marks the program set are not kept: OpenSSL offers no way to read them. */
struct set_aside {
    unsigned long code;
    char *file, *func; /* NULL when unknown */
    int line;
    char *data; /* NULL when the error had none */
};

static void free_aside(struct set_aside *a)
{
    free(a->file);
    free(a->func);
    free(a->data);
}

static __thread struct set_aside *aside;
static __thread size_t aside_count;

static void set_aside_program_errors(void)
{
    struct set_aside taken[16]; /* ERR_NUM_ERRORS: the queue holds no more */
    size_t n = 0;
    const char *file, *func, *data;
    int line, flags;
    unsigned long e;
    while (n < sizeof(taken) / sizeof(taken[0]) &&
           (e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        taken[n++] = (struct set_aside){
            .code = e,
            .file = file ? strdup(file) : NULL,
            .func = func ? strdup(func) : NULL,
            .line = line,
            .data = (flags & ERR_TXT_STRING) ? strdup(data) : NULL,
        };
    }
    ERR_clear_error();
    if (n == 0)
        return;
    aside = malloc(n * sizeof(*aside));
    if (aside == NULL) { /* no memory: the errors are lost, not misread */
        for (size_t k = 0; k < n; k++)
            free_aside(&taken[k]);
        return;
    }
    memcpy(aside, taken, n * sizeof(*aside));
    aside_count = n;
}

static void restore_program_errors(void)
{
    ERR_clear_error();
    for (size_t k = 0; k < aside_count; k++) {
        struct set_aside *a = &aside[k];
        ERR_new();
        ERR_set_debug(a->file, a->line, a->func);
        if (a->data != NULL)
            ERR_set_error(ERR_GET_LIB(a->code), ERR_GET_REASON(a->code), "%s", a->data);
        else
            ERR_set_error(ERR_GET_LIB(a->code), ERR_GET_REASON(a->code), NULL);
        free_aside(a);
    }
    free(aside);
    aside = NULL;
    aside_count = 0;
}

void nl_err_program_begin(void)
{
    set_aside_program_errors();
}

void nl_err_program_end(void)
{
    restore_program_errors();
}

void nl_err_clear(void)
{
    ERR_clear_error();
}
