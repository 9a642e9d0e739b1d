/* Unit tests of src/services/h1.c, chatd's own HTTP/1.1 client, on a real event_base
 * against a scripted server run by this test: a thread on a free 127.0.0.1 port
 * that does exactly what each test's script says (accept, read a request, send
 * these bytes, sleep, close, wait for the client to close), records what it
 * received, and after the script accepts and closes whatever else comes (counted:
 * a retry that should not happen shows). Every test runs the loop until its calls
 * are over, with a 10 s limit that fails the test rather than hang. The owner ends
 * calls from inside on_data (cancel, release, pause, abort, cancel of another
 * call); what is touched after free shows under ASan (this build) and valgrind
 * (`make unit` runs a build without sanitizers under valgrind too). */
#include "unit.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "services/h1.h"

/* ---- the scripted server ---------------------------------------------------------------- */

/* clang-format off */
enum op { S_ACCEPT, S_USE, S_READ, S_SEND, S_SENDQ, S_SLOW, S_SLEEP, S_CLOSE, S_EOF, S_MARK,
          S_GO, S_END };
struct step {
    enum op op;
    const char *s; /* bytes to send */
    int n;         /* milliseconds, or a connection's index */
};
#define ACCEPT    { S_ACCEPT, NULL, 0 }
#define USE(i)    { S_USE, NULL, i }    /* later steps act on the i-th accepted connection */
#define READ      { S_READ, NULL, 0 }   /* one request: head and Content-Length body */
#define SEND(x)   { S_SEND, x, 0 }      /* in one write */
#define SENDQ(x)  { S_SENDQ, x, 0 }     /* the same, failure ignored (the peer may be gone) */
#define SLOW(x)   { S_SLOW, x, 0 }      /* one byte per write, 2 ms apart */
#define SLEEP(ms) { S_SLEEP, NULL, ms } /* then goes on */
#define CLOSE     { S_CLOSE, NULL, 0 }  /* closes the connection */
#define WAIT_EOF  { S_EOF, NULL, 0 }    /* until the client closes it (5 s at most) */
#define MARK      { S_MARK, NULL, 0 }   /* srv.marks++ */
#define WAIT_GO   { S_GO, NULL, 0 }     /* until on_data ran (or the test set srv.go) */
#define END       { S_END, NULL, 0 }
/* clang-format on */

#define MAX_CONNS 8
#define MAX_REQS  8

static struct server {
    int lfd, port;
    const struct step *script;
    pthread_t thread;
    int conns[MAX_CONNS], n_conns, cur;
    char *req[MAX_REQS]; /* what each READ received (head and body), NUL-terminated */
    size_t req_len[MAX_REQS];
    int n_req;
    int failed_at; /* the step that failed, -1 */
    char why[160];
    atomic_int marks, go, done, stop, extra; /* extra: accepted after the script */
} srv;

/* Waits up to ms for fd to be ready for events; 0 ready, -1 not (or the test stops). */
static int srv_wait(int fd, short events, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&srv.stop); waited += 20) {
        struct pollfd p = { .fd = fd, .events = events };
        if (poll(&p, 1, 20) > 0)
            return 0;
    }
    return -1;
}

static int srv_accept(void)
{
    if (srv.n_conns == MAX_CONNS || srv_wait(srv.lfd, POLLIN, 5000) != 0)
        return -1;
    int fd = accept(srv.lfd, NULL, NULL);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    srv.cur = srv.n_conns;
    srv.conns[srv.n_conns++] = fd;
    return 0;
}

/* Reads one request: up to the blank line, then Content-Length bytes. */
static int srv_read(int fd)
{
    if (srv.n_req == MAX_REQS)
        return -1;
    size_t cap = 4096, len = 0, want = 0;
    char *buf = malloc(cap), *end = NULL;
    while (buf != NULL && (end == NULL || len < want)) {
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n =
            buf && srv_wait(fd, POLLIN, 5000) == 0 ? recv(fd, buf + len, cap - len - 1, 0) : -1;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
    }
    srv.req[srv.n_req] = buf;
    srv.req_len[srv.n_req++] = len;
    return buf != NULL && end != NULL && len == want ? 0 : -1;
}

