/*
 * json.h - a strict, allocation-free JSON reader over a byte range (private to liblgd;
 * its one user is the safetensors header parser, whose messages it writes).
 *
 * lgd_json_check() validates a whole object or array as JSON (RFC 8259: UTF-8 with
 * no overlong forms or surrogates, escapes with paired surrogates and no \u0000,
 * numbers, literals) with a nesting limit; the caller's own pass can then walk the
 * proven-well-formed text with lgd_json_peek(), lgd_json_skip_ws() and
 * lgd_json_string(). Nothing reads outside [s, s + n). Errors go to err as one line
 * ("invalid JSON header at byte K: ..."); only the first error of a reader is kept.
 */
#ifndef LGD_NN_JSON_H
#define LGD_NN_JSON_H

#include <stdarg.h>
#include <stddef.h>

#include "lgd/common.h"

#if defined(__GNUC__)
#  define LGD_JSON_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define LGD_JSON_PRINTF(a, b)
#endif

typedef struct lgd_json {
    const unsigned char *s; /* the text */
    size_t n;               /* its length */
    size_t i;               /* position in it */
    int max_depth;          /* deepest nesting lgd_json_check accepts (the top level is 1) */
    char *err;              /* message buffer, may be NULL (err_len 0) */
    size_t err_len;
    lgd_status st;          /* the first error, LGD_OK until one */
} lgd_json;

/* Records st and the formatted message unless an error is already recorded; returns -1. */
int lgd_json_fail(lgd_json *j, lgd_status st, const char *fmt, ...) LGD_JSON_PRINTF(3, 4);
int lgd_json_vfail(lgd_json *j, lgd_status st, const char *fmt, va_list ap)
    LGD_JSON_PRINTF(3, 0);
/* A syntax error (LGD_ERR_FORMAT) at the current position; returns -1. */
int lgd_json_syntax(lgd_json *j, const char *what);

/* The byte at the current position, or -1 at the end. */
static inline int lgd_json_peek(const lgd_json *j) { return j->i < j->n ? j->s[j->i] : -1; }
static inline int lgd_json_is_digit(int c) { return c >= '0' && c <= '9'; }
/* Skips JSON whitespace (space, tab, LF, CR). */
void lgd_json_skip_ws(lgd_json *j);

/* Validates the object or array at the current position (which must hold '{' or '[')
 * and moves past it. Returns 0 or -1. */
int lgd_json_check(lgd_json *j);
/* Scans the string whose opening quote is at the current position, validating it;
 * with out, writes the decoded UTF-8 and a NUL there (never more bytes than the
 * quoted form, quotes included, takes). Returns 0 or -1. */
int lgd_json_string(lgd_json *j, char *out);

#endif
