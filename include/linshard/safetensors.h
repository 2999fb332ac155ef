/* safetensors.h — a small, strict reader and an atomic writer for the safetensors format.
 *
 * File layout: 8 bytes little-endian u64 N = header length; N bytes of JSON: an object whose
 * keys are tensor names (plus an optional "__metadata__" object of string values) and whose
 * values are {"dtype": "F32"|"F16"|"BF16", "shape": [d0, d1, ...], "data_offsets": [begin, end]};
 * then the data section. Offsets are relative to the start of the data section.
 *
 * The reader mmaps the file and validates everything before returning: header length within
 * the file, valid JSON, known dtypes, shapes of non-negative integers, end - begin equal to
 * numel * dtype size, offsets within the data section, and no two tensors overlapping. Any
 * violation is a one-line error that names the file and the tensor. Data is only touched when a
 * caller reads a slice, so each rank pages in just its own shards. */
#ifndef LINSHARD_SAFETENSORS_H
#define LINSHARD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8
#define ST_NAME_MAX 256

/* Every dtype of the safetensors format is accepted in a header (older transformers versions
 * save BOOL/U8 buffers beside the weights); only F32, F16 and BF16 can be read as floats
 * (st_dtype_readable). */
typedef enum {
    ST_F32 = 0,
    ST_F16 = 1,
    ST_BF16 = 2,
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_I16,
    ST_U16,
    ST_I32,
    ST_U32,
    ST_I64,
    ST_U64,
    ST_F64,
    ST_N_DTYPES
} st_dtype;

typedef struct {
    char name[ST_NAME_MAX];
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte offsets within the data section */
} st_tensor;

typedef struct {
    void *map; /* the whole file, mmapped read-only */
    size_t map_size;
    const uint8_t *data; /* start of the data section */
    size_t data_size;
    st_tensor *tensors;
    int n_tensors;
    int borrowed; /* map is the caller's memory (st_open_memory): st_close leaves it alone */
} st_file;

/* Opens and validates path. Returns 0, or -1 with a one-line message in err. Headers over
 * 100,000,000 bytes are refused, as in the reference implementation. On failure f is left zeroed
 * and owns nothing. */
int st_open(st_file *f, const char *path, char *err, size_t errlen);
/* Reads a safetensors file that is already in memory (size bytes at data, e.g. embedded in the
 * program), in place: nothing is copied, and data must outlive f. name is for messages. Validated
 * exactly as st_open validates a file. Returns 0, or -1 with a one-line message in err. */
int st_open_memory(st_file *f, const void *data, size_t size, const char *name, char *err,
                   size_t errlen);
/* Unmaps and frees, then zeroes f. Safe on a zeroed st_file, after a failed st_open, and twice. */
void st_close(st_file *f);
/* The tensor called name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype dtype);
size_t st_dtype_size(st_dtype dtype);
/* 1 for the dtypes st_read_f32 converts (F32, F16, BF16), else 0. */
int st_dtype_readable(st_dtype dtype);

/* Copies elements [start, start + count) of t (flat row-major index) into out as float32,
 * converting F16/BF16. Returns 0, or -1 if the range is outside the tensor or t's dtype is not
 * readable (st_dtype_readable). */
int st_read_f32(const st_file *f, const st_tensor *t, size_t start, size_t count, float *out);

/* A tensor to write: float32 data in memory, stored as dtype (F16/BF16 rounded to nearest even). */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} st_write_tensor;

/* Writes the tensors (in the given order) to path atomically: a temporary file in the same
 * directory (path + ".tmp.<pid>", so one process must not write the same path from two threads at
 * once), fsync, rename. Returns 0, or -1 with a one-line message in err. */
int st_write(const char *path, const st_write_tensor *tensors, int n, char *err, size_t errlen);

/* float32 <-> float16 / bfloat16 conversions (round to nearest even; NaN and Inf preserved). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
