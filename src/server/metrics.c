/* metrics.c — GET /metrics of `linshard serve`: the engine's counters in Prometheus' text format
 * (version 0.0.4: "# HELP", "# TYPE", then "name{labels} value" lines).
 *
 * What it shows: HTTP requests answered by endpoint and status; prompt and generated tokens;
 * sequences added and finished; requests in flight, waiting for the driver, running and queued
 * in the session; steps, the mean wall time of a step that did work, the largest decode batch;
 * and the share of the session's compute time spent inside collectives (the comm ledger). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} out_buf;

static void emit(out_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void emit(out_buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->data && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

static void metric(out_buf *b, const char *name, const char *type, const char *help, double value) {
    emit(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

char *metrics_text(const serve_counters *c, int slots, int tp) {
    out_buf b = {0};
    emit(&b, "# HELP linshard_requests_total HTTP requests answered, by endpoint and status.\n"
             "# TYPE linshard_requests_total counter\n");
    for (int ep = 0; ep < 6; ep++)
        for (int s = 0; s < 9; s++)
            if (c->answered[ep][s]) {
                char status[8] = "other";
                if (s < 8) snprintf(status, sizeof(status), "%d", serve_status_codes[s]);
                emit(&b, "linshard_requests_total{endpoint=\"%s\",status=\"%s\"} %lld\n",
                     serve_endpoint_names[ep], status, c->answered[ep][s]);
            }
    const session_stats *st = &c->session;
    metric(&b, "linshard_requests_cancelled_total", "counter",
           "Requests whose client went away before the end (their sequences cancelled).",
           (double)c->cancelled);
    metric(&b, "linshard_prompt_tokens_total", "counter", "Prompt tokens prefilled.",
           (double)st->prompt_tokens);
    metric(&b, "linshard_generated_tokens_total", "counter", "Tokens generated.",
           (double)st->generated_tokens);
    metric(&b, "linshard_sequences_added_total", "counter", "Sequences the session took.",
           (double)st->sequences_added);
    metric(&b, "linshard_sequences_finished_total", "counter", "Sequences that ended.",
           (double)st->sequences_finished);
    metric(&b, "linshard_requests_in_flight", "gauge", "Requests admitted and not yet answered.",
           (double)c->in_flight);
    metric(&b, "linshard_queue_depth", "gauge",
           "Requests waiting: handed to the driver but not yet taken, or queued in the session "
           "for a free slot.",
           (double)(c->incoming + st->queued));
    metric(&b, "linshard_sequences_running", "gauge", "Sequences decoding now.",
           (double)st->running);
    metric(&b, "linshard_slots", "gauge", "Sequences decoded together at most (--parallel).",
           (double)slots);
    metric(&b, "linshard_tensor_parallel_ranks", "gauge", "Ranks the model is split over (--tp).",
           (double)tp);
    metric(&b, "linshard_steps_total", "counter", "Session steps that did work.",
           (double)c->busy_steps);
    metric(&b, "linshard_decode_steps_total", "counter", "Steps that decoded a batch.",
           (double)st->decode_steps);
    metric(&b, "linshard_step_seconds_mean", "gauge",
           "Mean wall time of a step that did work (prefills and one batched decode).",
           c->busy_steps ? c->step_seconds_sum / (double)c->busy_steps : 0.0);
    metric(&b, "linshard_max_decode_batch", "gauge", "The largest decode batch so far.",
           (double)st->max_batch);
    metric(&b, "linshard_prefill_seconds_total", "counter", "Wall time in prefills.",
           st->prefill_seconds);
    metric(&b, "linshard_decode_seconds_total", "counter", "Wall time in batched decode steps.",
           st->decode_seconds);
    metric(&b, "linshard_comm_seconds_total", "counter",
           "Of prefill and decode time, the time inside collectives (rank 0's comm ledger).",
           st->comm_seconds);
    double busy = st->prefill_seconds + st->decode_seconds;
    metric(&b, "linshard_comm_share", "gauge",
           "Communication's share of prefill and decode time (0..1).",
           busy > 0 ? st->comm_seconds / busy : 0.0);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
