/* http: see http.h. Connection life: IDLE → READING → HANDLING → (IDLE | LINGER) → freed,
 * every change through set_state(), which asserts it is one of these.
 * Owner callbacks (on_client_gone, on_drained) are only ever called from event
 * handlers, never from inside an http_* call, so owners need no re-entrancy care.
 *
 * The socket is only read and written at the edges (on_read, the sink): the
 * rest works on the connection's buffers, so that a fuzz target can drive it
 * with http_conn_feed/eof/writable/expire and no socket (fd -1). */
#include "api/http.h"
#include "api/http_internal.h"

#include <assert.h>
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

#define READ_CHUNK     16384
#define BUSY_INPUT_CAP (64 * 1024) /* pipelined bytes kept while a response is pending */
#define LINGER_SECONDS 2
#define LINGER_BYTES   (1 << 20)

static void conn_free(struct http_conn *c);
static void process_input(struct http_conn *c);
static ssize_t parse_from(struct http_conn *c, const char *data, size_t len);

/* The only way c->state changes; a transition not in the life above is a bug. */
static void set_state(struct http_conn *c, enum conn_state to)
{
    static const unsigned legal[] = {
        [CS_IDLE] = 1u << CS_READING,
        [CS_READING] = 1u << CS_HANDLING,
        [CS_HANDLING] = 1u << CS_IDLE | 1u << CS_LINGER,
        [CS_LINGER] = 0,
    };
    assert(legal[c->state] & (1u << to));
    c->state = to;
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
    if (c->fd < 0)
        return; /* fed by http_conn_feed: the caller looks at reading_enabled */
    if (on)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
}

static void tell_owner_gone(struct http_conn *c)
{
    const struct http_owner_ops *ops = c->owner_ops;
    void *owner = c->owner;
    c->owner_ops = NULL;
    c->owner = NULL;
    if (ops != NULL)
        ops->on_client_gone(owner);
}

/* The client is gone or hopeless: tell the owner, then free. */
static void conn_gone(struct http_conn *c)
{
    tell_owner_gone(c);
    conn_free(c);
}

