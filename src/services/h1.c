/* h1: see h1.h. A connection (struct conn) keeps one persistent read event for
 * its whole life, idle or busy, so reusing it costs no epoll_ctl; its write
 * event is armed only to wait for a connect or a full socket buffer. A call
 * owns its request until the first byte of the answer (a reused connection that
 * fails before then is retried once), parses the answer from the origin's read
 * buffer without copying, and copies bytes only when its owner pauses. */
#include "services/h1.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/list.h"
#include "services/h1_internal.h"

#define READ_SIZE        16384 /* one read; the buffer is the origin's, shared by its calls */
#define IDLE_MAX_AGE_US  (118 * 1000000LL) /* libcurl's default CURLOPT_MAXAGE_CONN */
#define HEADER_VALUE_MAX 256

struct h1_origin {
    struct event_base *base;
    struct h1_addr addr;
    struct h1_name name; /* a host name's lookups and answer (h1_dns.c) */
    size_t max_idle, n_idle, active;
    struct list idle;  /* struct conn.link, newest first */
    struct list calls; /* struct h1_call.link: every call in progress */
    char rbuf[READ_SIZE];
};

struct conn {
    struct h1_origin *o;
    struct list link; /* in o->idle while idle */
    struct h1_call *call;
    struct event rev; /* EV_READ | EV_PERSIST, from connected to closed */
    struct event wev; /* the connect, or a request that did not fit the socket */
    http_parser parser;
    int64_t idle_since;
    int fd;
    bool connected;
};

enum defer { DEFER_NONE, DEFER_FAIL, DEFER_RESUME, DEFER_RESOLVE_TIMEOUT };

struct h1_call {
    struct h1_origin *o;
    struct list link; /* in o->calls */
    struct conn *conn;
    const struct h1_callbacks *cb; /* NULL once released */
    void *owner;
    struct event defer_ev; /* work for the loop: a failure to report, a resume; the
                            * connect timeout while the host name is resolved */
    struct list wait_link; /* in o->name.waiting while the host name is resolved */
    int64_t wait_since;
    struct event grace; /* a released call's deadline */
    enum defer defer;
    int fail_code;
    char *head, *body; /* the request, kept until the answer's first byte */
    size_t head_len, body_len, sent;
    double connect_timeout_s;
    long status;
    char *content_type, *retry_after;
    char *held; /* body bytes the owner paused on, and raw bytes after them */
    size_t held_len;
    char *rest;
    size_t rest_len;
    char hname[16];
    size_t hname_len;
    enum header hwant;
    bool in_value;
    bool got_bytes, reused, retried, complete;
    bool cut_short; /* the answer came before the whole request was sent */
    bool in_data, cancelled, aborted, paused;
    char err[CURL_ERROR_SIZE];
};

static void conn_close(struct conn *c);
static void call_fail(struct h1_call *call, int code);
static void call_send(struct h1_call *call);
static void conn_on_read(evutil_socket_t fd, short what, void *arg);

/* ---- the end of a call ------------------------------------------------------------- */

static void call_free(struct h1_call *call)
{
    event_del(&call->defer_ev);
    event_del(&call->grace);
    list_remove(&call->wait_link);
    list_remove(&call->link);
    call->o->active--;
    free(call->head);
    free(call->body);
    free(call->content_type);
    free(call->retry_after);
    free(call->held);
    free(call->rest);
    free(call);
}

/* Takes the connection from the call: back to the idle list when it can serve
 * another request, closed otherwise. */
static void conn_put(struct h1_call *call, bool reusable)
{
    struct conn *c = call->conn;
    if (c == NULL)
        return;
    call->conn = NULL;
    c->call = NULL;
    struct h1_origin *o = c->o;
    if (!reusable || o->n_idle >= o->max_idle) {
        conn_close(c);
        return;
    }
    event_del(&c->wev);
    if (!event_pending(&c->rev, EV_READ, NULL)) /* a call that paused reads again */
        event_add(&c->rev, NULL);
    c->idle_since = clock_mono_us();
    list_insert_head(&o->idle, &c->link);
    o->n_idle++;
}

/* Ends the call: tells the owner (unless released or cancelled) and frees it. */
static void call_finish(struct h1_call *call, int code, bool reusable)
{
    conn_put(call, reusable && code == 0);
    const struct h1_callbacks *cb = call->cb;
    call->cb = NULL;
    if (cb != NULL) /* the getters still answer in there */
        cb->on_done(call->owner, code, code == 0 ? "" : call->err);
    call_free(call);
}

__attribute__((format(printf, 2, 3))) static void set_err(struct h1_call *call, const char *fmt,
                                                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->err, sizeof call->err, fmt, ap);
    va_end(ap);
}

