/*
 * One HTTP response -> SSE events -> a verdict, fed incrementally.
 *
 * http-parser does the HTTP/1.1 framing (status line, headers, chunked or
 * Content-Length or close-delimited bodies); the decoded body goes through an
 * SSE line splitter (LF, CRLF or lone CR, any split point) and each event's
 * data through the chatd or OpenAI validator. The stream keeps only a partial
 * line and the current event between reads.
 *
 * Both contracts say one event = one "data:" line, so an event with several
 * data lines is reported invalid rather than joined.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loadgen.h"

#define MAX_LINE (1u << 20) /* an SSE line longer than this is a broken stream */

static http_parser_settings g_hs;

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *verdict_name(enum verdict v)
{
    static const char *const names[V__COUNT] = {
        "pending", "ok",       "http_status", "reset",      "timeout",
        "connect", "upstream", "invalid",     "incomplete",
    };
    return v < V__COUNT ? names[v] : "?";
}

/* Keeps the first failure: later ones are usually consequences of it. A
 * protocol violation still overrides a cleanly reported upstream failure. */
void stream_fail(struct stream *s, enum verdict v, const char *why)
{
    bool upgrade = s->v == V_UPSTREAM && v == V_INVALID;
    if (s->v != V_PENDING && s->v != V_OK && !upgrade)
        return;
    s->v = v;
    snprintf(s->why, sizeof s->why, "%s", why);
}

static void failf(struct stream *s, enum verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(struct stream *s, enum verdict v, const char *fmt, ...)
{
    char buf[sizeof s->why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    stream_fail(s, v, buf);
}

static bool grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb)
        return false;
    *buf = nb;
    *cap = c;
    return true;
}

/* ---------- validators ---------- */

static void chatd_event(struct stream *s, const char *d, size_t n)
{
    struct jfield f[] = {
        { .path = "sequence" },       { .path = "is_final" }, { .path = "content" },
        { .path = "correlation_id" }, { .path = "status" },   { .path = "error.error" },
    };
    if (s->final_seen) {
        stream_fail(s, V_INVALID, "an event follows the final event");
        return;
    }
    if (json_scan(d, n, f, sizeof f / sizeof f[0]) != J_OBJ) {
        failf(s, V_INVALID, "event %u: data is not a JSON object: %.40s", s->events, d);
        return;
    }
    long long seq = jfield_uint(&f[0]);
    if (seq != s->next_seq) {
        failf(s, V_INVALID, "event %u: sequence %.*s, expected %lld", s->events,
              f[0].p ? (int)(f[0].n < 20 ? f[0].n : 20) : 7, f[0].p ? f[0].p : "missing",
              s->next_seq);
        return;
    }
    s->next_seq++;
    if (f[1].t != J_TRUE && f[1].t != J_FALSE) {
        failf(s, V_INVALID, "event %u: is_final missing or not a boolean", s->events);
        return;
    }
    if (f[2].t != J_STR || f[3].t != J_STR || f[3].n == 0 || f[3].n >= sizeof s->cid) {
        failf(s, V_INVALID, "event %u: content or correlation_id missing or not a string",
              s->events);
        return;
    }
    if (s->cid_len == 0) {
        memcpy(s->cid, f[3].p, f[3].n);
        s->cid_len = (uint8_t)f[3].n;
        if (s->hcid_len && (s->hcid_len != s->cid_len || memcmp(s->hcid, s->cid, s->cid_len)))
            stream_fail(s, V_INVALID, "correlation_id differs from the X-Correlation-Id header");
    } else if (f[3].n != s->cid_len || memcmp(f[3].p, s->cid, s->cid_len) != 0) {
        failf(s, V_INVALID, "event %u: correlation_id changed within the stream", s->events);
    }
    if (f[1].t == J_FALSE) {
        s->content_events++;
        return;
    }
    s->final_seen = true;
    if (!jfield_is(&f[4], "completed"))
        failf(s, V_UPSTREAM, "final status %.*s, error %.*s", (int)(f[4].n < 20 ? f[4].n : 20),
              f[4].p ? f[4].p : "", (int)(f[5].n < 40 ? f[5].n : 40), f[5].p ? f[5].p : "");
}

