/* openai: see openai.h. */
#include "services/openai.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jscan.h"
#include "core/jsonw.h"

static int put_message(struct buf *out, const char *role, const char *text, size_t len)
{
    int rc = buf_append_str(out, "{\"role\":\"");
    rc |= buf_append_str(out, role);
    rc |= buf_append_str(out, "\",\"content\":\"");
    rc |= buf_append_json(out, text, len);
    rc |= buf_append_str(out, "\"},");
    return rc;
}

int openai_request_body(struct buf *out, const char *model, const struct openai_conversation *conv,
                        int max_tokens)
{
    int rc = buf_append_str(out, "{\"model\":\"");
    rc |= buf_append_json(out, model, strlen(model));
    rc |= buf_append_str(out, "\",\"messages\":[");
    if (conv->system_prompt != NULL)
        rc |= put_message(out, "system", conv->system_prompt, strlen(conv->system_prompt));
    const json_t *h = conv->history;
    for (size_t i = 0; h != NULL && i < json_array_size(h); i++) {
        const json_t *t = json_array_get(h, i);
        const json_t *content = json_object_get(t, "content");
        rc |= put_message(out, json_string_value(json_object_get(t, "role")),
                          json_string_value(content), json_string_length(content));
    }
    rc |= put_message(out, "user", conv->message, conv->message_len);
    if (rc == 0)
        out->len--; /* the last comma */
    rc |= buf_append_str(out, "],\"max_tokens\":");
    rc |= buf_append_int(out, max_tokens);
    rc |= buf_append_str(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    return rc ? -ENOMEM : 0;
}

/* choices[0].delta: {"content": "…" | null, …} or null. */
static int scan_delta(struct jscan *s, struct openai_chunk *out)
{
    if (jscan_null(s))
        return 0;
    bool first = true;
    struct jstr key;
    int rc;
    while ((rc = jscan_member(s, &first, &key)) == 1) {
        if (!jstr_is(&key, "content")) {
            bool role = jstr_is(&key, "role");
            if (!role && jscan_peek(s) != 'n')
                out->substance = true; /* tool_calls, refusal, reasoning_content … */
            if (jscan_skip(s) != 0)
                return -1;
        } else if (!jscan_null(s)) {
            struct jstr v;
            if (jscan_string(s, &v) != 0)
                return -1;
            out->content_json = v.len ? v.p : NULL;
            out->content_json_len = v.len;
            out->substance |= v.len > 0;
        }
    }
    return rc;
}

static int scan_choice(struct jscan *s, struct openai_chunk *out)
{
    bool first = true;
    struct jstr key;
    int rc;
    while ((rc = jscan_member(s, &first, &key)) == 1) {
        struct jstr v;
        int step = 0;
        if (jstr_is(&key, "delta"))
            step = scan_delta(s, out);
        else if (!jstr_is(&key, "finish_reason"))
            step = jscan_skip(s);
        else if (!jscan_null(s) && (step = jscan_string(s, &v)) == 0) {
            jstr_decode(&v, out->finish_reason, sizeof out->finish_reason);
            out->substance = true;
        }
        if (step != 0)
            return -1;
    }
    return rc;
}

static int scan_choices(struct jscan *s, struct openai_chunk *out)
{
    if (jscan_null(s))
        return 0;
    bool first = true;
    int rc;
    for (int i = 0; (rc = jscan_element(s, &first)) == 1; i++) {
        out->n_choices = i + 1;
        if ((i == 0 ? scan_choice(s, out) : jscan_skip(s)) != 0)
            return -1;
    }
    return rc;
}

static int scan_usage(struct jscan *s, struct openai_chunk *out)
{
    if (jscan_peek(s) != '{')
        return jscan_skip(s); /* null or something else: no usage to report */
    bool first = true, p = false, c = false, t = false;
    struct jstr key;
    int rc;
    while ((rc = jscan_member(s, &first, &key)) == 1) {
        long long *dst = jstr_is(&key, "prompt_tokens")       ? &out->prompt_tokens
                         : jstr_is(&key, "completion_tokens") ? &out->completion_tokens
                         : jstr_is(&key, "total_tokens")      ? &out->total_tokens
                                                              : NULL;
        char c0 = jscan_peek(s);
        if (dst == NULL || !(c0 == '-' || (c0 >= '0' && c0 <= '9'))) {
            if (jscan_skip(s) != 0)
                return -1;
            continue;
        }
        int got = jscan_integer(s, dst);
        if (got < 0)
            return -1;
        bool *seen = dst == &out->prompt_tokens ? &p : dst == &out->completion_tokens ? &c : &t;
        *seen = got == 1; /* a fraction is not a token count chatd reports */
    }
    out->has_usage = rc == 0 && p && c;
    if (out->has_usage && !t)
        out->total_tokens = out->prompt_tokens + out->completion_tokens;
    return rc;
}

int openai_chunk_parse(const char *data, size_t len, struct openai_chunk *out)
{
    memset(out, 0, sizeof *out);
    struct jscan s;
    jscan_init(&s, data, len);
    bool first = true;
    struct jstr key;
    int rc;
    if (jscan_peek(&s) != '{')
        return -EINVAL;
    while ((rc = jscan_member(&s, &first, &key)) == 1) {
        int step = 0;
        if (jstr_is(&key, "choices"))
            step = scan_choices(&s, out);
        else if (jstr_is(&key, "usage"))
            step = scan_usage(&s, out);
        else if (!jstr_is(&key, "error"))
            step = jscan_skip(&s);
        else if (!jscan_null(&s)) {
            out->is_error = true;
            step = jscan_skip(&s);
        }
        if (step != 0) {
            rc = -1;
            break;
        }
    }
    if (rc != 0 || jscan_finish(&s) != 0) {
        memset(out, 0, sizeof *out);
        return -EINVAL;
    }
    return 0;
}

bool openai_chunk_usage_only(const struct openai_chunk *c)
{
    return c->n_choices == 0 && c->has_usage;
}

/* ---- error bodies ------------------------------------------------------------------- */

/* The message of {"error":{"message":…}}, {"error":"…"}, {"message":…} or
 * {"detail":…}, or NULL. */
static const char *error_text(json_t *root)
{
    json_t *e = json_object_get(root, "error");
    if (json_is_string(e))
        return json_string_value(e);
    if (json_is_object(e)) {
        json_t *m = json_object_get(e, "message");
        return json_is_string(m) ? json_string_value(m) : NULL;
    }
    json_t *m = json_object_get(root, "message");
    if (json_is_string(m))
        return json_string_value(m);
    json_t *d = json_object_get(root, "detail");
    return json_is_string(d) ? json_string_value(d) : NULL;
}

#define SUMMARY_INPUT_MAX (16 * 1024) /* of a provider error text, looked at */

/* Copies text into out as one line: control characters become spaces, runs of
 * spaces collapse, invalid UTF-8 is dropped, and with html_ok the <tags> of a
 * text that starts with '<' (an HTML error page) are skipped. */
static size_t clean(const char *s, size_t len, bool html_ok, char *out, size_t cap)
{
    bool html = html_ok && len > 0 && s[0] == '<', in_tag = false, space = true;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = jsonw_utf8_seq_len((const unsigned char *)s + i, len - i);
        if (n == 0) {
            i++;
            continue;
        }
        if (html && (c == '<' || in_tag)) {
            in_tag = c != '>';
            c = ' ';
        }
        /* C0 and C1 controls (U+0080..U+009F, such as NEL) and the Unicode line
         * and paragraph separators would break the one line; they become spaces. */
        unsigned char c2 = n > 1 ? (unsigned char)s[i + 1] : 0;
        bool blank =
            c < 0x20 || c == 0x7f || c == ' ' || (c == 0xc2 && c2 < 0xa0) ||
            (c == 0xe2 && c2 == 0x80 && n == 3 && ((unsigned char)s[i + 2] & 0xfe) == 0xa8);
        if (blank) {
            if (!space && o + 1 < cap)
                out[o++] = ' ';
            space = true;
            i += n;
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
        space = false;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return o;
}

static bool secret_like(const char *w, size_t n, const char *api_key)
{
    if (api_key != NULL && *api_key && memmem(w, n, api_key, strlen(api_key)) != NULL)
        return true;
    if (memmem(w, n, "://", 3) != NULL)
        return false; /* a URL, such as the provider's help page */
    static const char *const prefixes[] = { "sk-", "sk_", "rk-", "pk-", "key-", "Bearer" };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (n >= strlen(prefixes[i]) && strncmp(w, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    if (memmem(w, n, "***", 3) != NULL)
        return true;
    bool letter = false, digit = false;
    for (size_t i = 0; i < n; i++) {
        char c = w[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            letter = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '-' && c != '_')
            return false;
    }
    return n >= 32 && letter && digit; /* a long random token */
}

/* Replaces each secret-looking word of s by REDACTED, keeping its punctuation. */
static size_t redact(const char *s, size_t len, const char *api_key, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && s[j] != ' ')
            j++;
        size_t end = j; /* the word without trailing punctuation */
        while (end > i && strchr(".,;:!?)\"'", s[end - 1]) != NULL)
            end--;
        const char *key =
            api_key && *api_key ? memmem(s + i, j - i, api_key, strlen(api_key)) : NULL;
        if (key != NULL && (size_t)(key - s) + strlen(api_key) > end)
            end = (size_t)(key - s) + strlen(api_key); /* the key may end in punctuation */
        const char *word = s + i;
        size_t wlen = end - i;
        if (secret_like(word, wlen, api_key)) {
            word = "REDACTED";
            wlen = 8;
        }
        size_t tail = j - end + (j < len);
        if (o + wlen + tail >= cap)
            break;
        memcpy(out + o, word, wlen);
        o += wlen;
        memcpy(out + o, s + end, tail);
        o += tail;
        i = j + (j < len);
    }
    out[o] = '\0';
    return o;
}

/* True when s quotes the user's message: all of a short message, or any 16
 * bytes of a longer one. */
static bool quotes_message(const char *s, size_t len, const char *msg, size_t mlen)
{
    if (msg == NULL || mlen < 3)
        return false;
    if (mlen <= 16)
        return memmem(s, len, msg, mlen) != NULL;
    for (size_t i = 0; i + 16 <= len; i++)
        if (memmem(msg, mlen, s + i, 16) != NULL)
            return true;
    return false;
}

size_t openai_error_summary(const char *body, size_t len, const char *api_key, const char *message,
                            size_t message_len, char *out, size_t outlen)
{
    if (outlen == 0)
        return 0;
    out[0] = '\0';
    json_t *root = json_loadb(body, len, 0, NULL);
    const char *text = body;
    size_t tlen = len;
    if (root != NULL) {
        text = json_is_object(root) ? error_text(root) : NULL;
        tlen = text ? strlen(text) : 0;
    }
    if (tlen > SUMMARY_INPUT_MAX)
        tlen = SUMMARY_INPUT_MAX;
    /* Clean and redact the whole text before cutting it, so that no secret is
     * cut in two and half of it kept; compare with the message cleaned the same
     * way, so that line breaks or double spaces do not hide a quote. */
    char *cleaned = malloc(tlen + 1), *safe = malloc(tlen * 3 + 16);
    char *msg = malloc(message_len + 1);
    size_t n = 0;
    if (cleaned != NULL && safe != NULL && msg != NULL) {
        size_t c = clean(text ? text : "", tlen, true, cleaned, tlen + 1);
        size_t m = clean(message ? message : "", message_len, false, msg, message_len + 1);
        n = quotes_message(cleaned, c, msg, m) ? 0
                                               : redact(cleaned, c, api_key, safe, tlen * 3 + 16);
    }
    if (n >= outlen) { /* cut on a character boundary */
        n = outlen - 1;
        while (n > 0 && ((unsigned char)safe[n] & 0xc0) == 0x80)
            n--;
    }
    if (n > 0)
        memcpy(out, safe, n);
    out[n] = '\0';
    free(cleaned);
    free(safe);
    free(msg);
    if (root != NULL)
        json_decref(root);
    return n;
}
