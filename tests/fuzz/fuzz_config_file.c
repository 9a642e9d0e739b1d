/* fuzz_config_file: what config_parse_routing_json promises of any text. It
 * either accepts the file, and then every index points inside its table and the
 * fields older code reads are filled, or refuses it with a message that starts
 * with a JSON path, names it in three sentences, and leaves no table behind.
 * Variables named by api_key_env are set when their name starts with "K". */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/config.h"
#include "fuzz.h"

static const char *lookup(const char *name, void *ctx)
{
    (void)ctx;
    return name[0] == 'K' ? "sk-fuzz-key" : NULL;
}

static void check_accepted(const struct config *cfg)
{
    CHECK(cfg->n_providers >= 1 && cfg->n_models >= 1);
    CHECK(cfg->default_model < cfg->n_models);
    CHECK(config_find_model(cfg, NULL) == &cfg->models[cfg->default_model]);
    for (size_t p = 0; p < cfg->n_providers; p++) {
        CHECK(cfg->providers[p].base_url[strlen(cfg->providers[p].base_url) - 1] != '/');
        CHECK(strstr(cfg->providers[p].chat_url, "/chat/completions") != NULL);
    }
    for (size_t m = 0; m < cfg->n_models; m++) {
        CHECK(cfg->models[m].n_targets >= 1);
        CHECK(config_find_model(cfg, cfg->models[m].name) == &cfg->models[m]);
        for (size_t t = 0; t < cfg->models[m].n_targets; t++)
            CHECK(cfg->models[m].targets[t].provider < cfg->n_providers);
    }
    for (size_t k = 0; k < cfg->n_keys; k++)
        for (size_t i = 0; i < cfg->keys[k].models.n; i++)
            CHECK(config_find_model(cfg, cfg->keys[k].models.items[i]) != NULL);
    CHECK(cfg->allowed_models.n == cfg->n_models);
    CHECK(strcmp(cfg->model, cfg->models[cfg->default_model].name) == 0);
    CHECK(strcmp(cfg->base_url, cfg->providers[0].base_url) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[1024] = "";
    int rc =
        config_parse_routing_json(&cfg, (const char *)data, size, lookup, NULL, err, sizeof err);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc == 0) {
        check_accepted(&cfg);
    } else if (rc == -EINVAL) {
        const char *colon = strstr(err, ": ");
        CHECK(colon != NULL && colon > err);
        CHECK(err[strlen(err) - 1] == '.' || strlen(err) == sizeof err - 1);
        CHECK(cfg.providers == NULL && cfg.models == NULL && cfg.keys == NULL);
        CHECK(cfg.n_providers == 0 && cfg.n_models == 0 && cfg.n_keys == 0);
    }
    config_free(&cfg);
    return 0;
}
