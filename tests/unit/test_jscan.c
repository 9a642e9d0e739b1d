/* Unit tests of src/core/jscan.c, the validating JSON pull scanner. A table of
 * texts, valid and not (RFC 8259), must be accepted by jscan_skip + jscan_finish
 * exactly when valid, and jansson must agree except where the two legitimately
 * differ (listed in enum jview). Then the readers one by one: members, elements,
 * string slices, integers, null, decoding, comparison, and the word-at-a-time
 * fast path of jscan_string at every length and position.
 *
 * Every text is copied into a heap block of exactly its length (no NUL after
 * it), so that AddressSanitizer catches any read past the end. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/jscan.h"

/* What jansson (json_loadb, JSON_DECODE_ANY | JSON_ALLOW_NUL) says of a text. */
enum jview {
    SAME,          /* the same verdict as jscan */
    J_OVERFLOW,    /* valid JSON that jansson refuses: an integer past 64 bits or a real
                    * that overflows a double (json_error_numeric_overflow) */
    J_NUL_KEY,     /* valid JSON that jansson refuses: \u0000 in an object key */
    J_NUL_SKIPPED, /* not JSON (a raw NUL byte right after a number or a literal), but
                    * jansson passes over that NUL and accepts the rest */
    J_DEEP,        /* valid JSON nested deeper than JSCAN_MAX_DEPTH: jansson accepts,
                    * jscan refuses (its documented limit) */
};

struct jcase {
    const char *text;
    size_t len;
    bool valid; /* what jscan must say */
    enum jview j;
};

/* sizeof keeps NUL bytes inside the literal. */
// clang-format off
#define OK(s)          { s, sizeof(s) - 1, true, SAME }
#define BAD(s)         { s, sizeof(s) - 1, false, SAME }
#define OK_J(s, view)  { s, sizeof(s) - 1, true, view }
#define BAD_J(s, view) { s, sizeof(s) - 1, false, view }
// clang-format on

/* No case is a fragment of a list ("1,2"), so that a case put inside [ ] or
 * {"k": } keeps its verdict (test_table_embedded). */
