/* openai: the OpenAI chat-completions wire format — the streaming request chatd
 * sends, the chunks of the answer, and the provider's error bodies. */
#ifndef CHATD_OPENAI_H
#define CHATD_OPENAI_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* The conversation of a /chat request: an optional system prompt, earlier turns
 * (a json_t array of {"role","content"} objects, already validated; NULL for
 * none) and the new user message. */
struct openai_conversation {
    const char *system_prompt; /* NULL for none */
    const void *history;
    const char *message;
    size_t message_len;
};

/* Appends the JSON request for a streamed completion of a conversation:
 * model, messages, max_tokens, stream, stream_options.include_usage.
 * Returns 0 or -ENOMEM. */
int openai_request_body(struct buf *out, const char *model, const struct openai_conversation *conv,
                        int max_tokens);

/* One `data:` payload of the stream, as far as chatd uses it. Nothing is
 * allocated: strings point into the parsed text. */
struct openai_chunk {
    const char *content_json; /* choices[0].delta.content as written in the chunk: the
                               * inside of a JSON string, escapes kept, ready to copy
                               * into another JSON string; NULL when absent, null or "" */
    size_t content_json_len;
    char finish_reason[32]; /* choices[0].finish_reason decoded; "" when absent or null */
    bool has_usage;
    long long prompt_tokens, completion_tokens, total_tokens;
    bool is_error;  /* the chunk is {"error": …}: summarize it with
                     * openai_error_summary */
    int n_choices;  /* elements of "choices" (0 for a usage-only chunk) */
    bool substance; /* choices[0] carries more than a role: content, a tool call,
                     * a refusal or reasoning text, or a finish_reason */
};

/* Parses one chunk (the whole text is validated as JSON). Returns 0, or -EINVAL
 * when it is not a JSON object or its known fields have the wrong types (a
 * stream chatd cannot trust). */
int openai_chunk_parse(const char *data, size_t len, struct openai_chunk *out);

/* True for the chunk that carries only usage (no choices): the one chatd always
 * asks for and /v1 passes on only when the client asked for it too. */
bool openai_chunk_usage_only(const struct openai_chunk *c);

/* Summarizes a provider error body (JSON {"error":{"message":…}}, {"error":"…"},
 * {"message":…}, or text) into one line of at most outlen-1 bytes for logs and
 * error details: control characters dropped, white space collapsed, the API key
 * and anything resembling a secret key replaced by REDACTED, and nothing when
 * it quotes the user's message. Writes "" when there is nothing safe to say.
 * Returns the length written. */
size_t openai_error_summary(const char *body, size_t len, const char *api_key, const char *message,
                            size_t message_len, char *out, size_t outlen);

#endif
