/* config: see config.h. One table row per variable; a row's type says how its
 * value is read, and its check (when it has one) adds the rules the type cannot
 * say, explaining in three parts what is wrong. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config_internal.h"

#define FIX_HINT CONFIG_FIX_HINT

int config_bad(struct config_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

char *config_get(struct config_ctx *c, const char *name)
{
    const char *v = c->lookup(name, c->lookup_ctx);
    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    return n == 0 ? NULL : strndup(v, n);
}

bool config_has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

/* What follows "https://" or "http://" in u, or NULL for another scheme. */
static const char *after_http_scheme(const char *u)
{
    return strncmp(u, "https://", 8) == 0 ? u + 8 : strncmp(u, "http://", 7) == 0 ? u + 7 : NULL;
}

bool config_base_url_ok(char *v)
{
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        v[--n] = '\0';
    const char *rest = after_http_scheme(v);
    return rest != NULL && *rest != '\0' && *rest != '/' && !config_has_ctl_or_space(v) &&
           strpbrk(v, "?#") == NULL && n <= 2048;
}

bool config_model_name_ok(const char *m)
{
    return *m != '\0' && strlen(m) <= 256 && !config_has_ctl_or_space(m) && strchr(m, '"') == NULL;
}

int config_list_add(struct str_list *l, const char *s, size_t n)
{
    char **grown = realloc(l->items, (l->n + 1) * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    l->items = grown;
    if ((l->items[l->n] = strndup(s, n)) == NULL)
        return -ENOMEM;
    l->n++;
    return 0;
}

void config_list_free(struct str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Splits a comma-separated value, trimming blanks and skipping empty items. */
static int split_list(const char *v, struct str_list *out)
{
    for (const char *p = v; *p;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t > s && config_list_add(out, s, (size_t)(t - s)) != 0)
            return -ENOMEM;
        p = comma ? comma + 1 : e;
    }
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "1", "yes" }, *const no[] = { "false", "0", "no" };
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- reading one value by its type ------------------------------------------------- */

static int read_number(struct config_ctx *c, const struct config_var *v, const char *s, void *field)
{
    char *end;
    errno = 0;
    bool whole = v->type != CONFIG_SECONDS;
    double d = whole ? (double)strtoll(s, &end, 10) : strtod(s, &end);
    bool ok = ((s[0] >= '0' && s[0] <= '9') || (!whole && s[0] == '.')) && *end == '\0' &&
              errno == 0 && d >= v->lo && d <= v->hi && (d > 0 || v->lo == 0);
    if (!ok && whole)
        return config_bad(c,
                          "%s=\"%.40s\" is not valid. %s must be a whole number from %.0f to %.0f "
                          "(%s). " FIX_HINT,
                          v->name, s, v->name, v->lo, v->hi, v->help);
    if (!ok)
        return config_bad(c,
                          "%s=\"%.40s\" is not valid. %s must be a number of seconds from %g to "
                          "%g (%s). " FIX_HINT,
                          v->name, s, v->name, v->lo, v->hi, v->help);
    if (v->type == CONFIG_INT)
        *(int *)field = (int)d;
    else if (v->type == CONFIG_SIZE)
        *(size_t *)field = (size_t)d;
    else
        *(double *)field = d;
    return 0;
}

static int read_value(struct config_ctx *c, const struct config_var *v, const char *s)
{
    void *field = (char *)c->cfg + v->offset;
    switch (v->type) {
    case CONFIG_STR: return (*(char **)field = strdup(s)) == NULL ? -ENOMEM : 0;
    case CONFIG_LIST: return split_list(s, field);
    case CONFIG_BOOL:
        if (config_parse_bool(s, field) == 0)
            return 0;
        return config_bad(c,
                          "%s=\"%.40s\" is not valid. %s is true or false (1/0 and yes/no are "
                          "accepted too, in any case): %s. " FIX_HINT,
                          v->name, s, v->name, v->help);
    case CONFIG_LEVEL:
        if (log_level_parse(s, field) == 0)
            return 0;
        return config_bad(c,
                          "%s=\"%.40s\" is not valid. It must be one of debug, info, warning or "
                          "error. " FIX_HINT,
                          v->name, s);
    default: return read_number(c, v, s, field);
    }
}

static int read_var(struct config_ctx *c, const struct config_var *v)
{
    char *s = config_get(c, v->name);
    c->var = v;
    c->set = s != NULL;
    int rc = 0;
    if (s != NULL || v->def[0] != '\0')
        rc = read_value(c, v, s ? s : v->def);
    free(s);
    if (rc == 0 && v->check != NULL)
        rc = v->check(c);
    return rc;
}

/* ---- the rules a type cannot say ---------------------------------------------------- */

static int check_api_key(struct config_ctx *c)
{
    const char *k = c->cfg->api_key;
    if (k != NULL && (config_has_ctl_or_space(k) || strlen(k) > 1024))
        return config_bad(c, "OPENAI_API_KEY is not valid. It contains spaces or control "
                             "characters, or is longer than 1024 characters, so it cannot be "
                             "sent as a Bearer token. Copy the key again from your provider "
                             "without quotes or line breaks. " FIX_HINT);
    return 0;
}

static int check_base_url(struct config_ctx *c)
{
    struct config *cfg = c->cfg;
    if (!config_base_url_ok(cfg->base_url))
        return config_bad(c,
                          "OPENAI_BASE_URL=\"%.80s\" is not valid. It must be an http:// or "
                          "https:// URL with a host and no query, such as "
                          "https://api.openai.com/v1 or http://127.0.0.1:8080/v1; chatd appends "
                          "/chat/completions. " FIX_HINT,
                          cfg->base_url);
    if (asprintf(&cfg->chat_url, "%s/chat/completions", cfg->base_url) < 0) {
        cfg->chat_url = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int check_model(struct config_ctx *c)
{
    if (!config_model_name_ok(c->cfg->model))
        return config_bad(c,
                          "OPENAI_MODEL=\"%.60s\" is not valid. A model name has no spaces, "
                          "quotes or control characters and is at most 256 characters. Use the "
                          "name your provider lists, such as gpt-4o-mini. " FIX_HINT,
                          c->cfg->model);
    return 0;
}

static int check_allowed_models(struct config_ctx *c)
{
    struct config *cfg = c->cfg;
    if (!c->set && config_list_add(&cfg->allowed_models, cfg->model, strlen(cfg->model)) != 0)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->allowed_models.n; i++)
        if (!config_model_name_ok(cfg->allowed_models.items[i]))
            return config_bad(c,
                              "ALLOWED_MODELS has an invalid entry \"%.60s\". Model names have no "
                              "spaces, quotes or control characters. List models separated by "
                              "commas, such as gpt-4o-mini,gpt-4o. " FIX_HINT,
                              cfg->allowed_models.items[i]);
    if (cfg->allowed_models.n == 0)
        return config_bad(c, "ALLOWED_MODELS lists no model. Requests without a model would all "
                             "be refused. List models separated by commas, or leave it unset to "
                             "allow only OPENAI_MODEL. " FIX_HINT);
    if (!config_model_allowed(cfg, cfg->model))
        return config_bad(c,
                          "OPENAI_MODEL=\"%.60s\" is not in ALLOWED_MODELS. Requests that name no "
                          "model use OPENAI_MODEL, so they would all be refused. Add it to "
                          "ALLOWED_MODELS or choose one of the allowed models. " FIX_HINT,
                          cfg->model);
    return 0;
}

static int check_host(struct config_ctx *c)
{
    const char *h = c->cfg->host;
    if (config_has_ctl_or_space(h) || strlen(h) > 255)
        return config_bad(c,
                          "HOST=\"%.60s\" is not valid. It must be an IP address or host name to "
                          "listen on, such as 127.0.0.1 or 0.0.0.0. " FIX_HINT,
                          h);
    return 0;
}

static bool valid_origin(const char *o)
{
    const char *rest = after_http_scheme(o);
    return rest != NULL && *rest != '\0' && strchr(rest, '/') == NULL &&
           !config_has_ctl_or_space(o) && strlen(o) <= 255;
}

static int check_cors(struct config_ctx *c)
{
    struct str_list *l = &c->cfg->cors_origins;
    if (l->n == 1 && strcmp(l->items[0], "*") == 0) {
        c->cfg->cors_any = true;
        config_list_free(l);
        return 0;
    }
    for (size_t i = 0; i < l->n; i++)
        if (!valid_origin(l->items[i]))
            return config_bad(c,
                              "CORS_ORIGINS has an invalid origin \"%.80s\". An origin is a "
                              "scheme, host and optional port with no path, such as "
                              "https://app.example.com or http://localhost:3000. List origins "
                              "separated by commas, or use * to allow any. " FIX_HINT,
                              l->items[i]);
    return 0;
}

static int check_workers(struct config_ctx *c)
{
    if (!c->set) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->cfg->workers = n < 1 ? 1 : n > 256 ? 256 : (int)n;
    }
    return 0;
}

static int check_client_keys(struct config_ctx *c)
{
    const struct str_list *l = &c->cfg->client_keys;
    for (size_t i = 0; i < l->n; i++)
        if (config_has_ctl_or_space(l->items[i]) || strlen(l->items[i]) > 512)
            return config_bad(c,
                              "CLIENT_API_KEYS entry %zu is not valid. Keys cannot contain spaces "
                              "or control characters and are at most 512 characters, because "
                              "clients send them as \"Authorization: Bearer <key>\". Separate "
                              "keys with commas. " FIX_HINT,
                              i + 1);
    return 0;
}

/* True when s is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
static bool utf8_ok(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s++;
        int more = c < 0x80             ? 0
                   : (c & 0xe0) == 0xc0 ? 1
                   : (c & 0xf0) == 0xe0 ? 2
                   : (c & 0xf8) == 0xf0 ? 3
                                        : -1;
        if (more < 0)
            return false;
        unsigned cp = more ? c & (0x3fu >> more) : c;
        for (int i = 0; i < more; i++, s++) {
            if ((*s & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*s & 0x3fu);
        }
        static const unsigned min[] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < min[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

static int check_system_prompt(struct config_ctx *c)
{
    const char *p = c->cfg->system_prompt;
    if (p != NULL && (strlen(p) > 65536 || !utf8_ok((const unsigned char *)p)))
        return config_bad(c, "SYSTEM_PROMPT is not valid. It must be UTF-8 text of at most 65536 "
                             "bytes, since it is sent as a system message with every /chat "
                             "request. Shorten it or save the file as UTF-8. " FIX_HINT);
    return 0;
}

/* With CHATD_CONFIG the providers and models come from the file; a variable that
 * would say otherwise is refused before anything else, so it is named first. */
static int check_config_clash(struct config_ctx *c)
{
    static const char *const clash[] = { "OPENAI_BASE_URL", "OPENAI_MODEL", "ALLOWED_MODELS" };
    char *path = config_get(c, "CHATD_CONFIG");
    free(path);
    if (path == NULL)
        return 0;
    for (size_t i = 0; i < sizeof clash / sizeof clash[0]; i++) {
        char *v = config_get(c, clash[i]);
        free(v);
        if (v != NULL)
            return config_bad(c,
                              "CHATD_CONFIG and %s are both set. With CHATD_CONFIG the providers "
                              "and models come from that file, so %s would be silently ignored. "
                              "Remove %s from the environment and .env, or unset CHATD_CONFIG. "
                              "Then start chatd again.",
                              clash[i], clash[i], clash[i]);
    }
    return 0;
}

/* ---- the table ---------------------------------------------------------------------- */

#define F(field) offsetof(struct config, field)

const struct config_var config_vars[] = {
    { "OPENAI_API_KEY", CONFIG_STR, "", "(none)", 0, 0,
      "sent to the provider as \"Authorization: Bearer ...\"; local providers need none",
      F(api_key), "openai_api_key_set", true, check_api_key, false },
    { "OPENAI_BASE_URL", CONFIG_STR, "https://api.openai.com/v1", "", 0, 0,
      "any OpenAI-compatible API; /chat/completions is appended", F(base_url), "openai_base_url",
      false, check_base_url, false },
    { "OPENAI_MODEL", CONFIG_STR, "gpt-4o-mini", "", 0, 0,
      "the model used when a request names none; must be in ALLOWED_MODELS", F(model),
      "openai_model", false, check_model, false },
    { "ALLOWED_MODELS", CONFIG_LIST, "", "the value of OPENAI_MODEL", 0, 0,
      "comma-separated models a request may ask for", F(allowed_models), "allowed_models", false,
      check_allowed_models, false },
    { "MAX_TOKENS", CONFIG_INT, "1024", "", 1, 1000000,
      "the default and upper bound of a request's max_tokens", F(max_tokens), "max_tokens", false,
      NULL, false },
    { "TIMEOUT_SECONDS", CONFIG_SECONDS, "60", "", 0.001, 86400,
      "the longest wait for the provider's first token (then 504) and for its next one",
      F(timeout_s), "timeout_seconds", false, NULL, false },
    { "LOG_LEVEL", CONFIG_LEVEL, "info", "", 0, 0, "debug, info, warning or error", F(log_level),
      "log_level", false, NULL, true },
    { "HOST", CONFIG_STR, "127.0.0.1", "", 0, 0,
      "the address to listen on (0.0.0.0 for every interface)", F(host), "host", false, check_host,
      true },
    { "PORT", CONFIG_INT, "8000", "", 0, 65535,
      "the port to listen on; 0 picks any free port, named in server_started", F(port), "port",
      false, NULL, true },
    { "CORS_ORIGINS", CONFIG_LIST, "", "(empty: no CORS headers)", 0, 0,
      "comma-separated browser origins allowed by CORS, or *", F(cors_origins), "cors_origins",
      false, check_cors, false },
    { "WORKERS", CONFIG_INT, "", "online CPUs", 1, 256, "event-loop threads", F(workers), "workers",
      false, check_workers, true },
    { "MAX_CONCURRENT_STREAMS", CONFIG_INT, "10000", "", 1, 1000000,
      "open streams beyond which new ones get 503 overloaded", F(max_streams),
      "max_concurrent_streams", false, NULL, false },
    { "DRAIN_SECONDS", CONFIG_SECONDS, "30", "", 0, 3600,
      "after SIGTERM, how long open streams may finish", F(drain_s), "drain_seconds", false, NULL,
      false },
    { "CLIENT_API_KEYS", CONFIG_LIST, "", "(empty: no client auth)", 0, 0,
      "comma-separated client keys; when set, clients need \"Authorization: Bearer <key>\"",
      F(client_keys), "client_api_key_count", true, check_client_keys, false },
    { "CLIENT_TIMEOUT_SECONDS", CONFIG_SECONDS, "30", "", 0.001, 3600,
      "the longest a client may take to send a request, idle on keep-alive, or leave its "
      "stream unread",
      F(client_timeout_s), "client_timeout_seconds", false, NULL, true },
    { "MAX_REQUEST_BYTES", CONFIG_SIZE, "1048576", "", 1024, 67108864,
      "the largest request body on /chat and /v1/* (413 beyond)", F(max_request_bytes),
      "max_request_bytes", false, NULL, true },
    { "SYSTEM_PROMPT", CONFIG_STR, "", "(empty)", 0, 0,
      "a system message put before every /chat conversation", F(system_prompt), "system_prompt_set",
      true, check_system_prompt, false },
    { "CHATD_CONFIG", CONFIG_STR, "", "(empty)", 0, 0,
      "path of a JSON file with providers, models and client keys (see chatd.example.json)",
      F(config_path), "chatd_config", false, NULL, false },
    { "UPSTREAM_RETRIES", CONFIG_INT, "2", "", 0, 10,
      "retries of one target before the next is tried (before the first token only)",
      F(upstream_retries), "upstream_retries", false, NULL, false },
    { "CONNECT_TIMEOUT_SECONDS", CONFIG_SECONDS, "5", "", 0.001, 600,
      "the longest wait for one provider connection (TCP and TLS)", F(connect_timeout_s),
      "connect_timeout_seconds", false, NULL, false },
    { "BREAKER_FAILURES", CONFIG_INT, "5", "", 1, 1000,
      "failures in a row that take a provider out of rotation", F(breaker_failures),
      "breaker_failures", false, NULL, false },
    { "BREAKER_COOLDOWN_SECONDS", CONFIG_SECONDS, "30", "", 0.001, 86400,
      "how long a provider stays out of rotation before one request probes it",
      F(breaker_cooldown_s), "breaker_cooldown_seconds", false, NULL, false },
    { "REDIS_URL", CONFIG_STR, "", "(empty: limits kept in this process)", 0, 0,
      "redis://[:password@]host:port[/db] or unix:///path, to share client-key limits",
      F(redis_url), "redis_url", false, NULL, false },
    { "RATE_LIMIT_FAIL_OPEN", CONFIG_BOOL, "true", "", 0, 0,
      "when Redis cannot answer within 50 ms: serve the request (true) or answer 503 (false)",
      F(rate_limit_fail_open), "rate_limit_fail_open", false, NULL, false },
    { "UI_ENABLED", CONFIG_BOOL, "true", "", 0, 0, "serve the web chat page at /", F(ui_enabled),
      "ui_enabled", false, NULL, false },
    { "UPSTREAM_NATIVE_HTTP", CONFIG_BOOL, "true", "", 0, 0,
      "chatd's own HTTP/1.1 client for http:// providers (at an IP address, localhost or a host "
      "name) with no proxy (false: libcurl for every provider)",
      F(native_http), "upstream_native_http", false, NULL, false },
    { "DNS_RESOLV_CONF", CONFIG_STR, "/etc/resolv.conf", "", 0, 0,
      "the resolv.conf whose name servers, search domains and options chatd's own HTTP client "
      "uses to resolve provider host names",
      F(dns_resolv_conf), "dns_resolv_conf", false, NULL, true },
    { "IDLE_SPIN_MICROSECONDS", CONFIG_INT, "0", "", 0, 100000,
      "while streams are open, how long a worker polls without sleeping once it has nothing "
      "to do (0: it sleeps at once)",
      F(idle_spin_us), "idle_spin_microseconds", false, NULL, false },
};

const size_t config_n_vars = sizeof config_vars / sizeof config_vars[0];

int config_load(struct config *cfg, config_lookup lookup, void *lookup_ctx, char *err,
                size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    struct config_ctx c = {
        .cfg = cfg, .lookup = lookup, .lookup_ctx = lookup_ctx, .err = err, .errlen = errlen
    };
    int rc = check_config_clash(&c);
    for (size_t i = 0; i < config_n_vars && rc == 0; i++)
        rc = read_var(&c, &config_vars[i]);
    if (rc == 0)
        rc = config_routing_load(&c);
    if (rc != 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "Out of memory while reading the configuration.");
        config_free(cfg);
    }
    return rc;
}

void config_free(struct config *cfg)
{
    config_routing_free(cfg);
    for (size_t i = 0; i < config_n_vars; i++) {
        void *field = (char *)cfg + config_vars[i].offset;
        if (config_vars[i].type == CONFIG_STR)
            free(*(char **)field);
        else if (config_vars[i].type == CONFIG_LIST)
            config_list_free(field);
    }
    free(cfg->chat_url);
    free(cfg->dotenv_path);
    memset(cfg, 0, sizeof *cfg);
}
