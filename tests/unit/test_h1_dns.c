/* Unit tests of src/services/h1_dns.c (with h1.c): host names resolved by evdns on a
 * real event_base, against a name server played by this test on a UDP socket of its
 * own. The test reads each question when it wants and answers it (or not) itself,
 * so a lookup is known to be under way while calls are cancelled, released or their
 * origin freed; what is touched after free or left behind shows under ASan (this
 * build) and valgrind (`make unit`). The address answered is a closed port, so a call
 * that got it ends with "Failed to connect to NAME port N" at once. */
#include "unit.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "services/h1.h"
#include "services/h1_internal.h"

static struct event_base *base;
static struct h1_resolver *dns;
static struct h1_origin *origin;
static int ns_fd;       /* the name server's socket */
static int closed_port; /* where the answers point: nobody listens */
static char conf[64];   /* its resolv.conf */
static char hosts[64];  /* the hosts file */
static char url[128];

/* ---- the name server ------------------------------------------------------------------- */

struct question {
    unsigned char pkt[512];
    size_t len, qend; /* the question ends at qend */
    struct sockaddr_in from;
    int qtype;
};

/* Takes a question if one came: 1, else 0. */
static int ns_take(struct question *q)
{
    socklen_t sl = sizeof q->from;
    ssize_t n =
        recvfrom(ns_fd, q->pkt, sizeof q->pkt, MSG_DONTWAIT, (struct sockaddr *)&q->from, &sl);
    if (n < 12)
        return 0;
    q->len = (size_t)n;
    size_t i = 12;
    while (i < q->len && q->pkt[i] != 0)
        i += 1u + q->pkt[i];
    assert_true(i + 5 <= q->len);
    q->qtype = q->pkt[i + 1] << 8 | q->pkt[i + 2];
    q->qend = i + 5;
    return 1;
}

/* Answers q: rcode, and one record with addr (4 or 16 bytes) unless addr_len is 0. */
static void ns_answer(const struct question *q, int rcode, const void *addr, size_t addr_len,
                      unsigned ttl)
{
    unsigned char out[600];
    memcpy(out, q->pkt, q->qend); /* id and the question as asked (evdns randomizes its case) */
    out[2] = 0x81 | (q->pkt[2] & 0x01);
    out[3] = (unsigned char)(0x80 | rcode);
    memset(out + 6, 0, 6);
    out[7] = addr_len > 0;
    size_t n = q->qend;
    if (addr_len > 0) {
        unsigned char rr[] = { 0xc0,
                               12,
                               0,
                               (unsigned char)q->qtype,
                               0,
                               1,
                               (unsigned char)(ttl >> 24),
                               (unsigned char)(ttl >> 16),
                               (unsigned char)(ttl >> 8),
                               (unsigned char)ttl,
                               0,
                               (unsigned char)addr_len };
        memcpy(out + n, rr, sizeof rr);
        memcpy(out + n + sizeof rr, addr, addr_len);
        n += sizeof rr + addr_len;
    }
    assert_int_equal(sendto(ns_fd, out, n, 0, (const struct sockaddr *)&q->from, sizeof q->from),
                     (ssize_t)n);
}

static void answer_a(const struct question *q, unsigned ttl)
{
    struct in_addr a = { htonl(INADDR_LOOPBACK) };
    assert_int_equal(q->qtype, 1);
    ns_answer(q, 0, &a, 4, ttl);
}

/* ---- the loop and the owner ------------------------------------------------------------- */

struct owner {
    struct h1_call *call;
    int n_done, code;
    char err[CURL_ERROR_SIZE];
};

static enum h1_verdict on_data(void *arg, const char *data, size_t len)
{
    (void)arg, (void)data, (void)len;
    return H1_GO_ON;
}

static void on_done(void *arg, int code, const char *err)
{
    struct owner *ow = arg;
    ow->n_done++;
    ow->code = code;
    snprintf(ow->err, sizeof ow->err, "%s", err);
    ow->call = NULL;
}

static const struct h1_callbacks cbs = { on_data, on_done };

