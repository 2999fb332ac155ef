/* ledger.h — per-rank accounting of communication, by operation kind and by tag.
 *
 * Tests use the ledger to prove the shape of the communication ("exactly 2 AllReduce per
 * transformer layer, of T*E floats each"), so the byte counts are *logical*: they follow the
 * bandwidth-optimal algorithm for each collective and do not depend on the backend, on timing
 * or on how the backend happens to move the data. For a payload split into per-rank blocks
 * n_0..n_{P-1} (N = sum), rank r records:
 *   allreduce       sent = recv = (N - n_r) + (P-1)*n_r   (reduce-scatter + all-gather; blocks
 *                                                           are the balanced split of N)
 *   allgather       sent = (P-1)*n_r,  recv = N - n_r
 *   reduce_scatter  sent = N - n_r,    recv = (P-1)*n_r
 *   broadcast       root: sent = (P-1)*N, recv = 0; others: sent = 0, recv = N
 *   barrier         0 bytes
 * With equal blocks the allreduce figure is the familiar 2(P-1)/P * N.
 */
#ifndef LINSHARD_LEDGER_H
#define LINSHARD_LEDGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LEDGER_ALLREDUCE = 0,
    LEDGER_ALLGATHER,
    LEDGER_REDUCE_SCATTER,
    LEDGER_BROADCAST,
    LEDGER_BARRIER,
    LEDGER_OP_COUNT
} ledger_op;

typedef struct {
    uint64_t calls;
    uint64_t elements;   /* payload elements this rank contributed or received (N) */
    uint64_t bytes_sent; /* logical bytes, see the table above */
    uint64_t bytes_received;
    double seconds; /* wall time spent inside the collective (includes waiting) */
} ledger_counts;

#define LEDGER_TAG_MAX 64

typedef struct {
    char tag[LEDGER_TAG_MAX]; /* "" for untagged calls */
    ledger_op op;
    ledger_counts counts;
} ledger_entry;

typedef struct ledger {
    ledger_counts by_op[LEDGER_OP_COUNT];
    ledger_entry *entries; /* one per (tag, op) pair seen, in first-seen order */
    size_t n_entries;
    size_t cap_entries;
    size_t last_hit; /* index of the last entry found: consecutive calls usually repeat a tag */
} ledger_t;

void ledger_init(ledger_t *ledger);
void ledger_free(ledger_t *ledger);
void ledger_reset(ledger_t *ledger);

/* dst <- a deep copy of src (dst uninitialised). Returns 0, or -1 if out of memory. */
int ledger_copy(ledger_t *dst, const ledger_t *src);

/* Adds one call. Returns 0, or -1 if memory for a new tag could not be allocated. */
int ledger_record(ledger_t *ledger, ledger_op op, const char *tag, uint64_t elements,
                  uint64_t bytes_sent, uint64_t bytes_received, double seconds);

/* Totals for one operation kind over all tags. */
ledger_counts ledger_op_total(const ledger_t *ledger, ledger_op op);
/* Counts for one (tag, op); all zero if never seen. tag NULL means untagged. */
ledger_counts ledger_tag_counts(const ledger_t *ledger, const char *tag, ledger_op op);
/* Sum of calls over all ops, and of seconds over all ops. */
uint64_t ledger_total_calls(const ledger_t *ledger);
double ledger_total_seconds(const ledger_t *ledger);

const char *ledger_op_name(ledger_op op);

/* Human-readable table of one rank's ledger: per tag and op, then per-op totals. */
void ledger_print(const ledger_t *ledger, int rank, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
