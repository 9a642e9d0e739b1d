/* chat: see chat.h.
 *
 * Five events drive a stream: upstream bytes (on_data), upstream end (on_done),
 * client gone (on_client_gone), client drained (on_drained) and the timer. All
 * of them end in finish(), which runs once: it writes the final event when the
 * client is still there, logs response_complete, lets go of the provider
 * transfer and frees the stream. */
#include "api/chat.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/middleware.h"
#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "models/chat_request.h"
#include "models/stream_event.h"
#include "services/openai.h"
#include "services/provider.h"
#include "services/sse.h"

#define MAX_UPSTREAM_EVENT (1 << 20) /* one provider event larger than this is an error */
#define MAX_ERROR_BODY     8192      /* bytes of a provider error body kept for the summary */

enum state { ST_WAITING_FIRST_TOKEN, ST_STREAMING, ST_FINISHED };

struct chat_stream {
    struct worker *w;
    struct chat_stream *prev, *next;
    struct http_conn *conn;     /* NULL once the client is gone */
    struct provider_call *call; /* NULL once the transfer ended */
    enum state state;
    char cid[40];
    const char *cors_origin;
    struct chat_request req; /* keeps the message for the error summary */
    int64_t start_us, last_progress_us;
    struct event timer; /* first-token timeout, then the idle timeout */
    struct sse_parser sse;
    uint64_t sequence; /* of the next event */
    bool headers_sent, paused, status_checked, done_marker;
    long http_status;
    struct buf errbody;      /* a non-2xx response's body */
    enum error_code pending; /* an error found inside a curl callback */
    bool has_pending;
    char *pending_what; /* its explanation, or NULL (heap: errors are rare) */
    char finish_reason[32];
    bool has_usage;
    long long prompt_tokens, completion_tokens, total_tokens;
    size_t content_events;
};

static const struct provider_callbacks provider_cbs;
static const struct http_owner_ops owner_ops;

/* ---- output ----------------------------------------------------------------------- */

static void send_headers(struct chat_stream *s)
{
    struct http_header h[MW_MAX_HEADERS];
    size_t n = 0;
    h[n++] = (struct http_header){ "Content-Type", "text/event-stream" };
    h[n++] = (struct http_header){ "Cache-Control", "no-cache" };
    h[n++] = (struct http_header){ "X-Accel-Buffering", "no" };
    n = mw_common_headers(s->w->cfg, s->cid, s->cors_origin, h, n);
    http_stream_begin(s->conn, 200, h, n);
    s->headers_sent = true;
}

/* Writes the events encoded so far in the worker's scratch buffer. */
static void flush_events(struct chat_stream *s)
{
    struct buf *out = &s->w->scratch;
    if (out->len == 0)
        return;
    if (s->conn != NULL) {
        if (!s->headers_sent)
            send_headers(s);
        http_stream_write(s->conn, out->p, out->len);
    }
    out->len = 0;
}

/* ---- the one way out ------------------------------------------------------------- */

static void unlink_stream(struct chat_stream *s)
{
    struct worker *w = s->w;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
}

static void finish(struct chat_stream *s, enum outcome o, int status)
{
    struct worker *w = s->w;
    s->state = ST_FINISHED;
    event_del(&s->timer);
    if (s->call != NULL) {
        if (s->done_marker)
            provider_release(s->call); /* let the response end so the connection is reused */
        else
            provider_cancel(s->call); /* closes the connection: the provider stops */
        s->call = NULL;
    }
    if (s->conn != NULL)
        http_conn_set_owner(s->conn, NULL, NULL);
    double secs = (double)(clock_mono_us() - s->start_us) / 1e6;
    metrics_stream_done(w->m, o, secs);
    metrics_request(w->m, ROUTE_CHAT, status);
    if (s->has_usage)
        metrics_tokens(w->m, s->prompt_tokens, s->completion_tokens);
    metrics_stream_release(w->metrics);
    mw_log_complete(s->cid, status, o, s->start_us, (int64_t)s->content_events);
    unlink_stream(s);
    sse_parser_free(&s->sse);
    chat_request_free(&s->req);
    buf_free(&s->errbody);
    free(s->pending_what);
    free(s);
}

