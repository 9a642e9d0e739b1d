/* fuzz_http_conn: the http module's connection layer (src/api/http*.c) in
 * process, with no socket and a fake clock: the input goes through
 * http_conn_feed (http_internal.h), responses into a sink that takes a few
 * bytes at a time when asked to, and the write and timer handlers run when the
 * harness says the socket is writable or the timer fired.
 *
 * Input: a flags byte, a size byte, then the client's bytes.
 *   flags & 3    pieces: whole, size+1 bytes, 1 to 16 bytes varying, or split at each "\n"
 *   flags & 4    the sink takes at most (size+1)*8 bytes per writable call
 *   flags & 8    the timer fires once the input is in (408, idle, stall)
 *   flags & 16   body limit 1024 bytes instead of HTTP_MAX_BODY
 *   flags & 32   also feed the input whole and compare: same output
 * Handlers: /s streams, /a answers later from the "loop" with a drained
 * callback, /e answers from on_headers when there is a body, /n is 204, /c
 * closes after; others echo the body.
 *
 * Checks: what reaches the application keeps http.h's promises and RFC 9112's
 * (a Host on every HTTP/1.1 request, a path or "*", no body over the limit);
 * the output is a sequence of well-framed responses (Content-Length, chunked,
 * or to the end for HTTP/1.0 streams), one per answer, 100 Continue only
 * before one, nothing after a "Connection: close"; the same bytes give the
 * same output whole or in pieces; nothing leaks. With a structure-aware
 * mutator (LLVMFuzzerCustomMutator) a quarter of the mutations build requests
 * from request lines, headers and chunked bodies. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "api/http.h"
#include "api/http_internal.h"
#include "fuzz.h"

#define OUT_CAP (1 << 20)
/* The harness's own loops and checks are no coverage for the fuzzer to chase. */
#define HARNESS    __attribute__((no_sanitize("coverage")))
#define MAX_ANSWER 256

static struct {
    struct http_server *srv;
    struct http_conn *pending; /* an /a request to answer from the "loop" */
    int pending_step;
    bool drained;
    size_t budget, max_write; /* the sink's bytes left in this writable call */
    size_t max_body;
    char *out;
    size_t out_len;
    bool heads[MAX_ANSWER]; /* per answer, in order: whether it has no body (HEAD) */
    size_t answers;
    int errors;
    unsigned lcg;
} F;

HARNESS static bool alive(void)
{
    return F.srv->n_conns > 0;
}

/* The harness's one connection (alive() must be true). */
static struct http_conn *the_conn(void)
{
    return list_entry(F.srv->conns.next, struct http_conn, link);
}

static void record_answer(const struct http_request *req)
{
    if (F.answers < MAX_ANSWER)
        F.heads[F.answers] = req->method_name != NULL && req->method == HTTP_HEAD;
    F.answers++;
}

static void check_request(const struct http_request *r)
{
    CHECK(r->method_name != NULL);
    CHECK(r->path != NULL && r->path_len < r->path_cap && r->path[r->path_len] == '\0');
    CHECK(r->path_len <= HTTP_MAX_TARGET);
    CHECK(r->path[0] == '/' || (strcmp(r->path, "*") == 0 && r->method == HTTP_OPTIONS));
    CHECK(memchr(r->path, '?', r->path_len) == NULL);
    CHECK(r->http_minor == 0 || r->http_minor == 1);
    CHECK(r->http_minor == 0 || (r->host.present && !r->host.invalid));
    CHECK(r->method != HTTP_CONNECT);
}

static enum http_verdict on_headers(struct http_conn *c, struct http_request *req, void *ctx)
{
    (void)ctx;
    check_request(req);
    CHECK(req->content_length <= F.max_body);
    if (req->has_body && strncmp(req->path, "/e", 2) == 0) {
        record_answer(req);
        http_respond(c, 403, NULL, 0, "{}", 2);
        return HTTP_ANSWERED;
    }
    return HTTP_READ_BODY;
}

