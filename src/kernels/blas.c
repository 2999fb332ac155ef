/* blas.c — the only file that calls the BLAS (OpenBLAS): the F32 GEMM and GEMV of kernels.h.
 *
 * OpenBLAS is a well-kept, fast F32 GEMM; what linshard writes itself are the typed kernels
 * (types.c and the per-ISA files), which no BLAS offers. */
#include <cblas.h>

#include "linshard/kernels.h"

void kernel_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void kernel_sgemv(int trans, int rows, int cols, float alpha, const float *A, int lda,
                  const float *x, float beta, float *y) {
    if (rows <= 0 || cols <= 0) return;
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, A, lda, x, 1,
                beta, y, 1);
}

void kernel_set_threads(int n) {
    openblas_set_num_threads(n < 1 ? 1 : n);
}

const char *kernel_blas_description(void) {
    return openblas_get_corename();
}
