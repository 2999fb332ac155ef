/* cmd_bench.c — `linshard bench comm`: allreduce_sum timed on the threads backend, beside the
 * installed MPI's MPI_Allreduce (this same binary, relaunched under mpirun) and memcpy of the
 * same bytes, all in one run so the ratios are fair on a noisy machine.
 *
 * Definitions follow nccl-tests: algbw = bytes / time; busbw = algbw * 2(P-1)/P, the bandwidth
 * each rank's links would need for a bandwidth-optimal allreduce. For memcpy, algbw = busbw =
 * bytes copied / time. In the threads backend each rank reads N and writes N bytes per
 * allreduce (see comm_threads.c), exactly the traffic of one memcpy of N bytes, so one core's
 * memcpy is the natural reference for the threads backend's algbw. It is not a hard ceiling:
 * the ranks copy on P cores at once, and on some machines the fused reduce loop outruns glibc's
 * memcpy (docs/PERFORMANCE.md shows both). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "linshard/linshard.h"

#define MAX_SIZES 16
/* Timed repeats per size; the median is reported. The median, not the fastest: under load
 * (--hog) the fastest repeat is the one the other processes happened to leave alone, and hides
 * exactly the effect being measured. */
#define REPEATS 5
#define MAX_HOGS 64
#define TARGET_SECONDS 0.05 /* length of one timed repeat */

static const char bench_usage[] =
    "usage: linshard bench comm [--tp P] [--backend threads|mpi] [--sizes LIST] [--json]\n"
    "                           [--no-peers] [--comm-stats] [--hog N]\n"
    "\n"
    "Times allreduce_sum (float32, in place) for each size on P ranks and prints time, algorithm\n"
    "bandwidth (bytes/time) and bus bandwidth (algbw*2(P-1)/P, as nccl-tests define it). With the\n"
    "threads backend it also measures, in the same run, the installed MPI's MPI_Allreduce on P\n"
    "processes (it runs mpirun on this same binary) and one core's memcpy of the same bytes —\n"
    "the memory-bandwidth reference: each rank of the threads backend reads and writes N bytes\n"
    "per allreduce, one memcpy's worth. Each time is the median of 5 timed repeats of ~50 ms.\n"
    "\n"
    "  --tp P         ranks (default 2)\n"
    "  --backend B    threads (default) or mpi, the default under mpirun -np P (where P is then\n"
    "                 the number of processes)\n"
    "  --sizes LIST   message sizes in bytes, K/M/G suffixes (default 4K,64K,1M,16M,64M)\n"
    "  --json         one JSON object per line: backend, P, bytes, seconds (per call, the\n"
    "                 median of the repeats), algbw_GBps, busbw_GBps, iters (per repeat), hogs\n"
    "  --no-peers     measure only the chosen backend (no mpirun, no memcpy)\n"
    "  --comm-stats   print rank 0's comm ledger at the end\n"
    "  --hog N        run N busy-loop processes (0..64, default 0) during every measurement,\n"
    "                 MPI peer and memcpy included, to show the backends under CPU load;\n"
    "                 threads backend only\n"
    "  -h, --help     this text\n"
    "\n"
    "environment: LINSHARD_MPIRUN (default mpirun) is the launcher used for the MPI peer;\n"
    "LINSHARD_SPIN_US fixes how long a waiting rank spins before it sleeps (default: adapted to\n"
    "the load, at most 50 us); LINSHARD_YIELD_US adds that long of sched_yield before the sleep.\n";

typedef struct {
    char backend[16];
    int P;
    size_t bytes;
    double seconds; /* per call */
    long iters;
    int valid;
} result_t;

typedef struct {
    int P;
    comm_backend_t backend;
    int json, peers, comm_stats, hogs;
    size_t sizes[MAX_SIZES];
    int n_sizes;
    result_t mine[MAX_SIZES], mpi[MAX_SIZES], copy[MAX_SIZES];
} bench_t;

static double busbw_factor(int P) {
    return P > 1 ? 2.0 * (P - 1) / P : 1.0;
}

/* ---- measuring ---------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of REPEATS times (sorts them). */
static double median(double *t) {
    qsort(t, REPEATS, sizeof(*t), cmp_double);
    return REPEATS % 2 ? t[REPEATS / 2] : 0.5 * (t[REPEATS / 2 - 1] + t[REPEATS / 2]);
}

