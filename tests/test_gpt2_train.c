/* test_gpt2_train.c — one training step of GPT-2 split over P ranks (gpt2_train.h).
 *
 * Model: a seeded random GPT-2 (2 layers, 24 wide, 6 heads of 4, vocabulary 37, context 16),
 * T = 8 tokens. P = 2 and 3 split heads, MLP columns (96) and vocabulary rows (37: unevenly).
 *
 * Checks:
 *  (1) the loss at P = 1, 2, 3 against the mean cross-entropy of tests/gpt2_reference.c's
 *      double-precision logits: LOSS_TOL (see below);
 *  (2) the gradient at P = 2, 3, assembled back into whole tensors (Q/K/V head blocks, column
 *      and row slices, vocabulary rows), against P = 1's, per tensor: P_TOL of the tensor's
 *      largest |gradient|;
 *  (3) the P = 1 gradient against central finite differences of the loss on 3 elements of
 *      every tensor, in DOUBLE precision: the perturbed float32 weight is written into the
 *      model file and the loss recomputed from the reference's double logits (the actual
 *      float32 perturbation p+ - p- is the denominator). h = 1e-3: truncation ~h^2 |L'''| and
 *      rounding ~1e-16 |L| / h are both far below float32's errors, so the difference measures
 *      the float32 backward itself: FD_TOL of the tensor's largest |gradient|;
 *  (4) replicated parameters' gradients are the same bits on every rank; the gradient norm is
 *      the same bits on every rank and equals P = 1's; counting replicated tensors P times
 *      would give a norm visibly different (asserted to be > 100x the tolerance away);
 *  (5) the ledger of one step: 1 + 4 * n_layer + 1 allreduce of T * E floats (embedding, two
 *      blocks forward and backward per layer, the LM head's backward), the cross-entropy's one
 *      allgather, the grad norm's one allreduce of 1 float, nothing else;
 *  (6) AdamW steps at P = 1 and P = 3 from the same weights on the same batch give the same
 *      loss curve (ADAM_TOL) and the loss decreases; gradient accumulation (two calls) doubles
 *      the gradient and grad_scale = 1/2 restores it; with zero gradients a step decays exactly
 *      the 2-D weights and leaves biases and LayerNorm parameters untouched.
 *
 * Tolerances (the measured values are printed by each test):
 *  - LOSS_TOL = 1e-5 absolute on a loss of ~3.6: float32 logits are within ~1e-6 of the largest
 *    logit of the reference (tests/test_gpt2.c), and the loss is a softmax average of them
 *    (measured 1.0e-7).
 *  - P_TOL = 1e-5: both sides are float32 and differ only in summation order (AllReduce of P
 *    partial sums, GEMM blocking), as in tests/test_backward.c (measured 7.0e-7); a sharding
 *    bug (a wrong head block, a missing AllReduce, a bias counted P times) moves a gradient by
 *    O(1) of its scale.
 *  - FD_TOL = 1e-4: the float32 backward through 2 layers against a double-precision
 *    derivative; float32 roundoff is 6e-8 per operation, amplified by the depth and by dot
 *    products of up to 96 terms (measured 9.1e-6); a wrong or missing term is O(1e-2) or more.
 *  - ADAM_TOL = 1e-4 relative: AdamW's first steps move each parameter by ~lr * sign(g), so a
 *    float32 difference in a near-zero gradient component could flip one update (measured
 *    8.2e-8); the curve still agrees far better than the decrease it tests (> 5e-2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt2_reference.h"
#include "linshard/model.h"
#include "linshard/params.h"
#include "linshard/train.h"
#include "linshard/kernels.h"

#define LOSS_TOL 1e-5
#define P_TOL 1e-5
#define FD_TOL 1e-4
#define FD_H 1e-3
#define ADAM_TOL 1e-4

enum { T_ = 8, MAXP = 4, STEPS = 6 };

static model_config model_cfg; /* 2 layers, 24 wide, 6 heads, vocab 37, context 16: setup */

/* ---- fixtures ------------------------------------------------------------------------------ */

typedef struct {
    char *dir;
    char path[600];
    st_file file; /* the weights, for the finite differences */
    st_set weights;
    model_shard full; /* P = 1 shard: its parameter table is the layout gradients are read in */
    int tokens[T_], targets[T_];
} fixture;

