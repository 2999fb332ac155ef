/* activations.c — GELU, SwiGLU, LayerNorm, RMSNorm: the local, elementwise or per-row parts of
 * a layer. */
#include <math.h>

#include "fast_exp.h"
#include "linshard/layers.h"

void gelu_forward(float *x, size_t n, gelu_kind kind) {
    if (kind == GELU_ERF) {
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        return;
    }
    /* GPT-2's "gelu_new": 0.5 v (1 + tanh(z)), z = sqrt(2/pi) (v + 0.044715 v^3). Since
     * 0.5 (1 + tanh(z)) = 1 / (1 + exp(-2z)), one vectorisable exp per element does it. */
    const float c2 = 2.0f * 0.7978845608028654f; /* 2 sqrt(2 / pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + fast_expf(-c2 * (v + 0.044715f * v * v * v)));
    }
}

void layernorm_forward(float *out, const float *in, const float *w, const float *b, int T, int E,
                       float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        /* Two passes in double: the mean first, then the variance about it — no cancellation. */
        double mean = 0, var = 0;
        for (int i = 0; i < E; i++) mean += x[i];
        mean /= E;
        for (int i = 0; i < E; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= E;
        float rstd = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
        for (int i = 0; i < E; i++) y[i] = (x[i] - m) * rstd * w[i] + b[i];
    }
}

void rmsnorm_forward(float *out, const float *in, const float *w, int T, int E, float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        double ss = 0; /* in double: no loss over wide rows */
        for (int i = 0; i < E; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / E + eps));
        for (int i = 0; i < E; i++) y[i] = x[i] * r * w[i];
    }
}

void swiglu_forward(float *out, const float *x, int T, int n) {
    for (int t = 0; t < T; t++) {
        const float *gate = x + (size_t)t * 2 * (size_t)n, *up = gate + n;
        float *y = out + (size_t)t * (size_t)n; /* never ahead of what row t still reads */
        for (int j = 0; j < n; j++) {
            float g = gate[j];
            y[j] = g / (1.0f + fast_expf(-g)) * up[j];
        }
    }
}
