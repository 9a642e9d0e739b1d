/*
 * fp_http.c — fakeprov's HTTP/1.1 server layer on a bare libevent loop.
 *
 * No bufferevents: reads go into one shared stack buffer and straight into
 * http-parser, so an idle connection owns no read buffer. Output goes to a
 * per-connection evbuffer that is written at once and is empty between
 * tokens. Keep-alive and pipelining are supported: while a paced stream
 * runs, the parser is paused and further request bytes wait in `pending`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fp.h"

#define MAX_BODY    (1u << 20)  /* requests above this get 413 */
#define MAX_PENDING (64u << 10) /* pipelined bytes held during a stream */

unsigned long long g_accepted;
static struct conn *g_conns;
static struct event *g_listen_ev, *g_accept_retry;
static int g_lfd = -1;
static http_parser_settings g_settings; /* filled by http_start() */

static bool conn_feed(struct conn *c, const char *data, size_t len);

void send_error(struct conn *c, int status, const char *reason, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\"}}", msg);
    evbuffer_add_printf(c->out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n%s\r\n%s",
                        status, reason, n, c->keep_alive ? "" : "Connection: close\r\n", body);
    if (!c->keep_alive)
        c->closing = true;
}

/* ---------- request parsing ---------- */

static int on_message_begin(http_parser *hp)
{
    struct conn *c = hp->data;
    c->path_len = 0;
    c->hdr_len = 0;
    c->in_query = c->in_value = c->expect_continue = c->too_big = false;
    return 0;
}

/* Keeps only the last SUFFIX_LEN bytes of the path: all we need to route. */
static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    for (size_t i = 0; i < len && !c->in_query; i++) {
        if (at[i] == '?' || at[i] == '#') {
            c->in_query = true;
            break;
        }
        memmove(c->tail, c->tail + 1, SUFFIX_LEN - 1);
        c->tail[SUFFIX_LEN - 1] = at[i];
        c->path_len++;
    }
    return 0;
}

/* Tracks just enough of the header names to spot "Expect: 100-continue". */
static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    if (c->in_value) /* a new field starts */
        c->hdr_len = 0, c->in_value = false;
    for (size_t i = 0; i < len; i++) {
        if (c->hdr_len < sizeof c->hdr)
            c->hdr[c->hdr_len] = (char)(at[i] | 0x20);
        if (c->hdr_len < UINT8_MAX)
            c->hdr_len++;
    }
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    if (!c->in_value && len > 0 && c->hdr_len == 6 && memcmp(c->hdr, "expect", 6) == 0)
        c->expect_continue = at[0] == '1'; /* 100-continue is the only expectation */
    c->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct conn *c = hp->data;
    /* curl waits up to a second for this before sending a large body; it is
     * flushed when this read's bytes are parsed, before the body can arrive. */
    if (c->expect_continue && hp->http_minor >= 1)
        evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct conn *c = hp->data;
    if (c->too_big || c->body_len + len > MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 512;
        while (cap < c->body_len + len)
            cap *= 2;
        char *nb = realloc(c->body, cap);
        if (!nb)
            return -1;
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct conn *c = hp->data;
    c->keep_alive = http_should_keep_alive(hp);
    c->chunked = hp->http_major == 1 && hp->http_minor >= 1;
    fp_handle_request(c);
    free(c->body);
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    /* Pause parsing while a paced stream runs; any pipelined bytes wait. */
    if (c->streaming || c->closing)
        http_parser_pause(hp, 1);
    return 0;
}

/* Feeds request bytes to the parser; holds what arrives during a stream.
 * Returns false when the connection is finished and must be closed. */
static bool conn_feed(struct conn *c, const char *data, size_t len)
{
    while (len > 0 && !c->streaming && !c->closing) {
        size_t n = http_parser_execute(&c->hp, &g_settings, data, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->hp);
        if (e == HPE_PAUSED)
            http_parser_pause(&c->hp, 0);
        else if (e != HPE_OK) {
            c->keep_alive = false;
            send_error(c, 400, "Bad Request", "Malformed HTTP request");
            break;
        }
        data += n;
        len -= n;
    }
    if (len > 0 && c->streaming) {
        if (!c->pending)
            c->pending = evbuffer_new();
        if (!c->pending || evbuffer_get_length(c->pending) + len > MAX_PENDING)
            return false;
        evbuffer_add(c->pending, data, len);
    }
    return conn_flush(c);
}

