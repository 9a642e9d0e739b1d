/*
 * loadgen — shared declarations of the load tool's parts:
 *   lg_json.c     strict JSON validator that captures a few fields by path
 *   lg_stream.c   one HTTP response -> SSE events -> chatd/openai verdict
 *   lg_hist.c     log-linear latency histogram (bounded memory, ~0.8% error)
 *   lg_conn.c     connections and the three load shapes on libevent
 *   lg_selftest.c canned byte streams split at every position
 *   loadgen.c     options, report, main
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <http_parser.h>

/* ---------- lg_json.c ---------- */

enum jtype { J_NONE, J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

/* A field to capture: path is dot-separated keys and array indexes, e.g.
 * "sequence" or "choices.0.delta.content". The scan fills t/p/n with the
 * value's type and raw text (strings without their quotes, still escaped). */
struct jfield {
    const char *path;
    enum jtype t;
    const char *p;
    size_t n;
};

/* Validates the whole text as one JSON value (RFC 8259, UTF-8 checked) and
 * fills the fields. Returns the root's type, or J_NONE when invalid. */
enum jtype json_scan(const char *s, size_t n, struct jfield *f, size_t nf);
/* The captured value as a non-negative integer, or -1 when it is not one. */
long long jfield_uint(const struct jfield *f);
bool jfield_is(const struct jfield *f, const char *str);

/* ---------- lg_stream.c ---------- */

enum lg_mode { MODE_CHATD, MODE_OPENAI };

enum verdict {
    V_PENDING, /* response not finished yet */
    V_OK,
    V_STATUS,     /* HTTP status other than 200 */
    V_RESET,      /* connection ended before the response did */
    V_TIMEOUT,    /* --timeout passed */
    V_CONNECT,    /* could not connect (or no fd / no local port) */
    V_UPSTREAM,   /* well-formed stream that reports a failure (final status != completed) */
    V_INVALID,    /* protocol violation: bad JSON, sequence, data after the end ... */
    V_INCOMPLETE, /* response ended cleanly without the final event / [DONE] */
    V__COUNT
};

struct stream {
    enum lg_mode mode;
    http_parser hp;
    bool done; /* the HTTP response is complete */
    bool keep_alive;
    enum verdict v;
    char why[120]; /* first reason for a non-OK verdict */
    /* response headers we check */
    char hname[16];
    uint8_t hname_len;
    bool in_value;
    char ctype[48], hcid[48];
    uint8_t ctype_len, hcid_len;
    /* SSE parsing state */
    char *line, *ev; /* partial line; data of the current event */
    size_t line_len, line_cap, ev_len, ev_cap;
    bool skip_lf, ev_has_data, ev_multi;
    /* validation state */
    long long next_seq;
    bool final_seen, done_seen;
    char cid[48];
    uint8_t cid_len;
    uint32_t events, content_events, comments;
    uint64_t t_first; /* CLOCK_MONOTONIC ns of the first event; 0 = none yet */
    uint64_t bytes;
};

void stream_global_init(void);
void stream_init(struct stream *s, enum lg_mode mode);
void stream_reset(struct stream *s); /* before each request on a connection */
void stream_free(struct stream *s);
/* Feeds received bytes; bytes past the end of the response make it invalid. */
void stream_input(struct stream *s, const char *buf, size_t len);
/* The connection closed: ends a close-delimited body or marks a reset. */
void stream_eof(struct stream *s);
void stream_fail(struct stream *s, enum verdict v, const char *why);
const char *verdict_name(enum verdict v);
uint64_t now_ns(void);

/* ---------- lg_hist.c ---------- */

struct hist {
    uint64_t count, max;
    uint64_t *b;
};

void hist_init(struct hist *h);
void hist_free(struct hist *h);
void hist_add(struct hist *h, uint64_t us);
uint64_t hist_pct(const struct hist *h, double pct); /* microseconds */

/* ---------- run state (lg_conn.c, loadgen.c) ---------- */

enum shape { SHAPE_CLOSED, SHAPE_OPEN, SHAPE_HOLD };

struct lg_opts {
    enum lg_mode mode;
    enum shape shape;
    char host[256], path[1024];
    int port;
    const char *url, *body;
    char *headers; /* extra "K: V\r\n" lines */
    int concurrency;
    double duration_s;
    long long requests; /* closed loop: stop after this many (0 = use duration) */
    double rate;
    int streams;      /* --streams N: all at once, then wait */
    double timeout_s; /* per stream */
    int max_conns;
    bool json, quiet;
};

struct lg_stats {
    uint64_t started, by_verdict[V__COUNT];
    uint64_t bytes, events, content_events, conns_opened;
    uint64_t emfile, addrnotavail, queued, dropped, stray;
    struct hist ttfe, total; /* microseconds */
    char first_failure[200];
};

struct lg {
    struct lg_opts o;
    struct lg_stats st;
    struct event_base *base;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *req;
    size_t req_len;
    uint64_t t_start, t_end;
    bool stopping;
    long long inflight, launched, pending;
};

extern struct lg G;

int run_load(void);     /* lg_conn.c: 0, or -1 on a setup error */
int run_selftest(void); /* lg_selftest.c: number of failures */

#endif
