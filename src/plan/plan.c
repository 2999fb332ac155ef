/* plan.c — the communication of tensor parallelism, derived from placement rules (plan.h).
 *
 * Three parts, each small:
 *   1. the graph: the model_config's transformer written as operations on values (build_*):
 *      the family only names the operations; which exist (biases, wpe, q/k norm, RoPE) and
 *      their widths come from the config;
 *   2. the rules: for each kind of operation, the input placement it needs given what it is
 *      handed, and the placement it produces (rule_*); and the cheapest conversion between two
 *      placements (convert);
 *   3. propagation: forward, in graph order, inserting a conversion wherever an operation
 *      needs something other than what it is handed; backward, in reverse, through each
 *      operation's transpose. The totals are counts of what propagation inserted.
 * Nothing here knows the answer ("2 AllReduce per layer"): it comes out of the rules. */
#include "linshard/plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- placements ----------------------------------------------------------------------------- */

static plan_placement replicate(void) {
    return (plan_placement){PLAN_REPLICATE, PLAN_DIM_NONE};
}

static plan_placement shard(plan_dim dim) {
    return (plan_placement){PLAN_SHARD, dim};
}

static plan_placement partial(void) {
    return (plan_placement){PLAN_PARTIAL, PLAN_DIM_NONE};
}

static int same(plan_placement a, plan_placement b) {
    return a.kind == b.kind && (a.kind != PLAN_SHARD || a.dim == b.dim);
}

/* The placement of a tensor's gradient: the tensor's own, except that every summand of a
 * Partial sum has the whole upstream gradient as its gradient (d(a + b)/da = 1): Replicate. */
static plan_placement grad_of(plan_placement p) {
    return p.kind == PLAN_PARTIAL ? replicate() : p;
}

/* The cheapest conversion from one placement to another (see plan_comm). */
static plan_comm convert(plan_placement from, plan_placement to) {
    if (same(from, to)) return PLAN_COMM_NONE;
    switch (to.kind) {
    case PLAN_REPLICATE:
        return from.kind == PLAN_PARTIAL ? PLAN_COMM_ALLREDUCE : PLAN_COMM_ALLGATHER;
    case PLAN_SHARD:
        if (from.kind == PLAN_REPLICATE) return PLAN_COMM_SLICE;
        if (from.kind == PLAN_PARTIAL) return PLAN_COMM_REDUCE_SCATTER;
        return PLAN_COMM_ALLGATHER; /* a shard of another dimension: gather, then slice */
    case PLAN_PARTIAL:
        return PLAN_COMM_SLICE; /* keep it on one rank (or keep one's block), zeros elsewhere */
    }
    return PLAN_COMM_NONE;
}

/* ---- the rules --------------------------------------------------------------------------------
 */

/* An operation is handed `in` (and, for a residual add, the stream); its rule says what input
 * placement it needs (a conversion is inserted when that differs) and what it produces. */
typedef struct {
    plan_placement in, stream;
    plan_placement need, out;
} rule_io;

typedef struct {
    char *buf;
    size_t len;
} rule_err;

