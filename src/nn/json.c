/*
 * json.c - the strict JSON reader of json.h: strings (UTF-8 and escapes) and the
 * validating pass over a whole value.
 */
#include "nn/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int lgd_json_vfail(lgd_json *j, lgd_status st, const char *fmt, va_list ap)
{
    if (j->st == LGD_OK) {
        if (j->err && j->err_len && vsnprintf(j->err, j->err_len, fmt, ap) < 0)
            j->err[0] = '\0';
        j->st = st;
    }
    return -1;
}

int lgd_json_fail(lgd_json *j, lgd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lgd_json_vfail(j, st, fmt, ap);
    va_end(ap);
    return -1;
}

int lgd_json_syntax(lgd_json *j, const char *what)
{
    if (j->i >= j->n)
        return lgd_json_fail(j, LGD_ERR_FORMAT,
                             "invalid JSON header: unexpected end at byte %zu (%s)", j->n, what);
    return lgd_json_fail(j, LGD_ERR_FORMAT, "invalid JSON header at byte %zu: %s", j->i, what);
}

void lgd_json_skip_ws(lgd_json *j)
{
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

/* ------------------------------------------------------------------ strings */

/* Length of the valid UTF-8 sequence (2 to 4 bytes) at s, or 0 (overlong, surrogate,
 * beyond U+10FFFF, truncated or a stray byte). s[0] >= 0x80. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (avail < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t j = 2; j < k; j++)
        if ((s[j] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Writes code point cp (not a surrogate, <= U+10FFFF) as UTF-8 to out (when not NULL);
 * returns its length. */
static size_t utf8_put(char *out, uint32_t cp)
{
    unsigned char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    if (out)
        memcpy(out, b, k);
    return k;
}

/* The four hex digits at position pos, or -1. */
static long hex4(const lgd_json *j, size_t pos)
{
    if (pos > j->n || j->n - pos < 4)
        return -1;
    long v = 0;
    for (size_t q = pos; q < pos + 4; q++) {
        int c = j->s[q], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

int lgd_json_string(lgd_json *j, char *out)
{
    size_t o = 0;
    j->i++;
    for (;;) {
        if (j->i >= j->n)
            return lgd_json_syntax(j, "unterminated string");
        unsigned c = j->s[j->i];
        if (c == '"') {
            j->i++;
            break;
        }
        if (c < 0x20)
            return lgd_json_syntax(j, "control character in a string (escape it)");
        if (c >= 0x80) {
            size_t k = utf8_seq(j->s + j->i, j->n - j->i);
            if (k == 0)
                return lgd_json_syntax(j, "invalid UTF-8 in a string");
            if (out)
                memcpy(out + o, j->s + j->i, k);
            o += k;
            j->i += k;
            continue;
        }
        if (c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            j->i++;
            continue;
        }
        if (j->i + 1 >= j->n)
            return lgd_json_syntax(j, "unterminated string");
        char simple = 0;
        switch (j->s[j->i + 1]) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: return lgd_json_syntax(j, "invalid escape in a string");
        }
        if (simple) {
            if (out)
                out[o] = simple;
            o++;
            j->i += 2;
            continue;
        }
        long cp = hex4(j, j->i + 2);
        if (cp < 0)
            return lgd_json_syntax(j, "invalid \\u escape (four hex digits expected)");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return lgd_json_syntax(j, "unpaired low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            size_t q = j->i + 6;
            long lo = (q + 1 < j->n && j->s[q] == '\\' && j->s[q + 1] == 'u') ? hex4(j, q + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return lgd_json_syntax(j, "unpaired high surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            j->i += 6;
        }
        if (cp == 0)
            return lgd_json_syntax(j, "\\u0000 (NUL) in a string");
        o += utf8_put(out ? out + o : NULL, (uint32_t)cp);
        j->i += 6;
    }
    if (out)
        out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ validation */

static int check_container(lgd_json *j, int depth);

static int check_number(lgd_json *j)
{
    if (lgd_json_peek(j) == '-')
        j->i++;
    if (!lgd_json_is_digit(lgd_json_peek(j)))
        return lgd_json_syntax(j, "invalid number");
    if (lgd_json_peek(j) == '0')
        j->i++;
    else
        while (lgd_json_is_digit(lgd_json_peek(j)))
            j->i++;
    if (lgd_json_peek(j) == '.') {
        j->i++;
        if (!lgd_json_is_digit(lgd_json_peek(j)))
            return lgd_json_syntax(j, "invalid number (digits expected after '.')");
        while (lgd_json_is_digit(lgd_json_peek(j)))
            j->i++;
    }
    if (lgd_json_peek(j) == 'e' || lgd_json_peek(j) == 'E') {
        j->i++;
        if (lgd_json_peek(j) == '+' || lgd_json_peek(j) == '-')
            j->i++;
        if (!lgd_json_is_digit(lgd_json_peek(j)))
            return lgd_json_syntax(j, "invalid number (digits expected in the exponent)");
        while (lgd_json_is_digit(lgd_json_peek(j)))
            j->i++;
    }
    return 0;
}

static int check_literal(lgd_json *j, const char *word)
{
    size_t k = strlen(word);
    if (j->n - j->i < k || memcmp(j->s + j->i, word, k) != 0)
        return lgd_json_syntax(j, "invalid literal");
    j->i += k;
    return 0;
}

static int check_value(lgd_json *j, int depth)
{
    int c = lgd_json_peek(j);
    switch (c) {
    case '{':
    case '[': return check_container(j, depth + 1);
    case '"': return lgd_json_string(j, NULL);
    case 't': return check_literal(j, "true");
    case 'f': return check_literal(j, "false");
    case 'n': return check_literal(j, "null");
    case -1: return lgd_json_syntax(j, "a value expected");
    default:
        if (c == '-' || lgd_json_is_digit(c))
            return check_number(j);
        return lgd_json_syntax(j, "unexpected character (a value expected)");
    }
}

/* An object or array at j->i, itself at nesting level depth (the top level is 1). */
static int check_container(lgd_json *j, int depth)
{
    if (depth > j->max_depth)
        return lgd_json_fail(j, LGD_ERR_FORMAT,
                             "invalid JSON header at byte %zu: nested deeper than %d levels",
                             j->i, j->max_depth);
    int obj = j->s[j->i] == '{';
    int close = obj ? '}' : ']';
    j->i++;
    lgd_json_skip_ws(j);
    if (lgd_json_peek(j) == close) {
        j->i++;
        return 0;
    }
    for (;;) {
        if (obj) {
            if (lgd_json_peek(j) != '"')
                return lgd_json_syntax(j, "a string key expected");
            if (lgd_json_string(j, NULL))
                return -1;
            lgd_json_skip_ws(j);
            if (lgd_json_peek(j) != ':')
                return lgd_json_syntax(j, "':' expected");
            j->i++;
            lgd_json_skip_ws(j);
        }
        if (check_value(j, depth))
            return -1;
        lgd_json_skip_ws(j);
        int c = lgd_json_peek(j);
        if (c == ',') {
            j->i++;
            lgd_json_skip_ws(j);
            continue;
        }
        if (c == close) {
            j->i++;
            return 0;
        }
        return lgd_json_syntax(j, obj ? "',' or '}' expected" : "',' or ']' expected");
    }
}

int lgd_json_check(lgd_json *j)
{
    int c = lgd_json_peek(j);
    if (c != '{' && c != '[')
        return lgd_json_syntax(j, "an object or array expected");
    return check_container(j, 1);
}
