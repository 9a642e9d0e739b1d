/* jscan: a validating JSON pull scanner that allocates nothing.
 *
 * For the hot path (one provider chunk per token), where a tree parser spends
 * most of its time building and freeing objects chatd never looks at. It checks
 * the whole text against RFC 8259 — strings must be valid UTF-8 with valid
 * escapes and paired surrogates, numbers must follow the grammar, nesting is
 * limited — while handing the caller only the members it asks for. Strings come
 * back as slices of the input, still escaped, so they can be copied into other
 * JSON text unchanged. */
#ifndef CHATD_JSCAN_H
#define CHATD_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define JSCAN_MAX_DEPTH 64

struct jscan {
    const char *p;
    const char *end;
    int depth;
};

/* A string as it appears in the input, between its quotes, escapes kept. */
struct jstr {
    const char *p;
    size_t len;
    bool escaped; /* contains a backslash escape */
};

/* Starts scanning text[0..len). */
void jscan_init(struct jscan *s, const char *text, size_t len);

/* Consumes word when the input goes on with exactly it; else consumes nothing, false. */
bool jscan_literal(struct jscan *s, const char *word);

/* The value of a hexadecimal digit (either case), or -1 for any other character. */
int jscan_hex_digit(int c);

/* The first character of the next value ('{', '[', '"', 'n', 't', 'f', '-' or a
 * digit), after white space; 0 at the end of the input. */
char jscan_peek(struct jscan *s);

/* Steps through an object: call first with *first = true at its '{'. Returns 1
 * with the next key in *key (the scanner is then at the member's value), 0 after
 * the closing '}', -1 on invalid JSON. */
int jscan_member(struct jscan *s, bool *first, struct jstr *key);

/* Steps through an array: returns 1 when an element follows, 0 after ']', -1. */
int jscan_element(struct jscan *s, bool *first);

/* Reads a string. Returns 0 or -1 (not a valid string). */
int jscan_string(struct jscan *s, struct jstr *out);

/* Reads a number: returns 1 and sets *out when it is an integer that fits,
 * 0 for any other valid number, -1 when it is not a number. */
int jscan_integer(struct jscan *s, long long *out);

/* Consumes a null and returns true, or returns false and consumes nothing. */
bool jscan_null(struct jscan *s);

/* Skips one value of any kind, validating it. Returns 0 or -1. */
int jscan_skip(struct jscan *s);

/* Returns 0 when only white space is left, else -1. */
int jscan_finish(struct jscan *s);

/* Decodes the string into out (at most cap-1 bytes, cut on a character
 * boundary, NUL-terminated). Returns the decoded length. */
size_t jstr_decode(const struct jstr *str, char *out, size_t cap);

/* jstr_equals_n for a string with escapes (decodes it first). */
bool jstr_equals_escaped(const struct jstr *str, const char *lit, size_t n);

/* True when the string's decoded value equals lit[0..n). An escaped string is
 * only compared with literals shorter than 123 bytes (keys are short). Inline:
 * it runs for every key of every provider chunk. */
static inline bool jstr_equals_n(const struct jstr *str, const char *lit, size_t n)
{
    if (str->escaped)
        return jstr_equals_escaped(str, lit, n);
    return str->len == n && memcmp(str->p, lit, n) == 0;
}

/* jstr_equals_n for a string literal, its length known at compile time. */
#define jstr_is(str, lit) jstr_equals_n((str), "" lit, sizeof(lit) - 1)

#endif
