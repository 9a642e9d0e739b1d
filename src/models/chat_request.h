/* chat_request: the body of POST /chat, parsed with jansson and validated
 * exactly as the contract says. A valid request is never refused and an
 * invalid one never reaches the provider. */
#ifndef CHATD_CHAT_REQUEST_H
#define CHATD_CHAT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define CHAT_MAX_MESSAGE_CHARS 8000
#define CHAT_MAX_HISTORY       100   /* turns before the message */
#define CHAT_MAX_HISTORY_CHARS 32000 /* code points of one turn */

struct chat_request {
    void *root;           /* the parsed body (json_t), owning the strings below */
    const char *message;  /* valid UTF-8, NUL-free */
    size_t message_len;   /* in bytes */
    size_t message_chars; /* in Unicode code points */
    const char *model;    /* the request's model or OPENAI_MODEL */
    int max_tokens;       /* the request's max_tokens or MAX_TOKENS */
    void *history;        /* the "history" array (json_t, in root), NULL when absent: each
                           * item a {"role": "user"|"assistant", "content": text} */
};

struct chat_request_error {
    const char *field; /* "message", "model", "max_tokens", "history[i].content", or "body" */
    char field_buf[48];
    char what[192]; /* what is wrong, naming the field (no trailing period) */
    char why[320];  /* the rule it breaks */
    char todo[192]; /* what to do */
};

/* Parses and validates body[0..len). Returns 0 and fills req (free it with
 * chat_request_free), -EINVAL and fills err, or -ENOMEM. Neither the error nor anything
 * else derived from the body ever contains the message text. */
int chat_request_parse(const char *body, size_t len, const struct config *cfg,
                       struct chat_request *req, struct chat_request_error *err);

/* Routes jansson's allocations through malloc with a note of each failure, so
 * that a body not parsed for want of memory is told from invalid JSON. Called
 * once at start, before any other jansson call. */
void chat_json_setup(void);

/* True when a jansson allocation failed in this thread since the last call. */
bool chat_json_oom(void);

/* Frees what req owns. */
void chat_request_free(struct chat_request *req);

struct json_t;

/* How a validation error names v's JSON type: "an object", "an array", "a string",
 * "an integer", "a number with a fraction", "a boolean" or "null". */
const char *chat_request_type_name(const struct json_t *v);

/* Counts the code points of valid UTF-8 text. */
size_t chat_utf8_chars(const char *s, size_t len);

/* True when the text is empty or only Unicode white space (as Python's
 * str.isspace understands it). */
bool chat_is_blank(const char *s, size_t len);

#endif
