/* Unit tests of src/core/config.c: defaults, every validation rule with its
 * three-part message, .env plus the real environment, and the helpers. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"

/* A lookup over a NULL-terminated table of name/value pairs. */
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

static int load(struct config *cfg, const struct var *vars, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_load(cfg, table_lookup, (void *)vars, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    static const struct var none[] = { { NULL, NULL } };
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, none, err, sizeof err), 0);
    assert_null(cfg.api_key);
    assert_string_equal(cfg.base_url, "https://api.openai.com/v1");
    assert_string_equal(cfg.chat_url, "https://api.openai.com/v1/chat/completions");
    assert_string_equal(cfg.model, "gpt-4o-mini");
    assert_int_equal(cfg.allowed_models.n, 1);
    assert_string_equal(cfg.allowed_models.items[0], "gpt-4o-mini");
    assert_int_equal(cfg.max_tokens, 1024);
    assert_true(cfg.timeout_s == 60);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 8000);
    assert_int_equal(cfg.cors_origins.n, 0);
    assert_false(cfg.cors_any);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    assert_int_equal(cfg.max_streams, 10000);
    assert_true(cfg.drain_s == 30);
    assert_int_equal(cfg.client_keys.n, 0);
    assert_true(cfg.client_timeout_s == 30);
    assert_int_equal(cfg.max_request_bytes, 1048576);
    assert_null(cfg.system_prompt);
    assert_null(cfg.config_path);
    assert_int_equal(cfg.upstream_retries, 2);
    assert_true(cfg.connect_timeout_s == 5);
    assert_int_equal(cfg.breaker_failures, 5);
    assert_true(cfg.breaker_cooldown_s == 30);
    assert_null(cfg.redis_url);
    assert_true(cfg.rate_limit_fail_open);
    assert_true(cfg.ui_enabled);
    assert_int_equal(cfg.idle_spin_us, 0);
    assert_string_equal(cfg.dns_resolv_conf, "/etc/resolv.conf");
    config_free(&cfg);
}

static void test_blank_values_mean_default(void **state)
{
    (void)state;
    static const struct var blank[] = {
        { "OPENAI_API_KEY", "" }, { "OPENAI_MODEL", "  " }, { "MAX_TOKENS", "\t" }, { "PORT", "" },
        { "CORS_ORIGINS", " " },  { "ALLOWED_MODELS", "" }, { NULL, NULL },
    };
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, blank, err, sizeof err), 0);
    assert_null(cfg.api_key);
    assert_string_equal(cfg.model, "gpt-4o-mini");
    assert_int_equal(cfg.max_tokens, 1024);
    assert_int_equal(cfg.port, 8000);
    assert_int_equal(cfg.allowed_models.n, 1);
    config_free(&cfg);
}

