/* router: see router.h. */
#include "services/router.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/jscan.h"

/* ---- classification ---------------------------------------------------------------- */

const char *router_outcome_name(enum router_outcome o)
{
    static const char *const names[] = { "ok",           "retryable",
                                         "rate_limited", "misconfigured",
                                         "client_error", "misconfigured" };
    return (unsigned)o < ROUTER_OUTCOME_COUNT ? names[o] : "retryable";
}

enum router_outcome router_classify(long http_status, long retry_after_ms)
{
    if (http_status == 0)
        return ROUTER_RETRYABLE;
    if (http_status >= 200 && http_status < 300)
        return ROUTER_OK;
    switch (http_status) {
    case 408: return ROUTER_RETRYABLE;
    case 429: return retry_after_ms >= 0 ? ROUTER_RATE_LIMITED : ROUTER_RETRYABLE;
    case 400:
    case 413:
    case 422: return ROUTER_CLIENT_ERROR;
    case 404: return ROUTER_MODEL_MISSING;
    default: break;
    }
    /* Any 5xx is the provider's trouble; any other answer (401/403/404, other 4xx,
     * a redirect) says this target is not set up to serve us: the next may be. */
    return http_status >= 500 ? ROUTER_RETRYABLE : ROUTER_MISCONFIGURED;
}

/* ---- Retry-After ------------------------------------------------------------------- */

/* The dates are read with core's byte cursor (struct jscan: p, end). */
/* Exactly `digits` decimal digits. */
static bool num(struct jscan *c, int digits, int *out)
{
    int v = 0;
    for (int i = 0; i < digits; i++, c->p++) {
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return false;
        v = v * 10 + (*c->p - '0');
    }
    *out = v;
    return true;
}

static bool month(struct jscan *c, int *m)
{
    static const char *const names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    for (int i = 0; i < 12; i++)
        if (jscan_literal(c, names[i])) {
            *m = i + 1;
            return true;
        }
    return false;
}

static bool day_name(struct jscan *c, bool long_form)
{
    static const char *const names[] = { "Monday", "Tuesday",  "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday" };
    for (int i = 0; i < 7; i++) {
        char shortname[4] = { names[i][0], names[i][1], names[i][2], '\0' };
        if (jscan_literal(c, long_form ? names[i] : shortname))
            return true;
    }
    return false;
}

static bool hms(struct jscan *c, int t[3])
{
    return num(c, 2, &t[0]) && jscan_literal(c, ":") && num(c, 2, &t[1]) && jscan_literal(c, ":") &&
           num(c, 2, &t[2]);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* IMF-fixdate, RFC 850 or asctime (RFC 9110 section 5.6.7) into Unix seconds. */
static bool http_date(const char *p, const char *end, int64_t *out)
{
    int y, m, d, t[3];
    struct jscan c;
    jscan_init(&c, p, (size_t)(end - p));
    bool ok = day_name(&c, false) && jscan_literal(&c, ", ") && num(&c, 2, &d) &&
              jscan_literal(&c, " ") && month(&c, &m) && jscan_literal(&c, " ") && num(&c, 4, &y) &&
              jscan_literal(&c, " ") && hms(&c, t) && jscan_literal(&c, " GMT");
    if (!ok) {
        jscan_init(&c, p, (size_t)(end - p));
        ok = day_name(&c, true) && jscan_literal(&c, ", ") && num(&c, 2, &d) &&
             jscan_literal(&c, "-") && month(&c, &m) && jscan_literal(&c, "-") && num(&c, 2, &y) &&
             jscan_literal(&c, " ") && hms(&c, t) && jscan_literal(&c, " GMT");
        y += y < 70 ? 2000 : 1900;
    }
    if (!ok) {
        jscan_init(&c, p, (size_t)(end - p));
        ok = day_name(&c, false) && jscan_literal(&c, " ") && month(&c, &m) &&
             jscan_literal(&c, " ") && (jscan_literal(&c, " ") ? num(&c, 1, &d) : num(&c, 2, &d)) &&
             jscan_literal(&c, " ") && hms(&c, t) && jscan_literal(&c, " ") && num(&c, 4, &y);
    }
    if (!ok || c.p != end || d < 1 || d > days_in_month(y, m) || t[0] > 23 || t[1] > 59 ||
        t[2] > 60)
        return false;
    *out = days_from_civil(y, m, d) * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    return true;
}

static bool ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

long router_parse_retry_after(const char *value, time_t now)
{
    if (value == NULL)
        return -1;
    const char *p = value, *end = value + strlen(value);
    while (p < end && ows(*p))
        p++;
    while (end > p && ows(end[-1]))
        end--;
    if (p == end)
        return -1;
    const long max_s = ROUTER_RETRY_AFTER_MAX_MS / 1000;
    if (*p >= '0' && *p <= '9') {
        long s = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            if (s <= max_s)
                s = s * 10 + (*p - '0');
        }
        return s > max_s ? ROUTER_RETRY_AFTER_MAX_MS : s * 1000;
    }
    int64_t at;
    if (!http_date(p, end, &at))
        return -1;
    int64_t delta = at - (int64_t)now;
    if (delta <= 0)
        return 0;
    return delta > max_s ? ROUTER_RETRY_AFTER_MAX_MS : (long)delta * 1000;
}

