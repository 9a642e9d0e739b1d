/* Unit tests of src/services/router.c: every row of the contract's routing table, the
 * backoff schedule, Retry-After in both forms, the deadline, and the circuit breaker
 * (open, half-open with exactly one probe, also under threads, close, re-open). */
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "services/router.h"

#define MS 1000
#define S  1000000

/* ---- classification ---------------------------------------------------------------- */

static void test_classify_every_row(void **state)
{
    (void)state;
    static const struct {
        long status, retry_after_ms;
        enum router_outcome want;
    } cases[] = {
        { 0, -1, ROUTER_RETRYABLE }, /* connect/DNS/TLS failure, reset, cut */
        { 408, -1, ROUTER_RETRYABLE },
        { 500, -1, ROUTER_RETRYABLE },
        { 502, -1, ROUTER_RETRYABLE },
        { 503, -1, ROUTER_RETRYABLE },
        { 504, -1, ROUTER_RETRYABLE },
        { 503, 5000, ROUTER_RETRYABLE },
        { 429, 0, ROUTER_RATE_LIMITED },
        { 429, 2000, ROUTER_RATE_LIMITED },
        { 429, -1, ROUTER_RETRYABLE }, /* as a 503 */
        { 401, -1, ROUTER_MISCONFIGURED },
        { 403, -1, ROUTER_MISCONFIGURED },
        { 404, -1, ROUTER_MODEL_MISSING },
        { 400, -1, ROUTER_CLIENT_ERROR },
        { 413, -1, ROUTER_CLIENT_ERROR },
        { 422, -1, ROUTER_CLIENT_ERROR },
        { 200, -1, ROUTER_OK },
        { 501, -1, ROUTER_RETRYABLE },
        { 529, -1, ROUTER_RETRYABLE },
        { 405, -1, ROUTER_MISCONFIGURED },
        { 302, -1, ROUTER_MISCONFIGURED },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        enum router_outcome got = router_classify(cases[i].status, cases[i].retry_after_ms);
        if (got != cases[i].want)
            fail_msg("status %ld: %s, want %s", cases[i].status, router_outcome_name(got),
                     router_outcome_name(cases[i].want));
    }
    assert_string_equal(router_outcome_name(ROUTER_OK), "ok");
    assert_string_equal(router_outcome_name(ROUTER_RETRYABLE), "retryable");
    assert_string_equal(router_outcome_name(ROUTER_RATE_LIMITED), "rate_limited");
    assert_string_equal(router_outcome_name(ROUTER_MISCONFIGURED), "misconfigured");
    assert_string_equal(router_outcome_name(ROUTER_CLIENT_ERROR), "client_error");
    assert_string_equal(router_outcome_name(ROUTER_MODEL_MISSING), "misconfigured");
}

/* ---- Retry-After ------------------------------------------------------------------- */

static void test_retry_after(void **state)
{
    (void)state;
    const time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    static const struct {
        const char *value;
        long want;
    } cases[] = {
        { "120", 120000 },
        { "0", 0 },
        { " 5 ", 5000 },
        { "\t3\t", 3000 },
        { "007", 7000 },
        { "86400", 86400000 },
        { "86401", ROUTER_RETRY_AFTER_MAX_MS },
        { "99999999999999999999999999", ROUTER_RETRY_AFTER_MAX_MS },
        { "Sun, 06 Nov 1994 08:50:07 GMT", 30000 },    /* IMF-fixdate */
        { "  Sun, 06 Nov 1994 08:50:07 GMT ", 30000 }, /* with white space */
        { "Sunday, 06-Nov-94 08:49:47 GMT", 10000 },   /* RFC 850 */
        { "Sun Nov  6 08:49:57 1994", 20000 },         /* asctime */
        { "Mon, 07 Nov 1994 08:49:37 GMT", 86400000 },
        { "Sat, 01 Jan 2000 00:00:00 GMT", ROUTER_RETRY_AFTER_MAX_MS },
        { "Sun, 06 Nov 1994 08:49:37 GMT", 0 }, /* now */
        { "Thu, 01 Jan 1970 00:00:00 GMT", 0 }, /* past */
        { "Tue, 29 Feb 2000 00:00:00 GMT", ROUTER_RETRY_AFTER_MAX_MS },
        { "", -1 },
        { "   ", -1 },
        { "-5", -1 },
        { "+5", -1 },
        { "5s", -1 },
        { "1.5", -1 },
        { "5 5", -1 },
        { "soon", -1 },
        { "Sun, 06 Nov 1994 08:50:07 UTC", -1 },
        { "Sun, 32 Nov 1994 08:50:07 GMT", -1 },
        { "Sun, 29 Feb 1900 08:50:07 GMT", -1 }, /* 1900 was not a leap year */
        { "Sun, 06 Foo 1994 08:50:07 GMT", -1 },
        { "Sun, 06 Nov 1994 24:00:00 GMT", -1 },
        { "Sun, 06 Nov 1994 08:50:07 GMT trailing", -1 },
        { "Sun, 6 Nov 1994 08:50:07 GMT", -1 },
        { "sun, 06 nov 1994 08:50:07 gmt", -1 },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        long got = router_parse_retry_after(cases[i].value, now);
        if (got != cases[i].want)
            fail_msg("\"%s\": %ld, want %ld", cases[i].value, got, cases[i].want);
    }
    assert_int_equal(router_parse_retry_after(NULL, now), -1);
    /* Two-digit RFC 850 years under 70 are this century. */
    assert_int_equal(router_parse_retry_after("Monday, 01-Jan-01 00:00:00 GMT", 978307190), 10000);
}

