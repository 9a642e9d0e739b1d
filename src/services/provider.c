/* provider: see provider.h. The glue follows curl's multi-event.c: a socket
 * context per socket (made on CURL_POLL_IN/OUT, freed on CURL_POLL_REMOVE), one
 * timer for curl's timeouts, and CURLMSG_DONE handled after every action:
 * remove the handle, tell the owner, recycle the handle.
 *
 * Each provider of the configuration gets its own multi handle on this worker
 * (a "pool": its connection cache and timer), so that a provider removed by a
 * reload can have its connections closed once its last transfer has ended. */
#include "services/provider.h"

#include <assert.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/list.h"
#include "core/log.h"
#include "services/h1.h"
#include "services/router.h"

static_assert((int)PROVIDER_GO_ON == (int)H1_GO_ON && (int)PROVIDER_PAUSE == (int)H1_PAUSE &&
                  (int)PROVIDER_ABORT == (int)H1_ABORT,
              "h1 verdicts pass through as provider verdicts");

#define POOL_MAX         256  /* idle easy handles kept for reuse */
#define RELEASE_GRACE_MS 1000 /* how long a released transfer may take to end */
/* curl's receive buffer, allocated per transfer. Only the pages a read touches
 * cost memory (measured: 4 KiB and 16 KiB give the same RSS per stream), while
 * a buffer smaller than a burst of events costs a second read: 16 KiB. */
#define RECV_BUFFER 16384L

/* A socket curl asked us to watch. Connection sockets (opened through
 * open_socket) stay registered while their connection idles in curl's cache,
 * "dormant": curl drops an idle socket from its watch list and adds it back for
 * the next transfer, and keeping the registration saves two epoll_ctl calls per
 * request. Every close of such a socket comes through close_socket, which
 * drops the registration before the descriptor number can be reused. */
struct pool;

struct sock_ctx {
    struct event ev;
    struct provider *p;
    struct pool *pool; /* whose multi handle the socket belongs to */
    short kind;        /* what ev waits for; 0 when it is not added */
    bool managed;      /* a connection socket we opened: may stay dormant */
    bool tracked;      /* curl watches it now */
};

/* One provider's connections on this worker. */
struct pool {
    struct provider *p;
    struct pool *next;
    CURLM *multi;
    struct h1_origin *h1; /* chatd's own client serves this provider instead (see h1.h) */
    struct event timer;   /* curl's timeout */
    struct event reap;    /* frees a retired pool from the loop */
    char *key;            /* name, URL and CA bundle: what makes its connections its own */
    bool h2;              /* its transfers ran over HTTP/2: new ones may wait to multiplex */
    bool retired;         /* its provider left the configuration */
    size_t active;
};

struct provider {
    struct event_base *base;
    int in_callback;         /* > 0 while curl runs one of our callbacks: no multi calls then */
    long max_connects;       /* idle connections each pool keeps */
    bool native;             /* UPSTREAM_NATIVE_HTTP: h1 for the providers it can serve */
    bool dns_failed;         /* DNS_RESOLV_CONF was unusable: libcurl serves host names */
    struct h1_resolver *dns; /* h1's, made when a provider named by a host name is first used */
    char *resolv_conf;       /* DNS_RESOLV_CONF */
    struct pool *pools;      /* one per provider in use */
    CURL *pool[POOL_MAX];
    size_t n_pool;
    struct list calls;              /* in progress (provider_call.link), for provider_free */
    char *proxy_http, *proxy_https; /* from the environment at start ("" for none) */
    char *no_proxy;                 /* likewise, or NULL */
    struct sock_ctx **socks;        /* by descriptor */
    size_t n_socks;
    size_t active;
};

/* Work a call must do from the event loop rather than inside a curl callback. */
enum deferred { DEFER_NONE, DEFER_CANCEL, DEFER_RESUME, DEFER_RELEASE_EXPIRED };

