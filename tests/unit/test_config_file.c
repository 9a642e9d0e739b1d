/* Unit tests of the routing part of the config module: CHATD_CONFIG's JSON
 * (src/core/config_file.c), the tables built without it, and the lookups the
 * server uses (src/core/config_route.c). */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"

struct var {
    const char *name, *value;
};

static const char *table_lookup(const char *name, void *ctx)
{
    for (const struct var *v = ctx; v->name != NULL; v++)
        if (strcmp(v->name, name) == 0)
            return v->value;
    return NULL;
}

static const struct var env[] = {
    { "OPENAI_API_KEY", "sk-openai" },
    { "AZ_KEY", " az-key \n" },
    { "EMPTY_KEY", "" },
    { NULL, NULL },
};

/* SHA-256("password") and SHA-256("1"). */
#define HASH_PASSWORD "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
#define HASH_ONE      "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"

static const char good_json[] =
    "{\"providers\": ["
    " {\"name\": \"openai\", \"base_url\": \"https://api.openai.com/v1/\","
    "  \"api_key_env\": \"OPENAI_API_KEY\", \"api_key_header\": \"authorization\"},"
    " {\"name\": \"azure\", \"base_url\": \"https://r.openai.azure.com/openai/v1\","
    "  \"api_key_env\": \"AZ_KEY\", \"api_key_header\": \"api-key\","
    "  \"headers\": {\"HTTP-Referer\": \"https://app.example.com\", \"X-Title\": \"chat d\"}},"
    " {\"name\": \"local\", \"base_url\": \"http://127.0.0.1:8080/v1\", \"ca_file\": \"/dev/null\"}"
    "],"
    "\"models\": ["
    " {\"name\": \"gpt-4o-mini\", \"targets\": [{\"provider\": \"openai\", \"model\": "
    "\"gpt-4o-mini\"}, {\"provider\": \"azure\", \"model\": \"mini-deploy\"}]},"
    " {\"name\": \"local\", \"targets\": [{\"provider\": \"local\"}]}"
    "],"
    "\"default_model\": \"local\","
    "\"keys\": ["
    " {\"name\": \"web-app\", \"sha256\": \"" HASH_PASSWORD "\", \"models\": [\"gpt-4o-mini\"],"
    "  \"requests_per_minute\": 600, \"tokens_per_minute\": 200000, "
    "\"max_concurrent_streams\": 50},"
    " {\"name\": \"batch\", \"sha256\": \"" HASH_ONE "\"}"
    "]}";

static int parse(struct config *cfg, const char *json, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    err[0] = '\0';
    return config_parse_routing_json(cfg, json, strlen(json), table_lookup, (void *)env, err,
                                     errlen);
}

/* config_find_key with the token hashed as the middleware hashes it. */
static const struct key_conf *find_key(const struct config *cfg, const char *token, size_t len)
{
    unsigned char h[32];
    assert_int_equal(config_sha256(token, len, h), 0);
    return config_find_key(cfg, h);
}

