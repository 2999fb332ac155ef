/* linear.c — column-parallel and row-parallel linear layers (see layers.h), each with a
 * row-exact twin (_rows: kernel_matmul_rows) for batched decoding. */
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers.h"
#include "linshard/split.h"

/* Broadcasts the bias into every row first, so the GEMM accumulates onto it (one pass). */
static void fill_rows(float *out, const float *b, int T, int N) {
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * (size_t)N, b, (size_t)N * sizeof(float));
}

/* The products these layers may use: kernel_matmul, or the row-exact kernel_matmul_rows. */
typedef void (*product_fn)(float *out, const float *in, const kernel_weight *w, int T,
                           int accumulate);

static void column_parallel(product_fn product, float *out, const float *in,
                            const kernel_weight *w_local, const float *b_local, int T) {
    if (b_local) fill_rows(out, b_local, T, w_local->N);
    product(out, in, w_local, T, b_local != NULL);
}

void column_parallel_forward(float *out, const float *in, const kernel_weight *w_local,
                             const float *b_local, int T) {
    column_parallel(kernel_matmul, out, in, w_local, b_local, T);
}

void column_parallel_forward_rows(float *out, const float *in, const kernel_weight *w_local,
                                  const float *b_local, int T) {
    column_parallel(kernel_matmul_rows, out, in, w_local, b_local, T);
}

int column_parallel_forward_gather(comm_t *comm, float *out_full, float *scratch, const float *in,
                                   const kernel_weight *w_local, const float *b_local, int T,
                                   int n_total, const char *tag) {
    int P = comm_size(comm), r = comm_rank(comm);
    float *mine = scratch + (size_t)T * split_offset((size_t)n_total, P, r);
    column_parallel_forward(mine, in, w_local, b_local, T);
    size_t counts[256];
    if (P > 256) return comm_fail(comm, "column_parallel_forward_gather: P > 256");
    for (int j = 0; j < P; j++) counts[j] = (size_t)T * split_count((size_t)n_total, P, j);
    int rc = comm_allgather(comm, mine, counts[r], scratch, counts, tag);
    if (rc) return rc;
    /* scratch is rank-major [P][T][n_j]; the caller wants [T][n_total]. */
    for (int j = 0, c0 = 0; j < P; j++) {
        int nj = (int)split_count((size_t)n_total, P, j);
        const float *blk = scratch + (size_t)T * (size_t)c0;
        for (int t = 0; t < T; t++)
            memcpy(out_full + (size_t)t * (size_t)n_total + c0, blk + (size_t)t * (size_t)nj,
                   (size_t)nj * sizeof(float));
        c0 += nj;
    }
    return COMM_OK;
}

static int row_parallel(product_fn product, comm_t *comm, float *out, const float *in_local,
                        const kernel_weight *w_local, const float *b, int T, const char *tag) {
    int out_dim = w_local->N;
    product(out, in_local, w_local, T, 0); /* a partial sum */
    int rc = comm_allreduce_sum(comm, out, (size_t)T * (size_t)out_dim, tag);
    if (rc) return rc;
    if (b)
        for (int t = 0; t < T; t++) {
            float *row = out + (size_t)t * (size_t)out_dim;
            for (int j = 0; j < out_dim; j++) row[j] += b[j];
        }
    return COMM_OK;
}

int row_parallel_forward(comm_t *comm, float *out, const float *in_local,
                         const kernel_weight *w_local, const float *b, int T, const char *tag) {
    return row_parallel(kernel_matmul, comm, out, in_local, w_local, b, T, tag);
}

int row_parallel_forward_rows(comm_t *comm, float *out, const float *in_local,
                              const kernel_weight *w_local, const float *b, int T,
                              const char *tag) {
    return row_parallel(kernel_matmul_rows, comm, out, in_local, w_local, b, T, tag);
}