static void test_every_variable_set(void **state)
{
    (void)state;
    static const struct var vars[] = {
        { "OPENAI_API_KEY", " sk-test-123 " },
        { "OPENAI_BASE_URL", "http://127.0.0.1:8080/v1///" },
        { "OPENAI_MODEL", "llama3" },
        { "ALLOWED_MODELS", " llama3 , ,mistral,," },
        { "MAX_TOKENS", "2048" },
        { "TIMEOUT_SECONDS", "0.5" },
        { "LOG_LEVEL", "DEBUG" },
        { "HOST", "0.0.0.0" },
        { "PORT", "0" },
        { "CORS_ORIGINS", "https://app.example.com, http://localhost:3000" },
        { "WORKERS", "3" },
        { "MAX_CONCURRENT_STREAMS", "7" },
        { "DRAIN_SECONDS", "0" },
        { "CLIENT_API_KEYS", "k1,k2" },
        { "CLIENT_TIMEOUT_SECONDS", "12.5" },
        { "MAX_REQUEST_BYTES", "2048" },
        { "SYSTEM_PROMPT", " Be brief.\nAnswer in English. " },
        { "UPSTREAM_RETRIES", "0" },
        { "CONNECT_TIMEOUT_SECONDS", "1.5" },
        { "BREAKER_FAILURES", "3" },
        { "BREAKER_COOLDOWN_SECONDS", "7" },
        { "REDIS_URL", "redis://:pw@127.0.0.1:6379/2" },
        { "RATE_LIMIT_FAIL_OPEN", "No" },
        { "UI_ENABLED", "0" },
        { "IDLE_SPIN_MICROSECONDS", " 250 " },
        { "DNS_RESOLV_CONF", "/run/chatd/resolv.conf" },
        { NULL, NULL },
    };
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, vars, err, sizeof err), 0);
    assert_string_equal(cfg.api_key, "sk-test-123");
    assert_string_equal(cfg.base_url, "http://127.0.0.1:8080/v1");
    assert_string_equal(cfg.chat_url, "http://127.0.0.1:8080/v1/chat/completions");
    assert_string_equal(cfg.model, "llama3");
    assert_int_equal(cfg.allowed_models.n, 2);
    assert_string_equal(cfg.allowed_models.items[0], "llama3");
    assert_string_equal(cfg.allowed_models.items[1], "mistral");
    assert_int_equal(cfg.max_tokens, 2048);
    assert_true(cfg.timeout_s == 0.5);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 0);
    assert_int_equal(cfg.cors_origins.n, 2);
    assert_string_equal(cfg.cors_origins.items[1], "http://localhost:3000");
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.max_streams, 7);
    assert_true(cfg.drain_s == 0);
    assert_int_equal(cfg.client_keys.n, 2);
    assert_string_equal(cfg.client_keys.items[1], "k2");
    assert_true(cfg.client_timeout_s == 12.5);
    assert_int_equal(cfg.max_request_bytes, 2048);
    assert_string_equal(cfg.system_prompt, "Be brief.\nAnswer in English.");
    assert_int_equal(cfg.upstream_retries, 0);
    assert_true(cfg.connect_timeout_s == 1.5);
    assert_int_equal(cfg.breaker_failures, 3);
    assert_true(cfg.breaker_cooldown_s == 7);
    assert_string_equal(cfg.redis_url, "redis://:pw@127.0.0.1:6379/2");
    assert_false(cfg.rate_limit_fail_open);
    assert_false(cfg.ui_enabled);
    assert_int_equal(cfg.idle_spin_us, 250);
    assert_string_equal(cfg.dns_resolv_conf, "/run/chatd/resolv.conf");
    config_free(&cfg);
    config_free(&cfg); /* idempotent */
}

/* One bad value: the variable it names and a word of the explanation. */
struct bad_case {
    const char *name, *value;
    const char *names; /* what the message must name */
};

