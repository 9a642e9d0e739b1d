/* Unit tests of src/services/openai.c: the request body chatd sends, the chunks
 * it reads, and the one-line summaries of provider error bodies (which must
 * never carry a key or the user's message). */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "services/openai.h"

#define API_KEY "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90"

/* ---- openai_request_body ------------------------------------------------------------ */

static void test_request_body_fields(void **state)
{
    (void)state;
    static const char *const messages[] = {
        "Hello",
        "say \"hi\"\nand \\ more\t\x01",
        "caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8c\x8d",
        "",
    };
    for (size_t i = 0; i < N_ELEMS(messages); i++) {
        struct buf b = { 0 };
        assert_int_equal(
            openai_request_body(&b, "gpt-4o-mini", messages[i], strlen(messages[i]), 256), 0);
        json_t *v = unit_json(b.p, b.len);
        static const char *const keys[] = { "model",  "messages",       "max_tokens",
                                            "stream", "stream_options", NULL };
        unit_assert_keys(v, keys);
        assert_string_equal(unit_str(v, "model"), "gpt-4o-mini");
        assert_int_equal(unit_int(v, "max_tokens"), 256);
        assert_true(json_is_true(json_object_get(v, "stream")));
        json_t *opts = json_object_get(v, "stream_options");
        static const char *const opt_keys[] = { "include_usage", NULL };
        unit_assert_keys(opts, opt_keys);
        assert_true(json_is_true(json_object_get(opts, "include_usage")));
        json_t *msgs = json_object_get(v, "messages");
        assert_true(json_is_array(msgs));
        assert_int_equal(json_array_size(msgs), 1);
        json_t *m = json_array_get(msgs, 0);
        static const char *const msg_keys[] = { "role", "content", NULL };
        unit_assert_keys(m, msg_keys);
        assert_string_equal(unit_str(m, "role"), "user");
        assert_string_equal(unit_str(m, "content"), messages[i]);
        json_decref(v);
        buf_free(&b);
    }
}

static void test_request_body_uses_length(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(openai_request_body(&b, "m\"x", "abcdef", 3, 1), 0);
    json_t *v = unit_json(b.p, b.len);
    assert_string_equal(unit_str(v, "model"), "m\"x");
    assert_string_equal(unit_str(json_array_get(json_object_get(v, "messages"), 0), "content"),
                        "abc");
    json_decref(v);
    buf_free(&b);
}

/* ---- openai_chunk_parse ------------------------------------------------------------- */

static int parse(const char *s, struct openai_chunk *c)
{
    return openai_chunk_parse(s, strlen(s), c);
}

static void test_chunk_content(void **state)
{
    (void)state;
    struct openai_chunk c;
    assert_int_equal(parse("{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                           "\"Gr\\u00fc\\u00df \\ud83c\\udf0d\"},\"finish_reason\":null}]}",
                           &c),
                     0);
    assert_int_equal(c.content_len, strlen("Gr\xc3\xbc\xc3\x9f \xf0\x9f\x8c\x8d"));
    assert_memory_equal(c.content, "Gr\xc3\xbc\xc3\x9f \xf0\x9f\x8c\x8d", c.content_len);
    assert_null(c.finish_reason);
    assert_false(c.has_usage);
    assert_false(c.is_error);
    openai_chunk_free(&c);
    assert_null(c.root);
}

static void test_chunk_role_and_empty_content(void **state)
{
    (void)state;
    static const char *const chunks[] = {
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}",
        "{\"choices\":[{\"delta\":{}}]}",
        "{\"choices\":[{\"delta\":null}]}",
        "{\"choices\":[{}]}",
        "{\"choices\":null}",
        "{}",
    };
    for (size_t i = 0; i < N_ELEMS(chunks); i++) {
        struct openai_chunk c;
        if (parse(chunks[i], &c) != 0)
            fail_msg("refused: %s", chunks[i]);
        assert_null(c.content);
        assert_int_equal(c.content_len, 0);
        assert_null(c.finish_reason);
        openai_chunk_free(&c);
    }
}

static void test_chunk_finish(void **state)
{
    (void)state;
    struct openai_chunk c;
    assert_int_equal(parse("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],"
                           "\"usage\":null}",
                           &c),
                     0);
    assert_string_equal(c.finish_reason, "length");
    assert_null(c.content);
    assert_false(c.has_usage);
    openai_chunk_free(&c);
}

