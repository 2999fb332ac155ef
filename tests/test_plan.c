/* test_plan.c — the communication plan (include/linshard/plan.h).
 *
 * The plan is derived from placement rules, not written down; these tests hold it to what the
 * runtime really does and to what the rules imply:
 *   - for the default (Megatron) sharding, a real forward pass on P threads records in its
 *     comm ledger exactly the AllReduce calls the plan inserted, per tag ("embed",
 *     "layer{i}.attn", "layer{i}.mlp"), with the plan's floats per token, and rank 0 sends the
 *     plan's bandwidth-optimal bytes;
 *   - --mlp row,column costs 1 AllReduce (of the 4E hidden features) + 1 all-gather per MLP;
 *   - replicated attention and MLP communicate nothing in the layers;
 *   - a replicated bias added by every rank to a Partial sum has no valid plan;
 *   - the gradient pass costs 2 AllReduce per layer, 1 for the LM head's input, none for the
 *     embedding, and no weight gradient needs a reduction;
 *   - every family's graph is built from its config (no biases it lacks, RoPE and q/k norm
 *     where present, the QKV width (n_head + 2 n_kv_head) * head_dim, SwiGLU's 2 n_ff), and a
 *     Llama model with 2 K/V heads agrees with the ledger at P = 1..4 and 6 — replicated K/V
 *     heads at P = 3, 4, 6 — as do Qwen2 (QKV biases) and Qwen3 (q/k norm);
 *   - the cost of replicated K/V heads (heads held, weights, FLOPs, KV cache) is what a hand
 *     count gives, and no communication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/model.h"
#include "linshard/kernels.h"
#include "linshard/ledger.h"
#include "linshard/plan.h"

#define T_TOKENS 8 /* T * n_embd = 384: P = 1..4 split it evenly, so bytes are exactly 2(P-1)/P */

static model_config tiny;       /* 2 layers, 48 wide, 6 heads, vocab 101, context 16: main */
static model_config gpt2_small; /* GPT-2 small's shape: main */
/* Llama, 2 layers, 48 wide, 6 query heads and 2 K/V heads of 8, SwiGLU of 80, vocab 101, untied:
 * main. Query heads per rank at P = 4: {0,1},{2,3},{4},{5}, so K/V {0},{0,1},{1},{1}. */
static model_config llama_gqa;

static plan_t build(const model_config *cfg, int P, const char *mlp, const char *attention,
                    const char *bias) {
    plan_options opt;
    plan_options_default(&opt);
    if (mlp) assert_int_equal(plan_parse_mlp(mlp, &opt), 0);
    if (attention) assert_int_equal(plan_parse_attention(attention, &opt), 0);
    if (bias) assert_int_equal(plan_parse_bias(bias, &opt), 0);
    plan_t plan;
    char err[512];
    if (plan_build(&plan, cfg, P, &opt, err, sizeof(err))) fail_msg("plan: %s", err);
    return plan;
}

/* ---- the plan against the runtime's ledger ----------------------------------------------------
 */

typedef struct {
    const model_config *cfg;
    const st_set *file;
    int tokens[T_TOKENS];
    ledger_t ledger; /* rank 0's, after the forward pass */
    int have_ledger;
} forward_job;

static int forward_rank(comm_t *comm, void *arg) {
    forward_job *job = arg;
    model_shard m;
    char err[512];
    if (model_shard_load(&m, job->cfg, job->file, comm_rank(comm), comm_size(comm), T_TOKENS, err,
                         sizeof(err)))
        return comm_fail(comm, "%s", err);
    comm_ledger_reset(comm);
    int rc = model_forward(comm, &m, job->tokens, T_TOKENS);
    if (!rc && comm_rank(comm) == 0) {
        if (ledger_copy(&job->ledger, comm_ledger(comm)))
            rc = comm_fail(comm, "out of memory copying the ledger");
        else
            job->have_ledger = 1;
    }
    model_shard_free(&m);
    return rc;
}

