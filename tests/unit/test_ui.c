/* Unit tests of src/api/ui.c: the generated asset table and If-None-Match. */
#include "unit.h"

#include "../../src/api/ui.c"

static void test_every_page_file_is_in_the_table(void **state)
{
    (void)state;
    static const struct {
        const char *path, *type;
    } want[] = {
        { "/", "text/html; charset=utf-8" },
        { "/app.js", "text/javascript; charset=utf-8" },
        { "/sse.js", "text/javascript; charset=utf-8" },
        { "/app.css", "text/css; charset=utf-8" },
        { "/favicon.svg", "image/svg+xml" },
    };
    for (size_t i = 0; i < N_ELEMS(want); i++) {
        const struct ui_asset *a = ui_find(want[i].path);
        if (a == NULL)
            fail_msg("%s is not served", want[i].path);
        assert_string_equal(a->content_type, want[i].type);
        assert_true(a->len > 0);
        assert_int_equal(a->body[a->len], '\0'); /* the generator ends each file with a NUL */
        assert_int_equal(strlen(a->etag), 18);   /* "<16 hex digits>" */
        assert_int_equal(a->etag[0], '"');
        assert_int_equal(a->etag[17], '"');
    }
    assert_non_null(strstr(ui_find("/")->body, "id=\"transcript\""));
    assert_null(ui_find("/index.html"));
    assert_null(ui_find("/app.js/"));
    assert_null(ui_find(""));
    assert_null(ui_find(NULL));
}

static bool matches(const char *header, const char *etag)
{
    struct http_hval h = { .present = true };
    snprintf(h.v, sizeof h.v, "%s", header);
    h.len = strlen(h.v);
    return etag_matches(&h, etag);
}

static void test_if_none_match(void **state)
{
    (void)state;
    const char *e = "\"0123456789abcdef\"";
    assert_true(matches("\"0123456789abcdef\"", e));
    assert_true(matches("W/\"0123456789abcdef\"", e));
    assert_true(matches("\"other\", \"0123456789abcdef\"", e));
    assert_true(matches("\"other\",W/\"0123456789abcdef\" ", e));
    assert_true(matches("*", e));
    assert_false(matches("\"0123456789abcde\"", e));
    assert_false(matches("\"0123456789abcdef0\"", e));
    assert_false(matches("0123456789abcdef", e));
    assert_false(matches("\"other\"", e));
    assert_false(matches("", e));
    struct http_hval absent = { 0 };
    assert_false(etag_matches(&absent, e));
    struct http_hval too_long = { .present = true, .invalid = true };
    assert_false(etag_matches(&too_long, e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_page_file_is_in_the_table),
        cmocka_unit_test(test_if_none_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
