/* router: the routing policy of one request over its model's targets (CONTRACT.md,
 * "Providers and routing"): what an attempt's result means, retries with full-jitter
 * backoff, Retry-After, fallback to the next target, and a circuit breaker per provider.
 *
 * Pure: no sockets, no event loop, no clock and no global randomness — the caller
 * passes the time (monotonic microseconds) and a seed, and runs the delays it is told
 * to run as timers on its own loop. The breakers are shared by every worker thread
 * and lock-free (C11 atomics); everything else belongs to one request. */
#ifndef CHATD_ROUTER_H
#define CHATD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* At most this many providers get a breaker; breakers_get answers NULL beyond. */
#define ROUTER_MAX_PROVIDERS 64
/* Backoff of retry n (0-based) is uniform in [0, min(CAP, BASE * 2^n)]. */
#define ROUTER_BACKOFF_BASE_US 100000
#define ROUTER_BACKOFF_CAP_US  10000000
/* Longest Retry-After honoured, in milliseconds (one day); larger values are capped. */
#define ROUTER_RETRY_AFTER_MAX_MS 86400000L

/* What one attempt's result means for routing (the contract's table). */
enum router_outcome {
    ROUTER_OK,            /* the first token (or first byte of a 2xx body) arrived */
    ROUTER_RETRYABLE,     /* connect/DNS/TLS failure, reset, 408, 5xx, a cut or an error
                             before the first token, 429 without Retry-After */
    ROUTER_RATE_LIMITED,  /* 429 with Retry-After */
    ROUTER_MISCONFIGURED, /* 401, 403 (and other 4xx, 1xx, 3xx): next target at once */
    ROUTER_CLIENT_ERROR,  /* 400, 413, 422: no retry, no fallback */
    ROUTER_MODEL_MISSING, /* 404: as MISCONFIGURED (and named so), but the provider is fine —
                             only this target's model is not there: no breaker verdict */
    ROUTER_OUTCOME_COUNT
};

/* The label of an outcome for logs and metrics: "ok", "retryable", "rate_limited",
 * "misconfigured" or "client_error". */
const char *router_outcome_name(enum router_outcome o);

/* Classifies an attempt by its HTTP status (0: no response, or a 2xx response that broke
 * before its first token) and its Retry-After in ms (-1: none; see below). */
enum router_outcome router_classify(long http_status, long retry_after_ms);

/* A Retry-After header value in milliseconds from now: delta-seconds or an HTTP-date
 * (IMF-fixdate, RFC 850 or asctime); -1 for NULL or garbage (negative numbers too);
 * past dates give 0; values over ROUTER_RETRY_AFTER_MAX_MS are capped to it. */
long router_parse_retry_after(const char *value, time_t now);

/* Full-jitter exponential backoff before retry number retry (0-based), in
 * microseconds: uniform in [0, min(ROUTER_BACKOFF_CAP_US, 100 ms * 2^retry)].
 * rng is the caller's splitmix64 state (any seed), advanced by the call. */
int64_t router_backoff_us(int retry, uint64_t *rng);

/* ---- circuit breakers -------------------------------------------------------------- */

/* One provider's breaker. Lives as long as its registry; shared by every thread. */
struct breaker;

/* The breakers of the process by provider name; outlives configuration reloads. */
struct breakers;

/* An empty registry. NULL when out of memory. */
struct breakers *breakers_new(void);

/* Frees the registry and every breaker in it (no thread may use them any more). */
void breakers_free(struct breakers *b);

/* The breaker of provider_name, registered on first use (a mutex only then; lookups of
 * known names are lock-free). The pointer stays valid until breakers_free. NULL beyond
 * ROUTER_MAX_PROVIDERS names or when out of memory: a NULL breaker always allows. */
struct breaker *breakers_get(struct breakers *b, const char *provider_name);

/* How many breakers are registered (lock-free; grows, never shrinks). */
size_t breakers_count(struct breakers *b);

