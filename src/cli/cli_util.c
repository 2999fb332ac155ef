/* cli_util.c — argument parsing and error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An MPI launcher's process count and this process's rank, read from the environment it sets
 * (Open MPI's mpirun; MPICH/Hydra's mpiexec): known before MPI_Init, and in builds without MPI.
 * -1 when absent. */
static int launcher_env(const char *ompi, const char *pmi) {
    const char *s = getenv(ompi);
    if (!s) s = getenv(pmi);
    long v;
    return s && cli_parse_int(s, 0, 1 << 24, &v) == 0 ? (int)v : -1;
}

int cli_launcher_size(void) {
    int n = launcher_env("OMPI_COMM_WORLD_SIZE", "PMI_SIZE");
    return n > 0 ? n : 0;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    /* Under mpirun every process parsed the same command line: one copy of the message will do. */
    if (launcher_env("OMPI_COMM_WORLD_RANK", "PMI_RANK") > 0) return EXIT_USAGE;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "linshard%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'linshard%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
    va_end(ap);
    return EXIT_USAGE;
}

/* A failure on one MPI rank must end them all: a rank that just returned would wait in
 * MPI_Finalize while the others wait for it in their next collective, forever. So under MPI
 * cli_job_error only records the failure (rank 0 also prints it at once), and cli_end_job, given
 * the command's status by main, aborts the job. Most failures (a bad --model, a prompt too
 * long) are found by every rank alike: rank 0's message is then the only one, because the other
 * ranks keep theirs for JOB_ERROR_GRACE_S and rank 0's MPI_Abort ends them first. A failure of
 * one rank > 0 alone is printed by that rank when the wait is over. */
enum { JOB_ERROR_GRACE_S = 3 };
static char pending_error[1024];

int cli_job_error(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (comm_mpi_world_size() > 1 && comm_mpi_world_rank() > 0) {
        if (!pending_error[0]) snprintf(pending_error, sizeof(pending_error), "%s", msg);
    } else {
        fprintf(stderr, "linshard: error: %s\n", msg);
    }
    return EXIT_JOB;
}

int cli_end_job(int status) {
    if (status == EXIT_OK || comm_mpi_world_size() <= 1) {
        comm_mpi_finalize(); /* nothing when MPI was not started, or already finalised */
        return status;
    }
    fflush(stdout);
    fflush(stderr);
    int rank = comm_mpi_world_rank();
    if (rank > 0) {
        sleep(JOB_ERROR_GRACE_S); /* rank 0, failing too, prints and aborts meanwhile */
        fprintf(stderr, "linshard: error: rank %d: %s\n", rank,
                pending_error[0] ? pending_error : "failed");
        fflush(stderr);
    }
    comm_mpi_abort(status); /* the launcher ends every other process */
    return status;
}

int cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_one_size(const char *s, size_t len, size_t *out) {
    char buf[32];
    if (len == 0 || len >= sizeof(buf)) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    size_t mult = 1;
    char last = buf[len - 1];
    if (last == 'K' || last == 'k')
        mult = 1024;
    else if (last == 'M' || last == 'm')
        mult = 1024 * 1024;
    else if (last == 'G' || last == 'g')
        mult = 1024ul * 1024 * 1024;
    if (mult > 1) buf[--len] = '\0';
    if (len == 0) return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || *end || buf[0] == '-' || v == 0 || v > (1ull << 34) / mult) return -1;
    *out = (size_t)v * mult;
    return 0;
}

int cli_parse_sizes(const char *s, size_t *out, int max, const char **bad) {
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == max || parse_one_size(p, len, &out[n]) != 0) {
            *bad = p;
            return -1;
        }
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

const char *cli_format_bytes(size_t bytes, char *buf, size_t len) {
    if (bytes >= (1u << 30) && bytes % (1u << 30) == 0)
        snprintf(buf, len, "%zu GiB", bytes >> 30);
    else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%zu MiB", bytes >> 20);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(buf, len, "%zu KiB", bytes >> 10);
    else
        snprintf(buf, len, "%zu B", bytes);
    return buf;
}

