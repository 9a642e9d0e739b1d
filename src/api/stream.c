/* stream: see stream.h. */
#include "api/stream.h"
#include "api/stream_internal.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/middleware.h"
#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "services/openai.h"
#include "services/provider.h"

#define MAX_UPSTREAM_EVENT (1 << 20)  /* one provider event larger than this is an error */
#define MAX_ERROR_BODY     8192       /* bytes of a provider error body kept for the summary */
#define MAX_JSON_ANSWER    (16 << 20) /* a whole non-streamed answer */

static const struct provider_callbacks provider_cbs;
static const struct http_owner_ops owner_ops;

/* ---- states ----------------------------------------------------------------------- */

static const char *const state_names[] = { "admitting", "waiting", "backoff", "streaming",
                                           "finished" };

void stream_set_state(struct chat_stream *s, enum stream_state to)
{
    static const bool legal[5][5] = {
        [ST_ADMITTING] = { [ST_WAITING] = true, [ST_FINISHED] = true },
        [ST_WAITING] = { [ST_BACKOFF] = true, [ST_STREAMING] = true, [ST_FINISHED] = true },
        [ST_BACKOFF] = { [ST_WAITING] = true, [ST_FINISHED] = true },
        [ST_STREAMING] = { [ST_FINISHED] = true },
    };
    assert(legal[s->state][to]);
    log_event(LOG_DEBUG, "stream_state", s->cid, LOG_STR("from", state_names[s->state]),
              LOG_STR("to", state_names[to]));
    s->state = to;
}

int64_t stream_elapsed_ms(const struct chat_stream *s)
{
    return (clock_mono_us() - s->start_us) / 1000;
}

/* ---- output ----------------------------------------------------------------------- */

size_t stream_headers(const struct chat_stream *s, struct http_header *h, size_t n)
{
    n = mw_common_headers(s->cfg, s->cid, s->cors_origin, h, n);
    for (size_t i = 0; i < s->n_rl; i++)
        h[n++] = (struct http_header){ s->rl[i].name, s->rl[i].value };
    return n;
}

void stream_respond_json(struct chat_stream *s, int status, const char *retry_after,
                         const char *body, size_t len)
{
    struct http_header h[STREAM_MAX_HEADERS];
    size_t n = 0;
    h[n++] = (struct http_header){ "Content-Type", "application/json" };
    h[n++] = (struct http_header){ "Cache-Control", "no-store" };
    if (retry_after != NULL)
        h[n++] = (struct http_header){ "Retry-After", retry_after };
    n = stream_headers(s, h, n);
    http_respond(s->conn, status, h, n, body, len);
}

void stream_send_headers(struct chat_stream *s)
{
    assert(!s->headers_sent && s->conn != NULL);
    struct http_header h[STREAM_MAX_HEADERS];
    size_t n = 0;
    h[n++] = (struct http_header){ "Content-Type", "text/event-stream" };
    h[n++] = (struct http_header){ "Cache-Control", "no-cache" };
    h[n++] = (struct http_header){ "X-Accel-Buffering", "no" };
    n = stream_headers(s, h, n);
    http_stream_begin(s->conn, 200, h, n);
    s->headers_sent = true;
}

/* Writes what was encoded into the worker's scratch buffer during this callback. */
void stream_flush(struct chat_stream *s)
{
    struct buf *out = &s->w->scratch;
    if (out->len == 0)
        return;
    assert(s->state != ST_FINISHED);
    if (s->conn != NULL) {
        if (!s->headers_sent)
            stream_send_headers(s);
        http_stream_write(s->conn, out->p, out->len);
    }
    out->len = 0;
}

/* Encoders append an event whole or not at all: one that ran out of memory half
 * way (README, Design: allocation failures) has what it appended taken back
 * here. Returns true when it had. */
static bool taken_back(struct chat_stream *s, size_t mark, size_t held_mark)
{
    struct buf *out = &s->w->scratch;
    if (!out->failed && !s->held.failed)
        return false;
    out->failed = s->held.failed = false;
    out->len = mark;
    if (out->p != NULL)
        out->p[mark] = '\0';
    s->held.len = held_mark;
    return true;
}

/* Sends the final event just encoded after mark and ends the response; when it
 * could not be encoded the response is cut instead (no end marker), so the
 * client sees a stream cut short, never half an event. False then. */
static bool end_stream(struct chat_stream *s, size_t mark, size_t held_mark)
{
    bool cut = taken_back(s, mark, held_mark);
    stream_flush(s);
    if (cut)
        http_stream_abort(s->conn);
    else
        http_stream_end(s->conn);
    return !cut;
}

/* ---- the one way out ------------------------------------------------------------- */

