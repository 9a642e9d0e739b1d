/* Unit tests of src/services/sse.c, the incremental SSE parser. The main
 * property: however the bytes are split between feeds (every split point, one
 * byte at a time, three pieces), the events dispatched are the same as when the
 * stream is fed whole. The rest pins the WHATWG rules one by one. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "services/openai.h"
#include "services/sse.h"

#define MAX_EVENT (1 << 16)

/* What a recorded OpenAI stream carries: role chunk, content with multi-byte
 * UTF-8, finish chunk, usage chunk with empty choices, then [DONE]. */
#define HEAD                                                                                 \
    "{\"id\":\"chatcmpl-AXk9\",\"object\":\"chat.completion.chunk\",\"created\":1732600000," \
    "\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\","
static const char *const openai_payloads[] = {
    HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
         "\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Gr\xc3\xbc\xc3\x9f\"},"
         "\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}",
    HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \xe4\xb8\x96\xe7\x95\x8c "
         "\xf0\x9f\x8c\x8d\\n\\\"ok\\\"\"},\"logprobs\":null,\"finish_reason\":null}],"
         "\"usage\":null}",
    HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
         "\"usage\":null}",
    HEAD "\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,"
         "\"total_tokens\":13}}",
    "[DONE]",
};

/* ---- recording what the parser dispatches ----------------------------------------- */

struct rec {
    struct buf out; /* "[type][id]data\n--\n" per event */
    int calls;
    int stop_at; /* return 99 from this call (1-based); 0 = never */
};

static int on_event(void *ctx, const struct sse_event *ev)
{
    struct rec *r = ctx;
    assert_int_equal(ev->data[ev->data_len], '\0');
    r->calls++;
    buf_append_str(&r->out, "[");
    buf_append_str(&r->out, ev->type);
    buf_append_str(&r->out, "][");
    buf_append_str(&r->out, ev->id);
    buf_append_str(&r->out, "]");
    buf_append(&r->out, ev->data, ev->data_len);
    buf_append_str(&r->out, "\n--\n");
    return r->calls == r->stop_at ? 99 : 0;
}

/* Feeds s[0..len) in pieces cut at the given offsets (ascending), then finishes.
 * Returns the first non-zero result, with the record in *r (caller frees r->out). */
static int run_cuts(const char *s, size_t len, const size_t *cuts, size_t n_cuts, size_t max,
                    struct rec *r)
{
    struct sse_parser p;
    sse_parser_init(&p, max);
    *r = (struct rec){ .out = { 0 } };
    buf_append(&r->out, "", 0);
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts && rc == 0; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        rc = sse_parser_feed(&p, s + at, end - at, on_event, r);
        at = end;
    }
    if (rc == 0)
        rc = sse_parser_finish(&p, on_event, r);
    sse_parser_free(&p);
    return rc;
}

static int run_whole(const char *s, size_t len, struct rec *r)
{
    return run_cuts(s, len, NULL, 0, MAX_EVENT, r);
}

/* Parses s whole and checks the record. */
static void expect(const char *s, const char *want)
{
    struct rec r;
    assert_int_equal(run_whole(s, strlen(s), &r), 0);
    if (strcmp(r.out.p, want) != 0)
        fail_msg("input: \"%s\"\ngot:\n%s\nwant:\n%s", s, r.out.p, want);
    buf_free(&r.out);
}

/* The recorded stream with the given line ending, and the record it must give. */
static void build_openai_stream(const char *eol, struct buf *stream, struct buf *want)
{
    *stream = (struct buf){ 0 };
    *want = (struct buf){ 0 };
    for (size_t i = 0; i < N_ELEMS(openai_payloads); i++) {
        buf_append_str(stream, "data: ");
        buf_append_str(stream, openai_payloads[i]);
        buf_append_str(stream, eol);
        buf_append_str(stream, eol);
        buf_append_str(want, "[][]");
        buf_append_str(want, openai_payloads[i]);
        buf_append_str(want, "\n--\n");
    }
}

