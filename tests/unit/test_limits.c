/* Unit tests of src/services/limits*.c, in-process backend with injected time: the
 * request bucket's burst and refill, tokens charged at finish, the stream count,
 * Retry-After rounding, the headers and their duration format, the registry under
 * threads, and the REDIS_URL parser. (The Redis backend is tested against a real
 * redis-server by tests/integration/test_limits_redis.py.) */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "services/limits.h"

#define S  1000000LL /* one second in us */
#define T0 (1000 * S)

struct fixture {
    struct limits_shared *shared;
    struct limits *l;
    int refused[4]; /* requests, tokens, concurrency, other */
};

static void on_refused(void *arg, const char *reason)
{
    struct fixture *f = arg;
    int i = strcmp(reason, "requests") == 0      ? 0
            : strcmp(reason, "tokens") == 0      ? 1
            : strcmp(reason, "concurrency") == 0 ? 2
                                                 : 3;
    f->refused[i]++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->shared = limits_shared_new();
    f->l = limits_new(NULL, f->shared, NULL, true);
    assert_non_null(f->l);
    struct limits_hooks h = { .refused = on_refused, .arg = f };
    limits_set_hooks(f->l, &h);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    limits_free(f->l);
    limits_shared_free(f->shared);
    free(f);
    return 0;
}

static void never(void *arg, const struct limits_verdict *v, struct limits_ticket *t)
{
    (void)arg;
    (void)v;
    (void)t;
    fail_msg("the in-process backend never calls back");
}

/* Admits at now; the in-process backend always answers at once. */
static struct limits_verdict admit(struct fixture *f, const struct limits_spec *k, int64_t now,
                                   struct limits_ticket **t)
{
    struct limits_verdict v;
    struct limits_ticket *tk;
    struct limits_pending *p;
    assert_int_equal(limits_admit(f->l, k, now, never, NULL, &v, &tk, &p), 1);
    assert_null(p);
    if (t != NULL)
        *t = tk;
    else
        limits_finish(f->l, tk, 0, now);
    return v;
}

static void assert_duration(int64_t us, const char *want)
{
    char got[32];
    int n = limits_format_duration(us, got, sizeof got);
    assert_string_equal(got, want);
    assert_int_equal(n, strlen(want));
}

static void test_request_burst_then_refill(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "app", 3, 0, 0 };
    for (int i = 0; i < 3; i++) {
        struct limits_verdict v = admit(f, &k, T0, NULL);
        assert_int_equal(v.status, LIMITS_OK);
        assert_true(v.has_requests);
        assert_false(v.has_tokens);
        assert_int_equal(v.limit_requests, 3);
        assert_int_equal(v.remaining_requests, 2 - i);
        assert_int_equal(v.reset_requests_us, (i + 1) * 20 * S);
    }
    struct limits_verdict v = admit(f, &k, T0, NULL);
    assert_int_equal(v.status, LIMITS_REFUSED);
    assert_string_equal(v.reason, "requests");
    assert_int_equal(v.retry_after_s, 20);
    assert_int_equal(v.remaining_requests, 0);
    assert_int_equal(f->refused[0], 1);
    /* One token comes back every 20 s, not a microsecond sooner. */
    v = admit(f, &k, T0 + 20 * S - 1, NULL);
    assert_int_equal(v.status, LIMITS_REFUSED);
    assert_int_equal(v.retry_after_s, 1); /* 1 us rounds up to a whole second */
    v = admit(f, &k, T0 + 20 * S, NULL);
    assert_int_equal(v.status, LIMITS_OK);
    assert_int_equal(v.remaining_requests, 0);
    /* After a quiet minute the whole burst is back. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(admit(f, &k, T0 + 200 * S, NULL).status, LIMITS_OK);
    assert_int_equal(admit(f, &k, T0 + 200 * S, NULL).status, LIMITS_REFUSED);
}

static void test_keys_are_separate(void **state)
{
    struct fixture *f = *state;
    struct limits_spec a = { "a", 1, 0, 0 }, b = { "b", 1, 0, 0 };
    assert_int_equal(admit(f, &a, T0, NULL).status, LIMITS_OK);
    assert_int_equal(admit(f, &a, T0, NULL).status, LIMITS_REFUSED);
    assert_int_equal(admit(f, &b, T0, NULL).status, LIMITS_OK);
}

static void test_tokens_charged_at_finish(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "tok", 0, 1000, 0 };
    struct limits_ticket *t;
    struct limits_verdict v = admit(f, &k, T0, &t);
    assert_int_equal(v.status, LIMITS_OK);
    assert_non_null(t);
    assert_false(v.has_requests);
    assert_true(v.has_tokens);
    assert_int_equal(v.remaining_tokens, 1000);
    assert_int_equal(v.reset_tokens_us, 0);
    /* A second request may start while the first runs: nothing is charged yet. */
    struct limits_ticket *t2;
    assert_int_equal(admit(f, &k, T0, &t2).status, LIMITS_OK);
    limits_finish(f->l, t2, -1, T0); /* unknown usage charges nothing */
    limits_finish(f->l, t, 400, T0);
    v = admit(f, &k, T0, NULL);
    assert_int_equal(v.status, LIMITS_OK);
    assert_int_equal(v.remaining_tokens, 600);
    assert_int_equal(v.reset_tokens_us, 24 * S); /* 400 tokens at 1000/min */
    /* Overdrawn: 600 + 1100 used leaves the bucket at -500, i.e. 90 s of debt. */
    admit(f, &k, T0, &t);
    limits_finish(f->l, t, 1100, T0);
    v = admit(f, &k, T0, NULL);
    assert_int_equal(v.status, LIMITS_REFUSED);
    assert_string_equal(v.reason, "tokens");
    assert_int_equal(v.retry_after_s, 31); /* level > 0 after 30 s and a bit */
    assert_int_equal(v.remaining_tokens, 0);
    assert_int_equal(f->refused[1], 1);
    assert_int_equal(admit(f, &k, T0 + 30 * S, NULL).status, LIMITS_REFUSED); /* level 0 */
    v = admit(f, &k, T0 + 31 * S, NULL);
    assert_int_equal(v.status, LIMITS_OK);
    assert_int_equal(v.remaining_tokens, 16); /* 1 s of refill at 1000/min */
}