/* ---- backoff ----------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

int64_t router_backoff_us(int retry, uint64_t *rng)
{
    int64_t top = ROUTER_BACKOFF_BASE_US;
    for (int i = 0; i < retry && top < ROUTER_BACKOFF_CAP_US; i++)
        top *= 2;
    if (top > ROUTER_BACKOFF_CAP_US)
        top = ROUTER_BACKOFF_CAP_US;
    return (int64_t)(splitmix64(rng) % (uint64_t)(top + 1));
}

/* ---- circuit breakers -------------------------------------------------------------- */

struct breaker {
    _Atomic int64_t failures;       /* consecutive */
    _Atomic int64_t open_until_us;  /* 0: closed; else open until then, half-open after */
    _Atomic int64_t probe_until_us; /* 0: no probe out; else the probe's lease ends then */
    _Atomic int64_t cooldown_us;    /* of the last opening: also the probe's lease */
    char *name;
};

struct breakers {
    pthread_mutex_t mu; /* taken only to register a new name */
    _Atomic size_t n;   /* slots published (release after the slot is filled) */
    struct breaker slot[ROUTER_MAX_PROVIDERS];
};

struct breakers *breakers_new(void)
{
    struct breakers *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

void breakers_free(struct breakers *b)
{
    if (b == NULL)
        return;
    size_t n = atomic_load(&b->n);
    for (size_t i = 0; i < n; i++)
        free(b->slot[i].name);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static struct breaker *find(struct breakers *b, size_t from, size_t n, const char *name)
{
    for (size_t i = from; i < n; i++)
        if (strcmp(b->slot[i].name, name) == 0)
            return &b->slot[i];
    return NULL;
}

struct breaker *breakers_get(struct breakers *b, const char *provider_name)
{
    if (b == NULL || provider_name == NULL)
        return NULL;
    size_t seen = atomic_load_explicit(&b->n, memory_order_acquire);
    struct breaker *br = find(b, 0, seen, provider_name);
    if (br != NULL)
        return br;
    pthread_mutex_lock(&b->mu);
    size_t n = atomic_load_explicit(&b->n, memory_order_relaxed);
    br = find(b, seen, n, provider_name); /* registered meanwhile by another thread? */
    if (br == NULL && n < ROUTER_MAX_PROVIDERS) {
        b->slot[n].name = strdup(provider_name);
        if (b->slot[n].name != NULL) {
            br = &b->slot[n];
            atomic_store_explicit(&b->n, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return br;
}

size_t breakers_count(struct breakers *b)
{
    return b != NULL ? atomic_load_explicit(&b->n, memory_order_acquire) : 0;
}

struct breaker *breakers_at(struct breakers *b, size_t i)
{
    return i < breakers_count(b) ? &b->slot[i] : NULL;
}

const char *breaker_name(const struct breaker *br)
{
    return br != NULL ? br->name : "";
}

enum admission { DENY, ALLOW, ALLOW_PROBE };

static enum admission admit(struct breaker *br, int64_t now_us)
{
    if (br == NULL)
        return ALLOW;
    int64_t until = atomic_load_explicit(&br->open_until_us, memory_order_acquire);
    if (until == 0)
        return ALLOW;
    if (now_us < until)
        return DENY;
    int64_t lease = atomic_load_explicit(&br->probe_until_us, memory_order_acquire);
    if (lease != 0 && now_us < lease)
        return DENY;
    int64_t cooldown = atomic_load_explicit(&br->cooldown_us, memory_order_relaxed);
    int64_t mine = now_us + (cooldown > 0 ? cooldown : 1);
    if (mine == 0)
        mine = 1;
    /* Of all callers that saw the same free slot, one CAS wins: the probe. */
    if (atomic_compare_exchange_strong(&br->probe_until_us, &lease, mine))
        return ALLOW_PROBE;
    return DENY;
}

bool breaker_allow(struct breaker *br, int64_t now_us)
{
    return admit(br, now_us) != DENY;
}

void breaker_report(struct breaker *br, bool success, int threshold, double cooldown_s,
                    int64_t now_us)
{
    if (br == NULL)
        return;
    if (success) {
        /* The hot path: a healthy provider's breaker is only read, never written. */
        if (atomic_load_explicit(&br->failures, memory_order_relaxed) == 0 &&
            atomic_load_explicit(&br->open_until_us, memory_order_relaxed) == 0)
            return;
        atomic_store(&br->failures, 0);
        atomic_store(&br->open_until_us, 0);
        atomic_store(&br->probe_until_us, 0);
        return;
    }
    int64_t n = atomic_fetch_add(&br->failures, 1) + 1;
    int64_t until = atomic_load(&br->open_until_us);
    if (until != 0 && now_us < until)
        return; /* already open: a late failure does not stretch the cooldown */
    /* Closed: open at the threshold. Half-open: a failure (the probe's) re-opens. */
    if (threshold <= 0 || (until == 0 && n < threshold))
        return;
    int64_t cooldown = cooldown_s > 0 ? (int64_t)(cooldown_s * 1e6) : 0;
    until = now_us + cooldown;
    atomic_store(&br->cooldown_us, cooldown);
    atomic_store(&br->probe_until_us, 0);
    atomic_store_explicit(&br->open_until_us, until != 0 ? until : 1, memory_order_release);
}

void breaker_release_probe(struct breaker *br)
{
    if (br != NULL)
        atomic_store(&br->probe_until_us, 0);
}

int breaker_state(const struct breaker *br, int64_t now_us)
{
    if (br == NULL)
        return 0;
    int64_t until = atomic_load_explicit(&br->open_until_us, memory_order_acquire);
    if (until == 0)
        return 0;
    return now_us < until ? 1 : 2;
}

/* ---- one request's walk ------------------------------------------------------------ */

void router_init(struct router *r, size_t n_targets, struct breaker *const *target_breakers,
                 int retries, int breaker_failures, double breaker_cooldown_s, int64_t deadline_us,
                 uint64_t seed)
{
    *r = (struct router){ .breakers = target_breakers,
                          .n_targets = n_targets,
                          .retries = retries > 0 ? retries : 0,
                          .threshold = breaker_failures,
                          .cooldown_s = breaker_cooldown_s,
                          .deadline_us = deadline_us,
                          .rng = seed };
}

static struct breaker *breaker_of(const struct router *r, size_t target)
{
    return r->breakers != NULL ? r->breakers[target] : NULL;
}

/* Asks target's breaker; remembers whether this attempt holds its probe. */
static bool admitted(struct router *r, size_t target, int64_t now_us)
{
    enum admission a = admit(breaker_of(r, target), now_us);
    r->probe = a == ALLOW_PROBE;
    return a != DENY;
}

static struct router_step stop(struct router *r)
{
    r->done = true;
    r->probe = false;
    return (struct router_step){ .go = false, .target = r->target };
}

static struct router_step go(struct router *r, size_t target, int64_t delay_us)
{
    struct router_step s = { .go = true,
                             .fallback = r->attempts > 0 && target != r->target,
                             .target = target,
                             .delay_us = delay_us };
    r->target = target;
    r->attempts++;
    return s;
}

struct router_step router_first(struct router *r, int64_t now_us)
{
    if (r->n_targets == 0 || now_us >= r->deadline_us)
        return stop(r);
    for (size_t i = 0; i < r->n_targets; i++)
        if (admitted(r, i, now_us))
            return go(r, i, 0);
    r->probe = false;
    return go(r, 0, 0); /* every target skipped: the first anyway */
}

/* The next target after the current one that its breaker allows, at once. */
static struct router_step next_target(struct router *r, int64_t now_us)
{
    if (now_us >= r->deadline_us)
        return stop(r);
    for (size_t i = r->target + 1; i < r->n_targets; i++)
        if (admitted(r, i, now_us)) {
            r->retried = 0;
            return go(r, i, 0);
        }
    return stop(r);
}

/* The same target again after delay_us, if a retry is left, the wait ends before the
 * deadline and the breaker (which may have just opened) still allows it. */
static struct router_step retry(struct router *r, int64_t delay_us, int64_t now_us)
{
    if (r->retried < r->retries && now_us + delay_us < r->deadline_us &&
        admitted(r, r->target, now_us)) {
        r->retried++;
        return go(r, r->target, delay_us);
    }
    return next_target(r, now_us);
}

static void record(struct router *r, enum router_outcome o, int64_t now_us)
{
    struct breaker *br = breaker_of(r, r->target);
    if (o == ROUTER_CLIENT_ERROR || o == ROUTER_MODEL_MISSING) {
        if (r->probe)
            breaker_release_probe(br); /* no verdict on the provider */
    } else {
        breaker_report(br, o == ROUTER_OK, r->threshold, r->cooldown_s, now_us);
    }
    r->probe = false;
}

struct router_step router_next(struct router *r, enum router_outcome o, long retry_after_ms,
                               int64_t now_us)
{
    if (r->done || r->attempts == 0)
        return stop(r);
    record(r, o, now_us);
    switch (o) {
    case ROUTER_RETRYABLE: return retry(r, router_backoff_us(r->retried, &r->rng), now_us);
    case ROUTER_RATE_LIMITED:
        if (retry_after_ms < 0)
            return retry(r, router_backoff_us(r->retried, &r->rng), now_us);
        if (retry_after_ms > ROUTER_RETRY_AFTER_MAX_MS)
            retry_after_ms = ROUTER_RETRY_AFTER_MAX_MS;
        return retry(r, (int64_t)retry_after_ms * 1000, now_us);
    case ROUTER_MISCONFIGURED:
    case ROUTER_MODEL_MISSING: return next_target(r, now_us);
    default: return stop(r); /* OK, CLIENT_ERROR */
    }
}

void router_abandon(struct router *r)
{
    if (r->probe)
        breaker_release_probe(breaker_of(r, r->target));
    stop(r);
}

int router_attempt(const struct router *r)
{
    return r->attempts;
}
