/* metrics_render: the Prometheus text exposition (format 0.0.4) of the registry. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics_internal.h"

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

/* The samples of one histogram series whose buckets (n + 1, then the sum in us) are at
 * offset in every shard; labels is "" or e.g. provider="x" (escaped). */
static void histogram_samples(struct text *t, struct metrics *m, const char *name,
                              const char *labels, const double *bounds, size_t n, size_t offset)
{
    const char *sep = *labels ? "," : "";
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= n; b++) {
        for (int i = 0; i < m->n; i++)
            cumulative += get((counter *)((char *)&m->shards[i] + offset) + b);
        if (b < n)
            put(t, "%s_bucket{%s%sle=\"%g\"} %lu\n", name, labels, sep, bounds[b],
                (unsigned long)cumulative);
        else
            put(t, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", name, labels, sep,
                (unsigned long)cumulative);
    }
    uint64_t sum_us = 0;
    for (int i = 0; i < m->n; i++)
        sum_us += get((counter *)((char *)&m->shards[i] + offset) + n + 1);
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    put(t, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %lu\n", name, open, labels, close,
        (double)sum_us / 1e6, name, open, labels, close, (unsigned long)cumulative);
}

static void render_histogram(struct text *t, struct metrics *m, const char *name, const char *help,
                             const double *bounds, size_t n, size_t offset)
{
    header(t, name, "histogram", help);
    histogram_samples(t, m, name, "", bounds, n, offset);
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
    for (size_t e = 0; e < N_UPSTREAM_CODE; e++)
        put(t, "chatd_upstream_errors_total{code=\"%s\"} %lu\n", upstream_codes[e],
            (unsigned long)SUM(m, upstream_errors[e]));
    header(t, "chatd_client_disconnects_total", "counter",
           "Clients that went away before their stream ended.");
    put(t, "chatd_client_disconnects_total %lu\n", (unsigned long)SUM(m, disconnects));
    header(t, "chatd_accept_pauses_total", "counter",
           "Times accepting paused because file descriptors ran out.");
    put(t, "chatd_accept_pauses_total %lu\n", (unsigned long)SUM(m, accept_pauses));
}

static const char *label(struct names *t, int i)
{
    return i == OTHER ? "other" : t->escaped[i];
}

static int names_count(struct names *t)
{
    return atomic_load_explicit(&t->n, memory_order_acquire);
}

/* Sum over the shards of counter i of the array at offset in a shard. */
static uint64_t sum_at(struct metrics *m, size_t offset, size_t i)
{
    uint64_t v = 0;
    for (int s = 0; s < m->n; s++)
        v += get((counter *)((char *)&m->shards[s] + offset) + i);
    return v;
}

/* A counter family with one interned label; "other" only when it counted something. */
static void labelled_counter(struct text *t, struct metrics *m, const char *name, const char *help,
                             const char *key, struct names *names, size_t offset)
{
    header(t, name, "counter", help);
    int n = names_count(names);
    for (int k = 0; k <= n; k++) {
        int i = k < n ? k : OTHER;
        uint64_t v = sum_at(m, offset, (size_t)i);
        if (i != OTHER || v != 0)
            put(t, "%s{%s=\"%s\"} %lu\n", name, key, label(names, i), (unsigned long)v);
    }
}

static void render_attempts(struct text *t, struct metrics *m)
{
    const char *name = "chatd_upstream_attempts_total";
    header(t, name, "counter", "Attempts to reach a provider, by provider and outcome.");
    int n = names_count(&m->providers);
    for (int k = 0; k <= n; k++) {
        int p = k < n ? k : OTHER;
        for (size_t o = 0; o < N_ATTEMPT_OUTCOME; o++) {
            uint64_t v = SUM(m, attempts[p][o]);
            if ((p == OTHER || o == N_ATTEMPT_OUTCOME - 1) && v == 0)
                continue;
            put(t, "%s{provider=\"%s\",outcome=\"%s\"} %lu\n", name, label(&m->providers, p),
                o < N_ATTEMPT_OUTCOME - 1 ? attempt_outcomes[o] : "other", (unsigned long)v);
        }
    }
}

