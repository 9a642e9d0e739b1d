/* Unit tests of src/models/chat_request.c: the POST /chat body rules of the
 * contract (spec task T021 and the rest). Every refusal names its field, reads
 * as three sentences, and never quotes the message. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "models/chat_request.h"

/* The message every refused request carries where it can: it must never show up
 * in an error. */
#define MARK "PURPLE-ELEPHANT-7"

static struct config g_cfg;

static const char *lookup(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "OPENAI_MODEL") == 0)
        return "gpt-4o-mini";
    if (strcmp(name, "ALLOWED_MODELS") == 0)
        return "gpt-4o-mini,gpt-4o";
    if (strcmp(name, "MAX_TOKENS") == 0)
        return "1024";
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    char err[512];
    return config_load(&g_cfg, lookup, NULL, err, sizeof err);
}

static int group_teardown(void **state)
{
    (void)state;
    config_free(&g_cfg);
    return 0;
}

/* Checks a refusal: its field, a word of its first sentence, the shape of its
 * three parts, and that the message is not quoted. */
static void check_refusal(const char *body, size_t len, const char *field, const char *what_has)
{
    struct chat_request req;
    struct chat_request_error err;
    memset(&err, 0, sizeof err);
    int rc = chat_request_parse(body, len, &g_cfg, &req, &err);
    if (rc == 0)
        chat_request_free(&req); /* nothing leaks when the test fails */
    if (rc != -EINVAL)
        fail_msg("accepted (rc %d): %.200s", rc, body);
    assert_null(req.root);
    if (err.field == NULL || strcmp(err.field, field) != 0)
        fail_msg("%.200s: field \"%s\", want \"%s\"", body, err.field ? err.field : "(null)",
                 field);
    if (strstr(err.what, what_has) == NULL)
        fail_msg("%.200s: \"%s\" does not say \"%s\"", body, err.what, what_has);
    const char *parts[] = { err.what, err.why, err.todo };
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", field);
    if (strcmp(field, "body") != 0 && !strstr(err.what, quoted) && !strstr(err.why, quoted) &&
        !strstr(err.todo, quoted))
        fail_msg("\"%s. %s. %s.\" does not name the field %s", err.what, err.why, err.todo, quoted);
    for (size_t i = 0; i < N_ELEMS(parts); i++) {
        size_t n = strlen(parts[i]);
        if (n == 0 || parts[i][n - 1] == '.' || strstr(parts[i], ". ") != NULL)
            fail_msg("part %zu is not one sentence without its period: \"%s\"", i, parts[i]);
        if (strstr(parts[i], MARK) != NULL)
            fail_msg("the error quotes the message: \"%s\"", parts[i]);
    }
}

static void refused(const char *body, const char *field, const char *what_has)
{
    check_refusal(body, strlen(body), field, what_has);
}

static void test_body_not_json(void **state)
{
    (void)state;
    check_refusal("", 0, "body", "empty");
    check_refusal(NULL, 0, "body", "empty");
    refused("not json " MARK, "body", "not valid JSON");
    refused("{\"message\": \"" MARK "\"", "body", "not valid JSON");
    refused("{\"message\": \"" MARK "\"} trailing", "body", "not valid JSON");
    refused("   ", "body", "not valid JSON");
    refused("{\"message\": \"\xff" MARK "\"}", "body", "not valid JSON"); /* bad UTF-8 */
}

static void test_body_array(void **state)
{
    (void)state;
    refused("[\"" MARK "\"]", "body", "an array, not a JSON object");
}

static void test_body_scalar_is_not_an_object(void **state)
{
    (void)state;
    /* Each is valid JSON: the error must say it is not an object, not that it is
     * not JSON. */
    refused("\"" MARK "\"", "body", "a string, not a JSON object");
    refused("42", "body", "an integer, not a JSON object");
    refused("true", "body", "a boolean, not a JSON object");
    refused("null", "body", "null, not a JSON object");
}

static void test_duplicate_keys_refused(void **state)
{
    (void)state;
    refused("{\"message\":\"" MARK "\",\"message\":\"b\"}", "body", "not valid JSON");
    refused("{\"message\":\"" MARK "\",\"model\":\"gpt-4o\",\"model\":\"gpt-4o\"}", "body",
            "not valid JSON");
}

