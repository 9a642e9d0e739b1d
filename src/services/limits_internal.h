/* limits_internal: what limits.c (registry, in-process buckets, verdicts) and
 * limits_redis.c (the Redis backend) share. Not part of the public face. */
#ifndef CHATD_LIMITS_INTERNAL_H
#define CHATD_LIMITS_INTERNAL_H

#include <stdatomic.h>

#include "core/list.h"
#include "services/limits.h"

#define LIMITS_WINDOW_US 60000000LL /* both buckets refill fully in one minute */

/* One key name's in-process state; made once, never freed before the registry. */
struct limits_entry {
    struct limits_entry *next; /* hash chain; written before the entry is published */
    uint64_t hash;
    _Atomic int64_t req_tat_us; /* request bucket: full when <= now */
    _Atomic int64_t tok_tat_us; /* token bucket: empty when >= now + window */
    _Atomic long streams;       /* open streams */
    char name[];
};

/* An admitted request that needs limits_finish. */
struct limits_ticket {
    struct limits_entry *entry;
    long tokens_per_minute; /* > 0: charge usage at finish */
    bool slot;              /* holds an in-process stream slot */
    bool leased;            /* holds a Redis lease (linked in the worker's list) */
    struct list link;       /* in the worker's leases, when leased */
    char lease[48];
};

struct limits_redis;

struct limits {
    struct event_base *base;
    struct limits_shared *shared;
    bool fail_open;
    struct limits_hooks hooks;
    struct limits_redis *redis; /* NULL: in-process */
};

/* One worker's Redis connection entered an outage: true for the first of the
 * process's workers (the outage is logged and counted once per process). */
bool limits_outage_enter(struct limits_shared *s);

/* One worker's connection is back: true for the last one (the outage is over). */
bool limits_outage_leave(struct limits_shared *s);

/* The registry entry for name, made on first use. NULL when out of memory. */
struct limits_entry *limits_entry_get(struct limits_shared *s, const char *name);

/* Whole seconds to wait for us microseconds, at least 1. */
long limits_retry_seconds(int64_t us);

/* Fills v's header numbers from the debts (tat - now) of each bucket, in us. */
void limits_fill_numbers(struct limits_verdict *v, const struct limits_spec *key,
                         int64_t req_debt_us, int64_t tok_debt_us);

/* The fail-open or fail-closed answer when Redis cannot decide. */
void limits_unreachable_verdict(const struct limits *l, struct limits_verdict *v);

/* Counts a refusal through the hooks. */
void limits_count_refused(const struct limits *l, const struct limits_verdict *v);

/* The Redis backend (limits_redis.c); same contracts as the public functions. */
struct limits_redis *limits_redis_new(struct limits *l, const struct redis_url *u);
void limits_redis_free(struct limits_redis *r);
void limits_redis_set_timing(struct limits_redis *r, int deadline_ms, int lease_ms, int backoff_ms);
int limits_redis_admit(struct limits_redis *r, struct limits_entry *e,
                       const struct limits_spec *key, limits_cb cb, void *arg,
                       struct limits_verdict *v, struct limits_ticket **ticket,
                       struct limits_pending **pending);
void limits_redis_cancel(struct limits_redis *r, struct limits_pending *p);
void limits_redis_finish(struct limits_redis *r, struct limits_ticket *t, long tokens_used);

#endif