static int setup(void **state) {
    kernel_set_threads(1);
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    model_cfg = model_config_gpt2(2, 24, 6, 37, 16, GELU_TANH);
    f->dir = strdup("/tmp/linshard-test-train-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    model_init_opts opts = {11, ST_F32, 0, 0, 0};
    char err[512];
    if (model_init_random(f->dir, &model_cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    snprintf(f->path, sizeof(f->path), "%s/model.safetensors", f->dir);
    if (st_open(&f->file, f->path, err, sizeof(err))) fail_msg("%s", err);
    if (st_set_open(&f->weights, f->dir, err, sizeof(err))) fail_msg("%s", err);
    if (model_shard_load(&f->full, &model_cfg, &f->weights, 0, 1, T_, err, sizeof(err)))
        fail_msg("%s", err);
    for (int t = 0; t < T_; t++) {
        f->tokens[t] = (t * 13 + 5) % model_cfg.vocab_size;
        f->targets[t] = (t * 7 + 3) % model_cfg.vocab_size;
    }
    f->tokens[0] = model_cfg.vocab_size - 1; /* the last row: on the last rank */
    f->targets[T_ - 1] = model_cfg.vocab_size - 1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    model_shard_free(&f->full);
    st_close(&f->file);
    st_set_close(&f->weights);
    unlink(f->path);
    char path[600];
    snprintf(path, sizeof(path), "%s/config.json", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- the per-rank job ---------------------------------------------------------------------- */

typedef struct {
    const fixture *f;
    int steps; /* 0: one forward/backward; > 0: that many AdamW steps */
    float losses[MAXP][STEPS + 1];
    double norm[MAXP];
    float *grad;      /* whole-tensor layout of f->full, assembled */
    float *rep[MAXP]; /* each rank's replicated gradients, same layout */
    char ledger_err[MAXP][160];
    float accum_err[MAXP];
} train_job;

/* Copies this rank's gradient shard into whole-tensor positions of the P = 1 layout. Sharded
 * tensors go to `grad` (disjoint parts per rank); replicated ones to rep (and, from rank 0, to
 * grad). */
static void assemble(const model_shard *m, const model_trainer *tr, const model_shard *full,
                     float *grad, float *rep) {
    size_t E = (size_t)m->cfg.n_embd, D = E / (size_t)m->cfg.n_head;
    size_t hd = (size_t)m->h_local * D, c0 = (size_t)m->h0 * D;
    size_t fl = (size_t)m->f_local, f0 = (size_t)m->f0, F = 4 * E;
#define SRC(view) model_trainer_grad(tr, m, m->view)
#define DST(buf, view) ((buf) + (full->view - full->params))
#define REPL(view, n)                                                                              \
    do {                                                                                           \
        memcpy(DST(rep, view), SRC(view), (n) * sizeof(float));                                    \
        if (m->rank == 0) memcpy(DST(grad, view), SRC(view), (n) * sizeof(float));                 \
    } while (0)
    memcpy(DST(grad, wte) + (size_t)m->v0 * E, SRC(wte), (size_t)m->v_local * E * sizeof(float));
    REPL(wpe, (size_t)m->cfg.n_positions * E);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        REPL(layers[l].norm1_w, E);
        REPL(layers[l].norm1_b, E);
        REPL(layers[l].proj_b, E);
        REPL(layers[l].norm2_w, E);
        REPL(layers[l].norm2_b, E);
        REPL(layers[l].fcp_b, E);
        const float *qw = SRC(layers[l].qkv_w), *qb = SRC(layers[l].qkv_b);
        float *dqw = DST(grad, layers[l].qkv_w), *dqb = DST(grad, layers[l].qkv_b);
        for (size_t part = 0; part < 3; part++) {
            for (size_t i = 0; i < E; i++)
                memcpy(dqw + i * 3 * E + part * E + c0, qw + i * 3 * hd + part * hd,
                       hd * sizeof(float));
            memcpy(dqb + part * E + c0, qb + part * hd, hd * sizeof(float));
        }
        memcpy(DST(grad, layers[l].proj_w) + c0 * E, SRC(layers[l].proj_w), hd * E * sizeof(float));
        const float *fw = SRC(layers[l].fc_w);
        float *dfw = DST(grad, layers[l].fc_w);
        for (size_t i = 0; i < E; i++) memcpy(dfw + i * F + f0, fw + i * fl, fl * sizeof(float));
        memcpy(DST(grad, layers[l].fc_b) + f0, SRC(layers[l].fc_b), fl * sizeof(float));
        memcpy(DST(grad, layers[l].fcp_w) + f0 * E, SRC(layers[l].fcp_w), fl * E * sizeof(float));
    }
    REPL(normf_w, E);
    REPL(normf_b, E);
#undef SRC
#undef DST
#undef REPL
}

/* The ledger of one forward/backward + grad norm, checked on this rank; "" if as expected. */
static void check_ledger(comm_t *comm, const model_config *c, int T, char *msg, size_t len) {
    const ledger_t *lg = comm_ledger(comm);
    uint64_t TE = (uint64_t)T * (uint64_t)c->n_embd;
    char tags[64][48];
    int n = 0;
    snprintf(tags[n++], 48, "embed");
    snprintf(tags[n++], 48, "lm_head.backward");
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(tags[n++], 48, "layer%d.attn", l);
        snprintf(tags[n++], 48, "layer%d.mlp", l);
        snprintf(tags[n++], 48, "layer%d.attn.backward", l);
        snprintf(tags[n++], 48, "layer%d.mlp.backward", l);
    }
    msg[0] = '\0';
    for (int i = 0; i < n; i++) {
        ledger_counts k = ledger_tag_counts(lg, tags[i], LEDGER_ALLREDUCE);
        if (k.calls != 1 || k.elements != TE) {
            snprintf(msg, len, "%.47s: %llu allreduce of %llu elements", tags[i],
                     (unsigned long long)k.calls, (unsigned long long)k.elements);
            return;
        }
    }
    ledger_counts gn = ledger_tag_counts(lg, "grad_norm", LEDGER_ALLREDUCE);
    ledger_counts ce = ledger_tag_counts(lg, "loss", LEDGER_ALLGATHER);
    uint64_t ar = ledger_op_total(lg, LEDGER_ALLREDUCE).calls;
    uint64_t all = ledger_total_calls(lg);
    uint64_t want_ar = 1 + 4 * (uint64_t)c->n_layer + 1 + 1;
    if (gn.calls != 1 || gn.elements != 1 || ce.calls != 1 || ar != want_ar || all != want_ar + 1)
        snprintf(msg, len,
                 "grad_norm %llu, loss allgather %llu, allreduce %llu (want %llu), all %llu",
                 (unsigned long long)gn.calls, (unsigned long long)ce.calls, (unsigned long long)ar,
                 (unsigned long long)want_ar, (unsigned long long)all);
}

static int train_rank(comm_t *comm, void *arg) {
    train_job *job = arg;
    const fixture *f = job->f;
    int r = comm_rank(comm), P = comm_size(comm);
    model_shard m;
    model_trainer tr;
    char err[512];
    if (model_shard_load(&m, &model_cfg, &f->weights, r, P, T_, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (model_trainer_init(&tr, &m, T_, err, sizeof(err))) {
        model_shard_free(&m);
        return comm_fail(comm, "%s", err);
    }
    int rc = 0;
    if (job->steps == 0) {
        comm_ledger_reset(comm);
        rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_,
                                          &job->losses[r][0]);
        if (!rc) rc = model_grad_norm(comm, &m, &tr, &job->norm[r]);
        if (!rc) check_ledger(comm, &model_cfg, T_, job->ledger_err[r], sizeof(job->ledger_err[r]));
        if (!rc) assemble(&m, &tr, &f->full, job->grad, job->rep[r]);
        /* Accumulation: a second call adds the same gradient; grad_scale 1/2 on two calls
         * gives back one call's gradient. */
        float *once = malloc(tr.n_params * sizeof(float)), loss;
        if (!once) rc = comm_fail(comm, "out of memory");
        if (!rc) {
            memcpy(once, tr.grads, tr.n_params * sizeof(float));
            rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_, &loss);
        }
        double worst = 0, scale = 0;
        for (size_t i = 0; !rc && i < tr.n_params; i++) {
            worst = fmax(worst, fabs(tr.grads[i] - 2.0 * once[i]));
            scale = fmax(scale, fabs(once[i]));
        }
        if (!rc) {
            model_trainer_zero_grad(&tr);
            tr.grad_scale = 0.5f;
            rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_, &loss);
            if (!rc)
                rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_, &loss);
        }
        for (size_t i = 0; !rc && i < tr.n_params; i++)
            worst = fmax(worst, fabs(tr.grads[i] - once[i]));
        job->accum_err[r] = (float)(worst / (scale > 0 ? scale : 1));
        free(once);
    } else {
        for (int s = 0; s < job->steps && !rc; s++) {
            model_trainer_zero_grad(&tr);
            double norm = 0;
            rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_,
                                              &job->losses[r][s]);
            if (!rc) rc = model_grad_norm(comm, &m, &tr, &norm);
            float clip = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
            if (!rc) model_adamw_step(&m, &tr, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, clip);
        }
        if (!rc)
            rc = model_train_forward_backward(comm, &m, &tr, f->tokens, f->targets, T_,
                                              &job->losses[r][job->steps]);
    }
    model_trainer_free(&tr);
    model_shard_free(&m);
    return rc;
}