/* ---- backoff ----------------------------------------------------------------------- */

static void test_backoff_bounds_and_spread(void **state)
{
    (void)state;
    uint64_t rng = 42;
    for (int retry = 0; retry < 12; retry++) {
        int64_t top = (int64_t)ROUTER_BACKOFF_BASE_US << retry;
        if (top > ROUTER_BACKOFF_CAP_US)
            top = ROUTER_BACKOFF_CAP_US;
        int64_t lo = INT64_MAX, hi = -1;
        double sum = 0;
        const int n = 2000;
        for (int i = 0; i < n; i++) {
            int64_t d = router_backoff_us(retry, &rng);
            if (d < 0 || d > top)
                fail_msg("retry %d: %ld us outside [0, %ld]", retry, (long)d, (long)top);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += (double)d;
        }
        /* Full jitter: the draws cover the range, not one value or one end of it. */
        assert_true(lo < top / 20);
        assert_true(hi > top - top / 20);
        double mean = sum / n / (double)top;
        if (mean < 0.4 || mean > 0.6)
            fail_msg("retry %d: mean %.3f of the range, want about 0.5", retry, mean);
    }
    assert_true(router_backoff_us(1000, &rng) <= ROUTER_BACKOFF_CAP_US);
    assert_true(router_backoff_us(-3, &rng) <= ROUTER_BACKOFF_BASE_US);
    /* Different seeds give different schedules; the same seed the same one. */
    uint64_t a = 1, b = 2, c = 1;
    int differ = 0;
    for (int i = 0; i < 10; i++) {
        int64_t x = router_backoff_us(3, &a), y = router_backoff_us(3, &b);
        differ += x != y;
        assert_int_equal(x, router_backoff_us(3, &c));
    }
    assert_true(differ > 5);
}

/* ---- breakers ---------------------------------------------------------------------- */

static void test_breaker_registry(void **state)
{
    (void)state;
    struct breakers *b = breakers_new();
    assert_non_null(b);
    struct breaker *a = breakers_get(b, "openai");
    assert_non_null(a);
    assert_ptr_equal(breakers_get(b, "openai"), a);
    assert_ptr_not_equal(breakers_get(b, "local"), a);
    assert_string_equal(breaker_name(a), "openai");
    assert_int_equal(breakers_count(b), 2);
    assert_ptr_equal(breakers_at(b, 0), a);
    assert_string_equal(breaker_name(breakers_at(b, 1)), "local");
    assert_null(breakers_at(b, 2));
    assert_null(breakers_get(b, NULL));
    assert_null(breakers_get(NULL, "x"));
    for (int i = 2; i < ROUTER_MAX_PROVIDERS; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        assert_non_null(breakers_get(b, name));
    }
    assert_null(breakers_get(b, "one-too-many"));
    assert_int_equal(breakers_count(b), ROUTER_MAX_PROVIDERS);
    assert_ptr_equal(breakers_get(b, "openai"), a); /* known names still found */
    /* A NULL breaker (registry full) always allows and ignores reports. */
    assert_true(breaker_allow(NULL, 0));
    breaker_report(NULL, false, 1, 1, 0);
    assert_int_equal(breaker_state(NULL, 0), 0);
    breakers_free(b);
}