/* ---- connections ------------------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    if (c->call != NULL)
        c->call->conn = NULL;
    if (c->call == NULL && !list_empty(&c->link)) {
        list_remove(&c->link);
        c->o->n_idle--;
    }
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    free(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg);

static struct conn *conn_new(struct h1_origin *o, int *err)
{
    struct conn *c = calloc(1, sizeof *c);
    int fd = c ? socket(o->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
    if (fd < 0) {
        *err = c ? errno : ENOMEM;
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    *c = (struct conn){ .o = o, .fd = fd };
    list_init(&c->link);
    event_assign(&c->rev, o->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    event_assign(&c->wev, o->base, fd, EV_WRITE, conn_on_write, c);
    if (connect(fd, (struct sockaddr *)&o->addr.sa, o->addr.len) != 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        free(c);
        return NULL;
    }
    return c;
}

/* An idle connection to reuse: the newest that is not too old. */
static struct conn *conn_take_idle(struct h1_origin *o)
{
    int64_t now = clock_mono_us();
    while (!list_empty(&o->idle)) {
        struct conn *c = list_entry(o->idle.next, struct conn, link);
        list_remove(&c->link);
        o->n_idle--;
        if (now - c->idle_since <= IDLE_MAX_AGE_US)
            return c;
        conn_close(c);
    }
    return NULL;
}

static void defer_fail(struct h1_call *call, int code)
{
    call->fail_code = code;
    call->defer = DEFER_FAIL;
    event_del(&call->defer_ev); /* the resolve timeout, if it ran */
    event_active(&call->defer_ev, EV_TIMEOUT, 1);
}

/* Gives the call connection c (or a new one, which may take timeout_s) and
 * starts its request from the loop. */
static int call_open(struct h1_call *call, struct conn *c, double timeout_s)
{
    int err = 0;
    if (c == NULL && (c = conn_new(call->o, &err)) == NULL) {
        if (err == ENOMEM)
            return -ENOMEM;
        set_err(call, "Failed to connect to %s: %s", call->o->addr.text, strerror(err));
        defer_fail(call, CURLE_COULDNT_CONNECT);
        return 0;
    }
    c->call = call;
    call->conn = c;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = call;
    if (c->connected) {
        event_active(&c->wev, EV_WRITE, 1);
    } else {
        struct timeval tv = clock_timeval(timeout_s);
        event_add(&c->wev, &tv);
    }
    return 0;
}

/* Gives the call a connection: idle, new, or new once its host name is resolved
 * (which counts against the connect timeout, as with libcurl). */
static int call_connect(struct h1_call *call)
{
    struct h1_origin *o = call->o;
    struct conn *c = call->retried ? NULL : conn_take_idle(o);
    call->reused = c != NULL;
    int w = c ? 0 : h1_name_wait(&o->name, &call->wait_link, call->err, sizeof call->err);
    if (w < 0) {
        defer_fail(call, CURLE_COULDNT_RESOLVE_HOST);
    } else if (w > 0) {
        call->wait_since = clock_mono_us();
        call->defer = DEFER_RESOLVE_TIMEOUT;
        struct timeval tv = clock_timeval(call->connect_timeout_s);
        event_add(&call->defer_ev, &tv);
    }
    return w != 0 ? 0 : call_open(call, c, call->connect_timeout_s);
}

void h1_name_ready(struct list *waiter, int code, const char *err)
{
    struct h1_call *call = list_entry(waiter, struct h1_call, wait_link);
    event_del(&call->defer_ev);
    call->defer = DEFER_NONE;
    double left = call->connect_timeout_s - (double)(clock_mono_us() - call->wait_since) / 1e6;
    if (code == 0 && call_open(call, NULL, left > 0.001 ? left : 0.001) == 0)
        return;
    set_err(call, "%s", code ? err : "Out of memory");
    defer_fail(call, code ? code : CURLE_OUT_OF_MEMORY);
}

/* The connection died before the answer's first byte: on a reused one the
 * provider may have closed it as we wrote, so try once more on a new one. */
static bool call_retry(struct h1_call *call)
{
    if (!call->reused || call->retried || call->got_bytes)
        return false;
    conn_close(call->conn);
    call->retried = true;
    call->sent = 0;
    return call_connect(call) == 0;
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct h1_call *call = c->call;
    assert(call != NULL);
    if (!c->connected) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (what & EV_TIMEOUT) {
            snprintf(call->err, sizeof call->err, "Connection to %s timed out after %ld ms",
                     call->o->addr.text, (long)(call->connect_timeout_s * 1000));
            call_fail(call, CURLE_OPERATION_TIMEDOUT);
            return;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            set_err(call, "Failed to connect to %s: %s", call->o->addr.text, strerror(soerr));
            call_fail(call, CURLE_COULDNT_CONNECT);
            return;
        }
        c->connected = true;
        event_add(&c->rev, NULL);
    }
    call_send(call);
}

