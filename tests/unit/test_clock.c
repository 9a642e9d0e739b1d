/* Unit tests of src/core/clock.c: ISO 8601 formatting of known instants, checked
 * also against glibc's gmtime_r, and the two clocks. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"

static void test_format_known_instants(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { 1, "1970-01-01T00:00:00.001Z" },
        { 86399999, "1970-01-01T23:59:59.999Z" },
        { 86400000, "1970-01-02T00:00:00.000Z" },
        { 951782400000, "2000-02-29T00:00:00.000Z" },
        { 951868800000, "2000-03-01T00:00:00.000Z" },
        { 1795672800123, "2026-11-26T06:00:00.123Z" },
        { 4107587696000, "2100-03-01T12:34:56.000Z" },
        { -1, "1969-12-31T23:59:59.999Z" },
        { -999, "1969-12-31T23:59:59.001Z" },
        { -1000, "1969-12-31T23:59:59.000Z" },
        { -1001, "1969-12-31T23:59:58.999Z" },
        { -86400000, "1969-12-31T00:00:00.000Z" },
        { -2208988800000, "1900-01-01T00:00:00.000Z" },
        { 253402300799999, "9999-12-31T23:59:59.999Z" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char out[CLOCK_ISO8601_LEN + 1];
        memset(out, 'x', sizeof out);
        clock_format_iso8601(cases[i].ms, out);
        assert_string_equal(out, cases[i].want);
    }
}

/* The same instant as glibc formats it. */
static void reference(int64_t ms, char *out, size_t n)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    time_t t = (time_t)secs;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - secs * 1000));
}

static void test_format_matches_gmtime(void **state)
{
    (void)state;
    srand(12345);
    const int64_t max_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
    for (int i = 0; i < 200000; i++) {
        uint64_t r = ((uint64_t)rand() << 32) ^ ((uint64_t)rand() << 8) ^ (uint64_t)rand();
        int64_t ms = (int64_t)(r % (uint64_t)max_ms);
        if (i % 4 == 0)
            ms = -(ms % 62135596800000); /* back to year 1 */
        char got[CLOCK_ISO8601_LEN + 1], want[64];
        clock_format_iso8601(ms, got);
        reference(ms, want, sizeof want);
        if (strcmp(got, want) != 0)
            fail_msg("%lld: got %s, want %s", (long long)ms, got, want);
    }
}

static void test_now_is_wall_time(void **state)
{
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t now = clock_wall_ms();
    assert_true(now >= before && now - before < 1000);

    /* Same minute as glibc's reading of the wall clock (retried in case the
     * minute turns between the two readings). */
    bool same = false;
    for (int attempt = 0; attempt < 3 && !same; attempt++) {
        char got[CLOCK_ISO8601_LEN + 1], want[64];
        clock_now_iso8601(got);
        assert_int_equal(strlen(got), CLOCK_ISO8601_LEN);
        assert_int_equal(got[23], 'Z');
        reference(clock_wall_ms(), want, sizeof want);
        same = memcmp(got, want, 17) == 0;
    }
    assert_true(same);
}

static void test_monotonic_advances(void **state)
{
    (void)state;
    int64_t a = clock_mono_us();
    struct timespec pause = { 0, 20 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    int64_t b = clock_mono_us();
    assert_true(b - a >= 20000);
    assert_true(b - a < 5 * 1000 * 1000);
    for (int i = 0; i < 1000; i++) {
        int64_t c = clock_mono_us();
        assert_true(c >= b);
        b = c;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_known_instants),
        cmocka_unit_test(test_format_matches_gmtime),
        cmocka_unit_test(test_now_is_wall_time),
        cmocka_unit_test(test_monotonic_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
