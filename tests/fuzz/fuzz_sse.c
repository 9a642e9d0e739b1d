/* fuzz_sse: splitting a stream must never change the events it carries.
 *
 * Input: a flags byte (bits 0-2: number of cuts; bit 3: feed one byte at a
 * time; bit 4: a small limit, taken from the next byte), then one byte per cut
 * giving each piece's length (0 feeds an empty piece), then the stream. The
 * stream goes through one parser in pieces and through another whole; both must
 * report the same events (data, type, id) and, when the limit stops them, stop
 * with the same verdict after the same events. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "services/sse.h"

/* Every event as one self-delimiting record: type NUL, id NUL, data length, data. */
struct events {
    char *p;
    size_t len, cap, n;
};

static void append(struct events *e, const void *v, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2;
        e->p = realloc(e->p, e->cap);
        CHECK(e->p != NULL);
    }
    memcpy(e->p + e->len, v, n);
    e->len += n;
}

static int collect(void *ctx, const struct sse_event *ev)
{
    struct events *e = ctx;
    size_t tlen = strlen(ev->type), ilen = strlen(ev->id);
    CHECK(ev->data[ev->data_len] == '\0');
    CHECK(memchr(ev->data, '\r', ev->data_len) == NULL); /* \r always ends a line */
    CHECK(tlen < 64 && ilen < 128);
    CHECK(strpbrk(ev->type, "\r\n") == NULL && strpbrk(ev->id, "\r\n") == NULL);
    append(e, ev->type, tlen + 1);
    append(e, ev->id, ilen + 1);
    append(e, &ev->data_len, sizeof ev->data_len);
    append(e, ev->data, ev->data_len);
    e->n++;
    return 0;
}

static int parse(const char *s, size_t len, size_t max, const uint8_t *cuts, size_t ncuts,
                 bool bytewise, struct events *e)
{
    struct sse_parser p;
    sse_parser_init(&p, max);
    int rc = 0;
    for (size_t off = 0, k = 0; rc == 0 && off < len;) {
        size_t n = bytewise ? 1 : k < ncuts ? cuts[k++] : len - off;
        if (n > len - off)
            n = len - off;
        rc = sse_parser_feed(&p, s + off, n, collect, e);
        off += n;
    }
    if (rc == 0)
        rc = sse_parser_finish(&p, collect, e);
    CHECK(p.events == e->n);
    sse_parser_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned flags = data[0];
    size_t ncuts = flags & 7, at = 1, max = (size_t)1 << 20;
    if (flags & 0x10)
        max = 1 + (size_t)data[at++];
    if (size < at + ncuts)
        return 0;
    const char *s = (const char *)data + at + ncuts;
    size_t len = size - at - ncuts;

    struct events split = { 0 }, whole = { 0 };
    int rc_split = parse(s, len, max, data + at, ncuts, flags & 8, &split);
    int rc_whole = parse(s, len, max, NULL, 0, false, &whole);
    CHECK(rc_split == 0 || rc_split == -E2BIG);
    CHECK(rc_split == rc_whole); /* a limit gives one verdict however the bytes are split */
    if (len <= max)              /* no line and no event can be longer than the stream */
        CHECK(rc_whole == 0);
    CHECK(split.n == whole.n && split.len == whole.len &&
          (whole.len == 0 || memcmp(split.p, whole.p, whole.len) == 0));
    free(split.p);
    free(whole.p);
    return 0;
}
