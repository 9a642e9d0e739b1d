/* config_internal: what the parts of the config module share (config.c: the
 * variables; config_env.c: the process environment and .env; config_file.c:
 * CHATD_CONFIG and the routing tables). Not for other modules. */
#ifndef CHATD_CONFIG_INTERNAL_H
#define CHATD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

#define CONFIG_FIX_HINT \
    "Fix it in the environment or in .env (see .env.example) and start chatd again."

/* The state of one load: where values come from, where errors go. */
struct config_ctx {
    struct config *cfg;
    config_lookup lookup;
    void *lookup_ctx;
    char *err;
    size_t errlen;
    const struct config_var *var; /* the variable being read */
    bool set;                     /* it had a non-blank value */
};

/* Writes the message into c->err and returns -EINVAL. */
int config_bad(struct config_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A variable's value with surrounding blanks removed, or NULL when it is unset or
 * blank (blank means "use the default"). Caller frees. */
char *config_get(struct config_ctx *c, const char *name);

/* True when s has a space, a control character or DEL. */
bool config_has_ctl_or_space(const char *s);

/* Removes trailing '/' from url in place; true when it is an http(s) URL with a
 * host, no query or fragment, no blanks, at most 2048 bytes. */
bool config_base_url_ok(char *url);

/* True when m can be a model name (no blanks, quotes or controls; <= 256 bytes). */
bool config_model_name_ok(const char *m);

/* Appends a copy of s[0..n). Returns 0 or -ENOMEM. */
int config_list_add(struct str_list *l, const char *s, size_t n);

/* Frees the items and empties the list. */
void config_list_free(struct str_list *l);

/* Fills providers, models and keys: from CHATD_CONFIG's file when config_path is
 * set, else from OPENAI_BASE_URL, ALLOWED_MODELS and CLIENT_API_KEYS. */
int config_routing_load(struct config_ctx *c);

/* Reads CHATD_CONFIG's file (c->cfg->config_path) into the routing tables. */
int config_file_load(struct config_ctx *c);

/* Frees providers, models and keys. */
void config_routing_free(struct config *cfg);

#endif
