/* ui: the web chat page (web/ compiled into the binary by
 * scripts/gen_web_assets.sh) served at GET / with its script and styles. */
#ifndef CHATD_UI_H
#define CHATD_UI_H

#include <stdbool.h>
#include <stddef.h>

struct http_conn;
struct http_request;
struct worker;

/* One file of web/, generated into build/gen/web_assets.c. */
struct ui_asset {
    const char *path;         /* URL path: "/" for index.html, else "/<file name>" */
    const char *content_type; /* e.g. "text/javascript; charset=utf-8" */
    const char *etag;         /* quoted strong validator: a hash of the content */
    const char *body;
    size_t len;
};

/* The generated table, ended by an entry whose path is NULL. */
extern const struct ui_asset ui_assets[];

/* The asset served at path, or NULL when there is none. */
const struct ui_asset *ui_find(const char *path);

/* Answers a GET or HEAD of a path ui_find knows: 200 with the file, or 304 when
 * If-None-Match names its ETag; with the page's security and cache headers. */
void ui_serve(struct worker *w, struct http_conn *c, struct http_request *req);

#endif
