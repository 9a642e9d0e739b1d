/* http: see http.h. Connection life: IDLE → READING → HANDLING → (IDLE | LINGER) → freed.
 * Owner callbacks (on_client_gone, on_drained) are only ever called from event
 * handlers, never from inside an http_* call, so owners need no re-entrancy care. */
#include "api/http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

#define READ_CHUNK 16384
#define BUSY_INPUT_CAP (64 * 1024) /* pipelined bytes kept while a response is pending */
#define LINGER_SECONDS 2
#define LINGER_BYTES (1 << 20)

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
    bool chunked;             /* the streamed response uses chunked coding */
    bool streaming;
    bool response_done;       /* the whole answer is queued */
    bool notify_drained;
    bool flush_scheduled;     /* the write handler will run in this loop turn */
    bool broken;              /* a write failed; close from the write handler */
    bool processing;          /* inside process_input */
    bool reading_enabled;
    size_t header_bytes;
    bool in_value;            /* the last header callback was a value */
    char hname[32];
    size_t hname_len;
    struct http_hval *cur;
    size_t written_at_arm;    /* stall detection: bytes written when the timer was armed */
    size_t written;
    size_t lingered;
    const struct http_owner_ops *owner_ops;
    void *owner;
};

static void conn_free(struct http_conn *c);
static void process_input(struct http_conn *c);
static void conn_flush(struct http_conn *c);

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ---- timers and events ------------------------------------------------------------ */

static void arm_timer(struct http_conn *c, const struct timeval *tv)
{
    c->written_at_arm = c->written;
    event_add(&c->timer, tv);
}

static void enable_read(struct http_conn *c, bool on)
{
    if (on == c->reading_enabled)
        return;
    c->reading_enabled = on;
    if (on)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
}

/* The client is gone or hopeless: tell the owner, then free. */
static void conn_gone(struct http_conn *c)
{
    const struct http_owner_ops *ops = c->owner_ops;
    void *owner = c->owner;
    c->owner_ops = NULL;
    c->owner = NULL;
    if (ops != NULL)
        ops->on_client_gone(owner);
    conn_free(c);
}

static void start_linger(struct http_conn *c)
{
    /* Half-close and read what the client still sends, so that unread request
     * bytes do not make the kernel reset the connection and destroy our answer. */
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    enable_read(c, true);
    event_add(&c->timer, c->srv->linger_tv);
}

static void free_request(struct http_conn *c)
{
    if (c->req != NULL) {
        free(c->req->path);
        free(c->req->body);
        free(c->req);
        c->req = NULL;
    }
}

/* After the answer is queued and written: next request, or close. */
static void finish_response(struct http_conn *c)
{
    if (!c->response_done || evbuffer_get_length(c->out) > 0)
        return;
    event_del(&c->timer);
    c->response_done = false;
    c->streaming = false;
    if (!c->keep_alive || c->srv->draining) {
        start_linger(c);
        return;
    }
    c->state = CS_IDLE;
    enable_read(c, true);
    arm_timer(c, c->srv->client_tv);
    if (!c->processing && evbuffer_get_length(c->in) > 0)
        process_input(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    switch (c->state) {
    case CS_IDLE:
    case CS_LINGER: conn_free(c); return;
    case CS_READING:
        /* Too slow to send its request: answer 408 and close. */
        c->keep_alive = false;
        c->state = CS_HANDLING;
        enable_read(c, false);
        c->srv->h.on_protocol_error(c, c->req, 408, c->srv->ctx);
        free_request(c);
        finish_response(c);
        return;
    case CS_HANDLING:
        if (evbuffer_get_length(c->out) == 0)
            return;
        if (c->written != c->written_at_arm) { /* slow but moving */
            arm_timer(c, c->srv->client_tv);
            return;
        }
        conn_gone(c); /* has read nothing for a whole timeout */
        return;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    c->flush_scheduled = false;
    if (!c->broken)
        conn_flush(c);
    if (c->broken) {
        conn_gone(c);
        return;
    }
    if (evbuffer_get_length(c->out) > 0)
        return;
    if (c->notify_drained && c->owner_ops != NULL) {
        c->notify_drained = false;
        c->owner_ops->on_drained(c->owner);
        return; /* the owner may have ended the response; a new write event follows */
    }
    finish_response(c);
}

/* Reads into the buffer's free space; unlike evbuffer_read, no FIONREAD ioctl
 * first (one system call per read instead of two). */
static int read_some(struct evbuffer *in, int fd)
{
    struct evbuffer_iovec v[2];
    int nv = evbuffer_reserve_space(in, READ_CHUNK, v, 2);
    if (nv <= 0)
        return -1;
    ssize_t n = readv(fd, (const struct iovec *)v, nv);
    if (n <= 0) {
        int err = errno;
        evbuffer_commit_space(in, v, 0);
        errno = err;
        return (int)n;
    }
    size_t left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        size_t take = left < v[i].iov_len ? left : v[i].iov_len;
        v[i].iov_len = take;
        left -= take;
    }
    evbuffer_commit_space(in, v, nv);
    return (int)n;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct http_conn *c = arg;
    int n = read_some(c->in, fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (c->state == CS_LINGER || c->state == CS_IDLE)
            conn_free(c);
        else
            conn_gone(c);
        return;
    }
    switch (c->state) {
    case CS_LINGER:
        c->lingered += (size_t)n;
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        if (c->lingered > LINGER_BYTES)
            conn_free(c);
        return;
    case CS_IDLE:
    case CS_READING: process_input(c); return;
    case CS_HANDLING:
        /* Pipelined bytes wait for the current answer; reading goes on only to
         * see the client leave, and stops if it sends too much meanwhile. */
        if (evbuffer_get_length(c->in) > BUSY_INPUT_CAP)
            enable_read(c, false);
        return;
    }
}

/* Writes what the socket takes now; on failure marks the connection broken and
 * lets the write handler close it, so callers never see the conn vanish. */
static void conn_flush(struct http_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n > 0) {
            c->written += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        c->broken = true;
        event_active(&c->wev, EV_WRITE, 1);
        return;
    }
    if (evbuffer_get_length(c->out) > 0) {
        if (!event_pending(&c->wev, EV_WRITE, NULL))
            event_add(&c->wev, NULL);
        if (!event_pending(&c->timer, EV_TIMEOUT, NULL))
            arm_timer(c, c->srv->client_tv);
    } else if (event_pending(&c->wev, EV_WRITE, NULL)) {
        event_del(&c->wev);
    }
}

