/* openai: see openai.h. */
#include "services/openai.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "core/jsonw.h"

int openai_request_body(struct buf *out, const char *model, const char *message,
                        size_t message_len, int max_tokens)
{
    int rc = 0;
    rc |= buf_append_str(out, "{\"model\":\"");
    rc |= buf_append_json(out, model, strlen(model));
    rc |= buf_append_str(out, "\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    rc |= buf_append_json(out, message, message_len);
    rc |= buf_append_str(out, "\"}],\"max_tokens\":");
    rc |= buf_append_int(out, max_tokens);
    rc |= buf_append_str(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    return rc ? -ENOMEM : 0;
}

static int parse_choice(json_t *choices, struct openai_chunk *out)
{
    if (!json_is_array(choices))
        return -EINVAL;
    if (json_array_size(choices) == 0)
        return 0; /* the usage chunk */
    json_t *c0 = json_array_get(choices, 0);
    if (!json_is_object(c0))
        return -EINVAL;
    json_t *delta = json_object_get(c0, "delta");
    if (delta != NULL && !json_is_null(delta)) {
        if (!json_is_object(delta))
            return -EINVAL;
        json_t *content = json_object_get(delta, "content");
        if (content != NULL && !json_is_null(content)) {
            if (!json_is_string(content))
                return -EINVAL;
            if (json_string_length(content) > 0) {
                out->content = json_string_value(content);
                out->content_len = json_string_length(content);
            }
        }
    }
    json_t *fr = json_object_get(c0, "finish_reason");
    if (fr != NULL && !json_is_null(fr)) {
        if (!json_is_string(fr))
            return -EINVAL;
        out->finish_reason = json_string_value(fr);
    }
    return 0;
}

static void parse_usage(json_t *usage, struct openai_chunk *out)
{
    json_t *p = json_object_get(usage, "prompt_tokens");
    json_t *c = json_object_get(usage, "completion_tokens");
    json_t *t = json_object_get(usage, "total_tokens");
    if (!json_is_integer(p) || !json_is_integer(c))
        return; /* not usage chatd can report */
    out->has_usage = true;
    out->prompt_tokens = json_integer_value(p);
    out->completion_tokens = json_integer_value(c);
    out->total_tokens = json_is_integer(t) ? json_integer_value(t)
                                           : out->prompt_tokens + out->completion_tokens;
}

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

int openai_chunk_parse(const char *data, size_t len, struct openai_chunk *out)
{
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(data, len, 0, NULL);
    if (root == NULL)
        return -EINVAL;
    out->root = root;
    if (!json_is_object(root)) {
        openai_chunk_free(out);
        return -EINVAL;
    }
    json_t *err = json_object_get(root, "error");
    if (err != NULL && !json_is_null(err)) {
        out->is_error = true;
        out->error_message = error_text(root);
        return 0;
    }
    json_t *choices = json_object_get(root, "choices");
    if (choices != NULL && !json_is_null(choices) && parse_choice(choices, out) != 0) {
        openai_chunk_free(out);
        return -EINVAL;
    }
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage))
        parse_usage(usage, out);
    return 0;
}

void openai_chunk_free(struct openai_chunk *c)
{
    if (c->root != NULL)
        json_decref(c->root);
    memset(c, 0, sizeof *c);
}

/* ---- error bodies ------------------------------------------------------------------- */

#define SUMMARY_MAX 400

/* Copies text into out as one line: control characters become spaces, runs of
 * spaces collapse, invalid UTF-8 is dropped, <tags> are skipped for HTML pages. */
static size_t clean(const char *s, size_t len, char *out, size_t cap)
{
    bool html = len > 0 && s[0] == '<', in_tag = false, space = true;
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
        bool blank = c < 0x20 || c == 0x7f || c == ' ';
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

size_t openai_error_summary(const char *body, size_t len, const char *api_key,
                            const char *message, size_t message_len, char *out, size_t outlen)
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
    char cleaned[SUMMARY_MAX], safe[SUMMARY_MAX];
    size_t n = clean(text ? text : "", tlen, cleaned, sizeof cleaned);
    n = redact(cleaned, n, api_key, safe, sizeof safe);
    if (root != NULL)
        json_decref(root);
    if (n == 0 || quotes_message(safe, n, message, message_len))
        return 0;
    if (n >= outlen) { /* cut on a character boundary */
        n = outlen - 1;
        while (n > 0 && ((unsigned char)safe[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, safe, n);
    out[n] = '\0';
    return n;
}
