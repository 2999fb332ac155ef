/* test_ledger.c — the ledger's bookkeeping, on its own (the comm tests check what the
 * collectives record). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "linshard/ledger.h"

static void test_ledger_counts_per_tag_and_op(void **state) {
    (void)state;
    ledger_t l;
    ledger_init(&l);
    assert_int_equal(ledger_record(&l, LEDGER_ALLREDUCE, "layer0.attn", 10, 56, 56, 0.5), 0);
    assert_int_equal(ledger_record(&l, LEDGER_ALLREDUCE, "layer0.mlp", 10, 56, 56, 0.25), 0);
    assert_int_equal(ledger_record(&l, LEDGER_ALLREDUCE, "layer0.attn", 10, 56, 56, 0.5), 0);
    assert_int_equal(ledger_record(&l, LEDGER_ALLGATHER, "layer0.attn", 4, 8, 24, 0.0), 0);
    assert_int_equal(ledger_record(&l, LEDGER_BARRIER, NULL, 0, 0, 0, 0.0), 0);

    ledger_counts a = ledger_tag_counts(&l, "layer0.attn", LEDGER_ALLREDUCE);
    assert_int_equal(a.calls, 2);
    assert_int_equal(a.elements, 20);
    assert_int_equal(a.bytes_sent, 112);
    assert_int_equal(a.bytes_received, 112);
    assert_int_equal(ledger_tag_counts(&l, "layer0.attn", LEDGER_ALLGATHER).bytes_received, 24);
    assert_int_equal(ledger_tag_counts(&l, "layer0.mlp", LEDGER_ALLREDUCE).calls, 1);
    assert_int_equal(ledger_tag_counts(&l, NULL, LEDGER_BARRIER).calls, 1);
    assert_int_equal(ledger_tag_counts(&l, "nope", LEDGER_ALLREDUCE).calls, 0);

    ledger_counts t = ledger_op_total(&l, LEDGER_ALLREDUCE);
    assert_int_equal(t.calls, 3);
    assert_int_equal(t.bytes_sent, 168);
    assert_int_equal(ledger_total_calls(&l), 5);
    assert_true(ledger_total_seconds(&l) == 1.25);

    ledger_reset(&l);
    assert_int_equal(ledger_total_calls(&l), 0);
    assert_int_equal(ledger_tag_counts(&l, "layer0.attn", LEDGER_ALLREDUCE).calls, 0);
    ledger_free(&l);
}

/* Many distinct tags grow the table; tags longer than the limit are truncated consistently. */
static void test_ledger_many_and_long_tags(void **state) {
    (void)state;
    ledger_t l;
    ledger_init(&l);
    char tag[32];
    for (int i = 0; i < 100; i++) {
        snprintf(tag, sizeof(tag), "layer%d", i);
        assert_int_equal(ledger_record(&l, LEDGER_ALLREDUCE, tag, 1, 4, 4, 0), 0);
    }
    assert_int_equal(l.n_entries, 100);
    assert_int_equal(ledger_tag_counts(&l, "layer57", LEDGER_ALLREDUCE).calls, 1);
    char long_tag[200];
    memset(long_tag, 'x', sizeof(long_tag) - 1);
    long_tag[sizeof(long_tag) - 1] = '\0';
    assert_int_equal(ledger_record(&l, LEDGER_BROADCAST, long_tag, 1, 4, 0, 0), 0);
    assert_int_equal(ledger_record(&l, LEDGER_BROADCAST, long_tag, 1, 4, 0, 0), 0);
    assert_int_equal(ledger_tag_counts(&l, long_tag, LEDGER_BROADCAST).calls, 2);
    assert_int_equal(l.n_entries, 101);
    ledger_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_counts_per_tag_and_op),
        cmocka_unit_test(test_ledger_many_and_long_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
