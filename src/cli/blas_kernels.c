/* blas_kernels.c — restarting the program once so that OpenBLAS runs the kernels this CPU can.
 *
 * Which kernels are right is the kernel layer's answer (kernel_blas_better_core, with the
 * measurements that motivate it, in src/kernels/blas_choice.c). OpenBLAS reads
 * OPENBLAS_CORETYPE only when it loads, so acting on the answer is a program-level decision:
 * set the variable and execute ourselves again, unless the user has chosen (OPENBLAS_CORETYPE
 * set) or we already restarted (LINSHARD_BLAS_CHOSEN set). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "linshard/kernels.h"

void cli_choose_blas_kernels(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("LINSHARD_BLAS_CHOSEN")) return;
    const char *pick = kernel_blas_better_core();
    if (!pick) return;
    setenv("OPENBLAS_CORETYPE", pick, 1);
    setenv("LINSHARD_BLAS_CHOSEN", pick, 1); /* never loop */
    execv("/proc/self/exe", argv);           /* returns only on failure: keep the slow kernels */
}
