/* test_backward.c — the backward pass of the tensor-parallel layers (layers_backward.h).
 *
 * Reference: a plain, unsharded double-precision forward of the same functions (GELU, LayerNorm,
 * the MLP, causal multi-head attention, and a pre-LN transformer layer made of them), written
 * here independently of the library. Its gradients are central finite differences of the scalar
 * loss L = sum(dy ⊙ y) for a random dy, in double with h = 1e-6: truncation error
 * ~h^2 * |L'''| ~ 1e-12 and rounding ~1e-16 * |L| / h ~ 1e-9, both far below the float32
 * errors under test. (The float32 forward itself is checked against this reference first, so
 * both compute the same function.)
 *
 * Checks, at P = 1..6 (6 heads of 4, E = 24, F = 96: P = 4 and 5 split the heads unevenly,
 * P = 5 the MLP columns too):
 *  (1) every parameter's and the input's gradient against the finite differences;
 *  (2) P > 1 against P = 1, the shards assembled;
 *  (3) replicated-parameter gradients (LayerNorm w/b, the row-parallel biases) and dx are the
 *      same bits on every rank;
 *  (4) the ledger: exactly one AllReduce of T * E floats per block backward, 4 per layer
 *      forward + backward.
 *
 * Tolerances, per tensor, as a fraction of its largest |reference gradient|:
 *  - FD_TOL = 1e-5 for the float32 backward against double: float32 unit roundoff is 6e-8, the
 *    longest dot products here are 96 terms and the chains a few GEMMs deep, so the error is
 *    ~1e-6 (measured worst over every block and P: 6.6e-7; the test prints it). A real bug (a
 *    missing term, a wrong transpose, a missing 1/sqrt(D), an unmasked softmax entry, a bias
 *    counted P times) moves a gradient by 1e-2 of its scale or more.
 *  - P_TOL = 1e-5 between P and P = 1: both in float32, differing only in summation order
 *    (the AllReduce adds P partial sums, GEMMs block differently), measured <= 4.1e-7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/layers.h"
#include "linshard/layers_backward.h"
#include "linshard/split.h"

#define FD_H 1e-6
#define FD_TOL 1e-5
#define P_TOL 1e-5
#define EPS 1e-5f

enum { T_ = 4, E_ = 24, NH = 6, D_ = 4, F_ = 96, TE = T_ * E_, MAXP = 6 };

/* The parameters of one pre-LN layer, and the input x, in one flat vector. */
enum { LN1W, LN1B, QKVW, QKVB, APW, APB, LN2W, LN2B, FCW, FCB, MPW, MPB, XIN, NPARAM };
static const char *const pname[NPARAM] = {
    "ln1.w",       "ln1.b",      "attn.qkv.w", "attn.qkv.b", "attn.proj.w",
    "attn.proj.b", "ln2.w",      "ln2.b",      "mlp.fc.w",   "mlp.fc.b",
    "mlp.proj.w",  "mlp.proj.b", "x"};
enum { SZ_QKVW = E_ * 3 * E_, SZ_APW = E_ * E_, SZ_FCW = E_ * F_, SZ_MPW = F_ * E_ };
static const size_t psize[NPARAM] = {E_, E_,     SZ_QKVW, 3 * E_, SZ_APW, E_, E_,
                                     E_, SZ_FCW, F_,      SZ_MPW, E_,     TE};
static size_t poff[NPARAM + 1];
#define NP_MAX 8192

static void init_offsets(void) {
    poff[0] = 0;
    for (int i = 0; i < NPARAM; i++) poff[i + 1] = poff[i] + psize[i];
    assert_true(poff[NPARAM] <= NP_MAX);
}

typedef enum { BLK_MLP = 0, BLK_ATTN = 1, BLK_LAYER = 2 } block_kind;

static int uses(block_kind kind, int p) {
    if (p == XIN || kind == BLK_LAYER) return 1;
    if (kind == BLK_MLP) return p == FCW || p == FCB || p == MPW || p == MPB;
    return p == QKVW || p == QKVB || p == APW || p == APB;
}

static int replicated(int p) {
    return p == LN1W || p == LN1B || p == LN2W || p == LN2B || p == APB || p == MPB;
}

