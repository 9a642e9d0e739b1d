/* stream_event: see stream_event.h. */
#include "models/stream_event.h"

#include <errno.h>
#include <string.h>

#include "core/buf.h"

static int head(struct buf *out, const char *content_json, size_t len, uint64_t sequence,
                const char *cid, bool final)
{
    int rc = 0;
    rc |= buf_append(out, "data: {\"content\":\"", 18);
    rc |= buf_append(out, content_json, len);
    rc |= buf_append(out, "\",\"sequence\":", 13);
    rc |= buf_append_int(out, (long long)sequence);
    rc |= buf_append_str(out, final ? ",\"is_final\":true" : ",\"is_final\":false");
    rc |= buf_append(out, ",\"correlation_id\":\"", 19);
    rc |= buf_append(out, cid, strlen(cid)); /* a checked UUID: nothing to escape */
    rc |= buf_append(out, "\"", 1);
    return rc;
}

int stream_event_content(struct buf *out, const char *content_json, size_t len, uint64_t sequence,
                         const char *cid)
{
    int rc = head(out, content_json, len, sequence, cid, false);
    rc |= buf_append(out, "}\n\n", 3);
    return rc ? -ENOMEM : 0;
}

static int put_usage(struct buf *out, const char *key, bool has, long long v)
{
    int rc = buf_append_str(out, key);
    return rc | (has ? buf_append_int(out, v) : buf_append(out, "null", 4));
}

int stream_event_final(struct buf *out, uint64_t sequence, const char *cid,
                       const struct stream_final *f)
{
    int rc = head(out, "", 0, sequence, cid, true);
    rc |= buf_append_str(out, ",\"status\":\"");
    rc |= buf_append_str(out, f->status);
    rc |= buf_append(out, "\"", 1);
    if (strcmp(f->status, "completed") == 0) {
        rc |= buf_append_str(out, ",\"finish_reason\":");
        if (f->finish_reason != NULL) {
            rc |= buf_append(out, "\"", 1);
            rc |= buf_append_json(out, f->finish_reason, strlen(f->finish_reason));
            rc |= buf_append(out, "\"", 1);
        } else {
            rc |= buf_append(out, "null", 4);
        }
    } else {
        rc |= buf_append_str(out, ",\"error\":{\"error\":\"");
        rc |= buf_append_str(out, error_code_name(f->error));
        rc |= buf_append_str(out, "\",\"detail\":\"");
        rc |= buf_append_json(out, f->detail, strlen(f->detail));
        rc |= buf_append(out, "\"}", 2);
    }
    rc |= buf_append_str(out, ",\"duration_ms\":");
    rc |= buf_append_int(out, f->duration_ms);
    if (f->provider != NULL) {
        rc |= buf_append_str(out, ",\"provider\":\"");
        rc |= buf_append_json(out, f->provider, strlen(f->provider));
        rc |= buf_append_str(out, "\",\"model\":\"");
        rc |= buf_append_json(out, f->model, strlen(f->model));
        rc |= buf_append(out, "\"", 1);
    }
    if (strcmp(f->status, "completed") == 0) {
        rc |= put_usage(out, ",\"prompt_tokens\":", f->has_usage, f->prompt_tokens);
        rc |= put_usage(out, ",\"completion_tokens\":", f->has_usage, f->completion_tokens);
        rc |= put_usage(out, ",\"total_tokens\":", f->has_usage, f->total_tokens);
    }
    rc |= buf_append(out, "}\n\n", 3);
    return rc ? -ENOMEM : 0;
}

int stream_event_comment(struct buf *out, const char *text)
{
    int rc = buf_append(out, ": ", 2);
    rc |= buf_append_str(out, text);
    rc |= buf_append(out, "\n\n", 2);
    return rc ? -ENOMEM : 0;
}