/* Times `iters` allreduces; every rank gets the mean over ranks of its own per-call time. */
static int time_allreduce(comm_t *comm, float *buf, size_t count, long iters, double *seconds) {
    int rc;
    if ((rc = comm_barrier(comm, "bench.sync"))) return rc;
    double t0 = timer_seconds();
    for (long i = 0; i < iters; i++)
        if ((rc = comm_allreduce_sum(comm, buf, count, "bench.allreduce"))) return rc;
    float t = (float)((timer_seconds() - t0) / (double)iters);
    if ((rc = comm_allreduce_sum(comm, &t, 1, "bench.sync"))) return rc;
    *seconds = t / comm_size(comm);
    return COMM_OK;
}

static int bench_rank(comm_t *comm, void *arg) {
    bench_t *b = arg;
    size_t max_bytes = 0;
    for (int s = 0; s < b->n_sizes; s++)
        if (b->sizes[s] > max_bytes) max_bytes = b->sizes[s];
    size_t max_count = max_bytes / sizeof(float);
    float *buf = malloc(max_count * sizeof(float) + 64);
    if (!buf)
        return comm_fail(comm, "bench: out of memory for %zu bytes on rank %d", max_bytes,
                         comm_rank(comm));
    /* Small values: repeated summing doubles them each call, and they must stay normal floats
     * for the whole run (denormals would slow the loop down). */
    for (size_t i = 0; i < max_count; i++) buf[i] = 1e-3f * (float)(i % 7);
    int rc = COMM_OK;
    for (int s = 0; s < b->n_sizes && !rc; s++) {
        size_t count = b->sizes[s] / sizeof(float);
        double t = 0, times[REPEATS];
        /* Warm up and calibrate; rank 0's choice of iteration count is broadcast so every rank
         * runs the same number of collectives. */
        if ((rc = time_allreduce(comm, buf, count, 3, &t))) break;
        float iters = (float)(TARGET_SECONDS / (t > 1e-9 ? t : 1e-9));
        iters = iters < 5 ? 5 : (iters > 200000 ? 200000 : iters);
        if ((rc = comm_broadcast(comm, &iters, 1, 0, "bench.sync"))) break;
        for (int rep = 0; rep < REPEATS && !rc; rep++)
            rc = time_allreduce(comm, buf, count, (long)iters, &times[rep]);
        if (!rc && comm_rank(comm) == 0)
            b->mine[s] =
                (result_t){"", comm_size(comm), b->sizes[s], median(times), (long)iters, 1};
    }
    if (!rc && b->comm_stats && comm_rank(comm) == 0) ledger_print(comm_ledger(comm), 0, stderr);
    free(buf);
    return rc;
}

static int bench_memcpy(bench_t *b) {
    size_t max_bytes = 0;
    for (int s = 0; s < b->n_sizes; s++)
        if (b->sizes[s] > max_bytes) max_bytes = b->sizes[s];
    char *src = malloc(max_bytes), *dst = malloc(max_bytes);
    if (!src || !dst) {
        free(src);
        free(dst);
        return cli_job_error("bench: out of memory for the memcpy measurement");
    }
    memset(src, 1, max_bytes);
    memset(dst, 2, max_bytes);
    for (int s = 0; s < b->n_sizes; s++) {
        size_t n = b->sizes[s];
        double t0 = timer_seconds();
        for (int i = 0; i < 3; i++) memcpy(dst, src, n);
        double t = (timer_seconds() - t0) / 3;
        long iters = (long)(TARGET_SECONDS / (t > 1e-9 ? t : 1e-9));
        iters = iters < 5 ? 5 : (iters > 200000 ? 200000 : iters);
        double times[REPEATS];
        for (int rep = 0; rep < REPEATS; rep++) {
            t0 = timer_seconds();
            for (long i = 0; i < iters; i++) {
                memcpy(dst, src, n);
                __asm__ __volatile__("" ::"r"(dst) : "memory"); /* keep every copy */
            }
            times[rep] = (timer_seconds() - t0) / (double)iters;
        }
        b->copy[s] = (result_t){"memcpy", 1, n, median(times), iters, 1};
    }
    free(src);
    free(dst);
    return EXIT_OK;
}

/* ---- CPU load: busy-loop hogs ------------------------------------------------------------- */

