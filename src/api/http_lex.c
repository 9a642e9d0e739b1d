/* http_lex: RFC 9112's syntax for the parts of a request where http-parser 2.9
 * is lenient, checked on the bytes before the parser sees them. Part of the
 * http module (http.h).
 *
 * http-parser (built without HTTP_PARSER_STRICT, as Debian ships it) takes a
 * space before a header's colon as part of the name (and then still treats
 * "Transfer-Encoding " as Transfer-Encoding), joins obs-fold lines, accepts a
 * bare LF as a line end, any byte in place of the CRLF after chunk data, and a
 * bare LF inside a chunk extension. Each of those lets a front end and chatd
 * disagree on where a request ends (request smuggling), so this lexer refuses
 * them: it walks the request line, the header section, a chunked body and its
 * trailer section, and hands the parser only bytes that passed. A body framed
 * by Content-Length is the parser's to count. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "api/http_internal.h"
#include "core/jscan.h"
#include "core/swar.h"

/* tchar of RFC 9110 §5.6.2. */
static bool is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != '\0' && memchr(extra, ch, sizeof extra - 1) != NULL;
}

/* Skips the bytes of a field value that need no decision (is_value_char but for
 * '\t', which the slow path takes): eight at a time while a word holds no control
 * character and no DEL (swar.h), then one at a time. Returns where it stopped. */
static size_t value_run(const unsigned char *u, size_t i, size_t len)
{
    while (len - i >= 8) {
        uint64_t x = swar_load(u + i);
        uint64_t stop = swar_below(x, 0x20) | swar_equal(x, 0x7f);
        if (stop != 0)
            return i + swar_first(stop);
        i += 8;
    }
    while (i < len && u[i] >= 0x20 && u[i] != 0x7f)
        i++;
    return i;
}

