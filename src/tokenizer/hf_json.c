/* hf_json.c — Hugging Face tokenizer.json (and tokenizer_config.json) for BPE models: GPT-2,
 * Llama 3, Qwen2/Qwen3 (byte-level) and Llama 2 / Mistral (SentencePiece-style).
 *
 * A tokenizer.json is a pipeline of named parts. Rather than interpret any pipeline, this file
 * recognises the ones these models ship and refuses anything else with a one-line message
 * naming the part, so that an unknown file never tokenizes quietly differently:
 *   normalizer     none; NFC; Sequence[Prepend("▁"), Replace(" " → "▁")] (SentencePiece)
 *   pre_tokenizer  ByteLevel (GPT-2's regex); Sequence[Split(a known regex, Isolated),
 *                  ByteLevel(use_regex false)]; Metaspace("▁"); null (with the SentencePiece
 *                  normalizer); absent (older files that only hold the model: GPT-2)
 *   model          BPE with vocab and merges; byte_fallback, unk_token, fuse_unk, ignore_merges
 *   decoder        only read for SentencePiece: Strip(" ", 1) or Metaspace drop one leading
 *                  space (byte-level decoding needs nothing from it)
 *   added_tokens   matched in the raw text, longest first; lstrip/rstrip swallow ASCII
 *                  whitespace; "normalized" is not looked at (every real file has it false, and
 *                  for NFC it only matters to tokens that are not themselves in NFC);
 *                  single_word is refused.
 * tokenizer_config.json gives bos_token, eos_token and add_bos_token (see tokenizer.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tokenizer_internal.h"

#define META "\xe2\x96\x81" /* ▁ */
#define TOKENIZER_MAX_IDS (1 << 24)

