/* Unit tests of src/core/log.c: every line the logger writes (captured through a
 * memfd) is one JSON object that jansson accepts, with the contract's fields,
 * escaping, redaction and level filtering. */
#include "unit.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define CID "3f0c9a52-1b7e-4c1d-9e2f-0123456789ab"

static int g_fd = -1;

static int group_setup(void **state)
{
    (void)state;
    g_fd = memfd_create("chatd-test-log", MFD_CLOEXEC);
    return g_fd < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    log_teardown();
    close(g_fd);
    return 0;
}

/* Before each test: nothing captured, every level on, no secrets. */
static int reset(void **state)
{
    (void)state;
    log_teardown();
    if (ftruncate(g_fd, 0) != 0 || lseek(g_fd, 0, SEEK_SET) != 0)
        return -1;
    return log_setup(LOG_DEBUG, g_fd);
}

/* Everything written since reset, NUL-terminated (malloc'd). */
static char *captured(size_t *len)
{
    struct stat st;
    assert_int_equal(fstat(g_fd, &st), 0);
    char *text = malloc((size_t)st.st_size + 1);
    assert_non_null(text);
    assert_int_equal(pread(g_fd, text, (size_t)st.st_size, 0), st.st_size);
    text[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return text;
}

static void assert_timestamp(const char *ts)
{
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
                             "\\.[0-9]{3}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int rc = regexec(&re, ts, 0, NULL, 0);
    regfree(&re);
    if (rc != 0)
        fail_msg("timestamp \"%s\" is not ISO 8601 UTC with milliseconds", ts);
}

/* The only line captured, parsed; checks the fields every line has. */
static json_t *one_line(void)
{
    size_t len;
    char *text = captured(&len);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_ptr_equal(strchr(text, '\n'), text + len - 1);
    json_t *v = unit_json(text, len - 1);
    free(text);
    assert_true(json_is_object(v));
    assert_timestamp(unit_str(v, "timestamp"));
    unit_str(v, "level");
    unit_str(v, "event");
    return v;
}

static void test_line_has_contract_fields(void **state)
{
    (void)state;
    log_event(LOG_INFO, "request_received", CID, LOG_STR("method", "POST"),
              LOG_STR("path", "/chat"));
    json_t *v = one_line();
    static const char *const keys[] = { "timestamp", "level", "event", "correlation_id",
                                        "method",    "path",  NULL };
    unit_assert_keys(v, keys);
    assert_string_equal(unit_str(v, "level"), "info");
    assert_string_equal(unit_str(v, "event"), "request_received");
    assert_string_equal(unit_str(v, "correlation_id"), CID);
    assert_string_equal(unit_str(v, "method"), "POST");
    assert_string_equal(unit_str(v, "path"), "/chat");
    json_decref(v);
}

static void test_line_without_correlation_id(void **state)
{
    (void)state;
    log_event(LOG_ERROR, "server_stopped", NULL, LOG_INT("open_streams", 0));
    json_t *v = one_line();
    static const char *const keys[] = { "timestamp", "level", "event", "open_streams", NULL };
    unit_assert_keys(v, keys);
    assert_string_equal(unit_str(v, "level"), "error");
    json_decref(v);
}

static void test_field_types(void **state)
{
    (void)state;
    log_event(LOG_WARNING, "types", CID, LOG_INT("i", -42), LOG_INT("big", 9007199254740993LL),
              LOG_BOOL("t", 7), LOG_BOOL("f", 0), LOG_NULL("n"), LOG_NUM("d", 0.25),
              LOG_NUM("nan", NAN), LOG_NUM("inf", INFINITY), LOG_NUM("huge", 1e300),
              LOG_STR("s", NULL));
    json_t *v = one_line();
    assert_string_equal(unit_str(v, "level"), "warning");
    assert_int_equal(unit_int(v, "i"), -42);
    assert_int_equal(unit_int(v, "big"), 9007199254740993LL);
    assert_true(json_is_true(json_object_get(v, "t")));
    assert_true(json_is_false(json_object_get(v, "f")));
    assert_true(json_is_null(json_object_get(v, "n")));
    assert_true(json_number_value(json_object_get(v, "d")) == 0.25);
    assert_true(json_is_null(json_object_get(v, "nan")));
    assert_true(json_is_null(json_object_get(v, "inf")));
    assert_true(json_number_value(json_object_get(v, "huge")) == 1e300);
    assert_true(json_is_null(json_object_get(v, "s")));
    json_decref(v);
}

static void test_escaping_round_trips(void **state)
{
    (void)state;
    static const char *const values[] = {
        "say \"hi\"",
        "back\\slash\\",
        "line\nbreak\r\n",
        "tab\tbell\a\x01\x1f\x7f",
        "caf\xc3\xa9 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8c\x8d",
        "</script>",
        "",
    };
    for (size_t i = 0; i < N_ELEMS(values); i++) {
        assert_int_equal(reset(NULL), 0);
        log_event(LOG_INFO, "ev\"ent\n", "c\\id", LOG_STR("k\"ey", values[i]));
        json_t *v = one_line();
        assert_string_equal(unit_str(v, "k\"ey"), values[i]);
        assert_string_equal(unit_str(v, "event"), "ev\"ent\n");
        assert_string_equal(unit_str(v, "correlation_id"), "c\\id");
        json_decref(v);
    }
}

static void test_invalid_utf8_stays_json(void **state)
{
    (void)state;
    static const char *const values[] = {
        "overlong \xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf",
        "surrogates \xed\xa0\x80 \xed\xbf\xbf",
        "truncated \xe2\x82",
        "truncated at end \xf0\x9f\x98",
        "bad bytes \xff\xfe\x80\xbf",
        "past max \xf4\x90\x80\x80",
    };
    for (size_t i = 0; i < N_ELEMS(values); i++) {
        assert_int_equal(reset(NULL), 0);
        log_event(LOG_INFO, "bad\xff", "\xc3", LOG_STR("v", values[i]),
                  LOG_STR("\xed\xa0\x80", "x"));
        json_t *v = one_line();
        assert_non_null(strstr(unit_str(v, "v"), "\xef\xbf\xbd"));
        assert_string_equal(unit_str(v, "event"), "bad\xef\xbf\xbd");
        json_decref(v);
    }
}

static void test_secret_keys_redacted_whatever_type(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "api_key",       "API_KEY", "authorization",  "Authorization",
        "password",      "secret",  "openai_api_key", "client_secret",
        "refresh_token", "X_TOKEN", "Session_Key",
    };
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        assert_true(log_key_is_secret(keys[i]));
        assert_int_equal(reset(NULL), 0);
        log_event(LOG_INFO, "secrets", NULL, LOG_STR(keys[i], "sk-abc"));
        json_t *v = one_line();
        assert_string_equal(unit_str(v, keys[i]), "REDACTED");
        json_decref(v);
    }
    assert_int_equal(reset(NULL), 0);
    log_event(LOG_INFO, "types", NULL, LOG_INT("api_key", 12345), LOG_BOOL("password", 1),
              LOG_NULL("secret"), LOG_NUM("x_token", 1.5), LOG_STR("authorization", NULL));
    json_t *v = one_line();
    assert_string_equal(unit_str(v, "api_key"), "REDACTED");
    assert_string_equal(unit_str(v, "password"), "REDACTED");
    assert_string_equal(unit_str(v, "secret"), "REDACTED");
    assert_string_equal(unit_str(v, "x_token"), "REDACTED");
    assert_string_equal(unit_str(v, "authorization"), "REDACTED");
    json_decref(v);
}

