/* Unit tests of src/core/metrics.c: shards add up, the exposition text is
 * well-formed (HELP/TYPE before samples, cumulative histograms ending in +Inf ==
 * _count), and the open-stream gate holds its limit, also under threads. */
#include "unit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/metrics.h"
#include "models/error.h"

/* The value of the sample line "<series> <value>", or NAN when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return NAN;
}

static char *render(struct metrics *m)
{
    size_t len = 0;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_int_equal(text[len - 1], '\n');
    return text;
}

static void assert_sample(const char *text, const char *series, double want)
{
    double got = sample(text, series);
    if (!(got == want))
        fail_msg("%s is %g, want %g", series, got, want);
}

static void test_counters_add_up_across_shards(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(4);
    assert_non_null(m);
    for (int i = 0; i < 4; i++) {
        struct metrics_shard *s = metrics_shard(m, i);
        for (int k = 0; k <= i; k++)
            metrics_request(s, ROUTE_CHAT, 200);
        metrics_request(s, ROUTE_HEALTH, 200);
        metrics_request(s, ROUTE_OTHER, 404);
        metrics_request(s, ROUTE_CHAT, 418); /* not a listed status */
        metrics_tokens(s, 10, 3);
        metrics_tokens(s, -1, 0); /* unknown usage adds nothing */
        metrics_client_disconnect(s);
        metrics_accept_paused(s);
    }
    char *text = render(m);
    assert_sample(text, "chatd_http_requests_total{route=\"/chat\",status=\"200\"}", 1 + 2 + 3 + 4);
    assert_sample(text, "chatd_http_requests_total{route=\"/health\",status=\"200\"}", 4);
    assert_sample(text, "chatd_http_requests_total{route=\"other\",status=\"404\"}", 4);
    assert_sample(text, "chatd_http_requests_total{route=\"/chat\",status=\"other\"}", 4);
    assert_true(
        isnan(sample(text, "chatd_http_requests_total{route=\"/metrics\",status=\"200\"}")));
    assert_sample(text, "chatd_tokens_total{type=\"prompt\"}", 40);
    assert_sample(text, "chatd_tokens_total{type=\"completion\"}", 12);
    assert_sample(text, "chatd_client_disconnects_total", 4);
    assert_sample(text, "chatd_accept_pauses_total", 4);
    free(text);
    metrics_free(m);
}

static void test_fresh_registry_renders_zeros(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(1);
    char *text = render(m);
    assert_sample(text, "chatd_http_requests_total{route=\"/chat\",status=\"200\"}", 0);
    assert_sample(text, "chatd_active_streams", 0);
    assert_sample(text, "chatd_streams_total{outcome=\"completed\"}", 0);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"+Inf\"}", 0);
    assert_sample(text, "chatd_time_to_first_token_seconds_count", 0);
    assert_sample(text, "chatd_stream_duration_seconds_sum", 0);
    free(text);
    metrics_free(m);
}

/* The family a sample belongs to: its name without labels and, for histograms,
 * without the _bucket/_sum/_count suffix. */
static void family_of(const char *line, char *out, size_t n, const char *types)
{
    size_t k = strcspn(line, "{ ");
    snprintf(out, n, "%.*s", (int)k, line);
    static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
    for (size_t i = 0; i < N_ELEMS(suffixes); i++) {
        size_t s = strlen(suffixes[i]), len = strlen(out);
        if (len > s && strcmp(out + len - s, suffixes[i]) == 0) {
            char base[128], want[160];
            snprintf(base, sizeof base, "%.*s", (int)(len - s), out);
            snprintf(want, sizeof want, "# TYPE %s histogram\n", base);
            if (strstr(types, want) != NULL)
                snprintf(out, n, "%s", base);
        }
    }
}