static void test_breaker_opens_half_opens_closes(void **state)
{
    (void)state;
    struct breakers *b = breakers_new();
    struct breaker *br = breakers_get(b, "p");
    int64_t t = 1000 * S;
    for (int i = 0; i < 4; i++) {
        breaker_report(br, false, 5, 30, t);
        assert_int_equal(breaker_state(br, t), 0);
        assert_true(breaker_allow(br, t));
    }
    breaker_report(br, true, 5, 30, t); /* a success resets the count */
    for (int i = 0; i < 4; i++)
        breaker_report(br, false, 5, 30, t);
    assert_int_equal(breaker_state(br, t), 0);
    breaker_report(br, false, 5, 30, t); /* the fifth in a row */
    assert_int_equal(breaker_state(br, t), 1);
    assert_false(breaker_allow(br, t));
    breaker_report(br, false, 5, 30, t + 10 * S); /* late failures do not extend it */
    assert_false(breaker_allow(br, t + 30 * S - 1));
    /* Half-open: one probe, nobody else. */
    assert_int_equal(breaker_state(br, t + 30 * S), 2);
    assert_true(breaker_allow(br, t + 30 * S));
    assert_false(breaker_allow(br, t + 30 * S));
    assert_false(breaker_allow(br, t + 31 * S));
    /* The probe fails: open for another cooldown. */
    breaker_report(br, false, 5, 30, t + 31 * S);
    assert_int_equal(breaker_state(br, t + 31 * S), 1);
    assert_false(breaker_allow(br, t + 60 * S));
    assert_true(breaker_allow(br, t + 61 * S));
    /* A released probe lets the next caller probe. */
    breaker_release_probe(br);
    assert_true(breaker_allow(br, t + 61 * S));
    assert_false(breaker_allow(br, t + 61 * S));
    /* A probe that never reports frees its slot after a cooldown. */
    assert_false(breaker_allow(br, t + 91 * S - 1));
    assert_true(breaker_allow(br, t + 91 * S));
    /* The probe succeeds: closed for everyone. */
    breaker_report(br, true, 5, 30, t + 92 * S);
    assert_int_equal(breaker_state(br, t + 92 * S), 0);
    for (int i = 0; i < 3; i++)
        assert_true(breaker_allow(br, t + 92 * S));
    /* threshold <= 0: never opens. */
    struct breaker *off = breakers_get(b, "off");
    for (int i = 0; i < 100; i++)
        breaker_report(off, false, 0, 30, t);
    assert_int_equal(breaker_state(off, t), 0);
    breakers_free(b);
}

enum { PROBE_THREADS = 4, PROBE_ROUNDS = 3000 };

struct prober {
    struct breaker *br;
    pthread_barrier_t *ready, *done;
    atomic_int *granted; /* per round */
};

/* Each round: wait until the breaker has cooled down, then all ask at once. */
static void *probe_race(void *arg)
{
    struct prober *p = arg;
    for (int round = 0; round < PROBE_ROUNDS; round++) {
        int64_t now = (int64_t)(round + 1) * 1000 * S + 10 * S;
        pthread_barrier_wait(p->ready);
        for (int i = 0; i < 3; i++)
            if (breaker_allow(p->br, now + i))
                atomic_fetch_add(&p->granted[round], 1);
        pthread_barrier_wait(p->done);
    }
    return NULL;
}

static void test_breaker_one_probe_under_threads(void **state)
{
    (void)state;
    struct breakers *b = breakers_new();
    struct breaker *br = breakers_get(b, "p");
    pthread_barrier_t ready, done;
    pthread_barrier_init(&ready, NULL, PROBE_THREADS + 1);
    pthread_barrier_init(&done, NULL, PROBE_THREADS + 1);
    atomic_int *granted = calloc(PROBE_ROUNDS, sizeof *granted);
    struct prober p = { br, &ready, &done, granted };
    pthread_t th[PROBE_THREADS];
    for (int i = 0; i < PROBE_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, probe_race, &p), 0);
    for (int round = 0; round < PROBE_ROUNDS; round++) {
        int64_t t = (int64_t)(round + 1) * 1000 * S;
        breaker_report(br, false, 1, 10, t); /* open, half-open at t + 10 s */
        pthread_barrier_wait(&ready);
        pthread_barrier_wait(&done);
        breaker_report(br, true, 1, 10, t + 10 * S);
    }
    for (int i = 0; i < PROBE_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&done);
    for (int round = 0; round < PROBE_ROUNDS; round++)
        if (atomic_load(&granted[round]) != 1)
            fail_msg("round %d: %d probes granted, want exactly 1", round,
                     atomic_load(&granted[round]));
    free(granted);
    breakers_free(b);
}