struct provider_call {
    struct provider *p;
    struct pool *pool;
    struct list link;   /* in p->calls */
    CURL *easy;         /* NULL when h1 serves the call */
    struct h1_call *h1; /* NULL when libcurl serves it */
    char *body;
    struct curl_slist *headers;         /* this provider's request headers */
    const struct provider_conf *target; /* valid while the owner holds the call */
    bool version_known;
    const struct provider_callbacks *cb; /* NULL once released or cancelled */
    void *owner;
    /* Deferred work and the release deadline share one event embedded here, so
     * that scheduling them cannot fail for want of memory. */
    struct event ev;
    enum deferred deferred;
    bool cancelled; /* the owner cancelled it: the write callback aborts the transfer */
    bool in_done;   /* on_done is running: the call is freed right after */
    bool oom;       /* its socket could not be tracked: a failure of ours, not the provider's */
    char errbuf[CURL_ERROR_SIZE];
};

static void check_done(struct pool *pool);
static void check_mcode(CURLMcode rc, const char *what);

/* ---- the event-loop glue ------------------------------------------------------------ */

static struct sock_ctx *sock_find(struct provider *p, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < p->n_socks ? p->socks[fd] : NULL;
}

static struct sock_ctx *sock_new(struct provider *p, curl_socket_t fd, bool managed)
{
    if ((size_t)fd >= p->n_socks) {
        size_t n = p->n_socks ? p->n_socks : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct sock_ctx **grown = realloc(p->socks, n * sizeof *grown);
        if (grown == NULL)
            return NULL;
        memset(grown + p->n_socks, 0, (n - p->n_socks) * sizeof *grown);
        p->socks = grown;
        p->n_socks = n;
    }
    struct sock_ctx *sc = calloc(1, sizeof *sc);
    if (sc != NULL) {
        sc->p = p;
        sc->managed = managed;
        p->socks[fd] = sc;
    }
    return sc;
}

static void sock_free(struct provider *p, curl_socket_t fd)
{
    struct sock_ctx *sc = sock_find(p, fd);
    if (sc == NULL)
        return;
    if (sc->kind != 0)
        event_del(&sc->ev);
    free(sc);
    p->socks[fd] = NULL;
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct sock_ctx *sc = arg;
    struct pool *pool = sc->pool;
    if (!sc->tracked) {
        /* An idle connection stirred (the provider closed it): stop watching;
         * curl checks a connection before it reuses one. */
        event_del(&sc->ev);
        sc->kind = 0;
        return;
    }
    int flags =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;
    check_mcode(curl_multi_socket_action(pool->multi, fd, flags, &running), "socket_action");
    check_done(pool);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct pool *pool = userp;
    struct provider *p = pool->p;
    struct sock_ctx *sc = sock_find(p, s);
    if (what == CURL_POLL_REMOVE) {
        if (sc == NULL)
            return 0;
        if (!sc->managed) {
            sock_free(p, s); /* such as the resolver's socket pair, which curl closes itself */
            return 0;
        }
        sc->tracked = false;
        if ((sc->kind & EV_WRITE) != 0) { /* dormant sockets only wait to read */
            event_del(&sc->ev);
            sc->kind = 0;
        }
        return 0;
    }
    if (sc == NULL && (sc = sock_new(p, s, false)) == NULL)
        return -1;
    sc->pool = pool;
    sc->tracked = true;
    short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                 ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (kind != sc->kind) {
        if (sc->kind != 0)
            event_del(&sc->ev);
        event_assign(&sc->ev, p->base, s, kind, on_sock_event, sc);
        event_add(&sc->ev, NULL);
        sc->kind = kind;
    }
    return 0;
}