/* The plan's AllReduce calls and floats per token for `tag` against the ledger's. */
static void check_tag(const plan_t *plan, const ledger_t *l, const char *tag) {
    ledger_counts got = ledger_tag_counts(l, tag, LEDGER_ALLREDUCE);
    int want = plan_tag_count(plan, 0, tag, PLAN_COMM_ALLREDUCE);
    if ((int)got.calls != want)
        fail_msg("P=%d %s: ledger %llu AllReduce, plan %d", plan->P, tag,
                 (unsigned long long)got.calls, want);
    long floats = plan_tag_floats(plan, 0, tag, PLAN_COMM_ALLREDUCE);
    if ((long)(got.elements / T_TOKENS) != floats || got.elements % T_TOKENS)
        fail_msg("P=%d %s: ledger %llu floats over %d tokens, plan %ld floats per token", plan->P,
                 tag, (unsigned long long)got.elements, T_TOKENS, floats);
    assert_int_equal(plan_tag_count(plan, 0, tag, PLAN_COMM_ALLGATHER), 0);
    assert_int_equal(ledger_tag_counts(l, tag, LEDGER_ALLGATHER).calls, 0);
}

static void check_against_ledger(const plan_t *plan, const ledger_t *l) {
    char tag[32];
    check_tag(plan, l, "embed");
    assert_int_equal(ledger_tag_counts(l, "embed", LEDGER_ALLREDUCE).calls,
                     plan->fwd.embed[PLAN_COMM_ALLREDUCE]);
    for (int i = 0; i < plan->cfg.n_layer; i++) {
        snprintf(tag, sizeof(tag), "layer%d.attn", i);
        check_tag(plan, l, tag);
        uint64_t calls = ledger_tag_counts(l, tag, LEDGER_ALLREDUCE).calls;
        snprintf(tag, sizeof(tag), "layer%d.mlp", i);
        check_tag(plan, l, tag);
        calls += ledger_tag_counts(l, tag, LEDGER_ALLREDUCE).calls;
        assert_int_equal(calls, plan->fwd.per_layer[PLAN_COMM_ALLREDUCE]);
    }
    /* Nothing else: every AllReduce of the pass is one the plan inserted, and rank 0 sent the
     * plan's bandwidth-optimal bytes (2(P-1)/P of each payload; blocks are even here). */
    ledger_counts total = ledger_op_total(l, LEDGER_ALLREDUCE);
    assert_int_equal(total.calls, plan->fwd.total[PLAN_COMM_ALLREDUCE]);
    assert_true(fabs((double)total.bytes_sent - plan->fwd.rank_bytes_per_token * T_TOKENS) < 0.5);
    assert_int_equal(ledger_op_total(l, LEDGER_ALLGATHER).calls, 0);
    assert_int_equal(ledger_op_total(l, LEDGER_REDUCE_SCATTER).calls, 0);
}

