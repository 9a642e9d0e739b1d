/* Unit tests of src/services/provider.c, once with libcurl and once with h1
 * serving the provider: a real libcurl multi handle (or h1) on a real
 * event_base against a small HTTP/1.1 server run by this test (a thread per
 * connection, on a free 127.0.0.1 port) that streams a few chunks. The owner ends
 * the transfer from inside every callback — release, cancel, pause and resume from
 * inside on_data, release and then the response's end, cancel of one call from
 * inside another call's on_data — and the loop runs on until every transfer is
 * gone. What is touched after free shows under ASan (this build) and valgrind
 * (`make unit` runs a build without sanitizers under valgrind too). */
#include "unit.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "services/provider.h"

#define CHUNKS   5  /* events of a /stream answer */
#define CHUNK_MS 20 /* between them */

/* ---- the server ------------------------------------------------------------------------ */

static int listen_fd = -1;
static bool native; /* the config's UPSTREAM_NATIVE_HTTP for the provider under test */
static int port;

/* Reads one request (headers and Content-Length body) and its path; -1 at EOF. */
static int read_request(int fd, char *path, size_t cap)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
        if (len == sizeof buf)
            return -1;
        ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    size_t head = (size_t)(end + 4 - buf);
    const char *cl = memmem(buf, head, "Content-Length: ", 16);
    size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
    for (size_t got = len - head; got < body;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    const char *p = memchr(buf, ' ', head);
    const char *q = p ? memchr(p + 1, ' ', head - (size_t)(p + 1 - buf)) : NULL;
    if (q == NULL || (size_t)(q - p) > cap)
        return -1;
    snprintf(path, cap, "%.*s", (int)(q - p - 1), p + 1);
    return 0;
}

static int send_all(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_chunk(int fd, const char *data)
{
    char line[512];
    snprintf(line, sizeof line, "%zx\r\n%s\r\n", strlen(data), data);
    return send_all(fd, line);
}

/* /stream: CHUNKS events then [DONE]; /stall: one event, then nothing until closed. */
static int answer(int fd, const char *path)
{
    if (send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n") != 0)
        return -1;
    for (int i = 0; i < CHUNKS; i++) {
        char ev[128];
        snprintf(ev, sizeof ev, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i);
        if (send_chunk(fd, ev) != 0)
            return -1;
        if (strcmp(path, "/stall") == 0) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            poll(&p, 1, 10000); /* until chatd closes it */
            return -1;
        }
        usleep(CHUNK_MS * 1000);
    }
    if (send_chunk(fd, "data: [DONE]\n\n") != 0)
        return -1;
    return send_all(fd, "0\r\n\r\n");
}

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char path[64];
    while (read_request(fd, path, sizeof path) == 0 && answer(fd, path) == 0)
        ;
    close(fd);
    return NULL;
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was shut down */
        pthread_t t;
        if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}

static pthread_t server_thread;

static int server_start(void **state)
{
    (void)state;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 64) != 0 || getsockname(listen_fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    port = ntohs(a.sin_port);
    return pthread_create(&server_thread, NULL, serve, NULL);
}

static int server_stop(void **state)
{
    (void)state;
    shutdown(listen_fd, SHUT_RDWR);
    pthread_join(server_thread, NULL);
    close(listen_fd);
    return 0;
}

/* ---- the client side ------------------------------------------------------------------- */

struct owner;

/* What an owner does inside its on_data, at the given chunk. */
enum act {
    ACT_NONE,
    ACT_RELEASE,
    ACT_CANCEL,
    ACT_PAUSE,
    ACT_ABORT,
    ACT_CANCEL_OTHER,
    ACT_RESUME_OTHER
};

struct owner {
    struct provider_call *call; /* NULL once released, cancelled or done */
    enum act act;
    int at;              /* the on_data call (0-based) that acts */
    struct owner *other; /* of ACT_CANCEL_OTHER / ACT_RESUME_OTHER */
    int n_data, n_done;  /* callbacks seen */
    int done_code;
    long done_status;
    bool paused; /* returned PROVIDER_PAUSE, not resumed yet */
    size_t bytes;
};

static struct provider *prov;
static struct event_base *base;
static struct provider_conf target_stream, target_stall;

