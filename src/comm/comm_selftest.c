/* comm_selftest.c — conformance checks of a communicator (see comm_selftest.h). */
#include "linshard/comm_selftest.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "linshard/ledger.h"

static const size_t sizes[] = {0, 1, 7, 1000, ((size_t)1 << 20) + 3};
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))

typedef struct {
    comm_t *comm;
    int P, rank;
    comm_selftest_report *report;
    /* What the ledger must show, per op, for the tag "selftest". */
    uint64_t calls[LEDGER_OP_COUNT], sent[LEDGER_OP_COUNT], received[LEDGER_OP_COUNT];
} ctx_t;

static void check(ctx_t *c, int ok, const char *fmt, ...) {
    c->report->checks++;
    if (ok) return;
    if (c->report->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(c->report->first_failure, sizeof(c->report->first_failure),
                         "rank %d: ", c->rank);
        vsnprintf(c->report->first_failure + n, sizeof(c->report->first_failure) - (size_t)n, fmt,
                  ap);
        va_end(ap);
    }
}

/* Data every rank can regenerate for any rank: small integers (sums exact in float32)... */
static float int_value(int rank, size_t i) {
    return (float)((int)((rank * 131 + (int)(i % 100003) * 7) % 1001) - 500);
}
/* ...labels below 2^24 (so exact in float32) that differ between ranks at the same index (the
 * odd multiplier makes rank*1000003 distinct mod 2^24 for any P)... */
static float label(int rank, size_t i) {
    return (float)(((uint64_t)rank * 1000003u + (uint64_t)i) % 16777216u);
}
/* ...and random values in [-1, 1) from a hash, so no rank needs another's RNG state. */
static float rand_value(int rank, size_t i) {
    uint64_t z = ((uint64_t)rank << 40) ^ (uint64_t)i ^ 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

static uint64_t fnv1a(const void *data, size_t bytes) {
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* The ledger's logical bytes (see ledger.h), accumulated for the final ledger check. */
static void expect(ctx_t *c, ledger_op op, uint64_t sent, uint64_t received) {
    c->calls[op]++;
    c->sent[op] += sent * sizeof(float);
    c->received[op] += received * sizeof(float);
}

static size_t balanced(size_t n, int P, int r) {
    return n / (size_t)P + ((size_t)r < n % (size_t)P ? 1 : 0);
}

/* Every rank's hash of `bytes`, gathered (as four exact 16-bit pieces in floats) and compared. */
static int check_identical_everywhere(ctx_t *c, const float *buf, size_t n, const char *what) {
    uint64_t h = fnv1a(buf, n * sizeof(float));
    float mine[4], *all = malloc((size_t)c->P * 4 * sizeof(float));
    if (!all) return comm_fail(c->comm, "selftest: out of memory on rank %d", c->rank);
    for (int k = 0; k < 4; k++) mine[k] = (float)((h >> (16 * k)) & 0xFFFF);
    int rc = comm_allgather(c->comm, mine, 4, all, NULL, "selftest");
    expect(c, LEDGER_ALLGATHER, (uint64_t)(c->P - 1) * 4, (uint64_t)(c->P - 1) * 4);
    if (!rc)
        for (int j = 0; j < c->P; j++)
            check(c, memcmp(all + 4 * j, mine, sizeof(mine)) == 0,
                  "%s of %zu elements: rank %d's result differs bitwise from rank %d's", what, n, j,
                  c->rank);
    free(all);
    return rc;
}

static int allreduce_checks(ctx_t *c, size_t n, float *buf) {
    int P = c->P, r = c->rank, rc;
    uint64_t own = balanced(n, P, r);
    uint64_t bytes = P > 1 ? (n - own) + (uint64_t)(P - 1) * own : 0;

    for (size_t i = 0; i < n; i++) buf[i] = int_value(r, i);
    if ((rc = comm_allreduce_sum(c->comm, buf, n, "selftest"))) return rc;
    expect(c, LEDGER_ALLREDUCE, bytes, bytes);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int j = 0; j < P; j++) want += int_value(j, i);
        if (buf[i] != want && bad++ == 0) first = i;
    }
    check(c, bad == 0, "allreduce_sum of %zu integer-valued elements: %zu wrong (first at %zu)", n,
          bad, first);

    for (size_t i = 0; i < n; i++) buf[i] = rand_value(r, i);
    if ((rc = comm_allreduce_sum(c->comm, buf, n, "selftest"))) return rc;
    expect(c, LEDGER_ALLREDUCE, bytes, bytes);
    for (size_t i = 0; i < n; i++) {
        double ref = 0, mag = 0;
        for (int j = 0; j < P; j++) {
            ref += rand_value(j, i);
            mag += fabs(rand_value(j, i));
        }
        double tol = (P - 1) * ldexp(1.0, -24) * mag;
        double err = fabs(buf[i] - ref);
        if (err > tol) bad++;
    }
    check(c, bad == 0, "allreduce_sum of %zu random elements: %zu beyond (P-1)*2^-24*sum|x|", n,
          bad);
    return check_identical_everywhere(c, buf, n, "allreduce_sum");
}