static train_job *run_job(const fixture *f, int P, int steps) {
    train_job *job = calloc(1, sizeof(*job));
    assert_non_null(job);
    job->f = f;
    job->steps = steps;
    job->grad = calloc(f->full.n_params, sizeof(float));
    assert_non_null(job->grad);
    for (int r = 0; r < P; r++) {
        job->rep[r] = calloc(f->full.n_params, sizeof(float));
        assert_non_null(job->rep[r]);
    }
    char err[512];
    if (comm_launch(COMM_BACKEND_THREADS, P, train_rank, job, err, sizeof(err)))
        fail_msg("P=%d: %s", P, err);
    return job;
}

static void free_job(train_job *job) {
    free(job->grad);
    for (int r = 0; r < MAXP; r++) free(job->rep[r]);
    free(job);
}

/* Mean cross-entropy of the reference's double logits. */
static double reference_loss(const fixture *f) {
    int V = model_cfg.vocab_size;
    double *logits = malloc((size_t)T_ * (size_t)V * sizeof(double));
    assert_non_null(logits);
    char err[512];
    if (gpt2_reference_logits(f->dir, f->tokens, T_, logits, err, sizeof(err)))
        fail_msg("reference: %s", err);
    double loss = 0;
    for (int t = 0; t < T_; t++) {
        const double *row = logits + (size_t)t * (size_t)V;
        double mx = row[0];
        for (int j = 1; j < V; j++) mx = fmax(mx, row[j]);
        double s = exp(row[0] - mx);
        for (int j = 1; j < V; j++) s += exp(row[j] - mx);
        loss += mx + log(s) - row[f->targets[t]];
    }
    free(logits);
    return loss / T_;
}