static void test_concurrency(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "conc", 2, 0, 1 };
    struct limits_ticket *t1, *t2;
    assert_int_equal(admit(f, &k, T0, &t1).status, LIMITS_OK);
    assert_non_null(t1);
    struct limits_verdict v = admit(f, &k, T0, &t2);
    assert_int_equal(v.status, LIMITS_REFUSED);
    assert_string_equal(v.reason, "concurrency");
    assert_int_equal(v.retry_after_s, 1);
    assert_null(t2);
    /* The refusal took no request token: after the first ends, one is left. */
    assert_int_equal(v.remaining_requests, 1);
    limits_finish(f->l, t1, 0, T0);
    v = admit(f, &k, T0, &t2);
    assert_int_equal(v.status, LIMITS_OK);
    assert_int_equal(v.remaining_requests, 0);
    /* The request limit refuses now, and gives the stream slot back. */
    v = admit(f, &k, T0, NULL);
    assert_string_equal(v.reason, "concurrency");
    limits_finish(f->l, t2, 0, T0);
    v = admit(f, &k, T0, &t1);
    assert_string_equal(v.reason, "requests");
    assert_null(t1);
    assert_int_equal(admit(f, &k, T0 + 30 * S, &t1).status, LIMITS_OK);
    limits_finish(f->l, t1, 0, T0 + 30 * S);
}

static void test_unlimited_key(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "free", 0, 0, 0 };
    struct limits_ticket *t;
    for (int i = 0; i < 1000; i++) {
        struct limits_verdict v = admit(f, &k, T0, &t);
        assert_int_equal(v.status, LIMITS_OK);
        assert_null(t);
        struct limits_header h[LIMITS_MAX_HEADERS];
        assert_int_equal(limits_headers(&v, h), 0);
    }
}

static void test_headers(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "hdr", 600, 200000, 0 };
    struct limits_ticket *t;
    struct limits_verdict v = admit(f, &k, T0, &t);
    limits_finish(f->l, t, 50000, T0);
    v = admit(f, &k, T0, &t);
    struct limits_header h[LIMITS_MAX_HEADERS];
    assert_int_equal(limits_headers(&v, h), 6);
    const char *want[][2] = {
        { "x-ratelimit-limit-requests", "600" },      { "x-ratelimit-remaining-requests", "598" },
        { "x-ratelimit-reset-requests", "200ms" },    { "x-ratelimit-limit-tokens", "200000" },
        { "x-ratelimit-remaining-tokens", "150000" }, { "x-ratelimit-reset-tokens", "15s" },
    };
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(h[i].name, want[i][0]);
        assert_string_equal(h[i].value, want[i][1]);
    }
    limits_finish(f->l, t, 0, T0);
}

