/* Unit tests of src/api/stream.c, the state machine behind /chat and /v1, with both
 * encoders (chat.o, openai_api.o) linked in, and the provider and the HTTP layer
 * replaced by fakes that record every call and fail the test on a call the rules
 * forbid: a write after the final event, any call on a connection the client left,
 * any call on a provider call after it was released, cancelled or reported done.
 *
 * The stream's five events — upstream bytes, upstream end, client gone, client
 * drained and the timers — are driven in every order from three starting points
 * (waiting for the first token, streaming, paused by back-pressure), each pair of
 * neighbours either in separate loop turns or in the same one (events made active
 * together on the real event_base, the stream's own timer among them). */
/* unit-fakes: services/provider api/http api/http_write api/http_parse */
/* unit-fakes: api/http_check api/http_lex api/server api/routes */
#include "unit.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api/chat.h"
#include "api/middleware.h"
#include "api/openai_api.h"
#include "api/worker.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "services/limits.h"
#include "services/provider.h"
#include "services/router.h"

/* Every finish() logs response_complete exactly once: count it there. */
static void counted_log_complete(const char *cid, int status, enum outcome o, int64_t start_us,
                                 int64_t token_count);
/* Every state change is logged (stream_state, from, to) by set_state: the test
 * hears of each one through its own log_event, as stream.c is compiled here. */
static void heard_log(enum log_level level, const char *event, const char *cid,
                      const struct log_field *f, size_t n);
#undef log_event
#define log_event(level, event, cid, ...)                                    \
    do {                                                                     \
        const struct log_field heard_f_[] = { LOG_NULL(NULL), __VA_ARGS__ }; \
        heard_log((level), (event), (cid), heard_f_ + 1,                     \
                  sizeof heard_f_ / sizeof heard_f_[0] - 1);                 \
    } while (0)
#define mw_log_complete counted_log_complete
#include "../../src/api/stream.c"
#undef mw_log_complete

/* ---- the state changes --------------------------------------------------------------------- */

/* The transitions stream.h draws, written out again here as the test's own oracle. */
static const bool legal_move[5][5] = {
    [ST_ADMITTING] = { [ST_WAITING] = true, [ST_FINISHED] = true },
    [ST_WAITING] = { [ST_BACKOFF] = true, [ST_STREAMING] = true, [ST_FINISHED] = true },
    [ST_BACKOFF] = { [ST_WAITING] = true, [ST_FINISHED] = true },
    [ST_STREAMING] = { [ST_FINISHED] = true },
};

static int n_moves, n_to_finished;

static int state_of(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(state_names[i], name) == 0)
            return i;
    fail_msg("unknown state \"%s\"", name);
    return -1;
}

static void heard_log(enum log_level level, const char *event, const char *cid,
                      const struct log_field *f, size_t n)
{
    if (strcmp(event, "stream_state") == 0) {
        assert_int_equal(n, 2);
        int from = state_of(f[0].s), to = state_of(f[1].s);
        if (!legal_move[from][to])
            fail_msg("illegal stream state change %s -> %s", f[0].s, f[1].s);
        n_moves++;
        n_to_finished += to == ST_FINISHED;
    }
    if (log_enabled(level))
        log_write(level, event, cid, f, n);
}

/* ---- fake HTTP connection -------------------------------------------------------------- */

struct http_conn {
    const struct http_owner_ops *ops;
    void *owner;
    int n_owner_set, n_owner_cleared;
    bool gone;     /* the client left: any call is a bug */
    bool begun;    /* http_stream_begin */
    bool ended;    /* http_stream_end or http_respond: the final event went */
    bool aborted;  /* http_stream_abort: cut short (out of memory only) */
    bool notify;   /* http_notify_drained asked */
    int status;    /* of begin or respond */
    size_t unsent; /* what http_unsent answers */
    struct buf out;
    struct http_request req;
};

static void conn_check(const struct http_conn *c, const char *what)
{
    if (c->gone)
        fail_msg("%s on a connection whose client is gone", what);
    if (c->ended)
        fail_msg("%s after the final event", what);
}

void http_respond(struct http_conn *c, int status, const struct http_header *h, size_t nh,
                  const char *body, size_t len)
{
    (void)h;
    (void)nh;
    conn_check(c, "http_respond");
    assert_false(c->begun);
    c->status = status;
    c->ended = true;
    assert_int_equal(buf_append(&c->out, body, len), 0);
}