static const struct bad_case bad_cases[] = {
    { "OPENAI_API_KEY", "sk has space", "OPENAI_API_KEY" },
    { "OPENAI_API_KEY", "sk-ctl\x01x", "OPENAI_API_KEY" },
    { "OPENAI_BASE_URL", "api.openai.com/v1", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "ftp://example.com", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "https://", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "https:///v1", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "https://h/v1?x=1", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "https://h/v1#f", "OPENAI_BASE_URL" },
    { "OPENAI_BASE_URL", "https://h /v1", "OPENAI_BASE_URL" },
    { "OPENAI_MODEL", "gpt 4", "OPENAI_MODEL" },
    { "OPENAI_MODEL", "gpt\"4", "OPENAI_MODEL" },
    { "ALLOWED_MODELS", "gpt-4o-mini,bad\"model", "ALLOWED_MODELS" },
    { "ALLOWED_MODELS", ",,,", "ALLOWED_MODELS" },
    { "ALLOWED_MODELS", "gpt-4o", "OPENAI_MODEL" }, /* the default model is not in it */
    { "MAX_TOKENS", "0", "MAX_TOKENS" },
    { "MAX_TOKENS", "-5", "MAX_TOKENS" },
    { "MAX_TOKENS", "+5", "MAX_TOKENS" },
    { "MAX_TOKENS", "1000001", "MAX_TOKENS" },
    { "MAX_TOKENS", "12abc", "MAX_TOKENS" },
    { "MAX_TOKENS", "1.5", "MAX_TOKENS" },
    { "MAX_TOKENS", "99999999999999999999", "MAX_TOKENS" },
    { "TIMEOUT_SECONDS", "0", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "-1", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "86401", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "abc", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "inf", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "nan", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "1e999", "TIMEOUT_SECONDS" },
    { "TIMEOUT_SECONDS", "5s", "TIMEOUT_SECONDS" },
    { "LOG_LEVEL", "verbose", "LOG_LEVEL" },
    { "HOST", "local host", "HOST" },
    { "PORT", "65536", "PORT" },
    { "PORT", "-1", "PORT" },
    { "PORT", "http", "PORT" },
    { "CORS_ORIGINS", "https://app.example.com/path", "CORS_ORIGINS" },
    { "CORS_ORIGINS", "app.example.com", "CORS_ORIGINS" },
    { "CORS_ORIGINS", "*,https://a.example", "CORS_ORIGINS" },
    { "CORS_ORIGINS", "https://", "CORS_ORIGINS" },
    { "WORKERS", "0", "WORKERS" },
    { "WORKERS", "257", "WORKERS" },
    { "MAX_CONCURRENT_STREAMS", "0", "MAX_CONCURRENT_STREAMS" },
    { "MAX_CONCURRENT_STREAMS", "1000001", "MAX_CONCURRENT_STREAMS" },
    { "DRAIN_SECONDS", "-1", "DRAIN_SECONDS" },
    { "DRAIN_SECONDS", "3601", "DRAIN_SECONDS" },
    { "CLIENT_API_KEYS", "good,has space", "CLIENT_API_KEYS" },
    { "CLIENT_TIMEOUT_SECONDS", "0", "CLIENT_TIMEOUT_SECONDS" },
    { "CLIENT_TIMEOUT_SECONDS", "3601", "CLIENT_TIMEOUT_SECONDS" },
    { "MAX_REQUEST_BYTES", "1023", "MAX_REQUEST_BYTES" },
    { "MAX_REQUEST_BYTES", "67108865", "MAX_REQUEST_BYTES" },
    { "MAX_REQUEST_BYTES", "1k", "MAX_REQUEST_BYTES" },
    { "SYSTEM_PROMPT", "bad \xff utf-8", "SYSTEM_PROMPT" },
    { "SYSTEM_PROMPT", "surrogate \xed\xa0\x80", "SYSTEM_PROMPT" },
    { "UPSTREAM_RETRIES", "11", "UPSTREAM_RETRIES" },
    { "UPSTREAM_RETRIES", "-1", "UPSTREAM_RETRIES" },
    { "CONNECT_TIMEOUT_SECONDS", "0", "CONNECT_TIMEOUT_SECONDS" },
    { "CONNECT_TIMEOUT_SECONDS", "601", "CONNECT_TIMEOUT_SECONDS" },
    { "BREAKER_FAILURES", "0", "BREAKER_FAILURES" },
    { "BREAKER_FAILURES", "1001", "BREAKER_FAILURES" },
    { "BREAKER_COOLDOWN_SECONDS", "0", "BREAKER_COOLDOWN_SECONDS" },
    { "BREAKER_COOLDOWN_SECONDS", "soon", "BREAKER_COOLDOWN_SECONDS" },
    { "RATE_LIMIT_FAIL_OPEN", "maybe", "RATE_LIMIT_FAIL_OPEN" },
    { "RATE_LIMIT_FAIL_OPEN", "on", "RATE_LIMIT_FAIL_OPEN" },
    { "UI_ENABLED", "2", "UI_ENABLED" },
    { "UI_ENABLED", "truee", "UI_ENABLED" },
    { "IDLE_SPIN_MICROSECONDS", "-1", "IDLE_SPIN_MICROSECONDS" },
    { "IDLE_SPIN_MICROSECONDS", "100001", "IDLE_SPIN_MICROSECONDS" },
    { "IDLE_SPIN_MICROSECONDS", "1.5", "IDLE_SPIN_MICROSECONDS" },
    { "IDLE_SPIN_MICROSECONDS", "50us", "IDLE_SPIN_MICROSECONDS" },
};