static int srv_send(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Until the peer closes: 0 at EOF (or a reset), -1 when bytes come or after 5 s. */
static int srv_eof(int fd)
{
    char c;
    if (srv_wait(fd, POLLIN, 5000) != 0)
        return -1;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : -1;
}

static int srv_step(const struct step *st)
{
    int fd = srv.n_conns > 0 ? srv.conns[srv.cur] : -1;
    if (st->op != S_ACCEPT && st->op != S_USE && st->op != S_SLEEP && st->op != S_MARK &&
        st->op != S_GO && fd < 0)
        return -1;
    switch (st->op) {
    case S_ACCEPT: return srv_accept();
    case S_USE: return st->n < srv.n_conns ? (srv.cur = st->n, 0) : -1;
    case S_READ: return srv_read(fd);
    case S_SEND: return srv_send(fd, st->s, strlen(st->s));
    case S_SENDQ: srv_send(fd, st->s, strlen(st->s)); return 0;
    case S_SLOW:
        for (const char *p = st->s; *p != '\0'; p++)
            if (srv_send(fd, p, 1) != 0 || usleep(2000) != 0)
                return -1;
        return 0;
    case S_SLEEP: return usleep((useconds_t)st->n * 1000);
    case S_CLOSE:
        close(fd);
        srv.conns[srv.cur] = -1;
        return 0;
    case S_EOF: return srv_eof(fd);
    case S_MARK: atomic_fetch_add(&srv.marks, 1); return 0;
    case S_GO:
        for (int i = 0; i < 500 && !atomic_load(&srv.go); i++)
            usleep(10000);
        return atomic_exchange(&srv.go, 0) ? 0 : -1; /* consumed: the next waits anew */
    case S_END: break;
    }
    return -1;
}

static void *srv_run(void *arg)
{
    (void)arg;
    for (int i = 0; srv.script[i].op != S_END; i++)
        if (srv_step(&srv.script[i]) != 0) {
            srv.failed_at = i;
            snprintf(srv.why, sizeof srv.why, "step %d (op %d) failed: %s", i, srv.script[i].op,
                     strerror(errno));
            break;
        }
    for (int i = 0; i < srv.n_conns; i++)
        if (srv.conns[i] >= 0)
            close(srv.conns[i]); /* so that a client still waiting sees the end */
    atomic_store(&srv.done, 1);
    while (srv_wait(srv.lfd, POLLIN, 1000000) == 0) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd >= 0) {
            atomic_fetch_add(&srv.extra, 1);
            close(fd);
        }
    }
    return NULL;
}

