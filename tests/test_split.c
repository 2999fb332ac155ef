/* test_split.c — the balanced split that every sharded dimension uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "linshard/split.h"

/* For many (n, P): blocks tile [0, n) in order, and sizes differ by at most one. */
static void test_split_tiles_and_balances(void **state) {
    (void)state;
    for (size_t n = 0; n < 200; n++) {
        for (int P = 1; P <= 17; P++) {
            size_t next = 0, lo = (size_t)-1, hi = 0;
            for (int r = 0; r < P; r++) {
                size_t c = split_count(n, P, r);
                assert_int_equal(split_offset(n, P, r), next);
                next += c;
                if (c < lo) lo = c;
                if (c > hi) hi = c;
            }
            assert_int_equal(next, n);
            assert_true(hi - lo <= 1);
        }
    }
}

/* The first n % P ranks hold the extra unit: 12 heads on 5 ranks -> 3,3,2,2,2. */
static void test_split_extra_units_go_first(void **state) {
    (void)state;
    const size_t want[5] = {3, 3, 2, 2, 2};
    for (int r = 0; r < 5; r++) assert_int_equal(split_count(12, 5, r), want[r]);
    assert_int_equal(split_offset(12, 5, 4), 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_tiles_and_balances),
        cmocka_unit_test(test_split_extra_units_go_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