static void test_chunk_usage(void **state)
{
    (void)state;
    struct openai_chunk c;
    assert_int_equal(parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,"
                           "\"total_tokens\":13,\"prompt_tokens_details\":{\"cached_tokens\":0}}}",
                           &c),
                     0);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 9);
    assert_int_equal(c.completion_tokens, 4);
    assert_int_equal(c.total_tokens, 13);
    assert_null(c.content);
    openai_chunk_free(&c);

    /* Without total_tokens, the total is the sum; without the counts, no usage. */
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}", &c), 0);
    assert_true(c.has_usage);
    assert_int_equal(c.total_tokens, 5);
    openai_chunk_free(&c);
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":\"2\",\"completion_tokens\":3}}", &c), 0);
    assert_false(c.has_usage);
    openai_chunk_free(&c);
}

static void test_chunk_error(void **state)
{
    (void)state;
    static const struct {
        const char *json, *message;
    } cases[] = {
        { "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}",
          "Rate limit reached" },
        { "{\"error\":\"overloaded\"}", "overloaded" },
        { "{\"error\":{\"code\":500}}", NULL },
        { "{\"error\":true,\"message\":\"boom\"}", "boom" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct openai_chunk c;
        assert_int_equal(parse(cases[i].json, &c), 0);
        assert_true(c.is_error);
        if (cases[i].message == NULL)
            assert_null(c.error_message);
        else
            assert_string_equal(c.error_message, cases[i].message);
        openai_chunk_free(&c);
    }
    struct openai_chunk c;
    assert_int_equal(parse("{\"error\":null,\"choices\":[]}", &c), 0);
    assert_false(c.is_error);
    openai_chunk_free(&c);
}

static void test_chunk_wrong_types(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[DONE]",
        "[]",
        "\"text\"",
        "{\"choices\":{}}",
        "{\"choices\":\"x\"}",
        "{\"choices\":[1]}",
        "{\"choices\":[null]}",
        "{\"choices\":[{\"delta\":\"text\"}]}",
        "{\"choices\":[{\"delta\":[]}]}",
        "{\"choices\":[{\"delta\":{\"content\":5}}]}",
        "{\"choices\":[{\"delta\":{\"content\":[\"a\"]}}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":1}]}",
        "{\"choices\":[{\"delta\":{},\"finish_reason\":{}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]} trailing",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        struct openai_chunk c;
        if (parse(bad[i], &c) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_null(c.root); /* nothing to free, nothing leaked */
        openai_chunk_free(&c);
    }
}

/* ---- openai_error_summary ----------------------------------------------------------- */

static const char *summary(const char *body, const char *message, char *out, size_t outlen)
{
    size_t n = openai_error_summary(body, strlen(body), API_KEY, message,
                                    message ? strlen(message) : 0, out, outlen);
    assert_int_equal(n, strlen(out));
    assert_true(n < outlen);
    return out;
}

