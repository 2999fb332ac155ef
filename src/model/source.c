/* source.c — a model's config and weights from a directory, a GGUF file or memory (see
 * model_source.h). */
#include "linshard/model_source.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "linshard/model_gguf.h"
#include "linshard/params.h"

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
    return 0;
}

void model_source_close(model_source *s) {
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
        return model_shard_load_gguf(m, &s->cfg, &s->gguf, rank, P, max_T, wtype, err, errlen);
    return model_shard_load_as(m, &s->cfg, &s->st, rank, P, max_T, wtype, err, errlen);
}
