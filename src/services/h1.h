/* h1: chatd's own HTTP/1.1 client for providers reached over plain http with
 * no proxy, on the worker's event_base. It exists for memory and speed: one
 * libcurl transfer costs ≈ 12 KB (its easy handle alone 5.4 KB), while a call
 * here costs a few hundred bytes and reads into one buffer shared by the
 * worker (bench/README.md, "Memory per stream"). libcurl stays for https,
 * proxies and HTTP/2.
 *
 * A provider named by a host name ("http://vllm:8000/v1") is resolved on the
 * loop with libevent's evdns, through the worker's h1_resolver (name servers,
 * search domains and options from a resolv.conf), when a new connection is
 * needed and the last answer is older than its TTL (held 1 s to 300 s); a name
 * the hosts file lists takes its address from there, as read at start; kept-alive connections are
 * reused without a lookup. Calls waiting for a name share one lookup; A records are used, AAAA when
 * the name has none. Resolving counts against the connect timeout ("Resolving timed out after N
 * milliseconds", CURLE_OPERATION_TIMEDOUT); a name that does not resolve ends
 * the call with CURLE_COULDNT_RESOLVE_HOST and libcurl's words ("Could not
 * resolve host: NAME").
 *
 * An origin is one provider address on one worker: its idle keep-alive
 * connections (reused newest first, closed when the provider closes them or
 * when more than max_idle wait) and the calls in progress. A call is one POST:
 * connect (or reuse), write the request, parse the answer with http-parser and
 * hand the decoded body to on_data as it arrives.
 *
 * Failures are reported with libcurl's CURLcode numbers, so that callers treat
 * both clients alike: CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT (connect
 * timeout), CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE
 * (closed mid-body), CURLE_WEIRD_SERVER_REPLY (not HTTP/1.x), CURLE_WRITE_ERROR (the
 * owner aborted), CURLE_OUT_OF_MEMORY, CURLE_COULDNT_RESOLVE_HOST. A reused connection that fails
 * before any byte of the answer (the provider closed it as we sent) is retried once on a new
 * connection, as libcurl does.
 *
 * Callback rule: unlike libcurl, every function below may be called from inside
 * on_data (the call notices when on_data returns). None may be called from
 * on_done, after which the call is freed. */
#ifndef CHATD_H1_H
#define CHATD_H1_H

#include <stddef.h>

struct event_base;
struct curl_slist;
struct h1_origin;
struct h1_call;
struct h1_resolver;

/* What on_data returns; the same meaning as provider.h's verdicts. */
enum h1_verdict { H1_GO_ON, H1_PAUSE, H1_ABORT };

struct h1_callbacks {
    /* Decoded body bytes. H1_PAUSE: the bytes were not used; they come again
     * after h1_resume. H1_ABORT ends the call with on_done(CURLE_WRITE_ERROR). */
    enum h1_verdict (*on_data)(void *owner, const char *data, size_t len);
    /* The call is over: code 0 = the answer ended normally, else a CURLcode and
     * err a one-line explanation. Called once, from the loop; in it the call may
     * be asked for its status and headers only; it is freed right after. */
    void (*on_done)(void *owner, int code, const char *err);
};

/* What h1_url_supported says of a URL. */
enum { H1_URL_NO, H1_URL_ADDRESS, H1_URL_NAME };

/* Whether h1 can serve url: "http://" + an IPv4 address, "[IPv6]" or
 * "localhost" (H1_URL_ADDRESS), or a host name (H1_URL_NAME: it needs a
 * resolver), an optional port, a path; no user name. H1_URL_NO otherwise. */
int h1_url_supported(const char *url);

/* A resolver for host names on base, set up from resolv_conf and hosts_file (paths;
 * the hosts file may be missing). NULL when resolv_conf cannot be used or out of
 * memory, why (why_len bytes) then says what is wrong. */
struct h1_resolver *h1_resolver_new(struct event_base *base, const char *resolv_conf,
                                    const char *hosts_file, char *why, size_t why_len);

/* Frees the resolver after every origin using it; the loop must not run after.
 * NULL is fine. */
void h1_resolver_free(struct h1_resolver *r);

/* An origin for url (h1_url_supported must hold) keeping up to max_idle idle
 * connections; dns (not owned, outliving the origin) resolves its host name,
 * NULL for an address. NULL when out of memory. */
struct h1_origin *h1_origin_new(struct event_base *base, const char *url, size_t max_idle,
                                struct h1_resolver *dns);

/* Closes the idle connections and frees the origin. No call may be in progress;
 * released calls still draining are closed. NULL is fine. */
void h1_origin_free(struct h1_origin *o);

/* Calls in progress on o (released ones included). */
size_t h1_origin_active(const struct h1_origin *o);

/* POSTs body (taken over: freed by h1) to the origin's URL with headers
 * ("Name: value" lines; a line "Name:" with nothing after the colon is skipped, as
 * libcurl does) plus Host, User-Agent and Content-Length. A new connection may
 * take connect_timeout_s to set up. Callbacks run later, from the loop, never
 * inside this call. NULL when out of memory (body freed too). */
struct h1_call *h1_start(struct h1_origin *o, const struct curl_slist *headers,
                         double connect_timeout_s, char *body, size_t len,
                         const struct h1_callbacks *cb, void *owner);

/* Ends the call now, closing its connection; no callback follows. */
void h1_cancel(struct h1_call *call);

/* The owner is gone, the answer not ended: it may finish within grace_ms (its
 * connection is then kept for reuse), or is closed then. No callback follows. */
void h1_release(struct h1_call *call, long grace_ms);

/* Receives again after on_data returned H1_PAUSE. on_data runs later, from the loop. */
void h1_resume(struct h1_call *call);

/* The answer's status, 0 before its head arrived. */
long h1_status(const struct h1_call *call);

/* The answer's Content-Type or Retry-After value, NULL when it had none (or
 * before its head arrived). Valid until the call ends. */
const char *h1_content_type(const struct h1_call *call);
const char *h1_retry_after(const struct h1_call *call);

#endif
