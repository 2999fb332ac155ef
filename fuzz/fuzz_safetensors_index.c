/* fuzz_safetensors_index.c — libFuzzer harness for st_set_open: each input becomes
 * model.safetensors.index.json in a temporary directory that also holds two small valid shards
 * (a, b in model-00001-of-00002.safetensors; c in model-00002-of-00002.safetensors). A failure
 * must be a one-line error with the set left zeroed; a success must serve every tensor it lists.
 * Build and run: see fuzz/CMakeLists.txt. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/safetensors.h"
#include "linshard/safetensors_set.h"

static char dir[64];
static char index_path[128];

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const float x[6] = {1.0f, -2.0f, 0.5f, 3.25f, -0.0f, 65504.0f};
    const st_write_tensor s1[] = {{"a", ST_F32, 1, {4}, x}, {"b", ST_F16, 2, {2, 3}, x}};
    const st_write_tensor s2[] = {{"c", ST_BF16, 1, {3}, x}};
    char p[128], err[512];
    snprintf(dir, sizeof(dir), "/tmp/fuzz-st-index-XXXXXX");
    if (!mkdtemp(dir)) abort();
    atexit(remove_dir);
    snprintf(p, sizeof(p), "%s/model-00001-of-00002.safetensors", dir);
    if (st_write(p, s1, 2, err, sizeof(err)) != 0) abort();
    snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
    if (st_write(p, s2, 1, err, sizeof(err)) != 0) abort();
    snprintf(index_path, sizeof(index_path), "%s/" ST_SET_INDEX_NAME, dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(index_path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();

    st_set s;
    char err[1024];
    memset(&s, 0xab, sizeof(s));
    if (st_set_open(&s, dir, err, sizeof(err)) == 0) {
        if (!s.indexed || s.n_files < 1) abort();
        for (int i = 0; i < s.n_tensors; i++) {
            const st_file *f = NULL;
            const st_tensor *t = st_set_find(&s, s.tensors[i].tensor->name, &f);
            if (t != s.tensors[i].tensor || f != &s.files[s.tensors[i].file]) abort();
            float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
            if (!out) abort();
            /* Float tensors read; any other dtype (a buffer linshard never uses) is refused. */
            int read = st_read_f32(f, t, 0, t->numel, out);
            if (st_dtype_readable(t->dtype) ? read != 0 : read == 0) abort();
            free(out);
        }
    } else {
        /* A refusal is one non-empty line, and the set owns nothing. */
        if (!err[0] || strchr(err, '\n')) abort();
        if (s.files || s.file_names || s.tensors || s.n_files || s.n_tensors) abort();
    }
    st_set_close(&s);
    st_set_close(&s);
    return 0;
}