void http_stream_begin(struct http_conn *c, int status, const struct http_header *h, size_t nh)
{
    conn_check(c, "http_stream_begin");
    assert_false(c->begun);
    bool sse = false;
    for (size_t i = 0; i < nh; i++)
        sse |=
            strcmp(h[i].name, "Content-Type") == 0 && strcmp(h[i].value, "text/event-stream") == 0;
    assert_true(sse);
    c->begun = true;
    c->status = status;
}

void http_stream_write(struct http_conn *c, const char *data, size_t len)
{
    conn_check(c, "http_stream_write");
    assert_true(c->begun);
    assert_int_equal(buf_append(&c->out, data, len), 0);
}

void http_stream_end(struct http_conn *c)
{
    conn_check(c, "http_stream_end");
    assert_true(c->begun);
    c->ended = true;
}

void http_stream_abort(struct http_conn *c)
{
    conn_check(c, "http_stream_abort");
    assert_true(c->begun);
    c->ended = true;
    c->aborted = true;
}

void http_conn_set_owner(struct http_conn *c, const struct http_owner_ops *ops, void *owner)
{
    if (c->gone)
        fail_msg("http_conn_set_owner on a connection whose client is gone");
    c->ops = ops;
    c->owner = owner;
    if (ops == NULL)
        c->n_owner_cleared++;
    else
        c->n_owner_set++;
}

void http_notify_drained(struct http_conn *c)
{
    conn_check(c, "http_notify_drained");
    c->notify = true;
}

size_t http_unsent(const struct http_conn *c)
{
    conn_check(c, "http_unsent");
    return c->unsent;
}

void http_conn_close_after(struct http_conn *c)
{
    (void)c;
}

struct http_request *http_conn_request(struct http_conn *c)
{
    return &c->req;
}

const char *http_reason(int status)
{
    (void)status;
    return "Reason";
}

/* ---- fake provider ----------------------------------------------------------------------- */

#define MAX_CALLS 8

struct provider_call {
    const struct provider_callbacks *cb;
    void *owner;
    int ends;       /* released + cancelled + reported done: must end at 1 */
    bool released;  /* by the owner: no callback may follow */
    bool cancelled; /* likewise */
    bool in_done;   /* on_done is running: status questions are still allowed */
    bool done;      /* on_done returned: the call is freed */
    char held[256]; /* bytes on_data refused with PROVIDER_PAUSE */
    size_t held_len;
    int n_resume;
};

static struct provider_call calls[MAX_CALLS];
static int n_calls;
static long fake_status = 200;
static long fake_retry_after_ms = -1;
static const char *fake_content_type = "text/event-stream";

static bool call_over(const struct provider_call *call)
{
    return call->released || call->cancelled || call->done;
}

static void call_check(const struct provider_call *call, const char *what)
{
    assert_true(call >= calls && call < calls + n_calls);
    if (call_over(call))
        fail_msg("%s on a provider call that was %s", what,
                 call->released    ? "released"
                 : call->cancelled ? "cancelled"
                                   : "reported done");
}

struct provider_call *provider_start(struct provider *p, const struct provider_conf *target,
                                     double connect_timeout_s, char *body, size_t len,
                                     const struct provider_callbacks *cb, void *owner)
{
    (void)p;
    (void)target;
    (void)connect_timeout_s;
    json_decref(unit_json(body, len)); /* the provider request is JSON */
    free(body);
    assert_true(n_calls < MAX_CALLS);
    struct provider_call *call = &calls[n_calls++];
    *call = (struct provider_call){ .cb = cb, .owner = owner };
    return call;
}

void provider_cancel(struct provider_call *call)
{
    call_check(call, "provider_cancel");
    assert_false(call->in_done);
    call->cancelled = true;
    call->ends++;
}

void provider_release(struct provider_call *call)
{
    call_check(call, "provider_release");
    assert_false(call->in_done);
    call->released = true;
    call->ends++;
}

/* As curl does: the held bytes are handed over again inside the resume. */
void provider_resume(struct provider_call *call)
{
    call_check(call, "provider_resume");
    assert_false(call->in_done);
    call->n_resume++;
    size_t n = call->held_len;
    call->held_len = 0;
    if (n > 0 && call->cb->on_data(call->owner, call->held, n) == PROVIDER_PAUSE)
        call->held_len = n;
}

