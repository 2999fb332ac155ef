/* test_cross_entropy.c — vocabulary-parallel cross-entropy (loss.h) at P = 1..5 against a
 * serial double-precision reference: the loss (and its bits on every rank), the gradient
 * (analytic, and by central finite differences through the parallel loss itself), the
 * communication against the ledger, and bad targets.
 *
 * V = 37 is divisible by no P in 2..5, so the slices are uneven; with P = 5 and V = 3 two
 * ranks hold an empty slice. Logits mix values in [-1, 1] with some of magnitude up to 30, so
 * a log-sum-exp without the max subtracted would lose everything (exp(30) ~ 1e13 next to 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/comm.h"
#include "linshard/ledger.h"
#include "linshard/loss.h"
#include "linshard/split.h"

enum { T_ = 6, V_ = 37, MAXP = 5, NFD = 5 };

/* Tolerances.
 * LOSS_RTOL: the parallel loss computes exp in float (fast_expf, relative error <= 2e-7) of
 * arguments rounded to float, sums each slice in double, rounds each slice's sum to float
 * (6e-8) for the all-gather and combines the rest in double. So S = sum exp(l - M) carries a
 * relative error of a few 1e-7, i.e. log S (and each row's loss) an absolute error of a few
 * 1e-7; the loss here is > 1 (checked), so the relative error is well under 1e-6. Forgetting
 * a slice, the target or the max moves it by O(1).
 * GRAD_TOL: each gradient entry is p / T or (p - 1) / T with p a softmax probability computed
 * as fast_expf(l - M) * (float)(1 / S): relative error ~4e-7 of p <= 1, divided by T = 6, so
 * well under 1e-6 absolute. A missing 1/T or onehot is off by >= 1/37/6 ~ 5e-3.
 * FD_TOL: a central difference of the float loss with step h ~ 1e-2: the loss (~10) is a float
 * with ulp ~1e-6 and error ~1e-6, giving ~2e-6 / 2h = 1e-4 of rounding noise; the truncation
 * error h^2 / 6 * |d3 loss| <= 1e-4 / 6 * (1/T) is ~3e-6. 1e-3 absolute bounds both with room,
 * while the entries checked are 1e-2..1.7e-1 in size (a wrong sign or factor fails). */
#define LOSS_RTOL 1e-6
#define GRAD_TOL 1e-6
#define FD_TOL 1e-3
#define FD_H 1e-2f

static float urand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((double)(*s >> 8) / 16777216.0 * 2.0 - 1.0);
}

typedef struct {
    int V;
    const float *logits; /* [T, V] */
    const int *targets;
    int fd_row[NFD], fd_col[NFD]; /* entries to check by finite differences */
    int in_place;                 /* compute the gradient over the logits copy itself */
    /* results, per rank */
    float loss[MAXP];
    float grad[T_ * V_]; /* assembled: each rank writes its own columns */
    float fd[NFD];       /* written by rank 0 */
    ledger_counts gather[MAXP], others[MAXP], tagged[MAXP];
    int rc[MAXP];
} ce_job;