static void test_ordinary_keys_not_redacted(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "token_count", "tokens",    "monkey",     "keyboard", "secretary", "key",
        "token",       "passwords", "max_tokens", "api_keys", "_keyx",     "",
    };
    for (size_t i = 0; i < N_ELEMS(keys); i++)
        if (log_key_is_secret(keys[i]))
            fail_msg("\"%s\" should not be a secret key", keys[i]);
    log_event(LOG_INFO, "response_complete", CID, LOG_INT("token_count", 17),
              LOG_STR("monkey", "banana"));
    json_t *v = one_line();
    assert_int_equal(unit_int(v, "token_count"), 17);
    assert_string_equal(unit_str(v, "monkey"), "banana");
    json_decref(v);
}

static void test_registered_secret_replaced(void **state)
{
    (void)state;
    assert_int_equal(log_add_secret("sk-live-abc123"), 0);
    assert_int_equal(log_add_secret("client-key-9"), 0);
    assert_int_equal(log_add_secret(""), 0); /* ignored: it would match everywhere */
    assert_int_equal(log_add_secret(NULL), 0);
    log_event(LOG_INFO, "sk-live-abc123", "client-key-9",
              LOG_STR("message", "Bearer sk-live-abc123, again:sk-live-abc123client-key-9."),
              LOG_STR("sk-live-abc123", "key"), LOG_STR("plain", "nothing here"));
    json_t *v = one_line();
    assert_string_equal(unit_str(v, "message"), "Bearer REDACTED, again:REDACTEDREDACTED.");
    assert_string_equal(unit_str(v, "event"), "REDACTED");
    assert_string_equal(unit_str(v, "correlation_id"), "REDACTED");
    assert_string_equal(unit_str(v, "REDACTED"), "key");
    assert_string_equal(unit_str(v, "plain"), "nothing here");
    json_decref(v);

    log_teardown(); /* forgets the secrets */
    assert_int_equal(log_setup(LOG_DEBUG, g_fd), 0);
    assert_int_equal(ftruncate(g_fd, 0), 0);
    assert_int_equal(lseek(g_fd, 0, SEEK_SET), 0);
    log_event(LOG_INFO, "e", NULL, LOG_STR("message", "sk-live-abc123"));
    v = one_line();
    assert_string_equal(unit_str(v, "message"), "sk-live-abc123");
    json_decref(v);
}

