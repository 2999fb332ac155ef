/* check_logits.c MODEL_DIR TOKENS LOGITS_FILE — compares a logits file written by
 * `linshard forward --dump-logits` (float32 [T, vocab], nothing else) with the double-precision
 * reference, at the tolerance of test_gpt2.c. Used to check the MPI backend end to end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "gpt2_reference.h"

#define LOGIT_TOL 2e-5 /* of the largest |logit|: see test_gpt2.c for the justification */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: check_logits MODEL_DIR TOKENS LOGITS_FILE\n");
        return 2;
    }
    int tokens[4096], T = 0;
    for (char *p = argv[2]; *p && T < 4096;) {
        tokens[T++] = (int)strtol(p, &p, 10);
        if (*p == ',') p++;
    }
    char err[512];
    int V = gpt2_reference_vocab(argv[1], err, sizeof(err));
    if (V < 0) {
        fprintf(stderr, "check_logits: %s\n", err);
        return 1;
    }
    size_t n = (size_t)T * (size_t)V;
    double *ref = malloc(n * sizeof(double));
    float *got = malloc((n + 1) * sizeof(float));
    FILE *f = fopen(argv[3], "rb");
    size_t read = f ? fread(got, sizeof(float), n + 1, f) : 0;
    if (f) fclose(f);
    if (read != n) {
        fprintf(stderr, "check_logits: %s holds %zu floats, expected T*V = %zu\n", argv[3], read,
                n);
        return 1;
    }
    if (gpt2_reference_logits(argv[1], tokens, T, ref, err, sizeof(err))) {
        fprintf(stderr, "check_logits: %s\n", err);
        return 1;
    }
    double scale = max_abs_d(ref, n), worst = max_diff_fd(got, ref, n);
    int ok = within_tol(worst, LOGIT_TOL, scale);
    printf("check_logits: max |logit - reference| = %.3e (tolerance %.3e): %s\n", worst,
           LOGIT_TOL * scale, ok ? "ok" : "FAIL");
    free(ref);
    free(got);
    return ok ? 0 : 1;
}
