/* dotenv: the reader for `.env` files.
 *
 * Accepted, one assignment per line:  [export ]KEY=VALUE
 *   - blank lines and lines starting with '#' are skipped;
 *   - KEY is [A-Za-z_][A-Za-z0-9_]*, spaces around '=' are allowed;
 *   - VALUE is unquoted (trailing spaces trimmed, " #" starts a comment),
 *     'single-quoted' (literal) or "double-quoted" (\n \t \r \" \\ escapes);
 *   - after a closing quote only spaces and a "# comment" may follow.
 * Anything else is an error naming the line: a bad .env never half-applies. */
#ifndef CHATD_DOTENV_H
#define CHATD_DOTENV_H

#include <stddef.h>

/* Receives each assignment in file order; key and value are NUL-terminated and
 * valid only during the call. Returns 0 to go on, negative to stop the parse. */
typedef int (*dotenv_cb)(const char *key, const char *value, void *ctx);

struct dotenv_error {
    int line;      /* 1-based line of the error */
    char msg[160]; /* what is wrong with it */
};

/* Parses text[0..len). Returns 0, -EINVAL with *err filled for a malformed line,
 * -ENOMEM, or the callback's negative return. */
int dotenv_parse(const char *text, size_t len, dotenv_cb cb, void *ctx, struct dotenv_error *err);

/* Reads a whole file into a malloc'd, NUL-terminated buffer the caller frees.
 * Returns 0, -ENOENT when it does not exist, -EFBIG past 1 MiB, or -errno. */
int dotenv_read_file(const char *path, char **text, size_t *len);

#endif