static float urand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((double)(*s >> 8) / 16777216.0 * 2.0 - 1.0);
}

/* ---- the double-precision reference ------------------------------------------------------- */

static double ref_gelu(double v, gelu_kind kind) {
    if (kind == GELU_ERF) return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    return 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
}

static void ref_layernorm(double *y, const double *x, const double *w, const double *b, int T,
                          int E) {
    for (int t = 0; t < T; t++) {
        const double *xr = x + t * E;
        double mean = 0, var = 0;
        for (int i = 0; i < E; i++) mean += xr[i];
        mean /= E;
        for (int i = 0; i < E; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= E;
        for (int i = 0; i < E; i++) y[t * E + i] = (xr[i] - mean) / sqrt(var + EPS) * w[i] + b[i];
    }
}

/* y[T, N] = x[T, K] · w[K, N] + b. */
static void ref_linear(double *y, const double *x, const double *w, const double *b, int K, int N) {
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < N; j++) {
            double s = b[j];
            for (int k = 0; k < K; k++) s += x[t * K + k] * w[k * N + j];
            y[t * N + j] = s;
        }
}

static void ref_mlp(double *y, const double *x, const double *th, gelu_kind kind) {
    double h[T_ * F_];
    ref_linear(h, x, th + poff[FCW], th + poff[FCB], E_, F_);
    for (int i = 0; i < T_ * F_; i++) h[i] = ref_gelu(h[i], kind);
    ref_linear(y, h, th + poff[MPW], th + poff[MPB], F_, E_);
}

static void ref_attention(double *y, const double *x, const double *th) {
    double qkv[T_ * 3 * E_], att[TE];
    ref_linear(qkv, x, th + poff[QKVW], th + poff[QKVB], E_, 3 * E_);
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T_; t++) {
            double s[T_], max = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                double d = 0;
                for (int c = 0; c < D_; c++)
                    d += qkv[t * 3 * E_ + h * D_ + c] * qkv[j * 3 * E_ + E_ + h * D_ + c];
                s[j] = d / sqrt((double)D_);
                max = fmax(max, s[j]);
            }
            for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - max));
            for (int c = 0; c < D_; c++) {
                double o = 0;
                for (int j = 0; j <= t; j++)
                    o += s[j] / sum * qkv[j * 3 * E_ + 2 * E_ + h * D_ + c];
                att[t * E_ + h * D_ + c] = o;
            }
        }
    ref_linear(y, att, th + poff[APW], th + poff[APB], E_, E_);
}

static void ref_forward(double *y, const double *th, block_kind kind, gelu_kind gelu) {
    const double *x = th + poff[XIN];
    if (kind == BLK_MLP) return ref_mlp(y, x, th, gelu);
    if (kind == BLK_ATTN) return ref_attention(y, x, th);
    double ln[TE], a[TE], x1[TE];
    ref_layernorm(ln, x, th + poff[LN1W], th + poff[LN1B], T_, E_);
    ref_attention(a, ln, th);
    for (int i = 0; i < TE; i++) x1[i] = x[i] + a[i];
    ref_layernorm(ln, x1, th + poff[LN2W], th + poff[LN2B], T_, E_);
    ref_mlp(a, ln, th, gelu);
    for (int i = 0; i < TE; i++) y[i] = x1[i] + a[i];
}

static double ref_loss(const double *th, const float *dy, block_kind kind, gelu_kind gelu) {
    double y[TE], L = 0;
    ref_forward(y, th, kind, gelu);
    for (int i = 0; i < TE; i++) L += dy[i] * y[i];
    return L;
}

/* Central differences of the loss for every parameter the block uses (0 elsewhere). */
static void ref_gradients(double *grad, const float *thf, const float *dy, block_kind kind,
                          gelu_kind gelu) {
    static double th[NP_MAX];
    for (size_t i = 0; i < poff[NPARAM]; i++) th[i] = thf[i];
    for (int p = 0; p < NPARAM; p++)
        for (size_t i = poff[p]; i < poff[p + 1]; i++) {
            grad[i] = 0;
            if (!uses(kind, p)) continue;
            double keep = th[i];
            th[i] = keep + FD_H;
            double up = ref_loss(th, dy, kind, gelu);
            th[i] = keep - FD_H;
            double down = ref_loss(th, dy, kind, gelu);
            th[i] = keep;
            grad[i] = (up - down) / (2 * FD_H);
        }
}

