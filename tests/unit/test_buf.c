/* Unit tests of src/core/buf.c: growth, appends, NUL termination. */
#include "unit.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"

static void test_empty_buffer_is_valid(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.p);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_reserve_grows_by_doubling(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_reserve(&b, 10), 0);
    assert_int_equal(b.cap, 256);
    assert_int_equal(buf_reserve(&b, 255), 0); /* 255 + NUL still fits */
    assert_int_equal(b.cap, 256);
    assert_int_equal(buf_reserve(&b, 256), 0);
    assert_int_equal(b.cap, 512);
    assert_int_equal(buf_reserve(&b, 5000), 0);
    assert_int_equal(b.cap, 8192);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_appends_keep_content_and_nul(void **state)
{
    (void)state;
    struct buf b = { 0 };
    char want[20000];
    size_t n = 0;
    for (int i = 0; i < 2000; i++) {
        char piece[16];
        int k = snprintf(piece, sizeof piece, "%d,", i);
        assert_int_equal(buf_append(&b, piece, (size_t)k), 0);
        memcpy(want + n, piece, (size_t)k);
        n += (size_t)k;
        assert_int_equal(b.len, n);
        assert_true(b.cap > b.len);
        assert_int_equal(b.p[b.len], '\0');
    }
    assert_memory_equal(b.p, want, n);
    buf_free(&b);
}

static void test_append_binary_and_str(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(buf_append_str(&b, "cd"), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "a\0bcd", 6);
    buf_free(&b);
}

static void test_append_int(void **state)
{
    (void)state;
    static const struct {
        long long v;
        const char *want;
    } cases[] = {
        { 0, "0" },
        { -1, "-1" },
        { 1024, "1024" },
        { LLONG_MAX, "9223372036854775807" },
        { LLONG_MIN, "-9223372036854775808" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct buf b = { 0 };
        assert_int_equal(buf_append_str(&b, "n="), 0);
        assert_int_equal(buf_append_int(&b, cases[i].v), 0);
        assert_string_equal(b.p + 2, cases[i].want);
        assert_int_equal(b.len, 2 + strlen(cases[i].want));
        buf_free(&b);
    }
}

static void test_append_json_escapes(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_append_str(&b, "\""), 0);
    assert_int_equal(buf_append_json(&b, "a\"b\\c\n\x01\xff", 8), 0);
    assert_int_equal(buf_append_str(&b, "\""), 0);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\\ufffd\"");
    assert_int_equal(b.len, strlen(b.p));
    buf_free(&b);
}

static void test_append_json_large_input_grows(void **state)
{
    (void)state;
    /* Every byte escapes to six, the worst case the reservation must cover. */
    size_t n = 10000;
    char *in = malloc(n);
    assert_non_null(in);
    memset(in, 0x01, n);
    struct buf b = { 0 };
    assert_int_equal(buf_append_json(&b, in, n), 0);
    assert_int_equal(b.len, 6 * n);
    assert_memory_equal(b.p + 6 * (n - 1), "\\u0001", 6);
    assert_int_equal(b.p[b.len], '\0');
    free(in);
    buf_free(&b);
}

static void test_free_twice_is_safe(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(buf_append_str(&b, "x"), 0);
    buf_free(&b);
    buf_free(&b);
    assert_int_equal(buf_append_str(&b, "again"), 0);
    assert_string_equal(b.p, "again");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_buffer_is_valid),
        cmocka_unit_test(test_reserve_grows_by_doubling),
        cmocka_unit_test(test_appends_keep_content_and_nul),
        cmocka_unit_test(test_append_binary_and_str),
        cmocka_unit_test(test_append_int),
        cmocka_unit_test(test_append_json_escapes),
        cmocka_unit_test(test_append_json_large_input_grows),
        cmocka_unit_test(test_free_twice_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