static int allgather_checks(ctx_t *c, const size_t *counts, size_t total, float *send,
                            float *recv) {
    int P = c->P, r = c->rank, rc;
    for (size_t i = 0; i < counts[r]; i++) send[i] = label(r, i);
    for (size_t i = 0; i < total; i++) recv[i] = -1.0f;
    if ((rc = comm_allgather(c->comm, send, counts[r], recv, counts, "selftest"))) return rc;
    expect(c, LEDGER_ALLGATHER, (uint64_t)(P - 1) * counts[r], total - counts[r]);
    size_t bad = 0, at = 0;
    for (int j = 0; j < P; j++)
        for (size_t i = 0; i < counts[j]; i++, at++)
            if (recv[at] != label(j, i)) bad++;
    check(c, bad == 0, "allgather of %zu elements (rank %d sent %zu): %zu wrong", total, r,
          counts[r], bad);
    return COMM_OK;
}

static int reduce_scatter_checks(ctx_t *c, const size_t *counts, size_t total, float *send,
                                 float *recv) {
    int P = c->P, r = c->rank, rc;
    size_t displ = 0;
    for (int j = 0; j < r; j++) displ += counts[j];
    for (size_t i = 0; i < total; i++) send[i] = int_value(r, i);
    if ((rc = comm_reduce_scatter(c->comm, send, recv, counts[r], counts, "selftest"))) return rc;
    expect(c, LEDGER_REDUCE_SCATTER, total - counts[r], (uint64_t)(P - 1) * counts[r]);
    size_t bad = 0;
    for (size_t i = 0; i < counts[r]; i++) {
        float want = 0;
        for (int j = 0; j < P; j++) want += int_value(j, displ + i);
        if (recv[i] != want) bad++;
    }
    check(c, bad == 0, "reduce_scatter of %zu elements (rank %d receives %zu): %zu wrong", total, r,
          counts[r], bad);
    return COMM_OK;
}

/* The threads backend promises reduce_scatter gives the same bits as the matching slice of
 * allreduce_sum (one summation order for both); MPI makes no such promise beyond P = 2. */