static void start(struct owner *ow, double connect_timeout_s)
{
    *ow = (struct owner){ 0 };
    ow->call = h1_start(origin, NULL, connect_timeout_s, strdup("{}"), 2, &cbs, ow);
    assert_non_null(ow->call);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Turns the loop (waking every 5 ms) until cond holds; fails after 10 s. */
#define RUN_UNTIL(cond)                                \
    do {                                               \
        double until_ = now_s() + 10;                  \
        struct timeval tick_ = { 0, 5000 };            \
        while (!(cond)) {                              \
            if (now_s() > until_)                      \
                fail_msg("waited 10 s for %s", #cond); \
            event_base_loopexit(base, &tick_);         \
            event_base_loop(base, 0);                  \
        }                                              \
    } while (0)

/* Turns the loop for ms milliseconds. */
static void run_for(int ms)
{
    double until = now_s() + ms / 1000.0;
    RUN_UNTIL(now_s() >= until);
}

static void wait_question(struct question *q)
{
    RUN_UNTIL(ns_take(q));
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int bound_socket(int type, int *port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int setup(void **state)
{
    (void)state;
    int ns_port, tcp_fd;
    ns_fd = bound_socket(SOCK_DGRAM, &ns_port);
    tcp_fd = bound_socket(SOCK_STREAM, &closed_port); /* bound, never listening: refused */
    snprintf(conf, sizeof conf, "/tmp/test_h1_dns.%d.conf", (int)getpid());
    FILE *f = fopen(conf, "w");
    if (ns_fd < 0 || tcp_fd < 0 || f == NULL)
        return -1;
    fprintf(f, "nameserver 127.0.0.1:%d\noptions ndots:1\n", ns_port);
    fclose(f);
    snprintf(hosts, sizeof hosts, "/tmp/test_h1_dns.%d.hosts", (int)getpid());
    if ((f = fopen(hosts, "w")) == NULL)
        return -1;
    fputs("# the test's\n127.0.0.1\tpinned.test alias.test # svc.test\n::1 six.test\n", f);
    fclose(f);
    close(tcp_fd); /* the port stays closed: connects to it are refused */
    snprintf(url, sizeof url, "http://svc.test:%d/v1/chat/completions", closed_port);
    base = event_base_new();
    char why[200];
    dns = base ? h1_resolver_new(base, conf, hosts, why, sizeof why) : NULL;
    origin = dns ? h1_origin_new(base, url, 4, dns) : NULL;
    return origin == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    h1_origin_free(origin);
    h1_resolver_free(dns);
    event_base_free(base);
    close(ns_fd);
    unlink(conf);
    unlink(hosts);
    return 0;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void assert_refused(const struct owner *ow)
{
    char want[96];
    snprintf(want, sizeof want, "Failed to connect to svc.test port %d: ", closed_port);
    assert_int_equal(ow->n_done, 1);
    assert_int_equal(ow->code, CURLE_COULDNT_CONNECT);
    if (strncmp(ow->err, want, strlen(want)) != 0)
        fail_msg("err: %s", ow->err);
}

static void test_calls_share_one_lookup_then_its_answer(void **state)
{
    (void)state;
    struct owner a, b, c, d;
    struct question q, extra;
    start(&a, 5);
    start(&b, 5);
    wait_question(&q);
    start(&c, 5); /* joins the lookup under way */
    run_for(50);
    assert_int_equal(ns_take(&extra), 0); /* one question for three calls */
    assert_int_equal(a.n_done + b.n_done + c.n_done, 0);
    answer_a(&q, 60);
    RUN_UNTIL(a.n_done && b.n_done && c.n_done);
    assert_refused(&a), assert_refused(&b), assert_refused(&c);
    start(&d, 5); /* within the TTL: no question */
    RUN_UNTIL(d.n_done);
    assert_refused(&d);
    assert_int_equal(ns_take(&extra), 0);
}

static void test_the_answer_expires_with_its_ttl(void **state)
{
    (void)state;
    struct owner a, b;
    struct question q;
    start(&a, 5);
    wait_question(&q);
    answer_a(&q, 0); /* held 1 s at least */
    RUN_UNTIL(a.n_done);
    start(&b, 5);
    RUN_UNTIL(b.n_done);
    assert_int_equal(ns_take(&q), 0);
    run_for(1100);
    start(&b, 5);
    wait_question(&q);
    answer_a(&q, 60);
    RUN_UNTIL(b.n_done);
    assert_refused(&b);
}

static void test_nxdomain_is_couldnt_resolve_host(void **state)
{
    (void)state;
    struct owner a;
    struct question q;
    start(&a, 5);
    wait_question(&q);
    ns_answer(&q, 3, NULL, 0, 0);
    RUN_UNTIL(a.n_done);
    assert_int_equal(a.code, CURLE_COULDNT_RESOLVE_HOST);
    assert_string_equal(a.err, "Could not resolve host: svc.test");
}

static void test_no_a_record_asks_for_aaaa(void **state)
{
    (void)state;
    struct owner a;
    struct question q;
    start(&a, 5);
    wait_question(&q);
    assert_int_equal(q.qtype, 1);
    ns_answer(&q, 0, NULL, 0, 0); /* NOERROR, no record: NODATA */
    wait_question(&q);
    assert_int_equal(q.qtype, 28);
    ns_answer(&q, 0, &in6addr_loopback, 16, 60);
    RUN_UNTIL(a.n_done);
    assert_refused(&a); /* [::1] at the closed port (or nothing there) */
}

static void test_resolving_counts_against_the_connect_timeout(void **state)
{
    (void)state;
    struct owner a, b;
    struct question q;
    double t0 = now_s();
    start(&a, 0.2);
    wait_question(&q); /* and never answered in time */
    RUN_UNTIL(a.n_done);
    assert_true(now_s() - t0 < 2);
    assert_int_equal(a.code, CURLE_OPERATION_TIMEDOUT);
    assert_string_equal(a.err, "Resolving timed out after 200 milliseconds");
    answer_a(&q, 60); /* the lookup went on: its answer serves the next call */
    run_for(50);
    start(&b, 5);
    RUN_UNTIL(b.n_done);
    assert_refused(&b);
    assert_int_equal(ns_take(&q), 0);
}

static void test_cancel_and_release_while_resolving(void **state)
{
    (void)state;
    struct owner a, b, c;
    struct question q;
    start(&a, 5);
    start(&b, 5);
    wait_question(&q);
    h1_cancel(a.call);
    h1_release(b.call, 1000); /* nothing to drain: it ends at once */
    assert_int_equal(h1_origin_active(origin), 0);
    answer_a(&q, 60); /* nobody waits: the answer is kept */
    run_for(50);
    assert_int_equal(a.n_done + b.n_done, 0);
    start(&c, 5);
    RUN_UNTIL(c.n_done);
    assert_refused(&c);
    assert_int_equal(ns_take(&q), 0);
}

static void test_origin_freed_while_resolving_then_answered(void **state)
{
    (void)state;
    struct owner a;
    struct question q;
    start(&a, 5);
    wait_question(&q);
    h1_cancel(a.call);
    h1_origin_free(origin); /* its lookup becomes an orphan */
    origin = h1_origin_new(base, url, 4, dns);
    assert_non_null(origin);
    answer_a(&q, 60); /* the orphan frees itself */
    run_for(50);
    assert_int_equal(a.n_done, 0);
}

static void test_origin_and_resolver_freed_while_resolving(void **state)
{
    (void)state;
    struct owner a;
    struct question q;
    start(&a, 5);
    wait_question(&q);
    h1_cancel(a.call);
    h1_origin_free(origin);
    origin = NULL;
    h1_resolver_free(dns); /* frees the unanswered orphan */
    dns = NULL;
    assert_int_equal(a.n_done, 0);
}

static void test_unusable_resolv_conf(void **state)
{
    (void)state;
    char why[200], path[80];
    assert_null(h1_resolver_new(base, "/nonexistent/resolv.conf", hosts, why, sizeof why));
    assert_non_null(strstr(why, "/nonexistent/resolv.conf: it cannot be opened"));
    snprintf(path, sizeof path, "/tmp/test_h1_dns.%d.empty", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("search example.com\n", f);
    fclose(f);
    assert_null(h1_resolver_new(base, path, hosts, why, sizeof why));
    unlink(path);
    assert_non_null(strstr(why, "it names no nameserver"));
}

static void test_a_name_in_the_hosts_file_asks_no_name_server(void **state)
{
    (void)state;
    static const char *const names[] = { "pinned.test", "ALIAS.test", "six.test" };
    for (size_t i = 0; i < N_ELEMS(names); i++) {
        char u[128], want[96];
        struct owner a;
        struct question q;
        snprintf(u, sizeof u, "http://%s:%d/v1", names[i], closed_port);
        h1_origin_free(origin);
        assert_non_null(origin = h1_origin_new(base, u, 4, dns));
        start(&a, 5);
        RUN_UNTIL(a.n_done);
        snprintf(want, sizeof want, "Failed to connect to %s port %d: ", names[i], closed_port);
        assert_int_equal(a.code, CURLE_COULDNT_CONNECT);
        assert_memory_equal(a.err, want, strlen(want));
        assert_int_equal(ns_take(&q), 0);
    }
}

/* What h1_hosts_find makes of text for name: "-" none, else the address. */
static void assert_hosts(const char *text, const char *name, const char *want)
{
    struct h1_addr a = { .port = 8080 };
    char got[INET6_ADDRSTRLEN] = "-";
    snprintf(a.host, sizeof a.host, "%s:8080", name);
    a.name_len = strlen(name);
    int rc = h1_hosts_find(text, strlen(text), &a);
    if (rc == 0 && a.sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a.sa;
        inet_ntop(AF_INET, &in->sin_addr, got, sizeof got);
        assert_int_equal(ntohs(in->sin_port), 8080);
        assert_int_equal(a.len, sizeof *in);
    } else if (rc == 0) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)&a.sa;
        inet_ntop(AF_INET6, &in->sin6_addr, got, sizeof got);
        assert_int_equal(ntohs(in->sin6_port), 8080);
        assert_int_equal(a.len, sizeof *in);
    } else {
        assert_int_equal(rc, -ENOENT);
        assert_int_equal(a.len, 0);
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s in \"%s\": %s, want %s", name, text, got, want);
}

static void test_hosts_file_lines(void **state)
{
    (void)state;
    assert_hosts("10.0.0.1 vllm\n", "vllm", "10.0.0.1");
    assert_hosts("10.0.0.1 vllm", "VLLM", "10.0.0.1");               /* no newline; any case */
    assert_hosts("  10.0.0.1\t a  vllm  b\r\n", "vllm", "10.0.0.1"); /* an alias */
    assert_hosts("10.0.0.1 vllm-2 vllmx\n", "vllm", "-");
    assert_hosts("# 10.0.0.1 vllm\n10.0.0.2 x # vllm\n", "vllm", "-"); /* comments */
    assert_hosts("fd00::1 vllm\n10.0.0.3 vllm\n", "vllm", "10.0.0.3"); /* IPv4 first */
    assert_hosts("fd00::1 vllm\nfd00::2 vllm\n", "vllm", "fd00::1");
    assert_hosts("10.0.0.4 vllm\n10.0.0.5 vllm\n", "vllm", "10.0.0.4");
    assert_hosts("vllm 10.0.0.1\nbad.address vllm\n10.0.0.6 vllm", "vllm", "10.0.0.6");
    assert_hosts("", "vllm", "-");
    assert_hosts("\n\n#\n \t\n", "vllm", "-");
    assert_hosts("999.0.0.1 vllm\n", "vllm", "-");
}

static void test_url_kinds(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int kind;
    } cases[] = {
        { "http://127.0.0.1:8080/v1", H1_URL_ADDRESS },
        { "http://localhost/v1", H1_URL_ADDRESS },
        { "http://LocalHost:9/v1", H1_URL_ADDRESS },
        { "http://[::1]:9/v1", H1_URL_ADDRESS },
        { "http://vllm:8000/v1", H1_URL_NAME },
        { "http://my_service/v1", H1_URL_NAME },
        { "http://ollama.default.svc.cluster.local:11434/v1", H1_URL_NAME },
        { "http://a-b.example.com/x", H1_URL_NAME },
        { "http://1.2.3/x", H1_URL_NO }, /* a short IPv4 form: libcurl's */
        { "http://1.2.3.4.5/x", H1_URL_NO },
        { "http://a..b/x", H1_URL_NO },
        { "http://.a/x", H1_URL_NO },
        { "http://a./x", H1_URL_NO },
        { "http://-a/x", H1_URL_NO },
        { "http://a b/x", H1_URL_NO },
        { "http://a%2eb/x", H1_URL_NO },
        { "http://user@vllm/x", H1_URL_NO },
        { "https://vllm/x", H1_URL_NO },
        { "http://vllm:0/x", H1_URL_NO },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (h1_url_supported(cases[i].url) != cases[i].kind)
            fail_msg("%s: %d, want %d", cases[i].url, h1_url_supported(cases[i].url),
                     cases[i].kind);
    char longer[200] = "http://", label[51];
    memset(label, 'a', 50);
    label[50] = '\0';
    for (int i = 0; i < 3; i++) /* 152 bytes: longer than the Host field */
        strcat(strcat(longer, label), i < 2 ? "." : "/v1");
    assert_int_equal(h1_url_supported(longer), H1_URL_NO);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_calls_share_one_lookup_then_its_answer),
        T(test_the_answer_expires_with_its_ttl),
        T(test_nxdomain_is_couldnt_resolve_host),
        T(test_no_a_record_asks_for_aaaa),
        T(test_resolving_counts_against_the_connect_timeout),
        T(test_cancel_and_release_while_resolving),
        T(test_origin_freed_while_resolving_then_answered),
        T(test_origin_and_resolver_freed_while_resolving),
        T(test_unusable_resolv_conf),
        T(test_a_name_in_the_hosts_file_asks_no_name_server),
        T(test_hosts_file_lines),
        T(test_url_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