static void test_help_and_type_before_samples(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    metrics_upstream_error(metrics_shard(m, 1), error_code_name(ERR_UPSTREAM_ERROR));
    metrics_upstream_attempt(metrics_shard(m, 0), "openai", "ok");
    metrics_provider_first_token(metrics_shard(m, 0), "openai", 0.1);
    metrics_breaker_state(m, "local", 1);
    metrics_key_streams(m, "web-app", 1);
    metrics_limit_refused(metrics_shard(m, 1), "tokens");
    metrics_redis_rtt(metrics_shard(m, 1), 0.001);
    char *text = render(m);
    char seen[8192] = ""; /* "# TYPE name type\n" lines so far */
    int samples = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        char name[128], type[32], want[200];
        if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            snprintf(want, sizeof want, "# TYPE %s ", name);
            if (strstr(seen, want) != NULL)
                fail_msg("TYPE of %s given twice", name);
            snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s\n", line);
            continue;
        }
        if (strncmp(line, "# HELP ", 7) == 0) {
            /* HELP comes right before TYPE: the next line is this family's TYPE. */
            assert_true(sscanf(line, "# HELP %127s", name) == 1);
            snprintf(want, sizeof want, "# TYPE %s ", name);
            assert_memory_equal(nl + 1, want, strlen(want));
            continue;
        }
        assert_true(line[0] != '#' && line[0] != '\0');
        family_of(line, name, sizeof name, seen);
        snprintf(want, sizeof want, "# TYPE %s ", name);
        if (strstr(seen, want) == NULL)
            fail_msg("sample before its TYPE: %s", line);
        char *end;
        strtod(strrchr(line, ' ') + 1, &end);
        assert_int_equal(*end, '\0');
        samples++;
    }
    assert_true(samples > 40);
    free(text);
    metrics_free(m);
}

/* Checks that the buckets of a histogram series are cumulative and end in +Inf ==
 * _count; name may carry labels, e.g. x{provider="a"}. */
static void assert_histogram(const char *text, const char *name, double count)
{
    char base[128], labels[128] = "", prefix[300], series[300];
    size_t k = strcspn(name, "{");
    snprintf(base, sizeof base, "%.*s", (int)k, name);
    if (name[k] == '{')
        snprintf(labels, sizeof labels, "%.*s,", (int)(strlen(name) - k - 2), name + k + 1);
    snprintf(prefix, sizeof prefix, "%s_bucket{%sle=\"", base, labels);
    double last = 0;
    int buckets = 0;
    for (const char *p = strstr(text, prefix); p != NULL; p = strstr(p + 1, prefix)) {
        double v = strtod(strchr(p, ' ') + 1, NULL);
        assert_true(v >= last);
        last = v;
        buckets++;
    }
    assert_true(buckets > 5);
    snprintf(series, sizeof series, "%s_bucket{%sle=\"+Inf\"}", base, labels);
    assert_sample(text, series, count);
    assert_true(last == count); /* +Inf is the last bucket */
    snprintf(series, sizeof series, "%s_count%s", base, name + k);
    assert_sample(text, series, count);
}

static void test_ttft_histogram(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(3);
    const double obs[] = { 0.0005, 0.001, 0.002, 0.3, 0.3, 100 };
    for (size_t i = 0; i < N_ELEMS(obs); i++)
        metrics_first_token(metrics_shard(m, (int)(i % 3)), obs[i]);
    char *text = render(m);
    const char *h = "chatd_time_to_first_token_seconds";
    assert_histogram(text, h, 6);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"0.001\"}", 2);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"0.0025\"}", 3);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"0.25\"}", 3);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"0.5\"}", 5);
    assert_sample(text, "chatd_time_to_first_token_seconds_bucket{le=\"60\"}", 5);
    double sum = sample(text, "chatd_time_to_first_token_seconds_sum");
    assert_true(fabs(sum - 100.6035) < 1e-5);
    free(text);
    metrics_free(m);
}