static void test_every_bad_value(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct var vars[] = { { c->name, c->value }, { NULL, NULL } };
        struct config cfg;
        char err[1024];
        int rc = load(&cfg, vars, err, sizeof err);
        if (rc != -EINVAL)
            fail_msg("%s=\"%s\" was accepted (rc %d)", c->name, c->value, rc);
        /* The message starts with the variable (what is wrong), then why, then what
         * to do, and the config is left empty. */
        if (strncmp(err, c->names, strlen(c->names)) != 0)
            fail_msg("%s=\"%s\": message does not start with %s: %s", c->name, c->value, c->names,
                     err);
        if (unit_sentences(err) < 3)
            fail_msg("%s=\"%s\": fewer than three sentences: %s", c->name, c->value, err);
        assert_non_null(strstr(err, "start chatd again."));
        assert_null(cfg.base_url);
        assert_null(cfg.model);
        assert_int_equal(cfg.allowed_models.n, 0);
    }
}

static void test_api_key_error_does_not_echo_key(void **state)
{
    (void)state;
    char long_key[1100];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    const char *keys[] = { "sk-SECRETVALUE with space", "sk-SECRETVALUE\nnext", long_key };
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        struct var vars[] = { { "OPENAI_API_KEY", keys[i] }, { NULL, NULL } };
        struct config cfg;
        char err[1024];
        assert_int_equal(load(&cfg, vars, err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "OPENAI_API_KEY"));
        assert_null(strstr(err, "SECRETVALUE"));
        assert_null(strstr(err, "kkkkkkkk"));
        assert_true(unit_sentences(err) >= 3);
    }
}

static void test_boundaries_accepted(void **state)
{
    (void)state;
    static const struct var ok[][2] = {
        { { "MAX_TOKENS", "1" } },
        { { "MAX_TOKENS", "1000000" } },
        { { "PORT", "65535" } },
        { { "WORKERS", "256" } },
        { { "TIMEOUT_SECONDS", "0.001" } },
        { { "TIMEOUT_SECONDS", "86400" } },
        { { "TIMEOUT_SECONDS", ".5" } },
        { { "DRAIN_SECONDS", "3600" } },
        { { "LOG_LEVEL", "warn" } },
        { { "LOG_LEVEL", "Error" } },
        { { "OPENAI_BASE_URL", "https://user:pw@proxy.example.com/v1" } },
        { { "MAX_REQUEST_BYTES", "1024" } },
        { { "MAX_REQUEST_BYTES", "67108864" } },
        { { "UPSTREAM_RETRIES", "10" } },
        { { "BREAKER_FAILURES", "1000" } },
        { { "IDLE_SPIN_MICROSECONDS", "0" } },
        { { "IDLE_SPIN_MICROSECONDS", "100000" } },
        { { "SYSTEM_PROMPT", "Réponds en français, s'il te plaît 🙂" } },
    };
    for (size_t i = 0; i < N_ELEMS(ok); i++) {
        struct config cfg;
        char err[1024];
        if (load(&cfg, ok[i], err, sizeof err) != 0)
            fail_msg("%s=%s refused: %s", ok[i][0].name, ok[i][0].value, err);
        config_free(&cfg);
    }
}

static void test_allowed_models(void **state)
{
    (void)state;
    static const struct var only_model[] = { { "OPENAI_MODEL", "llama3" }, { NULL, NULL } };
    struct config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, only_model, err, sizeof err), 0);
    assert_int_equal(cfg.allowed_models.n, 1);
    assert_string_equal(cfg.allowed_models.items[0], "llama3");
    assert_true(config_model_allowed(&cfg, "llama3"));
    assert_false(config_model_allowed(&cfg, "gpt-4o-mini"));
    assert_false(config_model_allowed(&cfg, "llama"));
    assert_false(config_model_allowed(&cfg, ""));
    config_free(&cfg);

    static const struct var not_in_list[] = { { "OPENAI_MODEL", "llama3" },
                                              { "ALLOWED_MODELS", "gpt-4o,gpt-4o-mini" },
                                              { NULL, NULL } };
    assert_int_equal(load(&cfg, not_in_list, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "OPENAI_MODEL=\"llama3\" is not in ALLOWED_MODELS"));
}

