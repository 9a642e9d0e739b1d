/* jsonw: see jsonw.h. */
#include "core/jsonw.h"

#include <stdbool.h>

size_t jsonw_utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static char *put_u(char *p, const char *code)
{
    *p++ = '\\';
    *p++ = 'u';
    for (int i = 0; i < 4; i++)
        *p++ = code[i];
    return p;
}

size_t jsonw_escape(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    char *p = out;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *p++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = jsonw_utf8_seq_len(u + i, len - i);
            if (n == 0) {
                p = put_u(p, "fffd");
                i++;
                continue;
            }
            for (size_t k = 0; k < n; k++)
                *p++ = (char)u[i + k];
            i += n;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"': *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default: {
            char code[4] = { '0', '0', hex[c >> 4], hex[c & 0x0f] };
            p--; /* put_u writes its own backslash */
            p = put_u(p, code);
        }
        }
        i++;
    }
    return (size_t)(p - out);
}
