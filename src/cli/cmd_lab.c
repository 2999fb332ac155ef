/* cmd_lab.c — `linshard lab`: each correct tensor-parallel layer beside the naive alternatives,
 * with the measured error, the tolerance, the communication from the ledger and why. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "linshard/lab.h"

static const char lab_usage[] =
    "usage: linshard lab [--tp P] [--seed S] [--json]\n"
    "\n"
    "Runs seeded random tensors through each correct tensor-parallel layer and through the\n"
    "naive alternatives, on P ranks (threads), and prints for each: the max error against the\n"
    "unsharded result computed serially in double precision, the tolerance, the communication\n"
    "it used (from the comm ledger), a verdict and one line on why. Exit status 0 if every\n"
    "correct row matched and every naive row was visibly wrong, 1 otherwise.\n"
    "\n"
    "  --tp P      ranks, 2..8 (default 2; nothing is split at P = 1, and attention has 8 heads)\n"
    "  --seed S    seed of the inputs and weights (default 1)\n"
    "  --json      one JSON object per row instead of the table\n"
    "  -h, --help  this text\n";

static const char *verdict(const lab_row *row) {
    if (!row->as_expected) return "UNEXPECTED";
    return row->correct_expected ? "ok" : "WRONG as expected";
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(const lab_row *row, int P) {
    printf("{\"name\":");
    json_string(row->name);
    printf(",\"variant\":");
    json_string(row->variant);
    printf(",\"P\":%d,\"correct_expected\":%s,\"max_error\":%.9g,\"tolerance\":%.9g", P,
           row->correct_expected ? "true" : "false", row->max_error, row->tolerance);
    if (row->predicted_error >= 0)
        printf(",\"predicted_error\":%.9g", row->predicted_error);
    else
        printf(",\"predicted_error\":null");
    printf(",\"allreduce_calls\":%llu,\"allgather_calls\":%llu,\"floats_communicated\":%llu",
           (unsigned long long)row->allreduce_calls, (unsigned long long)row->allgather_calls,
           (unsigned long long)row->floats_communicated);
    printf(",\"as_expected\":%s,\"explanation\":", row->as_expected ? "true" : "false");
    json_string(row->explanation);
    printf("}\n");
}

static void print_table(const lab_row *rows, int n, int P, unsigned long long seed) {
    printf("linshard lab: P=%d ranks (threads backend), seed %llu\n", P, seed);
    printf("shapes: T=%d tokens, E=%d, %d heads of %d, F=%d, vocab %d (uneven splits where P does "
           "not divide them)\n",
           LAB_T, LAB_E, LAB_HEADS, LAB_D, LAB_F, LAB_V);
    printf("error: max |sharded - unsharded| (unsharded computed serially in double); tolerance "
           "%.0e x max|unsharded|;\n"
           "naive rows must miss by more than %.0fx the tolerance\n\n",
           LAB_TOL_REL, LAB_WRONG_FACTOR);
    printf("%2s  %-22s | %-41s | %-9s | %-9s | %-26s | %s\n", "#", "layer", "variant", "max error",
           "tolerance", "communication", "verdict");
    for (int i = 0; i < n; i++) {
        const lab_row *row = &rows[i];
        char comm[64];
        lab_format_comm(row, comm, sizeof(comm));
        printf("%2d  %-22s | %-41s | %9.2e | %9.2e | %-26s | %s\n", i + 1, row->name, row->variant,
               row->max_error, row->tolerance, comm, verdict(row));
        if (row->predicted_error >= 0)
            printf("    predicted (P-1)*max|b| = %.6e, measured %.6e: %s\n", row->predicted_error,
                   row->max_error,
                   row->max_error - row->predicted_error <= row->tolerance &&
                           row->predicted_error - row->max_error <= row->tolerance
                       ? "agree within tolerance"
                       : "DISAGREE");
        printf("    why: %s\n", row->explanation);
    }
}

int cmd_lab(int argc, char **argv) {
    static const struct option longopts[] = {{"tp", required_argument, 0, 'p'},
                                             {"seed", required_argument, 0, 's'},
                                             {"json", no_argument, 0, 'j'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    long P = 2, seed = 1;
    int json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (cli_parse_int(optarg, LAB_MIN_P, LAB_MAX_P, &P))
                return cli_usage_error("lab",
                                       "--tp must be an integer in %d..%d (nothing is split at "
                                       "P = 1; attention has %d heads), got '%s'",
                                       LAB_MIN_P, LAB_MAX_P, LAB_HEADS, optarg);
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 0x7fffffffL, &seed))
                return cli_usage_error("lab", "--seed must be a non-negative integer, got '%s'",
                                       optarg);
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(lab_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("lab", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("lab", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("lab", "unexpected argument '%s'", argv[optind]);
    if (cli_refuse_launcher("lab")) return EXIT_USAGE;

    lab_row rows[LAB_ROWS];
    char err[256];
    if (cli_reserve_blas((int)P, 1, err, sizeof(err))) return cli_job_error("%s", err);
    int n = lab_run((int)P, (uint64_t)seed, rows, LAB_ROWS, err, sizeof(err));
    if (n < 0) return cli_job_error("%s", err);
    int unexpected = 0;
    for (int i = 0; i < n; i++) unexpected += !rows[i].as_expected;
    if (json) {
        for (int i = 0; i < n; i++) print_json(&rows[i], (int)P);
    } else {
        print_table(rows, n, (int)P, (unsigned long long)seed);
        if (unexpected)
            printf("\n%d of %d rows UNEXPECTED\n", unexpected, n);
        else
            printf("\nall %d rows as expected: every correct split matched, every naive one was "
                   "visibly wrong\n",
                   n);
    }
    return unexpected ? EXIT_JOB : EXIT_OK;
}