static void test_cors(void **state)
{
    (void)state;
    static const struct var any[] = { { "CORS_ORIGINS", " * " }, { NULL, NULL } };
    struct config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, any, err, sizeof err), 0);
    assert_true(cfg.cors_any);
    assert_true(config_origin_allowed(&cfg, "https://anything.example"));
    config_free(&cfg);

    static const struct var list[] = {
        { "CORS_ORIGINS", "https://a.example,http://localhost:3000" }, { NULL, NULL }
    };
    assert_int_equal(load(&cfg, list, err, sizeof err), 0);
    assert_false(cfg.cors_any);
    assert_true(config_origin_allowed(&cfg, "https://a.example"));
    assert_true(config_origin_allowed(&cfg, "http://localhost:3000"));
    assert_false(config_origin_allowed(&cfg, "http://a.example"));
    assert_false(config_origin_allowed(&cfg, "https://a.example.evil"));
    assert_false(config_origin_allowed(&cfg, "http://localhost:3001"));
    config_free(&cfg);

    static const struct var none[] = { { NULL, NULL } };
    assert_int_equal(load(&cfg, none, err, sizeof err), 0);
    assert_false(config_origin_allowed(&cfg, "https://a.example"));
    config_free(&cfg);
}

static void test_public_base_url(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        { "https://api.openai.com/v1", "https://api.openai.com/v1" },
        { "https://user:p4ss@proxy.example.com/v1", "https://REDACTED@proxy.example.com/v1" },
        { "http://token@127.0.0.1:8080", "http://REDACTED@127.0.0.1:8080" },
        { "https://h.example/v1/@notuser", "https://h.example/v1/@notuser" },
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct var vars[] = { { "OPENAI_BASE_URL", cases[i].url }, { NULL, NULL } };
        struct config cfg;
        char err[1024], out[256];
        assert_int_equal(load(&cfg, vars, err, sizeof err), 0);
        config_public_base_url(&cfg, out, sizeof out);
        assert_string_equal(out, cases[i].want);
        config_free(&cfg);
    }
}

/* ---- config_load_process: the real environment and a .env file ------------------- */

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_n_vars; i++)
        unsetenv(config_vars[i].name);
    return 0;
}

static void test_process_env_wins_over_dotenv(void **state)
{
    (void)state;
    const char *path = unit_temp_file("# settings\n"
                                      "export OPENAI_MODEL=from-dotenv\r\n"
                                      "MAX_TOKENS=100\n"
                                      "MAX_TOKENS=200\n" /* the last assignment wins */
                                      "PORT='9000'\n"
                                      "LOG_LEVEL=\"error\" # quiet\n");
    setenv("PORT", "9100", 1);
    setenv("OPENAI_API_KEY", "sk-env", 1);
    struct config *cfg;
    char err[1024] = "";
    int rc = config_load_process(path, &cfg, err, sizeof err);
    unlink(path);
    if (rc != 0)
        fail_msg("rc %d: %s", rc, err);
    assert_string_equal(cfg->model, "from-dotenv");
    assert_string_equal(cfg->allowed_models.items[0], "from-dotenv");
    assert_int_equal(cfg->max_tokens, 200);
    assert_int_equal(cfg->port, 9100);
    assert_int_equal(cfg->log_level, LOG_ERROR);
    assert_string_equal(cfg->api_key, "sk-env");
    assert_string_equal(cfg->dotenv_path, path);
    config_unref(cfg);
}

