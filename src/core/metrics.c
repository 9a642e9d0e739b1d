/* metrics: see metrics.h. */
#include "core/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = { 200, 204, 400, 401, 403, 404, 405, 408, 413,
                                414, 415, 429, 431, 500, 502, 503, 504 };
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* last: any other */

static const double ttft_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,      2.5,   5,    10,    30,   60 };
static const double dur_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                     5,    10,   30,  60,   120, 300, 600 };
#define N_TTFT (sizeof ttft_bounds / sizeof ttft_bounds[0])
#define N_DUR  (sizeof dur_bounds / sizeof dur_bounds[0])

typedef _Atomic uint64_t counter;

struct histogram_ttft {
    counter buckets[N_TTFT + 1]; /* per bucket, not cumulative; last is +Inf */
    counter sum_us;
};

struct histogram_dur {
    counter buckets[N_DUR + 1];
    counter sum_us;
};

struct metrics_shard {
    counter requests[ROUTE_COUNT][N_STATUS];
    counter outcomes[OUTCOME_COUNT];
    counter upstream_errors[ERR_COUNT];
    counter prompt_tokens, completion_tokens, disconnects, accept_pauses;
    struct histogram_ttft ttft;
    struct histogram_dur dur;
} __attribute__((aligned(64)));

struct metrics {
    int n;
    struct metrics_shard *shards;
    _Atomic int64_t active_streams;
};

static void add(counter *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

struct metrics *metrics_new(int n_shards)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->shards = aligned_alloc(64, sizeof(struct metrics_shard) * (size_t)n_shards);
    if (m->shards == NULL) {
        free(m);
        return NULL;
    }
    memset(m->shards, 0, sizeof(struct metrics_shard) * (size_t)n_shards);
    m->n = n_shards;
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m != NULL) {
        free(m->shards);
        free(m);
    }
}

struct metrics_shard *metrics_shard(struct metrics *m, int i)
{
    return &m->shards[i];
}

const char *metrics_outcome_name(enum outcome o)
{
    static const char *const names[] = { "completed", "error", "timeout", "client_disconnected" };
    return names[o];
}

void metrics_request(struct metrics_shard *s, enum metric_route route, int status)
{
    size_t i = 0;
    while (i < N_STATUS - 1 && statuses[i] != status)
        i++;
    add(&s->requests[route][i], 1);
}

static size_t bucket_of(const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

static uint64_t to_us(double seconds)
{
    return seconds <= 0 ? 0 : (uint64_t)(seconds * 1e6 + 0.5);
}

void metrics_stream_done(struct metrics_shard *s, enum outcome o, double duration_s)
{
    add(&s->outcomes[o], 1);
    add(&s->dur.buckets[bucket_of(dur_bounds, N_DUR, duration_s)], 1);
    add(&s->dur.sum_us, to_us(duration_s));
}

void metrics_first_token(struct metrics_shard *s, double seconds)
{
    add(&s->ttft.buckets[bucket_of(ttft_bounds, N_TTFT, seconds)], 1);
    add(&s->ttft.sum_us, to_us(seconds));
}

void metrics_tokens(struct metrics_shard *s, int64_t prompt, int64_t completion)
{
    if (prompt > 0)
        add(&s->prompt_tokens, (uint64_t)prompt);
    if (completion > 0)
        add(&s->completion_tokens, (uint64_t)completion);
}

void metrics_upstream_error(struct metrics_shard *s, enum error_code code)
{
    add(&s->upstream_errors[code], 1);
}

void metrics_client_disconnect(struct metrics_shard *s)
{
    add(&s->disconnects, 1);
}

void metrics_accept_paused(struct metrics_shard *s)
{
    add(&s->accept_pauses, 1);
}

int metrics_stream_acquire(struct metrics *m, int limit)
{
    int64_t now = atomic_fetch_add_explicit(&m->active_streams, 1, memory_order_relaxed);
    if (now >= limit) {
        atomic_fetch_sub_explicit(&m->active_streams, 1, memory_order_relaxed);
        return -1;
    }
    return 0;
}

void metrics_stream_release(struct metrics *m)
{
    atomic_fetch_sub_explicit(&m->active_streams, 1, memory_order_relaxed);
}

int64_t metrics_active_streams(struct metrics *m)
{
    return atomic_load_explicit(&m->active_streams, memory_order_relaxed);
}

/* ---- rendering --------------------------------------------------------------------- */

struct text {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !t->oom; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *grown = realloc(t->p, cap);
        if (grown == NULL) {
            t->oom = true;
            return;
        }
        t->p = grown;
        t->cap = cap;
    }
}

