/* sse: an incremental parser for a Server-Sent Events stream (the provider's
 * side) as the WHATWG HTML standard defines it. Bytes may arrive split at any
 * point, even inside a line ending or a multi-byte character; lines end with
 * \n, \r\n or \r; ':' lines are comments; "data" lines of one event are joined
 * with \n; "event" and "id" are kept; other fields are counted and ignored. */
#ifndef CHATD_SSE_H
#define CHATD_SSE_H

#include <stdbool.h>
#include <stddef.h>

struct sse_event {
    const char *data; /* the joined data lines, NUL-terminated */
    size_t data_len;
    const char *type; /* the "event" field, "" when none (means "message") */
    const char *id;   /* the last "id" field seen in the stream, "" when none */
};

/* Receives each dispatched event; pointers are valid only during the call.
 * Return 0 to go on; any other value stops sse_parser_feed, which returns it. */
typedef int (*sse_event_cb)(void *ctx, const struct sse_event *ev);

struct sse_parser {
    char *line; /* a line not yet ended, kept across feeds */
    size_t line_len, line_cap;
    char *data; /* the data of the event being built */
    size_t data_len, data_cap;
    bool has_data;    /* a data field was seen (it may be empty) */
    char type[32];    /* longer event types are cut (OpenAI streams send none) */
    char id[64];      /* longer ids are cut */
    bool after_cr;    /* the last byte was \r: a following \n ends nothing */
    bool started;     /* past a leading byte-order mark */
    size_t max_line;  /* longest line or event accepted */
    unsigned unknown; /* lines with a field name SSE does not define */
    size_t events;    /* events dispatched */
};

/* Prepares a parser that refuses lines or events longer than max_bytes. */
void sse_parser_init(struct sse_parser *p, size_t max_bytes);

/* Frees the parser's buffers (the struct itself belongs to the caller). */
void sse_parser_free(struct sse_parser *p);

/* Feeds bytes. Returns 0, -E2BIG past max_bytes, -ENOMEM, or the callback's value. */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *ctx);

/* At the end of the stream: ends an unterminated last line and dispatches a
 * pending event (the standard would drop it; providers that omit the last blank
 * line still mean it). Returns as sse_parser_feed. */
int sse_parser_finish(struct sse_parser *p, sse_event_cb cb, void *ctx);

#endif
