/* model_source.h — where a model's config and weights come from: a Hugging Face directory
 * (config.json + safetensors, one file or sharded), one GGUF file, or a safetensors image already
 * in memory (the program's built-in model). Open it once; every rank then loads its own slices
 * from it (model_source_load), holding the matrices as any weight type. */
#ifndef LINSHARD_MODEL_SOURCE_H
#define LINSHARD_MODEL_SOURCE_H

#include "linshard/gguf.h"
#include "linshard/model.h"
#include "linshard/safetensors_set.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int is_gguf;
    st_set st;      /* safetensors (is_gguf = 0) */
    gguf_file gguf; /* GGUF (is_gguf = 1) */
    model_config cfg;
    const unsigned char *map; /* GGUF: the whole file mapped read-only, or NULL */
    model_keep *keep;         /* the memory shards may use in place (model.h), or NULL */
} model_source;

/* Opens path: a directory (Hugging Face layout) or a .gguf file. Reads the config and checks that
 * every tensor it implies is there with the right shape. Returns 0, or -1 with a one-line message
 * in err (nothing left open). The files are mapped read-only; shards loaded from the source may
 * point into the mappings (model_source_load), each holding a reference on them (model_keep), so
 * the source may be closed before its shards are freed: the last one unmaps. */
int model_source_open(model_source *s, const char *path, char *err, size_t errlen);
/* A model whose config.json text and model.safetensors image are in memory (read in place);
 * name is for messages. The shards loaded from it use its matrices in place where they can, and
 * nothing can extend the life of the caller's memory: the image must outlive s and every shard
 * loaded from s (the program's built-in model is static, so it always does). */
int model_source_open_memory(model_source *s, const char *config_json, size_t config_len,
                             const void *safetensors, size_t safetensors_len, const char *name,
                             char *err, size_t errlen);
void model_source_close(model_source *s);

/* The type the source stores the model's matrices as: what "hold the weights as stored" means. */
kernel_type model_source_stored_type(const model_source *s);

/* Rank `rank` of P's shard from the source, matrices held as wtype (model_shard_load_as). A
 * matrix already stored as wtype, whose slice is whole contiguous [out, in] rows, is used in
 * place (model_shard.keep, mapped_bytes); the rest is copied (as bytes when the type is the
 * same). */
int model_source_load(const model_source *s, model_shard *m, int rank, int P, int max_T,
                      kernel_type wtype, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