static int64_t elapsed_ms(const struct chat_stream *s)
{
    return (clock_mono_us() - s->start_us) / 1000;
}

static void finish_completed(struct chat_stream *s)
{
    struct stream_final f = { .status = "completed",
                              .finish_reason = s->finish_reason[0] ? s->finish_reason : NULL,
                              .has_usage = s->has_usage,
                              .prompt_tokens = s->prompt_tokens,
                              .completion_tokens = s->completion_tokens,
                              .total_tokens = s->total_tokens,
                              .duration_ms = elapsed_ms(s) };
    if (s->conn != NULL) {
        stream_event_final(&s->w->scratch, s->sequence++, s->cid, &f);
        flush_events(s);
        http_stream_end(s->conn);
    }
    finish(s, OUTCOME_COMPLETED, 200);
}

/* Ends the stream with an error: a 504 body when nothing was sent yet and the
 * provider never produced a first token, else a final event. */
static void finish_error(struct chat_stream *s, enum error_code code, const char *what,
                         const char *why)
{
    char detail[1024];
    error_detail(detail, sizeof detail, code, what, why, NULL);
    mw_log_error(s->cid, code, detail);
    if (code != ERR_TIMEOUT && code != ERR_STREAM_SHUTTING_DOWN)
        metrics_upstream_error(s->w->m, code);
    bool timeout = code == ERR_TIMEOUT || code == ERR_UPSTREAM_TIMEOUT;
    enum outcome o = timeout ? OUTCOME_TIMEOUT : OUTCOME_ERROR;
    if (code == ERR_TIMEOUT && !s->headers_sent && s->conn != NULL) {
        char body[2048];
        size_t len = error_json_body(body, sizeof body, code, detail, s->cid);
        struct http_header h[MW_MAX_HEADERS + 2];
        size_t n = 0;
        h[n++] = (struct http_header){ "Content-Type", "application/json" };
        h[n++] = (struct http_header){ "Cache-Control", "no-store" };
        n = mw_common_headers(s->w->cfg, s->cid, s->cors_origin, h, n);
        http_respond(s->conn, 504, h, n, body, len);
        finish(s, o, 504);
        return;
    }
    if (code == ERR_TIMEOUT)
        code = ERR_UPSTREAM_TIMEOUT; /* headers already went out: the final event says it */
    struct stream_final f = { .status = timeout ? "timeout" : "error",
                              .error = code,
                              .detail = detail,
                              .duration_ms = elapsed_ms(s) };
    if (s->conn != NULL) {
        stream_event_final(&s->w->scratch, s->sequence++, s->cid, &f);
        flush_events(s);
        http_stream_end(s->conn);
    }
    finish(s, o, 200);
}

/* ---- upstream bytes ----------------------------------------------------------------- */

/* An error found inside a curl callback: remembered, reported from on_done. */
static int fail_later(struct chat_stream *s, enum error_code code, const char *what)
{
    if (!s->has_pending) {
        s->has_pending = true;
        s->pending = code;
        s->pending_what = what ? strdup(what) : NULL;
    }
    return -1;
}

static void first_token(struct chat_stream *s)
{
    s->state = ST_STREAMING;
    metrics_first_token(s->w->m, (double)(clock_mono_us() - s->start_us) / 1e6);
    event_add(&s->timer, s->w->timeout_tv); /* from now on: the idle timeout */
}

static void take_chunk(struct chat_stream *s, const struct openai_chunk *c)
{
    if (c->content_json != NULL) {
        if (s->state == ST_WAITING_FIRST_TOKEN)
            first_token(s);
        stream_event_content(&s->w->scratch, c->content_json, c->content_json_len, s->sequence++,
                             s->cid);
        s->content_events++;
        log_event(LOG_DEBUG, "chunk_sent", s->cid, LOG_INT("sequence", s->sequence - 1),
                  LOG_INT("elapsed_ms", elapsed_ms(s)));
    }
    if (c->finish_reason[0] != '\0')
        snprintf(s->finish_reason, sizeof s->finish_reason, "%s", c->finish_reason);
    if (c->has_usage) {
        s->has_usage = true;
        s->prompt_tokens = c->prompt_tokens;
        s->completion_tokens = c->completion_tokens;
        s->total_tokens = c->total_tokens;
    }
}