static int same_bits_checks(ctx_t *c, size_t n, float *buf, float *send, float *recv,
                            size_t *counts) {
    int P = c->P, r = c->rank, rc;
    size_t displ = 0;
    for (int j = 0; j < P; j++) {
        counts[j] = balanced(n, P, j);
        if (j < r) displ += counts[j];
    }
    for (size_t i = 0; i < n; i++) buf[i] = send[i] = rand_value(r, i);
    if ((rc = comm_allreduce_sum(c->comm, buf, n, "selftest"))) return rc;
    uint64_t own = counts[r], bytes = P > 1 ? (n - own) + (uint64_t)(P - 1) * own : 0;
    expect(c, LEDGER_ALLREDUCE, bytes, bytes);
    if ((rc = comm_reduce_scatter(c->comm, send, recv, counts[r], counts, "selftest"))) return rc;
    expect(c, LEDGER_REDUCE_SCATTER, n - own, (uint64_t)(P - 1) * own);
    check(c, own == 0 || memcmp(recv, buf + displ, own * sizeof(float)) == 0,
          "reduce_scatter of %zu random elements differs bitwise from allreduce_sum's slice", n);
    return COMM_OK;
}

static int broadcast_checks(ctx_t *c, size_t n, int root, float *buf) {
    int P = c->P, r = c->rank, rc;
    for (size_t i = 0; i < n; i++) buf[i] = (r == root) ? label(root, i) : -1.0f;
    if ((rc = comm_broadcast(c->comm, buf, n, root, "selftest"))) return rc;
    expect(c, LEDGER_BROADCAST, r == root ? (uint64_t)(P - 1) * n : 0,
           (r == root || P == 1) ? 0 : n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] != label(root, i)) bad++;
    check(c, bad == 0, "broadcast of %zu elements from root %d: %zu wrong", n, root, bad);
    return COMM_OK;
}

/* A broadcast whose root comes late must wait asleep, not spin: an idle server's ranks wait in
 * one for the next request (comm_mpi.c: "Broadcasts wait politely"). The root sleeps LATE_MS,
 * then broadcasts; every other rank reads its own thread's CPU time across the wait. A sleeping
 * waiter measured 9-12 ms of CPU in the 300 ms (about 300 wake-ups, 1 ms apart, each an
 * MPI_Test of Open MPI's progress engine); one that busy-polls uses the whole wait on an idle
 * machine, and a share of it on a loaded one. LATE_MAX_CPU_MS lies well above the sleeper, so
 * the check does not fail on a busy CI machine; on a very overloaded one a spinner may pass it
 * (then it is no statement either way). The threads backend has its own test
 * (tests/test_comm_wait.c), so this runs for MPI only. */
#define LATE_MS 300
#define LATE_MAX_CPU_MS 60

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int late_broadcast_check(ctx_t *c, float *buf) {
    int rc;
    if ((rc = comm_barrier(c->comm, "selftest"))) return rc;
    expect(c, LEDGER_BARRIER, 0, 0);
    double cpu = clock_seconds(CLOCK_THREAD_CPUTIME_ID), wall = clock_seconds(CLOCK_MONOTONIC);
    if (c->rank == 0) {
        struct timespec late = {0, LATE_MS * 1000000L};
        nanosleep(&late, NULL);
    }
    buf[0] = c->rank == 0 ? 42.0f : -1.0f;
    if ((rc = comm_broadcast(c->comm, buf, 1, 0, "selftest"))) return rc;
    expect(c, LEDGER_BROADCAST, c->rank == 0 ? (uint64_t)(c->P - 1) : 0,
           (c->rank == 0 || c->P == 1) ? 0 : 1);
    cpu = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu;
    wall = clock_seconds(CLOCK_MONOTONIC) - wall;
    check(c, buf[0] == 42.0f, "late broadcast: got %g", buf[0]);
    if (c->rank != 0 && wall > 0.5 * LATE_MS * 1e-3)
        check(c, cpu <= LATE_MAX_CPU_MS * 1e-3,
              "a broadcast waited %.0f ms for its root and used %.1f ms of CPU (more than %d: it "
              "spins instead of sleeping)",
              wall * 1e3, cpu * 1e3, LATE_MAX_CPU_MS);
    return COMM_OK;
}

