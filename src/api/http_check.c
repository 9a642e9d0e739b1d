/* http_check: RFC 9112's rules on a request whose header section is whole —
 * version, request-target form, Host, message framing and Expect — and the
 * status each broken rule gets. Part of the http module (http.h); called from
 * http_parse.c's on_headers_complete. The README's "HTTP conformance" table
 * lists every rule with its section. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "api/http_internal.h"

/* Trims optional whitespace (SP, HTAB) at both ends of v[0..*len). */
static const char *trim_ows(const char *v, size_t *len)
{
    while (*len > 0 && (v[0] == ' ' || v[0] == '\t'))
        v++, (*len)--;
    while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
        (*len)--;
    return v;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_hex(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static bool is_tchar(char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && memchr(extra, ch, sizeof extra - 1) != NULL);
}

/* unreserved / sub-delims of RFC 3986: what a reg-name holds besides %HH. */
static bool is_regname_char(char ch)
{
    static const char extra[] = "-._~!$&'()*+,;=";
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && memchr(extra, ch, sizeof extra - 1) != NULL);
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2); uri-host is an IP-literal in
 * brackets, or a reg-name (which covers IPv4 addresses). Empty is allowed. */
static bool host_valid(const char *v, size_t len)
{
    v = trim_ows(v, &len);
    size_t i = 0;
    if (len > 0 && v[0] == '[') {
        for (i = 1; i < len && v[i] != ']'; i++)
            if (!is_hex(v[i]) && v[i] != ':' && v[i] != '.' && !is_regname_char(v[i]))
                return false;
        if (i == len || i == 1)
            return false;
        i++; /* past ']' */
    } else {
        for (; i < len && v[i] != ':'; i++) {
            if (v[i] == '%') {
                if (i + 2 >= len || !is_hex(v[i + 1]) || !is_hex(v[i + 2]))
                    return false;
                i += 2;
            } else if (!is_regname_char(v[i])) {
                return false;
            }
        }
    }
    if (i == len)
        return true;
    if (v[i] != ':')
        return false;
    for (i++; i < len; i++)
        if (!is_digit(v[i]))
            return false;
    return true;
}

/* Content-Length = 1*DIGIT, one field line (RFC 9112 §6.3 item 5). */
static bool length_valid(const struct http_hval *cl)
{
    if (cl->invalid)
        return false;
    size_t len = cl->len;
    const char *v = trim_ows(cl->v, &len);
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(v[i]))
            return false;
    return true;
}

/* Transfer-Encoding (RFC 9112 §6.1, §6.3 item 4): a list of codings whose last
 * is chunked, once and without parameters. Returns 0, 400 when the body's end
 * cannot be known (or the value is not a list of codings), or 501 for another
 * coding before chunked (chatd decodes none). */
static int te_status(const struct http_hval *te)
{
    if (te->invalid)
        return 400;
    int n = 0, chunked = 0, others = 0;
    bool last_chunked = false;
    for (const char *p = te->v, *end = te->v + te->len; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = (size_t)((comma ? comma : end) - p);
        const char *e = trim_ows(p, &len);
        p = comma ? comma + 1 : end;
        if (len == 0)
            continue; /* an empty list element */
        size_t tok = 0;
        while (tok < len && is_tchar(e[tok]))
            tok++;
        if (tok == 0)
            return 400;
        bool params = tok < len;
        if (params && e[tok] != ';' && e[tok] != ' ' && e[tok] != '\t')
            return 400;
        n++;
        last_chunked = tok == 7 && strncasecmp(e, "chunked", 7) == 0;
        if (last_chunked && params)
            return 400; /* chunked has no parameters */
        chunked += last_chunked;
        others += !last_chunked;
    }
    if (n == 0 || !last_chunked || chunked > 1)
        return 400;
    return others > 0 ? 501 : 0;
}

/* Cuts the request-target down to its path, from origin-form or absolute-form
 * (RFC 9112 §3.2); "*" and CONNECT's authority are left whole. Returns 0 or 400. */
static int target_path(struct http_request *r)
{
    if (r->method == HTTP_CONNECT)
        return 0; /* the parser took only authority-form */
    if (memchr(r->path, '#', r->path_len) != NULL)
        return 400; /* no fragment in a request-target */
    if (strcmp(r->path, "*") == 0)
        return r->method == HTTP_OPTIONS ? 0 : 400;
    if (r->path[0] != '/') {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(r->path, r->path_len, 0, &u) != 0 ||
            !(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)) ||
            (u.field_set & (1 << UF_USERINFO)))
            return 400; /* RFC 9110 §4.2.4: userinfo in an http URI is an error */
        size_t slen = u.field_data[UF_SCHEMA].len;
        const char *scheme = r->path + u.field_data[UF_SCHEMA].off;
        if (!((slen == 4 && strncasecmp(scheme, "http", 4) == 0) ||
              (slen == 5 && strncasecmp(scheme, "https", 5) == 0)))
            return 400;
        size_t off = u.field_data[UF_PATH].off, len = u.field_data[UF_PATH].len;
        if (!(u.field_set & (1 << UF_PATH)))
            r->path[0] = '/', off = 0, len = 1; /* "http://host" means "/" */
        memmove(r->path, r->path + off, len);
        r->path[len] = '\0';
        r->path_len = len;
        return 0;
    }
    char *q = memchr(r->path, '?', r->path_len);
    if (q != NULL) {
        *q = '\0';
        r->path_len = (size_t)(q - r->path);
    }
    return 0;
}

/* Expect (RFC 9110 §10.1.1): only 100-continue is known; HTTP/1.0 ignores it. */
static bool expect_continue(const struct http_request *r, int *status)
{
    if (!r->expect.present || r->http_minor == 0)
        return false;
    size_t len = r->expect.len;
    const char *v = trim_ows(r->expect.v, &len);
    if (r->expect.invalid || len != 12 || strncasecmp(v, "100-continue", 12) != 0) {
        *status = 417;
        return false;
    }
    return true;
}

int http_check_head(struct http_conn *c, http_parser *p, bool *send_continue)
{
    struct http_request *r = c->req;
    *send_continue = false;
    if (p->http_major != 1)
        return 505;
    if (p->http_minor == 0 && c->te.present)
        return 400; /* RFC 9112 §6.1: an HTTP/1.0 message's framing is faulty with it */
    if (r->host.present ? r->host.invalid || !host_valid(r->host.v, r->host.len)
                        : r->http_minor == 1)
        return 400;
    int status = target_path(r);
    if (status != 0)
        return status;
    if (c->te.present && c->cl.present)
        return 400;
    if (c->cl.present && !length_valid(&c->cl))
        return 400;
    if (c->te.present && (status = te_status(&c->te)) != 0)
        return status;
    if (c->te.present != ((p->flags & F_CHUNKED) != 0))
        return 400; /* http-parser read the framing differently */
    if (r->method == HTTP_CONNECT)
        return 501; /* chatd is not a proxy */
    status = 0;
    *send_continue = expect_continue(r, &status) && r->has_body;
    if (status != 0)
        return status;
    if (r->content_length > c->srv->max_body)
        return 413;
    http_lex_body(&c->lex, c->te.present ? HTTP_BODY_CHUNKED
                           : r->has_body ? HTTP_BODY_LENGTH
                                         : HTTP_BODY_NONE);
    return 0;
}
