/* comm_threads.c — the threads backend: P ranks as pthreads of one process, meeting in shared
 * memory.
 *
 * Every collective has the same shape:
 *   1. each rank publishes its buffer pointer and count in its slot;
 *   2. barrier — now every rank can read every other rank's buffer;
 *   3. each rank does its share of the work, reading and writing the others' buffers directly
 *      (no staging copies);
 *   4. barrier — nobody returns (and reuses its buffer) while another rank still touches it.
 *
 * AllReduce is a reduce-scatter and an all-gather fused into one pass: rank r owns block r of
 * the buffer, sums block r over all P buffers (in rank order), and writes that one result into
 * block r of all P buffers. No other rank touches block r of any buffer, so the pass needs no
 * locks, every element is computed exactly once (all ranks get bitwise-identical bits), and
 * each rank reads N and writes N bytes: the same traffic as one memcpy of the buffer, which is
 * why `linshard bench comm` reports memcpy as the ceiling.
 *
 * Waiting (barrier_wait): a rank that must wait busy-waits for a bounded time — it spins, or,
 * with more ranks than cores, yields — then sleeps on a futex. The bound adapts to the machine's
 * load, one rank at a time: on an idle machine a collective is latency-bound and a futex round
 * trip costs microseconds, so it spins (up to 50 us); on a busy one every microsecond spent
 * spinning is taken from the peer it waits for or from another process, and the sleeping rank
 * is the one the scheduler runs first when woken, so it sleeps almost at once. choose_waiting
 * gives the measurements behind this; docs/PERFORMANCE.md has the tables.
 *
 * Failure: a rank that fails (comm_fail, or its function returns non-zero) sets the group's
 * failed flag and wakes everyone; waiting ranks return COMM_ERR_PEER. A rank whose function
 * returns while others wait in a collective it never entered fails the group the same way. */
#define _GNU_SOURCE
#include "comm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/timer.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define CACHE_LINE 64
/* Elements per block of the reduction loop: the partial sum stays in L1 between the read of the
 * P inputs and the P writes. A multiple of 16 floats so blocks never share a cache line. */
#define REDUCE_BLOCK 1024
#define ALIGN_ELEMS 16
#define SPIN_MIN 2e-6      /* the adaptive spin bound's floor: catches a peer already there */
#define CHECK_SECONDS 1e-3 /* how often a rank reconsiders its spin bound */
#define QUIET_SECONDS 0.2  /* spinning resumes after this long without waiting for a CPU */
#define CONTENDED_NS 50000 /* waiting this long for a CPU in one CHECK_SECONDS is contention */
#define PROBE_SECONDS 0.1  /* how often an oversubscribed rank tries yielding again */

typedef struct {
    const void *ptr;
    size_t count;
    int root;
    char pad[CACHE_LINE - sizeof(void *) - sizeof(size_t) - sizeof(int)];
} slot_t;

typedef struct {
    int size;
    double spin_seconds;  /* phase 1: how long a waiting rank spins (yields, if `yield`); the
                             upper bound of each rank's own bound when `adaptive` */
    double yield_seconds; /* phase 2: how long it then yields (LINSHARD_YIELD_US; default 0) */
    int yield;            /* 1: more ranks than cores, so phase 1 yields instead of pausing */
    int adaptive;         /* 1: each rank adapts its phase-1 bound (adapt_spin) */

    /* Barrier: arrivals counted in `arrived`; the last arrival bumps `generation`. */
    _Alignas(CACHE_LINE) _Atomic uint32_t arrived;
    _Alignas(CACHE_LINE) _Atomic uint32_t generation;
    /* Every event a sleeper may wait for (barrier done, failure, a rank leaving) bumps wake_seq
     * after changing state; sleepers snapshot it before checking state, so no wake-up is lost. */
    _Alignas(CACHE_LINE) _Atomic uint32_t wake_seq;
    _Atomic int sleepers;
    _Atomic int failed;
    _Atomic int exited;

    pthread_mutex_t message_lock;
    char message[512];

    slot_t *slots; /* one per rank, each on its own cache line */
} group_t;