static void ledger_checks(ctx_t *c) {
    const ledger_t *l = comm_ledger(c->comm);
    for (int op = 0; op < LEDGER_OP_COUNT; op++) {
        ledger_counts got = ledger_tag_counts(l, "selftest", (ledger_op)op);
        check(c,
              got.calls == c->calls[op] && got.bytes_sent == c->sent[op] &&
                  got.bytes_received == c->received[op],
              "ledger for %s: %llu calls, %llu B sent, %llu B received; expected %llu, %llu, %llu",
              ledger_op_name((ledger_op)op), (unsigned long long)got.calls,
              (unsigned long long)got.bytes_sent, (unsigned long long)got.bytes_received,
              (unsigned long long)c->calls[op], (unsigned long long)c->sent[op],
              (unsigned long long)c->received[op]);
    }
}

static int run_all(ctx_t *c, const comm_selftest_opts *opts, float *a, float *b, float *d,
                   size_t *counts) {
    int P = c->P, r = c->rank, rc;
    for (size_t s = 0; s < N_SIZES; s++) {
        size_t n = sizes[s];
        if (opts->max_count && n > opts->max_count) continue;
        if ((rc = allreduce_checks(c, n, a))) return rc;
        if (opts->fail_rank == r && s == 2)
            return comm_fail(c->comm, "injected failure on rank %d (selftest drill)", r);

        /* Equal counts, then uneven ones: every third rank (from rank 1) sends nothing. */
        for (int uneven = 0; uneven < 2; uneven++) {
            size_t total = 0;
            for (int j = 0; j < P; j++) {
                counts[j] = !uneven ? n : (j % 3 == 1 ? 0 : n / (size_t)(j + 1) + (size_t)j);
                total += counts[j];
            }
            if ((rc = allgather_checks(c, counts, total, a, b))) return rc;
            if ((rc = reduce_scatter_checks(c, counts, total, b, d))) return rc;
        }
        if (comm_backend(c->comm) == COMM_BACKEND_THREADS || P <= 2)
            if ((rc = same_bits_checks(c, n, a, b, d, counts))) return rc;
        for (int root = (n > 1000 ? P - 1 : 0); root < P; root++)
            if ((rc = broadcast_checks(c, n, root, a))) return rc;
        if ((rc = comm_barrier(c->comm, "selftest"))) return rc;
        expect(c, LEDGER_BARRIER, 0, 0);
    }
    if (comm_backend(c->comm) == COMM_BACKEND_MPI && (rc = late_broadcast_check(c, a))) return rc;
    ledger_checks(c);
    return COMM_OK;
}

int comm_selftest(comm_t *comm, const comm_selftest_opts *opts, comm_selftest_report *report) {
    comm_selftest_opts defaults = {0, -1};
    if (!opts) opts = &defaults;
    memset(report, 0, sizeof(*report));
    ctx_t c = {.comm = comm, .P = comm_size(comm), .rank = comm_rank(comm), .report = report};
    /* Largest buffer: an uneven allgather of P blocks of up to n + P elements. */
    size_t n = sizes[N_SIZES - 1];
    if (opts->max_count && opts->max_count < n) n = opts->max_count;
    size_t cap = (size_t)c.P * (n + (size_t)c.P) + 16;
    float *a = malloc(cap * sizeof(float)), *b = malloc(cap * sizeof(float));
    float *d = malloc(cap * sizeof(float));
    size_t *counts = malloc((size_t)c.P * sizeof(size_t));
    int rc;
    if (!a || !b || !d || !counts) {
        rc = comm_fail(comm, "selftest: out of memory on rank %d", c.rank);
    } else {
        comm_ledger_reset(comm);
        rc = run_all(&c, opts, a, b, d, counts);
        if (!rc) {
            /* The verdict is collective: every rank learns every rank's failure count. */
            float f = (float)report->failures;
            rc = comm_allreduce_sum(comm, &f, 1, "selftest.verdict");
            report->group_failures = (int)f;
        }
    }
    free(a);
    free(b);
    free(d);
    free(counts);
    return rc;
}