static int ce_rank(comm_t *comm, void *arg) {
    ce_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm), V = job->V;
    int v0 = (int)split_offset((size_t)V, P, r), vl = (int)split_count((size_t)V, P, r);
    float local[T_ * V_], grad[T_ * V_];
    float scratch[3 * T_ * (MAXP + 1)];
    /* No cmocka asserts on rank threads (they longjmp): fail the group instead. */
    if (vocab_parallel_cross_entropy_scratch_floats(T_, P) > 3 * T_ * (MAXP + 1))
        return comm_fail(comm, "scratch too small");
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < vl; j++) local[t * vl + j] = job->logits[t * V + v0 + j];

    comm_ledger_reset(comm);
    float *g = job->in_place ? local : grad;
    int rc = vocab_parallel_cross_entropy(comm, local, T_, v0, vl, V, job->targets, &job->loss[r],
                                          g, scratch, "ce");
    const ledger_t *led = comm_ledger(comm);
    job->gather[r] = ledger_op_total(led, LEDGER_ALLGATHER);
    job->tagged[r] = ledger_tag_counts(led, "ce", LEDGER_ALLGATHER);
    job->others[r].calls = ledger_total_calls(led) - job->gather[r].calls;
    job->rc[r] = rc;
    if (rc) return rc;
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < vl; j++) job->grad[t * V + v0 + j] = g[t * vl + j];
    if (job->in_place) return 0;

    /* Central differences through the parallel loss: the owner of entry (t, c) perturbs it,
     * every rank takes part in both evaluations. */
    for (int k = 0; k < NFD; k++) {
        int t = job->fd_row[k], c = job->fd_col[k], owner = c >= v0 && c < v0 + vl;
        size_t at = owner ? (size_t)(t * vl + (c - v0)) : 0;
        float x0 = owner ? local[at] : 0.0f, lp, lm;
        if (owner) local[at] = x0 + FD_H;
        rc = vocab_parallel_cross_entropy(comm, local, T_, v0, vl, V, job->targets, &lp, NULL,
                                          scratch, "fd");
        if (rc) return rc;
        if (owner) local[at] = x0 - FD_H;
        rc = vocab_parallel_cross_entropy(comm, local, T_, v0, vl, V, job->targets, &lm, NULL,
                                          scratch, "fd");
        if (rc) return rc;
        if (owner) local[at] = x0;
        /* The step actually taken, after rounding x0 +- h to float. Every rank knows x0. */
        float xc = job->logits[t * V + c];
        double h2 = (double)(float)(xc + FD_H) - (double)(float)(xc - FD_H);
        if (r == 0) job->fd[k] = (float)(((double)lp - (double)lm) / h2);
    }
    return 0;
}

/* Logits: mostly in [-1, 1], some up to +-30; row 0's target is its own large max (loss ~0),
 * row 1's target is -30 under a +30 max (loss ~60). */
static void make_case(float *logits, int *targets, int V, uint32_t seed) {
    for (int t = 0; t < T_; t++)
        for (int j = 0; j < V; j++) {
            float u = urand(&seed);
            logits[t * V + j] = (j * 7 + t * 3) % 5 == 0 ? 30.0f * u : u;
        }
    for (int t = 0; t < T_; t++) targets[t] = (int)((uint32_t)(t * 13 + 5 + (int)seed % 7) % V);
    targets[0] = V - 1; /* the last column: on the last rank */
    logits[0 * V + V - 1] = 29.5f;
    targets[1] = 0;
    logits[1 * V + 0] = -30.0f;
    logits[1 * V + V / 2] = 30.0f;
}

/* Serial double-precision reference: loss and gradient. */
static double reference(const float *logits, const int *targets, int V, double *grad) {
    double total = 0;
    for (int t = 0; t < T_; t++) {
        const float *l = logits + t * V;
        double m = l[0];
        for (int j = 1; j < V; j++) m = fmax(m, l[j]);
        double s = exp((double)l[0] - m);
        for (int j = 1; j < V; j++) s += exp((double)l[j] - m);
        total += m + log(s) - l[targets[t]];
        for (int j = 0; j < V; j++)
            grad[t * V + j] = (exp((double)l[j] - m) / s - (j == targets[t])) / T_;
    }
    return total / T_;
}

static double worst_loss = 0, worst_grad = 0, worst_fd = 0;