static int violated(rule_err *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int violated(rule_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
    return -1;
}

/* y = x W. Column-sharded W on Replicate x: each rank computes its output features, Shard.
 * Row-sharded W on x sharded the same way: each rank's product is a summand, Partial.
 * Replicated W: any x whose features are all here; a linear map keeps a Partial sum Partial
 * (sum_r x_r W = (sum_r x_r) W). The embedding (row split over the vocabulary of the one-hot
 * ids: rows outside a rank's slice are zero) and the tied LM head (column split over the
 * vocabulary) are this rule too. */
static int rule_linear(plan_weight w, rule_io *io) {
    switch (w.split) {
    case PLAN_SPLIT_COLUMN:
        io->need = replicate();
        io->out = shard(w.dim);
        break;
    case PLAN_SPLIT_ROW:
        io->need = shard(w.dim);
        io->out = partial();
        break;
    case PLAN_SPLIT_REPLICATE:
        io->need = io->in.kind == PLAN_SHARD ? replicate() : io->in;
        io->out = io->need;
        break;
    }
    return 0;
}

/* The bias is placed like its linear's output: sliced for a column-parallel linear, else
 * replicated. A replicated bias on a Partial sum must be added once: after the reduction
 * (Megatron, the default), or by one rank to its summand; added by every rank it counts P
 * times, and there is no valid plan. */
static int rule_bias(plan_weight w, const plan_options *opt, rule_io *io, rule_err *e) {
    plan_placement bias = w.split == PLAN_SPLIT_COLUMN ? shard(w.dim) : replicate();
    if (io->in.kind == PLAN_PARTIAL && bias.kind == PLAN_REPLICATE) {
        if (opt->bias == PLAN_BIAS_EVERY_RANK)
            return violated(e, "a bias added to a Partial sum must be added once (after the "
                               "AllReduce, or by one rank); with --bias every-rank each of the P "
                               "ranks adds it and the sum counts it P times");
        if (opt->bias == PLAN_BIAS_ONE_RANK) bias = partial();
    }
    io->need = bias;
    io->out = bias;
    return 0;
}

/* Elementwise and non-linear: fine on whole or feature-sharded values, never on a Partial sum
 * (GELU(a + b) != GELU(a) + GELU(b)): that must be reduced first. SwiGLU's SiLU(gate) * up is
 * this rule too: the fused [gate | up] projection is split so that each rank's gate and up
 * columns are the same feature slice, which makes the product elementwise on that slice. */
static int rule_gelu(rule_io *io) {
    io->need = io->in.kind == PLAN_PARTIAL ? replicate() : io->in;
    io->out = io->need;
    return 0;
}

/* LayerNorm's mean and variance (RMSNorm's mean square) need the whole feature vector of each
 * token: Replicate (a sequence shard would also do; it is not modelled here). */
static int rule_layernorm(rule_io *io) {
    io->need = replicate();
    io->out = replicate();
    return 0;
}

/* softmax(q k^T) v within each head: local when whole heads are sharded, or on everything;
 * softmax is non-linear, so not on a Partial sum, and a head cut by a feature shard is not
 * whole. RoPE (a rotation within each head's q and k) and Qwen3's q/k RMSNorm (over each
 * head's D dimensions) act on one head at a time too: the same rule. With grouped-query
 * attention a rank's Shard(heads) holds its query heads and every K/V head they read, so
 * "whole heads" includes the K/V heads: replicated ones are computed, never sent. */
static int rule_heads(rule_io *io) {
    int local = io->in.kind == PLAN_REPLICATE ||
                (io->in.kind == PLAN_SHARD && io->in.dim == PLAN_DIM_HEADS);
    io->need = local ? io->in : replicate();
    io->out = io->need;
    return 0;
}

/* Both operands in the same placement. The residual stream keeps its placement (the next
 * norm needs it whole); the branch is converted to match: a row-parallel projection without a
 * bias after it (the Llama family) is reduced here. */
static int rule_residual(rule_io *io) {
    io->need = io->stream;
    io->out = io->stream;
    return 0;
}

/* The embedding's vocabulary-parallel sum becoming the residual stream, in a model without a
 * position table to add (RoPE): Megatron keeps the stream whole, so it is reduced here, in the
 * embedding, as "+ wpe" does for GPT-2. With --bias one-rank sums are deliberately left Partial
 * until an operation needs them whole, and so is this one. */
static int rule_stream(const plan_options *opt, rule_io *io) {
    io->need = opt->bias == PLAN_BIAS_ONE_RANK ? io->in : replicate();
    io->out = io->need;
    return 0;
}

static int apply_rule(const plan_op *op, const plan_options *opt, rule_io *io, rule_err *e) {
    switch (op->kind) {
    case PLAN_OP_EMBEDDING:
    case PLAN_OP_LINEAR:
    case PLAN_OP_LM_HEAD:
        return rule_linear(op->weight, io);
    case PLAN_OP_BIAS_ADD:
        return rule_bias(op->weight, opt, io, e);
    case PLAN_OP_GELU:
        return rule_gelu(io);
    case PLAN_OP_LAYERNORM:
        return rule_layernorm(io);
    case PLAN_OP_HEADWISE:
    case PLAN_OP_ATTENTION:
        return rule_heads(io);
    case PLAN_OP_RESIDUAL:
        return rule_residual(io);
    case PLAN_OP_STREAM:
        return rule_stream(opt, io);
    }
    return violated(e, "unknown operation");
}

/* ---- the rules, transposed (the gradient pass) ---------------------------------------------- */

static int is_matmul(const plan_op *op) {
    return op->kind == PLAN_OP_LINEAR || op->kind == PLAN_OP_EMBEDDING ||
           op->kind == PLAN_OP_LM_HEAD;
}

/* dx = dy W^T is the linear map with the transposed weight: a column split becomes a row
 * split of the same dimension and the other way round. So the transpose of a column-parallel
 * layer (dy Shard) gives a Partial dx — Megatron's f: identity forward, AllReduce backward —
 * and the transpose of a row-parallel one (dy Replicate) a sharded dx — g: AllReduce forward,
 * identity backward. dy always arrives as the transpose needs it, because it takes the
 * placement of the op's output (grad_of). Every other op is linear in dy with its saved
 * activations and acts on each feature / head / token where it sits: dx is placed like dy. */
static plan_placement transpose_rule(const plan_op *op, plan_placement dy) {
    if (!is_matmul(op)) return dy;
    plan_weight t = op->weight;
    if (t.split == PLAN_SPLIT_COLUMN)
        t.split = PLAN_SPLIT_ROW;
    else if (t.split == PLAN_SPLIT_ROW)
        t.split = PLAN_SPLIT_COLUMN;
    rule_io io = {dy, dy, dy, dy};
    rule_linear(t, &io);
    return io.out;
}

/* dW = x^T dy (a matmul) or sum_t dy (a bias, a norm parameter): a sum over ranks when x or dy
 * is a Partial sum, so the gradient of a replicated weight would need an AllReduce. So does a
 * replicated weight applied to every slice of a sharded value (Qwen3's q/k norm, shared by all
 * heads): each rank sums over its own heads only. */
static int weight_grad_partial(const plan_op *op) {
    if (!op->has_weight) return 0;
    if (op->weight.split == PLAN_SPLIT_REPLICATE && op->need.kind == PLAN_SHARD) return 1;
    return op->dy_pl.kind == PLAN_PARTIAL || (is_matmul(op) && op->need.kind == PLAN_PARTIAL);
}

/* ---- the graph --------------------------------------------------------------------------------
 */

/* What the family calls each part (its tensors' names; generic ones for the activations). */
typedef struct {
    const char *norm1, *qkv, *proj, *norm2, *fc, *act, *fcp, *normf, *lookup, *head;
} graph_names;

static graph_names names_of(const model_config *c) {
    graph_names n;
    if (c->family == FAMILY_GPT2) {
        n = (graph_names){"ln_1", "attn.c_attn", "attn.c_proj", "ln_2",       "mlp.c_fc",
                          "gelu", "mlp.c_proj",  "ln_f",        "wte lookup", "lm_head (wte^T)"};
    } else {
        n = (graph_names){"input_layernorm",     "self_attn.q|k|v_proj",
                          "self_attn.o_proj",    "post_attention_layernorm",
                          "mlp.gate|up_proj",    "silu(gate)*up",
                          "mlp.down_proj",       "norm",
                          "embed_tokens lookup", c->tied ? "lm_head (embed_tokens^T)" : "lm_head"};
    }
    if (c->mlp == MLP_GELU) {
        n.act = "gelu";
        if (c->family != FAMILY_GPT2) n.fc = "mlp.up_proj";
    }
    return n;
}

typedef struct {
    plan_t *p;
    graph_names names;
    const char *tag;
    int layer;
    int failed;
} builder;

static int grow(builder *b) {
    plan_t *p = b->p;
    if (p->n_ops < p->cap_ops && p->n_values < p->cap_values) return 0;
    int cap = p->cap_ops ? 2 * p->cap_ops : 64;
    plan_op *ops = realloc(p->ops, (size_t)cap * sizeof(*ops));
    if (ops) p->ops = ops;
    plan_placement *values = realloc(p->values, (size_t)(cap + 1) * sizeof(*values));
    if (values) p->values = values;
    int *widths = realloc(p->widths, (size_t)(cap + 1) * sizeof(*widths));
    if (widths) p->widths = widths;
    if (!ops || !values || !widths) return -1;
    p->cap_ops = cap;
    p->cap_values = cap + 1;
    return 0;
}

static int new_value(plan_t *p, int width) {
    p->values[p->n_values] = replicate();
    p->widths[p->n_values] = width;
    return p->n_values++;
}

/* Appends an operation on value `in` (and `in2`, the residual stream, or -1) producing a new
 * value of out_width floats per token; returns it (or -1 once out of memory). */
static int add_op(builder *b, plan_op_kind kind, const char *name, plan_weight w, int has_weight,
                  int in, int in2, int out_width) {
    if (b->failed || grow(b)) {
        b->failed = 1;
        return -1;
    }
    plan_t *p = b->p;
    plan_op *op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    snprintf(op->name, sizeof(op->name), "%s", name);
    snprintf(op->tag, sizeof(op->tag), "%s", b->tag);
    op->layer = b->layer;
    op->weight = w;
    op->has_weight = has_weight;
    op->in = in;
    op->in2 = in2;
    op->width = p->widths[in];
    op->out = new_value(p, out_width);
    return op->out;
}

static plan_weight weight(plan_split split, plan_dim dim) {
    return (plan_weight){split, split == PLAN_SPLIT_REPLICATE ? PLAN_DIM_NONE : dim};
}

static const plan_weight no_weight = {PLAN_SPLIT_REPLICATE, PLAN_DIM_NONE};

/* Marks the last op as acting on the K/V heads (the QKV projection's output). */
static void mark_kv(builder *b) {
    if (!b->failed) b->p->ops[b->p->n_ops - 1].kv = 1;
}

/* A linear layer: the matmul, then its bias if it has one (placed like the output: see
 * rule_bias). */
static int linear(builder *b, const char *name, plan_split split, plan_dim dim, int in,
                  int out_width, int has_bias) {
    int y = add_op(b, PLAN_OP_LINEAR, name, weight(split, dim), 1, in, -1, out_width);
    if (!has_bias) return y;
    char bias_name[32];
    snprintf(bias_name, sizeof(bias_name), "%s + bias", name);
    plan_weight bias = weight(split == PLAN_SPLIT_COLUMN ? split : PLAN_SPLIT_REPLICATE, dim);
    return add_op(b, PLAN_OP_BIAS_ADD, bias_name, bias, 1, y, -1, out_width);
}

/* x = one_hot(ids) · wte (+ wpe with learned positions). The ids are a value of V "floats" per
 * token (the one-hot rows): slicing them is free, nothing of that width is ever sent. Without
 * wpe the sum enters the residual stream directly (rule_stream). */
static int build_embedding(builder *b, int ids) {
    int E = b->p->cfg.n_embd;
    b->tag = "embed";
    b->layer = -1;
    int x = add_op(b, PLAN_OP_EMBEDDING, b->names.lookup, weight(PLAN_SPLIT_ROW, PLAN_DIM_VOCAB), 1,
                   ids, -1, E);
    if (b->p->cfg.learned_pos) return add_op(b, PLAN_OP_BIAS_ADD, "+ wpe", no_weight, 1, x, -1, E);
    return add_op(b, PLAN_OP_STREAM, "-> residual stream", no_weight, 0, x, -1, E);
}

/* x + proj(attention(rope(qk_norm(qkv(norm1(x)))))), with the heads as the unit of sharding.
 * The QKV projection is (n_head + 2 n_kv_head) * head_dim wide, laid out [Q | K | V]; the
 * attention core's output is n_head * head_dim. */
static int build_attention(builder *b, int x, const char *tag) {
    const plan_options *o = &b->p->opt;
    const model_config *c = &b->p->cfg;
    int E = c->n_embd, qd = c->n_head * c->head_dim;
    int qkv_width = (c->n_head + 2 * c->n_kv_head) * c->head_dim;
    b->tag = tag;
    int a = add_op(b, PLAN_OP_LAYERNORM, b->names.norm1, no_weight, 1, x, -1, E);
    int y = linear(b, b->names.qkv, o->attn_qkv, PLAN_DIM_HEADS, a, qkv_width, c->qkv_bias);
    if (c->qkv_bias) mark_kv(b); /* the bias add, on [Q | K | V] */
    if (c->qk_norm) {
        y = add_op(b, PLAN_OP_HEADWISE, "q/k norm (per head)", no_weight, 1, y, -1, qkv_width);
        mark_kv(b);
    }
    if (!c->learned_pos) {
        y = add_op(b, PLAN_OP_HEADWISE, "rope (q, k per head)", no_weight, 0, y, -1, qkv_width);
        mark_kv(b);
    }
    int heads = add_op(b, PLAN_OP_ATTENTION, "attention core", no_weight, 0, y, -1, qd);
    mark_kv(b);
    y = linear(b, b->names.proj, o->attn_proj, PLAN_DIM_HEADS, heads, E, c->out_bias);
    return add_op(b, PLAN_OP_RESIDUAL, "residual: x + branch", no_weight, 0, y, x, E);
}

/* x + proj(gelu(fc(norm2(x)))), or x + down(SiLU(gate(x')) * up(x')) with gate and up one fused
 * column-parallel projection of 2 n_ff, each rank's gate and up columns the same slice. */
static int build_mlp(builder *b, int x, const char *tag) {
    const plan_options *o = &b->p->opt;
    const model_config *c = &b->p->cfg;
    int E = c->n_embd, F = c->n_ff, fc_width = c->mlp == MLP_SWIGLU ? 2 * F : F;
    b->tag = tag;
    int a = add_op(b, PLAN_OP_LAYERNORM, b->names.norm2, no_weight, 1, x, -1, E);
    int h = linear(b, b->names.fc, o->mlp_fc, PLAN_DIM_FEATURES, a, fc_width, c->mlp_bias);
    int g = add_op(b, PLAN_OP_GELU, b->names.act, no_weight, 0, h, -1, F);
    int y = linear(b, b->names.fcp, o->mlp_proj, PLAN_DIM_FEATURES, g, E, c->mlp_bias);
    return add_op(b, PLAN_OP_RESIDUAL, "residual: x + branch", no_weight, 0, y, x, E);
}

/* logits = norm_f(x) · W^T: W the embedding (tied) or the LM head's own [V, E] weight, split by
 * vocabulary rows either way. */
static int build_head(builder *b, int x) {
    b->tag = "head";
    b->layer = -1;
    int a = add_op(b, PLAN_OP_LAYERNORM, b->names.normf, no_weight, 1, x, -1, b->p->cfg.n_embd);
    return add_op(b, PLAN_OP_LM_HEAD, b->names.head, weight(PLAN_SPLIT_COLUMN, PLAN_DIM_VOCAB), 1,
                  a, -1, b->p->cfg.vocab_size);
}

static int build_graph(plan_t *p) {
    builder b = {p, names_of(&p->cfg), "", -1, 0};
    if (grow(&b)) return -1;
    int x = build_embedding(&b, new_value(p, p->cfg.vocab_size));
    /* One tag buffer per layer and part: ops copy the tag, so two suffice. */
    char attn_tag[24], mlp_tag[24];
    for (int l = 0; l < p->cfg.n_layer && !b.failed; l++) {
        b.layer = l;
        snprintf(attn_tag, sizeof(attn_tag), "layer%d.attn", l);
        snprintf(mlp_tag, sizeof(mlp_tag), "layer%d.mlp", l);
        x = build_attention(&b, x, attn_tag);
        x = build_mlp(&b, x, mlp_tag);
    }
    build_head(&b, x);
    return b.failed ? -1 : 0;
}

/* ---- propagation -------------------------------------------------------------------------- */

static int propagate_forward(plan_t *p, char *err, size_t errlen) {
    char why[256];
    rule_err e = {why, sizeof(why)};
    for (int i = 0; i < p->n_ops; i++) {
        plan_op *op = &p->ops[i];
        rule_io io = {p->values[op->in], op->in2 >= 0 ? p->values[op->in2] : replicate(),
                      replicate(), replicate()};
        if (apply_rule(op, &p->opt, &io, &e)) {
            snprintf(err, errlen, "no valid plan: %s '%s': %s", op->tag, op->name, why);
            return -1;
        }
        op->in_pl = io.in;
        op->need = io.need;
        op->out_pl = io.out;
        op->comm = convert(io.in, io.need);
        p->values[op->out] = io.out;
    }
    return 0;
}

/* In reverse: the gradient of each op's output arrives placed like the output (grad_of); the
 * transpose gives the gradient of the op's (converted) input; a conversion brings it to the
 * placement the gradient of the input as produced needs. The embedding's input, the token ids,
 * has no gradient. A residual add hands dy to the stream unchanged (the stream's placement is
 * its output's), so only the branch can need a conversion. */
static void propagate_backward(plan_t *p) {
    for (int i = p->n_ops - 1; i >= 0; i--) {
        plan_op *op = &p->ops[i];
        op->dy_pl = grad_of(op->out_pl);
        op->weight_grad_reduce = weight_grad_partial(op);
        if (op->kind == PLAN_OP_EMBEDDING) {
            op->dx_pl = op->dx_need = op->dy_pl;
            op->bwd_comm = PLAN_COMM_NONE;
            continue;
        }
        op->dx_pl = transpose_rule(op, op->dy_pl);
        op->dx_need = grad_of(op->in_pl);
        op->bwd_comm = convert(op->dx_pl, op->dx_need);
    }
}

/* ---- totals -----------------------------------------------------------------------------------
 */

static int is_collective(plan_comm c) {
    return c != PLAN_COMM_NONE && c != PLAN_COMM_SLICE;
}

static void count(plan_totals *t, const plan_op *op, plan_comm c, int P) {
    if (c == PLAN_COMM_NONE) return;
    t->total[c]++;
    if (!strcmp(op->tag, "embed")) t->embed[c]++;
    if (!strcmp(op->tag, "head")) t->head[c]++;
    if (op->layer == 0) t->per_layer[c]++;
    if (!is_collective(c)) return;
    t->bytes_per_token += plan_comm_bytes(c, op->width);
    t->rank_bytes_per_token += plan_comm_rank_bytes(c, op->width, P);
    if (op->layer == 0) t->layer_bytes_per_token += plan_comm_bytes(c, op->width);
}

static void total(plan_t *p) {
    memset(&p->fwd, 0, sizeof(p->fwd));
    memset(&p->bwd, 0, sizeof(p->bwd));
    for (int i = 0; i < p->n_ops; i++) {
        count(&p->fwd, &p->ops[i], p->ops[i].comm, p->P);
        count(&p->bwd, &p->ops[i], p->ops[i].bwd_comm, p->P);
        p->bwd.weight_grad_reduce += p->ops[i].weight_grad_reduce;
    }
}

static int same_op_plan(const plan_op *a, const plan_op *b) {
    return a->kind == b->kind && same(a->in_pl, b->in_pl) && same(a->need, b->need) &&
           same(a->out_pl, b->out_pl) && a->comm == b->comm && a->bwd_comm == b->bwd_comm &&
           a->width == b->width;
}

/* Every layer has the same ops; check that propagation placed them all like layer 0's (so the
 * per-layer figures are layer 0's). */
static int check_layers_identical(const plan_t *p) {
    int first = -1, per_layer = 0;
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].layer == 0) {
            if (first < 0) first = i;
            per_layer++;
        }
    for (int i = 0; i < p->n_ops; i++) {
        int l = p->ops[i].layer;
        if (l <= 0) continue;
        int k = i - first - l * per_layer;
        if (k < 0 || k >= per_layer || !same_op_plan(&p->ops[i], &p->ops[first + k])) return 0;
    }
    return 1;
}