static void free_stream(struct chat_stream *s)
{
    config_unref(s->cfg);
    sse_parser_free(&s->sse);
    json_decref(s->root);
    buf_free(&s->body);
    buf_free(&s->held);
    free(s->pending_what);
    if (s->brs != s->brs_inline)
        free(s->brs);
    free(s);
}

void stream_finish(struct chat_stream *s, enum outcome o, int status)
{
    struct worker *w = s->w;
    if (s->state != ST_STREAMING && o != OUTCOME_COMPLETED)
        router_abandon(&s->router); /* no verdict on this attempt: free a held probe */
    stream_set_state(s, ST_FINISHED);
    event_del(&s->timer);
    event_del(&s->retry_ev);
    if (s->call != NULL) {
        if (s->done_marker)
            provider_release(s->call); /* let the response end so the connection is reused */
        else
            provider_cancel(s->call); /* closes the connection: the provider stops */
        s->call = NULL;
    }
    if (s->conn != NULL)
        http_conn_set_owner(s->conn, NULL, NULL);
    s->conn = NULL;
    if (s->admission != NULL)
        limits_cancel(w->limits, s->admission);
    limits_finish(w->limits, s->ticket, s->has_usage ? (long)s->total_tokens : -1, clock_mono_us());
    if (s->key_counted)
        metrics_key_streams(w->metrics, s->key->name, -1);
    double secs = (double)(clock_mono_us() - s->start_us) / 1e6;
    metrics_stream_done(w->m, o, secs);
    metrics_request(w->m, s->enc->route, status);
    if (s->has_usage)
        metrics_tokens(w->m, s->prompt_tokens, s->completion_tokens);
    metrics_stream_release(w->metrics);
    mw_log_complete(s->cid, status, o, s->start_us, (int64_t)s->content_events);
    list_remove(&s->link);
    free_stream(s);
}

static void finish_completed(struct chat_stream *s)
{
    int status = 200;
    if (s->state == ST_WAITING)
        walk_succeeded(s); /* an answer without a first token (JSON, or empty) */
    enum outcome o = OUTCOME_COMPLETED;
    if (s->conn != NULL && s->enc->sse) {
        size_t mark = s->w->scratch.len, held_mark = s->held.len;
        s->enc->completed(s, &s->w->scratch);
        if (!end_stream(s, mark, held_mark))
            o = OUTCOME_ERROR;
    } else if (s->conn != NULL) {
        s->enc->completed(s, &s->w->scratch);
        s->w->scratch.len = 0;
    }
    stream_finish(s, o, status);
}

void stream_finish_error(struct chat_stream *s, enum error_code code, const char *what,
                         const char *why)
{
    char detail[1024];
    error_detail(detail, sizeof detail, code, what, why, NULL);
    walk_name_provider(s, detail, sizeof detail);
    mw_log_error(s->cid, code, detail);
    if (code != ERR_TIMEOUT && code != ERR_STREAM_SHUTTING_DOWN)
        metrics_upstream_error(s->w->m, error_code_name(code));
    bool timeout = code == ERR_TIMEOUT || code == ERR_UPSTREAM_TIMEOUT;
    enum outcome o = timeout ? OUTCOME_TIMEOUT : OUTCOME_ERROR;
    int status = 200;
    if (s->conn != NULL && !s->headers_sent) {
        s->w->scratch.len = 0;
        status = s->enc->error_answer(s, code, detail);
    } else if (s->conn != NULL) {
        if (code == ERR_TIMEOUT)
            code = ERR_UPSTREAM_TIMEOUT; /* headers already went out: the event says it */
        size_t mark = s->w->scratch.len, held_mark = s->held.len;
        s->enc->error_event(s, code, detail, &s->w->scratch);
        end_stream(s, mark, held_mark);
    }
    stream_finish(s, o, status);
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
    stream_set_state(s, ST_STREAMING);
    metrics_first_token(s->w->m, (double)(clock_mono_us() - s->start_us) / 1e6);
    walk_succeeded(s);
    event_add(&s->timer, s->timeout_tv); /* from now on: the idle timeout */
}

static void take_usage(struct chat_stream *s, const struct openai_chunk *c)
{
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
        openai_error_summary(ev->data, ev->data_len, s->pc->api_key, s->message, s->message_len,
                             summary, sizeof summary);
        snprintf(what, sizeof what, "The model provider reported an error in the stream%s%s",
                 summary[0] ? ": " : "", summary);
        return fail_later(s, ERR_UPSTREAM_ERROR, what);
    }
    take_usage(s, &c);
    size_t mark = s->w->scratch.len, held_mark = s->held.len;
    int began = s->enc->event(s, ev, &c, &s->w->scratch);
    if (taken_back(s, mark, held_mark))
        return fail_later(s, ERR_INTERNAL, NULL);
    if (began == 1 && s->state == ST_WAITING)
        first_token(s);
    return 0;
}