void conn_resume(struct conn *c)
{
    if (!conn_flush(c)) {
        conn_close(c);
        return;
    }
    /* A finished stream lets pipelined requests through. */
    if (!c->streaming && c->pending) {
        struct evbuffer *p = c->pending;
        c->pending = NULL;
        size_t n = evbuffer_get_length(p);
        bool alive = conn_feed(c, (const char *)evbuffer_pullup(p, -1), n);
        evbuffer_free(p);
        if (!alive)
            conn_close(c);
    }
}

/* ---------- connections ---------- */

/* Writes what is queued. Never frees: returns false when the connection is
 * finished (write error, or everything sent on a closing connection) so the
 * top-level callback can close it without anyone touching it afterwards. */
bool conn_flush(struct conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return true;
        }
        if (n <= 0) /* EPIPE/ECONNRESET: the client left */
            return false;
    }
    event_del(c->wev);
    return !(c->closing && !c->streaming);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    static char buf[64 * 1024]; /* shared: connections hold no read buffer */
    struct conn *c = arg;
    (void)what;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        if (!conn_feed(c, buf, (size_t)n))
            conn_close(c);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    conn_close(c); /* EOF or reset: a mid-stream client is gone, stop generating */
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (!conn_flush(arg))
        conn_close(arg);
}

void conn_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    event_free(c->rev);
    event_free(c->wev);
    if (c->timer)
        event_free(c->timer);
    evbuffer_free(c->out);
    if (c->pending)
        evbuffer_free(c->pending);
    close(c->fd);
    c->fd = -1;
    fp_stream_free(c);
    free(c->body);
    if (c->prev)
        c->prev->next = c->next;
    else
        g_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void conn_new(int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->rev = event_new(g_base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(g_base, fd, EV_WRITE, on_write, c);
    c->out = evbuffer_new();
    if (!c->rev || !c->wev || !c->out) {
        if (c->rev)
            event_free(c->rev);
        if (c->wev)
            event_free(c->wev);
        if (c->out)
            evbuffer_free(c->out);
        close(fd);
        free(c);
        return;
    }
    http_parser_init(&c->hp, HTTP_REQUEST);
    c->hp.data = c;
    c->next = g_conns;
    if (g_conns)
        g_conns->prev = c;
    g_conns = c;
    event_add(c->rev, NULL);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_add(g_listen_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 512; i++) { /* bounded so a flood cannot starve streams */
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of fds: stop accepting for a moment instead of spinning. */
                static const struct timeval pause_tv = { 0, 100000 };
                fprintf(stderr, "fakeprov: accept: %s; pausing accepts 100 ms\n", strerror(errno));
                event_del(g_listen_ev);
                evtimer_add(g_accept_retry, &pause_tv);
            }
            return; /* EAGAIN, or a transient error such as ECONNABORTED */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* tokens go out now */
        g_accepted++;
        conn_new(fd);
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 65535) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The bound port: with --port 0 the kernel picked a free one. */
static int port_of(int fd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    return getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 ? ntohs(sa.sin_port) : -1;
}

static const http_parser_settings g_settings_init = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int http_start(int port)
{
    g_settings = g_settings_init;
    g_lfd = listen_on(port);
    if (g_lfd < 0)
        return -1;
    g_listen_ev = event_new(g_base, g_lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    g_accept_retry = evtimer_new(g_base, accept_resume, NULL);
    event_add(g_listen_ev, NULL);
    return port_of(g_lfd);
}

void http_stop(void)
{
    while (g_conns)
        conn_close(g_conns);
    if (g_listen_ev)
        event_free(g_listen_ev);
    if (g_accept_retry)
        event_free(g_accept_retry);
    if (g_lfd >= 0)
        close(g_lfd);
}
