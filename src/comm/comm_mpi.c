/* comm_mpi.c — the MPI backend: one rank per MPI process, over MPI_COMM_WORLD.
 *
 * Each collective maps onto its MPI counterpart (MPI_Allreduce in place, MPI_Allgatherv,
 * MPI_Reduce_scatter, MPI_Bcast, MPI_Barrier) on a private duplicate of MPI_COMM_WORLD, so
 * linshard's traffic never matches a message of the host application. MPI has no way to wake
 * a process blocked in a collective, so a failure is reported once and the job is ended with
 * MPI_Abort.
 *
 * Broadcasts wait politely. Open MPI's blocking collectives busy-poll, so a rank waiting in
 * MPI_Bcast burns its core for as long as it waits; a serving session (session.h) has every
 * rank but the driver waiting in a broadcast for the next step's plan, possibly for hours, which
 * would keep every core of an idle server at 100%. So comm_broadcast starts an MPI_Ibcast and
 * tests it: it spins for the first BCAST_SPIN_SECONDS (a broadcast that comes soon, as in a busy
 * decode loop, costs no extra latency), then sleeps between tests with a nanosleep that doubles
 * from 1 us up to BCAST_SLEEP_MAX_NS (1 ms): an idle rank wakes about 1000 times a second, and
 * the first plan after idleness arrives at most ~1 ms late. The other collectives stay blocking:
 * they come in the middle of a step, where every rank arrives at nearly the same time. */
#include "comm_internal.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    MPI_Comm mpi;
    int *counts; /* int copies of counts/displs: MPI's v-collectives take int */
    int *displs;
    char message[512];
} mpi_impl;

static mpi_impl *impl_of(const comm_t *comm) {
    return (mpi_impl *)comm->impl;
}

static int mpi_initialised_here = 0;

static void mpi_abort_with(comm_t *comm, const char *msg) {
    mpi_impl *m = impl_of(comm);
    if (!m->message[0]) snprintf(m->message, sizeof(m->message), "%.500s", msg);
    fprintf(stderr, "linshard: error: %s\n", msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Turns an MPI error code into a one-line failure (which aborts the job). */
static int check_mpi(comm_t *comm, int err, const char *what) {
    if (err == MPI_SUCCESS) return COMM_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, text, &len);
    char msg[600];
    snprintf(msg, sizeof(msg), "%s failed on rank %d: %s", what, comm->rank, text);
    mpi_abort_with(comm, msg);
    return COMM_ERR_BACKEND;
}

static int fits_int(comm_t *comm, size_t n, const char *what) {
    if (n <= (size_t)INT_MAX) return 1;
    char msg[200];
    snprintf(msg, sizeof(msg), "%s: %zu elements exceed MPI's int count limit on rank %d", what, n,
             comm->rank);
    mpi_abort_with(comm, msg);
    return 0;
}

static int to_int_layout(comm_t *comm, const size_t *counts, const size_t *displs,
                         const char *what) {
    mpi_impl *m = impl_of(comm);
    for (int j = 0; j < comm->size; j++) {
        if (!fits_int(comm, displs[j] + counts[j], what)) return COMM_ERR_ARG;
        m->counts[j] = (int)counts[j];
        m->displs[j] = (int)displs[j];
    }
    return COMM_OK;
}

static int mpi_allreduce_sum(comm_t *comm, void *buf, size_t count, comm_dtype_t dtype) {
    (void)dtype;
    if (!fits_int(comm, count, "allreduce_sum")) return COMM_ERR_ARG;
    return check_mpi(
        comm, MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, impl_of(comm)->mpi),
        "MPI_Allreduce");
}

static int mpi_allgather(comm_t *comm, const void *send, void *recv, const size_t *counts,
                         const size_t *displs, comm_dtype_t dtype) {
    (void)dtype;
    int rc = to_int_layout(comm, counts, displs, "allgather");
    if (rc) return rc;
    mpi_impl *m = impl_of(comm);
    /* MPI forbids aliasing send and recv unless MPI_IN_PLACE says so. */
    static float dummy[1]; /* count 0: MPI still wants a valid pointer */
    const float *own = recv ? (const float *)recv + displs[comm->rank] : NULL;
    const void *sendbuf = (send && send == own) ? MPI_IN_PLACE : (send ? send : dummy);
    return check_mpi(comm,
                     MPI_Allgatherv(sendbuf, m->counts[comm->rank], MPI_FLOAT, recv ? recv : dummy,
                                    m->counts, m->displs, MPI_FLOAT, m->mpi),
                     "MPI_Allgatherv");
}

