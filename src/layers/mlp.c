/* mlp.c — the Megatron MLP: column-parallel c_fc, GELU on the local shard, row-parallel c_proj. */
#include "linshard/layers.h"

int parallel_mlp_forward(comm_t *comm, float *out, const float *in, const mlp_weights *w, int T,
                         float *scratch, const char *tag) {
    column_parallel_forward(scratch, in, w->fc_w, w->fc_b, T, w->E, w->f_local);
    gelu_forward(scratch, (size_t)T * (size_t)w->f_local, w->gelu);
    return row_parallel_forward(comm, out, scratch, w->proj_w, w->proj_b, T, w->f_local, w->E, tag);
}
