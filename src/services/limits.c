/* limits: the key registry, the in-process buckets and the verdict helpers.
 * The Redis backend is in limits_redis.c, the REDIS_URL parser in limits_url.c. */
#include "services/limits.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/limits_internal.h"

#define N_CHAINS 256

struct limits_shared {
    pthread_mutex_t lock; /* taken only to add a name */
    _Atomic(struct limits_entry *) chains[N_CHAINS];
    _Atomic int redis_down; /* workers whose Redis connection is in an outage */
};

bool limits_outage_enter(struct limits_shared *s)
{
    return atomic_fetch_add(&s->redis_down, 1) == 0;
}

bool limits_outage_leave(struct limits_shared *s)
{
    return atomic_fetch_sub(&s->redis_down, 1) == 1;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct limits_shared *limits_shared_new(void)
{
    struct limits_shared *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    for (int i = 0; i < N_CHAINS; i++)
        atomic_init(&s->chains[i], NULL);
    return s;
}

void limits_shared_free(struct limits_shared *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < N_CHAINS; i++) {
        struct limits_entry *e = atomic_load_explicit(&s->chains[i], memory_order_relaxed);
        while (e != NULL) {
            struct limits_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static struct limits_entry *chain_find(struct limits_entry *e, uint64_t h, const char *name)
{
    for (; e != NULL; e = e->next)
        if (e->hash == h && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* Lock-free when the name is known: entries are published with a release store and
 * never change their name or chain link afterwards. */
struct limits_entry *limits_entry_get(struct limits_shared *s, const char *name)
{
    uint64_t h = name_hash(name);
    _Atomic(struct limits_entry *) *chain = &s->chains[h % N_CHAINS];
    struct limits_entry *e = chain_find(atomic_load_explicit(chain, memory_order_acquire), h, name);
    if (e != NULL)
        return e;
    pthread_mutex_lock(&s->lock);
    struct limits_entry *head = atomic_load_explicit(chain, memory_order_relaxed);
    e = chain_find(head, h, name);
    if (e == NULL) {
        size_t len = strlen(name);
        e = calloc(1, sizeof *e + len + 1);
        if (e != NULL) {
            memcpy(e->name, name, len + 1);
            e->hash = h;
            e->next = head;
            atomic_init(&e->req_tat_us, 0);
            atomic_init(&e->tok_tat_us, 0);
            atomic_init(&e->streams, 0);
            atomic_store_explicit(chain, e, memory_order_release);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return e;
}

long limits_retry_seconds(int64_t us)
{
    long s = (long)((us + 999999) / 1000000);
    return s < 1 ? 1 : s;
}

/* What a bucket of capacity cap holds when it owes debt_us of its one-minute refill. */
static long bucket_level(long cap, int64_t debt_us)
{
    if (debt_us <= 0)
        return cap;
    if (debt_us >= LIMITS_WINDOW_US)
        return 0;
    return (long)((__int128)(LIMITS_WINDOW_US - debt_us) * cap / LIMITS_WINDOW_US);
}

void limits_fill_numbers(struct limits_verdict *v, const struct limits_spec *key,
                         int64_t req_debt_us, int64_t tok_debt_us)
{
    if (key->requests_per_minute > 0) {
        v->has_requests = true;
        v->limit_requests = key->requests_per_minute;
        v->remaining_requests = bucket_level(key->requests_per_minute, req_debt_us);
        v->reset_requests_us = req_debt_us > 0 ? req_debt_us : 0;
    }
    if (key->tokens_per_minute > 0) {
        v->has_tokens = true;
        v->limit_tokens = key->tokens_per_minute;
        v->remaining_tokens = bucket_level(key->tokens_per_minute, tok_debt_us);
        v->reset_tokens_us = tok_debt_us > 0 ? tok_debt_us : 0;
    }
}

void limits_unreachable_verdict(const struct limits *l, struct limits_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->status = l->fail_open ? LIMITS_OK : LIMITS_UNAVAILABLE;
}

void limits_count_refused(const struct limits *l, const struct limits_verdict *v)
{
    if (l->hooks.refused == NULL)
        return;
    if (v->status == LIMITS_REFUSED)
        l->hooks.refused(l->hooks.arg, v->reason);
    else if (v->status == LIMITS_UNAVAILABLE)
        l->hooks.refused(l->hooks.arg, "unavailable");
}

static void refuse(struct limits_verdict *v, const char *reason, int64_t wait_us)
{
    v->status = LIMITS_REFUSED;
    v->reason = reason;
    v->retry_after_s = limits_retry_seconds(wait_us);
}

/* Takes one request token (GCRA): the new tat may lie at most one window ahead. */
static bool take_request(struct limits_entry *e, long n, int64_t now, int64_t *debt)
{
    int64_t cost = LIMITS_WINDOW_US / n > 0 ? LIMITS_WINDOW_US / n : 1;
    int64_t old = atomic_load_explicit(&e->req_tat_us, memory_order_relaxed);
    for (;;) {
        int64_t next = (old > now ? old : now) + cost;
        if (next - now > LIMITS_WINDOW_US) {
            *debt = next - now; /* the caller waits *debt - window */
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&e->req_tat_us, &old, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *debt = next - now;
            return true;
        }
    }
}

/* Admits in this process: tokens first (read only), then a stream slot, then a
 * request token; a refusal gives back what was taken. */
static void admit_local(struct limits_entry *e, const struct limits_spec *key, int64_t now,
                        struct limits_verdict *v, bool *slot)
{
    int64_t tok_debt = atomic_load_explicit(&e->tok_tat_us, memory_order_relaxed) - now;
    int64_t req_debt = atomic_load_explicit(&e->req_tat_us, memory_order_relaxed) - now;
    *slot = false;
    if (key->tokens_per_minute > 0 && tok_debt >= LIMITS_WINDOW_US) {
        refuse(v, "tokens", tok_debt - LIMITS_WINDOW_US + 1);
        goto numbers;
    }
    if (key->max_concurrent_streams > 0) {
        long open = atomic_fetch_add_explicit(&e->streams, 1, memory_order_relaxed) + 1;
        if (open > key->max_concurrent_streams) {
            atomic_fetch_sub_explicit(&e->streams, 1, memory_order_relaxed);
            refuse(v, "concurrency", 1000000);
            goto numbers;
        }
        *slot = true;
    }
    if (key->requests_per_minute > 0) {
        int64_t debt;
        if (!take_request(e, key->requests_per_minute, now, &debt)) {
            if (*slot)
                atomic_fetch_sub_explicit(&e->streams, 1, memory_order_relaxed);
            *slot = false;
            refuse(v, "requests", debt - LIMITS_WINDOW_US);
        } else {
            req_debt = debt;
        }
    }
numbers:
    limits_fill_numbers(v, key, req_debt, tok_debt);
}

void limits_free(struct limits *l)
{
    if (l == NULL)
        return;
    limits_redis_free(l->redis);
    free(l);
}

struct limits *limits_new(struct event_base *base, struct limits_shared *shared,
                          const struct redis_url *redis, bool fail_open)
{
    struct limits *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->base = base;
    l->shared = shared;
    l->fail_open = fail_open;
    if (redis != NULL && (l->redis = limits_redis_new(l, redis)) == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void limits_set_hooks(struct limits *l, const struct limits_hooks *hooks)
{
    l->hooks = *hooks;
}

void limits_set_timing(struct limits *l, int deadline_ms, int lease_ms, int backoff_ms)
{
    if (l->redis != NULL)
        limits_redis_set_timing(l->redis, deadline_ms, lease_ms, backoff_ms);
}

static bool unlimited(const struct limits_spec *key)
{
    return key->requests_per_minute <= 0 && key->tokens_per_minute <= 0 &&
           key->max_concurrent_streams <= 0;
}

int limits_admit(struct limits *l, const struct limits_spec *key, int64_t now_us, limits_cb cb,
                 void *arg, struct limits_verdict *v, struct limits_ticket **ticket,
                 struct limits_pending **pending)
{
    memset(v, 0, sizeof *v);
    *ticket = NULL;
    *pending = NULL;
    if (unlimited(key)) {
        v->status = LIMITS_OK;
        return 1;
    }
    struct limits_entry *e = limits_entry_get(l->shared, key->name);
    if (e == NULL)
        return -ENOMEM;
    if (l->redis != NULL)
        return limits_redis_admit(l->redis, e, key, cb, arg, v, ticket, pending);
    bool slot;
    admit_local(e, key, now_us, v, &slot);
    if (v->status != LIMITS_OK) {
        limits_count_refused(l, v);
        return 1;
    }
    if (slot || key->tokens_per_minute > 0) {
        struct limits_ticket *t = calloc(1, sizeof *t);
        if (t == NULL) {
            if (slot)
                atomic_fetch_sub_explicit(&e->streams, 1, memory_order_relaxed);
            return -ENOMEM;
        }
        t->entry = e;
        t->slot = slot;
        t->tokens_per_minute = key->tokens_per_minute;
        *ticket = t;
    }
    return 1;
}

void limits_cancel(struct limits *l, struct limits_pending *pending)
{
    if (l->redis != NULL && pending != NULL)
        limits_redis_cancel(l->redis, pending);
}

static void charge_tokens(struct limits_entry *e, long tpm, long used, int64_t now)
{
    if (used > 100000000L)
        used = 100000000L; /* keeps the product below 2^63 */
    int64_t add = (int64_t)((__int128)used * LIMITS_WINDOW_US / tpm);
    int64_t old = atomic_load_explicit(&e->tok_tat_us, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&e->tok_tat_us, &old,
                                                  (old > now ? old : now) + add,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void limits_finish(struct limits *l, struct limits_ticket *t, long tokens_used, int64_t now_us)
{
    if (t == NULL)
        return;
    if (l->redis != NULL) {
        limits_redis_finish(l->redis, t, tokens_used); /* frees t */
        return;
    }
    if (t->slot)
        atomic_fetch_sub_explicit(&t->entry->streams, 1, memory_order_relaxed);
    if (t->tokens_per_minute > 0 && tokens_used > 0)
        charge_tokens(t->entry, t->tokens_per_minute, tokens_used, now_us);
    free(t);
}

/* Writes v in decimal at p (the headers are on every limited response: no snprintf). */
static char *put_dec(char *p, long long v)
{
    char digits[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    if (v < 0)
        *p++ = '-';
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s != '\0')
        *p++ = *s++;
    return p;
}

/* Seconds with the milliseconds as a fraction without trailing zeros: "3s", "3.004s". */
static char *put_seconds(char *p, long long s, long long frac)
{
    p = put_dec(p, s);
    if (frac != 0) {
        *p++ = '.';
        for (long long div = 100; frac != 0; div /= 10) {
            *p++ = (char)('0' + frac / div);
            frac %= div;
        }
    }
    return put_str(p, "s");
}

/* Copies len bytes of text into out as snprintf would (cut, NUL-terminated). */
static int copy_out(const char *text, size_t len, char *out, size_t outlen)
{
    if (outlen > 0) {
        size_t n = len < outlen ? len : outlen - 1;
        memcpy(out, text, n);
        out[n] = '\0';
    }
    return (int)len;
}

int limits_format_duration(int64_t us, char *out, size_t outlen)
{
    long long ms = us <= 0 ? 0 : (us + 999) / 1000;
    char text[64], *p = text;
    if (ms < 1000) {
        p = put_str(put_dec(p, ms), ms == 0 ? "s" : "ms");
    } else {
        long long h = ms / 3600000, m = ms / 60000 % 60;
        if (h > 0)
            p = put_str(put_dec(p, h), "h");
        if (h > 0 || m > 0)
            p = put_str(put_dec(p, m), "m");
        p = put_seconds(p, ms / 1000 % 60, ms % 1000);
    }
    return copy_out(text, (size_t)(p - text), out, outlen);
}

/* One bucket's three headers (limit, remaining, reset) under names[0..2]; returns 3. */
static size_t bucket_headers(struct limits_header *out, const char *const names[3], long limit,
                             long remaining, int64_t reset_us)
{
    for (size_t i = 0; i < 3; i++)
        out[i].name = names[i];
    *put_dec(out[0].value, limit) = '\0';
    *put_dec(out[1].value, remaining) = '\0';
    limits_format_duration(reset_us, out[2].value, sizeof out->value);
    return 3;
}

size_t limits_headers(const struct limits_verdict *v, struct limits_header *out)
{
    static const char *const requests[3] = { "x-ratelimit-limit-requests",
                                             "x-ratelimit-remaining-requests",
                                             "x-ratelimit-reset-requests" };
    static const char *const tokens[3] = { "x-ratelimit-limit-tokens",
                                           "x-ratelimit-remaining-tokens",
                                           "x-ratelimit-reset-tokens" };
    size_t n = 0;
    if (v->has_requests)
        n += bucket_headers(out + n, requests, v->limit_requests, v->remaining_requests,
                            v->reset_requests_us);
    if (v->has_tokens)
        n += bucket_headers(out + n, tokens, v->limit_tokens, v->remaining_tokens,
                            v->reset_tokens_us);
    return n;
}