static const cJSON *item(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *str_item(const cJSON *obj, const char *key) {
    return cJSON_GetStringValue(item(obj, key));
}

/* A boolean member: 1, 0, or dflt when absent or null. */
static int bool_item(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = item(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *type_of(const cJSON *obj) {
    const char *s = str_item(obj, "type");
    return s ? s : "(no type)";
}

/* What the parts of the pipeline say, before the tables are built. */
typedef struct {
    int sp_prepend_normalizer, sp_replace, metaspace, byte_level;
} pipeline;

static int read_normalizer(tokenizer *t, pipeline *pl, const cJSON *n, const char *name, char *err,
                           size_t errlen) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = type_of(n);
    if (!strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = item(n, "normalizers");
        if (!cJSON_IsArray(list)) {
            snprintf(err, errlen, "%s: normalizer Sequence without a \"normalizers\" list", name);
            return -1;
        }
        for (const cJSON *e = list->child; e; e = e->next)
            if (read_normalizer(t, pl, e, name, err, errlen)) return -1;
        return 0;
    }
    const char *prepend = str_item(n, "prepend");
    if (!strcmp(type, "Prepend") && prepend && !strcmp(prepend, META)) {
        pl->sp_prepend_normalizer = 1;
        return 0;
    }
    const char *from = str_item(item(n, "pattern"), "String"), *to = str_item(n, "content");
    if (!strcmp(type, "Replace") && from && to && !strcmp(from, " ") && !strcmp(to, META)) {
        pl->sp_replace = 1;
        return 0;
    }
    snprintf(err, errlen,
             "%s: normalizer %s is not supported (only NFC and SentencePiece's Prepend(\"▁\") + "
             "Replace(\" \", \"▁\"))",
             name, type);
    return -1;
}

static int read_pre_tokenizer(tokenizer *t, pipeline *pl, const cJSON *p, int in_sequence,
                              const char *name, char *err, size_t errlen) {
    const char *type = type_of(p);
    if (!strcmp(type, "ByteLevel")) {
        if (bool_item(p, "add_prefix_space", 0)) {
            snprintf(err, errlen,
                     "%s: pre_tokenizer ByteLevel with add_prefix_space is not "
                     "supported",
                     name);
            return -1;
        }
        int use_regex = bool_item(p, "use_regex", 1);
        if (use_regex == in_sequence) {
            snprintf(err, errlen,
                     in_sequence ? "%s: pre_tokenizer ByteLevel with use_regex after a Split (two "
                                   "patterns) is not supported"
                                 : "%s: pre_tokenizer ByteLevel without use_regex and no Split "
                                   "is not supported",
                     name);
            return -1;
        }
        if (use_regex) t->pattern = PATTERN_GPT2;
        pl->byte_level = 1;
        return 0;
    }
    if (!strcmp(type, "Split") && in_sequence) {
        const char *re = str_item(item(p, "pattern"), "Regex"), *behavior = str_item(p, "behavior");
        int pattern = re ? pretokenize_pattern_of(re) : -1;
        if (pattern < 0) {
            snprintf(err, errlen,
                     "%s: pre_tokenizer Split pattern \"%.120s\" is not one linshard knows "
                     "(GPT-2's, Llama 3's, Qwen2's)",
                     name, re ? re : "(not a Regex)");
            return -1;
        }
        if (!behavior || strcmp(behavior, "Isolated") || bool_item(p, "invert", 0)) {
            snprintf(err, errlen, "%s: pre_tokenizer Split is not Isolated and not inverted", name);
            return -1;
        }
        t->pattern = pattern;
        return 0;
    }
    if (!strcmp(type, "Sequence") && !in_sequence) {
        const cJSON *list = item(p, "pretokenizers");
        int n = cJSON_GetArraySize(list);
        if (!cJSON_IsArray(list) || n < 1 || n > 2 ||
            (n == 2 && strcmp(type_of(list->child), "Split"))) {
            snprintf(err, errlen,
                     "%s: pre_tokenizer Sequence is not [Split, ByteLevel] or [ByteLevel]", name);
            return -1;
        }
        for (const cJSON *e = list->child; e; e = e->next)
            if (read_pre_tokenizer(t, pl, e, n == 2, name, err, errlen)) return -1;
        if (!pl->byte_level) {
            snprintf(err, errlen, "%s: pre_tokenizer Sequence has no ByteLevel", name);
            return -1;
        }
        return 0;
    }
    const char *rep = str_item(p, "replacement");
    if (!strcmp(type, "Metaspace") && !in_sequence && rep && !strcmp(rep, META)) {
        const char *scheme = str_item(p, "prepend_scheme");
        if (!scheme) scheme = bool_item(p, "add_prefix_space", 1) ? "always" : "never";
        if (!strcmp(scheme, "always"))
            t->sp_prepend = SP_PREPEND_UNLESS_THERE;
        else if (!strcmp(scheme, "first"))
            t->sp_prepend = SP_PREPEND_FIRST;
        else if (!strcmp(scheme, "never"))
            t->sp_prepend = SP_PREPEND_NEVER;
        else {
            snprintf(err, errlen, "%s: pre_tokenizer Metaspace prepend_scheme \"%s\" is unknown",
                     name, scheme);
            return -1;
        }
        t->sp_split = bool_item(p, "split", 1);
        pl->metaspace = 1;
        return 0;
    }
    snprintf(err, errlen, "%s: pre_tokenizer %s is not supported", name, type);
    return -1;
}

/* Whether a SentencePiece decoder drops one leading space: Strip(" ", start 1) in it, or a
 * Metaspace decoder that prepends. */
static int decoder_strips(const cJSON *d) {
    const char *type = type_of(d);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = item(d, "decoders");
        for (const cJSON *e = list ? list->child : NULL; e; e = e->next)
            if (decoder_strips(e)) return 1;
        return 0;
    }
    if (!strcmp(type, "Strip")) {
        const char *content = str_item(d, "content");
        return content && !strcmp(content, " ") && cJSON_GetNumberValue(item(d, "start")) >= 1;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *scheme = str_item(d, "prepend_scheme");
        return scheme ? strcmp(scheme, "never") != 0 : bool_item(d, "add_prefix_space", 1);
    }
    return 0;
}

/* The family and its settings from the pipeline's parts. */
static int read_pipeline(tokenizer *t, const cJSON *root, const cJSON *model, const char *name,
                         char *err, size_t errlen) {
    pipeline pl = {0, 0, 0, 0};
    if (read_normalizer(t, &pl, item(root, "normalizer"), name, err, errlen)) return -1;
    const cJSON *pre = item(root, "pre_tokenizer");
    int sp_normalizer = pl.sp_prepend_normalizer || pl.sp_replace;
    if (sp_normalizer && !pl.sp_replace) {
        snprintf(err, errlen, "%s: normalizer Prepend(\"▁\") without Replace(\" \", \"▁\")", name);
        return -1;
    }
    if (!pre) {
        if (sp_normalizer) {
            snprintf(err, errlen, "%s: no pre_tokenizer (null is expected with this normalizer)",
                     name);
            return -1;
        }
        t->pattern = PATTERN_GPT2; /* a file holding only the model (older linshard tests) */
    } else if (cJSON_IsNull(pre)) {
        if (!sp_normalizer) {
            snprintf(err, errlen, "%s: pre_tokenizer is null without SentencePiece's normalizer",
                     name);
            return -1;
        }
    } else if (read_pre_tokenizer(t, &pl, pre, 0, name, err, errlen)) {
        return -1;
    }
    if (sp_normalizer && pl.metaspace) {
        snprintf(err, errlen, "%s: both a SentencePiece normalizer and a Metaspace pre_tokenizer",
                 name);
        return -1;
    }
    if (sp_normalizer || pl.metaspace) {
        t->family = FAMILY_SENTENCEPIECE;
        if (sp_normalizer) t->sp_prepend = pl.sp_prepend_normalizer ? SP_PREPEND_ALWAYS : 0;
        if (t->nfc) {
            snprintf(err, errlen, "%s: NFC with SentencePiece is not supported", name);
            return -1;
        }
        t->sp_strip = decoder_strips(item(root, "decoder"));
        t->byte_fallback = bool_item(model, "byte_fallback", 0);
        t->fuse_unk = bool_item(model, "fuse_unk", 0);
    }
    t->ignore_merges = bool_item(model, "ignore_merges", 0);
    static const char *const unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = str_item(model, unsupported[i]);
        if (v && *v) {
            snprintf(err, errlen, "%s: model.%s \"%s\" is not supported", name, unsupported[i], v);
            return -1;
        }
    }
    double dropout = cJSON_GetNumberValue(item(model, "dropout"));
    if (cJSON_IsNumber(item(model, "dropout")) && dropout > 0) {
        snprintf(err, errlen, "%s: model.dropout is not supported", name);
        return -1;
    }
    return 0;
}

