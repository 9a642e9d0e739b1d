/* error: the one catalogue of every error chatd reports. Each code has its HTTP
 * status (0 when it only ever ends a stream as a final event) and a three-part
 * text: what happened, why, and what to do. Every error answer, final event and
 * error_occurred log line is built from here. */
#ifndef CHATD_ERROR_H
#define CHATD_ERROR_H

#include <stddef.h>

#include "core/log.h"

enum error_code {
    /* answered before a stream starts, as a JSON body */
    ERR_VALIDATION,
    ERR_BAD_REQUEST, /* not HTTP/1.1 we can parse */
    ERR_UNAUTHORIZED,
    ERR_NOT_FOUND,
    ERR_METHOD_NOT_ALLOWED,
    ERR_REQUEST_TIMEOUT, /* 408: the client was too slow to send its request */
    ERR_PAYLOAD_TOO_LARGE,
    ERR_URI_TOO_LONG,
    ERR_UNSUPPORTED_MEDIA_TYPE,
    ERR_HEADERS_TOO_LARGE,
    ERR_EXPECTATION_FAILED,  /* 417: an Expect other than 100-continue */
    ERR_NOT_IMPLEMENTED,     /* 501: a transfer coding chatd does not decode, CONNECT */
    ERR_VERSION_UNSUPPORTED, /* 505: not HTTP/1.x */
    ERR_OVERLOADED,
    ERR_SHUTTING_DOWN,
    ERR_TIMEOUT,            /* 504: no first token in TIMEOUT_SECONDS */
    ERR_FORBIDDEN,          /* 403: the client key may not use this model */
    ERR_MODEL_NOT_FOUND,    /* 404 on /v1: a model chatd does not route */
    ERR_RATE_LIMITED,       /* 429: the client key is over a limit */
    ERR_LIMITS_UNAVAILABLE, /* 503: Redis cannot be reached and RATE_LIMIT_FAIL_OPEN=false */
    ERR_INTERNAL,
    /* reported in a stream's final event */
    ERR_UPSTREAM_UNREACHABLE,
    ERR_UPSTREAM_TLS, /* code upstream_unreachable, with a TLS explanation */
    ERR_UPSTREAM_AUTH_FAILED,
    ERR_UPSTREAM_RATE_LIMITED,
    ERR_UPSTREAM_BAD_REQUEST,
    ERR_UPSTREAM_NOT_FOUND, /* code upstream_bad_request, explaining a 404 */
    ERR_UPSTREAM_ERROR,
    ERR_UPSTREAM_PROTOCOL_ERROR,
    ERR_UPSTREAM_INTERRUPTED,
    ERR_UPSTREAM_TIMEOUT,
    ERR_STREAM_SHUTTING_DOWN, /* code shutting_down, ending a stream on drain */
    ERR_COUNT
};

/* The stable machine code, e.g. "validation_error". */
const char *error_code_name(enum error_code code);

/* The HTTP status, or 0 for codes only used in final events. */
int error_status(enum error_code code);

/* The level error_occurred is logged at for this code. */
enum log_level error_log_level(enum error_code code);

/* The catalogue's "what to do" sentence, for error_occurred's recovery_action. */
const char *error_recovery(enum error_code code);

/* Writes "<what>. <why>. <what to do>." into out (always NUL-terminated). Any of
 * what/why/todo may be NULL for the catalogue's own sentence; given ones must not
 * end with a period. Returns the length written. */
size_t error_detail(char *out, size_t outlen, enum error_code code, const char *what,
                    const char *why, const char *todo);

/* Writes the JSON body {"error":…,"detail":…,"correlation_id":…} into out.
 * Returns its length, or 0 when out is too small. */
size_t error_json_body(char *out, size_t outlen, enum error_code code, const char *detail,
                       const char *cid);

/* OpenAI's error "type" for a code answered with this HTTP status. */
const char *error_openai_type(enum error_code code, int status);

/* Writes OpenAI's error body {"error":{"message":…,"type":…,"param":…,"code":…}}
 * into out; param NULL writes null. Returns its length, or 0 when out is too small. */
size_t error_openai_body(char *out, size_t outlen, enum error_code code, int status,
                         const char *detail, const char *param);

#endif