/* Writes what is left of the request; waits for room when the socket is full. */
static void call_send(struct h1_call *call)
{
    struct conn *c = call->conn;
    while (call->sent < call->head_len + call->body_len) {
        struct iovec iov[2];
        int n = 0;
        if (call->sent < call->head_len)
            iov[n++] = (struct iovec){ call->head + call->sent, call->head_len - call->sent };
        size_t off = call->sent > call->head_len ? call->sent - call->head_len : 0;
        if (call->body_len > off)
            iov[n++] = (struct iovec){ call->body + off, call->body_len - off };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w > 0) {
            call->sent += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(&c->wev, NULL);
            return;
        } else {
            int e = w < 0 ? errno : EPIPE;
            if (call_retry(call))
                return;
            set_err(call, "Send failure to %s: %s", call->o->addr.text, strerror(e));
            call_fail(call, CURLE_SEND_ERROR);
            return;
        }
    }
}

/* ---- the answer -------------------------------------------------------------------- */

static void header_done(struct h1_call *call)
{
    call->in_value = false;
    call->hname_len = 0;
    call->hwant = HDR_OTHER;
}

static int on_message_begin(http_parser *p)
{
    struct h1_call *call = p->data;
    free(call->content_type);
    free(call->retry_after);
    call->content_type = call->retry_after = NULL;
    header_done(call);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct h1_call *call = p->data;
    if (call->in_value)
        header_done(call);
    size_t room = sizeof call->hname - call->hname_len;
    size_t n = len < room ? len : room;
    memcpy(call->hname + call->hname_len, at, n);
    call->hname_len += n;
    return 0;
}

static char **header_slot(struct h1_call *call)
{
    return call->hwant == HDR_CONTENT_TYPE  ? &call->content_type
           : call->hwant == HDR_RETRY_AFTER ? &call->retry_after
                                            : NULL;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct h1_call *call = p->data;
    if (!call->in_value) {
        call->in_value = true;
        call->hwant = h1_header_kind(call->hname, call->hname_len);
        char **slot = header_slot(call);
        if (slot != NULL) { /* a repeated header: the last one counts */
            free(*slot);
            *slot = NULL;
        }
    }
    char **slot = header_slot(call);
    if (slot == NULL)
        return 0;
    size_t old = *slot ? strlen(*slot) : 0;
    if (old + len > HEADER_VALUE_MAX)
        return 0; /* keeps the start of an absurdly long value */
    char *v = realloc(*slot, old + len + 1);
    if (v == NULL)
        return -1;
    memcpy(v + old, at, len);
    v[old + len] = '\0';
    *slot = v;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct h1_call *call = p->data;
    header_done(call);
    if (p->status_code < 100)
        return -1; /* not a status HTTP knows */
    if (p->status_code >= 200)
        call->status = p->status_code;
    return 0;
}

/* Gives body bytes to the owner (none to a released call). H1_ABORT: the call must
 * stop (call->cancelled or call->aborted says why, for call_stop); H1_PAUSE: the
 * bytes were not used; H1_GO_ON also when the owner released the call in there. */
static enum h1_verdict hand_over(struct h1_call *call, const char *data, size_t len)
{
    if (call->cb == NULL)
        return H1_GO_ON; /* released: the bytes only drain the connection */
    call->in_data = true;
    enum h1_verdict v = call->cb->on_data(call->owner, data, len);
    call->in_data = false;
    if (call->cancelled)
        return H1_ABORT;
    if (call->cb == NULL)
        return H1_GO_ON;
    call->aborted = v == H1_ABORT;
    return v;
}

/* Ends a call that hand_over said must stop: silently when its owner cancelled
 * it, with CURLE_WRITE_ERROR when the owner's on_data aborted. */
