/* stream_internal: what stream.c (the state machine) and stream_walk.c (admission,
 * attempts, failures) share. Not for other modules: their face is stream.h. */
#ifndef CHATD_STREAM_INTERNAL_H
#define CHATD_STREAM_INTERNAL_H

#include <event2/util.h>
#include <stdbool.h>

#include "api/stream.h"

struct limits_verdict;

/* One failed attempt, described as the client would hear of it. */
struct walk_failure {
    enum error_code code;
    const char *what, *why;
    char what_buf[320], why_buf[720];
};

static inline bool stream_is_2xx(long status)
{
    return status >= 200 && status <= 299;
}

/* ---- stream.c ---- */

/* Moves the stream to state `to`, asserting the transition is legal. */
void stream_set_state(struct chat_stream *s, enum stream_state to);

/* The one way out: runs once, frees the stream. */
void stream_finish(struct chat_stream *s, enum outcome o, int status);

/* Ends the stream with an error, answered whole or as the error event. */
void stream_finish_error(struct chat_stream *s, enum error_code code, const char *what,
                         const char *why);

/* Sends one attempt to the current target (s->pc, s->target_model). */
void stream_start_attempt(struct chat_stream *s);

/* ---- stream_walk.c ---- */

/* Asks the key's limits, then starts the walk over the model's targets. */
void walk_admit(struct chat_stream *s);

/* The attempt answered: the router, its breaker, logs and metrics hear of it. */
void walk_succeeded(struct chat_stream *s);

/* After a failure before the first token: schedules another attempt when the
 * routing rules allow one. True when one is scheduled (or the stream ended trying). */
bool walk_retry(struct chat_stream *s);

/* TIMEOUT_SECONDS ran out during an attempt: it counts as its provider's failure. */
void walk_timed_out(struct chat_stream *s);

/* The backoff timer: sends the next attempt. */
void walk_on_retry_timer(evutil_socket_t fd, short what, void *arg);

/* A non-2xx answer / a transfer that failed, as the failure the client hears of. */
void walk_describe_status(struct chat_stream *s, struct walk_failure *f);
void walk_describe_curl(int code, const char *errbuf, bool got_response, struct walk_failure *f);

/* With CHATD_CONFIG, names the provider's entry instead of OPENAI_* variables. */
void walk_name_provider(const struct chat_stream *s, char *detail, size_t cap);

#endif
