/* cmd_plan.c — `linshard plan`: the communication of tensor parallelism, derived from placement
 * rules (include/linshard/plan.h) and printed as a table or one JSON object. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/plan.h"

static const char plan_usage[] =
    "usage: linshard plan (--model PATH | --shape gpt2|tiny|llama-1b) --tp P [--backward]\n"
    "                     [--json] [--mlp column,row|row,column|replicate]\n"
    "                     [--attention heads|replicate] [--bias after-reduce|one-rank|every-rank]\n"
    "\n"
    "Derives where tensor parallelism must communicate, for any family (GPT-2, Llama, Mistral,\n"
    "Qwen2, Qwen3). One transformer layer as the config describes it (LayerNorm or RMSNorm, the\n"
    "QKV projection of (n_head + 2 n_kv_head) * head_dim, q/k norm and RoPE where present, the\n"
    "attention core, the output projection, a GELU or SwiGLU MLP, biases only where the model\n"
    "has them), plus the embedding (+ wpe with learned positions) and the LM head (tied or its\n"
    "own), is a graph of operations; the weights' placements (Replicate,\n"
    "Shard(features|heads|vocab)) propagate through per-operation rules, and wherever an\n"
    "operation cannot take what it is handed (a Partial sum into a bias add, an activation or\n"
    "a norm; a shard where the whole vector is needed) the cheapest fix is inserted:\n"
    "AllReduce (Partial -> Replicate), all-gather (Shard -> Replicate), reduce-scatter\n"
    "(Partial -> Shard) or a free local slice (Replicate -> Shard). Bytes are float32 payload\n"
    "per token, and what each rank sends with the bandwidth-optimal algorithm.\n"
    "\n"
    "With grouped-query attention split by heads, each rank holds every K/V head its query\n"
    "heads read, so a K/V head shared by ranks is replicated on them; the lines after the\n"
    "table give what that costs (K/V heads held, extra weight memory, FLOPs per token and KV\n"
    "cache, over all ranks and layers) and the communication it adds: none.\n"
    "\n"
    "  --model PATH      read the shape from PATH/config.json, or a .gguf file's metadata\n"
    "  --shape NAME      gpt2 (12 layers, 768 wide, 12 heads, vocab 50257), tiny (verify's\n"
    "                    default: 2 layers, 48 wide, 6 heads, vocab 101) or llama-1b (Llama\n"
    "                    3.2 1B: 16 layers, 2048 wide, 32 query and 8 K/V heads, vocab 128256)\n"
    "  --tp P            ranks (at most the number of attention heads)\n"
    "  --backward        also the gradient pass (each operation's transpose)\n"
    "  --json            one JSON object (forward, backward, kv_replication) instead of the\n"
    "                    table\n"
    "  --mlp A,B         placement of the MLP's first projection (c_fc, or gate|up) and second\n"
    "                    (c_proj, or down_proj): column, row or replicate each (default\n"
    "                    column,row: Megatron); 'replicate' = replicate,replicate\n"
    "  --attention S     heads (default: QKV projection column, output projection row, by\n"
    "                    heads) or replicate\n"
    "  --bias B          a replicated bias on a Partial sum: after-reduce (default, Megatron),\n"
    "                    one-rank (one rank adds it to its summand), every-rank (invalid:\n"
    "                    counted P times)\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit 1 if the options have no valid plan (the message names the violated rule).\n";

static const char *bias_name(plan_bias_policy b) {
    return b == PLAN_BIAS_ONE_RANK ? "one-rank"
                                   : (b == PLAN_BIAS_EVERY_RANK ? "every-rank" : "after-reduce");
}

static const char *attention_name(const plan_options *o) {
    return o->attn_qkv == PLAN_SPLIT_REPLICATE ? "replicate" : "heads";
}

static void mlp_name(const plan_options *o, char *buf, size_t len) {
    snprintf(buf, len, "%s,%s", plan_split_name(o->mlp_fc), plan_split_name(o->mlp_proj));
}

/* Bytes are whole numbers. The bandwidth-optimal share per rank, 2(P-1)/P of the payload, is
 * fractional when P does not divide it, and the whole-model sum of doubles lands a hair off an
 * integer ("122880.0"): round to the nearest byte. */