/* ---- (1) the loss -------------------------------------------------------------------------- */

static void test_loss_matches_reference(void **state) {
    fixture *f = *state;
    double ref = reference_loss(f), worst = 0;
    for (int P = 1; P <= 3; P++) {
        train_job *job = run_job(f, P, 0);
        for (int r = 0; r < P; r++) {
            double d = fabs(job->losses[r][0] - ref);
            worst = fmax(worst, d);
            if (d > LOSS_TOL)
                fail_msg("P=%d rank %d: loss %.8f, reference %.8f", P, r, job->losses[r][0], ref);
            /* The same bits on every rank. */
            assert_memory_equal(&job->losses[r][0], &job->losses[0][0], sizeof(float));
        }
        free_job(job);
    }
    printf("    loss %.6f; max |loss - reference| = %.2e (tol %.0e)\n", ref, worst, LOSS_TOL);
}

/* ---- (2) and (4): gradients across P, replicated bits, the norm ----------------------------- */

static double tensor_scale(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(g[i]));
    return s;
}

static void test_gradients_across_P(void **state) {
    fixture *f = *state;
    const model_shard *lay = &f->full;
    train_job *base = run_job(f, 1, 0);
    double norm1 = base->norm[0], worst = 0, worst_norm = 0, min_gap = INFINITY;
    for (int P = 2; P <= 3; P++) {
        train_job *job = run_job(f, P, 0);
        double rep_sq = 0, shard_sq = 0;
        for (int s = 0; s < lay->n_table; s++) {
            const model_param *seg = &lay->table[s];
            size_t count = seg->rows * seg->cols;
            const float *a = base->grad + seg->offset, *b = job->grad + seg->offset;
            double scale = tensor_scale(a, count), d = 0;
            assert_true(scale > 0);
            for (size_t i = 0; i < count; i++) d = fmax(d, fabs(a[i] - b[i]));
            worst = fmax(worst, d / scale);
            if (d > P_TOL * scale)
                fail_msg("P=%d: tensor %d: max diff %.3e > %.0e * %.3e", P, s, d, P_TOL, scale);
            double sq = 0;
            for (size_t i = 0; i < count; i++) sq += (double)b[i] * b[i];
            if (seg->sharded) {
                shard_sq += sq;
            } else {
                rep_sq += sq;
                for (int r = 1; r < P; r++) /* replicated: the same bits on every rank */
                    assert_memory_equal(job->rep[r] + seg->offset, job->rep[0] + seg->offset,
                                        count * sizeof(float));
            }
        }
        for (int r = 1; r < P; r++)
            assert_memory_equal(&job->norm[r], &job->norm[0], sizeof(double));
        double dn = fabs(job->norm[0] - norm1) / norm1;
        worst_norm = fmax(worst_norm, dn);
        if (dn > P_TOL) fail_msg("P=%d: norm %.8f vs P=1 %.8f", P, job->norm[0], norm1);
        /* The classic bug, replicated tensors summed over ranks, is far outside the tolerance. */
        double wrong = sqrt(shard_sq + P * rep_sq);
        double gap = fabs(wrong - norm1) / norm1;
        min_gap = fmin(min_gap, gap);
        assert_true(gap > 100 * P_TOL);
        free_job(job);
    }
    printf("    grads vs P=1: max diff %.2e of tensor scale (tol %.0e); norm %.6f, rel diff "
           "%.2e; replicated-counted-P-times norm off by >= %.2e\n",
           worst, P_TOL, norm1, worst_norm, min_gap);
    free_job(base);
}

