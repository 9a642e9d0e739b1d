/* fuzz.h: what the libFuzzer targets of chatd share: the entry point's
 * prototype; CHECK, an assertion that stays on in every build and says which
 * property broke before it aborts (libFuzzer then saves the input); and, for
 * targets that include <jansson.h> first, helpers for comparing with jansson. */
#ifndef CHATD_FUZZ_H
#define CHATD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/jsonw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* True when s[0..len) is valid UTF-8, as jsonw (and so every JSON chatd writes)
 * understands it. */
static inline int fuzz_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = jsonw_utf8_seq_len(u + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

#ifdef JANSSON_H
/* Nesting depth of a jansson value: 0 for a scalar, 1 for [] or {}. */
static inline int fuzz_json_depth(json_t *v)
{
    int d = 0, e;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((e = fuzz_json_depth(json_array_get(v, i))) > d)
                d = e;
    } else if (json_is_object(v)) {
        for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it))
            if ((e = fuzz_json_depth(json_object_iter_value(it))) > d)
                d = e;
    } else {
        return 0;
    }
    return d + 1;
}

/* True when jansson refused a text for a limit of its own, not because it is
 * not JSON: such texts are valid but jansson cannot say what they hold. */
static inline int fuzz_json_limit(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_numeric_overflow:
    case json_error_stack_overflow:
    case json_error_null_character:
    case json_error_null_byte_in_key:
    case json_error_duplicate_key: return 1;
    default: return 0;
    }
}
#endif

#endif
