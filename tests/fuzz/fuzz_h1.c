/* fuzz_h1: the answer side of src/services/h1.c, chatd's own HTTP/1.1 client.
 * The harness listens once on 127.0.0.1; for each input, h1 POSTs to it, the
 * harness accepts, reads the whole request, writes the input as the provider's
 * answer (whole, or in pieces with a loop turn after each) and closes. The
 * harness is the owner: it may pause at the k-th on_data (resumed by the harness
 * between loop turns), abort, cancel or release there.
 * Input: byte 0 the owner's action (low 7 bits % 5: none, pause, abort, cancel,
 * release) and, in its top bit, keep-alive mode; byte 1 the on_data call that acts
 * (low 3 bits) and the release's grace (bits 3..7, in ms); byte 2 the piece size
 * (0: whole); then the answer. In keep-alive mode (an origin with max_idle 1) the
 * harness does not close when the call ends by itself, and a probe call follows:
 * it must get its answer, on the kept connection or on a new one.
 * Checks: on_done exactly once unless cancelled or released, never a callback
 * after it, nor on_data while paused; on_data bytes are never empty; bytes refused
 * with H1_PAUSE come again first; H1_ABORT ends with CURLE_WRITE_ERROR; every code
 * is one of those h1.h names for a server that answered and closed, with an
 * explanation when not 0; a status (1 to 999) once body bytes came; no more body
 * bytes than answer bytes; the probe gets "ok"; and, without abort, cancel or
 * release, the same answer fed whole (and closed) and in pieces gives the same
 * code and the same body. Nothing is left in progress and nothing leaks. */
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "services/h1.h"

enum action { A_NONE, A_PAUSE, A_ABORT, A_CANCEL, A_RELEASE };

static struct event_base *base;
static struct h1_origin *origin, *keep_origin; /* max_idle 0 and 1 */
static int lfd;

struct run {
    struct h1_call *call;
    enum action act;
    int at;
    long grace_ms;
    int n_data, n_done, code;
    bool paused, aborted;
    char held[65536];
    size_t held_len;
    char body[65536];
    size_t len;
};

static enum h1_verdict on_data(void *arg, const char *data, size_t len)
{
    struct run *r = arg;
    CHECK(r->call != NULL && r->n_done == 0 && !r->paused);
    CHECK(data != NULL && len > 0);
    CHECK(h1_status(r->call) > 0 && h1_status(r->call) <= 999);
    size_t n = len < r->held_len ? len : r->held_len;
    CHECK(memcmp(data, r->held, n) == 0); /* what was refused comes first */
    memmove(r->held, r->held + n, r->held_len - n);
    r->held_len -= n;
    if (r->n_data++ == r->at) {
        struct h1_call *call = r->call;
        switch (r->act) {
        case A_NONE: break;
        case A_PAUSE:
            CHECK(len <= sizeof r->held);
            memcpy(r->held, data, len);
            r->held_len = len;
            r->paused = true;
            return H1_PAUSE;
        case A_ABORT: r->aborted = true; return H1_ABORT;
        case A_CANCEL:
            r->call = NULL;
            h1_cancel(call);
            return H1_GO_ON;
        case A_RELEASE:
            r->call = NULL;
            h1_release(call, r->grace_ms);
            return H1_GO_ON;
        }
    }
    CHECK(r->len + len <= sizeof r->body);
    memcpy(r->body + r->len, data, len);
    r->len += len;
    return H1_GO_ON;
}

static void on_done(void *arg, int code, const char *err)
{
    struct run *r = arg;
    CHECK(r->call != NULL && r->n_done == 0 && !r->paused && err != NULL);
    CHECK(code == 0 || err[0] != '\0');
    CHECK(code == 0 || code == CURLE_GOT_NOTHING || code == CURLE_PARTIAL_FILE ||
          code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_RECV_ERROR ||
          code == CURLE_WRITE_ERROR);
    CHECK(r->aborted == (code == CURLE_WRITE_ERROR));
    r->n_done++;
    r->code = code;
    r->call = NULL;
}

static const struct h1_callbacks cbs = { on_data, on_done };

/* One loop turn that does not wait; then resumes a paused owner, as a timer would. */
static void turn(struct run *r)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
    if (r->paused && r->call != NULL) {
        r->paused = false;
        h1_resume(r->call);
    }
}

