/* Unit tests of src/models/error.c: the catalogue (names, statuses per the
 * contract, three-part texts), error_detail and error_json_body. Includes the .c
 * to read the catalogue's parts. */
#include "unit.h"

#include <ctype.h>

#include "../../src/models/error.c"

#define CID "3f0c9a52-1b7e-4c1d-9e2f-0123456789ab"

static void test_every_code_has_a_name(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_COUNT; c++) {
        const char *name = error_code_name(c);
        if (name == NULL || name[0] == '\0')
            fail_msg("code %d has no name", c);
        for (const char *p = name; *p; p++)
            if (!islower((unsigned char)*p) && *p != '_')
                fail_msg("name \"%s\" is not snake_case", name);
    }
}

static void test_names_and_statuses_per_contract(void **state)
{
    (void)state;
    static const struct {
        enum error_code code;
        const char *name;
        int status;
    } cases[] = {
        { ERR_VALIDATION, "validation_error", 400 },
        { ERR_BAD_REQUEST, "bad_request", 400 },
        { ERR_UNAUTHORIZED, "unauthorized", 401 },
        { ERR_NOT_FOUND, "not_found", 404 },
        { ERR_METHOD_NOT_ALLOWED, "method_not_allowed", 405 },
        { ERR_REQUEST_TIMEOUT, "request_timeout", 408 },
        { ERR_PAYLOAD_TOO_LARGE, "payload_too_large", 413 },
        { ERR_URI_TOO_LONG, "uri_too_long", 414 },
        { ERR_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415 },
        { ERR_HEADERS_TOO_LARGE, "headers_too_large", 431 },
        { ERR_EXPECTATION_FAILED, "expectation_failed", 417 },
        { ERR_NOT_IMPLEMENTED, "not_implemented", 501 },
        { ERR_VERSION_UNSUPPORTED, "http_version_not_supported", 505 },
        { ERR_OVERLOADED, "overloaded", 503 },
        { ERR_SHUTTING_DOWN, "shutting_down", 503 },
        { ERR_TIMEOUT, "timeout", 504 },
        { ERR_FORBIDDEN, "forbidden", 403 },
        { ERR_MODEL_NOT_FOUND, "model_not_found", 404 },
        { ERR_RATE_LIMITED, "rate_limited", 429 },
        { ERR_LIMITS_UNAVAILABLE, "limits_unavailable", 503 },
        { ERR_INTERNAL, "internal_error", 500 },
        { ERR_UPSTREAM_UNREACHABLE, "upstream_unreachable", 0 },
        { ERR_UPSTREAM_TLS, "upstream_unreachable", 0 },
        { ERR_UPSTREAM_AUTH_FAILED, "upstream_auth_failed", 0 },
        { ERR_UPSTREAM_RATE_LIMITED, "upstream_rate_limited", 0 },
        { ERR_UPSTREAM_BAD_REQUEST, "upstream_bad_request", 0 },
        { ERR_UPSTREAM_NOT_FOUND, "upstream_bad_request", 0 },
        { ERR_UPSTREAM_ERROR, "upstream_error", 0 },
        { ERR_UPSTREAM_PROTOCOL_ERROR, "upstream_protocol_error", 0 },
        { ERR_UPSTREAM_INTERRUPTED, "upstream_interrupted", 0 },
        { ERR_UPSTREAM_TIMEOUT, "upstream_timeout", 0 },
        { ERR_STREAM_SHUTTING_DOWN, "shutting_down", 0 },
    };
    assert_int_equal(N_ELEMS(cases), ERR_COUNT);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        assert_string_equal(error_code_name(cases[i].code), cases[i].name);
        if (error_status(cases[i].code) != cases[i].status)
            fail_msg("%s: status %d, want %d", cases[i].name, error_status(cases[i].code),
                     cases[i].status);
    }
}