static void test_good_file(void **state)
{
    (void)state;
    struct config cfg;
    char err[1024];
    if (parse(&cfg, good_json, err, sizeof err) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(cfg.n_providers, 3);
    const struct provider_conf *p = cfg.providers;
    assert_string_equal(p[0].name, "openai");
    assert_string_equal(p[0].base_url, "https://api.openai.com/v1");
    assert_string_equal(p[0].chat_url, "https://api.openai.com/v1/chat/completions");
    assert_string_equal(p[0].api_key, "sk-openai");
    assert_null(p[0].api_key_header); /* Authorization: Bearer */
    assert_string_equal(p[1].api_key, "az-key");
    assert_string_equal(p[1].api_key_header, "api-key");
    assert_int_equal(p[1].headers.n, 2);
    assert_string_equal(p[1].headers.items[0], "HTTP-Referer: https://app.example.com");
    assert_string_equal(p[1].headers.items[1], "X-Title: chat d");
    assert_null(p[2].api_key);
    assert_string_equal(p[2].ca_file, "/dev/null");
    assert_int_equal(cfg.n_models, 2);
    assert_string_equal(cfg.models[0].name, "gpt-4o-mini");
    assert_int_equal(cfg.models[0].n_targets, 2);
    assert_int_equal(cfg.models[0].targets[1].provider, 1);
    assert_string_equal(cfg.models[0].targets[1].model, "mini-deploy");
    assert_string_equal(cfg.models[1].targets[0].model, "local"); /* defaults to the name */
    assert_int_equal(cfg.default_model, 1);
    assert_int_equal(cfg.n_keys, 2);
    assert_string_equal(cfg.keys[0].name, "web-app");
    assert_int_equal(cfg.keys[0].requests_per_minute, 600);
    assert_int_equal(cfg.keys[0].tokens_per_minute, 200000);
    assert_int_equal(cfg.keys[0].max_concurrent_streams, 50);
    assert_int_equal(cfg.keys[0].models.n, 1);
    assert_int_equal(cfg.keys[1].requests_per_minute, 0);
    /* What older code reads: the first provider, the default model, every model. */
    assert_string_equal(cfg.base_url, "https://api.openai.com/v1");
    assert_string_equal(cfg.api_key, "sk-openai");
    assert_string_equal(cfg.model, "local");
    assert_int_equal(cfg.allowed_models.n, 2);
    assert_true(config_model_allowed(&cfg, "gpt-4o-mini"));
    config_free(&cfg);
}

static void test_lookups(void **state)
{
    (void)state;
    struct config cfg;
    char err[1024];
    assert_int_equal(parse(&cfg, good_json, err, sizeof err), 0);
    assert_ptr_equal(config_find_model(&cfg, NULL), &cfg.models[1]);
    assert_ptr_equal(config_find_model(&cfg, "gpt-4o-mini"), &cfg.models[0]);
    assert_null(config_find_model(&cfg, "gpt-4o"));
    assert_null(config_find_model(&cfg, "mini-deploy")); /* a provider's name is not routed */
    assert_true(config_auth_enabled(&cfg));
    const struct key_conf *k = find_key(&cfg, "password", 8);
    assert_ptr_equal(k, &cfg.keys[0]);
    assert_ptr_equal(find_key(&cfg, "1", 1), &cfg.keys[1]);
    assert_null(find_key(&cfg, "passwor", 7));
    assert_null(find_key(&cfg, "password ", 9));
    assert_null(find_key(&cfg, "", 0));
    assert_true(config_key_allows(k, "gpt-4o-mini"));
    assert_false(config_key_allows(k, "local"));
    assert_true(config_key_allows(&cfg.keys[1], "local")); /* no list: every model */
    assert_true(config_key_allows(NULL, "local"));
    config_free(&cfg);
    config_free(&cfg);
    assert_false(config_auth_enabled(&cfg));
    assert_null(config_find_model(&cfg, NULL));
}

/* One mistake per case: the JSON path the message must start with. */
struct bad {
    const char *json;
    const char *path;
};

#define P_OK "{\"name\": \"a\", \"base_url\": \"http://127.0.0.1:1/v1\"}"
#define M_OK "{\"name\": \"m\", \"targets\": [{\"provider\": \"a\"}]}"
#define WRAP(providers, models, rest) \
    "{\"providers\": [" providers "], \"models\": [" models "]" rest "}"

static const struct bad bad_cases[] = {
    { "{\"providers\": [", "(file)" },
    { "{\"providers\": [], \"providers\": []}", "(file)" },
    { "[]", "(top level)" },
    { WRAP(P_OK, M_OK, ", \"modles\": []"), "(top level)" },
    { "{\"models\": [" M_OK "]}", "providers" },
    { "{\"providers\": [" P_OK "]}", "models" },
    { WRAP(P_OK, M_OK, ", \"keys\": []"), "keys" },
    { WRAP("5", M_OK, ""), "providers[0]" },
    { WRAP("{\"name\": \"a\"}", M_OK, ""), "providers[0]" },
    { WRAP("{\"base_url\": \"http://h\"}", M_OK, ""), "providers[0]" },
    { WRAP("{\"name\": \"a b\", \"base_url\": \"http://h\"}", M_OK, ""), "providers[0].name" },
    { WRAP(P_OK "," P_OK, M_OK, ""), "providers[1].name" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"ftp://h\"}", M_OK, ""), "providers[0].base_url" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"https://h/v1?x=1\"}", M_OK, ""),
      "providers[0].base_url" },
    { WRAP("{\"name\": \"a\", \"base_url\": 7}", M_OK, ""), "providers[0]" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_env\": \"UNSET_VAR\"}", M_OK,
           ""),
      "providers[0].api_key_env" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_env\": \"EMPTY_KEY\"}", M_OK,
           ""),
      "providers[0].api_key_env" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_header\": \"api-key\"}", M_OK,
           ""),
      "providers[0]" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_env\": \"AZ_KEY\", "
           "\"api_key_header\": \"api key\"}",
           M_OK, ""),
      "providers[0].api_key_header" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_env\": \"AZ_KEY\", "
           "\"api_key_header\": \"api-key\", \"headers\": {\"API-KEY\": \"x\"}}",
           M_OK, ""),
      "providers[0].headers.API-KEY" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"headers\": {\"Authorization\": "
           "\"Bearer x\"}}",
           M_OK, ""),
      "providers[0].headers.Authorization" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"headers\": {\"X\": \"a\\nb\"}}", M_OK,
           ""),
      "providers[0].headers.X" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"headers\": [\"X: y\"]}", M_OK, ""),
      "providers[0]" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"ca_file\": \"/nonexistent/ca.pem\"}",
           M_OK, ""),
      "providers[0].ca_file" },
    { WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key\": \"sk-inline\"}", M_OK, ""),
      "providers[0]" },
    { WRAP(P_OK, "{\"name\": \"m\"}", ""), "models[0]" },
    { WRAP(P_OK, "{\"name\": \"m\", \"targets\": []}", ""), "models[0]" },
    { WRAP(P_OK, M_OK "," M_OK, ""), "models[1].name" },
    { WRAP(P_OK, "{\"name\": \"m x\", \"targets\": [{\"provider\": \"a\"}]}", ""),
      "models[0].name" },
    { WRAP(P_OK,
           M_OK ", {\"name\": \"n\", \"targets\": [{\"provider\": \"a\"}, {\"provider\": "
                "\"b\"}]}",
           ""),
      "models[1].targets[1].provider" },
    { WRAP(P_OK, "{\"name\": \"m\", \"targets\": [{\"provider\": \"a\", \"modle\": \"x\"}]}", ""),
      "models[0].targets[0]" },
    { WRAP(P_OK, "{\"name\": \"m\", \"targets\": [{\"provider\": \"a\", \"model\": \"x y\"}]}", ""),
      "models[0].targets[0].model" },
    { WRAP(P_OK, M_OK, ", \"default_model\": \"other\""), "default_model" },
    { WRAP(P_OK, M_OK, ", \"keys\": [{\"name\": \"k\", \"sha256\": \"abc\"}]"), "keys[0].sha256" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": "
           "\"zz884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8\"}]"),
      "keys[0].sha256" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE "\"}, {\"name\": \"k\", "
           "\"sha256\": \"" HASH_PASSWORD "\"}]"),
      "keys[1].name" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE "\"}, {\"name\": \"j\", "
           "\"sha256\": \"" HASH_ONE "\"}]"),
      "keys[1].sha256" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE "\", \"models\": [\"x\"]}]"),
      "keys[0].models[0]" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE
           "\", \"requests_per_minute\": -1}]"),
      "keys[0]" },
    { WRAP(P_OK, M_OK,
           ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE
           "\", \"tokens_per_minute\": 1.5}]"),
      "keys[0]" },
    { WRAP(P_OK, M_OK, ", \"keys\": [{\"name\": \"k\", \"sha256\": \"" HASH_ONE "\", \"rpm\": 5}]"),
      "keys[0]" },
    { WRAP(P_OK, M_OK, ", \"keys\": [{\"sha256\": \"" HASH_ONE "\"}]"), "keys[0]" },
};