/* A listening socket on a free 127.0.0.1 port; its port in *port. */
static int listen_local(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void serve(const struct step *script)
{
    srv.script = script;
    assert_int_equal(pthread_create(&srv.thread, NULL, srv_run, NULL), 0);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static struct event_base *base;
static struct h1_origin *origin;
static struct event *ticker, *deadline;
static bool expired;
static char url[96];

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg; /* wakes the loop to look at the server's flags */
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    expired = true;
}

static void loop_begin(void)
{
    struct timeval limit = { 10, 0 }, tick = { 0, 10000 };
    expired = false;
    evtimer_add(deadline, &limit);
    evtimer_add(ticker, &tick);
}

static void loop_end(const char *what)
{
    evtimer_del(deadline);
    evtimer_del(ticker);
    if (expired)
        fail_msg("waited 10 s for %s (server: %s)", what, srv.failed_at >= 0 ? srv.why : "ok");
}

/* Runs the loop until cond holds, 10 s at most. */
#define RUN_UNTIL(cond)                         \
    do {                                        \
        loop_begin();                           \
        while (!(cond) && !expired)             \
            event_base_loop(base, EVLOOP_ONCE); \
        loop_end(#cond);                        \
    } while (0)

static bool idle(void)
{
    return h1_origin_active(origin) == 0;
}

/* Runs the loop for ms milliseconds. */
static void run_for(int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long el = 0;
    RUN_UNTIL((clock_gettime(CLOCK_MONOTONIC, &t),
               el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000) >= ms);
}

/* Runs the loop until the server's script is over; fails the test if a step failed. */
static void server_wait(void)
{
    RUN_UNTIL(atomic_load(&srv.done));
    if (srv.failed_at >= 0)
        fail_msg("server: %s", srv.why);
}

static int setup(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof srv);
    srv.failed_at = -1;
    srv.lfd = listen_local(16, &srv.port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", srv.port);
    base = event_base_new();
    ticker = base ? event_new(base, -1, EV_PERSIST, on_tick, NULL) : NULL;
    deadline = base ? evtimer_new(base, on_deadline, NULL) : NULL;
    origin = deadline ? h1_origin_new(base, url, 4, NULL) : NULL;
    return origin == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    if (origin != NULL && h1_origin_active(origin) > 0)
        print_message("a call is still in progress after a failure: its origin is not freed\n");
    else
        h1_origin_free(origin); /* "no call may be in progress" */
    origin = NULL;
    atomic_store(&srv.stop, 1);
    if (srv.script != NULL)
        pthread_join(srv.thread, NULL);
    close(srv.lfd);
    for (int i = 0; i < srv.n_req; i++)
        free(srv.req[i]);
    event_free(ticker);
    event_free(deadline);
    event_base_free(base);
    return 0;
}

/* ---- the owner ----------------------------------------------------------------------------- */

enum act { ACT_NONE, ACT_RELEASE, ACT_CANCEL, ACT_PAUSE, ACT_ABORT, ACT_CANCEL_OTHER };

struct owner {
    struct h1_call *call; /* NULL once released, cancelled or done */
    enum act act;
    int at, times;       /* on_data calls at..at+times-1 act (times 0 means 1) */
    struct owner *other; /* of ACT_CANCEL_OTHER */
    long grace_ms;       /* of ACT_RELEASE */
    int n_data, n_done, code;
    char err[256];
    long status; /* seen at the first on_data */
    char ctype[64], retry[32];
    bool paused;     /* returned H1_PAUSE, not resumed yet */
    char held[4096]; /* the bytes refused, to come again */
    size_t held_len;
    char body[16384]; /* the bytes taken, in order */
    size_t len;
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct owner *o = arg;
    if (o->paused && o->call != NULL) {
        o->paused = false;
        h1_resume(o->call);
    }
}

static void copy_opt(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s != NULL ? s : "(none)");
}

/* Checks that bytes held at a pause come first again. */
static void check_held(struct owner *o, const char *data, size_t len)
{
    size_t n = len < o->held_len ? len : o->held_len;
    if (memcmp(data, o->held, n) != 0)
        fail_msg("after h1_resume, other bytes came than those refused");
    memmove(o->held, o->held + n, o->held_len - n);
    o->held_len -= n;
}

static enum h1_verdict act(struct owner *o, const char *data, size_t len)
{
    struct h1_call *call = o->call;
    switch (o->act) {
    case ACT_NONE: break;
    case ACT_RELEASE:
        o->call = NULL;
        h1_release(call, o->grace_ms);
        assert_int_equal(h1_origin_active(origin), 1); /* released calls count */
        return H1_GO_ON;
    case ACT_CANCEL:
        o->call = NULL;
        h1_cancel(call);
        return H1_GO_ON;
    case ACT_PAUSE:
        assert_true(len <= sizeof o->held);
        memcpy(o->held, data, len);
        o->held_len = len;
        o->paused = true;
        struct timeval tv = { 0, 30000 };
        assert_int_equal(event_base_once(base, -1, EV_TIMEOUT, on_resume, o, &tv), 0);
        return H1_PAUSE;
    case ACT_ABORT: return H1_ABORT;
    case ACT_CANCEL_OTHER:
        if (o->other->call != NULL) {
            h1_cancel(o->other->call);
            o->other->call = NULL;
        }
        break;
    }
    return H1_GO_ON;
}

static enum h1_verdict on_data(void *arg, const char *data, size_t len)
{
    struct owner *o = arg;
    assert_non_null(o->call); /* never after release, cancel or done */
    assert_int_equal(o->n_done, 0);
    assert_false(o->paused);
    assert_true(len > 0 && data != NULL);
    atomic_store(&srv.go, 1); /* the server's WAIT_GO goes on */
    if (o->n_data++ == 0) {
        o->status = h1_status(o->call);
        copy_opt(o->ctype, sizeof o->ctype, h1_content_type(o->call));
        copy_opt(o->retry, sizeof o->retry, h1_retry_after(o->call));
    }
    check_held(o, data, len);
    int i = o->n_data - 1;
    if (i >= o->at && i < o->at + (o->times > 0 ? o->times : 1)) {
        enum h1_verdict v = act(o, data, len);
        if (v != H1_GO_ON || o->call == NULL)
            return v; /* the bytes of a release or cancel are not kept either */
    }
    assert_true(o->len + len <= sizeof o->body);
    memcpy(o->body + o->len, data, len);
    o->len += len;
    return H1_GO_ON;
}

static void on_done(void *arg, int code, const char *err)
{
    struct owner *o = arg;
    assert_non_null(o->call);
    assert_non_null(err);
    assert_false(o->paused);
    o->n_done++;
    o->code = code;
    snprintf(o->err, sizeof o->err, "%s", err);
    o->call = NULL; /* freed right after */
}

static const struct h1_callbacks cbs = { .on_data = on_data, .on_done = on_done };

static double connect_timeout = 2.0; /* of every h1_start */

static const char req_body[] = "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";

static void begin_with(struct owner *o, struct h1_origin *org, const struct curl_slist *headers,
                       const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, body, len);
    o->call = h1_start(org, headers, connect_timeout, copy, len, &cbs, o);
    assert_non_null(o->call);
    assert_int_equal(o->n_done + o->n_data, 0); /* never inside h1_start */
}

