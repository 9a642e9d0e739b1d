/* http_internal: what the files of the http module (http.c: connections;
 * http_lex.c: RFC 9112 syntax checks; http_parse.c: request parsing;
 * http_write.c: responses) share, and the socket-less entry points the
 * in-process fuzz target drives. Not part of the module's public face, which
 * is http.h alone. */
#ifndef CHATD_HTTP_INTERNAL_H
#define CHATD_HTTP_INTERNAL_H

#include "core/list.h"
#include <event2/event_struct.h>
#include <http_parser.h>
#include <sys/types.h>
#include <time.h>

#include "api/http.h"

/* IDLE → READING → HANDLING → (IDLE | LINGER) → freed; see set_state in http.c. */
enum conn_state { CS_IDLE, CS_READING, CS_HANDLING, CS_LINGER };

/* Where http_lex is in a request (see http_lex.c). */
enum http_lex_state {
    LX_START, /* before the request line; empty lines are skipped */
    LX_START_CR,
    LX_RLINE,
    LX_RLINE_CR,
    LX_LINE, /* at the start of a field line, or of the empty line that ends the section */
    LX_NAME,
    LX_VALUE,
    LX_VALUE_CR,
    LX_END_CR,
    LX_HEAD_DONE, /* the header section ended; the parser says what follows */
    LX_RAW,       /* a body the parser counts by Content-Length */
    LX_CSIZE0,    /* at a chunk-size line */
    LX_CSIZE,
    LX_CBWS,
    LX_CEXT,
    LX_CSIZE_CR,
    LX_CDATA,
    LX_CDATA_CR,
    LX_CDATA_LF,
    LX_MSG_DONE, /* the trailer section ended; so must the parser's message */
};

struct http_lex {
    enum http_lex_state state;
    bool trailer; /* the field lines are a trailer section */
    uint64_t chunk_left;
};

enum http_lex_body { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED };

struct http_server {
    struct event_base *base;
    struct http_handlers h;
    void *ctx;
    size_t max_body;
    const struct timeval *client_tv; /* a libevent common timeout: O(1) add/remove */
    const struct timeval *linger_tv;
    http_parser_settings settings;
    struct list conns; /* open connections (http_conn.link) */
    size_t n_conns;
    bool draining;
    time_t date_sec;
    char date[40];
    /* Swappable for a fuzz target: the clocks, and where responses go. The sink
     * takes bytes from c->out and returns how many, or -1 with errno set. */
    int64_t (*mono_us)(void);
    time_t (*wall_s)(void);
    ssize_t (*sink)(struct http_conn *c);
};

struct http_conn {
    struct http_server *srv;
    struct list link; /* in srv->conns */
    int fd;           /* -1: no socket; bytes come from http_conn_feed */
    enum conn_state state;
    struct event rev, wev, timer;
    struct evbuffer *in, *out;
    http_parser parser;
    struct http_lex lex;
    struct http_request *req; /* while a request is parsed and dispatched */
    int reject_status;        /* a rule or limit a parser callback found broken */
    bool answered_early;      /* on_headers answered; the body is not read */
    bool head;                /* the response has no body (HEAD) */
    bool keep_alive;          /* another request may follow this response */
    bool http10;
    bool chunked;       /* the streamed response uses chunked coding */
    bool response_done; /* the whole answer is queued */
    bool notify_drained;
    bool flush_scheduled; /* the write handler will run in this loop turn */
    bool broken;          /* a write failed; close from the write handler */
    bool write_failed;    /* out of memory while queueing: nothing more is queued */
    bool processing;      /* inside process_input */
    bool reading_enabled;
    size_t header_bytes;
    bool in_value; /* the last header callback was a value */
    char hname[32];
    size_t hname_len;
    struct http_hval *cur;
    struct http_hval te, cl; /* Transfer-Encoding (lines joined by ", "), Content-Length */
    size_t written_at_arm;   /* stall detection: bytes written when the timer was armed */
    size_t written;
    size_t lingered;
    const struct http_owner_ops *owner_ops;
    void *owner;
};

/* Writes what the socket takes now; on failure marks the connection broken and
 * lets the write handler close it, so callers never see the conn vanish. */
void http_conn_flush(struct http_conn *c);

/* The http-parser callbacks that fill c->req (http_parse.c). */
void http_parse_settings(http_parser_settings *settings);

/* Checks a request whose header section is whole against RFC 9112 (http_check.c)
 * and sets the lexer's body mode. Returns 0 or the status to answer;
 * *send_continue says whether to send 100 Continue once the body is wanted. */
int http_check_head(struct http_conn *c, http_parser *p, bool *send_continue);

/* Starts the lexer on a new request. */
void http_lex_reset(struct http_lex *lx);

/* Tells the lexer, at the end of the header section, how the body is framed. */
void http_lex_body(struct http_lex *lx, enum http_lex_body body);

/* Checks data against the syntax of the part of the request the lexer is in.
 * Returns how many bytes may go to the parser now; *bad is set when the byte at
 * that offset breaks a rule (the request then gets 400). */
size_t http_lex_scan(struct http_lex *lx, const char *data, size_t len, bool *bad);

/* A connection without a socket (fd -1) or on an accepted one; NULL when out of
 * memory. The server owns it. */
struct http_conn *http_conn_open(struct http_server *s, int fd);

/* Takes bytes from the client as if read from the socket. May free c (check
 * http_server_conn_count). */
void http_conn_feed(struct http_conn *c, const char *data, size_t len);

/* The client closed its side (read returned 0). Frees c. */
void http_conn_eof(struct http_conn *c);

/* The socket is writable again: runs the write handler. May free c. */
void http_conn_writable(struct http_conn *c);

/* The connection's timer fired (request, idle, stall or linger timeout). May free c. */
void http_conn_expire(struct http_conn *c);

#endif
