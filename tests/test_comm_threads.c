/* test_comm_threads.c — the threads backend: conformance for P = 1..8 (and 16, more ranks than
 * cores), bitwise-identical replicas, exact ledger counts, and every way a run can go wrong
 * ending cleanly on all ranks. cmocka's assertions are not thread-safe, so rank functions only
 * record what they saw; the assertions run on the main thread after comm_launch returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "linshard/comm.h"
#include "linshard/comm_selftest.h"
#include "linshard/split.h"

/* ---- conformance for P = 1..8 and 16 ------------------------------------------------------- */

typedef struct {
    comm_selftest_report reports[16];
    comm_selftest_opts opts;
} selftest_job;

static int selftest_rank(comm_t *comm, void *arg) {
    selftest_job *job = arg;
    return comm_selftest(comm, &job->opts, &job->reports[comm_rank(comm)]);
}

static void run_selftest(int P, size_t limit) {
    selftest_job job;
    memset(&job, 0, sizeof(job));
    job.opts.max_count = limit;
    job.opts.fail_rank = -1;
    char err[512];
    int rc = comm_launch(COMM_BACKEND_THREADS, P, selftest_rank, &job, err, sizeof(err));
    if (rc) fail_msg("P=%d: launch failed: %s", P, err);
    for (int r = 0; r < P; r++) {
        if (job.reports[r].failures) fail_msg("P=%d: %s", P, job.reports[r].first_failure);
        assert_true(job.reports[r].checks > 10);
        assert_int_equal(job.reports[r].group_failures, 0);
    }
}

static void test_selftest_P(void **state) {
    int P = *(int *)*state;
    run_selftest(P, 0);
}

/* 16 ranks on 2 cores: waiting ranks must sleep, not spin, or this takes forever. */
static void test_selftest_oversubscribed(void **state) {
    (void)state;
    run_selftest(16, 1000);
}

/* ---- bitwise-identical replicas, compared directly in memory ----------------------------- */

#define N_IDENT 4099
typedef struct {
    float out[8][N_IDENT];
} ident_job;

static int ident_rank(comm_t *comm, void *arg) {
    ident_job *job = arg;
    float *x = job->out[comm_rank(comm)];
    uint32_t s = 12345u + 977u * (uint32_t)comm_rank(comm);
    for (int i = 0; i < N_IDENT; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 16777216.0 * 2.0 - 1.0) * 1e3f;
    }
    return comm_allreduce_sum(comm, x, N_IDENT, "ident");
}

static void test_replicas_bitwise_identical(void **state) {
    (void)state;
    static ident_job job;
    for (int P = 2; P <= 8; P++) {
        char err[256];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, ident_rank, &job, err, sizeof(err)),
                         0);
        for (int r = 1; r < P; r++) assert_memory_equal(job.out[0], job.out[r], sizeof(job.out[0]));
    }
}

/* ---- the ledger records exactly what was called ------------------------------------------ */

typedef struct {
    ledger_counts attn[8], mlp[8], total[8], gather[8];
} ledger_job;

static int ledger_rank(comm_t *comm, void *arg) {
    ledger_job *job = arg;
    int r = comm_rank(comm);
    float x[10] = {0}, g[4] = {0}, all[64];
    int rc = 0;
    for (int layer = 0; layer < 3 && !rc; layer++) {
        rc = comm_allreduce_sum(comm, x, 10, "attn");
        if (!rc) rc = comm_allreduce_sum(comm, x, 10, "mlp");
    }
    if (!rc) rc = comm_allgather(comm, g, 4, all, NULL, "gather");
    job->attn[r] = ledger_tag_counts(comm_ledger(comm), "attn", LEDGER_ALLREDUCE);
    job->mlp[r] = ledger_tag_counts(comm_ledger(comm), "mlp", LEDGER_ALLREDUCE);
    job->gather[r] = ledger_tag_counts(comm_ledger(comm), "gather", LEDGER_ALLGATHER);
    job->total[r] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE);
    return rc;
}