/* ---- the sharded float32 forward and backward, per rank ----------------------------------- */

typedef struct {
    block_kind kind;
    gelu_kind gelu;
    const float *th, *dy;
    float y[TE];                 /* rank 0's output */
    float grad[NP_MAX];          /* sharded gradients assembled; replicated ones from rank 0 */
    float rep[MAXP][NP_MAX];     /* every rank's replicated gradients and dx (at XIN) */
    int same_as_inference[MAXP]; /* training forward == inference forward, bitwise */
    uint64_t bwd_calls[MAXP], bwd_elems[MAXP], all_calls[MAXP];
} block_job;

typedef struct {
    float fc_w[E_ * F_], fc_b[F_], mp_w[F_ * E_];
    float qkv_w[E_ * 3 * E_], qkv_b[3 * E_], ap_w[E_ * E_];
    float g_fc_w[E_ * F_], g_fc_b[F_], g_mp_w[F_ * E_], g_mp_b[E_];
    float g_qkv_w[E_ * 3 * E_], g_qkv_b[3 * E_], g_ap_w[E_ * E_], g_ap_b[E_];
    float g_ln1w[E_], g_ln1b[E_], g_ln2w[E_], g_ln2b[E_];
    float ln1[TE], a[TE], x1[TE], ln2[TE], m[TE], y[TE], inf[TE];
    float d_ln[TE], d_x1[TE], d_x[TE], d_tmp[TE];
    float pre[T_ * F_], act[T_ * F_], mlp_scratch[T_ * F_];
    float att_saved[T_ * 3 * E_ + NH * T_ * T_ + TE], att_scratch[T_ * 3 * E_ + TE + T_ * T_];
} rank_bufs;

