/* metrics: see metrics.h; the layout is in metrics_internal.h, the text in
 * metrics_render.c. */
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics_internal.h"

/* value with backslash, " and newline escaped as the text format wants in a label value. */
static char *escape_label(const char *value)
{
    size_t n = 0;
    for (const char *p = value; *p; p++)
        n += *p == '\\' || *p == '"' || *p == '\n' ? 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"' || *p == '\n')
            *o++ = '\\';
        *o++ = *p == '\n' ? 'n' : *p;
    }
    *o = '\0';
    return out;
}

static int find_name(struct names *t, int from, int n, const char *value)
{
    for (int i = from; i < n; i++)
        if (strcmp(t->raw[i], value) == 0)
            return i;
    return -1;
}

/* The index of value in t, added on first use; OTHER when t is full (or no memory). */
static int intern(struct metrics *m, struct names *t, const char *value)
{
    if (value == NULL)
        return OTHER;
    int seen = atomic_load_explicit(&t->n, memory_order_acquire);
    int i = find_name(t, 0, seen, value);
    if (i >= 0)
        return i;
    pthread_mutex_lock(&m->names_mu);
    int n = atomic_load_explicit(&t->n, memory_order_relaxed);
    i = find_name(t, seen, n, value);
    if (i < 0 && n < METRICS_MAX_NAMES) {
        t->raw[n] = strdup(value);
        t->escaped[n] = escape_label(value);
        if (t->raw[n] != NULL && t->escaped[n] != NULL) {
            i = n;
            atomic_store_explicit(&t->n, n + 1, memory_order_release);
        } else {
            free(t->raw[n]);
            free(t->escaped[n]);
            t->raw[n] = t->escaped[n] = NULL;
        }
    }
    pthread_mutex_unlock(&m->names_mu);
    return i >= 0 ? i : OTHER;
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
    for (int i = 0; i < n_shards; i++)
        m->shards[i].m = m;
    m->n = n_shards;
    if (pthread_mutex_init(&m->names_mu, NULL) != 0) {
        free(m->shards);
        free(m);
        return NULL;
    }
    /* The known reasons render (as 0) before the first refusal, for alerts and rate(). */
    static const char *const reasons[] = { "requests", "tokens", "concurrency", "unavailable" };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        intern(m, &m->reasons, reasons[i]);
    return m;
}

static void names_free(struct names *t)
{
    for (int i = 0; i < atomic_load(&t->n); i++) {
        free(t->raw[i]);
        free(t->escaped[i]);
    }
}

void metrics_free(struct metrics *m)
{
    if (m != NULL) {
        names_free(&m->providers);
        names_free(&m->reasons);
        names_free(&m->keys);
        pthread_mutex_destroy(&m->names_mu);
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

void metrics_upstream_error(struct metrics_shard *s, const char *code)
{
    for (size_t i = 0; i < N_UPSTREAM_CODE; i++)
        if (strcmp(upstream_codes[i], code) == 0)
            add(&s->upstream_errors[i], 1);
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

/* ---- labelled series --------------------------------------------------------------- */

void metrics_upstream_attempt(struct metrics_shard *s, const char *provider, const char *outcome)
{
    size_t o = 0;
    while (o < N_ATTEMPT_OUTCOME - 1 && (outcome == NULL || strcmp(attempt_outcomes[o], outcome)))
        o++;
    add(&s->attempts[intern(s->m, &s->m->providers, provider)][o], 1);
}

void metrics_retry(struct metrics_shard *s, const char *provider)
{
    add(&s->retries[intern(s->m, &s->m->providers, provider)], 1);
}

void metrics_fallback(struct metrics_shard *s, const char *provider)
{
    add(&s->fallbacks[intern(s->m, &s->m->providers, provider)], 1);
}

void metrics_provider_first_token(struct metrics_shard *s, const char *provider, double seconds)
{
    struct histogram_ttft *h = &s->provider_ttft[intern(s->m, &s->m->providers, provider)];
    add(&h->buckets[bucket_of(ttft_bounds, N_TTFT, seconds)], 1);
    add(&h->sum_us, to_us(seconds));
}

void metrics_breaker_state(struct metrics *m, const char *provider, int state)
{
    int p = intern(m, &m->providers, provider);
    if (p != OTHER) /* one gauge cannot stand for many providers */
        atomic_store_explicit(&m->breaker_state[p], state, memory_order_relaxed);
}

void metrics_limit_refused(struct metrics_shard *s, const char *reason)
{
    add(&s->limit_refused[intern(s->m, &s->m->reasons, reason)], 1);
}

void metrics_redis_rtt(struct metrics_shard *s, double seconds)
{
    add(&s->redis_rtt.buckets[bucket_of(redis_bounds, N_REDIS, seconds)], 1);
    add(&s->redis_rtt.sum_us, to_us(seconds));
}

void metrics_redis_error(struct metrics_shard *s)
{
    add(&s->redis_errors, 1);
}

void metrics_redis_unavailable(struct metrics_shard *s)
{
    add(&s->redis_unavailable, 1);
}

void metrics_key_streams(struct metrics *m, const char *key_name, int delta)
{
    atomic_fetch_add_explicit(&m->key_streams[intern(m, &m->keys, key_name)], delta,
                              memory_order_relaxed);
}

void metrics_on_render(struct metrics *m, void (*fn)(void *ctx, struct metrics *m), void *ctx)
{
    m->on_render = fn;
    m->on_render_ctx = ctx;
}
