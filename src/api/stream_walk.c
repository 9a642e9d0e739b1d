/* stream_walk: how one request walks its model's targets — admission by the
 * key's limits, then the router's attempts (retries, Retry-After, fallback,
 * breakers) and the failure each attempt is reported as. See stream.h. */
#include "api/stream_internal.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/middleware.h"
#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "services/openai.h"

/* Ends the stream with an error: answered whole when nothing was sent yet, else
 * as the wire format's error event. */
/* Replaces every `from` in text (of capacity cap) by `to`, as far as room allows. */
static void replace_all(char *text, size_t cap, const char *from, const char *to)
{
    size_t flen = strlen(from), tlen = strlen(to);
    for (char *at = strstr(text, from); at != NULL; at = strstr(at + tlen, from)) {
        size_t rest = strlen(at + flen);
        if ((size_t)(at - text) + tlen + rest + 1 > cap)
            return;
        memmove(at + tlen, at + flen, rest + 1);
        memcpy(at, to, tlen);
    }
}

/* The catalogue's texts name the variables of the one provider configured by the
 * environment; with CHATD_CONFIG the operator must look at the provider's entry. */
void walk_name_provider(const struct chat_stream *s, char *detail, size_t cap)
{
    if (s->cfg->config_path == NULL || s->pc == NULL)
        return;
    char url[160], key[160];
    snprintf(url, sizeof url, "the base_url of provider \"%.60s\" in CHATD_CONFIG", s->pc->name);
    snprintf(key, sizeof key, "the key of provider \"%.60s\" (its api_key_env)", s->pc->name);
    replace_all(detail, cap, "OPENAI_BASE_URL", url);
    replace_all(detail, cap, "OPENAI_API_KEY", key);
    replace_all(detail, cap, "ALLOWED_MODELS", "the models of CHATD_CONFIG");
}

static void log_attempt(const struct chat_stream *s, const char *outcome, int64_t delay_ms)
{
    log_event(LOG_INFO, "upstream_attempt", s->cid, LOG_STR("provider", s->provider_name),
              LOG_STR("model", s->target_model), LOG_INT("attempt", s->attempt),
              LOG_STR("outcome", outcome), LOG_INT("status", s->http_status),
              LOG_INT("delay_ms", delay_ms));
}

/* The attempt answered: the router and the breaker hear of it. */
void walk_succeeded(struct chat_stream *s)
{
    int64_t now = clock_mono_us();
    router_next(&s->router, ROUTER_OK, -1, now);
    metrics_upstream_attempt(s->w->m, s->provider_name, router_outcome_name(ROUTER_OK));
    metrics_provider_first_token(s->w->m, s->provider_name, (double)(now - s->start_us) / 1e6);
    log_attempt(s, router_outcome_name(ROUTER_OK), 0);
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
    if (status >= 400 && status < 500 && status != 408)
        return ERR_UPSTREAM_BAD_REQUEST;
    return ERR_UPSTREAM_ERROR;
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

/* A non-2xx answer: name the status, the Retry-After and the provider's words. */
void walk_describe_status(struct chat_stream *s, struct walk_failure *f)
{
    f->code = status_error(s->http_status);
    char summary[240];
    openai_error_summary(s->body.p ? s->body.p : "", s->body.len, s->pc->api_key, s->message,
                         s->message_len, summary, sizeof summary);
    size_t n = (size_t)snprintf(f->what_buf, sizeof f->what_buf,
                                "The model provider refused the request (HTTP %ld", s->http_status);
    if (s->retry_after_ms >= 0)
        n += (size_t)snprintf(f->what_buf + n, sizeof f->what_buf - n, ", Retry-After: %ld s",
                              (s->retry_after_ms + 999) / 1000);
    snprintf(f->what_buf + n, sizeof f->what_buf - n, ")");
    size_t slen = strlen(summary);
    while (slen > 0 && summary[slen - 1] == '.')
        summary[--slen] = '\0';
    char why[400];
    error_detail(why, sizeof why, f->code, "", NULL, ""); /* ". <why>. ." */
    why[strlen(why) - 3] = '\0';
    int w = snprintf(f->why_buf, sizeof f->why_buf, "%s", why + 2);
    if (slen > 0 && w > 0 && (size_t)w < sizeof f->why_buf)
        snprintf(f->why_buf + w, sizeof f->why_buf - (size_t)w, " (the provider said: %.*s)",
                 (int)slen, summary);
    f->what = f->what_buf;
    f->why = f->why_buf;
}

void walk_describe_curl(int code, const char *errbuf, bool got_response, struct walk_failure *f)
{
    f->code = curl_error(code, got_response);
    snprintf(f->why_buf, sizeof f->why_buf, "%s (%s)",
             f->code == ERR_UPSTREAM_INTERRUPTED ? "The connection closed or failed before the "
                                                   "stream's end marker"
                                                 : "The connection failed",
             errbuf[0] ? errbuf : curl_easy_strerror((CURLcode)code));
    f->what = NULL;
    f->why = f->code == ERR_UPSTREAM_TLS ? NULL : f->why_buf;
}

/* ---- attempts ----------------------------------------------------------------------- */

void walk_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct chat_stream *s = arg;
    stream_set_state(s, ST_WAITING);
    stream_start_attempt(s);
}

