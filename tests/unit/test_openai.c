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
            openai_request_body(&b, "gpt-4o-mini",
                                &(struct openai_conversation){ .message = messages[i],
                                                               .message_len = strlen(messages[i]) },
                                256),
            0);
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
    assert_int_equal(
        openai_request_body(
            &b, "m\"x", &(struct openai_conversation){ .message = "abcdef", .message_len = 3 }, 1),
        0);
    json_t *v = unit_json(b.p, b.len);
    assert_string_equal(unit_str(v, "model"), "m\"x");
    assert_string_equal(unit_str(json_array_get(json_object_get(v, "messages"), 0), "content"),
                        "abc");
    json_decref(v);
    buf_free(&b);
}

/* ---- openai_chunk_parse ------------------------------------------------------------- */

/* Parses s from a heap block of exactly its length (ASan sees any read past it),
 * after filling *c with garbage that the parser must overwrite. The block is
 * kept in *text (the chunk points into it); the caller frees it. */
static int parse_keep(const char *s, size_t len, struct openai_chunk *c, char **text)
{
    *text = malloc(len ? len : 1);
    assert_non_null(*text);
    memcpy(*text, s, len);
    memset(c, 0xa5, sizeof *c);
    return openai_chunk_parse(*text, len, c);
}

static int parse(const char *s, struct openai_chunk *c)
{
    char *text;
    int rc = parse_keep(s, strlen(s), c, &text);
    free(text);
    return rc; /* c's pointers are dangling now: only lengths and flags may be read */
}

/* Checks that c's content is exactly want (still escaped) and lies inside text. */
static void assert_content(const struct openai_chunk *c, const char *text, size_t len,
                           const char *want)
{
    assert_non_null(c->content_json);
    if (c->content_json_len != strlen(want) || memcmp(c->content_json, want, strlen(want)) != 0)
        fail_msg("content_json \"%.*s\", want \"%s\"", (int)c->content_json_len, c->content_json,
                 want);
    assert_true(c->content_json >= text && c->content_json + c->content_json_len <= text + len);
}

/* The content decoded the way a client will: inside quotes, by jansson. */
static void assert_content_decodes_to(const struct openai_chunk *c, const char *want,
                                      size_t want_len)
{
    struct buf doc = { 0 };
    buf_append(&doc, "\"", 1);
    buf_append(&doc, c->content_json, c->content_json_len);
    buf_append(&doc, "\"", 1);
    json_t *v = unit_json(doc.p, doc.len);
    assert_int_equal(json_string_length(v), want_len);
    assert_memory_equal(json_string_value(v), want, want_len);
    json_decref(v);
    buf_free(&doc);
}

static void test_chunk_content(void **state)
{
    (void)state;
    const char *s = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                    "\"Gr\\u00fc\\u00df \\ud83c\\udf0d\"},\"finish_reason\":null}]}";
    struct openai_chunk c;
    char *text;
    assert_int_equal(parse_keep(s, strlen(s), &c, &text), 0);
    assert_content(&c, text, strlen(s), "Gr\\u00fc\\u00df \\ud83c\\udf0d");
    assert_content_decodes_to(&c, "Gr\xc3\xbc\xc3\x9f \xf0\x9f\x8c\x8d", 11);
    assert_string_equal(c.finish_reason, "");
    assert_false(c.has_usage);
    assert_false(c.is_error);
    free(text);
}

static void test_chunk_content_stays_escaped(void **state)
{
    (void)state;
    static const struct {
        const char *json_content; /* as written between the quotes */
        const char *decoded;
        size_t decoded_len;
    } cases[] = {
#define DECODED(s) s, sizeof(s) - 1
        { "a\\\"b\\u00e9", DECODED("a\"b\xc3\xa9") },
        { "line\\nbreak\\ttab\\\\", DECODED("line\nbreak\ttab\\") },
        { "\\/slash\\/", DECODED("/slash/") },
        { "caf\xc3\xa9 \xe4\xb8\x96", DECODED("caf\xc3\xa9 \xe4\xb8\x96") },
        { "\\u0000nul", DECODED("\0nul") },
        { "<\\u003cscript>", DECODED("<<script>") },
        { " ", DECODED(" ") },
#undef DECODED
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct buf s = { 0 };
        buf_append_str(&s, "{\"choices\":[{\"delta\":{\"content\":\"");
        buf_append_str(&s, cases[i].json_content);
        buf_append_str(&s, "\"}}]}");
        struct openai_chunk c;
        char *text;
        if (parse_keep(s.p, s.len, &c, &text) != 0)
            fail_msg("refused: %s", s.p);
        assert_content(&c, text, s.len, cases[i].json_content);
        assert_content_decodes_to(&c, cases[i].decoded, cases[i].decoded_len);
        free(text);
        buf_free(&s);
    }
}

