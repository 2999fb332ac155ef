/* blas_kernels.c — making sure OpenBLAS runs the kernels this CPU can run.
 *
 * OpenBLAS (DYNAMIC_ARCH builds, as Debian ships) picks its kernels from cpuid when the library
 * loads. A CPU newer than the OpenBLAS release can fall back to "Prescott" (SSE3) kernels: on
 * the development machine (an AVX-512 Xeon that OpenBLAS 0.3.21 does not recognise) sgemm ran
 * at ~28 GFLOP/s instead of ~110-180 with the SkylakeX kernels. A CPU it half-recognises runs
 * kernels below its features: an AMD Zen 5 (AVX-512) gets the AVX2 "Zen"/Haswell kernels, half
 * the sgemm speed of the SkylakeX ones (86 vs 164 GFLOP/s measured on one core). If the user has
 * not chosen (OPENBLAS_CORETYPE unset) and the kernels lack what the CPU has, choose by CPU
 * features and restart the program once, since OpenBLAS reads the variable only when it loads.
 * The test suite checks the results of the chosen kernels against a double-precision
 * reference. */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

void cli_choose_blas_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("LINSHARD_BLAS_CHOSEN")) return;
    const char *core = openblas_get_corename();
    if (!core) return;
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    int avx512_kernels = !strcasecmp(core, "skylakex") || !strcasecmp(core, "cooperlake") ||
                         !strcasecmp(core, "sapphirerapids");
    const char *pick = NULL;
    if (avx512 && !avx512_kernels)
        pick = "SkylakeX";
    else if (!strcasecmp(core, "prescott") && __builtin_cpu_supports("avx2"))
        pick = "Haswell";
    if (!pick) return;
    setenv("OPENBLAS_CORETYPE", pick, 1);
    setenv("LINSHARD_BLAS_CHOSEN", pick, 1); /* never loop */
    execv("/proc/self/exe", argv);           /* returns only on failure: keep the slow kernels */
}

const char *cli_blas_description(void) {
    return openblas_get_corename();
}
