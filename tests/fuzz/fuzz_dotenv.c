/* fuzz_dotenv: what dotenv.h promises of any text. Keys are
 * [A-Za-z_][A-Za-z0-9_]*; a value holds a line break only through a "\n"
 * escape of a double-quoted value; a malformed line is named by its number; a
 * callback's negative return stops the parse and comes back unchanged. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/dotenv.h"
#include "fuzz.h"

struct seen {
    const char *text;
    size_t len;
    size_t calls;
    int stop; /* returned from the first call when nonzero */
};

static bool is_key(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return false;
    for (k++; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_' ||
              (*k >= '0' && *k <= '9')))
            return false;
    return true;
}

static int on_pair(const char *key, const char *value, void *ctx)
{
    struct seen *s = ctx;
    CHECK(is_key(key));
    CHECK(memmem(s->text, s->len, key, strlen(key)) != NULL);
    if (strchr(value, '\n') != NULL) /* only an escape writes a line break */
        CHECK(memmem(s->text, s->len, "\\n", 2) != NULL);
    s->calls++;
    return s->stop;
}

static size_t count_lines(const char *t, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '\n';
    return n + (len > 0 && t[len - 1] != '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct seen s = { text, size, 0, 0 };
    struct dotenv_error err = { 0 };
    int rc = dotenv_parse(text, size, on_pair, &s, &err);
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK(s.calls <= count_lines(text, size));
    if (rc == -EINVAL) {
        CHECK(err.line >= 1 && (size_t)err.line <= count_lines(text, size));
        CHECK(err.msg[0] != '\0');
    }
    if (s.calls > 0) { /* again, stopping at the first assignment */
        struct seen stop = { text, size, 0, -1234 };
        CHECK(dotenv_parse(text, size, on_pair, &stop, &err) == -1234 && stop.calls == 1);
    }
    return 0;
}