static void run_case(int V, int P, uint32_t seed, int in_place) {
    float logits[T_ * V_];
    int targets[T_];
    double ref_grad[T_ * V_];
    make_case(logits, targets, V, seed);
    double ref = reference(logits, targets, V, ref_grad);
    assert_true(ref > 1.0); /* so the relative bound below is a meaningful one */
    static ce_job job;
    memset(&job, 0, sizeof(job));
    job.V = V;
    job.logits = logits;
    job.targets = targets;
    job.in_place = in_place;
    /* Finite-difference entries: each row's target, its max, and others, spread over ranks. */
    int rows[NFD] = {0, 1, 1, 2, 5}, cols[NFD] = {V - 1, 0, V / 2, 1 % V, (2 * V) / 3};
    memcpy(job.fd_row, rows, sizeof(rows));
    memcpy(job.fd_col, cols, sizeof(cols));
    char err[256];
    if (comm_launch(COMM_BACKEND_THREADS, P, ce_rank, &job, err, sizeof(err)))
        fail_msg("V=%d P=%d: %s", V, P, err);

    for (int r = 0; r < P; r++) {
        /* (1) the loss, the same bits on every rank */
        assert_memory_equal(&job.loss[r], &job.loss[0], sizeof(float));
        /* (4) the communication the doc comment promises: one allgather of 3T floats per rank
         * (P * 3T elements in all), tagged, and nothing else. */
        assert_int_equal(job.gather[r].calls, 1);
        assert_int_equal(job.gather[r].elements, (uint64_t)3 * T_ * (uint64_t)P);
        assert_int_equal(job.tagged[r].calls, 1);
        assert_int_equal(job.gather[r].bytes_sent, (uint64_t)(P - 1) * 3 * T_ * sizeof(float));
        assert_int_equal(job.others[r].calls, 0);
    }
    double rel = fabs((double)job.loss[0] - ref) / ref;
    worst_loss = fmax(worst_loss, rel);
    if (rel > LOSS_RTOL)
        fail_msg("V=%d P=%d: loss %.9g, reference %.9g (relative error %.3g)", V, P, job.loss[0],
                 ref, rel);
    /* (2) the gradient against the analytic reference */
    for (int i = 0; i < T_ * V; i++) {
        double e = fabs((double)job.grad[i] - ref_grad[i]);
        worst_grad = fmax(worst_grad, e);
        if (e > GRAD_TOL)
            fail_msg("V=%d P=%d: grad[%d][%d] = %.9g, reference %.9g", V, P, i / V, i % V,
                     job.grad[i], ref_grad[i]);
    }
    if (in_place) return;
    /* (3) central finite differences of the float loss */
    for (int k = 0; k < NFD; k++) {
        int i = job.fd_row[k] * V + job.fd_col[k];
        double e = fabs((double)job.fd[k] - ref_grad[i]);
        worst_fd = fmax(worst_fd, e);
        if (e > FD_TOL)
            fail_msg("V=%d P=%d: finite difference at [%d][%d] = %.6g, gradient %.6g", V, P,
                     job.fd_row[k], job.fd_col[k], job.fd[k], ref_grad[i]);
    }
}

static void test_matches_reference(void **state) {
    (void)state;
    for (int P = 1; P <= MAXP; P++) {
        run_case(V_, P, 11u + (uint32_t)P, 0);
        run_case(V_, P, 99u, 1); /* the gradient written over the logits */
    }
    /* More ranks than vocabulary: ranks 3 and 4 hold nothing and still take part. */
    run_case(3, 5, 7u, 0);
    print_message("max errors: loss %.3g relative, gradient %.3g, finite differences %.3g\n",
                  worst_loss, worst_grad, worst_fd);
}

/* (5) A bad target: every rank checks, every rank fails, before any communication. */
typedef struct {
    const int *targets;
    int rc[MAXP];
    uint64_t calls[MAXP];
} bad_job;

static int bad_rank(comm_t *comm, void *arg) {
    bad_job *job = arg;
    int P = comm_size(comm), r = comm_rank(comm);
    int v0 = (int)split_offset(V_, P, r), vl = (int)split_count(V_, P, r);
    float local[T_ * V_] = {0}, grad[T_ * V_], scratch[3 * T_ * (MAXP + 1)], loss;
    comm_ledger_reset(comm);
    job->rc[r] = vocab_parallel_cross_entropy(comm, local, T_, v0, vl, V_, job->targets, &loss,
                                              grad, scratch, "ce");
    job->calls[r] = ledger_total_calls(comm_ledger(comm));
    return job->rc[r];
}

static void expect_bad_target(int bad, int row, int P) {
    int targets[T_] = {0, 1, 2, 3, 4, 5};
    targets[row] = bad;
    static bad_job job;
    memset(&job, 0, sizeof(job));
    job.targets = targets;
    char err[256] = "", want[128];
    assert_int_not_equal(comm_launch(COMM_BACKEND_THREADS, P, bad_rank, &job, err, sizeof(err)), 0);
    snprintf(want, sizeof(want),
             "vocab_parallel_cross_entropy: target %d of row %d is outside the vocabulary [0, %d)",
             bad, row, V_);
    if (!strstr(err, want)) fail_msg("P=%d: message '%s' lacks '%s'", P, err, want);
    for (int r = 0; r < P; r++) {
        assert_int_not_equal(job.rc[r], 0);
        assert_int_equal(job.calls[r], 0);
    }
}

static void test_bad_target_fails_every_rank(void **state) {
    (void)state;
    for (int P = 1; P <= MAXP; P++) {
        expect_bad_target(V_, 3, P);
        expect_bad_target(-1, 0, P);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_bad_target_fails_every_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
