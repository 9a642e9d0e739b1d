/* limits_url: the REDIS_URL parser. Pure string work, no I/O; fuzzed by
 * tests/fuzz/fuzz_redis_url.c. Error messages never quote the URL, since it may
 * hold the password. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jscan.h"
#include "services/limits.h"

#define FIX " Use redis://[:password@]host:port[/db] or unix:///path/to/redis.sock[?db=N]."

static int fail(char *err, size_t errlen, const char *what)
{
    if (errlen > 0)
        snprintf(err, errlen, "REDIS_URL is not valid: %s.%s", what, FIX);
    return -EINVAL;
}

/* Copies s[0..n) percent-decoded into out; -1 when it does not fit, holds a bad
 * escape or decodes to a NUL. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = jscan_hex_digit(s[i + 1]), lo = jscan_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* A decimal number in [lo, hi] spelled by all of s[0..n). */
static int number(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* "[user]:password@" before end (no '@' means none). */
static int parse_userinfo(const char **p, const char *end, struct redis_url *out, char *err,
                          size_t errlen)
{
    const char *at = memchr(*p, '@', (size_t)(end - *p));
    if (at == NULL)
        return 0;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    if (colon == NULL)
        return fail(err, errlen, "the part before '@' has no ':' before the password");
    if (decode(*p, (size_t)(colon - *p), out->user, sizeof out->user) < 0)
        return fail(err, errlen, "the user name is too long or has a bad %-escape");
    if (decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) < 0 ||
        out->password[0] == '\0')
        return fail(err, errlen, "the password is empty, too long or has a bad %-escape");
    *p = at + 1;
    return 0;
}

static int parse_unix(const char *p, struct redis_url *out, char *err, size_t errlen)
{
    const char *q = strchr(p, '?');
    const char *end = q != NULL ? q : p + strlen(p);
    if (parse_userinfo(&p, end, out, err, errlen) < 0)
        return -EINVAL;
    size_t n = (size_t)(end - p);
    if (n < 2 || p[0] != '/')
        return fail(err, errlen, "a unix:// URL needs an absolute socket path");
    if (decode(p, n, out->path, sizeof out->path) < 0)
        return fail(err, errlen, "the socket path is too long (107 bytes at most)");
    if (q != NULL) {
        if (strncmp(q, "?db=", 4) != 0 || number(q + 4, strlen(q + 4), 0, 65535, &out->db) < 0)
            return fail(err, errlen, "the only query allowed is ?db=N with N a database number");
    }
    return 0;
}

static int parse_host(const char *p, const char *end, struct redis_url *out, char *err,
                      size_t errlen)
{
    const char *colon;
    if (*p == '[') { /* [ipv6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || rb == p + 1 || (size_t)(rb - p - 1) >= sizeof out->host)
            return fail(err, errlen, "the IPv6 address in brackets is not closed or empty");
        for (const char *c = p + 1; c < rb; c++)
            if (jscan_hex_digit(*c) < 0 && *c != ':' && *c != '.')
                return fail(err, errlen, "the IPv6 address has a character not allowed in one");
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        out->host[rb - p - 1] = '\0';
        colon = rb + 1 < end ? rb + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return fail(err, errlen, "only ':port' may follow the IPv6 address");
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        const char *hend = colon != NULL ? colon : end;
        if (hend == p || (size_t)(hend - p) >= sizeof out->host)
            return fail(err, errlen, "the host name is missing or too long");
        for (const char *c = p; c < hend; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_'))
                return fail(err, errlen, "the host name has a character not allowed in one");
        memcpy(out->host, p, (size_t)(hend - p));
        out->host[hend - p] = '\0';
    }
    if (colon != NULL && number(colon + 1, (size_t)(end - colon - 1), 1, 65535, &out->port) < 0)
        return fail(err, errlen, "the port is not a number from 1 to 65535");
    return 0;
}

static int parse_tcp(const char *p, struct redis_url *out, char *err, size_t errlen)
{
    const char *slash = strchr(p, '/');
    const char *end = slash != NULL ? slash : p + strlen(p);
    if (memchr(p, '?', (size_t)(end - p)) != NULL || strchr(p, '#') != NULL)
        return fail(err, errlen, "queries and fragments are not supported in redis:// URLs");
    if (parse_userinfo(&p, end, out, err, errlen) < 0)
        return -EINVAL;
    if (parse_host(p, end, out, err, errlen) < 0)
        return -EINVAL;
    if (slash != NULL && slash[1] != '\0' &&
        number(slash + 1, strlen(slash + 1), 0, 65535, &out->db) < 0)
        return fail(err, errlen, "the part after the last '/' must be a database number");
    return 0;
}

int limits_parse_redis_url(const char *url, struct redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (errlen > 0)
        err[0] = '\0';
    int rc;
    if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url + 8, out, err, errlen);
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, out, err, errlen);
    else if (strncmp(url, "rediss://", 9) == 0)
        rc = fail(err, errlen, "TLS (rediss://) is not supported by this build");
    else
        rc = fail(err, errlen, "it must start with redis:// or unix://");
    if (rc < 0)
        memset(out, 0, sizeof *out); /* no half-parsed password left behind */
    return rc;
}
