/* gguf.h — a small, strict reader and an atomic, streaming writer for GGUF (llama.cpp's format).
 *
 * File layout (little-endian; https://github.com/ggml-org/ggml/blob/master/docs/gguf.md):
 *   "GGUF", u32 version, u64 tensor_count, u64 kv_count,
 *   kv_count x { string key, u32 value_type, value },
 *   tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
 *   zero padding to the alignment (metadata key general.alignment, u32, default 32),
 *   the data section: each tensor at data_start + offset, offsets multiples of the alignment.
 * A string is u64 length + bytes (no NUL). A value is one of the gguf_type scalars, a string, or
 * an array: u32 element type, u64 count, count values (arrays may nest).
 *
 * The reader (gguf_open) reads the header (metadata + tensor infos) into memory with pread and
 * validates all of it before returning: magic, version (3; 2 is also accepted: its layout is the
 * same for a little-endian file), counts bounded by the bytes left in the file before anything is
 * allocated, every value type, general.alignment (u32, a power of two), tensor names (1..64
 * bytes, no NUL, unique), keys unique, n_dims 1..4, ne[0] a whole number of blocks, the element
 * count and byte size without overflow, offsets aligned, every tensor inside the file, no two
 * tensors overlapping. A tensor of an unknown ggml type id, or of one ggml has removed, is refused
 * when the file is opened (its size cannot be known); a known type linshard does not compute with
 * (q4_K, iq2_xs, ...) is accepted when opening, so a file can be inspected, and refused by name
 * when the tensor is READ (gguf_read_bytes / gguf_read_rows). Every error is one line naming the
 * file (and the key or tensor) and the problem. Headers over 256 MiB are refused (a 128k-token
 * vocabulary with its merges takes about 10 MB); padding after the last tensor is optional.
 *
 * Tensor data is not read by gguf_open: gguf_read_bytes / gguf_read_rows pread a byte or row range
 * straight into caller memory, so each rank reads only its slice (a read error, not SIGBUS, for a
 * file truncated while open). The model layer (src/model/source.c) also maps the whole file and
 * uses slices stored as they are held where they lie: that mapping is the model's, not this
 * reader's.
 * Reads may run concurrently from several threads on one gguf_file.
 *
 * Dims are in GGUF order: ne[0] is the fastest-varying (a row of a [n_out][n_in] matrix is
 * ne[0] = n_in values); rows are indexed over ne[1] * ne[2] * ne[3]. */
#ifndef LINSHARD_GGUF_H
#define LINSHARD_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GGUF_MAX_DIMS 4
#define GGUF_NAME_MAX 64 /* bytes of a tensor name, per the specification */
#define GGUF_DEFAULT_ALIGNMENT 32

/* Metadata value types (the numbers are the file's). */
typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* The ggml tensor type ids linshard reads (the rest are named by gguf_ggml_type_name). */
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_BF16 = 30,
};

/* "u8", "i32", "f32", "bool", "string", "array", ... ; "unknown" outside the enum. */
const char *gguf_type_name(gguf_type t);
/* ggml's name of a tensor type id ("f32", "q8_0", "q4_K", "iq2_xs", ...), or NULL for an id
 * ggml never had. Ids ggml has removed (4, 5, 31-33, 36-38) have names but no size. */
const char *gguf_ggml_type_name(int id);
/* Values per block and bytes per block of a ggml type id; 0 for unknown or removed ids. */
int gguf_ggml_block_size(int id);
size_t gguf_ggml_block_bytes(int id);
/* 1 for the types linshard reads (F32, F16, BF16, Q8_0, Q4_0), with *kt set; else 0. */
int gguf_ggml_to_kernel(int id, kernel_type *kt);

typedef struct {
    char name[GGUF_NAME_MAX + 1]; /* NUL-terminated */
    int type;                     /* ggml type id */
    int n_dims;                   /* 1..4 */
    uint64_t ne[GGUF_MAX_DIMS];   /* GGUF order, ne[0] fastest; 1 beyond n_dims */
    uint64_t n_elements;
    uint64_t n_rows;    /* ne[1] * ne[2] * ne[3] */
    uint64_t row_bytes; /* bytes of one row of ne[0] values */
    uint64_t n_bytes;   /* n_rows * row_bytes */
    uint64_t offset;    /* absolute byte offset of the tensor's first byte in the file */
} gguf_tensor;

typedef struct gguf_kv gguf_kv; /* one metadata entry (private) */

typedef struct {
    char *path; /* for error messages */
    int fd;
    uint32_t version;
    uint64_t file_size;
    uint32_t alignment;
    uint64_t data_start; /* absolute offset of the data section */
    uint8_t *header;     /* the file's first header_size bytes: keys and values point into it */
    size_t header_size;
    gguf_kv *kv;
    int64_t n_kv;
    int64_t *kv_sorted; /* kv indices sorted by key, for lookups */
    gguf_tensor *tensors;
    int64_t n_tensors;
    int64_t *tensors_sorted; /* tensor indices sorted by name */
} gguf_file;

/* Opens and validates path (see the top of this file). Returns 0, or -1 with a one-line message
 * in err; on failure f is left zeroed (fd -1) and owns nothing. */
int gguf_open(gguf_file *f, const char *path, char *err, size_t errlen);
/* Closes and frees, then zeroes f. Safe on a zeroed gguf_file, after a failed open, and twice. */
void gguf_close(gguf_file *f);