static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    struct provider_call *call = clientp;
    struct pool *pool = call->pool;
    curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    /* libcurl 7.88 to 8.1 close a socket that never connected (a connect timeout, a
     * transfer removed while connecting) without calling close_socket (curl PR
     * #11439): a context still held under this new descriptor's number is stale. */
    if (fd >= 0)
        sock_free(pool->p, fd);
    struct sock_ctx *sc = fd >= 0 ? sock_new(pool->p, fd, true) : NULL;
    if (fd >= 0 && sc == NULL) {
        call->oom = true;
        close(fd);
        return CURL_SOCKET_BAD;
    }
    if (sc != NULL)
        sc->pool = pool;
    return fd;
}

static int close_socket(void *clientp, curl_socket_t fd)
{
    sock_free(clientp, fd);
    return close(fd);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pool *pool = arg;
    int running;
    check_mcode(curl_multi_socket_action(pool->multi, CURL_SOCKET_TIMEOUT, 0, &running),
                "socket_action");
    check_done(pool);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct pool *pool = userp;
    if (timeout_ms < 0) {
        evtimer_del(&pool->timer);
        return 0;
    }
    struct timeval tv = clock_timeval(timeout_ms / 1000.0);
    evtimer_add(&pool->timer, &tv);
    return 0;
}

/* ---- calls -------------------------------------------------------------------------- */

static void recycle(struct provider *p, CURL *easy)
{
    if (p->n_pool < POOL_MAX)
        p->pool[p->n_pool++] = easy;
    else
        curl_easy_cleanup(easy);
}

/* Logs a multi-handle call that failed: it means a bug of ours (a call from
 * inside a callback, a handle in the wrong state) or no memory. */
static void check_mcode(CURLMcode rc, const char *what)
{
    if (rc != CURLM_OK)
        log_event(LOG_ERROR, "curl_multi_failed", NULL, LOG_STR("call", what),
                  LOG_STR("message", curl_multi_strerror(rc)));
}

/* Takes the transfer off the multi handle; an unfinished response closes its
 * connection (so the provider stops), a finished one leaves it for reuse.
 * libcurl forbids this from inside its callbacks. */
static void detach(struct provider_call *call)
{
    struct provider *p = call->p;
    if (call->easy != NULL) {
        assert(p->in_callback == 0);
        check_mcode(curl_multi_remove_handle(call->pool->multi, call->easy), "remove_handle");
    }
    call->pool->active--;
    list_remove(&call->link);
    p->active--;
    if (call->pool->retired && call->pool->active == 0)
        event_active(&call->pool->reap, EV_TIMEOUT, 1); /* not from inside its own work */
}

static void free_call(struct provider_call *call)
{
    event_del(&call->ev);
    if (call->easy != NULL)
        recycle(call->p, call->easy);
    curl_slist_free_all(call->headers);
    free(call->body);
    free(call);
}

static void end_call(struct provider_call *call)
{
    if (call->h1 != NULL)
        h1_cancel(call->h1);
    detach(call);
    free_call(call);
}

/* Calls on_done once, with the callback guard up, then forgets the owner. */
static void tell_done(struct provider_call *call, CURLcode result, const char *errbuf)
{
    if (call->cb == NULL)
        return;
    const struct provider_callbacks *cb = call->cb;
    call->cb = NULL;
    call->in_done = true;
    cb->on_done(call->owner, (int)result, errbuf);
}

static void learn_version(struct provider_call *call)
{
    long v = 0;
    call->version_known = true;
    if (curl_easy_getinfo(call->easy, CURLINFO_HTTP_VERSION, &v) == CURLE_OK &&
        v == CURL_HTTP_VERSION_2_0)
        call->pool->h2 = true;
}