static void set_target(struct chat_stream *s, size_t i)
{
    const struct target_conf *t = &s->mc->targets[i];
    s->pc = &s->cfg->providers[t->provider];
    s->provider_name = s->pc->name;
    s->target_model = t->model;
}

/* After a failure before the first token: schedules another attempt when the
 * routing rules allow one (the router decides). Returns true when one is
 * scheduled (or the stream already ended trying). */
bool walk_retry(struct chat_stream *s)
{
    long status = stream_is_2xx(s->http_status) ? 0 : s->http_status; /* a cut 2xx: as no answer */
    enum router_outcome o = router_classify(status, s->retry_after_ms);
    const char *from = s->provider_name;
    struct router_step step = router_next(&s->router, o, s->retry_after_ms, clock_mono_us());
    metrics_upstream_attempt(s->w->m, from, router_outcome_name(o));
    log_attempt(s, router_outcome_name(o), step.go ? step.delay_us / 1000 : -1);
    if (!step.go)
        return false;
    if (step.fallback)
        metrics_fallback(s->w->m, from);
    else
        metrics_retry(s->w->m, from);
    set_target(s, step.target);
    if (step.delay_us > 0) {
        stream_set_state(s, ST_BACKOFF);
        struct timeval tv = clock_timeval((double)step.delay_us / 1e6);
        event_add(&s->retry_ev, &tv);
    } else {
        stream_start_attempt(s);
    }
    return true;
}

/* Walks the model's targets: the router picks the first, then each next one. */
static void begin_walk(struct chat_stream *s)
{
    struct worker *w = s->w;
    size_t n = s->mc ? s->mc->n_targets : 0;
    s->brs = n <= STREAM_INLINE_TARGETS ? s->brs_inline : calloc(n, sizeof *s->brs);
    if (s->brs == NULL)
        n = 0; /* out of memory: internal_error below */
    for (size_t i = 0; i < n; i++)
        s->brs[i] = breakers_get(w->breakers, s->cfg->providers[s->mc->targets[i].provider].name);
    int64_t now = clock_mono_us();
    router_init(&s->router, n, s->brs, s->cfg->upstream_retries, s->cfg->breaker_failures,
                s->cfg->breaker_cooldown_s, s->start_us + (int64_t)(s->cfg->timeout_s * 1e6),
                (uint64_t)now ^ (uint64_t)(uintptr_t)s);
    if (n == 0) { /* out of memory (the model was validated before) */
        if (s->mc != NULL && s->mc->n_targets > 0)
            set_target(s, 0); /* the error names the provider it would have asked */
        stream_finish_error(s, ERR_INTERNAL, NULL, NULL);
        return;
    }
    struct router_step step = router_first(&s->router, now);
    set_target(s, step.target);
    stream_start_attempt(s);
}