/* ---- metadata ------------------------------------------------------------------------------- */

/* Number of entries, and entry i's key (not NUL-terminated: *len bytes) and type, in file order.
 * The type of an array is GGUF_TYPE_ARRAY. NULL / GGUF_TYPE_COUNT for i out of range. */
int64_t gguf_n_kv(const gguf_file *f);
const char *gguf_kv_key(const gguf_file *f, int64_t i, size_t *len);
gguf_type gguf_kv_type(const gguf_file *f, int64_t i);
/* Index of key, or -1. O(log n_kv). */
int64_t gguf_find_key(const gguf_file *f, const char *key);

/* Typed getters: 0, or -1 with a one-line message in err (err may be NULL) when the key is
 * missing or its value does not convert. Integer getters accept any integer type whose value
 * fits the result; gguf_get_f32 accepts f32 and f64 (rounded). A string is returned as a pointer
 * into the file's header, valid until gguf_close, *len bytes, not NUL-terminated. */
int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len, char *err,
                 size_t errlen);
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, char *err, size_t errlen);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, char *err, size_t errlen);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, char *err, size_t errlen);

/* An array value. Element access is O(1) (strings through an offset table built by gguf_open),
 * so a 128k-entry tokenizer vocabulary is read in O(n). */
typedef struct {
    const gguf_file *file;
    const gguf_kv *kv;
    gguf_type type; /* element type; GGUF_TYPE_ARRAY for an array of arrays */
    uint64_t n;
} gguf_array;

int gguf_get_arr(const gguf_file *f, const char *key, gguf_array *a, char *err, size_t errlen);
/* Element i of a string array: pointer into the header, *len bytes. NULL if i >= n or the array
 * holds no strings. */
const char *gguf_arr_str(const gguf_array *a, uint64_t i, size_t *len);
/* Element i of a numeric array, converted: gguf_arr_i64 takes any integer or bool element (a u64
 * above INT64_MAX fails), gguf_arr_f64 any integer, bool or float element. 0, or -1 if i >= n or
 * the element type does not convert. */
int gguf_arr_i64(const gguf_array *a, uint64_t i, int64_t *out);
int gguf_arr_f64(const gguf_array *a, uint64_t i, double *out);
/* The raw little-endian elements of a scalar array (not aligned: memcpy them), or NULL for an
 * array of strings or arrays. */
const void *gguf_arr_data(const gguf_array *a);

/* ---- tensors -------------------------------------------------------------------------------- */

/* The tensor called name, or NULL. O(log n_tensors). */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Copies bytes [begin, begin + n) of t's data into out with pread. Returns 0, or -1 with a
 * one-line message in err when the range is outside the tensor, t's type is not one linshard
 * reads (the message names it), or the read fails. */
int gguf_read_bytes(const gguf_file *f, const gguf_tensor *t, uint64_t begin, size_t n, void *out,
                    char *err, size_t errlen);
/* Rows [row0, row0 + n_rows) of t (a row is ne[0] values, t->row_bytes bytes), likewise. */
int gguf_read_rows(const gguf_file *f, const gguf_tensor *t, uint64_t row0, uint64_t n_rows,
                   void *out, char *err, size_t errlen);

/* ---- writer --------------------------------------------------------------------------------- */

/* Builds a GGUF v3 file: metadata in the order set, then tensors in the order added, aligned to
 * 32 bytes. Tensor data is not copied: the writer keeps the caller's pointer (which must stay
 * valid until gguf_writer_write) or calls a fill function chunk by chunk while writing, so a large
 * model is never held twice. The file is written atomically (temporary file, fsync, rename).
 * Metadata values: every scalar type, strings, and arrays of scalars or of strings (not arrays of
 * arrays, which the reader accepts but linshard never writes). general.alignment is the writer's.
 * Setters and adders return 0, or -1 with a one-line message in err (bad argument, duplicate key
 * or name, out of memory); after a failure the writer stays usable without the refused item. */
typedef struct gguf_writer gguf_writer;

/* Fills out with the n bytes of the tensor's data starting at byte begin; 0, or -1 to fail. */
typedef int (*gguf_fill_fn)(void *user, uint64_t begin, size_t n, void *out);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

/* A scalar of type t (any but STRING and ARRAY): value holds the little-endian bytes of that
 * type (e.g. a uint32_t for GGUF_TYPE_UINT32; a bool is one byte, 0 or 1). */
int gguf_writer_set(gguf_writer *w, const char *key, gguf_type t, const void *value, char *err,
                    size_t errlen);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, char *err, size_t errlen);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v, char *err, size_t errlen);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t len, char *err,
                        size_t errlen);
/* An array of n scalars of type t (not STRING or ARRAY), packed little-endian in data. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type t, const void *data, uint64_t n,
                        char *err, size_t errlen);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const size_t *lens, uint64_t n, char *err, size_t errlen);
/* A tensor of ggml type id type (any type with a known size), ne[0..n_dims) in GGUF order;
 * ne[0] must be a whole number of blocks. data: the tensor's bytes, or NULL with fill set. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims,
                           const uint64_t *ne, const void *data, gguf_fill_fn fill, void *user,
                           char *err, size_t errlen);
/* Writes path atomically. Returns 0, or -1 with a one-line message in err. */
int gguf_writer_write(const gguf_writer *w, const char *path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