long provider_status(struct provider_call *call)
{
    call_check(call, "provider_status");
    return fake_status;
}

const char *provider_content_type(struct provider_call *call)
{
    call_check(call, "provider_content_type");
    return fake_content_type;
}

long provider_retry_after_ms(struct provider_call *call)
{
    call_check(call, "provider_retry_after_ms");
    return fake_retry_after_ms;
}

/* The newest call, or NULL when none was made. */
static struct provider_call *last_call(void)
{
    return n_calls > 0 ? &calls[n_calls - 1] : NULL;
}

/* curl hands over bytes: nothing when the transfer is over or paused. */
static void upstream_bytes(const char *data)
{
    struct provider_call *call = last_call();
    if (call == NULL || call_over(call) || call->held_len > 0)
        return;
    size_t len = strlen(data);
    enum provider_verdict v = call->cb->on_data(call->owner, data, len);
    if (call_over(call))
        return; /* released or cancelled from inside on_data: no callback follows */
    if (v == PROVIDER_PAUSE) {
        assert_true(len <= sizeof call->held);
        memcpy(call->held, data, len);
        call->held_len = len;
    } else if (v == PROVIDER_ABORT) {
        call->in_done = true;
        call->cb->on_done(call->owner, CURLE_WRITE_ERROR, "");
        call->in_done = false;
        call->done = true;
        call->ends++;
    }
}

/* The transfer ends: on_done once, then the call is gone. */
static void upstream_done(int code)
{
    struct provider_call *call = last_call();
    if (call == NULL || call_over(call))
        return;
    call->in_done = true;
    call->cb->on_done(call->owner, code, code == CURLE_OK ? "" : "Connection reset by peer");
    call->in_done = false;
    call->done = true;
    call->ends++;
}

/* ---- what finish() logged ------------------------------------------------------------------ */

static int n_finished;
static int finished_status;
static enum outcome finished_outcome;

static void counted_log_complete(const char *cid, int status, enum outcome o, int64_t start_us,
                                 int64_t token_count)
{
    n_finished++;
    finished_status = status;
    finished_outcome = o;
    mw_log_complete(cid, status, o, start_us, token_count);
}

/* ---- the fixture: one worker with real config, metrics, router, limits, loop --------------- */

struct var {
    const char *name, *value;
};

static const char *table_lookup(const char *name, void *ctx)
{
    for (const struct var *v = ctx; v->name != NULL; v++)
        if (strcmp(v->name, name) == 0)
            return v->value;
    return NULL;
}

struct fixture {
    struct worker w;
    struct limits_shared *shared;
    struct http_conn conn;
};

static struct fixture *fixture_new(const char *retries)
{
    const struct var vars[] = { { "OPENAI_API_KEY", "sk-unit-test-key" },
                                { "UPSTREAM_RETRIES", retries },
                                { "TIMEOUT_SECONDS", "30" },
                                { NULL, NULL } };
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct config *cfg = calloc(1, sizeof *cfg);
    char err[512];
    assert_int_equal(config_load(cfg, table_lookup, (void *)vars, err, sizeof err), 0);
    cfg->refs = 1;
    struct worker *w = &f->w;
    w->cfg = cfg;
    list_init(&w->streams);
    w->base = event_base_new();
    w->metrics = metrics_new(1);
    w->m = metrics_shard(w->metrics, 0);
    w->breakers = breakers_new();
    f->shared = limits_shared_new();
    w->limits = limits_new(w->base, f->shared, NULL, false);
    w->provider = (struct provider *)f; /* never looked into: the fake ignores it */
    struct timeval tv = clock_timeval(30.0);
    w->timeout_tv = event_base_init_common_timeout(w->base, &tv);
    assert_non_null(w->base);
    assert_non_null(w->limits);
    n_calls = 0;
    n_finished = 0;
    n_moves = n_to_finished = 0;
    fake_status = 200;
    fake_retry_after_ms = -1;
    return f;
}

