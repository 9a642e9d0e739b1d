/*
 * fakeprov — a fake OpenAI-compatible streaming provider for benchmarks.
 *
 * POST <anything>/chat/completions answers with the OpenAI streaming format
 * (chat.completion.chunk events, a finish chunk, a usage chunk, [DONE]) as
 * an HTTP/1.1 chunked text/event-stream, and keeps the connection alive.
 *
 * Design goals, because this is the floor every target is compared with:
 *  - single-threaded libevent loop; the HTTP/1.1 layer is fp_http.c, which
 *    keeps no read buffer per connection;
 *  - per stream only the conn struct, three small events, an output evbuffer
 *    (empty between tokens) and one pre-framed token chunk: a few hundred
 *    bytes, so 8,000+ open streams cost a few MB;
 *  - token pacing on absolute deadlines (start + first delay + k * delay) so
 *    timer lateness never accumulates over a long stream; never sleep().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fp.h"

#define DEFAULT_MODEL "gpt-4o-mini"
#define PROMPT_TOKENS 9
#define EV_PREFIX                                                            \
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\"," \
    "\"created\":1700000000,\"model\":"

struct opts {
    int port;
    int tokens;
    int delay_ms;
    int first_delay_ms; /* -1: same as delay_ms */
    bool verbose;
    bool typing; /* canned answers at a typing pace (fp_typing.c), for make demo */
};

static struct opts g_opt = { 0, 20, 0, -1, false, false };
struct event_base *g_base;
static unsigned long long g_streams;

/* ---------- output helpers ---------- */

/* One SSE event becomes one HTTP chunk (or raw bytes for HTTP/1.0). */
static void add_event(struct conn *c, const char *data, size_t len)
{
    if (c->chunked)
        evbuffer_add_printf(c->out, "%zx\r\n", len);
    evbuffer_add(c->out, data, len);
    if (c->chunked)
        evbuffer_add(c->out, "\r\n", 2);
}

static void add_eventf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_eventf(struct conn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) { /* only with an absurd model name */
        c->closing = true;
        return;
    }
    add_event(c, buf, (size_t)n);
}

/* ---------- the stream ---------- */

void fp_stream_free(struct conn *c)
{
    free(c->model);
    free(c->tok);
    c->model = c->tok = NULL;
    c->typing = NULL;
    c->streaming = false;
}

static bool stream_prepare(struct conn *c, const char *model_json, int total, bool cut)
{
    c->model = strdup(model_json);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     EV_PREFIX "%s,\"choices\":[{\"index\":0,\"delta\":"
                               "{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n",
                     model_json);
    if (!c->model || n < 0 || (size_t)n >= sizeof buf)
        return false;
    /* Pre-frame the token once: each later token is a single evbuffer_add. */
    char head[16];
    int h = c->chunked ? snprintf(head, sizeof head, "%x\r\n", n) : 0;
    c->tok_len = (size_t)h + (size_t)n + (c->chunked ? 2 : 0);
    c->tok = malloc(c->tok_len);
    if (!c->tok)
        return false;
    memcpy(c->tok, head, (size_t)h);
    memcpy(c->tok + h, buf, (size_t)n);
    if (c->chunked)
        memcpy(c->tok + h + n, "\r\n", 2);
    c->sent = 0;
    c->total = total;
    c->length_cut = cut;
    return true;
}

/* --typing: the next word of the canned answer, JSON-escaped. */
static void typing_token(struct conn *c)
{
    size_t len = fp_typing_token_len(c->typing);
    json_t *s = json_stringn(c->typing, len);
    char *esc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    c->typing += len;
    if (esc == NULL) {
        c->closing = true;
        return;
    }
    add_eventf(c,
               EV_PREFIX "%s,\"choices\":[{\"index\":0,\"delta\":{%s\"content\":%s},"
                         "\"finish_reason\":null}]}\n\n",
               c->model, c->sent == 0 ? "\"role\":\"assistant\"," : "", esc);
    free(esc);
}