static void check_done(struct pool *pool)
{
    CURLMsg *msg;
    int left;
    assert(pool->p->in_callback == 0);
    while ((msg = curl_multi_info_read(pool->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct provider_call *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode result = msg->data.result;
        if (result != CURLE_OK && call->oom)
            result = CURLE_OUT_OF_MEMORY; /* not the provider's failure */
        detach(call);                     /* msg is invalid from here on */
        tell_done(call, result, call->errbuf);
        free_call(call);
    }
}

static size_t on_write(char *ptr, size_t size, size_t n, void *userdata)
{
    struct provider_call *call = userdata;
    size_t len = size * n;
    if (call->cancelled)
        return 0; /* ends the transfer; the deferred cancel frees it */
    if (call->cb == NULL)
        return len; /* released: the owner is gone, the bytes only drain the connection */
    if (!call->version_known)
        learn_version(call);
    call->p->in_callback++;
    enum provider_verdict v = call->cb->on_data(call->owner, ptr, len);
    call->p->in_callback--;
    if (call->cancelled)
        return 0;
    switch (v) {
    case PROVIDER_GO_ON: return len;
    case PROVIDER_PAUSE: return CURL_WRITEFUNC_PAUSE;
    case PROVIDER_ABORT: break;
    }
    return 0;
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct provider_call *call = arg;
    enum deferred d = call->deferred;
    call->deferred = DEFER_NONE;
    if (d == DEFER_RESUME)
        provider_resume(call);
    else
        end_call(call); /* DEFER_CANCEL or DEFER_RELEASE_EXPIRED */
}

static void defer(struct provider_call *call, enum deferred d)
{
    call->deferred = d;
    event_active(&call->ev, EV_TIMEOUT, 1);
}

static CURL *new_easy(struct provider *p)
{
    if (p->n_pool > 0)
        return p->pool[--p->n_pool];
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "chatd/1.0");
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER);
    if (p->no_proxy != NULL)
        curl_easy_setopt(e, CURLOPT_NOPROXY, p->no_proxy);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, p);
    return e;
}

static struct curl_slist *add_header(struct curl_slist *h, const char *line)
{
    struct curl_slist *t = curl_slist_append(h, line);
    if (t == NULL)
        curl_slist_free_all(h);
    return t;
}

/* The request headers for one provider: fixed ones, its key, its extra headers. */
static struct curl_slist *make_headers(const struct provider_conf *pc)
{
    const char *fixed[] = { "Content-Type: application/json", "Accept: text/event-stream",
                            "Expect:" /* no 100-continue round trip */ };
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if ((h = add_header(h, fixed[i])) == NULL)
            return NULL;
    if (pc->api_key != NULL) {
        char *line = NULL;
        int n = pc->api_key_header ? asprintf(&line, "%s: %s", pc->api_key_header, pc->api_key)
                                   : asprintf(&line, "Authorization: Bearer %s", pc->api_key);
        if (n < 0) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = add_header(h, line);
        free(line);
    }
    for (size_t i = 0; h != NULL && i < pc->headers.n; i++)
        h = add_header(h, pc->headers.items[i]);
    return h;
}

static int set_target_options(struct provider *p, struct provider_call *call,
                              double connect_timeout_s)
{
    const struct provider_conf *pc = call->target;
    CURL *e = call->easy;
    bool https = strncmp(pc->chat_url, "https://", 8) == 0;
    if ((call->headers = make_headers(pc)) == NULL)
        return -1;
    curl_easy_setopt(e, CURLOPT_URL, pc->chat_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    /* A ca_file is trusted instead of the system's CAs (bundle and directory); without
     * one, libcurl's own defaults, set again since the handle may come from another
     * provider. */
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    curl_easy_setopt(e, CURLOPT_CAINFO, pc->ca_file ? pc->ca_file : vi->cainfo);
    curl_easy_setopt(e, CURLOPT_CAPATH, pc->ca_file ? NULL : vi->capath);
    curl_easy_setopt(e, CURLOPT_PROXY, https ? p->proxy_https : p->proxy_http);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout_s * 1000));
    /* Waiting for a connection being set up, in case it can multiplex, is right
     * only for a provider known to speak HTTP/2; over HTTP/1.1 it makes a burst of
     * new streams wait for another stream's whole answer. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, (long)(https && call->pool->h2));
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, call); /* the call: it learns of a failure */
    return 0;
}

/* ---- pools: one multi handle per provider ------------------------------------------ */

