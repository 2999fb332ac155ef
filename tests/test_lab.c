/* test_lab.c — `linshard lab`'s experiments (src/lab/lab.c) behave as the investigation says.
 *
 * For P = 2, 3, 4, 5 (5 splits none of the widths, the heads or the vocabulary evenly): every
 * correct row is within its tolerance, every naive row misses by more than 100x it, the bias
 * added before the AllReduce is off by exactly (P-1) * max|b|, and the correct rows communicate
 * exactly what their explanation says — the GPT-2 rows and the Llama family's (SwiGLU, grouped-
 * query attention with replicated K/V heads, RoPE rotate half, RMSNorm) alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "linshard/lab.h"
#include "linshard/kernels.h"

static const lab_row *find(const lab_row *rows, int n, const char *name, const char *variant) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name) && strstr(rows[i].variant, variant)) return &rows[i];
    fail_msg("no row '%s' / '%s'", name, variant);
    return NULL;
}

static void expect_comm(const lab_row *row, uint64_t allreduce, uint64_t allgather,
                        uint64_t floats) {
    assert_int_equal(row->allreduce_calls, allreduce);
    assert_int_equal(row->allgather_calls, allgather);
    assert_int_equal(row->other_calls, 0);
    assert_int_equal(row->floats_communicated, floats);
}

static void check_P(int P, uint64_t seed) {
    lab_row rows[LAB_ROWS];
    char err[256] = "";
    int n = lab_run(P, seed, rows, LAB_ROWS, err, sizeof(err));
    if (n < 0) fail_msg("lab_run(P=%d): %s", P, err);
    assert_int_equal(n, LAB_ROWS);
    int correct = 0, naive = 0;
    for (int i = 0; i < n; i++) {
        const lab_row *row = &rows[i];
        assert_true(row->tolerance > 0);
        assert_true(fabs(row->tolerance / LAB_TOL_REL) > 0.1); /* outputs are O(1) */
        if (row->correct_expected) {
            if (!(row->max_error <= row->tolerance))
                fail_msg("P=%d %s (%s): error %g > tolerance %g", P, row->name, row->variant,
                         row->max_error, row->tolerance);
            correct++;
        } else {
            if (!(row->max_error > LAB_WRONG_FACTOR * row->tolerance))
                fail_msg("P=%d %s (%s): naive error %g not > 100 x %g", P, row->name, row->variant,
                         row->max_error, row->tolerance);
            naive++;
        }
        if (!row->as_expected)
            fail_msg("P=%d %s (%s): not as expected", P, row->name, row->variant);
    }
    assert_int_equal(correct, 11);
    assert_int_equal(naive, 9);

    /* the bias on every rank before the AllReduce: exactly (P-1) * max|b| too much */
    const lab_row *before = find(rows, n, "row-parallel linear", "every rank before");
    assert_false(before->correct_expected);
    assert_true(before->predicted_error > 0);
    if (!(fabs(before->max_error - before->predicted_error) <= before->tolerance))
        fail_msg("P=%d: bias before AllReduce off by %g, predicted (P-1)max|b| = %g", P,
                 before->max_error, before->predicted_error);

    /* communication of the correct rows, exactly */
    const uint64_t TE = (uint64_t)LAB_T * LAB_E;
    expect_comm(find(rows, n, "column-parallel linear", "bias"), 0, 0, 0);
    expect_comm(find(rows, n, "row-parallel linear", "once, after"), 1, 0, TE);
    expect_comm(find(rows, n, "row-parallel linear", "no bias"), 1, 0, TE);
    expect_comm(find(rows, n, "MLP", "Megatron"), 1, 0, TE);
    expect_comm(find(rows, n, "LayerNorm", "replicated"), 0, 0, 0);
    expect_comm(find(rows, n, "attention", "by heads"), 1, 0, TE);
    /* one all-gather of (max, sum) per token from each of the P ranks */
    expect_comm(find(rows, n, "softmax over vocab", "global"), 0, 1, (uint64_t)2 * LAB_T * P);

    /* and the naive ones, as their explanations state */
    expect_comm(before, 1, 0, TE);
    expect_comm(find(rows, n, "MLP", "partial"), 1, 0, (uint64_t)LAB_T * LAB_F);
    expect_comm(find(rows, n, "LayerNorm", "shard"), 0, 1, TE);
    expect_comm(find(rows, n, "attention", "contiguous"), 1, 0, TE);
    expect_comm(find(rows, n, "softmax over vocab", "own"), 0, 0, 0);

    /* the Llama family's rows: each correct split within tolerance, each naive one beyond 100x
     * it (checked above for every row; here by name, so a row cannot go missing), and the
     * communication: one AllReduce of T*E for the MLP and both attentions, whatever the split
     * (replicated K/V heads add nothing), none for RMSNorm, an all-gather for the naive one */
    static const struct {
        const char *name, *variant;
        int correct;
        uint64_t allreduce, allgather;
    } llama[] = {{"SwiGLU MLP", "same column slice", 1, 1, 0},
                 {"SwiGLU MLP", "contiguous shares", 0, 1, 0},
                 {"GQA attention", "the K/V heads its queries read", 1, 1, 0},
                 {"GQA attention", "split contiguously", 0, 1, 0},
                 {"RoPE attention", "rotate half", 1, 1, 0},
                 {"RoPE attention", "adjacent pairs", 0, 1, 0},
                 {"RMSNorm", "each feature shard", 0, 0, 1},
                 {"RMSNorm", "replicated", 1, 0, 0}};
    for (size_t i = 0; i < sizeof(llama) / sizeof(llama[0]); i++) {
        const lab_row *row = find(rows, n, llama[i].name, llama[i].variant);
        assert_int_equal(row->correct_expected, llama[i].correct);
        if (llama[i].correct ? !(row->max_error <= row->tolerance)
                             : !(row->max_error > LAB_WRONG_FACTOR * row->tolerance))
            fail_msg("P=%d %s (%s): error %g, tolerance %g", P, row->name, row->variant,
                     row->max_error, row->tolerance);
        expect_comm(row, llama[i].allreduce, llama[i].allgather,
                    llama[i].allreduce || llama[i].allgather ? TE : 0);
    }
}

static void test_lab_rows(void **state) {
    (void)state;
    kernel_set_threads(1);
    for (int P = 2; P <= 5; P++) check_P(P, 1);
}

static void test_lab_other_seeds_and_P(void **state) {
    (void)state;
    kernel_set_threads(1);
    check_P(8, 1);
    check_P(3, 7);
    check_P(7, 12345);
}

static void test_lab_refuses_bad_arguments(void **state) {
    (void)state;
    lab_row rows[LAB_ROWS];
    char err[256];
    assert_int_equal(lab_run(1, 1, rows, LAB_ROWS, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "P must be"));
    assert_int_equal(lab_run(LAB_MAX_P + 1, 1, rows, LAB_ROWS, err, sizeof(err)), -1);
    assert_int_equal(lab_run(2, 1, rows, LAB_ROWS - 1, err, sizeof(err)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lab_rows),
        cmocka_unit_test(test_lab_other_seeds_and_P),
        cmocka_unit_test(test_lab_refuses_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