static const char *fmt_bytes(double b, char *buf, size_t len) {
    snprintf(buf, len, "%.0f", round(b));
    return buf;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const char *layer_label(const plan_op *op, char *buf, size_t len) {
    if (op->layer < 0)
        snprintf(buf, len, "%s", op->tag);
    else
        snprintf(buf, len, "layer%d", op->layer);
    return buf;
}

static void comm_cell(plan_comm c, plan_placement from, plan_placement to, int width, char *buf,
                      size_t len) {
    char a[24], b[24];
    if (c == PLAN_COMM_NONE)
        snprintf(buf, len, "-");
    else if (c == PLAN_COMM_SLICE)
        snprintf(buf, len, "slice (free) -> %s", plan_placement_str(to, b, sizeof(b)));
    else
        snprintf(buf, len, "%s %s -> %s, %d fl", plan_comm_name(c),
                 plan_placement_str(from, a, sizeof(a)), plan_placement_str(to, b, sizeof(b)),
                 width);
}

static void bytes_cell(plan_comm c, int width, int P, char *buf, size_t len) {
    char a[32], b[32];
    if (c == PLAN_COMM_NONE || c == PLAN_COMM_SLICE)
        snprintf(buf, len, "0");
    else
        snprintf(buf, len, "%s (%s/rank)", fmt_bytes(plan_comm_bytes(c, width), a, sizeof(a)),
                 fmt_bytes(plan_comm_rank_bytes(c, width, P), b, sizeof(b)));
}

/* Rows for the embedding, layer 0 and the head; the other layers are checked to be layer 0's. */
static int shown(const plan_op *op) {
    return op->layer <= 0;
}

/* The operation column: 22 wide (GPT-2's names fit), wider for longer names
 * ("post_attention_layernorm"). */
static int name_width(const plan_t *p) {
    int w = 22;
    for (int i = 0; i < p->n_ops; i++)
        if (shown(&p->ops[i]) && (int)strlen(p->ops[i].name) > w) w = (int)strlen(p->ops[i].name);
    return w;
}

static void print_forward_row(const plan_t *p, const plan_op *op) {
    char l[32], in[24], w[32], out[24], comm[96], bytes[96];
    comm_cell(op->comm, op->in_pl, op->need, op->width, comm, sizeof(comm));
    bytes_cell(op->comm, op->width, p->P, bytes, sizeof(bytes));
    printf("%-7s %-*s %-16s %-20s %-16s %-46s %s\n", layer_label(op, l, sizeof(l)), name_width(p),
           op->name, plan_placement_str(op->in_pl, in, sizeof(in)),
           plan_weight_str(op, w, sizeof(w)), plan_placement_str(op->out_pl, out, sizeof(out)),
           comm, bytes);
}

static void print_backward_row(const plan_t *p, const plan_op *op) {
    char l[32], dy[24], dx[24], comm[96], bytes[96];
    if (op->kind == PLAN_OP_EMBEDDING)
        snprintf(comm, sizeof(comm), "- (ids: no gradient; dW local rows)");
    else
        comm_cell(op->bwd_comm, op->dx_pl, op->dx_need, op->width, comm, sizeof(comm));
    bytes_cell(op->bwd_comm, op->width, p->P, bytes, sizeof(bytes));
    printf("%-7s %-*s %-16s %-16s %-46s %s\n", layer_label(op, l, sizeof(l)), name_width(p),
           op->name, plan_placement_str(op->dy_pl, dy, sizeof(dy)),
           op->kind == PLAN_OP_EMBEDDING ? "-" : plan_placement_str(op->dx_pl, dx, sizeof(dx)),
           comm, bytes);
}

static void print_layers_note(const plan_t *p) {
    if (p->cfg.n_layer < 2) return;
    char range[32];
    if (p->cfg.n_layer == 2)
        snprintf(range, sizeof(range), "layer1");
    else
        snprintf(range, sizeof(range), "layer1..%d", p->cfg.n_layer - 1);
    printf("%-7s %s\n", range,
           p->layers_identical ? "(the same as layer0)" : "(NOT all the same as layer0)");
}

static void print_forward_table(const plan_t *p) {
    printf("%-7s %-*s %-16s %-20s %-16s %-46s %s\n", "layer", name_width(p), "operation", "input",
           "weight", "output", "communication inserted (before the op)", "bytes/token");
    int noted = 0;
    for (int i = 0; i < p->n_ops; i++) {
        const plan_op *op = &p->ops[i];
        if (op->layer > 0 && !noted) {
            print_layers_note(p);
            noted = 1;
        }
        if (shown(op)) print_forward_row(p, op);
    }
}

static void print_backward_table(const plan_t *p) {
    printf("%-7s %-*s %-16s %-16s %-46s %s\n", "layer", name_width(p), "operation (transpose)",
           "grad out", "grad in", "communication inserted (after the op)", "bytes/token");
    int noted = 0;
    for (int i = p->n_ops - 1; i >= 0; i--) {
        const plan_op *op = &p->ops[i];
        if (op->layer > 0 && !noted) {
            print_layers_note(p);
            noted = 1;
        }
        if (shown(op)) print_backward_row(p, op);
    }
}

/* "2 AllReduce + 1 all-gather", or "none". */
static const char *counts_str(const int *counts, char *buf, size_t len) {
    static const plan_comm kinds[] = {PLAN_COMM_ALLREDUCE, PLAN_COMM_ALLGATHER,
                                      PLAN_COMM_REDUCE_SCATTER};
    size_t n = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (counts[kinds[k]] && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%d %s", n ? " + " : "", counts[kinds[k]],
                                  plan_comm_name(kinds[k]));
    if (!n) snprintf(buf, len, "none");
    return buf;
}

static void print_totals(const plan_t *p, const plan_totals *t, const char *pass) {
    char c1[96], c2[96], c3[96], c4[96], b1[32], b2[32], b3[32];
    printf("%s: per layer %s (%s bytes/token); embedding %s; head %s\n", pass,
           counts_str(t->per_layer, c1, sizeof(c1)),
           fmt_bytes(t->layer_bytes_per_token, b1, sizeof(b1)),
           counts_str(t->embed, c2, sizeof(c2)), counts_str(t->head, c3, sizeof(c3)));
    printf("  whole model: %s = %s bytes/token of payload; %s bytes/token sent by each rank "
           "(bandwidth-optimal: AllReduce 2(P-1)/P, all-gather (P-1)/P of the payload)\n",
           counts_str(t->total, c4, sizeof(c4)), fmt_bytes(t->bytes_per_token, b2, sizeof(b2)),
           fmt_bytes(t->rank_bytes_per_token, b3, sizeof(b3)));
}

static void print_notes(const plan_t *p) {
    const plan_options *o = &p->opt;
    int attn = o->attn_qkv != PLAN_SPLIT_REPLICATE || o->attn_proj != PLAN_SPLIT_REPLICATE;
    int mlp = o->mlp_fc != PLAN_SPLIT_REPLICATE || o->mlp_proj != PLAN_SPLIT_REPLICATE;
    if (!attn && !mlp)
        printf("note: valid, but nothing in the layers is split: every rank computes every head "
               "and the whole MLP (no parallelism; only the vocabulary is split)\n");
    else if (!attn)
        printf("note: attention replicated: valid, no communication in it, but no parallelism "
               "either (every rank computes every head)\n");
    else if (!mlp)
        printf("note: MLP replicated: valid, no communication in it, but no parallelism either "
               "(every rank computes the whole MLP)\n");
    if (!p->cfg.learned_pos && !p->cfg.out_bias && !p->cfg.mlp_bias &&
        o->bias != PLAN_BIAS_ONE_RANK)
        printf("no bias on a Partial sum in this model: each row-parallel projection's sum is "
               "reduced where the residual stream needs it whole (Megatron)\n");
    else if (o->bias == PLAN_BIAS_AFTER_REDUCE)
        printf("bias on a Partial sum: added once, after the AllReduce, by every rank "
               "(Megatron)\n");
    else
        printf("bias on a Partial sum: added by one rank to its summand; the sum stays Partial "
               "until an operation needs it whole\n");
}

static const char *family_name(model_family f) {
    switch (f) {
    case FAMILY_GPT2:
        return "GPT-2";
    case FAMILY_LLAMA:
        return "Llama";
    case FAMILY_MISTRAL:
        return "Mistral";
    case FAMILY_QWEN2:
        return "Qwen2";
    case FAMILY_QWEN3:
        return "Qwen3";
    }
    return "?";
}

/* GPT-2: the line it always had. Others: what differs from GPT-2 too. */
static void print_header(const plan_t *p) {
    const model_config *c = &p->cfg;
    char mlp[48];
    mlp_name(&p->opt, mlp, sizeof(mlp));
    if (c->family == FAMILY_GPT2)
        printf("plan: GPT-2, %d layers, %d wide, %d heads, vocab %d", c->n_layer, c->n_embd,
               c->n_head, c->vocab_size);
    else
        printf("plan: %s, %d layers, %d wide, %d query heads and %d K/V heads of %d, %s MLP of %d, "
               "%s, %s%s%s, %s LM head, vocab %d",
               family_name(c->family), c->n_layer, c->n_embd, c->n_head, c->n_kv_head, c->head_dim,
               c->mlp == MLP_SWIGLU ? "SwiGLU" : "GELU", c->n_ff,
               c->norm == NORM_RMSNORM ? "RMSNorm" : "LayerNorm",
               c->learned_pos ? "learned positions" : "RoPE", c->qk_norm ? ", q/k norm" : "",
               c->qkv_bias ? ", QKV bias" : "", c->tied ? "tied" : "own", c->vocab_size);
    printf("; P = %d; attention %s, mlp %s, bias %s\n\n", p->P, attention_name(&p->opt), mlp,
           bias_name(p->opt.bias));
}

/* "{0},{0,1},{1},{1}": the K/V heads each rank holds (up to 16 ranks). */
static void kv_sets(const plan_t *p, char *buf, size_t len) {
    size_t n = 0;
    buf[0] = '\0';
    for (int r = 0; r < p->P && n < len; r++) {
        head_split hs = model_head_split(&p->cfg, p->P, r);
        n += (size_t)snprintf(buf + n, len - n, "%s{", r ? "," : "");
        for (int k = 0; k < hs.kv_local && n < len; k++)
            n += (size_t)snprintf(buf + n, len - n, "%s%d", k ? "," : "", hs.kv0 + k);
        if (n < len) n += (size_t)snprintf(buf + n, len - n, "}");
    }
}

/* What replicated K/V heads cost (plan_kv_replication), or one line saying there are none. */
static void print_kv(const plan_t *p) {
    const plan_kv_replication *k = &p->kv;
    const model_config *c = &p->cfg;
    if (!k->split) return; /* attention replicated: print_notes says so */
    char sets[512] = "", b[32];
    if (p->P <= 16) kv_sets(p, sets, sizeof(sets));
    if (!k->kv_heads_extra) {
        printf("K/V heads: %d over %d ranks, each held by one rank%s%s%s: split without "
               "replication, nothing extra\n",
               c->n_kv_head, p->P, sets[0] ? " (" : "", sets, sets[0] ? ")" : "");
        return;
    }
    double share = 100.0 * (double)k->extra_weight_floats / (double)model_total_param_floats(c);
    printf("K/V heads: replicated. %d query heads per K/V head; each rank holds every K/V head its "
           "query heads read%s%s: %d held over the %d ranks for %d (%d extra, at most %d on a "
           "rank), in each of the %d layers\n",
           c->n_head / c->n_kv_head, sets[0] ? ", " : "", sets, k->kv_heads_held, p->P,
           k->n_kv_head, k->kv_heads_extra, k->max_kv_local, c->n_layer);
    printf("  extra weights: %lld floats = %lld bytes at float32 (%.2f%% of the model), the "
           "copies' K and V projection columns%s, over all ranks and layers\n",
           k->extra_weight_floats, k->extra_weight_bytes, share, c->qkv_bias ? " and biases" : "");
    printf("  extra compute: %lld FLOPs per token (the copies' K and V projections, computed on "
           "every rank that holds one)\n",
           k->extra_flops_per_token);
    printf("  extra KV cache: %lld floats per position (the copies' K and V, all layers)\n",
           k->extra_kv_cache_floats_per_position);
    printf("  communication: none added (%s bytes/token inserted on anything holding K/V, forward "
           "and backward): each rank computes its copies from its replicated input; still %d "
           "AllReduce per layer forward, %d backward\n",
           fmt_bytes(k->comm_bytes_per_token, b, sizeof(b)), p->fwd.per_layer[PLAN_COMM_ALLREDUCE],
           p->bwd.per_layer[PLAN_COMM_ALLREDUCE]);
}

static void print_table(const plan_t *p, int backward) {
    print_header(p);
    printf("forward\n");
    print_forward_table(p);
    if (backward) {
        printf("\nbackward (gradients, in reverse order)\n");
        print_backward_table(p);
    }
    printf("\n");
    print_totals(p, &p->fwd, "forward");
    if (backward) {
        print_totals(p, &p->bwd, "backward");
        printf("  weight gradients: %d need an AllReduce (each is computed from local x and dy; "
               "the embedding's rows of %s included)\n",
               p->bwd.weight_grad_reduce, p->cfg.family == FAMILY_GPT2 ? "wte" : "embed_tokens");
    }
    print_kv(p);
    print_notes(p);
}

/* ---- JSON -------------------------------------------------------------------------------------
 */

static void add_counts(cJSON *o, const char *suffix, const int *counts) {
    static const struct {
        plan_comm c;
        const char *name;
    } kinds[] = {{PLAN_COMM_ALLREDUCE, "allreduce"},
                 {PLAN_COMM_ALLGATHER, "allgather"},
                 {PLAN_COMM_REDUCE_SCATTER, "reduce_scatter"}};
    char key[64];
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        snprintf(key, sizeof(key), "%s_%s", kinds[k].name, suffix);
        cJSON_AddNumberToObject(o, key, counts[kinds[k].c]);
    }
}

