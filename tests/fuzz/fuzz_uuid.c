/* fuzz_uuid: uuid_is_valid agrees with a second, differently written check of
 * the 8-4-4-4-12 form, and uuid4_format of any 16 bytes gives a lowercase UUID
 * with version 4 and the RFC 4122 variant that uuid_is_valid accepts. */
#include <stdbool.h>
#include <string.h>

#include "core/uuid.h"
#include "fuzz.h"

static bool reference_valid(const char *s, size_t len)
{
    static const size_t groups[] = { 8, 4, 4, 4, 12 };
    size_t i = 0;
    for (size_t g = 0; g < 5; g++) {
        if (g > 0 && (i >= len || s[i++] != '-'))
            return false;
        for (size_t k = 0; k < groups[g]; k++, i++)
            if (i >= len || memchr("0123456789abcdefABCDEF", s[i], 22) == NULL)
                return false;
    }
    return i == len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    CHECK(uuid_is_valid(s, size) == reference_valid(s, size));
    if (size >= 16) {
        char out[UUID_STR_LEN + 2];
        memset(out, 'X', sizeof out);
        uuid4_format(data, out);
        CHECK(out[UUID_STR_LEN] == '\0' && out[UUID_STR_LEN + 1] == 'X');
        CHECK(uuid_is_valid(out, UUID_STR_LEN));
        CHECK(strspn(out, "0123456789abcdef-") == UUID_STR_LEN);
        CHECK(out[14] == '4' && strchr("89ab", out[19]) != NULL);
        static const int at[16] = { 0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34 };
        for (int b = 0; b < 16; b++) { /* every bit but version and variant is kept */
            unsigned v = (unsigned)strtoul((char[]){ out[at[b]], out[at[b] + 1], '\0' }, NULL, 16);
            unsigned mask = b == 6 ? 0x0f : b == 8 ? 0x3f : 0xff;
            CHECK((v & mask) == (data[b] & mask));
        }
    }
    return 0;
}