static void test_every_mistake_names_its_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        struct config cfg;
        char err[1024];
        int rc = parse(&cfg, bad_cases[i].json, err, sizeof err);
        if (rc != -EINVAL)
            fail_msg("case %zu accepted (rc %d): %s", i, rc, bad_cases[i].json);
        size_t n = strlen(bad_cases[i].path);
        if (strncmp(err, bad_cases[i].path, n) != 0 || err[n] != ':')
            fail_msg("case %zu: message does not start with \"%s:\": %s", i, bad_cases[i].path,
                     err);
        if (unit_sentences(err) < 3)
            fail_msg("case %zu: fewer than three sentences: %s", i, err);
        assert_int_equal(cfg.n_providers, 0);
        assert_null(cfg.providers);
        assert_null(cfg.models);
        assert_null(cfg.keys);
        config_free(&cfg);
    }
}

static void test_bad_json_has_line_and_column(void **state)
{
    (void)state;
    struct config cfg;
    char err[1024];
    assert_int_equal(parse(&cfg, "{\n  \"providers\": [\n    {\"name\": }\n", err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "line 3, column 14"));
    config_free(&cfg);
}

static void test_secret_is_not_echoed(void **state)
{
    (void)state;
    static const struct var secret_env[] = { { "K", "sk-SECRET with space" }, { NULL, NULL } };
    const char *json =
        WRAP("{\"name\": \"a\", \"base_url\": \"http://h\", \"api_key_env\": \"K\"}", M_OK, "");
    struct config cfg = { 0 };
    char err[1024];
    assert_int_equal(config_parse_routing_json(&cfg, json, strlen(json), table_lookup,
                                               (void *)secret_env, err, sizeof err),
                     -EINVAL);
    assert_null(strstr(err, "SECRET"));
    assert_non_null(strstr(err, "providers[0].api_key_env"));
    config_free(&cfg);
}

/* ---- through config_load: the variables and the file together ------------------------- */

static int load(struct config *cfg, const struct var *vars, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_load(cfg, table_lookup, (void *)vars, err, errlen);
}

