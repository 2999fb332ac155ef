/* init.c — seeded random checkpoints of any family, in its Hugging Face layout (model.h),
 * tensor by tensor as the parameter table lists them. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "linshard/model.h"
#include "linshard/params.h"

/* splitmix64 + Box-Muller: small, seedable, identical on every platform. */
typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(rng_t *r) {
    return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static float rng_normal(rng_t *r) {
    return (float)(sqrt(-2.0 * log(rng_uniform(r))) * cos(6.283185307179586 * rng_uniform(r)));
}

/* The checkpoint's tensors in the order the parameter table first names them, each full size,
 * filled with mean + std * N(0, 1) of the parameter it feeds. */
typedef struct {
    st_write_tensor *list;
    int n, cap;
    rng_t rng;
    const model_init_opts *opts;
    int failed;
} builder;

static int have(const builder *b, const char *name) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->list[i].name, name)) return 1;
    return 0;
}

/* Adds a tensor called name of shape [d0, d1] (d1 = 0: 1-D) filled with mean + std * N(0, 1). */
static float *add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, float mean,
                  float std) {
    if (b->failed) return NULL;
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    float *data = malloc((n ? n : 1) * sizeof(float));
    char *full = malloc(ST_NAME_MAX);
    if (!data || !full || b->n == b->cap) {
        free(data);
        free(full);
        b->failed = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) data[i] = mean + std * rng_normal(&b->rng);
    snprintf(full, ST_NAME_MAX, "%s", name);
    st_write_tensor *t = &b->list[b->n++];
    memset(t, 0, sizeof(*t));
    t->name = full;
    t->dtype = b->opts->dtype;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
    return data;
}

int model_init_random(const char *dir, const model_config *cfg, const model_init_opts *opts,
                      char *err, size_t errlen) {
    if (model_config_check(cfg, err, errlen)) return -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    int max = model_param_table_max(cfg);
    model_param *table = malloc((size_t)max * sizeof(*table));
    builder b = {.cap = 3 * max + 8, .rng = {opts->seed}, .opts = opts};
    b.list = calloc((size_t)b.cap, sizeof(st_write_tensor));
    if (!b.list || !table) b.failed = 1;
    int n = b.failed ? 0 : model_param_table(cfg, 1, 0, table, NULL);
    int gpt2 = cfg->family == FAMILY_GPT2, layer = -1;
    char name[ST_NAME_MAX];
    for (int i = 0; i < n && !b.failed; i++) {
        for (int j = 0; j < table[i].n_src; j++) {
            const param_source *s = &table[i].src[j];
            if (gpt2 && opts->prefix)
                model_save_name(cfg, s->name, name, sizeof(name));
            else
                snprintf(name, sizeof(name), "%s", s->name);
            if (!have(&b, name))
                add(&b, name, s->ndim, s->shape[0], s->shape[1], table[i].init_mean,
                    table[i].init_std);
        }
        /* Real GPT-2 checkpoints carry each layer's causal-mask buffers (values irrelevant),
         * written after the layer's last tensor as save_pretrained does. */
        int l = -1;
        if (sscanf(table[i].name, "layers.%d.", &l) == 1) layer = l;
        int last_of_layer =
            layer >= 0 &&
            (i + 1 == n || sscanf(table[i + 1].name, "layers.%d.", &l) != 1 || l != layer);
        if (gpt2 && opts->hf_extras && last_of_layer) {
            snprintf(name, sizeof(name), "%sh.%d.attn.bias", opts->prefix ? "transformer." : "",
                     layer);
            add(&b, name, 2, cfg->n_positions, cfg->n_positions, 1.0f, 0.0f);
            snprintf(name, sizeof(name), "%sh.%d.attn.masked_bias",
                     opts->prefix ? "transformer." : "", layer);
            add(&b, name, 1, 1, 0, -1e4f, 0.0f);
            layer = -1;
        }
    }
    if (gpt2 && opts->hf_extras && cfg->tied && !b.failed) {
        /* A tied LM head, saved beside the embedding it equals. */
        const float *wte = b.list[0].data;
        float *copy = add(&b, "lm_head.weight", 2, cfg->vocab_size, cfg->n_embd, 0, 0);
        if (copy) memcpy(copy, wte, (size_t)cfg->vocab_size * (size_t)cfg->n_embd * sizeof(float));
    }
    int rc = -1;
    if (b.failed) {
        snprintf(err, errlen, "out of memory building a random model");
    } else {
        char path[4096];
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        rc = opts->shard_bytes ? st_write_sharded(dir, b.list, b.n, opts->shard_bytes, err, errlen)
                               : st_write(path, b.list, b.n, err, errlen);
        if (!rc) rc = model_config_save(dir, cfg, err, errlen);
    }
    for (int i = 0; i < b.n; i++) {
        free((void *)b.list[i].name);
        free((void *)b.list[i].data);
    }
    free(b.list);
    free(table);
    return rc;
}