typedef struct {
    group_t *group;
    double spin_seconds;  /* this rank's current phase-1 bound (adapt_spin), <= the group's */
    double checked_at;    /* when adapt_spin last looked (timer_seconds) */
    long long cpu_waited; /* cpu_wait() then */
    double contended_at;  /* when adapt_spin last saw this rank wait for a CPU */
    int schedstat_fd;     /* /proc/thread-self/schedstat: -2 not yet opened, -1 unavailable */
} threads_impl;

static group_t *group_of(const comm_t *comm) {
    return ((const threads_impl *)comm->impl)->group;
}

/* ---- waiting ------------------------------------------------------------------------------ */

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)addr;
    (void)expected;
    sched_yield();
#endif
}

static void futex_wake_all(_Atomic uint32_t *addr) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

/* Announces a state change to every waiting rank. */
static void wake_everyone(group_t *g) {
    atomic_fetch_add(&g->wake_seq, 1);
    if (atomic_load(&g->sleepers) > 0) futex_wake_all(&g->wake_seq);
}

static void group_fail(group_t *g, const char *msg) {
    pthread_mutex_lock(&g->message_lock);
    if (!g->message[0]) snprintf(g->message, sizeof(g->message), "%s", msg);
    pthread_mutex_unlock(&g->message_lock);
    atomic_store(&g->failed, 1);
    wake_everyone(g);
}

/* What a waiting rank does when the barrier it waits in has not completed: 0 to keep waiting,
 * or an error if it never will. */
static int wait_hopeless(group_t *g, int rank, uint32_t gen) {
    if (atomic_load(&g->failed)) return COMM_ERR_PEER;
    /* A rank that left after completing this very barrier is no problem: re-read the
     * generation after seeing `exited`, since the leaver bumped it before leaving. */
    if (atomic_load(&g->exited) && atomic_load(&g->generation) == gen) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "a rank returned while rank %d waits in a collective it never called "
                 "(ranks must call the same collectives in the same order)",
                 rank);
        group_fail(g, msg);
        return COMM_ERR_PEER;
    }
    return COMM_OK;
}

/* Busy-waits (pause-spinning, or yielding the core when `yield`) for at most `seconds` for the
 * barrier of generation `gen` to complete: 1 once it has, 0 when time ran out, -1 on failure.
 * The checks are cheap loads; the clock (~20 ns) is read every 16 pauses (~1 us) or yields. */
static int busy_wait(group_t *g, uint32_t gen, double seconds, int yield) {
    if (seconds <= 0) return 0;
    double deadline = timer_seconds() + seconds;
    unsigned check_every = yield ? 1 : 16;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&g->generation, memory_order_acquire) != gen) return 1;
        if (atomic_load_explicit(&g->failed, memory_order_relaxed)) return -1;
        if (yield)
            sched_yield();
        else
            cpu_relax();
        if (i % check_every == 0 && timer_seconds() > deadline) return 0;
    }
}

/* Sleeps on the futex until the barrier of generation `gen` completes or cannot complete. */
static int futex_sleep(group_t *g, int rank, uint32_t gen) {
    atomic_fetch_add(&g->sleepers, 1);
    int rc = COMM_OK;
    for (;;) {
        uint32_t seq = atomic_load(&g->wake_seq);
        if (atomic_load(&g->generation) != gen) break;
        if ((rc = wait_hopeless(g, rank, gen))) break;
        futex_wait(&g->wake_seq, seq);
    }
    atomic_fetch_sub(&g->sleepers, 1);
    return rc;
}

/* How long this thread has waited for a CPU while runnable, in ns: preempted, or woken and
 * not yet run (the second field of /proc/thread-self/schedstat, kept open by the rank's own
 * thread). Where that file is missing, the count of involuntary context switches stands in
 * (it sees preemptions but not the wait after a wake-up). -1 where neither is known. */
static long long cpu_wait(threads_impl *me) {
#ifdef __linux__
    if (me->schedstat_fd == -2) me->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY);
    char buf[96];
    ssize_t n = me->schedstat_fd >= 0 ? pread(me->schedstat_fd, buf, sizeof(buf) - 1, 0) : -1;
    if (n > 0) {
        buf[n] = '\0';
        char *end;
        strtoull(buf, &end, 10); /* time on the CPU */
        return (long long)strtoull(end, NULL, 10);
    }