static int on_sse_event(void *ctx, const struct sse_event *ev)
{
    struct chat_stream *s = ctx;
    if (ev->type[0] != '\0' && strcmp(ev->type, "message") != 0 && strcmp(ev->type, "error") != 0)
        return 0; /* an event type OpenAI-compatible streams do not use */
    if (strcmp(ev->data, "[DONE]") == 0) {
        s->done_marker = true;
        return 1; /* nothing after [DONE] matters */
    }
    struct openai_chunk c;
    if (openai_chunk_parse(ev->data, ev->data_len, &c) != 0)
        return fail_later(s, ERR_UPSTREAM_PROTOCOL_ERROR,
                          "The model provider sent an event that is not a JSON chunk");
    if (c.is_error) {
        char summary[240], what[320];
        openai_error_summary(ev->data, ev->data_len, s->w->cfg->api_key, s->req.message,
                             s->req.message_len, summary, sizeof summary);
        snprintf(what, sizeof what, "The model provider reported an error in the stream%s%s",
                 summary[0] ? ": " : "", summary);
        return fail_later(s, ERR_UPSTREAM_ERROR, what);
    }
    take_chunk(s, &c);
    return 0;
}

static bool is_event_stream(const char *ct)
{
    return ct == NULL || strncasecmp(ct, "text/event-stream", 17) == 0;
}

static enum provider_verdict check_status(struct chat_stream *s)
{
    s->status_checked = true;
    s->http_status = provider_status(s->call);
    if (s->http_status < 200 || s->http_status > 299)
        return PROVIDER_GO_ON; /* collect the error body */
    const char *ct = provider_content_type(s->call);
    if (!is_event_stream(ct)) {
        char what[160];
        snprintf(what, sizeof what,
                 "The model provider answered with Content-Type \"%.60s\" "
                 "instead of an event stream",
                 ct);
        fail_later(s, ERR_UPSTREAM_PROTOCOL_ERROR, what);
        return PROVIDER_ABORT;
    }
    return PROVIDER_GO_ON;
}

static enum provider_verdict on_data(void *owner, const char *data, size_t len)
{
    struct chat_stream *s = owner;
    if (!s->status_checked && check_status(s) == PROVIDER_ABORT)
        return PROVIDER_ABORT;
    if (s->http_status < 200 || s->http_status > 299) {
        size_t room = MAX_ERROR_BODY - s->errbody.len;
        buf_append(&s->errbody, data, len < room ? len : room);
        return PROVIDER_GO_ON;
    }
    if (s->conn != NULL && http_unsent(s->conn) > HTTP_HIGH_WATER) {
        /* The client reads slower than the provider writes: hold the provider
         * until the client has caught up, so memory stays bounded. */
        s->paused = true;
        log_event(LOG_DEBUG, "upstream_paused", s->cid,
                  LOG_INT("unsent_bytes", (long long)http_unsent(s->conn)));
        http_notify_drained(s->conn);
        return PROVIDER_PAUSE;
    }
    s->last_progress_us = clock_mono_us();
    int rc = sse_parser_feed(&s->sse, data, len, on_sse_event, s);
    flush_events(s);
    if (rc == 1) { /* [DONE] */
        finish_completed(s);
        return PROVIDER_GO_ON;
    }
    if (rc == -E2BIG)
        fail_later(s, ERR_UPSTREAM_PROTOCOL_ERROR,
                   "The model provider sent an event larger than 1 MiB");
    else if (rc == -ENOMEM)
        fail_later(s, ERR_INTERNAL, NULL);
    return rc == 0 ? PROVIDER_GO_ON : PROVIDER_ABORT;
}

/* ---- upstream end -------------------------------------------------------------------- */

static enum error_code status_error(long status)
{
    if (status == 401 || status == 403)
        return ERR_UPSTREAM_AUTH_FAILED;
    if (status == 429)
        return ERR_UPSTREAM_RATE_LIMITED;
    if (status == 404)
        return ERR_UPSTREAM_NOT_FOUND;
    if (status >= 400 && status < 500)
        return ERR_UPSTREAM_BAD_REQUEST;
    return ERR_UPSTREAM_ERROR;
}

