/* openai_api: see openai_api.h. Streamed answers relay each provider event
 * byte for byte as `data: <its JSON>`; the usage-only chunk (which chatd always
 * asks for) reaches the client only when it asked; role-only chunks wait for
 * the first chunk with substance, so that until then a failure can still be
 * retried, moved to another target or answered with a status. */
#include "api/openai_api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/middleware.h"
#include "api/stream.h"
#include "api/worker.h"
#include "core/config.h"
#include "core/log.h"
#include "models/v1_request.h"
#include "services/openai.h"

#define DATA_PREFIX "data: "
#define EVENT_END   "\n\n"

static int v1_body(struct chat_stream *s, const char *model, struct buf *out)
{
    struct v1_request req = { .root = s->root, .stream = s->enc->sse };
    return v1_request_body(&req, model, out);
}

static int put_event(struct buf *out, const char *data, size_t len)
{
    int rc = buf_append(out, DATA_PREFIX, sizeof DATA_PREFIX - 1);
    rc |= buf_append(out, data, len);
    return rc | buf_append(out, EVENT_END, sizeof EVENT_END - 1);
}

static int v1_event(struct chat_stream *s, const struct sse_event *ev, const struct openai_chunk *c,
                    struct buf *out)
{
    if (openai_chunk_usage_only(c) && !s->client_usage)
        return 0; /* asked for by chatd, not by the client */
    if (s->state == ST_WAITING && !c->substance) {
        put_event(&s->held, ev->data, ev->data_len);
        return 0;
    }
    if (s->held.len > 0) {
        buf_append(out, s->held.p, s->held.len);
        s->held.len = 0;
    }
    if (c->content_json != NULL)
        s->content_events++;
    put_event(out, ev->data, ev->data_len);
    return 1;
}

static void v1_completed_sse(struct chat_stream *s, struct buf *out)
{
    if (s->held.len > 0)
        buf_append(out, s->held.p, s->held.len);
    buf_append_str(out, DATA_PREFIX "[DONE]" EVENT_END);
}

/* The provider's chat.completion object, relayed unchanged. */
static void v1_completed_json(struct chat_stream *s, struct buf *out)
{
    (void)out;
    json_t *root = json_loadb(s->body.p ? s->body.p : "", s->body.len, 0, NULL);
    json_t *u = json_object_get(root, "usage");
    if (json_is_integer(json_object_get(u, "prompt_tokens")) &&
        json_is_integer(json_object_get(u, "completion_tokens"))) {
        s->has_usage = true;
        s->prompt_tokens = json_integer_value(json_object_get(u, "prompt_tokens"));
        s->completion_tokens = json_integer_value(json_object_get(u, "completion_tokens"));
    }
    json_decref(root);
    stream_respond_json(s, 200, NULL, s->body.p ? s->body.p : "", s->body.len);
}

/* The status a failure gets on /v1 before the answer began. */
static int v1_status(const struct chat_stream *s, enum error_code code)
{
    switch (code) {
    case ERR_TIMEOUT: return 504;
    case ERR_UPSTREAM_RATE_LIMITED: return 429;
    case ERR_UPSTREAM_BAD_REQUEST:
        return s->http_status == 400 || s->http_status == 413 || s->http_status == 422 ? 400 : 502;
    case ERR_STREAM_SHUTTING_DOWN: return 503;
    case ERR_INTERNAL: return 500;
    default: return error_status(code) ? error_status(code) : 502;
    }
}

static void v1_error_event(struct chat_stream *s, enum error_code code, const char *detail,
                           struct buf *out)
{
    char body[4096];
    size_t len = error_openai_body(body, sizeof body, code, v1_status(s, code), detail, NULL);
    put_event(out, body, len);
}

