/* unit: helpers shared by the unit tests (cmocka, plus jansson to check that what
 * chatd writes is JSON a real parser accepts). Everything is static inline so that
 * a test that does not use a helper does not warn. */
#ifndef CHATD_TESTS_UNIT_H
#define CHATD_TESTS_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Parses s[0..n) as JSON (any value) or fails the test, quoting jansson's reason. */
static inline json_t *unit_json(const char *s, size_t n)
{
    json_error_t e;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (v == NULL)
        fail_msg("not JSON (%s at column %d): %.*s", e.text, e.column, (int)n, s);
    return v;
}

/* Fails unless obj is an object with exactly the keys listed (NULL-terminated). */
static inline void unit_assert_keys(json_t *obj, const char *const *keys)
{
    assert_true(json_is_object(obj));
    size_t n = 0;
    for (; keys[n] != NULL; n++)
        if (json_object_get(obj, keys[n]) == NULL)
            fail_msg("key \"%s\" is missing", keys[n]);
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(keys[i], k) == 0;
        if (!known)
            fail_msg("unexpected key \"%s\"", k);
    }
}

/* The string member key of obj, or a test failure when it is absent or not a string. */
static inline const char *unit_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

/* The integer member key of obj, or a test failure. */
static inline long long unit_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return (long long)json_integer_value(v);
}

/* Sentences of an error text: it ends with '.', and each ". " starts a new one. */
static inline int unit_sentences(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || s[n - 1] != '.')
        return 0;
    int count = 1;
    for (const char *p = s; (p = strstr(p, ". ")) != NULL; p += 2)
        count++;
    return count;
}

/* Writes content to a new temporary file; returns its path (static storage: one
 * file per call site at a time). */
static inline const char *unit_temp_file(const char *content)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/chatd-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

#endif