static void test_process_without_dotenv(void **state)
{
    (void)state;
    setenv("MAX_TOKENS", "77", 1);
    struct config *cfg;
    char err[1024] = "";
    assert_int_equal(config_load_process("/nonexistent/chatd/.env", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg->max_tokens, 77);
    assert_string_equal(cfg->model, "gpt-4o-mini");
    config_unref(cfg);
}

static void test_process_bad_dotenv_line(void **state)
{
    (void)state;
    const char *path = unit_temp_file("A=1\nB=2\nthis is not an assignment\n");
    struct config *cfg;
    char err[1024] = "";
    assert_int_equal(config_load_process(path, &cfg, err, sizeof err), -EINVAL);
    assert_null(cfg);
    char want[128];
    snprintf(want, sizeof want, "%s line 3 is not valid", path);
    assert_non_null(strstr(err, want));
    assert_true(unit_sentences(err) >= 3);
    unlink(path);
}

static void test_process_bad_value_in_dotenv(void **state)
{
    (void)state;
    const char *path = unit_temp_file("PORT=eighty\n");
    struct config *cfg;
    char err[1024] = "";
    assert_int_equal(config_load_process(path, &cfg, err, sizeof err), -EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err, "PORT=\"eighty\" is not valid"));
    unlink(path);
}

static void test_booleans(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool want;
    } cases[] = { { "true", true }, { "TRUE", true },   { "1", true },      { "yes", true },
                  { "Yes", true },  { "false", false }, { "False", false }, { "0", false },
                  { "no", false },  { "NO", false } };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct var vars[] = { { "UI_ENABLED", cases[i].text },
                              { "RATE_LIMIT_FAIL_OPEN", cases[i].text },
                              { NULL, NULL } };
        struct config cfg;
        char err[1024];
        if (load(&cfg, vars, err, sizeof err) != 0)
            fail_msg("%s refused: %s", cases[i].text, err);
        assert_int_equal(cfg.ui_enabled, cases[i].want);
        assert_int_equal(cfg.rate_limit_fail_open, cases[i].want);
        config_free(&cfg);
    }
    bool b;
    assert_int_equal(config_parse_bool("", &b), -EINVAL);
    assert_int_equal(config_parse_bool("y", &b), -EINVAL);
    assert_int_equal(config_parse_bool("10", &b), -EINVAL);
}

/* Every row of the table: its default is accepted and lands in its field the way
 * a value set explicitly does (the defaults the docs show are the real ones). */
static void test_table_defaults_are_real(void **state)
{
    (void)state;
    static const struct var none[] = { { NULL, NULL } };
    struct config defaults;
    char err[1024];
    assert_int_equal(load(&defaults, none, err, sizeof err), 0);
    for (size_t i = 0; i < config_n_vars; i++) {
        const struct config_var *v = &config_vars[i];
        if (v->def[0] == '\0' || v->type == CONFIG_LIST || v->type == CONFIG_STR)
            continue;
        struct var vars[] = { { v->name, v->def }, { NULL, NULL } };
        struct config cfg;
        if (load(&cfg, vars, err, sizeof err) != 0)
            fail_msg("%s=%s (its default) refused: %s", v->name, v->def, err);
        const char *a = (const char *)&cfg + v->offset, *b = (const char *)&defaults + v->offset;
        size_t size = v->type == CONFIG_SECONDS ? sizeof(double)
                      : v->type == CONFIG_SIZE  ? sizeof(size_t)
                      : v->type == CONFIG_BOOL  ? sizeof(bool)
                                                : sizeof(int);
        if (memcmp(a, b, size) != 0)
            fail_msg("%s: the default in the table differs from the loaded default", v->name);
        config_free(&cfg);
    }
    config_free(&defaults);
}

