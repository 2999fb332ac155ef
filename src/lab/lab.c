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
 * values accumulated by OpenBLAS, then GELU, SiLU and softmax through fast_expf (relative error
 * <= 2e-7), LayerNorm and RMSNorm with double statistics, and RoPE from a cos/sin table whose
 * angles are exact in double and rounded once to float (u). Rounding in a K-term dot product
 * grows like sqrt(K) u typically and K u at worst, i.e. 1e-6..2.3e-5 of the sum of |terms|,
 * which for these random inputs is a few times the result; measured errors are 1e-8..1e-6 of the
 * largest output, so 1e-5 leaves a margin of 5x or more. The naive variants are wrong by O(1e-2)
 * to O(1) of the output (a bias counted P times, GELU of partial sums, statistics of a slice, the
 * wrong columns, a softmax normalised per slice, SiLU of the wrong gate, keys and values of
 * another group, RoPE pairing the wrong dimensions): 100x the tolerance is still 1e-3 of the
 * output, below what they miss by. Measured over seeds 1..150 at every P in 2..8 (rows 1-20):
 * every correct row within 0.19 of its tolerance (the global softmax; the others within 0.07),
 * every naive row beyond 1670x it (RoPE with adjacent pairs 1674x, RMSNorm of shards 1706x, GQA
 * with contiguous K/V 12837x, SwiGLU with fused halves 76625x; the GPT-2 rows beyond 5900x). */
#include "linshard/lab.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/comm.h"
#include "linshard/kernels.h"
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
/* Grouped-query attention's own shape: 22 query heads and 11 K/V heads (2 query heads each)
 * of 8. 11 is prime, so no P in 2..8 divides it: a contiguous split of the K/V heads never
 * lines up with the query heads' groups (when P divides n_kv_head the two coincide). */
