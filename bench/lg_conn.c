/*
 * Connections and load shapes on one libevent loop.
 *
 * A connection carries one stream at a time (HTTP/1.1 keep-alive, no
 * pipelining). Shapes:
 *   closed (--concurrency C): C connections, each starts its next stream
 *          when the previous one ends, until --duration or --requests;
 *   open   (--rate R): a 1 ms tick starts streams on schedule, on an idle
 *          connection or a new one (up to --max-conns, then they queue);
 *   hold   (--streams N): N connections at once (256 per tick so the loop
 *          keeps reading), one stream each, then wait for all of them.
 * A 250 ms sweep ends streams older than --timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "loadgen.h"

#define HOLD_BATCH         256
#define CONNECT_BACKOFF_MS 50

enum cstate { CS_CLOSED, CS_CONNECTING, CS_SENDING, CS_RECEIVING, CS_IDLE };

struct conn {
    int fd;
    enum cstate st;
    bool has_stream;
    struct event *rev, *wev, *retry;
    size_t wr_off;
    uint64_t t_launch, t_sent;
    struct stream sp;
};

static struct conn **g_conns; /* every connection object made, reused after close */
static int g_nconns;
static struct conn **g_idle; /* open loop: connected and free, used LIFO */
static int g_nidle;
static struct event *g_tick, *g_sweep, *g_stop;

static void conn_begin(struct conn *c);
static void stream_end(struct conn *c);

/* ---------- bookkeeping ---------- */

static void maybe_finish(void)
{
    if (G.stopping && G.inflight == 0)
        event_base_loopbreak(G.base);
}

static void conn_close_fd(struct conn *c)
{
    if (c->fd < 0)
        return;
    event_del(c->rev);
    event_del(c->wev);
    close(c->fd);
    c->fd = -1;
    c->st = CS_CLOSED;
}

static void record(struct conn *c)
{
    struct stream *s = &c->sp;
    enum verdict v = s->v == V_PENDING ? V_RESET : s->v;
    G.st.by_verdict[v]++;
    G.st.events += s->events;
    G.st.content_events += s->content_events;
    if (v == V_OK) {
        uint64_t now = now_ns();
        hist_add(&G.st.ttfe, (s->t_first - c->t_sent) / 1000);
        hist_add(&G.st.total, (now - c->t_sent) / 1000);
    } else if (!G.st.first_failure[0]) {
        snprintf(G.st.first_failure, sizeof G.st.first_failure, "%s: %s", verdict_name(v), s->why);
    }
}

/* ---------- what a connection does after its stream ---------- */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (G.stopping || (G.o.requests && G.launched >= G.o.requests)) {
        G.stopping = true;
        maybe_finish();
        return;
    }
    G.launched++;
    conn_begin(c);
}

static void next_after(struct conn *c, enum verdict v)
{
    if (G.o.shape == SHAPE_HOLD) {
        conn_close_fd(c);
    } else if (G.o.shape == SHAPE_CLOSED) {
        if (G.o.requests && G.launched >= G.o.requests)
            G.stopping = true;
        if (G.stopping) {
            conn_close_fd(c);
        } else if (v == V_CONNECT) { /* a dead target must not become a busy loop */
            static const struct timeval tv = { 0, CONNECT_BACKOFF_MS * 1000 };
            if (!c->retry)
                c->retry = evtimer_new(G.base, on_retry, c);
            evtimer_add(c->retry, &tv);
        } else {
            G.launched++;
            conn_begin(c);
        }
    } else if (G.pending > 0 && !G.stopping && v != V_CONNECT) {
        G.pending--;
        conn_begin(c); /* a failed connect waits for the tick: no recursion */
    } else if (!G.stopping) {
        g_idle[g_nidle++] = c; /* a closed one reconnects when it is next used */
    } else {
        conn_close_fd(c);
    }
    maybe_finish();
}

/* Records the stream and decides whether the connection can be reused. */
static void stream_end(struct conn *c)
{
    enum verdict v = c->sp.v;
    record(c);
    bool reusable = c->sp.done && c->sp.keep_alive && c->st == CS_RECEIVING &&
                    (v == V_OK || v == V_STATUS || v == V_UPSTREAM || v == V_INCOMPLETE);
    if (reusable)
        c->st = CS_IDLE;
    else
        conn_close_fd(c);
    c->has_stream = false;
    G.inflight--;
    next_after(c, v);
}

