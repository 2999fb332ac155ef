/* comm_mpi_none.c — stands in for comm_mpi.c in builds without MPI (-DLINSHARD_MPI=OFF or no
 * MPI found): every entry point says the backend is unavailable. */
#include "comm_internal.h"

#include <stdio.h>

int comm_mpi_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return COMM_ERR_UNAVAILABLE;
}

int comm_mpi_finalize(void) {
    return COMM_OK;
}
int comm_mpi_world_size(void) {
    return -1;
}
int comm_mpi_world_rank(void) {
    return -1;
}
void comm_mpi_abort(int code) {
    (void)code;
}
int comm_mpi_launched(void) {
    return 0;
}

int comm_mpi_launch(int P, comm_rank_fn fn, void *arg, char *err, size_t errlen) {
    (void)P;
    (void)fn;
    (void)arg;
    if (err)
        snprintf(err, errlen,
                 "mpi backend: this linshard was built without MPI "
                 "(install libopenmpi-dev and rebuild)");
    return COMM_ERR_UNAVAILABLE;
}