/* Every way of cutting s once, and byte by byte, gives want. */
static void assert_split_invariant(const char *s, size_t len, const char *want)
{
    struct rec r;
    for (size_t k = 0; k <= len; k++) {
        int rc = run_cuts(s, len, &k, 1, MAX_EVENT, &r);
        if (rc != 0 || strcmp(r.out.p, want) != 0)
            fail_msg("cut at %zu of %zu: rc %d, got:\n%s", k, len, rc, r.out.p);
        buf_free(&r.out);
    }
    size_t *every = malloc(len * sizeof *every);
    assert_non_null(every);
    for (size_t k = 0; k < len; k++)
        every[k] = k;
    assert_int_equal(run_cuts(s, len, every, len, MAX_EVENT, &r), 0);
    assert_string_equal(r.out.p, want);
    buf_free(&r.out);
    free(every);
}

/* ---- the recorded stream ------------------------------------------------------------ */

static void test_openai_stream_whole(void **state)
{
    (void)state;
    struct buf stream, want;
    build_openai_stream("\n", &stream, &want);
    struct rec r;
    assert_int_equal(run_whole(stream.p, stream.len, &r), 0);
    assert_int_equal(r.calls, (int)N_ELEMS(openai_payloads));
    assert_string_equal(r.out.p, want.p);
    buf_free(&r.out);
    buf_free(&stream);
    buf_free(&want);
}

static void test_openai_stream_every_split(void **state)
{
    (void)state;
    static const char *const eols[] = { "\n", "\r\n", "\r" };
    for (size_t e = 0; e < N_ELEMS(eols); e++) {
        struct buf stream, want;
        build_openai_stream(eols[e], &stream, &want);
        assert_split_invariant(stream.p, stream.len, want.p);
        buf_free(&stream);
        buf_free(&want);
    }
}

/* The payloads are what chatd needs: the content reassembles (still escaped, as
 * the provider wrote it, and decoding to the text), the usage is read. */
static void test_openai_stream_content(void **state)
{
    (void)state;
    struct buf content = { 0 };
    long long total = -1;
    char finish[32] = "";
    for (size_t i = 0; i + 1 < N_ELEMS(openai_payloads); i++) {
        struct openai_chunk c;
        assert_int_equal(openai_chunk_parse(openai_payloads[i], strlen(openai_payloads[i]), &c), 0);
        assert_false(c.is_error);
        if (c.content_json != NULL)
            buf_append(&content, c.content_json, c.content_json_len);
        if (c.finish_reason[0] != '\0')
            memcpy(finish, c.finish_reason, sizeof finish);
        if (c.has_usage)
            total = c.total_tokens;
    }
    assert_string_equal(content.p, "Gr\xc3\xbc\xc3\x9f \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8c\x8d"
                                   "\\n\\\"ok\\\"");
    struct buf doc = { 0 };
    buf_append_str(&doc, "\"");
    buf_append(&doc, content.p, content.len);
    buf_append_str(&doc, "\"");
    json_t *v = unit_json(doc.p, doc.len);
    assert_string_equal(json_string_value(v),
                        "Gr\xc3\xbc\xc3\x9f \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8c\x8d\n\"ok\"");
    json_decref(v);
    assert_string_equal(finish, "stop");
    assert_int_equal(total, 13);
    buf_free(&doc);
    buf_free(&content);
}

/* A shorter stream full of edge cases, cut in three pieces at every pair of points. */
static void test_tricky_stream_every_two_cuts(void **state)
{
    (void)state;
    const char *s = "\xEF\xBB\xBF: hi\r\n"
                    "event: delta\rid: 7\r\n"
                    "data: a\xc3\xa9\r\n"
                    "data\n"
                    "data:b\r"
                    "\r\n"
                    "retry: 5\n"
                    "data: \xf0\x9f\x8c\x8d\n\n"
                    "data: tail";
    const char *want = "[delta][7]a\xc3\xa9\n\nb\n--\n[][7]\xf0\x9f\x8c\x8d\n--\n[][7]tail\n--\n";
    size_t len = strlen(s);
    expect(s, want);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = { i, j };
            struct rec r;
            int rc = run_cuts(s, len, cuts, 2, MAX_EVENT, &r);
            if (rc != 0 || strcmp(r.out.p, want) != 0)
                fail_msg("cuts %zu,%zu: rc %d, got:\n%s", i, j, rc, r.out.p);
            buf_free(&r.out);
        }
    }
}

