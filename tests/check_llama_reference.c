/* check_llama_reference.c — runs the Llama-family reference (llama_reference.c) on a model
 * directory, for cross-checking it against an independent implementation such as
 * bench/torch_llama_forward.py --double --dump-logits.
 *
 *   check_llama_reference MODEL_DIR ID,ID,... [--dump FILE] [--compare FILE [--tol REL]]
 *
 * --dump writes the reference logits [T, vocab] as little-endian float64, nothing else.
 * --compare reads a logits file of T * vocab float64 values (or float32: told apart by the file
 * size) and prints the largest |difference| and that divided by the largest |reference logit|;
 * with --tol, exits 1 when the relative figure is above REL. Without either, prints the logits,
 * one row per token. A development and test tool: it needs no Python. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "llama_reference.h"

#define MAX_TOKENS 4096

static int usage(void) {
    fprintf(stderr, "usage: check_llama_reference MODEL_DIR ID,ID,... [--dump FILE] "
                    "[--compare FILE [--tol REL]]\n");
    return 2;
}

/* Reads FILE as T*V float64 or float32 values into got; 0, or -1 with a message. */
static int read_logits(const char *path, size_t n, double *got) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "check_llama_reference: cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    int rc = -1;
    if (size == (long)(n * sizeof(double))) {
        rc = fread(got, sizeof(double), n, f) == n ? 0 : -1;
    } else if (size == (long)(n * sizeof(float))) {
        float *buf = malloc(n * sizeof(float));
        if (buf && fread(buf, sizeof(float), n, f) == n) {
            for (size_t i = 0; i < n; i++) got[i] = buf[i];
            rc = 0;
        }
        free(buf);
    }
    fclose(f);
    if (rc != 0)
        fprintf(stderr,
                "check_llama_reference: %s holds %ld bytes, expected T*V = %zu float64 or "
                "float32 values\n",
                path, size, n);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *dump = NULL, *compare = NULL;
    double tol = -1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (strcmp(argv[i], "--compare") == 0 && i + 1 < argc)
            compare = argv[++i];
        else if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc)
            tol = strtod(argv[++i], NULL);
        else
            return usage();
    }
    static int tokens[MAX_TOKENS];
    int T = 0;
    for (char *p = argv[2]; *p && T < MAX_TOKENS;) {
        char *end;
        tokens[T++] = (int)strtol(p, &end, 10);
        if (end == p) return usage();
        p = end;
        if (*p == ',') p++;
    }
    char err[512];
    int V = llama_reference_vocab(argv[1], err, sizeof err);
    if (V < 0) {
        fprintf(stderr, "check_llama_reference: %s\n", err);
        return 1;
    }
    size_t n = (size_t)T * (size_t)V;
    double *ref = malloc(n * sizeof(double)), *got = malloc(n * sizeof(double));
    if (!ref || !got) {
        fprintf(stderr, "check_llama_reference: out of memory\n");
        free(ref);
        free(got);
        return 1;
    }
    int rc = 1;
    if (llama_reference_logits(argv[1], tokens, T, ref, err, sizeof err) != 0) {
        fprintf(stderr, "check_llama_reference: %s\n", err);
        goto done;
    }
    if (dump) {
        FILE *f = fopen(dump, "wb");
        int ok = f && fwrite(ref, sizeof(double), n, f) == n;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) {
            fprintf(stderr, "check_llama_reference: cannot write %s\n", dump);
            goto done;
        }
    }
    rc = 0;
    if (compare) {
        if (read_logits(compare, n, got) != 0) {
            rc = 1;
            goto done;
        }
        double scale = max_abs_d(ref, n), worst = 0;
        for (size_t i = 0; i < n; i++) worst = max_keep_nan(worst, fabs(got[i] - ref[i]));
        double rel = scale > 0 ? worst / scale : worst;
        /* Without a tolerance nothing is judged, but a NaN or infinite logit still fails. */
        int ok = isfinite(rel) && (tol < 0 || rel <= tol);
        printf("check_llama_reference: T=%d V=%d max |logit - reference| = %.3e, max |reference| = "
               "%.3e, relative %.3e%s\n",
               T, V, worst, scale, rel,
               tol < 0 && ok ? ""
               : ok          ? ": ok"
                             : ": FAIL");
        rc = ok ? 0 : 1;
    }
    if (!dump && !compare) {
        for (int t = 0; t < T; t++)
            for (int v = 0; v < V; v++)
                printf("%.17g%c", ref[(size_t)t * V + v], v + 1 < V ? ' ' : '\n');
    }
done:
    free(ref);
    free(got);
    return rc;
}
