/* limits_redis: the Redis backend of limits (see limits.h for the model).
 *
 * One hiredis async connection per worker on the worker's event_base. States:
 * DOWN (no connection; a reconnect timer runs), CONNECTING (AUTH, SELECT and SCRIPT
 * LOAD pipelined behind the connect; READY when SCRIPT LOAD answers) and READY. Only
 * READY sends admits; otherwise an admit is answered at once, fail-open or closed.
 * Admits and finishes are queued into the batches of the loop turn (one per key) and
 * sent when the turn ends (limits_redis_batch.c). Every admit has a deadline timer;
 * its batch, then the hiredis reply callback, owns the pending object and frees it
 * (hiredis calls every callback, with a NULL reply, when the connection goes), so a
 * late reply is read and ignored, never lost track of. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "core/log.h"
#include "services/limits_redis_internal.h"

static void start_connect(struct limits_redis *r);

static void outage_begin(struct limits_redis *r, const char *why)
{
    if (r->outage || r->freeing)
        return;
    r->outage = true;
    if (!limits_outage_enter(r->l->shared))
        return; /* another worker already told of this outage */
    char msg[1024];
    snprintf(msg, sizeof msg,
             "Redis at %s cannot be reached (%s). Client-key limits cannot be checked across "
             "replicas while it is away. %s; chatd reconnects by itself, check that Redis is up.",
             r->where, why,
             r->l->fail_open ? "Requests are served without limits (RATE_LIMIT_FAIL_OPEN=true)"
                             : "Requests get 503 limits_unavailable (RATE_LIMIT_FAIL_OPEN=false)");
    log_event(LOG_WARNING, "redis_unavailable", NULL, LOG_STR("message", msg),
              LOG_STR("address", r->where), LOG_BOOL("fail_open", r->l->fail_open));
    if (r->l->hooks.redis_unavailable != NULL)
        r->l->hooks.redis_unavailable(r->l->hooks.arg);
}

void limits_redis_count_error(struct limits_redis *r)
{
    if (r->l->hooks.redis_error != NULL)
        r->l->hooks.redis_error(r->l->hooks.arg);
}

/* Forgets the connection and schedules the next attempt with exponential backoff
 * and jitter. Safe inside hiredis callbacks (hiredis defers the free). */
static void drop(struct limits_redis *r, const char *why)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->state = RS_DOWN;
    r->timeouts_in_a_row = 0;
    outage_begin(r, why);
    evtimer_del(r->handshake_ev);
    if (ac != NULL)
        redisAsyncFree(ac);
    if (r->freeing)
        return;
    unsigned int jitter = 0;
    (void)getrandom(&jitter, sizeof jitter, GRND_NONBLOCK);
    int ms = r->backoff_ms + (int)(jitter % (unsigned)(r->backoff_ms / 4 + 1));
    struct timeval tv = clock_timeval(ms / 1000.0);
    evtimer_add(r->retry_ev, &tv);
    r->backoff_ms = r->backoff_ms * 2 > 5000 ? 5000 : r->backoff_ms * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_connect(arg);
}

static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drop(arg, "no answer to the connection handshake within 1 s");
}

/* A connection that worked and then closed (a server idle timeout, a failover) is
 * remade at once without a warning; only when that fails does an outage begin. */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct limits_redis *r = ac->data;
    (void)status;
    if (r->ac != ac || r->freeing)
        return; /* one we dropped ourselves */
    r->ac = NULL;
    if (r->state == RS_READY) {
        r->state = RS_DOWN;
        struct timeval now = clock_timeval(0);
        evtimer_add(r->retry_ev, &now);
        return;
    }
    drop(r, ac->errstr[0] != '\0' ? ac->errstr : "the connection was closed");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct limits_redis *r = ac->data;
    if (status != REDIS_OK && r->ac == ac) {
        r->ac = NULL; /* hiredis frees it after this callback */
        drop(r, ac->errstr[0] != '\0' ? ac->errstr : "connect failed");
    }
}