static int block_rank(comm_t *comm, void *arg) {
    block_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm);
    rank_bufs *b = calloc(1, sizeof(*b));
    if (!b) return comm_fail(comm, "out of memory");
    const float *th = job->th, *x = th + poff[XIN];
    /* This rank's shards: MLP columns [f0, f0 + fl), heads [h0, h0 + hl). */
    int f0 = (int)split_offset(F_, P, r), fl = (int)split_count(F_, P, r);
    int h0 = (int)split_offset(NH, P, r), hl = (int)split_count(NH, P, r), hd = hl * D_;
    for (int i = 0; i < E_; i++)
        for (int j = 0; j < fl; j++) b->fc_w[i * fl + j] = th[poff[FCW] + i * F_ + f0 + j];
    memcpy(b->fc_b, th + poff[FCB] + f0, (size_t)fl * sizeof(float));
    memcpy(b->mp_w, th + poff[MPW] + (size_t)f0 * E_, (size_t)fl * E_ * sizeof(float));
    for (int i = 0; i < E_; i++)
        for (int part = 0; part < 3; part++)
            for (int j = 0; j < hd; j++)
                b->qkv_w[i * 3 * hd + part * hd + j] =
                    th[poff[QKVW] + i * 3 * E_ + part * E_ + h0 * D_ + j];
    for (int part = 0; part < 3; part++)
        for (int j = 0; j < hd; j++)
            b->qkv_b[part * hd + j] = th[poff[QKVB] + part * E_ + h0 * D_ + j];
    memcpy(b->ap_w, th + poff[APW] + (size_t)h0 * D_ * E_, (size_t)hd * E_ * sizeof(float));
    mlp_weights mw = {.fc = kernel_weight_f32(b->fc_w, E_, fl),
                      .fc_b = b->fc_b,
                      .proj = kernel_weight_f32(b->mp_w, fl, E_),
                      .proj_b = th + poff[MPB],
                      .E = E_,
                      .f_local = fl,
                      .gelu = job->gelu};
    attention_weights aw = {.qkv = kernel_weight_f32(b->qkv_w, E_, 3 * hd),
                            .qkv_b = b->qkv_b,
                            .proj = kernel_weight_f32(b->ap_w, hd, E_),
                            .proj_b = th + poff[APB],
                            .E = E_,
                            .D = D_,
                            .h_local = hl};
    mlp_grads mg = {b->g_fc_w, b->g_fc_b, b->g_mp_w, b->g_mp_b};
    attention_grads ag = {b->g_qkv_w, b->g_qkv_b, b->g_ap_w, b->g_ap_b};
    mlp_saved ms = {b->pre, b->act};
    attention_saved as;
    attention_saved_view(&as, b->att_saved, &aw, T_);
    if (attention_saved_floats(&aw, T_) > sizeof(b->att_saved) / sizeof(float) ||
        attention_backward_scratch_floats(&aw, T_) > sizeof(b->att_scratch) / sizeof(float)) {
        free(b);
        return comm_fail(comm, "attention buffers too small");
    }
    int rc = 0, same = 1;
    const float *dy = job->dy;
    comm_ledger_reset(comm);

    /* Forward (and, for the blocks alone, the inference forward on the same input to compare). */
    const float *mlp_in = x, *attn_in = x;
    if (job->kind == BLK_LAYER) {
        layernorm_forward(b->ln1, x, th + poff[LN1W], th + poff[LN1B], T_, E_, EPS);
        attn_in = b->ln1;
    }
    if (job->kind != BLK_MLP) {
        rc = parallel_attention_forward_train(comm, b->a, attn_in, &aw, T_, &as, "attn");
        if (job->kind == BLK_ATTN) memcpy(b->y, b->a, sizeof(b->y));
    }
    if (!rc && job->kind == BLK_LAYER) {
        for (int i = 0; i < TE; i++) b->x1[i] = x[i] + b->a[i];
        layernorm_forward(b->ln2, b->x1, th + poff[LN2W], th + poff[LN2B], T_, E_, EPS);
        mlp_in = b->ln2;
    }
    if (!rc && job->kind != BLK_ATTN) {
        rc = parallel_mlp_forward_train(comm, b->m, mlp_in, &mw, T_, &ms, "mlp");
        for (int i = 0; i < TE; i++)
            b->y[i] = job->kind == BLK_LAYER ? b->x1[i] + b->m[i] : b->m[i];
    }
    if (!rc && job->kind == BLK_MLP) {
        rc = parallel_mlp_forward(comm, b->inf, x, &mw, T_, b->mlp_scratch, "inference");
        same = memcmp(b->inf, b->m, sizeof(b->inf)) == 0;
    }
    if (!rc && job->kind == BLK_ATTN) {
        rc = parallel_attention_forward(comm, b->inf, x, &aw, T_, 0, NULL, b->att_scratch,
                                        "inference");
        same = memcmp(b->inf, b->a, sizeof(b->inf)) == 0;
    }
    ledger_counts fwd_inf = ledger_tag_counts(comm_ledger(comm), "inference", LEDGER_ALLREDUCE);
    uint64_t before = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
    uint64_t before_elems = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).elements;

    /* Backward. */
    if (!rc && job->kind == BLK_MLP)
        rc = parallel_mlp_backward(comm, b->d_x, &mg, x, &mw, dy, T_, &ms, b->mlp_scratch, "mlp");
    if (!rc && job->kind == BLK_ATTN)
        rc = parallel_attention_backward(comm, b->d_x, &ag, x, &aw, dy, T_, &as, b->att_scratch,
                                         "attn");
    if (!rc && job->kind == BLK_LAYER) {
        /* y = x1 + mlp(ln2(x1)), x1 = x + attn(ln1(x)): residuals add their gradients. */
        rc = parallel_mlp_backward(comm, b->d_ln, &mg, b->ln2, &mw, dy, T_, &ms, b->mlp_scratch,
                                   "mlp");
        layernorm_backward(b->d_tmp, b->g_ln2w, b->g_ln2b, b->x1, th + poff[LN2W], b->d_ln, T_, E_,
                           EPS);
        for (int i = 0; i < TE; i++) b->d_x1[i] = dy[i] + b->d_tmp[i];
        if (!rc)
            rc = parallel_attention_backward(comm, b->d_ln, &ag, b->ln1, &aw, b->d_x1, T_, &as,
                                             b->att_scratch, "attn");
        layernorm_backward(b->d_tmp, b->g_ln1w, b->g_ln1b, x, th + poff[LN1W], b->d_ln, T_, E_,
                           EPS);
        for (int i = 0; i < TE; i++) b->d_x[i] = b->d_x1[i] + b->d_tmp[i];
    }
    if (rc) {
        free(b);
        return rc;
    }
    ledger_counts tot = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE);
    job->bwd_calls[r] = tot.calls - before;
    job->bwd_elems[r] = tot.elements - before_elems;
    job->all_calls[r] = tot.calls - fwd_inf.calls; /* forward + backward, inference excluded */
    job->same_as_inference[r] = same;

    /* Assemble: sharded gradients into their places, replicated ones per rank. */
    float *g = job->grad, *rep = job->rep[r];
    for (int i = 0; i < E_; i++)
        for (int j = 0; j < fl; j++) g[poff[FCW] + i * F_ + f0 + j] = b->g_fc_w[i * fl + j];
    memcpy(g + poff[FCB] + f0, b->g_fc_b, (size_t)fl * sizeof(float));
    memcpy(g + poff[MPW] + (size_t)f0 * E_, b->g_mp_w, (size_t)fl * E_ * sizeof(float));
    for (int i = 0; i < E_; i++)
        for (int part = 0; part < 3; part++)
            for (int j = 0; j < hd; j++)
                g[poff[QKVW] + i * 3 * E_ + part * E_ + h0 * D_ + j] =
                    b->g_qkv_w[i * 3 * hd + part * hd + j];
    for (int part = 0; part < 3; part++)
        for (int j = 0; j < hd; j++)
            g[poff[QKVB] + part * E_ + h0 * D_ + j] = b->g_qkv_b[part * hd + j];
    memcpy(g + poff[APW] + (size_t)h0 * D_ * E_, b->g_ap_w, (size_t)hd * E_ * sizeof(float));
    const struct {
        int p;
        const float *src;
    } reps[] = {{LN1W, b->g_ln1w}, {LN1B, b->g_ln1b}, {APB, b->g_ap_b}, {LN2W, b->g_ln2w},
                {LN2B, b->g_ln2b}, {MPB, b->g_mp_b},  {XIN, b->d_x}};
    for (size_t k = 0; k < sizeof(reps) / sizeof(reps[0]); k++) {
        memcpy(rep + poff[reps[k].p], reps[k].src, psize[reps[k].p] * sizeof(float));
        if (r == 0) memcpy(g + poff[reps[k].p], reps[k].src, psize[reps[k].p] * sizeof(float));
    }
    if (r == 0) memcpy(job->y, b->y, sizeof(job->y));
    free(b);
    return 0;
}

