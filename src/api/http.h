/* http: HTTP/1.1 server connections on a libevent loop.
 *
 * Why not evhttp: libevent 2.1 (Debian 12) answers an over-size body or a bad
 * header with its own HTML page and no way to add our JSON body or correlation
 * id, stops reading while a handler is busy (so it cannot see a client leave
 * before the first token), and buffers unbounded input during a streamed reply.
 * This module is the small part of a server chatd needs: parsing with Node's
 * http-parser, hard limits, timeouts, keep-alive and pipelining, plain and
 * chunked responses, and write back-pressure with a drained callback. It holds
 * requests to RFC 9112's rules for servers (see "HTTP conformance" in the
 * README): what breaks one is answered through on_protocol_error and closes
 * the connection.
 *
 * One connection serves one request at a time. The application sees two calls
 * per request (headers, then the complete request) and answers exactly once,
 * either with http_respond() or with http_stream_begin/write/end(). */
#ifndef CHATD_HTTP_H
#define CHATD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_conn;
struct http_server;

#define HTTP_MAX_TARGET       8192        /* request-target bytes; more gets 414 */
#define HTTP_MAX_HEADER_BYTES 16384       /* all header names and values; more gets 431 */
#define HTTP_MAX_BODY         (64 * 1024) /* default body limit (http_server_new); more gets 413 */
#define HTTP_HIGH_WATER       (16 * 1024) /* unsent bytes past which a stream should pause */

/* A header chatd looks at; others are counted against the limit and dropped. */
struct http_hval {
    char v[320];
    size_t len;
    bool present;
    bool invalid; /* longer than v, or sent twice */
};

/* One request as parsed. It lives from the request's first byte until
 * on_request returns (or the request is refused): copy what an answer needs. */
struct http_request {
    int method;              /* enum http_method of http_parser.h */
    const char *method_name; /* "GET", "POST", ... */
    char *path; /* path of the request-target up to '?' (of an absolute-form target too),
                 * or "*" (OPTIONS) or the authority (CONNECT); NUL-terminated */
    size_t path_len;
    size_t path_cap;
    int http_minor;          /* 0 or 1 (HTTP/1.2 and later 1.x count as 1.1) */
    bool keep_alive;         /* the client allows another request after this */
    bool has_body;           /* Content-Length > 0 or chunked */
    uint64_t content_length; /* from the header; 0 when absent or chunked */
    struct http_hval host, content_type, correlation_id, authorization, origin, expect;
    struct http_hval acr_method, acr_headers; /* Access-Control-Request-* */
    struct http_hval if_none_match;           /* conditional GET of the web page */
    char *body;                               /* NUL-terminated; owned by the connection */
    size_t body_len;
    size_t body_cap;
    int64_t start_us; /* monotonic time of the first byte */
    /* The application's per-request scratch, set by it in on_headers. */
    char cid[40]; /* correlation id */
    bool begun;   /* request_received logged */
    /* SHA-256 of the bearer token, hashed once (the client key is looked up when the
     * headers arrive and again with the whole request, maybe in a newer configuration). */
    unsigned char token_sha256[32];
    bool token_hashed;
};

/* Verdicts of on_headers. */
enum http_verdict { HTTP_READ_BODY, HTTP_ANSWERED };

struct http_handlers {
    /* Headers are complete. Either answer now (an error; the body is skipped and
     * the connection closed) and return HTTP_ANSWERED, or return HTTP_READ_BODY. */
    enum http_verdict (*on_headers)(struct http_conn *c, struct http_request *req, void *ctx);
    /* The whole request has arrived; answer it now or later, exactly once. */
    void (*on_request)(struct http_conn *c, struct http_request *req, void *ctx);
    /* The request broke a rule of HTTP or a limit before the application could
     * see it whole (status 400, 408, 413, 414, 417, 431, 501 or 505): answer it
     * with http_respond; the connection then closes. req holds what was parsed
     * so far. */
    void (*on_protocol_error)(struct http_conn *c, struct http_request *req, int status, void *ctx);
};

/* Who owns an asynchronous answer (a chat stream) and wants to hear of the client. */
struct http_owner_ops {
    /* The client is gone (closed, reset, stalled). The connection is being freed:
     * the owner must forget it and not call http_* on it again. */
    void (*on_client_gone)(void *owner);
    /* Everything written so far has reached the socket (after http_notify_drained). */
    void (*on_drained)(void *owner);
};

struct http_header {
    const char *name;
    const char *value;
};

/* Creates the per-worker server state. client_timeout_s bounds reading a request,
 * an idle keep-alive connection, and a client that stops reading; a request body
 * over max_body bytes gets 413 (before it is read when Content-Length says so). */
struct http_server *http_server_new(struct event_base *base, const struct http_handlers *h,
                                    void *ctx, double client_timeout_s, size_t max_body);

/* Closes every connection and frees the server. */
void http_server_free(struct http_server *s);

/* Takes ownership of an accepted, non-blocking socket. Returns 0 or -errno. */
int http_server_adopt(struct http_server *s, int fd);

/* Number of open connections. */
size_t http_server_conn_count(const struct http_server *s);

/* Connections with an answer still being written (or awaited). */
size_t http_server_busy_count(const struct http_server *s);

/* Draining: every response from now on closes its connection; idle keep-alive
 * connections that were answered before are closed now. */
void http_server_drain(struct http_server *s);

/* Sends a whole response with Content-Length. Headers must not include framing
 * (Content-Length, Transfer-Encoding, Connection). HEAD requests get no body. */
void http_respond(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                  const char *body, size_t len);

/* Starts a streamed response: chunked on HTTP/1.1, ended by close on HTTP/1.0. */
void http_stream_begin(struct http_conn *c, int status, const struct http_header *h, size_t nh);

/* Queues one piece of the streamed body and writes it to the socket now. */
void http_stream_write(struct http_conn *c, const char *data, size_t len);

/* Ends the streamed body; the connection goes on to the next request. */
void http_stream_end(struct http_conn *c);

/* Ends the streamed response without its end (no last chunk): what is queued
 * goes, then the connection closes, so the client sees the stream cut short. */
void http_stream_abort(struct http_conn *c);

/* Sets who hears of the client leaving while an answer is pending; NULL ops to clear. */
void http_conn_set_owner(struct http_conn *c, const struct http_owner_ops *ops, void *owner);

/* Asks for one on_drained call once the unsent bytes reach zero. */
void http_notify_drained(struct http_conn *c);

/* Bytes queued but not yet accepted by the socket. */
size_t http_unsent(const struct http_conn *c);

/* Mark the connection to close after the current response. */
void http_conn_close_after(struct http_conn *c);

/* The request being answered. */
struct http_request *http_conn_request(struct http_conn *c);

/* The standard reason phrase of a status code. */
const char *http_reason(int status);

#endif
