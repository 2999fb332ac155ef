/* mlp.c — the Megatron MLP: column-parallel first projection, the activation on the local
 * shard (GELU, or SiLU(gate) * up with gate and up on the same slice), row-parallel second.
 * parallel_mlp_forward_rows is the same with row-exact products (batched decoding). */
#include "linshard/layers.h"

/* The activation on the local shard scratch[T, f_local] (gated: [T, 2 f_local] in, compacted
 * to [T, f_local]): elementwise or per row, so row-exact whatever the products were. */
static void activate(const mlp_weights *w, float *scratch, int T) {
    if (w->gated)
        swiglu_forward(scratch, scratch, T, w->f_local);
    else
        gelu_forward(scratch, (size_t)T * (size_t)w->f_local, w->gelu);
}

int parallel_mlp_forward(comm_t *comm, float *out, const float *in, const mlp_weights *w, int T,
                         float *scratch, const char *tag) {
    column_parallel_forward(scratch, in, &w->fc, w->fc_b, T);
    activate(w, scratch, T);
    return row_parallel_forward(comm, out, scratch, &w->proj, w->proj_b, T, tag);
}

int parallel_mlp_forward_rows(comm_t *comm, float *out, const float *in, const mlp_weights *w,
                              int T, float *scratch, const char *tag) {
    column_parallel_forward_rows(scratch, in, &w->fc, w->fc_b, T);
    activate(w, scratch, T);
    return row_parallel_forward_rows(comm, out, scratch, &w->proj, w->proj_b, T, tag);
}
