/* http_internal: what the files of the http module (http.c: connections;
 * http_parse.c: request parsing; http_write.c: responses) share. Not part of
 * the module's public face, which is http.h alone. */
#ifndef CHATD_HTTP_INTERNAL_H
#define CHATD_HTTP_INTERNAL_H

#include <event2/event_struct.h>
#include <http_parser.h>
#include <time.h>

#include "api/http.h"

enum conn_state { CS_IDLE, CS_READING, CS_HANDLING, CS_LINGER };

struct http_server {
    struct event_base *base;
    struct http_handlers h;
    void *ctx;
    const struct timeval *client_tv; /* a libevent common timeout: O(1) add/remove */
    const struct timeval *linger_tv;
    http_parser_settings settings;
    struct http_conn *conns;
    size_t n_conns;
    bool draining;
    time_t date_sec;
    char date[40];
};

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    int fd;
    enum conn_state state;
    struct event rev, wev, timer;
    struct evbuffer *in, *out;
    http_parser parser;
    struct http_request *req; /* while a request is parsed and dispatched */
    int reject_status;        /* a limit a parser callback hit */
    bool answered_early;      /* on_headers answered; the body is not read */
    bool head;                /* the response has no body (HEAD) */
    bool keep_alive;          /* another request may follow this response */
    bool http10;
    bool chunked;       /* the streamed response uses chunked coding */
    bool response_done; /* the whole answer is queued */
    bool notify_drained;
    bool flush_scheduled; /* the write handler will run in this loop turn */
    bool broken;          /* a write failed; close from the write handler */
    bool processing;      /* inside process_input */
    bool reading_enabled;
    size_t header_bytes;
    bool in_value; /* the last header callback was a value */
    char hname[32];
    size_t hname_len;
    struct http_hval *cur;
    size_t written_at_arm; /* stall detection: bytes written when the timer was armed */
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

#endif
