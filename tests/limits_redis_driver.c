/* limits_redis_driver: drives src/services/limits*.c on a real event loop for
 * tests/integration/test_limits_redis.py. One process is one replica; it may hold
 * several struct limits (several workers). Commands, one per line on stdin:
 *
 *   new <inst> <url|-> <fail_open 0|1> [deadline_ms lease_ms backoff_ms]
 *   admit <inst> <id> <key> <rpm> <tpm> <streams>
 *   admit_cancel <inst> <id> <key> <rpm> <tpm> <streams>
 *                                 admits and cancels at once (the client left)
 *   finish <inst> <id> <tokens>   gives back the ticket of admit <id>
 *   stats <inst>                  prints the hook counters
 *   free <inst>
 *
 * Answers are JSON lines on stdout: {"id":…,"status":…,"reason":…,"retry_after":…,
 * "ms":…,"sync":…,"ticket":…,"headers":{…}}; logs go to stderr. EOF ends it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/clock.h"
#include "core/log.h"
#include "services/limits.h"

#define MAX_INST   8
#define MAX_ADMITS 4096

struct counters {
    int refused, rtt, errors, unavailable;
};

struct admit {
    int id, inst;
    int64_t t0;
    struct limits_ticket *ticket;
    struct limits_pending *pending;
    bool used;
};

static struct event_base *base;
static struct limits_shared *shared;
static struct limits *inst[MAX_INST];
static struct counters counts[MAX_INST];
static struct admit admits[MAX_ADMITS];

static void on_refused(void *arg, const char *reason)
{
    (void)reason;
    ((struct counters *)arg)->refused++;
}

static void on_rtt(void *arg, double s)
{
    (void)s;
    ((struct counters *)arg)->rtt++;
}

static void on_error(void *arg)
{
    ((struct counters *)arg)->errors++;
}

static void on_unavailable(void *arg)
{
    ((struct counters *)arg)->unavailable++;
}

static void print_verdict(struct admit *a, const struct limits_verdict *v, bool sync)
{
    static const char *const names[] = { "ok", "refused", "unavailable" };
    struct limits_header h[LIMITS_MAX_HEADERS];
    size_t n = limits_headers(v, h);
    printf("{\"id\":%d,\"status\":\"%s\",\"reason\":%s%s%s,\"retry_after\":%ld,\"ms\":%.3f,"
           "\"sync\":%s,\"ticket\":%s,\"headers\":{",
           a->id, names[v->status], v->reason ? "\"" : "", v->reason ? v->reason : "null",
           v->reason ? "\"" : "", v->retry_after_s, (clock_mono_us() - a->t0) / 1000.0,
           sync ? "true" : "false", a->ticket ? "true" : "false");
    for (size_t i = 0; i < n; i++)
        printf("%s\"%s\":\"%s\"", i ? "," : "", h[i].name, h[i].value);
    printf("}}\n");
    fflush(stdout);
}

static void on_answer(void *arg, const struct limits_verdict *v, struct limits_ticket *t)
{
    struct admit *a = arg;
    a->pending = NULL;
    a->ticket = t;
    print_verdict(a, v, false);
}

static void cmd_new(char **w, int n)
{
    int i = atoi(w[1]);
    struct redis_url u;
    char err[512];
    if (strcmp(w[2], "-") != 0 && limits_parse_redis_url(w[2], &u, err, sizeof err) < 0) {
        printf("{\"error\":\"%s\"}\n", err);
        return;
    }
    if (strcmp(w[2], "-") != 0)
        log_add_secret(u.password);
    inst[i] = limits_new(base, shared, strcmp(w[2], "-") == 0 ? NULL : &u, atoi(w[3]) != 0);
    struct limits_hooks h = { on_refused, on_rtt, on_error, on_unavailable, &counts[i] };
    limits_set_hooks(inst[i], &h);
    if (n >= 7)
        limits_set_timing(inst[i], atoi(w[4]), atoi(w[5]), atoi(w[6]));
    printf("{\"new\":%d}\n", i);
}

static void cmd_admit(char **w)
{
    int i = atoi(w[1]), id = atoi(w[2]);
    struct admit *a = &admits[id % MAX_ADMITS];
    *a = (struct admit){ .id = id, .inst = i, .t0 = clock_mono_us(), .used = true };
    struct limits_spec k = { w[3], atol(w[4]), atol(w[5]), atol(w[6]) };
    struct limits_verdict v;
    int rc = limits_admit(inst[i], &k, clock_mono_us(), on_answer, a, &v, &a->ticket, &a->pending);
    if (rc == 1)
        print_verdict(a, &v, true);
    else if (rc < 0)
        printf("{\"id\":%d,\"error\":%d}\n", id, rc);
}

static void on_line(char *line)
{
    char *w[8] = { 0 };
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 8;
         t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    if (n >= 4 && strcmp(w[0], "new") == 0) {
        cmd_new(w, n);
    } else if (n == 7 && strcmp(w[0], "admit") == 0) {
        cmd_admit(w);
    } else if (n == 7 && strcmp(w[0], "admit_cancel") == 0) {
        cmd_admit(w);
        struct admit *a = &admits[atoi(w[2]) % MAX_ADMITS];
        if (a->pending != NULL)
            limits_cancel(inst[a->inst], a->pending);
        printf("{\"cancelled\":%d,\"was_pending\":%s}\n", a->id, a->pending ? "true" : "false");
        a->pending = NULL;
    } else if (n == 4 && strcmp(w[0], "finish") == 0) {
        struct admit *a = &admits[atoi(w[2]) % MAX_ADMITS];
        limits_finish(inst[atoi(w[1])], a->ticket, atol(w[3]), clock_mono_us());
        a->ticket = NULL;
        printf("{\"finished\":%d}\n", a->id);
    } else if (n == 2 && strcmp(w[0], "stats") == 0) {
        struct counters *c = &counts[atoi(w[1])];
        printf("{\"refused\":%d,\"rtt\":%d,\"errors\":%d,\"unavailable\":%d}\n", c->refused, c->rtt,
               c->errors, c->unavailable);
    } else if (n == 2 && strcmp(w[0], "free") == 0) {
        limits_free(inst[atoi(w[1])]);
        inst[atoi(w[1])] = NULL;
        printf("{\"freed\":%s}\n", w[1]);
    } else {
        printf("{\"error\":\"bad command\"}\n");
    }
    fflush(stdout);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    char *line;
    size_t len;
    while ((line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_LF)) != NULL) {
        on_line(line);
        free(line);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        event_base_loopexit(base, NULL);
}

int main(void)
{
    log_setup(LOG_DEBUG, 2);
    base = event_base_new();
    shared = limits_shared_new();
    struct bufferevent *in = bufferevent_socket_new(base, 0, 0);
    bufferevent_setcb(in, on_read, NULL, on_event, NULL);
    bufferevent_enable(in, EV_READ);
    event_base_dispatch(base);
    for (int i = 0; i < MAX_INST; i++) {
        for (int k = 0; k < MAX_ADMITS; k++)
            if (admits[k].used && admits[k].inst == i && admits[k].ticket != NULL && inst[i])
                limits_finish(inst[i], admits[k].ticket, 0, clock_mono_us());
        limits_free(inst[i]);
    }
    bufferevent_free(in);
    limits_shared_free(shared);
    event_base_free(base);
    log_teardown();
    return 0;
}
