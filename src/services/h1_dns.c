/* h1_dns: the host names of h1's origins, resolved on the worker's loop with
 * libevent's evdns (never getaddrinfo, which blocks). One resolver per worker
 * (one UDP socket per name server, one read of resolv.conf and of the hosts
 * file); each origin keeps its own answer for the record's TTL and runs at most
 * one lookup at a time, which every call needing a new connection meanwhile
 * waits for. A name the hosts file lists takes its address from there, for good
 * (the file is read once, as evdns does; a restart sees a change), and asks no
 * name server: the C library, and so libcurl, look at the file before DNS too
 * ("hosts: files dns").
 *
 * A lookup is never cancelled: evdns_cancel_request does not end it at once but
 * schedules its callback with DNS_ERR_CANCEL for a later turn of the loop, which
 * never comes when the worker stops, leaving both evdns's record and ours behind.
 * So a lookup whose calls all went runs on (its answer serves the next call), and
 * one whose origin went is an orphan that frees itself when its answer comes, or
 * is freed by h1_resolver_free, whose evdns_base_free(.., 0) drops the requests
 * still under way without calling back. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/dns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "services/h1.h"
#include "services/h1_internal.h"

#define TTL_MIN_S 1         /* a TTL of 0 would send every new connection to DNS */
#define TTL_MAX_S 300       /* a changed address is seen within 5 minutes whatever the TTL */
#define HOSTS_MAX (4 << 20) /* what is read of a hosts file */

struct h1_resolver {
    struct evdns_base *dns;
    struct list orphans; /* struct h1_lookup.link: lookups whose origin went */
    char *hosts;         /* the hosts file's text (NULL when it has none) */
    size_t hosts_len;
};

struct h1_lookup {
    struct h1_name *n; /* NULL once orphaned */
    struct list link;  /* in the resolver's orphans once orphaned */
    bool v6;           /* asking for AAAA: the name had no A record */
};

/* ---- the hosts file ---------------------------------------------------------------- */

/* The next blank-separated word of [*p, end), NULL when none; its length in *n. */
static const char *next_word(const char **p, const char *end, size_t *n)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\t' && *e != '\r')
        e++;
    *p = e;
    *n = (size_t)(e - s);
    return s < e ? s : NULL;
}

/* Sets a->sa to the address word w[0, n) with a's port: true when it is one. */
static bool set_address(struct h1_addr *a, const char *w, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (n >= sizeof ip)
        return false;
    memcpy(ip, w, n);
    ip[n] = '\0';
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        a->len = sizeof *in;
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        a->len = sizeof *in6;
    } else {
        return false;
    }
    a->sa = ss;
    return true;
}

int h1_hosts_find(const char *text, size_t len, struct h1_addr *a)
{
    bool found = false; /* an IPv6 address, kept unless an IPv4 one follows */
    for (const char *line = text, *end = text + len; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        eol = eol ? eol : end;
        const char *hash = memchr(line, '#', (size_t)(eol - line)), *p = line;
        const char *stop = hash ? hash : eol, *ip, *w;
        size_t ip_len, n;
        line = eol + 1;
        if ((ip = next_word(&p, stop, &ip_len)) == NULL)
            continue;
        while ((w = next_word(&p, stop, &n)) != NULL) {
            if (n != a->name_len || strncasecmp(w, a->host, n) != 0)
                continue;
            struct h1_addr b = *a;
            if (!set_address(&b, ip, ip_len) || (found && b.sa.ss_family != AF_INET))
                break;
            *a = b;
            if (b.sa.ss_family == AF_INET)
                return 0;
            found = true;
            break;
        }
    }
    return found ? 0 : -ENOENT;
}

/* The hosts file's text: NULL, with *len 0, when it is missing, empty or unreadable. */
static char *read_hosts(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *text = f ? malloc(HOSTS_MAX) : NULL;
    *len = text ? fread(text, 1, HOSTS_MAX, f) : 0;
    if (f != NULL)
        fclose(f);
    if (*len == 0) {
        free(text);
        return NULL;
    }
    char *fit = realloc(text, *len);
    return fit ? fit : text;
}

/* ---- the resolver ------------------------------------------------------------------ */

struct h1_resolver *h1_resolver_new(struct event_base *base, const char *resolv_conf,
                                    const char *hosts_file, char *why, size_t why_len)
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
     * no TTL, never in the evdns_base_resolve_* used here; read_hosts reads it instead. */
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
    r->hosts = read_hosts(hosts_file, &r->hosts_len);
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
    free(r->hosts);
    free(r);
}

void h1_name_init(struct h1_name *n, struct h1_addr *a, struct h1_resolver *r)
{
    *n = (struct h1_name){ .addr = a, .r = a->name_len > 0 ? r : NULL };
    list_init(&n->waiting);
    if (n->r != NULL && h1_hosts_find(r->hosts, r->hosts_len, a) == 0)
        n->r = NULL; /* the hosts file's address, for good */
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