static const struct jcase cases[] = {
    /* literals */
    OK("true"),
    OK("false"),
    OK("null"),
    BAD("tru"),
    BAD("t"),
    BAD("fals"),
    BAD("nul"),
    BAD("True"),
    BAD("NULL"),
    BAD("truex"),
    BAD("nulll"),
    BAD("nullnull"),
    BAD("undefined"),
    /* numbers */
    OK("0"),
    OK("-0"),
    OK("7"),
    OK("-7"),
    OK("10"),
    OK("1e5"),
    OK("1E+5"),
    OK("1e-5"),
    OK("1E5"),
    OK("-0.0"),
    OK("0e0"),
    OK("0E-0"),
    OK("1.5"),
    OK("-1.5e+10"),
    OK("0.000001"),
    OK("9223372036854775807"),
    OK("-9223372036854775808"),
    OK("1e-400"), /* underflows to 0: jansson accepts it */
    OK_J("9223372036854775808", J_OVERFLOW),
    OK_J("-9223372036854775809", J_OVERFLOW),
    OK_J("123456789012345678901234567890", J_OVERFLOW),
    OK_J("1e400", J_OVERFLOW),
    OK_J("-1e400", J_OVERFLOW),
    OK_J("1e99999999999999999999", J_OVERFLOW),
    BAD("01"),
    BAD("-01"),
    BAD("00"),
    BAD("1."),
    BAD("1.e5"),
    BAD(".5"),
    BAD("-.5"),
    BAD("-"),
    BAD("+1"),
    BAD("--1"),
    BAD("- 1"),
    BAD("1e"),
    BAD("1e+"),
    BAD("1E-"),
    BAD("1.5.5"),
    BAD("1e5e5"),
    BAD("0x1F"),
    BAD("1_000"),
    BAD("NaN"),
    BAD("Infinity"),
    BAD("-Infinity"),
    /* containers */
    OK("{}"),
    OK("[]"),
    OK("{ }"),
    OK("[ ]"),
    OK("[1,2,3]"),
    OK("[[],{},[[]],\"\"]"),
    OK("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}"),
    OK("{\"a\":1,\"a\":2}"), /* duplicate keys are valid JSON */
    OK("{\"\":0}"),
    OK(" [ 1 , { \"a\" : 2 } , [ ] ] "),
    OK_J("{\"\\u0000\":1}", J_NUL_KEY),
    OK_J("{\"a\\u0000b\":1}", J_NUL_KEY),
    BAD("{"),
    BAD("["),
    BAD("}"),
    BAD("]"),
    BAD("[1,]"),
    BAD("[,1]"),
    BAD("[,]"),
    BAD("[1 2]"),
    BAD("[1,,2]"),
    BAD("{,}"),
    BAD("{\"a\":1,}"),
    BAD("{\"a\"}"),
    BAD("{\"a\":}"),
    BAD("{\"a\" 1}"),
    BAD("{\"a\"::1}"),
    BAD("{a:1}"),
    BAD("{1:1}"),
    BAD("{null:1}"),
    BAD("{'a':1}"),
    BAD("{\"a\":1 \"b\":2}"),
    BAD("[1]]"),
    BAD("{}}"),
    BAD("[}"),
    BAD("{]"),
    BAD("{\"a\":1]"),
    BAD("[\"a\":1]"),
    /* strings and escapes */
    OK("\"\""),
    OK("\"abc\""),
    OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    OK("\"\\u0041\\u00e9\\u20AC\\uFFFF\\uFFFE\""),
    OK("\"\\u0000\""),
    OK("\"\\uD83D\\uDE00\""),
    OK("\"\\ud83d\\ude00\""),
    OK("\"\\uD800\\uDC00\""),
    OK("\"\\uDBFF\\uDFFF\""),
    OK("\"\\uD83D\\uDE00\\uD83D\\uDE00\""),
    OK("\"a\x7f"
       "b\""), /* DEL needs no escape */
    OK("\"'single' \\u0027\""),
    BAD("\"\\x41\""),
    BAD("\"\\'\""),
    BAD("\"\\a\""),
    BAD("\"\\0\""),
    BAD("\"\\U0041\""),
    BAD("\"\\u\""),
    BAD("\"\\u12\""),
    BAD("\"\\u123\""),
    BAD("\"\\u12G4\""),
    BAD("\"\\u 123\""),
    BAD("\"\\"),
    BAD("\"\\\""), /* the quote is escaped: the string never ends */
    BAD("\"abc"),
    BAD("\""),
    BAD("abc\""),
    BAD("'abc'"),
    /* surrogates written as escapes */
    BAD("\"\\uD83D\""),             /* a lone high one */
    BAD("\"\\uD83Dabc\""),          /* a high one followed by text */
    BAD("\"\\uD83D\\u0041\""),      /* a high one followed by another escape */
    BAD("\"\\uD83D\\n\""),          /* a high one followed by a short escape */
    BAD("\"\\uD83D\\uD83D\""),      /* two high ones */
    BAD("\"\\uDE00\""),             /* a lone low one */
    BAD("\"\\uDFFF\""),             /* a lone low one */
    BAD("\"\\uDE00\\uD83D\""),      /* reversed */
    BAD("\"\\uD83D\\uDE0\""),       /* a low one cut short */
    BAD("\"\\uD83D\\uDE0"),         /* at the end of the input */
    BAD("\"\\uD83D\xed\xb8\x80\""), /* a high escape, then a low one in UTF-8 */
    /* raw control characters */
    BAD("\"\x01\""),
    BAD("\"\x1f\""),
    BAD("\"a\nb\""),
    BAD("\"a\tb\""),
    BAD("\"a\rb\""),
    BAD("\"a\0b\""),
    /* UTF-8: the boundaries of each length are valid */
    OK("\"\xc2\x80\""),
    OK("\"\xdf\xbf\""),
    OK("\"\xe0\xa0\x80\""),
    OK("\"\xed\x9f\xbf\""), /* U+D7FF, just below the surrogates */
    OK("\"\xee\x80\x80\""), /* U+E000, just above them */
    OK("\"\xef\xbf\xbf\""),
    OK("\"\xf0\x90\x80\x80\""),
    OK("\"\xf4\x8f\xbf\xbf\""), /* U+10FFFF */
    OK("\"caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8c\x8d\""),
    /* ... and everything else is not */
    BAD("\"\x80\""), /* continuation bytes alone */
    BAD("\"\xbf\""),
    BAD("\"a\x80\x80\x80\x80\""),
    BAD("\"\xc0\x80\""), /* overlong */
    BAD("\"\xc1\xbf\""),
    BAD("\"\xe0\x80\x80\""),
    BAD("\"\xe0\x9f\xbf\""),
    BAD("\"\xf0\x80\x80\x80\""),
    BAD("\"\xf0\x8f\xbf\xbf\""),
    BAD("\"\xed\xa0\x80\""), /* surrogates encoded in UTF-8 */
    BAD("\"\xed\xaf\xbf\""),
    BAD("\"\xed\xb0\x80\""),
    BAD("\"\xed\xbf\xbf\""),
    BAD("\"\xed\xa0\xbd\xed\xb8\x80\""), /* a surrogate pair in UTF-8 (CESU-8) */
    BAD("\"\xf4\x90\x80\x80\""),         /* past U+10FFFF */
    BAD("\"\xf5\x80\x80\x80\""),
    BAD("\"\xf7\xbf\xbf\xbf\""),
    BAD("\"\xf8\x88\x80\x80\x80\""), /* 5- and 6-byte forms */
    BAD("\"\xfc\x84\x80\x80\x80\x80\""),
    BAD("\"\xfe\""),
    BAD("\"\xff\""),
    BAD("\"\xc3\""), /* truncated by the closing quote */
    BAD("\"\xe4\xb8\""),
    BAD("\"\xf0\x9f\x8c\""),
    BAD("\"\xf0\x9f\""),
    BAD("\"\xc3"), /* truncated by the end of the input */
    BAD("\"\xe4\xb8"),
    BAD("\"\xf0\x9f\x8c"),
    BAD("\"\xc3\x41\""), /* a continuation byte that is not one */
    BAD("\"\xc3\xc3\xa9\""),
    BAD("\"\xe4\x41\x96\""),
    BAD("\"\xe4\xb8\x41\""),
    BAD("\"\xf0\x9f\x41\x8d\""),
    BAD("\"\xf0\x9f\x8c\x41\""),
    BAD("\xc3\xa9"),       /* UTF-8 outside a string */
    BAD("\xef\xbb\xbf{}"), /* a byte-order mark */
    /* white space: only space, tab, line feed and carriage return */
    OK(" 1 "),
    OK("\t\n\r 1\t\n\r "),
    OK("\n{\n\"a\"\n:\n1\n}\n"),
    BAD(""),
    BAD(" "),
    BAD("\n\t\r "),
    BAD("\f1"),
    BAD("\v1"),
    BAD("1\f"),
    BAD("\xc2\xa0"
        "1"), /* no-break space */
    /* trailing garbage */
    BAD("{} x"),
    BAD("[]]"),
    BAD("1 2"),
    BAD("\"a\" \"b\""),
    BAD("null null"),
    BAD("{}{}"),
    BAD("1 ,"),
    BAD("[] // comment"),
    BAD("/* comment */ 1"),
    BAD("\0"),
    BAD("\0 1"),
    BAD("{}\0"),
    BAD("\"a\"\0"),
    BAD("[1] \0 x"),
    BAD("1 \0"),
    BAD_J("1\0", J_NUL_SKIPPED),
    BAD_J("-1.5\0", J_NUL_SKIPPED),
    BAD_J("true\0", J_NUL_SKIPPED),
    BAD_J("[1\0]", J_NUL_SKIPPED),
};

/* ---- helpers ---------------------------------------------------------------------- */

/* s[0..n) with C escapes, for failure messages (four buffers in rotation). */
static const char *show(const char *s, size_t n)
{
    static char bufs[4][600];
    static unsigned k;
    char *o = bufs[k++ % 4];
    size_t w = 0;
    for (size_t i = 0; i < n && w + 8 < sizeof bufs[0]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            o[w++] = (char)c;
        else
            w += (size_t)snprintf(o + w, sizeof bufs[0] - w, "\\x%02x", c);
    }
    o[w] = '\0';
    return o;
}

/* A heap copy of text[0..len) with nothing after it (the caller frees it). */
static char *exact(const char *text, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len > 0)
        memcpy(p, text, len);
    return p;
}