/* An id in a JSON number: an integer in 0 .. INT_MAX/2, or -1. */
static int json_id(const cJSON *v) {
    double d = cJSON_GetNumberValue(v);
    if (!cJSON_IsNumber(v) || d < 0 || d > INT_MAX / 2 || d != (double)(int)d) return -1;
    return (int)d;
}

/* The vocabulary and added tokens: the number of ids and the bytes their spellings take. */
static int count_ids(const cJSON *vocab, const cJSON *added, int *n_slots, size_t *pool_bytes,
                     const char *name, char *err, size_t errlen) {
    int max = -1;
    size_t bytes = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int id = json_id(e);
        if (id < 0) {
            snprintf(err, errlen, "%s: token \"%.40s\": its id is not a non-negative integer", name,
                     e->string);
            return -1;
        }
        if (id > max) max = id;
        bytes += strlen(e->string);
    }
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next) {
        int id = json_id(item(e, "id"));
        const char *content = str_item(e, "content");
        if (id < 0 || !content) {
            snprintf(err, errlen, "%s: added_tokens: an entry without an integer id and content",
                     name);
            return -1;
        }
        if (id > max) max = id;
        bytes += strlen(content);
    }
    if (max < 0) {
        snprintf(err, errlen, "%s: the vocabulary is empty", name);
        return -1;
    }
    /* Every id up to the largest gets a slot: a single huge id would allocate gigabytes. The
     * largest real vocabularies have a few hundred thousand tokens; a model's vocab_size must be
     * below 2^24 too (model_config_check). */
    if (max >= TOKENIZER_MAX_IDS) {
        snprintf(err, errlen, "%s: token id %d is too large (ids must be below %d)", name, max,
                 TOKENIZER_MAX_IDS);
        return -1;
    }
    *n_slots = max + 1;
    *pool_bytes = bytes;
    return 0;
}

