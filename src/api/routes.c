/* routes: see routes.h. */
#include "api/routes.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/chat.h"
#include "api/middleware.h"
#include "api/openai_api.h"
#include "api/ui.h"
#include "api/worker.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"

struct route {
    const char *path;
    enum metric_route id;
    const char *allow;
};

static const struct route routes[] = {
    { "/chat", ROUTE_CHAT, "POST, OPTIONS" },
    { "/health", ROUTE_HEALTH, "GET, HEAD" },
    { "/metrics", ROUTE_METRICS, "GET, HEAD" },
    { "/v1/chat/completions", ROUTE_V1_CHAT, "POST, OPTIONS" },
    { "/v1/models", ROUTE_V1_MODELS, "GET, HEAD, OPTIONS" },
    { "/ready", ROUTE_READY, "GET, HEAD" },
    { "*", ROUTE_OTHER, "GET, HEAD, POST, OPTIONS" }, /* OPTIONS *: the server as a whole */
};

/* Routes that start a stream: POST with a JSON body. */
static bool is_stream_route(enum metric_route id)
{
    return id == ROUTE_CHAT || id == ROUTE_V1_CHAT;
}

/* Routes open without a client key. */
static bool is_open_route(enum metric_route id)
{
    return id == ROUTE_HEALTH || id == ROUTE_READY ||
           id == ROUTE_UI; /* the page asks for the key */
}

/* Every file of the web page (ui_find) when UI_ENABLED. */
static const struct route ui_route = { "/", ROUTE_UI, "GET, HEAD" };

static const struct route *find_route(const struct http_request *req)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (req->path != NULL && strcmp(req->path, routes[i].path) == 0)
            return &routes[i];
    return NULL;
}

static bool method_allowed(const struct route *r, int method)
{
    switch (r->id) {
    case ROUTE_CHAT:
    case ROUTE_V1_CHAT: return method == HTTP_POST || method == HTTP_OPTIONS;
    case ROUTE_V1_MODELS:
        return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS;
    case ROUTE_OTHER: return method == HTTP_OPTIONS;
    default: return method == HTTP_GET || method == HTTP_HEAD;
    }
}

