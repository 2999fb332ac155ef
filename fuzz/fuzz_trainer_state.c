/* fuzz_trainer_state.c — libFuzzer harness for checkpoint_load_state: each input becomes
 * trainer_state.json in a temporary directory (made once per process) and is loaded, as
 * `linshard train --resume` does. A refusal must be one non-empty line; an accepted state must
 * have come through without UB (clang's -fsanitize=undefined checks the double -> integer
 * conversions) and hold what checkpoint_load_state promises: step and adam_step >= 0, batch
 * and seq >= 1.
 * Build and run: see fuzz/CMakeLists.txt. */
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
    if (st.step < 0 || st.adam_step < 0 || st.batch < 1 || st.seq < 1) abort();
    return 0;
}