/* jscan's verdict on a whole text: one value, then only white space. */
static bool jscan_accepts(const char *text, size_t len)
{
    char *copy = exact(text, len);
    struct jscan s;
    jscan_init(&s, copy, len);
    bool ok = jscan_skip(&s) == 0 && jscan_finish(&s) == 0;
    if (ok && s.depth != 0)
        fail_msg("depth %d after %s", s.depth, show(text, len));
    free(copy);
    return ok;
}

/* jansson's verdict; *code says why when it refuses. */
static bool jansson_accepts(const char *text, size_t len, enum json_error_code *code)
{
    json_error_t e;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (v == NULL) {
        *code = json_error_code(&e);
        return false;
    }
    json_decref(v);
    return true;
}

/* Checks jansson's verdict on a text that jscan judged as jscan_ok. */
static void cross_check(const char *text, size_t len, bool jscan_ok, enum jview view)
{
    enum json_error_code code = json_error_unknown;
    bool ok = jansson_accepts(text, len, &code);
    switch (view) {
    case SAME:
        if (ok != jscan_ok)
            fail_msg("jscan %s, jansson %s (code %d): %s", jscan_ok ? "accepts" : "refuses",
                     ok ? "accepts" : "refuses", (int)code, show(text, len));
        break;
    case J_OVERFLOW:
    case J_NUL_KEY:
        if (ok || code != (view == J_OVERFLOW ? json_error_numeric_overflow
                                              : json_error_null_byte_in_key))
            fail_msg("jansson: %s (code %d), not the known difference: %s",
                     ok ? "accepts" : "refuses", (int)code, show(text, len));
        break;
    case J_NUL_SKIPPED:
    case J_DEEP:
        if (!ok)
            fail_msg("jansson refuses (code %d), not the known difference: %s", (int)code,
                     show(text, len));
        break;
    }
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t\n\r", s[i]) == NULL || s[i] == '\0')
            return false;
    return true;
}

/* ---- the table ---------------------------------------------------------------------- */

static void test_table_jscan(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        bool ok = jscan_accepts(cases[i].text, cases[i].len);
        if (ok != cases[i].valid)
            fail_msg("case %zu: jscan %s %s", i, ok ? "accepts" : "refuses",
                     show(cases[i].text, cases[i].len));
    }
}

static void test_table_agrees_with_jansson(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        cross_check(cases[i].text, cases[i].len, cases[i].valid, cases[i].j);
}

/* Inside an array, as a member's value, between other elements, between white
 * space, or two levels down, a case keeps its verdict (and jansson agrees). */
static void test_table_embedded(void **state)
{
    (void)state;
    static const char *const wraps[][2] = {
        { "[", "]" }, { "{\"k\":", "}" }, { "[0,", ",0]" }, { " \n", "\t\r" }, { "[[", "]]" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct jcase *c = &cases[i];
        if (blank(c->text, c->len))
            continue; /* "[ ]" is valid where " " is not */
        for (size_t w = 0; w < N_ELEMS(wraps); w++) {
            size_t a = strlen(wraps[w][0]), b = strlen(wraps[w][1]), n = a + c->len + b;
            char *t = malloc(n);
            assert_non_null(t);
            memcpy(t, wraps[w][0], a);
            memcpy(t + a, c->text, c->len);
            memcpy(t + a + c->len, wraps[w][1], b);
            bool ok = jscan_accepts(t, n);
            if (ok != c->valid)
                fail_msg("case %zu: jscan %s %s", i, ok ? "accepts" : "refuses", show(t, n));
            if (c->j == SAME || c->j == J_OVERFLOW || c->j == J_NUL_KEY)
                cross_check(t, n, ok, c->j);
            free(t);
        }
    }
}

/* "[" * depth ... "]" * depth, or the same with objects, or alternating. */
static char *nested(int depth, int kind, size_t *len)
{
    struct {
        const char *open, *close;
    } const shapes[] = { { "[", "]" }, { "{\"a\":", "}" } };
    char *t = malloc((size_t)depth * 6 + 2);
    assert_non_null(t);
    size_t n = 0;
    for (int d = 0; d < depth; d++) {
        const char *o = shapes[kind == 2 ? d % 2 : kind].open;
        memcpy(t + n, o, strlen(o));
        n += strlen(o);
    }
    t[n++] = '1';
    for (int d = depth - 1; d >= 0; d--)
        t[n++] = *shapes[kind == 2 ? d % 2 : kind].close;
    *len = n;
    return t;
}

static void test_nesting_limit(void **state)
{
    (void)state;
    static const int depths[] = { 1, 2, 63, JSCAN_MAX_DEPTH, JSCAN_MAX_DEPTH + 1, 100, 1000 };
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < N_ELEMS(depths); i++) {
            size_t n;
            char *t = nested(depths[i], kind, &n);
            bool want = depths[i] <= JSCAN_MAX_DEPTH;
            if (jscan_accepts(t, n) != want)
                fail_msg("kind %d, depth %d: jscan %s", kind, depths[i],
                         want ? "refuses" : "accepts");
            cross_check(t, n, want, want ? SAME : J_DEEP);
            /* Cut short, never valid (and no read past the end). */
            assert_false(jscan_accepts(t, n - 1));
            free(t);
        }
    }
}

/* "[" A "," B "]" where A and B are arrays nested a and b deep. */
static char *pair(int a, int b, size_t *len)
{
    char *t = malloc((size_t)(a + b) * 2 + 3);
    assert_non_null(t);
    size_t n = 0;
    t[n++] = '[';
    for (int k = 0; k < 2; k++) {
        int d = k ? b : a;
        if (k)
            t[n++] = ',';
        memset(t + n, '[', (size_t)d);
        memset(t + n + d, ']', (size_t)d);
        n += 2 * (size_t)d;
    }
    t[n++] = ']';
    *len = n;
    return t;
}

