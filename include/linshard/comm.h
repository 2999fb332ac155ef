/* comm.h — the communicator: the only way linshard's P ranks meet.
 *
 * Every model in linshard runs as SPMD code: P ranks execute the same function on their own
 * shards and exchange data only through the collectives below. One interface, one file per
 * backend (src/comm/comm_threads.c, src/comm/comm_mpi.c), so a layer written against
 * comm_allreduce_sum runs unchanged on threads in one process or on MPI processes.
 *
 * Conventions
 *  - Buffers are float32 (COMM_F32). The element type travels through the backend interface
 *    (comm_dtype_t) so a bf16 wire format can be added without changing a single call site.
 *  - Every collective is called by every rank of the communicator, in the same order, with the
 *    same counts (SPMD). Counts are in elements, not bytes.
 *  - Every collective takes a caller-supplied tag ("layer3.mlp", NULL for none). The ledger
 *    counts calls and bytes per operation kind and per tag, so tests can prove "exactly 2
 *    AllReduce per layer".
 *  - Functions return 0 on success and a non-zero comm_status on failure. Once any rank of a
 *    group has failed (comm_fail, or a rank function returned an error), every collective on
 *    every rank returns COMM_ERR_PEER instead of waiting: no rank is left blocked.
 *
 * A sub-communicator split (a data-parallel x tensor-parallel grid) is not implemented yet; the
 * interface leaves room for it: a comm_t is a handle on one group, and nothing here assumes the
 * group is the whole world, so a future comm_split(comm, color, key, &sub) returns another
 * comm_t with its own rank, size and ledger.
 */
#ifndef LINSHARD_COMM_H
#define LINSHARD_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/ledger.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct comm comm_t;

typedef enum { COMM_BACKEND_THREADS = 0, COMM_BACKEND_MPI = 1 } comm_backend_t;

/* Element types on the wire. Only float32 exists today; bf16 goes here. */
typedef enum { COMM_F32 = 0 } comm_dtype_t;

typedef enum {
    COMM_OK = 0,
    COMM_ERR_ARG = 1,        /* bad argument (NULL buffer with count > 0, bad root, ...) */
    COMM_ERR_NOMEM = 2,      /* allocation failed */
    COMM_ERR_PEER = 3,       /* another rank failed or left: this collective did not happen */
    COMM_ERR_BACKEND = 4,    /* the backend (MPI) reported an error */
    COMM_ERR_UNAVAILABLE = 5 /* backend not compiled in / not initialised */
} comm_status;

/* ---- identity ---------------------------------------------------------------------------- */
int comm_rank(const comm_t *comm);
int comm_size(const comm_t *comm);
comm_backend_t comm_backend(const comm_t *comm);
const char *comm_backend_name(comm_backend_t backend);
/* Parses "threads" or "mpi"; returns 0 on success, -1 for an unknown name. */
int comm_backend_parse(const char *name, comm_backend_t *out);
/* 1 if the backend was compiled into this build. */
int comm_backend_available(comm_backend_t backend);

/* ---- collectives (all ranks call; counts in elements) ----------------------------------- */

/* buf[0..count) <- sum over ranks of buf[0..count), in place. Every rank receives the same
 * bits: each element is summed once, in rank order, and that one result is copied to all. */
int comm_allreduce_sum(comm_t *comm, float *buf, size_t count, const char *tag);

/* recv <- concatenation, in rank order, of every rank's send. counts[r] is rank r's element
 * count (identical array on every rank); counts == NULL means every rank sends sendcount.
 * recv holds sum(counts) elements. Uneven counts, including 0, are allowed. */
int comm_allgather(comm_t *comm, const float *send, size_t sendcount, float *recv,
                   const size_t *counts, const char *tag);

/* send holds sum(counts) elements on every rank (counts == NULL: P * recvcount). Rank r
 * receives, in recv, the element-wise sum over ranks of block r of send (counts[r] elements,
 * or recvcount). Each block is summed in rank order, so the result is the same bits as the
 * matching slice of comm_allreduce_sum. */
int comm_reduce_scatter(comm_t *comm, const float *send, float *recv, size_t recvcount,
                        const size_t *counts, const char *tag);

/* buf[0..count) on every rank <- buf[0..count) on rank root. */
int comm_broadcast(comm_t *comm, float *buf, size_t count, int root, const char *tag);

/* Returns once every rank has called it. */
int comm_barrier(comm_t *comm, const char *tag);

/* ---- failure ------------------------------------------------------------------------------ */

/* Marks this rank's group as failed with a one-line message (printf-style). Ranks waiting in a
 * collective return COMM_ERR_PEER; later collectives fail immediately. Under MPI this prints
 * the message and calls MPI_Abort (other processes cannot otherwise be woken). Returns the
 * status to propagate (COMM_ERR_PEER). */
int comm_fail(comm_t *comm, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The first failure message of the group, or "" if none. */
const char *comm_error_message(const comm_t *comm);
const char *comm_status_string(int status);

/* ---- ledger ------------------------------------------------------------------------------- */
/* This rank's ledger (counts since creation or the last comm_ledger_reset). */
const ledger_t *comm_ledger(const comm_t *comm);
void comm_ledger_reset(comm_t *comm);

/* ---- running P ranks ---------------------------------------------------------------------- */

/* The function each rank runs. Return 0 on success; a non-zero return fails the group (the
 * launcher records "rank R failed" unless comm_fail already gave a message). */
typedef int (*comm_rank_fn)(comm_t *comm, void *arg);

/* Runs fn on P ranks of the given backend and waits for all of them.
 *  - threads: P ranks as pthreads of this process (rank 0 on the calling thread).
 *  - mpi: this process is one rank of MPI_COMM_WORLD; P must equal the world size (or be 0).
 *    Call comm_mpi_init first. If fn fails on any rank, the job is aborted (MPI_Abort).
 * Returns 0 if every rank returned 0. Otherwise non-zero, with the group's one-line message
 * in err (if err != NULL). */
int comm_launch(comm_backend_t backend, int P, comm_rank_fn fn, void *arg, char *err,
                size_t errlen);

/* MPI set-up, safe to call when MPI support is not compiled in (returns COMM_ERR_UNAVAILABLE).
 * comm_mpi_init calls MPI_Init_thread once; comm_mpi_finalize calls MPI_Finalize. */
int comm_mpi_init(int *argc, char ***argv);
int comm_mpi_finalize(void);
/* Size and rank of MPI_COMM_WORLD after comm_mpi_init (-1 if not initialised). */
int comm_mpi_world_size(void);
int comm_mpi_world_rank(void);
/* Ends every process of the MPI job with exit status code (MPI_Abort on MPI_COMM_WORLD). Returns
 * only when MPI is not running (not initialised, already finalised, or not built in). */
void comm_mpi_abort(int code);
/* 1 if this process looks like it was started by mpirun/mpiexec (OMPI/PMI env variables). */
int comm_mpi_launched(void);

#ifdef __cplusplus
}
#endif
#endif
