/* limits_redis_batch: the Lua script and the batches of one loop turn.
 *
 * Admits made during one turn of the worker's loop for the same key (name and
 * limits) go to Redis as one EVALSHA "admitn"; finishes of one turn for the same
 * key as one "finishn". The first one queued in a turn makes the flush event
 * active, so libevent sends the batches in the same loop iteration, after the
 * callbacks already active: nothing waits for a later turn. A batch owns its
 * pendings (or tickets) until its reply comes back; hiredis calls the reply
 * callback, with a NULL reply, when the connection goes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "core/clock.h"
#include "services/limits_redis_internal.h"

#define BATCH_MAX 128 /* requests per EVALSHA; Lua's unpack takes a few thousand */

/* One script, three modes, so one SCRIPT LOAD per connection. Redis's clock (TIME)
 * decides, so replicas with skewed clocks agree. Numbers are written with %d: Lua's
 * default conversion keeps only 14 digits. "admitn" judges its N requests in order,
 * each as if alone given the ones before it, and answers N {code, wait_us, request
 * debt, token debt}; code 0 OK, 1 requests, 2 tokens, 3 concurrency. */
const char limits_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local W = 60000000\n"
    "local function fmt(n) return string.format('%d', n) end\n"
    "if ARGV[1] == 'renew' then\n"
    "  redis.call('ZADD', KEYS[3], fmt(now + tonumber(ARGV[3]) * 1000), ARGV[2])\n"
    "  redis.call('PEXPIRE', KEYS[3], fmt(tonumber(ARGV[3]) * 2))\n"
    "  return 0\n"
    "end\n"
    "if ARGV[1] == 'finishn' then\n"
    "  if #ARGV > 3 then redis.call('ZREM', KEYS[3], unpack(ARGV, 4)) end\n"
    "  local tpm, used = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "  if tpm > 0 and used > 0 then\n"
    "    local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)\n"
    "    tat = tat + math.floor(used * W / tpm)\n"
    "    redis.call('SET', KEYS[2], fmt(tat), 'PX', fmt(math.ceil((tat - now) / 1000) + 1000))\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local rpm, tpm, cmax = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local lease_ms = tonumber(ARGV[5])\n"
    "local rtat, tdebt, card, rset, add, out = 0, 0, 0, false, {}, {}\n"
    "if rpm > 0 then rtat = tonumber(redis.call('GET', KEYS[1]) or '0') end\n"
    "if tpm > 0 then tdebt = tonumber(redis.call('GET', KEYS[2]) or '0') - now end\n"
    "if cmax > 0 and tdebt < W then\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))\n"
    "  card = redis.call('ZCARD', KEYS[3])\n"
    "end\n"
    "for i = 6, #ARGV do\n"
    "  local rdebt, v = 0, nil\n"
    "  if rpm > 0 then rdebt = math.max(rtat - now, 0) end\n"
    "  if tpm > 0 and tdebt >= W then v = {2, tdebt - W + 1, rdebt, tdebt}\n"
    "  elseif cmax > 0 and card >= cmax then v = {3, 1000000, rdebt, tdebt}\n"
    "  elseif rpm > 0 then\n"
    "    local nxt = math.max(rtat, now) + math.max(math.floor(W / rpm), 1)\n"
    "    if nxt - now > W then v = {1, nxt - now - W, rdebt, tdebt}\n"
    "    else rtat, rset, rdebt = nxt, true, nxt - now end\n"
    "  end\n"
    "  if v == nil then\n"
    "    if cmax > 0 then\n"
    "      card = card + 1\n"
    "      add[#add + 1] = fmt(now + lease_ms * 1000)\n"
    "      add[#add + 1] = ARGV[i]\n"
    "    end\n"
    "    v = {0, 0, rdebt, tdebt}\n"
    "  end\n"
    "  out[#out + 1] = v\n"
    "end\n"
    "if rset then\n"
    "  redis.call('SET', KEYS[1], fmt(rtat), 'PX', fmt(math.ceil((rtat - now) / 1000) + 1000))\n"
    "end\n"
    "if #add > 0 then\n"
    "  redis.call('ZADD', KEYS[3], unpack(add))\n"
    "  redis.call('PEXPIRE', KEYS[3], fmt(lease_ms * 2))\n"
    "end\n"
    "return out\n";

/* Admits (finish false) or finishes of one key in one turn. */
struct batch {
    struct list link; /* in r->batches until sent */
    struct limits_redis *r;
    struct limits_entry *e;
    long rpm, tpm, cmax; /* finishes: only tpm */
    bool finish, retried;
    long used; /* finishes: the tokens summed */
    size_t n;
    struct list items; /* pendings (link) or tickets (link) */
};

