/*
 * loadgen — drives streaming POSTs over keep-alive HTTP/1.1 connections and
 * checks every byte of every stream (see loadgen.h for the parts).
 *
 * This file: options, target URL and request, the report, the exit status.
 * Exit status: 0 when every started stream completed valid, 1 when any
 * stream failed or was invalid (or none completed), 2 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "loadgen.h"

#define DEFAULT_CHATD_BODY "{\"message\":\"What is 2+2?\"}"
#define DEFAULT_OPENAI_BODY                                        \
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\"," \
    "\"content\":\"What is 2+2?\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}"

struct lg G;

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --url http://127.0.0.1:PORT/path [options]\n"
               "       loadgen --selftest\n"
               "  --mode chatd|openai   stream contract to verify (default chatd)\n"
               "  --body JSON           request body (default: a small chat request for the mode)\n"
               "  --header 'K: V'       extra request header (repeatable)\n"
               "load shape (one of):\n"
               "  --concurrency C       closed loop on C keep-alive connections (default 64)\n"
               "  --rate R              open loop: R new streams per second\n"
               "  --streams N [--hold]  N streams at once, then wait for all\n"
               "  --duration S          seconds for closed/open loop (default 10)\n"
               "  --requests N          closed loop: stop after N streams instead\n"
               "other:\n"
               "  --timeout S           per-stream limit, counted as an error (default 60)\n"
               "  --max-conns N         connection cap (default: fd limit - 32)\n"
               "  --json                one-line JSON report on stdout (table goes to stderr)\n"
               "  --quiet               no table\n");
}

static double num_arg(const char *s, const char *name, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "loadgen: %s must be a number in [%g, %g], got '%s'\n", name, lo, hi, s);
        exit(2);
    }
    return v;
}

static void add_header(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || strpbrk(h, "\r\n")) {
        fprintf(stderr, "loadgen: --header wants 'Name: value', got '%s'\n", h);
        exit(2);
    }
    size_t old = G.o.headers ? strlen(G.o.headers) : 0;
    char *n = realloc(G.o.headers, old + strlen(h) + 3);
    if (!n)
        exit(2);
    strcpy(n + old, h);
    strcat(n + old, "\r\n");
    G.o.headers = n;
}

/* Splits http://host[:port]/path; only plain http is supported. */
static int parse_url(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend)
            return -1;
        p = hend + 1;
        h++;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    if (hend == h || (size_t)(hend - h) >= sizeof G.o.host)
        return -1;
    memcpy(G.o.host, h, (size_t)(hend - h));
    G.o.port = 80;
    if (*p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (port <= 0 || port > 65535)
            return -1;
        G.o.port = (int)port;
        p = e;
    }
    if (*p && *p != '/')
        return -1;
    snprintf(G.o.path, sizeof G.o.path, "%s", *p ? p : "/");
    return 0;
}

/* Resolves the host; refuses anything but loopback (this tool floods). */
static int resolve(void)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", G.o.port);
    int rc = getaddrinfo(G.o.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: cannot resolve '%s': %s\n", G.o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&G.addr, res->ai_addr, res->ai_addrlen);
    G.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    bool loop = false;
    if (G.addr.ss_family == AF_INET)
        loop = (ntohl(((struct sockaddr_in *)&G.addr)->sin_addr.s_addr) >> 24) == 127;
    else if (G.addr.ss_family == AF_INET6)
        loop = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&G.addr)->sin6_addr);
    if (!loop) {
        fprintf(stderr,
                "loadgen: '%s' is not a loopback address; this tool only loads "
                "servers on this machine (127.0.0.0/8 or ::1).\n",
                G.o.host);
        return -1;
    }
    return 0;
}

