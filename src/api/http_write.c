/* http_write: the response side of the http module (http.h): status line and
 * headers, whole responses, chunked streams, and when the next request may
 * start. The connection side is http.c. */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "api/http_internal.h"

const char *http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static const char *date_header(struct http_server *s)
{
    time_t now = s->wall_s();
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

/* Writes "HTTP/1.1 NNN Reason\r\n" at p (buf has room: it is the head's start). */
static char *put_status_line(char *p, int status)
{
    assert(status >= 100 && status <= 999);
    const char *reason = http_reason(status);
    size_t n = strlen(reason);
    memcpy(p, "HTTP/1.1 ", 9);
    p[9] = (char)('0' + status / 100);
    p[10] = (char)('0' + status / 10 % 10);
    p[11] = (char)('0' + status % 10);
    p[12] = ' ';
    memcpy(p + 13, reason, n);
    p += 13 + n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Queues the pieces as one contiguous extent, so they are queued whole or not
 * at all (space reserved first, then copied). Out of memory, nothing more is
 * queued for this connection: what is queued (whole pieces only) still goes,
 * the owner hears the client is gone and the connection closes (from the write
 * handler, http.c). */
static void queue(struct http_conn *c, const struct iovec *parts, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += parts[i].iov_len;
    struct evbuffer_iovec v;
    if (!c->write_failed && evbuffer_reserve_space(c->out, (ev_ssize_t)total, &v, 1) == 1) {
        char *p = v.iov_base;
        for (int i = 0; i < n; i++) {
            if (parts[i].iov_len == 0)
                continue; /* its base may be NULL */
            memcpy(p, parts[i].iov_base, parts[i].iov_len);
            p += parts[i].iov_len;
        }
        v.iov_len = total;
        evbuffer_commit_space(c->out, &v, 1);
        return;
    }
    if (!c->write_failed) {
        c->write_failed = true;
        c->keep_alive = false;
        event_active(&c->wev, EV_WRITE, 1);
    }
}

/* Queues the head and, in the same extent, len body bytes. */
static void write_head(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                       const char *length, const char *body, size_t len)
{
    /* One answer per request, from on_headers (READING) or later (HANDLING). */
    assert((c->state == CS_READING || c->state == CS_HANDLING) && !c->response_done);
    char buf[4096];
    char *p = buf, *end = buf + sizeof buf;
    p = put_status_line(p, status);
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
    struct iovec parts[2] = { { buf, (size_t)(p - buf) }, { (void *)body, len } };
    queue(c, parts, 2);
}

/* The answer is whole: the owner is done with the connection. */
static void response_complete(struct http_conn *c)
{
    c->response_done = true;
    c->owner_ops = NULL;
    c->owner = NULL;
    c->notify_drained = false;
    http_conn_flush(c);
    if (!c->processing) /* finish from the loop, not from inside the caller */
        event_active(&c->wev, EV_WRITE, 1);
}

void http_respond(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                  const char *body, size_t len)
{
    char length[24];
    snprintf(length, sizeof length, "%zu", len);
    c->chunked = false;
    /* RFC 9110 §8.6, §15.3.5: no Content-Length and no body with 1xx or 204 */
    bool bodiless = status < 200 || status == 204 || status == 304;
    bool send_body = !c->head && !bodiless && len > 0;
    write_head(c, status, h, nh, bodiless && status != 304 ? NULL : length, body,
               send_body ? len : 0);
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
    c->chunked = !c->http10;
    if (c->http10)
        c->keep_alive = false; /* the end of the body is the end of the connection */
    write_head(c, status, h, nh, NULL, NULL, 0);
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
    char size[20];
    struct iovec chunk[3] = { { size, 0 }, { (void *)data, len }, { "\r\n", 0 } };
    if (c->chunked) {
        chunk[0].iov_len = chunk_size_line(size, len);
        chunk[2].iov_len = 2;
    }
    queue(c, chunk, 3);
    schedule_flush(c);
}

void http_stream_end(struct http_conn *c)
{
    if (c->chunked && !c->head) {
        struct iovec last = { "0\r\n\r\n", 5 };
        queue(c, &last, 1);
    }
    response_complete(c);
}

void http_stream_abort(struct http_conn *c)
{
    c->keep_alive = false; /* no end marker: the client sees the stream cut */
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

void http_conn_close_after(struct http_conn *c)
{
    c->keep_alive = false;
}

struct http_request *http_conn_request(struct http_conn *c)
{
    return c->req;
}