/* A random checkpoint of cfg, a real forward pass at each P of Ps, its ledger against the plan. */
static void agrees_with_ledger(const model_config *cfg, const int *Ps, int nP) {
    char dir[] = "/tmp/linshard-test-plan-XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    model_init_opts opts = {7, ST_F32, 0, 0, 0};
    if (model_init_random(dir, cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    st_set file;
    if (st_set_open(&file, dir, err, sizeof(err))) fail_msg("%s", err);
    for (int i = 0; i < nP; i++) {
        int P = Ps[i];
        static forward_job job;
        memset(&job, 0, sizeof(job));
        job.cfg = cfg;
        job.file = &file;
        for (int t = 0; t < T_TOKENS; t++) job.tokens[t] = (t * 37 + 11) % cfg->vocab_size;
        if (comm_launch(COMM_BACKEND_THREADS, P, forward_rank, &job, err, sizeof(err)))
            fail_msg("P=%d: %s", P, err);
        assert_true(job.have_ledger);
        plan_t plan = build(cfg, P, NULL, NULL, NULL);
        /* The figures the README promises, here derived rather than assumed. */
        assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
        assert_int_equal(plan.fwd.embed[PLAN_COMM_ALLREDUCE], 1);
        assert_int_equal(plan.bwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
        assert_true(plan.layers_identical);
        check_against_ledger(&plan, &job.ledger);
        plan_free(&plan);
        ledger_free(&job.ledger);
    }
    st_set_close(&file);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

static void test_plan_agrees_with_ledger(void **state) {
    (void)state;
    static const int Ps[] = {1, 2, 3, 4};
    agrees_with_ledger(&tiny, Ps, 4);
}

/* 6 query heads, 2 K/V heads: K/V replicated at P = 3, 4 and 6 (T * E = 384 splits evenly). */
static void test_llama_gqa_agrees_with_ledger(void **state) {
    (void)state;
    static const int Ps[] = {1, 2, 3, 4, 6};
    agrees_with_ledger(&llama_gqa, Ps, 5);
}

/* Qwen2's QKV biases (sliced with the heads, K/V biases replicated with their heads) and
 * Qwen3's per-head q/k norm: still 2 AllReduce per layer, where the ledger has them. */
static void test_qwen_agrees_with_ledger(void **state) {
    (void)state;
    static const int Ps[] = {2, 4};
    model_config qwen2 = model_config_llama(FAMILY_QWEN2, 2, 48, 6, 2, 8, 80, 101, 16);
    model_config qwen3 = model_config_llama(FAMILY_QWEN3, 2, 48, 6, 2, 8, 80, 101, 16);
    agrees_with_ledger(&qwen2, Ps, 2);
    agrees_with_ledger(&qwen3, Ps, 2);
}

/* ---- every family's graph, from its config ----------------------------------------------------
 */

static const plan_op *find_op(const plan_t *plan, int layer, const char *name) {
    for (int i = 0; i < plan->n_ops; i++)
        if (plan->ops[i].layer == layer && !strcmp(plan->ops[i].name, name)) return &plan->ops[i];
    return NULL;
}

static int layer_ops(const plan_t *plan, int layer) {
    int n = 0;
    for (int i = 0; i < plan->n_ops; i++) n += plan->ops[i].layer == layer;
    return n;
}

static void test_graph_follows_the_config(void **state) {
    (void)state;
    /* GPT-2: the ops it always had. */
    plan_t plan = build(&tiny, 2, NULL, NULL, NULL);
    assert_int_equal(layer_ops(&plan, 0), 14);
    assert_int_equal(find_op(&plan, 0, "attn.c_attn")->width, 48);        /* its input */
    assert_int_equal(find_op(&plan, 0, "attention core")->width, 3 * 48); /* QKV */
    assert_int_equal(find_op(&plan, 0, "mlp.c_proj")->width, 4 * 48);     /* n_ff */
    assert_non_null(find_op(&plan, -1, "+ wpe"));
    assert_non_null(find_op(&plan, -1, "lm_head (wte^T)"));
    assert_null(find_op(&plan, 0, "rope (q, k per head)"));
    plan_free(&plan);

    /* Llama: RMSNorm, no bias anywhere, RoPE on the heads, QKV (6 + 2 * 2) * 8 = 80 wide, the
     * attention core's output 6 * 8 = 48, gate|up 2 * 80, SiLU(gate) * up 80, its own LM head,
     * no wpe: the embedding's sum becomes the residual stream (reduced there). */
    plan = build(&llama_gqa, 4, NULL, NULL, NULL);
    assert_int_equal(layer_ops(&plan, 0), 11);
    for (int i = 0; i < plan.n_ops; i++) assert_int_not_equal(plan.ops[i].kind, PLAN_OP_BIAS_ADD);
    assert_null(find_op(&plan, -1, "+ wpe"));
    const plan_op *op = find_op(&plan, 0, "rope (q, k per head)");
    assert_non_null(op);
    assert_int_equal(op->width, 80);
    assert_int_equal(op->in_pl.kind, PLAN_SHARD);
    assert_int_equal(op->in_pl.dim, PLAN_DIM_HEADS);
    assert_int_equal(op->comm, PLAN_COMM_NONE);
    assert_int_equal(find_op(&plan, 0, "attention core")->width, 80);
    assert_int_equal(find_op(&plan, 0, "self_attn.o_proj")->width, 48);
    assert_int_equal(find_op(&plan, 0, "silu(gate)*up")->width, 160);
    assert_int_equal(find_op(&plan, 0, "mlp.down_proj")->width, 80);
    assert_int_equal(find_op(&plan, 0, "input_layernorm")->kind, PLAN_OP_LAYERNORM);
    assert_non_null(find_op(&plan, -1, "lm_head"));
    op = find_op(&plan, -1, "-> residual stream");
    assert_non_null(op);
    assert_int_equal(op->comm, PLAN_COMM_ALLREDUCE);
    /* The row-parallel outputs, without a bias, are reduced at the residual add. */
    assert_int_equal(plan_tag_count(&plan, 0, "layer0.attn", PLAN_COMM_ALLREDUCE), 1);
    assert_int_equal(plan_tag_floats(&plan, 0, "layer0.attn", PLAN_COMM_ALLREDUCE), 48);
    assert_int_equal(plan_tag_floats(&plan, 0, "layer0.mlp", PLAN_COMM_ALLREDUCE), 48);
    assert_int_equal(plan.bwd.weight_grad_reduce, 0);
    plan_free(&plan);

    /* Qwen2: biases on Q, K and V only (sliced like the heads); Qwen3: q/k norm before RoPE,
     * whose replicated weight, shared by all heads, gets a gradient summed over the ranks'
     * heads: one weight gradient AllReduce per layer. */
    model_config qwen2 = model_config_llama(FAMILY_QWEN2, 2, 48, 6, 2, 8, 80, 101, 16);
    plan = build(&qwen2, 3, NULL, NULL, NULL);
    op = find_op(&plan, 0, "self_attn.q|k|v_proj + bias");
    assert_non_null(op);
    assert_int_equal(op->weight.split, PLAN_SPLIT_COLUMN);
    assert_int_equal(op->comm, PLAN_COMM_NONE);
    assert_null(find_op(&plan, 0, "self_attn.o_proj + bias"));
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    plan_free(&plan);
    model_config qwen3 = model_config_llama(FAMILY_QWEN3, 2, 48, 6, 2, 8, 80, 101, 16);
    plan = build(&qwen3, 3, NULL, NULL, NULL);
    op = find_op(&plan, 0, "q/k norm (per head)");
    assert_non_null(op);
    assert_true(op < find_op(&plan, 0, "rope (q, k per head)"));
    assert_int_equal(op->comm, PLAN_COMM_NONE);
    assert_int_equal(plan.bwd.weight_grad_reduce, qwen3.n_layer);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    assert_int_equal(plan.bwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    plan_free(&plan);

    /* With --bias one-rank the stream stays Partial as for GPT-2: reduced before each norm. */
    plan = build(&llama_gqa, 2, NULL, NULL, "one-rank");
    assert_int_equal(plan.fwd.embed[PLAN_COMM_ALLREDUCE], 0);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    assert_int_equal(plan.fwd.head[PLAN_COMM_ALLREDUCE], 1);
    plan_free(&plan);
}

/* ---- replicated K/V heads -----------------------------------------------------------------------
 */

static void expect_kv(const model_config *cfg, int P, int held, int max_local, long long weights,
                      long long flops, long long cache) {
    plan_t plan = build(cfg, P, NULL, NULL, NULL);
    const plan_kv_replication *k = &plan.kv;
    if (k->kv_heads_held != held || k->max_kv_local != max_local ||
        k->extra_weight_floats != weights || k->extra_flops_per_token != flops ||
        k->extra_kv_cache_floats_per_position != cache)
        fail_msg("%d heads / %d kv at P=%d: held %d (want %d), max %d (%d), weights %lld (%lld), "
                 "flops %lld (%lld), cache %lld (%lld)",
                 cfg->n_head, cfg->n_kv_head, P, k->kv_heads_held, held, k->max_kv_local, max_local,
                 k->extra_weight_floats, weights, k->extra_flops_per_token, flops,
                 k->extra_kv_cache_floats_per_position, cache);
    assert_true(k->split);
    assert_int_equal(k->n_kv_head, cfg->n_kv_head);
    assert_int_equal(k->kv_heads_extra, held - cfg->n_kv_head);
    assert_true(k->extra_weight_bytes == 4 * weights);
    /* Replication adds no communication: nothing is inserted on K/V, and the layers still
     * cost 2 AllReduce each way. */
    assert_true(k->comm_bytes_per_token == 0.0);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    assert_int_equal(plan.bwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    plan_free(&plan);
}

static void test_kv_replication(void **state) {
    (void)state;
    /* 8 query heads, 2 K/V heads of 8, 64 wide, 2 layers, P = 4: each rank's 2 query heads read
     * 1 K/V head: {0},{0},{1},{1} = 4 held for 2. Each extra head is [64, 8] of K and of V per
     * layer: 2 extra * 2 layers * 2 * 64 * 8 = 4096 floats; 2 FLOPs per multiply-add: 8192 per
     * token; its cached K and V: 2 * 2 * 2 * 8 = 64 floats per position. */
    model_config l8 = model_config_llama(FAMILY_LLAMA, 2, 64, 8, 2, 0, 96, 101, 16);
    expect_kv(&l8, 4, 4, 1, 4096, 8192, 64);
    expect_kv(&l8, 2, 2, 1, 0, 0, 0); /* {0..3},{4..7}: K/V {0},{1}: none */
    expect_kv(&l8, 1, 2, 2, 0, 0, 0);
    /* P = 8: every query head alone, each K/V head held 4 times: 6 extra. */
    expect_kv(&l8, 8, 8, 1, 6 * 2 * 1024, 6 * 2 * 2048, 6 * 2 * 16);
    /* 6 query heads, 2 K/V heads (3 query heads each), 48 wide, P = 4: query heads {0,1},{2,3},
     * {4},{5}, so K/V {0},{0,1},{1},{1} = 5 held for 2, 2 on rank 1. Per extra head and layer
     * 2 * 48 * 8 = 768 floats: 3 * 2 * 768 = 4608 floats, 9216 FLOPs, 3 * 2 * 2 * 8 = 96. */
    expect_kv(&llama_gqa, 4, 5, 2, 4608, 9216, 96);
    expect_kv(&llama_gqa, 3, 4, 2, 2 * 2 * 768, 2 * 2 * 1536, 2 * 2 * 16); /* {0},{0,1},{1} */
    expect_kv(&llama_gqa, 6, 6, 1, 4 * 2 * 768, 4 * 2 * 1536, 4 * 2 * 16);
    expect_kv(&llama_gqa, 2, 2, 1, 0, 0, 0);
    /* Qwen2's K and V biases come with their copies: 2 * 8 more floats per head and layer. */
    model_config qwen2 = model_config_llama(FAMILY_QWEN2, 2, 48, 6, 2, 8, 80, 101, 16);
    expect_kv(&qwen2, 4, 5, 2, 3 * 2 * (768 + 16), 9216, 96);
    /* GPT-2 (every query head its own K/V head): never replicated. */
    for (int P = 1; P <= 6; P++) expect_kv(&tiny, P, 6, (6 + P - 1) / P, 0, 0, 0);
    /* Attention replicated: no head split, so nothing to report. */
    plan_t plan = build(&llama_gqa, 4, NULL, "replicate", NULL);
    assert_false(plan.kv.split);
    assert_int_equal(plan.kv.extra_weight_floats, 0);
    plan_free(&plan);
}

/* ---- alternatives ------------------------------------------------------------------------------
 */

static void test_mlp_row_column(void **state) {
    (void)state;
    plan_t plan = build(&tiny, 2, "row,column", NULL, NULL);
    int E = tiny.n_embd;
    /* The first linear's output is Partial over 4E features; the bias (and GELU after it)
     * cannot take a Partial sum: AllReduce of 4E. The second, column-parallel, leaves a shard
     * of E features the residual add needs whole: all-gather of E. */
    assert_int_equal(plan_tag_count(&plan, 0, "layer0.mlp", PLAN_COMM_ALLREDUCE), 1);
    assert_int_equal(plan_tag_floats(&plan, 0, "layer0.mlp", PLAN_COMM_ALLREDUCE), 4 * E);
    assert_int_equal(plan_tag_count(&plan, 0, "layer0.mlp", PLAN_COMM_ALLGATHER), 1);
    assert_int_equal(plan_tag_floats(&plan, 0, "layer0.mlp", PLAN_COMM_ALLGATHER), E);
    assert_int_equal(plan_tag_count(&plan, 0, "layer0.mlp", PLAN_COMM_SLICE), 1);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLGATHER], 1);
    assert_true(plan.layers_identical);
    /* Costlier than Megatron's: (E + 4E + E) floats per layer instead of 2E. */
    assert_true(fabs(plan.fwd.layer_bytes_per_token - 4.0 * 6 * E) < 1e-9);
    /* The gradient pass is its mirror: the slice's transpose is an all-gather, the
     * column-parallel linear's an AllReduce (of 4E), the all-gather's a free slice. */
    assert_int_equal(plan_tag_count(&plan, 1, "layer0.mlp", PLAN_COMM_ALLREDUCE), 1);
    assert_int_equal(plan_tag_floats(&plan, 1, "layer0.mlp", PLAN_COMM_ALLREDUCE), 4 * E);
    assert_int_equal(plan_tag_count(&plan, 1, "layer0.mlp", PLAN_COMM_ALLGATHER), 1);
    plan_free(&plan);
}

static void test_replicated_layers_communicate_nothing(void **state) {
    (void)state;
    plan_t plan = build(&tiny, 3, "replicate", "replicate", NULL);
    for (int c = PLAN_COMM_SLICE; c < PLAN_COMM_KINDS; c++) {
        assert_int_equal(plan.fwd.per_layer[c], 0);
        assert_int_equal(plan.bwd.per_layer[c], 0);
    }
    /* The vocabulary is still split: the embedding's AllReduce and the head's gradient one. */
    assert_int_equal(plan.fwd.embed[PLAN_COMM_ALLREDUCE], 1);
    assert_int_equal(plan.bwd.head[PLAN_COMM_ALLREDUCE], 1);
    assert_int_equal(plan.bwd.weight_grad_reduce, 0);
    plan_free(&plan);
}

static void test_invalid_combination_is_rejected(void **state) {
    (void)state;
    plan_options opt;
    plan_options_default(&opt);
    assert_int_equal(plan_parse_bias("every-rank", &opt), 0);
    plan_t plan;
    char err[512];
    assert_int_equal(plan_build(&plan, &tiny, 2, &opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no valid plan"));
    assert_non_null(strstr(err, "embed '+ wpe'")); /* the first bias on a Partial sum */
    assert_non_null(strstr(err, "counts it P times"));
    assert_null(strchr(err, '\n'));
    /* Also with the MLP rearranged: still the embedding's bias first. */
    assert_int_equal(plan_parse_mlp("row,column", &opt), 0);
    assert_int_equal(plan_build(&plan, &tiny, 2, &opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no valid plan"));
    /* P larger than the head count: the model's own check. */
    plan_options_default(&opt);
    assert_int_equal(plan_build(&plan, &tiny, 7, &opt, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "6 attention heads over 7 ranks"));
    /* Unknown names are refused by the parsers. */
    assert_int_equal(plan_parse_mlp("column", &opt), -1);
    assert_int_equal(plan_parse_mlp("column,diagonal", &opt), -1);
    assert_int_equal(plan_parse_attention("features", &opt), -1);
    assert_int_equal(plan_parse_bias("twice", &opt), -1);
}

static void test_bias_on_one_rank_moves_the_reduction(void **state) {
    (void)state;
    /* One rank adds each replicated bias to its summand: the sums stay Partial until a
     * LayerNorm needs them whole. Same count, different places: no AllReduce in the embedding,
     * one before each LayerNorm (ln_1, ln_2, ln_f). */
    plan_t plan = build(&tiny, 2, NULL, NULL, "one-rank");
    assert_int_equal(plan.fwd.embed[PLAN_COMM_ALLREDUCE], 0);
    assert_int_equal(plan.fwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
    assert_int_equal(plan.fwd.head[PLAN_COMM_ALLREDUCE], 1);
    assert_int_equal(plan.fwd.total[PLAN_COMM_ALLREDUCE], 1 + 2 * tiny.n_layer);
    plan_free(&plan);
}

/* ---- the gradient pass and the byte counts ----------------------------------------------------
 */

static void test_backward(void **state) {
    (void)state;
    for (int P = 1; P <= 4; P++) {
        plan_t plan = build(&gpt2_small, P, NULL, NULL, NULL);
        /* f's transpose before each column-parallel layer; g's is the identity. */
        assert_int_equal(plan.bwd.per_layer[PLAN_COMM_ALLREDUCE], 2);
        assert_int_equal(plan_tag_count(&plan, 1, "layer0.attn", PLAN_COMM_ALLREDUCE), 1);
        assert_int_equal(plan_tag_count(&plan, 1, "layer0.mlp", PLAN_COMM_ALLREDUCE), 1);
        assert_int_equal(plan.bwd.per_layer[PLAN_COMM_ALLGATHER], 0);
        /* The LM head's input gradient is Partial over the vocabulary shards. */
        assert_int_equal(plan.bwd.head[PLAN_COMM_ALLREDUCE], 1);
        /* The embedding's AllReduce transposes to the identity; its weight gradient is local. */
        assert_int_equal(plan.bwd.embed[PLAN_COMM_ALLREDUCE], 0);
        assert_int_equal(plan.bwd.weight_grad_reduce, 0);
        assert_int_equal(plan.bwd.total[PLAN_COMM_ALLREDUCE], 2 * gpt2_small.n_layer + 1);
        assert_true(plan.layers_identical);
        plan_free(&plan);
    }
}

static void test_bytes(void **state) {
    (void)state;
    plan_t plan = build(&gpt2_small, 4, NULL, NULL, NULL);
    int E = gpt2_small.n_embd;
    /* An AllReduce of E floats per token: 4E bytes of payload, 2(P-1)/P of it per rank. */
    assert_true(fabs(plan_comm_bytes(PLAN_COMM_ALLREDUCE, E) - 3072) < 1e-9);
    assert_true(fabs(plan_comm_rank_bytes(PLAN_COMM_ALLREDUCE, E, 4) - 4608) < 1e-9);
    assert_true(fabs(plan_comm_rank_bytes(PLAN_COMM_ALLGATHER, E, 4) - 2304) < 1e-9);
    assert_true(fabs(plan_comm_bytes(PLAN_COMM_SLICE, E)) < 1e-9);
    assert_true(fabs(plan.fwd.layer_bytes_per_token - 2 * 4.0 * E) < 1e-9);
    assert_true(fabs(plan.fwd.bytes_per_token - 25 * 4.0 * E) < 1e-9);
    assert_true(fabs(plan.fwd.rank_bytes_per_token - 25 * 4608.0) < 1e-9);
    plan_free(&plan);
}

int main(void) {
    tiny = model_config_gpt2(2, 48, 6, 101, 16, GELU_TANH);
    gpt2_small = model_config_gpt2(12, 768, 12, 50257, 1024, GELU_TANH);
    llama_gqa = model_config_llama(FAMILY_LLAMA, 2, 48, 6, 2, 8, 80, 101, 16);
    kernel_set_threads(1); /* one core per rank */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_agrees_with_ledger),
        cmocka_unit_test(test_llama_gqa_agrees_with_ledger),
        cmocka_unit_test(test_qwen_agrees_with_ledger),
        cmocka_unit_test(test_graph_follows_the_config),
        cmocka_unit_test(test_kv_replication),
        cmocka_unit_test(test_mlp_row_column),
        cmocka_unit_test(test_replicated_layers_communicate_nothing),
        cmocka_unit_test(test_invalid_combination_is_rejected),
        cmocka_unit_test(test_bias_on_one_rank_moves_the_reduction),
        cmocka_unit_test(test_backward),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