/* ---- replicated K/V heads ----------------------------------------------------------------------
 */

/* What holding every K/V head a rank's query heads read costs (plan.h). The communication is
 * not assumed: it is whatever propagation inserted on the values holding K/V heads (the QKV
 * projection's output, through bias, q/k norm, RoPE and the attention core), both passes. */
static void kv_replication(plan_t *p) {
    const model_config *c = &p->cfg;
    plan_kv_replication *k = &p->kv;
    memset(k, 0, sizeof(*k));
    k->n_kv_head = c->n_kv_head;
    k->split = p->opt.attn_qkv == PLAN_SPLIT_COLUMN;
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].kv)
            k->comm_bytes_per_token += plan_comm_bytes(p->ops[i].comm, p->ops[i].width) +
                                       plan_comm_bytes(p->ops[i].bwd_comm, p->ops[i].width);
    if (!k->split) return;
    for (int r = 0; r < p->P; r++) {
        head_split hs = model_head_split(c, p->P, r);
        k->kv_heads_held += hs.kv_local;
        if (hs.kv_local > k->max_kv_local) k->max_kv_local = hs.kv_local;
    }
    k->kv_heads_extra = k->kv_heads_held - c->n_kv_head;
    /* One extra K/V head, one layer: its K and V columns of the projection, [E, D] each (and
     * D biases each). */
    long long n = (long long)k->kv_heads_extra * c->n_layer, E = c->n_embd, D = c->head_dim;
    long long matrix = 2 * E * D;
    k->extra_weight_floats = n * (matrix + (c->qkv_bias ? 2 * D : 0));
    k->extra_weight_bytes = 4 * k->extra_weight_floats;
    k->extra_flops_per_token = n * 2 * matrix;
    k->extra_kv_cache_floats_per_position = n * 2 * D;
}