static void fixture_free(struct fixture *f)
{
    struct worker *w = &f->w;
    assert_true(list_empty(&w->streams));
    assert_int_equal(metrics_active_streams(w->metrics), 0);
    limits_free(w->limits);
    limits_shared_free(f->shared);
    breakers_free(w->breakers);
    metrics_free(w->metrics);
    event_base_free(w->base);
    config_unref(w->cfg);
    buf_free(&w->scratch);
    buf_free(&f->conn.out);
    free(f);
}

enum enc { ENC_CHAT, ENC_V1_SSE, ENC_V1_JSON, N_ENC };
static const char *const enc_names[] = { "chat", "v1-sse", "v1-json" };

/* Starts one stream on the fake connection; returns it. */
static struct chat_stream *start(struct fixture *f, enum enc e)
{
    static const char *const bodies[] = {
        [ENC_CHAT] = "{\"message\":\"hello\"}",
        [ENC_V1_SSE] = "{\"model\":\"gpt-4o-mini\",\"stream\":true,"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}",
        [ENC_V1_JSON] = "{\"model\":\"gpt-4o-mini\","
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}",
    };
    struct http_request *req = &f->conn.req;
    *req = (struct http_request){ .body = (char *)bodies[e], .body_len = strlen(bodies[e]) };
    snprintf(req->cid, sizeof req->cid, "0b7f8c1e-9d2a-4f3b-8c6d-5e4f3a2b1c0d");
    req->start_us = clock_mono_us();
    fake_content_type = e == ENC_V1_JSON ? "application/json" : "text/event-stream";
    if (e == ENC_CHAT)
        chat_start(&f->w, &f->conn, req, NULL);
    else
        v1_chat_start(&f->w, &f->conn, req, NULL);
    assert_int_equal(n_finished, 0);
    assert_false(list_empty(&f->w.streams));
    assert_int_equal(f->conn.n_owner_set, 1);
    assert_int_equal(n_calls, 1);
    return list_entry(f->w.streams.next, struct chat_stream, link);
}

/* ---- the provider's bytes -------------------------------------------------------------------- */

#define ROLE    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
#define CONTENT "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
#define DONE                                                                          \
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" \
    "data: [DONE]\n\n"
#define JSON_ANSWER                                                                        \
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":" \
    "{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],"            \
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}"

/* ---- the events ------------------------------------------------------------------------------ */

enum ev { EV_END, EV_GONE, EV_DRAINED, EV_TIMER, N_EV };
static const char *const ev_names[] = { "upstream-end", "client-gone", "drained", "timer" };

struct run {
    struct fixture *f;
    struct chat_stream *s; /* valid while n_finished == 0 */
    enum enc enc;
    bool end_done;    /* the upstream end is a complete answer (else a cut) */
    size_t json_sent; /* bytes of JSON_ANSWER already handed over */
    struct event evs[N_EV - 1];
};

/* The run under way, named when a check fails. */
static char run_desc[200];

static bool alive(void)
{
    return n_finished == 0;
}

static void deliver(struct run *r, enum ev e)
{
    struct http_conn *c = &r->f->conn;
    switch (e) {
    case EV_END:
        if (last_call() != NULL && last_call()->held_len > 0) {
            upstream_done(CURLE_RECV_ERROR); /* a paused transfer gets no bytes: it can only fail */
        } else if (r->end_done) {
            upstream_bytes(r->enc == ENC_V1_JSON ? JSON_ANSWER + r->json_sent : DONE);
            upstream_done(CURLE_OK); /* after [DONE] the call was released: not delivered */
        } else {
            upstream_done(CURLE_RECV_ERROR);
        }
        break;
    case EV_GONE:
        if (c->gone)
            break;
        if (c->owner != NULL) { /* http tells the owner, then frees the connection */
            const struct http_owner_ops *ops = c->ops;
            void *owner = c->owner;
            c->gone = true;
            ops->on_client_gone(owner);
        }
        c->gone = true;
        break;
    case EV_DRAINED:
        if (c->owner != NULL && !c->gone) {
            c->unsent = 0;
            c->ops->on_drained(c->owner);
        }
        break;
    case EV_TIMER: break; /* the stream's own timer: made active by the caller */
    case N_EV: break;
    }
}

static void on_test_event(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    deliver(arg, (enum ev)fd);
}

/* Makes e happen in the next loop turn. */
static void activate(struct run *r, enum ev e)
{
    if (e == EV_TIMER) {
        if (alive()) { /* the deadline passed: no progress for longer than the timeout */
            r->s->last_progress_us = clock_mono_us() - 60 * 1000000LL;
            event_active(&r->s->timer, EV_TIMEOUT, 1);
        }
        return;
    }
    event_active(&r->evs[e], EV_TIMEOUT, 1);
}

