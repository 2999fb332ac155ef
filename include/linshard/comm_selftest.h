/* comm_selftest.h — a conformance check of a communicator, run on every rank.
 *
 * Each collective is run on the sizes 0, 1, 7, 1000 and 2^20+3 (and uneven per-rank counts,
 * including a rank with count 0) and compared against a serial reference that every rank
 * computes on its own: exactly for integer-valued data (sums of small integers are exact in
 * float32), and within (P-1)*2^-24*sum|x| — the worst-case rounding of P-1 float32 additions —
 * for random data. It also checks that all ranks hold bitwise-identical AllReduce results and
 * that the ledger recorded exactly the calls and bytes made; on MPI, that a broadcast whose root
 * comes 300 ms late waits asleep rather than spinning. The tests (tests/) and
 * `linshard check comm` both run it, on either backend. */
#ifndef LINSHARD_COMM_SELFTEST_H
#define LINSHARD_COMM_SELFTEST_H

#include <stddef.h>

#include "linshard/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t max_count; /* skip sizes above this (0: no limit); for slow sanitizer builds */
    int fail_rank;    /* -1: none. Otherwise that rank fails on purpose midway (a drill of the
                         failure path: the run must end on every rank with an error). */
} comm_selftest_opts;

typedef struct {
    int checks;         /* comparisons made on this rank */
    int failures;       /* of which failed, on this rank */
    int group_failures; /* failures summed over all ranks */
    char first_failure[256];
} comm_selftest_report;

/* Runs the checks on this rank. Returns 0 if the run completed (see report->group_failures for
 * the verdict), or the comm error that stopped it. */
int comm_selftest(comm_t *comm, const comm_selftest_opts *opts, comm_selftest_report *report);

#ifdef __cplusplus
}
#endif
#endif
