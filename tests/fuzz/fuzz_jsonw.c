/* fuzz_jsonw: jsonw_escape of any bytes is a JSON string body that jansson
 * accepts; it decodes back to the input when the input is valid UTF-8, and to
 * the input with each invalid byte replaced by U+FFFD otherwise. The UTF-8
 * check it rests on, jsonw_utf8_seq_len, is compared with a second one here. */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"

/* Decodes the code point and checks its range, where jsonw checks byte ranges. */
static size_t reference_seq_len(const unsigned char *s, size_t len)
{
    static const unsigned long least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (n == 0 || len < n)
        return 0;
    unsigned long cp = c & (0x7fu >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if (cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The expected decoding, and the check of every position's sequence length. */
    char *want = malloc(size * 3 + 1);
    size_t wlen = 0;
    CHECK(want != NULL);
    for (size_t i = 0; i < size; i++)
        CHECK(jsonw_utf8_seq_len(data + i, size - i) == reference_seq_len(data + i, size - i));
    for (size_t i = 0; i < size;) {
        size_t n = reference_seq_len(data + i, size - i);
        memcpy(want + wlen, n ? (const char *)data + i : "\xef\xbf\xbd", n ? n : 3);
        wlen += n ? n : 3;
        i += n ? n : 1;
    }

    char *quoted = malloc(JSONW_ESCAPE_BOUND(size) + 2); /* exact size: ASan sees overruns */
    CHECK(quoted != NULL);
    size_t n = jsonw_escape(quoted + 1, (const char *)data, size);
    CHECK(n <= JSONW_ESCAPE_BOUND(size));
    quoted[0] = quoted[n + 1] = '"';

    json_error_t err;
    json_t *v = json_loadb(quoted, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (v == NULL)
        fprintf(stderr, "jansson: %s\n", err.text);
    CHECK(v != NULL && json_is_string(v));
    CHECK(json_string_length(v) == wlen && memcmp(json_string_value(v), want, wlen) == 0);
    json_decref(v);
    free(quoted);
    free(want);
    return 0;
}