/* A non-2xx answer: name the status, the Retry-After and the provider's words. */
static void finish_status(struct chat_stream *s, long retry_after)
{
    enum error_code code = status_error(s->http_status);
    char summary[240], what[200], why[400];
    openai_error_summary(s->errbody.p ? s->errbody.p : "", s->errbody.len, s->w->cfg->api_key,
                         s->req.message, s->req.message_len, summary, sizeof summary);
    size_t n = (size_t)snprintf(what, sizeof what,
                                "The model provider refused the request (HTTP %ld", s->http_status);
    if (retry_after > 0)
        n += (size_t)snprintf(what + n, sizeof what - n, ", Retry-After: %ld s", retry_after);
    snprintf(what + n, sizeof what - n, ")");
    size_t slen = strlen(summary);
    while (slen > 0 && summary[slen - 1] == '.')
        summary[--slen] = '\0';
    error_detail(why, sizeof why, code, "", NULL, ""); /* ". <why>. ." */
    why[strlen(why) - 3] = '\0';
    if (slen > 0)
        snprintf(why + strlen(why), sizeof why - strlen(why), " (the provider said: %s)", summary);
    finish_error(s, code, what, why + 2);
}

static enum error_code curl_error(int code, bool got_response)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT: return ERR_UPSTREAM_UNREACHABLE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return ERR_UPSTREAM_TLS;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_TOO_MANY_REDIRECTS: return ERR_UPSTREAM_PROTOCOL_ERROR;
    case CURLE_WRITE_ERROR:
    case CURLE_OUT_OF_MEMORY: return ERR_INTERNAL;
    default: return got_response ? ERR_UPSTREAM_INTERRUPTED : ERR_UPSTREAM_UNREACHABLE;
    }
}

static void on_done(void *owner, int code, const char *errbuf)
{
    struct chat_stream *s = owner;
    long retry_after = provider_retry_after(s->call);
    if (!s->status_checked && code == CURLE_OK)
        s->http_status = provider_status(s->call);
    s->call = NULL; /* freed by the provider after this call */
    if (s->has_pending) {
        finish_error(s, s->pending, s->pending_what, NULL);
        return;
    }
    if (code != CURLE_OK) {
        char why[400];
        enum error_code e = curl_error(code, s->status_checked);
        snprintf(why, sizeof why, "%s (%s)",
                 e == ERR_UPSTREAM_INTERRUPTED ? "The connection closed or failed before the "
                                                 "stream's end marker"
                                               : "The connection failed",
                 errbuf[0] ? errbuf : curl_easy_strerror((CURLcode)code));
        finish_error(s, e, NULL, e == ERR_UPSTREAM_TLS ? NULL : why);
        return;
    }
    if (s->http_status < 200 || s->http_status > 299) {
        finish_status(s, retry_after);
        return;
    }
    int rc = sse_parser_finish(&s->sse, on_sse_event, s);
    flush_events(s);
    if (rc == 1 || s->done_marker || s->finish_reason[0] != '\0')
        finish_completed(s);
    else if (s->has_pending)
        finish_error(s, s->pending, s->pending_what, NULL);
    else if (s->sse.events == 0)
        finish_error(s, ERR_UPSTREAM_PROTOCOL_ERROR,
                     "The model provider's answer held no Server-Sent Events", NULL);
    else
        finish_error(s, ERR_UPSTREAM_INTERRUPTED, NULL, NULL);
}

static const struct provider_callbacks provider_cbs = { .on_data = on_data, .on_done = on_done };

/* ---- timer and client events ------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct chat_stream *s = arg;
    if (s->state == ST_WAITING_FIRST_TOKEN) {
        finish_error(s, ERR_TIMEOUT, NULL, NULL);
        return;
    }
    int64_t idle_us = clock_mono_us() - s->last_progress_us;
    int64_t limit_us = (int64_t)(s->w->cfg->timeout_s * 1e6);
    if (s->paused || idle_us < limit_us) {
        /* Progress since the timer was set (checked here rather than re-arming
         * the timer on every chunk), or held back by our own client: wait on. */
        if (s->paused)
            s->last_progress_us = clock_mono_us();
        int64_t left = s->paused ? limit_us : limit_us - idle_us;
        struct timeval tv = { (time_t)(left / 1000000), (suseconds_t)(left % 1000000) };
        event_add(&s->timer, &tv);
        return;
    }
    finish_error(s, ERR_UPSTREAM_TIMEOUT, NULL, NULL);
}

