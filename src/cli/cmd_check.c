/* cmd_check.c — `linshard check comm`: the communicator's conformance checks, run by a user on
 * their own machine or MPI installation (the test suite runs the same checks). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "linshard/linshard.h"

static const char check_usage[] =
    "usage: linshard check comm [--tp P] [--backend threads|mpi] [--quick] [--fail-rank R]\n"
    "                           [--comm-stats]\n"
    "\n"
    "Runs allreduce_sum, allgather, reduce_scatter, broadcast and barrier on sizes 0, 1, 7,\n"
    "1000 and 2^20+3 (and uneven per-rank counts, one of them 0), checks every result against a\n"
    "serial reference (exact for integer-valued data, within (P-1)*2^-24*sum|x| for random\n"
    "data), that all ranks hold bitwise-identical results, and that the comm ledger recorded\n"
    "exactly the calls and bytes made.\n"
    "\n"
    "  --tp P          number of ranks (default 2; under mpi, the number of MPI processes)\n"
    "  --backend B     threads (default) or mpi, the default under mpirun -np P (--tp is P)\n"
    "  --quick         skip the 2^20+3 size (for slow sanitizer builds)\n"
    "  --fail-rank R   drill: rank R fails on purpose midway; the run must end on every rank\n"
    "                  with one error message and exit status 1\n"
    "  --comm-stats    print rank 0's comm ledger at the end\n"
    "  -h, --help      this text\n";

typedef struct {
    comm_selftest_opts opts;
    comm_selftest_report *reports; /* one per rank (threads); [0] under MPI */
    int comm_stats;
} check_job;

static int check_rank(comm_t *comm, void *arg) {
    check_job *job = arg;
    int slot = comm_backend(comm) == COMM_BACKEND_MPI ? 0 : comm_rank(comm);
    int rc = comm_selftest(comm, &job->opts, &job->reports[slot]);
    if (!rc && job->comm_stats && comm_rank(comm) == 0) ledger_print(comm_ledger(comm), 0, stderr);
    return rc;
}

static int check_comm(int argc, char **argv) {
    static const struct option longopts[] = {{"tp", required_argument, 0, 'p'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"quick", no_argument, 0, 'q'},
                                             {"fail-rank", required_argument, 0, 'f'},
                                             {"comm-stats", no_argument, 0, 's'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    long P = 2, fail_rank = -1;
    comm_backend_t backend = COMM_BACKEND_THREADS;
    check_job job = {.opts = {0, -1}};
    int c, rc, backend_given = 0, tp_given = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("check comm", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            tp_given = 1;
            break;
        case 'b':
            if ((rc = cli_parse_backend("check comm", optarg, &backend))) return rc;
            backend_given = 1;
            break;
        case 'q':
            job.opts.max_count = 1000;
            break;
        case 'f':
            if (cli_parse_int(optarg, 0, 255, &fail_rank))
                return cli_usage_error("check comm", "--fail-rank must be a rank number, got '%s'",
                                       optarg);
            break;
        case 's':
            job.comm_stats = 1;
            break;
        case 'h':
            fputs(check_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("check comm", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("check comm", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("check comm", "unexpected argument '%s'", argv[optind]);
    if ((rc = cli_resolve_backend("check comm", backend_given, &backend, tp_given, &P))) return rc;
    if (fail_rank >= P)
        return cli_usage_error("check comm", "--fail-rank %ld is not a rank of --tp %ld", fail_rank,
                               P);
    job.opts.fail_rank = (int)fail_rank;
    if ((rc = cli_start_backend(backend, (int)P))) return rc;
    job.reports = calloc((size_t)P, sizeof(*job.reports));
    if (!job.reports) return cli_job_error("out of memory");
    char err[512];
    rc = comm_launch(backend, (int)P, check_rank, &job, err, sizeof(err));
    int status = EXIT_OK;
    if (rc) {
        status = cli_job_error("%s", err);
    } else if (cli_is_printer(backend)) {
        int checks = 0, failures = job.reports[0].group_failures;
        int nreports = backend == COMM_BACKEND_MPI ? 1 : (int)P;
        for (int r = 0; r < nreports; r++) checks += job.reports[r].checks;
        if (backend == COMM_BACKEND_MPI) checks *= (int)P; /* every rank ran the same checks */
        for (int r = 0; r < nreports; r++)
            if (job.reports[r].failures) fprintf(stderr, "%s\n", job.reports[r].first_failure);
        printf("check comm: backend %s, P=%ld: %d checks, %d failed\n", comm_backend_name(backend),
               P, checks, failures);
        if (failures) status = EXIT_JOB;
    } else if (job.reports[0].failures) {
        fprintf(stderr, "%s\n", job.reports[0].first_failure);
    }
    if (backend == COMM_BACKEND_MPI && job.reports[0].group_failures) status = EXIT_JOB;
    free(job.reports);
    cli_stop_backend(backend);
    return status;
}

int cmd_check(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(check_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "comm")) return check_comm(argc - 1, argv + 1);
    return cli_usage_error("check", "unknown check '%s' (available: comm)", argv[1]);
}
