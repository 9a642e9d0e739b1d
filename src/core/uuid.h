/* uuid: random (version 4) UUIDs and the check for client-sent correlation ids. */
#ifndef CHATD_UUID_H
#define CHATD_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" without the NUL. */
#define UUID_STR_LEN 36

/* Formats 16 random bytes as a lowercase UUID4, setting the version (4) and the
 * RFC 4122 variant (10xx) bits. out receives UUID_STR_LEN chars and a NUL. */
void uuid4_format(const uint8_t bytes[16], char out[UUID_STR_LEN + 1]);

/* Fills out with a fresh UUID4 from getrandom(2). Returns 0 or -errno. */
int uuid4_generate(char out[UUID_STR_LEN + 1]);

/* True when s[0..len) is a canonical UUID (8-4-4-4-12 hex digits, any case,
 * any version): the only form of X-Correlation-Id chatd echoes back. */
bool uuid_is_valid(const char *s, size_t len);

#endif