/* ---- the expected answer: a model of the rules --------------------------------------------- */

enum result { RES_COMPLETED, RES_GONE, RES_TIMEOUT, RES_CUT };

static enum result expect(const enum ev *order, unsigned same_turn, bool paused, bool end_done)
{
    bool progress = false; /* bytes arrived in this loop turn */
    for (int i = 0; i < N_EV; i++) {
        if (i > 0 && !(same_turn & (1u << (i - 1))))
            progress = false;
        switch (order[i]) {
        case EV_GONE: return RES_GONE;
        case EV_DRAINED:
            progress |= paused; /* the held bytes are handed over */
            paused = false;
            break;
        case EV_TIMER:
            if (!paused && !progress)
                return RES_TIMEOUT;
            break; /* held back by our own client, or bytes came meanwhile: waits on */
        case EV_END: return paused || !end_done ? RES_CUT : RES_COMPLETED;
        case N_EV: break;
        }
    }
    fail_msg("no event ended the stream");
    return RES_CUT;
}

/* The SSE events the client got, as JSON (the last one when last). */
static json_t *last_event_json(const struct buf *out)
{
    const char *p = out->p, *end = out->p + out->len, *last = NULL;
    while (p < end) {
        const char *e = strstr(p, "\n\n");
        assert_non_null(e);
        if (strncmp(p, "data: ", 6) == 0)
            last = p + 6;
        p = e + 2;
    }
    assert_non_null(last);
    return unit_json(last, (size_t)(strstr(last, "\n\n") - last));
}

static void check_answer(struct run *r, enum result res, bool sent_before)
{
    struct http_conn *c = &r->f->conn;
    struct provider_call *call = &calls[0];
    bool sse = r->enc != ENC_V1_JSON;
    assert_false(c->aborted); /* only when out of memory */
    switch (res) {
    case RES_GONE:
        assert_int_equal(finished_outcome, OUTCOME_CLIENT_DISCONNECTED);
        assert_int_equal(finished_status, c->begun ? 200 : 499);
        assert_false(c->ended);
        assert_true(call->cancelled); /* closes the connection: the provider stops */
        return;
    case RES_COMPLETED:
        assert_int_equal(finished_outcome, OUTCOME_COMPLETED);
        assert_int_equal(finished_status, 200);
        assert_true(c->ended);
        assert_int_equal(c->status, 200);
        if (!sse) {
            assert_true(call->done);
            assert_int_equal(c->out.len, strlen(JSON_ANSWER));
            assert_memory_equal(c->out.p, JSON_ANSWER, c->out.len);
            return;
        }
        assert_true(call->released); /* after [DONE]: the connection may be reused */
        if (r->enc == ENC_V1_SSE) {
            assert_true(c->out.len >= 14);
            assert_memory_equal(c->out.p + c->out.len - 14, "data: [DONE]\n\n", 14);
        } else {
            json_t *fin = last_event_json(&c->out);
            assert_string_equal(unit_str(fin, "status"), "completed");
            assert_true(json_is_true(json_object_get(fin, "is_final")));
            json_decref(fin);
        }
        return;
    case RES_TIMEOUT:
    case RES_CUT: break;
    }
    bool timeout = res == RES_TIMEOUT;
    assert_int_equal(finished_outcome, timeout ? OUTCOME_TIMEOUT : OUTCOME_ERROR);
    assert_true(c->ended);
    assert_true(timeout ? call->cancelled : call->done);
    if (!sent_before && (timeout || r->enc != ENC_CHAT)) { /* answered whole, with a status */
        assert_false(c->begun);
        assert_int_equal(c->status, timeout ? 504 : 502);
        assert_int_equal(finished_status, c->status);
        json_t *body = unit_json(c->out.p, c->out.len);
        assert_non_null(json_object_get(body, "error"));
        json_decref(body);
        return;
    }
    assert_int_equal(finished_status, 200); /* the failure is the stream's last event */
    assert_true(c->begun);
    json_t *fin = last_event_json(&c->out);
    if (r->enc == ENC_CHAT) {
        assert_string_equal(unit_str(fin, "status"), timeout ? "timeout" : "error");
        assert_true(json_is_true(json_object_get(fin, "is_final")));
    } else {
        assert_non_null(json_object_get(fin, "error"));
    }
    json_decref(fin);
}