/* The family name: chatd_provider_time_to_first_token_seconds. */
static void render_provider_ttft(struct text *t, struct metrics *m, const char *name)
{
    header(t, name, "histogram", "Seconds from a request to its first token, by provider.");
    int n = names_count(&m->providers);
    for (int k = 0; k <= n; k++) {
        int p = k < n ? k : OTHER;
        size_t offset = offsetof(struct metrics_shard, provider_ttft) +
                        (size_t)p * sizeof(struct histogram_ttft);
        uint64_t count = 0;
        for (size_t b = 0; b <= N_TTFT; b++)
            count += sum_at(m, offset, b);
        char *labels = NULL;
        if ((p == OTHER && count == 0) ||
            asprintf(&labels, "provider=\"%s\"", label(&m->providers, p)) < 0)
            continue;
        histogram_samples(t, m, name, labels, ttft_bounds, N_TTFT, offset);
        free(labels);
    }
}

static void render_routing(struct text *t, struct metrics *m)
{
    render_attempts(t, m);
    labelled_counter(t, m, "chatd_upstream_retries_total",
                     "Attempts that retried the same provider, by provider.", "provider",
                     &m->providers, offsetof(struct metrics_shard, retries));
    labelled_counter(t, m, "chatd_upstream_fallbacks_total",
                     "Requests that left a provider for the next target, by the one left.",
                     "provider", &m->providers, offsetof(struct metrics_shard, fallbacks));
    render_provider_ttft(t, m, "chatd_provider_time_to_first_token_seconds");
    header(t, "chatd_breaker_state", "gauge",
           "Circuit breaker per provider: 0 closed, 1 open, 2 half-open.");
    int n = names_count(&m->providers);
    for (int p = 0; p < n; p++)
        put(t, "chatd_breaker_state{provider=\"%s\"} %d\n", label(&m->providers, p),
            atomic_load_explicit(&m->breaker_state[p], memory_order_relaxed));
}

static void render_limits(struct text *t, struct metrics *m)
{
    labelled_counter(t, m, "chatd_limit_refused_total",
                     "Requests refused by a client-key limit, by reason.", "reason", &m->reasons,
                     offsetof(struct metrics_shard, limit_refused));
    header(t, "chatd_key_active_streams", "gauge", "Streams open right now, by client key name.");
    int n = names_count(&m->keys);
    for (int k = 0; k <= n; k++) {
        int i = k < n ? k : OTHER;
        int64_t v = atomic_load_explicit(&m->key_streams[i], memory_order_relaxed);
        if (i != OTHER || v != 0)
            put(t, "chatd_key_active_streams{key=\"%s\"} %ld\n", label(&m->keys, i), (long)v);
    }
    render_histogram(t, m, "chatd_redis_round_trip_seconds",
                     "Seconds of one Redis round trip (the limits of one request).", redis_bounds,
                     N_REDIS, offsetof(struct metrics_shard, redis_rtt));
    header(t, "chatd_redis_errors_total", "counter", "Redis commands that failed.");
    put(t, "chatd_redis_errors_total %lu\n", (unsigned long)SUM(m, redis_errors));
    header(t, "chatd_redis_unavailable_total", "counter",
           "Redis outages: times Redis became unreachable.");
    put(t, "chatd_redis_unavailable_total %lu\n", (unsigned long)SUM(m, redis_unavailable));
}

char *metrics_render(struct metrics *m, size_t *len)
{
    if (m->on_render != NULL)
        m->on_render(m->on_render_ctx, m);
    struct text t = { malloc(8192), 0, 8192, false };
    if (t.p == NULL)
        return NULL;
    render_requests(&t, m);
    render_streams(&t, m);
    render_counters(&t, m);
    render_routing(&t, m);
    render_limits(&t, m);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
