/* log: see log.h. */
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/jsonw.h"

#define REDACTED    "REDACTED"
#define MAX_SECRETS 64

/* Written once at start-up, before any worker thread exists; read-only after. */
static struct {
    enum log_level min;
    int fd;
    char *secrets[MAX_SECRETS];
    size_t secret_len[MAX_SECRETS];
    size_t n_secrets;
} g_log = { .min = LOG_INFO, .fd = 1 };

static const char *const level_names[] = { "debug", "info", "warning", "error" };

int log_setup(enum log_level min_level, int fd)
{
    g_log.min = min_level;
    g_log.fd = fd;
    return 0;
}

int log_add_secret(const char *secret)
{
    if (secret == NULL || secret[0] == '\0')
        return 0;
    for (size_t i = 0; i < g_log.n_secrets; i++)
        if (strcmp(g_log.secrets[i], secret) == 0)
            return 0;
    if (g_log.n_secrets == MAX_SECRETS)
        return -ENOMEM;
    char *copy = strdup(secret);
    if (copy == NULL)
        return -ENOMEM;
    g_log.secret_len[g_log.n_secrets] = strlen(copy);
    g_log.secrets[g_log.n_secrets++] = copy;
    return 0;
}

void log_teardown(void)
{
    for (size_t i = 0; i < g_log.n_secrets; i++)
        free(g_log.secrets[i]);
    g_log.n_secrets = 0;
    g_log.min = LOG_INFO;
    g_log.fd = 1;
}

bool log_enabled(enum log_level level)
{
    return level >= g_log.min;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warn") == 0) {
        *out = LOG_WARNING;
        return 0;
    }
    return -EINVAL;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

bool log_key_is_secret(const char *key)
{
    static const char *const exact[] = { "api_key", "authorization", "password", "secret" };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcasecmp(key, exact[i]) == 0)
            return true;
    size_t n = strlen(key);
    return ends_with(key, n, "_key") || ends_with(key, n, "_secret") || ends_with(key, n, "_token");
}

/* Finds the earliest registered secret in s[0..len), the longest one when several
 * start there (so "key-admin" is not half-hidden as "REDACTED-admin" because
 * "key" was registered first); returns its offset or len. */
static size_t find_secret(const char *s, size_t len, size_t *secret_len)
{
    size_t best = len;
    for (size_t i = 0; i < g_log.n_secrets; i++) {
        const char *hit = memmem(s, len, g_log.secrets[i], g_log.secret_len[i]);
        size_t at = hit ? (size_t)(hit - s) : len;
        if (hit != NULL && (at < best || (at == best && g_log.secret_len[i] > *secret_len))) {
            best = at;
            *secret_len = g_log.secret_len[i];
        }
    }
    return best;
}

/* Bytes a quoted, escaped, redacted string of len bytes can take: every input
 * byte becomes at most 8 ("REDACTED" for a one-byte secret), plus the quotes. */
static size_t string_bound(size_t len)
{
    return len * 8 + 2;
}

/* Extends a secret found at s[at..end) over every other secret that starts
 * inside it, so overlapping secrets are hidden whole. Returns the new end. */
static size_t cover(const char *s, size_t len, size_t at, size_t end)
{
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < g_log.n_secrets; i++) {
            size_t n = g_log.secret_len[i];
            for (size_t q = at; q < end && q < len;) {
                const char *hit = memmem(s + q, len - q, g_log.secrets[i], n);
                if (hit == NULL || (size_t)(hit - s) >= end)
                    break;
                if ((size_t)(hit - s) + n > end) {
                    end = (size_t)(hit - s) + n;
                    grew = true;
                }
                q = (size_t)(hit - s) + 1;
            }
        }
    }
    return end;
}

static char *put_str(char *p, const char *s, size_t len)
{
    *p++ = '"';
    while (len > 0) {
        size_t slen = 0;
        size_t at = find_secret(s, len, &slen);
        p += jsonw_escape(p, s, at);
        if (at == len)
            break;
        slen = cover(s, len, at, at + slen) - at;
        memcpy(p, REDACTED, sizeof REDACTED - 1);
        p += sizeof REDACTED - 1;
        s += at + slen;
        len -= at + slen;
    }
    *p++ = '"';
    return p;
}

static char *put_key(char *p, const char *key)
{
    p = put_str(p, key, strlen(key));
    *p++ = ':';
    return p;
}

static char *put_value(char *p, const struct log_field *f)
{
    if (log_key_is_secret(f->key))
        return put_str(p, REDACTED, sizeof REDACTED - 1);
    switch (f->type) {
    case LOGF_STR:
        if (f->s != NULL)
            return put_str(p, f->s, strlen(f->s));
        break;
    case LOGF_INT: return p + sprintf(p, "%lld", f->i);
    case LOGF_BOOL: return p + sprintf(p, "%s", f->i ? "true" : "false");
    case LOGF_NUM:
        if (f->d == f->d && f->d - f->d == 0) /* finite */
            return p + sprintf(p, "%.6g", f->d);
        break;
    case LOGF_NULL: break;
    }
    memcpy(p, "null", 4);
    return p + 4;
}

static size_t line_bound(const char *event, const char *cid, const struct log_field *fields,
                         size_t n)
{
    size_t b = 128 + string_bound(strlen(event)) + (cid ? string_bound(strlen(cid)) + 20 : 0);
    for (size_t i = 0; i < n; i++) {
        b += string_bound(strlen(fields[i].key)) + 2;
        b += (fields[i].type == LOGF_STR && fields[i].s) ? string_bound(strlen(fields[i].s)) : 32;
    }
    return b;
}

static size_t format_into(char *buf, enum log_level level, const char *event, const char *cid,
                          const struct log_field *fields, size_t n)
{
    char ts[CLOCK_ISO8601_LEN + 1];
    clock_now_iso8601(ts);
    char *p = buf;
    p += sprintf(p, "{\"timestamp\":\"%s\",\"level\":\"%s\",\"event\":", ts, level_names[level]);
    p = put_str(p, event, strlen(event));
    if (cid != NULL) {
        *p++ = ',';
        p = put_key(p, "correlation_id");
        p = put_str(p, cid, strlen(cid));
    }
    for (size_t i = 0; i < n; i++) {
        *p++ = ',';
        p = put_key(p, fields[i].key);
        p = put_value(p, &fields[i]);
    }
    *p++ = '}';
    *p++ = '\n';
    return (size_t)(p - buf);
}

char *log_format(enum log_level level, const char *event, const char *cid,
                 const struct log_field *fields, size_t n, size_t *len)
{
    char *buf = malloc(line_bound(event, cid, fields, n));
    if (buf != NULL)
        *len = format_into(buf, level, event, cid, fields, n);
    return buf;
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report a failing log sink */
        p += w;
        len -= (size_t)w;
    }
}

void log_write(enum log_level level, const char *event, const char *cid,
               const struct log_field *fields, size_t n)
{
    if (!log_enabled(level))
        return;
    char stack[4096];
    size_t bound = line_bound(event, cid, fields, n);
    char *buf = bound <= sizeof stack ? stack : malloc(bound);
    if (buf == NULL)
        return;
    size_t len = format_into(buf, level, event, cid, fields, n);
    write_all(g_log.fd, buf, len);
    if (buf != stack)
        free(buf);
}
