/* split.h — how linshard divides n units (columns, heads, vocabulary rows, elements) over P
 * ranks. Sizes differ by at most one unit: the first n % P ranks get one more. Megatron refuses
 * dimensions that P does not divide; linshard uses this balanced split everywhere instead. */
#ifndef LINSHARD_SPLIT_H
#define LINSHARD_SPLIT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of units rank r (0 <= r < P) owns. */
static inline size_t split_count(size_t n, int P, int r) {
    size_t p = (size_t)P, q = n / p, rem = n % p;
    return q + ((size_t)r < rem ? 1 : 0);
}

/* Index of rank r's first unit. */
static inline size_t split_offset(size_t n, int P, int r) {
    size_t p = (size_t)P, q = n / p, rem = n % p, rr = (size_t)r;
    return rr * q + (rr < rem ? rr : rem);
}

#ifdef __cplusplus
}
#endif
#endif