static void test_without_file(void **state)
{
    (void)state;
    static const struct var vars[] = { { "OPENAI_BASE_URL", "http://127.0.0.1:9/v1" },
                                       { "OPENAI_API_KEY", "sk-x" },
                                       { "OPENAI_MODEL", "b" },
                                       { "ALLOWED_MODELS", "a,b" },
                                       { "CLIENT_API_KEYS", "password,1" },
                                       { NULL, NULL } };
    struct config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, vars, err, sizeof err), 0);
    assert_int_equal(cfg.n_providers, 1);
    assert_string_equal(cfg.providers[0].name, "default");
    assert_string_equal(cfg.providers[0].chat_url, "http://127.0.0.1:9/v1/chat/completions");
    assert_string_equal(cfg.providers[0].api_key, "sk-x");
    assert_null(cfg.providers[0].api_key_header);
    assert_int_equal(cfg.n_models, 2);
    assert_string_equal(cfg.models[1].name, "b");
    assert_int_equal(cfg.models[1].n_targets, 1);
    assert_int_equal(cfg.models[1].targets[0].provider, 0);
    assert_string_equal(cfg.models[1].targets[0].model, "b");
    assert_int_equal(cfg.default_model, 1);
    assert_int_equal(cfg.n_keys, 2);
    assert_string_equal(cfg.keys[0].name, "CLIENT_API_KEYS[1]");
    assert_string_equal(cfg.keys[1].name, "CLIENT_API_KEYS[2]");
    assert_ptr_equal(find_key(&cfg, "1", 1), &cfg.keys[1]);
    assert_null(find_key(&cfg, "2", 1));
    assert_int_equal(cfg.keys[0].models.n, 0);
    config_free(&cfg);

    static const struct var none[] = { { NULL, NULL } };
    assert_int_equal(load(&cfg, none, err, sizeof err), 0);
    assert_false(config_auth_enabled(&cfg));
    assert_null(find_key(&cfg, "x", 1));
    config_free(&cfg);
}

static void test_with_file(void **state)
{
    (void)state;
    const char *path = unit_temp_file(good_json);
    struct var vars[] = { { "CHATD_CONFIG", path }, { "OPENAI_API_KEY", "sk-openai" },
                          { "AZ_KEY", "az" },       { "CLIENT_API_KEYS", "other-key" },
                          { "MAX_TOKENS", "77" },   { NULL, NULL } };
    struct config cfg;
    char err[1024];
    if (load(&cfg, vars, err, sizeof err) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(cfg.n_providers, 3);
    assert_int_equal(cfg.max_tokens, 77);
    assert_int_equal(cfg.n_keys, 3); /* the file's two, then CLIENT_API_KEYS */
    assert_string_equal(cfg.keys[2].name, "CLIENT_API_KEYS[1]");
    assert_ptr_equal(find_key(&cfg, "other-key", 9), &cfg.keys[2]);
    assert_string_equal(cfg.model, "local");
    config_free(&cfg);

    /* The same key in both places is refused. */
    vars[3].value = "password";
    assert_int_equal(load(&cfg, vars, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "CLIENT_API_KEYS entry 1 is also keys[0]"));

    /* With a file, OPENAI_BASE_URL, OPENAI_MODEL and ALLOWED_MODELS must not be set. */
    static const char *const clash[] = { "OPENAI_BASE_URL", "OPENAI_MODEL", "ALLOWED_MODELS" };
    vars[3] = (struct var){ NULL, NULL };
    for (size_t i = 0; i < N_ELEMS(clash); i++) {
        vars[3] = (struct var){ clash[i], "gpt-4o" };
        assert_int_equal(load(&cfg, vars, err, sizeof err), -EINVAL);
        assert_true(strncmp(err, "CHATD_CONFIG and ", 17) == 0);
        assert_non_null(strstr(err, clash[i]));
    }
    unlink(path);

    /* A file that is not there, and a mistake inside one: both name the file. */
    vars[3] = (struct var){ NULL, NULL };
    assert_int_equal(load(&cfg, vars, err, sizeof err), -EINVAL);
    assert_true(strncmp(err, "CHATD_CONFIG=", 13) == 0);
    assert_true(unit_sentences(err) >= 3);
    path =
        unit_temp_file(WRAP(P_OK, "{\"name\": \"m\", \"targets\": [{\"provider\": \"zz\"}]}", ""));
    vars[0].value = path;
    assert_int_equal(load(&cfg, vars, err, sizeof err), -EINVAL);
    char want[128];
    snprintf(want, sizeof want, "CHATD_CONFIG %s, models[0].targets[0].provider: ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got: %s", err);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_every_mistake_names_its_path),
        cmocka_unit_test(test_bad_json_has_line_and_column),
        cmocka_unit_test(test_secret_is_not_echoed),
        cmocka_unit_test(test_without_file),
        cmocka_unit_test(test_with_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
