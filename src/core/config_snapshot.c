/* config_snapshot: what is done with a loaded configuration — the counted
 * references that let a reload replace it under running requests, the fixed
 * settings a reload keeps, the log lines that show it (never a secret), and the
 * questions asked of it while serving. See config.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

/* ---- snapshots ------------------------------------------------------------------------ */

struct config *config_ref(struct config *cfg)
{
    atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void config_unref(struct config *cfg)
{
    /* acq_rel: every thread's reads of the snapshot happen before its free. */
    if (cfg != NULL && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1) {
        config_free(cfg);
        free(cfg);
    }
}

static size_t field_size(enum config_type t)
{
    switch (t) {
    case CONFIG_INT: return sizeof(int);
    case CONFIG_SIZE: return sizeof(size_t);
    case CONFIG_SECONDS: return sizeof(double);
    case CONFIG_BOOL: return sizeof(bool);
    case CONFIG_LEVEL: return sizeof(enum log_level);
    default: return 0;
    }
}

int config_keep_fixed(struct config *next, const struct config *cur, char *changed, size_t len)
{
    size_t used = 0;
    changed[0] = '\0';
    for (size_t i = 0; i < config_n_vars; i++) {
        const struct config_var *v = &config_vars[i];
        if (!v->fixed || v->type == CONFIG_LIST) /* no fixed list so far */
            continue;
        void *dst = (char *)next + v->offset;
        const void *src = (const char *)cur + v->offset;
        bool differs;
        if (v->type == CONFIG_STR) {
            const char *a = *(char **)dst, *b = *(char *const *)src;
            differs = (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
            char *copy = b != NULL ? strdup(b) : NULL;
            if (b != NULL && copy == NULL)
                return -ENOMEM;
            free(*(char **)dst);
            *(char **)dst = copy;
        } else {
            differs = memcmp(dst, src, field_size(v->type)) != 0;
            memcpy(dst, src, field_size(v->type));
        }
        if (differs && used < len)
            used += (size_t)snprintf(changed + used, len - used, "%s%s", used ? "," : "", v->name);
    }
    return 0;
}

/* ---- questions asked while serving ---------------------------------------------------- */

bool config_model_allowed(const struct config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->allowed_models.n; i++)
        if (strcmp(cfg->allowed_models.items[i], model) == 0)
            return true;
    return false;
}

const char *config_origin_allowed(const struct config *cfg, const char *origin)
{
    if (cfg->cors_any)
        return "*";
    for (size_t i = 0; i < cfg->cors_origins.n; i++)
        if (strcmp(cfg->cors_origins.items[i], origin) == 0)
            return cfg->cors_origins.items[i];
    return NULL;
}

void config_public_url(const char *u, char *out, size_t outlen)
{
    const char *auth = strstr(u, "://");
    auth = auth ? auth + 3 : u;
    const char *slash = strchr(auth, '/');
    const char *at = memchr(auth, '@', slash ? (size_t)(slash - auth) : strlen(auth));
    if (at == NULL)
        snprintf(out, outlen, "%s", u);
    else
        snprintf(out, outlen, "%.*sREDACTED%s", (int)(auth - u), u, at);
}

void config_public_base_url(const struct config *cfg, char *out, size_t outlen)
{
    config_public_url(cfg->base_url, out, outlen);
}

static void join(const struct str_list *l, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->n && used < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "," : "", l->items[i]);
}

/* One server_started field for row v; text is the buffer a string value may use. */
static struct log_field effective_field(const struct config *cfg, const struct config_var *v,
                                        char *text, size_t textlen)
{
    const void *field = (const char *)cfg + v->offset;
    const char *s = v->type == CONFIG_STR ? *(char *const *)field : NULL;
    const struct str_list *l = field;
    switch (v->type) {
    case CONFIG_STR:
        if (v->hidden)
            return LOG_BOOL(v->log_key, s != NULL);
        if (s == NULL)
            return LOG_NULL(v->log_key);
        if (strstr(v->log_key, "_url") != NULL) /* may hold user:password@ */
            config_public_url(s, text, textlen);
        else
            snprintf(text, textlen, "%s", s);
        return LOG_STR(v->log_key, text);
    case CONFIG_LIST:
        if (v->hidden)
            return LOG_INT(v->log_key, l->n);
        if (v->offset == offsetof(struct config, cors_origins) && cfg->cors_any)
            snprintf(text, textlen, "*");
        else
            join(l, text, textlen);
        return LOG_STR(v->log_key, text);
    case CONFIG_INT: return LOG_INT(v->log_key, *(const int *)field);
    case CONFIG_SIZE: return LOG_INT(v->log_key, *(const size_t *)field);
    case CONFIG_SECONDS: return LOG_NUM(v->log_key, *(const double *)field);
    case CONFIG_BOOL: return LOG_BOOL(v->log_key, *(const bool *)field);
    default: return LOG_STR(v->log_key, log_level_name(*(const enum log_level *)field));
    }
}

/* The providers' and the models' names, comma-separated. */
static void routing_names(const struct config *cfg, char *providers, char *models, size_t len)
{
    size_t p = 0, m = 0;
    providers[0] = models[0] = '\0';
    for (size_t i = 0; i < cfg->n_providers && p < len; i++)
        p += (size_t)snprintf(providers + p, len - p, "%s%s", i ? "," : "", cfg->providers[i].name);
    for (size_t i = 0; i < cfg->n_models && m < len; i++)
        m += (size_t)snprintf(models + m, len - m, "%s%s", i ? "," : "", cfg->models[i].name);
}

void config_log_effective(const struct config *cfg, const char *listen_addr)
{
    enum { MAXV = 32, TEXT = 1024 };
    if (!log_enabled(LOG_INFO))
        return;
    char text[MAXV][TEXT];
    struct log_field f[MAXV + 5];
    size_t n = 0;
    f[n++] = LOG_STR("listen", listen_addr);
    for (size_t i = 0; i < config_n_vars && i < MAXV; i++)
        f[n++] = effective_field(cfg, &config_vars[i], text[i], TEXT);
    char providers[TEXT], models[TEXT];
    routing_names(cfg, providers, models, TEXT);
    f[n++] = LOG_STR("providers", providers);
    f[n++] = LOG_STR("models", models);
    f[n++] = LOG_STR("default_model", cfg->n_models ? cfg->models[cfg->default_model].name : "");
    f[n++] = LOG_INT("client_keys", cfg->n_keys);
    log_write(LOG_INFO, "server_started", NULL, f, n);
}

void config_log_reloaded(const struct config *cfg, const char *changed)
{
    char providers[1024], models[1024];
    routing_names(cfg, providers, models, sizeof providers);
    bool kept = changed[0] != '\0';
    log_event(kept ? LOG_WARNING : LOG_INFO, "config_reloaded", NULL,
              LOG_STR("chatd_config", cfg->config_path), LOG_STR("providers", providers),
              LOG_STR("models", models),
              LOG_STR("default_model", cfg->n_models ? cfg->models[cfg->default_model].name : ""),
              LOG_INT("client_keys", cfg->n_keys), LOG_STR("unchanged_until_restart", changed),
              LOG_STR("warning", kept ? "these settings are read only at start: they keep their "
                                        "old values; restart chatd to apply them"
                                      : NULL));
}
