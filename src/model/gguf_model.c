/* gguf_model.c — a transformer in one GGUF file (see model_gguf.h): its config from the
 * metadata, a rank's slices through the parameter table under llama.cpp's names, and writing a
 * Hugging Face checkpoint as GGUF. */
#include "linshard/model_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "architecture.h"
#include "linshard/params.h"

int model_path_is_gguf(const char *path) {
    size_t n = path ? strlen(path) : 0;
    if (n >= 5 && !strcmp(path + n - 5, ".gguf")) return 1;
    FILE *f = path ? fopen(path, "rb") : NULL;
    char magic[4] = {0};
    int is = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    return is;
}

/* ---- the config ------------------------------------------------------------------------------ */

/* arch.key as u32 into *out; absent: *out = fallback when fallback >= 0, else an error. */
static int get_u32(const gguf_file *g, const char *arch, const char *key, int fallback, int *out,
                   char *err, size_t errlen) {
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    uint32_t v;
    if (gguf_find_key(g, full) < 0 && fallback >= 0) {
        *out = fallback;
        return 0;
    }
    if (gguf_get_u32(g, full, &v, err, errlen)) return -1;
    if (v < 1 || v > (1u << 30)) {
        snprintf(err, errlen, "%s: key '%s' = %u is out of range", g->path, full, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int get_f32(const gguf_file *g, const char *arch, const char *key, float fallback,
                   float *out, char *err, size_t errlen) {
    char full[128];
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    if (gguf_find_key(g, full) < 0) {
        *out = fallback;
        return 0;
    }
    return gguf_get_f32(g, full, out, err, errlen);
}

static int has_tensor(const gguf_file *g, const char *name) {
    return gguf_find_tensor(g, name) != NULL;
}

/* llama.cpp's form of Llama 3's RoPE scaling: rope_freqs.weight, F32 [head_dim / 2], each
 * frequency divided by its entry. */
static int read_rope_freqs(const gguf_file *g, model_config *cfg, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return 0;
    int half = cfg->head_dim / 2;
    if (t->n_dims != 1 || t->ne[0] != (uint64_t)half || t->type != GGML_TYPE_F32 ||
        half > ROPE_MAX_FACTORS) {
        snprintf(err, errlen, "%s: tensor 'rope_freqs.weight' must be f32 [head_dim / 2 = %d]",
                 g->path, half);
        return -1;
    }
    float *f = cfg->rope_scaling.freq_factors;
    if (gguf_read_bytes(g, t, 0, (size_t)half * sizeof(float), f, err, errlen)) return -1;
    for (int i = 0; i < half; i++)
        if (!(f[i] > 0 && isfinite(f[i]))) {
            snprintf(err, errlen, "%s: tensor 'rope_freqs.weight' holds %g: must be positive",
                     g->path, (double)f[i]);
            return -1;
        }
    cfg->rope_scaling.kind = ROPE_SCALING_FACTORS;
    return 0;
}

int model_config_from_gguf(const gguf_file *g, model_config *cfg, char *err, size_t errlen) {
    const char *a;
    size_t alen;
    if (gguf_get_str(g, "general.architecture", &a, &alen, err, errlen)) return -1;
    char arch[32];
    if (alen == 0 || alen >= sizeof(arch) || memchr(a, '\0', alen)) {
        snprintf(err, errlen, "%s: general.architecture is not a name linshard knows", g->path);
        return -1;
    }
    memcpy(arch, a, alen);
    arch[alen] = '\0';
    int family = architecture_gguf_family(arch);
    if (family < 0) {
        snprintf(err, errlen,
                 "%s: general.architecture '%.*s' is not one linshard runs (gpt2, llama, qwen2, "
                 "qwen3)",
                 g->path, (int)(alen < 40 ? alen : 40), a);
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20) *p = '?';
        return -1;
    }
    char key[128];
    const char *refused[] = {"expert_count", "rope.scaling.type", "attention.sliding_window"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(key, sizeof(key), "%s.%s", arch, refused[i]);
        const char *v;
        size_t vlen;
        int none = i == 1 && !gguf_get_str(g, key, &v, &vlen, NULL, 0) && vlen == 4 &&
                   !memcmp(v, "none", 4);
        if (gguf_find_key(g, key) >= 0 && !none) {
            snprintf(err, errlen, "%s: key '%s': linshard does not run this yet", g->path, key);
            return -1;
        }
    }
    const gguf_tensor *embd = gguf_find_tensor(g, "token_embd.weight");
    if (!embd || embd->n_dims != 2 || embd->ne[1] > (1u << 30)) {
        snprintf(err, errlen, "%s: tensor 'token_embd.weight' [n_embd, vocab] is missing", g->path);
        return -1;
    }
    int L, E, H, KV, ctx, ff, D;
    float eps, theta;
    if (get_u32(g, arch, "block_count", -1, &L, err, errlen) ||
        get_u32(g, arch, "embedding_length", -1, &E, err, errlen) ||
        get_u32(g, arch, "attention.head_count", -1, &H, err, errlen) ||
        get_u32(g, arch, "attention.head_count_kv", H, &KV, err, errlen) ||
        get_u32(g, arch, "context_length", -1, &ctx, err, errlen) ||
        get_u32(g, arch, "feed_forward_length", -1, &ff, err, errlen) ||
        get_u32(g, arch, "attention.key_length", E / H, &D, err, errlen))
        return -1;
    int V = (int)embd->ne[1];
    if (family == FAMILY_GPT2) {
        if (get_f32(g, arch, "attention.layer_norm_epsilon", 1e-5f, &eps, err, errlen)) return -1;
        *cfg = model_config_gpt2(L, E, H, V, ctx, GELU_TANH);
        cfg->n_ff = ff;
    } else {
        if (get_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &eps, err, errlen) ||
            get_f32(g, arch, "rope.freq_base", family == FAMILY_LLAMA ? 1e4f : 1e6f, &theta, err,
                    errlen))
            return -1;
        *cfg = model_config_llama((model_family)family, L, E, H, KV, D, ff, V, ctx);
        cfg->rope_theta = theta;
        cfg->qkv_bias = has_tensor(g, "blk.0.attn_q.bias");
        cfg->out_bias = has_tensor(g, "blk.0.attn_output.bias");
        cfg->mlp_bias = has_tensor(g, "blk.0.ffn_up.bias");
        cfg->qk_norm = has_tensor(g, "blk.0.attn_q_norm.weight");
        if (read_rope_freqs(g, cfg, err, errlen)) return -1;
    }
    cfg->norm_eps = eps;
    cfg->tied = !has_tensor(g, "output.weight");
    char why[256];
    if (model_config_check(cfg, why, sizeof(why))) {
        snprintf(err, errlen, "%s: %s", g->path, why);
        return -1;
    }
    return 0;
}

kernel_type model_gguf_matrix_type(const model_config *cfg, const gguf_file *g) {
    const gguf_tensor *t = gguf_find_tensor(g, "blk.0.attn_output.weight");
    kernel_type k = KERNEL_F32;
    (void)cfg;
    if (!t || !gguf_ggml_to_kernel(t->type, &k)) return KERNEL_F32;
    return k;
}

/* ---- reading a rank's slices ----------------------------------------------------------------- */

typedef struct {
    const gguf_file *g;
    const model_shard *m;
    unsigned char *buf; /* raw bytes of the run being read */
    size_t cap;
    const unsigned char *map; /* the whole file mapped, or NULL (then read with pread) */
} gguf_reader;

static const void *gguf_find_source(void *ctx, const param_source *s, char *name, size_t namelen,
                                    char *err, size_t errlen) {
    gguf_reader *r = ctx;
    const gguf_tensor *t = gguf_find_tensor(r->g, s->name);
    snprintf(name, namelen, "%s", s->name);
    if (!t) {
        snprintf(err, errlen, "%s: missing tensor '%s'", r->g->path, s->name);
        return NULL;
    }
    /* Stored [shape0, shape1] row-major is GGUF's ne = [shape1, shape0]. */
    int ok = s->ndim == 1 ? t->n_dims == 1 && t->ne[0] == (uint64_t)s->shape[0]
                          : t->n_dims == 2 && t->ne[1] == (uint64_t)s->shape[0] &&
                                t->ne[0] == (uint64_t)s->shape[1];
    kernel_type k;
    if (!ok) {
        snprintf(err, errlen, "%s: tensor '%s' does not have the shape the config implies",
                 r->g->path, s->name);
        return NULL;
    }
    if (!gguf_ggml_to_kernel(t->type, &k)) {
        snprintf(err, errlen, "%s: tensor '%s' is %s: linshard reads f32, f16, bf16, q8_0, q4_0",
                 r->g->path, s->name, gguf_ggml_type_name(t->type));
        return NULL;
    }
    return t;
}

/* Elements [start, start + count) of a row, widened to F32. Splits fall on blocks, so a run of a
 * block type starts and ends on a block boundary (or the row's end). */
static int gguf_read_run(void *ctx, const void *tensor, size_t start, size_t count, float *out,
                         char *err, size_t errlen) {
    gguf_reader *r = ctx;
    const gguf_tensor *t = tensor;
    kernel_type k;
    gguf_ggml_to_kernel(t->type, &k);
    const kernel_type_traits *tr = kernel_type_info(k);
    size_t cols = (size_t)t->ne[0], row = start / cols, c0 = start % cols, blk = (size_t)tr->block;
    if (c0 + count > cols || c0 % blk || count % blk) {
        snprintf(err, errlen, "%s: tensor '%s': a slice [%zu, %zu) of a row is not whole blocks",
                 r->g->path, t->name, c0, c0 + count);
        return -1;
    }
    size_t bytes = count / blk * tr->block_bytes;
    if (bytes > r->cap) {
        unsigned char *grown = realloc(r->buf, bytes);
        if (!grown) {
            snprintf(err, errlen, "out of memory reading '%s'", t->name);
            return -1;
        }
        r->buf = grown;
        r->cap = bytes;
    }
    uint64_t begin = (uint64_t)row * t->row_bytes + c0 / blk * tr->block_bytes;
    if (gguf_read_bytes(r->g, t, begin, bytes, r->buf, err, errlen)) return -1;
    tr->to_f32(r->buf, out, count);
    return 0;
}

/* A 2-D tensor's bytes in the mapped file. */
static int gguf_stored(void *ctx, const void *tensor, model_stored_bytes *out) {
    const gguf_reader *r = ctx;
    const gguf_tensor *t = tensor;
    kernel_type k;
    if (!r->map || t->n_dims != 2 || !gguf_ggml_to_kernel(t->type, &k) ||
        t->offset + t->n_bytes > r->g->file_size)
        return 0;
    out->data = r->map + t->offset;
    out->type = k;
    out->row_bytes = (size_t)t->row_bytes;
    return 1;
}

/* llama.cpp's permutation of a head's D outputs: its output 2i + s is Hugging Face's s D/2 + i
 * (s = 0, 1; i < D/2). permute() in convert_hf_to_gguf.py. */
static size_t hf_index(size_t gguf_index, size_t D) {
    return gguf_index % 2 * (D / 2) + gguf_index / 2;
}

/* In place on the columns [c0, c0 + heads D) of a [rows, cols] block: each head's columns from
 * GGUF order to Hugging Face order. */
static void permute_heads(float *x, size_t rows, size_t cols, size_t c0, size_t heads, size_t D,
                          float *tmp) {
    for (size_t r = 0; r < rows; r++)
        for (size_t h = 0; h < heads; h++) {
            float *v = x + r * cols + c0 + h * D;
            for (size_t j = 0; j < D; j++) tmp[hf_index(j, D)] = v[j];
            memcpy(v, tmp, D * sizeof(float));
        }
}

/* Before writing: rows [outputs][in] (a Q or K weight, or a bias with in = 1) from Hugging Face
 * order to llama.cpp's, each head's rows moved whole: GGUF row j of a head is HF row
 * hf_index(j). Replaces *rows; -1 when out of memory. */
static int permute_rows(float **rows, size_t outputs, size_t in, size_t D) {
    float *out = malloc(outputs * in * sizeof(float));
    if (!out) return -1;
    for (size_t r = 0; r < outputs; r++) {
        size_t head = r / D * D;
        memcpy(out + r * in, *rows + (head + hf_index(r - head, D)) * in, in * sizeof(float));
    }
    free(*rows);
    *rows = out;
    return 0;
}

/* After reading: a permuted family's Q and K outputs back to Hugging Face order. The QKV
 * parameter (and its bias) holds this rank's query heads, then its K/V heads, then V. */
static void unpermute(void *ctx, const model_param *p, float *data) {
    const gguf_reader *r = ctx;
    const model_shard *m = r->m;
    size_t len = strlen(p->name);
    int w = len > 6 && !strcmp(p->name + len - 6, ".qkv_w"),
        b = len > 6 && !strcmp(p->name + len - 6, ".qkv_b");
    if (!architecture_gguf(m->cfg.family)->qk_permuted || (!w && !b)) return;
    size_t D = (size_t)m->cfg.head_dim, hl = (size_t)m->heads.h_local;
    size_t kv = (size_t)(m->heads.kv_local ? m->heads.kv_local : m->heads.h_local);
    float *tmp = malloc(D * sizeof(float));
    if (!tmp) return; /* D floats; the caller just held rows * cols */
    permute_heads(data, p->rows, p->cols, 0, hl, D, tmp);
    permute_heads(data, p->rows, p->cols, hl * D, kv, D, tmp);
    free(tmp);
}

/* unpermute on a matrix held as stored: [N][row_bytes] output rows, each head's D rows moved
 * whole (GGUF row j of a head is Hugging Face row hf_index(j)). rows NULL: whether p is one. */
static int unpermute_rows(void *ctx, const model_param *p, unsigned char *rows, size_t row_bytes) {
    const gguf_reader *r = ctx;
    const model_shard *m = r->m;
    size_t len = strlen(p->name);
    if (!architecture_gguf(m->cfg.family)->qk_permuted || len <= 6 ||
        strcmp(p->name + len - 6, ".qkv_w"))
        return 0;
    if (!rows) return 1;
    size_t D = (size_t)m->cfg.head_dim, hl = (size_t)m->heads.h_local;
    size_t kv = (size_t)(m->heads.kv_local ? m->heads.kv_local : m->heads.h_local);
    unsigned char *tmp = malloc(D * row_bytes);
    if (!tmp) return 1; /* one head's rows; the caller just held the whole matrix */
    for (size_t h = 0; h < hl + kv; h++) { /* the Q heads, then the K heads: rows [0, (hl+kv) D) */
        unsigned char *head = rows + h * D * row_bytes;
        for (size_t j = 0; j < D; j++)
            memcpy(tmp + hf_index(j, D) * row_bytes, head + j * row_bytes, row_bytes);
        memcpy(head, tmp, D * row_bytes);
    }
    free(tmp);
    return 1;
}

int model_check_weights_gguf(const model_config *cfg, const gguf_file *g, char *err,
                             size_t errlen) {
    int max = model_param_table_max(cfg), rc = 0;
    model_param *table = malloc((size_t)max * sizeof(*table));
    if (!table) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = model_param_table_gguf(cfg, table);
    gguf_reader ctx = {g, NULL, NULL, 0, NULL};
    char name[96];
    for (int i = 0; i < n && !rc; i++)
        for (int k = 0; k < table[i].n_src && !rc; k++)
            if (!gguf_find_source(&ctx, &table[i].src[k], name, sizeof(name), err, errlen)) rc = -1;
    free(table);
    return rc;
}

int model_shard_load_gguf(model_shard *m, const model_config *cfg, const gguf_file *g, int rank,
                          int P, int max_T, kernel_type wtype, char *err, size_t errlen) {
    return model_shard_load_gguf_mapped(m, cfg, g, NULL, NULL, rank, P, max_T, wtype, err, errlen);
}

int model_shard_load_gguf_mapped(model_shard *m, const model_config *cfg, const gguf_file *g,
                                 const unsigned char *map, model_keep *keep, int rank, int P,
                                 int max_T, kernel_type wtype, char *err, size_t errlen) {
    /* The file's blocks bound the splits too: a Q8_0 file held as F32 is still read in blocks. */
    kernel_type stored = model_gguf_matrix_type(cfg, g);
    if (model_check_weight_type(cfg, stored, err, errlen)) return -1;
    int block = kernel_type_info(stored)->block;
    if (kernel_type_info(wtype)->block > block) block = kernel_type_info(wtype)->block;
    if (model_shard_setup(m, cfg, rank, P, max_T, wtype, 1, block, err, errlen)) return -1;
    gguf_reader ctx = {g, m, NULL, 0, map};
    model_weight_reader rd = {gguf_find_source, gguf_read_run,  &ctx,
                              gguf_stored,      unpermute_rows, map ? keep : NULL};
    int rc = model_shard_read(m, &rd, unpermute, &ctx, err, errlen);
    free(ctx.buf);
    if (rc) model_shard_free(m);
    return rc;
}

/* ---- writing --------------------------------------------------------------------------------- */

/* One tensor to write: read whole from the safetensors checkpoint, laid out as GGUF stores it
 * ([out, in] rows), converted to its type when the file is written. */
typedef struct {
    char name[96];
    int type; /* ggml type id */
    int n_dims;
    uint64_t ne[2];
    float *f32; /* [ne[1]][ne[0]] */
    kernel_type kt;
} out_tensor;

static int fill_tensor(void *user, uint64_t begin, size_t n, void *out) {
    const out_tensor *t = user;
    const kernel_type_traits *tr = kernel_type_info(t->kt);
    size_t row_bytes = kernel_row_bytes(t->kt, (size_t)t->ne[0]);
    /* The writer asks for byte ranges; convert whole rows and copy the part asked for. */
    unsigned char *row = malloc(row_bytes);
    if (!row) return -1;
    unsigned char *dst = out;
    while (n > 0) {
        size_t r = (size_t)(begin / row_bytes), off = (size_t)(begin % row_bytes);
        size_t take = row_bytes - off < n ? row_bytes - off : n;
        tr->from_f32(t->f32 + r * (size_t)t->ne[0], row, (size_t)t->ne[0]);
        memcpy(dst, row + off, take);
        dst += take;
        begin += take;
        n -= take;
    }
    free(row);
    return 0;
}

static int ggml_id(kernel_type k) {
    static const int ids[KERNEL_TYPE_COUNT] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
                                               GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    return ids[k];
}

/* The metadata llama.cpp reads for the family. */
static int write_metadata(gguf_writer *w, const model_config *c, kernel_type wtype, char *err,
                          size_t errlen) {
    const char *arch = architecture_gguf(c->family)->architecture;
    char key[128];
    int rc = gguf_writer_set_str(w, "general.architecture", arch, strlen(arch), err, errlen) ||
             gguf_writer_set_str(w, "general.name", "linshard", 8, err, errlen);
    /* general.file_type: llama.cpp's LLAMA_FTYPE of the "mostly" type. */
    static const uint32_t ftype[KERNEL_TYPE_COUNT] = {0, 1, 32, 7, 2};
    rc = rc || gguf_writer_set_u32(w, "general.file_type", ftype[wtype], err, errlen);
    struct {
        const char *k;
        int v;
    } u[] = {{"context_length", c->n_positions},
             {"embedding_length", c->n_embd},
             {"block_count", c->n_layer},
             {"feed_forward_length", c->n_ff},
             {"attention.head_count", c->n_head},
             {"attention.head_count_kv", c->n_kv_head},
             {"attention.key_length", c->head_dim},
             {"attention.value_length", c->head_dim},
             {"vocab_size", c->vocab_size},
             {"rope.dimension_count", c->learned_pos ? 0 : c->head_dim}};
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]) && !rc; i++) {
        if (!u[i].v) continue;
        snprintf(key, sizeof(key), "%s.%s", arch, u[i].k);
        rc = gguf_writer_set_u32(w, key, (uint32_t)u[i].v, err, errlen);
    }
    snprintf(key, sizeof(key), "%s.attention.%s", arch,
             c->norm == NORM_LAYERNORM ? "layer_norm_epsilon" : "layer_norm_rms_epsilon");
    rc = rc || gguf_writer_set_f32(w, key, c->norm_eps, err, errlen);
    if (!c->learned_pos && !rc) {
        snprintf(key, sizeof(key), "%s.rope.freq_base", arch);
        rc = gguf_writer_set_f32(w, key, (float)c->rope_theta, err, errlen);
    }
    return rc ? -1 : 0;
}

