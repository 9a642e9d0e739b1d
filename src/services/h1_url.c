/* h1_url: the text around an h1 request. See h1_internal.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "services/h1_internal.h"

/* The port after host ("" = 80); -1 when it is not 1..65535. */
static long parse_port(const char *s, const char *end)
{
    if (s == end)
        return 80;
    if (*s != ':' || end - s < 2 || end - s > 6)
        return -1;
    long port = 0;
    for (s++; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        port = port * 10 + (*s - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

static int set_ipv4(struct h1_addr *a, const char *ip, long port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    a->len = sizeof *in;
    return inet_pton(AF_INET, ip, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

static int set_ipv6(struct h1_addr *a, const char *ip, long port)
{
    struct sockaddr_in6 *in = (struct sockaddr_in6 *)&a->sa;
    in->sin6_family = AF_INET6;
    in->sin6_port = htons((uint16_t)port);
    a->len = sizeof *in;
    return inet_pton(AF_INET6, ip, &in->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* A host name as DNS knows it: labels of letters, digits, '-' and '_' (Docker
 * Compose service names have them) between single dots, not all digits (that
 * would be a short IPv4 form, which libcurl reads as an address). */
static bool is_host_name(const char *s)
{
    bool digits_only = true;
    size_t label = 0;
    for (; *s != '\0'; s++) {
        if (*s == '.') {
            if (label == 0 || s[1] == '\0')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
        if (++label > 63 || (label == 1 && *s == '-'))
            return false;
        digits_only = digits_only && isdigit((unsigned char)*s);
    }
    return label > 0 && !digits_only;
}

/* host (a C string) is an IPv4 address, "localhost" or a host name. */
static int set_host(struct h1_addr *a, const char *host, long port)
{
    if (strcasecmp(host, "localhost") == 0)
        return set_ipv4(a, "127.0.0.1", port);
    if (set_ipv4(a, host, port) == 0)
        return 0;
    if (!is_host_name(host))
        return -EINVAL;
    memset(&a->sa, 0, sizeof a->sa);
    a->len = 0;
    a->name_len = strlen(host);
    return 0;
}

int h1_parse_url(const char *url, struct h1_addr *a)
{
    memset(a, 0, sizeof *a);
    if (strncasecmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *host = url + 7;
    const char *path = host + strcspn(host, "/?#");
    if (*path != '/' || memchr(host, '@', (size_t)(path - host)) != NULL)
        return -EINVAL;
    const char *host_end = *host == '[' ? memchr(host, ']', (size_t)(path - host)) : NULL;
    host_end = host_end ? host_end + 1 : host + strcspn(host, ":/");
    long port = parse_port(host_end, path);
    size_t hlen = (size_t)(host_end - host);
    if (port < 0 || hlen == 0 || hlen + 7 > sizeof a->host || strpbrk(path, " \r\n") != NULL)
        return -EINVAL;
    char ip[sizeof a->host];
    int rc;
    if (*host == '[') {
        snprintf(ip, sizeof ip, "%.*s", (int)hlen - 2, host + 1);
        rc = set_ipv6(a, ip, port);
    } else {
        snprintf(ip, sizeof ip, "%.*s", (int)hlen, host);
        rc = set_host(a, ip, port);
    }
    if (rc != 0)
        return rc;
    a->port = (unsigned short)port;
    snprintf(a->host, sizeof a->host, "%.*s", (int)(path - host), host);
    snprintf(a->text, sizeof a->text, "%s port %ld", ip, port);
    a->path = (char *)path;
    return 0;
}

enum header h1_header_kind(const char *name, size_t len)
{
    if (len == 12 && strncasecmp(name, "content-type", 12) == 0)
        return HDR_CONTENT_TYPE;
    if (len == 11 && strncasecmp(name, "retry-after", 11) == 0)
        return HDR_RETRY_AFTER;
    return HDR_OTHER;
}

/* A header line of the caller's: "Name: value" sent as is, "Name:" (libcurl's
 * way to remove a header) skipped. */
static void add_line(struct buf *b, const char *line)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon[1 + strspn(colon + 1, " \t")] == '\0')
        return;
    buf_append_str(b, line);
    buf_append(b, "\r\n", 2);
}

char *h1_request_head(const struct h1_addr *a, const struct curl_slist *headers, size_t body_len,
                      size_t *len)
{
    struct buf b = { 0 };
    buf_append_str(&b, "POST ");
    buf_append_str(&b, a->path);
    buf_append_str(&b, " HTTP/1.1\r\nHost: ");
    buf_append_str(&b, a->host);
    buf_append_str(&b, "\r\nUser-Agent: chatd/1.0\r\n");
    for (const struct curl_slist *h = headers; h != NULL; h = h->next)
        add_line(&b, h->data);
    buf_append_str(&b, "Content-Length: ");
    buf_append_int(&b, (long long)body_len);
    buf_append_str(&b, "\r\n\r\n");
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