/* ---- the sweep --------------------------------------------------------------------------------
 */

enum start_point { AT_WAITING, AT_STREAMING, AT_PAUSED, N_START };
static const char *const start_names[] = { "waiting", "streaming", "paused" };

/* Brings a fresh stream to the starting point; returns whether its headers went. */
static bool reach(struct run *r, enum start_point at)
{
    struct http_conn *c = &r->f->conn;
    if (at == AT_WAITING) {
        if (r->enc == ENC_V1_SSE)
            upstream_bytes(ROLE); /* held back until the first real event */
        assert_int_equal(r->s->state, ST_WAITING);
        return false;
    }
    if (r->enc == ENC_V1_JSON) {
        char head[16];
        r->json_sent = 11;
        snprintf(head, sizeof head, "%.*s", (int)r->json_sent, JSON_ANSWER);
        upstream_bytes(head);
        assert_int_equal(r->s->state, ST_WAITING); /* a JSON answer has no first token */
        return false;
    }
    upstream_bytes(ROLE CONTENT);
    assert_int_equal(r->s->state, ST_STREAMING);
    assert_true(c->begun);
    assert_true(c->out.len > 0);
    if (at == AT_PAUSED) {
        c->unsent = HTTP_HIGH_WATER + 1;
        upstream_bytes(CONTENT);
        assert_true(r->s->paused);
        assert_true(c->notify);
        assert_true(last_call()->held_len > 0);
    }
    return true;
}

static void sweep_one(enum enc e, enum start_point at, const enum ev *order, unsigned same_turn,
                      bool end_done)
{
    struct run r = { .f = fixture_new("0"), .enc = e, .end_done = end_done };
    snprintf(run_desc, sizeof run_desc, "%s from %s, %s %s %s %s, same turn 0x%x, %s end",
             enc_names[e], start_names[at], ev_names[order[0]], ev_names[order[1]],
             ev_names[order[2]], ev_names[order[3]], same_turn, end_done ? "complete" : "cut");
    struct event_base *base = r.f->w.base;
    for (int i = 0; i < N_EV - 1; i++)
        event_assign(&r.evs[i], base, i, 0, on_test_event, &r);
    r.s = start(r.f, e);
    bool sent = reach(&r, at);
    size_t written = r.f->conn.out.len;
    bool paused = at == AT_PAUSED;
    for (int i = 0; i < N_EV; i++) {
        activate(&r, order[i]);
        if (i == N_EV - 1 || !(same_turn & (1u << i)))
            event_base_loop(base, EVLOOP_NONBLOCK);
        if (alive()) {
            bool waits = at == AT_WAITING || e == ENC_V1_JSON;
            assert_int_equal(r.s->state, waits ? ST_WAITING : ST_STREAMING);
            if (order[i] == EV_DRAINED && paused && !(same_turn & (1u << i)))
                assert_true(r.f->conn.out.len > written); /* the held event went out */
        }
        if (order[i] == EV_DRAINED)
            paused = false;
    }
    event_base_loop(base, EVLOOP_NONBLOCK); /* nothing may be left to fire */
    assert_int_equal(n_finished, 1);
    assert_int_equal(n_to_finished, 1);
    assert_true(n_moves >= 2); /* admitted, (first token,) finished */
    assert_true(list_empty(&r.f->w.streams));
    struct http_conn *c = &r.f->conn;
    assert_true(c->gone || (c->owner == NULL && c->n_owner_cleared == 1));
    for (int i = 0; i < n_calls; i++)
        assert_int_equal(calls[i].ends, 1);
    check_answer(&r, expect(order, same_turn, at == AT_PAUSED, end_done), sent);
    for (int i = 0; i < N_EV - 1; i++)
        event_del(&r.evs[i]);
    fixture_free(r.f);
}