/* ---- the public functions ------------------------------------------------------------------- */

void plan_options_default(plan_options *opt) {
    opt->attn_qkv = PLAN_SPLIT_COLUMN;
    opt->attn_proj = PLAN_SPLIT_ROW;
    opt->mlp_fc = PLAN_SPLIT_COLUMN;
    opt->mlp_proj = PLAN_SPLIT_ROW;
    opt->bias = PLAN_BIAS_AFTER_REDUCE;
}

static int parse_split(const char *s, size_t n, plan_split *out) {
    static const struct {
        const char *name;
        plan_split split;
    } names[] = {{"column", PLAN_SPLIT_COLUMN},
                 {"row", PLAN_SPLIT_ROW},
                 {"replicate", PLAN_SPLIT_REPLICATE}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == n && !strncmp(s, names[i].name, n)) {
            *out = names[i].split;
            return 0;
        }
    return -1;
}

int plan_parse_mlp(const char *s, plan_options *opt) {
    if (!strcmp(s, "replicate")) {
        opt->mlp_fc = opt->mlp_proj = PLAN_SPLIT_REPLICATE;
        return 0;
    }
    const char *comma = strchr(s, ',');
    if (!comma) return -1;
    plan_split fc, proj;
    if (parse_split(s, (size_t)(comma - s), &fc) ||
        parse_split(comma + 1, strlen(comma + 1), &proj))
        return -1;
    opt->mlp_fc = fc;
    opt->mlp_proj = proj;
    return 0;
}

