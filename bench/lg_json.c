/*
 * A strict, allocation-free JSON validator that captures a few fields by path.
 *
 * Why not jansson: loadgen parses every event of every stream (hundreds of
 * thousands per second against fakeprov); building a DOM per event would make
 * the load tool the bottleneck. This single pass checks the full grammar
 * (RFC 8259), string escapes, control characters and UTF-8, and records the
 * raw text of the handful of values a validator asks for.
 *
 * Keys are compared as raw bytes, so a key spelled with \u escapes does not
 * match a path; neither chatd nor OpenAI writes keys that way.
 */
#include <stdio.h>
#include <string.h>

#include "loadgen.h"

#define MAX_DEPTH 64
#define MAX_PATH  200

struct jp {
    const char *s, *e;
    struct jfield *f;
    size_t nf;
    char path[MAX_PATH];
    size_t plen; /* > MAX_PATH - 1 means "too long, matches nothing" */
    int depth;
};

static bool value(struct jp *j);

static void skip_ws(struct jp *j)
{
    while (j->s < j->e && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r'))
        j->s++;
}

/* Records a value when the current path is one the caller asked for. */
static void capture(struct jp *j, enum jtype t, const char *p, size_t n)
{
    if (j->plen >= MAX_PATH)
        return;
    for (size_t i = 0; i < j->nf; i++) {
        if (strlen(j->f[i].path) == j->plen && memcmp(j->f[i].path, j->path, j->plen) == 0) {
            j->f[i].t = t;
            j->f[i].p = p;
            j->f[i].n = n;
        }
    }
}

/* Appends ".seg" (or "seg" at the root) and returns the old length to restore. */
static size_t path_push(struct jp *j, const char *seg, size_t n)
{
    size_t old = j->plen;
    size_t need = old + (old ? 1 : 0) + n;
    if (old >= MAX_PATH || need >= MAX_PATH) {
        j->plen = MAX_PATH;
        return old;
    }
    if (old)
        j->path[j->plen++] = '.';
    memcpy(j->path + j->plen, seg, n);
    j->plen += n;
    return old;
}

/* Length of a valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Validates a string starting at the opening quote; p and n get its inner text. */
static bool string(struct jp *j, const char **p, size_t *n)
{
    const char *s = ++j->s;
    while (j->s < j->e) {
        unsigned char c = (unsigned char)*j->s;
        if (c == '"') {
            *p = s;
            *n = (size_t)(j->s - s);
            j->s++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (j->e - j->s < 2)
                return false;
            char x = j->s[1];
            if (x == 'u') {
                if (j->e - j->s < 6 || !is_hex(j->s[2]) || !is_hex(j->s[3]) || !is_hex(j->s[4]) ||
                    !is_hex(j->s[5]))
                    return false;
                j->s += 6;
            } else if (strchr("\"\\/bfnrt", x) && x) {
                j->s += 2;
            } else {
                return false;
            }
        } else if (c >= 0x80) {
            size_t l = utf8_len((const unsigned char *)j->s, (size_t)(j->e - j->s));
            if (!l)
                return false;
            j->s += l;
        } else {
            j->s++;
        }
    }
    return false;
}

static bool digits(struct jp *j)
{
    const char *s = j->s;
    while (j->s < j->e && *j->s >= '0' && *j->s <= '9')
        j->s++;
    return j->s > s;
}

static bool number(struct jp *j)
{
    const char *s = j->s;
    if (*j->s == '-')
        j->s++;
    if (j->s < j->e && *j->s == '0')
        j->s++; /* no leading zeros */
    else if (!digits(j))
        return false;
    if (j->s < j->e && *j->s == '.') {
        j->s++;
        if (!digits(j))
            return false;
    }
    if (j->s < j->e && (*j->s == 'e' || *j->s == 'E')) {
        j->s++;
        if (j->s < j->e && (*j->s == '+' || *j->s == '-'))
            j->s++;
        if (!digits(j))
            return false;
    }
    capture(j, J_NUM, s, (size_t)(j->s - s));
    return true;
}

static bool literal(struct jp *j, const char *word, enum jtype t)
{
    size_t n = strlen(word);
    if ((size_t)(j->e - j->s) < n || memcmp(j->s, word, n) != 0)
        return false;
    capture(j, t, j->s, n);
    j->s += n;
    return true;
}

static bool object(struct jp *j)
{
    capture(j, J_OBJ, j->s, 0);
    j->s++;
    skip_ws(j);
    if (j->s < j->e && *j->s == '}') {
        j->s++;
        return true;
    }
    for (;;) {
        const char *k;
        size_t kn;
        if (j->s >= j->e || *j->s != '"' || !string(j, &k, &kn))
            return false;
        skip_ws(j);
        if (j->s >= j->e || *j->s != ':')
            return false;
        j->s++;
        size_t old = path_push(j, k, kn);
        bool ok = value(j);
        j->plen = old;
        if (!ok)
            return false;
        skip_ws(j);
        if (j->s < j->e && *j->s == ',') {
            j->s++;
            skip_ws(j);
            continue;
        }
        if (j->s < j->e && *j->s == '}') {
            j->s++;
            return true;
        }
        return false;
    }
}

static bool array(struct jp *j)
{
    capture(j, J_ARR, j->s, 0);
    j->s++;
    skip_ws(j);
    if (j->s < j->e && *j->s == ']') {
        j->s++;
        return true;
    }
    for (unsigned idx = 0;; idx++) {
        char num[12];
        int nn = snprintf(num, sizeof num, "%u", idx);
        size_t old = path_push(j, num, (size_t)nn);
        bool ok = value(j);
        j->plen = old;
        if (!ok)
            return false;
        skip_ws(j);
        if (j->s < j->e && *j->s == ',') {
            j->s++;
            continue;
        }
        if (j->s < j->e && *j->s == ']') {
            j->s++;
            return true;
        }
        return false;
    }
}

static bool value(struct jp *j)
{
    skip_ws(j);
    if (j->s >= j->e)
        return false;
    if (++j->depth > MAX_DEPTH)
        return false;
    bool ok;
    const char *p;
    size_t n;
    switch (*j->s) {
    case '{': ok = object(j); break;
    case '[': ok = array(j); break;
    case '"':
        ok = string(j, &p, &n);
        if (ok)
            capture(j, J_STR, p, n);
        break;
    case 't': ok = literal(j, "true", J_TRUE); break;
    case 'f': ok = literal(j, "false", J_FALSE); break;
    case 'n': ok = literal(j, "null", J_NULL); break;
    default: ok = (*j->s == '-' || (*j->s >= '0' && *j->s <= '9')) && number(j); break;
    }
    j->depth--;
    return ok;
}

enum jtype json_scan(const char *s, size_t n, struct jfield *f, size_t nf)
{
    struct jp j = { .s = s, .e = s + n, .f = f, .nf = nf };
    for (size_t i = 0; i < nf; i++)
        f[i].t = J_NONE, f[i].p = NULL, f[i].n = 0;
    skip_ws(&j);
    if (j.s >= j.e)
        return J_NONE;
    char first = *j.s;
    if (!value(&j))
        return J_NONE;
    skip_ws(&j);
    if (j.s != j.e)
        return J_NONE;
    switch (first) {
    case '{': return J_OBJ;
    case '[': return J_ARR;
    case '"': return J_STR;
    case 't': return J_TRUE;
    case 'f': return J_FALSE;
    case 'n': return J_NULL;
    default: return J_NUM;
    }
}

long long jfield_uint(const struct jfield *f)
{
    if (f->t != J_NUM || f->n == 0 || f->n > 18)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->p[i] < '0' || f->p[i] > '9')
            return -1; /* negative, fraction or exponent: not a sequence number */
        v = v * 10 + (f->p[i] - '0');
    }
    return v;
}

bool jfield_is(const struct jfield *f, const char *str)
{
    size_t n = strlen(str);
    return f->t == J_STR && f->n == n && memcmp(f->p, str, n) == 0;
}
