/* jscan: see jscan.h. */
#include "core/jscan.h"

#include <stdint.h>
#include <string.h>

#include "core/jsonw.h"
#include "core/swar.h"

void jscan_init(struct jscan *s, const char *text, size_t len)
{
    s->p = text;
    s->end = text + len;
    s->depth = 0;
}

static void skip_ws(struct jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

char jscan_peek(struct jscan *s)
{
    skip_ws(s);
    return s->p < s->end ? *s->p : 0;
}

int jscan_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = jscan_hex_digit((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Checks one escape starting after the backslash at p; returns its length. */
static int escape_len(const char *p, const char *end)
{
    if (p >= end)
        return -1;
    if (strchr("\"\\/bfnrt", *p) != NULL && *p != '\0')
        return 1;
    unsigned u, lo;
    if (*p != 'u' || end - p < 5 || hex4(p + 1, &u) != 0)
        return -1;
    if (u >= 0xdc00 && u <= 0xdfff)
        return -1; /* a low surrogate alone */
    if (u < 0xd800 || u > 0xdbff)
        return 5;
    if (end - p < 11 || p[5] != '\\' || p[6] != 'u' || hex4(p + 7, &lo) != 0 || lo < 0xdc00 ||
        lo > 0xdfff)
        return -1; /* a high surrogate must be followed by a low one */
    return 11;
}

/* ASCII bytes that stand for themselves inside a JSON string. */
static const bool plain[256] = {
    [' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,  ['\''] = 1, ['('] = 1,
    [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1,  ['/'] = 1,  ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1,  ['8'] = 1,
    ['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1,  ['?'] = 1,  ['@'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,  ['G'] = 1,  ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,  ['O'] = 1,  ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,  ['W'] = 1,  ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1,  ['`'] = 1,  ['a'] = 1,
    ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,  ['h'] = 1,  ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,  ['p'] = 1,  ['q'] = 1,
    ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1,  ['x'] = 1,  ['y'] = 1,
    ['z'] = 1, ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1, [0x7f] = 1,
};

/* Skips bytes that stand for themselves: eight at a time while a whole word
 * holds no quote, backslash, control character or non-ASCII byte (swar.h), then
 * one at a time near the end. */
static const char *plain_run(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t x = swar_load(p);
        uint64_t bad =
            swar_high(x) | swar_below(x, 0x20) | swar_equal(x, '"') | swar_equal(x, '\\');
        if (bad != 0)
            return p + swar_first(bad);
        p += 8;
    }
    while (p < end && plain[(unsigned char)*p])
        p++;
    return p;
}

int jscan_string(struct jscan *s, struct jstr *out)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return -1;
    const char *p = s->p + 1;
    out->p = p;
    out->escaped = false;
    while (p < s->end) {
        p = plain_run(p, s->end); /* the common case, fast */
        if (p == s->end)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            out->len = (size_t)(p - out->p);
            s->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            int n = escape_len(p + 1, s->end);
            if (n < 0)
                return -1;
            out->escaped = true;
            p += 1 + n;
        } else if (c < 0x80) {
            p++;
        } else {
            size_t n = jsonw_utf8_seq_len((const unsigned char *)p, (size_t)(s->end - p));
            if (n == 0)
                return -1;
            p += n;
        }
    }
    return -1;
}

static const char *digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

int jscan_integer(struct jscan *s, long long *out)
{
    skip_ws(s);
    const char *p = s->p, *end = s->end;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    const char *int_start = p;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    p = *p == '0' ? p + 1 : digits(p, end);
    const char *int_end = p;
    bool integral = true;
    if (p < end && *p == '.') {
        const char *f = digits(p + 1, end);
        if (f == p + 1)
            return -1;
        p = f;
        integral = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *e = digits(p, end);
        if (e == p)
            return -1;
        p = e;
        integral = false;
    }
    s->p = p;
    if (!integral || int_end - int_start > 18)
        return 0; /* valid, but not an integer chatd reads */
    long long v = 0;
    for (const char *d = int_start; d < int_end; d++)
        v = v * 10 + (*d - '0');
    *out = neg ? -v : v;
    return 1;
}

bool jscan_literal(struct jscan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

bool jscan_null(struct jscan *s)
{
    skip_ws(s);
    return jscan_literal(s, "null");
}

/* Enters or leaves a container, bounding the nesting. */
static int open_container(struct jscan *s, char c)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c || s->depth >= JSCAN_MAX_DEPTH)
        return -1;
    s->p++;
    s->depth++;
    return 0;
}

static int list_step(struct jscan *s, bool *first, char close)
{
    skip_ws(s);
    if (*first) {
        if (open_container(s, close == '}' ? '{' : '[') != 0)
            return -1;
        *first = false;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            s->depth--;
            return 0;
        }
        return 1;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    if (s->p >= s->end || *s->p != ',')
        return -1;
    s->p++;
    return 1;
}

int jscan_member(struct jscan *s, bool *first, struct jstr *key)
{
    int rc = list_step(s, first, '}');
    if (rc != 1)
        return rc;
    if (jscan_string(s, key) != 0)
        return -1;
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return -1;
    s->p++;
    return 1;
}

int jscan_element(struct jscan *s, bool *first)
{
    return list_step(s, first, ']');
}

int jscan_skip(struct jscan *s)
{
    struct jstr str;
    long long i;
    bool first = true;
    int rc;
    switch (jscan_peek(s)) {
    case '{':
        while ((rc = jscan_member(s, &first, &str)) == 1)
            if (jscan_skip(s) != 0)
                return -1;
        return rc;
    case '[':
        while ((rc = jscan_element(s, &first)) == 1)
            if (jscan_skip(s) != 0)
                return -1;
        return rc;
    case '"': return jscan_string(s, &str);
    case 't': return jscan_literal(s, "true") ? 0 : -1;
    case 'f': return jscan_literal(s, "false") ? 0 : -1;
    case 'n': return jscan_literal(s, "null") ? 0 : -1;
    default: return jscan_integer(s, &i) < 0 ? -1 : 0;
    }
}

int jscan_finish(struct jscan *s)
{
    skip_ws(s);
    return s->p == s->end ? 0 : -1;
}

/* Appends code point u as UTF-8 when it fits; returns the bytes written. */
static size_t put_utf8(char *o, size_t room, unsigned u)
{
    char b[4];
    size_t n;
    if (u < 0x80) {
        b[0] = (char)u;
        n = 1;
    } else if (u < 0x800) {
        b[0] = (char)(0xc0 | u >> 6);
        b[1] = (char)(0x80 | (u & 0x3f));
        n = 2;
    } else if (u < 0x10000) {
        b[0] = (char)(0xe0 | u >> 12);
        b[1] = (char)(0x80 | (u >> 6 & 0x3f));
        b[2] = (char)(0x80 | (u & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | u >> 18);
        b[1] = (char)(0x80 | (u >> 12 & 0x3f));
        b[2] = (char)(0x80 | (u >> 6 & 0x3f));
        b[3] = (char)(0x80 | (u & 0x3f));
        n = 4;
    }
    if (n > room)
        return 0;
    memcpy(o, b, n);
    return n;
}

/* Decodes the escape at p (after the backslash); returns its code point. */
static unsigned decode_escape(const char *p, size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = strchr(from, *p);
    if (*p != 'u' && hit != NULL) {
        *len = 1;
        return (unsigned char)to[hit - from];
    }
    unsigned u = 0, lo = 0;
    hex4(p + 1, &u);
    *len = 5;
    if (u >= 0xd800 && u <= 0xdbff) { /* validated: a low surrogate follows */
        hex4(p + 7, &lo);
        *len = 11;
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
    }
    return u;
}

size_t jstr_decode(const struct jstr *str, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < str->len;) {
        size_t n = 1, w;
        if (str->p[i] == '\\') {
            unsigned u = decode_escape(str->p + i + 1, &n);
            w = put_utf8(out + o, cap - 1 - o, u);
            n++;
        } else {
            size_t seq = jsonw_utf8_seq_len((const unsigned char *)str->p + i, str->len - i);
            n = seq ? seq : 1;
            w = n <= cap - 1 - o ? n : 0;
            memcpy(out + o, str->p + i, w);
        }
        if (w == 0)
            break; /* out is full: stop on a character boundary */
        o += w;
        i += n;
    }
    out[o] = '\0';
    return o;
}

bool jstr_equals_escaped(const struct jstr *str, const char *lit, size_t n)
{
    char tmp[128];
    if (n + 5 > sizeof tmp || str->len < n) /* decoding never makes a string longer */
        return false;
    /* Room for one character more than lit: a longer value cannot be cut to look equal. */
    size_t got = jstr_decode(str, tmp, n + 5);
    return got == n && memcmp(tmp, lit, n) == 0;
}