/* field-vchar or SP / HTAB: what a field value (and a chunk extension) may hold. */
static bool is_value_char(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* The byte must be `want`; then the lexer goes on in state `next`. */
static bool expect(struct http_lex *lx, unsigned char ch, unsigned char want,
                   enum http_lex_state next)
{
    if (ch != want)
        return false;
    lx->state = next;
    return true;
}

void http_lex_reset(struct http_lex *lx)
{
    lx->state = LX_START;
    lx->trailer = false;
    lx->chunk_left = 0;
}

void http_lex_body(struct http_lex *lx, enum http_lex_body body)
{
    switch (body) {
    case HTTP_BODY_NONE: lx->state = LX_HEAD_DONE; break;
    case HTTP_BODY_LENGTH: lx->state = LX_RAW; break;
    case HTTP_BODY_CHUNKED: lx->state = LX_CSIZE0; break;
    }
}

/* One byte of a field section (the header or the trailer section). Returns false
 * when the byte breaks a rule. */
static bool field_byte(struct http_lex *lx, unsigned char ch)
{
    switch (lx->state) {
    case LX_LINE:
        if (ch == '\r')
            lx->state = LX_END_CR;
        else if (is_tchar(ch))
            lx->state = LX_NAME;
        else
            return false; /* obs-fold, whitespace before a name, ':' with no name */
        return true;
    case LX_NAME:
        if (ch == ':')
            lx->state = LX_VALUE;
        else if (!is_tchar(ch))
            return false; /* whitespace (or anything else) before the colon */
        return true;
    case LX_VALUE:
        if (ch == '\r')
            lx->state = LX_VALUE_CR;
        else if (!is_value_char(ch))
            return false; /* bare LF, NUL, other control characters */
        return true;
    case LX_VALUE_CR:
        if (ch != '\n')
            return false; /* bare CR */
        lx->state = LX_LINE;
        return true;
    default: return false;
    }
}

/* One byte of the start of a message: optional empty lines, the request line. */
static bool start_byte(struct http_lex *lx, unsigned char ch)
{
    switch (lx->state) {
    case LX_START:
        if (ch == '\r')
            lx->state = LX_START_CR;
        else if (ch > 0x20 && ch < 0x7f)
            lx->state = LX_RLINE;
        else
            return false;
        return true;
    case LX_START_CR:
        if (ch != '\n')
            return false;
        lx->state = LX_START; /* RFC 9112 §2.2: an empty line before the request */
        return true;
    case LX_RLINE:
        if (ch == '\r')
            lx->state = LX_RLINE_CR;
        else if (ch < 0x20 || ch >= 0x7f)
            return false; /* only visible ASCII and SP in a request line */
        return true;
    case LX_RLINE_CR: return expect(lx, ch, '\n', LX_LINE);
    default: return false;
    }
}

/* One byte of a chunk-size line or of the CRLF after chunk data. */
static bool chunk_byte(struct http_lex *lx, unsigned char ch)
{
    int h = jscan_hex_digit(ch);
    switch (lx->state) {
    case LX_CSIZE0:
        if (h < 0)
            return false;
        lx->chunk_left = (uint64_t)h;
        lx->state = LX_CSIZE;
        return true;
    case LX_CSIZE:
        if (h >= 0) {
            if (lx->chunk_left >> 59 != 0)
                return false; /* far past any body limit, and near overflow */
            lx->chunk_left = lx->chunk_left * 16 + (uint64_t)h;
        } else if (ch == ';' || ch == ' ' || ch == '\t') {
            lx->state = ch == ';' ? LX_CEXT : LX_CBWS;
        } else if (ch == '\r') {
            lx->state = LX_CSIZE_CR;
        } else {
            return false;
        }
        return true;
    case LX_CBWS: /* BWS before a chunk extension's ';' */
        if (ch == ';')
            lx->state = LX_CEXT;
        else if (ch != ' ' && ch != '\t')
            return false;
        return true;
    case LX_CEXT:
        if (ch == '\r')
            lx->state = LX_CSIZE_CR;
        else if (!is_value_char(ch))
            return false; /* a bare LF here would end the line for another parser */
        return true;
    case LX_CSIZE_CR:
        if (ch != '\n')
            return false;
        if (lx->chunk_left == 0) {
            lx->trailer = true;
            lx->state = LX_LINE;
        } else {
            lx->state = LX_CDATA;
        }
        return true;
    case LX_CDATA_CR: return expect(lx, ch, '\r', LX_CDATA_LF);
    case LX_CDATA_LF: return expect(lx, ch, '\n', LX_CSIZE0);
    default: return false;
    }
}

size_t http_lex_scan(struct http_lex *lx, const char *data, size_t len, bool *bad)
{
    const unsigned char *u = (const unsigned char *)data;
    *bad = false;
    size_t i = 0;
    while (i < len) {
        bool ok;
        switch (lx->state) {
        case LX_RAW: return len; /* Content-Length: the parser counts */
        case LX_HEAD_DONE:
        case LX_MSG_DONE:
            /* The parser did not end the head or the message where we did. */
            *bad = true;
            return i;
        case LX_CDATA: {
            size_t take = len - i < lx->chunk_left ? len - i : (size_t)lx->chunk_left;
            lx->chunk_left -= take;
            i += take;
            if (lx->chunk_left == 0)
                lx->state = LX_CDATA_CR;
            continue;
        }
        case LX_RLINE: /* visible ASCII and SP, then start_byte decides */
            while (i < len && u[i] >= 0x20 && u[i] < 0x7f)
                i++;
            if (i == len)
                return len;
            ok = start_byte(lx, u[i]);
            break;
        case LX_START:
        case LX_START_CR:
        case LX_RLINE_CR: ok = start_byte(lx, u[i]); break;
        case LX_END_CR:
            ok = u[i] == '\n';
            if (ok) {
                lx->state = lx->trailer ? LX_MSG_DONE : LX_HEAD_DONE;
                return i + 1; /* the parser decides what comes next */
            }
            break;
        case LX_NAME: /* tchars, then field_byte decides */
            while (i < len && is_tchar(u[i]))
                i++;
            if (i == len)
                return len;
            ok = field_byte(lx, u[i]);
            break;
        case LX_VALUE: /* the run fast, then field_byte decides the byte it stopped at */
            if ((i = value_run(u, i, len)) == len)
                return len;
            ok = field_byte(lx, u[i]);
            break;
        case LX_LINE:
        case LX_VALUE_CR: ok = field_byte(lx, u[i]); break;
        default: ok = chunk_byte(lx, u[i]); break;
        }
        if (!ok) {
            *bad = true;
            return i;
        }
        i++;
    }
    return len;
}