int model_write_gguf(const char *path, const model_config *c, const st_set *weights,
                     kernel_type wtype, char *err, size_t errlen) {
    return model_write_gguf_tokenizer(path, c, weights, wtype, NULL, NULL, err, errlen);
}

int model_write_gguf_tokenizer(const char *path, const model_config *c, const st_set *weights,
                               kernel_type wtype, const tokenizer *tok, const char *chat_template,
                               char *err, size_t errlen) {
    if (model_check_weight_type(c, wtype, err, errlen)) return -1;
    if (tok && tokenizer_vocab_size(tok) > c->vocab_size) {
        snprintf(err, errlen,
                 "the tokenizer has %d tokens, more than the model's vocabulary of %d: not a "
                 "pair to write into one file",
                 tokenizer_vocab_size(tok), c->vocab_size);
        return -1;
    }
    int max = model_param_table_max(c), rc = 0, n_out = 0;
    model_param *hf = malloc((size_t)max * sizeof(*hf)), *gg = malloc((size_t)max * sizeof(*gg));
    out_tensor *outs = calloc((size_t)max * 3 + 1, sizeof(*outs));
    gguf_writer *w = gguf_writer_new();
    if (!hf || !gg || !outs || !w) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto done;
    }
    int n = model_param_table(c, 1, 0, hf, NULL);
    model_param_table_gguf(c, gg);
    rc = write_metadata(w, c, wtype, err, errlen);
    /* The tokenizer, one token per embedding row (llama.cpp's n_vocab is the token count). */
    if (!rc && tok) rc = tokenizer_write_gguf(tok, w, c->vocab_size, err, errlen);
    if (!rc && chat_template)
        rc = gguf_writer_set_str(w, "tokenizer.chat_template", chat_template, strlen(chat_template),
                                 err, errlen);
    const architecture *ga = architecture_gguf(c->family);
    for (int i = 0; i < n && !rc; i++)
        for (int k = 0; k < hf[i].n_src && !rc; k++) {
            const param_source *s = &hf[i].src[k], *sg = &gg[i].src[k];
            int seen = 0;
            for (int j = 0; j < n_out; j++) seen |= !strcmp(outs[j].name, sg->name);
            if (seen) continue; /* GPT-2's fused c_attn: three blocks of one tensor */
            const st_file *file;
            const st_tensor *t = model_find_tensor(c, weights, "", s->name, &file);
            if (!t) {
                snprintf(err, errlen, "missing tensor '%s'", s->name);
                rc = -1;
                break;
            }
            out_tensor *o = &outs[n_out++];
            snprintf(o->name, sizeof(o->name), "%s", sg->name);
            size_t numel = t->numel;
            float *data = malloc(numel * sizeof(float));
            o->f32 = data;
            if (!data || st_read_f32(file, t, 0, numel, data)) {
                snprintf(err, errlen, "cannot read tensor '%s'", t->name);
                rc = -1;
                break;
            }
            /* GGUF stores a projection [out, in]; GPT-2's Conv1D is [in, out]. */
            if (s->ndim == 2 && sg->transposed && !s->transposed) {
                size_t R = (size_t)s->shape[0], C = (size_t)s->shape[1];
                float *tr = malloc(numel * sizeof(float));
                if (!tr) {
                    snprintf(err, errlen, "out of memory");
                    rc = -1;
                    break;
                }
                for (size_t a = 0; a < R; a++)
                    for (size_t b = 0; b < C; b++) tr[b * R + a] = data[a * C + b];
                free(data);
                o->f32 = data = tr;
            }
            o->n_dims = s->ndim;
            o->ne[0] = sg->ndim == 2 ? (uint64_t)sg->shape[1] : (uint64_t)sg->shape[0];
            o->ne[1] = sg->ndim == 2 ? (uint64_t)sg->shape[0] : 1;
            /* llama.cpp's Q/K row order (its RoPE pairs adjacent values). */
            if (ga->qk_permuted && (strstr(o->name, ".attn_q.") || strstr(o->name, ".attn_k."))) {
                size_t outputs = o->n_dims == 2 ? (size_t)o->ne[1] : (size_t)o->ne[0];
                size_t in = o->n_dims == 2 ? (size_t)o->ne[0] : 1;
                if (permute_rows(&o->f32, outputs, in, (size_t)c->head_dim)) {
                    snprintf(err, errlen, "out of memory");
                    rc = -1;
                    break;
                }
                data = o->f32;
            }
            /* Matrices as wtype; norms, biases and learned positions as F32 (as llama.cpp). */
            int matrix = hf[i].matrix && o->n_dims == 2;
            o->kt = matrix ? wtype : KERNEL_F32;
            o->type = ggml_id(o->kt);
            rc = gguf_writer_add_tensor(w, o->name, o->type, o->n_dims, o->ne, NULL, fill_tensor, o,
                                        err, errlen);
        }
    if (!rc && c->rope_scaling.kind != ROPE_SCALING_NONE) {
        /* RoPE scaling as llama.cpp stores it: a divisor per frequency. */
        out_tensor *o = &outs[n_out++];
        int half = c->head_dim / 2;
        snprintf(o->name, sizeof(o->name), "rope_freqs.weight");
        o->f32 = malloc((size_t)half * sizeof(float));
        if (!o->f32 || half > ROPE_MAX_FACTORS) {
            snprintf(err, errlen, "cannot write rope_freqs for head_dim %d", c->head_dim);
            rc = -1;
        } else {
            if (c->rope_scaling.kind == ROPE_SCALING_LLAMA3)
                rope_llama3_factors(&c->rope_scaling, c->rope_theta, c->head_dim, o->f32);
            else
                memcpy(o->f32, c->rope_scaling.freq_factors, (size_t)half * sizeof(float));
            o->n_dims = 1;
            o->ne[0] = (uint64_t)half;
            o->ne[1] = 1;
            o->kt = KERNEL_F32;
            o->type = GGML_TYPE_F32;
            rc = gguf_writer_add_tensor(w, o->name, o->type, 1, o->ne, NULL, fill_tensor, o, err,
                                        errlen);
        }
    }
    if (!rc) rc = gguf_writer_write(w, path, err, errlen);
done:
    for (int j = 0; outs && j < n_out; j++) free(outs[j].f32);
    free(outs);
    free(hf);
    free(gg);
    gguf_writer_free(w);
    return rc ? -1 : 0;
}
