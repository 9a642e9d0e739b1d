/* Unit tests of src/core/jsonw.c: JSON string escaping and UTF-8 validation. Every
 * output is also read back with jansson, which is strict about UTF-8. */
#include "unit.h"

#include <stdlib.h>

#include "core/jsonw.h"

#define FFFD "\xef\xbf\xbd" /* U+FFFD REPLACEMENT CHARACTER in UTF-8 */

/* Escapes s[0..n) into a NUL-terminated malloc'd string the caller frees. */
static char *escape(const char *s, size_t n, size_t *out_len)
{
    char *out = malloc(JSONW_ESCAPE_BOUND(n) + 1);
    assert_non_null(out);
    size_t len = jsonw_escape(out, s, n);
    assert_true(len <= JSONW_ESCAPE_BOUND(n));
    out[len] = '\0';
    if (out_len != NULL)
        *out_len = len;
    return out;
}

/* Wraps the escaped s in quotes, parses it with jansson and returns the decoded
 * string (malloc'd; the test fails when jansson refuses it). */
static char *round_trip(const char *s, size_t n, size_t *decoded_len)
{
    size_t len;
    char *esc = escape(s, n, &len);
    char *doc = malloc(len + 3);
    assert_non_null(doc);
    doc[0] = '"';
    memcpy(doc + 1, esc, len);
    doc[len + 1] = '"';
    json_t *v = unit_json(doc, len + 2);
    assert_true(json_is_string(v));
    *decoded_len = json_string_length(v);
    char *decoded = malloc(*decoded_len + 1);
    assert_non_null(decoded);
    memcpy(decoded, json_string_value(v), *decoded_len + 1);
    json_decref(v);
    free(doc);
    free(esc);
    return decoded;
}