static void fail_now(struct conn *c, enum verdict v, const char *why)
{
    stream_fail(&c->sp, v, why);
    c->sp.done = true;
    c->sp.keep_alive = false;
    stream_end(c);
}

/* ---------- I/O ---------- */

static void conn_send(struct conn *c)
{
    c->st = CS_SENDING;
    while (c->wr_off < G.req_len) {
        ssize_t n = write(c->fd, G.req + c->wr_off, G.req_len - c->wr_off);
        if (n > 0) {
            c->wr_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            char why[96];
            snprintf(why, sizeof why, "write: %s", strerror(errno));
            fail_now(c, V_RESET, why);
            return;
        }
    }
    c->wr_off = 0;
    c->t_sent = now_ns(); /* time to first event counts from here */
    c->st = CS_RECEIVING;
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (c->st == CS_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            char why[96];
            snprintf(why, sizeof why, "%s", strerror(err));
            fail_now(c, V_CONNECT, why);
            return;
        }
    }
    conn_send(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    static char buf[64 * 1024]; /* shared by all connections */
    struct conn *c = arg;
    (void)what;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (!c->has_stream) { /* idle: the server closed it, or sent bytes nobody asked for */
        if (n > 0)
            G.st.stray++; /* bytes after a finished response: a protocol error */
        conn_close_fd(c);
        return;
    }
    if (n > 0) {
        G.st.bytes += (uint64_t)n;
        stream_input(&c->sp, buf, (size_t)n);
    } else {
        stream_eof(&c->sp); /* EOF or ECONNRESET */
    }
    if (c->sp.done)
        stream_end(c);
}

/* Opens a socket and starts a non-blocking connect; false if that failed. */
static bool conn_connect(struct conn *c)
{
    int fd = socket(G.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE)
            G.st.emfile++;
        char why[96];
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        fail_now(c, V_CONNECT, why);
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    event_assign(c->rev, G.base, fd, EV_READ | EV_PERSIST, on_readable, c);
    event_assign(c->wev, G.base, fd, EV_WRITE, on_writable, c);
    event_add(c->rev, NULL);
    G.st.conns_opened++;
    if (connect(fd, (struct sockaddr *)&G.addr, G.addrlen) == 0) {
        conn_send(c);
        return true;
    }
    if (errno == EINPROGRESS) {
        c->st = CS_CONNECTING;
        event_add(c->wev, NULL);
        return true;
    }
    if (errno == EADDRNOTAVAIL) /* out of local ports: TIME_WAIT or too many conns */
        G.st.addrnotavail++;
    char why[96];
    snprintf(why, sizeof why, "%s", strerror(errno));
    fail_now(c, V_CONNECT, why);
    return false;
}

/* Starts one stream on c: reuses its connection or opens one. */
static void conn_begin(struct conn *c)
{
    G.st.started++;
    G.inflight++;
    c->has_stream = true;
    c->t_launch = c->t_sent = now_ns();
    c->wr_off = 0;
    stream_reset(&c->sp);
    if (c->fd < 0)
        conn_connect(c);
    else
        conn_send(c);
}

static struct conn *conn_new(void)
{
    if (g_nconns >= G.o.max_conns)
        return NULL;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    /* Events are assigned to the fd on connect; allocate them once. */
    c->rev = event_new(G.base, -1, 0, on_readable, c);
    c->wev = event_new(G.base, -1, 0, on_writable, c);
    stream_init(&c->sp, G.o.mode);
    g_conns[g_nconns++] = c;
    return c;
}