static void begin(struct owner *o)
{
    begin_with(o, origin, NULL, req_body, strlen(req_body));
}

static bool over(const struct owner *o)
{
    return o->n_done > 0;
}

/* Starts o, runs until it is over and checks the outcome: code, and the body when given. */
static void call_expect(struct owner *o, int code, const char *body)
{
    begin(o);
    RUN_UNTIL(over(o));
    if (o->code != code)
        fail_msg("code %d (%s), expected %d", o->code, o->err, code);
    if (body != NULL) {
        assert_int_equal(o->len, strlen(body));
        assert_memory_equal(o->body, body, o->len);
    }
}

/* Stops the server thread and counts the connections accepted after its script,
 * those still waiting in the backlog included. */
static void server_stop(void)
{
    atomic_store(&srv.stop, 1);
    pthread_join(srv.thread, NULL);
    srv.script = NULL;
    fcntl(srv.lfd, F_SETFL, O_NONBLOCK);
    for (int fd; (fd = accept(srv.lfd, NULL, NULL)) >= 0; close(fd))
        atomic_fetch_add(&srv.extra, 1);
}

/* An origin on another port, for the tests of connection failures. */
static struct h1_origin *origin_at(int port, const char *path)
{
    char u[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%d%s", port, path);
    struct h1_origin *o = h1_origin_new(base, u, 1, NULL);
    assert_non_null(o);
    return o;
}

/* Bodies and chunks of the answers. */
#define HEAD_SSE                                             \
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" \
    "Transfer-Encoding: chunked\r\n\r\n"
#define E1    "data: {\"x\":1}\n\n"          /* 15 bytes */
#define E2    "data: abcdefghijklmnopqr\n\n" /* 26 */
#define E3    "data: [DONE]\n\n"             /* 14 */
#define CH_E1 "f\r\n" E1 "\r\n"
#define CH_E2 "1a\r\n" E2 "\r\n"
#define CH_E3 "e\r\n" E3 "\r\n"
#define LAST  "0\r\n\r\n"
#define OK_CL "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
#define J429  "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}" /* 53 */

/* ---- the tests: URLs and request bytes ------------------------------------------------------ */

static void test_url_supported(void **state)
{
    (void)state;
    static const char *const yes[] = { "http://127.0.0.1:8080/v1/chat/completions",
                                       "http://localhost/x", "http://[::1]:9/x",
                                       "http://example.com/v1/chat/completions" };
    static const char *const no[] = { "https://127.0.0.1/v1/chat/completions",
                                      "http://example..com/v1/chat/completions",
                                      "http://user:pw@127.0.0.1/x",
                                      "",
                                      "garbage",
                                      "ftp://127.0.0.1/x" };
    for (size_t i = 0; i < N_ELEMS(yes); i++)
        if (!h1_url_supported(yes[i]))
            fail_msg("%s refused", yes[i]);
    for (size_t i = 0; i < N_ELEMS(no); i++)
        if (h1_url_supported(no[i]))
            fail_msg("%s accepted", no[i]);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strcasestr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Request i: POST path HTTP/1.1, Host, User-Agent, Content-Length of the body, no
 * Expect or Transfer-Encoding, well-formed field lines, then exactly the body. */
static void check_request(int i, const char *path, const char *host, const char *body, size_t blen)
{
    assert_true(i < srv.n_req);
    const char *r = srv.req[i];
    char want[256];
    snprintf(want, sizeof want, "POST %s HTTP/1.1\r\n", path);
    if (strncmp(r, want, strlen(want)) != 0)
        fail_msg("request line: %.60s", r);
    const char *end = strstr(r, "\r\n\r\n");
    assert_non_null(end);
    char *head = strndup(r, (size_t)(end + 2 - r)); /* each line ends with \r\n */
    snprintf(want, sizeof want, "\r\nHost: %s\r\n", host);
    if (count(head, want) != 1 || count(head, "\r\nHost:") != 1)
        fail_msg("want one %s in: %s", want + 2, head);
    assert_int_equal(count(head, "\r\nUser-Agent: "), 1);
    snprintf(want, sizeof want, "\r\nContent-Length: %zu\r\n", blen);
    if (count(head, want) != 1 || count(head, "\r\nContent-Length:") != 1)
        fail_msg("want one %s in: %s", want + 2, head);
    assert_int_equal(count(head, "\r\nExpect"), 0);
    assert_int_equal(count(head, "\r\nTransfer-Encoding"), 0);
    for (const char *l = strstr(head, "\r\n") + 2; *l != '\0'; l = strstr(l, "\r\n") + 2) {
        const char *colon = strchr(l, ':');
        if (colon == NULL || colon == l || colon > strstr(l, "\r\n") || colon[1] != ' ')
            fail_msg("a field line that is not \"Name: value\": %.40s", l);
    }
    assert_int_equal(srv.req_len[i], (size_t)(end + 4 - r) + blen);
    assert_memory_equal(end + 4, body, blen);
    free(head);
}

static void test_request_bytes(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer sk-test");
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, "X-Trace: a b  c");
    struct owner o = { 0 };
    begin_with(&o, origin, h, req_body, strlen(req_body));
    RUN_UNTIL(over(&o));
    curl_slist_free_all(h);
    assert_int_equal(o.code, 0);
    server_wait();
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", srv.port);
    check_request(0, "/v1/chat/completions", host, req_body, strlen(req_body));
    assert_non_null(strstr(srv.req[0], "\r\nAuthorization: Bearer sk-test\r\n"));
    assert_non_null(strstr(srv.req[0], "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(srv.req[0], "\r\nX-Trace: a b  c\r\n"));
}

/* A body larger than the socket buffers goes out whole, and an empty one too. */
static void test_request_large_and_empty_body(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    size_t n = 1 << 20;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    struct owner a = { 0 }, b = { 0 };
    begin_with(&a, origin, NULL, big, n);
    RUN_UNTIL(over(&a));
    assert_int_equal(a.code, 0);
    begin_with(&b, origin, NULL, "", 0);
    RUN_UNTIL(over(&b));
    assert_int_equal(b.code, 0);
    server_wait();
    char host[32];
    snprintf(host, sizeof host, "127.0.0.1:%d", srv.port);
    check_request(0, "/v1/chat/completions", host, big, n);
    check_request(1, "/v1/chat/completions", host, "", 0);
    free(big);
}

/* http://localhost:<port>/x: Host names localhost, the path is /x. */
static void test_localhost(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    char u[64], host[32];
    snprintf(u, sizeof u, "http://localhost:%d/x", srv.port);
    snprintf(host, sizeof host, "localhost:%d", srv.port);
    struct h1_origin *lo = h1_origin_new(base, u, 1, NULL);
    assert_non_null(lo);
    struct owner o = { 0 };
    begin_with(&o, lo, NULL, req_body, strlen(req_body));
    RUN_UNTIL(over(&o));
    h1_origin_free(lo);
    if (o.code != 0)
        fail_msg("code %d: %s", o.code, o.err);
    server_wait();
    check_request(0, "/x", host, req_body, strlen(req_body));
}

/* ---- answers ------------------------------------------------------------------------------ */

/* Chunked SSE cut inside a chunk-size line, between CR and LF, inside the data, with
 * a chunk extension and a trailer. */
static void test_chunked_split(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE "1"), SLEEP(20), SEND("a\r\ndata: abc"), SLEEP(20),
        SEND("defghijklmnopqr\n\n\r"), SLEEP(20), SEND("\nf;ext=1\r\n" E1 "\r"), SLEEP(20),
        SEND("\ne\r"), SLEEP(20), SEND("\n" E3 "\r\n0"), SLEEP(20), SEND("\r\nX-T: 1\r\n"),
        SLEEP(20), SEND("\r\n"), END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { 0 };
    call_expect(&o, 0, E2 E1 E3);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.ctype, "text/event-stream");
    assert_string_equal(o.retry, "(none)");
    server_wait();
}

static void test_one_byte_per_write(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SLOW(HEAD_SSE CH_E1 CH_E3 LAST), END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { 0 };
    call_expect(&o, 0, E1 E3);
    assert_int_equal(o.status, 200);
    server_wait();
}

/* Content-Length answers; the second call reuses the connection (one accept). */
static void test_content_length_keep_alive(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello"), SLEEP(20),
        SEND(" world"), READ, SEND("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "hello world");
    assert_string_equal(a.ctype, "(none)");
    call_expect(&b, 0, "second");
    server_wait();
    assert_int_equal(srv.n_conns, 1);
    server_stop();
    assert_int_equal(srv.extra, 0);
}

/* Answers that end when the server closes: HTTP/1.0, and HTTP/1.1 with Connection:
 * close and no length. */
static void test_close_delimited(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst"), SLEEP(20),
        SEND(" body"), CLOSE, ACCEPT, READ,
        SEND("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsecond"), CLOSE, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "first body");
    call_expect(&b, 0, "second");
    server_wait();
    assert_int_equal(srv.n_conns, 2);
}

/* 100 Continue before the answer, in a write of its own and in the same write. */
static void test_continue(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.1 100 Continue\r\n\r\n"), SLEEP(20), SEND(OK_CL), READ,
        SEND("HTTP/1.1 100 Continue\r\n\r\n" OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "ok");
    assert_int_equal(a.status, 200);
    call_expect(&b, 0, "ok");
    assert_int_equal(b.status, 200);
    assert_string_equal(b.ctype, "text/plain");
    server_wait();
}

/* Status, Content-Type and Retry-After: 0/NULL before the head, then a 429's. */
static void test_getters_429(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, MARK, WAIT_GO,
        SEND("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n" "Retry-After: 7\r\nContent-Length: 53\r\n\r\n" J429),
        END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { 0 };
    begin(&o);
    assert_int_equal(h1_status(o.call), 0);
    assert_null(h1_content_type(o.call));
    assert_null(h1_retry_after(o.call));
    RUN_UNTIL(atomic_load(&srv.marks) == 1); /* the request is in, no answer yet */
    assert_int_equal(h1_status(o.call), 0);
    assert_null(h1_content_type(o.call));
    assert_null(h1_retry_after(o.call));
    atomic_store(&srv.go, 1);
    RUN_UNTIL(over(&o));
    assert_int_equal(o.code, 0);
    assert_int_equal(o.status, 429);
    assert_string_equal(o.ctype, "application/json");
    assert_string_equal(o.retry, "7");
    json_t *j = unit_json(o.body, o.len);
    assert_string_equal(unit_str(json_object_get(j, "error"), "type"), "rate_limit");
    json_decref(j);
    server_wait();
}

/* ---- keep-alive ---------------------------------------------------------------------------- */

/* A Connection: close answer: its connection is closed, not reused. */
static void test_connection_close_not_reused(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        WAIT_EOF, ACCEPT, READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "ok");
    call_expect(&b, 0, "ok");
    server_wait();
    assert_int_equal(srv.n_conns, 2);
}