static struct batch *batch_for(struct limits_redis *r, bool finish, struct limits_entry *e,
                               long rpm, long tpm, long cmax)
{
    struct list *n;
    list_foreach(n, &r->batches)
    {
        struct batch *b = list_entry(n, struct batch, link);
        if (b->finish == finish && b->e == e && b->rpm == rpm && b->tpm == tpm && b->cmax == cmax &&
            b->n < BATCH_MAX)
            return b;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    *b = (struct batch){ .r = r, .e = e, .rpm = rpm, .tpm = tpm, .cmax = cmax, .finish = finish };
    list_init(&b->items);
    list_insert_tail(&r->batches, &b->link);
    if (!r->flush_queued) {
        r->flush_queued = true;
        event_active(r->flush_ev, EV_TIMEOUT, 0);
    }
    return b;
}

int limits_redis_queue_admit(struct limits_redis *r, struct limits_pending *p)
{
    struct batch *b = batch_for(r, false, p->e, p->key.requests_per_minute,
                                p->key.tokens_per_minute, p->key.max_concurrent_streams);
    if (b == NULL)
        return -ENOMEM;
    list_insert_tail(&b->items, &p->link);
    b->n++;
    return 0;
}

void limits_redis_queue_finish(struct limits_redis *r, struct limits_ticket *t, long used)
{
    struct batch *b = r->freeing ? NULL : batch_for(r, true, t->entry, 0, t->tokens_per_minute, 0);
    if (b == NULL) {
        free(t); /* out of memory: the lease expires by itself */
        return;
    }
    list_insert_tail(&b->items, &t->link);
    b->n++;
    b->used += used > 0 ? used : 0;
}

/* Frees b and what it holds; no callbacks. */
static void batch_free(struct batch *b)
{
    while (!list_empty(&b->items)) {
        struct list *n = b->items.next;
        list_remove(n);
        if (b->finish)
            free(list_entry(n, struct limits_ticket, link));
        else
            limits_redis_pending_free(list_entry(n, struct limits_pending, link));
    }
    free(b);
}

void limits_redis_batches_free(struct limits_redis *r)
{
    while (!list_empty(&r->batches)) {
        struct batch *b = list_entry(r->batches.next, struct batch, link);
        list_remove(&b->link);
        batch_free(b);
    }
}

static void redis_keys(const char *name, char k[3][300])
{
    snprintf(k[0], sizeof k[0], "chatd:{%s}:requests", name);
    snprintf(k[1], sizeof k[1], "chatd:{%s}:tokens", name);
    snprintf(k[2], sizeof k[2], "chatd:{%s}:streams", name);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static const char *item_lease(const struct batch *b, const struct list *n)
{
    if (b->finish)
        return list_entry(n, struct limits_ticket, link)->lease;
    const struct limits_ticket *t = list_entry(n, struct limits_pending, link)->ticket;
    return t != NULL ? t->lease : "";
}

/* One EVALSHA (or EVAL) for b: the keys, the mode, the numbers, then one argument per
 * item (a lease; "" for an admit without one, none for a finish without one). */
static int batch_send(struct batch *b, bool by_sha)
{
    struct limits_redis *r = b->r;
    if (r->state != RS_READY || r->ac == NULL)
        return -EIO;
    char k[3][300], n1[24], n2[24], n3[24], n4[24];
    redis_keys(b->e->name, k);
    snprintf(n1, sizeof n1, "%ld", b->finish ? b->tpm : b->rpm);
    snprintf(n2, sizeof n2, "%ld", b->finish ? b->used : b->tpm);
    snprintf(n3, sizeof n3, "%ld", b->cmax);
    snprintf(n4, sizeof n4, "%d", r->lease_ms);
    const char *head[] = { by_sha ? "EVALSHA" : "EVAL",
                           by_sha ? r->sha : limits_redis_script,
                           "3",
                           k[0],
                           k[1],
                           k[2],
                           b->finish ? "finishn" : "admitn",
                           n1,
                           n2,
                           n3,
                           n4 };
    size_t nhead = b->finish ? 9 : 11, argc = nhead;
    const char **argv = malloc((nhead + b->n) * sizeof *argv);
    if (argv == NULL)
        return -ENOMEM;
    memcpy(argv, head, nhead * sizeof *argv);
    struct list *n;
    list_foreach(n, &b->items)
    {
        const char *lease = item_lease(b, n);
        if (!b->finish || lease[0] != '\0')
            argv[argc++] = lease;
    }
    int rc = redisAsyncCommandArgv(r->ac, b->finish ? NULL : on_reply, b->finish ? NULL : b,
                                   (int)argc, argv, NULL);
    free(argv);
    return rc == REDIS_OK ? 0 : -EIO;
}

/* Reads {code, wait_us, request debt, token debt}; false when the reply is not that. */
static bool read_verdict(const redisReply *rep, const struct limits_spec *key,
                         struct limits_verdict *v)
{
    static const char *const reasons[] = { NULL, "requests", "tokens", "concurrency" };
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4)
        return false;
    for (size_t i = 0; i < 4; i++)
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    long long code = rep->element[0]->integer;
    if (code < 0 || code > 3)
        return false;
    memset(v, 0, sizeof *v);
    v->status = code == 0 ? LIMITS_OK : LIMITS_REFUSED;
    if (code != 0) {
        v->reason = reasons[code];
        v->retry_after_s = limits_retry_seconds(rep->element[1]->integer);
    }
    limits_fill_numbers(v, key, rep->element[2]->integer, rep->element[3]->integer);
    return true;
}

/* True when rep holds one verdict per pending of b. */
static bool read_all(const redisReply *rep, const struct batch *b)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != b->n)
        return false;
    size_t i = 0;
    struct list *n;
    list_foreach(n, &b->items)
    {
        struct limits_verdict v;
        if (!read_verdict(rep->element[i++], &list_entry(n, struct limits_pending, link)->key, &v))
            return false;
    }
    return true;
}