static cJSON *comm_json(const plan_t *p, const plan_op *op, plan_comm c, plan_placement from,
                        plan_placement to) {
    char a[24], b[24];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tag", op->tag);
    cJSON_AddStringToObject(o, "op", op->name);
    cJSON_AddStringToObject(o, "collective", plan_comm_name(c));
    cJSON_AddStringToObject(o, "from", plan_placement_str(from, a, sizeof(a)));
    cJSON_AddStringToObject(o, "to", plan_placement_str(to, b, sizeof(b)));
    cJSON_AddNumberToObject(o, "floats_per_token", op->width);
    cJSON_AddNumberToObject(o, "bytes_per_token", plan_comm_bytes(c, op->width));
    cJSON_AddNumberToObject(o, "rank_bytes_per_token",
                            round(plan_comm_rank_bytes(c, op->width, p->P)));
    return o;
}

static cJSON *pass_json(const plan_t *p, const plan_totals *t, int backward) {
    cJSON *o = cJSON_CreateObject();
    add_counts(o, "per_layer", t->per_layer);
    add_counts(o, "embedding", t->embed);
    add_counts(o, "head", t->head);
    add_counts(o, "total", t->total);
    cJSON_AddNumberToObject(o, "bytes_per_token", round(t->bytes_per_token));
    cJSON_AddNumberToObject(o, "bytes_per_token_per_layer", round(t->layer_bytes_per_token));
    cJSON_AddNumberToObject(o, "rank_bytes_per_token", round(t->rank_bytes_per_token));
    if (backward) cJSON_AddNumberToObject(o, "weight_grad_allreduce", t->weight_grad_reduce);
    cJSON *list = cJSON_AddArrayToObject(o, "communication");
    for (int i = 0; i < p->n_ops; i++) {
        const plan_op *op = &p->ops[i];
        plan_comm c = backward ? op->bwd_comm : op->comm;
        if (c == PLAN_COMM_NONE || c == PLAN_COMM_SLICE) continue;
        cJSON_AddItemToArray(list, backward ? comm_json(p, op, c, op->dx_pl, op->dx_need)
                                            : comm_json(p, op, c, op->in_pl, op->need));
    }
    return o;
}