static void test_message_missing_or_wrong_type(void **state)
{
    (void)state;
    static const struct {
        const char *body, *what;
    } cases[] = {
        { "{}", "missing" },
        { "{\"model\":\"gpt-4o\"}", "missing" },
        { "{\"message\":null}", "missing" },
        { "{\"Message\":\"" MARK "\"}", "missing" },
        { "{\"message\":42}", "an integer, not a string" },
        { "{\"message\":4.5}", "a number with a fraction, not a string" },
        { "{\"message\":[\"" MARK "\"]}", "an array, not a string" },
        { "{\"message\":{\"text\":\"" MARK "\"}}", "an object, not a string" },
        { "{\"message\":true}", "a boolean, not a string" },
        { "{\"message\":false}", "a boolean, not a string" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        refused(cases[i].body, "message", cases[i].what);
}

static void test_message_empty_or_blank(void **state)
{
    (void)state;
    refused("{\"message\":\"\"}", "message", "empty");
    static const char *const blanks[] = {
        " ",
        "   ",
        "\\t\\n\\r ",
        "\\u000b\\f",
        "\\u3000",
        "\\u00a0",
        " \\u2003 \\u3000\\n",
        "\\u2028\\u2029",
        "\\u0085",
        "\\u202f\\u205f\\u1680",
        "\\u001c\\u001f",
    };
    for (size_t i = 0; i < N_ELEMS(blanks); i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"message\":\"%s\"}", blanks[i]);
        refused(body, "message", "only white space");
    }
}

/* {"message":"<unit × n>"} in a malloc'd string. */
static char *message_body(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *body = malloc(n * u + 32);
    assert_non_null(body);
    char *p = body + sprintf(body, "{\"message\":\"");
    for (size_t i = 0; i < n; i++, p += u)
        memcpy(p, unit, u);
    strcpy(p, "\"}");
    return body;
}

static void test_message_length_in_code_points(void **state)
{
    (void)state;
    static const char *const units[] = { "a", "\xc3\xa9", "\xe4\xb8\x96", "\xf0\x9f\x98\x80",
                                         "\\u00e9" };
    for (size_t i = 0; i < N_ELEMS(units); i++) {
        char *ok = message_body(units[i], 8000);
        struct chat_request req;
        struct chat_request_error err;
        if (chat_request_parse(ok, strlen(ok), &g_cfg, &req, &err) != 0)
            fail_msg("8000 × \"%s\" refused: %s", units[i], err.what);
        assert_int_equal(req.message_chars, 8000);
        chat_request_free(&req);
        free(ok);
        char *too_long = message_body(units[i], 8001);
        refused(too_long, "message", "too long (8001 characters)");
        free(too_long);
    }
}

static void test_long_message_not_quoted(void **state)
{
    (void)state;
    char *body = message_body(MARK " ", 1000);
    refused(body, "message", "too long");
    free(body);
}

static void test_model_rules(void **state)
{
    (void)state;
    refused("{\"message\":\"" MARK "\",\"model\":\"gpt-5\"}", "model",
            "\"gpt-5\" is not available");
    refused("{\"message\":\"" MARK "\",\"model\":\"GPT-4O\"}", "model", "not available");
    refused("{\"message\":\"" MARK "\",\"model\":\"\"}", "model", "not available");
    refused("{\"message\":\"" MARK "\",\"model\":\"gpt-4o \"}", "model", "not available");
    refused("{\"message\":\"" MARK "\",\"model\":7}", "model", "an integer, not a string");
    refused("{\"message\":\"" MARK "\",\"model\":[\"gpt-4o\"]}", "model", "an array, not a string");
    refused("{\"message\":\"" MARK "\",\"model\":{}}", "model", "an object, not a string");
    refused("{\"message\":\"" MARK "\",\"model\":false}", "model", "a boolean, not a string");

    struct chat_request_error err;
    struct chat_request req;
    const char *body = "{\"message\":\"hi\",\"model\":\"nope\"}";
    assert_int_equal(chat_request_parse(body, strlen(body), &g_cfg, &req, &err), -EINVAL);
    assert_non_null(strstr(err.why, "gpt-4o-mini"));
    assert_non_null(strstr(err.why, "gpt-4o")); /* the allowed models are listed */
}

static void test_long_model_name_shortened(void **state)
{
    (void)state;
    char body[512];
    snprintf(body, sizeof body, "{\"message\":\"hi\",\"model\":\"%0300d\"}", 0);
    struct chat_request_error err;
    struct chat_request req;
    assert_int_equal(chat_request_parse(body, strlen(body), &g_cfg, &req, &err), -EINVAL);
    assert_string_equal(err.field, "model");
    assert_non_null(strstr(err.what, "...\" is not available"));
}

static void test_max_tokens_rules(void **state)
{
    (void)state;
    static const struct {
        const char *value, *what;
    } cases[] = {
        { "0", "0, out of range" },
        { "-1", "-1, out of range" },
        { "1025", "1025, out of range" },
        { "9223372036854775807", "out of range" },
        { "5.0", "a number with a fraction, not an integer" },
        { "5.5", "a number with a fraction, not an integer" },
        { "1e2", "a number with a fraction, not an integer" },
        { "true", "a boolean, not an integer" },
        { "\"5\"", "a string, not an integer" },
        { "[5]", "an array, not an integer" },
        { "{}", "an object, not an integer" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"message\":\"" MARK "\",\"max_tokens\":%s}", cases[i].value);
        refused(body, "max_tokens", cases[i].what);
    }
}

static void test_unknown_field_with_huge_number_ignored(void **state)
{
    (void)state;
    /* Valid JSON, and unknown fields are ignored whatever their value: a 64-bit
     * random seed must not make the body "not valid JSON". */
    struct chat_request req;
    struct chat_request_error err;
    const char *body = "{\"message\":\"hi\",\"seed\":18446744073709551615}";
    if (chat_request_parse(body, strlen(body), &g_cfg, &req, &err) != 0)
        fail_msg("refused: %s", err.what);
    assert_string_equal(req.message, "hi");
    chat_request_free(&req);
}

static void test_max_tokens_too_big_for_integer(void **state)
{
    (void)state;
    /* Valid JSON whose integer does not fit in 64 bits is still a max_tokens out
     * of range, and the error must say so. */
    static const char *const values[] = {
        "99999999999999999999", "9223372036854775808",   "18446744073709551616",
        "-9223372036854775809", "-99999999999999999999", "123456789012345678901234567890123456789",
    };
    for (size_t i = 0; i < N_ELEMS(values); i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"message\":\"" MARK "\",\"max_tokens\":%s}", values[i]);
        refused(body, "max_tokens", "out of range");
    }
}

