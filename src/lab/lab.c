/* lab.c — the tensor-parallel experiments behind `linshard lab` (see lab.h).
 *
 * All inputs, weights and the double-precision references are made serially before the ranks
 * start; during the launch they are read-only and shared. Each rank copies the shards a real
 * rank would hold, runs one experiment between a ledger reset and a ledger snapshot, and
 * compares what it holds (its feature slice, or the replicated output) with the matching part of
 * the reference, so no gather is needed to compare: the measured communication is the layer's
 * own. Each rank writes only its own error slot; rank 0 writes the ledger counts.
 *
 * Tolerance (LAB_TOL_REL = 1e-5 of the reference's largest magnitude). The sharded layers
 * compute in float32 (unit roundoff u = 6e-8): dot products of at most F = 384 terms of O(1)
 * values accumulated by OpenBLAS, then GELU and softmax through fast_expf (relative error
 * <= 2e-7) and LayerNorm with double statistics. Rounding in a K-term dot product grows like
 * sqrt(K) u typically and K u at worst, i.e. 1e-6..2.3e-5 of the sum of |terms|, which for these
 * random inputs is a few times the result; measured errors are 1e-8..1e-6 of the largest output,
 * so 1e-5 leaves a margin of 10x or more. The naive variants are wrong by O(1) of the output (a
 * bias counted P times, GELU of partial sums, statistics of a slice, the wrong columns, a softmax
 * normalised per slice): 100x the tolerance is still 1e-3 of the output, far below what they
 * miss by. Measured over seeds 1..150 at every P in 2..8: every correct row within 0.1 of its
 * tolerance, every naive row beyond 5900x it. */
#include "linshard/lab.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/comm.h"
#include "linshard/layers.h"
#include "linshard/ledger.h"
#include "linshard/split.h"

#define T LAB_T
#define E LAB_E
#define H LAB_HEADS
#define D LAB_D
#define F LAB_F
#define V LAB_V
#define LN_EPS 1e-5f

typedef enum {
    X_COL = 0,          /* column-parallel linear, bias */
    X_ROW_BIAS_AFTER,   /* row-parallel, bias once after the AllReduce */
    X_ROW_BIAS_BEFORE,  /* naive: bias on every rank before it */
    X_ROW_NOBIAS,       /* row-parallel, no bias */
    X_MLP,              /* Megatron MLP */
    X_MLP_GELU_PARTIAL, /* naive: GELU of row-parallel partial sums */
    X_LN_SHARDS,        /* naive: LayerNorm of each feature shard */
    X_LN_REPLICATED,    /* LayerNorm of the replicated vector */
    X_ATTN_HEADS,       /* attention split by heads */
    X_ATTN_CONTIGUOUS,  /* naive: contiguous column blocks of the fused QKV weight */
    X_SOFTMAX_LOCAL,    /* naive: softmax of each vocabulary slice */
    X_SOFTMAX_GLOBAL,   /* softmax with the global max/sum correction */
    X_COUNT
} experiment;

_Static_assert((int)X_COUNT == (int)LAB_ROWS, "lab.h's LAB_ROWS must match the experiments");

typedef struct {
    const char *name, *variant, *explanation;
    int correct;
} experiment_info;