static void test_catalogue_texts_are_sentences(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_COUNT; c++) {
        const char *parts[] = { catalogue[c].what, catalogue[c].why, catalogue[c].todo };
        for (size_t k = 0; k < N_ELEMS(parts); k++) {
            size_t n = parts[k] ? strlen(parts[k]) : 0;
            if (n < 10 || parts[k][n - 1] == '.' || strstr(parts[k], ". ") != NULL)
                fail_msg("%s: part %zu is not one sentence without its period: \"%s\"",
                         error_code_name(c), k, parts[k] ? parts[k] : "(null)");
        }
        assert_true(isupper((unsigned char)catalogue[c].what[0]));
        assert_ptr_equal(error_recovery(c), catalogue[c].todo);
        assert_in_range(error_log_level(c), LOG_INFO, LOG_ERROR);
    }
}

static void test_detail_three_sentences(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_COUNT; c++) {
        char out[1024], want[1024];
        size_t n = error_detail(out, sizeof out, c, NULL, NULL, NULL);
        snprintf(want, sizeof want, "%s. %s. %s.", catalogue[c].what, catalogue[c].why,
                 catalogue[c].todo);
        assert_string_equal(out, want);
        assert_int_equal(n, strlen(want));
        if (unit_sentences(out) != 3)
            fail_msg("%s: \"%s\" is not three sentences", error_code_name(c), out);
    }
}

static void test_detail_with_own_parts(void **state)
{
    (void)state;
    char out[512];
    size_t n = error_detail(out, sizeof out, ERR_VALIDATION, "The field \"message\" is empty", NULL,
                            "Write a message");
    assert_string_equal(out, "The field \"message\" is empty. chatd needs a JSON object with a "
                             "non-empty \"message\" string. Write a message.");
    assert_int_equal(n, strlen(out));
    n = error_detail(out, sizeof out, ERR_UPSTREAM_RATE_LIMITED, NULL, "Over quota", NULL);
    assert_string_equal(out, "The model provider refused the request (HTTP 429). Over quota. Wait "
                             "a few seconds and retry, or check your provider's plan.");
}

static void test_detail_truncates(void **state)
{
    (void)state;
    char out[16];
    memset(out, 'x', sizeof out);
    size_t n = error_detail(out, sizeof out, ERR_NOT_FOUND, NULL, NULL, NULL);
    assert_int_equal(n, sizeof out - 1);
    assert_int_equal(out[sizeof out - 1], '\0');
    assert_memory_equal(out, "There is nothin", 15);
}

static void test_json_body(void **state)
{
    (void)state;
    for (int c = 0; c < ERR_COUNT; c++) {
        char detail[512], out[4096];
        error_detail(detail, sizeof detail, c, NULL, NULL, NULL);
        size_t n = error_json_body(out, sizeof out, c, detail, CID);
        assert_true(n > 0 && n < sizeof out);
        json_t *v = unit_json(out, n);
        static const char *const keys[] = { "error", "detail", "correlation_id", NULL };
        unit_assert_keys(v, keys);
        assert_string_equal(unit_str(v, "error"), error_code_name(c));
        assert_string_equal(unit_str(v, "detail"), detail);
        assert_string_equal(unit_str(v, "correlation_id"), CID);
        json_decref(v);
    }
}

static void test_json_body_escapes(void **state)
{
    (void)state;
    const char *detail = "The field \"model\" is \\bad\\.\nNew line\x01. caf\xc3\xa9 \xff.";
    char out[1024];
    size_t n = error_json_body(out, sizeof out, ERR_VALIDATION, detail, "c\"id");
    json_t *v = unit_json(out, n);
    assert_string_equal(unit_str(v, "detail"),
                        "The field \"model\" is \\bad\\.\nNew line\x01. caf\xc3\xa9 \xef\xbf\xbd.");
    assert_string_equal(unit_str(v, "correlation_id"), "c\"id");
    json_decref(v);
}

static void test_json_body_too_small(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(error_json_body(out, sizeof out, ERR_VALIDATION, "x", CID), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_name),
        cmocka_unit_test(test_names_and_statuses_per_contract),
        cmocka_unit_test(test_catalogue_texts_are_sentences),
        cmocka_unit_test(test_detail_three_sentences),
        cmocka_unit_test(test_detail_with_own_parts),
        cmocka_unit_test(test_detail_truncates),
        cmocka_unit_test(test_json_body),
        cmocka_unit_test(test_json_body_escapes),
        cmocka_unit_test(test_json_body_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
