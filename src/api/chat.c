/* chat: see chat.h. The /chat wire format on the shared stream machine
 * (stream.h): the request is a message (with optional history), the answer is
 * chatd's own numbered events ending in one final event. */
#include "api/chat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/middleware.h"
#include "api/stream.h"
#include "api/worker.h"
#include "core/config.h"
#include "core/log.h"
#include "models/chat_request.h"
#include "models/stream_event.h"
#include "services/openai.h"

static int chat_body(struct chat_stream *s, const char *model, struct buf *out)
{
    struct openai_conversation conv = { .system_prompt = s->cfg->system_prompt,
                                        .history = s->chat_history,
                                        .message = s->message,
                                        .message_len = s->message_len };
    return openai_request_body(out, model, &conv, s->max_tokens);
}

static int chat_event(struct chat_stream *s, const struct sse_event *ev,
                      const struct openai_chunk *c, struct buf *out)
{
    (void)ev;
    if (c->content_json == NULL)
        return 0; /* upstream events with no text are not relayed */
    if (stream_event_content(out, c->content_json, c->content_json_len, s->sequence, s->cid) != 0)
        return -ENOMEM; /* taken back by the stream: no gap in the sequence */
    s->sequence++;
    s->content_events++;
    log_event(LOG_DEBUG, "chunk_sent", s->cid, LOG_INT("sequence", (long long)s->sequence - 1),
              LOG_INT("elapsed_ms", stream_elapsed_ms(s)));
    return 1;
}

static void chat_completed(struct chat_stream *s, struct buf *out)
{
    struct stream_final f = { .status = "completed",
                              .finish_reason = s->finish_reason[0] ? s->finish_reason : NULL,
                              .has_usage = s->has_usage,
                              .prompt_tokens = s->prompt_tokens,
                              .completion_tokens = s->completion_tokens,
                              .total_tokens = s->total_tokens,
                              .duration_ms = stream_elapsed_ms(s),
                              .provider = s->provider_name,
                              .model = s->target_model };
    stream_event_final(out, s->sequence++, s->cid, &f);
}

static void chat_error_event(struct chat_stream *s, enum error_code code, const char *detail,
                             struct buf *out)
{
    bool timeout = code == ERR_TIMEOUT || code == ERR_UPSTREAM_TIMEOUT;
    struct stream_final f = { .status = timeout ? "timeout" : "error",
                              .error = code,
                              .detail = detail,
                              .duration_ms = stream_elapsed_ms(s),
                              .provider = s->provider_name,
                              .model = s->target_model };
    stream_event_final(out, s->sequence++, s->cid, &f);
}

/* Before any event: only "no first token in time" has a status of its own
 * (504); every other failure is the stream's one final event. */
static int chat_error_answer(struct chat_stream *s, enum error_code code, const char *detail)
{
    char internal[1024];
    if (code != ERR_TIMEOUT) {
        struct buf *out = &s->w->scratch;
        chat_error_event(s, code, detail, out);
        if (!out->failed) {
            stream_flush(s);
            http_stream_end(s->conn);
            return 200;
        }
        out->failed = false; /* out of memory: a 500 from the stack instead */
        out->len = 0;
        code = ERR_INTERNAL;
        error_detail(internal, sizeof internal, code, NULL, NULL, NULL);
        detail = internal;
    }
    int status = code == ERR_TIMEOUT ? 504 : 500;
    char body[2048];
    size_t len = error_json_body(body, sizeof body, code, detail, s->cid);
    stream_respond_json(s, status, NULL, body, len);
    return status;
}

static const struct stream_encoder chat_encoder = {
    .route = ROUTE_CHAT,
    .sse = true,
    .request_body = chat_body,
    .event = chat_event,
    .completed = chat_completed,
    .error_event = chat_error_event,
    .error_answer = chat_error_answer,
};

void chat_start(struct worker *w, struct http_conn *c, struct http_request *req,
                const struct key_conf *key)
{
    struct chat_request creq;
    struct chat_request_error err;
    int rc = chat_request_parse(req->body, req->body_len, w->cfg, &creq, &err);
    if (rc == -ENOMEM) {
        mw_respond_error(w, c, req, ROUTE_CHAT, ERR_INTERNAL, NULL, NULL, 0);
        return;
    }
    if (rc != 0) {
        char detail[1024];
        error_detail(detail, sizeof detail, ERR_VALIDATION, err.what, err.why, err.todo);
        mw_respond_error(w, c, req, ROUTE_CHAT, ERR_VALIDATION, detail, NULL, 0);
        return;
    }
    if (!stream_key_allows(w, c, req, ROUTE_CHAT, key, creq.model)) {
        chat_request_free(&creq);
        return;
    }
    /* The stream takes the parsed body over; the strings creq points at live in it. */
    struct stream_input in = { .message = creq.message,
                               .message_len = creq.message_len,
                               .max_tokens = creq.max_tokens,
                               .chat_history = creq.history };
    stream_start(w, c, req, key, &chat_encoder, creq.root, creq.model, &in);
}
