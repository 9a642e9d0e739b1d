/* config_route: the routing tables (providers, models, client keys) — built from
 * the plain variables when there is no CHATD_CONFIG — and the questions the
 * server asks of them. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_internal.h"

/* OpenSSL 3 looks the algorithm up again on every EVP_Digest given EVP_sha256();
 * fetched once, a digest of a key costs a third of that (callgrind). Each thread
 * also keeps one digest context (EVP_Digest makes and frees one per call), freed
 * when the thread ends. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key;
static bool sha256_ctx_keyed;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* NULL: EVP_sha256() below */
    sha256_ctx_keyed = pthread_key_create(&sha256_ctx_key, sha256_ctx_free) == 0;
}

/* This thread's digest context, made on first use; NULL without memory. */
static EVP_MD_CTX *thread_ctx(void)
{
    EVP_MD_CTX *ctx = sha256_ctx_keyed ? pthread_getspecific(sha256_ctx_key) : NULL;
    if (ctx == NULL && sha256_ctx_keyed && (ctx = EVP_MD_CTX_new()) != NULL &&
        pthread_setspecific(sha256_ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

int config_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    pthread_once(&sha256_once, sha256_fetch);
    const EVP_MD *md = sha256_md != NULL ? sha256_md : EVP_sha256();
    EVP_MD_CTX *ctx = thread_ctx();
    int ok = ctx != NULL ? EVP_DigestInit_ex2(ctx, md, NULL) == 1 &&
                               EVP_DigestUpdate(ctx, data, len) == 1 &&
                               EVP_DigestFinal_ex(ctx, out, &n) == 1
                         : EVP_Digest(data, len, out, &n, md, NULL) == 1;
    return ok && n == 32 ? 0 : -ENOMEM;
}

static int dup_or_null(char **dst, const char *src)
{
    if (src == NULL)
        return 0;
    return (*dst = strdup(src)) == NULL ? -ENOMEM : 0;
}

/* One provider, "default", and one model per ALLOWED_MODELS entry served by it
 * under its own name. */
static int routing_from_env(struct config *cfg)
{
    if ((cfg->providers = calloc(1, sizeof *cfg->providers)) == NULL)
        return -ENOMEM;
    cfg->n_providers = 1;
    struct provider_conf *p = &cfg->providers[0];
    if (dup_or_null(&p->name, "default") || dup_or_null(&p->base_url, cfg->base_url) ||
        dup_or_null(&p->chat_url, cfg->chat_url) || dup_or_null(&p->api_key, cfg->api_key))
        return -ENOMEM;
    size_t n = cfg->allowed_models.n;
    if ((cfg->models = calloc(n, sizeof *cfg->models)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++, cfg->n_models++) {
        struct model_conf *m = &cfg->models[i];
        const char *name = cfg->allowed_models.items[i];
        if ((m->targets = calloc(1, sizeof *m->targets)) == NULL)
            return -ENOMEM;
        m->n_targets = 1;
        if (dup_or_null(&m->name, name) || dup_or_null(&m->targets[0].model, name))
            return -ENOMEM;
        if (strcmp(name, cfg->model) == 0)
            cfg->default_model = i;
    }
    return 0;
}

/* CLIENT_API_KEYS entries become keys without a model list or limits. */
static int keys_from_env(struct config *cfg)
{
    const struct str_list *l = &cfg->client_keys;
    if (l->n == 0)
        return 0;
    struct key_conf *grown = realloc(cfg->keys, (cfg->n_keys + l->n) * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    cfg->keys = grown;
    for (size_t i = 0; i < l->n; i++) {
        struct key_conf *k = &cfg->keys[cfg->n_keys];
        memset(k, 0, sizeof *k);
        cfg->n_keys++;
        if (asprintf(&k->name, "CLIENT_API_KEYS[%zu]", i + 1) < 0) {
            k->name = NULL;
            return -ENOMEM;
        }
        if (config_sha256(l->items[i], strlen(l->items[i]), k->sha256) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* A key both in CLIENT_API_KEYS and in the file would have two names and two sets
 * of limits; refuse it rather than pick one silently. */
static int check_key_twice(struct config_ctx *c, size_t n_file)
{
    const struct config *cfg = c->cfg;
    for (size_t e = n_file; e < cfg->n_keys; e++)
        for (size_t f = 0; f < n_file; f++)
            if (memcmp(cfg->keys[e].sha256, cfg->keys[f].sha256, 32) == 0)
                return config_bad(c,
                                  "CLIENT_API_KEYS entry %zu is also keys[%zu] (\"%s\") of "
                                  "CHATD_CONFIG. One key can have only one name, model list and "
                                  "limits. Remove it from CLIENT_API_KEYS. " CONFIG_FIX_HINT,
                                  e - n_file + 1, f, cfg->keys[f].name);
    return 0;
}

int config_routing_load(struct config_ctx *c)
{
    int rc;
    if (c->cfg->config_path != NULL)
        rc = config_file_load(c);
    else
        rc = routing_from_env(c->cfg);
    size_t n_file = c->cfg->n_keys;
    if (rc == 0)
        rc = keys_from_env(c->cfg);
    if (rc == 0 && c->cfg->n_keys > 0) /* now, not on the first request (≈ 3M instructions) */
        pthread_once(&sha256_once, sha256_fetch);
    return rc != 0 ? rc : check_key_twice(c, n_file);
}

void config_routing_free(struct config *cfg)
{
    for (size_t i = 0; cfg->providers != NULL && i < cfg->n_providers; i++) {
        struct provider_conf *p = &cfg->providers[i];
        free(p->name);
        free(p->base_url);
        free(p->chat_url);
        free(p->api_key);
        free(p->api_key_header);
        free(p->ca_file);
        config_list_free(&p->headers);
    }
    for (size_t i = 0; cfg->models != NULL && i < cfg->n_models; i++) {
        for (size_t t = 0; t < cfg->models[i].n_targets; t++)
            free(cfg->models[i].targets[t].model);
        free(cfg->models[i].targets);
        free(cfg->models[i].name);
    }
    for (size_t i = 0; cfg->keys != NULL && i < cfg->n_keys; i++) {
        free(cfg->keys[i].name);
        config_list_free(&cfg->keys[i].models);
    }
    free(cfg->providers);
    free(cfg->models);
    free(cfg->keys);
    cfg->providers = NULL;
    cfg->models = NULL;
    cfg->keys = NULL;
    cfg->n_providers = cfg->n_models = cfg->n_keys = cfg->default_model = 0;
}

/* ---- questions asked while serving ---------------------------------------------------- */

const struct model_conf *config_find_model(const struct config *cfg, const char *name)
{
    if (name == NULL)
        return cfg->n_models > 0 ? &cfg->models[cfg->default_model] : NULL;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    return NULL;
}

const struct key_conf *config_find_key(const struct config *cfg, const unsigned char h[32])
{
    const struct key_conf *found = NULL;
    for (size_t i = 0; i < cfg->n_keys; i++) /* every key, so timing tells nothing */
        if (CRYPTO_memcmp(h, cfg->keys[i].sha256, sizeof cfg->keys[i].sha256) == 0 && found == NULL)
            found = &cfg->keys[i];
    return found;
}

bool config_key_allows(const struct key_conf *k, const char *model)
{
    if (k == NULL || k->models.n == 0)
        return true;
    for (size_t i = 0; i < k->models.n; i++)
        if (strcmp(k->models.items[i], model) == 0)
            return true;
    return false;
}

bool config_auth_enabled(const struct config *cfg)
{
    return cfg->n_keys > 0;
}
