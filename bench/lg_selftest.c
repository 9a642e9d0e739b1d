/*
 * loadgen --selftest: the stream validator must give the right verdict for
 * canned responses however the bytes are cut. Each case is framed (chunked
 * in 7-byte chunks so chunk boundaries fall inside lines, Content-Length, or
 * close-delimited), then fed whole, split in two at every byte position, and
 * one byte at a time. Plus a table of JSON texts for the scanner.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

enum framing { FR_CHUNKED, FR_LENGTH, FR_CLOSE };

struct tcase {
    const char *name;
    enum lg_mode mode;
    const char *status_line; /* NULL: "HTTP/1.1 200 OK" */
    const char *headers;     /* NULL: Content-Type: text/event-stream */
    const char *body;
    enum framing framing;
    size_t cut;        /* drop this many final bytes, then EOF (a reset) */
    const char *after; /* bytes after the response */
    enum verdict want;
    int content; /* expected content events, -1: not checked */
};

#define CID "\"correlation_id\":\"c1\""
#define EV(seq, txt) \
    "data: {\"content\":\"" txt "\",\"sequence\":" #seq ",\"is_final\":false," CID "}\n\n"
#define FIN(seq)                                                                                  \
    "data: {\"content\":\"\",\"sequence\":" #seq ",\"is_final\":true," CID                        \
    ",\"status\":\"completed\",\"finish_reason\":\"stop\",\"duration_ms\":412,\"prompt_tokens\":" \
    "9,"                                                                                          \
    "\"completion_tokens\":2,\"total_tokens\":11}\n\n"
#define OAI(txt)                                                                          \
    "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0," \
    "\"delta\":{\"content\":\"" txt "\"},\"finish_reason\":null}]}\n\n"
#define OAI_END                                                                                    \
    "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" \
    "data: "                                                                                       \
    "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_" \
    "tokens\":12}}\n\n"
#define DONE  "data: [DONE]\n\n"
#define VALID EV(0, "Hel") EV(1, "lo \\u00e9 \xc3\xa9") FIN(2)

