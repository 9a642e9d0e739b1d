/* Unit tests of src/models/stream_event.c: each event is exactly one `data: `
 * line and a blank line, whose JSON has the contract's keys and values. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/jsonw.h"
#include "models/stream_event.h"

#define CID "3f0c9a52-1b7e-4c1d-9e2f-0123456789ab"

/* Checks the SSE framing of the single event in b and returns its parsed JSON. */
static json_t *parse_event(const struct buf *b)
{
    assert_true(b->len > 8);
    assert_memory_equal(b->p, "data: ", 6);
    assert_memory_equal(b->p + b->len - 2, "\n\n", 2);
    const char *nl = memchr(b->p, '\n', b->len);
    assert_ptr_equal(nl, b->p + b->len - 2); /* one line, then the blank line */
    assert_null(memchr(b->p, '\r', b->len));
    return unit_json(b->p + 6, b->len - 8);
}

static void test_content_event_exact(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(stream_event_content(&b, "Hel", 3, 0, CID), 0);
    assert_string_equal(b.p, "data: {\"content\":\"Hel\",\"sequence\":0,\"is_final\":false,"
                             "\"correlation_id\":\"" CID "\"}\n\n");
    buf_free(&b);
}

static void test_content_event_keys_and_escaping(void **state)
{
    (void)state;
    /* The caller passes the content already escaped (as the provider wrote it,
     * or as jsonw_escape writes it): the event is valid JSON that decodes to
     * the text. */
    static const char *const contents[] = {
        "lo",
        "line1\nline2\r\n",
        "\"quoted\" \\ back",
        "caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8c\x8d",
        "\t\x01\x1f",
        "data: fake\n\ndata: injected",
        "</script>\xe2\x80\xa8",
        "",
    };
    for (size_t i = 0; i < N_ELEMS(contents); i++) {
        size_t n = strlen(contents[i]);
        char *esc = malloc(JSONW_ESCAPE_BOUND(n) + 1);
        assert_non_null(esc);
        size_t esc_len = jsonw_escape(esc, contents[i], n);
        struct buf b = { 0 };
        uint64_t seq = 1000000 + i;
        assert_int_equal(stream_event_content(&b, esc, esc_len, seq, CID), 0);
        json_t *v = parse_event(&b);
        static const char *const keys[] = { "content", "sequence", "is_final", "correlation_id",
                                            NULL };
        unit_assert_keys(v, keys);
        assert_string_equal(unit_str(v, "content"), contents[i]);
        assert_int_equal(unit_int(v, "sequence"), (long long)seq);
        assert_true(json_is_false(json_object_get(v, "is_final")));
        assert_string_equal(unit_str(v, "correlation_id"), CID);
        json_decref(v);
        buf_free(&b);
        free(esc);
    }
}

static void test_content_copied_as_is(void **state)
{
    (void)state;
    /* Escaped content is not escaped again, nor decoded: the bytes between the
     * quotes are exactly the ones given, and only len of them. */
    static const char *const escaped[] = {
        "a\\\"b\\u00e9", "\\/\\b\\f\\n\\r\\t\\\\", "\\ud83c\\udf0d and \xf0\x9f\x8c\x8d",
        "\\u0000",       "\\u003c/script\\u003e",
    };
    for (size_t i = 0; i < N_ELEMS(escaped); i++) {
        struct buf b = { 0 }, want = { 0 };
        assert_int_equal(stream_event_content(&b, escaped[i], strlen(escaped[i]), 3, CID), 0);
        buf_append_str(&want, "data: {\"content\":\"");
        buf_append_str(&want, escaped[i]);
        buf_append_str(&want,
                       "\",\"sequence\":3,\"is_final\":false,\"correlation_id\":\"" CID "\"}\n\n");
        assert_string_equal(b.p, want.p);
        json_decref(parse_event(&b)); /* and it is JSON */
        buf_free(&b);
        buf_free(&want);
    }
    struct buf b = { 0 };
    assert_int_equal(stream_event_content(&b, "abcdef", 3, 0, CID), 0);
    assert_non_null(strstr(b.p, "{\"content\":\"abc\","));
    buf_free(&b);
}

static void test_cid_written_as_is(void **state)
{
    (void)state;
    /* Every function takes a checked UUID and copies it without escaping. */
    static const char *const cids[] = { CID, "00000000-0000-4000-8000-000000000000",
                                        "FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF" };
    for (size_t i = 0; i < N_ELEMS(cids); i++) {
        char want[80];
        snprintf(want, sizeof want, ",\"correlation_id\":\"%s\"", cids[i]);
        struct buf b = { 0 };
        assert_int_equal(stream_event_content(&b, "x", 1, 0, cids[i]), 0);
        assert_non_null(strstr(b.p, want));
        struct stream_final f = { .status = "completed", .finish_reason = "stop" };
        assert_int_equal(stream_event_final(&b, 1, cids[i], &f), 0);
        assert_non_null(strstr(b.p + strlen("data: {\"content\":\"x\""), want));
        buf_free(&b);
    }
}

