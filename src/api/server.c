/* server: see server.h. */
#include "api/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/stream.h"
#include "api/http.h"
#include "api/listen.h"
#include "api/routes.h"
#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/provider.h"
#include "services/limits.h"
#include "services/router.h"

#define ACCEPT_BATCH        64
#define ACCEPT_PAUSE_MS     100
#define EXIT_CHECK_MS       20
#define DRAIN_GRACE_SECONDS 2

/* ---- accepting ---------------------------------------------------------------------- */

static void pause_accept(struct worker *w)
{
    /* Out of descriptors: leave new connections in the kernel's backlog and try
     * again shortly, instead of spinning on a listener that stays readable. */
    if (!w->accept_paused) {
        log_event(LOG_WARNING, "accept_paused", NULL, LOG_INT("worker", w->id),
                  LOG_STR("reason", "out of file descriptors"),
                  LOG_STR("recovery_action", "raise the open-file limit (ulimit -n) or lower "
                                             "MAX_CONCURRENT_STREAMS"));
        metrics_accept_paused(w->m);
    }
    w->accept_paused = true;
    event_del(w->accept_ev);
    struct timeval tv = clock_timeval(ACCEPT_PAUSE_MS / 1000.0);
    event_add(w->resume_ev, &tv);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (!w->drain_begun)
        event_add(w->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accept(w);
            return; /* EAGAIN: the backlog is empty */
        }
        if (w->accept_paused) {
            w->accept_paused = false;
            log_event(LOG_INFO, "accept_resumed", NULL, LOG_INT("worker", w->id));
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (http_server_adopt(w->http, fd) != 0)
            close(fd);
    }
}

/* ---- draining and stopping ---------------------------------------------------------- */

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (w->drain_expired) { /* the grace after the final events is over too */
        event_base_loopexit(w->base, NULL);
        return;
    }
    w->drain_expired = true;
    stream_abort_all(w, ERR_STREAM_SHUTTING_DOWN);
    /* Give the final events a moment to reach clients, then stop regardless of
     * connections that still hold a partial request or an unread answer. */
    struct timeval grace = clock_timeval(DRAIN_GRACE_SECONDS);
    event_add(w->drain_ev, &grace);
}

static void on_exit_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (list_empty(&w->streams) && http_server_busy_count(w->http) == 0)
        event_base_loopexit(w->base, NULL);
}

static void begin_drain(struct worker *w)
{
    w->drain_begun = true;
    event_del(w->accept_ev);
    event_del(w->resume_ev);
    close(w->listen_fd); /* stop accepting: new connections are refused */
    w->listen_fd = -1;
    http_server_drain(w->http);
    struct timeval tv = clock_timeval(w->cfg->drain_s);
    event_add(w->drain_ev, &tv);
    struct timeval check = clock_timeval(EXIT_CHECK_MS / 1000.0);
    event_add(w->exit_ev, &check);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    uint64_t n; /* signals since the last read: two may arrive as one count */
    if (read(fd, &n, sizeof n) != sizeof n || n == 0)
        return;
    if (!w->drain_begun) {
        begin_drain(w);
        n--;
    }
    if (n > 0 && !w->drain_expired) /* a second signal: do not wait for the drain period */
        event_active(w->drain_ev, EV_TIMEOUT, 1);
}

/* Takes the snapshot the main thread left in pending_cfg: requests that start
 * from now on see it; those already running hold their own reference. */
static void on_reload(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct worker *w = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) != sizeof n)
        return;
    struct config *next = atomic_exchange(&w->pending_cfg, NULL);
    if (next == NULL)
        return;
    struct config *old = w->cfg;
    w->cfg = next; /* the reference the main thread took for this worker */
    struct timeval tv = clock_timeval(next->timeout_s); /* streams keep the one they started with */
    w->timeout_tv = event_base_init_common_timeout(w->base, &tv);
    provider_retire_missing(w->provider, next); /* closed once their last stream ends */
    config_unref(old);
}

/* ---- the loop ----------------------------------------------------------------------- */

/* IDLE_SPIN_MICROSECONDS. Waking a thread that sleeps in epoll_wait on a core with
 * nothing else to run is slow on some machines (a halted virtual CPU waits for its
 * host), so while streams are open a worker polls without blocking until it has had
 * nothing to do for that long, and only then sleeps. The marker is activated before
 * each polled turn, so it runs first and sees whether anything else became active. */
struct spin {
    struct event *marker;
    bool found; /* the last polled turn had callbacks to run */
};

static void on_marker(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct spin *sp = arg;
    struct event_base *base = event_get_base(sp->marker);
    sp->found = event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0;
}