static void test_nesting_depth_is_not_a_count(void **state)
{
    (void)state;
    /* The depth goes down at every close: two values that each reach the limit
     * are fine, one level more in either is not. */
    static const struct {
        int a, b;
        bool valid;
    } pairs[] = {
        { JSCAN_MAX_DEPTH - 1, JSCAN_MAX_DEPTH - 1, true },
        { JSCAN_MAX_DEPTH, JSCAN_MAX_DEPTH - 1, false },
        { JSCAN_MAX_DEPTH - 1, JSCAN_MAX_DEPTH, false },
        { 1, JSCAN_MAX_DEPTH - 1, true },
    };
    for (size_t i = 0; i < N_ELEMS(pairs); i++) {
        size_t n;
        char *t = pair(pairs[i].a, pairs[i].b, &n);
        if (jscan_accepts(t, n) != pairs[i].valid)
            fail_msg("%d then %d deep: want %s", pairs[i].a, pairs[i].b,
                     pairs[i].valid ? "valid" : "invalid");
        cross_check(t, n, pairs[i].valid, pairs[i].valid ? SAME : J_DEEP);
        free(t);
    }
    /* Many containers in sequence. */
    size_t n = 0;
    char *t = malloc(5 * 1000 + 2);
    assert_non_null(t);
    t[n++] = '[';
    for (int k = 0; k < 1000; k++) {
        memcpy(t + n, "[{}],", 5);
        n += 5;
    }
    t[n - 1] = ']';
    assert_true(jscan_accepts(t, n));
    cross_check(t, n, true, SAME);
    free(t);
}

/* Mutations of the table's texts, judged by both parsers: where jansson has an
 * opinion that is not a known difference, jscan must share it. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int tree_depth(const json_t *v)
{
    int d = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int e = tree_depth(json_array_get(v, i));
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            int de = tree_depth(e);
            d = de > d ? de : d;
        }
        return d + 1;
    }
    return 0;
}

static void test_mutations_agree_with_jansson(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[],:\"\\/ \t\n\r0123456789-+.eEbfnrtuaclsADF"
                                   "\x00\x01\x1f\x7f\x80\xbf\xc0\xc3\xa9\xe0\xed\xa0\xf0\xf4"
                                   "\x90\x8f\xff";
    size_t agreed_valid = 0;
    for (int iter = 0; iter < 200000; iter++) {
        const struct jcase *c = &cases[rng() % N_ELEMS(cases)];
        char t[128];
        size_t n = c->len < 100 ? c->len : 100;
        memcpy(t, c->text, n);
        for (int m = (int)(rng() % 3); m >= 0; m--) {
            size_t at = n ? (size_t)(rng() % (n + 1)) : 0;
            char b = alphabet[rng() % (sizeof alphabet - 1)];
            switch (rng() % 3) {
            case 0:
                if (at < n)
                    t[at] = b;
                break;
            case 1:
                if (n < sizeof t) {
                    memmove(t + at + 1, t + at, n - at);
                    t[at] = b;
                    n++;
                }
                break;
            default:
                if (at < n) {
                    memmove(t + at, t + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        bool ok = jscan_accepts(t, n);
        if (memchr(t, '\0', n) != NULL) { /* never JSON; jansson may stop at it */
            if (ok)
                fail_msg("jscan accepts a raw NUL: %s", show(t, n));
            continue;
        }
        json_error_t e;
        json_t *v = json_loadb(t, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (v == NULL) {
            enum json_error_code code = json_error_code(&e);
            if (ok && code != json_error_numeric_overflow && code != json_error_null_byte_in_key)
                fail_msg("jscan accepts, jansson refuses (%s): %s", e.text, show(t, n));
            continue;
        }
        bool want = tree_depth(v) <= JSCAN_MAX_DEPTH;
        json_decref(v);
        if (ok != want)
            fail_msg("jscan %s, jansson accepts: %s", ok ? "accepts" : "refuses", show(t, n));
        agreed_valid++;
    }
    assert_true(agreed_valid > 10000); /* the mutations are not all noise */
}

/* ---- members and elements ------------------------------------------------------------ */

static void test_member_iteration(void **state)
{
    (void)state;
    const char *src = " { \"a\" : 1 , \"b\":[true,false] ,\"c\\u006fntent\":\"x\",\"\":null} ";
    char *t = exact(src, strlen(src));
    struct jscan s;
    jscan_init(&s, t, strlen(src));
    assert_int_equal(jscan_peek(&s), '{');
    bool first = true;
    struct jstr key;
    long long i = 0;
    assert_int_equal(jscan_member(&s, &first, &key), 1);
    assert_false(first);
    assert_int_equal(s.depth, 1);
    assert_true(jstr_is(&key, "a"));
    assert_false(key.escaped);
    assert_ptr_equal(key.p, t + 4);
    assert_int_equal(jscan_integer(&s, &i), 1);
    assert_int_equal(i, 1);
    assert_int_equal(jscan_member(&s, &first, &key), 1);
    assert_true(jstr_is(&key, "b"));
    assert_int_equal(jscan_peek(&s), '[');
    assert_int_equal(jscan_skip(&s), 0);
    assert_int_equal(jscan_member(&s, &first, &key), 1);
    assert_true(key.escaped);
    assert_int_equal(key.len, strlen("c\\u006fntent"));
    assert_memory_equal(key.p, "c\\u006fntent", key.len); /* the raw bytes */
    assert_true(jstr_is(&key, "content"));
    assert_int_equal(jscan_skip(&s), 0);
    assert_int_equal(jscan_member(&s, &first, &key), 1);
    assert_int_equal(key.len, 0);
    assert_true(jstr_is(&key, ""));
    assert_true(jscan_null(&s));
    assert_int_equal(jscan_member(&s, &first, &key), 0);
    assert_int_equal(s.depth, 0);
    assert_int_equal(jscan_finish(&s), 0);
    free(t);

    static const char *const empties[] = { "{}", "{ }", " {\n}" };
    for (size_t k = 0; k < N_ELEMS(empties); k++) {
        jscan_init(&s, empties[k], strlen(empties[k]));
        first = true;
        assert_int_equal(jscan_member(&s, &first, &key), 0);
        assert_int_equal(s.depth, 0);
        assert_int_equal(jscan_finish(&s), 0);
    }
}

/* Steps through an object skipping each value; returns the last jscan_member
 * result and the number of members seen. */
static int walk_members(const char *text, int *members)
{
    size_t len = strlen(text);
    char *t = exact(text, len);
    struct jscan s;
    jscan_init(&s, t, len);
    bool first = true;
    struct jstr key;
    int rc;
    *members = 0;
    while ((rc = jscan_member(&s, &first, &key)) == 1) {
        ++*members;
        if (jscan_skip(&s) != 0) {
            rc = -2; /* the value was bad */
            break;
        }
    }
    free(t);
    return rc;
}