static void test_events_append(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(stream_event_content(&b, "a", 1, 0, CID), 0);
    size_t first = b.len;
    assert_int_equal(stream_event_content(&b, "b", 1, 1, CID), 0);
    const char *second = "data: {\"content\":\"b\",\"sequence\":1,";
    assert_memory_equal(b.p + first, second, strlen(second));
    buf_free(&b);
}

static const char *const completed_keys[] = {
    "content",
    "sequence",
    "is_final",
    "correlation_id",
    "status",
    "finish_reason",
    "duration_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    NULL,
};

static void test_final_completed_with_usage(void **state)
{
    (void)state;
    struct stream_final f = { .status = "completed",
                              .finish_reason = "stop",
                              .has_usage = true,
                              .prompt_tokens = 9,
                              .completion_tokens = 2,
                              .total_tokens = 11,
                              .duration_ms = 412 };
    struct buf b = { 0 };
    assert_int_equal(stream_event_final(&b, 2, CID, &f), 0);
    assert_string_equal(b.p, "data: {\"content\":\"\",\"sequence\":2,\"is_final\":true,"
                             "\"correlation_id\":\"" CID "\",\"status\":\"completed\","
                             "\"finish_reason\":\"stop\",\"duration_ms\":412,\"prompt_tokens\":9,"
                             "\"completion_tokens\":2,\"total_tokens\":11}\n\n");
    json_t *v = parse_event(&b);
    unit_assert_keys(v, completed_keys);
    assert_true(json_is_true(json_object_get(v, "is_final")));
    assert_int_equal(unit_int(v, "total_tokens"), 11);
    json_decref(v);
    buf_free(&b);
}

static void test_final_completed_without_usage(void **state)
{
    (void)state;
    struct stream_final f = { .status = "completed",
                              .finish_reason = NULL,
                              .has_usage = false,
                              .prompt_tokens = 5,
                              .duration_ms = 7 };
    struct buf b = { 0 };
    assert_int_equal(stream_event_final(&b, 0, CID, &f), 0);
    json_t *v = parse_event(&b);
    unit_assert_keys(v, completed_keys);
    assert_string_equal(unit_str(v, "status"), "completed");
    assert_string_equal(unit_str(v, "content"), "");
    assert_int_equal(unit_int(v, "sequence"), 0);
    assert_int_equal(unit_int(v, "duration_ms"), 7);
    assert_true(json_is_null(json_object_get(v, "finish_reason")));
    assert_true(json_is_null(json_object_get(v, "prompt_tokens"))); /* never invented */
    assert_true(json_is_null(json_object_get(v, "completion_tokens")));
    assert_true(json_is_null(json_object_get(v, "total_tokens")));
    json_decref(v);
    buf_free(&b);
}

static void check_error_final(const char *status, enum error_code code, const char *want_code)
{
    const char *detail = "The model provider refused the request (HTTP 429). Over \"quota\". "
                         "Wait.";
    struct stream_final f = { .status = status,
                              .error = code,
                              .detail = detail,
                              .duration_ms = 830,
                              .has_usage = true,
                              .prompt_tokens = 1 };
    struct buf b = { 0 };
    assert_int_equal(stream_event_final(&b, 7, CID, &f), 0);
    json_t *v = parse_event(&b);
    static const char *const keys[] = { "content", "sequence", "is_final",    "correlation_id",
                                        "status",  "error",    "duration_ms", NULL };
    unit_assert_keys(v, keys);
    assert_string_equal(unit_str(v, "status"), status);
    assert_true(json_is_true(json_object_get(v, "is_final")));
    assert_int_equal(unit_int(v, "sequence"), 7);
    assert_int_equal(unit_int(v, "duration_ms"), 830);
    json_t *e = json_object_get(v, "error");
    static const char *const error_keys[] = { "error", "detail", NULL };
    unit_assert_keys(e, error_keys);
    assert_string_equal(unit_str(e, "error"), want_code);
    assert_string_equal(unit_str(e, "detail"), detail);
    json_decref(v);
    buf_free(&b);
}

static void test_final_error(void **state)
{
    (void)state;
    check_error_final("error", ERR_UPSTREAM_RATE_LIMITED, "upstream_rate_limited");
    check_error_final("error", ERR_UPSTREAM_TLS, "upstream_unreachable");
    check_error_final("error", ERR_STREAM_SHUTTING_DOWN, "shutting_down");
}

static void test_final_timeout(void **state)
{
    (void)state;
    check_error_final("timeout", ERR_UPSTREAM_TIMEOUT, "upstream_timeout");
}

static void test_comment(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(stream_event_comment(&b, "keep-alive"), 0);
    assert_string_equal(b.p, ": keep-alive\n\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_event_exact),
        cmocka_unit_test(test_content_event_keys_and_escaping),
        cmocka_unit_test(test_content_copied_as_is),
        cmocka_unit_test(test_cid_written_as_is),
        cmocka_unit_test(test_events_append),
        cmocka_unit_test(test_final_completed_with_usage),
        cmocka_unit_test(test_final_completed_without_usage),
        cmocka_unit_test(test_final_error),
        cmocka_unit_test(test_final_timeout),
        cmocka_unit_test(test_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
