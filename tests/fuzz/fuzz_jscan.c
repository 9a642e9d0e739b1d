/* fuzz_jscan: jscan accepts exactly the texts jansson accepts (within jscan's
 * nesting limit), and reads strings and integers as jansson does: at the top
 * level, in a top-level array, and in a top-level object. Decoding into a small
 * buffer must cut on a character boundary. */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "core/jscan.h"
#include "fuzz.h"

static void compare_string(const struct jstr *str, const char *want, size_t wlen)
{
    char *buf = malloc(str->len + 1); /* decoding never makes a string longer */
    CHECK(buf != NULL);
    CHECK(jstr_decode(str, buf, str->len + 1) == wlen && memcmp(buf, want, wlen) == 0);
    size_t cap = wlen % 7 + 1, n = jstr_decode(str, buf, cap);
    CHECK(n < cap && n + 4 >= cap && buf[n] == '\0' && memcmp(buf, want, n) == 0);
    CHECK(n == wlen || ((unsigned char)want[n] & 0xc0) != 0x80);
    if (wlen < 64) { /* jstr_equals_n is for field names, shorter than that */
        CHECK(jstr_equals_n(str, want, wlen));
        if (wlen > 0) {
            memcpy(buf, want, wlen);
            buf[wlen - 1] ^= 1;
            CHECK(!jstr_equals_n(str, buf, wlen));
        }
    }
    for (size_t k = 0; k < wlen && k < 160; k++) /* no start of a value equals all of it */
        CHECK(!jstr_equals_n(str, want, k));
    free(buf);
}

static void compare_value(struct jscan *s, const json_t *v)
{
    char c = jscan_peek(s);
    struct jstr str;
    long long i;
    if (c == '"') {
        CHECK(jscan_string(s, &str) == 0 && json_is_string(v));
        compare_string(&str, json_string_value(v), json_string_length(v));
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        int rc = jscan_integer(s, &i);
        CHECK(rc >= 0);
        if (rc == 1)
            CHECK(json_is_integer(v) && json_integer_value(v) == i);
    } else {
        CHECK(jscan_skip(s) == 0);
    }
}

/* Walks a text both parsers accepted, comparing what jscan reads with root. */
static void compare(const char *text, size_t len, const json_t *root)
{
    struct jscan s;
    bool first = true;
    struct jstr key;
    jscan_init(&s, text, len);
    if (jscan_peek(&s) == '[') {
        for (size_t k = 0; jscan_element(&s, &first) == 1; k++)
            compare_value(&s, json_array_get(root, k));
    } else if (jscan_peek(&s) == '{') {
        size_t members = 0;
        for (struct jscan t = s; jscan_member(&t, &first, &key) == 1; members++)
            CHECK(jscan_skip(&t) == 0);
        bool unique = members == json_object_size(root); /* jansson keeps the last of a key */
        first = true;
        while (jscan_member(&s, &first, &key) == 1) {
            char *k = malloc(key.len + 1);
            CHECK(k != NULL);
            json_t *v = json_object_getn(root, k, jstr_decode(&key, k, key.len + 1));
            free(k);
            CHECK(v != NULL);
            if (unique)
                compare_value(&s, v);
            else
                CHECK(jscan_skip(&s) == 0);
        }
    } else {
        compare_value(&s, root);
    }
    CHECK(jscan_finish(&s) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct jscan s;
    jscan_init(&s, text, size);
    bool ok = jscan_skip(&s) == 0 && jscan_finish(&s) == 0;
    if (memchr(text, '\0', size) != NULL) { /* never JSON, but jansson stops reading there */
        CHECK(!ok);
        return 0;
    }

    json_error_t err;
    json_t *root = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (root == NULL) {
        if (!fuzz_json_limit(&err))
            CHECK(!ok);
        return 0;
    }
    CHECK(ok == (fuzz_json_depth(root) <= JSCAN_MAX_DEPTH));
    if (ok)
        compare(text, size, root);
    json_decref(root);
    return 0;
}
