/* chat: POST /chat. Each request becomes one struct chat_stream that owns all it
 * holds — the provider transfer, the SSE parser, its timers, the event encoder —
 * and moves VALIDATED → WAITING_FIRST_TOKEN → STREAMING → FINISHED. Every way a
 * stream can end goes through one finish function that writes the final event
 * (when the client is still there), logs response_complete and frees it once. */
#ifndef CHATD_CHAT_H
#define CHATD_CHAT_H

#include "api/http.h"
#include "models/error.h"

struct worker;
struct key_conf;

/* Validates the request and starts its stream, or answers with an error. key is
 * the caller's client key (NULL when client auth is off). */
void chat_start(struct worker *w, struct http_conn *c, struct http_request *req,
                const struct key_conf *key);

/* Ends every open stream of the worker now with a final event for code. */
void chat_abort_all(struct worker *w, enum error_code code);

#endif