/* The server closes the idle connection: the next call connects anew. */
static void test_idle_closed_by_server(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), CLOSE, MARK, ACCEPT, READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "ok");
    RUN_UNTIL(atomic_load(&srv.marks) == 1);
    run_for(100); /* h1 sees the close */
    call_expect(&b, 0, "ok");
    server_wait();
    assert_int_equal(srv.n_conns, 2);
}

/* The server reads the request on the reused connection and closes it without an
 * answer: h1 sends the same request once more on a new connection. */
static void test_retry_on_reused(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), READ, CLOSE, ACCEPT, READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, 0, "ok");
    call_expect(&b, 0, "ok");
    server_wait();
    assert_int_equal(srv.n_conns, 2);
    assert_int_equal(srv.n_req, 3);
    assert_int_equal(srv.req_len[1], srv.req_len[2]);
    assert_memory_equal(srv.req[1], srv.req[2], srv.req_len[1]);
}

/* The same on a fresh connection: CURLE_GOT_NOTHING, no retry. */
static void test_fresh_closed_got_nothing(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, CLOSE, END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { 0 };
    call_expect(&o, CURLE_GOT_NOTHING, "");
    assert_true(o.err[0] != '\0');
    server_wait();
    server_stop();
    assert_int_equal(srv.extra, 0);
}