static void gone(void *owner)
{
    (void)owner;
    F.pending = NULL;
}

static void drained(void *owner)
{
    (void)owner;
    F.drained = true;
}

static const struct http_owner_ops owner_ops = { gone, drained };

static void on_request(struct http_conn *c, struct http_request *req, void *ctx)
{
    (void)ctx;
    check_request(req);
    CHECK(F.errors == 0 && F.pending == NULL);
    CHECK(req->body_len <= F.max_body);
    CHECK(req->body == NULL || req->body[req->body_len] == '\0');
    CHECK(http_conn_request(c) == req);
    record_answer(req);
    const struct http_header h[] = { { "Content-Type", "text/plain" } };
    const char *body = req->body ? req->body : "ok";
    size_t len = req->body ? req->body_len : 2;
    if (strncmp(req->path, "/s", 2) == 0) {
        http_stream_begin(c, 200, h, 1);
        http_stream_write(c, "data: 1\n\n", 9);
        http_stream_write(c, body, len);
        http_stream_end(c);
    } else if (strncmp(req->path, "/a", 2) == 0) {
        F.pending = c;
        F.pending_step = 0;
        F.drained = false;
        http_conn_set_owner(c, &owner_ops, NULL);
    } else if (strncmp(req->path, "/n", 2) == 0) {
        http_respond(c, 204, h, 1, body, len);
    } else {
        if (strncmp(req->path, "/c", 2) == 0)
            http_conn_close_after(c);
        http_respond(c, 200, h, 1, body, len);
    }
}

static void on_protocol_error(struct http_conn *c, struct http_request *req, int status, void *ctx)
{
    (void)ctx;
    CHECK(req != NULL && F.pending == NULL);
    static const int known[] = { 400, 408, 413, 414, 417, 431, 501, 505 };
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok |= status == known[i];
    CHECK(ok);
    F.errors++;
    record_answer(req);
    http_respond(c, status, NULL, 0, "{}", 2);
}

/* The "provider" side of an /a answer: one step per loop turn. */
static void step_pending(void)
{
    struct http_conn *c = F.pending;
    static const char big[600];
    switch (F.pending_step++) {
    case 0:
        http_stream_begin(c, 200, NULL, 0);
        http_stream_write(c, big, sizeof big);
        http_notify_drained(c);
        return;
    case 1:
        if (!F.drained) {
            F.pending_step = 1;
            return;
        }
        http_stream_write(c, "tail", 4);
        http_stream_end(c); /* clears the owner */
        F.pending = NULL;
        return;
    }
}