/* ---- the rules one by one ----------------------------------------------------------- */

static void test_line_endings(void **state)
{
    (void)state;
    expect("data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\n", "[][]a\n--\n[][]b\n--\n[][]c\n--\n"
                                                                 "[][]d\n--\n");
    expect("data: a\r\ndata: b\r\n\r\n", "[][]a\nb\n--\n");
    expect("data: a\rdata: b\r\r", "[][]a\nb\n--\n");
}

static void test_cr_then_lf_in_next_feed(void **state)
{
    (void)state;
    /* The \n completes the \r\n of the line before: it is not a blank line, so
     * "a" and "b" belong to one event. */
    const char *s = "data: a\r\ndata: b\n\n";
    size_t cut = strlen("data: a\r");
    struct rec r;
    assert_int_equal(run_cuts(s, strlen(s), &cut, 1, MAX_EVENT, &r), 0);
    assert_string_equal(r.out.p, "[][]a\nb\n--\n");
    buf_free(&r.out);
    /* A \r that ends a feed, then a \r: that second \r is a blank line. */
    s = "data: a\r\rdata: b\r\r";
    assert_int_equal(run_cuts(s, strlen(s), &cut, 1, MAX_EVENT, &r), 0);
    assert_string_equal(r.out.p, "[][]a\n--\n[][]b\n--\n");
    buf_free(&r.out);
}

static void test_comments(void **state)
{
    (void)state;
    expect(": keep-alive\n\n", "");
    expect(":\n:only colon\n\n", "");
    expect("data: a\n: in the middle\ndata: b\n\n", "[][]a\nb\n--\n");
    expect(": data: not data\n\ndata: x\n\n", "[][]x\n--\n");

    struct sse_parser p; /* a comment is not a field with an empty name */
    sse_parser_init(&p, MAX_EVENT);
    struct rec r = { .out = { 0 } };
    assert_int_equal(sse_parser_feed(&p, ": keep-alive\n:\n\n", 16, on_event, &r), 0);
    assert_int_equal(p.unknown, 0);
    assert_int_equal(r.calls, 0);
    sse_parser_free(&p);
}

static void test_multi_line_data(void **state)
{
    (void)state;
    expect("data: a\ndata:\ndata:  b\ndata: c \n\n", "[][]a\n\n b\nc \n--\n");
    expect("data: {\"x\":\ndata: 1}\n\n", "[][]{\"x\":\n1}\n--\n");
}

static void test_event_and_id_fields(void **state)
{
    (void)state;
    /* The type belongs to one event; the id persists until changed. */
    expect("event: delta\nid: 42\ndata: x\n\ndata: y\n\nid: 43\nevent:error\ndata: z\n\n",
           "[delta][42]x\n--\n[][42]y\n--\n[error][43]z\n--\n");
    expect("id: 1\ndata: a\n\nid\ndata: b\n\n", "[][1]a\n--\n[][]b\n--\n");
    expect("event: skipped\n\ndata: x\n\n", "[][]x\n--\n");
}

static void test_id_with_nul_ignored(void **state)
{
    (void)state;
    const char s[] = "id: 5\ndata: a\n\nid: 6\0x\ndata: b\n\n";
    struct rec r;
    assert_int_equal(run_cuts(s, sizeof s - 1, NULL, 0, MAX_EVENT, &r), 0);
    assert_string_equal(r.out.p, "[][5]a\n--\n[][5]b\n--\n");
    buf_free(&r.out);
}

static void test_field_without_colon(void **state)
{
    (void)state;
    expect("data\n\n", "[][]\n--\n");
    expect("data\ndata\n\n", "[][]\n\n--\n");
    expect("event\ndata: x\n\n", "[][]x\n--\n");

    struct sse_parser p;
    sse_parser_init(&p, MAX_EVENT);
    struct rec r = { .out = { 0 } };
    const char *s = "foo\nbar: 1\nretry: 10\nDATA: x\ndata: y\n\n";
    assert_int_equal(sse_parser_feed(&p, s, strlen(s), on_event, &r), 0);
    assert_int_equal(p.unknown, 3); /* foo, bar and DATA (names are case-sensitive) */
    assert_int_equal(p.events, 1);
    assert_string_equal(r.out.p, "[][]y\n--\n");
    buf_free(&r.out);
    sse_parser_free(&p);
}

