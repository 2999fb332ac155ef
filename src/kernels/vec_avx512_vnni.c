/* vec_avx512_vnni.c — the int8 dot products of vec_avx512.c rebuilt with AVX512_VNNI.
 *
 * Compiled with vec_avx512.c's flags plus -mavx512vnni (this file only) and called only when
 * cpuid reports VNNI too (isa.c): vpdpbusd multiplies unsigned by signed bytes and adds groups of
 * four straight into int32, one instruction where AVX2 needs vpmaddubsw + vpmaddwd (and without
 * the int16 intermediate). The F16/BF16 products are vec_avx512.c's. */
#define KERNEL_AVX512_VNNI 1
#include <immintrin.h>

#include "kernels_internal.h"

#include "vec_avx512_int8.h"

const kernel_isa_table kernel_table_avx512_vnni = {
    .name = "avx512-vnni",
    .dot_f16 = kernel_avx512_dot_f16,
    .dot_bf16 = kernel_avx512_dot_bf16,
    .dot_q8_0 = dot_q8_0,
    .dot_q4_0 = dot_q4_0,
    .dot_q8_0_f32 = kernel_avx512_dot_q8_0_f32,
    .dot_q4_0_f32 = kernel_avx512_dot_q4_0_f32,
    .dot_f32 = kernel_avx512_dot_f32,
    .dot_f32_rows = kernel_avx512_dot_f32_rows,
    .dot_f32_tile = kernel_avx512_dot_f32_tile,
    .dot_f16_rows = kernel_avx512_dot_f16_rows,
    .dot_bf16_rows = kernel_avx512_dot_bf16_rows,
    .dot_q8_0_f32_rows = kernel_avx512_dot_q8_0_f32_rows,
    .dot_q4_0_f32_rows = kernel_avx512_dot_q4_0_f32_rows,
    .axpy_rows_f32 = kernel_avx512_axpy_rows_f32,
    .f16_to_f32 = kernel_avx512_f16_to_f32,
    .f32_to_f16 = kernel_avx512_f32_to_f16,
};