static const experiment_info INFO[X_COUNT] = {
    {"column-parallel linear", "bias sliced with the columns",
     "each rank owns whole output columns: x.W[:,cols] + b[cols] needs only the replicated input, "
     "so nothing is exchanged (the output stays split by features)",
     1},
    {"row-parallel linear", "bias added once, after the AllReduce",
     "each rank's x_k.W_k is a partial sum over its slice of the inputs; one AllReduce adds the "
     "P partials, then the replicated bias is added once",
     1},
    {"row-parallel linear", "bias added on every rank before AllReduce",
     "every rank added b to its partial sum, so the AllReduce adds b P times: the output is off "
     "by exactly (P-1)*b",
     0},
    {"row-parallel linear", "no bias",
     "without a bias the partial sums are all there is: one AllReduce completes x.W", 1},
    {"MLP", "Megatron: column -> GELU -> row",
     "c_fc split by columns gives each rank complete pre-activations, so GELU is applied to whole "
     "values; the row-parallel c_proj then needs one AllReduce of T*E floats",
     1},
    {"MLP", "GELU on row-parallel partial sums",
     "GELU is not linear: GELU(a)+GELU(b) != GELU(a+b), so it must not touch a partial sum; "
     "this split also costs an AllReduce of T*4E floats instead of T*E",
     0},
    {"LayerNorm", "each feature shard on its own, gathered",
     "LayerNorm needs the mean and variance of the whole feature vector; a shard's own statistics "
     "differ, so the gathered result is wrong (and the gather cost T*E floats)",
     0},
    {"LayerNorm", "replicated full vector",
     "every rank normalises the full replicated vector: exact, with no communication (Megatron "
     "keeps LayerNorm replicated)",
     1},
    {"attention", "split by heads: Q,K,V blocks per head",
     "heads are independent: each rank takes its heads' columns from each of the Q, K and V "
     "blocks of the fused weight, attends locally, and one AllReduce completes the projection",
     1},
    {"attention", "fused QKV split in contiguous blocks",
     "the fused weight is laid out [Q|K|V], so a contiguous block is not 'my heads' Q|K|V': ranks "
     "use Q columns as keys, K as values... same communication as the right split, wrong answer",
     0},
    {"softmax over vocab", "each shard normalised on its own",
     "each slice sums to 1 on its own; softmax needs the max and the sum over the whole "
     "vocabulary, which no rank has",
     0},
    {"softmax over vocab", "global max/sum from one all-gather",
     "one all-gather of each rank's per-row (max m_r, sum s_r of exp(l - m_r)) gives the global "
     "max M and Z = sum s_r*exp(m_r - M): exact, and the logits stay split",
     1},
};

/* ---- inputs and references ---------------------------------------------------------------- */

typedef struct {
    /* inputs, replicated (every rank reads its shards from these) */
    float x[T * E];   /* activations entering the layers */
    float hid[T * F]; /* input of the row-parallel linear (the MLP's hidden width) */
    float w_fc[E * F], b_fc[F];
    float w_proj[F * E], b_proj[E];
    float ln_w[E], ln_b[E];
    float w_qkv[E * 3 * E], b_qkv[3 * E]; /* fused, columns laid out [Q | K | V] */
    float w_ao[E * E], b_ao[E];           /* attention output projection */
    float wte[V * E];                     /* LM head rows */
    /* references, double */
    double ref_col[T * F];
    double ref_row[T * E], ref_row_nobias[T * E];
    double ref_mlp[T * E];
    double ref_ln[T * E];
    double ref_attn[T * E];
    double ref_softmax[T * V];
    double dx[T * E], dhid[T * F], dpre[T * F], dqkv[T * 3 * E], datt[T * E]; /* their scratch */
    /* results */
    int P;
    double err[X_COUNT][LAB_MAX_P];
    ledger_counts counts[X_COUNT][LEDGER_OP_COUNT]; /* rank 0's */
} lab_job;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* n values uniform in [-scale, scale). */
static void fill(float *x, size_t n, double scale, uint64_t *s) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * ((double)(splitmix64(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0));
}

/* y[T, N] = x[T, K] . w[K, N] (+ b), in double. */
static void ref_linear(double *y, const double *x, const float *w, const float *b, int K, int N) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++) s += x[t * K + k] * (double)w[(size_t)k * N + j];
            y[t * N + j] = s;
        }
}

static double ref_gelu(double v) {
    return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
}

