/* fuzz_http: the request side of the http module (src/api/http*.c) through its
 * public face. The input, after a first byte that says whether to send it whole
 * or in pieces of 1 to 128 bytes, is written to one end of a socket pair whose
 * other end the server adopts;
 * the event loop runs after each piece, then after the client's half-close.
 * The handlers answer every request, streaming the answer for paths starting
 * with /s. Checks: what the server hands over keeps the promises of http.h;
 * what it writes starts with "HTTP/1."; after a protocol error, no other
 * request or error reaches the application; nothing leaks once the server is
 * freed. */
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/http.h"
#include "fuzz.h"

static int errors; /* this input's protocol errors */

static void check_hval(const struct http_hval *h)
{
    CHECK(h->len <= sizeof h->v);
    if (!h->present)
        CHECK(h->len == 0 && !h->invalid);
}

/* complete: past the headers (a protocol error may come before). */
static void check_request(const struct http_request *r, bool complete)
{
    if (complete)
        CHECK(r->method_name != NULL);
    if (r->path != NULL)
        CHECK(r->path_len < r->path_cap && r->path[r->path_len] == '\0' &&
              r->path_len <= HTTP_MAX_TARGET);
    check_hval(&r->content_type);
    check_hval(&r->correlation_id);
    check_hval(&r->authorization);
    check_hval(&r->origin);
    check_hval(&r->expect);
    check_hval(&r->acr_method);
    check_hval(&r->acr_headers);
}

static enum http_verdict on_headers(struct http_conn *c, struct http_request *req, void *ctx)
{
    (void)c, (void)ctx;
    check_request(req, true);
    return HTTP_READ_BODY;
}

static void on_request(struct http_conn *c, struct http_request *req, void *ctx)
{
    (void)ctx;
    check_request(req, true);
    CHECK(errors == 0); /* nothing is handed over after a protocol error */
    CHECK(req->body_len <= HTTP_MAX_BODY);
    if (req->body != NULL)
        CHECK(req->body[req->body_len] == '\0');
    const struct http_header h[] = { { "Content-Type", "text/plain" } };
    if (req->path != NULL && strncmp(req->path, "/s", 2) == 0) {
        http_stream_begin(c, 200, h, 1);
        http_stream_write(c, "data: 1\n\n", 9);
        http_stream_write(c, req->body ? req->body : "", req->body_len);
        http_stream_end(c);
    } else {
        http_respond(c, 200, h, 1, req->body ? req->body : "ok", req->body ? req->body_len : 2);
    }
}

static void on_protocol_error(struct http_conn *c, struct http_request *req, int status, void *ctx)
{
    (void)ctx;
    if (req != NULL)
        check_request(req, false);
    CHECK(status == 400 || status == 408 || status == 413 || status == 414 || status == 417 ||
          status == 431 || status == 501 || status == 505);
    errors++;
    http_respond(c, status, NULL, 0, "{}", 2);
}

/* Reads what the server wrote so far; checks the first bytes of the first response. */
static void drain(int fd, char *seen, size_t *nseen)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n && *nseen < 7; i++)
            seen[(*nseen)++] = buf[i];
    }
    if (*nseen > 0)
        CHECK(memcmp(seen, "HTTP/1.", *nseen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    if (base == NULL) {
        signal(SIGPIPE, SIG_IGN);
        CHECK((base = event_base_new()) != NULL);
    }
    if (size < 1)
        return 0;
    size_t piece = data[0] < 128 ? size : 1u + (data[0] & 0x7f); /* whole, or 1..128 bytes */
    data++, size--;

    const struct http_handlers h = { on_headers, on_request, on_protocol_error };
    struct http_server *srv = http_server_new(base, &h, NULL, 30, HTTP_MAX_BODY);
    int sv[2];
    CHECK(srv != NULL && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    CHECK(http_server_adopt(srv, sv[0]) == 0);
    errors = 0;
    char seen[7];
    size_t nseen = 0;
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        CHECK(write(sv[1], data + off, n) == (ssize_t)n || http_server_conn_count(srv) == 0);
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain(sv[1], seen, &nseen);
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 8 && http_server_conn_count(srv) > 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain(sv[1], seen, &nseen);
    }
    CHECK(errors <= 1); /* a protocol error ends the connection */
    http_server_free(srv);
    close(sv[1]);
    return 0;
}