static bool loop_stopped(struct event_base *base)
{
    return event_base_got_exit(base) || event_base_got_break(base);
}

/* Polls while streams are open until the spin time passes with nothing to run.
 * Returns false when the loop was asked to stop. */
static bool spin(struct worker *w, struct spin *sp)
{
    int64_t budget = w->cfg->idle_spin_us, last = clock_mono_us();
    while (budget > 0 && !list_empty(&w->streams) && clock_mono_us() - last < budget) {
        event_active(sp->marker, EV_TIMEOUT, 1);
        if (event_base_loop(w->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) < 0 || loop_stopped(w->base))
            return false;
        if (sp->found)
            last = clock_mono_us();
    }
    return true;
}

/* event_base_dispatch, with a spin after each turn that ran callbacks. */
static void run_loop(struct worker *w)
{
    struct spin sp = { 0 };
    sp.marker = event_new(w->base, -1, 0, on_marker, &sp);
    if (sp.marker == NULL) { /* out of memory: serve without the spin */
        event_base_dispatch(w->base);
        return;
    }
    while (event_base_loop(w->base, EVLOOP_ONCE) == 0 && !loop_stopped(w->base) && spin(w, &sp))
        ;
    event_free(sp.marker);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    run_loop(w);
    /* This worker is done: close its idle keep-alive connections now, not when the last
     * worker is done, so that a proxy does not send a request on one nobody reads. */
    http_server_free(w->http);
    w->http = NULL;
    return NULL;
}

/* ---- worker set-up ------------------------------------------------------------------ */

static void worker_free(struct worker *w)
{
    http_server_free(w->http); /* closes connections; their streams end with them */
    provider_free(w->provider);
    limits_free(w->limits); /* after the streams, which give their tickets back */
    struct event *evs[] = { w->accept_ev, w->resume_ev, w->wake_ev,
                            w->drain_ev,  w->exit_ev,   w->reload_ev };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->reload_fd >= 0)
        close(w->reload_fd);
    if (w->base != NULL)
        event_base_free(w->base);
    buf_free(&w->scratch);
    config_unref(atomic_exchange(&w->pending_cfg, NULL));
    config_unref(w->cfg);
}

static int worker_init(struct worker *w, int id, struct config *cfg, struct metrics *m,
                       int listen_fd)
{
    memset(w, 0, sizeof *w);
    list_init(&w->streams);
    w->id = id;
    w->cfg = config_ref(cfg);
    w->metrics = m;
    w->m = metrics_shard(m, id);
    w->listen_fd = listen_fd;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->reload_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct event_config *ec = event_config_new();
    if (ec != NULL) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK); /* one thread per base */
        /* libevent's default clock here is CLOCK_MONOTONIC_COARSE (4 ms ticks), which
         * fired retry backoffs and timeouts up to 4 ms before they were due. */
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (w->wake_fd < 0 || w->reload_fd < 0 || w->base == NULL)
        return -1;
    struct timeval tv = clock_timeval(cfg->timeout_s);
    w->timeout_tv = event_base_init_common_timeout(w->base, &tv);
    w->http = http_server_new(w->base, &routes_handlers, w, cfg->client_timeout_s,
                              cfg->max_request_bytes);
    w->provider = provider_new(w->base, cfg);
    w->accept_ev = event_new(w->base, listen_fd, EV_READ | EV_PERSIST, on_accept, w);
    w->resume_ev = evtimer_new(w->base, on_resume, w);
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->drain_ev = evtimer_new(w->base, on_drain_deadline, w);
    w->exit_ev = event_new(w->base, -1, EV_PERSIST, on_exit_check, w);
    w->reload_ev = event_new(w->base, w->reload_fd, EV_READ | EV_PERSIST, on_reload, w);
    if (w->http == NULL || w->provider == NULL || w->accept_ev == NULL || w->resume_ev == NULL ||
        w->wake_ev == NULL || w->drain_ev == NULL || w->exit_ev == NULL || w->reload_ev == NULL)
        return -1;
    event_add(w->accept_ev, NULL);
    event_add(w->wake_ev, NULL);
    event_add(w->reload_ev, NULL);
    return 0;
}

/* ---- the whole server --------------------------------------------------------------- */

