/* fuzz_model_config.c — libFuzzer harness for model_config_load: each input becomes config.json
 * in a temporary directory (made once per process) and is loaded. A refusal must be one
 * non-empty line; an accepted config must pass model_config_check, and everything that sizes a
 * model from it (model_config_check_tp, model_head_split, the parameter table's
 * model_rank_param_floats / model_total_param_floats) must run without overflow, UB or an
 * absurd allocation for P = 1..4.
 * Build and run: see fuzz/CMakeLists.txt. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/model.h"

static char dir[64];
static char config_path[128];

static void remove_dir(void) {
    unlink(config_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/fuzz-config-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(config_path, sizeof(config_path), "%s/config.json", dir);
    atexit(remove_dir);
    return 0;
}

static void one_line(const char *err) {
    if (!err[0] || strchr(err, '\n') || strchr(err, '\r')) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(config_path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();

    model_config cfg;
    char err[1024];
    memset(&cfg, 0xab, sizeof(cfg));
    err[0] = '\0';
    if (model_config_load(dir, &cfg, err, sizeof(err)) != 0) {
        one_line(err);
        return 0;
    }
    if (model_config_check(&cfg, err, sizeof(err)) != 0) abort();
    size_t total = model_total_param_floats(&cfg);
    if (total == 0) abort();
    for (int P = 1; P <= 4; P++) {
        if (model_config_check_tp(&cfg, P, err, sizeof(err)) != 0) {
            one_line(err);
            if (P == 1) abort();
            continue;
        }
        size_t sum_heads = 0;
        for (int r = 0; r < P; r++) {
            head_split hs = model_head_split(&cfg, P, r);
            if (hs.h_local < 1 || hs.h0 < 0 || hs.h0 + hs.h_local > cfg.n_head) abort();
            if (hs.kv_local < 1 || hs.kv0 < 0 || hs.kv0 + hs.kv_local > cfg.n_kv_head) abort();
            sum_heads += (size_t)hs.h_local;
            size_t rank = model_rank_param_floats(&cfg, P, r);
            if (rank == 0 || rank > total) abort();
        }
        if (sum_heads != (size_t)cfg.n_head) abort();
    }
    return 0;
}