static void call_stop(struct h1_call *call)
{
    if (call->cancelled) {
        if (call->conn != NULL)
            conn_close(call->conn);
        call_free(call);
        return;
    }
    snprintf(call->err, sizeof call->err, "the receiver stopped the transfer");
    call_finish(call, CURLE_WRITE_ERROR, false);
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct h1_call *call = p->data;
    if (p->status_code < 200)
        return 0; /* an interim answer's body: read past, unused */
    enum h1_verdict v = hand_over(call, at, len);
    if (v == H1_ABORT)
        return -1;
    if (v == H1_PAUSE) {
        if ((call->held = malloc(len)) == NULL)
            return -1;
        memcpy(call->held, at, len);
        call->held_len = len;
        call->paused = true;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct h1_call *call = p->data;
    if (p->status_code < 200)
        return 0; /* an interim answer (100 Continue): the real one follows */
    call->complete = true;
    http_parser_pause(p, 1); /* nothing after the answer is parsed */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The request is no longer needed once the provider started answering; one
 * that answers before it read all of it (a 413, say) gets no more of it, and its
 * connection is not reused. */
static void got_bytes(struct h1_call *call)
{
    if (call->got_bytes)
        return;
    call->got_bytes = true;
    if (call->sent < call->head_len + call->body_len) {
        call->cut_short = true;
        call->sent = call->head_len + call->body_len;
        event_del(&call->conn->wev);
    }
    free(call->head);
    free(call->body);
    call->head = call->body = NULL;
}

/* Parses data; 0 while the call goes on, 1 when it ended (and was freed). */
static int call_feed(struct h1_call *call, const char *data, size_t len)
{
    struct conn *c = call->conn;
    size_t used = http_parser_execute(&c->parser, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (call->cancelled || call->aborted) {
        call_stop(call);
        return 1;
    }
    if (call->complete) {
        call_finish(call, 0, used == len && !call->cut_short && http_should_keep_alive(&c->parser));
        return 1;
    }
    if (call->paused) {
        if (used < len && (call->rest = malloc(len - used)) == NULL) {
            call_fail(call, CURLE_OUT_OF_MEMORY);
            return 1;
        }
        if (used < len)
            memcpy(call->rest, data + used, len - used);
        call->rest_len = len - used;
        event_del(&c->rev);
        return 0;
    }
    if (e != HPE_OK) {
        snprintf(call->err, sizeof call->err, "Not an HTTP/1.1 answer from %s: %s",
                 call->o->addr.text, http_errno_description(e));
        call_fail(call, e == HPE_CB_header_value || e == HPE_CB_body ? CURLE_OUT_OF_MEMORY
                                                                     : CURLE_WEIRD_SERVER_REPLY);
        return 1;
    }
    return 0;
}

/* The provider closed the connection (or it failed with errno e). */
static void call_on_eof(struct h1_call *call, int e)
{
    if (e == 0) {
        http_parser_execute(&call->conn->parser, &settings, NULL, 0); /* a close-delimited end */
        if (call->complete) {
            call_finish(call, 0, false);
            return;
        }
    }
    if (call_retry(call))
        return;
    if (!call->got_bytes) {
        set_err(call, "Empty reply from %s%s%s", call->o->addr.text, e ? ": " : "",
                e ? strerror(e) : "");
        call_fail(call, e ? CURLE_RECV_ERROR : CURLE_GOT_NOTHING);
        return;
    }
    set_err(call, "The connection to %s closed before the answer ended%s%s", call->o->addr.text,
            e ? ": " : "", e ? strerror(e) : "");
    call_fail(call, e ? CURLE_RECV_ERROR : CURLE_PARTIAL_FILE);
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    struct h1_call *call = c->call;
    char *buf = c->o->rbuf;
    ssize_t n = recv(fd, buf, READ_SIZE, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (call == NULL) { /* idle: the provider closed it, or sent what nobody asked for */
        conn_close(c);
        return;
    }
    if (n <= 0) {
        call_on_eof(call, n < 0 ? errno : 0);
        return;
    }
    got_bytes(call);
    call_feed(call, buf, (size_t)n);
}

/* ---- deferred work ----------------------------------------------------------------- */

static void call_fail(struct h1_call *call, int code)
{
    if (call->err[0] == '\0')
        snprintf(call->err, sizeof call->err, "%s", curl_easy_strerror((CURLcode)code));
    call_finish(call, code, false);
}

/* Hands over what the owner paused on, then the raw bytes after it. */
static void call_unpause(struct h1_call *call)
{
    struct conn *c = call->conn;
    char *held = call->held, *rest = call->rest;
    size_t held_len = call->held_len, rest_len = call->rest_len;
    call->held = call->rest = NULL;
    call->held_len = call->rest_len = 0;
    call->paused = false;
    http_parser_pause(&c->parser, 0);
    enum h1_verdict v = held_len > 0 ? hand_over(call, held, held_len) : H1_GO_ON;
    if (v == H1_PAUSE) {
        call->held = held; /* paused again: kept as they were */
        call->held_len = held_len;
        call->rest = rest;
        call->rest_len = rest_len;
        call->paused = true;
        http_parser_pause(&c->parser, 1);
        return;
    }
    free(held);
    if (v == H1_ABORT) {
        free(rest);
        call_stop(call);
        return;
    }
    int ended = rest_len > 0 ? call_feed(call, rest, rest_len) : 0;
    free(rest);
    if (ended == 0 && !call->paused)
        event_add(&c->rev, NULL);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h1_call *call = arg;
    enum defer d = call->defer;
    call->defer = DEFER_NONE;
    if (d == DEFER_FAIL) {
        call_fail(call, call->fail_code);
    } else if (d == DEFER_RESOLVE_TIMEOUT) {
        list_remove(&call->wait_link); /* its lookup goes on for the next call */
        set_err(call, "Resolving timed out after %ld milliseconds",
                (long)(call->connect_timeout_s * 1000));
        call_fail(call, CURLE_OPERATION_TIMEDOUT);
    } else if (d == DEFER_RESUME && call->paused)
        call_unpause(call);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct h1_call *call = arg;
    if (call->conn != NULL)
        conn_close(call->conn);
    call_free(call);
}

/* ---- the interface ----------------------------------------------------------------- */

int h1_url_supported(const char *url)
{
    struct h1_addr a;
    return h1_parse_url(url, &a) != 0 ? 0 : a.name_len > 0 ? H1_URL_NAME : H1_URL_ADDRESS;
}

struct h1_origin *h1_origin_new(struct event_base *base, const char *url, size_t max_idle,
                                struct h1_resolver *dns)
{
    struct h1_origin *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->base = base;
    o->max_idle = max_idle;
    list_init(&o->idle);
    list_init(&o->calls);
    if (h1_parse_url(url, &o->addr) != 0 || (o->addr.path = strdup(o->addr.path)) == NULL) {
        free(o);
        return NULL;
    }
    h1_name_init(&o->name, &o->addr, dns);
    return o;
}

void h1_origin_free(struct h1_origin *o)
{
    if (o == NULL)
        return;
    while (!list_empty(&o->calls)) {
        struct h1_call *call = list_entry(o->calls.next, struct h1_call, link);
        assert(call->cb == NULL); /* only released calls may be left */
        on_grace(-1, 0, call);
    }
    while (!list_empty(&o->idle))
        conn_close(list_entry(o->idle.next, struct conn, link));
    h1_name_free(&o->name);
    free(o->addr.path);
    free(o);
}

size_t h1_origin_active(const struct h1_origin *o)
{
    return o->active;
}

struct h1_call *h1_start(struct h1_origin *o, const struct curl_slist *headers,
                         double connect_timeout_s, char *body, size_t len,
                         const struct h1_callbacks *cb, void *owner)
{
    struct h1_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        free(body);
        return NULL;
    }
    *call = (struct h1_call){ .o = o,
                              .cb = cb,
                              .owner = owner,
                              .body = body,
                              .body_len = len,
                              .connect_timeout_s = connect_timeout_s };
    call->head = h1_request_head(&o->addr, headers, len, &call->head_len);
    list_insert_tail(&o->calls, &call->link);
    list_init(&call->wait_link);
    o->active++;
    event_assign(&call->defer_ev, o->base, -1, 0, on_defer, call);
    evtimer_assign(&call->grace, o->base, on_grace, call);
    if (call->head == NULL || call_connect(call) != 0) {
        call_free(call);
        return NULL;
    }
    return call;
}

void h1_cancel(struct h1_call *call)
{
    call->cb = NULL;
    call->owner = NULL;
    if (call->in_data) {
        call->cancelled = true; /* the parser stops when on_data returns */
        return;
    }
    if (call->conn != NULL)
        conn_close(call->conn);
    call_free(call);
}

void h1_release(struct h1_call *call, long grace_ms)
{
    if (call->conn == NULL) { /* not connected yet: nothing to drain */
        h1_cancel(call);
        return;
    }
    call->cb = NULL;
    call->owner = NULL;
    struct timeval tv = clock_timeval(grace_ms / 1000.0);
    evtimer_add(&call->grace, &tv);
    if (call->paused)
        h1_resume(call);
}

void h1_resume(struct h1_call *call)
{
    if (!call->paused || call->defer != DEFER_NONE)
        return;
    call->defer = DEFER_RESUME;
    event_active(&call->defer_ev, EV_TIMEOUT, 1);
}

long h1_status(const struct h1_call *call)
{
    return call->status;
}

const char *h1_content_type(const struct h1_call *call)
{
    return call->status ? call->content_type : NULL;
}

const char *h1_retry_after(const struct h1_call *call)
{
    return call->status ? call->retry_after : NULL;
}
