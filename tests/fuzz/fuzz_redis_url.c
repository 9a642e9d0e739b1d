/* fuzz_redis_url: what limits_parse_redis_url promises of any string. It returns
 * 0 or -EINVAL; a failure leaves no field behind (no half-parsed password) and a
 * "REDIS_URL is not valid: …" message; a success names exactly one of a host or a
 * socket path, a port in 1..65535 and a db in 0..65535, and the URL rebuilt from
 * the result (user and password %-escaped) parses back to the same result. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "services/limits.h"

/* %-escapes every byte of s but those in keep. */
static size_t escape(const char *s, const char *keep, char *out)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (strchr(keep, c) != NULL) {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '%';
        out[o++] = hexd[c >> 4];
        out[o++] = hexd[c & 15];
    }
    out[o] = '\0';
    return o;
}

static void rebuild(const struct redis_url *u, char *out, size_t cap)
{
    char user[3 * sizeof u->user + 1], pw[3 * sizeof u->password + 1];
    char auth[sizeof user + sizeof pw + 2], path[3 * sizeof u->path + 1];
    auth[0] = '\0';
    if (u->password[0] != '\0') {
        escape(u->user, "", user);
        escape(u->password, "", pw);
        snprintf(auth, sizeof auth, "%s:%s@", user, pw);
    }
    escape(u->path, "/", path);
    if (u->path[0] != '\0')
        snprintf(out, cap, "unix://%s%s?db=%d", auth, path, u->db);
    else if (strchr(u->host, ':') != NULL)
        snprintf(out, cap, "redis://%s[%s]:%d/%d", auth, u->host, u->port, u->db);
    else
        snprintf(out, cap, "redis://%s%s:%d/%d", auth, u->host, u->port, u->db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    struct redis_url u;
    char err[512];
    int rc = limits_parse_redis_url(url, &u, err, sizeof err);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc < 0) {
        CHECK(strncmp(err, "REDIS_URL is not valid: ", 24) == 0);
        CHECK(u.password[0] == '\0' && u.host[0] == '\0' && u.path[0] == '\0');
        free(url);
        return 0;
    }
    CHECK(err[0] == '\0');
    CHECK((u.host[0] != '\0') != (u.path[0] != '\0'));
    CHECK(u.port >= 1 && u.port <= 65535 && u.db >= 0 && u.db <= 65535);
    CHECK(u.path[0] == '\0' || u.path[0] == '/');
    if (u.password[0] != '\0')
        CHECK(strchr(url, '@') != NULL);
    CHECK(u.user[0] == '\0' || u.password[0] != '\0');
    static char again[4096];
    rebuild(&u, again, sizeof again);
    struct redis_url v;
    CHECK(limits_parse_redis_url(again, &v, err, sizeof err) == 0);
    CHECK(memcmp(&u, &v, sizeof u) == 0);
    free(url);
    return 0;
}
