/* comm_internal.h — what a communicator backend implements.
 *
 * comm.c owns everything common to all backends — argument checks, expanding NULL counts into
 * equal blocks, the ledger and timing — and calls the backend through this table with
 * validated arguments: counts/displs always hold P entries, buffers are non-NULL where their
 * count is non-zero. Backends move the bytes and report COMM_ERR_* codes. */
#ifndef LINSHARD_COMM_INTERNAL_H
#define LINSHARD_COMM_INTERNAL_H

#include "linshard/comm.h"

typedef struct comm_ops {
    int (*allreduce_sum)(comm_t *comm, void *buf, size_t count, comm_dtype_t dtype);
    int (*allgather)(comm_t *comm, const void *send, void *recv, const size_t *counts,
                     const size_t *displs, comm_dtype_t dtype);
    int (*reduce_scatter)(comm_t *comm, const void *send, void *recv, const size_t *counts,
                          const size_t *displs, comm_dtype_t dtype);
    int (*broadcast)(comm_t *comm, void *buf, size_t count, int root, comm_dtype_t dtype);
    int (*barrier)(comm_t *comm);
    /* Records msg as the group's failure and wakes every waiting rank (MPI: aborts). */
    void (*fail)(comm_t *comm, const char *msg);
    /* 1 if the group has already failed (collectives would return COMM_ERR_PEER). */
    int (*failed)(const comm_t *comm);
    const char *(*error_message)(const comm_t *comm);
} comm_ops;

struct comm {
    const comm_ops *ops;
    comm_backend_t backend;
    int rank;
    int size;
    ledger_t ledger;
    size_t *counts; /* P entries: scratch for expanding equal counts */
    size_t *displs; /* P entries: block offsets */
    void *impl;     /* backend state */
};

/* Allocates the common part (ledger, scratch arrays). Returns NULL on allocation failure. */
comm_t *comm_alloc(const comm_ops *ops, comm_backend_t backend, int rank, int size, void *impl);
void comm_free(comm_t *comm);

static inline size_t comm_dtype_size(comm_dtype_t dtype) {
    (void)dtype;
    return sizeof(float);
}

/* Backends' launchers (comm_launch dispatches to them). */
int comm_threads_launch(int P, comm_rank_fn fn, void *arg, char *err, size_t errlen);
int comm_mpi_launch(int P, comm_rank_fn fn, void *arg, char *err, size_t errlen);

#endif
