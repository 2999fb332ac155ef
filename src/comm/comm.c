/* comm.c — the backend-independent half of every collective: argument checks, block layout,
 * timing and the ledger. The backend (comm_threads.c, comm_mpi.c) only moves data. */
#include "comm_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/split.h"
#include "linshard/timer.h"

comm_t *comm_alloc(const comm_ops *ops, comm_backend_t backend, int rank, int size, void *impl) {
    comm_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->counts = calloc((size_t)size, sizeof(size_t));
    c->displs = calloc((size_t)size, sizeof(size_t));
    if (!c->counts || !c->displs) {
        comm_free(c);
        return NULL;
    }
    c->ops = ops;
    c->backend = backend;
    c->rank = rank;
    c->size = size;
    c->impl = impl;
    ledger_init(&c->ledger);
    return c;
}

void comm_free(comm_t *comm) {
    if (!comm) return;
    ledger_free(&comm->ledger);
    free(comm->counts);
    free(comm->displs);
    free(comm);
}

int comm_rank(const comm_t *comm) {
    return comm->rank;
}
int comm_size(const comm_t *comm) {
    return comm->size;
}
comm_backend_t comm_backend(const comm_t *comm) {
    return comm->backend;
}

const char *comm_backend_name(comm_backend_t backend) {
    return backend == COMM_BACKEND_MPI ? "mpi" : "threads";
}

int comm_backend_parse(const char *name, comm_backend_t *out) {
    if (name && strcmp(name, "threads") == 0)
        *out = COMM_BACKEND_THREADS;
    else if (name && strcmp(name, "mpi") == 0)
        *out = COMM_BACKEND_MPI;
    else
        return -1;
    return 0;
}

int comm_backend_available(comm_backend_t backend) {
#ifdef LINSHARD_HAVE_MPI
    (void)backend;
    return 1;
#else
    return backend == COMM_BACKEND_THREADS;
#endif
}

const char *comm_status_string(int status) {
    switch (status) {
    case COMM_OK:
        return "ok";
    case COMM_ERR_ARG:
        return "bad argument";
    case COMM_ERR_NOMEM:
        return "out of memory";
    case COMM_ERR_PEER:
        return "another rank failed";
    case COMM_ERR_BACKEND:
        return "backend error";
    case COMM_ERR_UNAVAILABLE:
        return "backend unavailable";
    default:
        return "unknown error";
    }
}

int comm_fail(comm_t *comm, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    comm->ops->fail(comm, msg);
    return COMM_ERR_PEER;
}

const char *comm_error_message(const comm_t *comm) {
    return comm->ops->error_message(comm);
}

const ledger_t *comm_ledger(const comm_t *comm) {
    return &comm->ledger;
}
void comm_ledger_reset(comm_t *comm) {
    ledger_reset(&comm->ledger);
}

/* Records one finished call; a ledger that cannot grow fails the group rather than lie. */
static int record(comm_t *comm, ledger_op op, const char *tag, uint64_t elements, uint64_t sent,
                  uint64_t received, double t0) {
    double dt = timer_seconds() - t0;
    if (ledger_record(&comm->ledger, op, tag, elements, sent, received, dt) != 0)
        return comm_fail(comm, "rank %d: out of memory recording the comm ledger", comm->rank);
    return COMM_OK;
}

/* Entry check shared by all collectives: a dead group fails fast, on every rank. */
static int check_alive(comm_t *comm) {
    return (comm && comm->ops->failed(comm)) ? COMM_ERR_PEER : COMM_OK;
}

/* Fills comm->counts/displs from counts (or P equal blocks of each) and returns the total. */
static size_t layout_blocks(comm_t *comm, const size_t *counts, size_t each) {
    size_t total = 0;
    for (int r = 0; r < comm->size; r++) {
        comm->counts[r] = counts ? counts[r] : each;
        comm->displs[r] = total;
        total += comm->counts[r];
    }
    return total;
}

int comm_allreduce_sum(comm_t *comm, float *buf, size_t count, const char *tag) {
    if (!comm) return COMM_ERR_ARG;
    int rc = check_alive(comm);
    if (rc) return rc;
    if (count && !buf)
        return comm_fail(comm, "allreduce_sum: rank %d passed a NULL buffer for %zu elements",
                         comm->rank, count);
    double t0 = timer_seconds();
    int P = comm->size;
    if (P > 1 && (rc = comm->ops->allreduce_sum(comm, buf, count, COMM_F32))) return rc;
    uint64_t own = split_count(count, P, comm->rank);
    uint64_t bytes = P > 1 ? ((count - own) + (uint64_t)(P - 1) * own) * sizeof(float) : 0;
    return record(comm, LEDGER_ALLREDUCE, tag, count, bytes, bytes, t0);
}

