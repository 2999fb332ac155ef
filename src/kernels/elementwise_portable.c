/* elementwise_portable.c — the elementwise and normalisation kernels in plain C: the reference
 * semantics of kernels.h's last section, and the build every CPU runs (ARM, or x86-64 without
 * AVX2). Compiled for the baseline ISA (SSE2): GCC vectorises the plain loops, which changes no
 * result (no FMA, no reassociation: each lane rounds as the scalar code would), but not those
 * over fast_expf, whose floorf has no SSE2 vector form (roundps is SSE4.1) — they run scalar,
 * 11-21x slower than the AVX2 / AVX-512 builds (bench/elementwise_bench.c). */
#include <math.h>

#include "fast_exp.h"
#include "kernels_internal.h"

void kernel_portable_gelu(float *x, size_t n, kernel_gelu_kind kind) {
    if (kind == KERNEL_GELU_ERF) {
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

static void layernorm(float *out, const float *in, const float *w, const float *b, int T, int E,
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

static void rmsnorm(float *out, const float *in, const float *w, int T, int E, float eps) {
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * (size_t)E;
        float *y = out + (size_t)t * (size_t)E;
        double ss = 0; /* in double: no loss over wide rows */
        for (int i = 0; i < E; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / E + eps));
        for (int i = 0; i < E; i++) y[i] = x[i] * r * w[i];
    }
}

static void swiglu(float *out, const float *x, int T, int n) {
    for (int t = 0; t < T; t++) {
        const float *gate = x + (size_t)t * 2 * (size_t)n, *up = gate + n;
        float *y = out + (size_t)t * (size_t)n; /* never ahead of what row t still reads */
        for (int j = 0; j < n; j++) {
            float g = gate[j];
            y[j] = g / (1.0f + fast_expf(-g)) * up[j];
        }
    }
}

static void softmax_causal(float *s, int T, int n, int pos0) {
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

void kernel_portable_rope(float *x, const float *cos_sin, int D) {
    int half = D / 2;
    const float *c = cos_sin, *s = cos_sin + half;
    for (int i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * c[i] - b * s[i];
        x[i + half] = b * c[i] + a * s[i];
    }
}

void kernel_portable_gelu_backward(float *dx, const float *x, const float *dy, size_t n,
                                   kernel_gelu_kind kind) {
    if (kind == KERNEL_GELU_ERF) {
        /* d/dv [v Phi(v)] = Phi(v) + v phi(v). */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
            float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
        return;
    }
    /* Forward: v * s, s = 1 / (1 + exp(-2z)), z = c (v + 0.044715 v^3), c = sqrt(2/pi).
     * d/dv = s + v * s (1 - s) * 2c (1 + 3 * 0.044715 v^2). */
    const float c = 0.7978845608028654f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i], v2 = v * v;
        float s = 1.0f / (1.0f + fast_expf(-2.0f * c * (v + 0.044715f * v2 * v)));
        float dz = 2.0f * c * (1.0f + 3.0f * 0.044715f * v2);
        dx[i] = dy[i] * (s + v * s * (1.0f - s) * dz);
    }
}

void kernel_portable_layernorm_backward(float *dx, float *dw, float *db, const float *x,
                                        const float *w, const float *dy, int T, int E, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)E, *dyr = dy + (size_t)t * (size_t)E;
        float *dxr = dx + (size_t)t * (size_t)E;
        /* The forward's statistics, recomputed the same way (double, two passes). */
        double mean = 0, var = 0;
        for (int i = 0; i < E; i++) mean += xr[i];
        mean /= E;
        for (int i = 0; i < E; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= E;
        double rstd = 1.0 / sqrt(var + eps);
        /* dxhat = dy * w; dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)). */
        double m1 = 0, m2 = 0;
        for (int i = 0; i < E; i++) {
            double xhat = (xr[i] - mean) * rstd, g = (double)dyr[i] * w[i];
            m1 += g;
            m2 += g * xhat;
            if (dw) dw[i] += (float)(dyr[i] * xhat);
            if (db) db[i] += dyr[i];
        }
        m1 /= E;
        m2 /= E;
        for (int i = 0; i < E; i++) {
            double xhat = (xr[i] - mean) * rstd, g = (double)dyr[i] * w[i];
            dxr[i] = (float)(rstd * (g - m1 - xhat * m2));
        }
    }
}

void kernel_portable_softmax_causal_backward(float *d, const float *p, int T, int n, int pos0) {
    /* dS = P ⊙ (dP - <P, dP>) row by row; masked entries have P = 0: dS = 0. */
    for (int t = 0; t < T; t++) {
        const float *pr = p + (size_t)t * (size_t)n;
        float *dr = d + (size_t)t * (size_t)n;
        int last = pos0 + t;
        float dot = 0;
        for (int j = 0; j <= last; j++) dot += pr[j] * dr[j];
        for (int j = 0; j <= last; j++) dr[j] = pr[j] * (dr[j] - dot);
        for (int j = last + 1; j < n; j++) dr[j] = 0.0f;
    }
}

void kernel_portable_colsum_acc(float *db, const float *d, int T, int N) {
    for (int t = 0; t < T; t++) {
        const float *row = d + (size_t)t * (size_t)N;
        for (int j = 0; j < N; j++) db[j] += row[j];
    }
}

const kernel_elementwise_table kernel_elementwise_portable = {
    "portable",
    layernorm,
    rmsnorm,
    kernel_portable_gelu,
    swiglu,
    softmax_causal,
    kernel_portable_rope,
    kernel_portable_gelu_backward,
    kernel_portable_layernorm_backward,
    kernel_portable_softmax_causal_backward,
    kernel_portable_colsum_acc,
};
