/* fuzz_trainer_state.c — libFuzzer harness for checkpoint_load_state: each input becomes
 * trainer_state.json in a temporary directory (made once per process) and is loaded, as
 * `linshard train --resume` does. A refusal must be one non-empty line; an accepted state must
 * have come through without UB (clang's -fsanitize=undefined checks the double -> integer
 * conversions) and hold what checkpoint_load_state promises: every field in its range
 * (checkpoint.c's state_fields: steps up to 2^30, batch and seq in [1, 65536], rates finite).
 * Build and run: see fuzz/CMakeLists.txt. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/checkpoint.h"

static char dir[64];
static char state_path[128];

static void remove_dir(void) {
    unlink(state_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "/tmp/fuzz-state-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(state_path, sizeof(state_path), "%s/trainer_state.json", dir);
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *fp = fopen(state_path, "wb");
    if (!fp) abort();
    if (size && fwrite(data, 1, size, fp) != size) abort();
    if (fclose(fp) != 0) abort();

    train_state st;
    char err[1024];
    memset(&st, 0xab, sizeof(st));
    err[0] = '\0';
    if (checkpoint_load_state(dir, &st, err, sizeof(err)) != 0) {
        if (!err[0] || strchr(err, '\n') || strchr(err, '\r')) abort();
        return 0;
    }
    const long max_steps = 1L << 30;
    if (st.step < 0 || st.step > max_steps || st.adam_step < 0 || st.adam_step > INT32_MAX) abort();
    if (st.seed > INT32_MAX || st.batch < 1 || st.batch > 65536 || st.seq < 1 || st.seq > 65536)
        abort();
    if (!(isfinite(st.lr) && st.lr > 0) || !(isfinite(st.min_lr) && st.min_lr > 0)) abort();
    if (st.warmup < 0 || st.warmup > max_steps || st.decay_steps < 0 || st.decay_steps > max_steps)
        abort();
    if (!(isfinite(st.weight_decay) && st.weight_decay >= 0) ||
        !(isfinite(st.clip) && st.clip >= 0) || !(st.val_fraction >= 0 && st.val_fraction < 1))
        abort();
    if (st.steps < 1 || st.steps > max_steps || st.save_every < 0 || st.save_every > max_steps)
        abort();
    return 0;
}