static void warn_at_start(const struct config *cfg, const struct listen_addr *a)
{
    if (cfg->api_key == NULL)
        log_event(LOG_WARNING, "config_warning", NULL,
                  LOG_STR("message", "OPENAI_API_KEY is not set, so requests to the provider "
                                     "carry no Authorization header"),
                  LOG_STR("recovery_action", "set OPENAI_API_KEY unless your provider (such as "
                                             "a local llama.cpp or Ollama) needs no key"));
    bool loopback =
        a->ss.ss_family == AF_INET
            ? (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127
            : IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
    if (!loopback && !config_auth_enabled(cfg))
        log_event(LOG_WARNING, "config_warning", NULL,
                  LOG_STR("message", "listening on a non-loopback address without "
                                     "CLIENT_API_KEYS: anyone who can reach this port can spend "
                                     "the provider account"),
                  LOG_STR("recovery_action", "set CLIENT_API_KEYS, or put chatd behind an "
                                             "authenticating proxy"));
}

/* SIGHUP: reads .env and CHATD_CONFIG again into a new snapshot and hands it to
 * every worker on its own loop; a bad one is logged and the old one stays. */
/* Waits (up to a second, on the main thread, which serves no requests) until
 * every worker has taken the new snapshot, so that config_reloaded means that new
 * requests use it. */
static void wait_taken(struct worker *ws, int n)
{
    for (int tries = 0; tries < 1000; tries++) {
        int left = 0;
        for (int i = 0; i < n; i++)
            left += atomic_load(&ws[i].pending_cfg) != NULL;
        if (left == 0)
            return;
        struct timespec ms = { 0, 1000 * 1000 };
        nanosleep(&ms, NULL);
    }
}

static void reload(struct worker *ws, int n, struct config **current)
{
    struct config *next;
    char err[1024], changed[256];
    int rc = config_load_process((*current)->dotenv_path, &next, err, sizeof err);
    if (rc == 0 && (rc = config_keep_fixed(next, *current, changed, sizeof changed)) != 0) {
        snprintf(err, sizeof err, "Out of memory while reloading the configuration.");
        config_unref(next);
    }
    if (rc != 0) {
        log_event(LOG_ERROR, "config_reload_failed", NULL, LOG_STR("message", err),
                  LOG_STR("detail", "chatd keeps serving with the configuration it had"));
        return;
    }
    for (int i = 0; i < n; i++) {
        config_unref(atomic_exchange(&ws[i].pending_cfg, config_ref(next))); /* never taken */
        uint64_t one = 1;
        if (write(ws[i].reload_fd, &one, sizeof one) < 0)
            log_event(LOG_ERROR, "wake_failed", NULL, LOG_INT("worker", i));
    }
    config_unref(*current);
    *current = next;
    wait_taken(ws, n);
    config_log_reloaded(next, changed);
}

/* The signals the main thread waits for: SIGINT and SIGTERM (stop), SIGHUP
 * (reload). Blocked in every thread (SIGHUP already from the start, by main). */
static sigset_t server_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}

/* Waits for SIGINT/SIGTERM, asks the workers to drain, and asks again (to end
 * streams at once) on a second signal, until every worker has stopped; SIGHUP
 * reloads the configuration until then. */
static void wait_for_signals(struct worker *ws, int n, _Atomic int *stopped,
                             struct config **current)
{
    sigset_t set = server_signals();
    int signals = 0;
    while (atomic_load(stopped) < n) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        int sig = sigtimedwait(&set, NULL, signals ? &ts : NULL);
        if (sig < 0)
            continue;
        if (sig == SIGHUP) {
            if (signals == 0)
                reload(ws, n, current);
            else
                log_event(LOG_WARNING, "config_reload_skipped", NULL,
                          LOG_STR("message", "SIGHUP during shutdown: the configuration is not "
                                             "reloaded while open streams drain"));
            continue;
        }
        if (signals++ == 0) {
            for (int i = 0; i < n; i++) /* new requests get 503 from now on, on every worker */
                atomic_store(&ws[i].draining, true);
            log_event(LOG_INFO, "shutdown_started", NULL,
                      LOG_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
                      LOG_NUM("drain_seconds", (*current)->drain_s));
        }
        uint64_t one = 1;
        for (int i = 0; i < n; i++)
            if (write(ws[i].wake_fd, &one, sizeof one) < 0)
                log_event(LOG_ERROR, "wake_failed", NULL, LOG_INT("worker", i));
    }
}

struct runner {
    struct worker *w;
    _Atomic int *stopped;
};

static void *run_worker(void *arg)
{
    struct runner *r = arg;
    worker_main(r->w);
    atomic_fetch_add(r->stopped, 1);
    return NULL;
}

/* The limits' metrics, counted in the worker's shard. */
static void hook_refused(void *arg, const char *reason)
{
    metrics_limit_refused(arg, reason);
}

static void hook_rtt(void *arg, double seconds)
{
    metrics_redis_rtt(arg, seconds);
}

static void hook_error(void *arg)
{
    metrics_redis_error(arg);
}

