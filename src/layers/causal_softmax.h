/* causal_softmax.h — the row softmax of causal attention, shared by the inference forward
 * (attention.c) and the training forward (attention_backward.c) so both give the same bits. */
#ifndef LINSHARD_CAUSAL_SOFTMAX_H
#define LINSHARD_CAUSAL_SOFTMAX_H

#include <stddef.h>

#include "fast_exp.h"

/* Row t (absolute position pos0 + t) of s[T, n] keeps positions 0..pos0+t: a numerically safe
 * softmax (max subtracted) over them, zeros after. */
static inline void causal_softmax(float *s, int T, int n, int pos0) {
    for (int t = 0; t < T; t++) {
        float *row = s + (size_t)t * (size_t)n;
        int last = pos0 + t;
        float max = row[0];
        for (int j = 1; j <= last; j++) max = row[j] > max ? row[j] : max;
        float sum = 0;
        for (int j = 0; j <= last; j++) row[j] = fast_expf(row[j] - max);
        for (int j = 0; j <= last; j++) sum += row[j];
        float inv = 1.0f / sum;
        for (int j = 0; j <= last; j++) row[j] *= inv;
        for (int j = last + 1; j < n; j++) row[j] = 0.0f;
    }
}

#endif