int plan_parse_attention(const char *s, plan_options *opt) {
    if (!strcmp(s, "heads")) {
        opt->attn_qkv = PLAN_SPLIT_COLUMN;
        opt->attn_proj = PLAN_SPLIT_ROW;
    } else if (!strcmp(s, "replicate")) {
        opt->attn_qkv = opt->attn_proj = PLAN_SPLIT_REPLICATE;
    } else {
        return -1;
    }
    return 0;
}

int plan_parse_bias(const char *s, plan_options *opt) {
    if (!strcmp(s, "after-reduce"))
        opt->bias = PLAN_BIAS_AFTER_REDUCE;
    else if (!strcmp(s, "one-rank"))
        opt->bias = PLAN_BIAS_ONE_RANK;
    else if (!strcmp(s, "every-rank"))
        opt->bias = PLAN_BIAS_EVERY_RANK;
    else
        return -1;
    return 0;
}

int plan_build(plan_t *plan, const model_config *cfg, int P, const plan_options *opt, char *err,
               size_t errlen) {
    memset(plan, 0, sizeof(*plan));
    if (model_config_check(cfg, err, errlen) || model_config_check_tp(cfg, P, err, errlen))
        return -1;
    plan->cfg = *cfg;
    plan->P = P;
    plan->opt = *opt;
    if (build_graph(plan)) {
        plan_free(plan);
        snprintf(err, errlen, "out of memory building the plan");
        return -1;
    }
    if (propagate_forward(plan, err, errlen)) {
        plan_free(plan);
        return -1;
    }
    propagate_backward(plan);
    total(plan);
    kv_replication(plan);
    plan->layers_identical = check_layers_identical(plan);
    return 0;
}

