/* The documentation of the configuration matches the table it comes from:
 * .env.example and the README's Configuration table list exactly the variables
 * of config_vars, in any order, each once, with the same default. Run from the
 * repository root (make unit does). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("%s cannot be read: run the unit tests from the repository root", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *copy = strdup(buf);
    assert_non_null(copy);
    return copy;
}

static const struct config_var *find_var(const char *name, size_t len)
{
    for (size_t i = 0; i < config_n_vars; i++)
        if (strlen(config_vars[i].name) == len && strncmp(config_vars[i].name, name, len) == 0)
            return &config_vars[i];
    return NULL;
}

/* What the docs must show as the default: the value, or the words for it. */
static const char *shown_default(const struct config_var *v)
{
    return v->def[0] ? v->def : v->def_doc;
}

static void test_env_example_lists_every_variable(void **state)
{
    (void)state;
    char *text = slurp(".env.example");
    size_t seen[64] = { 0 };
    assert_true(config_n_vars <= N_ELEMS(seen));
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL)
            fail_msg(".env.example: a line that is neither a comment nor NAME=value: %s", line);
        const struct config_var *v = find_var(line, (size_t)(eq - line));
        if (v == NULL)
            fail_msg(".env.example sets %.*s, which chatd does not read", (int)(eq - line), line);
        if (strcmp(eq + 1, v->def) != 0)
            fail_msg(".env.example: %s=%s, but its default is \"%s\"", v->name, eq + 1, v->def);
        seen[v - config_vars]++;
    }
    for (size_t i = 0; i < config_n_vars; i++)
        if (seen[i] != 1)
            fail_msg(".env.example lists %s %zu times (once expected)", config_vars[i].name,
                     seen[i]);
    free(text);
}

/* Copies s[0..n) without backticks and surrounding blanks. */
static void plain(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++)
        if (s[i] != '`')
            out[o++] = s[i];
    out[o] = '\0';
    while (o > 0 && out[o - 1] == ' ')
        out[--o] = '\0';
    size_t skip = strspn(out, " ");
    memmove(out, out + skip, strlen(out + skip) + 1);
}

static void test_readme_table_lists_every_variable(void **state)
{
    (void)state;
    char *text = slurp("README.md");
    char *section = strstr(text, "\n## Configuration\n");
    assert_non_null(section);
    char *end = strstr(section + 1, "\n## ");
    if (end != NULL)
        *end = '\0';
    size_t seen[64] = { 0 }, rows = 0;
    for (char *line = strtok(section, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *c1 = strchr(line + 1, '|'), *c2 = c1 ? strchr(c1 + 1, '|') : NULL;
        assert_non_null(c2);
        char name[64], def[160];
        plain(line + 1, (size_t)(c1 - line - 1), name, sizeof name);
        plain(c1 + 1, (size_t)(c2 - c1 - 1), def, sizeof def);
        const struct config_var *v = find_var(name, strlen(name));
        if (v == NULL)
            fail_msg("README's configuration table lists %s, which chatd does not read", name);
        if (strcmp(def, shown_default(v)) != 0)
            fail_msg("README: %s's default is \"%s\", but the table says \"%s\"", name, def,
                     shown_default(v));
        seen[v - config_vars]++;
        rows++;
    }
    for (size_t i = 0; i < config_n_vars; i++)
        if (seen[i] != 1)
            fail_msg("README's configuration table lists %s %zu times (once expected)",
                     config_vars[i].name, seen[i]);
    assert_int_equal(rows, config_n_vars);
    free(text);
}

/* The table itself: unique names, a default or words for it, a help line, and
 * every fixed default accepted by the loader (test_config checks the values). */
static void test_table_is_complete(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_n_vars; i++) {
        const struct config_var *v = &config_vars[i];
        assert_true(v->def[0] != '\0' || v->def_doc[0] != '\0');
        assert_true(strlen(v->help) > 10);
        assert_non_null(v->log_key);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(config_vars[j].name, v->name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_example_lists_every_variable),
        cmocka_unit_test(test_readme_table_lists_every_variable),
        cmocka_unit_test(test_table_is_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