static void test_member_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc, members;
    } cases_[] = {
        { "{\"a\":1,\"b\":2}", 0, 2 },
        { "{\"a\" 1}", -1, 0 },
        { "{\"a\"}", -1, 0 },
        { "{\"a\":1,}", -1, 1 },
        { "{,}", -1, 0 },
        { "{\"a\":1 \"b\":2}", -1, 1 },
        { "{a:1}", -1, 0 },
        { "{\"a\":}", -2, 1 },
        { "{\"a\":1", -1, 1 },
        { "{", -1, 0 },
        { "[1]", -1, 0 },
        { "\"a\"", -1, 0 },
        { "", -1, 0 },
        { "{\"a\":1]", -1, 1 },
        { "{\"\\x\":1}", -1, 0 },
    };
    for (size_t i = 0; i < N_ELEMS(cases_); i++) {
        int members;
        int rc = walk_members(cases_[i].text, &members);
        if (rc != cases_[i].rc || members != cases_[i].members)
            fail_msg("%s: rc %d after %d members, want %d after %d", cases_[i].text, rc, members,
                     cases_[i].rc, cases_[i].members);
    }
}

static void test_element_iteration(void **state)
{
    (void)state;
    const char *src = "[1, \"two\" ,null,[3],{\"four\":4}]";
    char *t = exact(src, strlen(src));
    struct jscan s;
    jscan_init(&s, t, strlen(src));
    bool first = true;
    long long i;
    struct jstr str;
    assert_int_equal(jscan_element(&s, &first), 1);
    assert_int_equal(jscan_integer(&s, &i), 1);
    assert_int_equal(i, 1);
    assert_int_equal(jscan_element(&s, &first), 1);
    assert_int_equal(jscan_string(&s, &str), 0);
    assert_true(jstr_is(&str, "two"));
    assert_int_equal(jscan_element(&s, &first), 1);
    assert_true(jscan_null(&s));
    assert_int_equal(jscan_element(&s, &first), 1);
    assert_int_equal(s.depth, 1);
    assert_int_equal(jscan_skip(&s), 0);
    assert_int_equal(s.depth, 1);
    assert_int_equal(jscan_element(&s, &first), 1);
    assert_int_equal(jscan_skip(&s), 0);
    assert_int_equal(jscan_element(&s, &first), 0);
    assert_int_equal(s.depth, 0);
    assert_int_equal(jscan_finish(&s), 0);
    free(t);

    static const struct {
        const char *text;
        int rc, elements;
    } cases_[] = {
        { "[]", 0, 0 },    { "[ ]", 0, 0 },     { "[1]", 0, 1 },    { "[1,2,3]", 0, 3 },
        { "[1,]", -2, 2 }, { "[,1]", -2, 1 },   { "[1 2]", -1, 1 }, { "[1", -1, 1 },
        { "[", -2, 1 },    { "{}", -1, 0 },     { "1", -1, 0 },     { "[1,,2]", -2, 2 },
        { "[1}", -1, 1 },  { "[[1],]", -2, 2 },
    };
    for (size_t k = 0; k < N_ELEMS(cases_); k++) {
        size_t len = strlen(cases_[k].text);
        t = exact(cases_[k].text, len);
        jscan_init(&s, t, len);
        first = true;
        int rc, n = 0;
        while ((rc = jscan_element(&s, &first)) == 1) {
            n++;
            if (jscan_skip(&s) != 0) {
                rc = -2;
                break;
            }
        }
        if (rc != cases_[k].rc || n != cases_[k].elements)
            fail_msg("%s: rc %d after %d elements, want %d after %d", cases_[k].text, rc, n,
                     cases_[k].rc, cases_[k].elements);
        free(t);
    }
}

/* ---- strings --------------------------------------------------------------------------- */

static void test_string_slices(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t at, len; /* where the slice starts, and its length */
        bool escaped;
    } cases_[] = {
        { "\"abc\"", 1, 3, false },
        { "\"\"", 1, 0, false },
        { "  \"x\"", 3, 1, false },
        { "\"a\\nb\"", 1, 4, true },
        { "\"caf\\u00e9 \\ud83c\\udf0d\"", 1, 22, true },
        { "\"caf\xc3\xa9\"", 1, 5, false },
        { "\"\\\\\"", 1, 2, true },
        { "\"a/b\\/c\"", 1, 6, true },
    };
    for (size_t i = 0; i < N_ELEMS(cases_); i++) {
        size_t len = strlen(cases_[i].text);
        char *t = exact(cases_[i].text, len);
        struct jscan s;
        jscan_init(&s, t, len);
        struct jstr str;
        assert_int_equal(jscan_string(&s, &str), 0);
        assert_ptr_equal(str.p, t + cases_[i].at);
        assert_int_equal(str.len, cases_[i].len);
        assert_int_equal(str.escaped, cases_[i].escaped);
        assert_memory_equal(str.p, cases_[i].text + cases_[i].at, str.len); /* as written */
        assert_ptr_equal(s.p, t + len);                                     /* past the quote */
        assert_int_equal(jscan_finish(&s), 0);
        free(t);
    }
    static const char *const not_strings[] = { "", " ", "abc", "123", "null", "'a'", "[\"a\"]" };
    for (size_t i = 0; i < N_ELEMS(not_strings); i++) {
        size_t len = strlen(not_strings[i]);
        char *t = exact(not_strings[i], len);
        struct jscan s;
        jscan_init(&s, t, len);
        struct jstr str;
        assert_int_equal(jscan_string(&s, &str), -1);
        free(t);
    }
}

/* A special byte (or sequence) put into a run of plain bytes. */
struct special {
    const char *bytes;
    size_t n;
    int kind; /* VALID, INVALID, or ENDS (a quote: the string ends there) */
    bool escaped;
};
enum { VALID, INVALID, ENDS };

