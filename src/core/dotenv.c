/* dotenv: see dotenv.h. */
#include "core/dotenv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DOTENV_MAX_FILE (1 << 20)

struct line {
    const char *p;   /* cursor */
    const char *end; /* end of the line, without the line break */
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_spaces(struct line *l)
{
    while (l->p < l->end && is_space(*l->p))
        l->p++;
}

static bool is_key_char(char c, bool first)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
        return true;
    return !first && c >= '0' && c <= '9';
}

static int fail(struct dotenv_error *err, const char *msg)
{
    snprintf(err->msg, sizeof err->msg, "%s", msg);
    return -EINVAL;
}

/* After a closing quote: only spaces, then optionally a comment. */
static int check_tail(struct line *l, struct dotenv_error *err)
{
    skip_spaces(l);
    if (l->p < l->end && *l->p != '#')
        return fail(err, "unexpected text after the closing quote");
    return 0;
}

static int parse_double_quoted(struct line *l, char *out, struct dotenv_error *err)
{
    char *o = out;
    for (l->p++; l->p < l->end; l->p++) {
        char c = *l->p;
        if (c == '"') {
            l->p++;
            *o = '\0';
            return check_tail(l, err);
        }
        if (c == '\\' && l->p + 1 < l->end) {
            char n = *++l->p;
            switch (n) {
            case 'n': *o++ = '\n'; break;
            case 't': *o++ = '\t'; break;
            case 'r': *o++ = '\r'; break;
            case '"':
            case '\\':
            case '$': *o++ = n; break;
            default: *o++ = '\\'; *o++ = n;
            }
            continue;
        }
        *o++ = c;
    }
    return fail(err, "the double quote that opens the value is never closed on this line");
}

static int parse_single_quoted(struct line *l, char *out, struct dotenv_error *err)
{
    const char *close = memchr(l->p + 1, '\'', (size_t)(l->end - l->p - 1));
    if (close == NULL)
        return fail(err, "the single quote that opens the value is never closed on this line");
    size_t n = (size_t)(close - l->p - 1);
    memcpy(out, l->p + 1, n);
    out[n] = '\0';
    l->p = close + 1;
    return check_tail(l, err);
}

static void parse_unquoted(struct line *l, char *out)
{
    const char *start = l->p, *stop = l->end;
    for (const char *q = start; q < l->end; q++) {
        if (*q == '#' && (q == start || is_space(q[-1]))) {
            stop = q;
            break;
        }
    }
    while (stop > start && is_space(stop[-1]))
        stop--;
    memcpy(out, start, (size_t)(stop - start));
    out[stop - start] = '\0';
}

/* Parses one non-blank, non-comment line into key and value buffers, each at
 * least as long as the line plus one. */
static int parse_assignment(struct line *l, char *key, char *value, struct dotenv_error *err)
{
    if (l->end - l->p > 7 && memcmp(l->p, "export", 6) == 0 && is_space(l->p[6])) {
        l->p += 6;
        skip_spaces(l);
    }
    const char *k = l->p;
    while (l->p < l->end && is_key_char(*l->p, l->p == k))
        l->p++;
    size_t klen = (size_t)(l->p - k);
    skip_spaces(l);
    if (klen == 0 || l->p == l->end || *l->p != '=')
        return fail(err, "expected KEY=VALUE, where KEY is letters, digits and '_' "
                         "(not starting with a digit)");
    memcpy(key, k, klen);
    key[klen] = '\0';
    l->p++;
    skip_spaces(l);
    if (l->p < l->end && *l->p == '"')
        return parse_double_quoted(l, value, err);
    if (l->p < l->end && *l->p == '\'')
        return parse_single_quoted(l, value, err);
    parse_unquoted(l, value);
    return 0;
}

static int parse_line(struct line *l, char *key, char *value, dotenv_cb cb, void *ctx,
                      struct dotenv_error *err)
{
    if (l->end > l->p && l->end[-1] == '\r')
        l->end--;
    skip_spaces(l);
    if (l->p == l->end || *l->p == '#')
        return 0;
    if (memchr(l->p, '\0', (size_t)(l->end - l->p)) != NULL)
        return fail(err, "the line contains a NUL byte");
    int rc = parse_assignment(l, key, value, err);
    return rc != 0 ? rc : cb(key, value, ctx);
}

int dotenv_parse(const char *text, size_t len, dotenv_cb cb, void *ctx, struct dotenv_error *err)
{
    const char *end = text + len;
    int lineno = 0, rc = 0;
    size_t longest = 0;
    for (const char *p = text; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if ((size_t)(e - p) > longest)
            longest = (size_t)(e - p);
        p = nl ? nl + 1 : end;
    }
    char *key = malloc(longest + 1), *value = malloc(longest + 1);
    if (key == NULL || value == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (const char *p = text; p < end && rc == 0;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        struct line l = { p, nl ? nl : end };
        lineno++;
        rc = parse_line(&l, key, value, cb, ctx, err);
        if (rc == -EINVAL)
            err->line = lineno;
        p = nl ? nl + 1 : end;
    }
out:
    free(key);
    free(value);
    return rc;
}

int dotenv_read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (st.st_size > DOTENV_MAX_FILE) {
        rc = -EFBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}