static int load_added(tokenizer *t, const cJSON *added, const char *name, char *err,
                      size_t errlen) {
    if (!added) {
        /* older files without the list: GPT-2's end of text is still special */
        int eot = vocab_find(t, "<|endoftext|>", 13);
        return eot >= 0
                   ? tokenizer_add_token(t, eot, "<|endoftext|>", 13, 1, 0, 0, name, err, errlen)
                   : 0;
    }
    if (!cJSON_IsArray(added)) {
        snprintf(err, errlen, "%s: added_tokens is not a list", name);
        return -1;
    }
    for (const cJSON *e = added->child; e; e = e->next) {
        int id = json_id(item(e, "id"));
        const char *content = str_item(e, "content");
        if (bool_item(e, "single_word", 0)) {
            snprintf(err, errlen, "%s: added token %d \"%.40s\" is single_word (not supported)",
                     name, id, content);
            return -1;
        }
        if (tokenizer_add_token(t, id, content, strlen(content), bool_item(e, "special", 0),
                                bool_item(e, "lstrip", 0), bool_item(e, "rstrip", 0), name, err,
                                errlen))
            return -1;
    }
    return 0;
}

/* A token named in tokenizer_config.json: "text" or {"content": "text"}; NULL if none. */
static const char *config_token(const cJSON *config, const char *key) {
    const cJSON *v = item(config, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return str_item(v, "content");
}

/* The id of a special token named by the post-processor's template, or -1. */
static int template_first_special(const tokenizer *t, const cJSON *pp) {
    const char *type = type_of(pp);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = item(pp, "processors");
        for (const cJSON *e = list ? list->child : NULL; e; e = e->next) {
            int id = template_first_special(t, e);
            if (id >= 0) return id;
        }
        return -1;
    }
    const cJSON *single = item(pp, "single");
    if (strcmp(type, "TemplateProcessing") || !cJSON_IsArray(single) || !single->child) return -1;
    const char *tok = str_item(item(single->child, "SpecialToken"), "id");
    return tok ? tokenizer_find(t, tok, strlen(tok)) : -1;
}

static int read_config(tokenizer *t, const cJSON *root, const cJSON *config,
                       const char *config_name, char *err, size_t errlen) {
    static const char *const keys[2] = {"bos_token", "eos_token"};
    int *ids[2] = {&t->bos, &t->eos};
    for (int k = 0; k < 2 && config; k++) {
        const char *s = config_token(config, keys[k]);
        if (!s) continue;
        if ((*ids[k] = tokenizer_find(t, s, strlen(s))) < 0) {
            snprintf(err, errlen, "%s: %s \"%.40s\" is not a token", config_name, keys[k], s);
            return -1;
        }
    }
    if (!config) t->eos = tokenizer_find(t, "<|endoftext|>", 13);
    int first = template_first_special(t, item(root, "post_processor"));
    if (config && cJSON_IsBool(item(config, "add_bos_token"))) {
        t->adds_bos = bool_item(config, "add_bos_token", 0);
    } else if (first >= 0) {
        t->adds_bos = 1;
        if (t->bos < 0) t->bos = first;
    } else {
        t->adds_bos = t->bos >= 0;
    }
    if (t->adds_bos && t->bos < 0) t->adds_bos = 0;
    return tokenizer_find_stops(t, err, errlen);
}