static void make_references(lab_job *j) {
    double *x = j->dx, *hid = j->dhid, *pre = j->dpre, *qkv = j->dqkv, *att = j->datt;
    for (int i = 0; i < T * E; i++) x[i] = j->x[i];
    for (int i = 0; i < T * F; i++) hid[i] = j->hid[i];
    ref_linear(j->ref_col, x, j->w_fc, j->b_fc, E, F);
    ref_linear(j->ref_row, hid, j->w_proj, j->b_proj, F, E);
    ref_linear(j->ref_row_nobias, hid, j->w_proj, NULL, F, E);
    /* MLP: c_proj(GELU(c_fc(x))) */
    ref_linear(pre, x, j->w_fc, j->b_fc, E, F);
    for (int i = 0; i < T * F; i++) pre[i] = ref_gelu(pre[i]);
    ref_linear(j->ref_mlp, pre, j->w_proj, j->b_proj, F, E);
    /* LayerNorm over all E features */
    for (int t = 0; t < T; t++) {
        double mean = 0, var = 0;
        for (int i = 0; i < E; i++) mean += x[t * E + i];
        mean /= E;
        for (int i = 0; i < E; i++) var += (x[t * E + i] - mean) * (x[t * E + i] - mean);
        var /= E;
        double rstd = 1.0 / sqrt(var + (double)LN_EPS);
        for (int i = 0; i < E; i++)
            j->ref_ln[t * E + i] = (x[t * E + i] - mean) * rstd * j->ln_w[i] + j->ln_b[i];
    }
    /* causal attention, every head */
    ref_linear(qkv, x, j->w_qkv, j->b_qkv, E, 3 * E);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) {
            double s[T], max = -INFINITY, sum = 0;
            for (int u = 0; u <= t; u++) {
                double d = 0;
                for (int c = 0; c < D; c++)
                    d += qkv[t * 3 * E + h * D + c] * qkv[u * 3 * E + E + h * D + c];
                s[u] = d / sqrt((double)D);
                max = s[u] > max ? s[u] : max;
            }
            for (int u = 0; u <= t; u++) sum += (s[u] = exp(s[u] - max));
            for (int c = 0; c < D; c++) {
                double a = 0;
                for (int u = 0; u <= t; u++) a += s[u] / sum * qkv[u * 3 * E + 2 * E + h * D + c];
                att[t * E + h * D + c] = a;
            }
        }
    ref_linear(j->ref_attn, att, j->w_ao, j->b_ao, E, E);
    /* softmax of the logits x . wte^T over the whole vocabulary */
    for (int t = 0; t < T; t++) {
        double l[V], max = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) {
            double d = 0;
            for (int i = 0; i < E; i++) d += x[t * E + i] * (double)j->wte[(size_t)v * E + i];
            l[v] = d;
            max = d > max ? d : max;
        }
        for (int v = 0; v < V; v++) sum += (l[v] = exp(l[v] - max));
        for (int v = 0; v < V; v++) j->ref_softmax[t * V + v] = l[v] / sum;
    }
}

static double max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* ---- one rank ----------------------------------------------------------------------------- */

/* A bump allocator over one per-rank buffer, reset for each experiment. */
typedef struct {
    float *base;
    size_t cap, used;
} arena;

static float *take(arena *a, size_t n) {
    if (n > a->cap - a->used) return NULL;
    float *p = a->base + a->used;
    a->used += n;
    return p;
}

/* Enough for the largest experiment: two weight shards of up to E*F floats plus activations. */
#define ARENA_FLOATS ((size_t)3 * E * F + (size_t)16 * T * F)

/* max |got[t, j] - ref[t, c0 + j]| over T rows and n columns. */
static double max_err(const float *got, int ld_got, const double *ref, int ld_ref, int c0, int n) {
    double m = 0;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++) {
            double d = fabs((double)got[t * ld_got + j] - ref[t * ld_ref + c0 + j]);
            m = d > m ? d : m;
        }
    return m;
}

/* Copies columns [c0, c0 + n) of a row-major [rows, ld] matrix into dst[rows, n]. */
static void copy_cols(float *dst, const float *src, int rows, int ld, int c0, int n) {
    for (int i = 0; i < rows; i++)
        memcpy(dst + (size_t)i * n, src + (size_t)i * ld + c0, (size_t)n * sizeof(float));
}

/* Softmax of each of the T rows of a [T, n] block, in place, with the given per-row max and
 * normaliser (1 / sum). */
static void exp_normalise(float *l, int n, const float *max, const float *inv_sum) {
    for (int t = 0; t < T; t++)
        for (int v = 0; v < n; v++) l[t * n + v] = expf(l[t * n + v] - max[t]) * inv_sum[t];
}

/* Row t's max and sum of exp(l - max) over this rank's n logits. */
static void local_stats(const float *l, int n, float *max, float *sum) {
    for (int t = 0; t < T; t++) {
        float m = -INFINITY, s = 0;
        for (int v = 0; v < n; v++) m = l[t * n + v] > m ? l[t * n + v] : m;
        for (int v = 0; v < n; v++) s += expf(l[t * n + v] - m);
        max[t] = m;
        sum[t] = s;
    }
}

/* Runs experiment x on this rank; the measured region is between the ledger reset and the
 * snapshot. */