static void test_streams_and_duration_histogram(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    metrics_stream_done(metrics_shard(m, 0), OUTCOME_COMPLETED, 0.2);
    metrics_stream_done(metrics_shard(m, 1), OUTCOME_COMPLETED, 1.0);
    metrics_stream_done(metrics_shard(m, 1), OUTCOME_ERROR, 700);
    metrics_stream_done(metrics_shard(m, 0), OUTCOME_TIMEOUT, 60);
    metrics_stream_done(metrics_shard(m, 0), OUTCOME_CLIENT_DISCONNECTED, 0);
    char *text = render(m);
    assert_sample(text, "chatd_streams_total{outcome=\"completed\"}", 2);
    assert_sample(text, "chatd_streams_total{outcome=\"error\"}", 1);
    assert_sample(text, "chatd_streams_total{outcome=\"timeout\"}", 1);
    assert_sample(text, "chatd_streams_total{outcome=\"client_disconnected\"}", 1);
    assert_histogram(text, "chatd_stream_duration_seconds", 5);
    assert_sample(text, "chatd_stream_duration_seconds_bucket{le=\"0.01\"}", 1);
    assert_sample(text, "chatd_stream_duration_seconds_bucket{le=\"1\"}", 3);
    assert_sample(text, "chatd_stream_duration_seconds_bucket{le=\"60\"}", 4);
    assert_sample(text, "chatd_stream_duration_seconds_bucket{le=\"600\"}", 4);
    assert_true(fabs(sample(text, "chatd_stream_duration_seconds_sum") - 761.2) < 1e-6);
    free(text);
    metrics_free(m);
}

static void test_upstream_errors_by_code(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    metrics_upstream_error(metrics_shard(m, 0), error_code_name(ERR_UPSTREAM_UNREACHABLE));
    metrics_upstream_error(metrics_shard(m, 1), error_code_name(ERR_UPSTREAM_TLS));
    metrics_upstream_error(metrics_shard(m, 0), error_code_name(ERR_UPSTREAM_BAD_REQUEST));
    metrics_upstream_error(metrics_shard(m, 1), error_code_name(ERR_UPSTREAM_NOT_FOUND));
    metrics_upstream_error(metrics_shard(m, 1), error_code_name(ERR_UPSTREAM_RATE_LIMITED));
    char *text = render(m);
    assert_sample(text, "chatd_upstream_errors_total{code=\"upstream_unreachable\"}", 2);
    assert_sample(text, "chatd_upstream_errors_total{code=\"upstream_bad_request\"}", 2);
    assert_sample(text, "chatd_upstream_errors_total{code=\"upstream_rate_limited\"}", 1);
    assert_sample(text, "chatd_upstream_errors_total{code=\"upstream_timeout\"}", 0);
    /* Each code appears once, though two catalogue entries share it. */
    const char *first = strstr(text, "code=\"upstream_unreachable\"");
    assert_null(strstr(first + 1, "code=\"upstream_unreachable\""));
    /* Every provider failure of the catalogue has its sample (metrics keeps the names). */
    for (int e = ERR_UPSTREAM_UNREACHABLE; e <= ERR_UPSTREAM_TIMEOUT; e++) {
        char label[80];
        snprintf(label, sizeof label, "code=\"%s\"", error_code_name(e));
        if (strstr(text, label) == NULL)
            fail_msg("no chatd_upstream_errors_total sample for %s", label);
    }
    free(text);
    metrics_free(m);
}

static void test_stream_gate_limit(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(metrics_stream_acquire(m, 3), 0);
    assert_int_equal(metrics_stream_acquire(m, 3), -1);
    assert_int_equal(metrics_active_streams(m), 3);
    char *text = render(m);
    assert_sample(text, "chatd_active_streams", 3);
    free(text);
    metrics_stream_release(m);
    assert_int_equal(metrics_active_streams(m), 2);
    assert_int_equal(metrics_stream_acquire(m, 3), 0);
    assert_int_equal(metrics_stream_acquire(m, 3), -1);
    assert_int_equal(metrics_stream_acquire(m, 4), 0); /* the limit is per call */
    metrics_free(m);
}

struct racer {
    struct metrics *m;
    atomic_int *won;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 1000; i++)
        if (metrics_stream_acquire(r->m, 100) == 0)
            atomic_fetch_add(r->won, 1);
    return NULL;
}