/* ---- failures ------------------------------------------------------------------------------ */

/* A port bound but not listening: refused. Callbacks never run inside h1_start. */
static void test_connect_refused(void **state)
{
    (void)state;
    int port, fd = listen_local(-1, &port);
    struct h1_origin *o2 = origin_at(port, "/x");
    struct owner o = { 0 };
    begin_with(&o, o2, NULL, req_body, strlen(req_body));
    RUN_UNTIL(over(&o));
    h1_origin_free(o2);
    close(fd);
    assert_int_equal(o.code, CURLE_COULDNT_CONNECT);
    assert_true(o.err[0] != '\0');
}

/* A listener whose backlog is full drops the SYN: the connect times out. */
static void test_connect_timeout(void **state)
{
    (void)state;
    int port, fd = listen_local(0, &port), fill[3];
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    for (size_t i = 0; i < N_ELEMS(fill); i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    struct h1_origin *o2 = origin_at(port, "/x");
    struct owner o = { 0 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    connect_timeout = 0.3;
    begin_with(&o, o2, NULL, req_body, strlen(req_body));
    connect_timeout = 2.0;
    RUN_UNTIL(over(&o));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    h1_origin_free(o2);
    for (size_t i = 0; i < N_ELEMS(fill); i++)
        close(fill[i]);
    close(fd);
    assert_int_equal(o.code, CURLE_OPERATION_TIMEDOUT);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s >= 0.25);
}

/* Closed mid-body: a Content-Length answer, then a chunked one. */
static void test_partial(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"), CLOSE, ACCEPT,
        READ, SEND(HEAD_SSE CH_E1 "5\r\nhel"), CLOSE, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, CURLE_PARTIAL_FILE, "abc");
    call_expect(&b, CURLE_PARTIAL_FILE, NULL);
    assert_memory_equal(b.body, E1, strlen(E1));
    server_wait();
}

