/* source.c — a model's config and weights from a directory, a GGUF file or memory (see
 * model_source.h). */
#include "linshard/model_source.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "linshard/model_gguf.h"
#include "linshard/params.h"

/* ---- memory shards point into ------------------------------------------------------------- */

struct model_keep {
    atomic_int refs;
    void (*release)(void *arg);
    void *arg;
};

model_keep *model_keep_new(void (*release)(void *arg), void *arg) {
    model_keep *k = malloc(sizeof(*k));
    if (!k) return NULL;
    atomic_init(&k->refs, 1);
    k->release = release;
    k->arg = arg;
    return k;
}

void model_keep_retain(model_keep *k) {
    if (k) atomic_fetch_add(&k->refs, 1);
}

void model_keep_release(model_keep *k) {
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
    if (k->release) k->release(k->arg);
    free(k);
}

/* Mappings to unmap when the last holder lets go. */
typedef struct {
    int n;
    void *addr[];
} mappings;

static void unmap_all(void *arg) {
    mappings *m = arg;
    /* addr[2i] is a mapping's address, addr[2i + 1] its size */
    for (int i = 0; i < m->n; i++) munmap(m->addr[2 * i], (size_t)(uintptr_t)m->addr[2 * i + 1]);
    free(m);
}

/* A keep owning n mappings (listed later by add_mapping); NULL when out of memory. */
static model_keep *keep_mappings(int n, mappings **out) {
    mappings *m = malloc(sizeof(*m) + 2 * (size_t)n * sizeof(void *));
    model_keep *k = m ? model_keep_new(unmap_all, m) : NULL;
    if (!k) {
        free(m);
        return NULL;
    }
    m->n = 0;
    *out = m;
    return k;
}

static void add_mapping(mappings *m, void *addr, size_t size) {
    m->addr[2 * m->n] = addr;
    m->addr[2 * m->n + 1] = (void *)(uintptr_t)size;
    m->n++;
}

/* The GGUF file mapped read-only, for shards to use its tensors in place (gguf.h reads with
 * pread; the mapping is beside it). A file truncated while mapped gives SIGBUS on a later read
 * of the lost pages: the price of not copying. Without a mapping (mmap refused), shards copy. */
static void map_gguf(model_source *s) {
    mappings *m;
    if (s->gguf.file_size == 0 || s->gguf.file_size > SIZE_MAX) return;
    void *map = mmap(NULL, (size_t)s->gguf.file_size, PROT_READ, MAP_PRIVATE, s->gguf.fd, 0);
    if (map == MAP_FAILED) return;
    if (!(s->keep = keep_mappings(1, &m))) {
        munmap(map, (size_t)s->gguf.file_size);
        return;
    }
    add_mapping(m, map, (size_t)s->gguf.file_size);
    s->map = map;
}

/* The safetensors files stay mapped while a shard uses them: the keep takes over unmapping
 * them (each st_file is marked borrowed, so st_set_close leaves its mapping alone). */
static void keep_st_maps(model_source *s) {
    mappings *m;
    if (!(s->keep = keep_mappings(s->st.n_files, &m))) return;
    for (int i = 0; i < s->st.n_files; i++) {
        st_file *f = &s->st.files[i];
        if (f->borrowed || !f->map) continue;
        add_mapping(m, f->map, f->map_size);
        f->borrowed = 1;
    }
}

/* ---- opening --------------------------------------------------------------------------------- */

int model_source_open(model_source *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->gguf.fd = -1;
    struct stat sb;
    if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && model_path_is_gguf(path)) {
        if (gguf_open(&s->gguf, path, err, errlen)) return -1;
        s->is_gguf = 1;
        if (model_config_from_gguf(&s->gguf, &s->cfg, err, errlen) ||
            model_check_weights_gguf(&s->cfg, &s->gguf, err, errlen)) {
            model_source_close(s);
            return -1;
        }
        map_gguf(s);
        return 0;
    }
    if (path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        snprintf(err, errlen,
                 "%s is a file but not a GGUF file: --model takes a Hugging Face directory "
                 "(config.json + model.safetensors) or a .gguf file",
                 path);
        return -1;
    }
    if (model_config_load(path, &s->cfg, err, errlen) || st_set_open(&s->st, path, err, errlen))
        return -1;
    if (model_check_weights(&s->cfg, &s->st, err, errlen)) {
        model_source_close(s);
        return -1;
    }
    keep_st_maps(s);
    return 0;
}

int model_source_open_memory(model_source *s, const char *config_json, size_t config_len,
                             const void *safetensors, size_t safetensors_len, const char *name,
                             char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->gguf.fd = -1;
    char what[256];
    snprintf(what, sizeof(what), "%s config.json", name);
    if (model_config_parse(config_json, config_len, what, &s->cfg, err, errlen)) return -1;
    snprintf(what, sizeof(what), "%s model.safetensors", name);
    if (st_set_open_memory(&s->st, safetensors, safetensors_len, what, err, errlen)) return -1;
    if (model_check_weights(&s->cfg, &s->st, err, errlen)) {
        model_source_close(s);
        return -1;
    }
    s->keep = model_keep_new(NULL, NULL); /* the caller's memory: nothing to release */
    return 0;
}

void model_source_close(model_source *s) {
    model_keep_release(s->keep); /* shards still using the memory hold their own references */
    if (s->is_gguf)
        gguf_close(&s->gguf);
    else
        st_set_close(&s->st);
    memset(s, 0, sizeof(*s));
    s->gguf.fd = -1;
}

kernel_type model_source_stored_type(const model_source *s) {
    return s->is_gguf ? model_gguf_matrix_type(&s->cfg, &s->gguf)
                      : (kernel_type)model_stored_matrix_type(&s->cfg, &s->st);
}

int model_source_load(const model_source *s, model_shard *m, int rank, int P, int max_T,
                      kernel_type wtype, char *err, size_t errlen) {
    if (s->is_gguf)
        return model_shard_load_gguf_mapped(m, &s->cfg, &s->gguf, s->map, s->keep, rank, P, max_T,
                                            wtype, err, errlen);
    return model_shard_load_kept(m, &s->cfg, &s->st, s->keep, rank, P, max_T, wtype, err, errlen);
}