void plan_free(plan_t *plan) {
    free(plan->ops);
    free(plan->values);
    free(plan->widths);
    memset(plan, 0, sizeof(*plan));
}

double plan_comm_bytes(plan_comm c, int width) {
    return is_collective(c) ? 4.0 * width : 0.0;
}

double plan_comm_rank_bytes(plan_comm c, int width, int P) {
    double share = (double)(P - 1) / P;
    if (c == PLAN_COMM_ALLREDUCE) share *= 2;
    return share * plan_comm_bytes(c, width);
}

int plan_tag_count(const plan_t *plan, int backward, const char *tag, plan_comm c) {
    int n = 0;
    for (int i = 0; i < plan->n_ops; i++) {
        const plan_op *op = &plan->ops[i];
        n += !strcmp(op->tag, tag) && (backward ? op->bwd_comm : op->comm) == c;
    }
    return n;
}

long plan_tag_floats(const plan_t *plan, int backward, const char *tag, plan_comm c) {
    long n = 0;
    for (int i = 0; i < plan->n_ops; i++) {
        const plan_op *op = &plan->ops[i];
        if (!strcmp(op->tag, tag) && (backward ? op->bwd_comm : op->comm) == c) n += op->width;
    }
    return n;
}

const char *plan_comm_name(plan_comm c) {
    switch (c) {
    case PLAN_COMM_NONE:
        return "-";
    case PLAN_COMM_SLICE:
        return "local slice (free)";
    case PLAN_COMM_ALLREDUCE:
        return "AllReduce";
    case PLAN_COMM_ALLGATHER:
        return "all-gather";
    case PLAN_COMM_REDUCE_SCATTER:
        return "reduce-scatter";
    case PLAN_COMM_KINDS:
        break;
    }
    return "?";
}