/* Not HTTP: a line of text, then TLS bytes; h1 closes without waiting for the server. */
static void test_garbage(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("hello\r\n"), WAIT_EOF, ACCEPT, READ, SEND("\x16\x03\x01\x02"),
        WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    call_expect(&a, CURLE_WEIRD_SERVER_REPLY, "");
    call_expect(&b, CURLE_WEIRD_SERVER_REPLY, "");
    server_wait();
}

/* A status that is not three digits is not HTTP/1.x; and no body byte reaches the
 * owner before the status is known (h1_status 0 means "before its head"). Found by
 * fuzz_h1. */
static void test_bad_status(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND("HTTP/1.1 4\r\nContent-Length: 2\r\n\r\nok"), CLOSE,
        ACCEPT, READ, SEND("HTTP/1.1 199 Odd\r\nContent-Length: 2\r\n\r\nok"), CLOSE, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    begin(&a);
    RUN_UNTIL(over(&a));
    if (a.n_data > 0 && a.status == 0)
        fail_msg("\"HTTP/1.1 4\": body bytes with h1_status 0; code %d", a.code);
    assert_int_equal(a.code, CURLE_WEIRD_SERVER_REPLY);
    begin(&b);
    RUN_UNTIL(over(&b));
    if (b.n_data > 0 && b.status == 0)
        fail_msg("a 1xx answer with a body: body bytes with h1_status 0; code %d", b.code);
    server_wait();
}

/* H1_ABORT: on_done(CURLE_WRITE_ERROR), the connection closed. */
static void test_abort(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_GO, SEND(CH_E2), WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { .act = ACT_ABORT, .at = 1 };
    call_expect(&o, CURLE_WRITE_ERROR, E1);
    assert_int_equal(o.n_data, 2);
    server_wait();
}

/* ---- owner discipline ------------------------------------------------------------------- */

/* Cancelled from inside on_data, at the first and the second piece: no callback
 * after, the connection closed. */
static void test_cancel_inside(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_GO, SENDQ(CH_E2), WAIT_EOF, ACCEPT, READ,
        SEND(HEAD_SSE CH_E1), WAIT_GO, SENDQ(CH_E2), WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    for (int at = 0; at < 2; at++) {
        struct owner o = { .act = ACT_CANCEL, .at = at };
        begin(&o);
        RUN_UNTIL(o.call == NULL);
        assert_true(idle());
        run_for(50);
        assert_int_equal(o.n_done, 0);
        assert_int_equal(o.n_data, at + 1);
    }
    server_wait();
}

/* Released inside on_data; the answer ends within the grace: the next call reuses
 * the connection. */
static void test_release_then_end(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_GO, SEND(CH_E2 LAST), READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { .act = ACT_RELEASE, .at = 0, .grace_ms = 5000 }, b = { 0 };
    begin(&a);
    RUN_UNTIL(idle());
    assert_int_equal(a.n_done, 0);
    assert_int_equal(a.n_data, 1);
    call_expect(&b, 0, "ok");
    server_wait();
    assert_int_equal(srv.n_conns, 1);
}

/* Released while the provider stalls: closed when the grace is over. */
static void test_release_grace_over(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { .act = ACT_RELEASE, .at = 0, .grace_ms = 100 };
    begin(&a);
    RUN_UNTIL(idle());
    server_wait();
    assert_int_equal(a.n_done, 0);
}

/* H1_PAUSE twice on the same bytes (more arriving meanwhile), resumed from a timer:
 * every byte once, in order; then a whole answer in one write paused at once: on_done
 * waits for the resume. */
static void test_pause_resume(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_GO, SEND(CH_E2), WAIT_GO, SEND(CH_E3 LAST), READ,
        SEND(HEAD_SSE CH_E1 CH_E2 CH_E3 LAST), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { .act = ACT_PAUSE, .at = 1, .times = 2 };
    call_expect(&a, 0, E1 E2 E3);
    assert_true(a.n_data >= 4);
    struct owner b = { .act = ACT_PAUSE, .at = 0 };
    call_expect(&b, 0, E1 E2 E3);
    server_wait();
    assert_int_equal(srv.n_conns, 1);
}