static int v1_error_answer(struct chat_stream *s, enum error_code code, const char *detail)
{
    int status = v1_status(s, code);
    char body[4096], retry[24];
    size_t len = error_openai_body(body, sizeof body, code, status, detail, NULL);
    bool again = status == 429 || status == 503; /* the client may retry: say when */
    if (again)
        snprintf(retry, sizeof retry, "%ld",
                 s->retry_after_ms > 0 ? (s->retry_after_ms + 999) / 1000 : 1);
    stream_respond_json(s, status, again ? retry : NULL, body, len);
    return status;
}

/* The two /v1 encoders differ in the answer's form and how it completes. */
#define V1_ENCODER(is_sse, on_completed)                                                     \
    {                                                                                        \
        .route = ROUTE_V1_CHAT, .sse = (is_sse), .request_body = v1_body, .event = v1_event, \
        .completed = (on_completed), .error_event = v1_error_event,                          \
        .error_answer = v1_error_answer                                                      \
    }

static const struct stream_encoder v1_sse_encoder = V1_ENCODER(true, v1_completed_sse);
static const struct stream_encoder v1_json_encoder = V1_ENCODER(false, v1_completed_json);

void v1_chat_start(struct worker *w, struct http_conn *c, struct http_request *req,
                   const struct key_conf *key)
{
    struct v1_request r;
    struct v1_request_error err;
    char detail[1024];
    int rc = v1_request_parse(req->body, req->body_len, w->cfg->max_tokens, &r, &err);
    if (rc == -ENOMEM) {
        mw_respond_error_as(w, c, req, ROUTE_V1_CHAT, ERR_INTERNAL, 500, NULL, NULL, NULL, 0);
        return;
    }
    if (rc != 0) {
        error_detail(detail, sizeof detail, err.code, err.what, err.why, err.todo);
        mw_respond_error_as(w, c, req, ROUTE_V1_CHAT, err.code, 400, detail,
                            err.param[0] ? err.param : NULL, NULL, 0);
        return;
    }
    const char *model = r.model ? r.model : w->cfg->model;
    if (!config_model_allowed(w->cfg, model)) {
        char what[160];
        snprintf(what, sizeof what, "The model \"%.64s%s\" does not exist on this server", model,
                 strlen(model) > 64 ? "..." : "");
        error_detail(detail, sizeof detail, ERR_MODEL_NOT_FOUND, what, NULL, NULL);
        mw_respond_error_as(w, c, req, ROUTE_V1_CHAT, ERR_MODEL_NOT_FOUND, 404, detail, "model",
                            NULL, 0);
        v1_request_free(&r);
        return;
    }
    if (!stream_key_allows(w, c, req, ROUTE_V1_CHAT, key, model)) {
        v1_request_free(&r);
        return;
    }
    struct stream_input in = { .message = r.last_text,
                               .message_len = r.last_text_len,
                               .client_usage = r.client_usage };
    stream_start(w, c, req, key, r.stream ? &v1_sse_encoder : &v1_json_encoder, r.root, model, &in);
}

void v1_models(struct worker *w, struct http_conn *c, struct http_request *req,
               const struct key_conf *key)
{
    const struct config *cfg = w->cfg;
    struct buf out = { 0 };
    int rc = buf_append_str(&out, "{\"object\":\"list\",\"data\":[");
    bool first = true;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const struct model_conf *m = &cfg->models[i];
        if (key != NULL && !config_key_allows(key, m->name))
            continue;
        const char *owner = cfg->providers[m->targets[0].provider].name;
        rc |= buf_append_str(&out, first ? "{\"id\":\"" : ",{\"id\":\"");
        rc |= buf_append_json(&out, m->name, strlen(m->name));
        rc |= buf_append_str(&out, "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"");
        rc |= buf_append_json(&out, owner, strlen(owner));
        rc |= buf_append_str(&out, "\"}");
        first = false;
    }
    rc |= buf_append_str(&out, "]}");
    if (rc != 0)
        mw_respond_error(w, c, req, ROUTE_V1_MODELS, ERR_INTERNAL, NULL, NULL, 0);
    else
        mw_respond_ok(w, c, req, ROUTE_V1_MODELS, 200, "application/json", out.p, out.len, NULL, 0);
    buf_free(&out);
}
