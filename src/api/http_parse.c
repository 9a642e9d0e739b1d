/* http_parse: the http-parser callbacks that turn bytes into a struct
 * http_request, enforcing the limits (414, 431, 413) as they go and, once the
 * header section is whole, RFC 9112's rules on the version, the target, Host,
 * framing and Expect (http_check.c's functions). Part of the http module
 * (http.h); the connection side is http.c, the byte-level syntax http_lex.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "api/http_internal.h"

#define FIRST_BODY_ALLOC (64 * 1024) /* the most a body buffer starts with */

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
    memset(&c->te, 0, sizeof c->te);
    memset(&c->cl, 0, sizeof c->cl);
    return 0;
}

/* Appends data to a NUL-terminated buffer that starts at first bytes and
 * doubles. Returns 0 or -1 when out of memory. */
static int append(char **buf, size_t *len, size_t *cap, size_t first, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : first;
        while (c < *len + n + 1)
            c *= 2;
        char *grown = realloc(*buf, c);
        if (grown == NULL)
            return -1;
        *buf = grown;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = conn_of(p)->req;
    if (r->path_len + len > HTTP_MAX_TARGET)
        return reject(conn_of(p), 414);
    if (append(&r->path, &r->path_len, &r->path_cap, 64, at, len) != 0)
        return reject(conn_of(p), 500); /* out of memory: not the client's fault */
    return 0;
}

static struct http_hval *interesting(struct http_conn *c, const char *name, size_t len)
{
    if (len == 17 && strncasecmp(name, "transfer-encoding", len) == 0)
        return &c->te;
    if (len == 14 && strncasecmp(name, "content-length", len) == 0)
        return &c->cl;
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        { "host", offsetof(struct http_request, host) },
        { "content-type", offsetof(struct http_request, content_type) },
        { "x-correlation-id", offsetof(struct http_request, correlation_id) },
        { "authorization", offsetof(struct http_request, authorization) },
        { "origin", offsetof(struct http_request, origin) },
        { "expect", offsetof(struct http_request, expect) },
        { "access-control-request-method", offsetof(struct http_request, acr_method) },
        { "access-control-request-headers", offsetof(struct http_request, acr_headers) },
        { "if-none-match", offsetof(struct http_request, if_none_match) },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
            return (struct http_hval *)((char *)c->req + known[i].off);
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
        c->cur = c->hname_len < sizeof c->hname ? interesting(c, c->hname, c->hname_len) : NULL;
        if (p->flags & F_TRAILING)
            c->cur = NULL; /* trailer fields are read and dropped, never merged (RFC 9110 §6.5) */
        if (c->cur == &c->te && c->te.present) {
            on_header_value(p, ", ", 2); /* a list split over lines is one list */
        } else if (c->cur != NULL) {
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
    r->http_minor = p->http_minor > 1 ? 1 : p->http_minor; /* HTTP/1.x is read as 1.1 */
    r->keep_alive = http_should_keep_alive(p) != 0;
    /* content_length is ULLONG_MAX, not 0, when the header is absent */
    r->content_length = (p->flags & F_CONTENTLENGTH) ? p->content_length : 0;
    r->has_body = (p->flags & F_CHUNKED) || r->content_length > 0;
    c->head = r->method == HTTP_HEAD; /* for an answer before the request is whole */
    c->http10 = r->http_minor == 0;
    if (r->path == NULL && on_url(p, "", 0) != 0)
        return -1;
    bool send_continue;
    int status = http_check_head(c, p, &send_continue);
    if (status != 0)
        return reject(c, status);
    if (c->srv->h.on_headers(c, r, c->srv->ctx) == HTTP_ANSWERED) {
        c->answered_early = true;
        return reject(c, 0);
    }
    if (send_continue) { /* only now that the body will be read (RFC 9110 §10.1.1) */
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        http_conn_flush(c);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    struct http_request *r = c->req;
    if (r->body_len + len > c->srv->max_body)
        return reject(c, 413);
    /* Grow to the announced length at once when it is small, else by doubling:
     * with a body limit of up to 64 MiB, a client that announces a large body
     * and sends a byte must not make chatd reserve all of it. */
    size_t first = r->content_length ? (size_t)r->content_length + 1 : 1024;
    if (first > FIRST_BODY_ALLOC)
        first = FIRST_BODY_ALLOC;
    if (append(&r->body, &r->body_len, &r->body_cap, first, at, len) != 0)
        return reject(c, 500);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

void http_parse_settings(http_parser_settings *settings)
{
    memset(settings, 0, sizeof *settings);
    settings->on_message_begin = on_message_begin;
    settings->on_url = on_url;
    settings->on_header_field = on_header_field;
    settings->on_header_value = on_header_value;
    settings->on_headers_complete = on_headers_complete;
    settings->on_body = on_body;
    settings->on_message_complete = on_message_complete;
}