static const struct special specials[] = {
    { "\"", 1, ENDS, false },
    { "\\", 1, INVALID, false }, /* followed by 'a' or by the closing quote */
    { "\\n", 2, VALID, true },
    { "\\/", 2, VALID, true },
    { "\\u00e9", 6, VALID, true },
    { "\\ud83d\\ude00", 12, VALID, true },
    { "\x1f", 1, INVALID, false },
    { "\x01", 1, INVALID, false },
    { "\0", 1, INVALID, false },
    { "\n", 1, INVALID, false },
    { " ", 1, VALID, false }, /* 0x20, the first byte that needs no escape */
    { "!", 1, VALID, false }, /* 0x21 and 0x23, each side of the quote */
    { "#", 1, VALID, false },
    { "[", 1, VALID, false }, /* 0x5b and 0x5d, each side of the backslash */
    { "]", 1, VALID, false },
    { "\x7f", 1, VALID, false },
    { "\xc3\xa9", 2, VALID, false },
    { "\xe4\xb8\x96", 3, VALID, false },
    { "\xf0\x9f\x8c\x8d", 4, VALID, false },
    { "\x80", 1, INVALID, false },
    { "\xff", 1, INVALID, false },
    { "\xc3", 1, INVALID, false }, /* truncated by the next plain byte */
    { "\xc0\xaf", 2, INVALID, false },
    { "\xed\xa0\x80", 3, INVALID, false },
    { "\xf4\x90\x80\x80", 4, INVALID, false },
};

static void check_fast_path(const struct special *sp, size_t len, size_t pos, size_t indent)
{
    /* indent spaces, a quote, len bytes of which sp sits at pos, a quote. */
    size_t n = indent + 1 + len + 1;
    char *t = malloc(n);
    assert_non_null(t);
    memset(t, ' ', indent);
    t[indent] = '"';
    char *body = t + indent + 1;
    for (size_t k = 0; k < len; k++)
        body[k] = (char)('A' + (k % 26)); /* never an escape letter after a backslash */
    memcpy(body + pos, sp->bytes, sp->n);
    t[n - 1] = '"';

    struct jscan s;
    jscan_init(&s, t, n);
    struct jstr str;
    int rc = jscan_string(&s, &str);
    if (sp->kind == INVALID) {
        if (rc != -1)
            fail_msg("accepted: %s", show(t, n));
    } else if (rc != 0) {
        fail_msg("refused: %s", show(t, n));
    } else {
        size_t want = sp->kind == ENDS ? pos : len;
        if (str.p != body || str.len != want || str.escaped != sp->escaped)
            fail_msg("%s: slice at %td, length %zu, escaped %d", show(t, n), str.p - body, str.len,
                     str.escaped);
        assert_ptr_equal(s.p, body + want + 1);
    }
    if (indent == 0 && sp->kind != ENDS) { /* jansson agrees, and decodes the same */
        json_error_t e;
        json_t *v = json_loadb(t, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if ((v != NULL) != (rc == 0))
            fail_msg("jansson %s: %s", v ? "accepts" : "refuses", show(t, n));
        if (v != NULL) {
            char out[64];
            size_t got = jstr_decode(&str, out, sizeof out);
            assert_int_equal(got, json_string_length(v));
            assert_memory_equal(out, json_string_value(v), got);
            json_decref(v);
        }
    }
    /* Without its closing quote the string never ends, whatever it holds. */
    jscan_init(&s, t, n - 1);
    if (sp->kind != ENDS)
        assert_int_equal(jscan_string(&s, &str), -1);
    free(t);
}

static void test_string_fast_path_every_position(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 40; len++) {
        /* Plain bytes only, with and without the closing quote. */
        char *t = malloc(len + 2);
        assert_non_null(t);
        t[0] = '"';
        for (size_t k = 0; k < len; k++)
            t[1 + k] = (char)('A' + (k % 26));
        t[len + 1] = '"';
        struct jscan s;
        struct jstr str;
        jscan_init(&s, t, len + 2);
        assert_int_equal(jscan_string(&s, &str), 0);
        assert_int_equal(str.len, len);
        assert_false(str.escaped);
        jscan_init(&s, t, len + 1);
        assert_int_equal(jscan_string(&s, &str), -1);
        free(t);

        for (size_t i = 0; i < N_ELEMS(specials); i++)
            for (size_t pos = 0; pos + specials[i].n <= len; pos++)
                for (size_t indent = 0; indent < 8; indent++) /* every alignment */
                    check_fast_path(&specials[i], len, pos, indent);
    }
}

/* ---- numbers and null ------------------------------------------------------------------ */

static void test_integer(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        long long value; /* when rc is 1 */
        size_t used;     /* bytes consumed when rc >= 0 */
    } cases_[] = {
        { "1", 1, 1, 1 },
        { "0", 1, 0, 1 },
        { "-0", 1, 0, 2 },
        { "-1", 1, -1, 2 },
        { "42", 1, 42, 2 },
        { "  7 ", 1, 7, 1 },
        { "999999999999999999", 1, 999999999999999999LL, 18 },
        { "-999999999999999999", 1, -999999999999999999LL, 19 },
        { "000", 1, 0, 1 }, /* "0", then "00" that is not part of it */
        { "12,", 1, 12, 2 },
        { "3]", 1, 3, 1 },
        { "1000000000000000000", 0, 0, 19 }, /* more than 18 digits */
        { "9223372036854775807", 0, 0, 19 },
        { "-9223372036854775808", 0, 0, 20 },
        { "123456789012345678901234567890", 0, 0, 30 },
        { "1.0", 0, 0, 3 },
        { "1.5", 0, 0, 3 },
        { "1e5", 0, 0, 3 },
        { "1E+5", 0, 0, 4 },
        { "1e-5", 0, 0, 4 },
        { "-0.0", 0, 0, 4 },
        { "0e0", 0, 0, 3 },
        { "", -1, 0, 0 },
        { " ", -1, 0, 0 },
        { "-", -1, 0, 0 },
        { "+1", -1, 0, 0 },
        { ".5", -1, 0, 0 },
        { "1.", -1, 0, 0 },
        { "1.e5", -1, 0, 0 },
        { "1e", -1, 0, 0 },
        { "1e+", -1, 0, 0 },
        { "-a", -1, 0, 0 },
        { "a", -1, 0, 0 },
        { "\"1\"", -1, 0, 0 },
        { "null", -1, 0, 0 },
    };
    for (size_t i = 0; i < N_ELEMS(cases_); i++) {
        size_t len = strlen(cases_[i].text);
        char *t = exact(cases_[i].text, len);
        struct jscan s;
        jscan_init(&s, t, len);
        long long v = 0x5a5a5a5a;
        int rc = jscan_integer(&s, &v);
        if (rc != cases_[i].rc)
            fail_msg("\"%s\": %d, want %d", cases_[i].text, rc, cases_[i].rc);
        if (rc == 1 && v != cases_[i].value)
            fail_msg("\"%s\": %lld, want %lld", cases_[i].text, v, cases_[i].value);
        if (rc != 1 && v != 0x5a5a5a5a)
            fail_msg("\"%s\": wrote %lld though it returned %d", cases_[i].text, v, rc);
        if (rc >= 0) {
            size_t lead = strspn(cases_[i].text, " ");
            if (s.p != t + lead + cases_[i].used)
                fail_msg("\"%s\": stopped after %td bytes", cases_[i].text, s.p - t);
        }
        free(t);
    }
}