static void test_summary_shapes(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        { "{\"error\":{\"message\":\"The model `gpt-9` does not exist.\",\"type\":"
          "\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}",
          "The model `gpt-9` does not exist." },
        { "{\"error\":\"Model is loading\"}", "Model is loading" },
        { "{\"message\":\"Bad gateway\"}", "Bad gateway" },
        { "{\"detail\":\"Not Found\"}", "Not Found" },
        { "{\"status\":500}", "" },
        { "[1,2]", "" },
        { "Internal Server Error\r\n", "Internal Server Error" },
        { "  upstream\tconnect\n\nerror  or disconnect\x01 ",
          "upstream connect error or disconnect" },
        { "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
          "Gateway</h1></center><hr><center>nginx</center></body></html>",
          "502 Bad Gateway 502 Bad Gateway nginx" },
        { "", "" },
        { "\xff\xfe bad \xc0\xaf bytes", "bad bytes" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char out[240];
        summary(cases[i].body, "Hello there, how are you", out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
    }
}

static void test_summary_redacts_keys_keeps_urls(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } cases[] = {
        { "{\"error\":{\"message\":\"Incorrect API key provided: sk-proj-****abcd. You can find "
          "your API key at https://platform.openai.com/account/api-keys.\"}}",
          "Incorrect API key provided: REDACTED. You can find your API key at "
          "https://platform.openai.com/account/api-keys." },
        { "bad key " API_KEY " (sent as Bearer)", "bad key REDACTED (sent as REDACTED)" },
        { "key=" API_KEY ";", "REDACTED;" },
        { "token sk-abc123, and rk-live_99!", "token REDACTED, and REDACTED!" },
        { "masked ab****cd and 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a",
          "masked REDACTED and REDACTED" },
        { "see http://example.com/sk-docs for help", "see http://example.com/sk-docs for help" },
        { "plain words stay", "plain words stay" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char out[400];
        summary(cases[i].body, NULL, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
        assert_null(strstr(out, "Ab12Cd34"));
    }
}

static void test_summary_key_near_the_length_limit(void **state)
{
    (void)state;
    /* A key that does not look like one (no sk- prefix, too short for the
     * random-token rule once cut) must not leak in part where the summary's
     * internal buffer cuts the text. */
    const char *key = "gsk_Zq81Xw72Vu63Ts54Rp45Qo36";
    struct buf body = { 0 };
    for (int i = 0; i < 9; i++) /* long random tokens, each redacted to 8 bytes */
        buf_append_str(&body, "abcdefghij0123456789abcdefghij0123456789ab ");
    buf_append_str(&body, key);
    buf_append_str(&body, " rejected");
    char out[240];
    openai_error_summary(body.p, body.len, key, NULL, 0, out, sizeof out);
    buf_free(&body);
    if (strstr(out, "gsk_") != NULL)
        fail_msg("part of the key leaked: \"%s\"", out);
}

static void test_summary_truncates_on_utf8_boundary(void **state)
{
    (void)state;
    struct buf body = { 0 };
    for (int i = 0; i < 100; i++)
        buf_append_str(&body, "\xe4\xb8\x96"); /* 世, 3 bytes */
    for (size_t outlen = 1; outlen < 40; outlen++) {
        char out[64];
        memset(out, 'x', sizeof out);
        size_t n = openai_error_summary(body.p, body.len, NULL, NULL, 0, out, outlen);
        assert_int_equal(n, (outlen - 1) / 3 * 3);
        assert_int_equal(out[n], '\0');
        json_t *s = json_stringn(out, n); /* jansson refuses invalid UTF-8 */
        assert_non_null(s);
        json_decref(s);
    }
    char big[400];
    assert_true(openai_error_summary(body.p, body.len, NULL, NULL, 0, big, sizeof big) > 0);
    buf_free(&body);
    char none[1] = { 'x' };
    assert_int_equal(openai_error_summary("abc", 3, NULL, NULL, 0, none, 0), 0);
    assert_int_equal(none[0], 'x');
}

static void test_summary_quoting_message_is_empty(void **state)
{
    (void)state;
    static const struct {
        const char *message, *body;
    } cases[] = {
        { "What is the capital of France? Answer briefly.",
          "{\"error\":{\"message\":\"Content policy: 'What is the capital of France? Answer "
          "briefly.' was flagged\"}}" },
        { "long enough message text here", "prefix long enough message text suffix" },
        { "hi there", "{\"error\":\"Invalid prompt: hi there\"}" },
        { "abc", "bad input abc" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char out[240];
        summary(cases[i].body, cases[i].message, out, sizeof out);
        if (out[0] != '\0')
            fail_msg("case %zu quotes the message: \"%s\"", i, out);
    }
    char out[240];
    summary("rate limited, try later", "an unrelated question", out, sizeof out);
    assert_string_equal(out, "rate limited, try later");
}

static void test_summary_quoting_multiline_message_is_empty(void **state)
{
    (void)state;
    /* The summary collapses white space; a message with line breaks or double
     * spaces, quoted by the provider, must still be recognised. */
    static const struct {
        const char *message, *body;
    } cases[] = {
        { "Hello\nWorld", "{\"error\":{\"message\":\"Invalid prompt: Hello\\nWorld\"}}" },
        { "my  secret", "Flagged input: my  secret" },
        { "line one\r\nline two\r\nline three", "Refused: line one\r\nline two\r\nline three" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char out[240];
        summary(cases[i].body, cases[i].message, out, sizeof out);
        if (out[0] != '\0')
            fail_msg("case %zu quotes the message: \"%s\"", i, out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_body_fields),
        cmocka_unit_test(test_request_body_uses_length),
        cmocka_unit_test(test_chunk_content),
        cmocka_unit_test(test_chunk_role_and_empty_content),
        cmocka_unit_test(test_chunk_finish),
        cmocka_unit_test(test_chunk_usage),
        cmocka_unit_test(test_chunk_error),
        cmocka_unit_test(test_chunk_wrong_types),
        cmocka_unit_test(test_summary_shapes),
        cmocka_unit_test(test_summary_redacts_keys_keeps_urls),
        cmocka_unit_test(test_summary_key_near_the_length_limit),
        cmocka_unit_test(test_summary_truncates_on_utf8_boundary),
        cmocka_unit_test(test_summary_quoting_message_is_empty),
        cmocka_unit_test(test_summary_quoting_multiline_message_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