static void test_stream_gate_under_threads(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(4);
    atomic_int won = 0;
    struct racer r = { m, &won };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&won), 100);
    assert_int_equal(metrics_active_streams(m), 100);
    metrics_free(m);
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(metrics_outcome_name(OUTCOME_COMPLETED), "completed");
    assert_string_equal(metrics_outcome_name(OUTCOME_ERROR), "error");
    assert_string_equal(metrics_outcome_name(OUTCOME_TIMEOUT), "timeout");
    assert_string_equal(metrics_outcome_name(OUTCOME_CLIENT_DISCONNECTED), "client_disconnected");
}

/* ---- labelled series ---------------------------------------------------------------- */

static void test_routing_series_by_provider(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    struct metrics_shard *s0 = metrics_shard(m, 0), *s1 = metrics_shard(m, 1);
    metrics_upstream_attempt(s0, "openai", "retryable");
    metrics_upstream_attempt(s1, "openai", "retryable");
    metrics_upstream_attempt(s1, "openai", "ok");
    metrics_upstream_attempt(s0, "local", "misconfigured");
    metrics_upstream_attempt(s0, "local", "bogus");
    metrics_retry(s0, "openai");
    metrics_retry(s1, "openai");
    metrics_fallback(s1, "local");
    metrics_provider_first_token(s0, "openai", 0.2);
    metrics_provider_first_token(s1, "openai", 3);
    metrics_provider_first_token(s1, "local", 0.0001);
    metrics_breaker_state(m, "local", 1);
    metrics_breaker_state(m, "idle", 2);
    char *text = render(m);
    const char *a = "chatd_upstream_attempts_total";
    char series[200];
    static const struct {
        const char *provider, *outcome;
        double want;
    } attempts[] = {
        { "openai", "ok", 1 },           { "openai", "retryable", 2 },
        { "openai", "rate_limited", 0 }, { "openai", "misconfigured", 0 },
        { "openai", "client_error", 0 }, { "local", "misconfigured", 1 },
        { "local", "other", 1 },         { "idle", "ok", 0 },
    };
    for (size_t i = 0; i < N_ELEMS(attempts); i++) {
        snprintf(series, sizeof series, "%s{provider=\"%s\",outcome=\"%s\"}", a,
                 attempts[i].provider, attempts[i].outcome);
        assert_sample(text, series, attempts[i].want);
    }
    assert_true(isnan(sample(text, "chatd_upstream_attempts_total{provider=\"openai\","
                                   "outcome=\"other\"}")));
    assert_true(isnan(sample(text, "chatd_upstream_attempts_total{provider=\"other\","
                                   "outcome=\"ok\"}")));
    assert_sample(text, "chatd_upstream_retries_total{provider=\"openai\"}", 2);
    assert_sample(text, "chatd_upstream_retries_total{provider=\"local\"}", 0);
    assert_sample(text, "chatd_upstream_fallbacks_total{provider=\"local\"}", 1);
    assert_sample(text, "chatd_upstream_fallbacks_total{provider=\"openai\"}", 0);
    assert_histogram(text, "chatd_provider_time_to_first_token_seconds{provider=\"openai\"}", 2);
    assert_sample(text,
                  "chatd_provider_time_to_first_token_seconds_bucket{provider=\"openai\","
                  "le=\"0.25\"}",
                  1);
    assert_sample(text, "chatd_provider_time_to_first_token_seconds_sum{provider=\"openai\"}", 3.2);
    assert_histogram(text, "chatd_provider_time_to_first_token_seconds{provider=\"local\"}", 1);
    assert_histogram(text, "chatd_provider_time_to_first_token_seconds{provider=\"idle\"}", 0);
    assert_sample(text, "chatd_breaker_state{provider=\"local\"}", 1);
    assert_sample(text, "chatd_breaker_state{provider=\"idle\"}", 2);
    assert_sample(text, "chatd_breaker_state{provider=\"openai\"}", 0);
    metrics_breaker_state(m, "local", 0);
    free(text);
    text = render(m);
    assert_sample(text, "chatd_breaker_state{provider=\"local\"}", 0);
    free(text);
    metrics_free(m);
}

