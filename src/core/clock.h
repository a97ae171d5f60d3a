/* clock: wall and monotonic time, ISO-8601 UTC stamps with a `Z`. Any thread. */
#ifndef MYLOWARE_CORE_CLOCK_H
#define MYLOWARE_CORE_CLOCK_H

#include <stdint.h>

#define CLOCK_ISO_LEN 25 /* "2026-11-23T10:00:00.000Z" + NUL */

/* Milliseconds since the Unix epoch. */
int64_t clock_now_ms(void);
/* Monotonic nanoseconds, for durations. */
uint64_t clock_mono_ns(void);
/* Writes ms-since-epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (CLOCK_ISO_LEN bytes). */
void clock_iso8601(int64_t ms, char out[CLOCK_ISO_LEN]);

#endif