#define HG 22
#define KVG 11
#define DG 8
#define GROUP (HG / KVG)
#define QKVG ((HG + 2 * KVG) * DG) /* [Q | K | V] of the GQA projection */
#define ROPE_THETA 10000.0

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
    /* the Llama family's layers */
    X_SWIGLU,         /* SwiGLU MLP: gate and up on the same column slice */
    X_SWIGLU_HALVES,  /* naive: the fused [gate | up] block cut into contiguous shares */
    X_GQA,            /* GQA: every K/V head the rank's query heads read */
    X_GQA_CONTIGUOUS, /* naive: K/V heads split contiguously like the query heads */
    X_ROPE_HALF,      /* RoPE, rotate half (Hugging Face) */
    X_ROPE_ADJACENT,  /* naive: RoPE pairing adjacent dimensions */
    X_RMS_SHARDS,     /* naive: RMSNorm of each feature shard */
    X_RMS_REPLICATED, /* RMSNorm of the replicated vector */
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
    {"SwiGLU MLP", "gate and up on the same column slice",
     "each rank takes columns [f0, f0+f) of gate AND of up, so SiLU(gate)*up pairs the right "
     "features locally; the row-parallel down projection needs one AllReduce of T*E floats",
     1},
    {"SwiGLU MLP", "fused [gate|up] cut in contiguous shares",
     "a rank's contiguous 2/P share of the fused [gate|up] block is not 'my gate | my up' (at "
     "P=2 rank 0 gets only gate columns): SiLU multiplies mismatched features; same AllReduce",
     0},
    {"GQA attention", "each rank: the K/V heads its queries read",
     "a query head reads K/V head h/group; a rank holds every K/V head its query heads read, "
     "replicating the ones shared with another rank: computed twice, never sent; one AllReduce",
     1},
    {"GQA attention", "K/V heads split contiguously like queries",
     "a contiguous share of the 11 K/V heads is not the set a rank's query heads read: some "
     "queries attend with another group's keys and values; same AllReduce, wrong answer",
     0},
    {"RoPE attention", "rotate half: i pairs with i + D/2",
     "heads are split whole, so RoPE rotates each rank's q and k locally; Hugging Face's Llama "
     "checkpoints pair dimension i with i + D/2 ('rotate half'); one AllReduce, as without RoPE",
     1},
    {"RoPE attention", "adjacent pairs: 2i with 2i+1",
     "the RoPE paper's / GPT-J's pairing: on a checkpoint whose q/k columns were laid out for "
     "rotate half every score changes; what running it with the wrong convention gets",
     0},
    {"RMSNorm", "each feature shard on its own, gathered",
     "RMSNorm divides by the root mean square of the whole feature vector; a shard's own differs, "
     "so the gathered result is wrong (and the gather cost T*E floats)",
     0},
    {"RMSNorm", "replicated full vector",
     "every rank normalises the full replicated vector: exact, with no communication (kept "
     "replicated like LayerNorm)",
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
    float w_gu[E * 2 * F];                /* SwiGLU's fused [gate | up]; down is w_proj */
    float w_gqa[E * QKVG];                /* GQA projection, [Q | K | V] */
    float w_gqa_o[HG * DG * E];           /* GQA output projection */
    /* references, double */
    double ref_col[T * F];
    double ref_row[T * E], ref_row_nobias[T * E];
    double ref_mlp[T * E];
    double ref_ln[T * E];
    double ref_attn[T * E];
    double ref_softmax[T * V];
    double ref_swiglu[T * E], ref_gqa[T * E], ref_rope[T * E], ref_rms[T * E];
    double dgqa[T * QKVG], dgatt[T * HG * DG];                                /* their scratch */
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

/* Causal softmax attention of one head: out[t, c] (row stride ld_out) from q, k, v rows of
 * stride ld, in double. */
static void ref_head(double *out, int ld_out, const double *q, const double *k, const double *v,
                     int ld, int Dh) {
    for (int t = 0; t < T; t++) {
        double s[T], max = -INFINITY, sum = 0;
        for (int u = 0; u <= t; u++) {
            double d = 0;
            for (int c = 0; c < Dh; c++) d += q[t * ld + c] * k[u * ld + c];
            s[u] = d / sqrt((double)Dh);
            max = s[u] > max ? s[u] : max;
        }
        for (int u = 0; u <= t; u++) sum += (s[u] = exp(s[u] - max));
        for (int c = 0; c < Dh; c++) {
            double a = 0;
            for (int u = 0; u <= t; u++) a += s[u] / sum * v[u * ld + c];
            out[t * ld_out + c] = a;
        }
    }
}

/* RoPE, rotate half, written independently of rope.c: dimension i of a head at position t
 * turns with dimension i + D/2 by the angle t * theta^(-2i/D), all in double. */
static void ref_rope_rotate_half(double *x, int t) {
    for (int i = 0; i < D / 2; i++) {
        double angle = t * pow(ROPE_THETA, -2.0 * i / D), a = x[i], b = x[i + D / 2];
        x[i] = a * cos(angle) - b * sin(angle);
        x[i + D / 2] = b * cos(angle) + a * sin(angle);
    }
}

/* The Llama family's rows: SwiGLU, GQA, RoPE attention, RMSNorm. */
static void make_llama_references(lab_job *j) {
    double *x = j->dx, *pre = j->dpre, *qkv = j->dqkv, *att = j->datt;
    /* SwiGLU: down(SiLU(x Wg) * x Wu), no biases */
    for (int t = 0; t < T; t++)
        for (int f = 0; f < F; f++) {
            double g = 0, u = 0;
            for (int i = 0; i < E; i++) {
                g += x[t * E + i] * (double)j->w_gu[(size_t)i * 2 * F + f];
                u += x[t * E + i] * (double)j->w_gu[(size_t)i * 2 * F + F + f];
            }
            pre[t * F + f] = g / (1.0 + exp(-g)) * u;
        }
    ref_linear(j->ref_swiglu, pre, j->w_proj, NULL, F, E);
    /* GQA: query head h reads K/V head h / GROUP */
    ref_linear(j->dgqa, x, j->w_gqa, NULL, E, QKVG);
    for (int h = 0; h < HG; h++) {
        int g = h / GROUP;
        ref_head(j->dgatt + h * DG, HG * DG, j->dgqa + h * DG, j->dgqa + HG * DG + g * DG,
                 j->dgqa + (HG + KVG) * DG + g * DG, QKVG, DG);
    }
    ref_linear(j->ref_gqa, j->dgatt, j->w_gqa_o, NULL, HG * DG, E);
    /* RoPE attention: the MHA weights without biases, q and k of every head rotated */
    ref_linear(qkv, x, j->w_qkv, NULL, E, 3 * E);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < 2 * H; h++) ref_rope_rotate_half(qkv + t * 3 * E + h * D, t);
    for (int h = 0; h < H; h++)
        ref_head(att + h * D, E, qkv + h * D, qkv + E + h * D, qkv + 2 * E + h * D, 3 * E, D);
    ref_linear(j->ref_rope, att, j->w_ao, NULL, E, E);
    /* RMSNorm over all E features (the LayerNorm weight as its weight) */
    for (int t = 0; t < T; t++) {
        double ms = 0;
        for (int i = 0; i < E; i++) ms += x[t * E + i] * x[t * E + i];
        double r = 1.0 / sqrt(ms / E + (double)LN_EPS);
        for (int i = 0; i < E; i++) j->ref_rms[t * E + i] = x[t * E + i] * r * j->ln_w[i];
    }
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
    make_llama_references(j);
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
        kernel_weight kw = kernel_weight_f32(w, E, fl);
        column_parallel_forward(out, j->x, &kw, b, T);
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
        kernel_weight kw = kernel_weight_f32(w, fl, E);
        MEASURE_START();
        if (x == X_ROW_BIAS_BEFORE) {
            /* partial + b on every rank (a "column" product of this shape is exactly that),
             * then the sum: b is counted P times */
            column_parallel_forward(out, in, &kw, j->b_proj, T);
            rc = comm_allreduce_sum(comm, out, (size_t)T * E, "lab.row");
        } else {
            rc = row_parallel_forward(comm, out, in, &kw, x == X_ROW_NOBIAS ? NULL : j->b_proj, T,
                                      "lab.row");
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
        mlp_weights mw = {kernel_weight_f32(fc_w, E, fl),
                          fc_b,
                          kernel_weight_f32(proj_w, fl, E),
                          j->b_proj,
                          E,
                          fl,
                          GELU_TANH,
                          0};
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
        kernel_weight kfc = kernel_weight_f32(fc_w, el, F),
                      kproj = kernel_weight_f32(j->w_proj, F, E);
        column_parallel_forward(pre, in, &kfc, r == 0 ? j->b_fc : NULL, T);
        gelu_forward(pre, (size_t)T * F, GELU_TANH);
        rc = comm_allreduce_sum(comm, pre, (size_t)T * F, "lab.mlp");
        if (rc == COMM_OK) column_parallel_forward(out, pre, &kproj, j->b_proj, T);
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
        attention_weights aw = {kernel_weight_f32(qkv_w, E, ld),
                                qkv_b,
                                kernel_weight_f32(proj_w, hd, E),
                                j->b_ao,
                                E,
                                D,
                                hl,
                                0,
                                1,
                                0,
                                0,
                                NULL,
                                NULL,
                                0.0f,
                                NULL};
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
        kernel_weight head = kernel_weight_f32_out_in(wte, E, vl);
        vocab_parallel_lm_head_forward(logits, j->x, &head, T);
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
    case X_SWIGLU:
    case X_SWIGLU_HALVES: {
        TAKE(fc_w, E * 2 * fl);
        TAKE(proj_w, fl * E);
        TAKE(scratch, 2 * T * fl);
        TAKE(out, T * E);
        if (x == X_SWIGLU) {
            /* gate columns [f0, f0 + fl), then the same columns of up */
            for (int i = 0; i < E; i++) {
                const float *row = j->w_gu + (size_t)i * 2 * F;
                memcpy(fc_w + (size_t)i * 2 * fl, row + f0, (size_t)fl * sizeof(float));
                memcpy(fc_w + (size_t)i * 2 * fl + fl, row + F + f0, (size_t)fl * sizeof(float));
            }
        } else {
            /* the naive reading: this rank's contiguous share, 2 * fl columns from 2 * f0, of
             * the fused block, its first half taken as gate and its second as up */
            copy_cols(fc_w, j->w_gu, E, 2 * F, 2 * f0, 2 * fl);
        }
        memcpy(proj_w, j->w_proj + (size_t)f0 * E, (size_t)fl * E * sizeof(float));
        mlp_weights mw = {kernel_weight_f32(fc_w, E, 2 * fl),
                          NULL,
                          kernel_weight_f32(proj_w, fl, E),
                          NULL,
                          E,
                          fl,
                          GELU_TANH,
                          1};
        MEASURE_START();
        rc = parallel_mlp_forward(comm, out, j->x, &mw, T, scratch, "lab.swiglu");
        MEASURE_STOP();
        err = max_err(out, E, j->ref_swiglu, E, 0, E);
        break;
    }
    case X_GQA:
    case X_GQA_CONTIGUOUS: {
        const int q0 = (int)split_offset(HG, P, r), ql = (int)split_count(HG, P, r);
        int kv0, kvl, group, first;
        if (x == X_GQA) {
            /* every K/V head this rank's query heads read (model_head_split's rule) */
            kv0 = q0 / GROUP;
            kvl = (q0 + ql - 1) / GROUP - kv0 + 1;
            group = GROUP;
            first = q0;
        } else {
            /* the naive split: a contiguous balanced share of the K/V heads, like the query
             * heads; the rank's query heads share them in order (local query head h reads local
             * K/V head h / ceil(ql / kvl)) */
            kv0 = (int)split_offset(KVG, P, r);
            kvl = (int)split_count(KVG, P, r);
            group = (ql + kvl - 1) / kvl;
            first = kv0 * group;
        }
        const int ld = (ql + 2 * kvl) * DG;
        TAKE(qkv_w, E * ld);
        TAKE(proj_w, ql * DG * E);
        TAKE(out, T * E);
        for (int i = 0; i < E; i++) {
            const float *row = j->w_gqa + (size_t)i * QKVG;
            float *dst = qkv_w + (size_t)i * ld;
            memcpy(dst, row + q0 * DG, (size_t)ql * DG * sizeof(float));
            memcpy(dst + ql * DG, row + (HG + kv0) * DG, (size_t)kvl * DG * sizeof(float));
            memcpy(dst + (ql + kvl) * DG, row + (HG + KVG + kv0) * DG,
                   (size_t)kvl * DG * sizeof(float));
        }
        memcpy(proj_w, j->w_gqa_o + (size_t)q0 * DG * E, (size_t)ql * DG * E * sizeof(float));
        /* h0 = first and kv0 with the group give local query head h the local K/V head
         * (first + h) / group - kv0 */
        attention_weights aw = {kernel_weight_f32(qkv_w, E, ld),
                                NULL,
                                kernel_weight_f32(proj_w, ql * DG, E),
                                NULL,
                                E,
                                DG,
                                ql,
                                kvl,
                                group,
                                first,
                                kv0,
                                NULL,
                                NULL,
                                0.0f,
                                NULL};
        TAKE(scratch, attention_scratch_floats(&aw, T, T));
        MEASURE_START();
        rc = parallel_attention_forward(comm, out, j->x, &aw, T, 0, NULL, scratch, "lab.gqa");
        MEASURE_STOP();
        err = max_err(out, E, j->ref_gqa, E, 0, E);
        break;
    }
    case X_ROPE_HALF:
    case X_ROPE_ADJACENT: {
        const int hd = hl * D, ld = 3 * hd;
        TAKE(qkv_w, E * ld);
        TAKE(proj_w, hd * E);
        TAKE(rope, T * D);
        TAKE(out, T * E);
        /* heads [h0, h0 + hl) of the Q, K and V blocks, as in the MHA row, without biases */
        for (int part = 0; part < 3; part++)
            for (int i = 0; i < E; i++)
                memcpy(qkv_w + (size_t)i * ld + part * hd,
                       j->w_qkv + (size_t)i * 3 * E + part * E + h0 * D,
                       (size_t)hd * sizeof(float));
        if (x == X_ROPE_ADJACENT) {
            /* Pairing (2i, 2i+1) is rotate half applied to each q and k head reordered as
             * [even dimensions | odd dimensions] (the same angle, theta^(-2i/D), for pair i), and
             * q.k is unchanged by reordering both the same way: so permuting each head's Q and K
             * columns runs the real layer with adjacent pairs, exactly. */
            float tmp[D];
            for (int i = 0; i < E; i++)
                for (int h = 0; h < 2 * hl; h++) {
                    float *col = qkv_w + (size_t)i * ld + h * D;
                    for (int c = 0; c < D / 2; c++) {
                        tmp[c] = col[2 * c];
                        tmp[c + D / 2] = col[2 * c + 1];
                    }
                    memcpy(col, tmp, sizeof(tmp));
                }
        }
        memcpy(proj_w, j->w_ao + (size_t)h0 * D * E, (size_t)hd * E * sizeof(float));
        rope_table(rope, 0, T, D, ROPE_THETA, NULL);
        attention_weights aw = {kernel_weight_f32(qkv_w, E, 3 * hd),
                                NULL,
                                kernel_weight_f32(proj_w, hd, E),
                                NULL,
                                E,
                                D,
                                hl,
                                0,
                                1,
                                0,
                                0,
                                NULL,
                                NULL,
                                0.0f,
                                rope};
        TAKE(scratch, attention_scratch_floats(&aw, T, T));
        MEASURE_START();
        rc = parallel_attention_forward(comm, out, j->x, &aw, T, 0, NULL, scratch, "lab.rope");
        MEASURE_STOP();
        err = max_err(out, E, j->ref_rope, E, 0, E);
        break;
    }
    case X_RMS_SHARDS: {
        TAKE(in, T * el);
        TAKE(mine, T * el);
        TAKE(gathered, T * E);
        TAKE(out, T * E);
        copy_cols(in, j->x, T, E, e0, el);
        size_t counts[LAB_MAX_P];
        for (int q = 0; q < P; q++) counts[q] = (size_t)T * split_count(E, P, q);
        MEASURE_START();
        rmsnorm_forward(mine, in, j->ln_w + e0, T, el, LN_EPS);
        rc = comm_allgather(comm, mine, counts[r], gathered, counts, "lab.rms");
        MEASURE_STOP();
        size_t done = 0; /* rank-major [P][T][e_q] back to [T, E] */
        for (int q = 0; q < P; q++) {
            int c0 = (int)split_offset(E, P, q), n = (int)split_count(E, P, q);
            for (int t = 0; t < T; t++)
                memcpy(out + t * E + c0, gathered + done + (size_t)t * n,
                       (size_t)n * sizeof(float));
            done += counts[q];
        }
        err = max_err(out, E, j->ref_rms, E, 0, E);
        break;
    }
    case X_RMS_REPLICATED: {
        TAKE(out, T * E);
        MEASURE_START();
        rmsnorm_forward(out, j->x, j->ln_w, T, E, LN_EPS);
        MEASURE_STOP();
        err = max_err(out, E, j->ref_rms, E, 0, E);
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
    /* gate and up of unit variance (uniform: sqrt(3) / sqrt(fan-in)), so SiLU(gate) * up and
     * the output are O(1) like the other rows' */
    fill(j->w_gu, (size_t)E * 2 * F, sqrt(3.0 / E), &s);
    fill(j->w_gqa, (size_t)E * QKVG, 1.0 / sqrt((double)E), &s);
    fill(j->w_gqa_o, (size_t)HG * DG * E, 1.0 / sqrt((double)(HG * DG)), &s);
    make_references(j);

    kernel_set_threads(1);
    char msg[256] = "";
    if (comm_launch(COMM_BACKEND_THREADS, P, lab_rank, j, msg, sizeof(msg))) {
        set_err(err, errlen, "%s", msg[0] ? msg : "lab: a rank failed");
        free(j);
        return -1;
    }

    const double *ref[X_COUNT] = {j->ref_col,    j->ref_row,    j->ref_row,     j->ref_row_nobias,
                                  j->ref_mlp,    j->ref_mlp,    j->ref_ln,      j->ref_ln,
                                  j->ref_attn,   j->ref_attn,   j->ref_softmax, j->ref_softmax,
                                  j->ref_swiglu, j->ref_swiglu, j->ref_gqa,     j->ref_gqa,
                                  j->ref_rope,   j->ref_rope,   j->ref_rms,     j->ref_rms};
    const size_t ref_n[X_COUNT] = {T * F, T * E, T * E, T * E, T * E, T * E, T * E,
                                   T * E, T * E, T * E, T * V, T * V, T * E, T * E,
                                   T * E, T * E, T * E, T * E, T * E, T * E};
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
        case X_SWIGLU:
        case X_GQA:
        case X_ROPE_HALF:
            row->expected_allreduce_calls = 1;
            row->expected_floats = (uint64_t)T * E;
            break;
        case X_SOFTMAX_GLOBAL: /* (max, sum) per row from every rank */
            row->expected_allgather_calls = 1;
            row->expected_floats = (uint64_t)2 * T * P;
            break;
        default: /* X_COL, X_LN_REPLICATED, X_RMS_REPLICATED: none (naive rows: not checked) */
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