static void stream_token(struct conn *c)
{
    if (c->typing)
        typing_token(c);
    else if (c->sent == 0) /* the first delta also carries the role, as OpenAI does */
        add_eventf(c,
                   EV_PREFIX "%s,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                             "\"content\":\"tok \"},\"finish_reason\":null}]}\n\n",
                   c->model);
    else
        evbuffer_add(c->out, c->tok, c->tok_len);
    c->sent++;
}

static void stream_finish(struct conn *c)
{
    add_eventf(
        c, EV_PREFIX "%s,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}\n\n",
        c->model, c->length_cut ? "length" : "stop");
    add_eventf(c,
               EV_PREFIX "%s,\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                         "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
               c->model, PROMPT_TOKENS, c->sent, PROMPT_TOKENS + c->sent);
    add_event(c, "data: [DONE]\n\n", 14);
    if (c->chunked)
        evbuffer_add(c->out, "0\r\n\r\n", 5);
    else
        c->closing = true; /* HTTP/1.0: the body ends with the connection */
    if (!c->keep_alive)
        c->closing = true;
    fp_stream_free(c);
    g_streams++;
}

/* The gap before the next token. */
static int gap_ms(void)
{
    return g_opt.typing ? fp_typing_delay_ms() : g_opt.delay_ms;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Arms the token timer for c->due_us. libevent's cached "now" is refreshed
 * first: it dates from the start of this loop turn, and a busy turn would
 * otherwise make the timer fire early. */
static void arm_timer(struct conn *c)
{
    event_base_update_cache_time(g_base);
    uint64_t now = mono_us();
    uint64_t wait = c->due_us > now ? c->due_us - now : 0;
    struct timeval tv = { (time_t)(wait / 1000000u), (suseconds_t)(wait % 1000000u) };
    evtimer_add(c->timer, &tv);
}

/* Timer callback: one token per tick, then the tail of the stream. */
static void stream_step(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    stream_token(c);
    if (c->sent < c->total) {
        c->due_us += (uint64_t)gap_ms() * 1000u;
        arm_timer(c);
    } else {
        stream_finish(c);
    }
    conn_resume(c);
}

static void stream_start(struct conn *c, const char *model_json, int total, bool cut)
{
    evbuffer_add_printf(c->out,
                        "HTTP/1.%d 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Cache-Control: no-cache\r\n%s%s\r\n",
                        c->chunked ? 1 : 0, c->chunked ? "Transfer-Encoding: chunked\r\n" : "",
                        c->keep_alive ? "" : "Connection: close\r\n");
    if (!stream_prepare(c, model_json, total, cut)) {
        fp_stream_free(c);
        c->closing = true;
        return;
    }
    c->streaming = true;
    bool paced = g_opt.delay_ms > 0 || g_opt.first_delay_ms > 0 || g_opt.typing;
    if (!paced || total == 0) {
        while (c->sent < c->total)
            stream_token(c);
        stream_finish(c);
        return;
    }
    if (!c->timer)
        c->timer = evtimer_new(g_base, stream_step, c);
    c->due_us = mono_us() + (uint64_t)g_opt.first_delay_ms * 1000u;
    if (g_opt.first_delay_ms == 0) { /* headers and first token at once */
        stream_token(c);
        if (c->sent == c->total) {
            stream_finish(c);
            return;
        }
        c->due_us += (uint64_t)gap_ms() * 1000u;
    }
    arm_timer(c);
}

/* ---------- request handling ---------- */

/* Reads "model" and "max_tokens"; returns false when the body is not a JSON object. */
static bool parse_request(struct conn *c, char **model_json, int *max_tokens)
{
    json_error_t jerr;
    json_t *root = json_loadb(c->body ? c->body : "", c->body_len, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return false;
    }
    json_t *m = json_object_get(root, "model");
    json_t *mt = json_object_get(root, "max_tokens");
    if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 200)
        m = NULL;
    json_t *ms = m ? json_incref(m) : json_string(DEFAULT_MODEL);
    *model_json = json_dumps(ms, JSON_ENCODE_ANY); /* escaped, with quotes */
    json_decref(ms);
    *max_tokens = json_is_integer(mt) ? (int)json_integer_value(mt) : -1;
    json_decref(root);
    return *model_json != NULL;
}

