/* ledger.c — per-rank communication accounting (see include/linshard/ledger.h). */
#include "linshard/ledger.h"

#include <stdlib.h>
#include <string.h>

static const char *const op_names[LEDGER_OP_COUNT] = {"allreduce", "allgather", "reduce_scatter",
                                                      "broadcast", "barrier"};

const char *ledger_op_name(ledger_op op) {
    return (op >= 0 && op < LEDGER_OP_COUNT) ? op_names[op] : "unknown";
}

void ledger_init(ledger_t *ledger) {
    memset(ledger, 0, sizeof(*ledger));
}

void ledger_free(ledger_t *ledger) {
    free(ledger->entries);
    memset(ledger, 0, sizeof(*ledger));
}

void ledger_reset(ledger_t *ledger) {
    memset(ledger->by_op, 0, sizeof(ledger->by_op));
    ledger->n_entries = 0;
    ledger->last_hit = 0;
}

int ledger_copy(ledger_t *dst, const ledger_t *src) {
    *dst = *src;
    dst->entries = NULL;
    dst->cap_entries = 0;
    if (!src->n_entries) return 0;
    dst->entries = malloc(src->n_entries * sizeof(ledger_entry));
    if (!dst->entries) {
        ledger_init(dst);
        return -1;
    }
    memcpy(dst->entries, src->entries, src->n_entries * sizeof(ledger_entry));
    dst->cap_entries = src->n_entries;
    return 0;
}

static void counts_add(ledger_counts *c, uint64_t elements, uint64_t sent, uint64_t received,
                       double seconds) {
    c->calls += 1;
    c->elements += elements;
    c->bytes_sent += sent;
    c->bytes_received += received;
    c->seconds += seconds;
}

static int entry_matches(const ledger_entry *e, const char *tag, ledger_op op) {
    return e->op == op && strncmp(e->tag, tag, LEDGER_TAG_MAX - 1) == 0;
}

static long find_entry(const ledger_t *ledger, const char *tag, ledger_op op) {
    if (ledger->last_hit < ledger->n_entries &&
        entry_matches(&ledger->entries[ledger->last_hit], tag, op))
        return (long)ledger->last_hit;
    for (size_t i = 0; i < ledger->n_entries; i++)
        if (entry_matches(&ledger->entries[i], tag, op)) return (long)i;
    return -1;
}

int ledger_record(ledger_t *ledger, ledger_op op, const char *tag, uint64_t elements,
                  uint64_t bytes_sent, uint64_t bytes_received, double seconds) {
    if (op < 0 || op >= LEDGER_OP_COUNT) return -1;
    if (!tag) tag = "";
    counts_add(&ledger->by_op[op], elements, bytes_sent, bytes_received, seconds);
    long i = find_entry(ledger, tag, op);
    if (i < 0) {
        if (ledger->n_entries == ledger->cap_entries) {
            size_t cap = ledger->cap_entries ? 2 * ledger->cap_entries : 16;
            ledger_entry *grown = realloc(ledger->entries, cap * sizeof(*grown));
            if (!grown) return -1;
            ledger->entries = grown;
            ledger->cap_entries = cap;
        }
        i = (long)ledger->n_entries++;
        ledger_entry *e = &ledger->entries[i];
        memset(e, 0, sizeof(*e));
        strncpy(e->tag, tag, LEDGER_TAG_MAX - 1);
        e->op = op;
    }
    ledger->last_hit = (size_t)i;
    counts_add(&ledger->entries[i].counts, elements, bytes_sent, bytes_received, seconds);
    return 0;
}

ledger_counts ledger_op_total(const ledger_t *ledger, ledger_op op) {
    ledger_counts zero = {0};
    return (op >= 0 && op < LEDGER_OP_COUNT) ? ledger->by_op[op] : zero;
}

ledger_counts ledger_tag_counts(const ledger_t *ledger, const char *tag, ledger_op op) {
    ledger_counts zero = {0};
    long i = find_entry(ledger, tag ? tag : "", op);
    return i < 0 ? zero : ledger->entries[i].counts;
}

uint64_t ledger_total_calls(const ledger_t *ledger) {
    uint64_t n = 0;
    for (int op = 0; op < LEDGER_OP_COUNT; op++) n += ledger->by_op[op].calls;
    return n;
}

double ledger_total_seconds(const ledger_t *ledger) {
    double s = 0;
    for (int op = 0; op < LEDGER_OP_COUNT; op++) s += ledger->by_op[op].seconds;
    return s;
}

void ledger_print(const ledger_t *ledger, int rank, FILE *out) {
    fprintf(out, "comm ledger, rank %d\n", rank);
    fprintf(out, "  %-24s %-15s %10s %14s %14s %14s %10s\n", "tag", "op", "calls", "elements",
            "bytes_sent", "bytes_recv", "seconds");
    for (size_t i = 0; i < ledger->n_entries; i++) {
        const ledger_entry *e = &ledger->entries[i];
        fprintf(out, "  %-24s %-15s %10llu %14llu %14llu %14llu %10.6f\n",
                e->tag[0] ? e->tag : "(untagged)", ledger_op_name(e->op),
                (unsigned long long)e->counts.calls, (unsigned long long)e->counts.elements,
                (unsigned long long)e->counts.bytes_sent,
                (unsigned long long)e->counts.bytes_received, e->counts.seconds);
    }
    for (int op = 0; op < LEDGER_OP_COUNT; op++) {
        const ledger_counts *c = &ledger->by_op[op];
        if (!c->calls) continue;
        fprintf(out, "  %-24s %-15s %10llu %14llu %14llu %14llu %10.6f\n", "TOTAL",
                ledger_op_name((ledger_op)op), (unsigned long long)c->calls,
                (unsigned long long)c->elements, (unsigned long long)c->bytes_sent,
                (unsigned long long)c->bytes_received, c->seconds);
    }
}
