/* middleware: see middleware.h. */
#include "api/middleware.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/uuid.h"

#define LOG_PATH_MAX 256

void mw_begin(struct http_request *req)
{
    if (req->begun)
        return;
    req->begun = true;
    const struct http_hval *h = &req->correlation_id;
    if (h->present && !h->invalid && uuid_is_valid(h->v, h->len))
        memcpy(req->cid, h->v, UUID_STR_LEN + 1);
    else if (uuid4_generate(req->cid) != 0)
        snprintf(req->cid, sizeof req->cid, "00000000-0000-4000-8000-000000000000");
    if (!log_enabled(LOG_INFO))
        return;
    char path[LOG_PATH_MAX + 1];
    snprintf(path, sizeof path, "%s", req->path ? req->path : "");
    log_event(LOG_INFO, "request_received", req->cid,
              LOG_STR("method", req->method_name ? req->method_name : ""), LOG_STR("path", path));
}

const char *mw_cors_origin(const struct config *cfg, const struct http_request *req)
{
    if (!req->origin.present || req->origin.invalid)
        return NULL;
    return config_origin_allowed(cfg, req->origin.v);
}

size_t mw_common_headers(const struct config *cfg, const char *cid, const char *cors_origin,
                         struct http_header *h, size_t n)
{
    h[n++] = (struct http_header){ "X-Correlation-Id", cid };
    h[n++] = (struct http_header){ "X-Request-Id", cid }; /* what the OpenAI SDKs read */
    if (cors_origin != NULL) {
        h[n++] = (struct http_header){ "Access-Control-Allow-Origin", cors_origin };
        h[n++] = (struct http_header){ "Access-Control-Expose-Headers",
                                       "X-Correlation-Id, X-Request-Id" };
    }
    if (cfg->cors_origins.n > 0) /* the answer depends on Origin: caches must know */
        h[n++] = (struct http_header){ "Vary", "Origin" };
    return n;
}

bool mw_authorized(const struct config *cfg, struct http_request *req, const struct key_conf **key)
{
    *key = NULL;
    if (!config_auth_enabled(cfg))
        return true;
    const struct http_hval *h = &req->authorization;
    if (!h->present || h->invalid || h->len < 7 || strncasecmp(h->v, "Bearer ", 7) != 0)
        return false;
    const char *token = h->v + 7;
    while (*token == ' ')
        token++;
    /* Hashes the token (once per request) and compares it with every key in
     * constant time. */
    if (!req->token_hashed) {
        if (config_sha256(token, strlen(token), req->token_sha256) != 0)
            return false;
        req->token_hashed = true;
    }
    *key = config_find_key(cfg, req->token_sha256);
    return *key != NULL;
}

void mw_log_complete(const char *cid, int status, enum outcome outcome, int64_t start_us,
                     int64_t token_count)
{
    log_event(LOG_INFO, "response_complete", cid, LOG_INT("status", status),
              LOG_STR("outcome", metrics_outcome_name(outcome)),
              LOG_INT("duration_ms", (clock_mono_us() - start_us) / 1000),
              LOG_INT("token_count", token_count));
}

void mw_log_error(const char *cid, enum error_code code, const char *detail)
{
    log_event(error_log_level(code), "error_occurred", cid,
              LOG_STR("error_type", error_code_name(code)), LOG_STR("message", detail),
              LOG_STR("recovery_action", error_recovery(code)));
}

static void respond(struct worker *w, struct http_conn *c, struct http_request *req,
                    enum metric_route route, int status, const char *content_type, const char *body,
                    size_t len, const struct http_header *extra, size_t n_extra)
{
    struct http_header h[MW_MAX_HEADERS + 8];
    size_t n = 0;
    h[n++] = (struct http_header){ "Content-Type", content_type };
    h[n++] = (struct http_header){ "Cache-Control", "no-store" };
    n = mw_common_headers(w->cfg, req->cid, mw_cors_origin(w->cfg, req), h, n);
    for (size_t i = 0; i < n_extra && n < sizeof h / sizeof h[0]; i++)
        h[n++] = extra[i];
    http_respond(c, status, h, n, body, len);
    metrics_request(w->m, route, status);
    mw_log_complete(req->cid, status, status < 400 ? OUTCOME_COMPLETED : OUTCOME_ERROR,
                    req->start_us, 0);
}

bool mw_openai_shaped(const struct http_request *req)
{
    return req->path != NULL && strncmp(req->path, "/v1", 3) == 0 &&
           (req->path[3] == '/' || req->path[3] == '\0');
}

void mw_respond_error_as(struct worker *w, struct http_conn *c, struct http_request *req,
                         enum metric_route route, enum error_code code, int status,
                         const char *detail, const char *param, const struct http_header *extra,
                         size_t n_extra)
{
    char text[1024], body[8192];
    mw_begin(req);
    if (detail == NULL) {
        error_detail(text, sizeof text, code, NULL, NULL, NULL);
        detail = text;
    }
    mw_log_error(req->cid, code, detail);
    size_t len = mw_openai_shaped(req)
                     ? error_openai_body(body, sizeof body, code, status, detail, param)
                     : error_json_body(body, sizeof body, code, detail, req->cid);
    respond(w, c, req, route, status, "application/json", body, len, extra, n_extra);
}

void mw_respond_error(struct worker *w, struct http_conn *c, struct http_request *req,
                      enum metric_route route, enum error_code code, const char *detail,
                      const struct http_header *extra, size_t n_extra)
{
    mw_respond_error_as(w, c, req, route, code, error_status(code), detail, NULL, extra, n_extra);
}

void mw_respond_ok(struct worker *w, struct http_conn *c, struct http_request *req,
                   enum metric_route route, int status, const char *content_type, const char *body,
                   size_t len, const struct http_header *extra, size_t n_extra)
{
    respond(w, c, req, route, status, content_type, body, len, extra, n_extra);
}
