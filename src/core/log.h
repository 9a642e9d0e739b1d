/* log: structured JSON lines on stdout, one write(2) per line.
 *
 * Every line: {"timestamp":"…Z","level":"info","event":"…"[,"correlation_id":"…"][,fields…]}.
 * Redaction happens here, not at call sites: a field whose key names a secret
 * (api_key, authorization, password, secret, *_key, *_secret, *_token) is written
 * as "REDACTED", and any registered secret inside a string value is replaced by
 * REDACTED. Set up once before threads start; read-only afterwards. */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR };

enum log_type { LOGF_STR, LOGF_INT, LOGF_BOOL, LOGF_NULL, LOGF_NUM };

struct log_field {
    const char *key;
    enum log_type type;
    const char *s; /* LOGF_STR; NULL is written as null */
    long long i;   /* LOGF_INT, LOGF_BOOL */
    double d;      /* LOGF_NUM */
};

#define LOG_STR(k, v)  ((struct log_field){ .key = (k), .type = LOGF_STR, .s = (v) })
#define LOG_INT(k, v)  ((struct log_field){ .key = (k), .type = LOGF_INT, .i = (long long)(v) })
#define LOG_BOOL(k, v) ((struct log_field){ .key = (k), .type = LOGF_BOOL, .i = (v) ? 1 : 0 })
#define LOG_NULL(k)    ((struct log_field){ .key = (k), .type = LOGF_NULL })
#define LOG_NUM(k, v)  ((struct log_field){ .key = (k), .type = LOGF_NUM, .d = (double)(v) })

/* Logs one event when level is enabled; fields are evaluated only then, so a
 * disabled debug line costs one comparison. cid may be NULL. */
#define log_event(level, event, cid, ...)                                                         \
    do {                                                                                          \
        if (log_enabled(level)) {                                                                 \
            const struct log_field log_f_[] = { LOG_NULL(NULL), __VA_ARGS__ };                    \
            log_write((level), (event), (cid), log_f_ + 1, sizeof log_f_ / sizeof log_f_[0] - 1); \
        }                                                                                         \
    } while (0)

/* Sets the minimum level and the output fd (1 = stdout). Returns 0. */
int log_setup(enum log_level min_level, int fd);

/* Registers a secret to redact from every string value (copied; empty ignored).
 * Call before worker threads start. Returns 0 or -ENOMEM. */
int log_add_secret(const char *secret);

/* Frees the registered secrets and restores the defaults (info, stdout). */
void log_teardown(void);

/* True when a line of this level would be written. */
bool log_enabled(enum log_level level);

/* "debug", "info", "warning" or "error". */
const char *log_level_name(enum log_level level);

/* Parses a level name (case-insensitive; "warn" is accepted). Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

/* True when a field with this key is always written as "REDACTED". */
bool log_key_is_secret(const char *key);

/* Formats one line (with the trailing newline) into a malloc'd buffer the caller
 * frees; *len receives its length. NULL on allocation failure. */
char *log_format(enum log_level level, const char *event, const char *cid,
                 const struct log_field *fields, size_t n, size_t *len);

/* Formats and writes one line with a single write(2). Never fails loudly. */
void log_write(enum log_level level, const char *event, const char *cid,
               const struct log_field *fields, size_t n);

#endif
