/* fuzz_openai_chunk: openai_chunk_parse (jscan, no allocation) reads a stream
 * chunk as a model built on jansson says it should: the same verdict, content,
 * finish_reason, usage and error flag. Texts with duplicate keys or beyond
 * jansson or jscan limits are only checked not to crash. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "core/jscan.h"
#include "fuzz.h"
#include "services/openai.h"

/* What a chunk should give: the fields that are not strings, then the strings
 * as jansson decodes them. */
struct model {
    struct openai_chunk m;
    const char *content, *finish;
    size_t content_len;
};

/* Fills the model of a chunk, or returns false when the chunk must be refused. */
static bool model(json_t *root, struct model *e)
{
    struct openai_chunk *m = &e->m;
    memset(e, 0, sizeof *e);
    e->finish = "";
    if (!json_is_object(root))
        return false;
    json_t *choices = json_object_get(root, "choices"), *usage = json_object_get(root, "usage");
    json_t *error = json_object_get(root, "error");
    m->is_error = error != NULL && !json_is_null(error);
    if (choices != NULL && !json_is_null(choices)) {
        if (!json_is_array(choices))
            return false;
        json_t *c0 = json_array_get(choices, 0);
        if (c0 != NULL && !json_is_object(c0))
            return false;
        m->n_choices = (int)json_array_size(choices);
        json_t *delta = json_object_get(c0, "delta"), *fin = json_object_get(c0, "finish_reason");
        const char *k;
        json_t *kv;
        if (json_is_object(delta))
            json_object_foreach(delta, k, kv) /* a tool call, refusal, reasoning … */
                if (strcmp(k, "role") != 0 && strcmp(k, "content") != 0 && !json_is_null(kv))
                    m->substance = true;
        if (delta != NULL && !json_is_null(delta)) {
            json_t *content_v = json_object_get(delta, "content");
            if (!json_is_object(delta) ||
                (content_v != NULL && !json_is_null(content_v) && !json_is_string(content_v)))
                return false;
            if (json_is_string(content_v) && json_string_length(content_v) > 0) {
                e->content = json_string_value(content_v);
                e->content_len = json_string_length(content_v);
                m->substance = true;
            }
        }
        if (fin != NULL && !json_is_null(fin)) {
            if (!json_is_string(fin))
                return false;
            e->finish = json_string_value(fin);
            m->substance = true;
        }
    }
    if (json_is_object(usage)) {
        static const char *const names[] = { "prompt_tokens", "completion_tokens", "total_tokens" };
        long long *dst[] = { &m->prompt_tokens, &m->completion_tokens, &m->total_tokens };
        bool seen[3];
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(usage, names[i]);
            json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
            seen[i] = json_is_integer(v) && n > -1000000000000000000 && n < 1000000000000000000;
            *dst[i] = seen[i] ? n : 0;
        }
        m->has_usage = seen[0] && seen[1];
        if (m->has_usage && !seen[2])
            m->total_tokens = m->prompt_tokens + m->completion_tokens;
    }
    return true;
}

/* content_json is the inside of a JSON string whose value is want. */
static void check_content(const struct openai_chunk *c, const char *want, size_t wlen)
{
    CHECK((c->content_json == NULL) == (want == NULL));
    if (want == NULL)
        return;
    char *q = malloc(c->content_json_len + 2);
    CHECK(q != NULL);
    q[0] = q[c->content_json_len + 1] = '"';
    memcpy(q + 1, c->content_json, c->content_json_len);
    json_t *v = json_loadb(q, c->content_json_len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(json_is_string(v) && json_string_length(v) == wlen &&
          memcmp(json_string_value(v), want, wlen) == 0);
    json_decref(v);
    free(q);
}

/* finish_reason is want, or its start cut on a character boundary to fit. */
static void check_finish(const char *got, const char *want)
{
    size_t n = strlen(got), w = strlen(want);
    CHECK(n < 32 && strncmp(got, want, n) == 0);
    CHECK(n == w || (n + 4 >= 32 && ((unsigned char)want[n] & 0xc0) != 0x80));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct openai_chunk c;
    int rc = openai_chunk_parse(text, size, &c);
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK(fuzz_utf8_valid(c.finish_reason, strnlen(c.finish_reason, sizeof c.finish_reason)));
    if (c.content_json != NULL)
        CHECK(c.content_json > text && c.content_json + c.content_json_len < text + size);
    if (memchr(text, '\0', size) != NULL) { /* never JSON, but jansson stops reading there */
        CHECK(rc == -EINVAL);
        return 0;
    }
    json_error_t err;
    json_t *root = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        if (!fuzz_json_limit(&err))
            CHECK(rc == -EINVAL);
        return 0;
    }
    struct model e;
    bool ok = model(root, &e);
    if (fuzz_json_depth(root) > JSCAN_MAX_DEPTH)
        CHECK(rc == -EINVAL);
    else
        CHECK(ok == (rc == 0));
    if (rc == 0) {
        check_content(&c, e.content, e.content_len);
        check_finish(c.finish_reason, e.finish);
        CHECK(c.has_usage == e.m.has_usage && c.is_error == e.m.is_error);
        CHECK(c.n_choices == e.m.n_choices && c.substance == e.m.substance);
        /* the usage-only chunk /v1 strips unless the client asked for it */
        CHECK(openai_chunk_usage_only(&c) == (e.m.n_choices == 0 && e.m.has_usage));
        if (c.has_usage)
            CHECK(c.prompt_tokens == e.m.prompt_tokens &&
                  c.completion_tokens == e.m.completion_tokens &&
                  c.total_tokens == e.m.total_tokens);
    }
    json_decref(root);
    return 0;
}