static void test_ledger_exact_counts(void **state) {
    (void)state;
    ledger_job job;
    char err[256];
    /* P = 3, 10 elements: blocks of 4, 3, 3 -> rank 0 sends (10-4) + 2*4 = 14 floats = 56 B per
     * allreduce, ranks 1 and 2 send (10-3) + 2*3 = 13 floats = 52 B. */
    assert_int_equal(comm_launch(COMM_BACKEND_THREADS, 3, ledger_rank, &job, err, sizeof(err)), 0);
    const uint64_t per_call[3] = {56, 52, 52};
    for (int r = 0; r < 3; r++) {
        assert_int_equal(job.attn[r].calls, 3);
        assert_int_equal(job.mlp[r].calls, 3);
        assert_int_equal(job.attn[r].elements, 30);
        assert_int_equal(job.attn[r].bytes_sent, 3 * per_call[r]);
        assert_int_equal(job.attn[r].bytes_received, 3 * per_call[r]);
        assert_int_equal(job.total[r].calls, 6);
        assert_int_equal(job.gather[r].calls, 1);
        assert_int_equal(job.gather[r].bytes_sent, 2 * 4 * 4);     /* to 2 peers */
        assert_int_equal(job.gather[r].bytes_received, 2 * 4 * 4); /* from 2 peers */
    }
    /* P = 1: the calls are counted, but nothing moves. */
    assert_int_equal(comm_launch(COMM_BACKEND_THREADS, 1, ledger_rank, &job, err, sizeof(err)), 0);
    assert_int_equal(job.attn[0].calls, 3);
    assert_int_equal(job.attn[0].bytes_sent, 0);
}

/* ---- barrier semantics under stress -------------------------------------------------------- */

typedef struct {
    _Atomic int arrived;
    int bad[8];
} barrier_job;

static int barrier_rank(comm_t *comm, void *arg) {
    barrier_job *job = arg;
    int P = comm_size(comm);
    for (int round = 1; round <= 2000; round++) {
        atomic_fetch_add(&job->arrived, 1);
        int rc = comm_barrier(comm, NULL);
        if (rc) return rc;
        /* Everyone has arrived for this round, and nobody can be in the next round yet. */
        int seen = atomic_load(&job->arrived);
        if (seen < round * P) job->bad[comm_rank(comm)]++;
        if ((rc = comm_barrier(comm, NULL))) return rc;
    }
    return 0;
}

static void test_barrier_waits_for_everyone(void **state) {
    (void)state;
    barrier_job job;
    memset(&job, 0, sizeof(job));
    char err[256];
    assert_int_equal(comm_launch(COMM_BACKEND_THREADS, 5, barrier_rank, &job, err, sizeof(err)), 0);
    for (int r = 0; r < 5; r++) assert_int_equal(job.bad[r], 0);
    assert_int_equal(atomic_load(&job.arrived), 5 * 2000);
}

/* ---- failures end the run on every rank ------------------------------------------------- */

typedef struct {
    int mode;
    int rcs[8];
} fail_job;

enum { FAIL_INJECTED, FAIL_RETURN_ERROR, FAIL_RETURN_EARLY, FAIL_COUNT_MISMATCH, FAIL_NULL_BUF };

static int fail_rank_fn(comm_t *comm, void *arg) {
    fail_job *job = arg;
    int r = comm_rank(comm), rc = 0;
    float x[16] = {0};
    rc = comm_allreduce_sum(comm, x, 16, "before");
    if (rc) return job->rcs[r] = rc;
    if (r == 2) {
        switch (job->mode) {
        case FAIL_INJECTED:
            return job->rcs[r] = comm_fail(comm, "rank 2 cannot read its shard");
        case FAIL_RETURN_ERROR:
            return job->rcs[r] = COMM_ERR_NOMEM; /* e.g. malloc failed */
        case FAIL_RETURN_EARLY:
            return job->rcs[r] = 0; /* skips the collectives */
        case FAIL_COUNT_MISMATCH:
            rc = comm_allreduce_sum(comm, x, 12, "after");
            break;
        case FAIL_NULL_BUF:
            rc = comm_allreduce_sum(comm, NULL, 16, "after");
            break;
        }
    } else {
        /* The others go on into collectives that can never complete normally. */
        for (int i = 0; i < 100 && !rc; i++) rc = comm_allreduce_sum(comm, x, 16, "after");
    }
    return job->rcs[r] = rc;
}