static void hook_unavailable(void *arg)
{
    metrics_redis_unavailable(arg);
}

/* Each worker's limits on its own loop: in-process, or its own Redis connection. */
static int worker_limits(struct worker *w, struct limits_shared *shared,
                         const struct redis_url *redis, bool fail_open)
{
    w->limits = limits_new(w->base, shared, redis, fail_open);
    if (w->limits == NULL)
        return -1;
    struct limits_hooks hooks = { hook_refused, hook_rtt, hook_error, hook_unavailable, w->m };
    limits_set_hooks(w->limits, &hooks);
    return 0;
}

/* REDIS_URL, checked before anything starts: a bad one is a configuration error. */
static int parse_redis(const struct config *cfg, struct redis_url *out)
{
    char err[512];
    if (cfg->redis_url == NULL)
        return 0;
    if (limits_parse_redis_url(cfg->redis_url, out, err, sizeof err) != 0) {
        fprintf(stderr, "chatd: configuration error: REDIS_URL: %s\n", err);
        return -1;
    }
    log_add_secret(out->password);
    return 0;
}

/* At each scrape: every provider's breaker state, which time alone changes. */
static void render_breakers(void *ctx, struct metrics *m)
{
    struct breakers *b = ctx;
    int64_t now = clock_mono_us();
    for (size_t i = 0; i < breakers_count(b); i++) {
        struct breaker *br = breakers_at(b, i);
        metrics_breaker_state(m, breaker_name(br), breaker_state(br, now));
    }
}

int server_run(struct config *cfg)
{
    int n = cfg->workers, rc = 1;
    struct listen_addr addr;
    int *fds = malloc(sizeof(int) * (size_t)n);
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    struct runner *runners = calloc((size_t)n, sizeof *runners);
    struct metrics *m = metrics_new(n);
    struct breakers *breakers = breakers_new();
    struct limits_shared *shared = limits_shared_new();
    struct redis_url redis;
    _Atomic int stopped = 0;
    int started = 0;
    if (fds == NULL || ws == NULL || runners == NULL || m == NULL || breakers == NULL ||
        shared == NULL)
        goto out;
    if (parse_redis(cfg, &redis) != 0) {
        rc = 2;
        goto out;
    }
    metrics_on_render(m, render_breakers, breakers);
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    if ((rc = listen_open_all(cfg, &addr, fds)) != 0)
        goto out;
    rc = 1;
    for (int i = 0; i < n; i++) {
        int fd = fds[i];
        fds[i] = -1; /* the worker owns it now, even if it fails */
        if (worker_init(&ws[i], i, cfg, m, fd) != 0) {
            fprintf(stderr,
                    "chatd: cannot start worker %d: out of memory or file descriptors. "
                    "The process could not create its event loop. Lower WORKERS or raise the "
                    "open-file limit.\n",
                    i);
            goto out;
        }
        ws[i].breakers = breakers;
        if (worker_limits(&ws[i], shared, cfg->redis_url ? &redis : NULL,
                          cfg->rate_limit_fail_open) != 0) {
            fprintf(stderr,
                    "chatd: cannot start worker %d: out of memory. The process could "
                    "not set up its client-key limits. Lower WORKERS.\n",
                    i);
            goto out;
        }
    }
    sigset_t set = server_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the threads inherit the mask */
    config_log_effective(cfg, addr.text);
    warn_at_start(cfg, &addr);
    for (; started < n; started++) {
        runners[started] = (struct runner){ &ws[started], &stopped };
        if (pthread_create(&ws[started].thread, NULL, run_worker, &runners[started]) != 0)
            break;
    }
    if (started == n) {
        struct config *current = config_ref(cfg); /* the newest snapshot, for reloads */
        wait_for_signals(ws, n, &stopped, &current);
        config_unref(current);
        rc = 0;
    } else {
        fprintf(stderr,
                "chatd: cannot start worker thread %d. The system refused a new thread. "
                "Lower WORKERS or raise the process limits.\n",
                started);
        uint64_t one = 1;
        for (int i = 0; i < started; i++)
            if (write(ws[i].wake_fd, &one, sizeof one) < 0)
                break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    if (rc == 0)
        log_event(LOG_INFO, "server_stopped", NULL, LOG_STR("listen", addr.text));
out:
    for (int i = 0; ws != NULL && i < n; i++)
        if (ws[i].cfg != NULL)
            worker_free(&ws[i]);
    for (int i = 0; fds != NULL && i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    metrics_free(m);
    breakers_free(breakers);
    limits_shared_free(shared);
    free(runners);
    free(ws);
    free(fds);
    return rc;
}