static void test_chunk_escaped_keys(void **state)
{
    (void)state;
    /* Keys are compared by their decoded value. */
    const char *s = "{\"ch\\u006fices\":[{\"d\\u0065lta\":{\"c\\u006fntent\":\"x\"},"
                    "\"finish_re\\u0061son\":\"st\\u006fp\"}],\"us\\u0061ge\":{"
                    "\"prompt_t\\u006fkens\":1,\"completion_tokens\":2}}";
    struct openai_chunk c;
    char *text;
    assert_int_equal(parse_keep(s, strlen(s), &c, &text), 0);
    assert_content(&c, text, strlen(s), "x");
    assert_string_equal(c.finish_reason, "stop"); /* decoded */
    assert_true(c.has_usage);
    assert_int_equal(c.total_tokens, 3);
    free(text);
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
        "{\"choices\":[]}",
        "{\"choices\":null}",
        "{}",
        " \r\n\t{ } \n",
    };
    for (size_t i = 0; i < N_ELEMS(chunks); i++) {
        struct openai_chunk c;
        if (parse(chunks[i], &c) != 0)
            fail_msg("refused: %s", chunks[i]);
        assert_null(c.content_json);
        assert_int_equal(c.content_json_len, 0);
        assert_string_equal(c.finish_reason, "");
        assert_false(c.has_usage);
        assert_false(c.is_error);
    }
}

static void test_chunk_only_first_choice(void **state)
{
    (void)state;
    const char *s = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}},"
                    "{\"index\":1,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}";
    struct openai_chunk c;
    char *text;
    assert_int_equal(parse_keep(s, strlen(s), &c, &text), 0);
    assert_content(&c, text, strlen(s), "a");
    assert_string_equal(c.finish_reason, "");
    free(text);
}

static void test_chunk_finish(void **state)
{
    (void)state;
    static const struct {
        const char *value, *want;
    } cases[] = {
        { "\"length\"", "length" },
        { "\"stop\"", "stop" },
        { "\"content_filter\"", "content_filter" },
        { "\"st\\u006fp\"", "stop" },
        { "\"tool_calls\"", "tool_calls" },
        { "null", "" },
        { "\"\"", "" },
        /* Longer than the field: cut to 31 bytes, on a character boundary. */
        { "\"0123456789012345678901234567890123456789\"", "0123456789012345678901234567890" },
        { "\"012345678901234567890123456789\xc3\xa9\"", "012345678901234567890123456789" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char s[256];
        snprintf(s, sizeof s,
                 "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":%s}],\"usage\":null}",
                 cases[i].value);
        struct openai_chunk c;
        if (parse(s, &c) != 0)
            fail_msg("refused: %s", s);
        assert_string_equal(c.finish_reason, cases[i].want);
        assert_null(c.content_json);
        assert_false(c.has_usage);
    }
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
    assert_null(c.content_json);

    /* Without total_tokens, the total is the sum. */
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}", &c), 0);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 2);
    assert_int_equal(c.completion_tokens, 3);
    assert_int_equal(c.total_tokens, 5);

    /* Large counts that fit. */
    assert_int_equal(parse("{\"usage\":{\"prompt_tokens\":123456789012,\"completion_tokens\":0,"
                           "\"total_tokens\":123456789012}}",
                           &c),
                     0);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 123456789012LL);
    assert_int_equal(c.completion_tokens, 0);

    /* Counts that are missing, not integers, or past what chatd reads: valid
     * chunks, but no usage to report. */
    static const char *const no_usage[] = {
        "{\"usage\":null}",
        "{\"usage\":{}}",
        "{\"usage\":5}",
        "{\"usage\":[1,2]}",
        "{\"usage\":{\"prompt_tokens\":2}}",
        "{\"usage\":{\"completion_tokens\":3}}",
        "{\"usage\":{\"prompt_tokens\":\"2\",\"completion_tokens\":3}}",
        "{\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":null}}",
        "{\"usage\":{\"prompt_tokens\":2.5,\"completion_tokens\":3}}",
        "{\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3e0}}",
        "{\"usage\":{\"prompt_tokens\":99999999999999999999,\"completion_tokens\":3}}",
    };
    for (size_t i = 0; i < N_ELEMS(no_usage); i++) {
        if (parse(no_usage[i], &c) != 0)
            fail_msg("refused: %s", no_usage[i]);
        if (c.has_usage)
            fail_msg("usage read from %s", no_usage[i]);
    }
}

