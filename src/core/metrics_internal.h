/* metrics_internal: the registry's layout, shared by metrics.c (counting) and
 * metrics_render.c (the exposition text). Not part of the public face: include
 * core/metrics.h instead. */
#ifndef CHATD_METRICS_INTERNAL_H
#define CHATD_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/metrics.h"

static const int statuses[] = { 200, 204, 400, 401, 403, 404, 405, 408, 413,
                                414, 415, 429, 431, 500, 502, 503, 504 };
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* last: any other */

static const double ttft_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                      0.5,   1,      2.5,   5,    10,    30,   60 };
static const double dur_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                     5,    10,   30,  60,   120, 300, 600 };
static const double redis_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01,   0.025,   0.05,   0.1,   0.25 };
#define N_TTFT  (sizeof ttft_bounds / sizeof ttft_bounds[0])
#define N_DUR   (sizeof dur_bounds / sizeof dur_bounds[0])
#define N_REDIS (sizeof redis_bounds / sizeof redis_bounds[0])

/* Interned label values: index OTHER is every value past the table's end. */
#define OTHER  METRICS_MAX_NAMES
#define N_NAME (METRICS_MAX_NAMES + 1)

static const char *const attempt_outcomes[] = { "ok", "retryable", "rate_limited", "misconfigured",
                                                "client_error" };
#define N_ATTEMPT_OUTCOME (sizeof attempt_outcomes / sizeof attempt_outcomes[0] + 1)

/* The codes of chatd_upstream_errors_total, in the order rendered (the error
 * catalogue's names: models/error.c). */
static const char *const upstream_codes[] = { "upstream_unreachable",  "upstream_auth_failed",
                                              "upstream_rate_limited", "upstream_bad_request",
                                              "upstream_error",        "upstream_protocol_error",
                                              "upstream_interrupted",  "upstream_timeout" };
#define N_UPSTREAM_CODE (sizeof upstream_codes / sizeof upstream_codes[0])

typedef _Atomic uint64_t counter;

struct histogram_ttft {
    counter buckets[N_TTFT + 1]; /* per bucket, not cumulative; last is +Inf */
    counter sum_us;
};

struct histogram_dur {
    counter buckets[N_DUR + 1];
    counter sum_us;
};

struct histogram_redis {
    counter buckets[N_REDIS + 1];
    counter sum_us;
};

/* One label's values, in order of first use. */
struct names {
    _Atomic int n;                    /* published entries (release after filling) */
    char *raw[METRICS_MAX_NAMES];     /* as given, to compare */
    char *escaped[METRICS_MAX_NAMES]; /* as rendered between quotes */
};

struct metrics_shard {
    struct metrics *m; /* for its name tables */
    counter requests[ROUTE_COUNT][N_STATUS];
    counter outcomes[OUTCOME_COUNT];
    counter upstream_errors[N_UPSTREAM_CODE];
    counter prompt_tokens, completion_tokens, disconnects, accept_pauses;
    struct histogram_ttft ttft;
    struct histogram_dur dur;
    counter attempts[N_NAME][N_ATTEMPT_OUTCOME]; /* by provider */
    counter retries[N_NAME], fallbacks[N_NAME];  /* by provider */
    struct histogram_ttft provider_ttft[N_NAME]; /* by provider */
    counter limit_refused[N_NAME];               /* by reason */
    struct histogram_redis redis_rtt;
    counter redis_errors, redis_unavailable;
} __attribute__((aligned(64)));

struct metrics {
    int n;
    struct metrics_shard *shards;
    _Atomic int64_t active_streams;
    pthread_mutex_t names_mu; /* taken only to add a name */
    struct names providers, reasons, keys;
    _Atomic int breaker_state[N_NAME];   /* by provider */
    _Atomic int64_t key_streams[N_NAME]; /* by key */
    void (*on_render)(void *ctx, struct metrics *m);
    void *on_render_ctx;
};

static inline void add(counter *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
