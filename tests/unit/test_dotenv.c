/* Unit tests of src/core/dotenv.c: the .env syntax, its errors with line numbers,
 * and reading files. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/dotenv.h"

/* The assignments seen, as "KEY=VALUE\n" lines in file order. */
struct seen {
    char text[4096];
    size_t len;
    int calls;
    int stop_at; /* return -1 from this call (1-based); 0 = never */
};

static int record(const char *key, const char *value, void *ctx)
{
    struct seen *s = ctx;
    s->calls++;
    int n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s=%s\n", key, value);
    assert_true(n > 0 && (size_t)n < sizeof s->text - s->len);
    s->len += (size_t)n;
    return s->calls == s->stop_at ? -1 : 0;
}

/* Parses text and returns what was seen; the parse must succeed. */
static void parse_ok(const char *text, size_t len, const char *want)
{
    struct seen s = { .len = 0 };
    struct dotenv_error err = { 0 };
    int rc = dotenv_parse(text, len, record, &s, &err);
    if (rc != 0)
        fail_msg("rc %d, line %d: %s; input: %s", rc, err.line, err.msg, text);
    if (strcmp(s.text, want) != 0)
        fail_msg("input:\n%s\ngot:\n%s\nwant:\n%s", text, s.text, want);
}

static void test_values(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "A=1", "A=1\n" },
        { "A=hello world", "A=hello world\n" },
        { "A = 1", "A=1\n" },
        { "  A\t=\t1  \t", "A=1\n" },
        { "A=", "A=\n" },
        { "A=   ", "A=\n" },
        { "A=\"\"", "A=\n" },
        { "A=''", "A=\n" },
        { "_a_1=x", "_a_1=x\n" },
        { "export A=1", "A=1\n" },
        { "export   B='x y'", "B=x y\n" },
        { "exported=1", "exported=1\n" },
        { "export=1", "export=1\n" },
        { "A=1 # comment", "A=1\n" },
        { "A=1\t# comment", "A=1\n" },
        { "A=# only a comment", "A=\n" },
        { "A=a#b", "A=a#b\n" },
        { "A=http://h/#frag", "A=http://h/#frag\n" },
        { "A='a # b'", "A=a # b\n" },
        { "A=\"a # b\"", "A=a # b\n" },
        { "A='x' # comment", "A=x\n" },
        { "A=\"x\"   # comment", "A=x\n" },
        { "A=\"x\"#comment", "A=x\n" },
        { "A='single \\n $HOME \"q\"'", "A=single \\n $HOME \"q\"\n" },
        { "A=\"l1\\nl2\\tt\\rr\"", "A=l1\nl2\tt\rr\n" },
        { "A=\"q\\\"q \\\\ \\$ \\x\"", "A=q\"q \\ $ \\x\n" },
        { "A=\"it's\"", "A=it's\n" },
        { "A='say \"hi\"'", "A=say \"hi\"\n" },
        { "A=a=b=c", "A=a=b=c\n" },
        { "A=\"=\"", "A==\n" },
        { "A=unquoted \"inner\" quotes", "A=unquoted \"inner\" quotes\n" },
        { "A=caf\xc3\xa9", "A=caf\xc3\xa9\n" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        parse_ok(cases[i].in, strlen(cases[i].in), cases[i].want);
}

static void test_comments_and_blank_lines(void **state)
{
    (void)state;
    const char *text = "# full-line comment\n"
                       "\n"
                       "   \n"
                       "\t# indented comment\n"
                       "A=1\n"
                       "#B=2\n"
                       "C=3 #trailing\n";
    parse_ok(text, strlen(text), "A=1\nC=3\n");
}

static void test_line_endings(void **state)
{
    (void)state;
    const char *crlf = "A=1\r\nB='two'\r\nC=\"three\"\r\n# c\r\n\r\nD=4 # x\r\nE=5";
    parse_ok(crlf, strlen(crlf), "A=1\nB=two\nC=three\nD=4\nE=5\n");
    const char *no_final_newline = "A=1\nB=2";
    parse_ok(no_final_newline, strlen(no_final_newline), "A=1\nB=2\n");
    parse_ok("", 0, "");
    parse_ok("\n\n\n", 3, "");
}

