/* fuzz_safetensors.c — libFuzzer harness for st_open: each input is written as one safetensors
 * file. A failure must be a one-line error with the st_file left zeroed; a success must have
 * every tensor inside the data section and readable in full (so ASan sees any bad offset).
 * Build and run: see fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/safetensors.h"

static char path[64];

static void remove_file(void) {
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(path, sizeof(path), "/tmp/fuzz-st-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();

    st_file f;
    char err[1024];
    memset(&f, 0xab, sizeof(f));
    if (st_open(&f, path, err, sizeof(err)) == 0) {
        for (int i = 0; i < f.n_tensors; i++) {
            const st_tensor *t = &f.tensors[i];
            size_t es = st_dtype_size(t->dtype);
            if (t->end > f.data_size || t->end - t->begin != t->numel * es) abort();
            if (st_find(&f, t->name) == NULL) abort();
            float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
            if (!out) abort();
            /* Float tensors read; any other dtype (a buffer linshard never uses) is refused. */
            int read = st_read_f32(&f, t, 0, t->numel, out);
            if (st_dtype_readable(t->dtype) ? read != 0 : read == 0) abort();
            free(out);
        }
    } else {
        if (!err[0] || strchr(err, '\n')) abort();
        if (f.map || f.tensors || f.n_tensors) abort();
    }
    st_close(&f);
    st_close(&f);
    return 0;
}