/* plan_kv_replication; with the attention replicated, only {"split": false}. */
static cJSON *kv_json(const plan_t *p) {
    const plan_kv_replication *k = &p->kv;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "split", k->split);
    if (!k->split) return o;
    cJSON_AddBoolToObject(o, "replicated", k->kv_heads_extra > 0);
    cJSON_AddNumberToObject(o, "n_kv_head", k->n_kv_head);
    cJSON_AddNumberToObject(o, "kv_heads_held", k->kv_heads_held);
    cJSON_AddNumberToObject(o, "kv_heads_extra", k->kv_heads_extra);
    cJSON_AddNumberToObject(o, "max_kv_heads_per_rank", k->max_kv_local);
    cJSON *held = cJSON_AddArrayToObject(o, "kv_heads_per_rank");
    for (int r = 0; r < p->P; r++) {
        head_split hs = model_head_split(&p->cfg, p->P, r);
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(hs.kv0));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber(hs.kv_local));
        cJSON_AddItemToArray(held, pair);
    }
    cJSON_AddNumberToObject(o, "extra_weight_floats", (double)k->extra_weight_floats);
    cJSON_AddNumberToObject(o, "extra_weight_bytes", (double)k->extra_weight_bytes);
    cJSON_AddNumberToObject(o, "extra_flops_per_token", (double)k->extra_flops_per_token);
    cJSON_AddNumberToObject(o, "extra_kv_cache_floats_per_position",
                            (double)k->extra_kv_cache_floats_per_position);
    cJSON_AddNumberToObject(o, "communication_bytes_per_token", k->comm_bytes_per_token);
    return o;
}

