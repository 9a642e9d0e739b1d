/* Unit tests of src/models/stream_event.c: each event is exactly one `data: `
 * line and a blank line, whose JSON has the contract's keys and values. */
#include "unit.h"

#include "core/buf.h"
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
    static const char *const contents[] = {
        "lo",
        "line1\nline2\r\n",
        "\"quoted\" \\ back",
        "caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8c\x8d",
        "\t\x01\x1f",
        "data: fake\n\ndata: injected",
    };
    for (size_t i = 0; i < N_ELEMS(contents); i++) {
        struct buf b = { 0 };
        uint64_t seq = 1000000 + i;
        assert_int_equal(stream_event_content(&b, contents[i], strlen(contents[i]), seq, CID), 0);
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
        cmocka_unit_test(test_events_append),
        cmocka_unit_test(test_final_completed_with_usage),
        cmocka_unit_test(test_final_completed_without_usage),
        cmocka_unit_test(test_final_error),
        cmocka_unit_test(test_final_timeout),
        cmocka_unit_test(test_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