#ifdef RUSAGE_THREAD
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0) return (long long)ru.ru_nivcsw * 1000000;
#endif
#endif
    (void)me;
    return -1;
}

/* The adaptive spin bound, reconsidered at most once per CHECK_SECONDS (one pread, ~2 us,
 * amortised over the barriers of that interval). A rank that waited more than CONTENDED_NS for
 * a CPU since the last look is on contended cores: spinning would burn time its peer or another
 * process needs, so the bound drops to SPIN_MIN (in effect: sleep at once). It returns to the
 * group's full bound only after QUIET_SECONDS without such a wait. The asymmetry is measured: a
 * bound that climbed back after each quiet millisecond spent much of the time spinning under
 * load again (with 2-4 hogs, 250-400 us per 4 KiB allreduce against 30 us sleeping at once). */
static void adapt_spin(const group_t *g, threads_impl *me) {
    double now = timer_seconds();
    if (now - me->checked_at < CHECK_SECONDS) return;
    long long w = cpu_wait(me);
    if (me->checked_at > 0 && w - me->cpu_waited > CONTENDED_NS) me->contended_at = now;
    me->spin_seconds = now - me->contended_at > QUIET_SECONDS ? g->spin_seconds : SPIN_MIN;
    me->cpu_waited = w;
    me->checked_at = now; /* the first look only takes the baseline */
}

/* The adaptive bound with more ranks than cores. Here a rank that yields its core waits for a
 * CPU by design, so adapt_spin's signal is useless; the outcome of the yield phase is used
 * instead. A wait that outlasted it means the yields did not hand the core to a
 * peer (another process took it — for a whole time slice under EEVDF — or the peer is in a long
 * compute): yielding did not pay, so the rank stops yielding and sleeps at once (bound 0: even
 * one yield can cost a slice; P = 3 with 2 hogs measured 9-23 ms per 4 KiB allreduce while a
 * rank still yielded once per wait, 20-120 us sleeping at once). Every PROBE_SECONDS it tries
 * the full bound again, so that it returns to yielding once the machine is quiet: a group whose
 * ranks all sleep would otherwise never see a wait end while yielding. */
static void adapt_yield(const group_t *g, threads_impl *me, int done_in_phase1) {
    double now = timer_seconds();
    if (!done_in_phase1) me->spin_seconds = 0;
    if (now - me->checked_at > PROBE_SECONDS) {
        me->spin_seconds = g->spin_seconds;
        me->checked_at = now;
    }
}