static void test_null(void **state)
{
    (void)state;
    struct jscan s;
    struct jstr str;
    jscan_init(&s, " null ", 6);
    assert_true(jscan_null(&s));
    assert_int_equal(jscan_finish(&s), 0);

    static const char *const not_null[] = { "nul", "Null", "\"null\"", "true", "0", "" };
    for (size_t i = 0; i < N_ELEMS(not_null); i++) {
        size_t len = strlen(not_null[i]);
        char *t = exact(not_null[i], len);
        jscan_init(&s, t, len);
        assert_false(jscan_null(&s));
        assert_ptr_equal(s.p, t); /* nothing consumed */
        free(t);
    }
    /* Not null: the value is still there to read. */
    jscan_init(&s, "  \"x\"", 5);
    assert_false(jscan_null(&s));
    assert_int_equal(jscan_string(&s, &str), 0);
    assert_true(jstr_is(&str, "x"));
    /* "nullx": null is read, what follows is the next thing's problem. */
    jscan_init(&s, "nullx", 5);
    assert_true(jscan_null(&s));
    assert_int_equal(jscan_finish(&s), -1);
}

static void test_peek_and_white_space(void **state)
{
    (void)state;
    struct jscan s;
    jscan_init(&s, " \t\r\n[", 5);
    assert_int_equal(jscan_peek(&s), '[');
    jscan_init(&s, " \t\r\n", 4);
    assert_int_equal(jscan_peek(&s), 0);
    assert_int_equal(jscan_finish(&s), 0);
    jscan_init(&s, "\f1", 2); /* form feed is not JSON white space */
    assert_int_equal(jscan_peek(&s), '\f');
    jscan_init(&s, "", 0);
    assert_int_equal(jscan_peek(&s), 0);
    assert_int_equal(jscan_skip(&s), -1);
    static const char *const firsts[] = { "{}", "[]", "\"\"", "null", "true", "false", "-1", "5" };
    for (size_t i = 0; i < N_ELEMS(firsts); i++) {
        jscan_init(&s, firsts[i], strlen(firsts[i]));
        assert_int_equal(jscan_peek(&s), firsts[i][0]);
        assert_ptr_equal(s.p, firsts[i]); /* peeking reads nothing */
    }
}

/* ---- decoding and comparing ------------------------------------------------------------ */

/* Reads the JSON string text as a jstr (text must stay alive). */
static struct jstr read_str(const char *text, size_t len)
{
    struct jscan s;
    struct jstr str;
    jscan_init(&s, text, len);
    if (jscan_string(&s, &str) != 0 || jscan_finish(&s) != 0)
        fail_msg("not a JSON string: %s", show(text, len));
    return str;
}

