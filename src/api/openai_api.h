/* openai_api: the OpenAI-compatible wire format — POST /v1/chat/completions on
 * the shared stream machine (stream.h), and GET /v1/models. */
#ifndef CHATD_OPENAI_API_H
#define CHATD_OPENAI_API_H

#include "api/http.h"

struct worker;
struct key_conf;

/* Answers GET /v1/models with the models the caller (key) may use. */
void v1_models(struct worker *w, struct http_conn *c, struct http_request *req,
               const struct key_conf *key);

/* Validates the request and starts its stream, or answers with an OpenAI error.
 * key is the caller's client key (NULL when client auth is off). */
void v1_chat_start(struct worker *w, struct http_conn *c, struct http_request *req,
                   const struct key_conf *key);

#endif