static void start_linger(struct http_conn *c)
{
    /* Half-close and read what the client still sends, so that unread request
     * bytes do not make the kernel reset the connection and destroy our answer. */
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_WR);
    set_state(c, CS_LINGER);
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
    assert(c->state == CS_HANDLING && c->req == NULL);
    event_del(&c->timer);
    c->response_done = false;
    if (!c->keep_alive || c->srv->draining) {
        start_linger(c);
        return;
    }
    set_state(c, CS_IDLE);
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
        set_state(c, CS_HANDLING);
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
        http_conn_flush(c);
    if (c->broken) {
        conn_gone(c);
        return;
    }
    if (c->write_failed && !c->response_done) {
        /* Out of memory while queueing (http_write.c): the answer cannot go on.
         * The owner stops; what is queued goes, then the connection closes. */
        tell_owner_gone(c);
        c->response_done = true;
        c->notify_drained = false;
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
    if (nv <= 0) {
        errno = ENOMEM; /* not a stale EAGAIN: out of memory, the connection closes */
        return -1;
    }
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

/* n more bytes from the client are in c->in. */
static void conn_input(struct http_conn *c, size_t n)
{
    switch (c->state) {
    case CS_LINGER:
        c->lingered += n;
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

void http_conn_eof(struct http_conn *c)
{
    if (c->state == CS_LINGER || c->state == CS_IDLE)
        conn_free(c);
    else
        conn_gone(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct http_conn *c = arg;
    int n = read_some(c->in, fd);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0)
        http_conn_eof(c);
    else
        conn_input(c, (size_t)n);
}

void http_conn_feed(struct http_conn *c, const char *data, size_t len)
{
    if (evbuffer_get_length(c->in) == 0 && (c->state == CS_IDLE || c->state == CS_READING)) {
        /* Nothing waits before these bytes: parse them in place, keep the rest. */
        assert(!c->processing);
        c->processing = true;
        ssize_t used = parse_from(c, data, len);
        if (used < 0)
            return;
        c->processing = false;
        data += used;
        len -= (size_t)used;
        if (len == 0)
            return;
    }
    if (c->state == CS_LINGER && evbuffer_get_length(c->in) == 0) {
        c->lingered += len; /* read and dropped, as on_read would */
        if (c->lingered > LINGER_BYTES)
            conn_free(c);
        return;
    }
    evbuffer_add(c->in, data, len);
    conn_input(c, len);
}

void http_conn_writable(struct http_conn *c)
{
    on_write(c->fd, EV_WRITE, c);
}

void http_conn_expire(struct http_conn *c)
{
    on_timer(c->fd, EV_TIMEOUT, c);
}

static ssize_t sock_sink(struct http_conn *c)
{
    return evbuffer_write(c->out, c->fd);
}

void http_conn_flush(struct http_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        ssize_t n = c->srv->sink(c);
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
        if (c->fd >= 0 && !event_pending(&c->wev, EV_WRITE, NULL))
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
    assert(req != NULL && req->method_name != NULL);
    event_del(&c->timer);
    set_state(c, CS_HANDLING);
    c->head = req->method == HTTP_HEAD;
    c->http10 = req->http_minor == 0;
    c->keep_alive = req->keep_alive && !c->parser.upgrade;
    c->srv->h.on_request(c, req, c->srv->ctx);
    free_request(c);
}

static void protocol_error(struct http_conn *c, int status)
{
    c->keep_alive = false;
    set_state(c, CS_HANDLING);
    enable_read(c, false);
    if (!c->answered_early)
        c->srv->h.on_protocol_error(c, c->req, status, c->srv->ctx);
    free_request(c);
}

/* The first byte of a request has arrived: IDLE → READING. */
static int start_request(struct http_conn *c)
{
    assert(c->req == NULL && !c->response_done);
    if ((c->req = calloc(1, sizeof *c->req)) == NULL)
        return -ENOMEM;
    c->req->start_us = c->srv->mono_us();
    c->head = false; /* until on_headers_complete knows the method and version */
    c->http10 = false;
    http_lex_reset(&c->lex);
    set_state(c, CS_READING);
    arm_timer(c, c->srv->client_tv);
    return 0;
}

/* Hands the parser what the lexer passes of data; returns the bytes it took. */
static size_t parse_some(struct http_conn *c, const char *data, size_t len)
{
    bool bad;
    size_t n = http_lex_scan(&c->lex, data, len, &bad);
    size_t done = n > 0 ? http_parser_execute(&c->parser, &c->srv->settings, data, n) : 0;
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err == HPE_PAUSED) {
        http_parser_pause(&c->parser, 0);
        dispatch(c);
    } else if (err != HPE_OK) {
        protocol_error(c, c->reject_status ? c->reject_status : 400);
    } else if (bad || done < n) {
        protocol_error(c, 400); /* a byte against RFC 9112, or parser and lexer disagree */
    }
    return done;
}

/* Reads requests from data while one may be read (c->processing set). Returns
 * the bytes used, or -1 when the connection was freed. */
static ssize_t parse_from(struct http_conn *c, const char *data, size_t len)
{
    size_t used = 0;
    while ((c->state == CS_IDLE || c->state == CS_READING) && used < len) {
        if (c->state == CS_IDLE && start_request(c) != 0) {
            conn_free(c);
            return -1;
        }
        used += parse_some(c, data + used, len - used);
        if (c->state == CS_HANDLING && c->response_done && evbuffer_get_length(c->out) == 0)
            finish_response(c);
    }
    return (ssize_t)used;
}

static void process_input(struct http_conn *c)
{
    assert(!c->processing);
    c->processing = true;
    while ((c->state == CS_IDLE || c->state == CS_READING) && evbuffer_get_length(c->in) > 0) {
        struct evbuffer_iovec v;
        evbuffer_peek(c->in, -1, NULL, &v, 1);
        ssize_t used = parse_from(c, v.iov_base, v.iov_len);
        if (used < 0)
            return;
        evbuffer_drain(c->in, (size_t)used);
    }
    c->processing = false;
}

/* ---- server and connection lifetime ---------------------------------------------- */

static time_t wall_now(void)
{
    return time(NULL);
}

struct http_server *http_server_new(struct event_base *base, const struct http_handlers *h,
                                    void *ctx, double client_timeout_s, size_t max_body)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base = base;
    list_init(&s->conns);
    s->h = *h;
    s->ctx = ctx;
    s->max_body = max_body;
    s->mono_us = clock_mono_us;
    s->wall_s = wall_now;
    s->sink = sock_sink;
    struct timeval tv = clock_timeval(client_timeout_s);
    struct timeval linger = clock_timeval(LINGER_SECONDS);
    if (timercmp(&tv, &linger, <))
        linger = tv;
    s->client_tv = event_base_init_common_timeout(base, &tv);
    s->linger_tv = event_base_init_common_timeout(base, &linger);
    http_parse_settings(&s->settings);
    return s;
}

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    while (!list_empty(&s->conns))
        conn_gone(list_entry(s->conns.next, struct http_conn, link));
    free(s);
}

struct http_conn *http_conn_open(struct http_server *s, int fd)
{
    struct http_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (c->in == NULL || c->out == NULL) {
        if (c->in != NULL) /* evbuffer_free does not take NULL */
            evbuffer_free(c->in);
        if (c->out != NULL)
            evbuffer_free(c->out);
        free(c);
        return NULL;
    }
    c->srv = s;
    c->fd = fd;
    c->state = CS_IDLE;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->timer, s->base, on_timer, c);
    list_insert_head(&s->conns, &c->link);
    s->n_conns++;
    enable_read(c, true);
    arm_timer(c, s->client_tv);
    return c;
}

int http_server_adopt(struct http_server *s, int fd)
{
    return http_conn_open(s, fd) != NULL ? 0 : -ENOMEM;
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->timer);
    if (c->fd >= 0)
        close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free_request(c);
    list_remove(&c->link);
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
    const struct list *pos;
    list_foreach(pos, &s->conns) n +=
        list_entry(pos, const struct http_conn, link)->state == CS_HANDLING;
    return n;
}

void http_server_drain(struct http_server *s)
{
    /* A keep-alive connection waiting between requests is closed now: a client or a
     * proxy (nginx's upstream pool) sees it close and sends its next request elsewhere,
     * where a 503 would have been its answer. One that has not carried a request yet
     * stays, so that a request already on its way gets a 503 rather than a reset. */
    s->draining = true;
    struct list *pos = s->conns.next;
    while (pos != &s->conns) {
        struct http_conn *c = list_entry(pos, struct http_conn, link);
        pos = pos->next; /* before c may be freed */
        if (c->state == CS_IDLE && c->written > 0 && evbuffer_get_length(c->in) == 0)
            conn_free(c);
    }
}