static enum provider_verdict on_data(void *arg, const char *data, size_t len)
{
    struct owner *o = arg;
    assert_non_null(o->call); /* never after release, cancel or done */
    assert_int_equal(o->n_done, 0);
    assert_true(len > 0 && data != NULL);
    int i = o->n_data++;
    o->bytes += len;
    if (i != o->at)
        return PROVIDER_GO_ON;
    struct provider_call *call = o->call;
    switch (o->act) {
    case ACT_NONE: break;
    case ACT_RELEASE:
        o->call = NULL;
        provider_release(call);
        break;
    case ACT_CANCEL:
        o->call = NULL;
        provider_cancel(call);
        break;
    case ACT_PAUSE: o->paused = true; return PROVIDER_PAUSE;
    case ACT_ABORT: return PROVIDER_ABORT;
    case ACT_CANCEL_OTHER:
        if (o->other->call != NULL) {
            provider_cancel(o->other->call);
            o->other->call = NULL;
        }
        break;
    case ACT_RESUME_OTHER:
        if (o->other->paused && o->other->call != NULL) {
            o->other->paused = false;
            provider_resume(o->other->call); /* deferred to the loop: we are inside curl */
        }
        break;
    }
    return PROVIDER_GO_ON;
}

static void on_done(void *arg, int code, const char *errbuf)
{
    struct owner *o = arg;
    assert_non_null(o->call);
    assert_non_null(errbuf);
    o->n_done++;
    o->done_code = code;
    o->done_status = provider_status(o->call); /* allowed during on_done */
    o->call = NULL;                            /* freed right after */
}

static const struct provider_callbacks cbs = { .on_data = on_data, .on_done = on_done };

static char body_json[] = "{\"model\":\"m\",\"stream\":true,\"messages\":[]}";

static void begin(struct owner *o, const struct provider_conf *t)
{
    char *body = strdup(body_json);
    assert_non_null(body);
    o->call = provider_start(prov, t, 5.0, body, strlen(body), &cbs, o);
    assert_non_null(o->call);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until every transfer is gone (released ones included). */
static void run_until_idle(void)
{
    bool expired = false;
    struct event *deadline = evtimer_new(base, on_deadline, &expired);
    struct timeval tv = { 10, 0 };
    evtimer_add(deadline, &tv);
    while (provider_active(prov) > 0 && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(deadline);
    assert_false(expired);
}

static int setup(void **state)
{
    (void)state;
    static const char *const proxies[] = { "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                           "ALL_PROXY" };
    for (size_t i = 0; i < N_ELEMS(proxies); i++)
        unsetenv(proxies[i]);
    static char url_stream[96], url_stall[96];
    snprintf(url_stream, sizeof url_stream, "http://127.0.0.1:%d/stream", port);
    snprintf(url_stall, sizeof url_stall, "http://127.0.0.1:%d/stall", port);
    target_stream = (struct provider_conf){ .name = "local", .chat_url = url_stream };
    target_stall = (struct provider_conf){ .name = "local", .chat_url = url_stall };
    struct config cfg = { .max_streams = 8, .workers = 1, .native_http = native };
    base = event_base_new();
    prov = base ? provider_new(base, &cfg) : NULL;
    return prov == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    provider_free(prov);
    event_base_free(base);
    return 0;
}

/* ---- the tests ----------------------------------------------------------------------- */

static void test_whole_stream(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_NONE };
    begin(&o, &target_stream);
    run_until_idle();
    assert_int_equal(o.n_done, 1);
    assert_int_equal(o.done_code, CURLE_OK);
    assert_int_equal(o.done_status, 200);
    assert_true(o.n_data >= 1);
}

/* Release and cancel from inside on_data, at the first chunk and at a later one. */
static void test_end_inside_on_data(void **state)
{
    (void)state;
    static const enum act acts[] = { ACT_RELEASE, ACT_CANCEL };
    for (size_t a = 0; a < N_ELEMS(acts); a++)
        for (int at = 0; at < 3; at++) {
            struct owner o = { .act = acts[a], .at = at };
            begin(&o, &target_stream);
            run_until_idle();
            assert_null(o.call);
            assert_int_equal(o.n_done, 0); /* no callback after release or cancel */
            assert_int_equal(o.n_data, at + 1);
        }
}

/* Released inside on_data; the response then ends by itself (the connection is kept). */
static void test_release_then_response_end(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_RELEASE, .at = 0 };
    begin(&o, &target_stream);
    run_until_idle();
    assert_int_equal(o.n_done, 0);
    struct owner next = { .act = ACT_NONE }; /* a next transfer works after it */
    begin(&next, &target_stream);
    run_until_idle();
    assert_int_equal(next.n_done, 1);
    assert_int_equal(next.done_code, CURLE_OK);
}

/* Released while the provider stalls: cancelled after the grace period. */
static void test_release_stalled(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_RELEASE, .at = 0 };
    begin(&o, &target_stall);
    run_until_idle();
    assert_int_equal(o.n_done, 0);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct owner *o = arg;
    if (o->paused && o->call != NULL) {
        o->paused = false;
        provider_resume(o->call); /* on_data (and even on_done) may run inside */
    }
}

