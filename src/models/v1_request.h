/* v1_request: the body of POST /v1/chat/completions. chatd validates only what
 * it must (model, messages and their roles, n, stream, the two token limits) and
 * passes everything else to the provider unchanged; per target it rewrites
 * `model` and, for a streamed request, asks for usage. */
#ifndef CHATD_V1_REQUEST_H
#define CHATD_V1_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "models/error.h"

struct buf;

struct v1_request {
    void *root;            /* the parsed body (json_t), owned */
    const char *model;     /* the "model" field, or NULL for the default model */
    bool stream;           /* "stream": true */
    bool client_usage;     /* the client's stream_options.include_usage */
    const char *last_text; /* the last message's text content (for error summaries), or NULL */
    size_t last_text_len;
};

struct v1_request_error {
    enum error_code code; /* ERR_VALIDATION */
    char param[48];       /* the field, e.g. "messages[2].role"; "" for the whole body */
    char what[192], why[256], todo[160];
};

/* Parses and validates body[0..len); max_tokens bounds max_tokens and
 * max_completion_tokens. Returns 0 and fills req (free with v1_request_free), or
 * -EINVAL and fills err, or -ENOMEM. Nothing in err quotes the body. */
int v1_request_parse(const char *body, size_t len, int max_tokens, struct v1_request *req,
                     struct v1_request_error *err);

/* Appends the provider's request for this target model: the client's body with
 * "model" replaced and, when streamed, stream_options.include_usage set. The
 * body in req is changed in place (model, stream_options). 0 or -ENOMEM. */
int v1_request_body(struct v1_request *req, const char *model, struct buf *out);

/* Frees what req owns. */
void v1_request_free(struct v1_request *req);

#endif
