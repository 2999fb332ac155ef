/* elementwise.c — kernels.h's elementwise and normalisation entry points: each passes its
 * call to the table of the level in use (isa.c picks it with the typed kernels' level). Empty
 * shapes return here, so no build sees T, E or n of 0. */
#include "kernels_internal.h"

void kernel_layernorm(float *out, const float *in, const float *w, const float *b, int T, int E,
                      float eps) {
    if (T > 0 && E > 0) kernel_active_elementwise()->layernorm(out, in, w, b, T, E, eps);
}

void kernel_rmsnorm(float *out, const float *in, const float *w, int T, int E, float eps) {
    if (T > 0 && E > 0) kernel_active_elementwise()->rmsnorm(out, in, w, T, E, eps);
}

void kernel_gelu(float *x, size_t n, kernel_gelu_kind kind) {
    if (n) kernel_active_elementwise()->gelu(x, n, kind);
}

void kernel_swiglu(float *out, const float *x, int T, int n) {
    if (T > 0 && n > 0) kernel_active_elementwise()->swiglu(out, x, T, n);
}

void kernel_softmax_causal(float *s, int T, int n, int pos0) {
    if (T > 0 && n > 0) kernel_active_elementwise()->softmax_causal(s, T, n, pos0);
}

void kernel_rope(float *x, const float *cos_sin, int D) {
    if (D > 1) kernel_active_elementwise()->rope(x, cos_sin, D);
}

void kernel_gelu_backward(float *dx, const float *x, const float *dy, size_t n,
                          kernel_gelu_kind kind) {
    if (n) kernel_active_elementwise()->gelu_backward(dx, x, dy, n, kind);
}

void kernel_layernorm_backward(float *dx, float *dw, float *db, const float *x, const float *w,
                               const float *dy, int T, int E, float eps) {
    if (T > 0 && E > 0)
        kernel_active_elementwise()->layernorm_backward(dx, dw, db, x, w, dy, T, E, eps);
}

void kernel_softmax_causal_backward(float *d, const float *p, int T, int n, int pos0) {
    if (T > 0 && n > 0) kernel_active_elementwise()->softmax_causal_backward(d, p, T, n, pos0);
}

void kernel_colsum_acc(float *db, const float *d, int T, int N) {
    if (T > 0 && N > 0) kernel_active_elementwise()->colsum_acc(db, d, T, N);
}