static int barrier_wait(comm_t *comm) {
    group_t *g = group_of(comm);
    threads_impl *me = comm->impl;
    uint32_t gen = atomic_load(&g->generation);
    if (atomic_load(&g->failed)) return COMM_ERR_PEER;
    if (atomic_fetch_add(&g->arrived, 1) == (uint32_t)g->size - 1) {
        atomic_store(&g->arrived, 0);
        atomic_store(&g->generation, gen + 1);
        wake_everyone(g);
        return atomic_load(&g->failed) ? COMM_ERR_PEER : COMM_OK;
    }
    /* Phase 1: spin (own core) or yield (shared cores), for this rank's current bound. */
    int done = busy_wait(g, gen, me->spin_seconds, g->yield), done_in_phase1 = done > 0;
    /* Phase 2 (only when LINSHARD_YIELD_US asks for it): yield. */
    if (done == 0) done = busy_wait(g, gen, g->yield_seconds, 1);
    /* Phase 3: sleep. */
    if (done < 0) return COMM_ERR_PEER;
    if (done == 0) {
        int rc = futex_sleep(g, comm->rank, gen);
        if (rc) return rc;
    }
    if (g->adaptive && !g->yield)
        adapt_spin(g, me);
    else if (g->adaptive)
        adapt_yield(g, me, done_in_phase1);
    return atomic_load(&g->failed) ? COMM_ERR_PEER : COMM_OK;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void publish(group_t *g, int rank, const void *ptr, size_t count, int root) {
    g->slots[rank].ptr = ptr;
    g->slots[rank].count = count;
    g->slots[rank].root = root;
}

/* After the entry barrier every rank checks every slot (against rank 0's count, or against its
 * own copy of the per-rank counts), so all ranks reach the same verdict and none reads past a
 * peer's buffer. */
static int check_counts(comm_t *comm, const char *op, const size_t *expected) {
    group_t *g = group_of(comm);
    for (int j = 0; j < g->size; j++) {
        size_t want = expected ? expected[j] : g->slots[0].count;
        if (g->slots[j].count == want) continue;
        char msg[200];
        if (expected)
            snprintf(msg, sizeof(msg),
                     "%s: rank %d passed %zu elements but rank %d's counts say %zu", op, j,
                     g->slots[j].count, comm->rank, want);
        else
            snprintf(msg, sizeof(msg),
                     "%s: ranks disagree on the count: rank 0 passed %zu "
                     "elements, rank %d passed %zu",
                     op, want, j, g->slots[j].count);
        group_fail(g, msg);
        return COMM_ERR_ARG;
    }
    return COMM_OK;
}

/* The aligned range [lo, hi) of an n-element buffer that rank r reduces. */
static void owned_range(size_t n, int P, int r, size_t *lo, size_t *hi) {
    size_t units = (n + ALIGN_ELEMS - 1) / ALIGN_ELEMS;
    size_t q = units / (size_t)P, rem = units % (size_t)P, rr = (size_t)r;
    size_t first = rr * q + (rr < rem ? rr : rem);
    size_t count = q + (rr < rem ? 1 : 0);
    *lo = first * ALIGN_ELEMS < n ? first * ALIGN_ELEMS : n;
    *hi = (first + count) * ALIGN_ELEMS < n ? (first + count) * ALIGN_ELEMS : n;
}

/* acc[0..n) = src[0][off..] + src[1][off..] + ... in rank order: the one summation order every
 * collective uses, so reduce_scatter and allreduce give the same bits. */
static void sum_block(float *restrict acc, const slot_t *slots, int P, size_t off, size_t n) {
    const float *s0 = (const float *)slots[0].ptr + off;
    for (size_t k = 0; k < n; k++) acc[k] = s0[k];
    for (int j = 1; j < P; j++) {
        const float *sj = (const float *)slots[j].ptr + off;
        for (size_t k = 0; k < n; k++) acc[k] += sj[k];
    }
}

/* ---- collectives -------------------------------------------------------------------------- */

static int threads_allreduce_sum(comm_t *comm, void *buf, size_t count, comm_dtype_t dtype) {
    (void)dtype;
    group_t *g = group_of(comm);
    int P = g->size, r = comm->rank, rc;
    publish(g, r, buf, count, 0);
    if ((rc = barrier_wait(comm))) return rc;
    if ((rc = check_counts(comm, "allreduce_sum", NULL))) return rc;
    size_t lo, hi;
    owned_range(count, P, r, &lo, &hi);
    float acc[REDUCE_BLOCK];
    for (size_t off = lo; off < hi; off += REDUCE_BLOCK) {
        size_t n = hi - off < REDUCE_BLOCK ? hi - off : REDUCE_BLOCK;
        sum_block(acc, g->slots, P, off, n);
        for (int j = 0; j < P; j++) memcpy((float *)g->slots[j].ptr + off, acc, n * sizeof(float));
    }
    return barrier_wait(comm);
}

static int threads_allgather(comm_t *comm, const void *send, void *recv, const size_t *counts,
                             const size_t *displs, comm_dtype_t dtype) {
    group_t *g = group_of(comm);
    int P = g->size, r = comm->rank, rc;
    size_t esize = comm_dtype_size(dtype);
    publish(g, r, send, counts[r], 0);
    if ((rc = barrier_wait(comm))) return rc;
    if ((rc = check_counts(comm, "allgather", counts))) return rc;
    for (int j = 0; j < P; j++) {
        char *dst = (char *)recv + displs[j] * esize;
        if (counts[j] && dst != (const char *)g->slots[j].ptr)
            memmove(dst, g->slots[j].ptr, counts[j] * esize);
    }
    return barrier_wait(comm);
}

static int threads_reduce_scatter(comm_t *comm, const void *send, void *recv, const size_t *counts,
                                  const size_t *displs, comm_dtype_t dtype) {
    (void)dtype;
    group_t *g = group_of(comm);
    int P = g->size, r = comm->rank, rc;
    size_t total = displs[P - 1] + counts[P - 1];
    publish(g, r, send, total, 0);
    if ((rc = barrier_wait(comm))) return rc;
    if ((rc = check_counts(comm, "reduce_scatter", NULL))) return rc;
    float acc[REDUCE_BLOCK];
    for (size_t done = 0; done < counts[r]; done += REDUCE_BLOCK) {
        size_t n = counts[r] - done < REDUCE_BLOCK ? counts[r] - done : REDUCE_BLOCK;
        sum_block(acc, g->slots, P, displs[r] + done, n);
        memcpy((float *)recv + done, acc, n * sizeof(float));
    }
    return barrier_wait(comm);
}

static int threads_broadcast(comm_t *comm, void *buf, size_t count, int root, comm_dtype_t dtype) {
    group_t *g = group_of(comm);
    int r = comm->rank, rc;
    publish(g, r, buf, count, root);
    if ((rc = barrier_wait(comm))) return rc;
    if ((rc = check_counts(comm, "broadcast", NULL))) return rc;
    if (g->slots[root].root != root || g->slots[r].root != g->slots[0].root) {
        char msg[120];
        snprintf(msg, sizeof(msg), "broadcast: ranks disagree on the root (rank %d says %d)", r,
                 root);
        group_fail(g, msg);
        return COMM_ERR_ARG;
    }
    if (r != root && count) memcpy(buf, g->slots[root].ptr, count * comm_dtype_size(dtype));
    return barrier_wait(comm);
}

static int threads_barrier(comm_t *comm) {
    return barrier_wait(comm);
}

static void threads_fail(comm_t *comm, const char *msg) {
    group_fail(group_of(comm), msg);
}

static int threads_failed(const comm_t *comm) {
    return atomic_load(&group_of(comm)->failed);
}

static const char *threads_error_message(const comm_t *comm) {
    return group_of(comm)->message;
}

static const comm_ops threads_ops = {
    .allreduce_sum = threads_allreduce_sum,
    .allgather = threads_allgather,
    .reduce_scatter = threads_reduce_scatter,
    .broadcast = threads_broadcast,
    .barrier = threads_barrier,
    .fail = threads_fail,
    .failed = threads_failed,
    .error_message = threads_error_message,
};

/* ---- launching ---------------------------------------------------------------------------- */

static int online_cpus(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* How a waiting rank waits. Measured with `linshard bench comm --hog N` on the 2-core VM
 * (Linux 6.18, whose EEVDF scheduler runs a woken task that has been sleeping ahead of one that
 * has used its share), 4 KiB allreduce at P = 2, median us per call; no run had the machine to
 * itself (other builds: load average ~20), tables in docs/PERFORMANCE.md:
 *
 *   policy                                      least loaded   + 0..4 hogs
 *   spin 50 us, then futex (the old default)        2.0          170 .. 850
 *   spin only (LINSHARD_SPIN_US=1000000)            1.9          1.9 .. 50000
 *   spin, then sched_yield (LINSHARD_YIELD_US)       -           600 .. 9700
 *   futex at once (LINSHARD_SPIN_US=0)              9 .. 18      9 .. 38
 *   adaptive (this default)                         (2.0)        20 .. 84
 *
 * Spinning is right only while the rank has a core to itself; the kernel says when it does not:
 * the time the rank spent runnable but waiting for a CPU (adapt_spin). Yielding hands the core
 * to a busy process for a whole slice under this scheduler, so it is only tried with more ranks
 * than cores, where the peer may need this very core, and given up when it does not pay
 * (adapt_yield). The bounds stay those of the old policy: 50 us spinning with a core per rank,
 * 200 us yielding with more ranks than cores; on an idle machine the adaptive policy is the old
 * one. Whatever the load, a rank busy-waits at most that long per wait and then sleeps, so a
 * rank whose peer computes for a long time never burns its core.
 *
 * LINSHARD_SPIN_US=T fixes phase 1 at T us with no adaptation (the old behaviour; 0 sleeps at
 * once); LINSHARD_YIELD_US=T adds a phase 2 of T us of yielding before the sleep (for
 * experiments: it measured worst of all under load). */
static void choose_waiting(group_t *g) {
    g->yield = g->size > online_cpus();
    g->spin_seconds = g->yield ? 200e-6 : 50e-6;
    g->yield_seconds = 0;
    g->adaptive = 1;
    const char *spin = getenv("LINSHARD_SPIN_US"), *yield = getenv("LINSHARD_YIELD_US");
    if (spin && *spin) {
        g->spin_seconds = atof(spin) * 1e-6;
        g->adaptive = 0;
    }
    if (yield && *yield) {
        g->yield_seconds = atof(yield) * 1e-6;
        g->adaptive = 0;
    }
}

typedef struct {
    comm_t *comm;
    comm_rank_fn fn;
    void *arg;
    int rc;
} rank_run;

static void *rank_main(void *p) {
    rank_run *run = p;
    group_t *g = group_of(run->comm);
    run->rc = run->fn(run->comm, run->arg);
    threads_impl *me = run->comm->impl;
    if (me->schedstat_fd >= 0) close(me->schedstat_fd);
    if (run->rc != 0 && !atomic_load(&g->failed)) {
        char msg[80];
        snprintf(msg, sizeof(msg), "rank %d failed (%s)", run->comm->rank,
                 comm_status_string(run->rc));
        group_fail(g, msg);
    }
    atomic_fetch_add(&g->exited, 1);
    wake_everyone(g);
    return NULL;
}

int comm_threads_launch(int P, comm_rank_fn fn, void *arg, char *err, size_t errlen) {
    if (P < 1) {
        if (err) snprintf(err, errlen, "threads backend: P must be at least 1 (got %d)", P);
        return COMM_ERR_ARG;
    }
    group_t *g = calloc(1, sizeof(*g));
    threads_impl *impls = calloc((size_t)P, sizeof(*impls));
    rank_run *runs = calloc((size_t)P, sizeof(*runs));
    pthread_t *threads = calloc((size_t)P, sizeof(*threads));
    slot_t *slots = aligned_alloc(CACHE_LINE, (size_t)P * sizeof(slot_t));
    int rc = COMM_OK, started = 0, mutex_ready = 0;
    if (!g || !impls || !runs || !threads || !slots) {
        rc = COMM_ERR_NOMEM;
        if (err) snprintf(err, errlen, "threads backend: out of memory starting %d ranks", P);
        goto done;
    }
    memset(slots, 0, (size_t)P * sizeof(slot_t));
    g->size = P;
    pthread_mutex_init(&g->message_lock, NULL);
    mutex_ready = 1;
    g->slots = slots;
    choose_waiting(g);
    for (int r = 0; r < P; r++) {
        impls[r].group = g;
        impls[r].spin_seconds = g->spin_seconds;
        impls[r].contended_at = -1e9; /* never: start at the full bound */
        impls[r].schedstat_fd = -2;
        runs[r] =
            (rank_run){comm_alloc(&threads_ops, COMM_BACKEND_THREADS, r, P, &impls[r]), fn, arg, 0};
        if (!runs[r].comm) {
            rc = COMM_ERR_NOMEM;
            if (err) snprintf(err, errlen, "threads backend: out of memory creating rank %d", r);
            goto done;
        }
    }
    /* Ranks 1..P-1 on new threads, rank 0 on this one. */
    for (started = 1; started < P; started++) {
        if (pthread_create(&threads[started], NULL, rank_main, &runs[started]) != 0) {
            char msg[120];
            snprintf(msg, sizeof(msg),
                     "threads backend: could not start the thread of rank %d "
                     "(%d ranks requested)",
                     started, P);
            group_fail(g, msg);
            break;
        }
    }
    if (started == P) rank_main(&runs[0]); /* unless a thread could not be created */
    for (int r = 1; r < started; r++) pthread_join(threads[r], NULL);
    if (atomic_load(&g->failed)) {
        rc = COMM_ERR_PEER;
        for (int r = 0; r < P; r++)
            if (runs[r].rc != 0 && runs[r].rc != COMM_ERR_PEER) rc = runs[r].rc;
        if (err) snprintf(err, errlen, "%s", g->message);
    }
done:
    if (mutex_ready) pthread_mutex_destroy(&g->message_lock);
    for (int r = 0; runs && r < P; r++) comm_free(runs[r].comm);
    free(slots);
    free(threads);
    free(runs);
    free(impls);
    free(g);
    return rc;
}
