/* fuzz_v1_request: any body either is accepted as an OpenAI Chat Completions
 * request whose rewritten form is what the provider may receive, or is refused
 * with a complete three-part error naming its field. The checks are written on
 * jansson, independently of the validator (MAX_TOKENS=1024). */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz.h"
#include "models/v1_request.h"

static bool role_ok(const char *r)
{
    return strcmp(r, "system") == 0 || strcmp(r, "developer") == 0 || strcmp(r, "user") == 0 ||
           strcmp(r, "assistant") == 0 || strcmp(r, "tool") == 0;
}

/* What the contract asks of an accepted body. */
static void check_accepted(json_t *root)
{
    CHECK(json_is_object(root));
    json_t *m = json_object_get(root, "messages");
    CHECK(json_is_array(m) && json_array_size(m) > 0);
    for (size_t i = 0; i < json_array_size(m); i++) {
        json_t *role = json_object_get(json_array_get(m, i), "role");
        CHECK(json_is_string(role) && role_ok(json_string_value(role)));
    }
    json_t *n = json_object_get(root, "n");
    CHECK(n == NULL || json_is_null(n) || (json_is_integer(n) && json_integer_value(n) == 1));
    const char *limits[] = { "max_tokens", "max_completion_tokens" };
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_object_get(root, limits[i]);
        CHECK(t == NULL || json_is_null(t) ||
              (json_is_integer(t) && json_integer_value(t) >= 1 && json_integer_value(t) <= 1024));
    }
}

/* The provider's body: the client's, with model replaced and usage asked for. */
static void check_rewritten(struct v1_request *req, json_t *before)
{
    struct buf out = { 0 };
    CHECK(v1_request_body(req, "target-model", &out) == 0);
    json_t *after = json_loadb(out.p, out.len, JSON_REJECT_DUPLICATES, NULL);
    CHECK(after != NULL);
    CHECK(strcmp(json_string_value(json_object_get(after, "model")), "target-model") == 0);
    if (req->stream)
        CHECK(json_is_true(
            json_object_get(json_object_get(after, "stream_options"), "include_usage")));
    const char *key;
    json_t *v;
    json_object_foreach(before, key, v) /* every other field unchanged */
        if (strcmp(key, "model") != 0 && strcmp(key, "stream_options") != 0)
            CHECK(json_equal(v, json_object_get(after, key)));
    json_decref(after);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct v1_request req;
    struct v1_request_error err;
    memset(&err, 0, sizeof err);
    int rc = v1_request_parse((const char *)data, size, 1024, &req, &err);
    if (rc != 0) {
        CHECK(rc == -EINVAL && req.root == NULL);
        CHECK(err.what[0] && err.why[0] && err.todo[0]);
        CHECK(err.code == ERR_VALIDATION);
        return 0;
    }
    check_accepted(req.root);
    json_t *before = json_deep_copy(req.root);
    if (before != NULL) { /* a copy out of memory checks nothing */
        check_rewritten(&req, before);
        json_decref(before);
    }
    v1_request_free(&req);
    return 0;
}