static int build_request(void)
{
    const char *body = G.o.body                 ? G.o.body
                       : G.o.mode == MODE_CHATD ? DEFAULT_CHATD_BODY
                                                : DEFAULT_OPENAI_BODY;
    size_t blen = strlen(body);
    const char *hdrs = G.o.headers ? G.o.headers : "";
    size_t cap = strlen(G.o.path) + strlen(G.o.host) + strlen(hdrs) + blen + 256;
    G.req = malloc(cap);
    if (!G.req)
        return -1;
    int n = snprintf(G.req, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: chatd-loadgen\r\n"
                     "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n%s",
                     G.o.path, G.o.host, G.o.port, blen, hdrs, body);
    G.req_len = (size_t)n;
    return 0;
}

static void parse_opts(int argc, char **argv, bool *selftest)
{
    enum {
        O_URL = 256,
        O_MODE,
        O_BODY,
        O_HEADER,
        O_CONC,
        O_DUR,
        O_REQS,
        O_RATE,
        O_STREAMS,
        O_HOLD,
        O_TIMEOUT,
        O_MAXC,
        O_JSON,
        O_QUIET,
        O_SELF,
        O_HELP
    };
    static const struct option lo[] = {
        { "url", 1, 0, O_URL },
        { "mode", 1, 0, O_MODE },
        { "body", 1, 0, O_BODY },
        { "header", 1, 0, O_HEADER },
        { "concurrency", 1, 0, O_CONC },
        { "duration", 1, 0, O_DUR },
        { "requests", 1, 0, O_REQS },
        { "rate", 1, 0, O_RATE },
        { "streams", 1, 0, O_STREAMS },
        { "hold", 0, 0, O_HOLD },
        { "timeout", 1, 0, O_TIMEOUT },
        { "max-conns", 1, 0, O_MAXC },
        { "json", 0, 0, O_JSON },
        { "quiet", 0, 0, O_QUIET },
        { "selftest", 0, 0, O_SELF },
        { "help", 0, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    G.o.concurrency = 64;
    G.o.duration_s = 10;
    G.o.timeout_s = 60;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_URL: G.o.url = optarg; break;
        case O_MODE:
            if (strcmp(optarg, "chatd") && strcmp(optarg, "openai")) {
                fprintf(stderr, "loadgen: --mode is chatd or openai\n");
                exit(2);
            }
            G.o.mode = strcmp(optarg, "chatd") ? MODE_OPENAI : MODE_CHATD;
            break;
        case O_BODY: G.o.body = optarg; break;
        case O_HEADER: add_header(optarg); break;
        case O_CONC: G.o.concurrency = (int)num_arg(optarg, "--concurrency", 1, 1000000); break;
        case O_DUR: G.o.duration_s = num_arg(optarg, "--duration", 0.01, 86400); break;
        case O_REQS: G.o.requests = (long long)num_arg(optarg, "--requests", 1, 1e12); break;
        case O_RATE:
            G.o.rate = num_arg(optarg, "--rate", 0.001, 1e7);
            G.o.shape = SHAPE_OPEN;
            break;
        case O_STREAMS: G.o.streams = (int)num_arg(optarg, "--streams", 1, 1000000); break;
        case O_HOLD: break; /* --streams already means "all at once, then wait" */
        case O_TIMEOUT: G.o.timeout_s = num_arg(optarg, "--timeout", 0.01, 86400); break;
        case O_MAXC: G.o.max_conns = (int)num_arg(optarg, "--max-conns", 1, 1000000); break;
        case O_JSON: G.o.json = true; break;
        case O_QUIET: G.o.quiet = true; break;
        case O_SELF: *selftest = true; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (G.o.streams)
        G.o.shape = SHAPE_HOLD;
    if (optind < argc || (!*selftest && !G.o.url)) {
        usage(stderr);
        exit(2);
    }
}

/* ---------- report ---------- */

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static uint64_t n_errors(void)
{
    const uint64_t *v = G.st.by_verdict;
    return v[V_STATUS] + v[V_CONNECT] + v[V_RESET] + v[V_TIMEOUT] + v[V_UPSTREAM];
}

static const char *shape_desc(char *buf, size_t n)
{
    if (G.o.shape == SHAPE_HOLD)
        snprintf(buf, n, "%d streams at once", G.o.streams);
    else if (G.o.shape == SHAPE_OPEN)
        snprintf(buf, n, "open loop %g streams/s for %g s", G.o.rate, G.o.duration_s);
    else if (G.o.requests)
        snprintf(buf, n, "closed loop %d conns, %lld requests", G.o.concurrency, G.o.requests);
    else
        snprintf(buf, n, "closed loop %d conns for %g s", G.o.concurrency, G.o.duration_s);
    return buf;
}

static void print_table(FILE *f, double el)
{
    const uint64_t *v = G.st.by_verdict;
    const struct hist *t = &G.st.ttfe, *d = &G.st.total;
    char sh[96];
    fprintf(f, "loadgen %s, %s -> %s\n", G.o.mode == MODE_CHATD ? "chatd" : "openai",
            shape_desc(sh, sizeof sh), G.o.url);
    fprintf(f, "  %-22s %llu in %.2f s = %.1f streams/s (started %llu)\n", "completed streams",
            (unsigned long long)v[V_OK], el, (double)v[V_OK] / el,
            (unsigned long long)G.st.started);
    fprintf(f, "  %-22s p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms\n", "time to first event",
            ms(hist_pct(t, 50)), ms(hist_pct(t, 90)), ms(hist_pct(t, 99)), ms(t->max));
    fprintf(f, "  %-22s p50 %.2f  p99 %.2f  max %.2f ms\n", "whole stream", ms(hist_pct(d, 50)),
            ms(hist_pct(d, 99)), ms(d->max));
    fprintf(
        f,
        "  %-22s %llu (http_status %llu, connect %llu, reset %llu, timeout %llu, upstream %llu)\n",
        "errors", (unsigned long long)n_errors(), (unsigned long long)v[V_STATUS],
        (unsigned long long)v[V_CONNECT], (unsigned long long)v[V_RESET],
        (unsigned long long)v[V_TIMEOUT], (unsigned long long)v[V_UPSTREAM]);
    fprintf(f, "  %-22s %llu invalid, %llu incomplete\n", "bad streams",
            (unsigned long long)v[V_INVALID], (unsigned long long)v[V_INCOMPLETE]);
    fprintf(f, "  %-22s %llu events (%llu with content), %llu bytes, %llu connections opened\n",
            "traffic", (unsigned long long)G.st.events, (unsigned long long)G.st.content_events,
            (unsigned long long)G.st.bytes, (unsigned long long)G.st.conns_opened);
    if (G.st.emfile || G.st.addrnotavail || G.st.queued || G.st.dropped)
        fprintf(f, "  %-22s EMFILE %llu, EADDRNOTAVAIL %llu, queued %llu, dropped %llu\n",
                "limits hit", (unsigned long long)G.st.emfile,
                (unsigned long long)G.st.addrnotavail, (unsigned long long)G.st.queued,
                (unsigned long long)G.st.dropped);
    if (G.st.stray)
        fprintf(f, "  %-22s %llu idle connections got bytes after their response ended\n",
                "stray bytes", (unsigned long long)G.st.stray);
    if (G.st.first_failure[0])
        fprintf(f, "  first failure: %s\n", G.st.first_failure);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c); /* non-ASCII bytes of a quoted stream: escaped raw */
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_json(FILE *f, double el)
{
    const uint64_t *v = G.st.by_verdict;
    const struct hist *t = &G.st.ttfe, *d = &G.st.total;
    static const char *const shapes[] = { "closed", "open", "hold" };
    fprintf(f, "{\"mode\":\"%s\",\"shape\":\"%s\",\"url\":",
            G.o.mode == MODE_CHATD ? "chatd" : "openai", shapes[G.o.shape]);
    json_str(f, G.o.url);
    fprintf(f,
            ",\"concurrency\":%d,\"rate\":%g,\"streams\":%d,\"elapsed_s\":%.3f,\"started\":%llu,"
            "\"completed\":%llu,\"streams_per_s\":%.1f,",
            G.o.shape == SHAPE_CLOSED ? G.o.concurrency : 0, G.o.rate, G.o.streams, el,
            (unsigned long long)G.st.started, (unsigned long long)v[V_OK], (double)v[V_OK] / el);
    fprintf(f,
            "\"ttfe_p50_ms\":%.3f,\"ttfe_p90_ms\":%.3f,\"ttfe_p99_ms\":%.3f,\"ttfe_max_ms\":%.3f,"
            "\"stream_p50_ms\":%.3f,\"stream_p99_ms\":%.3f,\"stream_max_ms\":%.3f,",
            ms(hist_pct(t, 50)), ms(hist_pct(t, 90)), ms(hist_pct(t, 99)), ms(t->max),
            ms(hist_pct(d, 50)), ms(hist_pct(d, 99)), ms(d->max));
    fprintf(f,
            "\"errors\":%llu,\"err_http_status\":%llu,\"err_connect\":%llu,\"err_reset\":%llu,"
            "\"err_timeout\":%llu,\"err_upstream\":%llu,\"invalid\":%llu,\"incomplete\":%llu,",
            (unsigned long long)n_errors(), (unsigned long long)v[V_STATUS],
            (unsigned long long)v[V_CONNECT], (unsigned long long)v[V_RESET],
            (unsigned long long)v[V_TIMEOUT], (unsigned long long)v[V_UPSTREAM],
            (unsigned long long)v[V_INVALID], (unsigned long long)v[V_INCOMPLETE]);
    fprintf(
        f,
        "\"events\":%llu,\"content_events\":%llu,\"bytes\":%llu,\"conns_opened\":%llu,"
        "\"emfile\":%llu,\"eaddrnotavail\":%llu,\"queued\":%llu,\"dropped\":%llu,\"stray\":%llu,"
        "\"first_failure\":",
        (unsigned long long)G.st.events, (unsigned long long)G.st.content_events,
        (unsigned long long)G.st.bytes, (unsigned long long)G.st.conns_opened,
        (unsigned long long)G.st.emfile, (unsigned long long)G.st.addrnotavail,
        (unsigned long long)G.st.queued, (unsigned long long)G.st.dropped,
        (unsigned long long)G.st.stray);
    json_str(f, G.st.first_failure);
    fputs("}\n", f);
}

static void on_interrupt(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    fprintf(stderr, "loadgen: interrupted; reporting what finished\n");
    event_base_loopbreak(G.base);
}

int main(int argc, char **argv)
{
    bool selftest = false;
    parse_opts(argc, argv, &selftest);
    stream_global_init();
    if (selftest)
        return run_selftest() ? 1 : 0;
    if (parse_url(G.o.url) < 0) {
        fprintf(stderr, "loadgen: --url must look like http://127.0.0.1:PORT/path, got '%s'\n",
                G.o.url);
        return 2;
    }
    if (resolve() < 0 || build_request() < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    G.base = event_base_new();
    hist_init(&G.st.ttfe);
    hist_init(&G.st.total);
    struct event *si = evsignal_new(G.base, SIGINT, on_interrupt, NULL);
    event_add(si, NULL);
    if (run_load() < 0)
        return 2;
    double el = (double)(G.t_end - G.t_start) / 1e9;
    if (el <= 0)
        el = 1e-9;
    if (!G.o.quiet)
        print_table(G.o.json ? stderr : stdout, el);
    if (G.o.json)
        print_json(stdout, el);
    bool bad = G.st.by_verdict[V_OK] == 0 || G.st.by_verdict[V_OK] != G.st.started ||
               G.st.dropped > 0 || G.st.stray > 0;
    event_free(si);
    hist_free(&G.st.ttfe);
    hist_free(&G.st.total);
    event_base_free(G.base);
    free(G.req);
    free(G.o.headers);
    return bad ? 1 : 0;
}