static void openai_event(struct stream *s, const char *d, size_t n)
{
    struct jfield f[] = {
        { .path = "choices.0.delta.content" },
        { .path = "error" },
    };
    if (s->done_seen) {
        stream_fail(s, V_INVALID, "an event follows data: [DONE]");
        return;
    }
    if (n == 6 && memcmp(d, "[DONE]", 6) == 0) {
        s->done_seen = true;
        return;
    }
    if (json_scan(d, n, f, sizeof f / sizeof f[0]) != J_OBJ) {
        failf(s, V_INVALID, "event %u: data is not a JSON object: %.40s", s->events, d);
        return;
    }
    if (f[1].t != J_NONE && f[1].t != J_NULL)
        stream_fail(s, V_UPSTREAM, "the stream carries an error object");
    if (f[0].t == J_STR && f[0].n > 0)
        s->content_events++;
}

/* ---------- SSE ---------- */

static void sse_dispatch(struct stream *s)
{
    if (!s->ev_has_data)
        return; /* a blank line without data is no event (SSE spec) */
    if (s->t_first == 0)
        s->t_first = now_ns();
    if (s->ev_multi)
        failf(s, V_INVALID, "event %u has several data lines", s->events);
    else if (s->mode == MODE_CHATD)
        chatd_event(s, s->ev, s->ev_len);
    else
        openai_event(s, s->ev, s->ev_len);
    s->events++;
    s->ev_len = 0;
    s->ev_has_data = s->ev_multi = false;
}

static void sse_line(struct stream *s, const char *p, size_t n)
{
    if (n == 0) {
        sse_dispatch(s);
        return;
    }
    if (s->final_seen) { /* chatd: "Nothing follows it", comments included */
        stream_fail(s, V_INVALID, "bytes follow the final event");
        return;
    }
    if (p[0] == ':') {
        s->comments++;
        return;
    }
    const char *colon = memchr(p, ':', n);
    size_t flen = colon ? (size_t)(colon - p) : n;
    if (flen != 4 || memcmp(p, "data", 4) != 0)
        return; /* event:, id:, retry: and unknown fields carry nothing we check */
    const char *v = colon ? colon + 1 : p + n;
    size_t vn = (size_t)(p + n - v);
    if (vn && *v == ' ')
        v++, vn--;
    if (s->ev_has_data) {
        s->ev_multi = true;
        return;
    }
    if (!grow(&s->ev, &s->ev_cap, vn + 1)) {
        stream_fail(s, V_INVALID, "out of memory for an event");
        return;
    }
    memcpy(s->ev, v, vn);
    s->ev[vn] = '\0'; /* only for %.40s in messages */
    s->ev_len = vn;
    s->ev_has_data = true;
}

/* Splits body bytes into lines; a line cut by a read boundary is kept. */
static void sse_feed(struct stream *s, const char *p, size_t n)
{
    while (n > 0) {
        if (s->skip_lf) { /* CRLF split across reads */
            s->skip_lf = false;
            if (*p == '\n') {
                p++, n--;
                continue;
            }
        }
        const char *lf = memchr(p, '\n', n);
        const char *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);
        const char *end = cr ? cr : lf;
        if (!end) {
            if (s->line_len + n > MAX_LINE || !grow(&s->line, &s->line_cap, s->line_len + n)) {
                stream_fail(s, V_INVALID, "SSE line too long");
                return;
            }
            memcpy(s->line + s->line_len, p, n);
            s->line_len += n;
            return;
        }
        size_t len = (size_t)(end - p);
        if (s->line_len == 0) {
            sse_line(s, p, len); /* common case: the whole line is in this read */
        } else {
            if (!grow(&s->line, &s->line_cap, s->line_len + len)) {
                stream_fail(s, V_INVALID, "out of memory for a line");
                return;
            }
            memcpy(s->line + s->line_len, p, len);
            sse_line(s, s->line, s->line_len + len);
            s->line_len = 0;
        }
        s->skip_lf = *end == '\r';
        n -= len + 1;
        p = end + 1;
    }
}

/* ---------- HTTP callbacks ---------- */

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct stream *s = hp->data;
    if (s->in_value)
        s->hname_len = 0, s->in_value = false;
    for (size_t i = 0; i < len; i++) {
        if (s->hname_len < sizeof s->hname)
            s->hname[s->hname_len] = (char)(at[i] | 0x20);
        if (s->hname_len < UINT8_MAX)
            s->hname_len++;
    }
    return 0;
}

