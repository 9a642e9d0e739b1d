/* limits: per-client-key limits (requests per minute, tokens per minute, concurrent
 * streams), kept in this process or, with REDIS_URL, in Redis shared by every replica.
 *
 * In-process: one registry per process (limits_shared), one entry per key name, made
 * once under a mutex and read lock-free; each entry's buckets are C11 atomics, so every
 * worker thread admits without a lock. Requests and tokens are token buckets kept as a
 * "theoretical arrival time" (GCRA): the bucket is full when tat <= now, and holds
 * capacity * (window - (tat - now)) / window.
 *
 * Redis: one connection per worker on the worker's own event_base (hiredis async and
 * its libevent adapter). An admit is ONE round trip: a Lua script (SCRIPT LOAD once per
 * connection, then EVALSHA; EVAL on NOSCRIPT) checks the token bucket, takes a request
 * token and a concurrency lease (a ZSET of lease ids scored by expiry, expired ones
 * dropped by the script). The worker renews its open leases every lease/3 and drops
 * each at finish, so a replica that dies stops holding slots within one lease (60 s).
 * Each call has a deadline (50 ms); past it, or while Redis is unreachable, the answer
 * is fail-open (OK without headers) or LIMITS_UNAVAILABLE. The connection is remade
 * with backoff; `redis_unavailable` and `redis_recovered` are logged once per outage.
 *
 * Threads: limits_shared is shared by all workers; a struct limits belongs to one
 * worker and is used only on its loop thread. */
#ifndef CHATD_LIMITS_H
#define CHATD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct limits;
struct limits_shared;
struct limits_ticket;
struct limits_pending;

/* The limits of one client key (from struct key_conf); 0 means "no limit". */
struct limits_spec {
    const char *name; /* the key's name: what limits, logs and Redis keys use */
    long requests_per_minute;
    long tokens_per_minute;
    long max_concurrent_streams;
};

enum limits_status {
    LIMITS_OK,          /* serve it */
    LIMITS_REFUSED,     /* 429 rate_limited with Retry-After: retry_after_s */
    LIMITS_UNAVAILABLE, /* Redis unreachable and RATE_LIMIT_FAIL_OPEN=false: 503 */
};

/* The answer to one admit. Header numbers are set when has_requests/has_tokens. */
struct limits_verdict {
    enum limits_status status;
    const char *reason; /* REFUSED: "requests", "tokens" or "concurrency"; else NULL */
    long retry_after_s; /* REFUSED: whole seconds, >= 1 */
    bool has_requests;  /* the key has a request limit: x-ratelimit-*-requests */
    bool has_tokens;    /* the key has a token limit: x-ratelimit-*-tokens */
    long limit_requests, remaining_requests;
    int64_t reset_requests_us; /* time until the request bucket is full */
    long limit_tokens, remaining_tokens;
    int64_t reset_tokens_us;
};

/* One response header; value is NUL-terminated. */
struct limits_header {
    const char *name;
    char value[32];
};

#define LIMITS_MAX_HEADERS 6

/* A parsed REDIS_URL. Fixed buffers: copy it freely. */
struct redis_url {
    char host[256]; /* empty for a unix socket */
    int port;       /* 6379 when absent */
    char path[108]; /* unix socket path; empty for TCP */
    char user[128]; /* empty: AUTH <password> only */
    char password[256];
    int db; /* SELECT db when > 0 */
};

/* Called once with the answer of an admit that returned 0, on the worker's loop, never
 * inside limits_admit. ticket is non-NULL only for LIMITS_OK of a key that needs
 * limits_finish (token or stream limit). The verdict is valid during the call. */
typedef void (*limits_cb)(void *arg, const struct limits_verdict *v, struct limits_ticket *ticket);

/* Metrics hooks (all optional); arg is the worker's metrics shard. */
struct limits_hooks {
    void (*refused)(void *arg, const char *reason);
    void (*redis_rtt)(void *arg, double seconds);
    void (*redis_error)(void *arg);
    void (*redis_unavailable)(void *arg);
    void *arg;
};

/* Creates the process-wide registry of in-process buckets. NULL when out of memory. */
struct limits_shared *limits_shared_new(void);

/* Frees the registry; every struct limits using it must be freed first. */
void limits_shared_free(struct limits_shared *s);

/* Creates one worker's limits on base. redis NULL: in-process; else Redis (the
 * connection starts at once, in the background). NULL when out of memory. */
struct limits *limits_new(struct event_base *base, struct limits_shared *shared,
                          const struct redis_url *redis, bool fail_open);

/* Frees a worker's limits on its loop thread: closes Redis, drops pending admits
 * without calling back. Finish the worker's tickets first: Redis tickets still open
 * are freed here (their leases expire in Redis) and must not be used afterwards. */
void limits_free(struct limits *l);

/* Sets the metrics hooks (copied). */
void limits_set_hooks(struct limits *l, const struct limits_hooks *hooks);

/* Changes the Redis timing (for tests): call deadline, lease length (renewed every
 * lease/3) and the first reconnect delay, all in ms; 0 keeps a value. */
void limits_set_timing(struct limits *l, int deadline_ms, int lease_ms, int backoff_ms);

/* Asks whether a request of key may start. now_us: clock_mono_us() (in-process time;
 * Redis uses its own clock). Returns 1 when answered now (*v filled, *ticket set when
 * OK and the key needs limits_finish), 0 when the answer comes later through cb
 * (*pending set: keep it to cancel), or -ENOMEM. A key without any limit is answered
 * at once with LIMITS_OK, no headers and no ticket. */
int limits_admit(struct limits *l, const struct limits_spec *key, int64_t now_us, limits_cb cb,
                 void *arg, struct limits_verdict *v, struct limits_ticket **ticket,
                 struct limits_pending **pending);

/* Cancels a pending admit (the client left): cb will not run. Only before cb ran. */
void limits_cancel(struct limits *l, struct limits_pending *pending);

/* Ends an admitted request: frees its stream slot and charges tokens_used (< 0: unknown,
 * nothing charged). Fire-and-forget with Redis. ticket may be NULL (no-op); it is freed. */
void limits_finish(struct limits *l, struct limits_ticket *ticket, long tokens_used,
                   int64_t now_us);

/* Fills up to LIMITS_MAX_HEADERS x-ratelimit-* headers for v into out; returns how
 * many (0 for an unlimited key or a fail-open answer). */
size_t limits_headers(const struct limits_verdict *v, struct limits_header *out);

/* Writes a duration as OpenAI does (Go's format): "0s", "20ms", "1s", "1.5s", "6m0s",
 * "1h0m0s" (milliseconds rounded up). Returns the length, like snprintf. */
int limits_format_duration(int64_t us, char *out, size_t outlen);

/* Parses REDIS_URL: redis://[[user]:password@]host[:port][/db] or
 * unix://[[user]:password@]/path[?db=N]; user and password may be %-escaped. Returns
 * 0, or -EINVAL with a three-part message in err that never contains the password.
 * The caller registers out->password with log_add_secret before threads start. */
int limits_parse_redis_url(const char *url, struct redis_url *out, char *err, size_t errlen);

#endif
