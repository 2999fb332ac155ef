/* TEMPORARY shim (replaced by the st branch): a model directory's weights. */
#ifndef LINSHARD_SAFETENSORS_SET_H
#define LINSHARD_SAFETENSORS_SET_H
#include "linshard/safetensors.h"
typedef struct {
    st_file *files;
    int n_files;
} st_set;
int st_set_open(st_set *s, const char *dir, char *err, size_t errlen);
const st_tensor *st_set_find(const st_set *s, const char *name, const st_file **file);
void st_set_close(st_set *s);
int st_set_open_file(st_set *s, const char *path, char *err, size_t errlen);
int st_write_sharded(const char *dir, const st_write_tensor *tensors, int n, size_t max_file_bytes,
                     char *err, size_t errlen);
#endif
