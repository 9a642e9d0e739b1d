/* config_file: CHATD_CONFIG, the JSON file of providers, models and keys. */
#include "core/config_internal.h"

int config_file_load(struct config_ctx *c)
{
    return config_bad(c,
                      "CHATD_CONFIG=\"%.200s\" cannot be used yet. This build reads providers "
                      "only from OPENAI_BASE_URL. Unset CHATD_CONFIG and start chatd again.",
                      c->cfg->config_path);
}