const char *plan_split_name(plan_split s) {
    switch (s) {
    case PLAN_SPLIT_REPLICATE:
        return "replicate";
    case PLAN_SPLIT_COLUMN:
        return "column";
    case PLAN_SPLIT_ROW:
        return "row";
    }
    return "?";
}

static const char *dim_name(plan_dim d) {
    switch (d) {
    case PLAN_DIM_FEATURES:
        return "features";
    case PLAN_DIM_HEADS:
        return "heads";
    case PLAN_DIM_VOCAB:
        return "vocab";
    case PLAN_DIM_NONE:
        break;
    }
    return "?";
}

const char *plan_placement_str(plan_placement p, char *buf, size_t len) {
    if (p.kind == PLAN_SHARD)
        snprintf(buf, len, "Shard(%s)", dim_name(p.dim));
    else
        snprintf(buf, len, "%s", p.kind == PLAN_PARTIAL ? "Partial" : "Replicate");
    return buf;
}

const char *plan_weight_str(const plan_op *op, char *buf, size_t len) {
    if (!op->has_weight)
        snprintf(buf, len, "-");
    else if (op->weight.split == PLAN_SPLIT_REPLICATE)
        snprintf(buf, len, "Replicate");
    else if (op->kind == PLAN_OP_BIAS_ADD)
        snprintf(buf, len, "Shard(%s)", dim_name(op->weight.dim));
    else
        snprintf(buf, len, "%s Shard(%s)", op->weight.split == PLAN_SPLIT_ROW ? "row" : "col",
                 dim_name(op->weight.dim));
    return buf;
}