/* ---- (3) finite differences in double ------------------------------------------------------ */

static void write_float(int fd, off_t off, float v) {
    assert_int_equal(pwrite(fd, &v, sizeof(v), off), (ssize_t)sizeof(v));
}

static void test_finite_differences(void **state) {
    fixture *f = *state;
    const model_shard *lay = &f->full;
    train_job *base = run_job(f, 1, 0);
    int fd = open(f->path, O_RDWR);
    assert_true(fd >= 0);
    size_t data0 = (size_t)(f->file.data - (const uint8_t *)f->file.map);
    double worst = 0;
    int checked = 0;
    for (int s = 0; s < lay->n_table; s++) {
        const model_param *seg = &lay->table[s];
        size_t count = seg->rows * seg->cols;
        /* At P = 1 each parameter is its whole checkpoint tensor, in the same layout. */
        const char *name = seg->src[0].name;
        const st_tensor *t = st_find(&f->file, name);
        if (!t) fail_msg("no tensor %s", name);
        assert_int_equal(t->numel, count);
        /* wpe rows >= T get no gradient: sample the rows in use. */
        size_t n = s == 1 ? (size_t)T_ * (size_t)model_cfg.n_embd : count;
        double scale = tensor_scale(base->grad + seg->offset, count);
        for (int k = 0; k < 3; k++) {
            size_t idx = ((size_t)k * 7919u + (size_t)s * 131u + 17u) % n;
            off_t off = (off_t)(data0 + t->begin + idx * sizeof(float));
            float p0 = f->full.params[seg->offset + idx];
            float pp = (float)(p0 + FD_H), pm = (float)(p0 - FD_H);
            write_float(fd, off, pp);
            double lp = reference_loss(f);
            write_float(fd, off, pm);
            double lm = reference_loss(f);
            write_float(fd, off, p0);
            double fdg = (lp - lm) / ((double)pp - (double)pm);
            double g = base->grad[seg->offset + idx], d = fabs(g - fdg) / scale;
            worst = fmax(worst, d);
            checked++;
            if (d > FD_TOL)
                fail_msg("%s[%zu]: gradient %.6e, finite difference %.6e (scale %.3e)", name, idx,
                         g, fdg, scale);
        }
    }
    close(fd);
    printf("    %d elements of %d tensors vs double finite differences: max diff %.2e of tensor "
           "scale (tol %.0e)\n",
           checked, lay->n_table, worst, FD_TOL);
    free_job(base);
}