/* A Content-Length answer paused on its last bytes, the server keeping the
 * connection open: after the resume the call ends at once, and the connection,
 * kept, serves the next call (its read event must be back). */
static void test_pause_content_length(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(OK_CL), READ, SEND(OK_CL), END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { .act = ACT_PAUSE, .at = 0 }, b = { 0 };
    call_expect(&a, 0, "ok");
    call_expect(&b, 0, "ok");
    server_wait();
    assert_int_equal(srv.n_conns, 1);
}

/* Paused, then cancelled from the loop: nothing follows, the connection closed. */
static void test_cancel_paused(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, READ, SEND(HEAD_SSE CH_E1), WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    struct owner o = { .act = ACT_PAUSE, .at = 0 };
    begin(&o);
    RUN_UNTIL(o.paused);
    h1_cancel(o.call);
    o.call = NULL;
    assert_true(idle());
    server_wait();
    run_for(60); /* past the resume timer */
    assert_int_equal(o.n_done, 0);
}

/* Two calls on two connections; whichever gets data first cancels the other. First
 * with the other idle, then with both answers arriving together. */
static void test_cancel_other(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, ACCEPT, USE(0), READ, USE(1), READ, USE(0), SEND(HEAD_SSE CH_E1), USE(1), WAIT_EOF,
        USE(0), SEND(CH_E2 LAST), /* round two */ ACCEPT, USE(2), READ, USE(0), READ,
        SEND(HEAD_SSE CH_E1), USE(2), SENDQ(HEAD_SSE CH_E1), SLEEP(30), SENDQ(CH_E2 LAST), USE(0),
        SENDQ(CH_E2 LAST), END
    };
    /* clang-format on */
    serve(script);
    for (int round = 0; round < 2; round++) {
        struct owner a = { .act = ACT_CANCEL_OTHER }, b = { .act = ACT_CANCEL_OTHER };
        a.other = &b;
        b.other = &a;
        begin(&a);
        begin(&b);
        assert_int_equal(h1_origin_active(origin), 2);
        RUN_UNTIL(idle());
        assert_int_equal(a.n_done + b.n_done, 1);
        struct owner *won = a.n_done ? &a : &b, *lost = a.n_done ? &b : &a;
        if (won->code != 0)
            fail_msg("round %d: code %d: %s", round, won->code, won->err);
        assert_int_equal(won->len, strlen(E1 E2));
        assert_int_equal(lost->n_data, 0);
        assert_null(lost->call);
    }
    server_wait();
}

/* Two idle connections stay open until h1_origin_free closes them; the count of
 * calls in progress on the way. */
static void test_origin_free_idle(void **state)
{
    (void)state;
    /* clang-format off */
    static const struct step script[] = {
        ACCEPT, ACCEPT, USE(0), READ, USE(1), READ, USE(0), SEND(OK_CL), USE(1), SEND(OK_CL), MARK,
        USE(0), WAIT_EOF, USE(1), WAIT_EOF, END
    };
    /* clang-format on */
    serve(script);
    struct owner a = { 0 }, b = { 0 };
    assert_int_equal(h1_origin_active(origin), 0);
    begin(&a);
    assert_int_equal(h1_origin_active(origin), 1);
    begin(&b);
    assert_int_equal(h1_origin_active(origin), 2);
    RUN_UNTIL(over(&a) && over(&b));
    assert_int_equal(a.code + b.code, 0);
    assert_int_equal(h1_origin_active(origin), 0);
    RUN_UNTIL(atomic_load(&srv.marks) == 1);
    run_for(100);
    assert_false(atomic_load(&srv.done)); /* still open: kept idle */
    h1_origin_free(origin);
    origin = NULL;
    server_wait();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_url_supported),
        T(test_request_bytes),
        T(test_request_large_and_empty_body),
        T(test_localhost),
        T(test_chunked_split),
        T(test_one_byte_per_write),
        T(test_content_length_keep_alive),
        T(test_close_delimited),
        T(test_continue),
        T(test_getters_429),
        T(test_connection_close_not_reused),
        T(test_idle_closed_by_server),
        T(test_retry_on_reused),
        T(test_fresh_closed_got_nothing),
        T(test_connect_refused),
        T(test_connect_timeout),
        T(test_partial),
        T(test_garbage),
        T(test_bad_status),
        T(test_abort),
        T(test_cancel_inside),
        T(test_release_then_end),
        T(test_release_grace_over),
        T(test_pause_resume),
        T(test_pause_content_length),
        T(test_cancel_paused),
        T(test_cancel_other),
        T(test_origin_free_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