static void append_val(char *dst, uint8_t *dlen, size_t cap, const char *at, size_t len)
{
    size_t n = len < cap - *dlen ? len : cap - *dlen;
    memcpy(dst + *dlen, at, n);
    *dlen = (uint8_t)(*dlen + n);
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct stream *s = hp->data;
    s->in_value = true;
    if (s->hname_len == 12 && memcmp(s->hname, "content-type", 12) == 0)
        append_val(s->ctype, &s->ctype_len, sizeof s->ctype, at, len);
    else if (s->hname_len == 16 && memcmp(s->hname, "x-correlation-id", 16) == 0)
        append_val(s->hcid, &s->hcid_len, sizeof s->hcid, at, len);
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct stream *s = hp->data;
    if (hp->status_code / 100 == 1)
        return 0; /* 1xx: the real response follows */
    if (hp->status_code != 200) {
        failf(s, V_STATUS, "HTTP status %u", hp->status_code);
        return 0;
    }
    if (s->ctype_len < 17 || strncasecmp(s->ctype, "text/event-stream", 17) != 0)
        failf(s, V_INVALID, "Content-Type is '%.*s', not text/event-stream", s->ctype_len,
              s->ctype);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct stream *s = hp->data;
    if (s->v == V_PENDING || s->v == V_UPSTREAM) /* after a failure: only drained */
        sse_feed(s, at, len);
    return 0;
}

/* The end of the response: decide what was missing. */
static int on_message_complete(http_parser *hp)
{
    struct stream *s = hp->data;
    if (hp->status_code / 100 == 1) {
        s->ctype_len = s->hcid_len = 0;
        return 0;
    }
    s->done = true;
    s->keep_alive = http_should_keep_alive(hp);
    if (s->line_len > 0 || s->ev_has_data)
        stream_fail(s, s->final_seen ? V_INVALID : V_INCOMPLETE, "response ends inside an event");
    if (s->mode == MODE_CHATD && !s->final_seen)
        failf(s, V_INCOMPLETE, "no final event after %u events", s->events);
    if (s->mode == MODE_OPENAI && !s->done_seen)
        failf(s, V_INCOMPLETE, "no data: [DONE] after %u events", s->events);
    if (s->v == V_PENDING)
        s->v = V_OK;
    http_parser_pause(hp, 1); /* anything after this is not part of the response */
    return 0;
}

/* ---------- API ---------- */

void stream_global_init(void)
{
    g_hs.on_header_field = on_header_field;
    g_hs.on_header_value = on_header_value;
    g_hs.on_headers_complete = on_headers_complete;
    g_hs.on_body = on_body;
    g_hs.on_message_complete = on_message_complete;
}

void stream_init(struct stream *s, enum lg_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    stream_reset(s);
}

void stream_reset(struct stream *s)
{
    char *line = s->line, *ev = s->ev;
    size_t lcap = s->line_cap, ecap = s->ev_cap;
    enum lg_mode mode = s->mode;
    if (lcap > 4096) { /* keep small buffers across requests, drop big ones */
        free(line);
        line = NULL;
        lcap = 0;
    }
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->line = line, s->line_cap = lcap;
    s->ev = ev, s->ev_cap = ecap;
    http_parser_init(&s->hp, HTTP_RESPONSE);
    s->hp.data = s;
}

void stream_free(struct stream *s)
{
    free(s->line);
    free(s->ev);
    s->line = s->ev = NULL;
    s->line_cap = s->ev_cap = 0;
}

void stream_input(struct stream *s, const char *buf, size_t len)
{
    s->bytes += len;
    if (s->done) {
        stream_fail(s, V_INVALID, "bytes after the end of the response");
        return;
    }
    size_t n = http_parser_execute(&s->hp, &g_hs, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&s->hp);
    if (e == HPE_PAUSED) {
        if (n < len)
            stream_fail(s, V_INVALID, "bytes after the end of the response");
        return;
    }
    if (e != HPE_OK) {
        failf(s, V_INVALID, "bad HTTP framing: %s", http_errno_description(e));
        s->done = true;
    }
}

void stream_eof(struct stream *s)
{
    if (s->done)
        return;
    http_parser_execute(&s->hp, &g_hs, NULL, 0); /* ends a close-delimited body */
    if (!s->done) {
        failf(s, V_RESET, "connection closed %s the response",
              s->bytes ? "in the middle of" : "before");
        s->done = true;
    }
    s->keep_alive = false;
}