/* "application/json", any case, optionally followed by parameters. */
static bool is_json(const struct http_hval *ct)
{
    if (!ct->present || ct->invalid)
        return false;
    const char *v = ct->v;
    while (*v == ' ')
        v++;
    size_t n = strlen("application/json");
    return strncasecmp(v, "application/json", n) == 0 &&
           (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

/* The first rule the request breaks before its body is looked at, or -1. The
 * order is: route, method, client key, draining, media type. */
static int precheck(struct worker *w, struct http_request *req, const struct route **out,
                    const struct key_conf **key)
{
    const struct route *r = find_route(req);
    if (r == NULL && w->cfg->ui_enabled && ui_find(req->path) != NULL)
        r = &ui_route;
    *out = r;
    *key = NULL;
    if (r == NULL)
        return ERR_NOT_FOUND;
    if (!method_allowed(r, req->method))
        return ERR_METHOD_NOT_ALLOWED;
    if (req->method == HTTP_OPTIONS || is_open_route(r->id))
        return -1;
    if (!mw_authorized(w->cfg, req, key))
        return ERR_UNAUTHORIZED;
    if (!is_stream_route(r->id))
        return -1;
    if (w->draining)
        return ERR_SHUTTING_DOWN;
    if (!is_json(&req->content_type))
        return ERR_UNSUPPORTED_MEDIA_TYPE;
    return -1;
}

static void refuse(struct worker *w, struct http_conn *c, struct http_request *req,
                   const struct route *r, enum error_code code)
{
    struct http_header extra[2];
    size_t n = 0;
    if (code == ERR_METHOD_NOT_ALLOWED)
        extra[n++] = (struct http_header){ "Allow", r->allow };
    if (code == ERR_UNAUTHORIZED)
        extra[n++] = (struct http_header){ "WWW-Authenticate", "Bearer" };
    if (code == ERR_SHUTTING_DOWN || code == ERR_OVERLOADED)
        extra[n++] = (struct http_header){ "Retry-After", "1" };
    if (code == ERR_SHUTTING_DOWN)
        http_conn_close_after(c); /* this server takes no more requests */
    mw_respond_error(w, c, req, r ? r->id : ROUTE_OTHER, code, NULL, extra, n);
}

static enum http_verdict on_headers(struct http_conn *c, struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    const struct route *r;
    const struct key_conf *key;
    mw_begin(req);
    int code = precheck(w, req, &r, &key);
    if (code < 0 || !req->has_body)
        return HTTP_READ_BODY; /* without a body to skip, answer once it is complete */
    refuse(w, c, req, r, (enum error_code)code);
    return HTTP_ANSWERED;
}

static void health(struct worker *w, struct http_conn *c, struct http_request *req)
{
    char ts[CLOCK_ISO8601_LEN + 1], body[128];
    clock_now_iso8601(ts);
    if (w->draining) {
        refuse(w, c, req, &routes[1], ERR_SHUTTING_DOWN);
        return;
    }
    int n = snprintf(body, sizeof body, "{\"status\":\"healthy\",\"timestamp\":\"%s\"}", ts);
    mw_respond_ok(w, c, req, ROUTE_HEALTH, 200, "application/json", body, (size_t)n, NULL, 0);
}

static void ready(struct worker *w, struct http_conn *c, struct http_request *req)
{
    if (w->draining) {
        static const char body[] = "{\"status\":\"draining\"}";
        struct http_header h[1] = { { "Retry-After", "1" } };
        http_conn_close_after(c);
        mw_respond_ok(w, c, req, ROUTE_READY, 503, "application/json", body, sizeof body - 1, h, 1);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    mw_respond_ok(w, c, req, ROUTE_READY, 200, "application/json", body, sizeof body - 1, NULL, 0);
}

static void metrics(struct worker *w, struct http_conn *c, struct http_request *req)
{
    size_t len = 0;
    char *text = metrics_render(w->metrics, &len);
    if (text == NULL) {
        mw_respond_error(w, c, req, ROUTE_METRICS, ERR_INTERNAL, NULL, NULL, 0);
        return;
    }
    mw_respond_ok(w, c, req, ROUTE_METRICS, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                  len, NULL, 0);
    free(text);
}

static void preflight(struct worker *w, struct http_conn *c, struct http_request *req)
{
    struct http_header h[5];
    size_t n = 0;
    const struct route *r = find_route(req);
    h[n++] = (struct http_header){ "Allow", r->allow };
    if (mw_cors_origin(w->cfg, req) != NULL && req->acr_method.present) {
        h[n++] = (struct http_header){ "Access-Control-Allow-Methods", r->allow };
        h[n++] = (struct http_header){ "Access-Control-Allow-Headers",
                                       "Content-Type, Authorization, X-Correlation-Id" };
        h[n++] = (struct http_header){ "Access-Control-Max-Age", "600" };
    }
    mw_respond_ok(w, c, req, r->id, 204, "text/plain", "", 0, h, n);
}

static void on_request(struct http_conn *c, struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    const struct route *r;
    const struct key_conf *key;
    mw_begin(req);
    int code = precheck(w, req, &r, &key);
    if (code >= 0) {
        refuse(w, c, req, r, (enum error_code)code);
        return;
    }
    if (req->method == HTTP_OPTIONS)
        preflight(w, c, req);
    else if (r->id == ROUTE_HEALTH)
        health(w, c, req);
    else if (r->id == ROUTE_METRICS)
        metrics(w, c, req);
    else if (r->id == ROUTE_READY)
        ready(w, c, req);
    else if (r->id == ROUTE_V1_MODELS)
        v1_models(w, c, req, key);
    else if (r->id == ROUTE_V1_CHAT)
        v1_chat_start(w, c, req, key);
    else if (r->id == ROUTE_UI)
        ui_serve(w, c, req);
    else
        chat_start(w, c, req, key);
}

static void on_protocol_error(struct http_conn *c, struct http_request *req, int status, void *ctx)
{
    enum error_code code;
    switch (status) {
    case 408: code = ERR_REQUEST_TIMEOUT; break;
    case 413: code = ERR_PAYLOAD_TOO_LARGE; break;
    case 414: code = ERR_URI_TOO_LONG; break;
    case 417: code = ERR_EXPECTATION_FAILED; break;
    case 431: code = ERR_HEADERS_TOO_LARGE; break;
    case 500: code = ERR_INTERNAL; break;
    case 501: code = ERR_NOT_IMPLEMENTED; break;
    case 505: code = ERR_VERSION_UNSUPPORTED; break;
    default: code = ERR_BAD_REQUEST;
    }
    const struct route *r = find_route(req);
    mw_respond_error(ctx, c, req, r ? r->id : ROUTE_OTHER, code, NULL, NULL, 0);
}

const struct http_handlers routes_handlers = {
    .on_headers = on_headers,
    .on_request = on_request,
    .on_protocol_error = on_protocol_error,
};
