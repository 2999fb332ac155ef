/* matmul.c — kernel_matmul: one matrix product for every weight type and layout.
 * (F32 only on this branch: the typed kernels arrive with branch i11-types.) */
#include <stdlib.h>
#include <string.h>

#include "linshard/kernels.h"

void kernel_matmul(float *out, const float *in, const kernel_weight *w, int T, int accumulate) {
    int K = w->K, N = w->N;
    if (T <= 0 || N <= 0) return;
    if (K == 0) {
        if (!accumulate) memset(out, 0, (size_t)T * (size_t)N * sizeof(float));
        return;
    }
    if (w->type != KERNEL_F32) { /* TEMPORARY (branch i11-model): dequantise a row, dot it */
        const kernel_type_traits *tr = kernel_type_info(w->type);
        size_t rb = kernel_row_bytes(w->type, (size_t)K);
        float *row = malloc((size_t)K * sizeof(float));
        if (!row) abort();
        for (int n = 0; n < N; n++) {
            tr->to_f32((const unsigned char *)w->data + (size_t)n * rb, row, (size_t)K);
            for (int t = 0; t < T; t++) {
                const float *x = in + (size_t)t * (size_t)K;
                float acc = 0;
                for (int k = 0; k < K; k++) acc += x[k] * row[k];
                float *o = out + (size_t)t * (size_t)N + n;
                *o = accumulate ? *o + acc : acc;
            }
        }
        free(row);
        return;
    }
    const float *W = w->data;
    float beta = accumulate ? 1.0f : 0.0f;
    if (w->layout == KERNEL_IN_OUT) {
        if (T == 1) /* a GEMV: sgemm would first pack the whole weight */
            kernel_sgemv(1, K, N, 1.0f, W, N, in, beta, out);
        else
            kernel_sgemm(0, 0, T, N, K, 1.0f, in, K, W, N, beta, out, N);
    } else {
        if (T == 1)
            kernel_sgemv(0, N, K, 1.0f, W, K, in, beta, out);
        else
            kernel_sgemm(0, 1, T, N, K, 1.0f, in, K, W, K, beta, out, N);
    }
}
