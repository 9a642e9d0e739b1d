/* metrics: counters and histograms for GET /metrics (Prometheus text format 0.0.4).
 *
 * Each worker writes only its own shard with relaxed atomic adds (one writer, so
 * no contention and no lock); a scrape sums the shards. The one shared counter is
 * the number of open streams, which is also the MAX_CONCURRENT_STREAMS gate. */
#ifndef CHATD_METRICS_H
#define CHATD_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric_route {
    ROUTE_CHAT,
    ROUTE_V1_CHAT,
    ROUTE_V1_MODELS,
    ROUTE_HEALTH,
    ROUTE_READY,
    ROUTE_METRICS,
    ROUTE_UI,
    ROUTE_OTHER,
    ROUTE_COUNT
};

/* How a /chat request ended (response_complete's outcome). */
enum outcome {
    OUTCOME_COMPLETED,
    OUTCOME_ERROR,
    OUTCOME_TIMEOUT,
    OUTCOME_CLIENT_DISCONNECTED,
    OUTCOME_COUNT
};

struct metrics;
struct metrics_shard;

/* Creates the registry with one shard per worker. NULL when out of memory. */
struct metrics *metrics_new(int n_shards);

/* Frees the registry and its shards. */
void metrics_free(struct metrics *m);

/* The shard of worker i (0-based), owned by the registry. */
struct metrics_shard *metrics_shard(struct metrics *m, int i);

/* "completed", "error", "timeout" or "client_disconnected". */
const char *metrics_outcome_name(enum outcome o);

/* One HTTP response was sent. */
void metrics_request(struct metrics_shard *s, enum metric_route route, int status);

/* A /chat stream ended after duration_s seconds. */
void metrics_stream_done(struct metrics_shard *s, enum outcome o, double duration_s);

/* The first token of a stream arrived seconds after the request. */
void metrics_first_token(struct metrics_shard *s, double seconds);

/* Token usage the provider reported for one stream. */
void metrics_tokens(struct metrics_shard *s, int64_t prompt, int64_t completion);

/* A provider failure ended a stream with this error code (its catalogue name, e.g.
 * "upstream_timeout"); codes that are not a provider's failure are not counted. */
void metrics_upstream_error(struct metrics_shard *s, const char *code);

/* A client went away before its stream ended. */
void metrics_client_disconnect(struct metrics_shard *s);

/* Accepting was paused because the process ran out of file descriptors. */
void metrics_accept_paused(struct metrics_shard *s);

/* Takes one slot of the open-stream gate; -1 when limit streams are open. */
int metrics_stream_acquire(struct metrics *m, int limit);

/* Gives a slot back. */
void metrics_stream_release(struct metrics *m);

/* Open streams right now. */
int64_t metrics_active_streams(struct metrics *m);

/* ---- labelled series (issues 13 and 14) ----------------------------------------------
 * Label values known only at run time (provider, key and reason names) are interned
 * into a fixed table of METRICS_MAX_NAMES per family (a mutex once per new name, then
 * lock-free lookups); beyond that they are counted under the value "other". Counting
 * stays per shard and lock-free; the two gauges are shared atomics. NULL names count
 * as "other". Values are escaped as the text format requires when rendered. */
#define METRICS_MAX_NAMES 64

/* chatd_upstream_attempts_total{provider,outcome}; outcome is one of "ok", "retryable",
 * "rate_limited", "misconfigured", "client_error" (router_outcome_name), else "other". */
void metrics_upstream_attempt(struct metrics_shard *s, const char *provider, const char *outcome);

/* chatd_upstream_retries_total{provider}: one more attempt on the same target. */
void metrics_retry(struct metrics_shard *s, const char *provider);

/* chatd_upstream_fallbacks_total{provider}: a request left this provider's target for the
 * next one. */
void metrics_fallback(struct metrics_shard *s, const char *provider);

/* chatd_provider_time_to_first_token_seconds{provider}: the first token of a stream this
 * provider served arrived seconds after the request. */
void metrics_provider_first_token(struct metrics_shard *s, const char *provider, double seconds);

/* chatd_breaker_state{provider}: 0 closed, 1 open, 2 half-open (a gauge, set by anyone). */
void metrics_breaker_state(struct metrics *m, const char *provider, int state);

/* chatd_limit_refused_total{reason}: a request refused by a client-key limit; reason is
 * "requests", "tokens", "concurrency" or "unavailable" (Redis down, fail-closed). */
void metrics_limit_refused(struct metrics_shard *s, const char *reason);

/* chatd_redis_round_trip_seconds: one Redis round trip took seconds. */
void metrics_redis_rtt(struct metrics_shard *s, double seconds);

/* chatd_redis_errors_total: a Redis command failed (error reply, timeout, lost link). */
void metrics_redis_error(struct metrics_shard *s);

/* chatd_redis_unavailable_total: an outage began (counted once per outage). */
void metrics_redis_unavailable(struct metrics_shard *s);

/* chatd_key_active_streams{key}: adds delta (+1 at start, -1 at end) to a key's gauge. */
void metrics_key_streams(struct metrics *m, const char *key_name, int delta);

/* Calls fn(ctx, m) at the start of every metrics_render, so that its owner can refresh
 * gauges that change with time alone (e.g. a breaker that half-opens). NULL: none.
 * Set it before the workers start; fn runs on the thread that renders. */
void metrics_on_render(struct metrics *m, void (*fn)(void *ctx, struct metrics *m), void *ctx);

/* Renders the exposition text into a malloc'd buffer the caller frees. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
