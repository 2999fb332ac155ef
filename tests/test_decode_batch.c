/* test_decode_batch.c — batched decoding (model_decode_batch) and the row-exact product under it.
 *
 * The contract (model.h): row b of a step of B sequences is, bit for bit, what the same sequence
 * gets decoded alone (model_extend_slot of one token), whatever B, the other rows and their
 * order; a step communicates 1 + 2 * n_layer AllReduce of B * n_embd floats. Checked here for
 * GPT-2 (learned positions) and Llama (RoPE, grouped-query attention with one K/V head, so every
 * rank at P > 1 holds a copy of it), weights held as F32 and as Q8_0, at P = 1, 2 and 3 (3
 * divides neither the heads nor the vocabulary): four slots prefilled with prompts of different
 * lengths, then steps over varying subsets of them in varying orders. Each row is compared with
 * memcmp against another shard that decodes that sequence alone, and within a tolerance against
 * a full recompute of the whole sequence (model_forward).
 *
 * Under it, kernel_matmul_rows: against a double-precision product on odd shapes, every weight
 * type and both F32 layouts, at every instruction-set level this CPU has; and row exactness:
 * rows computed alone equal the same rows inside batches of 7 and 25.
 *
 * Bad input (a slot twice in a step, more rows than the shard allocated, a slot out of range, a
 * full slot, a token outside the vocabulary, no cache) fails the group with one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/kernels/kernels_internal.h"
#include "linshard/comm.h"
#include "linshard/model.h"
#include "temp_dir.h"

/* ---- kernel_matmul_rows -------------------------------------------------------------------- */

static const double U = 1.0 / 16777216.0; /* 2^-24, F32's unit roundoff */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static float rng_uniform(void) { /* in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

typedef struct {
    kernel_type type;
    kernel_layout layout;
} weight_kind;

static const weight_kind kinds[] = {
    {KERNEL_F32, KERNEL_IN_OUT},  {KERNEL_F32, KERNEL_OUT_IN},  {KERNEL_F16, KERNEL_OUT_IN},
    {KERNEL_BF16, KERNEL_OUT_IN}, {KERNEL_Q8_0, KERNEL_OUT_IN}, {KERNEL_Q4_0, KERNEL_OUT_IN},
};

#define MAX_T 25

/* One weight of the kind and shape, random, and its values as the kernel reads them (F32
 * [N][K], whatever the layout). */
typedef struct {
    kernel_weight w;
    void *data;
    float *values; /* [N][K] */
} test_weight;

static test_weight make_weight(weight_kind kind, int K, int N) {
    test_weight t;
    const kernel_type_traits *tr = kernel_type_info(kind.type);
    size_t row = kernel_row_bytes(kind.type, (size_t)K);
    float *src = malloc((size_t)N * (size_t)K * sizeof(float));
    t.values = malloc((size_t)N * (size_t)K * sizeof(float));
    t.data = malloc((size_t)N * row + 1);
    assert_non_null(src);
    assert_non_null(t.values);
    assert_non_null(t.data);
    for (size_t i = 0; i < (size_t)N * (size_t)K; i++) src[i] = rng_uniform();
    if (kind.layout == KERNEL_IN_OUT) { /* F32 [K][N] */
        float *w = t.data;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) w[(size_t)k * N + n] = src[(size_t)n * K + k];
        memcpy(t.values, src, (size_t)N * (size_t)K * sizeof(float));
    } else {
        for (int n = 0; n < N; n++) {
            unsigned char *dst = (unsigned char *)t.data + (size_t)n * row;
            tr->from_f32(src + (size_t)n * K, dst, (size_t)K);
            tr->to_f32(dst, t.values + (size_t)n * K, (size_t)K);
        }
    }
    free(src);
    kernel_weight w = {kind.type, kind.layout, K, N, t.data};
    t.w = w;
    return t;
}

static void free_weight(test_weight *t) {
    free(t->data);
    free(t->values);
}

/* Every row of out[T][N] within the bound of a sum of K products in float against the double
 * product (start + x · W): |error| <= (K + 2) u sum_k |x_k w_k| (+ |start|), the standard bound
 * of any summation order of K terms with one rounding per product (or none, fused). Returns the
 * worst error as a fraction of its bound. */
