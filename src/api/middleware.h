/* middleware: what every request gets whatever its route: a correlation id,
 * request_received / response_complete / error_occurred lines, CORS headers,
 * client-key checks, and JSON answers built from the error catalogue. */
#ifndef CHATD_MIDDLEWARE_H
#define CHATD_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "core/metrics.h"
#include "models/error.h"

struct config;
struct key_conf;
struct worker;

#define MW_MAX_HEADERS 16

/* Sets req->cid (the client's X-Correlation-Id when it is a valid UUID, else a
 * fresh UUID4) and logs request_received; does nothing the second time. */
void mw_begin(struct http_request *req);

/* The value for Access-Control-Allow-Origin for this request's Origin, or NULL
 * when CORS is off or the origin is not listed. Points into the config or "*". */
const char *mw_cors_origin(const struct config *cfg, const struct http_request *req);

/* Appends X-Correlation-Id and the CORS headers to h (room for MW_MAX_HEADERS);
 * returns the new count. cid and cors_origin must outlive the response. */
size_t mw_common_headers(const struct config *cfg, const char *cid, const char *cors_origin,
                         struct http_header *h, size_t n);

/* True when client auth is off, or the request carries one of the configured
 * client keys as a Bearer token (hashed, compared in constant time); *key is
 * then that key (NULL when auth is off). */
bool mw_authorized(const struct config *cfg, struct http_request *req, const struct key_conf **key);

/* Logs response_complete for a request. */
void mw_log_complete(const char *cid, int status, enum outcome outcome, int64_t start_us,
                     int64_t token_count);

/* Logs error_occurred for a request. */
void mw_log_error(const char *cid, enum error_code code, const char *detail);

/* Answers with the catalogue's JSON error for code (detail NULL for the
 * catalogue's text), plus extra headers; logs and counts it. Under /v1 the body
 * takes OpenAI's shape. */
void mw_respond_error(struct worker *w, struct http_conn *c, struct http_request *req,
                      enum metric_route route, enum error_code code, const char *detail,
                      const struct http_header *extra, size_t n_extra);

/* True for paths under /v1, whose errors take OpenAI's shape. */
bool mw_openai_shaped(const struct http_request *req);

/* mw_respond_error with an explicit status and, for OpenAI's shape, the
 * request field the error is about (param, NULL for none). */
void mw_respond_error_as(struct worker *w, struct http_conn *c, struct http_request *req,
                         enum metric_route route, enum error_code code, int status,
                         const char *detail, const char *param, const struct http_header *extra,
                         size_t n_extra);

/* Answers 2xx with a body of the given type; logs and counts it. */
void mw_respond_ok(struct worker *w, struct http_conn *c, struct http_request *req,
                   enum metric_route route, int status, const char *content_type, const char *body,
                   size_t len, const struct http_header *extra, size_t n_extra);

#endif
