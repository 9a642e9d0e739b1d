/* uuid: see uuid.h. */
#include "core/uuid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

void uuid4_format(const uint8_t bytes[16], char out[UUID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = bytes[i];
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0x0f];
    }
    *p = '\0';
}

/* Random bytes are taken from getrandom(2) 4 KiB at a time, which makes a fresh
 * id cost one system call per 256 requests instead of one each. The pool is
 * per thread, so no lock; a bit of it is never handed out twice. */
#define POOL_BYTES 4096

static _Thread_local struct {
    uint8_t bytes[POOL_BYTES];
    size_t used;
} pool = { .used = POOL_BYTES };

static int refill(void)
{
    size_t got = 0;
    while (got < POOL_BYTES) {
        ssize_t n = getrandom(pool.bytes + got, POOL_BYTES - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    pool.used = 0;
    return 0;
}

int uuid4_generate(char out[UUID_STR_LEN + 1])
{
    if (pool.used + 16 > POOL_BYTES) {
        int rc = refill();
        if (rc != 0)
            return rc;
    }
    uuid4_format(pool.bytes + pool.used, out);
    memset(pool.bytes + pool.used, 0, 16);
    pool.used += 16;
    return 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool uuid_is_valid(const char *s, size_t len)
{
    if (s == NULL || len != UUID_STR_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return true;
}