void fp_handle_request(struct conn *c)
{
    bool path_ok = c->path_len >= SUFFIX_LEN && memcmp(c->tail, PATH_SUFFIX, SUFFIX_LEN) == 0;
    char *model_json = NULL;
    int max_tokens = -1;
    if (!path_ok)
        send_error(c, 404, "Not Found", "Unknown path; POST .../chat/completions");
    else if (c->hp.method != HTTP_POST)
        send_error(c, 405, "Method Not Allowed", "Use POST");
    else if (c->too_big)
        send_error(c, 413, "Payload Too Large", "Request body over 1 MiB");
    else if (!parse_request(c, &model_json, &max_tokens))
        send_error(c, 400, "Bad Request", "Body is not a JSON object");
    else {
        int total = g_opt.tokens;
        if (g_opt.typing) {
            c->typing = fp_typing_answer();
            total = fp_typing_token_count(c->typing);
        }
        bool cut = max_tokens >= 0 && max_tokens < total;
        stream_start(c, model_json, cut ? max_tokens : total, cut);
    }
    free(model_json);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopbreak(g_base);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fakeprov [--port P] [--tokens N] [--delay-ms D] [--first-delay-ms F] "
               "[--typing] [-v]\n"
               "  --port P           listen on 127.0.0.1:P (0 = any free port; default 0)\n"
               "  --tokens N         content chunks per stream (default 20)\n"
               "  --delay-ms D       gap between tokens (default 0: the whole stream at once)\n"
               "  --first-delay-ms F wait before the first token (default: D)\n"
               "  --typing           canned answers, word by word, 20-60 ms apart (make demo);\n"
               "                     --tokens and --delay-ms are then ignored, F defaults to 300\n"
               "  -v                 print counters on exit\n");
}

static int int_arg(const char *s, const char *name, int lo, int hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "fakeprov: %s must be an integer in [%d, %d], got '%s'\n", name, lo, hi, s);
        exit(2);
    }
    return (int)v;
}

static void parse_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, NULL, 'p' },
        { "tokens", required_argument, NULL, 'n' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "first-delay-ms", required_argument, NULL, 'f' },
        { "verbose", no_argument, NULL, 'v' },
        { "typing", no_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "p:n:d:f:vh", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': g_opt.port = int_arg(optarg, "--port", 0, 65535); break;
        case 'n': g_opt.tokens = int_arg(optarg, "--tokens", 0, 1000000); break;
        case 'd': g_opt.delay_ms = int_arg(optarg, "--delay-ms", 0, 3600000); break;
        case 'f': g_opt.first_delay_ms = int_arg(optarg, "--first-delay-ms", 0, 3600000); break;
        case 'v': g_opt.verbose = true; break;
        case 't': g_opt.typing = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    if (g_opt.first_delay_ms < 0)
        g_opt.first_delay_ms = g_opt.typing ? 300 : g_opt.delay_ms;
}

int main(int argc, char **argv)
{
    parse_opts(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    /* Precise timer: CLOCK_MONOTONIC and timerfd instead of the coarse clock
     * (4 ms ticks here), which would put jitter of that size on every token. */
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    g_base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    int port = g_base ? http_start(g_opt.port) : -1;
    if (port < 0) {
        fprintf(stderr,
                "fakeprov: cannot listen on 127.0.0.1:%d: %s. Is the port in use? "
                "Pick another with --port (0 = any free port).\n",
                g_opt.port, strerror(errno));
        return 1;
    }
    struct event *si = evsignal_new(g_base, SIGINT, on_signal, NULL);
    struct event *st = evsignal_new(g_base, SIGTERM, on_signal, NULL);
    event_add(si, NULL);
    event_add(st, NULL);
    fprintf(stderr, "fakeprov listening on 127.0.0.1:%d\n", port);
    event_base_dispatch(g_base);
    if (g_opt.verbose)
        fprintf(stderr, "fakeprov: %llu connections accepted, %llu streams completed\n", g_accepted,
                g_streams);
    http_stop();
    event_free(si);
    event_free(st);
    event_base_free(g_base);
    return 0;
}
