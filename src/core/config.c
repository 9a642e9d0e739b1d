/* config: see config.h. Each variable has one parse function that either fills
 * its field or explains, in three parts, what is wrong. */
#include "core/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dotenv.h"

#define FIX_HINT "Fix it in the environment or in .env (see .env.example) and start chatd again."

struct ctx {
    struct config *cfg;
    config_lookup lookup;
    void *lookup_ctx;
    char *err;
    size_t errlen;
};

static int bad(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A variable's value with surrounding blanks removed, or NULL when it is unset
 * or blank: an empty value means "use the default". Caller frees. */
static char *get(struct ctx *c, const char *name)
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

static bool has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

static int parse_int(struct ctx *c, const char *name, int def, int lo, int hi, int *out,
                     const char *meaning)
{
    char *v = get(c, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    bool ok = v[0] >= '0' && v[0] <= '9' && *end == '\0' && errno == 0 && n >= lo && n <= hi;
    int rc = ok ? 0
                : bad(c,
                      "%s=\"%.40s\" is not valid. %s must be a whole number from %d to %d "
                      "(%s). " FIX_HINT,
                      name, v, name, lo, hi, meaning);
    *out = (int)n;
    free(v);
    return rc;
}

static int parse_seconds(struct ctx *c, const char *name, double def, double lo, double hi,
                         double *out, const char *meaning)
{
    char *v = get(c, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    bool ok = ((v[0] >= '0' && v[0] <= '9') || v[0] == '.') && *end == '\0' && errno == 0 &&
              d >= lo && d <= hi && (d > 0 || lo == 0);
    int rc = ok ? 0
                : bad(c,
                      "%s=\"%.40s\" is not valid. %s must be a number of seconds from %g to %g "
                      "(%s). " FIX_HINT,
                      name, v, name, lo, hi, meaning);
    *out = d;
    free(v);
    return rc;
}

static void list_free(struct str_list *l)
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
        if (t > s) {
            char **grown = realloc(out->items, (out->n + 1) * sizeof *grown);
            if (grown == NULL)
                return -ENOMEM;
            out->items = grown;
            if ((out->items[out->n] = strndup(s, (size_t)(t - s))) == NULL)
                return -ENOMEM;
            out->n++;
        }
        p = comma ? comma + 1 : e;
    }
    return 0;
}

static int parse_api_key(struct ctx *c)
{
    char *v = get(c, "OPENAI_API_KEY");
    if (v != NULL && (has_ctl_or_space(v) || strlen(v) > 1024)) {
        free(v);
        return bad(c,
                   "OPENAI_API_KEY is not valid. It contains spaces or control characters, or is "
                   "longer than 1024 characters, so it cannot be sent as a Bearer token. Copy "
                   "the key again from your provider without quotes or line breaks. " FIX_HINT);
    }
    c->cfg->api_key = v;
    return 0;
}

static int parse_base_url(struct ctx *c)
{
    char *v = get(c, "OPENAI_BASE_URL");
    if (v == NULL && (v = strdup("https://api.openai.com/v1")) == NULL)
        return -ENOMEM;
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        v[--n] = '\0';
    const char *rest = strncmp(v, "https://", 8) == 0  ? v + 8
                       : strncmp(v, "http://", 7) == 0 ? v + 7
                                                       : NULL;
    if (rest == NULL || *rest == '\0' || *rest == '/' || has_ctl_or_space(v) ||
        strpbrk(v, "?#") != NULL || n > 2048) {
        int rc = bad(c,
                     "OPENAI_BASE_URL=\"%.80s\" is not valid. It must be an http:// or https:// "
                     "URL with a host and no query, such as https://api.openai.com/v1 or "
                     "http://127.0.0.1:8080/v1; chatd appends /chat/completions. " FIX_HINT,
                     v);
        free(v);
        return rc;
    }
    c->cfg->base_url = v;
    if (asprintf(&c->cfg->chat_url, "%s/chat/completions", v) < 0) {
        c->cfg->chat_url = NULL;
        return -ENOMEM;
    }
    return 0;
}

static bool valid_model_name(const char *m)
{
    return strlen(m) <= 256 && !has_ctl_or_space(m) && strchr(m, '"') == NULL;
}

static int parse_models(struct ctx *c)
{
    struct config *cfg = c->cfg;
    char *v = get(c, "OPENAI_MODEL");
    if (v == NULL && (v = strdup("gpt-4o-mini")) == NULL)
        return -ENOMEM;
    cfg->model = v;
    if (!valid_model_name(v))
        return bad(c,
                   "OPENAI_MODEL=\"%.60s\" is not valid. A model name has no spaces, quotes or "
                   "control characters and is at most 256 characters. Use the name your "
                   "provider lists, such as gpt-4o-mini. " FIX_HINT,
                   v);
    char *list = get(c, "ALLOWED_MODELS");
    int rc = split_list(list ? list : v, &cfg->allowed_models);
    free(list);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < cfg->allowed_models.n; i++)
        if (!valid_model_name(cfg->allowed_models.items[i]))
            return bad(c,
                       "ALLOWED_MODELS has an invalid entry \"%.60s\". Model names have no "
                       "spaces, quotes or control characters. List models separated by commas, "
                       "such as gpt-4o-mini,gpt-4o. " FIX_HINT,
                       cfg->allowed_models.items[i]);
    if (cfg->allowed_models.n == 0)
        return bad(c, "ALLOWED_MODELS lists no model. Requests without a model would all be "
                      "refused. List models separated by commas, or leave it unset to allow only "
                      "OPENAI_MODEL. " FIX_HINT);
    if (!config_model_allowed(cfg, cfg->model))
        return bad(c,
                   "OPENAI_MODEL=\"%.60s\" is not in ALLOWED_MODELS. Requests that name no model "
                   "use OPENAI_MODEL, so they would all be refused. Add it to ALLOWED_MODELS or "
                   "choose one of the allowed models. " FIX_HINT,
                   cfg->model);
    return 0;
}