static enum provider_verdict check_status(struct chat_stream *s)
{
    s->status_checked = true;
    s->http_status = provider_status(s->call);
    if (!stream_is_2xx(s->http_status))
        return PROVIDER_GO_ON; /* collect the error body */
    const char *ct = provider_content_type(s->call);
    bool ok = s->enc->sse ? ct == NULL || strncasecmp(ct, "text/event-stream", 17) == 0
                          : ct == NULL || strncasecmp(ct, "application/json", 16) == 0;
    if (!ok) {
        char what[160];
        snprintf(what, sizeof what,
                 "The model provider answered with Content-Type \"%.60s\" instead of %s", ct,
                 s->enc->sse ? "an event stream" : "JSON");
        fail_later(s, ERR_UPSTREAM_PROTOCOL_ERROR, what);
        return PROVIDER_ABORT;
    }
    return PROVIDER_GO_ON;
}

/* Keeps a non-2xx body (for the error summary) or a whole JSON answer. */
static enum provider_verdict keep_body(struct chat_stream *s, const char *data, size_t len)
{
    size_t cap = stream_is_2xx(s->http_status) ? MAX_JSON_ANSWER : MAX_ERROR_BODY;
    size_t room = cap - s->body.len;
    if (stream_is_2xx(s->http_status) && len > room) {
        fail_later(s, ERR_UPSTREAM_PROTOCOL_ERROR, "The model provider's answer is over 16 MiB");
        return PROVIDER_ABORT;
    }
    if (buf_append(&s->body, data, len < room ? len : room) != 0) {
        fail_later(s, ERR_INTERNAL, NULL);
        return PROVIDER_ABORT;
    }
    s->last_progress_us = clock_mono_us();
    return PROVIDER_GO_ON;
}

static enum provider_verdict on_data(void *owner, const char *data, size_t len)
{
    struct chat_stream *s = owner;
    if (!s->status_checked && check_status(s) == PROVIDER_ABORT)
        return PROVIDER_ABORT;
    if (!stream_is_2xx(s->http_status) || !s->enc->sse)
        return keep_body(s, data, len);
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
    if (s->state != ST_WAITING)
        stream_flush(s); /* before the first token, role-only events wait */
    if (rc == 1) {       /* [DONE] */
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

/* What the end of a 2xx answer means: 0 completed, else the failure. */
static int describe_end(struct chat_stream *s, struct walk_failure *f)
{
    f->what = f->why = NULL;
    if (!s->enc->sse)
        return 0;
    int rc = sse_parser_finish(&s->sse, on_sse_event, s);
    if (s->state != ST_WAITING)
        stream_flush(s);
    if (rc == 1 || s->done_marker || s->finish_reason[0] != '\0')
        return 0;
    if (s->has_pending) {
        f->code = s->pending;
        f->what = s->pending_what;
    } else if (s->sse.events == 0) {
        f->code = ERR_UPSTREAM_PROTOCOL_ERROR;
        f->what = "The model provider's answer held no Server-Sent Events";
    } else {
        f->code = ERR_UPSTREAM_INTERRUPTED;
    }
    return -1;
}

static void on_done(void *owner, int code, const char *errbuf)
{
    struct chat_stream *s = owner;
    s->retry_after_ms = provider_retry_after_ms(s->call);
    if (!s->status_checked && code == CURLE_OK)
        s->http_status = provider_status(s->call);
    s->call = NULL; /* freed by the provider after this call */
    struct walk_failure f;
    if (s->has_pending) {
        f.code = s->pending;
        f.what = s->pending_what;
        f.why = NULL;
    } else if (code != CURLE_OK) {
        walk_describe_curl(code, errbuf, s->status_checked, &f);
    } else if (!stream_is_2xx(s->http_status)) {
        walk_describe_status(s, &f);
    } else if (describe_end(s, &f) == 0) {
        finish_completed(s);
        return;
    }
    if (s->state == ST_WAITING && walk_retry(s))
        return;
    stream_finish_error(s, f.code, f.what, f.why);
}

static const struct provider_callbacks provider_cbs = { .on_data = on_data, .on_done = on_done };

/* Resets what one attempt learned and sends it. */
void stream_start_attempt(struct chat_stream *s)
{
    assert(s->state == ST_WAITING && s->call == NULL);
    sse_parser_free(&s->sse);
    sse_parser_init(&s->sse, MAX_UPSTREAM_EVENT);
    s->body.len = 0;
    s->held.len = 0;
    s->status_checked = s->done_marker = s->has_pending = s->has_usage = false;
    s->http_status = 0;
    s->retry_after_ms = -1;
    s->finish_reason[0] = '\0';
    free(s->pending_what);
    s->pending_what = NULL;
    s->attempt++;
    struct buf body = { 0 };
    if (s->enc->request_body(s, s->target_model, &body) == 0)
        s->call = provider_start(s->w->provider, s->pc, s->cfg->connect_timeout_s, body.p, body.len,
                                 &provider_cbs, s);
    else
        buf_free(&body);
    if (s->call == NULL)
        stream_finish_error(s, ERR_INTERNAL, NULL, NULL);
}

/* ---- timer and client events ------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct chat_stream *s = arg;
    if (s->state != ST_STREAMING) {
        if (s->call != NULL) /* no answer in time: the attempt failed; past the deadline */
            walk_timed_out(s);
        stream_finish_error(s, ERR_TIMEOUT, NULL, NULL);
        return;
    }
    int64_t idle_us = clock_mono_us() - s->last_progress_us;
    int64_t limit_us = (int64_t)(s->cfg->timeout_s * 1e6);
    if (s->paused || idle_us < limit_us) {
        /* Progress since the timer was set (checked here rather than re-arming
         * the timer on every chunk), or held back by our own client: wait on. */
        if (s->paused)
            s->last_progress_us = clock_mono_us();
        int64_t left = s->paused ? limit_us : limit_us - idle_us;
        struct timeval tv = clock_timeval((double)left / 1e6);
        event_add(&s->timer, &tv);
        return;
    }
    stream_finish_error(s, ERR_UPSTREAM_TIMEOUT, NULL, NULL);
}

