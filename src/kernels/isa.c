/* isa.c — which build of the typed kernels this process runs: chosen once, from cpuid.
 *
 * One binary runs on any x86-64 (and the portable build on any CPU): the per-ISA files are
 * compiled with their own -m flags (CMakeLists.txt), and nothing from them runs unless cpuid says
 * the CPU has every feature their flags allowed the compiler to use:
 *   avx2         AVX2, FMA, F16C
 *   avx512       AVX-512 F, BW, VL, DQ (and AVX2/FMA/F16C)
 *   avx512-vnni  the above and AVX512_VNNI (vpdpbusd in the int8 dot products)
 * LINSHARD_KERNELS=portable|avx2|avx512|avx512-vnni asks for a level (to measure or test a lower
 * one). A level the CPU lacks, or a name that is none of these, is refused with one line on
 * stderr and the best level the CPU has is used. */
#ifdef LINSHARD_KERNELS_X86
#include <cpuid.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "kernels_internal.h"

static const char *const level_names[KERNEL_ISA_COUNT] = {"portable", "avx2", "avx512",
                                                          "avx512-vnni"};

const char *kernel_isa_level_name(kernel_isa_level level) {
    return (int)level >= 0 && level < KERNEL_ISA_COUNT ? level_names[level] : "unknown";
}

static const kernel_isa_table *table_of(kernel_isa_level level) {
    switch (level) {
#ifdef LINSHARD_KERNELS_X86
    case KERNEL_ISA_AVX2:
        return &kernel_table_avx2;
    case KERNEL_ISA_AVX512:
        return &kernel_table_avx512;
    case KERNEL_ISA_AVX512_VNNI:
        return &kernel_table_avx512_vnni;
#endif
    case KERNEL_ISA_PORTABLE:
        return &kernel_table_portable;
    default:
        return NULL;
    }
}

#ifdef LINSHARD_KERNELS_X86
/* Features not every compiler's __builtin_cpu_supports knows (clang 14: neither "f16c" nor
 * "avx512vnni"), straight from cpuid: F16C is leaf 1 ECX bit 29, AVX512_VNNI leaf 7 ECX bit 11.
 * (That the OS saves the AVX / AVX-512 registers is part of the "avx2" / "avx512f" checks.) */
static int cpuid_ecx_bit(unsigned leaf, int bit) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(leaf, 0, &a, &b, &c, &d)) return 0;
    return (int)((c >> bit) & 1);
}
#endif

kernel_isa_level kernel_isa_best(void) {
#ifdef LINSHARD_KERNELS_X86
    __builtin_cpu_init();
    int avx2 =
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_ecx_bit(1, 29);
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (avx512 && cpuid_ecx_bit(7, 11)) return KERNEL_ISA_AVX512_VNNI;
    if (avx512) return KERNEL_ISA_AVX512;
    if (avx2) return KERNEL_ISA_AVX2;
#endif
    return KERNEL_ISA_PORTABLE;
}

static const kernel_isa_table *active;
static const kernel_elementwise_table *active_elementwise;

/* The elementwise kernels' build for a level (kernels_internal.h): avx512-vnni has no
 * elementwise build of its own (VNNI is int8 only). */
static const kernel_elementwise_table *elementwise_of(kernel_isa_level level) {
#ifdef LINSHARD_KERNELS_X86
    if (level >= KERNEL_ISA_AVX512) return &kernel_elementwise_avx512;
    if (level == KERNEL_ISA_AVX2) return &kernel_elementwise_avx2;
#endif
    (void)level;
    return &kernel_elementwise_portable;
}
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    kernel_isa_level best = kernel_isa_best(), level = best;
    const char *want = getenv("LINSHARD_KERNELS");
    if (want && *want) {
        int found = -1;
        for (int l = 0; l < KERNEL_ISA_COUNT; l++)
            if (strcasecmp(want, level_names[l]) == 0) found = l;
        if (found < 0)
            fprintf(stderr,
                    "linshard: LINSHARD_KERNELS=%s is not portable, avx2, avx512 or avx512-vnni; "
                    "using %s\n",
                    want, level_names[best]);
        else if (found > (int)best || !table_of((kernel_isa_level)found))
            fprintf(stderr, "linshard: LINSHARD_KERNELS=%s: this CPU or build lacks it; using %s\n",
                    want, level_names[best]);
        else
            level = (kernel_isa_level)found;
    }
    active = table_of(level);
    active_elementwise = elementwise_of(level);
}

const kernel_isa_table *kernel_active_table(void) {
    pthread_once(&choose_once, choose);
    return active;
}

int kernel_force_isa(kernel_isa_level level) {
    pthread_once(&choose_once, choose);
    const kernel_isa_table *t = table_of(level);
    if (!t || level > kernel_isa_best()) return -1;
    active = t;
    active_elementwise = elementwise_of(level);
    return 0;
}

const kernel_elementwise_table *kernel_active_elementwise(void) {
    pthread_once(&choose_once, choose);
    return active_elementwise;
}

const char *kernel_isa(void) {
    return kernel_active_table()->name;
}