static int print_json(const plan_t *p) {
    char mlp[48];
    mlp_name(&p->opt, mlp, sizeof(mlp));
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddNumberToObject(model, "n_layer", p->cfg.n_layer);
    cJSON_AddNumberToObject(model, "n_embd", p->cfg.n_embd);
    cJSON_AddNumberToObject(model, "n_head", p->cfg.n_head);
    cJSON_AddNumberToObject(model, "vocab_size", p->cfg.vocab_size);
    cJSON_AddStringToObject(model, "family", family_name(p->cfg.family));
    cJSON_AddNumberToObject(model, "n_kv_head", p->cfg.n_kv_head);
    cJSON_AddNumberToObject(model, "head_dim", p->cfg.head_dim);
    cJSON_AddNumberToObject(model, "n_ff", p->cfg.n_ff);
    cJSON_AddNumberToObject(root, "P", p->P);
    cJSON_AddStringToObject(root, "attention", attention_name(&p->opt));
    cJSON_AddStringToObject(root, "mlp", mlp);
    cJSON_AddStringToObject(root, "bias", bias_name(p->opt.bias));
    cJSON_AddBoolToObject(root, "valid", 1);
    cJSON_AddBoolToObject(root, "layers_identical", p->layers_identical);
    cJSON_AddItemToObject(root, "forward", pass_json(p, &p->fwd, 0));
    cJSON_AddItemToObject(root, "backward", pass_json(p, &p->bwd, 1));
    cJSON_AddItemToObject(root, "kv_replication", kv_json(p));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return cli_job_error("out of memory printing JSON");
    printf("%s\n", text);
    cJSON_free(text);
    return EXIT_OK;
}

