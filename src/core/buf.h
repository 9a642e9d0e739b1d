/* buf: a growable byte buffer, for text built in pieces (events, JSON bodies). */
#ifndef CHATD_BUF_H
#define CHATD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *p;
    size_t len;
    size_t cap;
    bool failed; /* an append ran out of memory since the owner last cleared this */
};

/* Makes room for n more bytes (plus a NUL). Returns 0 or -ENOMEM (and sets failed). */
int buf_reserve(struct buf *b, size_t n);

/* Appends n bytes and keeps the content NUL-terminated. Returns 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t n);

/* Appends a NUL-terminated string. Returns 0 or -ENOMEM. */
int buf_append_str(struct buf *b, const char *s);

/* Appends s[0..n) JSON-escaped (without quotes). Returns 0 or -ENOMEM. */
int buf_append_json(struct buf *b, const char *s, size_t n);

/* Appends a decimal integer. Returns 0 or -ENOMEM. */
int buf_append_int(struct buf *b, long long v);

/* Frees the memory and empties the buffer. */
void buf_free(struct buf *b);

#endif