/* ---- request dispatch ------------------------------------------------------------ */

static void dispatch(struct http_conn *c)
{
    struct http_request *req = c->req;
    event_del(&c->timer);
    c->state = CS_HANDLING;
    c->head = req->method == HTTP_HEAD;
    c->http10 = req->http_minor == 0;
    c->keep_alive = req->keep_alive && !c->parser.upgrade;
    c->srv->h.on_request(c, req, c->srv->ctx);
    free_request(c);
}

static void protocol_error(struct http_conn *c, int status)
{
    c->keep_alive = false;
    c->state = CS_HANDLING;
    enable_read(c, false);
    if (!c->answered_early)
        c->srv->h.on_protocol_error(c, c->req, status, c->srv->ctx);
    free_request(c);
}

static struct http_request *new_request(void)
{
    struct http_request *req = calloc(1, sizeof *req);
    if (req != NULL)
        req->start_us = clock_mono_us();
    return req;
}

static void process_input(struct http_conn *c)
{
    c->processing = true;
    while ((c->state == CS_IDLE || c->state == CS_READING) && evbuffer_get_length(c->in) > 0) {
        if (c->state == CS_IDLE) {
            if ((c->req = new_request()) == NULL) {
                conn_free(c);
                return;
            }
            c->state = CS_READING;
            arm_timer(c, c->srv->client_tv);
        }
        struct evbuffer_iovec v;
        evbuffer_peek(c->in, -1, NULL, &v, 1);
        size_t done = http_parser_execute(&c->parser, &c->srv->settings, v.iov_base, v.iov_len);
        evbuffer_drain(c->in, done);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            dispatch(c);
        } else if (err != HPE_OK) {
            protocol_error(c, c->reject_status ? c->reject_status : 400);
        }
        if (c->state == CS_HANDLING && c->response_done && evbuffer_get_length(c->out) == 0)
            finish_response(c);
    }
    c->processing = false;
}

/* ---- http-parser callbacks ------------------------------------------------------- */

static struct http_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int reject(struct http_conn *c, int status)
{
    c->reject_status = status;
    return -1; /* any callback stops http_parser_execute with an error this way (for
                * on_headers_complete, 1 and 2 would mean "skip body" and "upgrade") */
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    c->header_bytes = 0;
    c->in_value = false;
    c->hname_len = 0;
    c->cur = NULL;
    c->reject_status = 0;
    c->answered_early = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = conn_of(p)->req;
    if (r->path_len + len > HTTP_MAX_TARGET)
        return reject(conn_of(p), 414);
    if (r->path_len + len + 1 > r->path_cap) {
        size_t cap = r->path_cap ? r->path_cap : 64;
        while (cap < r->path_len + len + 1)
            cap *= 2;
        char *grown = realloc(r->path, cap);
        if (grown == NULL)
            return reject(conn_of(p), 400);
        r->path = grown;
        r->path_cap = cap;
    }
    memcpy(r->path + r->path_len, at, len);
    r->path_len += len;
    r->path[r->path_len] = '\0';
    return 0;
}