static int run_experiment(comm_t *comm, lab_job *j, experiment x, arena *a) {
    const int P = comm_size(comm), r = comm_rank(comm);
    a->used = 0;
    double err = 0;
    int rc = COMM_OK;
    const int f0 = (int)split_offset(F, P, r), fl = (int)split_count(F, P, r);
    const int e0 = (int)split_offset(E, P, r), el = (int)split_count(E, P, r);
    const int h0 = (int)split_offset(H, P, r), hl = (int)split_count(H, P, r);
    const int v0 = (int)split_offset(V, P, r), vl = (int)split_count(V, P, r);
#define TAKE(var, n)                                                                               \
    float *var = take(a, (size_t)(n));                                                             \
    if (!var) return comm_fail(comm, "lab: rank %d: scratch arena too small", r)
#define MEASURE_START() comm_ledger_reset(comm)
#define MEASURE_STOP()                                                                             \
    do {                                                                                           \
        if (r == 0)                                                                                \
            for (int op = 0; op < LEDGER_OP_COUNT; op++)                                           \
                j->counts[x][op] = ledger_op_total(comm_ledger(comm), (ledger_op)op);              \
    } while (0)

    switch (x) {
    case X_COL: { /* this rank's columns of c_fc; the output stays split by features */
        TAKE(w, E * fl);
        TAKE(b, fl);
        TAKE(out, T * fl);
        copy_cols(w, j->w_fc, E, F, f0, fl);
        memcpy(b, j->b_fc + f0, (size_t)fl * sizeof(float));
        MEASURE_START();
        column_parallel_forward(out, j->x, w, b, T, E, fl);
        MEASURE_STOP();
        err = max_err(out, fl, j->ref_col, F, f0, fl);
        break;
    }
    case X_ROW_BIAS_AFTER:
    case X_ROW_BIAS_BEFORE:
    case X_ROW_NOBIAS: { /* rows [f0, f0 + fl) of c_proj and the same slice of its input */
        TAKE(in, T * fl);
        TAKE(w, fl * E);
        TAKE(out, T * E);
        copy_cols(in, j->hid, T, F, f0, fl);
        memcpy(w, j->w_proj + (size_t)f0 * E, (size_t)fl * E * sizeof(float));
        MEASURE_START();
        if (x == X_ROW_BIAS_BEFORE) {
            /* partial + b on every rank (a "column" product of this shape is exactly that),
             * then the sum: b is counted P times */
            column_parallel_forward(out, in, w, j->b_proj, T, fl, E);
            rc = comm_allreduce_sum(comm, out, (size_t)T * E, "lab.row");
        } else {
            rc = row_parallel_forward(comm, out, in, w, x == X_ROW_NOBIAS ? NULL : j->b_proj, T, fl,
                                      E, "lab.row");
        }
        MEASURE_STOP();
        err = max_err(out, E, x == X_ROW_NOBIAS ? j->ref_row_nobias : j->ref_row, E, 0, E);
        break;
    }
    case X_MLP: {
        TAKE(fc_w, E * fl);
        TAKE(fc_b, fl);
        TAKE(proj_w, fl * E);
        TAKE(scratch, T * fl);
        TAKE(out, T * E);
        copy_cols(fc_w, j->w_fc, E, F, f0, fl);
        memcpy(fc_b, j->b_fc + f0, (size_t)fl * sizeof(float));
        memcpy(proj_w, j->w_proj + (size_t)f0 * E, (size_t)fl * E * sizeof(float));
        mlp_weights mw = {fc_w, fc_b, proj_w, j->b_proj, E, fl, GELU_TANH, 0};
        MEASURE_START();
        rc = parallel_mlp_forward(comm, out, j->x, &mw, T, scratch, "lab.mlp");
        MEASURE_STOP();
        err = max_err(out, E, j->ref_mlp, E, 0, E);
        break;
    }
    case X_MLP_GELU_PARTIAL: {
        /* The MLP split the other way round: c_fc row-parallel (this rank's input features
         * [e0, e0 + el) and those rows of c_fc, its bias on rank 0 only so that the partial sums
         * do add up to the pre-activation), GELU on the partial sum, AllReduce, then c_proj
         * whole on every rank. */
        TAKE(in, T * el);
        TAKE(fc_w, el * F);
        TAKE(pre, T * F);
        TAKE(out, T * E);
        copy_cols(in, j->x, T, E, e0, el);
        memcpy(fc_w, j->w_fc + (size_t)e0 * F, (size_t)el * F * sizeof(float));
        MEASURE_START();
        column_parallel_forward(pre, in, fc_w, r == 0 ? j->b_fc : NULL, T, el, F);
        gelu_forward(pre, (size_t)T * F, GELU_TANH);
        rc = comm_allreduce_sum(comm, pre, (size_t)T * F, "lab.mlp");
        if (rc == COMM_OK) column_parallel_forward(out, pre, j->w_proj, j->b_proj, T, F, E);
        MEASURE_STOP();
        err = max_err(out, E, j->ref_mlp, E, 0, E);
        break;
    }
    case X_LN_SHARDS: {
        TAKE(in, T * el);
        TAKE(mine, T * el);
        TAKE(gathered, T * E);
        TAKE(out, T * E);
        copy_cols(in, j->x, T, E, e0, el);
        size_t counts[LAB_MAX_P];
        for (int q = 0; q < P; q++) counts[q] = (size_t)T * split_count(E, P, q);
        MEASURE_START();
        layernorm_forward(mine, in, j->ln_w + e0, j->ln_b + e0, T, el, LN_EPS);
        rc = comm_allgather(comm, mine, counts[r], gathered, counts, "lab.ln");
        MEASURE_STOP();
        /* gathered is rank-major [P][T][e_q]: put it back as [T, E] */
        size_t done = 0;
        for (int q = 0; q < P; q++) {
            int c0 = (int)split_offset(E, P, q), n = (int)split_count(E, P, q);
            for (int t = 0; t < T; t++)
                memcpy(out + t * E + c0, gathered + done + (size_t)t * n,
                       (size_t)n * sizeof(float));
            done += counts[q];
        }
        err = max_err(out, E, j->ref_ln, E, 0, E);
        break;
    }
    case X_LN_REPLICATED: {
        TAKE(out, T * E);
        MEASURE_START();
        layernorm_forward(out, j->x, j->ln_w, j->ln_b, T, E, LN_EPS);
        MEASURE_STOP();
        err = max_err(out, E, j->ref_ln, E, 0, E);
        break;
    }
    case X_ATTN_HEADS:
    case X_ATTN_CONTIGUOUS: {
        const int hd = hl * D, ld = 3 * hd;
        TAKE(qkv_w, E * ld);
        TAKE(qkv_b, ld);
        TAKE(proj_w, hd * E);
        TAKE(out, T * E);
        if (x == X_ATTN_HEADS) {
            /* heads [h0, h0 + hl): those columns of the Q block, of the K block, of the V block */
            for (int part = 0; part < 3; part++) {
                int src = part * E + h0 * D;
                for (int i = 0; i < E; i++)
                    memcpy(qkv_w + (size_t)i * ld + part * hd, j->w_qkv + (size_t)i * 3 * E + src,
                           (size_t)hd * sizeof(float));
                memcpy(qkv_b + part * hd, j->b_qkv + src, (size_t)hd * sizeof(float));
            }
        } else {
            /* the naive reading: 3 * hl * D contiguous columns, starting where this rank's share
             * of the fused weight starts (r * 3E / P when P divides the heads) */
            copy_cols(qkv_w, j->w_qkv, E, 3 * E, 3 * D * h0, ld);
            memcpy(qkv_b, j->b_qkv + 3 * D * h0, (size_t)ld * sizeof(float));
        }
        memcpy(proj_w, j->w_ao + (size_t)h0 * D * E, (size_t)hd * E * sizeof(float));
        attention_weights aw = {qkv_w, qkv_b, proj_w, j->b_ao, E,    D,    hl,  0,
                                1,     0,     0,      NULL,    NULL, 0.0f, NULL};
        TAKE(scratch, attention_scratch_floats(&aw, T, T));
        MEASURE_START();
        rc = parallel_attention_forward(comm, out, j->x, &aw, T, 0, NULL, scratch, "lab.attn");
        MEASURE_STOP();
        err = max_err(out, E, j->ref_attn, E, 0, E);
        break;
    }
    case X_SOFTMAX_LOCAL:
    case X_SOFTMAX_GLOBAL: {
        TAKE(wte, vl * E);
        TAKE(logits, T * vl);
        TAKE(stats, 2 * T);   /* this rank's per-row max, then per-row sum */
        TAKE(all, 2 * T * P); /* every rank's, rank-major */
        TAKE(gmax, T);
        TAKE(inv, T);
        memcpy(wte, j->wte + (size_t)v0 * E, (size_t)vl * E * sizeof(float));
        MEASURE_START();
        vocab_parallel_lm_head_forward(logits, j->x, wte, T, E, vl);
        local_stats(logits, vl, stats, stats + T);
        if (x == X_SOFTMAX_LOCAL) {
            for (int t = 0; t < T; t++) {
                gmax[t] = stats[t];
                inv[t] = 1.0f / stats[T + t];
            }
        } else {
            rc = comm_allgather(comm, stats, (size_t)2 * T, all, NULL, "lab.softmax");
            for (int t = 0; t < T && rc == COMM_OK; t++) {
                float m = -INFINITY, z = 0;
                for (int q = 0; q < P; q++) m = all[q * 2 * T + t] > m ? all[q * 2 * T + t] : m;
                for (int q = 0; q < P; q++)
                    z += all[q * 2 * T + T + t] * expf(all[q * 2 * T + t] - m);
                gmax[t] = m;
                inv[t] = 1.0f / z;
            }
        }
        exp_normalise(logits, vl, gmax, inv);
        MEASURE_STOP();
        err = max_err(logits, vl, j->ref_softmax, V, v0, vl);
        break;
    }
    default:
        return comm_fail(comm, "lab: unknown experiment %d", (int)x);
    }
#undef TAKE
#undef MEASURE_START
#undef MEASURE_STOP
    if (rc) return rc;
    j->err[x][r] = err;
    return COMM_OK;
}