static int mpi_reduce_scatter(comm_t *comm, const void *send, void *recv, const size_t *counts,
                              const size_t *displs, comm_dtype_t dtype) {
    (void)dtype;
    int rc = to_int_layout(comm, counts, displs, "reduce_scatter");
    if (rc) return rc;
    mpi_impl *m = impl_of(comm);
    float dummy = 0;
    return check_mpi(comm,
                     MPI_Reduce_scatter(send ? send : &dummy, recv ? recv : &dummy, m->counts,
                                        MPI_FLOAT, MPI_SUM, m->mpi),
                     "MPI_Reduce_scatter");
}

/* How long a broadcast spins before it starts sleeping, and its longest sleep. */
#define BCAST_SPIN_SECONDS 100e-6
#define BCAST_SLEEP_MIN_NS 1000L
#define BCAST_SLEEP_MAX_NS 1000000L

static int mpi_broadcast(comm_t *comm, void *buf, size_t count, int root, comm_dtype_t dtype) {
    (void)dtype;
    if (!fits_int(comm, count, "broadcast")) return COMM_ERR_ARG;
    static float dummy[1]; /* count 0: MPI still wants a valid pointer */
    MPI_Request req;
    int rc = check_mpi(
        comm, MPI_Ibcast(buf ? buf : dummy, (int)count, MPI_FLOAT, root, impl_of(comm)->mpi, &req),
        "MPI_Ibcast");
    double start = MPI_Wtime();
    long sleep_ns = BCAST_SLEEP_MIN_NS;
    for (int done = 0; !rc;) {
        rc = check_mpi(comm, MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (rc || done) break;
        if (MPI_Wtime() - start < BCAST_SPIN_SECONDS) continue;
        struct timespec pause = {0, sleep_ns};
        nanosleep(&pause, NULL);
        sleep_ns = sleep_ns * 2 > BCAST_SLEEP_MAX_NS ? BCAST_SLEEP_MAX_NS : sleep_ns * 2;
    }
    return rc;
}

static int mpi_barrier(comm_t *comm) {
    return check_mpi(comm, MPI_Barrier(impl_of(comm)->mpi), "MPI_Barrier");
}

static void mpi_fail(comm_t *comm, const char *msg) {
    mpi_abort_with(comm, msg);
}

static int mpi_failed(const comm_t *comm) {
    return impl_of(comm)->message[0] != '\0';
}

static const char *mpi_error_message(const comm_t *comm) {
    return impl_of(comm)->message;
}

static const comm_ops mpi_ops = {
    .allreduce_sum = mpi_allreduce_sum,
    .allgather = mpi_allgather,
    .reduce_scatter = mpi_reduce_scatter,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .fail = mpi_fail,
    .failed = mpi_failed,
    .error_message = mpi_error_message,
};

int comm_mpi_init(int *argc, char ***argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return COMM_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return COMM_ERR_BACKEND;
    mpi_initialised_here = 1;
    return COMM_OK;
}

int comm_mpi_finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!mpi_initialised_here || done) return COMM_OK;
    return MPI_Finalize() == MPI_SUCCESS ? COMM_OK : COMM_ERR_BACKEND;
}

static int mpi_ready(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int comm_mpi_world_size(void) {
    int n = -1;
    if (mpi_ready()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int comm_mpi_world_rank(void) {
    int r = -1;
    if (mpi_ready()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

void comm_mpi_abort(int code) {
    if (mpi_ready()) MPI_Abort(MPI_COMM_WORLD, code);
}

int comm_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int comm_mpi_launch(int P, comm_rank_fn fn, void *arg, char *err, size_t errlen) {
    if (!mpi_ready()) {
        if (err) snprintf(err, errlen, "mpi backend: MPI is not initialised (call comm_mpi_init)");
        return COMM_ERR_UNAVAILABLE;
    }
    int size = comm_mpi_world_size(), rank = comm_mpi_world_rank();
    if (P != 0 && P != size) {
        if (err)
            snprintf(err, errlen,
                     "mpi backend: %d ranks requested but MPI started %d process%s "
                     "(launch with: mpirun -np %d linshard ...)",
                     P, size, size == 1 ? "" : "es", P);
        return COMM_ERR_ARG;
    }
    mpi_impl m = {0};
    m.counts = calloc((size_t)size, sizeof(int));
    m.displs = calloc((size_t)size, sizeof(int));
    comm_t *comm =
        (m.counts && m.displs) ? comm_alloc(&mpi_ops, COMM_BACKEND_MPI, rank, size, &m) : NULL;
    if (!comm) {
        fprintf(stderr, "linshard: error: mpi backend: out of memory on rank %d\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &m.mpi);
    MPI_Comm_set_errhandler(m.mpi, MPI_ERRORS_RETURN);
    int rc = fn(comm, arg);
    if (rc != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "rank %d failed (%s)", rank, comm_status_string(rc));
        mpi_abort_with(comm, msg); /* does not return */
    }
    MPI_Comm_free(&m.mpi);
    comm_free(comm);
    free(m.counts);
    free(m.displs);
    return COMM_OK;
}