static void test_label_values_escaped(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(1);
    metrics_retry(metrics_shard(m, 0), "a\"b\\c\nd");
    metrics_key_streams(m, "web \"app\"", 1);
    char *text = render(m);
    assert_sample(text, "chatd_upstream_retries_total{provider=\"a\\\"b\\\\c\\nd\"}", 1);
    assert_sample(text, "chatd_key_active_streams{key=\"web \\\"app\\\"\"}", 1);
    /* No raw newline inside a label: every line is a comment or a whole sample. */
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1)
        assert_true(line[0] == '#' || memchr(line, '}', (size_t)(nl - line)) != NULL ||
                    memchr(line, '{', (size_t)(nl - line)) == NULL);
    free(text);
    metrics_free(m);
}

static void test_names_beyond_the_table_are_other(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    for (int i = 0; i < METRICS_MAX_NAMES + 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", i);
        metrics_retry(metrics_shard(m, i % 2), name);
        metrics_breaker_state(m, name, 1);
        snprintf(name, sizeof name, "key%d", i);
        metrics_key_streams(m, name, 2);
    }
    metrics_retry(metrics_shard(m, 0), NULL);
    metrics_retry(metrics_shard(m, 0), "p0");
    char *text = render(m);
    assert_sample(text, "chatd_upstream_retries_total{provider=\"p0\"}", 2);
    assert_sample(text, "chatd_upstream_retries_total{provider=\"p63\"}", 1);
    assert_true(isnan(sample(text, "chatd_upstream_retries_total{provider=\"p64\"}")));
    assert_sample(text, "chatd_upstream_retries_total{provider=\"other\"}", 4);
    assert_sample(text, "chatd_breaker_state{provider=\"p63\"}", 1);
    assert_true(isnan(sample(text, "chatd_breaker_state{provider=\"other\"}")));
    assert_sample(text, "chatd_key_active_streams{key=\"key63\"}", 2);
    assert_sample(text, "chatd_key_active_streams{key=\"other\"}", 6);
    /* "other" is rendered once per family, after the names. */
    const char *o = strstr(text, "chatd_upstream_retries_total{provider=\"other\"}");
    assert_null(strstr(o + 1, "chatd_upstream_retries_total{provider=\"other\"}"));
    free(text);
    metrics_free(m);
}

static void test_limits_and_redis(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(2);
    char *text = render(m);
    /* The known reasons exist before the first refusal; "other" does not. */
    assert_sample(text, "chatd_limit_refused_total{reason=\"requests\"}", 0);
    assert_sample(text, "chatd_limit_refused_total{reason=\"tokens\"}", 0);
    assert_sample(text, "chatd_limit_refused_total{reason=\"concurrency\"}", 0);
    assert_sample(text, "chatd_limit_refused_total{reason=\"unavailable\"}", 0);
    assert_true(isnan(sample(text, "chatd_limit_refused_total{reason=\"other\"}")));
    assert_sample(text, "chatd_redis_errors_total", 0);
    assert_sample(text, "chatd_redis_unavailable_total", 0);
    assert_histogram(text, "chatd_redis_round_trip_seconds", 0);
    free(text);
    struct metrics_shard *s0 = metrics_shard(m, 0), *s1 = metrics_shard(m, 1);
    metrics_limit_refused(s0, "requests");
    metrics_limit_refused(s1, "requests");
    metrics_limit_refused(s1, "concurrency");
    metrics_redis_rtt(s0, 0.00005);
    metrics_redis_rtt(s0, 0.0003);
    metrics_redis_rtt(s1, 0.002);
    metrics_redis_rtt(s1, 1);
    metrics_redis_error(s0);
    metrics_redis_error(s1);
    metrics_redis_unavailable(s1);
    metrics_key_streams(m, "web-app", 1);
    metrics_key_streams(m, "web-app", 1);
    metrics_key_streams(m, "batch", 1);
    metrics_key_streams(m, "web-app", -1);
    text = render(m);
    assert_sample(text, "chatd_limit_refused_total{reason=\"requests\"}", 2);
    assert_sample(text, "chatd_limit_refused_total{reason=\"concurrency\"}", 1);
    assert_sample(text, "chatd_limit_refused_total{reason=\"tokens\"}", 0);
    assert_histogram(text, "chatd_redis_round_trip_seconds", 4);
    assert_sample(text, "chatd_redis_round_trip_seconds_bucket{le=\"0.0001\"}", 1);
    assert_sample(text, "chatd_redis_round_trip_seconds_bucket{le=\"0.0005\"}", 2);
    assert_sample(text, "chatd_redis_round_trip_seconds_bucket{le=\"0.0025\"}", 3);
    assert_sample(text, "chatd_redis_round_trip_seconds_bucket{le=\"0.25\"}", 3);
    assert_true(fabs(sample(text, "chatd_redis_round_trip_seconds_sum") - 1.00235) < 2e-6);
    assert_sample(text, "chatd_redis_errors_total", 2);
    assert_sample(text, "chatd_redis_unavailable_total", 1);
    assert_sample(text, "chatd_key_active_streams{key=\"web-app\"}", 1);
    assert_sample(text, "chatd_key_active_streams{key=\"batch\"}", 1);
    free(text);
    metrics_free(m);
}