static void test_leading_bom(void **state)
{
    (void)state;
    expect("\xEF\xBB\xBF"
           "data: x\n\n",
           "[][]x\n--\n");
    /* Only the first one: later a BOM is part of a field name. */
    expect("\xEF\xBB\xBF"
           "data: a\n\n\xEF\xBB\xBF"
           "data: b\n\n",
           "[][]a\n--\n");
    expect("data: a\n\n\xEF\xBB\xBF"
           "data: b\n\n",
           "[][]a\n--\n");
    const char *s = "\xEF\xBB\xBF"
                    "data: x\n\n";
    assert_split_invariant(s, strlen(s), "[][]x\n--\n");
}

static void test_space_after_colon(void **state)
{
    (void)state;
    expect("data:x\n\n", "[][]x\n--\n");
    expect("data: x\n\n", "[][]x\n--\n");
    expect("data:  x\n\n", "[][] x\n--\n");
    expect("data:\tx\n\n", "[][]\tx\n--\n");
}

static void test_empty_data_dispatches_empty_string(void **state)
{
    (void)state;
    expect("data:\n\n", "[][]\n--\n");
    expect("data: \n\n", "[][]\n--\n");
}

static void test_no_data_no_dispatch(void **state)
{
    (void)state;
    expect("event: ping\n\n", "");
    expect("id: 5\n\n", "");
    expect("retry: 100\n\n", "");
    expect("\n\n\n\n", "");
    expect("", "");
}

static void test_finish_dispatches_unterminated_event(void **state)
{
    (void)state;
    expect("data: last", "[][]last\n--\n");
    expect("data: a\ndata: b", "[][]a\nb\n--\n");
    expect("data: a\n", "[][]a\n--\n");
    expect("data: a\r", "[][]a\n--\n");
    expect("event: e\ndata: a\r\n", "[e][]a\n--\n");
    expect("data: a\n\n: trailing comment", "[][]a\n--\n");
}

static void test_limit(void **state)
{
    (void)state;
    struct rec r;
    const char *line = "data: 0123456789"; /* 16 bytes, no line end yet */
    assert_int_equal(run_cuts(line, strlen(line), NULL, 0, 16, &r), 0);
    buf_free(&r.out);
    line = "data: 0123456789A";
    size_t cut = 5;
    assert_int_equal(run_cuts(line, strlen(line), &cut, 1, 16, &r), -E2BIG);
    buf_free(&r.out);
    /* Data lines that are each short but add up past the limit. */
    const char *many = "data: 12345\ndata: 12345\ndata: 12345\n\n";
    assert_int_equal(run_cuts(many, strlen(many), NULL, 0, 16, &r), -E2BIG);
    assert_int_equal(r.calls, 0);
    buf_free(&r.out);
    /* The limit is per event: many small events are fine. */
    struct buf s = { 0 };
    for (int i = 0; i < 1000; i++)
        buf_append_str(&s, "data: 12345\n\n");
    assert_int_equal(run_cuts(s.p, s.len, NULL, 0, 16, &r), 0);
    assert_int_equal(r.calls, 1000);
    buf_free(&r.out);
    buf_free(&s);
}

static void test_limit_is_split_invariant(void **state)
{
    (void)state;
    /* Whether a line over the limit is refused must not depend on where the
     * network happened to cut it. */
    const char *s = "data: 0123456789abcdefghijklmnopqrst\n\n"; /* a 36-byte line */
    size_t len = strlen(s);
    struct rec r;
    int whole = run_cuts(s, len, NULL, 0, 32, &r);
    buf_free(&r.out);
    assert_int_equal(whole, -E2BIG); /* 36 bytes do not fit in 32 */
    for (size_t k = 0; k <= len; k++) {
        int rc = run_cuts(s, len, &k, 1, 32, &r);
        buf_free(&r.out);
        if (rc != whole)
            fail_msg("limit 32: fed whole gives %d, cut at %zu gives %d", whole, k, rc);
    }
}

