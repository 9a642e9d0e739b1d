/* routes: which path and method does what, and the checks made before a body
 * is read (404, 405, 401, 503, 415). The handlers plug into http.h. */
#ifndef CHATD_ROUTES_H
#define CHATD_ROUTES_H

#include "api/http.h"

/* The handlers for a worker's http_server; their ctx is the struct worker. */
extern const struct http_handlers routes_handlers;

#endif
