/* metrics: counters and histograms for GET /metrics (Prometheus text format 0.0.4).
 *
 * Each worker writes only its own shard with relaxed atomic adds (one writer, so
 * no contention and no lock); a scrape sums the shards. The one shared counter is
 * the number of open streams, which is also the MAX_CONCURRENT_STREAMS gate. */
#ifndef CHATD_METRICS_H
#define CHATD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "models/error.h"

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

/* A provider failure ended a stream with this error code. */
void metrics_upstream_error(struct metrics_shard *s, enum error_code code);

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

/* Renders the exposition text into a malloc'd buffer the caller frees. */
char *metrics_render(struct metrics *m, size_t *len);

#endif
