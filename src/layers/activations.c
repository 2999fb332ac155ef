/* activations.c — GELU, SwiGLU, LayerNorm, RMSNorm: the local, elementwise or per-row parts of
 * a layer. The arithmetic is the kernel layer's (kernels.h: one build per instruction set);
 * these keep the layers' names and gelu_kind. */
#include "linshard/kernels.h"
#include "linshard/layers.h"

_Static_assert((int)GELU_TANH == (int)KERNEL_GELU_TANH && (int)GELU_ERF == (int)KERNEL_GELU_ERF,
               "gelu_kind and kernel_gelu_kind agree");

void gelu_forward(float *x, size_t n, gelu_kind kind) {
    kernel_gelu(x, n, (kernel_gelu_kind)kind);
}

void layernorm_forward(float *out, const float *in, const float *w, const float *b, int T, int E,
                       float eps) {
    kernel_layernorm(out, in, w, b, T, E, eps);
}

void rmsnorm_forward(float *out, const float *in, const float *w, int T, int E, float eps) {
    kernel_rmsnorm(out, in, w, T, E, eps);
}

void swiglu_forward(float *out, const float *x, int T, int n) {
    kernel_swiglu(out, x, T, n);
}