struct registrar {
    struct breakers *b;
    pthread_barrier_t *start;
    struct breaker *got[16];
};

static void *register_race(void *arg)
{
    struct registrar *r = arg;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < 16; i++) {
        char name[32];
        snprintf(name, sizeof name, "prov-%d", i);
        r->got[i] = breakers_get(r->b, name);
    }
    return NULL;
}

static void test_breaker_registry_under_threads(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    struct breakers *b = breakers_new();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    struct registrar r[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct registrar){ .b = b, .start = &start };
        assert_int_equal(pthread_create(&th[i], NULL, register_race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int k = 0; k < 16; k++) {
        assert_non_null(r[0].got[k]);
        for (int i = 1; i < THREADS; i++)
            assert_ptr_equal(r[i].got[k], r[0].got[k]); /* one breaker per name */
    }
    breakers_free(b);
}

/* ---- one request's walk ------------------------------------------------------------ */

struct fixture {
    struct breakers *reg;
    struct breaker *br[3];
};

static struct fixture fixture(void)
{
    struct fixture f = { breakers_new(), { NULL } };
    f.br[0] = breakers_get(f.reg, "a");
    f.br[1] = breakers_get(f.reg, "b");
    f.br[2] = breakers_get(f.reg, "c");
    return f;
}

static void assert_step(struct router_step s, bool go, size_t target, bool fallback)
{
    if (s.go != go || (go && (s.target != target || s.fallback != fallback)))
        fail_msg("step go=%d target=%zu fallback=%d, want go=%d target=%zu fallback=%d", s.go,
                 s.target, s.fallback, go, target, fallback);
}

static void test_walk_retries_then_falls_back(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    int64_t t = 5 * S;
    router_init(&r, 2, f.br, 2, 100, 30, t + 30 * S, 7);
    struct router_step s = router_first(&r, t);
    assert_step(s, true, 0, false);
    assert_int_equal(s.delay_us, 0);
    assert_int_equal(router_attempt(&r), 1);
    s = router_next(&r, ROUTER_RETRYABLE, -1, t);
    assert_step(s, true, 0, false);
    assert_true(s.delay_us >= 0 && s.delay_us <= 100 * MS); /* first retry: up to 100 ms */
    s = router_next(&r, ROUTER_RETRYABLE, -1, t);
    assert_step(s, true, 0, false);
    assert_true(s.delay_us >= 0 && s.delay_us <= 200 * MS); /* second: up to 200 ms */
    assert_int_equal(router_attempt(&r), 3);
    s = router_next(&r, ROUTER_RETRYABLE, -1, t); /* retries used up: next target at once */
    assert_step(s, true, 1, true);
    assert_int_equal(s.delay_us, 0);
    s = router_next(&r, ROUTER_RETRYABLE, -1, t); /* the new target has its own retries */
    assert_step(s, true, 1, false);
    assert_true(s.delay_us <= 100 * MS);
    s = router_next(&r, ROUTER_OK, -1, t);
    assert_step(s, false, 0, false);
    assert_int_equal(router_attempt(&r), 5);
    s = router_next(&r, ROUTER_RETRYABLE, -1, t); /* the walk is over */
    assert_false(s.go);
    breakers_free(f.reg);
}

static void test_walk_exhausted_gives_up(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    router_init(&r, 2, f.br, 1, 100, 30, 60 * S, 7);
    assert_step(router_first(&r, 0), true, 0, false);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), true, 0, false);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), true, 1, true);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), true, 1, false);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), false, 0, false);
    assert_int_equal(router_attempt(&r), 4);
    /* retries = 0: one attempt per target. */
    router_init(&r, 2, f.br, 0, 100, 30, 60 * S, 7);
    assert_step(router_first(&r, 0), true, 0, false);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), true, 1, true);
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, 0), false, 0, false);
    breakers_free(f.reg);
}

static void test_walk_misconfigured_moves_on_at_once(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    router_init(&r, 3, f.br, 2, 100, 30, 60 * S, 7);
    router_first(&r, 0);
    struct router_step s = router_next(&r, ROUTER_MISCONFIGURED, -1, 0); /* 401/403/404 */
    assert_step(s, true, 1, true);
    assert_int_equal(s.delay_us, 0);
    s = router_next(&r, ROUTER_MISCONFIGURED, -1, 0);
    assert_step(s, true, 2, true);
    s = router_next(&r, ROUTER_MISCONFIGURED, -1, 0);
    assert_false(s.go);
    assert_int_equal(router_attempt(&r), 3);
    breakers_free(f.reg);
}