HARNESS static ssize_t sink(struct http_conn *c)
{
    size_t n = evbuffer_get_length(c->out);
    if (n > F.budget)
        n = F.budget;
    if (n == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (F.out_len + n <= OUT_CAP)
        evbuffer_copyout(c->out, F.out + F.out_len, n);
    F.out_len += n;
    F.budget -= n;
    evbuffer_drain(c->out, n);
    return (ssize_t)n;
}

static int64_t fake_mono(void)
{
    static int64_t t;
    return t += 1000;
}

static time_t fake_wall(void)
{
    return 1700000000;
}

/* One turn of the loop that has no socket: what event_active scheduled, the
 * /a answer, the socket taking bytes. Returns false when nothing happened. */
HARNESS static bool turn(void)
{
    if (!alive())
        return false;
    struct http_conn *c = the_conn();
    if (F.pending != NULL && (F.pending_step == 0 || F.drained)) {
        step_pending();
        return true;
    }
    if (event_pending(&c->wev, EV_WRITE, NULL) || http_unsent(c) > 0) {
        event_del(&c->wev); /* as the loop would, before it runs the handler */
        F.budget = F.max_write;
        http_conn_writable(c);
        return true;
    }
    return false;
}

/* Runs turns until nothing is left to do; a connection that keeps asking for
 * turns without getting anywhere is a livelock. */
HARNESS static void settle(void)
{
    int i = 0;
    while (turn())
        CHECK(++i < 1000000);
}

HARNESS static size_t next_piece(int mode, size_t piece, const uint8_t *d, size_t left)
{
    switch (mode) {
    case 0: return left;
    case 1: return piece < left ? piece : left;
    case 2:
        F.lcg = F.lcg * 1103515245u + 12345u; /* from the size byte: the same every run */
        piece = 1 + (F.lcg >> 16) % 16;
        return piece < left ? piece : left;
    default: {
        const uint8_t *nl = memchr(d, '\n', left);
        return nl ? (size_t)(nl - d) + 1 : left;
    }
    }
}

/* Feeds the bytes as the flags say; returns the output length. */
HARNESS static size_t run(const uint8_t *data, size_t size, int flags, size_t sz)
{
    static struct event_base *base; /* never looped: the harness is the loop */
    if (base == NULL)
        CHECK((base = event_base_new()) != NULL);
    const struct http_handlers h = { on_headers, on_request, on_protocol_error };
    F.max_body = (flags & 16) ? 1024 : HTTP_MAX_BODY;
    CHECK((F.srv = http_server_new(base, &h, NULL, 30, F.max_body)) != NULL);
    F.srv->mono_us = fake_mono;
    F.srv->wall_s = fake_wall;
    F.srv->sink = sink;
    F.max_write = (flags & 4) ? (sz + 1) * 8 : SIZE_MAX;
    F.pending = NULL;
    F.out_len = 0;
    F.answers = 0;
    F.errors = 0;
    F.lcg = (unsigned)sz;
    CHECK(http_conn_open(F.srv, -1) != NULL);
    for (size_t off = 0; off < size && alive();) {
        settle();
        if (!alive() || !the_conn()->reading_enabled)
            break; /* the rest stays in the client's socket buffer */
        size_t n = next_piece(flags & 3, sz + 1, data + off, size - off);
        http_conn_feed(the_conn(), (const char *)data + off, n);
        off += n;
    }
    settle();
    if ((flags & 8) && alive()) {
        http_conn_expire(the_conn());
        settle();
    }
    if (alive())
        http_conn_eof(the_conn());
    CHECK(F.pending == NULL);
    http_server_free(F.srv);
    F.srv = NULL;
    return F.out_len;
}

/* One response head at out[i..]: status, framing, and where the head ends. */
struct head {
    int status;
    size_t end;
    long long length; /* -1: none */
    bool chunked, close;
};

HARNESS static bool has_field(const char *h, size_t n, const char *line)
{
    size_t l = strlen(line);
    for (size_t i = 0; i + l <= n; i++)
        if ((i == 0 || h[i - 1] == '\n') && strncasecmp(h + i, line, l) == 0)
            return true;
    return false;
}

HARNESS static struct head read_head(const char *o, size_t len)
{
    struct head hd = { 0, 0, -1, false, false };
    CHECK(len >= 13 && memcmp(o, "HTTP/1.1 ", 9) == 0);
    hd.status = (o[9] - '0') * 100 + (o[10] - '0') * 10 + (o[11] - '0');
    const char *e = memmem(o, len, "\r\n\r\n", 4);
    CHECK(e != NULL);
    hd.end = (size_t)(e - o) + 4;
    const char *cl = memmem(o, hd.end, "\r\nContent-Length: ", 18);
    if (cl != NULL)
        hd.length = strtoll(cl + 18, NULL, 10);
    hd.chunked = has_field(o, hd.end, "Transfer-Encoding: chunked\r");
    hd.close = has_field(o, hd.end, "Connection: close\r");
    CHECK(!(hd.chunked && cl != NULL));
    return hd;
}

/* Skips a chunked body at o[0..len); returns its length. */
HARNESS static size_t skip_chunked(const char *o, size_t len)
{
    size_t i = 0;
    for (;;) {
        char *end;
        CHECK(i < len);
        unsigned long long n = strtoull(o + i, &end, 16);
        CHECK(end > o + i && (size_t)(end - o) + 2 <= len && memcmp(end, "\r\n", 2) == 0);
        i = (size_t)(end - o) + 2;
        if (n == 0) {
            CHECK(i + 2 <= len && memcmp(o + i, "\r\n", 2) == 0);
            return i + 2;
        }
        CHECK(n <= len - i && len - i - n >= 2 && memcmp(o + i + n, "\r\n", 2) == 0);
        i += n + 2;
    }
}

HARNESS static void check_output(const char *o, size_t len)
{
    size_t finals = 0;
    bool after_continue = false;
    for (size_t i = 0; i < len;) {
        struct head hd = read_head(o + i, len - i);
        i += hd.end;
        if (hd.status == 100) {
            CHECK(!after_continue && hd.length < 0);
            after_continue = true;
            continue;
        }
        after_continue = false;
        bool head = finals < MAX_ANSWER && F.heads[finals];
        finals++;
        if (hd.status == 204) {
            CHECK(hd.length < 0 && !hd.chunked);
        } else if (hd.chunked) {
            if (!head)
                i += skip_chunked(o + i, len - i);
        } else if (hd.length >= 0) {
            if (!head) {
                CHECK((size_t)hd.length <= len - i);
                i += (size_t)hd.length;
            }
        } else {
            CHECK(hd.close); /* an HTTP/1.0 stream: the body ends with the connection */
            i = len;
        }
        CHECK(!hd.close || i == len); /* nothing after "Connection: close" */
    }
    CHECK(finals == F.answers);
}

/* One input frees tens of kilobytes: a 16 MB quarantine still catches a use
 * after free within hundreds of inputs, and keeps memory hot (the default
 * 256 MB cost a third of the time in page faults). ASAN_OPTIONS overrides it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (F.out == NULL)
        CHECK((F.out = malloc(OUT_CAP)) != NULL);
    if (size < 2)
        return 0;
    int flags = data[0];
    size_t sz = data[1];
    data += 2, size -= 2;
    size_t n = run(data, size, flags, sz);
    static int dump = -1; /* FUZZ_HTTP_DUMP=1: print what the server wrote */
    if (dump < 0)
        dump = getenv("FUZZ_HTTP_DUMP") != NULL;
    if (dump)
        fprintf(stderr, "%.*s\n----\n", (int)(n < OUT_CAP ? n : OUT_CAP), F.out);
    if (n <= OUT_CAP)
        check_output(F.out, n);
    if ((flags & 32) && (flags & 3) != 0 && n <= OUT_CAP) {
        static char first[OUT_CAP];
        memcpy(first, F.out, n);
        size_t m = run(data, size, flags & ~3, sz);
        CHECK(m == n && memcmp(first, F.out, n) == 0);
    }
    return 0;
}

