/* fuzz_error_summary: whatever a provider sends back, its summary is one short
 * line of valid UTF-8 without control characters that never shows the API key
 * or quotes the user's message.
 *
 * Input: key length, message length, the key, the message, then the body. A key
 * that config_load would refuse (blank, or with spaces or control characters)
 * or that has no letter or digit is passed as NULL. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "services/openai.h"

/* A key config_load accepts, with at least one letter or digit (one made only
 * of punctuation, say "!!!!!!!!", would leak through a run of "!"). */
static bool key_usable(const char *k, size_t n)
{
    bool alnum = false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)k[i] <= ' ' || k[i] == 0x7f)
            return false;
        alnum = alnum || isalnum((unsigned char)k[i]);
    }
    return alnum;
}

/* No C0 control, DEL, or C1 control (U+0080..U+009F, encoded C2 80..C2 9F). */
static bool has_control(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++)
        if (u[i] < 0x20 || u[i] == 0x7f || (u[i] == 0xc2 && i + 1 < n && u[i + 1] < 0xa0))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size < 2 + (size_t)data[0] + data[1])
        return 0;
    size_t klen = data[0], mlen = data[1];
    char *key = strndup((const char *)data + 2, klen); /* its own buffer, for ASan */
    char *msg = malloc(mlen + 1);
    CHECK(key != NULL && msg != NULL);
    memcpy(msg, data + 2 + klen, mlen);
    msg[mlen] = '\0';
    const char *body = (const char *)data + 2 + klen + mlen;
    size_t blen = size - 2 - klen - mlen;
    const char *api_key = key_usable(key, klen) ? key : NULL;

    static const size_t outlens[] = { 1, 16, 240 };
    char prev[240] = "";
    for (size_t i = 0; i < sizeof outlens / sizeof outlens[0]; i++) {
        size_t outlen = outlens[i];
        char *out = malloc(outlen);
        CHECK(out != NULL);
        size_t n = openai_error_summary(body, blen, api_key, msg, mlen, out, outlen);
        CHECK(n < outlen && out[n] == '\0' && strlen(out) == n);
        CHECK(fuzz_utf8_valid(out, n));
        CHECK(!has_control(out, n));
        /* "REDACTED" itself is in every redacted summary: no leak and no quote. */
        if (api_key != NULL && klen >= 8 && strcmp(api_key, "REDACTED") != 0)
            CHECK(memmem(out, n, api_key, klen) == NULL);
        if (mlen >= 16 && memmem(msg, mlen, "REDACTED", 8) == NULL)
            CHECK(memmem(out, n, msg, mlen) == NULL);
        CHECK(strncmp(out, prev, strlen(prev)) == 0); /* a shorter cut is a prefix */
        memcpy(prev, out, n + 1);
        free(out);
    }
    free(key);
    free(msg);
    return 0;
}
