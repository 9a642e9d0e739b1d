/* stream_event: the SSE events chatd sends to its client, each one line
 * `data: <json>` and a blank line, encoded straight into an output buffer
 * (no JSON tree, no allocation once the buffer has grown). */
#ifndef CHATD_STREAM_EVENT_H
#define CHATD_STREAM_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/error.h"

struct buf;

/* Every function here takes cid as a canonical UUID (uuid_is_valid), which it
 * writes without escaping. */

/* How a stream ended, for its final event. */
struct stream_final {
    const char *status;        /* "completed", "error" or "timeout" */
    const char *finish_reason; /* completed: the provider's, NULL for null */
    bool has_usage;            /* completed: the provider sent usage */
    long long prompt_tokens, completion_tokens, total_tokens;
    enum error_code error; /* error/timeout: the catalogue code */
    const char *detail;    /* error/timeout: the three-part text */
    int64_t duration_ms;
    const char *provider; /* who answered (or was asked last); NULL leaves both out */
    const char *model;    /* the model name sent to that provider */
};

/* Appends a content event. content_json is the inside of a JSON string,
 * already escaped and valid (as the provider wrote it): it is copied as it is,
 * which keeps the text unchanged and costs no decoding. Returns 0 or -ENOMEM. */
int stream_event_content(struct buf *out, const char *content_json, size_t len, uint64_t sequence,
                         const char *cid);

/* Appends the final event. Returns 0 or -ENOMEM. */
int stream_event_final(struct buf *out, uint64_t sequence, const char *cid,
                       const struct stream_final *f);

/* Appends an SSE comment line (": keep-alive"), which carries no sequence. */
int stream_event_comment(struct buf *out, const char *text);

#endif
