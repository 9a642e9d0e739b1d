/* config_file: CHATD_CONFIG, the JSON file of providers, models and client keys.
 * Every mistake is refused with the JSON path of the value at fault (such as
 * models[1].targets[0].provider), what is wrong with it, and what to do; an
 * unknown field is a mistake too, so a typo never silently does nothing. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config.h"
#include "core/jscan.h"
#include "core/config_internal.h"

#define FIX_FILE  "Fix the file, then start chatd again (or send it SIGHUP)."
#define LIMIT_MAX 1000000000L

struct jctx {
    struct config *cfg;
    config_lookup lookup;
    void *lookup_ctx;
    char *err;
    size_t errlen;
};

static int fail(struct jctx *j, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct jctx *j, const char *path, const char *fmt, ...)
{
    int n = snprintf(j->err, j->errlen, "%s: ", path);
    if (n < 0 || (size_t)n >= j->errlen)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err + n, j->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Refuses any field of obj not in allowed (NULL-terminated), naming it. */
static int only_fields(struct jctx *j, const char *path, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known) {
            char fields[256];
            size_t used = 0;
            fields[0] = '\0';
            for (const char *const *a = allowed; *a && used < sizeof fields; a++)
                used += (size_t)snprintf(fields + used, sizeof fields - used, "%s%s",
                                         a == allowed ? "" : ", ", *a);
            return fail(j, path,
                        "unknown field \"%.60s\". chatd refuses fields it does not know, so "
                        "that a misspelt setting cannot silently do nothing; the fields here "
                        "are %s. " FIX_FILE,
                        key, fields);
        }
    }
    return 0;
}

/* The string at obj[field] (NULL when absent and !required). */
static int get_str(struct jctx *j, const char *path, json_t *obj, const char *field, bool required,
                   const char **out)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (v == NULL && !required)
        return 0;
    if (v == NULL)
        return fail(j, path, "the field \"%s\" is missing. It is required here. Add it. " FIX_FILE,
                    field);
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail(j, path,
                    "\"%s\" must be a non-empty string. Other JSON types cannot be read as "
                    "this setting. Write it as a quoted string. " FIX_FILE,
                    field);
    *out = json_string_value(v);
    return 0;
}