/* Every permutation of the four events, every choice of neighbours sharing a turn. */
static void sweep(enum enc e)
{
    enum ev order[N_EV];
    int runs = 0;
    for (int a = 0; a < N_EV; a++)
        for (int b = 0; b < N_EV; b++)
            for (int c = 0; c < N_EV; c++) {
                int d = 6 - a - b - c;
                if (a == b || a == c || b == c || d == a || d == b || d == c)
                    continue;
                order[0] = a, order[1] = b, order[2] = c, order[3] = d;
                for (int at = 0; at < N_START; at++) {
                    if (e == ENC_V1_JSON && at == AT_PAUSED)
                        continue; /* a JSON answer is kept whole: never paused */
                    for (unsigned turn = 0; turn < 8; turn++)
                        for (int done = 0; done < 2; done++) {
                            sweep_one(e, at, order, turn, done);
                            runs++;
                        }
                }
            }
    print_message("%s: %d runs (every order of %s, %s, %s, %s from %s, %s and %s)\n", enc_names[e],
                  runs, ev_names[0], ev_names[1], ev_names[2], ev_names[3], start_names[0],
                  start_names[1], start_names[2]);
}

static void test_every_order_chat(void **state)
{
    (void)state;
    sweep(ENC_CHAT);
}

static void test_every_order_v1_sse(void **state)
{
    (void)state;
    sweep(ENC_V1_SSE);
}

static void test_every_order_v1_json(void **state)
{
    (void)state;
    sweep(ENC_V1_JSON);
}

/* ---- retry backoff ------------------------------------------------------------------------- */

enum bev { BEV_RETRY, BEV_GONE, BEV_TIMER, N_BEV };

/* A 429 with Retry-After puts the stream in BACKOFF; then the retry timer, the
 * client leaving and the first-token deadline in every order and grouping. */