static void header(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define SUM(m, expr)                                     \
    ({                                                   \
        uint64_t sum_ = 0;                               \
        for (int i_ = 0; i_ < (m)->n; i_++) {            \
            struct metrics_shard *s_ = &(m)->shards[i_]; \
            sum_ += get(&s_->expr);                      \
        }                                                \
        sum_;                                            \
    })

static void render_requests(struct text *t, struct metrics *m)
{
    static const char *const routes[] = {
        "/chat", "/v1/chat/completions", "/v1/models", "/health", "/ready", "/metrics", "/", "other"
    };
    header(t, "chatd_http_requests_total", "counter", "HTTP responses sent, by route and status.");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        for (size_t st = 0; st < N_STATUS; st++) {
            uint64_t v = SUM(m, requests[r][st]);
            if (v == 0 && !(r == ROUTE_CHAT && st == 0))
                continue;
            if (st < N_STATUS - 1)
                put(t, "chatd_http_requests_total{route=\"%s\",status=\"%d\"} %lu\n", routes[r],
                    statuses[st], (unsigned long)v);
            else
                put(t, "chatd_http_requests_total{route=\"%s\",status=\"other\"} %lu\n", routes[r],
                    (unsigned long)v);
        }
    }
}

static void render_histogram(struct text *t, struct metrics *m, const char *name, const char *help,
                             const double *bounds, size_t n, size_t offset)
{
    header(t, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= n; b++) {
        for (int i = 0; i < m->n; i++)
            cumulative += get((counter *)((char *)&m->shards[i] + offset) + b);
        if (b < n)
            put(t, "%s_bucket{le=\"%g\"} %lu\n", name, bounds[b], (unsigned long)cumulative);
        else
            put(t, "%s_bucket{le=\"+Inf\"} %lu\n", name, (unsigned long)cumulative);
    }
    uint64_t sum_us = 0;
    for (int i = 0; i < m->n; i++)
        sum_us += get((counter *)((char *)&m->shards[i] + offset) + n + 1);
    put(t, "%s_sum %.6f\n%s_count %lu\n", name, (double)sum_us / 1e6, name,
        (unsigned long)cumulative);
}

static void render_streams(struct text *t, struct metrics *m)
{
    header(t, "chatd_streams_total", "counter", "/chat requests ended, by outcome.");
    for (int o = 0; o < OUTCOME_COUNT; o++)
        put(t, "chatd_streams_total{outcome=\"%s\"} %lu\n", metrics_outcome_name(o),
            (unsigned long)SUM(m, outcomes[o]));
    header(t, "chatd_active_streams", "gauge", "/chat streams open right now.");
    put(t, "chatd_active_streams %ld\n", (long)metrics_active_streams(m));
    render_histogram(t, m, "chatd_time_to_first_token_seconds",
                     "Seconds from a /chat request to its first token.", ttft_bounds, N_TTFT,
                     offsetof(struct metrics_shard, ttft));
    render_histogram(t, m, "chatd_stream_duration_seconds",
                     "Seconds from a /chat request to the end of its stream.", dur_bounds, N_DUR,
                     offsetof(struct metrics_shard, dur));
}

static void render_counters(struct text *t, struct metrics *m)
{
    header(t, "chatd_tokens_total", "counter", "Tokens of finished streams, from provider usage.");
    put(t, "chatd_tokens_total{type=\"prompt\"} %lu\n", (unsigned long)SUM(m, prompt_tokens));
    put(t, "chatd_tokens_total{type=\"completion\"} %lu\n",
        (unsigned long)SUM(m, completion_tokens));
    header(t, "chatd_upstream_errors_total", "counter",
           "Streams ended by a provider failure, by error code.");
    for (int e = ERR_UPSTREAM_UNREACHABLE; e <= ERR_UPSTREAM_TIMEOUT; e++) {
        if (e == ERR_UPSTREAM_TLS || e == ERR_UPSTREAM_NOT_FOUND)
            continue; /* counted under the code they share */
        uint64_t v = SUM(m, upstream_errors[e]);
        if (e == ERR_UPSTREAM_UNREACHABLE)
            v += SUM(m, upstream_errors[ERR_UPSTREAM_TLS]);
        if (e == ERR_UPSTREAM_BAD_REQUEST)
            v += SUM(m, upstream_errors[ERR_UPSTREAM_NOT_FOUND]);
        put(t, "chatd_upstream_errors_total{code=\"%s\"} %lu\n", error_code_name(e),
            (unsigned long)v);
    }
    header(t, "chatd_client_disconnects_total", "counter",
           "Clients that went away before their stream ended.");
    put(t, "chatd_client_disconnects_total %lu\n", (unsigned long)SUM(m, disconnects));
    header(t, "chatd_accept_pauses_total", "counter",
           "Times accepting paused because file descriptors ran out.");
    put(t, "chatd_accept_pauses_total %lu\n", (unsigned long)SUM(m, accept_pauses));
}

char *metrics_render(struct metrics *m, size_t *len)
{
    struct text t = { malloc(8192), 0, 8192, false };
    if (t.p == NULL)
        return NULL;
    render_requests(&t, m);
    render_streams(&t, m);
    render_counters(&t, m);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