static const struct tcase cases[] = {
    { "chatd valid, chunked", MODE_CHATD, NULL, NULL, VALID, FR_CHUNKED, 0, NULL, V_OK, 2 },
    { "chatd valid, content-length", MODE_CHATD, NULL, NULL, VALID, FR_LENGTH, 0, NULL, V_OK, 2 },
    { "chatd valid, close-delimited", MODE_CHATD, "HTTP/1.0 200 OK", NULL, VALID, FR_CLOSE, 0, NULL,
      V_OK, 2 },
    { "chatd CRLF, comments, other fields", MODE_CHATD, NULL, NULL,
      ": keep-alive\r\n\r\nid: 1\r\nevent: "
      "message\r\ndata:{\"content\":\"a\",\"sequence\":0,\"is_final\":false," CID
      "}\r\n\r\n: ping\r\n\r\n"
      "data: {\"content\":\"\",\"sequence\":1,\"is_final\":true," CID
      ",\"status\":\"completed\"}\r\n\r\n",
      FR_CHUNKED, 0, NULL, V_OK, 1 },
    { "chatd lone CR line ends", MODE_CHATD, NULL, NULL,
      "data: {\"content\":\"a\",\"sequence\":0,\"is_final\":false," CID "}\r\r"
      "data: {\"content\":\"\",\"sequence\":1,\"is_final\":true," CID
      ",\"status\":\"completed\"}\r\r",
      FR_CHUNKED, 0, NULL, V_OK, 1 },
    { "chatd header id matches", MODE_CHATD, NULL,
      "Content-Type: text/event-stream; charset=utf-8\r\nX-Correlation-Id: c1\r\n", VALID,
      FR_CHUNKED, 0, NULL, V_OK, 2 },
    { "chatd header id differs", MODE_CHATD, NULL,
      "Content-Type: text/event-stream\r\nX-Correlation-Id: c2\r\n", VALID, FR_CHUNKED, 0, NULL,
      V_INVALID, -1 },
    { "chatd sequence gap", MODE_CHATD, NULL, NULL, EV(0, "a") EV(2, "b") FIN(3), FR_CHUNKED, 0,
      NULL, V_INVALID, -1 },
    { "chatd sequence starts at 1", MODE_CHATD, NULL, NULL, EV(1, "a") FIN(2), FR_CHUNKED, 0, NULL,
      V_INVALID, -1 },
    { "chatd sequence as string", MODE_CHATD, NULL, NULL,
      "data: {\"content\":\"a\",\"sequence\":\"0\",\"is_final\":false," CID "}\n\n" FIN(1),
      FR_CHUNKED, 0, NULL, V_INVALID, -1 },
    { "chatd no final event", MODE_CHATD, NULL, NULL, EV(0, "a") EV(1, "b"), FR_CHUNKED, 0, NULL,
      V_INCOMPLETE, -1 },
    { "chatd final without blank line", MODE_CHATD, NULL, NULL,
      EV(0, "a") "data: {\"content\":\"\",\"sequence\":1,\"is_final\":true," CID
                 ",\"status\":\"completed\"}\n",
      FR_LENGTH, 0, NULL, V_INCOMPLETE, -1 },
    { "chatd two finals", MODE_CHATD, NULL, NULL, EV(0, "a") FIN(1) FIN(2), FR_CHUNKED, 0, NULL,
      V_INVALID, -1 },
    { "chatd comment after final", MODE_CHATD, NULL, NULL, VALID ": late\n\n", FR_CHUNKED, 0, NULL,
      V_INVALID, -1 },
    { "chatd trailing comma JSON", MODE_CHATD, NULL, NULL,
      "data: {\"content\":\"a\",\"sequence\":0,\"is_final\":false," CID ",}\n\n" FIN(1), FR_CHUNKED,
      0, NULL, V_INVALID, -1 },
    { "chatd is_final missing", MODE_CHATD, NULL, NULL,
      "data: {\"content\":\"a\",\"sequence\":0," CID "}\n\n" FIN(1), FR_CHUNKED, 0, NULL, V_INVALID,
      -1 },
    { "chatd correlation id changes", MODE_CHATD, NULL, NULL,
      EV(0,
         "a") "data: {\"content\":\"\",\"sequence\":1,\"is_final\":true,\"correlation_id\":\"c9\","
              "\"status\":\"completed\"}\n\n",
      FR_CHUNKED, 0, NULL, V_INVALID, -1 },
    { "chatd two data lines in one event", MODE_CHATD, NULL, NULL,
      "data: {\"content\":\"a\",\"sequence\":0,\ndata: \"is_final\":false," CID "}\n\n" FIN(1),
      FR_CHUNKED, 0, NULL, V_INVALID, -1 },
    { "chatd invalid UTF-8", MODE_CHATD, NULL, NULL, EV(0, "\xc3\x28") FIN(1), FR_CHUNKED, 0, NULL,
      V_INVALID, -1 },
    { "chatd final status error", MODE_CHATD, NULL, NULL,
      EV(0, "a") "data: {\"content\":\"\",\"sequence\":1,\"is_final\":true," CID
                 ",\"status\":\"error\","
                 "\"error\":{\"error\":\"upstream_rate_limited\",\"detail\":\"x\"},\"duration_ms\":"
                 "3}\n\n",
      FR_CHUNKED, 0, NULL, V_UPSTREAM, -1 },
    { "chatd HTTP 503", MODE_CHATD, "HTTP/1.1 503 Service Unavailable",
      "Content-Type: application/json\r\nRetry-After: 1\r\n",
      "{\"error\":\"overloaded\",\"detail\":\"x\",\"correlation_id\":\"c1\"}", FR_LENGTH, 0, NULL,
      V_STATUS, -1 },
    { "chatd 200 but JSON content type", MODE_CHATD, NULL, "Content-Type: application/json\r\n",
      VALID, FR_LENGTH, 0, NULL, V_INVALID, -1 },
    { "chatd reset mid-body", MODE_CHATD, NULL, NULL, VALID, FR_CHUNKED, 30, NULL, V_RESET, -1 },
    { "chatd reset mid-body, content-length", MODE_CHATD, NULL, NULL, VALID, FR_LENGTH, 1, NULL,
      V_RESET, -1 },
    { "chatd bytes after the response", MODE_CHATD, NULL, NULL, VALID, FR_CHUNKED, 0,
      "HTTP/1.1 200", V_INVALID, -1 },
    { "openai valid", MODE_OPENAI, NULL, NULL,
      OAI("tok ") OAI("\\\"q\\\" ") OAI("\xe2\x82\xac") OAI_END DONE, FR_CHUNKED, 0, NULL, V_OK,
      3 },
    { "openai after 100 Continue", MODE_OPENAI, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
      NULL, OAI("a") DONE, FR_CHUNKED, 0, NULL, V_OK, 1 },
    { "openai missing [DONE]", MODE_OPENAI, NULL, NULL, OAI("a") OAI_END, FR_CHUNKED, 0, NULL,
      V_INCOMPLETE, -1 },
    { "openai event after [DONE]", MODE_OPENAI, NULL, NULL, OAI("a") DONE OAI("b"), FR_CHUNKED, 0,
      NULL, V_INVALID, -1 },
    { "openai bad JSON", MODE_OPENAI, NULL, NULL, "data: {\"choices\":[01]}\n\n" DONE, FR_CHUNKED,
      0, NULL, V_INVALID, -1 },
    { "openai error object", MODE_OPENAI, NULL, NULL,
      "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n" DONE,
      FR_CHUNKED, 0, NULL, V_UPSTREAM, -1 },
};

