/* timer.c — timer.h's monotonic clock. */
#include "linshard/timer.h"

double timer_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
