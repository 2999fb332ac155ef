/* timer.h — monotonic wall clock for benchmarks and the ledger. */
#ifndef LINSHARD_TIMER_H
#define LINSHARD_TIMER_H

#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds on CLOCK_MONOTONIC. A function of the library (src/util/timer.c), not an inline one,
 * so that the public headers need no POSIX feature macro: they compile with -std=c11 too. */
double timer_seconds(void);

#ifdef __cplusplus
}
#endif
#endif