static int get_array(struct jctx *j, const char *path, json_t *obj, const char *field,
                     bool required, json_t **out)
{
    *out = json_object_get(obj, field);
    if (*out == NULL && !required)
        return 0;
    if (*out == NULL || !json_is_array(*out) || json_array_size(*out) == 0)
        return fail(j, path,
                    "\"%s\" must be a non-empty array. %s. Add at least one entry. " FIX_FILE,
                    field,
                    strcmp(field, "targets") == 0 ? "A model without targets could never be served"
                                                  : "Without it there is nothing to configure");
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static int check_name(struct jctx *j, const char *path, const char *name)
{
    if (name_ok(name))
        return 0;
    return fail(j, path,
                "\"%.80s\" is not a valid name. Names appear in logs and metrics, so they are 1 "
                "to 64 letters, digits, '.', '_' or '-'. Rename it. " FIX_FILE,
                name);
}

/* The start every entry of providers, models and keys shares: obj is an object
 * (else not_object is the complaint) with only the allowed fields and a "name"
 * string. Writes "<list>[i]" to path (64 bytes). */
static int entry_start(struct jctx *j, json_t *obj, const char *list, size_t i,
                       const char *const *fields, const char *not_object, char *path,
                       const char **name)
{
    snprintf(path, 64, "%s[%zu]", list, i);
    if (!json_is_object(obj))
        return fail(j, path, "%s", not_object);
    int rc = only_fields(j, path, obj, fields);
    return rc ? rc : get_str(j, path, obj, "name", true, name);
}

/* Fails when an earlier entry of list (entries: its array, whose elements of size
 * stride begin with their name, a char *) already has name. what names one entry,
 * why says why names must differ and what to do. */
static int entry_unique(struct jctx *j, const char *at, const char *what, const char *list,
                        const void *entries, size_t stride, size_t i, const char *name,
                        const char *why)
{
    for (size_t k = 0; k < i; k++)
        if (strcmp(*(char *const *)((const char *)entries + k * stride), name) == 0)
            return fail(j, at, "the %s name \"%.64s\" is used twice (also %s[%zu]). %s " FIX_FILE,
                        what, name, list, k, why);
    return 0;
}

/* ---- providers ------------------------------------------------------------------------ */

static bool header_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Headers chatd writes itself (or that carry secrets, which the file must not). */
static bool header_reserved(const char *s)
{
    static const char *const reserved[] = { "authorization", "content-type", "content-length",
                                            "host",          "accept",       "transfer-encoding",
                                            "connection" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return true;
    return false;
}

static int parse_headers(struct jctx *j, const char *path, json_t *obj, struct provider_conf *p)
{
    json_t *h = json_object_get(obj, "headers");
    if (h == NULL)
        return 0;
    char at[160];
    if (!json_is_object(h))
        return fail(j, path,
                    "\"headers\" must be an object of header names to string values. Other JSON "
                    "types cannot be sent as headers. Write it as {\"HTTP-Referer\": "
                    "\"https://app.example.com\"}. " FIX_FILE);
    const char *name;
    json_t *v;
    json_object_foreach(h, name, v)
    {
        snprintf(at, sizeof at, "%s.headers.%.40s", path, name);
        const char *val = json_is_string(v) ? json_string_value(v) : NULL;
        bool key_header = p->api_key_header != NULL && strcasecmp(name, p->api_key_header) == 0;
        if (!header_name_ok(name) || header_reserved(name) || key_header)
            return fail(j, at,
                        "this header cannot be set here. Header names are letters, digits and "
                        "-, and chatd writes Authorization, the key header, Content-Type, "
                        "Host and Accept itself (keys come from api_key_env, never the file). "
                        "Remove it or use api_key_env. " FIX_FILE);
        if (val == NULL || strlen(val) != json_string_length(v) || strlen(val) > 1024 ||
            has_ctl(val))
            return fail(j, at,
                        "the value must be a string of at most 1024 bytes without line breaks "
                        "or tabs. It is sent as one header line. Shorten or fix it. " FIX_FILE);
        char *line;
        if (asprintf(&line, "%s: %s", name, val) < 0)
            return -ENOMEM;
        int rc = config_list_add(&p->headers, line, strlen(line));
        free(line);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_api_key(struct jctx *j, const char *path, json_t *obj, struct provider_conf *p)
{
    const char *env, *header;
    int rc;
    char at[160];
    snprintf(at, sizeof at, "%s.api_key_env", path);
    if ((rc = get_str(j, path, obj, "api_key_env", false, &env)) ||
        (rc = get_str(j, path, obj, "api_key_header", false, &header)))
        return rc;
    if (header != NULL && env == NULL)
        return fail(j, path,
                    "\"api_key_header\" is set without \"api_key_env\". There is then no key to "
                    "send in that header. Add api_key_env naming the variable that holds the "
                    "key, or remove api_key_header. " FIX_FILE);
    char hat[160];
    snprintf(hat, sizeof hat, "%s.api_key_header", path);
    if (header != NULL && !header_name_ok(header))
        return fail(j, hat,
                    "\"%.60s\" is not a header name. Header names are letters, digits and -. Use "
                    "a name such as api-key, or leave it out for Authorization: Bearer. " FIX_FILE,
                    header);
    if (header != NULL && strcasecmp(header, "Authorization") != 0 &&
        (p->api_key_header = strdup(header)) == NULL)
        return -ENOMEM;
    if (env == NULL)
        return 0;
    const char *raw = j->lookup(env, j->lookup_ctx);
    while (raw != NULL && (*raw == ' ' || *raw == '\t'))
        raw++;
    if (raw == NULL || *raw == '\0')
        return fail(j, at,
                    "the variable %.80s is not set. It must hold this provider's API key, "
                    "since the file names keys only by variable. Set %.80s in the environment "
                    "or in .env, or remove api_key_env if the provider needs no key. " FIX_FILE,
                    env, env);
    size_t n = strlen(raw);
    while (n > 0 && strchr(" \t\r\n", raw[n - 1]) != NULL)
        n--;
    if ((p->api_key = strndup(raw, n)) == NULL)
        return -ENOMEM;
    if (config_has_ctl_or_space(p->api_key) || n > 1024)
        return fail(j, at,
                    "the key in %.80s contains spaces or control characters, or is longer than "
                    "1024 characters. It could not be sent as a header. Copy the key again "
                    "without quotes or line breaks. " FIX_FILE,
                    env);
    return 0;
}

static int parse_ca_file(struct jctx *j, const char *path, json_t *obj, struct provider_conf *p)
{
    const char *ca;
    int rc = get_str(j, path, obj, "ca_file", false, &ca);
    if (rc != 0 || ca == NULL)
        return rc;
    int fd = open(ca, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char at[160];
        snprintf(at, sizeof at, "%s.ca_file", path);
        return fail(j, at,
                    "%.200s cannot be read: %s. It must be a PEM bundle of the CAs to trust for "
                    "this provider (verification is never switched off). Fix the path (relative "
                    "to chatd's working directory) or its permissions. " FIX_FILE,
                    ca, strerror(errno));
    }
    close(fd);
    return (p->ca_file = strdup(ca)) == NULL ? -ENOMEM : 0;
}

static int parse_provider(struct jctx *j, json_t *obj, size_t i)
{
    static const char *const fields[] = { "name",    "base_url", "api_key_env", "api_key_header",
                                          "headers", "ca_file",  NULL };
    struct provider_conf *p = &j->cfg->providers[i];
    char path[64], at[96];
    const char *name, *url;
    int rc;
    if ((rc = entry_start(j, obj, "providers", i, fields,
                          "a provider must be an object. It gives a name and a base_url. Write "
                          "it as {\"name\": \"openai\", \"base_url\": "
                          "\"https://api.openai.com/v1\"}. " FIX_FILE,
                          path, &name)))
        return rc;
    snprintf(at, sizeof at, "%s.name", path);
    if ((rc = check_name(j, at, name)) ||
        (rc = entry_unique(j, at, "provider", "providers", j->cfg->providers, sizeof *p, i, name,
                           "Targets name providers, so names must be unique. Rename one.")))
        return rc;
    if ((p->name = strdup(name)) == NULL)
        return -ENOMEM;
    if ((rc = get_str(j, path, obj, "base_url", true, &url)))
        return rc;
    if ((p->base_url = strdup(url)) == NULL)
        return -ENOMEM;
    snprintf(at, sizeof at, "%s.base_url", path);
    if (!config_base_url_ok(p->base_url))
        return fail(j, at,
                    "\"%.80s\" is not a valid base URL. It must be an http:// or https:// URL "
                    "with a host and no query, such as https://api.openai.com/v1; chatd appends "
                    "/chat/completions. " FIX_FILE,
                    url);
    if (asprintf(&p->chat_url, "%s/chat/completions", p->base_url) < 0) {
        p->chat_url = NULL;
        return -ENOMEM;
    }
    if ((rc = parse_api_key(j, path, obj, p)) || (rc = parse_headers(j, path, obj, p)))
        return rc;
    return parse_ca_file(j, path, obj, p);
}

/* ---- models ------------------------------------------------------------------------------ */

static int parse_target(struct jctx *j, json_t *obj, const char *path, struct target_conf *t,
                        const char *model_name)
{
    static const char *const fields[] = { "provider", "model", NULL };
    const char *prov, *model;
    char at[192];
    int rc;
    if (!json_is_object(obj))
        return fail(j, path,
                    "a target must be an object. It names a provider and the model to ask it "
                    "for. Write it as {\"provider\": \"openai\", \"model\": \"gpt-4o-mini\"}. "
                    "" FIX_FILE);
    if ((rc = only_fields(j, path, obj, fields)) ||
        (rc = get_str(j, path, obj, "provider", true, &prov)) ||
        (rc = get_str(j, path, obj, "model", false, &model)))
        return rc;
    snprintf(at, sizeof at, "%s.provider", path);
    t->provider = j->cfg->n_providers;
    for (size_t k = 0; k < j->cfg->n_providers; k++)
        if (strcmp(j->cfg->providers[k].name, prov) == 0)
            t->provider = k;
    if (t->provider == j->cfg->n_providers)
        return fail(j, at,
                    "\"%.64s\" is not a provider. Every target must name one of the entries of "
                    "\"providers\". Add that provider or fix the name. " FIX_FILE,
                    prov);
    snprintf(at, sizeof at, "%s.model", path);
    if (model != NULL && !config_model_name_ok(model))
        return fail(j, at,
                    "\"%.64s\" is not a valid model name. Model names have no spaces, quotes or "
                    "control characters and are at most 256 characters. Use the name the "
                    "provider lists. " FIX_FILE,
                    model);
    return (t->model = strdup(model ? model : model_name)) == NULL ? -ENOMEM : 0;
}

static int parse_model(struct jctx *j, json_t *obj, size_t i)
{
    static const char *const fields[] = { "name", "targets", NULL };
    struct model_conf *m = &j->cfg->models[i];
    char path[64], at[128];
    const char *name;
    json_t *targets;
    int rc;
    if ((rc = entry_start(j, obj, "models", i, fields,
                          "a model must be an object. It gives a name clients use and its "
                          "targets. Write it as {\"name\": …, \"targets\": […]}. " FIX_FILE,
                          path, &name)))
        return rc;
    snprintf(at, sizeof at, "%s.name", path);
    if (!config_model_name_ok(name))
        return fail(j, at,
                    "\"%.64s\" is not a valid model name. Model names have no spaces, quotes or "
                    "control characters and are at most 256 characters. Rename it. " FIX_FILE,
                    name);
    if ((rc = entry_unique(j, at, "model", "models", j->cfg->models, sizeof *m, i, name,
                           "A request names one model, so names must be unique. Merge their "
                           "targets into one entry.")))
        return rc;
    if ((m->name = strdup(name)) == NULL)
        return -ENOMEM;
    if ((rc = get_array(j, path, obj, "targets", true, &targets)))
        return rc;
    if ((m->targets = calloc(json_array_size(targets), sizeof *m->targets)) == NULL)
        return -ENOMEM;
    for (size_t t = 0; t < json_array_size(targets); t++) {
        snprintf(at, sizeof at, "%s.targets[%zu]", path, t);
        m->n_targets++;
        if ((rc = parse_target(j, json_array_get(targets, t), at, &m->targets[t], name)))
            return rc;
    }
    return 0;
}

/* ---- client keys -------------------------------------------------------------------------- */

static int parse_limit(struct jctx *j, const char *path, json_t *obj, const char *field, long *out)
{
    json_t *v = json_object_get(obj, field);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > LIMIT_MAX)
        return fail(j, path,
                    "\"%s\" must be a whole number from 0 to %ld. 0 means no limit, and a "
                    "negative or fractional limit means nothing. Fix the number. " FIX_FILE,
                    field, LIMIT_MAX);
    *out = (long)json_integer_value(v);
    return 0;
}

static int parse_key_models(struct jctx *j, const char *path, json_t *obj, struct key_conf *k)
{
    json_t *models;
    char at[128];
    int rc = get_array(j, path, obj, "models", false, &models);
    for (size_t i = 0; rc == 0 && models != NULL && i < json_array_size(models); i++) {
        json_t *v = json_array_get(models, i);
        snprintf(at, sizeof at, "%s.models[%zu]", path, i);
        const char *name = json_is_string(v) ? json_string_value(v) : "";
        bool known = false;
        for (size_t m = 0; m < j->cfg->n_models && !known; m++)
            known = strcmp(j->cfg->models[m].name, name) == 0;
        if (!known)
            return fail(j, at,
                        "\"%.64s\" is not one of the models. A key's models must be names from "
                        "\"models\". Fix the name or add the model. " FIX_FILE,
                        name);
        rc = config_list_add(&k->models, name, strlen(name));
    }
    return rc;
}

static int parse_key(struct jctx *j, json_t *obj, size_t i)
{
    static const char *const fields[] = { "name",
                                          "sha256",
                                          "models",
                                          "requests_per_minute",
                                          "tokens_per_minute",
                                          "max_concurrent_streams",
                                          NULL };
    struct key_conf *k = &j->cfg->keys[i];
    char path[64], at[96];
    const char *name, *hex;
    int rc;
    if ((rc = entry_start(j, obj, "keys", i, fields,
                          "a key must be an object. It gives a name and the key's SHA-256. "
                          "Write it as {\"name\": …, \"sha256\": …}. " FIX_FILE,
                          path, &name)))
        return rc;
    snprintf(at, sizeof at, "%s.name", path);
    if ((rc = check_name(j, at, name)) ||
        (rc = entry_unique(j, at, "key", "keys", j->cfg->keys, sizeof *k, i, name,
                           "Logs and metrics name keys by name, so names must be unique. "
                           "Rename one.")))
        return rc;
    if ((k->name = strdup(name)) == NULL)
        return -ENOMEM;
    if ((rc = get_str(j, path, obj, "sha256", true, &hex)))
        return rc;
    snprintf(at, sizeof at, "%s.sha256", path);
    bool ok = strlen(hex) == 64;
    for (size_t b = 0; ok && b < 32; b++) {
        int hi = jscan_hex_digit((unsigned char)hex[2 * b]),
            lo = jscan_hex_digit((unsigned char)hex[2 * b + 1]);
        ok = hi >= 0 && lo >= 0;
        k->sha256[b] = (unsigned char)(hi * 16 + lo);
    }
    if (!ok)
        return fail(j, at,
                    "this is not a SHA-256: it must be 64 hexadecimal digits. The file stores "
                    "keys only as hashes. Compute it with: printf %%s \"$KEY\" | chatd hash-key. "
                    "" FIX_FILE);
    for (size_t o = 0; o < i; o++)
        if (memcmp(j->cfg->keys[o].sha256, k->sha256, 32) == 0)
            return fail(j, at,
                        "the same key is listed twice (also keys[%zu]). One key can have only "
                        "one name, model list and limits. Remove one entry. " FIX_FILE,
                        o);
    if ((rc = parse_limit(j, path, obj, "requests_per_minute", &k->requests_per_minute)) ||
        (rc = parse_limit(j, path, obj, "tokens_per_minute", &k->tokens_per_minute)) ||
        (rc = parse_limit(j, path, obj, "max_concurrent_streams", &k->max_concurrent_streams)))
        return rc;
    return parse_key_models(j, path, obj, k);
}

/* ---- the whole file ------------------------------------------------------------------------ */

static int parse_default_model(struct jctx *j, json_t *root)
{
    const char *name;
    int rc = get_str(j, "default_model", root, "default_model", false, &name);
    if (rc != 0 || name == NULL)
        return rc; /* default: the first model */
    for (size_t m = 0; m < j->cfg->n_models; m++)
        if (strcmp(j->cfg->models[m].name, name) == 0) {
            j->cfg->default_model = m;
            return 0;
        }
    return fail(j, "default_model",
                "\"%.64s\" is not one of the models. Requests that name no model use it. Name "
                "one of the entries of \"models\". " FIX_FILE,
                name);
}

/* Fills what code written before CHATD_CONFIG reads: the first provider's URL and
 * key, the default model, every model name. */
static int fill_compat(struct config *cfg)
{
    const struct provider_conf *p = &cfg->providers[0];
    free(cfg->base_url);
    free(cfg->chat_url);
    free(cfg->api_key);
    free(cfg->model);
    cfg->api_key = NULL;
    config_list_free(&cfg->allowed_models);
    cfg->base_url = strdup(p->base_url);
    cfg->chat_url = strdup(p->chat_url);
    cfg->model = strdup(cfg->models[cfg->default_model].name);
    if (cfg->base_url == NULL || cfg->chat_url == NULL || cfg->model == NULL ||
        (p->api_key != NULL && (cfg->api_key = strdup(p->api_key)) == NULL))
        return -ENOMEM;
    for (size_t m = 0; m < cfg->n_models; m++)
        if (config_list_add(&cfg->allowed_models, cfg->models[m].name,
                            strlen(cfg->models[m].name)) != 0)
            return -ENOMEM;
    return 0;
}

#define EACH(arr, i) for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++)

static int parse_root(struct jctx *j, json_t *root)
{
    static const char *const fields[] = { "providers", "models", "default_model", "keys", NULL };
    struct config *cfg = j->cfg;
    json_t *providers, *models, *keys;
    int rc;
    if (!json_is_object(root))
        return fail(j, "(top level)",
                    "the file must hold one JSON object. chatd reads \"providers\", \"models\", "
                    "\"default_model\" and \"keys\" from it. See chatd.example.json. " FIX_FILE);
    if ((rc = only_fields(j, "(top level)", root, fields)) ||
        (rc = get_array(j, "providers", root, "providers", true, &providers)) ||
        (rc = get_array(j, "models", root, "models", true, &models)) ||
        (rc = get_array(j, "keys", root, "keys", false, &keys)))
        return rc;
    if ((cfg->providers = calloc(json_array_size(providers), sizeof *cfg->providers)) == NULL ||
        (cfg->models = calloc(json_array_size(models), sizeof *cfg->models)) == NULL ||
        (keys && (cfg->keys = calloc(json_array_size(keys), sizeof *cfg->keys)) == NULL))
        return -ENOMEM;
    EACH(providers, i)
    {
        cfg->n_providers++;
        rc = parse_provider(j, json_array_get(providers, i), i);
    }
    EACH(models, i)
    {
        cfg->n_models++;
        rc = parse_model(j, json_array_get(models, i), i);
    }
    if (rc == 0)
        rc = parse_default_model(j, root);
    EACH(keys, i)
    {
        cfg->n_keys++;
        rc = parse_key(j, json_array_get(keys, i), i);
    }
    return rc != 0 ? rc : fill_compat(cfg);
}

static int parse_json(struct jctx *j, json_t *root, const json_error_t *e)
{
    if (root == NULL)
        return fail(j, "(file)",
                    "line %d, column %d: the JSON is not valid: %.120s. chatd reads the whole "
                    "file as one JSON object before using any of it. " FIX_FILE,
                    e->line, e->column, e->text);
    int rc = parse_root(j, root);
    json_decref(root);
    if (rc != 0)
        config_routing_free(j->cfg);
    return rc;
}

int config_parse_routing_json(struct config *cfg, const char *text, size_t len,
                              config_lookup lookup, void *lookup_ctx, char *err, size_t errlen)
{
    struct jctx j = { cfg, lookup, lookup_ctx, err, errlen };
    json_error_t e;
    return parse_json(&j, json_loadb(text, len, JSON_REJECT_DUPLICATES, &e), &e);
}

int config_file_load(struct config_ctx *c)
{
    const char *path = c->cfg->config_path;
    char msg[1024];
    struct jctx j = { c->cfg, c->lookup, c->lookup_ctx, msg, sizeof msg };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return config_bad(c,
                          "CHATD_CONFIG=%.200s cannot be read: %s. chatd takes its providers and "
                          "models from that file. Fix the path or its permissions, or unset "
                          "CHATD_CONFIG. Then start chatd again.",
                          path, strerror(errno));
    close(fd);
    json_error_t e;
    int rc = parse_json(&j, json_load_file(path, JSON_REJECT_DUPLICATES, &e), &e);
    if (rc == -EINVAL)
        config_bad(c, "CHATD_CONFIG %.200s, %s", path, msg);
    return rc;
}