struct namer {
    struct metrics *m;
    int shard;
};

static void *name_race(void *arg)
{
    struct namer *n = arg;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 100; i++) {
            char name[32];
            snprintf(name, sizeof name, "prov-%d", (i * 7 + n->shard) % 100);
            metrics_upstream_attempt(metrics_shard(n->m, n->shard), name, "ok");
        }
    return NULL;
}

static void test_interning_under_threads(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    struct metrics *m = metrics_new(THREADS);
    struct namer n[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        n[i] = (struct namer){ m, i };
        assert_int_equal(pthread_create(&t[i], NULL, name_race, &n[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = render(m);
    /* 64 names, each once, plus "other": every attempt counted exactly once. */
    const char *prefix = "chatd_upstream_attempts_total{provider=\"";
    double total = 0;
    int series = 0;
    for (const char *p = strstr(text, prefix); p != NULL; p = strstr(p + 1, prefix)) {
        const char *end = strchr(p, '\n');
        if (strstr(p, "outcome=\"ok\"") < end) {
            char line[128];
            snprintf(line, sizeof line, "%.*s", (int)(strchr(p, ' ') - p), p);
            const char *again = strstr(end, line);
            if (again != NULL && again[strlen(line)] == ' ')
                fail_msg("%s rendered twice", line);
            series++;
            total += strtod(strchr(p, ' ') + 1, NULL);
        }
    }
    assert_int_equal(series, METRICS_MAX_NAMES + 1);
    assert_true(total == THREADS * 3 * 100);
    free(text);
    metrics_free(m);
}

static void refresh(void *ctx, struct metrics *m)
{
    (*(int *)ctx)++;
    metrics_breaker_state(m, "p", 2);
}

static void test_on_render_hook(void **state)
{
    (void)state;
    struct metrics *m = metrics_new(1);
    int calls = 0;
    metrics_on_render(m, refresh, &calls);
    char *text = render(m);
    assert_int_equal(calls, 1);
    assert_sample(text, "chatd_breaker_state{provider=\"p\"}", 2);
    free(text);
    metrics_on_render(m, NULL, NULL);
    free(render(m));
    assert_int_equal(calls, 1);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_add_up_across_shards),
        cmocka_unit_test(test_fresh_registry_renders_zeros),
        cmocka_unit_test(test_help_and_type_before_samples),
        cmocka_unit_test(test_ttft_histogram),
        cmocka_unit_test(test_streams_and_duration_histogram),
        cmocka_unit_test(test_upstream_errors_by_code),
        cmocka_unit_test(test_stream_gate_limit),
        cmocka_unit_test(test_stream_gate_under_threads),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_routing_series_by_provider),
        cmocka_unit_test(test_label_values_escaped),
        cmocka_unit_test(test_names_beyond_the_table_are_other),
        cmocka_unit_test(test_limits_and_redis),
        cmocka_unit_test(test_interning_under_threads),
        cmocka_unit_test(test_on_render_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