static int parse_log_level(struct ctx *c)
{
    char *v = get(c, "LOG_LEVEL");
    int rc = 0;
    c->cfg->log_level = LOG_INFO;
    if (v != NULL && log_level_parse(v, &c->cfg->log_level) != 0)
        rc = bad(c,
                 "LOG_LEVEL=\"%.40s\" is not valid. It must be one of debug, info, warning or "
                 "error. " FIX_HINT,
                 v);
    free(v);
    return rc;
}

static int parse_host(struct ctx *c)
{
    char *v = get(c, "HOST");
    if (v == NULL && (v = strdup("127.0.0.1")) == NULL)
        return -ENOMEM;
    c->cfg->host = v;
    if (has_ctl_or_space(v) || strlen(v) > 255)
        return bad(c,
                   "HOST=\"%.60s\" is not valid. It must be an IP address or host name to "
                   "listen on, such as 127.0.0.1 or 0.0.0.0. " FIX_HINT,
                   v);
    return 0;
}

static bool valid_origin(const char *o)
{
    const char *rest = strncmp(o, "https://", 8) == 0  ? o + 8
                       : strncmp(o, "http://", 7) == 0 ? o + 7
                                                       : NULL;
    return rest != NULL && *rest != '\0' && strchr(rest, '/') == NULL && !has_ctl_or_space(o) &&
           strlen(o) <= 255;
}

static int parse_cors(struct ctx *c)
{
    char *v = get(c, "CORS_ORIGINS");
    if (v == NULL)
        return 0;
    int rc = 0;
    if (strcmp(v, "*") == 0) {
        c->cfg->cors_any = true;
    } else if ((rc = split_list(v, &c->cfg->cors_origins)) == 0) {
        for (size_t i = 0; i < c->cfg->cors_origins.n && rc == 0; i++)
            if (!valid_origin(c->cfg->cors_origins.items[i]))
                rc = bad(c,
                         "CORS_ORIGINS has an invalid origin \"%.80s\". An origin is a scheme, "
                         "host and optional port with no path, such as https://app.example.com "
                         "or http://localhost:3000. List origins separated by commas, or use * "
                         "to allow any. " FIX_HINT,
                         c->cfg->cors_origins.items[i]);
    }
    free(v);
    return rc;
}

