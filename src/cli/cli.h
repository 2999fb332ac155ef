/* cli.h — what the linshard subcommands share: exit codes and argument parsing. */
#ifndef LINSHARD_CLI_H
#define LINSHARD_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "linshard/comm.h"

/* Exit codes: 0 the job succeeded, 1 the job failed, 2 bad usage. */
enum { EXIT_OK = 0, EXIT_JOB = 1, EXIT_USAGE = 2 };

/* Prints "linshard CMD: <message>" and a hint to use --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints "linshard: error: <message>"; returns EXIT_JOB. Under MPI (more than one process) rank
 * 0 prints at once and other ranks keep the message for cli_end_job, which ends the job. */
int cli_job_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Under an address-space limit (ulimit -v), makes room in OpenBLAS's buffer pool for `ranks`
 * threads (of this process) running BLAS at once, each with `blas_threads` BLAS threads, before
 * the ranks start (address_space.c): OpenBLAS would otherwise retry a failed buffer allocation
 * forever. Returns 0, or -1 with a one-line message naming the limit. Does nothing without a
 * limit. */
int cli_reserve_blas(int ranks, int blas_threads, char *err, size_t errlen);
/* main's first step: under an address-space limit, restarts the program once with
 * OPENBLAS_NUM_THREADS=1 so that OpenBLAS starts no worker threads of its own when it loads. */
void cli_limit_blas_workers(char **argv);
/* Strict integer parse in [lo, hi]; returns 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
/* "4K,64K,1M,16M" (suffixes K, M, G are powers of 1024; plain numbers are bytes). Returns the
 * number parsed, or -1 on a bad entry (then *bad points at it). */
int cli_parse_sizes(const char *s, size_t *out, int max, const char **bad);
/* Parses "464,2068,7586" into a malloc'd array. Returns the count, or -1 (bad entry in *bad). */
int cli_parse_tokens(const char *s, int **out, const char **bad);
/* Parses "1,2,3,4,8". Returns the count, or -1. */
int cli_parse_int_list(const char *s, int *out, int max, long lo, long hi);
/* Formats a byte count as "4 KiB", "16 MiB"... */
const char *cli_format_bytes(size_t bytes, char *buf, size_t len);
/* A speed-up column: "1.23x", or "-" when ratio is 0 because the run it compares with (P = 1,
 * the PyTorch peer) did not happen; a made-up 0.00x reads as a measurement. */
static inline const char *cli_format_speedup(double ratio, char *buf, size_t len) {
    if (ratio > 0)
        snprintf(buf, len, "%.2fx", ratio);
    else
        snprintf(buf, len, "-");
    return buf;
}
/* Parses --backend and checks it was built in; returns 0 or prints a usage error (returns 2). */
int cli_parse_backend(const char *cmd, const char *name, comm_backend_t *out);
/* Under an MPI launcher with N > 1 processes (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH's
 * PMI_SIZE) chooses the mpi backend and P = N; --backend threads or a --tp other than N is a usage
 * error saying what to type. With --backend mpi and no --tp elsewhere, P = MPI's world size.
 * backend_given and tp_given: whether the flags were on the command line. Returns 0 or
 * EXIT_USAGE after printing. */
int cli_resolve_backend(const char *cmd, int backend_given, comm_backend_t *backend, int tp_given,
                        long *P);
/* For commands that run threads only: a usage error when mpirun started several copies. */
int cli_refuse_launcher(const char *cmd);
/* The process count an MPI launcher set in the environment, or 0. */
int cli_launcher_size(void);
/* main's last step: finalises MPI when status is EXIT_OK; otherwise, under MPI with more than one
 * process, prints this rank's pending message (rank > 0, after giving rank 0 time to go first)
 * and aborts the whole job with MPI_Abort, so no rank is left waiting. Returns status. */
int cli_end_job(int status);
/* Brings MPI up when backend is mpi and checks the world size equals P. Returns 0 or EXIT_JOB
 * after printing the problem. */
int cli_start_backend(comm_backend_t backend, int P);
/* Kept for the commands' symmetry; MPI is finalised (or the job aborted) by cli_end_job. */
void cli_stop_backend(comm_backend_t backend);
/* 1 if this process should print results: always for threads, rank 0 only under MPI. */
int cli_is_printer(comm_backend_t backend);

/* Restarts the program once with faster OpenBLAS kernels if detection fell back (see
 * blas_kernels.c). Call first thing in main. */
void cli_choose_blas_kernels(char **argv);

/* Called with each line of a spawned program's stdout (newline included, NUL-terminated). */
typedef void (*cli_line_fn)(const char *line, void *ctx);
/* Runs argv[0] (looked up in PATH) with the NULL-terminated argv, without a shell, and hands
 * every line of its stdout to on_line (may be NULL); its stderr stays ours unless
 * stderr_to_stdout. Returns its exit status, 127 if it could not be started (errno says why),
 * 128 + the signal that killed it, or -1 if a pipe or wait failed. */
int cli_spawn(const char *const *argv, int stderr_to_stdout, cli_line_fn on_line, void *ctx);

int cmd_bench(int argc, char **argv);
int cmd_bench_forward(int argc, char **argv);
int cmd_bench_generate(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_lab(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif
