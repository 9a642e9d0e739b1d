/*
 * fp.h — the parts of fakeprov: fp_http.c is a small HTTP/1.1 server layer
 * (accept loop, http-parser, keep-alive, pipelining, output flushing);
 * fakeprov.c answers requests with OpenAI-format streams and holds main().
 */
#ifndef FP_H
#define FP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>

#define PATH_SUFFIX "/chat/completions"
#define SUFFIX_LEN  (sizeof(PATH_SUFFIX) - 1)

struct conn {
    int fd;
    struct event *rev;   /* persistent read: also notices client EOF mid-stream */
    struct event *wev;   /* added only while output is queued */
    struct event *timer; /* next token; created on the first paced stream */
    uint64_t due_us;     /* when the next token is due (CLOCK_MONOTONIC) */
    struct evbuffer *out;
    struct evbuffer *pending; /* pipelined request bytes that arrived mid-stream */
    struct conn *prev, *next; /* all connections, so exit can free them */
    http_parser hp;
    /* request being parsed */
    char *body;
    size_t body_len, body_cap;
    char tail[SUFFIX_LEN]; /* last bytes of the path (before '?') */
    uint32_t path_len;
    char hdr[6];     /* header-name prefix, enough to spot "Expect" */
    uint8_t hdr_len; /* full name length, saturating */
    bool in_query, in_value, expect_continue, too_big;
    /* response state */
    bool streaming, keep_alive, chunked, closing;
    int sent, total;
    bool length_cut; /* finish_reason "length" instead of "stop" */
    char *model;     /* JSON-encoded (quoted) model name */
    char *tok;       /* one framed token chunk, reused for every token */
    size_t tok_len;
    const char *typing; /* --typing: the rest of the canned answer to send */
};

extern struct event_base *g_base;
extern unsigned long long g_accepted;

/* fp_http.c */
int http_start(int port); /* listens on 127.0.0.1; returns the bound port or -1 */
void http_stop(void);     /* closes every connection and the listener */
void send_error(struct conn *c, int status, const char *reason, const char *msg);
bool conn_flush(struct conn *c); /* false: the connection is finished, close it */
void conn_close(struct conn *c);
void conn_resume(struct conn *c); /* after a stream step: flush, run pipelined requests */

/* fakeprov.c */
void fp_handle_request(struct conn *c); /* a whole request was parsed: answer it */
void fp_stream_free(struct conn *c);

/* fp_typing.c: --typing, the demo's provider */
const char *fp_typing_answer(void);        /* the next canned answer (static) */
size_t fp_typing_token_len(const char *s); /* bytes of the token s starts with; 0 at the end */
int fp_typing_token_count(const char *s);
int fp_typing_delay_ms(void); /* 20-60 ms, a typing model's pace */

#endif