static void test_escape_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        { "", 0, "" },
        { "plain text", 10, "plain text" },
        { "\"", 1, "\\\"" },
        { "\\", 1, "\\\\" },
        { "\n", 1, "\\n" },
        { "\r", 1, "\\r" },
        { "\t", 1, "\\t" },
        { "\b", 1, "\\b" },
        { "\f", 1, "\\f" },
        { "\0", 1, "\\u0000" },
        { "\x01", 1, "\\u0001" },
        { "\x0b", 1, "\\u000b" },
        { "\x1f", 1, "\\u001f" },
        { "\x7f", 1, "\x7f" },
        { "/", 1, "/" },
        { "a\"b\\c\r\n", 7, "a\\\"b\\\\c\\r\\n" },
        { "</script>", 9, "</script>" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char *got = escape(cases[i].in, cases[i].n, NULL);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

/* What one byte alone must decode to. */
static const char *expected_single(unsigned c, char *tmp)
{
    if (c >= 0x80)
        return FFFD;
    tmp[0] = (char)c;
    tmp[1] = '\0';
    return tmp;
}

static void test_every_single_byte(void **state)
{
    (void)state;
    for (unsigned c = 0; c <= 0xff; c++) {
        char in = (char)c, tmp[2];
        size_t n;
        char *got = round_trip(&in, 1, &n);
        const char *want = expected_single(c, tmp);
        size_t want_n = c == 0 ? 1 : strlen(want);
        if (n != want_n || memcmp(got, want, n) != 0)
            fail_msg("byte 0x%02x decoded wrongly", c);
        free(got);
    }
}

static void test_every_byte_in_one_sequence(void **state)
{
    (void)state;
    char in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    size_t n;
    char *got = round_trip(in, sizeof in, &n);
    /* 128 ASCII bytes, then 128 bytes that cannot start valid UTF-8 here
     * (0xc2..0xf4 are each followed by a byte that is not a continuation). */
    assert_int_equal(n, 128 + 128 * 3);
    assert_memory_equal(got, in, 128);
    for (int i = 0; i < 128; i++)
        assert_memory_equal(got + 128 + 3 * i, FFFD, 3);
    free(got);
}

static void test_every_byte_pair(void **state)
{
    (void)state;
    for (unsigned a = 0; a <= 0xff; a++) {
        for (unsigned b = 0; b <= 0xff; b++) {
            char in[3] = { 'x', (char)a, (char)b };
            size_t n;
            free(round_trip(in, sizeof in, &n));
        }
    }
}

/* Random byte strings: the output is always JSON; when the input is valid UTF-8
 * (jansson's json_stringn agrees) it decodes back to exactly the input. */
static void test_random_sequences(void **state)
{
    (void)state;
    srand(4242);
    static const unsigned char alphabet[] = { 'a',  '"',  '\\', 0x00, 0x1f, 0x7f, 0x80,
                                              0xbf, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0,
                                              0xf4, 0xff, 0x9f, 0xa0, 0x8f, 0x90, 0xc0 };
    for (int iter = 0; iter < 50000; iter++) {
        char in[12];
        size_t len = (size_t)(rand() % (int)sizeof in) + 1;
        for (size_t i = 0; i < len; i++)
            in[i] = (char)alphabet[rand() % (int)sizeof alphabet];
        size_t n;
        char *got = round_trip(in, len, &n);
        json_t *ref = json_stringn(in, len);
        if (ref != NULL && (n != len || memcmp(got, in, len) != 0))
            fail_msg("valid UTF-8 of %zu bytes was changed (iteration %d)", len, iter);
        if (ref == NULL && memmem(got, n, FFFD, 3) == NULL)
            fail_msg("invalid UTF-8 without a replacement (iteration %d)", iter);
        json_decref(ref);
        free(got);
    }
}

static void test_valid_multibyte_unchanged(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "\xc2\x80",         /* U+0080, smallest 2-byte */
        "\xc3\xa9",         /* é */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800, smallest 3-byte */
        "\xe2\x82\xac",     /* € */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xf0\x9f\x98\x80", /* 😀 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
        "Gr\xc3\xbc\xc3\x9f Gott, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8c\x8d",
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t len = strlen(cases[i]), n;
        char *esc = escape(cases[i], len, &n);
        assert_int_equal(n, len);
        assert_memory_equal(esc, cases[i], len);
        free(esc);
        char *back = round_trip(cases[i], len, &n);
        assert_int_equal(n, len);
        assert_memory_equal(back, cases[i], len);
        free(back);
    }
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want; /* the escaped text */
    } cases[] = {
        { "\x80", "\\ufffd" },                       /* lone continuation */
        { "\xc0\xaf", "\\ufffd\\ufffd" },            /* overlong '/' */
        { "\xc1\xbf", "\\ufffd\\ufffd" },            /* overlong */
        { "\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd" }, /* overlong 3-byte */
        { "\xf0\x80\x80\xaf", "\\ufffd\\ufffd\\ufffd\\ufffd" },
        { "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd" },            /* U+D800 surrogate */
        { "\xed\xbf\xbf", "\\ufffd\\ufffd\\ufffd" },            /* U+DFFF */
        { "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" }, /* U+110000 */
        { "\xf5\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" },
        { "\xff", "\\ufffd" },
        { "a\xe2\x82", "a\\ufffd\\ufffd" }, /* truncated at the end */
        { "\xf0\x9f\x98", "\\ufffd\\ufffd\\ufffd" },
        { "\xe2\x82z", "\\ufffd\\ufffdz" }, /* cut by ASCII */
        { "\xc3\"", "\\ufffd\\\"" },        /* a quote is never swallowed */
        { "\xe2\x82\xac\xac", "\xe2\x82\xac\\ufffd" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char *got = escape(cases[i].in, strlen(cases[i].in), NULL);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
        free(got);
        size_t n;
        free(round_trip(cases[i].in, strlen(cases[i].in), &n));
    }
}

static void test_utf8_seq_len(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        size_t want;
    } cases[] = {
        { "a", 1, 1 },
        { "\0", 1, 1 },
        { "\x7f", 1, 1 },
        { "\xc3\xa9", 2, 2 },
        { "\xc3\xa9", 1, 0 },
        { "\xc3"
          "a",
          2, 0 },
        { "\xc0\x80", 2, 0 },
        { "\xe2\x82\xac", 3, 3 },
        { "\xe2\x82\xac", 2, 0 },
        { "\xe0\x9f\xbf", 3, 0 },
        { "\xed\xa0\x80", 3, 0 },
        { "\xf0\x9f\x98\x80", 4, 4 },
        { "\xf0\x8f\xbf\xbf", 4, 0 },
        { "\xf4\x90\x80\x80", 4, 0 },
        { "\xf4\x8f\xbf\xbf", 4, 4 },
        { "\xf8\x88\x80\x80", 4, 0 },
        { "\x80", 1, 0 },
        { "\xe2\x82\xac!", 4, 3 },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t got = jsonw_utf8_seq_len((const unsigned char *)cases[i].s, cases[i].len);
        if (got != cases[i].want)
            fail_msg("case %zu: got %zu, want %zu", i, got, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_every_single_byte),
        cmocka_unit_test(test_every_byte_in_one_sequence),
        cmocka_unit_test(test_every_byte_pair),
        cmocka_unit_test(test_random_sequences),
        cmocka_unit_test(test_valid_multibyte_unchanged),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_utf8_seq_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