static char *pool_key(const struct provider_conf *pc)
{
    char *key = NULL;
    if (asprintf(&key, "%s\n%s\n%s", pc->name, pc->chat_url, pc->ca_file ? pc->ca_file : "") < 0)
        return NULL;
    return key;
}

static void pool_free(struct pool *pool)
{
    struct provider *p = pool->p;
    struct pool **pp = &p->pools;
    while (*pp != pool)
        pp = &(*pp)->next;
    *pp = pool->next;
    if (pool->multi != NULL)
        curl_multi_cleanup(pool->multi); /* closes its connections (close_socket) */
    h1_origin_free(pool->h1);
    event_del(&pool->timer);
    event_del(&pool->reap);
    log_event(LOG_DEBUG, "provider_pool_closed", NULL, LOG_STR("pool", pool->key ? pool->key : ""));
    free(pool->key);
    free(pool);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pool *pool = arg;
    if (pool->retired && pool->active == 0)
        pool_free(pool);
}

/* Whether h1 serves this provider: asked for, plain http to an address or to a
 * host name the worker's resolver can look up, and no proxy (libcurl applies
 * proxies and their exceptions). */
static bool wants_h1(struct provider *p, const struct provider_conf *pc)
{
    int kind = p->native && *p->proxy_http == '\0' ? h1_url_supported(pc->chat_url) : H1_URL_NO;
    char why[300];
    if (kind == H1_URL_NAME && p->dns == NULL && !p->dns_failed &&
        (p->dns = h1_resolver_new(p->base, p->resolv_conf, "/etc/hosts", why, sizeof why)) ==
            NULL) {
        p->dns_failed = true; /* said once per worker */
        log_event(LOG_WARNING, "dns_unavailable", NULL,
                  LOG_STR("message", "chatd's own HTTP client cannot resolve provider host "
                                     "names, so libcurl serves the providers named by one"),
                  LOG_STR("reason", why),
                  LOG_STR("recovery_action", "point DNS_RESOLV_CONF at a readable resolv.conf "
                                             "that names a nameserver, then restart"));
    }
    return kind == H1_URL_ADDRESS || (kind == H1_URL_NAME && p->dns != NULL);
}

static struct pool *pool_new(struct provider *p, char *key, const struct provider_conf *pc)
{
    struct pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        free(key);
        return NULL;
    }
    *pool = (struct pool){ .p = p, .key = key, .multi = curl_multi_init(), .next = p->pools };
    p->pools = pool;
    evtimer_assign(&pool->timer, p->base, on_timeout, pool);
    evtimer_assign(&pool->reap, p->base, on_reap, pool);
    CURLM *m = pool->multi;
    if (m == NULL || curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_SOCKETDATA, pool) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_TIMERDATA, pool) != CURLM_OK ||
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, p->max_connects) != CURLM_OK ||
        (wants_h1(p, pc) && (pool->h1 = h1_origin_new(p->base, pc->chat_url,
                                                      (size_t)p->max_connects, p->dns)) == NULL)) {
        pool_free(pool);
        return NULL;
    }
    log_event(LOG_DEBUG, "provider_pool_opened", NULL, LOG_STR("provider", pc->name),
              LOG_STR("client", pool->h1 != NULL ? "h1" : "libcurl"));
    return pool;
}

/* The pool of this provider, made on first use. */
static struct pool *pool_for(struct provider *p, const struct provider_conf *pc)
{
    char *key = pool_key(pc);
    if (key == NULL)
        return NULL;
    for (struct pool *pool = p->pools; pool != NULL; pool = pool->next)
        if (!pool->retired && strcmp(pool->key, key) == 0) {
            free(key);
            return pool;
        }
    return pool_new(p, key, pc);
}

