/* failalloc: a failing allocator for the allocation-failure sweep
 * (tests/integration/test_failalloc.py), linked into build/failalloc/chatd.
 *
 * chatd's own objects are linked with -Wl,--wrap=malloc,calloc,realloc,strdup,
 * strndup,accept4, so every call they make lands here; jansson allocates through
 * chatd's own function (chat_json_setup), so it lands here too, and libevent is
 * pointed here before main (event_set_mem_functions). libcurl allocates through
 * its own references and is not counted.
 *
 * Counting starts at the first accepted connection, so start-up is never hit.
 * With FAILALLOC_N=N (N >= 1) the Nth counted allocation fails (returns NULL),
 * once; every other one succeeds. At exit one line goes to stderr:
 *     failalloc: allocations=<counted> failed=<N or 0>
 * and when the Nth allocation failed, at that moment:
 *     failalloc: failing allocation <N> (<which>)
 * With FAILALLOC_TRACE=1 the failing call's stack is printed too. */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
void __sanitizer_print_stack_trace(void); /* the build has ASan */

static long fail_at; /* 0: count only */
static bool trace;   /* print the failing call's stack */
static atomic_bool armed;
static atomic_long counted;
static atomic_long failed;

static void say(const char *text)
{
    ssize_t w = write(STDERR_FILENO, text, strlen(text));
    (void)w;
}

/* Counts one allocation; true when it is the one to fail. */
static bool fail_now(const char *which)
{
    if (!atomic_load_explicit(&armed, memory_order_acquire))
        return false;
    long n = atomic_fetch_add(&counted, 1) + 1;
    if (n != fail_at)
        return false;
    atomic_store(&failed, n);
    char line[128];
    snprintf(line, sizeof line, "failalloc: failing allocation %ld (%s)\n", n, which);
    say(line);
    if (trace)
        __sanitizer_print_stack_trace();
    return true;
}

void *__wrap_malloc(size_t n)
{
    return fail_now("malloc") ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now("calloc") ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now("realloc") ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fail_now("strdup") ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return fail_now("strndup") ? NULL : __real_strndup(s, n);
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int c = __real_accept4(fd, addr, len, flags);
    if (c >= 0)
        atomic_store_explicit(&armed, true, memory_order_release);
    return c;
}

static void *event_alloc(size_t n)
{
    return fail_now("libevent malloc") ? NULL : __real_malloc(n);
}

static void *event_realloc(void *p, size_t n)
{
    return fail_now("libevent realloc") ? NULL : __real_realloc(p, n);
}

__attribute__((constructor)) static void failalloc_setup(void)
{
    const char *n = getenv("FAILALLOC_N");
    fail_at = n != NULL ? atol(n) : 0;
    const char *t = getenv("FAILALLOC_TRACE");
    trace = t != NULL && strcmp(t, "1") == 0;
    event_set_mem_functions(event_alloc, event_realloc, free);
}

__attribute__((destructor)) static void failalloc_report(void)
{
    char line[128];
    snprintf(line, sizeof line, "failalloc: allocations=%ld failed=%ld\n", atomic_load(&counted),
             atomic_load(&failed));
    say(line);
}
