/* chat_request: see chat_request.h. */
#include "models/chat_request.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/jscan.h"

size_t chat_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static bool is_space_cp(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

bool chat_is_blank(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t c = u[i];
        size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (i + n > len)
            return false;
        if (n > 1) {
            c &= (uint32_t)(0xff >> (n + 1));
            for (size_t k = 1; k < n; k++)
                c = (c << 6) | (u[i + k] & 0x3f);
        }
        if (!is_space_cp(c))
            return false;
        i += n;
    }
    return true;
}

static int fail(struct chat_request_error *err, const char *field, const char *todo,
                const char *why, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct chat_request_error *err, const char *field, const char *todo,
                const char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->what, sizeof err->what, fmt, ap);
    va_end(ap);
    err->field = field;
    snprintf(err->why, sizeof err->why, "%s", why);
    snprintf(err->todo, sizeof err->todo, "%s", todo);
    return -EINVAL;
}

const char *chat_request_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

#define MESSAGE_RULE \
    "\"message\" must be a string of 1 to 8000 characters that is not only white space"

static int check_message(json_t *root, struct chat_request *req, struct chat_request_error *err)
{
    json_t *m = json_object_get(root, "message");
    if (m == NULL || json_is_null(m))
        return fail(err, "message", "Add a \"message\" field with your text", MESSAGE_RULE,
                    "The field \"message\" is missing");
    if (!json_is_string(m))
        return fail(err, "message", "Send the message as a JSON string", MESSAGE_RULE,
                    "The field \"message\" is %s, not a string", chat_request_type_name(m));
    req->message = json_string_value(m);
    req->message_len = json_string_length(m);
    req->message_chars = chat_utf8_chars(req->message, req->message_len);
    if (req->message_len == 0)
        return fail(err, "message", "Write a message and send it again", MESSAGE_RULE,
                    "The field \"message\" is empty");
    if (chat_is_blank(req->message, req->message_len))
        return fail(err, "message", "Write a message and send it again", MESSAGE_RULE,
                    "The field \"message\" contains only white space");
    if (req->message_chars > CHAT_MAX_MESSAGE_CHARS)
        return fail(err, "message", "Shorten the message to 8000 characters or fewer", MESSAGE_RULE,
                    "The field \"message\" is too long (%zu characters)", req->message_chars);
    return 0;
}

#define HISTORY_RULE                                                                          \
    "\"history\" is the conversation before \"message\", oldest first: at most 100 objects "  \
    "{\"role\": \"user\" or \"assistant\", \"content\": a non-empty string of at most 32000 " \
    "characters}"

