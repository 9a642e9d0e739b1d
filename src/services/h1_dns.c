/* h1_dns: the host names of h1's origins, resolved on the worker's loop with
 * libevent's evdns (never getaddrinfo, which blocks). One resolver per worker
 * (one UDP socket per name server, one read of resolv.conf); each origin keeps
 * its own answer for the record's TTL and runs at most one lookup at a time,
 * which every call needing a new connection meanwhile waits for.
 *
 * A lookup is never cancelled: evdns_cancel_request does not end it at once but
 * schedules its callback with DNS_ERR_CANCEL for a later turn of the loop, which
 * never comes when the worker stops, leaving both evdns's record and ours behind.
 * So a lookup whose calls all went runs on (its answer serves the next call), and
 * one whose origin went is an orphan that frees itself when its answer comes, or
 * is freed by h1_resolver_free, whose evdns_base_free(.., 0) drops the requests
 * still under way without calling back. */
#include <curl/curl.h>
#include <errno.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "services/h1.h"
#include "services/h1_internal.h"

#define TTL_MIN_S 1   /* a TTL of 0 would send every new connection to DNS */
#define TTL_MAX_S 300 /* a changed address is seen within 5 minutes whatever the TTL */

struct h1_resolver {
    struct evdns_base *dns;
    struct list orphans; /* struct h1_lookup.link: lookups whose origin went */
};

struct h1_lookup {
    struct h1_name *n; /* NULL once orphaned */
    struct list link;  /* in the resolver's orphans once orphaned */
    bool v6;           /* asking for AAAA: the name had no A record */
};

struct h1_resolver *h1_resolver_new(struct event_base *base, const char *resolv_conf, char *why,
                                    size_t why_len)
{
    static const char *const reasons[] = { "",
                                           "it cannot be opened",
                                           "it cannot be read",
                                           "it is too large",
                                           "out of memory",
                                           "it could not be read whole",
                                           "it names no nameserver" };
    struct h1_resolver *r = calloc(1, sizeof *r);
    /* No events of its own while no lookup runs: an idle resolver costs the loop nothing. */
    struct evdns_base *dns = r ? evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE) : NULL;
    if (dns == NULL) {
        snprintf(why, why_len, "out of memory");
        free(r);
        return NULL;
    }
    /* Name servers, search domains, ndots, timeout and attempts, as the C library reads
     * them. Not the hosts file: evdns consults it in evdns_getaddrinfo only, which gives
     * no TTL, never in the evdns_base_resolve_* used here. */
    int rc =
        evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL & ~DNS_OPTION_HOSTSFILE, resolv_conf);
    if (rc != 0) {
        snprintf(why, why_len, "%s: %s", resolv_conf,
                 rc > 0 && rc < 7 ? reasons[rc] : "evdns cannot use it");
        evdns_base_free(dns, 0);
        free(r);
        return NULL;
    }
    r->dns = dns;
    list_init(&r->orphans);
    return r;
}

void h1_resolver_free(struct h1_resolver *r)
{
    if (r == NULL)
        return;
    evdns_base_free(r->dns, 0); /* drops the orphans' requests; no callback follows */
    while (!list_empty(&r->orphans)) {
        struct h1_lookup *l = list_entry(r->orphans.next, struct h1_lookup, link);
        list_remove(&l->link);
        free(l);
    }
    free(r);
}

void h1_name_init(struct h1_name *n, struct h1_addr *a, struct h1_resolver *r)
{
    *n = (struct h1_name){ .addr = a, .r = a->name_len > 0 ? r : NULL };
    list_init(&n->waiting);
}

static void on_answer(int result, char type, int count, int ttl, void *addresses, void *arg);

static int lookup_send(struct h1_name *n, struct h1_lookup *l)
{
    char name[sizeof n->addr->host];
    snprintf(name, sizeof name, "%.*s", (int)n->addr->name_len, n->addr->host);
    struct evdns_request *req = l->v6 ? evdns_base_resolve_ipv6(n->r->dns, name, 0, on_answer, l)
                                      : evdns_base_resolve_ipv4(n->r->dns, name, 0, on_answer, l);
    return req != NULL ? 0 : -EAGAIN;
}

/* Keeps the answer's first address, with the origin's port, for the TTL. */
static void keep_address(struct h1_name *n, char type, const void *addresses, int ttl)
{
    struct h1_addr *a = n->addr;
    memset(&a->sa, 0, sizeof a->sa);
    if (type == DNS_IPv4_A) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a->sa;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, addresses, 4);
        a->len = sizeof *in;
    } else {
        struct sockaddr_in6 *in = (struct sockaddr_in6 *)&a->sa;
        in->sin6_family = AF_INET6;
        in->sin6_port = htons(a->port);
        memcpy(&in->sin6_addr, addresses, 16);
        a->len = sizeof *in;
    }
    ttl = ttl < TTL_MIN_S ? TTL_MIN_S : ttl > TTL_MAX_S ? TTL_MAX_S : ttl;
    n->expires_us = clock_mono_us() + ttl * 1000000LL;
}

/* Tells every waiter, in turn; h1_name_ready defers what may call the owner back. */
static void wake_waiters(struct h1_name *n, int code, const char *err)
{
    while (!list_empty(&n->waiting)) {
        struct list *w = n->waiting.next;
        list_remove(w);
        h1_name_ready(w, code, err);
    }
}

static void on_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct h1_lookup *l = arg;
    struct h1_name *n = l->n;
    if (n == NULL) { /* orphaned: nobody wants the answer */
        list_remove(&l->link);
        free(l);
        return;
    }
    bool found = result == DNS_ERR_NONE && count > 0;
    if (!found && !l->v6 && (result == DNS_ERR_NODATA || result == DNS_ERR_NONE)) {
        l->v6 = true; /* no A record: an IPv6-only name? */
        if (lookup_send(n, l) == 0)
            return;
        result = DNS_ERR_UNKNOWN;
    }
    n->lookup = NULL;
    free(l);
    if (found) {
        keep_address(n, type, addresses, ttl);
        wake_waiters(n, 0, "");
        return;
    }
    /* libcurl's own words, so the error a client sees does not depend on the client. */
    char err[CURL_ERROR_SIZE];
    snprintf(err, sizeof err, "Could not resolve host: %.*s", (int)n->addr->name_len,
             n->addr->host);
    wake_waiters(n, CURLE_COULDNT_RESOLVE_HOST, err);
}

int h1_name_wait(struct h1_name *n, struct list *waiter, char *err, size_t errlen)
{
    if (n->r == NULL || (n->addr->len > 0 && clock_mono_us() < n->expires_us))
        return 0;
    if (n->lookup == NULL) {
        struct h1_lookup *l = calloc(1, sizeof *l);
        if (l == NULL || (l->n = n, list_init(&l->link), lookup_send(n, l)) != 0) {
            free(l);
            snprintf(err, errlen, "Could not resolve host: %.*s (the lookup could not start)",
                     (int)n->addr->name_len, n->addr->host);
            return -EAGAIN;
        }
        n->lookup = l;
    }
    list_insert_tail(&n->waiting, waiter);
    return 1;
}

void h1_name_free(struct h1_name *n)
{
    if (n->lookup == NULL)
        return;
    n->lookup->n = NULL;
    list_insert_tail(&n->r->orphans, &n->lookup->link);
    n->lookup = NULL;
}