static void test_walk_client_error_stops_and_is_no_failure(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    router_init(&r, 2, f.br, 2, 1 /* one failure opens */, 30, 60 * S, 7);
    router_first(&r, 0);
    assert_false(router_next(&r, ROUTER_CLIENT_ERROR, -1, 0).go); /* 400/413/422 */
    assert_int_equal(router_attempt(&r), 1);
    assert_int_equal(breaker_state(f.br[0], 0), 0);
    /* Every other row counts as a failure: with threshold 1 it opens the breaker. */
    static const enum router_outcome failures[] = { ROUTER_RETRYABLE, ROUTER_RATE_LIMITED,
                                                    ROUTER_MISCONFIGURED };
    for (size_t i = 0; i < N_ELEMS(failures); i++) {
        router_init(&r, 2, f.br, 2, 1, 30, 60 * S, 7);
        assert_step(router_first(&r, 0), true, 0, false);
        struct router_step s = router_next(&r, failures[i], 1000, 0);
        assert_int_equal(breaker_state(f.br[0], 0), 1);
        assert_step(s, true, 1, true); /* the open breaker stops even a retry */
        breaker_report(f.br[0], true, 1, 30, 0);
    }
    breakers_free(f.reg);
}

static void test_walk_rate_limited(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    int64_t t = 10 * S;
    router_init(&r, 2, f.br, 2, 100, 30, t + 30 * S, 7);
    router_first(&r, t);
    /* A Retry-After that fits: wait it on the same target; it is one of the retries. */
    struct router_step s = router_next(&r, ROUTER_RATE_LIMITED, 2000, t);
    assert_step(s, true, 0, false);
    assert_int_equal(s.delay_us, 2 * S);
    s = router_next(&r, ROUTER_RATE_LIMITED, 0, t + 2 * S);
    assert_step(s, true, 0, false);
    assert_int_equal(s.delay_us, 0);
    s = router_next(&r, ROUTER_RATE_LIMITED, 1000, t + 2 * S); /* retries used up */
    assert_step(s, true, 1, true);
    assert_int_equal(s.delay_us, 0);
    /* One that does not fit what is left of the budget: the next target at once. */
    s = router_next(&r, ROUTER_RATE_LIMITED, 28000, t + 2 * S);
    assert_step(s, false, 0, false); /* no target after the last one */
    router_init(&r, 2, f.br, 2, 100, 30, t + 30 * S, 7);
    router_first(&r, t);
    s = router_next(&r, ROUTER_RATE_LIMITED, 30000, t);
    assert_step(s, true, 1, true);
    assert_int_equal(s.delay_us, 0);
    /* Without a Retry-After, as a 503: backoff. */
    s = router_next(&r, ROUTER_RATE_LIMITED, -1, t);
    assert_step(s, true, 1, false);
    assert_true(s.delay_us <= 100 * MS);
    breakers_free(f.reg);
}

static void test_walk_deadline(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    int64_t t = 10 * S;
    /* 50 ms left: a backoff of up to 100 ms may not fit; whatever does not fit moves on
     * at once or ends the walk; what fits ends before the deadline. */
    for (uint64_t seed = 0; seed < 200; seed++) {
        router_init(&r, 2, f.br, 2, 1000, 30, t + 50 * MS, seed);
        router_first(&r, t);
        struct router_step s = router_next(&r, ROUTER_RETRYABLE, -1, t);
        assert_true(s.go);
        if (s.target == 0)
            assert_true(t + s.delay_us < t + 50 * MS);
        else
            assert_int_equal(s.delay_us, 0);
    }
    /* Past the deadline nothing more is tried, not even the next target. */
    router_init(&r, 2, f.br, 2, 1000, 30, t + 1 * S, 7);
    router_first(&r, t);
    assert_false(router_next(&r, ROUTER_MISCONFIGURED, -1, t + 1 * S).go);
    router_init(&r, 2, f.br, 2, 1000, 30, t + 1 * S, 7);
    router_first(&r, t);
    assert_false(router_next(&r, ROUTER_RETRYABLE, -1, t + 2 * S).go);
    /* A single target and a wait that does not fit: give up. */
    router_init(&r, 1, f.br, 2, 1000, 30, t + 1 * S, 7);
    router_first(&r, t);
    assert_false(router_next(&r, ROUTER_RATE_LIMITED, 5000, t).go);
    /* No time at all, or no targets: not even a first attempt. */
    router_init(&r, 2, f.br, 2, 1000, 30, t, 7);
    assert_false(router_first(&r, t).go);
    router_init(&r, 0, f.br, 2, 1000, 30, t + S, 7);
    assert_false(router_first(&r, t).go);
    assert_false(router_next(&r, ROUTER_RETRYABLE, -1, t).go);
    breakers_free(f.reg);
}

