/* stream: the one state machine behind POST /chat and POST /v1/chat/completions.
 *
 * Each request becomes one struct chat_stream that owns all it holds — the
 * provider attempt, the SSE parser, its timers, the request — and moves
 *
 *     ADMITTING ──▶ WAITING ──first token──▶ STREAMING ──▶ FINISHED
 *                    │  ▲                                    ▲
 *                    ▼  │ (retry / next target)               │
 *                  BACKOFF ───────────────────────────────────┘
 *
 * (ADMITTING — the client key's limits, at once in-process or by a Redis round
 * trip — WAITING and BACKOFF may also go straight to FINISHED). Five events drive it:
 * upstream bytes, upstream end, client gone, client drained and the timers.
 * Every way out goes through one finish function that runs once. Before the
 * first token a failed attempt may be retried or moved to the next target (the
 * router decides); after it, never. The two endpoints differ only in their
 * encoder: how the provider request is written and how events, the end and
 * errors reach the client. */
#ifndef CHATD_STREAM_H
#define CHATD_STREAM_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/http.h"
#include "api/middleware.h"
#include "core/buf.h"
#include "core/list.h"
#include "core/metrics.h"
#include "models/error.h"
#include "services/limits.h"
#include "services/router.h"
#include "services/sse.h"

struct worker;
struct chat_stream;
struct openai_chunk;
struct provider_call;
struct config;
struct model_conf;
struct key_conf;
struct provider_conf;

#define STREAM_INLINE_TARGETS 8 /* models with more targets allocate their breaker list */

struct stream_encoder {
    enum metric_route route;
    bool sse; /* the answer is an event stream (else one JSON body: /v1 without stream) */
    /* Appends the provider request for this target's model. 0 or -ENOMEM. */
    int (*request_body)(struct chat_stream *s, const char *model, struct buf *out);
    /* One event of a 2xx provider stream: appends what the client gets to out.
     * Returns 1 when the answer has begun with it (the first token), else 0.
     * Out of memory, the stream takes back what was appended (to out or held). */
    int (*event)(struct chat_stream *s, const struct sse_event *ev, const struct openai_chunk *c,
                 struct buf *out);
    /* The provider's answer completed: appends the end of the stream. */
    void (*completed)(struct chat_stream *s, struct buf *out);
    /* A failure after the headers went: appends the error event. */
    void (*error_event)(struct chat_stream *s, enum error_code code, const char *detail,
                        struct buf *out);
    /* A failure before anything went: answers it whole; returns the HTTP status. */
    int (*error_answer)(struct chat_stream *s, enum error_code code, const char *detail);
};

enum stream_state { ST_ADMITTING, ST_WAITING, ST_BACKOFF, ST_STREAMING, ST_FINISHED };

struct chat_stream {
    struct worker *w;
    struct list link; /* in the worker's open streams */
    const struct stream_encoder *enc;
    struct http_conn *conn;     /* NULL once the client is gone */
    struct provider_call *call; /* NULL between attempts and once the transfer ended */
    enum stream_state state;
    char cid[40];
    const char *cors_origin;
    /* the request, as its wire format read it */
    void *root;          /* the parsed body (json_t), owned */
    const char *model;   /* the requested model */
    const char *message; /* a text the provider must not quote back (error summaries) */
    size_t message_len;
    int max_tokens;                   /* /chat */
    const void *chat_history;         /* /chat: the "history" array inside root, or NULL */
    bool client_usage;                /* /v1: the client asked for the usage chunk */
    struct config *cfg;               /* the configuration this request started with (a ref) */
    const struct timeval *timeout_tv; /* its TIMEOUT_SECONDS, as a common timeout */
    const struct model_conf *mc;      /* the requested model's targets */
    const struct key_conf *key;       /* the caller's client key, NULL without client auth */
    /* the key's limits */
    struct limits_pending *admission; /* Redis's answer awaited (ST_ADMITTING) */
    struct limits_ticket *ticket;     /* the admitted stream's slot, given back at finish */
    struct limits_header rl[LIMITS_MAX_HEADERS]; /* x-ratelimit-* for every response */
    size_t n_rl;
    bool key_counted; /* counted in chatd_key_active_streams */
    /* the attempt */
    struct router router;
    struct breaker **brs; /* one per target of the model: brs_inline, or allocated */
    struct breaker *brs_inline[STREAM_INLINE_TARGETS];
    const struct provider_conf *pc; /* the current target's provider */
    const char *provider_name;
    const char *target_model;
    int attempt;
    long retry_after_ms; /* of the last failed attempt; -1 none */
    int64_t start_us, last_progress_us;
    struct event timer;    /* first-token deadline, then the idle timeout */
    struct event retry_ev; /* backoff before the next attempt */
    struct sse_parser sse;
    uint64_t sequence; /* of the next /chat event */
    bool headers_sent, paused, status_checked, done_marker;
    long http_status;
    struct buf body;         /* a non-2xx answer's body, or the whole JSON answer */
    struct buf held;         /* /v1: role-only events waiting for the first real one */
    enum error_code pending; /* an error found inside a curl callback */
    bool has_pending;
    char *pending_what; /* its explanation, or NULL (heap: errors are rare) */
    char finish_reason[32];
    bool has_usage;
    long long prompt_tokens, completion_tokens, total_tokens;
    size_t content_events;
};

/* What a wire format read from the request beyond root and model (pointers into root). */
struct stream_input {
    const char *message; /* a text the provider must not quote back (error summaries) */
    size_t message_len;
    int max_tokens;           /* /chat */
    const void *chat_history; /* /chat: the "history" array inside root, or NULL */
    bool client_usage;        /* /v1: the client asked for the usage chunk */
};

/* Starts a stream for a validated request: takes over root (a json_t), counts it
 * against MAX_CONCURRENT_STREAMS and sends the first attempt; on failure answers
 * with an error itself. in is copied. */
void stream_start(struct worker *w, struct http_conn *c, struct http_request *req,
                  const struct key_conf *key, const struct stream_encoder *enc, void *root,
                  const char *model, const struct stream_input *in);

/* True when key may use model; else answers 403 forbidden (param "model"). */
bool stream_key_allows(struct worker *w, struct http_conn *c, struct http_request *req,
                       enum metric_route route, const struct key_conf *key, const char *model);

/* Appends the headers every response of this stream carries (correlation id,
 * CORS, x-ratelimit-*) to h, which has room for STREAM_MAX_HEADERS; returns the count. */
size_t stream_headers(const struct chat_stream *s, struct http_header *h, size_t n);

#define STREAM_MAX_HEADERS (MW_MAX_HEADERS + LIMITS_MAX_HEADERS + 4)

/* Answers whole with a JSON body: Content-Type application/json, Cache-Control
 * no-store, Retry-After when retry_after is not NULL, and the stream's headers. */
void stream_respond_json(struct chat_stream *s, int status, const char *retry_after,
                         const char *body, size_t len);

/* Writes the events encoded into the worker's scratch buffer so far (the SSE
 * headers first when none went yet) and empties it; nothing when the client is gone. */
void stream_flush(struct chat_stream *s);

/* Writes the SSE response headers (200, text/event-stream) once. */
void stream_send_headers(struct chat_stream *s);

/* Milliseconds since the request arrived. */
int64_t stream_elapsed_ms(const struct chat_stream *s);

/* Ends every open stream of the worker now with a final event for code. */
void stream_abort_all(struct worker *w, enum error_code code);

#endif
