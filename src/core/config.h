/* config: every setting of chatd, read once at start-up from the environment and
 * `.env`, validated, then shared read-only by all threads. */
#ifndef CHATD_CONFIG_H
#define CHATD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct str_list {
    char **items;
    size_t n;
};

struct config {
    char *api_key;                  /* OPENAI_API_KEY; NULL when unset */
    char *base_url;                 /* OPENAI_BASE_URL without trailing '/' */
    char *chat_url;                 /* base_url + "/chat/completions" */
    char *model;                    /* OPENAI_MODEL */
    struct str_list allowed_models; /* ALLOWED_MODELS (defaults to {model}) */
    int max_tokens;                 /* MAX_TOKENS */
    double timeout_s;               /* TIMEOUT_SECONDS */
    enum log_level log_level;       /* LOG_LEVEL */
    char *host;                     /* HOST */
    int port;                       /* PORT; 0 = any free port */
    struct str_list cors_origins;   /* CORS_ORIGINS; cors_any for "*" */
    bool cors_any;
    int workers;                 /* WORKERS */
    int max_streams;             /* MAX_CONCURRENT_STREAMS */
    double drain_s;              /* DRAIN_SECONDS */
    struct str_list client_keys; /* CLIENT_API_KEYS */
    double client_timeout_s;     /* CLIENT_TIMEOUT_SECONDS */
};

/* Returns the raw value of a variable, or NULL when it is not set. */
typedef const char *(*config_lookup)(const char *name, void *ctx);

/* Fills cfg from lookup. On a bad value returns -EINVAL and writes a three-part
 * message (what is wrong, why, what to do) naming the variable into err; cfg is
 * then left empty. Returns -ENOMEM when out of memory. */
int config_load(struct config *cfg, config_lookup lookup, void *ctx, char *err, size_t errlen);

/* config_load from the process environment, then dotenv_path when it exists (a
 * variable of the real environment wins). A malformed .env is an error too. */
int config_load_process(struct config *cfg, const char *dotenv_path, char *err, size_t errlen);

/* True when model is one of ALLOWED_MODELS. */
bool config_model_allowed(const struct config *cfg, const char *model);

/* True when origin is allowed by CORS_ORIGINS (exact match, or "*"). */
bool config_origin_allowed(const struct config *cfg, const char *origin);

/* Writes base_url with any user:password@ part replaced by REDACTED@. */
void config_public_base_url(const struct config *cfg, char *out, size_t outlen);

/* Logs server_started's configuration fields (secrets never appear). */
void config_log_effective(const struct config *cfg, const char *listen_addr);

/* Frees everything cfg owns; safe on a zeroed or already freed config. */
void config_free(struct config *cfg);

#endif