static void test_format_duration(void **state)
{
    (void)state;
    assert_duration(0, "0s");
    assert_duration(-5, "0s");
    assert_duration(1, "1ms");
    assert_duration(20000, "20ms");
    assert_duration(999000, "999ms");
    assert_duration(999001, "1s");
    assert_duration(S, "1s");
    assert_duration(1500 * 1000, "1.5s");
    assert_duration(1050 * 1000, "1.05s");
    assert_duration(59999 * 1000 + 1, "1m0s");
    assert_duration(360 * S, "6m0s");
    assert_duration(90 * S, "1m30s");
    assert_duration(3600 * S, "1h0m0s");
    assert_duration(3723 * S + 4000, "1h2m3.004s");
    char small[4];
    assert_int_equal(limits_format_duration(360 * S, small, sizeof small), 4);
    assert_string_equal(small, "6m0");
}

static void test_retry_seconds_round_up(void **state)
{
    struct fixture *f = *state;
    struct limits_spec k = { "rnd", 7, 0, 0 }; /* one token every 8.571 s */
    for (int i = 0; i < 7; i++)
        assert_int_equal(admit(f, &k, T0, NULL).status, LIMITS_OK);
    struct limits_verdict v = admit(f, &k, T0, NULL);
    assert_int_equal(v.retry_after_s, 9);
    v = admit(f, &k, T0 + 8 * S, NULL);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(admit(f, &k, T0 + 9 * S, NULL).status, LIMITS_OK);
}

struct race {
    struct limits_shared *shared;
    int ok;
};

static void *admit_many(void *arg)
{
    struct race *r = arg;
    struct limits *l = limits_new(NULL, r->shared, NULL, true);
    struct limits_spec k = { "race", 1000, 0, 0 };
    for (int i = 0; i < 2000; i++) {
        struct limits_verdict v;
        struct limits_ticket *t;
        struct limits_pending *p;
        limits_admit(l, &k, T0, never, NULL, &v, &t, &p);
        r->ok += v.status == LIMITS_OK;
    }
    limits_free(l);
    return NULL;
}

/* Four workers, one key, same instant: exactly the burst is admitted in total. */
static void test_threads_share_buckets(void **state)
{
    struct fixture *f = *state;
    pthread_t th[4];
    struct race r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){ f->shared, 0 };
        pthread_create(&th[i], NULL, admit_many, &r[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].ok;
    }
    assert_int_equal(total, 1000);
}

static void parse_ok(const char *url, const char *host, int port, const char *path,
                     const char *user, const char *pw, int db)
{
    struct redis_url u;
    char err[512];
    if (limits_parse_redis_url(url, &u, err, sizeof err) != 0)
        fail_msg("%s: %s", url, err);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.path, path);
    assert_string_equal(u.user, user);
    assert_string_equal(u.password, pw);
    assert_int_equal(u.db, db);
}

static void test_parse_redis_url(void **state)
{
    (void)state;
    parse_ok("redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", "", 0);
    parse_ok("redis://redis", "redis", 6379, "", "", "", 0);
    parse_ok("redis://redis:7000/", "redis", 7000, "", "", "", 0);
    parse_ok("redis://:s3cret@redis.internal:6380/2", "redis.internal", 6380, "", "", "s3cret", 2);
    parse_ok("redis://chatd:p%40ss%3Aw@10.0.0.5:6379/0", "10.0.0.5", 6379, "", "chatd", "p@ss:w",
             0);
    parse_ok("redis://[::1]:6390", "::1", 6390, "", "", "", 0);
    parse_ok("unix:///run/redis/redis.sock", "", 6379, "/run/redis/redis.sock", "", "", 0);
    parse_ok("unix:///tmp/r.sock?db=3", "", 6379, "/tmp/r.sock", "", "", 3);
    parse_ok("unix://:pw@/tmp/r.sock", "", 6379, "/tmp/r.sock", "", "pw", 0);
    const char *bad[] = {
        "",
        "http://redis:6379",
        "rediss://redis:6379",
        "redis://",
        "redis://:topsecret@",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:port",
        "redis://host:6379/db",
        "redis://host:6379/-1",
        "redis://ho st",
        "redis://topsecret@host",
        "redis://:@host",
        "redis://:top%zzsecret@host",
        "redis://:top%00secret@host",
        "redis://[::1",
        "redis://host?x=1",
        "unix://",
        "unix://relative.sock",
        "unix:///tmp/r.sock?db=x",
        "unix:///tmp/r.sock?topsecret=1",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        struct redis_url u;
        char err[512];
        if (limits_parse_redis_url(bad[i], &u, err, sizeof err) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_non_null(strstr(err, "REDIS_URL is not valid: "));
        assert_non_null(strstr(err, ". Use redis://"));
        assert_null(strstr(err, "topsecret"));
        assert_int_equal(u.password[0], '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_burst_then_refill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_charged_at_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlimited_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test_setup_teardown(test_retry_seconds_round_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_buckets, setup, teardown),
        cmocka_unit_test(test_parse_redis_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