/* The hogs are forked children that loop forever on the CPU, as `sh -c 'while :; do :; done'`
 * would. They are SIGKILLed and reaped by hogs_stop on every way out of bench_comm; if this
 * process dies first (a signal, a crash), PR_SET_PDEATHSIG kills them too, so no hog outlives
 * the benchmark. Ctrl-C reaches them directly: they are in the terminal's process group. */
static pid_t hog_pids[MAX_HOGS];
static int n_hogs;

static void hogs_stop(void) {
    for (int i = 0; i < n_hogs; i++) kill(hog_pids[i], SIGKILL);
    for (int i = 0; i < n_hogs; i++)
        while (waitpid(hog_pids[i], NULL, 0) < 0 && errno == EINTR) {
        }
    n_hogs = 0;
}

static int hogs_start(int n) {
    pid_t parent = getpid();
    fflush(NULL); /* no buffered output duplicated into the children */
    for (n_hogs = 0; n_hogs < n; n_hogs++) {
        pid_t pid = fork();
        if (pid < 0) {
            int e = errno;
            hogs_stop();
            return cli_job_error("bench: cannot start busy-loop hog %d of %d (%s)", n_hogs + 1, n,
                                 strerror(e));
        }
        if (pid == 0) {
#ifdef __linux__
            prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
            if (getppid() != parent) _exit(0); /* the parent died before prctl */
            for (volatile unsigned long spin = 0;; spin++) {
            }
        }
        hog_pids[n_hogs] = pid;
    }
    return EXIT_OK;
}

/* ---- the MPI peer: this binary under mpirun ----------------------------------------------- */

static void find_open_mpi(const char *line, void *open_mpi) {
    if (strstr(line, "Open MPI") || strstr(line, "OpenRTE")) *(int *)open_mpi = 1;
}

static int is_open_mpi(const char *mpirun) {
    const char *argv[] = {mpirun, "--version", NULL};
    int open_mpi = 0;
    cli_spawn(argv, 1, find_open_mpi, &open_mpi);
    return open_mpi;
}

/* Parses one JSON line of the child's output into the matching result slot. */
static void take_mpi_line(const char *line, void *arg) {
    bench_t *b = arg;
    cJSON *o = cJSON_Parse(line);
    if (!o) return;
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(o, "backend");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(o, "bytes");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(o, "seconds");
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "iters");
    if (cJSON_IsString(be) && !strcmp(be->valuestring, "mpi") && cJSON_IsNumber(by) &&
        cJSON_IsNumber(se)) {
        for (int s = 0; s < b->n_sizes; s++)
            if ((double)b->sizes[s] == by->valuedouble)
                b->mpi[s] = (result_t){"mpi",
                                       b->P,
                                       b->sizes[s],
                                       se->valuedouble,
                                       cJSON_IsNumber(it) ? (long)it->valuedouble : 0,
                                       1};
    }
    cJSON_Delete(o);
}

/* Runs `mpirun -np P <this binary> bench comm --backend mpi --json ...` and collects its rows.
 * Returns 0 on success; on failure prints why and returns non-zero (the threads results stand). */
static int bench_mpi_peer(bench_t *b) {
    if (!comm_backend_available(COMM_BACKEND_MPI)) {
        fprintf(stderr, "linshard: note: MPI peer skipped: this linshard was built without MPI\n");
        return 1;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        fprintf(stderr, "linshard: note: MPI peer skipped: cannot find this binary's path\n");
        return 1;
    }
    self[len] = '\0';
    const char *mpirun = getenv("LINSHARD_MPIRUN");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    char np[16], tp[16], sizes[MAX_SIZES * 24] = "";
    snprintf(np, sizeof(np), "%d", b->P);
    snprintf(tp, sizeof(tp), "%d", b->P);
    for (int s = 0; s < b->n_sizes; s++) {
        char one[24];
        snprintf(one, sizeof(one), "%s%zu", s ? "," : "", b->sizes[s]);
        strcat(sizes, one);
    }
    const char *argv[24];
    int a = 0;
    argv[a++] = mpirun;
    if (is_open_mpi(mpirun)) {
        argv[a++] = "--allow-run-as-root"; /* CI and containers run as root */
        argv[a++] = "--oversubscribe";     /* P may exceed the core count */
    }
    const char *rest[] = {"-np",  np, self,     "bench",      "comm",    "--backend", "mpi",
                          "--tp", tp, "--json", "--no-peers", "--sizes", sizes};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++) argv[a++] = rest[i];
    argv[a] = NULL;

    int rc = cli_spawn(argv, 0, take_mpi_line, b);
    if (rc == 127) {
        fprintf(stderr, "linshard: note: MPI peer skipped: cannot run '%s'\n", mpirun);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "linshard: note: the MPI peer measurement failed (%s exited with %d)\n",
                mpirun, rc);
        return 1;
    }
    return 0;
}

