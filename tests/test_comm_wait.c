/* test_comm_wait.c — how the threads backend's ranks wait (src/comm/comm_threads.c): a rank
 * whose peer is busy for a long time must end up asleep on the futex instead of burning its
 * core, and a sleeping rank must be woken by a failure or by a peer leaving.
 *
 * "Asleep" is measured, not inferred: the waiting rank reads its own thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) across a barrier that its peer reaches only after PEER_BUSY_MS of
 * nanosleep. A sleeping rank uses microseconds of CPU (the bounded busy-wait, at most 200 us,
 * then a few futex calls); one that spins or yields through the whole wait uses a large part of
 * it, even on a 2-core machine loaded to a load average of 20, where a spinning rank measured
 * 24-34 ms of CPU in a 300 ms wait. MAX_CPU_MS lies between the two with a wide margin either
 * way (25x the sleeper's worst case, 5x below that overloaded spinner) and is no statement about
 * speed: nothing here asserts how fast anything is. Each scenario first runs many quick barriers,
 * so that the adaptive policy has settled (on a quiet machine at its full bound: the longest
 * busy-wait it allows) when the long wait comes.
 *
 * cmocka's assertions are not thread-safe: rank functions record, the main thread asserts. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "linshard/comm.h"

#define PEER_BUSY_MS 300
#define WARMUP_BARRIERS 2000
#define MAX_CPU_MS 5
#define HANG_GUARD_MS 10000 /* only so that a broken wake-up fails instead of hanging */

enum { PEER_ARRIVES, PEER_FAILS, PEER_LEAVES };

typedef struct {
    int mode;
    int rc0;                 /* rank 0's status from the long wait */
    double cpu0, wall0;      /* rank 0's thread CPU time and wall time across the long wait */
    _Atomic int rank0_back;  /* rank 0 has returned from the long wait */
    int peer_saw_rank0_back; /* ...while rank 1 was still inside its rank function */
} wait_job;

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int wait_rank(comm_t *comm, void *arg) {
    wait_job *job = arg;
    int rc;
    for (int i = 0; i < WARMUP_BARRIERS; i++)
        if ((rc = comm_barrier(comm, NULL))) return rc;
    if (comm_rank(comm) == 0) {
        double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID), wall = clock_s(CLOCK_MONOTONIC);
        job->rc0 = comm_barrier(comm, NULL);
        job->cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu;
        job->wall0 = clock_s(CLOCK_MONOTONIC) - wall;
        atomic_store(&job->rank0_back, 1);
        return job->mode == PEER_ARRIVES ? job->rc0 : 0;
    }
    if (comm_rank(comm) != 1) return comm_barrier(comm, NULL); /* the others arrive at once */
    sleep_ms(PEER_BUSY_MS);                                    /* rank 1: a long compute */
    switch (job->mode) {
    case PEER_ARRIVES:
        return comm_barrier(comm, NULL);
    case PEER_FAILS:
        comm_fail(comm, "rank 1 gives up");
        /* Stay inside the rank function until rank 0 is back, so that only the failure itself
         * (not rank 1 leaving) can have woken it. */
        for (int ms = 0; ms < HANG_GUARD_MS && !atomic_load(&job->rank0_back); ms++) sleep_ms(1);
        job->peer_saw_rank0_back = atomic_load(&job->rank0_back);
        return COMM_ERR_PEER;
    default: /* PEER_LEAVES: returns without entering the barrier rank 0 waits in */
        return 0;
    }
}

static void run_wait(int mode, int P, wait_job *job) {
    memset(job, 0, sizeof(*job));
    job->mode = mode;
    char err[512] = "";
    int rc = comm_launch(COMM_BACKEND_THREADS, P, wait_rank, job, err, sizeof(err));
    if (mode == PEER_ARRIVES && rc) fail_msg("P=%d: launch failed: %s", P, err);
    if (mode != PEER_ARRIVES) assert_int_not_equal(rc, 0);
    /* Rank 0 waited about as long as its peer was busy (or it was not waiting at all)... */
    assert_true(job->wall0 >= 0.5 * PEER_BUSY_MS * 1e-3);
    /* ...and slept through it. */
    if (job->cpu0 > MAX_CPU_MS * 1e-3)
        fail_msg("P=%d: rank 0 used %.1f ms of CPU in a %.1f ms wait: it did not sleep", P,
                 job->cpu0 * 1e3, job->wall0 * 1e3);
}

/* The default policy is under test: nothing from the environment may change it. */
static int clear_env(void **state) {
    (void)state;
    unsetenv("LINSHARD_SPIN_US");
    unsetenv("LINSHARD_YIELD_US");
    return 0;
}

/* More ranks than cores: the waiting rank yields instead of spinning, and must still sleep. */
static int oversubscribed_P(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 && cores < 16 ? (int)cores + 1 : 17;
}

static void test_waiting_rank_sleeps(void **state) {
    (void)state;
    int Ps[2] = {2, oversubscribed_P()};
    for (int i = 0; i < 2; i++) {
        wait_job job;
        run_wait(PEER_ARRIVES, Ps[i], &job);
        assert_int_equal(job.rc0, COMM_OK);
    }
}

static void test_failure_wakes_sleeper(void **state) {
    (void)state;
    wait_job job;
    run_wait(PEER_FAILS, 2, &job);
    assert_int_equal(job.rc0, COMM_ERR_PEER);
    assert_true(job.peer_saw_rank0_back); /* woken by comm_fail, before rank 1 left */
}

static void test_leaving_peer_wakes_sleeper(void **state) {
    (void)state;
    wait_job job;
    run_wait(PEER_LEAVES, 2, &job);
    assert_int_equal(job.rc0, COMM_ERR_PEER);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_waiting_rank_sleeps, clear_env),
        cmocka_unit_test_setup(test_failure_wakes_sleeper, clear_env),
        cmocka_unit_test_setup(test_leaving_peer_wakes_sleeper, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