/* Reads h1's whole request from fd (its body is "{}"), running the loop meanwhile. */
static void read_request(int fd)
{
    char buf[4096];
    size_t got = 0;
    while (got < 6 || memcmp(buf + got - 6, "\r\n\r\n{}", 6) != 0) {
        ssize_t n = recv(fd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EAGAIN || got == sizeof buf)
            break;
        else
            event_base_loop(base, EVLOOP_NONBLOCK); /* h1 connects, then writes */
    }
}

/* The connection h1 sends its next request on: the kept one (old, when it is not
 * -1) or a new one; old is closed when not used. */
static int next_conn(int old)
{
    for (;;) {
        struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = old, .events = POLLIN } };
        poll(p, old >= 0 ? 2 : 1, 0);
        char c;
        if (old >= 0 && p[1].revents != 0) {
            if (recv(old, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
                return old;
            close(old); /* h1 closed it */
            old = -1;
        } else if (p[0].revents != 0) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) {
                if (old >= 0)
                    close(old);
                return fd;
            }
        } else {
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
    }
}

static void run_until_over(struct h1_origin *org, struct run *r)
{
    while (h1_origin_active(org) > 0) {
        turn(r);
        if (h1_origin_active(org) > 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
}

/* After an answer on a kept connection: a next call must get its answer, on that
 * connection if h1 kept it, else on a new one. */
static void probe(int old)
{
    static struct run p;
    p = (struct run){ .act = A_NONE };
    char *body = strdup("{}");
    CHECK(body != NULL);
    p.call = h1_start(keep_origin, NULL, 5.0, body, 2, &cbs, &p);
    CHECK(p.call != NULL);
    int fd = next_conn(old);
    read_request(fd);
    static const char ok[] = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    CHECK(send(fd, ok, sizeof ok - 1, MSG_NOSIGNAL) == (ssize_t)sizeof ok - 1);
    close(fd);
    run_until_over(keep_origin, &p);
    CHECK(p.n_done == 1 && p.code == 0 && p.len == 2 && memcmp(p.body, "ok", 2) == 0);
}

/* One answer: in pieces, then closed; or, with keep, left open when the call ends
 * by itself, and a probe call follows. */
static void run_once(struct run *r, const uint8_t *data, size_t size, size_t piece, bool keep)
{
    struct h1_origin *org = keep ? keep_origin : origin;
    char *body = strdup("{}");
    CHECK(body != NULL);
    r->call = h1_start(org, NULL, 5.0, body, 2, &cbs, r);
    CHECK(r->call != NULL);
    int fd = next_conn(-1);
    read_request(fd);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (send(fd, data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            break; /* h1 closed: it has decided */
        turn(r);
    }
    for (int i = 0; keep && i < 4 && h1_origin_active(org) > 0; i++)
        turn(r);
    if (keep && h1_origin_active(org) == 0) {
        probe(fd);
    } else {
        close(fd);
        run_until_over(org, r);
    }
    if (r->act != A_CANCEL && r->act != A_RELEASE)
        CHECK(r->n_done == 1);
    else
        CHECK(r->n_done + (r->n_data > r->at ? 1 : 0) == 1);
    CHECK(r->len <= size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (base == NULL) {
        signal(SIGPIPE, SIG_IGN);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t alen = sizeof a;
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 16) == 0 &&
              getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", ntohs(a.sin_port));
        CHECK((base = event_base_new()) != NULL);
        CHECK((origin = h1_origin_new(base, url, 0, NULL)) != NULL);
        CHECK((keep_origin = h1_origin_new(base, url, 1, NULL)) != NULL);
    }
    if (size < 3 || size > 4096)
        return 0;
    static struct run pieces, whole;
    pieces = (struct run){ .act = (enum action)((data[0] & 0x7f) % 5),
                           .at = data[1] & 7,
                           .grace_ms = data[1] >> 3 };
    size_t piece = data[2] == 0 ? size - 3 : data[2];
    run_once(&pieces, data + 3, size - 3, piece > 0 ? piece : 1, data[0] & 0x80);
    if (pieces.act == A_NONE || pieces.act == A_PAUSE) {
        whole = (struct run){ .act = A_NONE };
        run_once(&whole, data + 3, size - 3, size - 3 > 0 ? size - 3 : 1, false);
        CHECK(whole.code == pieces.code);
        CHECK(whole.len == pieces.len && memcmp(whole.body, pieces.body, whole.len) == 0);
    }
    return 0;
}