/* max |a - ref| / max |ref| over parameter p. */
static double rel_err_f(const float *a, const double *ref, int p) {
    double num = 0, den = 0;
    for (size_t i = poff[p]; i < poff[p + 1]; i++) {
        num = fmax(num, fabs(a[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return den > 0 ? num / den : num;
}

static void check_block(block_kind kind, gelu_kind gelu, uint32_t seed) {
    init_offsets();
    static float th[NP_MAX], dy[TE], g1[NP_MAX];
    static double fd[NP_MAX], gd[NP_MAX];
    for (size_t i = 0; i < poff[NPARAM]; i++) th[i] = 0.5f * urand(&seed);
    for (int i = 0; i < E_; i++) { /* LayerNorm weights around 1 */
        th[poff[LN1W] + i] += 1.0f;
        th[poff[LN2W] + i] += 1.0f;
    }
    for (size_t i = poff[XIN]; i < poff[XIN + 1]; i++) th[i] *= 4.0f; /* x in [-2, 2] */
    for (int i = 0; i < TE; i++) dy[i] = urand(&seed);
    ref_gradients(fd, th, dy, kind, gelu);
    static block_job job;
    const char *kname[] = {"mlp", "attention", "layer"};
    for (int P = 1; P <= MAXP; P++) {
        memset(&job, 0, sizeof(job));
        job.kind = kind;
        job.gelu = gelu;
        job.th = th;
        job.dy = dy;
        char err[256];
        if (comm_launch(COMM_BACKEND_THREADS, P, block_rank, &job, err, sizeof(err)))
            fail_msg("%s P=%d: %s", kname[kind], P, err);
        /* The float forward computes the reference's function. */
        double y[TE], fwd = 0, ys = 0;
        static double thd[NP_MAX];
        for (size_t i = 0; i < poff[NPARAM]; i++) thd[i] = th[i];
        ref_forward(y, thd, kind, gelu);
        for (int i = 0; i < TE; i++) {
            fwd = fmax(fwd, fabs(job.y[i] - y[i]));
            ys = fmax(ys, fabs(y[i]));
        }
        if (fwd > 1e-5 * ys) fail_msg("%s P=%d: forward off by %.2e", kname[kind], P, fwd);
        double worst_fd = 0, worst_p = 0;
        for (int p = 0; p < NPARAM; p++) {
            if (!uses(kind, p)) continue;
            double e = rel_err_f(job.grad, fd, p);
            worst_fd = fmax(worst_fd, e);
            if (e > FD_TOL)
                fail_msg("%s P=%d: d%s off the finite differences by %.2e of its scale",
                         kname[kind], P, pname[p], e);
            if (P > 1) {
                for (size_t i = poff[p]; i < poff[p + 1]; i++) gd[i] = g1[i];
                double ep = rel_err_f(job.grad, gd, p);
                worst_p = fmax(worst_p, ep);
                if (ep > P_TOL)
                    fail_msg("%s P=%d: d%s differs from P=1 by %.2e of its scale", kname[kind], P,
                             pname[p], ep);
            }
            /* (3) Replicated gradients and dx: the same bits on every rank. */
            if (replicated(p) || p == XIN)
                for (int r = 1; r < P; r++)
                    if (memcmp(job.rep[r] + poff[p], job.rep[0] + poff[p],
                               psize[p] * sizeof(float)))
                        fail_msg("%s P=%d: d%s differs between rank 0 and rank %d", kname[kind], P,
                                 pname[p], r);
        }
        if (P == 1) memcpy(g1, job.grad, sizeof(g1));
        /* (4) One AllReduce of T * E floats per block backward; 2 per block forward+backward. */
        uint64_t blocks = kind == BLK_LAYER ? 2 : 1;
        for (int r = 0; r < P; r++) {
            assert_true(job.same_as_inference[r]);
            assert_int_equal(job.bwd_calls[r], blocks);
            assert_int_equal(job.bwd_elems[r], blocks * TE);
            assert_int_equal(job.all_calls[r], 2 * blocks);
        }
        printf("# %-9s P=%d: forward %.1e, gradients vs finite differences %.1e, vs P=1 %.1e "
               "(of each tensor's scale); %d AllReduce backward\n",
               kname[kind], P, fwd / ys, worst_fd, worst_p, (int)job.bwd_calls[0]);
    }
}

static void test_mlp_backward(void **state) {
    (void)state;
    check_block(BLK_MLP, GELU_TANH, 101);
}

static void test_attention_backward(void **state) {
    (void)state;
    check_block(BLK_ATTN, GELU_TANH, 202);
}

/* A pre-LN transformer layer: LayerNorm, attention, residual, LayerNorm, MLP (erf), residual. */
static void test_layer_backward(void **state) {
    (void)state;
    check_block(BLK_LAYER, GELU_ERF, 303);
}

/* ---- GELU and LayerNorm alone ------------------------------------------------------------- */

static void test_gelu_backward(void **state) {
    (void)state;
    enum { N = 401 };
    static float x[N], dy[N], dx[N];
    uint32_t seed = 7;
    for (int i = 0; i < N; i++) {
        x[i] = -6.0f + 12.0f * (float)i / (N - 1); /* both tails and the bend */
        dy[i] = urand(&seed);
    }
    for (int kind = GELU_TANH; kind <= GELU_ERF; kind++) {
        gelu_backward(dx, x, dy, N, (gelu_kind)kind);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double d =
                (ref_gelu(x[i] + FD_H, (gelu_kind)kind) - ref_gelu(x[i] - FD_H, (gelu_kind)kind)) /
                (2 * FD_H);
            worst = fmax(worst, fabs(dx[i] - dy[i] * d));
        }
        /* |GELU'| <= 1.13 and |dy| <= 1, but the tanh form's terms s and v s (1 - s) dz reach
         * ~10 in size around |v| ~ 3 before cancelling, so float32 rounding (6e-8 relative)
         * leaves ~1e-6 (measured 1.3e-6 tanh). A wrong constant or factor moves it by 1e-2. */
        printf("# gelu %s: max |dx - finite differences| = %.1e\n",
               kind == GELU_TANH ? "tanh" : "erf", worst);
        assert_true(worst < 5e-6);
        /* In place (dx aliasing dy) gives the same bits. */
        float y[N];
        memcpy(y, dy, sizeof(y));
        gelu_backward(y, x, y, N, (gelu_kind)kind);
        assert_memory_equal(y, dx, sizeof(y));
    }
}

static void test_layernorm_backward(void **state) {
    (void)state;
    init_offsets();
    static float th[NP_MAX], dy[TE], dx[TE], dw[E_], db[E_];
    uint32_t seed = 11;
    for (size_t i = 0; i < poff[NPARAM]; i++) th[i] = urand(&seed);
    for (int i = 0; i < E_; i++) th[poff[LN1W] + i] += 1.0f;
    for (size_t i = poff[XIN]; i < poff[XIN + 1]; i++) th[i] = 3.0f * th[i] + 1.0f; /* offset */
    for (int i = 0; i < TE; i++) dy[i] = urand(&seed);
    for (int i = 0; i < E_; i++) dw[i] = db[i] = 1.0f; /* they accumulate */
    const float *x = th + poff[XIN], *w = th + poff[LN1W];
    layernorm_backward(dx, dw, db, x, w, dy, T_, E_, EPS);
    /* Finite differences of sum(dy ⊙ LN(x)) in double, for x, w and b. */
    static double thd[NP_MAX];
    for (size_t i = 0; i < poff[NPARAM]; i++) thd[i] = th[i];
    const int ps[3] = {XIN, LN1W, LN1B};
    const float *got[3] = {dx, dw, db};
    const float base[3] = {0.0f, 1.0f, 1.0f};
    for (int k = 0; k < 3; k++) {
        double worst = 0, scale = 0;
        for (size_t i = poff[ps[k]]; i < poff[ps[k] + 1]; i++) {
            double keep = thd[i], L[2];
            for (int s = 0; s < 2; s++) {
                double y[TE];
                thd[i] = keep + (s ? -FD_H : FD_H);
                ref_layernorm(y, thd + poff[XIN], thd + poff[LN1W], thd + poff[LN1B], T_, E_);
                L[s] = 0;
                for (int j = 0; j < TE; j++) L[s] += dy[j] * y[j];
            }
            thd[i] = keep;
            double fd = (L[0] - L[1]) / (2 * FD_H);
            worst = fmax(worst, fabs(got[k][i - poff[ps[k]]] - base[k] - fd));
            scale = fmax(scale, fabs(fd));
        }
        printf("# layernorm d%s: max error %.1e of scale %.2f\n", pname[ps[k]], worst / scale,
               scale);
        assert_true(worst <= FD_TOL * scale);
    }
}

/* The lone linear layers: column-parallel with its AllReduce, row-parallel with none. */
typedef struct {
    const float *x, *w, *d;          /* x [T, E], w [E, F], d_out [T, F] */
    float dx[MAXP][TE], dw[E_ * F_]; /* dx per rank; dw assembled */
    uint64_t calls[MAXP];
} linear_job;

static int linear_rank(comm_t *comm, void *arg) {
    linear_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm);
    int c0 = (int)split_offset(F_, P, r), nc = (int)split_count(F_, P, r);
    static float wl[MAXP][E_ * F_], dl[MAXP][T_ * F_], dwl[MAXP][E_ * F_];
    for (int i = 0; i < E_; i++)
        for (int j = 0; j < nc; j++) wl[r][i * nc + j] = job->w[i * F_ + c0 + j];
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < nc; j++) dl[r][t * nc + j] = job->d[t * F_ + c0 + j];
    memset(dwl[r], 0, sizeof(dwl[r]));
    comm_ledger_reset(comm);
    int rc = column_parallel_backward_reduce(comm, job->dx[r], dwl[r], NULL, dl[r], job->x, wl[r],
                                             T_, E_, nc, "col");
    job->calls[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
    for (int i = 0; i < E_; i++)
        for (int j = 0; j < nc; j++) job->dw[i * F_ + c0 + j] = dwl[r][i * nc + j];
    return rc;
}

static void test_linear_backward(void **state) {
    (void)state;
    static float x[TE], w[E_ * F_], d[T_ * F_], dxr[T_ * F_], dwr[F_ * E_], dbr[E_];
    uint32_t seed = 5;
    for (int i = 0; i < TE; i++) x[i] = urand(&seed);
    for (int i = 0; i < E_ * F_; i++) w[i] = urand(&seed);
    for (int i = 0; i < T_ * F_; i++) d[i] = urand(&seed);
    /* Exact sums in double. */
    static double dx_ref[TE], dw_ref[E_ * F_];
    for (int t = 0; t < T_; t++)
        for (int i = 0; i < E_; i++) {
            double s = 0;
            for (int j = 0; j < F_; j++) s += (double)d[t * F_ + j] * w[i * F_ + j];
            dx_ref[t * E_ + i] = s;
        }
    for (int i = 0; i < E_; i++)
        for (int j = 0; j < F_; j++) {
            double s = 0;
            for (int t = 0; t < T_; t++) s += (double)x[t * E_ + i] * d[t * F_ + j];
            dw_ref[i * F_ + j] = s;
        }
    static linear_job job;
    job.x = x;
    job.w = w;
    job.d = d;
    for (int P = 1; P <= MAXP; P++) {
        char err[256];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, linear_rank, &job, err, 256), 0);
        for (int r = 0; r < P; r++) {
            assert_int_equal(job.calls[r], 1);
            assert_memory_equal(job.dx[r], job.dx[0], sizeof(job.dx[0]));
        }
        /* 96-term dot products of values in [-1, 1]: error < 96 * 2^-24 * 96 ~ 5e-4 worst
         * case, ~1e-6 in practice. */
        for (int i = 0; i < TE; i++) assert_true(fabs(job.dx[0][i] - dx_ref[i]) < 1e-4);
        for (int i = 0; i < E_ * F_; i++) assert_true(fabs(job.dw[i] - dw_ref[i]) < 1e-5);
    }
    /* Row-parallel (whole, P = 1 shapes: it has no communication to test): x [T, F] = d,
     * W [F, E] = w read as [F, E], d_out [T, E] = x. */
    memset(dwr, 0, sizeof(dwr));
    memset(dbr, 0, sizeof(dbr));
    row_parallel_backward(dxr, dwr, dbr, x, d, w, T_, F_, E_);
    for (int t = 0; t < T_; t++)
        for (int k = 0; k < F_; k++) {
            double s = 0;
            for (int j = 0; j < E_; j++) s += (double)x[t * E_ + j] * w[k * E_ + j];
            assert_true(fabs(dxr[t * F_ + k] - s) < 1e-5);
        }
    for (int k = 0; k < F_; k++)
        for (int j = 0; j < E_; j++) {
            double s = 0;
            for (int t = 0; t < T_; t++) s += (double)d[t * F_ + k] * x[t * E_ + j];
            assert_true(fabs(dwr[k * E_ + j] - s) < 1e-5);
        }
    for (int j = 0; j < E_; j++) {
        double s = 0;
        for (int t = 0; t < T_; t++) s += x[t * E_ + j];
        assert_true(fabs(dbr[j] - s) < 1e-6);
    }
}

int main(void) {
    kernel_set_threads(1); /* one core per rank */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu_backward),      cmocka_unit_test(test_layernorm_backward),
        cmocka_unit_test(test_linear_backward),    cmocka_unit_test(test_mlp_backward),
        cmocka_unit_test(test_attention_backward), cmocka_unit_test(test_layer_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
