/* config_env: config_load_process — the real environment first, then `.env`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/dotenv.h"

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

static int read_dotenv(const char *path, struct env_map *map, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = dotenv_read_file(path, &text, &len);
    if (rc == 0) {
        struct dotenv_error e = { 0 };
        rc = dotenv_parse(text, len, map_add, map, &e);
        if (rc == -EINVAL)
            snprintf(err, errlen,
                     "%s line %d is not valid: %s. chatd reads KEY=VALUE lines from "
                     "it and will not start with a half-read configuration. Fix or remove that "
                     "line and start chatd again.",
                     path, e.line, e.msg);
        else if (rc != 0)
            snprintf(err, errlen, "Out of memory while reading %s.", path);
    } else if (rc == -ENOENT) {
        rc = 0; /* no .env: the environment alone */
    } else {
        snprintf(err, errlen,
                 "%s cannot be read: %s. chatd reads its settings from it when it "
                 "exists. Fix its permissions or remove it and start chatd again.",
                 path, strerror(-rc));
    }
    free(text);
    return rc;
}

int config_load_process(const char *dotenv_path, struct config **out, char *err, size_t errlen)
{
    struct env_map map = { 0 };
    struct config *cfg = calloc(1, sizeof *cfg);
    *out = NULL;
    if (cfg == NULL) {
        snprintf(err, errlen, "Out of memory while reading the configuration.");
        return -ENOMEM;
    }
    int rc = read_dotenv(dotenv_path, &map, err, errlen);
    if (rc == 0)
        rc = config_load(cfg, env_then_map, &map, err, errlen);
    map_free(&map);
    if (rc == 0 && (cfg->dotenv_path = strdup(dotenv_path)) == NULL) {
        snprintf(err, errlen, "Out of memory while reading the configuration.");
        config_free(cfg);
        rc = -ENOMEM;
    }
    if (rc != 0) {
        free(cfg);
        return rc;
    }
    atomic_store(&cfg->refs, 1);
    *out = cfg;
    return 0;
}