static void on_client_gone(void *owner)
{
    struct chat_stream *s = owner;
    s->conn = NULL;
    metrics_client_disconnect(s->w->m);
    log_event(LOG_INFO, "client_disconnected", s->cid, LOG_INT("elapsed_ms", stream_elapsed_ms(s)),
              LOG_INT("sequence", (long long)s->sequence));
    stream_finish(s, OUTCOME_CLIENT_DISCONNECTED, s->headers_sent ? 200 : 499);
}

static void on_drained(void *owner)
{
    struct chat_stream *s = owner;
    if (!s->paused || s->call == NULL)
        return;
    s->paused = false;
    log_event(LOG_DEBUG, "upstream_resumed", s->cid, LOG_INT("elapsed_ms", stream_elapsed_ms(s)));
    provider_resume(s->call); /* may run on_data and even finish the stream */
}

static const struct http_owner_ops owner_ops = { .on_client_gone = on_client_gone,
                                                 .on_drained = on_drained };

void stream_start(struct worker *w, struct http_conn *c, struct http_request *req,
                  const struct key_conf *key, const struct stream_encoder *enc, void *root,
                  const char *model, const struct stream_input *in)
{
    if (metrics_stream_acquire(w->metrics, w->cfg->max_streams) != 0) {
        json_decref(root);
        struct http_header h[1] = { { "Retry-After", "1" } };
        mw_respond_error(w, c, req, enc->route, ERR_OVERLOADED, NULL, h, 1);
        return;
    }
    struct chat_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(root);
        metrics_stream_release(w->metrics);
        mw_respond_error(w, c, req, enc->route, ERR_INTERNAL, NULL, NULL, 0);
        return;
    }
    *s = (struct chat_stream){
        .w = w, .enc = enc, .conn = c, .root = root, .model = model, .state = ST_ADMITTING
    };
    memcpy(s->cid, req->cid, sizeof s->cid);
    s->cors_origin = mw_cors_origin(w->cfg, req);
    s->start_us = req->start_us;
    s->last_progress_us = clock_mono_us();
    s->cfg = config_ref(w->cfg);
    s->timeout_tv = w->timeout_tv;
    s->key = key;
    s->mc = config_find_model(s->cfg, model);
    s->message = in->message;
    s->message_len = in->message_len;
    s->max_tokens = in->max_tokens;
    s->chat_history = in->chat_history;
    s->client_usage = in->client_usage;
    evtimer_assign(&s->timer, w->base, on_timer, s);
    evtimer_assign(&s->retry_ev, w->base, walk_on_retry_timer, s);
    list_insert_head(&w->streams, &s->link);
    http_conn_set_owner(c, &owner_ops, s);
    event_add(&s->timer, w->timeout_tv);
    walk_admit(s);
}

void stream_abort_all(struct worker *w, enum error_code code)
{
    while (!list_empty(&w->streams))
        stream_finish_error(list_entry(w->streams.next, struct chat_stream, link), code, NULL,
                            NULL);
}
