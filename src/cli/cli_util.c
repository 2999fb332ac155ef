/* cli_util.c — argument parsing and error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "linshard%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'linshard%s%s --help')\n", cmd ? " " : "", cmd ? cmd : "");
    va_end(ap);
    return EXIT_USAGE;
}

int cli_job_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "linshard: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return EXIT_JOB;
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
    if (backend == COMM_BACKEND_MPI) comm_mpi_finalize();
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
