/* h1_internal: what h1.c, h1_url.c and h1_dns.c share — the origin's address,
 * the text work around a request (URL, request head, header names) and the
 * resolving of an origin's host name. Not for other modules: they use h1.h. */
#ifndef CHATD_H1_INTERNAL_H
#define CHATD_H1_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/list.h"

struct curl_slist;
struct h1_resolver;
struct h1_lookup;

/* Where an origin's requests go, parsed from its URL. */
struct h1_addr {
    struct sockaddr_storage sa; /* for a host name: its last resolved address (len 0 before) */
    socklen_t len;
    unsigned short port;
    size_t name_len; /* > 0: host[0, name_len) is a host name to resolve */
    char host[128];  /* the Host header: "127.0.0.1:8080", "[::1]:9", "localhost", "vllm:8000" */
    char text[144];  /* for messages: "127.0.0.1 port 8080", "vllm port 8000" */
    char *path;      /* into the URL given to h1_parse_url (h1_origin_new copies it) */
};

/* What an origin knows of its host name (h1_dns.c); unused for an address. */
struct h1_name {
    struct h1_addr *addr;     /* the origin's: each answer writes its sa */
    struct h1_resolver *r;    /* the worker's; NULL for an origin at an address */
    struct h1_lookup *lookup; /* the lookup under way, NULL when none */
    struct list waiting;      /* calls waiting for it (their node given to h1_name_wait) */
    int64_t expires_us;       /* addr->sa holds until then (clock_mono_us) */
};

/* The answer headers h1 keeps. */
enum header { HDR_OTHER, HDR_CONTENT_TYPE, HDR_RETRY_AFTER };

/* Parses "http://" host [":" port] path, host an IPv4 or [IPv6] address,
 * "localhost" (127.0.0.1) or a host name (letters, digits, '-', '_', dots
 * between labels; a->name_len > 0, no address yet). 0, or -EINVAL for any other URL. */
int h1_parse_url(const char *url, struct h1_addr *a);

/* Which kept header a name is (any case); name may be cut at 16 bytes. */
enum header h1_header_kind(const char *name, size_t len);

/* "POST path HTTP/1.1", Host, User-Agent, the headers (lines "Name:" skipped),
 * Content-Length, blank line: malloc'd, its length in *len. NULL when out of memory. */
char *h1_request_head(const struct h1_addr *a, const struct curl_slist *headers, size_t body_len,
                      size_t *len);

/* The address hosts-file text[0, len) gives a's host name (any case; the first
 * IPv4 one, else the first IPv6 one): 0 with a->sa and a->len set (a's port),
 * -ENOENT when the text does not list the name (a unchanged). */
int h1_hosts_find(const char *text, size_t len, struct h1_addr *a);

/* Sets n up for the origin at a with the worker's resolver r (NULL when a is an
 * address); a name the hosts file lists gets its address there, for good. */
void h1_name_init(struct h1_name *n, struct h1_addr *a, struct h1_resolver *r);

/* Before a new connection: 0 when n->addr->sa holds a fresh address (or is an
 * address); 1 when waiter (a call's node) now waits in n->waiting for a lookup,
 * shared by every waiter, and h1_name_ready follows from the loop; -EAGAIN when
 * the lookup could not start (err says why). */
int h1_name_wait(struct h1_name *n, struct list *waiter, char *err, size_t errlen);

/* The origin is going: no waiter may be left. A lookup under way finishes unseen. */
void h1_name_free(struct h1_name *n);

/* h1.c: the lookup waiter waited for is over: code 0 (n->addr->sa is fresh) or
 * CURLE_COULDNT_RESOLVE_HOST with err. waiter is unlinked already. */
void h1_name_ready(struct list *waiter, int code, const char *err);

#endif
