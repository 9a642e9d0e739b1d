/* fuzz_hosts: what h1_hosts_find (services/h1_dns.c) promises of any hosts file.
 * The input is a name (up to the first '\n', at most 100 bytes; "vllm" when empty)
 * and then the file's text. It returns 0 or -ENOENT; -ENOENT leaves the address
 * alone; 0 sets an IPv4 or IPv6 address of the right length with the port kept,
 * that a line of the text starts with (before any '#') and names the name in a
 * later word, in any case. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "services/h1_internal.h"

/* The next blank-separated word of text[*j, stop): its start, its length in *n (0: none). */
static size_t word(const char *text, size_t *j, size_t stop, size_t *n)
{
    while (*j < stop && (text[*j] == ' ' || text[*j] == '\t' || text[*j] == '\r'))
        (*j)++;
    size_t b = *j;
    while (*j < stop && text[*j] != ' ' && text[*j] != '\t' && text[*j] != '\r')
        (*j)++;
    *n = *j - b;
    return b;
}

/* Whether some line of text, before its '#', starts with a word that inet_pton reads
 * as the address at addr (family af) and names the name in a later word. */
static bool line_has(const char *text, size_t len, int af, const void *addr, const char *name,
                     size_t nlen)
{
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        size_t stop = i, j = i, n;
        while (stop < e && text[stop] != '#')
            stop++;
        i = e + 1;
        size_t b = word(text, &j, stop, &n);
        char ip[64];
        unsigned char got[16];
        if (n == 0 || n >= sizeof ip)
            continue;
        memcpy(ip, text + b, n);
        ip[n] = '\0';
        if (inet_pton(af, ip, got) != 1 || memcmp(got, addr, af == AF_INET ? 4 : 16) != 0)
            continue;
        while ((b = word(text, &j, stop, &n)), n > 0)
            if (n == nlen && strncasecmp(text + b, name, nlen) == 0)
                return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *nl = memchr(in, '\n', size < 101 ? size : 101);
    size_t nlen = nl ? (size_t)(nl - in) : 0;
    const char *text = nl ? nl + 1 : in;
    size_t len = size - (size_t)(text - in);
    struct h1_addr a = { .port = 8080 };
    if (nlen == 0) {
        memcpy(a.host, "vllm:8080", 10);
        nlen = 4;
    } else {
        memcpy(a.host, in, nlen);
    }
    a.name_len = nlen;
    int rc = h1_hosts_find(text, len, &a);
    CHECK(rc == 0 || rc == -ENOENT);
    if (rc != 0) {
        CHECK(a.len == 0 && a.sa.ss_family == 0);
        return 0;
    }
    if (a.sa.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a.sa;
        CHECK(a.len == sizeof *s && ntohs(s->sin_port) == 8080);
        CHECK(line_has(text, len, AF_INET, &s->sin_addr, a.host, nlen));
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a.sa;
        CHECK(a.sa.ss_family == AF_INET6 && a.len == sizeof *s && ntohs(s->sin6_port) == 8080);
        CHECK(line_has(text, len, AF_INET6, &s->sin6_addr, a.host, nlen));
    }
    return 0;
}