static void test_chunk_error(void **state)
{
    (void)state;
    /* The chunk only says it is an error; the caller summarizes the whole chunk. */
    static const struct {
        const char *json, *summary;
    } cases[] = {
        { "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}",
          "Rate limit reached" },
        { "{\"error\":\"overloaded\"}", "overloaded" },
        { "{\"error\":{\"code\":500}}", "" },
        { "{\"error\":true,\"message\":\"boom\"}", "boom" },
        { "{\"error\":{\"message\":\"bad key " API_KEY "\"}}", "bad key REDACTED" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct openai_chunk c;
        if (parse(cases[i].json, &c) != 0)
            fail_msg("refused: %s", cases[i].json);
        assert_true(c.is_error);
        assert_null(c.content_json);
        char out[240];
        openai_error_summary(cases[i].json, strlen(cases[i].json), API_KEY, NULL, 0, out,
                             sizeof out);
        if (strcmp(out, cases[i].summary) != 0)
            fail_msg("%s: summary \"%s\", want \"%s\"", cases[i].json, out, cases[i].summary);
    }
    struct openai_chunk c;
    assert_int_equal(parse("{\"error\":null,\"choices\":[]}", &c), 0);
    assert_false(c.is_error);
    assert_int_equal(parse("{\"choices\":[{\"delta\":{\"content\":\"error\"}}]}", &c), 0);
    assert_false(c.is_error);
}

static void test_chunk_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
    } bad[] = {
        { "", 0 },
        { " ", 0 },
        { "not json", 0 },
        { "[DONE]", 0 },
        { "[]", 0 },
        { "\"text\"", 0 },
        { "null", 0 },
        { "42", 0 },
        /* known fields of the wrong type */
        { "{\"choices\":{}}", 0 },
        { "{\"choices\":\"x\"}", 0 },
        { "{\"choices\":[1]}", 0 },
        { "{\"choices\":[null]}", 0 },
        { "{\"choices\":[[]]}", 0 },
        { "{\"choices\":[{\"delta\":\"text\"}]}", 0 },
        { "{\"choices\":[{\"delta\":[]}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":5}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":true}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":[\"a\"]}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":{}}}]}", 0 },
        { "{\"choices\":[{\"delta\":{},\"finish_reason\":1}]}", 0 },
        { "{\"choices\":[{\"delta\":{},\"finish_reason\":{}}]}", 0 },
        { "{\"choices\":[{\"delta\":{},\"finish_reason\":false}]}", 0 },
        /* invalid JSON, wherever it is, even in fields chatd ignores */
        { "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]} trailing", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}{}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\0", sizeof "{\"choices\":[]}" },
        { "{\"id\":\"\xff\"}", 0 },
        { "{\"x\":[1,]}", 0 },
        { "{\"x\":01}", 0 },
        { "{\"x\":tru}", 0 },
        { "{\"choices\":[{\"delta\":{}},{\"delta\":nul}]}", 0 },
        { "{\"choices\":[{\"delta\":{},\"logprobs\":{\"a\"}}]}", 0 },
        { "{\"usage\":{\"prompt_tokens\":1.,\"completion_tokens\":3}}", 0 },
        { "{\"usage\":{\"prompt_tokens\":-,\"completion_tokens\":3}}", 0 },
        { "{\"error\":{\"message\":\"x\"}", 0 },
        { "{\"error\":}", 0 },
        { "{\"choices\":[],}", 0 },
        { "{\"choices\" []}", 0 },
        /* content that is not a valid JSON string, which chatd would copy as is */
        { "{\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\\udc00\\ud800\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"a\\qb\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"a\nb\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\xc3\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\xed\xa0\x80\"}}]}", 0 },
        { "{\"choices\":[{\"delta\":{\"content\":\"\xc0\xaf\"}}]}", 0 },
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        struct openai_chunk c;
        char *text;
        if (parse_keep(bad[i].text, len, &c, &text) != -EINVAL)
            fail_msg("accepted: %.*s", (int)len, bad[i].text);
        /* Nothing half-read is left behind. */
        assert_null(c.content_json);
        assert_int_equal(c.content_json_len, 0);
        assert_string_equal(c.finish_reason, "");
        assert_false(c.has_usage);
        assert_false(c.is_error);
        free(text);
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
     * random-token rule once cut) must not leak in part, wherever the summary is
     * cut: the text is redacted whole, then cut. */
    const char *key = "gsk_Zq81Xw72Vu63Ts54Rp45Qo36";
    struct buf body = { 0 };
    for (int i = 0; i < 9; i++) /* long random tokens, each redacted to 8 bytes */
        buf_append_str(&body, "abcdefghij0123456789abcdefghij0123456789ab ");
    buf_append_str(&body, key);
    buf_append_str(&body, " rejected");
    const char *full = "REDACTED REDACTED REDACTED REDACTED REDACTED REDACTED REDACTED "
                       "REDACTED REDACTED REDACTED rejected";
    char out[240];
    assert_int_equal(openai_error_summary(body.p, body.len, key, NULL, 0, out, sizeof out),
                     strlen(full));
    assert_string_equal(out, full);
    for (size_t outlen = 1; outlen <= strlen(full) + 1; outlen++) {
        size_t n = openai_error_summary(body.p, body.len, key, NULL, 0, out, outlen);
        if (n != outlen - 1 || memcmp(out, full, n) != 0 || out[n] != '\0')
            fail_msg("outlen %zu: \"%s\" is not the first %zu bytes of the summary", outlen, out,
                     outlen - 1);
        for (size_t k = 0; k + 4 <= strlen(key); k++) /* no 4 bytes of the key */
            if (memmem(out, n, key + k, 4) != NULL)
                fail_msg("outlen %zu: part of the key leaked: \"%s\"", outlen, out);
    }
    buf_free(&body);
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
        cmocka_unit_test(test_chunk_content_stays_escaped),
        cmocka_unit_test(test_chunk_escaped_keys),
        cmocka_unit_test(test_chunk_role_and_empty_content),
        cmocka_unit_test(test_chunk_only_first_choice),
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
