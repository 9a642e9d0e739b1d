/* config: every setting of chatd, read from the environment and `.env` (and the
 * CHATD_CONFIG file), validated, then shared read-only by all threads.
 *
 * Every environment variable is one row of config_vars (name, type, default,
 * bounds, help line, field): the loader, the server_started line and
 * `chatd --help` all read that one table. */
#ifndef CHATD_CONFIG_H
#define CHATD_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct str_list {
    char **items;
    size_t n;
};

/* One upstream, OpenAI-compatible API. */
struct provider_conf {
    char *name;
    char *base_url;       /* without trailing '/' */
    char *chat_url;       /* base_url + "/chat/completions" */
    char *api_key;        /* value of the env var named by api_key_env; NULL = none */
    char *api_key_header; /* NULL: "Authorization: Bearer <key>"; else "<name>: <key>" (bare key) */
    struct str_list headers; /* extra "Name: value" lines from "headers" */
    char *ca_file;           /* NULL: the system's CAs */
};

/* One place a model is served: a provider and the model name it knows. */
struct target_conf {
    size_t provider; /* index into providers */
    char *model;
};

/* A model name clients use, and its targets in the order they are tried. */
struct model_conf {
    char *name;
    struct target_conf *targets;
    size_t n_targets;
};

/* A client key: stored as its SHA-256, with an optional model list and limits. */
struct key_conf {
    char *name;
    unsigned char sha256[32];
    struct str_list models;                                              /* empty: every model */
    long requests_per_minute, tokens_per_minute, max_concurrent_streams; /* 0: no limit */
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
    size_t max_request_bytes;    /* MAX_REQUEST_BYTES */
    char *system_prompt;         /* SYSTEM_PROMPT; NULL when empty */
    char *config_path;           /* CHATD_CONFIG; NULL when empty */
    int upstream_retries;        /* UPSTREAM_RETRIES */
    double connect_timeout_s;    /* CONNECT_TIMEOUT_SECONDS */
    int breaker_failures;        /* BREAKER_FAILURES */
    double breaker_cooldown_s;   /* BREAKER_COOLDOWN_SECONDS */
    char *redis_url;             /* REDIS_URL; NULL when empty (syntax checked by limits) */
    bool rate_limit_fail_open;   /* RATE_LIMIT_FAIL_OPEN */
    bool ui_enabled;             /* UI_ENABLED */
    bool native_http;            /* UPSTREAM_NATIVE_HTTP */
    char *dns_resolv_conf;       /* DNS_RESOLV_CONF */
    int idle_spin_us;            /* IDLE_SPIN_MICROSECONDS; 0 = never poll before sleeping */

    /* Routing: from CHATD_CONFIG, or built from the variables above without it. */
    struct provider_conf *providers;
    size_t n_providers;
    struct model_conf *models;
    size_t n_models;
    size_t default_model; /* index into models */
    struct key_conf *keys;
    size_t n_keys;

    /* A snapshot from config_load_process: shared by every thread, read-only, freed
     * by the last config_unref. 0 for a config filled by config_load. */
    _Atomic long refs;
    char *dotenv_path; /* the .env it was read with, for a reload */
};

/* ---- the table of variables ---------------------------------------------------------- */

enum config_type {
    CONFIG_STR,     /* char *, NULL when empty and without default */
    CONFIG_LIST,    /* struct str_list, comma-separated */
    CONFIG_INT,     /* int within [lo, hi] */
    CONFIG_SIZE,    /* size_t within [lo, hi] */
    CONFIG_SECONDS, /* double within [lo, hi] */
    CONFIG_BOOL,    /* bool: true/false/1/0/yes/no, any case */
    CONFIG_LEVEL,   /* enum log_level */
};

struct config_ctx;

struct config_var {
    const char *name;      /* the environment variable */
    enum config_type type; /* how its value is read */
    const char *def;       /* the default as .env.example writes it; "" = none or computed */
    const char *def_doc;   /* the default in words when def is "" (README, --help) */
    double lo, hi;         /* bounds of numbers */
    const char *help;      /* one line: what it does */
    size_t offset;         /* of its field in struct config */
    const char *log_key;   /* its server_started field */
    bool hidden;           /* secret or private: logged only as set (bool) or count */
    int (*check)(struct config_ctx *c); /* extra validation after the value is read, or NULL */
    bool fixed; /* read once at start: a reload keeps the old value (restart to change) */
};

