/* chat: POST /chat, chatd's own wire format on the shared stream machine
 * (stream.h): a message with optional history in, numbered content events and
 * one final event out. */
#ifndef CHATD_CHAT_H
#define CHATD_CHAT_H

#include "api/http.h"

struct worker;
struct key_conf;

/* Validates the request and starts its stream, or answers with an error. key is
 * the caller's client key (NULL when client auth is off). */
void chat_start(struct worker *w, struct http_conn *c, struct http_request *req,
                const struct key_conf *key);

#endif