static void test_huge_number_elsewhere_changes_nothing(void **state)
{
    (void)state;
    /* An integer past 64 bits in a field chatd ignores must not change how
     * max_tokens is judged: a fraction or an exponent is still not an integer. */
    static const struct {
        const char *value, *what;
    } cases[] = {
        { "5.0", "a number with a fraction, not an integer" },
        { "1e2", "a number with a fraction, not an integer" },
        { "2.5", "a number with a fraction, not an integer" },
        { "0", "0, out of range" },
        { "2000", "2000, out of range" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"message\":\"" MARK "\",\"max_tokens\":%s}", cases[i].value);
        refused(body, "max_tokens", cases[i].what);
        snprintf(body, sizeof body,
                 "{\"seed\":18446744073709551616,\"message\":\"" MARK "\",\"max_tokens\":%s}",
                 cases[i].value);
        refused(body, "max_tokens", cases[i].what);
    }
    /* And a valid max_tokens stays an integer. */
    struct chat_request req;
    struct chat_request_error err;
    const char *body = "{\"message\":\"hi\",\"seed\":-18446744073709551616,\"max_tokens\":7}";
    if (chat_request_parse(body, strlen(body), &g_cfg, &req, &err) != 0)
        fail_msg("refused: %s", err.what);
    assert_int_equal(req.max_tokens, 7);
    chat_request_free(&req);
}

/* Parses an accepted body; the caller frees req. */
static void accepted(const char *body, struct chat_request *req)
{
    struct chat_request_error err;
    memset(&err, 0, sizeof err);
    if (chat_request_parse(body, strlen(body), &g_cfg, req, &err) != 0)
        fail_msg("refused: %s (%s)", body, err.what);
    assert_non_null(req->root);
}

