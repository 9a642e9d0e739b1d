/* sse: see sse.h. */
#include "services/sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sse_parser_init(struct sse_parser *p, size_t max_bytes)
{
    memset(p, 0, sizeof *p);
    p->max_line = max_bytes;
}

void sse_parser_free(struct sse_parser *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

/* Makes room for n more bytes plus a NUL in a buffer. */
static int reserve(char **buf, size_t *cap, size_t used, size_t n, size_t max)
{
    if (used + n > max)
        return -E2BIG;
    if (used + n + 1 <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < used + n + 1)
        c *= 2;
    char *grown = realloc(*buf, c);
    if (grown == NULL)
        return -ENOMEM;
    *buf = grown;
    *cap = c;
    return 0;
}

static int dispatch(struct sse_parser *p, sse_event_cb cb, void *ctx)
{
    if (p->data_len == 0) { /* no data field: nothing to dispatch */
        p->type[0] = '\0';
        return 0;
    }
    p->data[--p->data_len] = '\0'; /* drop the \n after the last data line */
    struct sse_event ev = { p->data, p->data_len, p->type, p->id };
    p->events++;
    int rc = cb(ctx, &ev);
    p->data_len = 0;
    p->type[0] = '\0';
    return rc;
}

static void copy_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int field(struct sse_parser *p, const char *name, size_t nlen, const char *v, size_t vlen)
{
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        int rc = reserve(&p->data, &p->data_cap, p->data_len, vlen + 1, p->max_line);
        if (rc != 0)
            return rc;
        memcpy(p->data + p->data_len, v, vlen);
        p->data_len += vlen;
        p->data[p->data_len++] = '\n';
        p->data[p->data_len] = '\0';
    } else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
        copy_field(p->type, sizeof p->type, v, vlen);
    } else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
        if (memchr(v, '\0', vlen) == NULL) /* the standard ignores ids with NUL */
            copy_field(p->id, sizeof p->id, v, vlen);
    } else if (!(nlen == 5 && memcmp(name, "retry", 5) == 0)) {
        p->unknown++;
    }
    return 0;
}

static int line(struct sse_parser *p, const char *s, size_t n, sse_event_cb cb, void *ctx)
{
    if (!p->started) {
        p->started = true;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0)
        return dispatch(p, cb, ctx);
    if (s[0] == ':')
        return 0; /* a comment, such as ": keep-alive" */
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return field(p, s, n, "", 0);
    const char *v = colon + 1;
    size_t vlen = n - (size_t)(v - s);
    if (vlen > 0 && *v == ' ') {
        v++;
        vlen--;
    }
    return field(p, s, (size_t)(colon - s), v, vlen);
}

/* Offset of the first \n or \r, or n. Two memchr passes beat a byte loop:
 * lines are long and \r is rare. */
static size_t find_eol(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    size_t end = nl ? (size_t)(nl - s) : n;
    const char *cr = memchr(s, '\r', end);
    return cr ? (size_t)(cr - s) : end;
}

int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *ctx)
{
    size_t i = 0;
    while (i < len) {
        if (p->after_cr) {
            p->after_cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i + find_eol(buf + i, len - i);
        int rc;
        if (p->line_len + (j - i) > p->max_line)
            return -E2BIG; /* the same verdict however the bytes were split */
        if (j == len) {    /* no line end yet: keep the piece */
            if ((rc = reserve(&p->line, &p->line_cap, p->line_len, j - i, p->max_line)) != 0)
                return rc;
            memcpy(p->line + p->line_len, buf + i, j - i);
            p->line_len += j - i;
            return 0;
        }
        if (p->line_len == 0) { /* the whole line is in buf: no copy */
            rc = line(p, buf + i, j - i, cb, ctx);
        } else {
            if ((rc = reserve(&p->line, &p->line_cap, p->line_len, j - i, p->max_line)) != 0)
                return rc;
            memcpy(p->line + p->line_len, buf + i, j - i);
            size_t n = p->line_len + j - i;
            p->line_len = 0;
            rc = line(p, p->line, n, cb, ctx);
        }
        p->after_cr = buf[j] == '\r';
        i = j + 1;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sse_parser_finish(struct sse_parser *p, sse_event_cb cb, void *ctx)
{
    int rc = 0;
    if (p->line_len > 0) {
        size_t n = p->line_len;
        p->line_len = 0;
        rc = line(p, p->line, n, cb, ctx);
    }
    if (rc == 0)
        rc = dispatch(p, cb, ctx);
    return rc;
}