static void backoff_one(enum enc e, const enum bev *order, unsigned same_turn)
{
    struct run r = { .f = fixture_new("2"), .enc = e, .end_done = true };
    struct event_base *base = r.f->w.base;
    for (int i = 0; i < N_EV - 1; i++)
        event_assign(&r.evs[i], base, i, 0, on_test_event, &r);
    r.s = start(r.f, e);
    fake_status = 429;
    fake_retry_after_ms = 1000;
    upstream_bytes("{\"error\":{\"message\":\"slow down\"}}");
    upstream_done(CURLE_OK);
    assert_true(alive());
    assert_int_equal(r.s->state, ST_BACKOFF);
    assert_null(r.s->call);
    assert_true(evtimer_pending(&r.s->retry_ev, NULL));
    fake_status = 200;
    fake_retry_after_ms = -1;
    enum result res = RES_COMPLETED;
    bool decided = false;
    for (int i = 0; i < N_BEV; i++) {
        switch (order[i]) {
        case BEV_RETRY:
            if (alive())
                event_active(&r.s->retry_ev, EV_TIMEOUT, 1);
            break;
        case BEV_GONE: activate(&r, EV_GONE); break;
        case BEV_TIMER: activate(&r, EV_TIMER); break;
        case N_BEV: break;
        }
        if (!decided && order[i] != BEV_RETRY) {
            res = order[i] == BEV_GONE ? RES_GONE : RES_TIMEOUT;
            decided = true;
        }
        if (i == N_BEV - 1 || !(same_turn & (1u << i)))
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(n_finished, 1);
    assert_true(list_empty(&r.f->w.streams));
    bool retried = order[0] == BEV_RETRY;
    assert_int_equal(n_calls, retried ? 2 : 1);
    for (int i = 0; i < n_calls; i++)
        assert_int_equal(calls[i].ends, 1);
    assert_true(calls[0].done);
    if (retried) /* the second attempt was the one ended */
        assert_true(calls[1].cancelled);
    struct http_conn *c = &r.f->conn;
    if (res == RES_GONE) {
        assert_int_equal(finished_outcome, OUTCOME_CLIENT_DISCONNECTED);
        assert_int_equal(finished_status, 499);
    } else {
        assert_int_equal(finished_outcome, OUTCOME_TIMEOUT);
        assert_int_equal(c->status, 504);
        assert_true(c->ended);
    }
    for (int i = 0; i < N_EV - 1; i++)
        event_del(&r.evs[i]);
    fixture_free(r.f);
}

static void test_backoff_every_order(void **state)
{
    (void)state;
    static const enum bev perms[6][3] = {
        { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
    };
    for (int e = 0; e < N_ENC; e++)
        for (int p = 0; p < 6; p++)
            for (unsigned turn = 0; turn < 4; turn++)
                backoff_one((enum enc)e, perms[p], turn);
}

/* The retry after the backoff answers: the client gets the second attempt's answer. */
static void test_backoff_then_answer(void **state)
{
    (void)state;
    for (int e = 0; e < N_ENC; e++) {
        struct run r = { .f = fixture_new("2"), .enc = e, .end_done = true };
        r.s = start(r.f, e);
        fake_status = 503;
        fake_retry_after_ms = 1000;
        upstream_bytes("{\"error\":{\"message\":\"busy\"}}");
        upstream_done(CURLE_OK);
        assert_int_equal(r.s->state, ST_BACKOFF);
        fake_status = 200;
        fake_retry_after_ms = -1;
        event_active(&r.s->retry_ev, EV_TIMEOUT, 1);
        event_base_loop(r.f->w.base, EVLOOP_NONBLOCK);
        assert_int_equal(n_calls, 2);
        assert_int_equal(r.s->state, ST_WAITING);
        deliver(&r, EV_END);
        event_base_loop(r.f->w.base, EVLOOP_NONBLOCK);
        assert_int_equal(n_finished, 1);
        assert_int_equal(calls[0].ends, 1);
        assert_int_equal(calls[1].ends, 1);
        assert_int_equal(finished_outcome, OUTCOME_COMPLETED);
        assert_true(r.f->conn.ended);
        assert_int_equal(r.f->conn.status, 200);
        fixture_free(r.f);
    }
}

/* ---- the rest of the rules ------------------------------------------------------------------ */

/* An answer that is not an event stream ends the stream from inside on_data (ABORT). */
static void test_wrong_content_type(void **state)
{
    (void)state;
    for (int e = 0; e < N_ENC; e++) {
        struct run r = { .f = fixture_new("0"), .enc = e };
        r.s = start(r.f, e);
        fake_content_type = "text/html";
        upstream_bytes("<html>");
        assert_int_equal(n_finished, 1);
        assert_true(calls[0].done);
        assert_int_equal(calls[0].ends, 1);
        assert_int_equal(finished_outcome, OUTCOME_ERROR);
        assert_true(r.f->conn.ended);
        assert_int_equal(r.f->conn.status, e == ENC_CHAT ? 200 : 502);
        fixture_free(r.f);
    }
}

/* Shutting down ends every open stream once, with its final event. */
static void test_abort_all(void **state)
{
    (void)state;
    for (int e = 0; e < N_ENC; e++) {
        struct run r = { .f = fixture_new("0"), .enc = e };
        r.s = start(r.f, e);
        if (e != ENC_V1_JSON)
            upstream_bytes(CONTENT);
        stream_abort_all(&r.f->w, ERR_STREAM_SHUTTING_DOWN);
        assert_int_equal(n_finished, 1);
        assert_true(calls[0].cancelled);
        assert_true(r.f->conn.ended);
        assert_int_equal(r.f->conn.status, e == ENC_V1_JSON ? 503 : 200);
        event_base_loop(r.f->w.base, EVLOOP_NONBLOCK);
        deliver(&r, EV_DRAINED); /* after finish: the owner was cleared, nothing is told */
        deliver(&r, EV_GONE);
        assert_int_equal(n_finished, 1);
        fixture_free(r.f);
    }
}

/* The legal transitions, as set_state enforces them. */
static void test_state_table(void **state)
{
    (void)state;
    struct fixture *f = fixture_new("0");
    struct chat_stream *s = start(f, ENC_CHAT);
    assert_int_equal(s->state, ST_WAITING);
    upstream_bytes(CONTENT);
    assert_int_equal(s->state, ST_STREAMING);
    deliver(&(struct run){ .f = f }, EV_GONE);
    assert_int_equal(n_finished, 1);
    fixture_free(f);
}

int main(void)
{
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    log_setup(LOG_ERROR, devnull); /* thousands of streams: keep the output to the results */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_table),         cmocka_unit_test(test_every_order_chat),
        cmocka_unit_test(test_every_order_v1_sse),  cmocka_unit_test(test_every_order_v1_json),
        cmocka_unit_test(test_backoff_every_order), cmocka_unit_test(test_backoff_then_answer),
        cmocka_unit_test(test_wrong_content_type),  cmocka_unit_test(test_abort_all),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    close(devnull);
    return rc;
}
