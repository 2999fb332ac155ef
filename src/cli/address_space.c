/* address_space.c — running under an address-space limit (ulimit -v, RLIMIT_AS) without hanging.
 *
 * OpenBLAS (0.3.21, the pthread build Debian ships) gives every thread that runs a GEMM a buffer
 * of 128 MiB from a pool it grows on demand, and each of its own worker threads takes one such
 * buffer when it starts. When mmap and malloc both fail, blas_memory_alloc does not return an
 * error: it retries forever. Under a limit too small for the buffers a rank then spins in its
 * first GEMM while the other ranks wait for it in a collective, and even `linshard --help`
 * hung at exit, joining a worker thread that spun since the library loaded.
 *
 * So, only when RLIMIT_AS is finite:
 *   - main restarts the program once with OPENBLAS_NUM_THREADS=1, so that OpenBLAS starts no
 *     worker threads when it loads (the variable is read only then; setting it any earlier, in
 *     a .preinit_array function, is undone when libc initialises its environment). linshard
 *     sets every job's BLAS thread count itself: openblas_set_num_threads starts workers
 *     later, after cli_reserve_blas has made room for them. The restart also ends a worker
 *     that was already spinning;
 *   - before the ranks start, cli_reserve_blas grows OpenBLAS's pool to one buffer per thread
 *     that will run BLAS at once (the ranks, and the workers, which keep theirs), in this one
 * thread, and makes sure of the room for each buffer (an mmap of that size, unmapped at once)
 * before asking OpenBLAS for it. A pool big enough for every concurrent caller never grows again,
 * so no later BLAS call can spin; a limit too small is one line naming the limit. What the job
 * allocates after that (weights, activations, thread stacks) fails the ordinary way: malloc returns
 * NULL, a one-line error. Without a limit nothing here does anything. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"

/* OpenBLAS's own buffer allocator (exported by every OpenBLAS build, not declared in cblas.h).
 * Weak: with a BLAS that lacks them nothing is reserved. */
extern void *blas_memory_alloc(int procpos) __attribute__((weak));
extern void blas_memory_free(void *buffer) __attribute__((weak));

/* OpenBLAS's BUFFER_SIZE on x86-64 (32 << 22) plus what its malloc fallback and glibc add. */
#define BLAS_BUFFER_ROOM ((size_t)130 << 20)
enum { MAX_RESERVED = 256 };

static int reserved; /* buffers already in OpenBLAS's pool (cli_reserve_blas runs in main) */
static int workers;  /* the most OpenBLAS worker threads a job asked for: each holds a buffer */

static int limit_kib(unsigned long long *kib) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
    *kib = (unsigned long long)rl.rlim_cur / 1024;
    return 1;
}

void cli_limit_blas_workers(char **argv) {
    unsigned long long kib;
    const char *n = getenv("OPENBLAS_NUM_THREADS");
    if (!limit_kib(&kib) || (n && !strcmp(n, "1"))) return;
    /* No malloc here (setenv would): a worker that cannot get its buffer retries malloc in a
     * loop, taking the allocator's lock each time, and this thread could wait long for it. */
    static char *env[4096];
    static char one[] = "OPENBLAS_NUM_THREADS=1";
    size_t k = 0;
    for (char **e = environ; *e && k + 2 < sizeof(env) / sizeof(env[0]); e++)
        if (strncmp(*e, "OPENBLAS_NUM_THREADS=", 21) != 0) env[k++] = *e;
    env[k++] = one;
    env[k] = NULL;
    execve("/proc/self/exe", argv, env); /* returns only on failure: go on as we are */
}

int cli_reserve_blas(int ranks, int blas_threads, char *err, size_t errlen) {
    unsigned long long kib;
    if (!limit_kib(&kib) || !blas_memory_alloc || !blas_memory_free) return 0;
    /* OpenBLAS's workers, once started, keep their buffers for good (a later, smaller thread
     * count leaves them idle, not gone): the pool serves the ranks on top of the most workers
     * any job of this process started. */
    if (blas_threads - 1 > workers) workers = blas_threads - 1;
    int threads = ranks + workers;
    if (threads > MAX_RESERVED) threads = MAX_RESERVED;
    void *held[MAX_RESERVED];
    int n = 0, rc = 0;
    /* Holding every buffer at once makes each request take a new one; freed, they stay pooled. */
    while (reserved + n < threads) {
        void *probe = mmap(NULL, BLAS_BUFFER_ROOM, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (probe == MAP_FAILED) {
            snprintf(err, errlen,
                     "the address-space limit (ulimit -v %llu KiB) is too small: OpenBLAS needs "
                     "a 128 MiB buffer per thread running BLAS at once (%d here) and found room "
                     "for %d; raise or remove the limit",
                     kib, threads, reserved + n);
            rc = -1;
            break;
        }
        munmap(probe, BLAS_BUFFER_ROOM);
        held[n++] = blas_memory_alloc(0);
    }
    for (int i = 0; i < n; i++) blas_memory_free(held[i]);
    reserved += n;
    return rc;
}