/* ---- printing ----------------------------------------------------------------------------- */

static void print_json(const result_t *r, int hogs) {
    if (!r->valid) return;
    cJSON *o = cJSON_CreateObject();
    int P = strcmp(r->backend, "memcpy") ? r->P : 1;
    double algbw = (double)r->bytes / r->seconds / 1e9;
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON_AddNumberToObject(o, "P", r->P);
    cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "algbw_GBps", algbw);
    cJSON_AddNumberToObject(o, "busbw_GBps", algbw * busbw_factor(P));
    cJSON_AddNumberToObject(o, "iters", (double)r->iters);
    cJSON_AddNumberToObject(o, "hogs", hogs);
    char *text = cJSON_PrintUnformatted(o);
    if (text) puts(text);
    free(text);
    cJSON_Delete(o);
}

static void print_row(const result_t *r, const result_t *mpi) {
    if (!r->valid) return;
    int P = strcmp(r->backend, "memcpy") ? r->P : 1;
    double algbw = (double)r->bytes / r->seconds / 1e9;
    char size[32];
    printf("  %10s  %-8s %12.2f %12.2f %12.2f", cli_format_bytes(r->bytes, size, sizeof(size)),
           r->backend, r->seconds * 1e6, algbw, algbw * busbw_factor(P));
    if (mpi && mpi->valid && strcmp(r->backend, "mpi") && strcmp(r->backend, "memcpy"))
        printf("   %5.2fx", mpi->seconds / r->seconds);
    printf("\n");
}

static void print_table(const bench_t *b) {
    printf("allreduce_sum, float32 in place, P=%d (median of %d timed repeats of ~%.0f ms each",
           b->P, REPEATS, TARGET_SECONDS * 1e3);
    if (b->hogs) printf("; %d busy-loop hog%s running", b->hogs, b->hogs > 1 ? "s" : "");
    printf(")\n");
    printf("  %10s  %-8s %12s %12s %12s   %s\n", "size", "backend", "time_us", "algbw_GB/s",
           "busbw_GB/s", "speed-up vs mpi");
    for (int s = 0; s < b->n_sizes; s++) {
        print_row(&b->mine[s], &b->mpi[s]);
        print_row(&b->mpi[s], NULL);
        print_row(&b->copy[s], NULL);
    }
    for (int s = 0; s < b->n_sizes; s++) {
        const result_t *t = &b->mine[s], *c = &b->copy[s];
        if (t->valid && c->valid && b->sizes[s] >= (1u << 20))
            printf("%zu MiB: threads algbw = %.2fx memcpy's (each rank moves one memcpy's "
                   "worth of bytes per allreduce)\n",
                   b->sizes[s] >> 20, c->seconds / t->seconds);
    }
}