static void test_log_effective_hides_secrets(void **state)
{
    (void)state;
    static const struct var vars[] = {
        { "OPENAI_API_KEY", "sk-SECRET-one" },
        { "CLIENT_API_KEYS", "ck-SECRET-two,ck-three" },
        { "SYSTEM_PROMPT", "PRIVATE-prompt" },
        { "REDIS_URL", "redis://:SECRETPW@127.0.0.1:1/0" },
        { "OPENAI_BASE_URL", "https://u:SECRETPW@h.example/v1" },
        { NULL, NULL },
    };
    struct config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, vars, err, sizeof err), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    log_setup(LOG_INFO, fds[1]);
    config_log_effective(&cfg, "127.0.0.1:1");
    log_teardown();
    close(fds[1]);
    char line[16384];
    ssize_t n = read(fds[0], line, sizeof line - 1);
    close(fds[0]);
    assert_true(n > 0);
    line[n] = '\0';
    json_t *j = unit_json(line, (size_t)n);
    assert_null(strstr(line, "SECRET"));
    assert_null(strstr(line, "PRIVATE"));
    assert_true(json_is_true(json_object_get(j, "openai_api_key_set")));
    assert_int_equal(json_integer_value(json_object_get(j, "client_api_key_count")), 2);
    assert_true(json_is_true(json_object_get(j, "system_prompt_set")));
    assert_string_equal(json_string_value(json_object_get(j, "redis_url")),
                        "redis://REDACTED@127.0.0.1:1/0");
    assert_int_equal(json_integer_value(json_object_get(j, "max_request_bytes")), 1048576);
    assert_true(json_is_true(json_object_get(j, "ui_enabled")));
    for (size_t i = 0; i < config_n_vars; i++) /* one field per variable */
        if (json_object_get(j, config_vars[i].log_key) == NULL)
            fail_msg("server_started has no %s", config_vars[i].log_key);
    json_decref(j);
    config_free(&cfg);
}

/* Snapshots: counted references, the last one frees (ASan finds a leak or a
 * double free); a reload keeps the settings that cannot change at runtime. */
static void test_snapshot_refs_and_fixed_settings(void **state)
{
    (void)state;
    setenv("PORT", "9000", 1);
    setenv("ALLOWED_MODELS", "gpt-4o-mini,a", 1);
    struct config *cur, *next;
    char err[1024] = "", changed[256];
    assert_int_equal(config_load_process("/nonexistent/.env", &cur, err, sizeof err), 0);
    assert_ptr_equal(config_ref(cur), cur);
    assert_int_equal(atomic_load(&cur->refs), 2);
    config_unref(cur);
    setenv("PORT", "9001", 1);
    setenv("HOST", "0.0.0.0", 1);
    setenv("ALLOWED_MODELS", "gpt-4o-mini,b", 1);
    setenv("MAX_TOKENS", "5", 1);
    assert_int_equal(config_load_process("/nonexistent/.env", &next, err, sizeof err), 0);
    assert_int_equal(config_keep_fixed(next, cur, changed, sizeof changed), 0);
    assert_string_equal(changed, "HOST,PORT");
    assert_int_equal(next->port, 9000);
    assert_string_equal(next->host, "127.0.0.1");
    assert_int_equal(next->workers, cur->workers);
    assert_int_equal(next->max_tokens, 5); /* the others take effect */
    assert_string_equal(next->allowed_models.items[1], "b");
    assert_int_equal(config_keep_fixed(next, cur, changed, sizeof changed), 0);
    assert_string_equal(changed, ""); /* nothing differs any more */
    config_unref(cur);
    config_unref(next);
    config_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_blank_values_mean_default),
        cmocka_unit_test(test_every_variable_set),
        cmocka_unit_test(test_every_bad_value),
        cmocka_unit_test(test_api_key_error_does_not_echo_key),
        cmocka_unit_test(test_boundaries_accepted),
        cmocka_unit_test(test_allowed_models),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_public_base_url),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_table_defaults_are_real),
        cmocka_unit_test(test_log_effective_hides_secrets),
        cmocka_unit_test_setup_teardown(test_process_env_wins_over_dotenv, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_process_without_dotenv, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_process_bad_dotenv_line, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_process_bad_value_in_dotenv, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_snapshot_refs_and_fixed_settings, clear_env,
                                        clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