/* ---- structure-aware mutations ------------------------------------------------------ */

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static unsigned rnd(unsigned *s, unsigned n)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) % n;
}

#define PICK(s, a) (a)[rnd(s, sizeof(a) / sizeof((a)[0]))]

struct gen {
    uint8_t *p;
    size_t len, cap;
};

HARNESS static void put(struct gen *g, const char *s, size_t n)
{
    if (g->len + n <= g->cap) {
        memcpy(g->p + g->len, s, n);
        g->len += n;
    }
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static const char *eol(unsigned *s)
{
    static const char *const e[] = { "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r" };
    return PICK(s, e);
}

static void gen_chunked(struct gen *g, unsigned *s)
{
    static const char *const ext[] = { "", "", ";a=b", " ;a", ";a=\"q\"", ";\n", "x" };
    static const unsigned sizes[] = { 1, 3, 16, 100, 1100 };
    for (unsigned n = rnd(s, 4); n > 0; n--) {
        unsigned size = PICK(s, sizes);
        char line[32];
        snprintf(line, sizeof line, "%x", size);
        puts_(g, line);
        puts_(g, PICK(s, ext));
        puts_(g, eol(s));
        for (unsigned i = 0; i < size; i++)
            put(g, "b", 1);
        puts_(g, rnd(s, 8) ? "\r\n" : "XY");
    }
    puts_(g, rnd(s, 6) ? "0" : "00");
    puts_(g, eol(s));
    if (rnd(s, 3) == 0) {
        puts_(g, rnd(s, 2) ? "Trailer-A: v" : "Bad Trailer: v");
        puts_(g, eol(s));
    }
    puts_(g, eol(s));
}

static void gen_request(struct gen *g, unsigned *s)
{
    static const char *const methods[] = { "GET", "POST",    "POST",   "HEAD", "OPTIONS",
                                           "PUT", "CONNECT", "DELETE", "get" };
    static const char *const targets[] = {
        "/",    "/s",     "/a",          "/e",         "/n",
        "/c",   "/x?q=1", "*",           "http://h/s", "HTTPS://h:8/a?x",
        "h:80", "/#f",    "http://u@h/", "ftp://h/",   "/ a"
    };
    static const char *const versions[] = { "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0",
                                            "HTTP/2.0", "HTTP/1.9", "HTTP/0.9", "HTTP/3.1" };
    static const char *const fields[] = {
        "Host: h",
        "Host: h:80",
        "Host: [::1]:8",
        "Host: a b",
        "Host:",
        "Host: h:x",
        "Content-Length: 5",
        "Content-Length: 0",
        "Content-Length: 5, 5",
        "Content-Length: +5",
        "Content-Length: 2000",
        "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked ",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: chunked;q=1",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding:\tCHUNKED",
        " folded",
        "\tfolded",
        "Expect: 100-continue",
        "Expect: 100-continue",
        "Expect: fly",
        "Connection: close",
        "Connection: keep-alive",
        "Connection: upgrade",
        "Upgrade: x",
        "X-Ctl: a\001b",
        "X-Sp : y",
        ": empty",
        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    if (rnd(s, 8) == 0)
        puts_(g, "\r\n");
    puts_(g, PICK(s, methods));
    puts_(g, " ");
    puts_(g, PICK(s, targets));
    puts_(g, " ");
    puts_(g, PICK(s, versions));
    puts_(g, eol(s));
    bool chunked = false;
    long length = 0;
    if (rnd(s, 6) != 0) {
        puts_(g, "Host: h");
        puts_(g, eol(s));
    }
    for (unsigned n = rnd(s, 5); n > 0; n--) {
        const char *f = PICK(s, fields);
        if (strncmp(f, "Transfer-Encoding: chunked", 26) == 0)
            chunked = true;
        if (strncmp(f, "Content-Length: ", 16) == 0)
            length = strtol(f + 16, NULL, 10);
        puts_(g, f);
        puts_(g, eol(s));
    }
    puts_(g, eol(s));
    if (chunked)
        gen_chunked(g, s);
    for (long i = 0; !chunked && i < length && i < 4096; i++)
        put(g, "x", 1);
}

/* Inputs stay under MAX_INPUT bytes (a custom mutator turns libFuzzer's
 * -len_control off): a few pipelined requests, fed a byte at a time at worst. */
#define MAX_INPUT 1536

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    unsigned s = seed;
    if (max_size > MAX_INPUT)
        max_size = MAX_INPUT;
    if (size > max_size)
        size = max_size;
    if (rnd(&s, 4) != 0 || max_size < 2)
        return LLVMFuzzerMutate(data, size, max_size);
    struct gen g = { data, 0, max_size };
    uint8_t flags[2] = { (uint8_t)rnd(&s, 256), (uint8_t)rnd(&s, 256) };
    put(&g, (const char *)flags, 2);
    for (unsigned n = 1 + rnd(&s, 3); n > 0; n--)
        gen_request(&g, &s);
    return g.len;
}