static void test_overlapping_secrets_redacted_whole(void **state)
{
    (void)state;
    /* Two client keys where one is a prefix of the other: the longer one must not
     * leave its tail behind, whichever was registered first. */
    for (int order = 0; order < 2; order++) {
        log_teardown(); /* forgets the secrets */
        assert_int_equal(log_setup(LOG_DEBUG, g_fd), 0);
        assert_int_equal(ftruncate(g_fd, 0), 0);
        assert_int_equal(lseek(g_fd, 0, SEEK_SET), 0);
        assert_int_equal(log_add_secret(order ? "team-key-admin-7f3a" : "team-key"), 0);
        assert_int_equal(log_add_secret(order ? "team-key" : "team-key-admin-7f3a"), 0);
        log_event(LOG_INFO, "e", NULL,
                  LOG_STR("message", "got team-key-admin-7f3a and team-key, team-key-admin"));
        json_t *v = one_line();
        assert_string_equal(unit_str(v, "message"), "got REDACTED and REDACTED, REDACTED-admin");
        json_decref(v);
    }
}

static void test_secrets_overlapping_at_different_offsets(void **state)
{
    (void)state;
    /* The end of one secret is the start of another, and the text holds both,
     * overlapping: no part of either may stay readable. */
    assert_int_equal(log_add_secret("team-key"), 0);
    assert_int_equal(log_add_secret("key-admin-7f3a"), 0);
    log_event(LOG_INFO, "e", NULL, LOG_STR("message", "got team-key-admin-7f3a"));
    json_t *v = one_line();
    char msg[128];
    snprintf(msg, sizeof msg, "%s", unit_str(v, "message"));
    json_decref(v);
    if (strstr(msg, "admin") != NULL || strstr(msg, "7f3a") != NULL)
        fail_msg("part of \"key-admin-7f3a\" is readable: \"%s\"", msg);
}

static void test_level_filtering(void **state)
{
    (void)state;
    assert_int_equal(log_setup(LOG_WARNING, g_fd), 0);
    assert_false(log_enabled(LOG_DEBUG));
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARNING));
    assert_true(log_enabled(LOG_ERROR));
    int evaluated = 0;
    log_event(LOG_DEBUG, "hidden", NULL, LOG_INT("n", ++evaluated));
    log_event(LOG_INFO, "hidden", NULL, LOG_INT("n", ++evaluated));
    assert_int_equal(evaluated, 0); /* fields of a disabled line are not evaluated */
    log_write(LOG_INFO, "hidden", NULL, NULL, 0);
    log_event(LOG_WARNING, "shown", NULL, LOG_INT("n", ++evaluated));
    log_event(LOG_ERROR, "shown", NULL, LOG_INT("n", ++evaluated));
    assert_int_equal(evaluated, 2);
    size_t len;
    char *text = captured(&len);
    assert_null(strstr(text, "hidden"));
    char *second = strchr(text, '\n') + 1;
    assert_non_null(strstr(text, "\"level\":\"warning\""));
    assert_non_null(strstr(second, "\"level\":\"error\""));
    assert_int_equal(strlen(second), len - (size_t)(second - text));
    assert_int_equal(second[strlen(second) - 1], '\n');
    free(text);
}