static double check_rows(const float *out, const float *start, const float *in,
                         const test_weight *t, int T, int K, int N) {
    double worst = 0;
    for (int r = 0; r < T; r++)
        for (int n = 0; n < N; n++) {
            double s0 = start ? start[(size_t)r * N + n] : 0.0, ref = s0, mag = fabs(s0);
            for (int k = 0; k < K; k++) {
                double p = (double)in[(size_t)r * K + k] * t->values[(size_t)n * K + k];
                ref += p;
                mag += fabs(p);
            }
            double err = fabs((double)out[(size_t)r * N + n] - ref);
            double bound = (K + 2) * U * mag + 1e-30;
            if (!(err <= bound))
                fail_msg("row %d col %d (K=%d N=%d): %.9g vs %.9g, error %.3g > bound %.3g", r, n,
                         K, N, out[(size_t)r * N + n], ref, err, bound);
            worst = fmax(worst, err / bound);
        }
    return worst;
}

/* Accuracy and row exactness of one kind and shape at the active level. */
static double check_kind_shape(weight_kind kind, int K, int N) {
    test_weight t = make_weight(kind, K, N);
    size_t in_n = (size_t)MAX_T * (size_t)K, out_n = (size_t)MAX_T * (size_t)N;
    float *in = malloc(in_n * sizeof(float)), *start = malloc(out_n * sizeof(float));
    float *batch = malloc(out_n * sizeof(float)), *mid = malloc(out_n * sizeof(float));
    float *alone = malloc((size_t)N * sizeof(float));
    assert_true(in && start && batch && mid && alone);
    for (size_t i = 0; i < in_n; i++) in[i] = 2.0f * rng_uniform();
    for (size_t i = 0; i < out_n; i++) start[i] = rng_uniform();
    double worst = 0;
    for (int accumulate = 0; accumulate <= 1; accumulate++) {
        /* T = 25, T = 7 (its first rows), then each row alone */
        memcpy(batch, start, out_n * sizeof(float));
        kernel_matmul_rows(batch, in, &t.w, MAX_T, accumulate);
        worst = fmax(worst, check_rows(batch, accumulate ? start : NULL, in, &t, MAX_T, K, N));
        memcpy(mid, start, out_n * sizeof(float));
        kernel_matmul_rows(mid, in, &t.w, 7, accumulate);
        assert_memory_equal(mid, batch, (size_t)7 * (size_t)N * sizeof(float));
        for (int r = 0; r < MAX_T; r++) {
            memcpy(alone, start + (size_t)r * N, (size_t)N * sizeof(float));
            kernel_matmul_rows(alone, in + (size_t)r * K, &t.w, 1, accumulate);
            if (memcmp(alone, batch + (size_t)r * N, (size_t)N * sizeof(float)))
                fail_msg("%s %s K=%d N=%d: row %d alone differs from the row in a batch of 25",
                         kernel_type_info(kind.type)->name,
                         kind.layout == KERNEL_IN_OUT ? "in_out" : "out_in", K, N, r);
        }
        /* every T from 1 to 25 against the reference (rows 0..T-1 of another input) */
        for (int T = 1; T <= MAX_T; T += (T < 9 ? 1 : 4)) {
            memcpy(mid, start, out_n * sizeof(float));
            kernel_matmul_rows(mid, in + (size_t)(MAX_T - T) * K, &t.w, T, accumulate);
            worst = fmax(worst, check_rows(mid, accumulate ? start : NULL,
                                           in + (size_t)(MAX_T - T) * K, &t, T, K, N));
        }
    }
    free(in);
    free(start);
    free(batch);
    free(mid);
    free(alone);
    free_weight(&t);
    return worst;
}

