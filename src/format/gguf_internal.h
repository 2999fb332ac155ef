/* gguf_internal.h — what the GGUF reader (gguf.c) and writer (gguf_writer.c) share: the sizes
 * of the scalar value types and the byte count of a tensor shape. Not installed. */
#ifndef LINSHARD_GGUF_INTERNAL_H
#define LINSHARD_GGUF_INTERNAL_H

#include "linshard/gguf.h"

#include <stdint.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) &&                                 \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader and writer assume a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3
#define GGUF_KEY_MAX 65535u /* bytes of a metadata key, per the specification */

/* Bytes of one scalar of type t; 0 for STRING, ARRAY and values outside the enum. */
size_t gguf_scalar_size(gguf_type t);

/* The byte layout of a tensor of ggml type id type and dims ne[0..n_dims) (each < 2^63). Returns
 * NULL and sets the sizes, or a static description of what is wrong ("ne[0] is not a multiple of
 * the block", "the element count overflows", ...). */
const char *gguf_tensor_layout(int type, int n_dims, const uint64_t *ne, uint64_t *n_elements,
                               uint64_t *n_rows, uint64_t *row_bytes, uint64_t *n_bytes);

#endif
