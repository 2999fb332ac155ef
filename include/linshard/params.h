/* params.h — the parameter table: the one list of a rank's tensors.
 *
 * model_param_table(cfg, P, r) lists, in buffer order, every tensor rank r of P holds: its
 * local shape, whether it is a slice (different on every rank) or replicated, whether AdamW
 * decays it, how it is initialised, and the blocks of checkpoint tensors it is made of. Every
 * consumer walks this list and nothing else: the views into the shard's buffer (model.c), loading
 * a rank's slices and checking a checkpoint (params.c), random init (init.c), the training
 * segments (train.c), and rebuilding full tensors for a checkpoint (checkpoint.c).
 *
 * Internally every weight is [in, out] (y = x · W). A parameter is made of 1 to 3 source blocks:
 * a rectangle of a checkpoint tensor, in that internal orientation, copied into a band of the
 * parameter's columns. So GPT-2's fused c_attn [E, 3E] gives a rank's QKV weight three blocks
 * (its heads' columns of Q, of K, of V), and Llama's q_proj, k_proj, v_proj (stored [out, in],
 * "transposed") give the same parameter one block each. */
#ifndef LINSHARD_PARAMS_H
#define LINSHARD_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/gguf.h"
#include "linshard/kernels.h"
#include "linshard/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[96];         /* the checkpoint tensor, as the family names it */
    int ndim;              /* 1 or 2 */
    int64_t shape[2];      /* its full shape, as stored */
    int transposed;        /* stored [out, in] (nn.Linear); internal is [in, out] */
    size_t r0, nr, c0, nc; /* the block, internal orientation (1-D tensors: one row) */
    size_t dst_col;        /* the block's first column in the parameter's rows */
} param_source;

struct model_param {
    char name[48];     /* internal name, "layers.0.qkv_w": for messages */
    float **view;      /* the shard's pointer to this tensor (NULL: table of another rank) */
    size_t rows, cols; /* local shape; 1-D tensors have rows = 1 */
    size_t offset;     /* floats from the start of the rank's buffer (F32 tensors) */
    /* A matrix the kernels multiply by (or, the embedding, read rows of): kview is the shard's
     * kernel_weight for it. Internal rows are its inputs (K = rows, N = cols), except out_rows
     * tensors (the embedding and the LM head: [vocab, E]) whose rows are outputs. Stored as
     * `type`: F32 in the float buffer (kview a view of *view), or any other type in the typed
     * buffer at byte_offset, as [N][K] rows of blocks (then *view stays NULL). */
    int matrix, out_rows;
    kernel_type type;
    kernel_weight *kview;
    size_t byte_offset;
    int sharded; /* a slice: differs across ranks (else replicated: same bits on all) */
    int decay;   /* AdamW's weight decay applies (2-D weights) */
    float init_mean, init_std;
    int n_src;
    param_source src[3];
};

/* Entries model_param_table can return for cfg (an upper bound, for allocation). */
int model_param_table_max(const model_config *cfg);

/* Fills table (model_param_table_max entries) for rank r of P; returns the count. With m, each
 * entry's view points at the matching field of m (m->layers must be allocated). */
int model_param_table(const model_config *cfg, int P, int r, model_param *table, model_shard *m);

/* The whole model's table (P = 1) with the tensors named as a GGUF file names them (same
 * entries, same order as model_param_table's); no views. Returns the count. */
int model_param_table_gguf(const model_config *cfg, model_param *table);

/* Floats of a rank's float buffer: the sum of rows * cols of its F32 tensors. */
size_t model_param_table_floats(const model_param *table, int n);
/* Bytes of a rank's typed buffer: the matrices stored as another type. */
size_t model_param_table_typed_bytes(const model_param *table, int n);

/* Converts a matrix parameter read as F32 (src: rows * cols floats in the table's internal
 * orientation) into its kernel type's [N][K] rows at dst (kernel_row_bytes(type, K) * N bytes).
 * Returns 0, or -1 when out of memory. */
int model_param_store_typed(const model_param *p, const float *src, void *dst);

/* The checkpoint tensor prefix + name in weights (GPT-2: also prefix + "transformer." + name,
 * tried first), or NULL. prefix is "" for weights, "m." / "v." for the optimiser's moments. */
const st_tensor *model_find_tensor(const model_config *cfg, const st_set *weights,
                                   const char *prefix, const char *name, const st_file **file);

/* Name under which a checkpoint that linshard writes stores the tensor (GPT-2: with the
 * "transformer." prefix, as GPT2LMHeadModel.save_pretrained does). */
void model_save_name(const model_config *cfg, const char *name, char *out, size_t len);

/* The type a checkpoint stores its matrices as (F16, BF16 or F32; F32 when they differ): what
 * "keep the weights as stored" holds them as. */
int model_stored_matrix_type(const model_config *cfg, const st_set *weights);

/* Reads every source block of p from weights into dst (the parameter's rows * cols floats).
 * Returns 0, or -1 with a message naming the tensor. */
int model_param_read(const model_config *cfg, const model_param *p, const st_set *weights,
                     const char *prefix, float *dst, char *err, size_t errlen);