/* ---- (5) the ledger, and accumulation ------------------------------------------------------ */

static void test_ledger_and_accumulation(void **state) {
    fixture *f = *state;
    float worst = 0;
    for (int P = 1; P <= 3; P++) {
        train_job *job = run_job(f, P, 0);
        for (int r = 0; r < P; r++) {
            if (job->ledger_err[r][0]) fail_msg("P=%d rank %d: %s", P, r, job->ledger_err[r]);
            worst = fmaxf(worst, job->accum_err[r]);
            assert_true(job->accum_err[r] < 1e-6f);
        }
        free_job(job);
    }
    printf("    ledger as expected at P=1..3; accumulation error %.2e of scale\n", worst);
}

/* ---- (6) AdamW ----------------------------------------------------------------------------- */

static void test_adamw_same_curve(void **state) {
    fixture *f = *state;
    train_job *a = run_job(f, 1, STEPS), *b = run_job(f, 3, STEPS);
    double worst = 0;
    for (int s = 0; s <= STEPS; s++) {
        double d = fabs(a->losses[0][s] - b->losses[0][s]) / fabs(a->losses[0][s]);
        worst = fmax(worst, d);
        if (d > ADAM_TOL)
            fail_msg("step %d: loss %.6f at P=1, %.6f at P=3", s, a->losses[0][s], b->losses[0][s]);
        for (int r = 1; r < 3; r++)
            assert_memory_equal(&b->losses[r][s], &b->losses[0][s], sizeof(float));
    }
    assert_true(a->losses[0][STEPS] < a->losses[0][0] - 0.05f);
    printf("    AdamW loss %.4f -> %.4f over %d steps; P=3 vs P=1 max rel diff %.2e (tol %.0e)\n",
           a->losses[0][0], a->losses[0][STEPS], STEPS, worst, ADAM_TOL);
    free_job(a);
    free_job(b);
}

/* Weight decay: with zero gradients an AdamW step only decays, and only the 2-D weights (wte,
 * wpe, c_attn, attn c_proj, c_fc, mlp c_proj); biases and LayerNorm parameters are unchanged. */
static void test_adamw_decays_matrices_only(void **state) {
    fixture *f = *state;
    model_shard m;
    model_trainer tr;
    char err[512];
    assert_int_equal(model_shard_load(&m, &model_cfg, &f->weights, 0, 1, T_, err, sizeof(err)), 0);
    assert_int_equal(model_trainer_init(&tr, &m, T_, err, sizeof(err)), 0);
    const float lr = 0.5f, wd = 0.1f;
    model_adamw_step(&m, &tr, lr, 0.9f, 0.95f, 1e-8f, wd, 1.0f);
    assert_int_equal(tr.step, 1);
    int n_decay = 0;
    for (int s = 0; s < m.n_table; s++) {
        const model_param *seg = &m.table[s];
        size_t count = seg->rows * seg->cols;
        n_decay += seg->decay;
        for (size_t i = 0; i < count; i++) {
            float p0 = f->full.params[seg->offset + i], p = m.params[seg->offset + i];
            if (seg->decay)
                assert_true(fabs(p - p0 * (1.0 - lr * wd)) <= 1e-6 * fabs(p0) + 1e-12);
            else
                assert_memory_equal(&p, &p0, sizeof(float));
        }
    }
    assert_int_equal(n_decay, 2 + 4 * model_cfg.n_layer);
    model_trainer_free(&tr);
    model_shard_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_matches_reference),
        cmocka_unit_test(test_gradients_across_P),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_ledger_and_accumulation),
        cmocka_unit_test(test_adamw_same_curve),
        cmocka_unit_test(test_adamw_decays_matrices_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
