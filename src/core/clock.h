/* clock: monotonic time for durations and timers, wall time for log stamps.
 * No locks, no allocation: safe on any thread and on the hot path. */
#ifndef CHATD_CLOCK_H
#define CHATD_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

/* Length of "2026-11-26T06:00:00.123Z" without the terminating NUL. */
#define CLOCK_ISO8601_LEN 24

/* Microseconds on the monotonic clock (never jumps; only differences mean anything). */
int64_t clock_mono_us(void);

/* Milliseconds since the Unix epoch on the wall clock. */
int64_t clock_wall_ms(void);

/* Writes unix_ms as ISO 8601 UTC with milliseconds and 'Z' into out (NUL-terminated).
 * Lock-free (unlike gmtime_r, which takes glibc's tz lock); valid for years 0..9999. */
void clock_format_iso8601(int64_t unix_ms, char out[CLOCK_ISO8601_LEN + 1]);

/* A duration in seconds (decimals allowed) as a struct timeval for timers. */
struct timeval clock_timeval(double seconds);

/* The current wall time, formatted as clock_format_iso8601 does. */
void clock_now_iso8601(char out[CLOCK_ISO8601_LEN + 1]);

#endif
