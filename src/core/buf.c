/* buf: see buf.h. */
#include "core/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"

int buf_reserve(struct buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *grown = realloc(b->p, cap);
    if (grown == NULL) {
        b->failed = true;
        return -ENOMEM;
    }
    b->p = grown;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_json(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, JSONW_ESCAPE_BOUND(n)) != 0)
        return -ENOMEM;
    b->len += jsonw_escape(b->p + b->len, s, n);
    b->p[b->len] = '\0';
    return 0;
}

int buf_append_int(struct buf *b, long long v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        tmp[--n] = '-';
    return buf_append(b, tmp + n, sizeof tmp - n);
}

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}
