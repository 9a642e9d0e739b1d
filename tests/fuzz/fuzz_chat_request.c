/* fuzz_chat_request: any body either parses into a request the provider may
 * receive, or fails with a complete three-part error naming a known field.
 * The configuration is fixed: ALLOWED_MODELS=gpt-4o-mini,gpt-4o, MAX_TOKENS=1024. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/config.h"
#include "fuzz.h"
#include "models/chat_request.h"

static const char *const env[][2] = {
    { "OPENAI_API_KEY", "sk-fuzz-0123456789abcdef" },
    { "ALLOWED_MODELS", "gpt-4o-mini,gpt-4o" },
    { "MAX_TOKENS", "1024" },
    { "WORKERS", "1" },
};

static const char *lookup(const char *name, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (strcmp(env[i][0], name) == 0)
            return env[i][1];
    return NULL;
}

/* Python's str.isspace, written out again so the check does not trust the code it checks. */
static bool is_space(unsigned long c)
{
    static const unsigned long spaces[] = { 0x85,   0xa0,   0x1680, 0x2028,
                                            0x2029, 0x202f, 0x205f, 0x3000 };
    if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || (c >= 0x2000 && c <= 0x200a))
        return true;
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
        if (c == spaces[i])
            return true;
    return false;
}

static void check_message(const char *m, size_t len, size_t chars)
{
    const unsigned char *u = (const unsigned char *)m;
    size_t n = 0;
    bool blank = true;
    for (size_t i = 0; i < len; n++) {
        size_t k = jsonw_utf8_seq_len(u + i, len - i);
        CHECK(k > 0);
        unsigned long c = k == 1 ? u[i] : u[i] & (0x7f >> k);
        for (size_t j = 1; j < k; j++)
            c = c << 6 | (u[i + j] & 0x3f);
        CHECK(c != 0);
        blank = blank && is_space(c);
        i += k;
    }
    CHECK(m[len] == '\0');
    CHECK(n == chars && n >= 1 && n <= CHAT_MAX_MESSAGE_CHARS);
    CHECK(!blank);
}

static bool known_field(const char *f)
{
    return f != NULL && (strcmp(f, "body") == 0 || strcmp(f, "message") == 0 ||
                         strcmp(f, "model") == 0 || strcmp(f, "max_tokens") == 0 ||
                         strcmp(f, "history") == 0 || strncmp(f, "history[", 8) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static bool loaded;
    if (!loaded) {
        char err[512];
        CHECK(config_load(&cfg, lookup, NULL, err, sizeof err) == 0);
        loaded = true;
    }
    struct chat_request req;
    struct chat_request_error err;
    memset(&err, 0, sizeof err);
    int rc = chat_request_parse((const char *)data, size, &cfg, &req, &err);
    if (rc == 0) {
        check_message(req.message, req.message_len, req.message_chars);
        CHECK(strcmp(req.model, "gpt-4o-mini") == 0 || strcmp(req.model, "gpt-4o") == 0);
        CHECK(req.max_tokens >= 1 && req.max_tokens <= 1024);
        CHECK(req.root != NULL);
    } else {
        CHECK(rc == -EINVAL);
        CHECK(known_field(err.field));
        CHECK(err.what[0] && err.why[0] && err.todo[0]);
        CHECK(req.root == NULL);
    }
    chat_request_free(&req);
    return 0;
}