static int check_turn(json_t *t, size_t i, struct chat_request_error *err)
{
    char *f = err->field_buf;
    snprintf(f, sizeof err->field_buf, "history[%zu]", i);
    if (!json_is_object(t))
        return fail(err, f, "Send each turn as an object with \"role\" and \"content\"",
                    HISTORY_RULE, "The field \"%s\" is %s, not an object", f,
                    chat_request_type_name(t));
    json_t *role = json_object_get(t, "role"), *content = json_object_get(t, "content");
    const char *r = json_is_string(role) ? json_string_value(role) : "";
    snprintf(f, sizeof err->field_buf, "history[%zu].role", i);
    if (strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
        return fail(err, f, "Set \"role\" to \"user\" or \"assistant\"", HISTORY_RULE,
                    "The field \"%s\" is %s", f,
                    role == NULL ? "missing" : "not \"user\" or \"assistant\"");
    snprintf(f, sizeof err->field_buf, "history[%zu].content", i);
    if (!json_is_string(content))
        return fail(err, f, "Send the turn's text as a string", HISTORY_RULE,
                    "The field \"%s\" is %s, not a string", f,
                    content ? chat_request_type_name(content) : "missing");
    size_t len = json_string_length(content);
    size_t chars = chat_utf8_chars(json_string_value(content), len);
    if (len == 0)
        return fail(err, f, "Leave empty turns out of the history", HISTORY_RULE,
                    "The field \"%s\" is empty", f);
    if (chars > CHAT_MAX_HISTORY_CHARS)
        return fail(err, f, "Shorten the turn to 32000 characters or fewer", HISTORY_RULE,
                    "The field \"%s\" is too long (%zu characters)", f, chars);
    return 0;
}

static int check_history(json_t *root, struct chat_request *req, struct chat_request_error *err)
{
    json_t *h = json_object_get(root, "history");
    if (h == NULL || json_is_null(h))
        return 0;
    if (!json_is_array(h))
        return fail(err, "history", "Send the history as a JSON array, or leave it out",
                    HISTORY_RULE, "The field \"history\" is %s, not an array",
                    chat_request_type_name(h));
    if (json_array_size(h) > CHAT_MAX_HISTORY)
        return fail(err, "history", "Send only the last 100 turns", HISTORY_RULE,
                    "The field \"history\" has %zu turns", json_array_size(h));
    for (size_t i = 0; i < json_array_size(h); i++)
        if (check_turn(json_array_get(h, i), i, err) != 0)
            return -EINVAL;
    req->history = json_array_size(h) ? h : NULL;
    return 0;
}

static void list_models(const struct config *cfg, char *out, size_t n)
{
    size_t used = (size_t)snprintf(out, n, "This server allows the models:");
    for (size_t i = 0; i < cfg->allowed_models.n && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s %s", i ? "," : "",
                                 cfg->allowed_models.items[i]);
}

static int check_model(json_t *root, const struct config *cfg, struct chat_request *req,
                       struct chat_request_error *err)
{
    json_t *m = json_object_get(root, "model");
    req->model = cfg->model;
    if (m == NULL || json_is_null(m))
        return 0;
    char allowed[320];
    list_models(cfg, allowed, sizeof allowed);
    if (!json_is_string(m))
        return fail(err, "model", "Send the model name as a string, or leave \"model\" out",
                    allowed, "The field \"model\" is %s, not a string", chat_request_type_name(m));
    const char *name = json_string_value(m);
    if (!config_model_allowed(cfg, name)) {
        char shown[68];
        size_t n = json_string_length(m);
        snprintf(shown, sizeof shown, "%.*s%s", n > 64 ? 60 : (int)n, name, n > 64 ? "..." : "");
        return fail(err, "model",
                    "Use one of those models, or leave \"model\" out for the "
                    "default",
                    allowed, "The model \"%s\" is not available", shown);
    }
    req->model = name;
    return 0;
}

/* Whole-valued (every double past 2^63 is). */
static bool integral(double d)
{
    return d < -9e18 || d > 9e18 || (double)(long long)d == d;
}

static int check_max_tokens(json_t *root, const struct config *cfg, struct chat_request *req,
                            bool ints_as_reals, struct chat_request_error *err)
{
    json_t *t = json_object_get(root, "max_tokens");
    req->max_tokens = cfg->max_tokens;
    if (t == NULL || json_is_null(t))
        return 0;
    char rule[96];
    snprintf(rule, sizeof rule, "\"max_tokens\" must be a whole number from 1 to %d",
             cfg->max_tokens);
    const char *todo = "Send a whole number in that range, or leave \"max_tokens\" out for the "
                       "server's default";
    double v;
    if (json_is_integer(t))
        v = (double)json_integer_value(t);
    else if (ints_as_reals && json_is_real(t) && integral(json_real_value(t)))
        v = json_real_value(t); /* a real only because the body held an integer past 64
                                 * bits; the caller checked it was written as one */
    else
        return fail(err, "max_tokens", todo, rule, "The field \"max_tokens\" is %s, not an integer",
                    chat_request_type_name(t));
    if (v < 1 || v > cfg->max_tokens)
        return fail(err, "max_tokens", todo, rule, "The field \"max_tokens\" is %.0f, out of range",
                    v);
    req->max_tokens = (int)v;
    return 0;
}

/* Whether the top-level "max_tokens" of a valid JSON body is written as an
 * integer literal (no fraction, no exponent), read from the text itself. */
static bool max_tokens_written_as_integer(const char *body, size_t len)
{
    struct jscan s;
    struct jstr key;
    bool first = true, integer = false;
    jscan_init(&s, body, len);
    if (jscan_peek(&s) != '{')
        return false;
    while (jscan_member(&s, &first, &key) == 1) {
        char c = jscan_peek(&s);
        const char *start = s.p;
        if (jscan_skip(&s) != 0)
            return false;
        if (jstr_is(&key, "max_tokens"))
            integer = (c == '-' || (c >= '0' && c <= '9')) &&
                      !memchr(start, '.', (size_t)(s.p - start)) &&
                      !memchr(start, 'e', (size_t)(s.p - start)) &&
                      !memchr(start, 'E', (size_t)(s.p - start));
    }
    return integer;
}

/* jansson does not always say that it ran out of memory: its allocations go
 * through here, which notes a failure for the thread. */
static _Thread_local bool json_failed;

static void *json_malloc(size_t n)
{
    void *p = malloc(n);
    json_failed |= p == NULL;
    return p;
}

void chat_json_setup(void)
{
    json_set_alloc_funcs(json_malloc, free);
}

bool chat_json_oom(void)
{
    bool failed = json_failed;
    json_failed = false;
    return failed;
}

int chat_request_parse(const char *body, size_t len, const struct config *cfg,
                       struct chat_request *req, struct chat_request_error *err)
{
    memset(req, 0, sizeof *req);
    if (len == 0)
        return fail(err, "body", "Send a JSON object such as {\"message\": \"Hello\"}",
                    "POST /chat takes a JSON object with a \"message\" string",
                    "The request body is empty");
    json_error_t jerr;
    size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
    chat_json_oom();
    json_t *root = json_loadb(body ? body : "", len, flags, &jerr);
    bool ints_as_reals = false;
    if (root == NULL && json_error_code(&jerr) == json_error_numeric_overflow) {
        /* An integer past 64 bits is still JSON: read numbers as reals so an
         * unknown field holding one is ignored and max_tokens gets a range error,
         * but keep "max_tokens": 5.0 refused, as it is without the big number. */
        root = json_loadb(body, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
        ints_as_reals = max_tokens_written_as_integer(body, len);
    }
    int rc;
    if (root == NULL && chat_json_oom())
        return -ENOMEM; /* not the client's fault: no validation error */
    if (root == NULL)   /* jerr.text may quote the body, so only the position is told */
        return fail(err, "body", "Send a JSON object such as {\"message\": \"Hello\"}",
                    "POST /chat takes a JSON object with a \"message\" string",
                    "The request body is not valid JSON (line %d, column %d)", jerr.line,
                    jerr.column);
    if (!json_is_object(root)) {
        rc = fail(err, "body", "Send a JSON object such as {\"message\": \"Hello\"}",
                  "POST /chat takes a JSON object with a \"message\" string",
                  "The request body is %s, not a JSON object", chat_request_type_name(root));
    } else if ((rc = check_message(root, req, err)) == 0 &&
               (rc = check_model(root, cfg, req, err)) == 0) {
        if ((rc = check_max_tokens(root, cfg, req, ints_as_reals, err)) == 0)
            rc = check_history(root, req, err);
    }
    if (rc != 0) {
        json_decref(root);
        memset(req, 0, sizeof *req);
        return rc;
    }
    req->root = root;
    return 0;
}

void chat_request_free(struct chat_request *req)
{
    if (req->root != NULL)
        json_decref(req->root);
    memset(req, 0, sizeof *req);
}
