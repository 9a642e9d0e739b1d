/* ui: see ui.h. The files and their ETags are fixed at build time, so a
 * request is a table look-up and one write. */
#include "api/ui.h"

#include <string.h>

#include "api/http.h"
#include "api/middleware.h"
#include "api/worker.h"
#include "core/metrics.h"

/* Everything the page needs comes from chatd itself; no inline script or style,
 * no plugins, no framing by other sites. */
#define UI_CSP                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "    \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " \
    "frame-ancestors 'none'"

const struct ui_asset *ui_find(const char *path)
{
    if (path == NULL)
        return NULL;
    for (const struct ui_asset *a = ui_assets; a->path != NULL; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

/* If-None-Match is "*" or a comma-separated list of entity tags, each maybe
 * weak (W/"..."); a weak comparison is what RFC 9110 asks for here. */
static bool etag_matches(const struct http_hval *inm, const char *etag)
{
    if (!inm->present || inm->invalid)
        return false;
    size_t elen = strlen(etag);
    for (const char *p = inm->v; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, elen) == 0) {
            char next = p[elen];
            if (next == '\0' || next == ',' || next == ' ' || next == '\t')
                return true;
        }
        const char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        p = comma;
    }
    return false;
}

void ui_serve(struct worker *w, struct http_conn *c, struct http_request *req)
{
    const struct ui_asset *a = ui_find(req->path);
    bool fresh = etag_matches(&req->if_none_match, a->etag);
    int status = fresh ? 304 : 200;
    struct http_header h[MW_MAX_HEADERS + 8];
    size_t n = 0;
    h[n++] = (struct http_header){ "Content-Type", a->content_type };
    h[n++] = (struct http_header){ "ETag", a->etag };
    /* Revalidate on every load: a new chatd's page shows at once, and an
     * unchanged one costs a 304. */
    h[n++] = (struct http_header){ "Cache-Control", "no-cache" };
    h[n++] = (struct http_header){ "Content-Security-Policy", UI_CSP };
    h[n++] = (struct http_header){ "X-Content-Type-Options", "nosniff" };
    h[n++] = (struct http_header){ "Referrer-Policy", "no-referrer" };
    h[n++] = (struct http_header){ "X-Frame-Options", "DENY" };
    n = mw_common_headers(w->cfg, req->cid, mw_cors_origin(w->cfg, req), h, n);
    /* A 304 names the length a 200 would have and carries no body. */
    http_respond(c, status, h, n, a->body, a->len);
    metrics_request(w->m, ROUTE_UI, status);
    mw_log_complete(req->cid, status, OUTCOME_COMPLETED, req->start_us, 0);
}