/* Breaker i (0-based, < breakers_count), e.g. to export every state as a gauge. */
struct breaker *breakers_at(struct breakers *b, size_t i);

/* The name a breaker was registered under (owned by the registry). */
const char *breaker_name(const struct breaker *br);

/* May a request try this provider now? Closed: true. Open and cooling down: false.
 * After the cooldown (half-open): true for exactly one caller, the probe, until that
 * probe reports (or releases, or a whole cooldown passes without a word from it). */
bool breaker_allow(struct breaker *br, int64_t now_us);

/* Reports an attempt: success closes the breaker; threshold consecutive failures (or a
 * failure while half-open: the probe's) open it for cooldown_s seconds; failures while
 * it is open do not stretch the cooldown. threshold <= 0 never opens it. */
void breaker_report(struct breaker *br, bool success, int threshold, double cooldown_s,
                    int64_t now_us);

/* Frees the half-open probe slot without a verdict (the probe ended in neither a
 * success nor a failure, e.g. the client went away). */
void breaker_release_probe(struct breaker *br);

/* 0 closed, 1 open (cooling down), 2 half-open (a probe may run or runs). */
int breaker_state(const struct breaker *br, int64_t now_us);

/* ---- one request's walk over its model's targets ------------------------------------ */

/* Plain state embedded in the request (no allocation); only touched by its thread. */
struct router {
    struct breaker *const *breakers; /* one per target (may repeat, may be NULL) */
    size_t n_targets, target;        /* target: the one of the attempt just decided */
    int retries, retried;            /* retries allowed per target; used on this one */
    int attempts;                    /* attempts decided so far */
    int threshold;                   /* BREAKER_FAILURES */
    double cooldown_s;               /* BREAKER_COOLDOWN_SECONDS */
    int64_t deadline_us;             /* request start + TIMEOUT_SECONDS */
    uint64_t rng;                    /* backoff jitter */
    bool probe;                      /* this attempt holds its breaker's half-open probe */
    bool done;                       /* a verdict ended the walk */
};

/* What to do next: when go, attempt `target` after `delay_us`; fallback says the
 * target differs from the previous attempt's. When !go, the walk is over: the client
 * gets the last attempt's result (or its first token, after ROUTER_OK). */
struct router_step {
    bool go;
    bool fallback;
    size_t target;
    int64_t delay_us;
};

/* Starts a walk. target_breakers must outlive the router (e.g. in the configuration
 * snapshot the request holds); retries is UPSTREAM_RETRIES. */
void router_init(struct router *r, size_t n_targets, struct breaker *const *target_breakers,
                 int retries, int breaker_failures, double breaker_cooldown_s, int64_t deadline_us,
                 uint64_t seed);

/* The first attempt: the first target whose breaker allows it; when every target is
 * skipped, target 0 anyway. go is false only with no targets or past the deadline. */
struct router_step router_first(struct router *r, int64_t now_us);

/* Records outcome o of the attempt just made on its target's breaker (OK: success;
 * CLIENT_ERROR: neither; else failure) and decides the next step: OK and CLIENT_ERROR
 * end the walk; RETRYABLE retries the same target after router_backoff_us (at most
 * `retries` times), RATE_LIMITED waits retry_after_ms (one of the retries) — each only
 * while its breaker allows and the wait ends before the deadline, else the next target
 * at once; MISCONFIGURED moves to the next target at once. Targets whose breaker does
 * not allow them are skipped; with none left, or past the deadline, the walk ends. */
struct router_step router_next(struct router *r, enum router_outcome o, long retry_after_ms,
                               int64_t now_us);

/* Ends the walk without a verdict (client gone, shutdown): frees a probe it holds. */
void router_abandon(struct router *r);

/* 1-based number of the attempt just decided (for upstream_attempt log lines). */
int router_attempt(const struct router *r);

#endif