/* Every variable, in the order of .env.example and the README. */
extern const struct config_var config_vars[];
/* How many rows config_vars has. */
extern const size_t config_n_vars;

/* ---- loading -------------------------------------------------------------------------- */

/* Returns the raw value of a variable, or NULL when it is not set. */
typedef const char *(*config_lookup)(const char *name, void *ctx);

/* Fills cfg from lookup (reading CHATD_CONFIG's file when it is set). On a bad
 * value returns -EINVAL and writes a three-part message (what is wrong, why, what
 * to do) naming the variable or JSON path into err; cfg is then left empty.
 * Returns -ENOMEM when out of memory. */
int config_load(struct config *cfg, config_lookup lookup, void *ctx, char *err, size_t errlen);

/* A new snapshot (reference count 1) from the process environment, then
 * dotenv_path when it exists (a variable of the real environment wins), then
 * CHATD_CONFIG. A malformed .env is an error too. On error *out is NULL and err
 * holds the three-part message. Returns 0, -EINVAL or -ENOMEM. */
int config_load_process(const char *dotenv_path, struct config **out, char *err, size_t errlen);

/* Takes one more reference on a snapshot (any thread). Returns cfg. */
struct config *config_ref(struct config *cfg);

/* Drops a reference (any thread); the last one frees the snapshot. NULL is a no-op. */
void config_unref(struct config *cfg);

/* Copies the settings that cannot change while chatd runs (the table's fixed
 * rows: HOST, PORT, WORKERS, …) from cur into next, writing the names of those
 * whose value differed, comma-separated, into changed. Returns 0 or -ENOMEM. */
int config_keep_fixed(struct config *next, const struct config *cur, char *changed, size_t len);

/* Reads the CHATD_CONFIG JSON text[0..len) into cfg's providers, models and keys
 * (and the base_url, chat_url, api_key, model and allowed_models that older code
 * reads); api_key_env names are resolved through lookup. On a mistake returns
 * -EINVAL with a three-part message starting with the JSON path (such as
 * models[1].targets[0].provider) in err, and the routing tables left empty. */
int config_parse_routing_json(struct config *cfg, const char *text, size_t len,
                              config_lookup lookup, void *lookup_ctx, char *err, size_t errlen);

/* Parses a boolean value: true/false/1/0/yes/no in any case. Returns 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

/* ---- questions asked while serving ---------------------------------------------------- */

/* True when model is one of ALLOWED_MODELS. */
bool config_model_allowed(const struct config *cfg, const char *model);

/* Whether CORS_ORIGINS allows origin (exact match, or "*"): the value for
 * Access-Control-Allow-Origin ("*" or the configured entry, which lives as long as
 * cfg), or NULL when it does not. */
const char *config_origin_allowed(const struct config *cfg, const char *origin);

/* Writes base_url with any user:password@ part replaced by REDACTED@. */
void config_public_base_url(const struct config *cfg, char *out, size_t outlen);

/* Writes url with any user:password@ part replaced by REDACTED@. */
void config_public_url(const char *url, char *out, size_t outlen);

/* The model named name (NULL: the default model), or NULL when chatd does not route it. */
const struct model_conf *config_find_model(const struct config *cfg, const char *name);

/* The client key whose SHA-256 is h (config_sha256 of the token), or NULL.
 * Compares against every key in constant time (no early exit). */
const struct key_conf *config_find_key(const struct config *cfg, const unsigned char h[32]);

/* True when key k may use model (k NULL, or k without a model list: every model). */
bool config_key_allows(const struct key_conf *k, const char *model);

/* True when client keys are configured (CLIENT_API_KEYS or the file's keys). */
bool config_auth_enabled(const struct config *cfg);

/* SHA-256 of data[0..len) into out. Returns 0 or -ENOMEM. */
int config_sha256(const void *data, size_t len, unsigned char out[32]);

/* Logs server_started's configuration fields (secrets never appear). */
void config_log_effective(const struct config *cfg, const char *listen_addr);

/* Logs config_reloaded: what the new snapshot routes, and the fixed settings
 * (changed, from config_keep_fixed) that keep their old values until a restart. */
void config_log_reloaded(const struct config *cfg, const char *changed);

/* Frees everything cfg owns; safe on a zeroed or already freed config. */
void config_free(struct config *cfg);

#endif