static void test_matmul_rows_every_type_and_level(void **state) {
    (void)state;
    /* K: not a multiple of any vector width (F32, F16, BF16); whole blocks of 32 for Q8_0/Q4_0,
     * odd block counts. N: odd, below and above the 64-column strips of axpy_rows, and past its
     * 256-column blocks (300). K past its 256-row blocks (257, 288). */
    static const int k_any[] = {1, 7, 33, 100, 257}, k_blocks[] = {32, 96, 160, 288};
    static const int n_all[] = {1, 5, 17, 70, 131, 300};
    for (int level = 0; level <= (int)kernel_isa_best(); level++) {
        if (kernel_force_isa((kernel_isa_level)level)) continue;
        double worst = 0;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            int blocks = kernel_type_info(kinds[k].type)->block > 1;
            const int *ks = blocks ? k_blocks : k_any;
            size_t nk = blocks ? 4 : 5;
            for (size_t i = 0; i < nk; i++)
                for (size_t j = 0; j < sizeof(n_all) / sizeof(n_all[0]); j++)
                    worst = fmax(worst, check_kind_shape(kinds[k], ks[i], n_all[j]));
        }
        print_message("kernel_matmul_rows at %s: worst error %.3f of the bound\n",
                      kernel_isa_level_name((kernel_isa_level)level), worst);
    }
    kernel_force_isa(kernel_isa_best());
}

/* ---- models -------------------------------------------------------------------------------- */

#define SLOTS 4
#define CTX 24 /* each slot's cache */
#define STEPS 6
/* Both sides are float32 with the same weights; they differ in summation order only (per-row
 * dot products or the fixed-order accumulation against the GEMM's blocking; the cached keys and
 * values were computed by either). Each logit is a chain of sums of at most 512 products whose
 * rounding errors are ~u sqrt(K) relative, through 2 layers and the norms: far below 2e-5 of the
 * largest logit (test_generate.c's CACHE_TOL for the same comparison; measured worst printed). */
#define FULL_TOL 2e-5

static const int prompt_len[SLOTS] = {3, 1, 6, 4};
/* The steps: which slots decode, in which order (-1 ends a step). */
static const int schedule[STEPS][SLOTS + 1] = {
    {2, 0, 3, 1, -1}, {1, -1}, {3, 1, -1}, {0, 2, 1, -1}, {2, 3, 0, 1, -1}, {0, 3, -1},
};

typedef struct {
    const model_config *cfg;
    const st_set *weights;
    kernel_type wtype;
    /* per rank */
    long mismatches[8];
    double worst_full[8];
    int ledger_bad[8];
    int steps_done[8];
} model_job;

/* The token slot s gets at position pos: any fixed function in the vocabulary. */
static int token_at(const model_config *cfg, int s, int pos) {
    return (pos * 37 + s * 11 + 5) % cfg->vocab_size;
}

static double worst_relative(const float *a, const float *b, int n) {
    double scale = 1e-30, worst = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = isnan(d) ? INFINITY : fmax(worst, d);
    }
    return worst / scale;
}