static struct http_hval *interesting(struct http_request *r, const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        { "content-type", offsetof(struct http_request, content_type) },
        { "x-correlation-id", offsetof(struct http_request, correlation_id) },
        { "authorization", offsetof(struct http_request, authorization) },
        { "origin", offsetof(struct http_request, origin) },
        { "expect", offsetof(struct http_request, expect) },
        { "access-control-request-method", offsetof(struct http_request, acr_method) },
        { "access-control-request-headers", offsetof(struct http_request, acr_headers) },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
            return (struct http_hval *)((char *)r + known[i].off);
    return NULL;
}

static int count_header_bytes(struct http_conn *c, size_t len)
{
    c->header_bytes += len;
    return c->header_bytes > HTTP_MAX_HEADER_BYTES ? reject(c, 431) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    if (c->in_value) { /* a new header begins */
        c->in_value = false;
        c->hname_len = 0;
    }
    if (c->hname_len + len < sizeof c->hname)
        memcpy(c->hname + c->hname_len, at, len);
    c->hname_len += len; /* past sizeof hname: a name we do not look at */
    return count_header_bytes(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    if (!c->in_value) { /* the name is complete */
        c->in_value = true;
        c->cur = c->hname_len < sizeof c->hname ? interesting(c->req, c->hname, c->hname_len)
                                                : NULL;
        if (c->cur != NULL) {
            if (c->cur->present)
                c->cur->invalid = true; /* sent twice: trust neither */
            c->cur->present = true;
            c->cur->len = 0;
        }
    }
    struct http_hval *h = c->cur;
    if (h != NULL) {
        if (h->len + len >= sizeof h->v) {
            h->invalid = true;
        } else {
            memcpy(h->v + h->len, at, len);
            h->len += len;
            h->v[h->len] = '\0';
        }
    }
    return count_header_bytes(c, len);
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    struct http_request *r = c->req;
    r->method = p->method;
    r->method_name = http_method_str((enum http_method)p->method);
    r->http_minor = p->http_minor;
    r->keep_alive = http_should_keep_alive(p) != 0;
    /* content_length is ULLONG_MAX, not 0, when the header is absent */
    r->content_length = (p->flags & F_CONTENTLENGTH) ? p->content_length : 0;
    r->has_body = (p->flags & F_CHUNKED) || r->content_length > 0;
    if (r->path == NULL && on_url(p, "", 0) != 0)
        return 1;
    char *q = memchr(r->path, '?', r->path_len);
    if (q != NULL) {
        *q = '\0';
        r->path_len = (size_t)(q - r->path);
    }
    if (r->content_length > HTTP_MAX_BODY)
        return reject(c, 413);
    if (c->srv->h.on_headers(c, r, c->srv->ctx) == HTTP_ANSWERED) {
        c->answered_early = true;
        return reject(c, 0);
    }
    if (r->has_body && r->expect.present && strcasecmp(r->expect.v, "100-continue") == 0)
    {
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        conn_flush(c);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    struct http_request *r = c->req;
    if (r->body_len + len > HTTP_MAX_BODY)
        return reject(c, 413);
    if (r->body_len + len + 1 > r->body_cap) {
        /* Grow to the announced length at once, else by doubling: a slow client
         * holds only what it has sent. */
        size_t cap = r->content_length ? (size_t)r->content_length + 1 : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(r->body, cap);
        if (grown == NULL)
            return reject(c, 400);
        r->body = grown;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

/* ---- responses --------------------------------------------------------------------- */

static const char *date_header(struct http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* Appends "name: value\r\n" unless the value is NULL. */
static char *put_header(char *p, char *end, const char *name, const char *value)
{
    if (value == NULL)
        return p;
    size_t n = strlen(name), v = strlen(value);
    if ((size_t)(end - p) < n + v + 4)
        return p; /* cannot happen with our header sizes; drop rather than overflow */
    memcpy(p, name, n);
    p += n;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, v);
    p += v;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static void write_head(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                       const char *length)
{
    char buf[4096];
    char *p = buf, *end = buf + sizeof buf;
    p += snprintf(p, (size_t)(end - p), "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    p = put_header(p, end, "Date", date_header(c->srv));
    for (size_t i = 0; i < nh; i++)
        p = put_header(p, end, h[i].name, h[i].value);
    if (length != NULL)
        p = put_header(p, end, "Content-Length", length);
    if (c->chunked)
        p = put_header(p, end, "Transfer-Encoding", "chunked");
    if (c->srv->draining)
        c->keep_alive = false;
    if (!c->keep_alive)
        p = put_header(p, end, "Connection", "close");
    else if (c->http10)
        p = put_header(p, end, "Connection", "keep-alive");
    *p++ = '\r';
    *p++ = '\n';
    evbuffer_add(c->out, buf, (size_t)(p - buf));
}

/* The answer is whole: the owner is done with the connection. */
static void response_complete(struct http_conn *c)
{
    c->response_done = true;
    c->owner_ops = NULL;
    c->owner = NULL;
    c->notify_drained = false;
    conn_flush(c);
    if (!c->processing) /* finish from the loop, not from inside the caller */
        event_active(&c->wev, EV_WRITE, 1);
}

void http_respond(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                  const char *body, size_t len)
{
    char length[24];
    snprintf(length, sizeof length, "%zu", len);
    c->chunked = false;
    write_head(c, status, h, nh, length);
    if (!c->head && len > 0)
        evbuffer_add(c->out, body, len);
    response_complete(c);
}

/* Writes from the loop once the current callback is over, in this same loop
 * turn: the events that come out of one provider read leave in one write. */
static void schedule_flush(struct http_conn *c)
{
    if (!c->flush_scheduled) {
        c->flush_scheduled = true;
        event_active(&c->wev, EV_WRITE, 1);
    }
}

void http_stream_begin(struct http_conn *c, int status, const struct http_header *h, size_t nh)
{
    c->streaming = true;
    c->chunked = !c->http10;
    if (c->http10)
        c->keep_alive = false; /* the end of the body is the end of the connection */
    write_head(c, status, h, nh, NULL);
    schedule_flush(c); /* the head leaves with the first event, in one write */
}

/* Writes "<hex len>\r\n" into out; returns its length. */
static size_t chunk_size_line(char out[20], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 0xf];
        len >>= 4;
    } while (len > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

void http_stream_write(struct http_conn *c, const char *data, size_t len)
{
    if (len == 0 || c->head)
        return;
    if (c->chunked) {
        char size[20];
        evbuffer_add(c->out, size, chunk_size_line(size, len));
        evbuffer_add(c->out, data, len);
        evbuffer_add(c->out, "\r\n", 2);
    } else {
        evbuffer_add(c->out, data, len);
    }
    schedule_flush(c);
}

void http_stream_end(struct http_conn *c)
{
    if (c->chunked && !c->head)
        evbuffer_add(c->out, "0\r\n\r\n", 5);
    response_complete(c);
}

void http_conn_set_owner(struct http_conn *c, const struct http_owner_ops *ops, void *owner)
{
    c->owner_ops = ops;
    c->owner = ops ? owner : NULL;
}

void http_notify_drained(struct http_conn *c)
{
    c->notify_drained = true;
    if (evbuffer_get_length(c->out) == 0)
        event_active(&c->wev, EV_WRITE, 1);
}

size_t http_unsent(const struct http_conn *c)
{
    return evbuffer_get_length(c->out);
}

bool http_conn_draining(const struct http_conn *c)
{
    return c->srv->draining;
}

void http_conn_close_after(struct http_conn *c)
{
    c->keep_alive = false;
}

struct http_request *http_conn_request(struct http_conn *c)
{
    return c->req;
}

/* ---- server and connection lifetime ---------------------------------------------- */

struct http_server *http_server_new(struct event_base *base, const struct http_handlers *h,
                                    void *ctx, double client_timeout_s)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base = base;
    s->h = *h;
    s->ctx = ctx;
    struct timeval tv = { (time_t)client_timeout_s,
                          (suseconds_t)((client_timeout_s - (double)(time_t)client_timeout_s) * 1e6) };
    struct timeval linger = { LINGER_SECONDS, 0 };
    if (timercmp(&tv, &linger, <))
        linger = tv;
    s->client_tv = event_base_init_common_timeout(base, &tv);
    s->linger_tv = event_base_init_common_timeout(base, &linger);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return s;
}

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    while (s->conns != NULL)
        conn_gone(s->conns);
    free(s);
}

int http_server_adopt(struct http_server *s, int fd)
{
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL) {
        evbuffer_free(c->in);
        evbuffer_free(c->out);
        free(c);
        return -ENOMEM;
    }
    c->srv = s;
    c->fd = fd;
    c->state = CS_IDLE;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->timer, s->base, on_timer, c);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    enable_read(c, true);
    arm_timer(c, s->client_tv);
    return 0;
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->timer);
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free_request(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
}

size_t http_server_conn_count(const struct http_server *s)
{
    return s->n_conns;
}

size_t http_server_busy_count(const struct http_server *s)
{
    size_t n = 0;
    for (const struct http_conn *c = s->conns; c != NULL; c = c->next)
        n += c->state == CS_HANDLING;
    return n;
}

void http_server_drain(struct http_server *s)
{
    /* Idle keep-alive connections stay until the loop ends, so that a request
     * already on its way gets a 503 rather than a reset. */
    s->draining = true;
}