int comm_allgather(comm_t *comm, const float *send, size_t sendcount, float *recv,
                   const size_t *counts, const char *tag) {
    if (!comm) return COMM_ERR_ARG;
    int rc = check_alive(comm);
    if (rc) return rc;
    int r = comm->rank, P = comm->size;
    if (counts && counts[r] != sendcount)
        return comm_fail(comm, "allgather: rank %d sends %zu elements but counts[%d] = %zu", r,
                         sendcount, r, counts[r]);
    size_t total = layout_blocks(comm, counts, sendcount);
    if ((sendcount && !send) || (total && !recv))
        return comm_fail(comm, "allgather: rank %d passed a NULL buffer", r);
    double t0 = timer_seconds();
    if (P > 1) {
        rc = comm->ops->allgather(comm, send, recv, comm->counts, comm->displs, COMM_F32);
        if (rc) return rc;
    } else if (sendcount && recv != send) {
        memmove(recv, send, sendcount * sizeof(float));
    }
    uint64_t sent = (uint64_t)(P - 1) * sendcount * sizeof(float);
    uint64_t received = (uint64_t)(total - sendcount) * sizeof(float);
    return record(comm, LEDGER_ALLGATHER, tag, total, sent, received, t0);
}

int comm_reduce_scatter(comm_t *comm, const float *send, float *recv, size_t recvcount,
                        const size_t *counts, const char *tag) {
    if (!comm) return COMM_ERR_ARG;
    int rc = check_alive(comm);
    if (rc) return rc;
    int r = comm->rank, P = comm->size;
    if (counts && counts[r] != recvcount)
        return comm_fail(comm, "reduce_scatter: rank %d receives %zu elements but counts[%d] = %zu",
                         r, recvcount, r, counts[r]);
    size_t total = layout_blocks(comm, counts, recvcount);
    if ((total && !send) || (recvcount && !recv))
        return comm_fail(comm, "reduce_scatter: rank %d passed a NULL buffer", r);
    double t0 = timer_seconds();
    if (P > 1) {
        rc = comm->ops->reduce_scatter(comm, send, recv, comm->counts, comm->displs, COMM_F32);
        if (rc) return rc;
    } else if (recvcount && recv != send) {
        memmove(recv, send, recvcount * sizeof(float));
    }
    uint64_t sent = (uint64_t)(total - recvcount) * sizeof(float);
    uint64_t received = (uint64_t)(P - 1) * recvcount * sizeof(float);
    return record(comm, LEDGER_REDUCE_SCATTER, tag, total, sent, received, t0);
}

int comm_broadcast(comm_t *comm, float *buf, size_t count, int root, const char *tag) {
    if (!comm) return COMM_ERR_ARG;
    int rc = check_alive(comm);
    if (rc) return rc;
    int r = comm->rank, P = comm->size;
    if (root < 0 || root >= P)
        return comm_fail(comm, "broadcast: root %d is not a rank of a group of %d", root, P);
    if (count && !buf) return comm_fail(comm, "broadcast: rank %d passed a NULL buffer", r);
    double t0 = timer_seconds();
    if (P > 1 && (rc = comm->ops->broadcast(comm, buf, count, root, COMM_F32))) return rc;
    uint64_t bytes = (uint64_t)count * sizeof(float);
    uint64_t sent = (r == root) ? (uint64_t)(P - 1) * bytes : 0;
    uint64_t received = (r == root || P == 1) ? 0 : bytes;
    return record(comm, LEDGER_BROADCAST, tag, count, sent, received, t0);
}

int comm_barrier(comm_t *comm, const char *tag) {
    if (!comm) return COMM_ERR_ARG;
    int rc = check_alive(comm);
    if (rc) return rc;
    double t0 = timer_seconds();
    if (comm->size > 1 && (rc = comm->ops->barrier(comm))) return rc;
    return record(comm, LEDGER_BARRIER, tag, 0, 0, 0, t0);
}

int comm_launch(comm_backend_t backend, int P, comm_rank_fn fn, void *arg, char *err,
                size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (backend == COMM_BACKEND_MPI) return comm_mpi_launch(P, fn, arg, err, errlen);
    return comm_threads_launch(P, fn, arg, err, errlen);
}