static void test_walk_skips_open_breakers(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r;
    int64_t t = 100 * S;
    breaker_report(f.br[0], false, 1, 30, t);
    router_init(&r, 3, f.br, 2, 1, 30, t + 30 * S, 7);
    assert_step(router_first(&r, t), true, 1, false); /* a skipped first target */
    /* b fails and opens too: c, the only one left. */
    assert_step(router_next(&r, ROUTER_RETRYABLE, -1, t), true, 2, true);
    breaker_report(f.br[2], false, 1, 30, t);
    /* Every target skipped: the first anyway, once (its breaker is open). */
    router_init(&r, 3, f.br, 2, 1, 30, t + 30 * S, 7);
    assert_step(router_first(&r, t), true, 0, false);
    assert_false(router_next(&r, ROUTER_RETRYABLE, -1, t).go);
    /* The same provider twice in a model: its breaker is shared. */
    struct breaker *twice[2] = { f.br[1], f.br[1] };
    router_init(&r, 2, twice, 0, 1, 30, t + 30 * S, 7);
    assert_step(router_first(&r, t), true, 0, false); /* everything open: the first */
    assert_false(router_next(&r, ROUTER_RETRYABLE, -1, t).go);
    breakers_free(f.reg);
}

static void test_walk_probe(void **state)
{
    (void)state;
    struct fixture f = fixture();
    struct router r1, r2;
    int64_t t = 100 * S;
    breaker_report(f.br[0], false, 1, 30, t);
    t += 30 * S; /* cooled down: one request probes a, the other goes to b */
    router_init(&r1, 2, f.br, 2, 1, 30, t + 30 * S, 1);
    router_init(&r2, 2, f.br, 2, 1, 30, t + 30 * S, 2);
    assert_step(router_first(&r1, t), true, 0, false);
    assert_step(router_first(&r2, t), true, 1, false);
    /* A client error is no verdict: the probe slot is freed for the next request. */
    assert_false(router_next(&r1, ROUTER_CLIENT_ERROR, -1, t).go);
    assert_int_equal(breaker_state(f.br[0], t), 2);
    router_init(&r1, 2, f.br, 2, 1, 30, t + 30 * S, 1);
    assert_step(router_first(&r1, t), true, 0, false);
    /* An abandoned probe frees it too. */
    router_abandon(&r1);
    assert_false(router_next(&r1, ROUTER_OK, -1, t).go);
    router_init(&r1, 2, f.br, 2, 1, 30, t + 30 * S, 1);
    assert_step(router_first(&r1, t), true, 0, false);
    /* The probe succeeds: the breaker closes. */
    assert_false(router_next(&r1, ROUTER_OK, -1, t).go);
    assert_int_equal(breaker_state(f.br[0], t), 0);
    router_init(&r2, 2, f.br, 2, 1, 30, t + 30 * S, 2);
    assert_step(router_first(&r2, t), true, 0, false);
    breakers_free(f.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_every_row),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_backoff_bounds_and_spread),
        cmocka_unit_test(test_breaker_registry),
        cmocka_unit_test(test_breaker_opens_half_opens_closes),
        cmocka_unit_test(test_breaker_one_probe_under_threads),
        cmocka_unit_test(test_breaker_registry_under_threads),
        cmocka_unit_test(test_walk_retries_then_falls_back),
        cmocka_unit_test(test_walk_exhausted_gives_up),
        cmocka_unit_test(test_walk_misconfigured_moves_on_at_once),
        cmocka_unit_test(test_walk_client_error_stops_and_is_no_failure),
        cmocka_unit_test(test_walk_rate_limited),
        cmocka_unit_test(test_walk_deadline),
        cmocka_unit_test(test_walk_skips_open_breakers),
        cmocka_unit_test(test_walk_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