void provider_retire_missing(struct provider *p, const struct config *cfg)
{
    for (struct pool *pool = p->pools; pool != NULL; pool = pool->next) {
        bool kept = false;
        for (size_t i = 0; i < cfg->n_providers && !kept; i++) {
            char *key = pool_key(&cfg->providers[i]);
            kept = key == NULL || strcmp(key, pool->key) == 0; /* no memory: keep it */
            free(key);
        }
        if (!kept && !pool->retired) {
            pool->retired = true;
            if (pool->active == 0)
                event_active(&pool->reap, EV_TIMEOUT, 1);
        }
    }
}

/* ---- calls served by h1 ------------------------------------------------------------ */

static enum h1_verdict h1_on_data(void *arg, const char *data, size_t len)
{
    struct provider_call *call = arg;
    /* The owner may cancel or release the call in here, which frees it: the
     * verdict is returned without touching call again. */
    return (enum h1_verdict)call->cb->on_data(call->owner, data, len);
}

static void h1_on_done(void *arg, int code, const char *err)
{
    struct provider_call *call = arg;
    detach(call);
    tell_done(call, (CURLcode)code, err); /* call->h1 still answers the getters */
    call->h1 = NULL;
    free_call(call);
}

static const struct h1_callbacks h1_glue = { h1_on_data, h1_on_done };

static int start_h1(struct provider_call *call, double connect_timeout_s, char *body, size_t len)
{
    struct curl_slist *headers = make_headers(call->target);
    if (headers == NULL) {
        free(body);
        return -1;
    }
    call->h1 = h1_start(call->pool->h1, headers, connect_timeout_s, body, len, &h1_glue, call);
    curl_slist_free_all(headers);
    return call->h1 != NULL ? 0 : -1;
}

/* ---- calls served by libcurl ------------------------------------------------------- */

static int start_curl(struct provider *p, struct provider_call *call, double connect_timeout_s,
                      char *body, size_t len)
{
    CURL *e = call->easy = new_easy(p);
    if (e == NULL || set_target_options(p, call, connect_timeout_s) != 0) {
        if (e != NULL)
            recycle(p, e);
        free(body);
        return -1;
    }
    call->body = body;
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
    CURLMcode rc = curl_multi_add_handle(call->pool->multi, e);
    if (rc != CURLM_OK) {
        check_mcode(rc, "add_handle");
        curl_slist_free_all(call->headers);
        recycle(p, e);
        free(body);
        return -1;
    }
    return 0;
}

struct provider_call *provider_start(struct provider *p, const struct provider_conf *target,
                                     double connect_timeout_s, char *body, size_t len,
                                     const struct provider_callbacks *cb, void *owner)
{
    assert(p->in_callback == 0);
    struct provider_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        free(body);
        return NULL;
    }
    *call = (struct provider_call){ .p = p, .target = target, .cb = cb, .owner = owner };
    evtimer_assign(&call->ev, p->base, on_deferred, call);
    call->pool = pool_for(p, target);
    int rc = call->pool == NULL       ? (free(body), -1)
             : call->pool->h1 != NULL ? start_h1(call, connect_timeout_s, body, len)
                                      : start_curl(p, call, connect_timeout_s, body, len);
    if (rc != 0) {
        free(call);
        return NULL;
    }
    list_insert_head(&p->calls, &call->link);
    p->active++;
    call->pool->active++;
    return call;
}

void provider_cancel(struct provider_call *call)
{
    assert(!call->in_done);
    call->cb = NULL;
    call->owner = NULL;
    if (call->easy != NULL && call->p->in_callback > 0) {
        call->cancelled = true; /* its write callback aborts; the loop frees it */
        defer(call, DEFER_CANCEL);
        return;
    }
    end_call(call);
}

void provider_release(struct provider_call *call)
{
    assert(!call->in_done);
    call->cb = NULL;
    call->owner = NULL;
    if (call->h1 != NULL) { /* h1 lets the answer end, or closes it, on its own */
        h1_release(call->h1, RELEASE_GRACE_MS);
        detach(call);
        free_call(call);
        return;
    }
    call->deferred = DEFER_RELEASE_EXPIRED;
    struct timeval tv = clock_timeval(RELEASE_GRACE_MS / 1000.0);
    evtimer_add(&call->ev, &tv);
    curl_easy_pause(call->easy, CURLPAUSE_CONT); /* a paused transfer could never drain */
}