static void expect_clean_failure(int mode, const char *message) {
    fail_job job;
    memset(&job, 0, sizeof(job));
    job.mode = mode;
    char err[512];
    int rc = comm_launch(COMM_BACKEND_THREADS, 4, fail_rank_fn, &job, err, sizeof(err));
    assert_int_not_equal(rc, 0);
    if (!strstr(err, message)) fail_msg("error '%s' lacks '%s'", err, message);
    for (int r = 0; r < 4; r++)
        if (r != 2 || mode == FAIL_COUNT_MISMATCH || mode == FAIL_NULL_BUF)
            assert_int_not_equal(job.rcs[r], 0);
}

static void test_failure_injected(void **state) {
    (void)state;
    expect_clean_failure(FAIL_INJECTED, "rank 2 cannot read its shard");
}
static void test_failure_rank_returns_error(void **state) {
    (void)state;
    expect_clean_failure(FAIL_RETURN_ERROR, "rank 2 failed (out of memory)");
}
static void test_failure_rank_returns_early(void **state) {
    (void)state;
    expect_clean_failure(FAIL_RETURN_EARLY, "a rank returned while rank");
}
static void test_failure_count_mismatch(void **state) {
    (void)state;
    expect_clean_failure(
        FAIL_COUNT_MISMATCH,
        "ranks disagree on the count: rank 0 passed 16 elements, rank 2 passed 12");
}
static void test_failure_null_buffer(void **state) {
    (void)state;
    expect_clean_failure(FAIL_NULL_BUF, "rank 2 passed a NULL buffer for 16 elements");
}

/* After a failure every later collective fails at once, on every rank. */
static int dead_group_rank(comm_t *comm, void *arg) {
    int *after = arg;
    if (comm_rank(comm) == 1) comm_fail(comm, "stop");
    comm_barrier(comm, NULL); /* may or may not complete: rank 1 failed concurrently */
    float x = 1;
    after[comm_rank(comm)] = comm_allreduce_sum(comm, &x, 1, NULL);
    return 0;
}

static void test_dead_group_fails_fast(void **state) {
    (void)state;
    int after[3] = {0};
    char err[128];
    assert_int_not_equal(
        comm_launch(COMM_BACKEND_THREADS, 3, dead_group_rank, after, err, sizeof(err)), 0);
    assert_string_equal(err, "stop");
    for (int r = 0; r < 3; r++) assert_int_equal(after[r], COMM_ERR_PEER);
}

static void test_launch_rejects_bad_P(void **state) {
    (void)state;
    char err[128];
    assert_int_equal(comm_launch(COMM_BACKEND_THREADS, 0, dead_group_rank, NULL, err, sizeof(err)),
                     COMM_ERR_ARG);
    assert_non_null(strstr(err, "at least 1"));
}

static int setup_P(void **state) {
    (void)state;
    return 0;
}

int main(void) {
    static int Ps[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[0]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[1]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[2]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[3]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[4]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[5]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[6]),
        cmocka_unit_test_prestate_setup_teardown(test_selftest_P, setup_P, NULL, &Ps[7]),
        cmocka_unit_test(test_selftest_oversubscribed),
        cmocka_unit_test(test_replicas_bitwise_identical),
        cmocka_unit_test(test_ledger_exact_counts),
        cmocka_unit_test(test_barrier_waits_for_everyone),
        cmocka_unit_test(test_failure_injected),
        cmocka_unit_test(test_failure_rank_returns_error),
        cmocka_unit_test(test_failure_rank_returns_early),
        cmocka_unit_test(test_failure_count_mismatch),
        cmocka_unit_test(test_failure_null_buffer),
        cmocka_unit_test(test_dead_group_fails_fast),
        cmocka_unit_test(test_launch_rejects_bad_P),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
