/* gpt2_config.c — GPT-2's config.json (Hugging Face layout): read, check, write. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/atomic_file.h"
#include "linshard/gpt2.h"

#define CONFIG_MAX_BYTES (1 << 20)

static char *read_small_file(const char *path, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(CONFIG_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, CONFIG_MAX_BYTES + 1, fp) : 0;
    int bad = ferror(fp);
    fclose(fp);
    if (!text || bad || n > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path,
                 !text ? "out of memory"
                 : bad ? "read error"
                       : "larger than 1 MiB");
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* A required positive integer field (alt: an accepted older name, may be NULL). */
static int get_int(const cJSON *root, const char *key, const char *alt, int *out, const char *path,
                   char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(root, alt);
    if (!v) {
        snprintf(err, errlen, "%s: missing \"%s\"", path, key);
        return -1;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valuedouble < 1 ||
        v->valuedouble > 1e8) {
        snprintf(err, errlen, "%s: \"%s\" must be a positive integer", path, key);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

int gpt2_config_load(const char *dir, gpt2_config *cfg, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    char *text = read_small_file(path, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: not a JSON object (malformed JSON)", path);
        cJSON_Delete(root);
        return -1;
    }
    memset(cfg, 0, sizeof(*cfg));
    int rc = get_int(root, "n_layer", NULL, &cfg->n_layer, path, err, errlen);
    if (!rc) rc = get_int(root, "n_embd", NULL, &cfg->n_embd, path, err, errlen);
    if (!rc) rc = get_int(root, "n_head", NULL, &cfg->n_head, path, err, errlen);
    if (!rc) rc = get_int(root, "vocab_size", NULL, &cfg->vocab_size, path, err, errlen);
    if (!rc) rc = get_int(root, "n_positions", "n_ctx", &cfg->n_positions, path, err, errlen);
    if (!rc) {
        const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
        cfg->layer_norm_epsilon = 1e-5f;
        if (eps && (!cJSON_IsNumber(eps) || eps->valuedouble <= 0 || eps->valuedouble > 1)) {
            snprintf(err, errlen, "%s: \"layer_norm_epsilon\" must be a number in (0, 1]", path);
            rc = -1;
        } else if (eps) {
            cfg->layer_norm_epsilon = (float)eps->valuedouble;
        }
    }
    if (!rc) {
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
        const char *name = cJSON_IsString(act) ? act->valuestring : (act ? "" : "gelu_new");
        if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) {
            cfg->activation = GELU_TANH;
        } else if (!strcmp(name, "gelu")) {
            cfg->activation = GELU_ERF;
        } else {
            snprintf(err, errlen,
                     "%s: unsupported \"activation_function\" '%s' (expected gelu_new or gelu)",
                     path, name);
            rc = -1;
        }
    }
    /* Variants of GPT-2's attention that linshard does not implement: refuse, never guess. */
    if (!rc &&
        (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_weights")) ||
         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "scale_attn_by_inverse_layer_idx")))) {
        snprintf(err, errlen,
                 "%s: unsupported attention scaling (scale_attn_weights must be "
                 "true and scale_attn_by_inverse_layer_idx false)",
                 path);
        rc = -1;
    }
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    if (!rc && inner && !cJSON_IsNull(inner) &&
        !(cJSON_IsNumber(inner) && inner->valuedouble == 4.0 * cfg->n_embd)) {
        snprintf(err, errlen, "%s: \"n_inner\" other than 4 * n_embd is not supported", path);
        rc = -1;
    }
    cJSON_Delete(root);
    if (!rc) {
        char why[256];
        if (gpt2_config_check(cfg, why, sizeof(why))) {
            snprintf(err, errlen, "%s: %s", path, why);
            rc = -1;
        }
    }
    return rc;
}

int gpt2_config_check(const gpt2_config *cfg, char *err, size_t errlen) {
    if (cfg->n_layer < 1 || cfg->n_embd < 1 || cfg->n_head < 1 || cfg->vocab_size < 1 ||
        cfg->n_positions < 1) {
        snprintf(err, errlen, "n_layer, n_embd, n_head, vocab_size and n_positions must be >= 1");
        return -1;
    }
    if (cfg->n_embd % cfg->n_head != 0) {
        snprintf(err, errlen, "n_embd %d is not divisible by n_head %d", cfg->n_embd, cfg->n_head);
        return -1;
    }
    if (cfg->vocab_size >= (1 << 24)) {
        snprintf(err, errlen, "vocab_size %d is too large (token ids must fit a float exactly)",
                 cfg->vocab_size);
        return -1;
    }
    return 0;
}

int gpt2_config_check_tp(const gpt2_config *cfg, int P, char *err, size_t errlen) {
    if (P < 1) {
        snprintf(err, errlen, "tensor-parallel size must be at least 1 (got %d)", P);
        return -1;
    }
    if (P > cfg->n_head) {
        snprintf(err, errlen,
                 "cannot split a model with %d attention heads over %d ranks: every rank needs "
                 "at least one head (use --tp %d or less)",
                 cfg->n_head, P, cfg->n_head);
        return -1;
    }
    return 0;
}

int gpt2_config_save(const char *dir, const gpt2_config *cfg, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    return gpt2_config_write(path, cfg, err, errlen);
}

int gpt2_config_write(const char *path, const gpt2_config *cfg, char *err, size_t errlen) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(root, "model_type", "gpt2");
    cJSON_AddStringToObject(root, "activation_function",
                            cfg->activation == GELU_ERF ? "gelu" : "gelu_new");
    cJSON_AddNumberToObject(root, "layer_norm_epsilon", cfg->layer_norm_epsilon);
    cJSON_AddNumberToObject(root, "n_ctx", cfg->n_positions);
    cJSON_AddNumberToObject(root, "n_embd", cfg->n_embd);
    cJSON_AddNumberToObject(root, "n_head", cfg->n_head);
    cJSON_AddNullToObject(root, "n_inner");
    cJSON_AddNumberToObject(root, "n_layer", cfg->n_layer);
    cJSON_AddNumberToObject(root, "n_positions", cfg->n_positions);
    cJSON_AddNumberToObject(root, "vocab_size", cfg->vocab_size);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", 1);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "config.json: out of memory");
        return -1;
    }
    int rc = atomic_file_write(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}
