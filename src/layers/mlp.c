/* mlp.c — the Megatron MLP: column-parallel first projection, the activation on the local
 * shard (GELU, or SiLU(gate) * up with gate and up on the same slice), row-parallel second. */
#include "linshard/layers.h"

int parallel_mlp_forward(comm_t *comm, float *out, const float *in, const mlp_weights *w, int T,
                         float *scratch, const char *tag) {
    column_parallel_forward(scratch, in, &w->fc, w->fc_b, T);
    if (w->gated)
        swiglu_forward(scratch, scratch, T, w->f_local);
    else
        gelu_forward(scratch, (size_t)T * (size_t)w->f_local, w->gelu);
    return row_parallel_forward(comm, out, scratch, &w->proj, w->proj_b, T, tag);
}