/* Frames a case's body into a full HTTP response. Caller frees. */
static char *frame(const struct tcase *t, size_t *outlen)
{
    size_t blen = strlen(t->body);
    size_t cap = blen * 3 + 1024 + (t->after ? strlen(t->after) : 0);
    char *r = malloc(cap);
    size_t n =
        (size_t)snprintf(r, cap, "%s\r\n%s", t->status_line ? t->status_line : "HTTP/1.1 200 OK",
                         t->headers ? t->headers : "Content-Type: text/event-stream\r\n");
    if (t->framing == FR_CHUNKED) {
        n += (size_t)snprintf(r + n, cap - n, "Transfer-Encoding: chunked\r\n\r\n");
        for (size_t off = 0; off < blen; off += 7) {
            size_t k = blen - off < 7 ? blen - off : 7;
            n += (size_t)snprintf(r + n, cap - n, "%zx\r\n%.*s\r\n", k, (int)k, t->body + off);
        }
        n += (size_t)snprintf(r + n, cap - n, "0\r\n\r\n");
    } else if (t->framing == FR_LENGTH) {
        n += (size_t)snprintf(r + n, cap - n, "Content-Length: %zu\r\n\r\n%s", blen, t->body);
    } else {
        n += (size_t)snprintf(r + n, cap - n, "\r\n%s", t->body);
    }
    n -= t->cut;
    if (t->after)
        n += (size_t)snprintf(r + n, cap - n, "%s", t->after);
    *outlen = n;
    return r;
}

/* Feeds the response in pieces cut at the given positions; returns a message or NULL. */
static const char *run_once(const struct tcase *t, const char *r, size_t n, size_t step,
                            size_t split)
{
    static char msg[300];
    struct stream s;
    stream_init(&s, t->mode);
    if (step) {
        for (size_t i = 0; i < n; i += step)
            stream_input(&s, r + i, n - i < step ? n - i : step);
    } else {
        stream_input(&s, r, split);
        if (split < n && !(s.done && s.v != V_OK))
            stream_input(&s, r + split, n - split);
    }
    if (t->framing == FR_CLOSE || t->cut)
        stream_eof(&s);
    const char *res = NULL;
    if (!s.done || s.v != t->want || (t->content >= 0 && (int)s.content_events != t->content)) {
        snprintf(msg, sizeof msg, "got %s (%s), %u content events; want %s",
                 s.done ? verdict_name(s.v) : "not done", s.why, s.content_events,
                 verdict_name(t->want));
        res = msg;
    }
    stream_free(&s);
    return res;
}

static int test_case(const struct tcase *t)
{
    size_t n;
    char *r = frame(t, &n);
    const char *err = run_once(t, r, n, 0, n);
    size_t where = n;
    for (size_t sp = 0; !err && sp < n; sp++)
        err = run_once(t, r, n, 0, where = sp);
    if (!err)
        err = run_once(t, r, n, 1, where = 0);
    free(r);
    if (err)
        fprintf(stderr, "FAIL %s (split at %zu): %s\n", t->name, where, err);
    return err != NULL;
}

static int test_json(void)
{
    static const struct {
        const char *text;
        bool ok;
    } j[] = {
        { "{}", true },
        { "[]", true },
        { " {\"a\":[1,-2.5e+3,true,false,null,\"x\"]} ", true },
        { "\"\\u00e9\\n\\\"\"", true },
        { "0", true },
        { "-0.0", true },
        { "", false },
        { "{", false },
        { "{\"a\":1,}", false },
        { "[1,]", false },
        { "01", false },
        { "1.", false },
        { "+1", false },
        { "\"\\x\"", false },
        { "\"\\u12G4\"", false },
        { "\"a\x01\"", false },
        { "\"\xc0\xaf\"", false },
        { "\"\xed\xa0\x80\"", false },
        { "{\"a\":1}{}", false },
        { "nul", false },
        { "{\"a\" 1}", false },
        { "[1 2]", false },
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof j / sizeof j[0]; i++) {
        bool ok = json_scan(j[i].text, strlen(j[i].text), NULL, 0) != J_NONE;
        if (ok != j[i].ok) {
            fprintf(stderr, "FAIL json '%s': %s, want %s\n", j[i].text, ok ? "valid" : "invalid",
                    j[i].ok ? "valid" : "invalid");
            fails++;
        }
    }
    struct jfield f[] = { { .path = "choices.1.delta.content" }, { .path = "n" } };
    const char *doc = "{\"n\":42,\"choices\":[{\"delta\":{}},{\"delta\":{\"content\":\"hi\"}}]}";
    if (json_scan(doc, strlen(doc), f, 2) != J_OBJ || !jfield_is(&f[0], "hi") ||
        jfield_uint(&f[1]) != 42) {
        fprintf(stderr, "FAIL json field capture\n");
        fails++;
    }
    return fails;
}

int run_selftest(void)
{
    int failed = 0, passed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (test_case(&cases[i]))
            failed++;
        else
            passed++;
    }
    int jf = test_json();
    failed += jf ? 1 : 0;
    passed += jf ? 0 : 1;
    printf("loadgen selftest: %d passed, %d failed\n", passed, failed);
    return failed;
}
