/* Unit tests of src/models/v1_request.c: what chatd checks of an OpenAI Chat
 * Completions body (model, messages, n, stream, the two token limits), the field
 * each refusal names, and the provider body written per target. */
#include "unit.h"

#include <errno.h>

#include "core/buf.h"
#include "models/v1_request.h"

#define MAX 1024

static void refused(const char *body, const char *param)
{
    struct v1_request r;
    struct v1_request_error err;
    if (v1_request_parse(body, strlen(body), MAX, &r, &err) != -EINVAL)
        fail_msg("accepted: %s", body);
    assert_string_equal(err.param, param);
    char detail[1024];
    error_detail(detail, sizeof detail, err.code, err.what, err.why, err.todo);
    assert_int_equal(unit_sentences(detail), 3);
    assert_null(r.root);
}

static void test_refusals_name_their_field(void **state)
{
    (void)state;
    refused("", "");
    refused("[]", "");
    refused("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}],}", "");
    refused("{}", "messages");
    refused("{\"messages\": []}", "messages");
    refused("{\"messages\": {}}", "messages");
    refused("{\"messages\": [1]}", "messages[0]");
    refused("{\"messages\": [{\"content\": \"a\"}]}", "messages[0].role");
    refused("{\"messages\": [{\"role\": \"user\"}, {\"role\": \"robot\"}]}", "messages[1].role");
    refused("{\"messages\": [{\"role\": \"user\"}], \"model\": 5}", "model");
    refused("{\"messages\": [{\"role\": \"user\"}], \"n\": 2}", "n");
    refused("{\"messages\": [{\"role\": \"user\"}], \"stream\": \"yes\"}", "stream");
    refused("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": 0}", "max_tokens");
    refused("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": 1025}", "max_tokens");
    refused("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": 5.0}", "max_tokens");
    refused("{\"messages\": [{\"role\": \"user\"}], \"max_completion_tokens\": -1}",
            "max_completion_tokens");
}

static void test_every_role_and_optional_null(void **state)
{
    (void)state;
    const char *body = "{\"model\": null, \"n\": 1, \"stream\": null, \"max_tokens\": null,"
                       "\"messages\": [{\"role\": \"system\"}, {\"role\": \"developer\"},"
                       "{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]},"
                       "{\"role\": \"assistant\", \"tool_calls\": []},"
                       "{\"role\": \"tool\", \"content\": \"last\"}]}";
    struct v1_request r;
    struct v1_request_error err;
    assert_int_equal(v1_request_parse(body, strlen(body), MAX, &r, &err), 0);
    assert_null(r.model);
    assert_false(r.stream);
    assert_false(r.client_usage);
    assert_int_equal(r.last_text_len, 4);
    assert_memory_equal(r.last_text, "last", 4);
    v1_request_free(&r);
}

static json_t *rewrite(const char *body, const char *model, struct v1_request *r)
{
    struct v1_request_error err;
    assert_int_equal(v1_request_parse(body, strlen(body), MAX, r, &err), 0);
    struct buf out = { 0 };
    assert_int_equal(v1_request_body(r, model, &out), 0);
    json_t *j = unit_json(out.p, out.len);
    buf_free(&out);
    return j;
}

static void test_provider_body_replaces_model_and_asks_for_usage(void **state)
{
    (void)state;
    struct v1_request r;
    json_t *j = rewrite("{\"model\": \"alias\", \"messages\": [{\"role\": \"user\"}],"
                        "\"stream\": true, \"temperature\": 0.5, \"seed\": 7, \"x_vendor\": [1],"
                        "\"stream_options\": {\"include_usage\": false, \"other\": 1}}",
                        "real-model", &r);
    assert_true(r.stream);
    assert_false(r.client_usage);
    assert_string_equal(unit_str(j, "model"), "real-model");
    json_t *so = json_object_get(j, "stream_options");
    assert_true(json_is_true(json_object_get(so, "include_usage")));
    assert_int_equal(json_integer_value(json_object_get(so, "other")), 1);
    assert_int_equal(unit_int(j, "seed"), 7);
    assert_true(json_real_value(json_object_get(j, "temperature")) == 0.5);
    assert_true(json_is_array(json_object_get(j, "x_vendor")));
    assert_null(json_object_get(j, "max_tokens")); /* none added */
    json_decref(j);
    v1_request_free(&r);
}

static void test_unstreamed_body_gets_no_stream_options(void **state)
{
    (void)state;
    struct v1_request r;
    json_t *j = rewrite("{\"messages\": [{\"role\": \"user\"}]}", "m", &r);
    assert_null(json_object_get(j, "stream_options"));
    assert_string_equal(unit_str(j, "model"), "m");
    json_decref(j);
    v1_request_free(&r);
}

static void test_client_usage_is_read(void **state)
{
    (void)state;
    const char *body = "{\"messages\": [{\"role\": \"user\"}], \"stream\": true,"
                       "\"stream_options\": {\"include_usage\": true}}";
    struct v1_request r;
    struct v1_request_error err;
    assert_int_equal(v1_request_parse(body, strlen(body), MAX, &r, &err), 0);
    assert_true(r.client_usage);
    v1_request_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals_name_their_field),
        cmocka_unit_test(test_every_role_and_optional_null),
        cmocka_unit_test(test_provider_body_replaces_model_and_asks_for_usage),
        cmocka_unit_test(test_unstreamed_body_gets_no_stream_options),
        cmocka_unit_test(test_client_usage_is_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
