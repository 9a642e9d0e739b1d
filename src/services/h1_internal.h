/* h1_internal: what h1.c and h1_url.c share — the origin's address and the
 * text work around a request (URL, request head, header names). Not for other
 * modules: they use h1.h. */
#ifndef CHATD_H1_INTERNAL_H
#define CHATD_H1_INTERNAL_H

#include <stddef.h>
#include <sys/socket.h>

struct curl_slist;

/* Where an origin's requests go, parsed from its URL. */
struct h1_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    char host[64]; /* the Host header: "127.0.0.1:8080", "[::1]:9", "localhost" */
    char text[80]; /* for messages: "127.0.0.1 port 8080" */
    char *path;    /* into the URL given to h1_parse_url (h1_origin_new copies it) */
};

/* The answer headers h1 keeps. */
enum header { HDR_OTHER, HDR_CONTENT_TYPE, HDR_RETRY_AFTER };

/* Parses "http://" host [":" port] path, host an IPv4 or [IPv6] address or
 * "localhost" (127.0.0.1). 0, or -EINVAL for any other URL. */
int h1_parse_url(const char *url, struct h1_addr *a);

/* Which kept header a name is (any case); name may be cut at 16 bytes. */
enum header h1_header_kind(const char *name, size_t len);

/* "POST path HTTP/1.1", Host, User-Agent, the headers (lines "Name:" skipped),
 * Content-Length, blank line: malloc'd, its length in *len. NULL when out of memory. */
char *h1_request_head(const struct h1_addr *a, const struct curl_slist *headers, size_t body_len,
                      size_t *len);

#endif