/* Paused from inside on_data (PROVIDER_PAUSE), resumed later from the loop: the held
 * bytes come again and the answer ends normally. */
static void test_pause_resume(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_PAUSE, .at = 1 };
    begin(&o, &target_stream);
    struct event *ev = evtimer_new(base, on_resume, &o);
    while (!o.paused)
        event_base_loop(base, EVLOOP_ONCE);
    size_t before = o.bytes;
    struct timeval tv = { 0, 100 * 1000 };
    evtimer_add(ev, &tv);
    run_until_idle();
    event_free(ev);
    assert_int_equal(o.n_done, 1);
    assert_int_equal(o.done_code, CURLE_OK);
    assert_true(o.bytes > before);
}

/* Paused, then cancelled from the loop; and paused, then cancelled from inside another
 * call's on_data. */
static void test_cancel_paused(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_PAUSE, .at = 0 };
    begin(&o, &target_stream);
    while (!o.paused)
        event_base_loop(base, EVLOOP_ONCE);
    provider_cancel(o.call);
    o.call = NULL;
    run_until_idle();
    assert_int_equal(o.n_done, 0);

    struct owner a = { .act = ACT_PAUSE, .at = 0 };
    struct owner b = { .act = ACT_CANCEL_OTHER, .at = 2, .other = &a };
    begin(&a, &target_stream);
    begin(&b, &target_stream);
    run_until_idle();
    assert_int_equal(a.n_done, 0);
    assert_null(a.call);
    assert_int_equal(b.n_done, 1);
    assert_int_equal(b.done_code, CURLE_OK);
}

/* One call's on_data cancels another call that is streaming. */
static void test_cancel_other(void **state)
{
    (void)state;
    for (int at = 0; at < 3; at++) {
        struct owner a = { .act = ACT_NONE };
        struct owner b = { .act = ACT_CANCEL_OTHER, .at = at, .other = &a };
        begin(&a, &target_stream);
        begin(&b, &target_stream);
        run_until_idle();
        assert_int_equal(b.n_done, 1);
        assert_int_equal(b.done_code, CURLE_OK);
        assert_true(a.n_done <= 1); /* a may have ended before b's chunk came */
        assert_null(a.call);
    }
}

/* One call's on_data resumes another paused call (deferred to the loop). */
static void test_resume_from_other(void **state)
{
    (void)state;
    struct owner a = { .act = ACT_PAUSE, .at = 0 };
    struct owner b = { .act = ACT_RESUME_OTHER, .at = 1, .other = &a };
    begin(&a, &target_stream);
    while (!a.paused)
        event_base_loop(base, EVLOOP_ONCE);
    begin(&b, &target_stream);
    run_until_idle();
    assert_int_equal(a.n_done, 1);
    assert_int_equal(a.done_code, CURLE_OK);
    assert_int_equal(b.n_done, 1);
}

/* PROVIDER_ABORT ends the transfer with one on_done(CURLE_WRITE_ERROR). */
static void test_abort(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_ABORT, .at = 1 };
    begin(&o, &target_stream);
    run_until_idle();
    assert_int_equal(o.n_done, 1);
    assert_int_equal(o.done_code, CURLE_WRITE_ERROR);
    assert_int_equal(o.n_data, 2);
}

/* Cancelled before any byte came; and freed with transfers in progress: no callback. */
static void test_cancel_at_once_and_free(void **state)
{
    (void)state;
    struct owner o = { .act = ACT_NONE };
    begin(&o, &target_stream);
    provider_cancel(o.call);
    o.call = NULL;
    run_until_idle();
    assert_int_equal(o.n_done, 0);
    assert_int_equal(o.n_data, 0);

    struct owner a = { .act = ACT_NONE }, b = { .act = ACT_NONE };
    begin(&a, &target_stream);
    begin(&b, &target_stall);
    while (a.n_data == 0 || b.n_data == 0)
        event_base_loop(base, EVLOOP_ONCE);
    provider_free(prov); /* teardown frees the next one */
    struct config cfg = { .max_streams = 8, .workers = 1, .native_http = native };
    prov = provider_new(base, &cfg);
    assert_non_null(prov);
    assert_int_equal(a.n_done + b.n_done, 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_inside_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_then_response_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_stalled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_from_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_at_once_and_free, setup, teardown),
    };
    /* Every test twice: the provider served by libcurl, then by h1 (h1.c). */
    int rc = cmocka_run_group_tests_name("libcurl", tests, server_start, server_stop);
    native = true;
    rc += cmocka_run_group_tests_name("h1", tests, server_start, server_stop);
    curl_global_cleanup();
    return rc;
}