/* The replies of AUTH, SELECT and SCRIPT LOAD; privdata tells which. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct limits_redis *r = ac->data;
    redisReply *rep = reply;
    if (rep == NULL || r->ac != ac)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof why, "%s refused: %.100s", (const char *)privdata, rep->str);
        limits_redis_count_error(r);
        drop(r, why);
        return;
    }
    if (strcmp(privdata, "SCRIPT LOAD") != 0)
        return;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        drop(r, "SCRIPT LOAD gave no script id");
        return;
    }
    memcpy(r->sha, rep->str, 40);
    r->sha[40] = '\0';
    r->state = RS_READY;
    r->backoff_ms = r->backoff_first_ms;
    evtimer_del(r->handshake_ev);
    if (r->outage) {
        r->outage = false;
        if (limits_outage_leave(r->l->shared))
            log_event(LOG_INFO, "redis_recovered", NULL, LOG_STR("address", r->where));
    }
}

static void open_connection(struct limits_redis *r, const char *ip)
{
    redisAsyncContext *ac = r->url.path[0] != '\0' ? redisAsyncConnectUnix(r->url.path)
                                                   : redisAsyncConnect(ip, r->url.port);
    if (ac == NULL || ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        drop(r, why);
        return;
    }
    ac->data = r;
    r->ac = ac;
    r->state = RS_CONNECTING;
    redisLibeventAttach(ac, r->l->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->url.password[0] != '\0') {
        if (r->url.user[0] != '\0')
            redisAsyncCommand(ac, on_handshake, "AUTH", "AUTH %s %s", r->url.user, r->url.password);
        else
            redisAsyncCommand(ac, on_handshake, "AUTH", "AUTH %s", r->url.password);
    }
    if (r->url.db > 0)
        redisAsyncCommand(ac, on_handshake, "SELECT", "SELECT %d", r->url.db);
    redisAsyncCommand(ac, on_handshake, "SCRIPT LOAD", "SCRIPT LOAD %s", limits_redis_script);
    struct timeval tv = clock_timeval(1);
    evtimer_add(r->handshake_ev, &tv);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct limits_redis *r = arg;
    r->dns_req = NULL;
    if (result == EVUTIL_EAI_CANCEL)
        return;
    if (result != 0 || res == NULL) {
        char why[160];
        snprintf(why, sizeof why, "the host name does not resolve: %s",
                 evutil_gai_strerror(result));
        drop(r, why);
        return;
    }
    char ip[64] = "";
    struct evutil_addrinfo *a = res;
    for (; a != NULL && a->ai_family != AF_INET; a = a->ai_next)
        ;
    a = a != NULL ? a : res; /* IPv4 first, else whatever came */
    const void *addr = a->ai_family == AF_INET
                           ? (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr
                           : (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr;
    evutil_inet_ntop(a->ai_family, addr, ip, sizeof ip);
    evutil_freeaddrinfo(res);
    open_connection(r, ip);
}

/* Resolves the host without blocking (evdns), then connects. */
static void start_connect(struct limits_redis *r)
{
    if (r->url.path[0] != '\0') {
        open_connection(r, NULL);
        return;
    }
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    r->state = RS_CONNECTING;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(r->dns, r->url.host, NULL, &hints, on_resolved, r);
    if (r->state == RS_CONNECTING && r->ac == NULL)
        r->dns_req = req; /* still resolving; NULL when it already answered */
}

static void renew_all(evutil_socket_t fd, short what, void *arg)
{
    struct limits_redis *r = arg;
    (void)fd;
    (void)what;
    if (r->state != RS_READY)
        return;
    char lease_ms[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", r->lease_ms);
    struct list *n;
    list_foreach(n, &r->leases)
    {
        const struct limits_ticket *t = list_entry(n, struct limits_ticket, link);
        char k3[300];
        snprintf(k3, sizeof k3, "chatd:{%s}:streams", t->entry->name);
        const char *argv[] = { "EVALSHA", r->sha, "3", k3, k3, k3, "renew", t->lease, lease_ms };
        redisAsyncCommandArgv(r->ac, NULL, NULL, 9, argv, NULL);
    }
}

struct limits_redis *limits_redis_new(struct limits *l, const struct redis_url *u)
{
    struct limits_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->l = l;
    r->url = *u;
    if (u->path[0] != '\0')
        snprintf(r->where, sizeof r->where, "%s", u->path);
    else
        snprintf(r->where, sizeof r->where, "%s:%d", u->host, u->port);
    list_init(&r->leases);
    list_init(&r->batches);
    uint64_t rnd = 0;
    (void)getrandom(&rnd, sizeof rnd, GRND_NONBLOCK);
    snprintf(r->lease_prefix, sizeof r->lease_prefix, "%016llx", (unsigned long long)rnd);
    r->dns = evdns_base_new(l->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    r->retry_ev = evtimer_new(l->base, on_retry, r);
    r->handshake_ev = evtimer_new(l->base, on_handshake_timeout, r);
    r->renew_ev = event_new(l->base, -1, EV_PERSIST, renew_all, r);
    r->flush_ev = event_new(l->base, -1, 0, limits_redis_flush, r);
    if (r->dns == NULL || r->retry_ev == NULL || r->handshake_ev == NULL || r->renew_ev == NULL ||
        r->flush_ev == NULL) {
        limits_redis_free(r);
        return NULL;
    }
    r->backoff_first_ms = r->backoff_ms = 100;
    limits_redis_set_timing(r, 50, 60000, 100);
    start_connect(r);
    return r;
}

void limits_redis_set_timing(struct limits_redis *r, int deadline_ms, int lease_ms, int backoff_ms)
{
    if (deadline_ms > 0) {
        r->deadline_ms = deadline_ms;
        struct timeval tv = clock_timeval(deadline_ms / 1000.0);
        r->deadline_tv = event_base_init_common_timeout(r->l->base, &tv);
    }
    if (lease_ms > 0) {
        r->lease_ms = lease_ms;
        struct timeval tv = clock_timeval(lease_ms / 3000.0);
        evtimer_add(r->renew_ev, &tv);
    }
    if (backoff_ms > 0)
        r->backoff_first_ms = r->backoff_ms = backoff_ms;
}

void limits_redis_free(struct limits_redis *r)
{
    if (r == NULL)
        return;
    r->freeing = true;
    if (r->dns_req != NULL)
        evdns_getaddrinfo_cancel(r->dns_req);
    if (r->ac != NULL) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* runs every reply callback with NULL: pendings are freed */
    }
    limits_redis_batches_free(r);
    while (!list_empty(&r->leases)) {
        struct limits_ticket *t = list_entry(r->leases.next, struct limits_ticket, link);
        list_remove(&t->link);
        free(t);
    }
    if (r->dns != NULL)
        evdns_base_free(r->dns, 0);
    if (r->retry_ev != NULL)
        event_free(r->retry_ev);
    if (r->handshake_ev != NULL)
        event_free(r->handshake_ev);
    if (r->renew_ev != NULL)
        event_free(r->renew_ev);
    if (r->flush_ev != NULL)
        event_free(r->flush_ev);
    free(r);
}

void limits_redis_pending_free(struct limits_pending *p)
{
    if (p->deadline != NULL)
        event_free(p->deadline);
    free(p->ticket);
    free(p);
}

void limits_redis_answer(struct limits_pending *p, const struct limits_verdict *v, bool granted)
{
    struct limits_redis *r = p->r;
    struct limits_ticket *t = NULL;
    p->answered = true;
    evtimer_del(p->deadline);
    if (granted && p->ticket != NULL) {
        t = p->ticket;
        p->ticket = NULL;
        if (p->key.max_concurrent_streams > 0) {
            t->leased = true;
            list_insert_tail(&r->leases, &t->link);
        }
    }
    limits_count_refused(r->l, v);
    p->cb(p->arg, v, t);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct limits_pending *p = arg;
    struct limits_redis *r = p->r;
    (void)fd;
    (void)what;
    struct limits_verdict v;
    limits_unreachable_verdict(r->l, &v);
    limits_redis_count_error(r);
    limits_redis_answer(p, &v, false);
    if (++r->timeouts_in_a_row >= 2)
        drop(r, "no answer within the deadline, twice in a row");
}

/* A pending admit with its deadline timer and, when the key needs one, a ticket
 * (with a lease for a concurrency limit). NULL when out of memory. */
static struct limits_pending *pending_new(struct limits_redis *r, struct limits_entry *e,
                                          const struct limits_spec *key, limits_cb cb, void *arg)
{
    struct limits_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    *p = (struct limits_pending){ .r = r, .e = e, .key = *key, .cb = cb, .arg = arg };
    p->key.name = e->name;
    p->deadline = evtimer_new(r->l->base, on_deadline, p);
    bool needs_ticket = key->max_concurrent_streams > 0 || key->tokens_per_minute > 0;
    if (needs_ticket)
        p->ticket = calloc(1, sizeof *p->ticket);
    if (p->deadline == NULL || (needs_ticket && p->ticket == NULL)) {
        limits_redis_pending_free(p);
        return NULL;
    }
    if (p->ticket != NULL) {
        p->ticket->entry = e;
        p->ticket->tokens_per_minute = key->tokens_per_minute;
        if (key->max_concurrent_streams > 0)
            snprintf(p->ticket->lease, sizeof p->ticket->lease, "%s:%llu", r->lease_prefix,
                     ++r->lease_seq);
    }
    return p;
}

int limits_redis_admit(struct limits_redis *r, struct limits_entry *e,
                       const struct limits_spec *key, limits_cb cb, void *arg,
                       struct limits_verdict *v, struct limits_ticket **ticket,
                       struct limits_pending **pending)
{
    (void)ticket;
    if (r->state != RS_READY) {
        limits_unreachable_verdict(r->l, v);
        limits_count_refused(r->l, v);
        return 1;
    }
    struct limits_pending *p = pending_new(r, e, key, cb, arg);
    if (p == NULL)
        return -ENOMEM;
    p->sent_us = clock_mono_us();
    if (limits_redis_queue_admit(r, p) < 0) {
        limits_redis_pending_free(p);
        return -ENOMEM;
    }
    evtimer_add(p->deadline, r->deadline_tv);
    *pending = p;
    return 0;
}

void limits_redis_cancel(struct limits_redis *r, struct limits_pending *p)
{
    (void)r;
    p->answered = true; /* freed when its batch's reply comes */
    evtimer_del(p->deadline);
}

void limits_redis_finish(struct limits_redis *r, struct limits_ticket *t, long tokens_used)
{
    if (t->leased)
        list_remove(&t->link);
    if (r->state == RS_READY && (t->leased || (t->tokens_per_minute > 0 && tokens_used > 0))) {
        limits_redis_queue_finish(r, t, tokens_used); /* takes t */
        return;
    }
    free(t);
}
