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
    "usage: linshard plan (--model DIR | --shape gpt2|tiny) --tp P [--backward] [--json]\n"
    "                     [--mlp column,row|row,column|replicate] [--attention heads|replicate]\n"
    "                     [--bias after-reduce|one-rank|every-rank]\n"
    "\n"
    "Derives where tensor parallelism must communicate. One transformer layer (plus the\n"
    "embedding and the LM head) is a graph of operations; the weights' placements (Replicate,\n"
    "Shard(features|heads|vocab)) propagate through per-operation rules, and wherever an\n"
    "operation cannot take what it is handed (a Partial sum into a bias add, GELU or\n"
    "LayerNorm; a shard where the whole vector is needed) the cheapest fix is inserted:\n"
    "AllReduce (Partial -> Replicate), all-gather (Shard -> Replicate), reduce-scatter\n"
    "(Partial -> Shard) or a free local slice (Replicate -> Shard). Bytes are float32 payload\n"
    "per token, and what each rank sends with the bandwidth-optimal algorithm.\n"
    "\n"
    "  --model DIR       read the shape from DIR/config.json\n"
    "  --shape NAME      gpt2 (12 layers, 768 wide, 12 heads, vocab 50257) or tiny (verify's\n"
    "                    default: 2 layers, 48 wide, 6 heads, vocab 101)\n"
    "  --tp P            ranks (at most the number of attention heads)\n"
    "  --backward        also the gradient pass (each operation's transpose)\n"
    "  --json            one JSON object (forward and backward) instead of the table\n"
    "  --mlp A,B         placement of c_fc and c_proj: column, row or replicate each\n"
    "                    (default column,row: Megatron); 'replicate' = replicate,replicate\n"
    "  --attention S     heads (default: c_attn column, c_proj row, by heads) or replicate\n"
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

/* "4608" or "4096.7": bytes are whole for P dividing 2 * payload. */
static const char *fmt_bytes(double b, char *buf, size_t len) {
    if (fabs(b - floor(b)) < 1e-9)
        snprintf(buf, len, "%.0f", b);
    else
        snprintf(buf, len, "%.1f", b);
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

static void print_forward_row(const plan_t *p, const plan_op *op) {
    char l[32], in[24], w[32], out[24], comm[96], bytes[96];
    comm_cell(op->comm, op->in_pl, op->need, op->width, comm, sizeof(comm));
    bytes_cell(op->comm, op->width, p->P, bytes, sizeof(bytes));
    printf("%-7s %-22s %-16s %-20s %-16s %-46s %s\n", layer_label(op, l, sizeof(l)), op->name,
           plan_placement_str(op->in_pl, in, sizeof(in)), plan_weight_str(op, w, sizeof(w)),
           plan_placement_str(op->out_pl, out, sizeof(out)), comm, bytes);
}

static void print_backward_row(const plan_t *p, const plan_op *op) {
    char l[32], dy[24], dx[24], comm[96], bytes[96];
    if (op->kind == PLAN_OP_EMBEDDING)
        snprintf(comm, sizeof(comm), "- (ids: no gradient; dW local rows)");
    else
        comm_cell(op->bwd_comm, op->dx_pl, op->dx_need, op->width, comm, sizeof(comm));
    bytes_cell(op->bwd_comm, op->width, p->P, bytes, sizeof(bytes));
    printf("%-7s %-22s %-16s %-16s %-46s %s\n", layer_label(op, l, sizeof(l)), op->name,
           plan_placement_str(op->dy_pl, dy, sizeof(dy)),
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
    printf("%-7s %-22s %-16s %-20s %-16s %-46s %s\n", "layer", "operation", "input", "weight",
           "output", "communication inserted (before the op)", "bytes/token");
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
    printf("%-7s %-22s %-16s %-16s %-46s %s\n", "layer", "operation (transpose)", "grad out",
           "grad in", "communication inserted (after the op)", "bytes/token");
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
    if (o->bias == PLAN_BIAS_AFTER_REDUCE)
        printf("bias on a Partial sum: added once, after the AllReduce, by every rank "
               "(Megatron)\n");
    else
        printf("bias on a Partial sum: added by one rank to its summand; the sum stays Partial "
               "until an operation needs it whole\n");
}

static void print_table(const plan_t *p, int backward) {
    char mlp[48];
    mlp_name(&p->opt, mlp, sizeof(mlp));
    printf("plan: GPT-2, %d layers, %d wide, %d heads, vocab %d; P = %d; attention %s, mlp %s, "
           "bias %s\n\n",
           p->cfg.n_layer, p->cfg.n_embd, p->cfg.n_head, p->cfg.vocab_size, p->P,
           attention_name(&p->opt), mlp, bias_name(p->opt.bias));
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
               "the embedding's rows of wte included)\n",
               p->bwd.weight_grad_reduce);
    }
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
    cJSON_AddNumberToObject(o, "rank_bytes_per_token", plan_comm_rank_bytes(c, op->width, p->P));
    return o;
}

static cJSON *pass_json(const plan_t *p, const plan_totals *t, int backward) {
    cJSON *o = cJSON_CreateObject();
    add_counts(o, "per_layer", t->per_layer);
    add_counts(o, "embedding", t->embed);
    add_counts(o, "head", t->head);
    add_counts(o, "total", t->total);
    cJSON_AddNumberToObject(o, "bytes_per_token", t->bytes_per_token);
    cJSON_AddNumberToObject(o, "bytes_per_token_per_layer", t->layer_bytes_per_token);
    cJSON_AddNumberToObject(o, "rank_bytes_per_token", t->rank_bytes_per_token);
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

static int print_json(const plan_t *p) {
    char mlp[48];
    mlp_name(&p->opt, mlp, sizeof(mlp));
    cJSON *root = cJSON_CreateObject();
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddNumberToObject(model, "n_layer", p->cfg.n_layer);
    cJSON_AddNumberToObject(model, "n_embd", p->cfg.n_embd);
    cJSON_AddNumberToObject(model, "n_head", p->cfg.n_head);
    cJSON_AddNumberToObject(model, "vocab_size", p->cfg.vocab_size);
    cJSON_AddNumberToObject(root, "P", p->P);
    cJSON_AddStringToObject(root, "attention", attention_name(&p->opt));
    cJSON_AddStringToObject(root, "mlp", mlp);
    cJSON_AddStringToObject(root, "bias", bias_name(p->opt.bias));
    cJSON_AddBoolToObject(root, "valid", 1);
    cJSON_AddBoolToObject(root, "layers_identical", p->layers_identical);
    cJSON_AddItemToObject(root, "forward", pass_json(p, &p->fwd, 0));
    cJSON_AddItemToObject(root, "backward", pass_json(p, &p->bwd, 1));
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
    if (model_dir && model_config_load(model_dir, &cfg, err, sizeof(err)))
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