static int parse_client_keys(struct ctx *c)
{
    char *v = get(c, "CLIENT_API_KEYS");
    if (v == NULL)
        return 0;
    int rc = split_list(v, &c->cfg->client_keys);
    free(v);
    for (size_t i = 0; i < c->cfg->client_keys.n && rc == 0; i++) {
        const char *k = c->cfg->client_keys.items[i];
        if (has_ctl_or_space(k) || strlen(k) > 512)
            rc =
                bad(c,
                    "CLIENT_API_KEYS entry %zu is not valid. Keys cannot contain spaces or "
                    "control characters and are at most 512 characters, because clients send "
                    "them as \"Authorization: Bearer <key>\". Separate keys with commas. " FIX_HINT,
                    i + 1);
    }
    return rc;
}

static long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : n;
}

static int parse_numbers(struct ctx *c)
{
    struct config *cfg = c->cfg;
    int rc;
    if ((rc = parse_int(c, "MAX_TOKENS", 1024, 1, 1000000, &cfg->max_tokens,
                        "the default and upper bound of max_tokens")) ||
        (rc = parse_seconds(c, "TIMEOUT_SECONDS", 60, 0.001, 86400, &cfg->timeout_s,
                            "the longest wait for the provider's next token")) ||
        (rc = parse_int(c, "PORT", 8000, 0, 65535, &cfg->port, "0 picks any free port")) ||
        (rc = parse_int(c, "WORKERS", (int)online_cpus(), 1, 256, &cfg->workers,
                        "event-loop threads; the default is the number of online CPUs")) ||
        (rc = parse_int(c, "MAX_CONCURRENT_STREAMS", 10000, 1, 1000000, &cfg->max_streams,
                        "open /chat streams beyond which new ones get 503")) ||
        (rc = parse_seconds(c, "DRAIN_SECONDS", 30, 0, 3600, &cfg->drain_s,
                            "how long open streams may finish after SIGTERM")) ||
        (rc = parse_seconds(c, "CLIENT_TIMEOUT_SECONDS", 30, 0.001, 3600, &cfg->client_timeout_s,
                            "the longest a client may take to send a request or to read")))
        return rc;
    return 0;
}

int config_load(struct config *cfg, config_lookup lookup, void *lookup_ctx, char *err,
                size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    struct ctx c = { cfg, lookup, lookup_ctx, err, errlen };
    int rc;
    if ((rc = parse_api_key(&c)) || (rc = parse_base_url(&c)) || (rc = parse_models(&c)) ||
        (rc = parse_log_level(&c)) || (rc = parse_host(&c)) || (rc = parse_cors(&c)) ||
        (rc = parse_client_keys(&c)) || (rc = parse_numbers(&c))) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "Out of memory while reading the configuration.");
        config_free(cfg);
        return rc;
    }
    return 0;
}

/* The .env file's assignments, looked up after the real environment. */
struct env_map {
    char **keys;
    char **values;
    size_t n;
};

static int map_add(const char *key, const char *value, void *ctx)
{
    struct env_map *m = ctx;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0) { /* the last assignment wins */
            char *v = strdup(value);
            if (v == NULL)
                return -ENOMEM;
            free(m->values[i]);
            m->values[i] = v;
            return 0;
        }
    }
    char **k = realloc(m->keys, (m->n + 1) * sizeof *k);
    if (k == NULL)
        return -ENOMEM;
    m->keys = k;
    char **v = realloc(m->values, (m->n + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    m->values = v;
    m->keys[m->n] = strdup(key);
    m->values[m->n] = strdup(value);
    if (m->keys[m->n] == NULL || m->values[m->n] == NULL) {
        free(m->keys[m->n]);
        free(m->values[m->n]);
        return -ENOMEM;
    }
    m->n++;
    return 0;
}

static const char *env_then_map(const char *name, void *ctx)
{
    const char *v = getenv(name);
    if (v != NULL)
        return v;
    struct env_map *m = ctx;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], name) == 0)
            return m->values[i];
    return NULL;
}

