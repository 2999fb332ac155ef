/* gpt2_init.c — seeded random GPT-2 checkpoints in the Hugging Face layout (see gpt2.h). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "linshard/gpt2.h"

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

typedef struct {
    st_write_tensor *list;
    int n, cap;
    rng_t rng;
    const gpt2_init_opts *opts;
    int failed;
} builder;

/* Adds a tensor filled with mean + std * N(0, 1). */
static const float *add(builder *b, const char *name, int ndim, int64_t d0, int64_t d1, float mean,
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
    snprintf(full, ST_NAME_MAX, "%s%s", b->opts->prefix ? "transformer." : "", name);
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

int gpt2_init_random(const char *dir, const gpt2_config *cfg, const gpt2_init_opts *opts, char *err,
                     size_t errlen) {
    if (gpt2_config_check(cfg, err, errlen)) return -1;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    int64_t E = cfg->n_embd, L = cfg->n_layer;
    builder b = {.cap = 8 + 16 * (int)L, .rng = {opts->seed}, .opts = opts};
    b.list = calloc((size_t)b.cap, sizeof(st_write_tensor));
    if (!b.list) b.failed = 1;
    const float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (float)L);
    const float *wte = add(&b, "wte.weight", 2, cfg->vocab_size, E, 0, std);
    add(&b, "wpe.weight", 2, cfg->n_positions, E, 0, 0.01f);
    char name[64];
    for (int l = 0; l < L; l++) {
#define ADD(suffix, ndim, d0, d1, mean, sd)                                                        \
    (snprintf(name, sizeof(name), "h.%d.%s", l, suffix), add(&b, name, ndim, d0, d1, mean, sd))
        ADD("ln_1.weight", 1, E, 0, 1.0f, 0.1f);
        ADD("ln_1.bias", 1, E, 0, 0.0f, 0.1f);
        ADD("attn.c_attn.weight", 2, E, 3 * E, 0, std);
        ADD("attn.c_attn.bias", 1, 3 * E, 0, 0, std);
        ADD("attn.c_proj.weight", 2, E, E, 0, proj_std);
        ADD("attn.c_proj.bias", 1, E, 0, 0, std);
        ADD("ln_2.weight", 1, E, 0, 1.0f, 0.1f);
        ADD("ln_2.bias", 1, E, 0, 0.0f, 0.1f);
        ADD("mlp.c_fc.weight", 2, E, 4 * E, 0, std);
        ADD("mlp.c_fc.bias", 1, 4 * E, 0, 0, std);
        ADD("mlp.c_proj.weight", 2, 4 * E, E, 0, proj_std);
        ADD("mlp.c_proj.bias", 1, E, 0, 0, std);
        if (opts->hf_extras) {
            /* Real checkpoints carry the causal-mask buffers; their values are irrelevant. */
            ADD("attn.bias", 2, cfg->n_positions, cfg->n_positions, 1.0f, 0.0f);
            ADD("attn.masked_bias", 1, 1, 0, -1e4f, 0.0f);
        }
#undef ADD
    }
    add(&b, "ln_f.weight", 1, E, 0, 1.0f, 0.1f);
    add(&b, "ln_f.bias", 1, E, 0, 0.0f, 0.1f);
    if (opts->hf_extras && !b.failed) {
        /* A tied LM head, saved beside the embedding it equals. */
        float *copy = (float *)add(&b, "lm_head.weight", 2, cfg->vocab_size, E, 0, 0);
        if (copy) memcpy(copy, wte, (size_t)cfg->vocab_size * (size_t)E * sizeof(float));
        if (copy && opts->prefix)
            snprintf((char *)b.list[b.n - 1].name, ST_NAME_MAX, "lm_head.weight");
    }
    int rc = -1;
    if (b.failed) {
        snprintf(err, errlen, "out of memory building a random model");
    } else {
        char path[4096];
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        rc = st_write(path, b.list, b.n, err, errlen);
        if (!rc) rc = gpt2_config_save(dir, cfg, err, errlen);
    }
    for (int i = 0; i < b.n; i++) {
        free((void *)b.list[i].name);
        free((void *)b.list[i].data);
    }
    free(b.list);
    return rc;
}