/* ---- the command ---------------------------------------------------------------------------- */

int cmd_plan(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"shape", required_argument, 0, 'S'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"backward", no_argument, 0, 'B'},
                                             {"json", no_argument, 0, 'j'},
                                             {"mlp", required_argument, 0, 'M'},
                                             {"attention", required_argument, 0, 'A'},
                                             {"bias", required_argument, 0, 'b'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model_dir = NULL, *shape = NULL;
    int backward = 0, json = 0, c;
    long P = 0;
    plan_options opt;
    plan_options_default(&opt);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'S':
            shape = optarg;
            break;
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("plan", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            break;
        case 'B':
            backward = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'M':
            if (plan_parse_mlp(optarg, &opt))
                return cli_usage_error("plan",
                                       "--mlp must be column,row, row,column, replicate or a "
                                       "pair of column/row/replicate, got '%s'",
                                       optarg);
            break;
        case 'A':
            if (plan_parse_attention(optarg, &opt))
                return cli_usage_error("plan", "--attention must be heads or replicate, got '%s'",
                                       optarg);
            break;
        case 'b':
            if (plan_parse_bias(optarg, &opt))
                return cli_usage_error("plan",
                                       "--bias must be after-reduce, one-rank or every-rank, "
                                       "got '%s'",
                                       optarg);
            break;
        case 'h':
            fputs(plan_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("plan", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("plan", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("plan", "unexpected argument '%s'", argv[optind]);
    if (!model_dir == !shape) return cli_usage_error("plan", "give one of --model DIR or --shape");
    if (!P) return cli_usage_error("plan", "--tp P is required");
    model_config cfg;
    char err[512];
    if (shape && cli_shape_named(shape, &cfg))
        return cli_usage_error("plan", "unknown --shape '%s' (available: gpt2, llama-1b, tiny)",
                               shape);
    if (model_dir && cli_model_config(model_dir, &cfg, err, sizeof(err)))
        return cli_job_error("%s", err);
    plan_t plan;
    if (plan_build(&plan, &cfg, (int)P, &opt, err, sizeof(err))) return cli_job_error("%s", err);
    int rc = EXIT_OK;
    if (json)
        rc = print_json(&plan);
    else
        print_table(&plan, backward);
    plan_free(&plan);
    return rc;
}