static void test_valid_requests(void **state)
{
    (void)state;
    struct chat_request req;
    accepted("{\"message\":\"Hello\"}", &req);
    assert_string_equal(req.message, "Hello");
    assert_int_equal(req.message_len, 5);
    assert_int_equal(req.message_chars, 5);
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.max_tokens, 1024);
    chat_request_free(&req);
    assert_null(req.root);

    accepted("{\"message\":\"Hi\",\"model\":null,\"max_tokens\":null}", &req);
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.max_tokens, 1024);
    chat_request_free(&req);

    accepted("{\"max_tokens\":1,\"model\":\"gpt-4o\",\"message\":\" caf\\u00e9 \\n\"}", &req);
    assert_string_equal(req.message, " caf\xc3\xa9 \n"); /* kept as sent */
    assert_int_equal(req.message_chars, 7);
    assert_string_equal(req.model, "gpt-4o");
    assert_int_equal(req.max_tokens, 1);
    chat_request_free(&req);

    accepted("{\"message\":\"x\",\"max_tokens\":1024}", &req);
    assert_int_equal(req.max_tokens, 1024);
    chat_request_free(&req);

    accepted("  {\"message\":\"\\u3000x\"}\n", &req);
    chat_request_free(&req);
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    struct chat_request req;
    accepted("{\"message\":\"hi\",\"temperature\":0.5,\"stream\":false,\"messages\":[],"
             "\"extra\":{\"model\":\"evil\",\"max_tokens\":-1},\"MAX_TOKENS\":0}",
             &req);
    assert_string_equal(req.model, "gpt-4o-mini");
    assert_int_equal(req.max_tokens, 1024);
    chat_request_free(&req);
}

static void test_utf8_chars(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t want;
    } cases[] = {
        { "", 0 },
        { "abc", 3 },
        { "caf\xc3\xa9", 4 },
        { "\xe4\xb8\x96\xe7\x95\x8c", 2 },
        { "\xf0\x9f\x98\x80!", 2 },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        assert_int_equal(chat_utf8_chars(cases[i].s, strlen(cases[i].s)), cases[i].want);
}

static void test_is_blank(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool want;
    } cases[] = {
        { "", true },
        { " \t\n\r\v\f", true },
        { "\xe3\x80\x80", true },             /* U+3000 */
        { "\xc2\xa0", true },                 /* U+00A0 */
        { "\xc2\x85", true },                 /* U+0085 */
        { "\xe2\x80\x80\xe2\x80\x8a", true }, /* U+2000, U+200A */
        { "\xe2\x80\xa8\xe2\x80\xa9", true }, /* U+2028, U+2029 */
        { "\xe2\x80\x8b", false },            /* U+200B ZERO WIDTH SPACE is not space */
        { "\xef\xbb\xbf", false },            /* U+FEFF */
        { " a ", false },
        { "\xe3\x80\x80.", false },
        { "\xc3\xa9", false },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (chat_is_blank(cases[i].s, strlen(cases[i].s)) != cases[i].want)
            fail_msg("case %zu should be %d", i, cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_not_json),
        cmocka_unit_test(test_body_array),
        cmocka_unit_test(test_body_scalar_is_not_an_object),
        cmocka_unit_test(test_duplicate_keys_refused),
        cmocka_unit_test(test_message_missing_or_wrong_type),
        cmocka_unit_test(test_message_empty_or_blank),
        cmocka_unit_test(test_message_length_in_code_points),
        cmocka_unit_test(test_long_message_not_quoted),
        cmocka_unit_test(test_model_rules),
        cmocka_unit_test(test_long_model_name_shortened),
        cmocka_unit_test(test_max_tokens_rules),
        cmocka_unit_test(test_max_tokens_too_big_for_integer),
        cmocka_unit_test(test_huge_number_elsewhere_changes_nothing),
        cmocka_unit_test(test_unknown_field_with_huge_number_ignored),
        cmocka_unit_test(test_valid_requests),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_utf8_chars),
        cmocka_unit_test(test_is_blank),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
