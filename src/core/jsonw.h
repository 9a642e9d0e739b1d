/* jsonw: writing JSON text by hand where jansson would allocate (log lines, SSE
 * events on the hot path). Only escaping lives here; callers add the quotes. */
#ifndef CHATD_JSONW_H
#define CHATD_JSONW_H

#include <stddef.h>

/* The most bytes jsonw_escape can write for len input bytes. */
#define JSONW_ESCAPE_BOUND(len) ((len)*6)

/* Escapes s[0..len) as the inside of a JSON string into out, which must hold
 * JSONW_ESCAPE_BOUND(len) bytes. Quotes, backslashes and control characters are
 * escaped; each byte that is not part of valid UTF-8 (overlong forms, surrogates,
 * code points past U+10FFFF, truncated sequences) becomes \ufffd, so the result
 * is always valid JSON. Returns the number of bytes written (no NUL added). */
size_t jsonw_escape(char *out, const char *s, size_t len);

/* Length of the valid UTF-8 sequence starting at s[0] (1..4), or 0 when s[0..len)
 * does not start with one. */
size_t jsonw_utf8_seq_len(const unsigned char *s, size_t len);

#endif
