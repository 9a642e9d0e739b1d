/* provider: the OpenAI-compatible streaming client, on libcurl's multi-socket
 * API driven by the worker's own event_base (no threads, no blocking calls).
 * One struct provider per worker holds the CURLM, its connection cache (reused
 * across requests; HTTP/2 multiplexed where the provider offers it) and a pool
 * of easy handles. All curl glue lives in this file. */
#ifndef CHATD_PROVIDER_H
#define CHATD_PROVIDER_H

#include <stddef.h>

struct event_base;
struct config;
struct provider_conf;
struct provider;
struct provider_call;

/* What on_data returns. */
enum provider_verdict { PROVIDER_GO_ON, PROVIDER_PAUSE, PROVIDER_ABORT };

struct provider_callbacks {
    /* Response body bytes. PROVIDER_PAUSE means the bytes were NOT used: the
     * transfer holds until provider_resume and curl hands them over again;
     * PROVIDER_ABORT ends it with on_done(CURLE_WRITE_ERROR). */
    enum provider_verdict (*on_data)(void *owner, const char *data, size_t len);
    /* The transfer is over: curl_code is a CURLcode (0 = the body ended
     * normally), errbuf curl's explanation ("" when none). Called once; during it the
     * call may still be asked for its status, but it is freed right after. */
    void (*on_done)(void *owner, int curl_code, const char *errbuf);
};

/* Creates the client for a worker. NULL when out of memory. */
struct provider *provider_new(struct event_base *base, const struct config *cfg);

/* Cancels every transfer (no callbacks) and frees the client. NULL is fine. */
void provider_free(struct provider *p);

/* POSTs body (taken over: freed by the provider) to target's chat completions
 * URL with its key, headers and CA bundle; one connection attempt may take
 * connect_timeout_s. target must stay valid while the owner holds the call. The
 * callbacks run later, from the event loop, never from inside this call. NULL
 * when out of memory (body is freed then too). */
struct provider_call *provider_start(struct provider *p, const struct provider_conf *target,
                                     double connect_timeout_s, char *body, size_t len,
                                     const struct provider_callbacks *cb, void *owner);

/* Callback rule (curl's own): libcurl forbids multi-handle calls from inside its
 * callbacks, and on_data runs inside one. Every function below may be called
 * from on_data: what cannot run there is deferred to the loop (an event embedded
 * in the call, so deferring cannot fail). None may be called from on_done, after
 * which the call is freed. */

/* Ends the transfer (at once, or from the loop when inside on_data), closing its
 * connection so the provider stops generating; no callback follows. */
void provider_cancel(struct provider_call *call);

/* The owner is done but the response has not ended (bytes after [DONE]): let it
 * end by itself within a short time so the connection can be reused, without
 * callbacks; cancel it if it does not. */
void provider_release(struct provider_call *call);

/* Receives again after on_data returned PROVIDER_PAUSE (the only way to pause). on_data may run
 * inside this call, and when the transfer fails here on_done runs inside it too (from inside
 * on_data: later, from the loop). */
void provider_resume(struct provider_call *call);

/* The response's HTTP status, 0 before the headers arrived. */
long provider_status(struct provider_call *call);

/* The response's Content-Type, or NULL. Valid until the call ends. */
const char *provider_content_type(struct provider_call *call);

/* The Retry-After the provider sent, in milliseconds (seconds or an HTTP-date),
 * or -1 when it sent none or garbage. */
long provider_retry_after_ms(struct provider_call *call);

/* After a reload: the connection pools of providers that cfg no longer has are
 * closed once their last transfer has ended (at once when they have none). */
void provider_retire_missing(struct provider *p, const struct config *cfg);

/* Number of transfers in progress (orphans included). */
size_t provider_active(const struct provider *p);

#endif