int tokenizer_find_stops(tokenizer *t, char *err, size_t errlen) {
    /* the end-of-turn tokens of instruct models stop generation too */
    static const char *const stops[] = {"<|eot_id|>", "<|eom_id|>",    "<|end_of_text|>",
                                        "<|im_end|>", "<|endoftext|>", "</s>"};
    free(t->stop);
    t->n_stop = 0;
    t->stop = malloc(sizeof(stops) / sizeof(stops[0]) * sizeof(int));
    if (!t->stop) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
        for (int k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->special && (size_t)a->len == strlen(stops[i]) &&
                !memcmp(t->pool + t->tok_off[a->id], stops[i], (size_t)a->len))
                t->stop[t->n_stop++] = a->id;
        }
    return 0;
}

int tokenizer_load_hf(tokenizer **out, const char *json, size_t len, const char *name,
                      const char *config_text, size_t config_len, const char *config_name,
                      char *err, size_t errlen) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len), *config = NULL;
    tokenizer *t = NULL;
    int rc = -1;
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON", name);
        return -1;
    }
    const cJSON *model = item(root, "model");
    const cJSON *type = item(model, "type");
    const cJSON *vocab = item(model, "vocab");
    const cJSON *added = item(root, "added_tokens");
    int n_slots = 0;
    size_t pool_bytes = 0;
    if (!cJSON_IsObject(model)) {
        snprintf(err, errlen, "%s: no \"model\" object", name);
    } else if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE"))) {
        snprintf(err, errlen, "%s: model.type is %s, not BPE", name,
                 cJSON_IsString(type) ? type->valuestring : "not a string");
    } else if (!vocab) {
        snprintf(err, errlen, "%s: model.vocab is missing", name);
    } else if (!cJSON_IsObject(vocab)) {
        snprintf(err, errlen, "%s: the vocabulary is not a JSON object", name);
    } else if (!(t = tokenizer_new())) {
        snprintf(err, errlen, "out of memory");
    } else if (config_text && !(config = cJSON_ParseWithLength(config_text, config_len))) {
        snprintf(err, errlen, "%s: not valid JSON", config_name);
    } else if (!read_pipeline(t, root, model, name, err, errlen) &&
               !count_ids(vocab, cJSON_IsArray(added) ? added : NULL, &n_slots, &pool_bytes, name,
                          err, errlen) &&
               !tokenizer_alloc(t, n_slots, pool_bytes, name, err, errlen)) {
        int spell = t->family == FAMILY_SENTENCEPIECE ? SPELL_UTF8 : SPELL_BYTE_ALPHABET;
        rc = tokenizer_load_vocab(t, vocab, spell, name, err, errlen) ||
             tokenizer_find_bytes(t, name, err, errlen) ||
             tokenizer_load_merges_json(t, item(model, "merges"), spell, name, err, errlen) ||
             load_added(t, added, name, err, errlen);
        const char *unk = str_item(model, "unk_token");
        if (!rc && unk && (t->unk = vocab_find(t, unk, strlen(unk))) < 0) {
            snprintf(err, errlen, "%s: model.unk_token \"%.40s\" is not in the vocabulary", name,
                     unk);
            rc = -1;
        }
        if (!rc && t->family == FAMILY_SENTENCEPIECE) {
            /* A character with no piece becomes its bytes' <0xNN> tokens when they all exist,
             * else the unknown token: without one, every byte needs its token. */
            int missing = -1;
            for (int b = 0; b < 256 && t->unk < 0 && missing < 0; b++)
                if (t->byte_id[b] < 0) missing = b;
            if (t->unk < 0 && !t->byte_fallback) {
                snprintf(err, errlen, "%s: neither byte_fallback nor an unk_token", name);
                rc = -1;
            } else if (missing >= 0) {
                snprintf(err, errlen,
                         "%s: byte_fallback without an unk_token needs all 256 <0xNN> tokens "
                         "(<0x%02X> is missing)",
                         name, missing);
                rc = -1;
            } else {
                rc = sp_build_decoded(t, name, err, errlen);
            }
        }
        if (!rc) {
            tokenizer_finish_added(t);
            tokenizer_finish(t);
            t->heap_always = !t->heap_ok;
            rc = read_config(t, root, config, config_name, err, errlen);
        }
    }
    cJSON_Delete(root);
    cJSON_Delete(config);
    if (rc) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