/* ---------- shapes ---------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (G.stopping)
        return;
    if (G.o.shape == SHAPE_HOLD) {
        for (int i = 0; i < HOLD_BATCH && G.launched < G.o.streams; i++) {
            struct conn *c = conn_new();
            G.launched++;
            if (c)
                conn_begin(c);
        }
        if (G.launched >= G.o.streams) {
            G.stopping = true;
            maybe_finish();
        }
        return;
    }
    /* open loop: queued starts first, then as many as the schedule says are due */
    while (G.pending > 0 && g_nidle > 0) {
        G.pending--;
        conn_begin(g_idle[--g_nidle]);
    }
    double el = (double)(now_ns() - G.t_start) / 1e9;
    long long due = (long long)(el * G.o.rate);
    while (G.launched < due) {
        G.launched++;
        struct conn *c = g_nidle > 0 ? g_idle[--g_nidle] : conn_new();
        if (c) {
            conn_begin(c);
        } else {
            G.pending++; /* every connection busy: starts when one frees up */
            G.st.queued++;
        }
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t now = now_ns(), limit = (uint64_t)(G.o.timeout_s * 1e9);
    for (int i = 0; i < g_nconns; i++) {
        struct conn *c = g_conns[i];
        if (c->has_stream && now - c->t_launch > limit) {
            char why[96];
            snprintf(why, sizeof why, "no complete response within %.1f s", G.o.timeout_s);
            fail_now(c, V_TIMEOUT, why);
        }
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    G.stopping = true;
    G.st.dropped += (uint64_t)G.pending; /* queued starts that never got a connection */
    G.pending = 0;
    for (int i = 0; i < g_nidle; i++)
        conn_close_fd(g_idle[i]);
    g_nidle = 0;
    maybe_finish();
}

/* Raises the fd limit to the hard limit and sizes --max-conns from it. */
static int fd_budget(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    long lim = rl.rlim_cur == RLIM_INFINITY ? 1000000 : (long)rl.rlim_cur;
    return lim > 1000000 ? 1000000 : (int)lim;
}

static int check_limits(void)
{
    int fds = fd_budget();
    int avail = fds - 32; /* stdio, epoll, listeners of a co-located process */
    if (G.o.max_conns <= 0 || G.o.max_conns > avail)
        G.o.max_conns = avail;
    int need = G.o.shape == SHAPE_HOLD     ? G.o.streams
               : G.o.shape == SHAPE_CLOSED ? G.o.concurrency
                                           : 1;
    if (need > G.o.max_conns) {
        fprintf(stderr,
                "loadgen: %d connections needed but only %d fds are available "
                "(ulimit -n is %d). Raise the limit with 'ulimit -n' or lower the load.\n",
                need, G.o.max_conns, fds);
        return -1;
    }
    return 0;
}

static void cleanup(void)
{
    for (int i = 0; i < g_nconns; i++) {
        struct conn *c = g_conns[i];
        conn_close_fd(c);
        event_free(c->rev);
        event_free(c->wev);
        if (c->retry)
            event_free(c->retry);
        stream_free(&c->sp);
        free(c);
    }
    free(g_conns);
    free(g_idle);
    event_free(g_tick);
    event_free(g_sweep);
    if (g_stop)
        event_free(g_stop);
}

int run_load(void)
{
    if (check_limits() < 0)
        return -1;
    g_conns = calloc((size_t)G.o.max_conns, sizeof *g_conns);
    g_idle = calloc((size_t)G.o.max_conns, sizeof *g_idle);
    if (!g_conns || !g_idle)
        return -1;
    G.t_start = now_ns();
    /* The sweep runs often enough to honour a short --timeout. */
    double sw = G.o.timeout_s / 2 < 0.25 ? G.o.timeout_s / 2 : 0.25;
    struct timeval ms1 = { 0, 1000 }, sweep = { 0, (suseconds_t)(sw * 1e6) };
    g_tick = event_new(G.base, -1, EV_PERSIST, on_tick, NULL);
    g_sweep = event_new(G.base, -1, EV_PERSIST, on_sweep, NULL);
    event_add(g_sweep, &sweep);
    if (G.o.shape != SHAPE_CLOSED)
        event_add(g_tick, &ms1);
    if (G.o.shape != SHAPE_HOLD && !(G.o.shape == SHAPE_CLOSED && G.o.requests)) {
        struct timeval d = { (time_t)G.o.duration_s,
                             (suseconds_t)((G.o.duration_s - (long)G.o.duration_s) * 1e6) };
        g_stop = evtimer_new(G.base, on_stop, NULL);
        evtimer_add(g_stop, &d);
    }
    if (G.o.shape == SHAPE_CLOSED) {
        for (int i = 0; i < G.o.concurrency; i++) {
            if (G.o.requests && G.launched >= G.o.requests)
                break;
            struct conn *c = conn_new();
            if (!c)
                break;
            G.launched++;
            conn_begin(c);
        }
        if (G.o.requests && G.launched >= G.o.requests)
            G.stopping = true;
        maybe_finish();
    }
    event_base_dispatch(G.base);
    G.t_end = now_ns();
    cleanup();
    return 0;
}
