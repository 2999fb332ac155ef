/* TEMPORARY shim */
#include "linshard/safetensors_set.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int st_set_open(st_set *s, const char *dir, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->files = calloc(1, sizeof(st_file));
    if (!s->files) return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (st_open(&s->files[0], path, err, errlen)) {
        free(s->files);
        s->files = NULL;
        return -1;
    }
    s->n_files = 1;
    return 0;
}
const st_tensor *st_set_find(const st_set *s, const char *name, const st_file **file) {
    for (int i = 0; i < s->n_files; i++) {
        const st_tensor *t = st_find(&s->files[i], name);
        if (t) {
            if (file) *file = &s->files[i];
            return t;
        }
    }
    return NULL;
}
void st_set_close(st_set *s) {
    for (int i = 0; i < s->n_files; i++) st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof(*s));
}
int st_write_sharded(const char *dir, const st_write_tensor *tensors, int n, size_t max_file_bytes,
                     char *err, size_t errlen) {
    (void)dir;
    (void)tensors;
    (void)n;
    (void)max_file_bytes;
    snprintf(err, errlen, "shim");
    return -1;
}
int st_set_open_file(st_set *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->files = calloc(1, sizeof(st_file));
    if (!s->files) return -1;
    if (st_open(&s->files[0], path, err, errlen)) {
        free(s->files);
        s->files = NULL;
        return -1;
    }
    s->n_files = 1;
    return 0;
}
