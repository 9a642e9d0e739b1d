/* worker: one event-loop thread and everything it owns. Share-nothing: a request
 * lives and dies on one worker; only the config snapshots (read-only, counted
 * references) and the metrics registry (atomics) are shared between workers. */
#ifndef CHATD_WORKER_H
#define CHATD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/list.h"

struct config;
struct metrics;
struct metrics_shard;
struct event_base;
struct event;
struct timeval;
struct http_server;
struct provider;
struct chat_stream;
struct breakers;
struct limits;
struct limits;

struct worker {
    int id;
    struct config *cfg; /* this worker's reference to the newest snapshot it has taken; a
                         * request that must outlive a reload takes its own (config_ref) */
    _Atomic(struct config *) pending_cfg; /* set by the main thread on SIGHUP, with a ref */
    struct metrics *metrics;              /* the shared registry (open-stream gate) */
    struct metrics_shard *m;              /* this worker's counters */
    struct event_base *base;
    struct http_server *http;
    struct provider *provider;
    struct breakers *breakers; /* per provider, shared by the workers */
    struct limits *limits;     /* client-key limits: in-process buckets or this loop's Redis */
    struct list streams;       /* open streams (chat_stream.link), for draining */
    const struct timeval *timeout_tv; /* TIMEOUT_SECONDS as a libevent common timeout */
    struct buf scratch;               /* events encoded during one callback, then written at once */
    int listen_fd;
    int wake_fd;   /* eventfd: main thread asks this worker to drain */
    int reload_fd; /* eventfd: main thread has put a new snapshot in pending_cfg */
    struct event *accept_ev, *resume_ev, *wake_ev, *drain_ev, *exit_ev, *reload_ev;
    _Atomic bool draining; /* set by the main thread on SIGTERM: refuse new work */
    bool drain_begun;      /* this loop has closed its listener */
    bool drain_expired;    /* DRAIN_SECONDS passed; open streams were ended */
    bool accept_paused;
    pthread_t thread;
};

#endif