static void on_client_gone(void *owner)
{
    struct chat_stream *s = owner;
    s->conn = NULL;
    metrics_client_disconnect(s->w->m);
    log_event(LOG_INFO, "client_disconnected", s->cid, LOG_INT("elapsed_ms", elapsed_ms(s)),
              LOG_INT("sequence", (long long)s->sequence));
    finish(s, OUTCOME_CLIENT_DISCONNECTED, s->headers_sent ? 200 : 499);
}

static void on_drained(void *owner)
{
    struct chat_stream *s = owner;
    if (!s->paused || s->call == NULL)
        return;
    s->paused = false;
    log_event(LOG_DEBUG, "upstream_resumed", s->cid, LOG_INT("elapsed_ms", elapsed_ms(s)));
    provider_resume(s->call); /* may run on_data and even finish the stream */
}

static const struct http_owner_ops owner_ops = { .on_client_gone = on_client_gone,
                                                 .on_drained = on_drained };

/* ---- start and drain ---------------------------------------------------------------- */

static void refuse(struct worker *w, struct http_conn *c, struct http_request *req,
                   enum error_code code, const char *detail)
{
    struct http_header h[1];
    size_t n = 0;
    if (code == ERR_OVERLOADED)
        h[n++] = (struct http_header){ "Retry-After", "1" };
    mw_respond_error(w, c, req, ROUTE_CHAT, code, detail, h, n);
}

static struct chat_stream *new_stream(struct worker *w, struct http_conn *c,
                                      struct http_request *req, struct chat_request *creq)
{
    struct chat_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->w = w;
    s->conn = c;
    s->req = *creq;
    memcpy(s->cid, req->cid, sizeof s->cid);
    s->cors_origin = mw_cors_origin(w->cfg, req);
    s->start_us = req->start_us;
    s->last_progress_us = clock_mono_us();
    sse_parser_init(&s->sse, MAX_UPSTREAM_EVENT);
    evtimer_assign(&s->timer, w->base, on_timer, s);
    return s;
}

static int start_upstream(struct chat_stream *s)
{
    struct buf body = { 0 };
    if (openai_request_body(&body, s->req.model, s->req.message, s->req.message_len,
                            s->req.max_tokens) != 0) {
        buf_free(&body);
        return -1;
    }
    s->call = provider_start(s->w->provider, body.p, body.len, &provider_cbs, s);
    return s->call ? 0 : -1;
}

void chat_start(struct worker *w, struct http_conn *c, struct http_request *req)
{
    struct chat_request creq;
    struct chat_request_error err;
    if (chat_request_parse(req->body, req->body_len, w->cfg, &creq, &err) != 0) {
        char detail[1024];
        error_detail(detail, sizeof detail, ERR_VALIDATION, err.what, err.why, err.todo);
        refuse(w, c, req, ERR_VALIDATION, detail);
        return;
    }
    if (metrics_stream_acquire(w->metrics, w->cfg->max_streams) != 0) {
        chat_request_free(&creq);
        refuse(w, c, req, ERR_OVERLOADED, NULL);
        return;
    }
    struct chat_stream *s = new_stream(w, c, req, &creq);
    if (s == NULL || start_upstream(s) != 0) {
        if (s != NULL) {
            sse_parser_free(&s->sse);
            free(s);
        }
        chat_request_free(&creq);
        metrics_stream_release(w->metrics);
        refuse(w, c, req, ERR_INTERNAL, NULL);
        return;
    }
    s->next = w->streams;
    if (w->streams != NULL)
        w->streams->prev = s;
    w->streams = s;
    http_conn_set_owner(c, &owner_ops, s);
    event_add(&s->timer, w->timeout_tv);
}

void chat_abort_all(struct worker *w, enum error_code code)
{
    while (w->streams != NULL)
        finish_error(w->streams, code, NULL, NULL);
}