static void test_limit_boundary_every_split(void **state)
{
    (void)state;
    /* Lines of 30 to 34 bytes (without their line end) against a limit of 32:
     * up to 32 is accepted, past it refused, whole, cut once anywhere, or fed
     * byte by byte, whatever the line ending. */
    static const char *const eols[] = { "\n", "\r\n", "\r" };
    for (size_t e = 0; e < N_ELEMS(eols); e++) {
        for (size_t line_len = 30; line_len <= 34; line_len++) {
            char s[64];
            memcpy(s, "data: ", 6);
            memset(s + 6, 'x', line_len - 6);
            size_t len = line_len;
            for (int k = 0; k < 2; k++) {
                memcpy(s + len, eols[e], strlen(eols[e]));
                len += strlen(eols[e]);
            }
            int want = line_len <= 32 ? 0 : -E2BIG;
            size_t every[64];
            for (size_t k = 0; k < len; k++)
                every[k] = k;
            struct rec r;
            for (size_t k = 0; k <= len + 1; k++) {
                /* k <= len: one cut at k; k == len + 1: a cut between every byte */
                int rc = k <= len ? run_cuts(s, len, &k, 1, 32, &r)
                                  : run_cuts(s, len, every, len, 32, &r);
                if (rc != want)
                    fail_msg("line of %zu, eol %zu, cut %zu: %d, want %d", line_len, e, k, rc,
                             want);
                if (want == 0)
                    assert_int_equal(r.calls, 1);
                buf_free(&r.out);
            }
        }
    }
}

static void test_callback_stops_feed(void **state)
{
    (void)state;
    const char *s = "data: a\n\ndata: b\n\ndata: c\n\n";
    struct sse_parser p;
    sse_parser_init(&p, MAX_EVENT);
    struct rec r = { .out = { 0 }, .stop_at = 1 };
    assert_int_equal(sse_parser_feed(&p, s, strlen(s), on_event, &r), 99);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.out.p, "[][]a\n--\n");
    buf_free(&r.out);
    sse_parser_free(&p);

    /* Also when the stopping line was assembled from two feeds, and from finish. */
    sse_parser_init(&p, MAX_EVENT);
    r = (struct rec){ .out = { 0 }, .stop_at = 1 };
    assert_int_equal(sse_parser_feed(&p, "data: a\n", 8, on_event, &r), 0);
    assert_int_equal(sse_parser_feed(&p, "\ndata: b\n\n", 10, on_event, &r), 99);
    assert_int_equal(r.calls, 1);
    buf_free(&r.out);
    sse_parser_free(&p);

    sse_parser_init(&p, MAX_EVENT);
    r = (struct rec){ .out = { 0 }, .stop_at = 1 };
    assert_int_equal(sse_parser_feed(&p, "data: a", 7, on_event, &r), 0);
    assert_int_equal(sse_parser_finish(&p, on_event, &r), 99);
    buf_free(&r.out);
    sse_parser_free(&p);
}

static void test_free_is_idempotent(void **state)
{
    (void)state;
    struct sse_parser p;
    sse_parser_init(&p, MAX_EVENT);
    struct rec r = { .out = { 0 } };
    assert_int_equal(sse_parser_feed(&p, "data: partial", 13, on_event, &r), 0);
    sse_parser_free(&p);
    sse_parser_free(&p);
    assert_null(p.line);
    assert_null(p.data);
    assert_int_equal(r.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream_whole),
        cmocka_unit_test(test_openai_stream_every_split),
        cmocka_unit_test(test_openai_stream_content),
        cmocka_unit_test(test_tricky_stream_every_two_cuts),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_cr_then_lf_in_next_feed),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_multi_line_data),
        cmocka_unit_test(test_event_and_id_fields),
        cmocka_unit_test(test_id_with_nul_ignored),
        cmocka_unit_test(test_field_without_colon),
        cmocka_unit_test(test_leading_bom),
        cmocka_unit_test(test_space_after_colon),
        cmocka_unit_test(test_empty_data_dispatches_empty_string),
        cmocka_unit_test(test_no_data_no_dispatch),
        cmocka_unit_test(test_finish_dispatches_unterminated_event),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_limit_is_split_invariant),
        cmocka_unit_test(test_limit_boundary_every_split),
        cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_free_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
