/* backward.c — backward of GELU, LayerNorm, the column- and row-parallel linear layers and the
 * Megatron MLP (see layers_backward.h). */
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers_backward.h"

/* ---- GEMM helpers ------------------------------------------------------------------------- */

/* dw[K, N] += a[T, K]^T · b[T, N]. */
static void gemm_at_b_acc(float *dw, const float *a, const float *b, int T, int K, int N) {
    if (T == 0 || K == 0 || N == 0) return;
    kernel_sgemm(1, 0, K, N, T, 1.0f, a, K, b, N, 1.0f, dw, N);
}

/* out[T, K] = a[T, N] · w[K, N]^T. */
static void gemm_a_bt(float *out, const float *a, const float *w, int T, int K, int N) {
    if (T == 0 || K == 0) return;
    if (N == 0) {
        memset(out, 0, (size_t)T * (size_t)K * sizeof(float));
        return;
    }
    kernel_sgemm(0, 1, T, K, N, 1.0f, a, N, w, N, 0.0f, out, K);
}

/* ---- activations and normalisation -------------------------------------------------------- */

void gelu_backward(float *dx, const float *x, const float *dy, size_t n, gelu_kind kind) {
    kernel_gelu_backward(dx, x, dy, n, (kernel_gelu_kind)kind);
}

void layernorm_backward(float *dx, float *dw, float *db, const float *x, const float *w,
                        const float *dy, int T, int E, float eps) {
    kernel_layernorm_backward(dx, dw, db, x, w, dy, T, E, eps);
}

/* ---- linear layers ------------------------------------------------------------------------ */

void column_parallel_backward(float *dx_partial, float *dw_local, float *db_local,
                              const float *d_out_local, const float *x, const float *w_local, int T,
                              int in_dim, int n_local) {
    gemm_at_b_acc(dw_local, x, d_out_local, T, in_dim, n_local);
    if (db_local) kernel_colsum_acc(db_local, d_out_local, T, n_local);
    if (dx_partial) gemm_a_bt(dx_partial, d_out_local, w_local, T, in_dim, n_local);
}

int column_parallel_backward_reduce(comm_t *comm, float *dx, float *dw_local, float *db_local,
                                    const float *d_out_local, const float *x, const float *w_local,
                                    int T, int in_dim, int n_local, const char *tag) {
    column_parallel_backward(dx, dw_local, db_local, d_out_local, x, w_local, T, in_dim, n_local);
    return comm_allreduce_sum(comm, dx, (size_t)T * (size_t)in_dim, tag);
}

void row_parallel_backward(float *dx_local, float *dw_local, float *db, const float *d_out,
                           const float *x_local, const float *w_local, int T, int k_local,
                           int out_dim) {
    gemm_at_b_acc(dw_local, x_local, d_out, T, k_local, out_dim);
    if (db) kernel_colsum_acc(db, d_out, T, out_dim);
    if (dx_local) gemm_a_bt(dx_local, d_out, w_local, T, k_local, out_dim);
}

/* ---- the Megatron MLP --------------------------------------------------------------------- */

int parallel_mlp_forward_train(comm_t *comm, float *out, const float *in, const mlp_weights *w,
                               int T, const mlp_saved *saved, const char *tag) {
    size_t n = (size_t)T * (size_t)w->f_local;
    column_parallel_forward(saved->pre, in, &w->fc, w->fc_b, T);
    if (n) memcpy(saved->act, saved->pre, n * sizeof(float));
    gelu_forward(saved->act, n, w->gelu);
    return row_parallel_forward(comm, out, saved->act, &w->proj, w->proj_b, T, tag);
}

int parallel_mlp_backward(comm_t *comm, float *dx, const mlp_grads *g, const float *in,
                          const mlp_weights *w, const float *dy, int T, const mlp_saved *saved,
                          float *scratch, const char *tag) {
    int E = w->E, F = w->f_local;
    /* c_proj, row-parallel: dy is replicated (g's conjugate is the identity), d_act is local. */
    row_parallel_backward(scratch, g->proj_w, g->proj_b, dy, saved->act, w->proj.data, T, F, E);
    /* GELU on the local feature shard. */
    gelu_backward(scratch, saved->pre, scratch, (size_t)T * (size_t)F, w->gelu);
    /* c_fc, column-parallel: dx is a partial sum over ranks until the AllReduce (f's conjugate). */
    return column_parallel_backward_reduce(comm, dx, g->fc_w, g->fc_b, scratch, in, w->fc.data, T,
                                           E, F, tag);
}