/* Refuses the request before any stream: a JSON error (OpenAI's shape on /v1), with
 * Retry-After unless retry_after is NULL. */
static void refuse(struct chat_stream *s, enum error_code code, const char *retry_after)
{
    char detail[1024], body[4096];
    int status = error_status(code);
    error_detail(detail, sizeof detail, code, NULL, NULL, NULL);
    mw_log_error(s->cid, code, detail);
    size_t len = s->enc->route == ROUTE_V1_CHAT
                     ? error_openai_body(body, sizeof body, code, status, detail, NULL)
                     : error_json_body(body, sizeof body, code, detail, s->cid);
    stream_respond_json(s, status, retry_after, body, len);
    stream_finish(s, OUTCOME_ERROR, status);
}

/* ---- admission: the key's limits ------------------------------------------------- */

static void admitted(struct chat_stream *s, const struct limits_verdict *v)
{
    struct limits_header hs[LIMITS_MAX_HEADERS];
    s->n_rl = limits_headers(v, hs);
    memcpy(s->rl, hs, sizeof hs[0] * s->n_rl);
    if (v->status == LIMITS_OK) {
        stream_set_state(s, ST_WAITING);
        metrics_key_streams(s->w->metrics, s->key->name, 1);
        s->key_counted = true;
        begin_walk(s);
        return;
    }
    char retry[24];
    snprintf(retry, sizeof retry, "%ld", v->status == LIMITS_REFUSED ? v->retry_after_s : 1);
    log_event(LOG_INFO, "limit_refused", s->cid, LOG_STR("key", s->key->name),
              LOG_STR("reason", v->reason ? v->reason : "unavailable"));
    refuse(s, v->status == LIMITS_REFUSED ? ERR_RATE_LIMITED : ERR_LIMITS_UNAVAILABLE, retry);
}

/* ---- start and drain ---------------------------------------------------------------- */

static void on_admitted(void *arg, const struct limits_verdict *v, struct limits_ticket *ticket)
{
    struct chat_stream *s = arg;
    s->admission = NULL;
    s->ticket = ticket;
    admitted(s, v);
}

/* Asks the key's limits (at once in-process; Redis answers later), then walks. */
void walk_admit(struct chat_stream *s)
{
    if (s->key == NULL) {
        stream_set_state(s, ST_WAITING);
        begin_walk(s);
        return;
    }
    struct limits_spec spec = { .name = s->key->name,
                                .requests_per_minute = s->key->requests_per_minute,
                                .tokens_per_minute = s->key->tokens_per_minute,
                                .max_concurrent_streams = s->key->max_concurrent_streams };
    struct limits_verdict v;
    int rc = limits_admit(s->w->limits, &spec, clock_mono_us(), on_admitted, s, &v, &s->ticket,
                          &s->admission);
    if (rc == 1)
        admitted(s, &v);
    else if (rc < 0)
        refuse(s, ERR_INTERNAL, NULL); /* before any provider: a JSON 500, as a refusal is */
}

bool stream_key_allows(struct worker *w, struct http_conn *c, struct http_request *req,
                       enum metric_route route, const struct key_conf *key, const char *model)
{
    if (key == NULL || config_key_allows(key, model))
        return true;
    char what[200], detail[1024];
    snprintf(what, sizeof what, "The client key \"%.40s\" may not use the model \"%.64s\"",
             key->name, model);
    error_detail(detail, sizeof detail, ERR_FORBIDDEN, what, NULL, NULL);
    mw_respond_error_as(w, c, req, route, ERR_FORBIDDEN, 403, detail, "model", NULL, 0);
    return false;
}

void walk_timed_out(struct chat_stream *s)
{
    const char *o = router_outcome_name(ROUTER_RETRYABLE);
    router_next(&s->router, ROUTER_RETRYABLE, -1, clock_mono_us()); /* its breaker hears */
    metrics_upstream_attempt(s->w->m, s->provider_name, o);
    log_attempt(s, o, -1);
}