static void map_free(struct env_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
}

int config_load_process(struct config *cfg, const char *dotenv_path, char *err, size_t errlen)
{
    struct env_map map = { 0 };
    char *text = NULL;
    size_t len = 0;
    int rc = dotenv_read_file(dotenv_path, &text, &len);
    if (rc == 0) {
        struct dotenv_error e = { 0 };
        rc = dotenv_parse(text, len, map_add, &map, &e);
        if (rc == -EINVAL)
            snprintf(err, errlen,
                     "%s line %d is not valid: %s. chatd reads KEY=VALUE lines from "
                     "it and will not start with a half-read configuration. Fix or remove that "
                     "line and start chatd again.",
                     dotenv_path, e.line, e.msg);
        else if (rc != 0)
            snprintf(err, errlen, "Out of memory while reading %s.", dotenv_path);
    } else if (rc == -ENOENT) {
        rc = 0; /* no .env: the environment alone */
    } else {
        snprintf(err, errlen,
                 "%s cannot be read: %s. chatd reads its settings from it when it "
                 "exists. Fix its permissions or remove it and start chatd again.",
                 dotenv_path, strerror(-rc));
    }
    free(text);
    if (rc == 0)
        rc = config_load(cfg, env_then_map, &map, err, errlen);
    map_free(&map);
    return rc;
}

bool config_model_allowed(const struct config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->allowed_models.n; i++)
        if (strcmp(cfg->allowed_models.items[i], model) == 0)
            return true;
    return false;
}

bool config_origin_allowed(const struct config *cfg, const char *origin)
{
    if (cfg->cors_any)
        return true;
    for (size_t i = 0; i < cfg->cors_origins.n; i++)
        if (strcmp(cfg->cors_origins.items[i], origin) == 0)
            return true;
    return false;
}

void config_public_base_url(const struct config *cfg, char *out, size_t outlen)
{
    const char *u = cfg->base_url;
    const char *auth = strstr(u, "://");
    auth = auth ? auth + 3 : u;
    const char *slash = strchr(auth, '/');
    const char *at = memchr(auth, '@', slash ? (size_t)(slash - auth) : strlen(auth));
    if (at == NULL)
        snprintf(out, outlen, "%s", u);
    else
        snprintf(out, outlen, "%.*sREDACTED%s", (int)(auth - u), u, at);
}

static void join(const struct str_list *l, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->n && used < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "," : "", l->items[i]);
}

void config_log_effective(const struct config *cfg, const char *listen_addr)
{
    char url[512], models[1024], cors[1024];
    config_public_base_url(cfg, url, sizeof url);
    join(&cfg->allowed_models, models, sizeof models);
    if (cfg->cors_any)
        snprintf(cors, sizeof cors, "*");
    else
        join(&cfg->cors_origins, cors, sizeof cors);
    log_event(LOG_INFO, "server_started", NULL, LOG_STR("listen", listen_addr),
              LOG_STR("openai_base_url", url), LOG_BOOL("openai_api_key_set", cfg->api_key),
              LOG_STR("openai_model", cfg->model), LOG_STR("allowed_models", models),
              LOG_INT("max_tokens", cfg->max_tokens), LOG_NUM("timeout_seconds", cfg->timeout_s),
              LOG_STR("log_level", log_level_name(cfg->log_level)), LOG_STR("cors_origins", cors),
              LOG_INT("workers", cfg->workers), LOG_INT("max_concurrent_streams", cfg->max_streams),
              LOG_NUM("drain_seconds", cfg->drain_s),
              LOG_NUM("client_timeout_seconds", cfg->client_timeout_s),
              LOG_INT("client_api_key_count", cfg->client_keys.n));
}

void config_free(struct config *cfg)
{
    free(cfg->api_key);
    free(cfg->base_url);
    free(cfg->chat_url);
    free(cfg->model);
    free(cfg->host);
    list_free(&cfg->allowed_models);
    list_free(&cfg->cors_origins);
    list_free(&cfg->client_keys);
    memset(cfg, 0, sizeof *cfg);
}