static int bench_comm(int argc, char **argv) {
    static const struct option longopts[] = {{"tp", required_argument, 0, 'p'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"sizes", required_argument, 0, 'z'},
                                             {"json", no_argument, 0, 'j'},
                                             {"no-peers", no_argument, 0, 'n'},
                                             {"comm-stats", no_argument, 0, 's'},
                                             {"hog", required_argument, 0, 'g'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    static bench_t b;
    memset(&b, 0, sizeof(b));
    b.P = 2;
    b.peers = 1;
    const size_t defaults[] = {4096, 65536, 1u << 20, 16u << 20, 64u << 20};
    b.n_sizes = 5;
    memcpy(b.sizes, defaults, sizeof(defaults));
    long P = 2;
    int c, rc, backend_given = 0, tp_given = 0;
    const char *bad = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("bench comm", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            tp_given = 1;
            break;
        case 'b':
            if ((rc = cli_parse_backend("bench comm", optarg, &b.backend))) return rc;
            backend_given = 1;
            break;
        case 'z':
            b.n_sizes = cli_parse_sizes(optarg, b.sizes, MAX_SIZES, &bad);
            if (b.n_sizes < 0)
                return cli_usage_error("bench comm",
                                       "bad size in --sizes at '%s' (expected e.g. 4K,1M; each a "
                                       "positive multiple of 4 bytes, at most 16 sizes)",
                                       bad);
            break;
        case 'j':
            b.json = 1;
            break;
        case 'n':
            b.peers = 0;
            break;
        case 's':
            b.comm_stats = 1;
            break;
        case 'g': {
            long n;
            if (cli_parse_int(optarg, 0, MAX_HOGS, &n))
                return cli_usage_error("bench comm", "--hog must be an integer in 0..%d, got '%s'",
                                       MAX_HOGS, optarg);
            b.hogs = (int)n;
            break;
        }
        case 'h':
            fputs(bench_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("bench comm", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("bench comm", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("bench comm", "unexpected argument '%s'", argv[optind]);
    for (int s = 0; s < b.n_sizes; s++)
        if (b.sizes[s] % sizeof(float))
            return cli_usage_error("bench comm", "size %zu is not a multiple of 4 bytes (float32)",
                                   b.sizes[s]);
    if ((rc = cli_resolve_backend("bench comm", backend_given, &b.backend, tp_given, &P)))
        return rc;
    b.P = (int)P;
    if (b.hogs && b.backend != COMM_BACKEND_THREADS)
        return cli_usage_error("bench comm",
                               "--hog is for the threads backend (its MPI peer then runs under "
                               "the same hogs)");
    if ((rc = cli_start_backend(b.backend, b.P))) return rc;
    if (b.hogs && (rc = hogs_start(b.hogs))) {
        cli_stop_backend(b.backend);
        return rc;
    }
    const char *name = comm_backend_name(b.backend);
    int printer = cli_is_printer(b.backend);
    if (printer && !b.json)
        fprintf(stderr, "bench comm: %s backend, P=%d, %d sizes, %d busy-loop hogs...\n", name, b.P,
                b.n_sizes, b.hogs);
    char err[512];
    rc = comm_launch(b.backend, b.P, bench_rank, &b, err, sizeof(err));
    for (int s = 0; s < b.n_sizes; s++)
        snprintf(b.mine[s].backend, sizeof(b.mine[s].backend), "%s", name);
    if (rc) {
        hogs_stop();
        cli_stop_backend(b.backend);
        return cli_job_error("%s", err);
    }
    int status = EXIT_OK;
    if (b.peers && b.backend == COMM_BACKEND_THREADS) {
        if (!b.json)
            fprintf(stderr, "bench comm: MPI_Allreduce with %d processes (mpirun)...\n", b.P);
        bench_mpi_peer(&b);
        if (!b.json) fprintf(stderr, "bench comm: memcpy...\n");
        status = bench_memcpy(&b);
    }
    hogs_stop();
    if (printer && status == EXIT_OK) {
        if (b.json) {
            for (int s = 0; s < b.n_sizes; s++) {
                print_json(&b.mine[s], b.hogs);
                print_json(&b.mpi[s], b.hogs);
                print_json(&b.copy[s], b.hogs);
            }
        } else {
            print_table(&b);
        }
    }
    cli_stop_backend(b.backend);
    return status;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: linshard bench comm|forward|generate|train [OPTIONS]\n"
              "  comm      allreduce_sum: threads backend vs MPI_Allreduce vs memcpy\n"
              "  forward   prefill tokens/s per P, vs P=1 and PyTorch\n"
              "  generate  greedy decode tokens/s per P, vs the bandwidth ceiling and "
              "PyTorch\n"
              "  train     GPT-2 training step tokens/s per P, vs P=1 and PyTorch\n"
              "see 'linshard bench COMMAND --help'\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (!strcmp(argv[1], "comm")) return bench_comm(argc - 1, argv + 1);
    if (!strcmp(argv[1], "forward")) return cmd_bench_forward(argc - 1, argv + 1);
    if (!strcmp(argv[1], "generate")) return cmd_bench_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "train")) return cmd_bench_train(argc - 1, argv + 1);
    return cli_usage_error("bench",
                           "unknown benchmark '%s' (available: comm, forward, generate, "
                           "train)",
                           argv[1]);
}
