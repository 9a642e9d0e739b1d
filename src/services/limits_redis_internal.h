/* limits_redis_internal: what limits_redis.c (the connection, the public calls) and
 * limits_redis_batch.c (the script, the batches of one loop turn) share. Not part
 * of the public face. */
#ifndef CHATD_LIMITS_REDIS_INTERNAL_H
#define CHATD_LIMITS_REDIS_INTERNAL_H

#include <hiredis/async.h>

#include "services/limits_internal.h"

enum limits_redis_state { RS_DOWN, RS_CONNECTING, RS_READY };

/* One admit waiting for Redis; owned by its batch until the batch's reply (or the
 * connection's end) comes back. */
struct limits_pending {
    struct limits_redis *r;
    struct limits_entry *e;
    struct limits_spec key; /* name points into e */
    struct limits_ticket *ticket;
    struct event *deadline;
    struct list link; /* in its batch */
    limits_cb cb;
    void *arg;
    int64_t sent_us;
    bool answered; /* cb ran, or the admit was cancelled */
};

struct limits_redis {
    struct limits *l;
    struct redis_url url;
    char where[300]; /* host:port or the socket path, for log lines */
    enum limits_redis_state state;
    redisAsyncContext *ac;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *dns_req;
    struct event *retry_ev, *handshake_ev, *renew_ev;
    struct event *flush_ev;            /* active while batches wait for the turn's end */
    struct list batches;               /* this turn's batches, not sent yet */
    const struct timeval *deadline_tv; /* a common timeout */
    int deadline_ms, lease_ms, backoff_first_ms, backoff_ms;
    int timeouts_in_a_row;
    bool outage, freeing, flush_queued;
    char sha[41];
    struct list leases; /* open leased tickets (limits_ticket.link) */
    char lease_prefix[17];
    unsigned long long lease_seq;
};

/* The Lua script (modes admitn, finishn, renew), loaded once per connection. */
extern const char limits_redis_script[];

/* Queues p into this turn's batch for its key; sent when the turn ends. */
int limits_redis_queue_admit(struct limits_redis *r, struct limits_pending *p);

/* Queues the finish of t (taken over) into this turn's batch for its key. */
void limits_redis_queue_finish(struct limits_redis *r, struct limits_ticket *t, long used);

/* Sends every queued batch now (the flush event's callback). */
void limits_redis_flush(evutil_socket_t fd, short what, void *arg);

/* Frees the batches not sent yet, answering nobody (the backend is being freed). */
void limits_redis_batches_free(struct limits_redis *r);

/* Calls p's callback once; an admitted ticket passes to the caller. */
void limits_redis_answer(struct limits_pending *p, const struct limits_verdict *v, bool granted);

/* Frees p with its deadline timer and any ticket it still holds. */
void limits_redis_pending_free(struct limits_pending *p);

/* Counts one Redis error through the hooks. */
void limits_redis_count_error(struct limits_redis *r);

#endif
