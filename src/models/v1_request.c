/* v1_request: see v1_request.h. */
#include "models/v1_request.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "models/chat_request.h"

#define MESSAGES_RULE                                                                     \
    "\"messages\" must be a non-empty array of objects, each with a \"role\" of system, " \
    "developer, user, assistant or tool"

static int fail(struct v1_request_error *err, const char *param, const char *why, const char *todo,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct v1_request_error *err, const char *param, const char *why, const char *todo,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->what, sizeof err->what, fmt, ap);
    va_end(ap);
    err->code = ERR_VALIDATION;
    snprintf(err->param, sizeof err->param, "%s", param);
    snprintf(err->why, sizeof err->why, "%s", why);
    snprintf(err->todo, sizeof err->todo, "%s", todo);
    return -EINVAL;
}

/* As chat_request_type_name, but a number with a fraction is "a number". */
static const char *type_name(const json_t *v)
{
    return json_is_real(v) ? "a number" : chat_request_type_name(v);
}

static bool valid_role(const char *r)
{
    static const char *const roles[] = { "system", "developer", "user", "assistant", "tool" };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(r, roles[i]) == 0)
            return true;
    return false;
}

static int check_messages(json_t *root, struct v1_request *req, struct v1_request_error *err)
{
    json_t *m = json_object_get(root, "messages");
    if (m == NULL || json_is_null(m))
        return fail(err, "messages", MESSAGES_RULE, "Add the conversation as \"messages\"",
                    "The field \"messages\" is missing");
    if (!json_is_array(m) || json_array_size(m) == 0)
        return fail(err, "messages", MESSAGES_RULE, "Send at least one message",
                    "The field \"messages\" is %s", json_is_array(m) ? "empty" : type_name(m));
    char param[48];
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *msg = json_array_get(m, i);
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(msg))
            return fail(err, param, MESSAGES_RULE, "Send each message as an object",
                        "The field \"%s\" is %s, not an object", param, type_name(msg));
        json_t *role = json_object_get(msg, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role) || !valid_role(json_string_value(role)))
            return fail(err, param, MESSAGES_RULE, "Give the message one of those roles",
                        "The field \"%s\" is %s", param,
                        role == NULL ? "missing" : "not a role chatd knows");
        json_t *content = json_object_get(msg, "content");
        if (json_is_string(content)) {
            req->last_text = json_string_value(content);
            req->last_text_len = json_string_length(content);
        }
    }
    return 0;
}

/* "max_tokens" / "max_completion_tokens": absent, null, or 1 … max. */
static int check_limit(json_t *root, const char *name, int max, struct v1_request_error *err)
{
    json_t *t = json_object_get(root, name);
    if (t == NULL || json_is_null(t))
        return 0;
    char why[128];
    snprintf(why, sizeof why, "\"%s\" must be an integer from 1 to %d on this server", name, max);
    if (!json_is_integer(t))
        return fail(err, name, why, "Send a whole number in that range, or leave it out",
                    "The field \"%s\" is %s, not an integer", name, type_name(t));
    json_int_t v = json_integer_value(t);
    if (v < 1 || v > max)
        return fail(err, name, why, "Send a whole number in that range, or leave it out",
                    "The field \"%s\" is %lld", name, (long long)v);
    return 0;
}

static int check_fields(json_t *root, int max_tokens, struct v1_request *req,
                        struct v1_request_error *err)
{
    json_t *model = json_object_get(root, "model");
    if (model != NULL && !json_is_null(model) && !json_is_string(model))
        return fail(err, "model", "\"model\" names one of the models GET /v1/models lists",
                    "Send the model name as a string", "The field \"model\" is %s",
                    type_name(model));
    req->model = json_is_string(model) ? json_string_value(model) : NULL;
    json_t *n = json_object_get(root, "n");
    if (n != NULL && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return fail(err, "n", "chatd streams one answer per request",
                    "Leave \"n\" out or set it to 1, and send several requests for several "
                    "answers",
                    "The field \"n\" is not 1");
    json_t *stream = json_object_get(root, "stream");
    if (stream != NULL && !json_is_null(stream) && !json_is_boolean(stream))
        return fail(err, "stream", "\"stream\" is true for an event stream, false for one answer",
                    "Send true or false", "The field \"stream\" is %s, not a boolean",
                    type_name(stream));
    req->stream = json_is_true(stream);
    json_t *so = json_object_get(root, "stream_options");
    req->client_usage = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));
    int rc = check_limit(root, "max_tokens", max_tokens, err);
    return rc ? rc : check_limit(root, "max_completion_tokens", max_tokens, err);
}

int v1_request_parse(const char *body, size_t len, int max_tokens, struct v1_request *req,
                     struct v1_request_error *err)
{
    memset(req, 0, sizeof *req);
    json_error_t jerr;
    chat_json_oom();
    json_t *root =
        json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL && chat_json_oom())
        return -ENOMEM; /* not the client's fault: no validation error */
    if (root == NULL)   /* jerr.text may quote the body, so only the position is told */
        return fail(err, "", "POST /v1/chat/completions takes an OpenAI Chat Completions body",
                    "Send a JSON object with \"model\" and \"messages\"",
                    "The request body is not valid JSON (line %d, column %d)", jerr.line,
                    jerr.column);
    int rc;
    if (!json_is_object(root))
        rc = fail(err, "", "POST /v1/chat/completions takes an OpenAI Chat Completions body",
                  "Send a JSON object with \"model\" and \"messages\"",
                  "The request body is %s, not a JSON object", type_name(root));
    else if ((rc = check_messages(root, req, err)) == 0)
        rc = check_fields(root, max_tokens, req, err);
    if (rc != 0) {
        json_decref(root);
        memset(req, 0, sizeof *req);
        return rc;
    }
    req->root = root;
    return 0;
}

static int append_cb(const char *p, size_t n, void *data)
{
    return buf_append(data, p, n) == 0 ? 0 : -1;
}

static int put_target(json_t *root, const char *model, bool stream)
{
    if (json_object_set_new(root, "model", json_string(model)) != 0)
        return -ENOMEM;
    if (stream) {
        json_t *so = json_object_get(root, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            if (so == NULL || json_object_set_new(root, "stream_options", so) != 0)
                return -ENOMEM;
        }
        if (json_object_set_new(so, "include_usage", json_true()) != 0)
            return -ENOMEM;
    }
    return 0;
}

int v1_request_body(struct v1_request *req, const char *model, struct buf *out)
{
    /* On a shallow copy: replacing "model" in the request itself would free the
     * string the stream still points at (the requested model). */
    json_t *root = json_copy(req->root);
    int rc = root != NULL ? put_target(root, model, req->stream) : -ENOMEM;
    if (rc == 0 && json_dump_callback(root, append_cb, out, JSON_COMPACT) != 0)
        rc = -ENOMEM;
    json_decref(root);
    return rc;
}

void v1_request_free(struct v1_request *req)
{
    json_decref(req->root);
    memset(req, 0, sizeof *req);
}