int cli_parse_backend(const char *cmd, const char *name, comm_backend_t *out) {
    if (comm_backend_parse(name, out) != 0)
        return cli_usage_error(cmd, "unknown backend '%s' (expected threads or mpi)", name);
    if (!comm_backend_available(*out))
        return cli_usage_error(cmd,
                               "backend '%s' is not built into this linshard "
                               "(rebuild with MPI installed)",
                               name);
    return 0;
}

int cli_start_backend(comm_backend_t backend, int P) {
    if (backend != COMM_BACKEND_MPI) return 0;
    if (comm_mpi_init(NULL, NULL) != COMM_OK) return cli_job_error("could not initialise MPI");
    int size = comm_mpi_world_size();
    if (size != P) {
        if (comm_mpi_world_rank() == 0)
            cli_job_error("--backend mpi: MPI started %d process%s but --tp is %d "
                          "(launch with: mpirun -np %d linshard ...)",
                          size, size == 1 ? "" : "es", P, P);
        comm_mpi_finalize();
        return EXIT_JOB;
    }
    return 0;
}

void cli_stop_backend(comm_backend_t backend) {
    /* MPI ends in cli_end_job, once main knows whether this rank failed. */
    (void)backend;
}

int cli_resolve_backend(const char *cmd, int backend_given, comm_backend_t *backend, int tp_given,
                        long *P) {
    int n = cli_launcher_size();
    if (n > 1) {
        if (backend_given && *backend == COMM_BACKEND_THREADS)
            return cli_usage_error(cmd,
                                   "--backend threads under mpirun runs %d separate jobs; drop "
                                   "--backend threads (under mpirun -np %d the mpi backend is "
                                   "used), or run without mpirun: linshard %s --tp %d",
                                   n, n, cmd, n);
        if (!comm_backend_available(COMM_BACKEND_MPI))
            return cli_usage_error(cmd,
                                   "mpirun started %d processes but this linshard was built "
                                   "without MPI; run it without mpirun: linshard %s --tp %d",
                                   n, cmd, n);
        if (tp_given && *P != n)
            return cli_usage_error(cmd,
                                   "--tp %ld but mpirun started %d processes; drop --tp (under "
                                   "mpirun P is the number of processes), or launch with: "
                                   "mpirun -np %ld linshard %s ...",
                                   *P, n, *P, cmd);
        *backend = COMM_BACKEND_MPI;
        *P = n;
    } else if (*backend == COMM_BACKEND_MPI && !tp_given) {
        /* A singleton, or a launcher whose variables we do not know: MPI itself says. */
        if (n == 1)
            *P = 1;
        else if (comm_mpi_init(NULL, NULL) == COMM_OK)
            *P = comm_mpi_world_size();
    }
    return 0;
}

int cli_refuse_launcher(const char *cmd) {
    int n = cli_launcher_size();
    if (n > 1)
        return cli_usage_error(cmd,
                               "runs its ranks as threads of one process, but mpirun started %d "
                               "copies; run it without mpirun: linshard %s ...",
                               n, cmd);
    return 0;
}

int cli_is_printer(comm_backend_t backend) {
    return backend != COMM_BACKEND_MPI || comm_mpi_world_rank() <= 0;
}

int cli_parse_tokens(const char *s, int **out, const char **bad) {
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    int *ids = malloc((size_t)n * sizeof(int));
    if (!ids) return -1;
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ',')) {
            *bad = p;
            free(ids);
            return -1;
        }
        ids[i] = (int)v;
        p = *end ? end + 1 : end;
    }
    *out = ids;
    return n;
}

int cli_parse_int_list(const char *s, int *out, int max, long lo, long hi) {
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < lo || v > hi || (*end && *end != ',') || n == max) return -1;
        out[n++] = (int)v;
        if (!*end) return n;
        p = end + 1;
    }
}