/* Passes v (NULL: Redis could not decide) to p's caller, or, when p was answered
 * already (deadline, cancel), gives an admitted lease back. */
static void settle(struct limits_pending *p, const struct limits_verdict *v)
{
    struct limits_redis *r = p->r;
    if (!p->answered && !r->freeing) {
        struct limits_verdict u;
        if (v == NULL)
            limits_unreachable_verdict(r->l, &u);
        limits_redis_answer(p, v != NULL ? v : &u, v != NULL && v->status == LIMITS_OK);
    } else if (v != NULL && v->status == LIMITS_OK && p->ticket != NULL &&
               p->ticket->lease[0] != '\0' && r->state == RS_READY) {
        struct limits_ticket *t = p->ticket; /* too late or cancelled: give the lease back */
        p->ticket = NULL;
        limits_redis_queue_finish(r, t, 0);
    }
}

/* Answers every pending of b, in order, from rep (NULL: the connection went) and
 * frees b. Each request's round trip is counted from its own admit. */
static void batch_answer(struct batch *b, const redisReply *rep)
{
    struct limits_redis *r = b->r;
    bool ok = read_all(rep, b);
    if (rep != NULL) {
        r->timeouts_in_a_row = 0;
        if (!ok)
            limits_redis_count_error(r);
    }
    int64_t now = clock_mono_us();
    for (size_t i = 0; !list_empty(&b->items); i++) {
        struct limits_pending *p = list_entry(b->items.next, struct limits_pending, link);
        list_remove(&p->link);
        struct limits_verdict v;
        if (rep != NULL && r->l->hooks.redis_rtt != NULL)
            r->l->hooks.redis_rtt(r->l->hooks.arg, (now - p->sent_us) / 1e6);
        settle(p, ok && read_verdict(rep->element[i], &p->key, &v) ? &v : NULL);
        limits_redis_pending_free(p);
    }
    free(b);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct batch *b = privdata;
    struct limits_redis *r = b->r;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        !b->retried && r->ac == ac && r->state == RS_READY) {
        b->retried = true; /* the script cache was flushed: send the body once */
        if (batch_send(b, false) == 0)
            return;
        rep = NULL; /* the connection is closing: answer as unreachable */
    }
    batch_answer(b, rep);
}

void limits_redis_flush(evutil_socket_t fd, short what, void *arg)
{
    struct limits_redis *r = arg;
    (void)fd;
    (void)what;
    r->flush_queued = false;
    struct list todo;
    list_init(&todo);
    while (!list_empty(&r->batches)) { /* admits queued by the callbacks below wait */
        struct list *n = r->batches.next;
        list_remove(n);
        list_insert_tail(&todo, n);
    }
    while (!list_empty(&todo)) {
        struct batch *b = list_entry(todo.next, struct batch, link);
        list_remove(&b->link);
        if (b->finish) {
            (void)batch_send(b, true); /* fire-and-forget */
            batch_free(b);
        } else if (batch_send(b, true) < 0) {
            batch_answer(b, NULL);
        }
    }
}