void provider_resume(struct provider_call *call)
{
    struct provider *p = call->p;
    assert(!call->in_done && call->cb != NULL);
    if (call->h1 != NULL) {
        h1_resume(call->h1);
        return;
    }
    if (p->in_callback > 0) {
        defer(call, DEFER_RESUME);
        return;
    }
    CURLcode rc = curl_easy_pause(call->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK) {
        detach(call);
        tell_done(call, rc, "");
        free_call(call);
        return;
    }
    check_done(call->pool);
}

long provider_status(struct provider_call *call)
{
    long code = 0;
    if (call->h1 != NULL)
        return h1_status(call->h1);
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

const char *provider_content_type(struct provider_call *call)
{
    char *ct = NULL;
    if (call->h1 != NULL)
        return h1_content_type(call->h1);
    curl_easy_getinfo(call->easy, CURLINFO_CONTENT_TYPE, &ct);
    return ct;
}

long provider_retry_after_ms(struct provider_call *call)
{
    struct curl_header *h = NULL;
    if (call->h1 != NULL) {
        const char *v = h1_retry_after(call->h1);
        return v != NULL ? router_parse_retry_after(v, time(NULL)) : -1;
    }
    if (curl_easy_header(call->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    return router_parse_retry_after(h->value, time(NULL));
}

size_t provider_active(const struct provider *p)
{
    return p->active;
}

/* ---- the client --------------------------------------------------------------------- */

/* The proxies libcurl would pick from the environment — read once here,
 * because libcurl otherwise reads the environment for every transfer. */
static const char *env_first(const char *const *names)
{
    for (; *names != NULL; names++) {
        const char *v = getenv(*names);
        if (v != NULL && *v != '\0')
            return v;
    }
    return "";
}

static int read_proxy_env(struct provider *p)
{
    static const char *const http[] = { "http_proxy", "all_proxy", "ALL_PROXY", NULL };
    static const char *const https[] = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                         NULL };
    static const char *const no[] = { "no_proxy", "NO_PROXY", NULL };
    p->proxy_http = strdup(env_first(http)); /* http: lowercase only, as libcurl */
    p->proxy_https = strdup(env_first(https));
    const char *np = env_first(no);
    p->no_proxy = *np ? strdup(np) : NULL;
    return p->proxy_http == NULL || p->proxy_https == NULL || (*np && p->no_proxy == NULL) ? -1 : 0;
}

void provider_free(struct provider *p)
{
    if (p == NULL)
        return;
    while (!list_empty(&p->calls))
        end_call(list_entry(p->calls.next, struct provider_call, link));
    for (size_t i = 0; i < p->n_pool; i++)
        curl_easy_cleanup(p->pool[i]);
    while (p->pools != NULL)
        pool_free(p->pools);
    for (size_t fd = 0; fd < p->n_socks; fd++)
        sock_free(p, (curl_socket_t)fd);
    free(p->socks);
    h1_resolver_free(p->dns); /* after the pools' origins */
    free(p->resolv_conf);
    free(p->proxy_http);
    free(p->proxy_https);
    free(p->no_proxy);
    free(p);
}

struct provider *provider_new(struct event_base *base, const struct config *cfg)
{
    struct provider *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->base = base;
    list_init(&p->calls);
    /* Keep idle provider connections for reuse: one per stream that may run at once. */
    p->max_connects = cfg->max_streams / cfg->workers + 16;
    p->native = cfg->native_http;
    p->resolv_conf = strdup(cfg->dns_resolv_conf ? cfg->dns_resolv_conf : "/etc/resolv.conf");
    if (p->resolv_conf == NULL || read_proxy_env(p) != 0) {
        provider_free(p);
        return NULL;
    }
    return p;
}