static void test_order_and_repeats(void **state)
{
    (void)state;
    /* Every assignment reaches the callback in file order; the consumer (config)
     * keeps the last one, which test_config checks. */
    const char *text = "A=1\nB=2\nA=3\n";
    parse_ok(text, strlen(text), "A=1\nB=2\nA=3\n");
}

static void test_invalid_lines(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int line;
        const char *msg_has;
    } cases[] = {
        { "NOEQUALS", 1, "KEY=VALUE" },
        { "A=1\nB=2\njust text\n", 3, "KEY=VALUE" },
        { "A=1\n\n# c\n1A=x\n", 4, "KEY=VALUE" },
        { "A-B=1", 1, "KEY=VALUE" },
        { "A.B=1", 1, "KEY=VALUE" },
        { "=value", 1, "KEY=VALUE" },
        { "A B=1", 1, "KEY=VALUE" },
        { "export =1", 1, "KEY=VALUE" },
        { "A=1\r\nB=\"open\r\nC=3\r\n", 2, "double quote" },
        { "A='open", 1, "single quote" },
        { "A=\"ends with backslash\\\"", 1, "double quote" },
        { "A=\"x\" y", 1, "after the closing quote" },
        { "A=1\nB='x'y\n", 2, "after the closing quote" },
        { "A=\"x\"\"y\"", 1, "after the closing quote" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct seen s = { .len = 0 };
        struct dotenv_error err = { 0 };
        int rc = dotenv_parse(cases[i].in, strlen(cases[i].in), record, &s, &err);
        if (rc != -EINVAL || err.line != cases[i].line || !strstr(err.msg, cases[i].msg_has))
            fail_msg("case %zu: rc %d, line %d (want %d), msg \"%s\" (want \"%s\")", i, rc,
                     err.line, cases[i].line, err.msg, cases[i].msg_has);
    }
}

static void test_nul_byte_refused(void **state)
{
    (void)state;
    const char text[] = "A=1\nB=x\0y\n";
    struct seen s = { .len = 0 };
    struct dotenv_error err = { 0 };
    assert_int_equal(dotenv_parse(text, sizeof text - 1, record, &s, &err), -EINVAL);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "NUL"));
}

static void test_callback_stops_parse(void **state)
{
    (void)state;
    const char *text = "A=1\nB=2\nC=3\n";
    struct seen s = { .stop_at = 2 };
    struct dotenv_error err = { 0 };
    assert_int_equal(dotenv_parse(text, strlen(text), record, &s, &err), -1);
    assert_int_equal(s.calls, 2);
    assert_string_equal(s.text, "A=1\nB=2\n");
}

/* Writes content to a fresh temporary file and returns its path (static storage). */
static const char *temp_file(const char *content, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/chatd-test-dotenv-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_read_file(void **state)
{
    (void)state;
    const char *path = temp_file("A=1\nB=2\n", 8);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(dotenv_read_file(path, &text, &len), 0);
    assert_int_equal(len, 8);
    assert_string_equal(text, "A=1\nB=2\n");
    free(text);
    unlink(path);

    path = temp_file("", 0);
    assert_int_equal(dotenv_read_file(path, &text, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
    unlink(path);

    assert_int_equal(dotenv_read_file("/nonexistent/chatd/.env", &text, &len), -ENOENT);
}

static void test_read_file_too_big(void **state)
{
    (void)state;
    size_t n = (1 << 20) + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    const char *path = temp_file(big, n);
    free(big);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(dotenv_read_file(path, &text, &len), -EFBIG);
    assert_null(text);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_order_and_repeats),
        cmocka_unit_test(test_invalid_lines),
        cmocka_unit_test(test_nul_byte_refused),
        cmocka_unit_test(test_callback_stops_parse),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_read_file_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