static void test_decode_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
        size_t want_len;
    } cases_[] = {
        { "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8 },
        { "\"\\u0041\"", "A", 1 },
        { "\"\\u007f\"", "\x7f", 1 },
        { "\"\\u0080\"", "\xc2\x80", 2 },
        { "\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9", 4 },
        { "\"\\u07ff\"", "\xdf\xbf", 2 },
        { "\"\\u0800\"", "\xe0\xa0\x80", 3 },
        { "\"\\u20ac\"", "\xe2\x82\xac", 3 },
        { "\"\\ud7ff\\ue000\"", "\xed\x9f\xbf\xee\x80\x80", 6 },
        { "\"\\uffff\"", "\xef\xbf\xbf", 3 },
        { "\"\\u0000\"", "\0", 1 },
        { "\"a\\u0000b\"", "a\0b", 3 },
        { "\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4 },
        { "\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4 },
        { "\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4 },
        { "\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4 },
        { "\"caf\xc3\xa9 \\u4e16 \xf0\x9f\x8c\x8d\\n\"",
          "caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8c\x8d\n", 15 },
        { "\"plain\"", "plain", 5 },
        { "\"\"", "", 0 },
    };
    for (size_t i = 0; i < N_ELEMS(cases_); i++) {
        size_t len = strlen(cases_[i].json);
        char *t = exact(cases_[i].json, len);
        struct jstr str = read_str(t, len);
        char out[64];
        memset(out, 'x', sizeof out);
        size_t n = jstr_decode(&str, out, sizeof out);
        if (n != cases_[i].want_len || memcmp(out, cases_[i].want, n) != 0)
            fail_msg("%s decodes to %s", cases_[i].json, show(out, n));
        assert_int_equal(out[n], '\0');
        json_t *v = unit_json(t, len); /* jansson decodes it the same */
        assert_int_equal(json_string_length(v), n);
        assert_memory_equal(json_string_value(v), out, n);
        json_decref(v);
        free(t);
    }
}

/* Decodes into a heap block of exactly cap bytes; checks the cut. */
static void check_cut(const struct jstr *str, const char *full, size_t full_len,
                      const size_t *bounds, size_t n_bounds, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    assert_non_null(out);
    memset(out, 'x', cap ? cap : 1);
    size_t n = jstr_decode(str, out, cap);
    if (cap == 0) {
        assert_int_equal(n, 0);
        assert_int_equal(out[0], 'x'); /* nothing written */
        free(out);
        return;
    }
    size_t want = 0; /* the longest prefix that ends on a boundary and fits */
    for (size_t b = 0; b < n_bounds; b++)
        if (bounds[b] <= cap - 1)
            want = bounds[b];
    if (n != want)
        fail_msg("cap %zu: %zu bytes, want %zu", cap, n, want);
    assert_int_equal(out[n], '\0');
    assert_memory_equal(out, full, n);
    (void)full_len;
    free(out);
}

static void test_decode_truncates_on_character_boundary(void **state)
{
    (void)state;
    /* a, é, 😀, b: 1 + 2 + 4 + 1 bytes, escaped and raw. */
    static const char *const texts[] = {
        "\"a\\u00e9\\ud83d\\ude00b\"",
        "\"a\xc3\xa9\xf0\x9f\x98\x80"
        "b\"",
        "\"a\\u00e9\xf0\x9f\x98\x80"
        "b\"",
    };
    static const char full[] = "a\xc3\xa9\xf0\x9f\x98\x80"
                               "b";
    static const size_t bounds[] = { 0, 1, 3, 7, 8 };
    for (size_t i = 0; i < N_ELEMS(texts); i++) {
        size_t len = strlen(texts[i]);
        char *t = exact(texts[i], len);
        struct jstr str = read_str(t, len);
        for (size_t cap = 0; cap <= 12; cap++)
            check_cut(&str, full, sizeof full - 1, bounds, N_ELEMS(bounds), cap);
        free(t);
    }
    /* cap 1 always gives "", even for a one-byte string. */
    struct jstr str = read_str("\"x\"", 3);
    char one[1] = { 'q' };
    assert_int_equal(jstr_decode(&str, one, 1), 0);
    assert_int_equal(one[0], '\0');
    str = read_str("\"\\n\"", 4);
    one[0] = 'q';
    assert_int_equal(jstr_decode(&str, one, 1), 0);
    assert_int_equal(one[0], '\0');
}

static void test_equals(void **state)
{
    (void)state;
    static const struct {
        const char *json, *lit;
        bool equal;
    } cases_[] = {
        { "\"content\"", "content", true },
        { "\"c\\u006fntent\"", "content", true },
        { "\"\\u0063\\u006f\\u006e\\u0074\\u0065\\u006e\\u0074\"", "content", true },
        { "\"conten\\u0074\"", "content", true },
        { "\"content\"", "conten", false },
        { "\"content\"", "contents", false },
        { "\"c\\u006fntent\"", "conten", false },
        { "\"c\\u006fntent\"", "contentx", false },
        { "\"c\\u006fntent\"", "c\\u006fntent", false }, /* the decoded value counts */
        { "\"c\\u006fnten\"", "content", false },
        { "\"Content\"", "content", false },
        { "\"C\\u006fntent\"", "content", false },
        { "\"\"", "", true },
        { "\"\"", "a", false },
        { "\"a\"", "", false },
        { "\"\\n\"", "\n", true },
        { "\"\\n\"", "n", false },
        { "\"caf\\u00e9\"", "caf\xc3\xa9", true },
        { "\"\\ud83c\\udf0d\"", "\xf0\x9f\x8c\x8d", true },
    };
    for (size_t i = 0; i < N_ELEMS(cases_); i++) {
        size_t len = strlen(cases_[i].json);
        char *t = exact(cases_[i].json, len);
        struct jstr str = read_str(t, len);
        if (jstr_equals_n(&str, cases_[i].lit, strlen(cases_[i].lit)) != cases_[i].equal)
            fail_msg("%s vs \"%s\": want %s", cases_[i].json, cases_[i].lit,
                     cases_[i].equal ? "equal" : "different");
        free(t);
    }
    /* \u0000 compares as the NUL byte it stands for. */
    struct jstr str = read_str("\"a\\u0000\"", 9);
    assert_true(jstr_equals_n(&str, "a\0", 2));
    assert_false(jstr_equals_n(&str, "a", 1));
    /* jstr_is takes the length from the literal. */
    str = read_str("\"c\\u006fntent\"", 14);
    assert_true(jstr_is(&str, "content"));
    assert_false(jstr_is(&str, "conte"));
    assert_false(jstr_is(&str, "content\0"));
}

static void test_equals_long_escaped_strings(void **state)
{
    (void)state;
    /* An escaped string whose decoded value is longer than the literal is not
     * equal to it, even when the literal is its prefix, at every length around
     * the size of the decoding buffer. */
    for (size_t n = 50; n < 80; n++) {
        char lit[100], json[128];
        memset(lit, 'a', sizeof lit);
        size_t len = (size_t)snprintf(json, sizeof json, "\"\\u0061%.*s\"", (int)(n - 1), lit);
        struct jstr str = read_str(json, len); /* decodes to n times 'a' */
        if (!jstr_equals_n(&str, lit, n) && n < 64)
            fail_msg("%zu escaped bytes differ from themselves", n);
        if (jstr_equals_n(&str, lit, n - 1))
            fail_msg("a string of %zu bytes equals its first %zu", n, n - 1);
        if (jstr_equals_n(&str, lit, n + 1))
            fail_msg("a string of %zu bytes equals %zu bytes", n, n + 1);
    }
    /* The same with a multi-byte character that the decoding buffer cuts off. */
    for (size_t n = 55; n < 66; n++) {
        char lit[100], json[160];
        memset(lit, 'a', sizeof lit);
        size_t len =
            (size_t)snprintf(json, sizeof json, "\"\\u0061%.*s\\ud83d\\ude00\"", (int)(n - 1), lit);
        struct jstr str = read_str(json, len); /* n times 'a', then 4 bytes */
        if (jstr_equals_n(&str, lit, n))
            fail_msg("a string of %zu bytes equals its first %zu", n + 4, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_jscan),
        cmocka_unit_test(test_table_agrees_with_jansson),
        cmocka_unit_test(test_table_embedded),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_nesting_depth_is_not_a_count),
        cmocka_unit_test(test_mutations_agree_with_jansson),
        cmocka_unit_test(test_member_iteration),
        cmocka_unit_test(test_member_errors),
        cmocka_unit_test(test_element_iteration),
        cmocka_unit_test(test_string_slices),
        cmocka_unit_test(test_string_fast_path_every_position),
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_peek_and_white_space),
        cmocka_unit_test(test_decode_escapes),
        cmocka_unit_test(test_decode_truncates_on_character_boundary),
        cmocka_unit_test(test_equals),
        cmocka_unit_test(test_equals_long_escaped_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