static int lab_rank(comm_t *comm, void *arg) {
    lab_job *j = arg;
    arena a = {malloc(ARENA_FLOATS * sizeof(float)), ARENA_FLOATS, 0};
    if (!a.base) return comm_fail(comm, "lab: out of memory on rank %d", comm_rank(comm));
    int rc = COMM_OK;
    for (int x = 0; x < X_COUNT && rc == COMM_OK; x++)
        rc = run_experiment(comm, j, (experiment)x, &a);
    free(a.base);
    return rc;
}

/* ---- the table ---------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int lab_run(int P, uint64_t seed, lab_row *rows, int max_rows, char *err, size_t errlen) {
    if (P < LAB_MIN_P || P > LAB_MAX_P) {
        set_err(err, errlen, "lab: P must be in %d..%d, got %d", LAB_MIN_P, LAB_MAX_P, P);
        return -1;
    }
    if (!rows || max_rows < LAB_ROWS) {
        set_err(err, errlen, "lab: room for %d rows needed, got %d", LAB_ROWS, max_rows);
        return -1;
    }
    lab_job *j = calloc(1, sizeof(*j));
    if (!j) {
        set_err(err, errlen, "lab: out of memory");
        return -1;
    }
    j->P = P;
    uint64_t s = seed;
    /* activations O(1); weights scaled by 1/sqrt(fan-in) so outputs stay O(1); biases and
     * LayerNorm parameters non-trivial, so every mistake with them shows */
    fill(j->x, T * E, 1.0, &s);
    fill(j->hid, T * F, 1.0, &s);
    fill(j->w_fc, (size_t)E * F, 1.0 / sqrt((double)E), &s);
    fill(j->b_fc, F, 0.5, &s);
    fill(j->w_proj, (size_t)F * E, 1.0 / sqrt((double)F), &s);
    fill(j->b_proj, E, 0.5, &s);
    fill(j->ln_w, E, 0.5, &s);
    for (int i = 0; i < E; i++) j->ln_w[i] += 1.0f;
    fill(j->ln_b, E, 0.5, &s);
    fill(j->w_qkv, (size_t)E * 3 * E, 1.0 / sqrt((double)E), &s);
    fill(j->b_qkv, 3 * E, 0.5, &s);
    fill(j->w_ao, (size_t)E * E, 1.0 / sqrt((double)E), &s);
    fill(j->b_ao, E, 0.5, &s);
    fill(j->wte, (size_t)V * E, 1.0, &s);
    make_references(j);

    layers_set_blas_threads(1);
    char msg[256] = "";
    if (comm_launch(COMM_BACKEND_THREADS, P, lab_rank, j, msg, sizeof(msg))) {
        set_err(err, errlen, "%s", msg[0] ? msg : "lab: a rank failed");
        free(j);
        return -1;
    }

    const double *ref[X_COUNT] = {j->ref_col,  j->ref_row,  j->ref_row,     j->ref_row_nobias,
                                  j->ref_mlp,  j->ref_mlp,  j->ref_ln,      j->ref_ln,
                                  j->ref_attn, j->ref_attn, j->ref_softmax, j->ref_softmax};
    const size_t ref_n[X_COUNT] = {T * F, T * E, T * E, T * E, T * E, T * E,
                                   T * E, T * E, T * E, T * E, T * V, T * V};
    for (int x = 0; x < X_COUNT; x++) {
        lab_row *row = &rows[x];
        memset(row, 0, sizeof(*row));
        snprintf(row->name, sizeof(row->name), "%s", INFO[x].name);
        snprintf(row->variant, sizeof(row->variant), "%s", INFO[x].variant);
        snprintf(row->explanation, sizeof(row->explanation), "%s", INFO[x].explanation);
        row->correct_expected = INFO[x].correct;
        row->max_error = 0;
        for (int r = 0; r < P; r++) row->max_error = fmax(row->max_error, j->err[x][r]);
        row->tolerance = LAB_TOL_REL * max_abs(ref[x], ref_n[x]);
        row->predicted_error = -1;
        const ledger_counts *c = j->counts[x];
        row->allreduce_calls = c[LEDGER_ALLREDUCE].calls;
        row->allgather_calls = c[LEDGER_ALLGATHER].calls;
        for (int op = 0; op < LEDGER_OP_COUNT; op++) {
            row->floats_communicated += c[op].elements;
            if (op != LEDGER_ALLREDUCE && op != LEDGER_ALLGATHER) row->other_calls += c[op].calls;
        }
        /* the communication each correct row must use, exactly */
        switch ((experiment)x) {
        case X_ROW_BIAS_AFTER:
        case X_ROW_NOBIAS:
        case X_MLP:
        case X_ATTN_HEADS:
            row->expected_allreduce_calls = 1;
            row->expected_floats = (uint64_t)T * E;
            break;
        case X_SOFTMAX_GLOBAL: /* (max, sum) per row from every rank */
            row->expected_allgather_calls = 1;
            row->expected_floats = (uint64_t)2 * T * P;
            break;
        default: /* X_COL, X_LN_REPLICATED: none (naive rows: not checked) */
            break;
        }
        if (row->correct_expected) {
            row->as_expected = row->max_error <= row->tolerance &&
                               row->allreduce_calls == row->expected_allreduce_calls &&
                               row->allgather_calls == row->expected_allgather_calls &&
                               row->other_calls == 0 &&
                               row->floats_communicated == row->expected_floats;
        } else {
            row->as_expected = row->max_error > LAB_WRONG_FACTOR * row->tolerance;
        }
        if (x == X_ROW_BIAS_BEFORE) {
            float bmax = 0;
            for (int i = 0; i < E; i++)
                bmax = fabsf(j->b_proj[i]) > bmax ? fabsf(j->b_proj[i]) : bmax;
            row->predicted_error = (double)(P - 1) * bmax;
            row->as_expected =
                row->as_expected && fabs(row->max_error - row->predicted_error) <= row->tolerance;
        }
    }
    free(j);
    return X_COUNT;
}

void lab_format_comm(const lab_row *row, char *buf, size_t len) {
    if (!len) return;
    buf[0] = '\0';
    size_t used = 0;
    const struct {
        uint64_t n;
        const char *what;
    } parts[] = {{row->allreduce_calls, "allreduce"},
                 {row->allgather_calls, "allgather"},
                 {row->other_calls, "other"}};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (!parts[i].n || used >= len) continue;
        int k = snprintf(buf + used, len - used, "%s%llu %s", used ? " + " : "",
                         (unsigned long long)parts[i].n, parts[i].what);
        if (k > 0) used += (size_t)k;
    }
    if (!used)
        snprintf(buf, len, "none");
    else if (used < len)
        snprintf(buf + used, len - used, ", %llu floats",
                 (unsigned long long)row->floats_communicated);
}
