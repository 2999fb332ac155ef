/* standalone_main.c — replays inputs through a libFuzzer harness without libFuzzer: each file
 * named on the command line is read whole and passed to LLVMFuzzerTestOneInput (after
 * LLVMFuzzerInitialize, when the harness has one). Built with the ordinary compiler, so CTest
 * runs the harnesses over their seeds and fuzz/regressions/ in every build, the sanitizer ones
 * included (tests/CMakeLists.txt). A harness reports a failure by aborting. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        uint8_t *bigger = realloc(buf, cap *= 2);
        if (!bigger) free(buf);
        buf = bigger;
    }
    if (ferror(fp)) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *size = n;
    return buf;
}

int main(int argc, char **argv) {
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        size_t size = 0;
        uint8_t *data = read_all(argv[i], &size);
        if (!data) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 1;
        }
        fprintf(stderr, "%s (%zu bytes)\n", argv[i], size);
        LLVMFuzzerTestOneInput(data, size);
        free(data);
    }
    printf("%d inputs ran\n", argc - 1);
    return 0;
}
