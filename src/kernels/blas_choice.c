/* blas_choice.c — which OpenBLAS kernels this CPU should run (kernel_blas_better_core).
 *
 * OpenBLAS (DYNAMIC_ARCH builds, as Debian ships) picks its kernels from cpuid when the library
 * loads. A CPU newer than the OpenBLAS release can fall back to "Prescott" (SSE3) kernels: on
 * the development machine (an AVX-512 Xeon that OpenBLAS 0.3.21 does not recognise) sgemm ran
 * at ~28 GFLOP/s instead of ~110-180 with the SkylakeX kernels. A CPU it half-recognises runs
 * kernels below its features: an AMD Zen 5 (AVX-512) gets the AVX2 "Zen"/Haswell kernels, half
 * the sgemm speed of the SkylakeX ones (86 vs 164 GFLOP/s measured on one core). So when the
 * loaded kernels lack what the CPU has, this names the family to use instead, chosen by CPU
 * features. OpenBLAS reads its choice (OPENBLAS_CORETYPE) only when it loads, so acting on the
 * answer means restarting the program: that, and respecting a choice the user made, is the
 * program's decision (src/cli/blas_kernels.c), not the library's. The test suite checks the
 * results of the chosen kernels against a double-precision reference. */
#include <cblas.h>
#include <stddef.h>
#include <strings.h>

#include "linshard/kernels.h"

const char *kernel_blas_better_core(void) {
#if defined(__x86_64__) || defined(__i386__)
    const char *core = openblas_get_corename();
    if (!core) return NULL;
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    int avx512_kernels = !strcasecmp(core, "skylakex") || !strcasecmp(core, "cooperlake") ||
                         !strcasecmp(core, "sapphirerapids");
    if (avx512 && !avx512_kernels) return "SkylakeX";
    if (!strcasecmp(core, "prescott") && __builtin_cpu_supports("avx2")) return "Haswell";
#endif
    return NULL; /* the loaded kernels are right (or this is not an x86 CPU) */
}
