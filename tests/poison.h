/* poison.h — writes one float into a tensor of an F32 safetensors file in place, to make the
 * damaged checkpoints (a NaN, an infinity) that loading must refuse. */
#ifndef LINSHARD_TESTS_POISON_H
#define LINSHARD_TESTS_POISON_H

#include <stdio.h>

#include "linshard/safetensors.h"

/* Sets element `index` of F32 tensor `name` in file `path` to v; 0, or -1. */
static inline int poison_f32(const char *path, const char *name, size_t index, float v) {
    st_file f;
    char err[512];
    if (st_open(&f, path, err, sizeof(err))) return -1;
    const st_tensor *t = st_find(&f, name);
    long offset = -1;
    if (t && t->dtype == ST_F32 && index < t->numel)
        offset = (long)((size_t)(f.data - (const uint8_t *)f.map) + t->begin + 4 * index);
    st_close(&f);
    FILE *fp = offset >= 0 ? fopen(path, "r+b") : NULL;
    if (!fp) return -1;
    int ok = fseek(fp, offset, SEEK_SET) == 0 && fwrite(&v, sizeof(v), 1, fp) == 1;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

#endif