static void test_lines_longer_than_4096(void **state)
{
    (void)state;
    /* Sizes on both sides of the 4096-byte stack buffer, and far past it. */
    size_t sizes[] = { 400, 500, 505, 510, 520, 4000, 4096, 5000, 100000 };
    for (size_t i = 0; i < N_ELEMS(sizes); i++) {
        assert_int_equal(reset(NULL), 0);
        char *big = malloc(sizes[i] + 1);
        assert_non_null(big);
        for (size_t k = 0; k < sizes[i]; k++)
            big[k] = "ab\"\\\n\x01"[k % 6];
        big[sizes[i]] = '\0';
        log_event(LOG_INFO, "big", CID, LOG_STR("v", big), LOG_STR("w", big));
        json_t *v = one_line();
        assert_string_equal(unit_str(v, "v"), big);
        assert_string_equal(unit_str(v, "w"), big);
        json_decref(v);
        free(big);
    }
}

static void test_log_format_matches_write(void **state)
{
    (void)state;
    struct log_field f[] = { LOG_STR("path", "/health"), LOG_INT("status", 200) };
    size_t len = 0;
    char *line = log_format(LOG_INFO, "response_complete", CID, f, 2, &len);
    assert_non_null(line);
    assert_true(len > 0);
    assert_null(memchr(line, '\n', len - 1)); /* one line, ended by its only newline */
    assert_int_equal(line[len - 1], '\n');
    json_t *v = unit_json(line, len - 1);
    assert_int_equal(unit_int(v, "status"), 200);
    assert_string_equal(unit_str(v, "path"), "/health");
    assert_string_equal(unit_str(v, "correlation_id"), CID);
    json_decref(v);
    free(line);
}

static void test_level_names(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        enum log_level want;
    } cases[] = {
        { "debug", 0, LOG_DEBUG },         { "info", 0, LOG_INFO },
        { "warning", 0, LOG_WARNING },     { "error", 0, LOG_ERROR },
        { "DEBUG", 0, LOG_DEBUG },         { "Warning", 0, LOG_WARNING },
        { "warn", 0, LOG_WARNING },        { "WARN", 0, LOG_WARNING },
        { "", -EINVAL, LOG_INFO },         { "verbose", -EINVAL, LOG_INFO },
        { "inf", -EINVAL, LOG_INFO },      { "info ", -EINVAL, LOG_INFO },
        { "critical", -EINVAL, LOG_INFO },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        enum log_level got = LOG_INFO;
        if (log_level_parse(cases[i].s, &got) != cases[i].rc || got != cases[i].want)
            fail_msg("log_level_parse(\"%s\") gave %d", cases[i].s, (int)got);
    }
    assert_string_equal(log_level_name(LOG_DEBUG), "debug");
    assert_string_equal(log_level_name(LOG_INFO), "info");
    assert_string_equal(log_level_name(LOG_WARNING), "warning");
    assert_string_equal(log_level_name(LOG_ERROR), "error");
}

static void test_many_lines_one_object_each(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++)
        log_event(LOG_DEBUG, "chunk_sent", CID, LOG_INT("sequence", i), LOG_INT("elapsed_ms", i));
    size_t len;
    char *text = captured(&len);
    int n = 0;
    for (char *p = text, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1, n++) {
        json_t *v = unit_json(p, (size_t)(nl - p));
        assert_int_equal(unit_int(v, "sequence"), n);
        assert_string_equal(unit_str(v, "level"), "debug");
        json_decref(v);
    }
    assert_int_equal(n, 200);
    free(text);
}

#define T(f) cmocka_unit_test_setup_teardown(f, reset, NULL)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_line_has_contract_fields),
        T(test_line_without_correlation_id),
        T(test_field_types),
        T(test_escaping_round_trips),
        T(test_invalid_utf8_stays_json),
        T(test_secret_keys_redacted_whatever_type),
        T(test_ordinary_keys_not_redacted),
        T(test_registered_secret_replaced),
        T(test_overlapping_secrets_redacted_whole),
        T(test_secrets_overlapping_at_different_offsets),
        T(test_level_filtering),
        T(test_lines_longer_than_4096),
        T(test_log_format_matches_write),
        T(test_level_names),
        T(test_many_lines_one_object_each),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