static int model_rank(comm_t *comm, void *arg) {
    model_job *job = arg;
    const model_config *cfg = job->cfg;
    int r = comm_rank(comm), P = comm_size(comm), rc = 0, L = cfg->n_layer;
    model_shard batch, alone, full;
    char err[512];
    memset(&batch, 0, sizeof(batch));
    memset(&alone, 0, sizeof(alone));
    memset(&full, 0, sizeof(full));
    if (model_shard_load_as(&batch, cfg, job->weights, r, P, SLOTS + 2, job->wtype, err,
                            sizeof(err)) ||
        model_shard_load_as(&alone, cfg, job->weights, r, P, SLOTS + 2, job->wtype, err,
                            sizeof(err)) ||
        model_shard_load_as(&full, cfg, job->weights, r, P, CTX, job->wtype, err, sizeof(err)) ||
        model_shard_enable_slots(&batch, SLOTS, CTX, err, sizeof(err)) ||
        model_shard_enable_slots(&alone, SLOTS, CTX, err, sizeof(err))) {
        rc = comm_fail(comm, "%s", err);
        goto done;
    }
    int V = batch.v_local, seq[SLOTS][CTX];
    size_t row_bytes = (size_t)V * sizeof(float);
    float *rows = malloc((size_t)SLOTS * row_bytes);
    if (!rows) {
        rc = comm_fail(comm, "out of memory");
        goto done;
    }
    /* Prefill: the same prompt into the same slot of both shards (the sequences' caches are
     * then the same bits; the alone shard's slots are the same memory layout). */
    for (int s = 0; s < SLOTS && !rc; s++) {
        for (int t = 0; t < prompt_len[s]; t++) seq[s][t] = token_at(cfg, s, t);
        rc = model_extend_slot(comm, &batch, s, seq[s], prompt_len[s]);
        if (!rc) rc = model_extend_slot(comm, &alone, s, seq[s], prompt_len[s]);
    }
    for (int step = 0; step < STEPS && !rc; step++) {
        int slots[SLOTS], toks[SLOTS], B = 0;
        for (; schedule[step][B] >= 0; B++) {
            int s = schedule[step][B], pos = model_slot_len(&batch, s);
            slots[B] = s;
            toks[B] = seq[s][pos] = token_at(cfg, s, pos);
        }
        comm_ledger_reset(comm);
        if ((rc = model_decode_batch(comm, &batch, slots, toks, B))) break;
        ledger_counts c = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE);
        if (c.calls != (uint64_t)(1 + 2 * L) ||
            c.elements != (uint64_t)(1 + 2 * L) * (uint64_t)B * (uint64_t)cfg->n_embd)
            job->ledger_bad[r]++;
        memcpy(rows, batch.logits, (size_t)B * row_bytes);
        /* Each sequence alone, last row first (another order than the batch's). */
        for (int b = B - 1; b >= 0 && !rc; b--) {
            int s = slots[b], len = model_slot_len(&batch, s);
            if ((rc = model_extend_slot(comm, &alone, s, &toks[b], 1))) break;
            if (memcmp(alone.logits, rows + (size_t)b * V, row_bytes)) job->mismatches[r]++;
            if ((rc = model_forward(comm, &full, seq[s], len))) break;
            job->worst_full[r] =
                fmax(job->worst_full[r],
                     worst_relative(rows + (size_t)b * V, full.logits + (size_t)(len - 1) * V, V));
        }
        if (!rc) job->steps_done[r]++;
    }
    free(rows);
done:
    model_shard_free(&batch);
    model_shard_free(&alone);
    model_shard_free(&full);
    return rc;
}