/* Where model_param_read_with gets a checkpoint's tensors (safetensors, GGUF): find resolves a
 * source block's tensor (checking its stored shape; name receives the tensor's name as stored)
 * and returns a handle, or NULL with a message; read copies elements [start, start + count) of
 * the stored tensor (flat, row-major; never crossing a row) as float32, 0 or -1 with a message. */
typedef struct {
    const unsigned char *data; /* the tensor's first byte: rows of row_bytes, row-major */
    kernel_type type;          /* the type it is stored as */
    size_t row_bytes;          /* bytes of one stored row (shape[1] values; 1-D: the whole) */
} model_stored_bytes;

typedef struct {
    const void *(*find)(void *ctx, const param_source *s, char *name, size_t namelen, char *err,
                        size_t errlen);
    int (*read)(void *ctx, const void *tensor, size_t start, size_t count, float *out, char *err,
                size_t errlen);
    void *ctx;
    /* Optional: the stored bytes of a tensor find returned, when they are in memory (returns 1
     * and fills *out; 0: read it through `read`). A matrix stored as the type it is held as is
     * then copied as bytes (rows, or a 16-bit transpose of an [in, out] F16/BF16 tensor), never
     * through F32 -- or used in place, when keep is set. */
    int (*stored)(void *ctx, const void *tensor, model_stored_bytes *out);
    /* Optional, with `stored`: p's N output rows ([N][row_bytes] at rows) reordered as the
     * shard read's `after` hook reorders its F32 columns. rows NULL asks whether p is one it
     * reorders (1) or not (0); a reordered matrix is copied, never used in place. Without this
     * hook, a read with an `after` hook takes every matrix through F32. */
    int (*permute_rows)(void *ctx, const model_param *p, unsigned char *rows, size_t row_bytes);
    /* The memory `stored` points into, when a shard may keep pointers into it: the shard then
     * takes a reference (model_keep_retain) for as long as it uses it. NULL: always copy. */
    model_keep *keep;
} model_weight_reader;

/* model_param_read through any reader; every value read is checked finite. */
int model_param_read_with(const model_param *p, const model_weight_reader *rd, float *dst,
                          char *err, size_t errlen);

/* The reader of a safetensors set (model_param_read's): tensors prefix + name, GPT-2's with or
 * without "transformer.". ctx must outlive the returned reader. Its `stored` gives the mapped
 * bytes of F32/F16/BF16 tensors; keep is NULL (set it to let shards use them in place). */
typedef struct {
    const model_config *cfg;
    const st_set *weights;
    const char *prefix;
    const st_file *file; /* the file of the tensor found last */
} model_st_reader;
model_weight_reader model_st_reader_init(model_st_reader *ctx, const model_config *cfg,
                                         const st_set *weights, const char *prefix);

/* Loading in two steps, for readers of other formats (gguf_model.c): model_shard_setup sizes
 * the shard and its buffers for rank r of P with matrices held as wtype (gguf_names: the table
 * names tensors as llama.cpp does; split_block: the MLP split's granularity, 0 for wtype's
 * block); model_shard_read then reads every parameter through rd,
 * calling after(after_ctx, p, data) on each one's F32 data (internal orientation) before it is
 * stored. Both return 0, or -1 with a message; after a failed read, free the shard.
 *
 * A matrix held as the type it is stored as (rd->stored) is checked finite on its stored bytes
 * (F16/BF16 values, Q8_0/Q4_0 block scales) and either used in place (rd->keep set, its slice
 * whole contiguous [out, in] rows, the bytes 2-byte aligned for the 16-bit and block types, no
 * row reordering) or copied as bytes. F32 matrices are always copied into the shard's float
 * buffer, [in, out] (what training updates), so a trainable shard never holds mapped memory. */
int model_shard_setup(model_shard *m, const model_config *cfg, int rank, int P, int max_T,
                      kernel_type wtype, int gguf_names, int split_block, char *err, size_t errlen);
int model_shard_read(model_shard *m, const model_weight_reader *rd,
                     void (*after)(void *ctx, const model_param *p, float *data), void *after_ctx,
                     char *err, size_t errlen);

/* Copies a rank's parameter src (rows * cols floats) into the full tensor of source s as stored
 * (full holds shape[0] * shape[1] floats): the inverse of reading. */
void model_param_place(const param_source *s, const model_param *p, const float *src, float *full);

/* model_shard_load_as with a keep on the memory weights lives in (model_source.c): the shard may
 * use matrices in place, holding a reference on keep. */
int model_shard_load_kept(model_shard *m, const model_config *cfg, const st_set *weights,
                          model_keep *keep, int rank, int P, int max_T, kernel_type wtype,
                          char *err, size_t errlen);
/* model_shard_load_gguf with the file's bytes mapped at map (the whole file; NULL: read with
 * pread) and a keep on that mapping. */
int model_shard_load_gguf_mapped(model_shard *m, const model_config *cfg, const gguf_file *g,
                                 const unsigned char *map, model_keep *keep, int rank, int P,
                                 int max_T, kernel_type wtype, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