static void check_model(const model_config *cfg, const char *name) {
    char *dir = temp_dir_make("decode-batch");
    model_init_opts opts = {77, ST_F32, 0, 0, 0};
    char err[512];
    if (model_init_random(dir, cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    st_set weights;
    if (st_set_open(&weights, dir, err, sizeof(err))) fail_msg("open: %s", err);
    const kernel_type types[] = {KERNEL_F32, KERNEL_Q8_0};
    for (size_t ti = 0; ti < 2; ti++)
        for (int P = 1; P <= 3; P++) {
            model_job job;
            memset(&job, 0, sizeof(job));
            job.cfg = cfg;
            job.weights = &weights;
            job.wtype = types[ti];
            if (comm_launch(COMM_BACKEND_THREADS, P, model_rank, &job, err, sizeof(err)))
                fail_msg("%s %s P=%d: %s", name, kernel_type_info(types[ti])->name, P, err);
            double worst = 0;
            for (int r = 0; r < P; r++) {
                const char *tn = kernel_type_info(types[ti])->name;
                if (job.steps_done[r] != STEPS)
                    fail_msg("%s %s P=%d rank %d: %d steps", name, tn, P, r, job.steps_done[r]);
                if (job.mismatches[r])
                    fail_msg("%s %s P=%d rank %d: %ld rows differ from the sequence decoded alone",
                             name, tn, P, r, job.mismatches[r]);
                if (job.ledger_bad[r])
                    fail_msg("%s %s P=%d rank %d: %d steps not 1 + 2 n_layer AllReduce of B * E",
                             name, tn, P, r, job.ledger_bad[r]);
                if (!(job.worst_full[r] <= FULL_TOL))
                    fail_msg("%s %s P=%d rank %d: %.3e of the largest logit from a full recompute",
                             name, tn, P, r, job.worst_full[r]);
                worst = fmax(worst, job.worst_full[r]);
            }
            print_message("%s %s P=%d: rows bit-exact; full recompute within %.2e of max\n", name,
                          kernel_type_info(types[ti])->name, P, worst);
        }
    st_set_close(&weights);
    temp_dir_remove(dir);
}

static void test_gpt2_rows_exact(void **state) {
    (void)state;
    /* 4 heads of 32 (P = 3: 2, 1, 1), n_ff 512 (16 blocks: 6, 5, 5), vocab 101 */
    model_config cfg = model_config_gpt2(2, 128, 4, 101, 32, GELU_TANH);
    check_model(&cfg, "gpt2");
}

static void test_llama_gqa_rows_exact(void **state) {
    (void)state;
    /* 4 query heads of 32 reading ONE K/V head: at P = 2 and 3 every rank holds a copy of it */
    model_config cfg = model_config_llama(FAMILY_LLAMA, 2, 128, 4, 1, 32, 160, 101, 32);
    check_model(&cfg, "llama");
}

/* ---- bad input ----------------------------------------------------------------------------- */

typedef struct {
    const model_config *cfg;
    int which;
} bad_job;

static int bad_rank(comm_t *comm, void *arg) {
    bad_job *job = arg;
    model_shard m;
    char err[512];
    if (model_shard_load(&m, job->cfg, NULL, comm_rank(comm), comm_size(comm), 3, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    /* no checkpoint: zero weights (finite logits for the steps that must run) */
    memset(m.params, 0, m.n_params * sizeof(float));
    int rc = 0, tok[4] = {1, 2, 3, 4};
    if (job->which != 5 && model_shard_enable_slots(&m, 3, 4, err, sizeof(err)))
        rc = comm_fail(comm, "%s", err);
    if (!rc) switch (job->which) {
        case 0: { /* a slot twice in one step */
            int slots[3] = {0, 2, 0};
            rc = model_decode_batch(comm, &m, slots, tok, 3);
            break;
        }
        case 1: { /* more rows than the shard allocated (max_T 3) */
            int slots[4] = {0, 1, 2, 3};
            rc = model_decode_batch(comm, &m, slots, tok, 4);
            break;
        }
        case 2: { /* a slot out of range */
            int slots[2] = {1, 3};
            rc = model_decode_batch(comm, &m, slots, tok, 2);
            break;
        }
        case 3: { /* slot 1 full after 4 positions */
            int slots[2] = {0, 1};
            rc = model_extend_slot(comm, &m, 1, tok, 3);
            if (!rc) rc = model_extend_slot(comm, &m, 1, tok, 1);
            if (!rc) rc = model_decode_batch(comm, &m, slots, tok, 2);
            break;
        }
        case 4: { /* a token outside the vocabulary */
            int slots[2] = {0, 1}, bad[2] = {1, job->cfg->vocab_size};
            rc = model_decode_batch(comm, &m, slots, bad, 2);
            break;
        }
        default: { /* no cache */
            int slots[1] = {0};
            rc = model_decode_batch(comm, &m, slots, tok, 1);
            break;
        }
        }
    model_shard_free(&m);
    return rc;
}

static void test_bad_input(void **state) {
    (void)state;
    model_config cfg = model_config_gpt2(1, 32, 2, 50, 8, GELU_TANH);
    static const char *const expect[] = {"slot 0 appears twice",
                                         "4 sequences, but rank",
                                         "slot 3 of a cache of 3",
                                         "slot 1 is full",
                                         "token id 50 (slot 1) is outside the vocabulary",
                                         "has no KV cache"};
    for (int which = 0; which < 6; which++)
        for (int P = 1; P <= 2; P++) {
            bad_job job = {&cfg, which};
            char err[512] = "";
            int rc = comm_launch(COMM_BACKEND_THREADS, P, bad_rank, &job, err, sizeof(err));
            if (rc == 0) fail_msg("case %d P=%d: accepted", which, P);
            if (!strstr(err, expect[which]) || strchr(err, '\n'))
                fail_msg("case %d P=%d: message '%s' (want one line with '%s')", which, P, err,
                         expect[which]);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_rows_every_type_and_level),
        cmocka_unit_test(test_gpt2_rows_exact),
        cmocka_unit_test(test_llama_gqa_rows_exact),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
