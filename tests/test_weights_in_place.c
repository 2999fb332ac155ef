/* test_weights_in_place.c — matrices used where the source stores them.
 *
 * A shard loaded through model_source_load holding the matrices as the type the source stores
 * them as points its kernel weights INTO the source (the mapped GGUF file, the safetensors
 * image in memory) for every slice that is whole contiguous [out, in] rows -- the vocabulary
 * rows of the embedding and LM head, a GGUF tensor's output rows -- and holds copies of the
 * rest (a row-parallel slice is strided; Llama's Q/K/V are three tensors and permuted in GGUF).
 * Three ways of loading must give the same logits bit for bit at P = 1, 2, 3: in place, copied
 * as bytes (no keep), and through F32 (the reader without stored bytes: widened, then narrowed
 * or re-quantised, which is exact for F16 and for Q8_0 blocks).
 *
 * Lifetime: a shard holds a reference on the mapping (model_keep), so closing the source first
 * is allowed: the shard still runs, and the file is unmapped only when the shard is freed. A
 * shard held as F32 (the trainer's) never points into a source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/model_gguf.h"
#include "linshard/model_source.h"
#include "linshard/params.h"
#include "temp_dir.h"

#define T_ 5
#define MAX_P 3

enum { IN_PLACE, BYTE_COPY, VIA_F32 };

typedef struct {
    const model_source *src;
    kernel_type type;
    int how;
    int tokens[T_];
    float *logits;       /* [T, V] */
    int embed_in[MAX_P]; /* per rank: wte's view points into the source */
    int head_in[MAX_P];  /* the LM head's */
    int qkv_in[MAX_P], proj_in[MAX_P], fc_in[MAX_P], fcp_in[MAX_P]; /* layer 0's */
    int own_ok[MAX_P]; /* every matrix not in the source lies in the shard's typed buffer */
    size_t mapped[MAX_P];
} job_t;

/* The source's bytes: the mapped GGUF file, or the safetensors image (one file). */
static void source_span(const model_source *s, const unsigned char **lo, const unsigned char **hi) {
    if (s->is_gguf) {
        *lo = s->map;
        *hi = s->map + s->gguf.file_size;
    } else {
        *lo = s->st.files[0].map;
        *hi = *lo + s->st.files[0].map_size;
    }
}

static int inside(const void *p, const unsigned char *lo, const unsigned char *hi) {
    return lo && (const unsigned char *)p >= lo && (const unsigned char *)p < hi;
}

/* Loads rank r's shard the way job->how says. */
static int load(const job_t *job, model_shard *m, int r, int P, char *err, size_t errlen) {
    const model_source *s = job->src;
    if (job->how == IN_PLACE) return model_source_load(s, m, r, P, T_, job->type, err, errlen);
    if (s->is_gguf)
        return model_shard_load_gguf_mapped(m, &s->cfg, &s->gguf,
                                            job->how == BYTE_COPY ? s->map : NULL, NULL, r, P, T_,
                                            job->type, err, errlen);
    if (job->how == BYTE_COPY)
        return model_shard_load_as(m, &s->cfg, &s->st, r, P, T_, job->type, err, errlen);
    /* through F32: the safetensors reader without its stored bytes */
    if (model_shard_setup(m, &s->cfg, r, P, T_, job->type, 0, 0, err, errlen)) return -1;
    model_st_reader ctx;
    model_weight_reader rd = model_st_reader_init(&ctx, &s->cfg, &s->st, "");
    rd.stored = NULL;
    if (model_shard_read(m, &rd, NULL, NULL, err, errlen)) {
        model_shard_free(m);
        return -1;
    }
    return 0;
}

static int rank_main(comm_t *comm, void *arg) {
    job_t *job = arg;
    int r = comm_rank(comm), P = comm_size(comm);
    model_shard m;
    char err[512];
    if (load(job, &m, r, P, err, sizeof(err))) return comm_fail(comm, "%s", err);
    /* m.typed is NULL when every matrix is in place */
    const unsigned char *lo, *hi, *own = m.typed, *own_end = own ? own + m.typed_bytes : NULL;
    source_span(job->src, &lo, &hi);
    job->embed_in[r] = inside(m.embed.data, lo, hi);
    job->head_in[r] = inside(m.head.data, lo, hi);
    job->qkv_in[r] = inside(m.layers[0].qkv.data, lo, hi);
    job->proj_in[r] = inside(m.layers[0].proj.data, lo, hi);
    job->fc_in[r] = inside(m.layers[0].fc.data, lo, hi);
    job->fcp_in[r] = inside(m.layers[0].fcp.data, lo, hi);
    job->mapped[r] = m.mapped_bytes;
    int own_ok = 1;
    for (int l = 0; l < m.cfg.n_layer; l++) {
        const kernel_weight *w[4] = {&m.layers[l].qkv, &m.layers[l].proj, &m.layers[l].fc,
                                     &m.layers[l].fcp};
        for (int i = 0; i < 4; i++)
            own_ok &= inside(w[i]->data, lo, hi) || inside(w[i]->data, own, own_end);
    }
    job->own_ok[r] = own_ok;
    size_t n = (size_t)T_ * (size_t)m.cfg.vocab_size;
    float *scratch = malloc(n * sizeof(float)), *full = malloc(n * sizeof(float));
    int rc = scratch && full ? model_forward(comm, &m, job->tokens, T_) : comm_fail(comm, "oom");
    if (!rc)
        rc = vocab_parallel_gather_logits(comm, full, scratch, m.logits, T_, m.cfg.vocab_size, "g");
    if (!rc && r == 0) memcpy(job->logits, full, n * sizeof(float));
    free(scratch);
    free(full);
    model_shard_free(&m);
    return rc;
}

static void run(job_t *job, const model_source *src, kernel_type type, int how, int P,
                float *logits) {
    memset(job, 0, sizeof(*job));
    job->src = src;
    job->type = type;
    job->how = how;
    job->logits = logits;
    for (int t = 0; t < T_; t++) job->tokens[t] = (t * 7 + 3) % src->cfg.vocab_size;
    char err[512];
    if (comm_launch(COMM_BACKEND_THREADS, P, rank_main, job, err, sizeof(err)))
        fail_msg("%s P=%d how=%d: %s", kernel_type_info(type)->name, P, how, err);
}

static void assert_same(const float *a, const float *b, size_t n, const char *what, int P) {
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i]))
            fail_msg("%s P=%d: logit %zu = %.9g in place, %.9g copied", what, P, i, (double)a[i],
                     (double)b[i]);
}

/* What a GGUF model of cfg's family must use in place at P (layer 0). */
static void check_gguf_placement(const model_config *cfg, const job_t *j, int P) {
    int gpt2 = cfg->family == FAMILY_GPT2;
    for (int r = 0; r < P; r++) {
        assert_true(j->embed_in[r]); /* vocabulary rows: contiguous at every P */
        assert_true(j->head_in[r]);
        assert_true(j->own_ok[r]);
        assert_true(j->mapped[r] > 0);
        /* GPT-2's fused QKV is one tensor: its rows are contiguous only when one rank has all
         * heads; Llama's Q, K, V are three tensors (and Q/K are permuted in GGUF). */
        assert_int_equal(j->qkv_in[r], gpt2 && P == 1);
        /* row-parallel slices (the attention output's and MLP down's inputs) are strided
         * unless P = 1 */
        assert_int_equal(j->proj_in[r], P == 1);
        assert_int_equal(j->fcp_in[r], P == 1);
        /* GELU's MLP up is a run of output rows; SwiGLU's [gate | up] is two tensors */
        assert_int_equal(j->fc_in[r], gpt2);
    }
}

static void check_gguf(model_config cfg) {
    char *dir = temp_dir_make("inplace"), err[512], path[600];
    model_init_opts opts = {5, ST_F32, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    model_source hf;
    if (model_source_open(&hf, dir, err, sizeof(err))) fail_msg("%s", err);
    size_t n = (size_t)T_ * (size_t)cfg.vocab_size;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)),
          *c = malloc(n * sizeof(float));
    job_t *job = malloc(sizeof(*job));
    assert_true(a && b && c && job);
    const kernel_type types[] = {KERNEL_F16, KERNEL_Q8_0};
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        snprintf(path, sizeof(path), "%s/m-%s.gguf", dir, kernel_type_info(types[t])->name);
        if (model_write_gguf(path, &cfg, &hf.st, types[t], err, sizeof(err))) fail_msg("%s", err);
        model_source gg;
        if (model_source_open(&gg, path, err, sizeof(err))) fail_msg("%s", err);
        assert_non_null(gg.map);
        for (int P = 1; P <= MAX_P; P++) {
            run(job, &gg, types[t], IN_PLACE, P, a);
            check_gguf_placement(&cfg, job, P);
            run(job, &gg, types[t], BYTE_COPY, P, b);
            for (int r = 0; r < P; r++) assert_true(!job->embed_in[r] && job->mapped[r] == 0);
            run(job, &gg, types[t], VIA_F32, P, c);
            assert_same(a, b, n, "as bytes", P);
            assert_same(a, c, n, "through F32", P);
        }
        /* held as F32 (what training needs): never in place */
        run(job, &gg, KERNEL_F32, IN_PLACE, 2, b);
        for (int r = 0; r < 2; r++) assert_true(!job->embed_in[r] && job->mapped[r] == 0);
        model_source_close(&gg);
    }
    model_source_close(&hf);
    free(a);
    free(b);
    free(c);
    free(job);
    temp_dir_remove(dir);
}

static void test_gguf_gpt2(void **state) {
    (void)state;
    check_gguf(model_config_gpt2(2, 96, 3, 37, 16, GELU_TANH));
}

static void test_gguf_llama(void **state) {
    (void)state;
    check_gguf(model_config_llama(FAMILY_LLAMA, 2, 96, 3, 1, 32, 160, 41, 16));
}

/* Whether the file at path is mapped into this process (/proc/self/maps names it). */
static int is_mapped(const char *path) {
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, path)) found = 1;
    fclose(f);
    return found;
}

typedef struct {
    model_source *src; /* closed by the rank */
    const char *path;
    int vocab;
} closed_job;

/* One rank: loads, runs, closes the source, runs again, frees. */
static int closed_main(comm_t *comm, void *arg) {
    closed_job *job = arg;
    model_shard m;
    char err[512];
    int tokens[T_] = {1, 2, 3, 4, 5};
    if (model_source_load(job->src, &m, 0, 1, T_, KERNEL_F16, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    assert_non_null(m.keep);
    const unsigned char *wte = m.embed.data;
    assert_true(wte >= job->src->map && wte < job->src->map + job->src->gguf.file_size);
    assert_int_equal(model_forward(comm, &m, tokens, T_), 0);
    size_t n = (size_t)T_ * (size_t)job->vocab;
    float *before = malloc(n * sizeof(float));
    assert_non_null(before);
    memcpy(before, m.logits, n * sizeof(float));
    model_source_close(job->src);
    assert_true(is_mapped(job->path)); /* the shard's reference keeps it */
    assert_int_equal(model_forward(comm, &m, tokens, T_), 0);
    assert_memory_equal(before, m.logits, n * sizeof(float));
    model_shard_free(&m);
    assert_false(is_mapped(job->path)); /* the last reference unmapped it */
    free(before);
    return 0;
}

/* The shard keeps the mapping: closing the source first is allowed, and the last one out
 * unmaps the file. */
static void test_source_closed_first(void **state) {
    (void)state;
    model_config cfg = model_config_gpt2(1, 64, 2, 29, 8, GELU_TANH);
    char *dir = temp_dir_make("inplace"), err[512], path[600];
    model_init_opts opts = {6, ST_F16, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    model_source hf, gg;
    if (model_source_open(&hf, dir, err, sizeof(err))) fail_msg("%s", err);
    snprintf(path, sizeof(path), "%s/m.gguf", dir);
    if (model_write_gguf(path, &cfg, &hf.st, KERNEL_F16, err, sizeof(err))) fail_msg("%s", err);
    model_source_close(&hf);
    if (model_source_open(&gg, path, err, sizeof(err))) fail_msg("%s", err);
    assert_true(is_mapped(path));
    closed_job job = {&gg, path, cfg.vocab_size};
    if (comm_launch(COMM_BACKEND_THREADS, 1, closed_main, &job, err, sizeof(err)))
        fail_msg("%s", err);
    temp_dir_remove(dir);
}

/* Reads a whole file into malloc'd memory at offset `shift` (to misalign it on purpose). */
static unsigned char *slurp(const char *path, size_t shift, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len + shift + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf + shift, 1, *len, f), *len);
    fclose(f);
    return buf;
}

/* A safetensors image in memory (as the built-in model is): the embedding is used in place
 * when its bytes are 2-byte aligned and copied when not, with the same logits; GPT-2's Conv1D
 * weights ([in, out]) are transposed as 16-bit values. */
static void test_memory_image(void **state) {
    (void)state;
    model_config cfg = model_config_gpt2(2, 64, 2, 31, 8, GELU_TANH);
    char *dir = temp_dir_make("inplace"), err[512], path[600];
    model_init_opts opts = {7, ST_F16, 0, 0, 0};
    if (model_init_random(dir, &cfg, &opts, err, sizeof(err))) fail_msg("init: %s", err);
    size_t cfg_len, st_len, n = (size_t)T_ * (size_t)cfg.vocab_size;
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unsigned char *cfg_text = slurp(path, 0, &cfg_len);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    float *logits[2][3];
    job_t *job = malloc(sizeof(*job));
    assert_non_null(job);
    int placed[2];
    for (int shift = 0; shift < 2; shift++) {
        unsigned char *img = slurp(path, (size_t)shift, &st_len);
        model_source s;
        if (model_source_open_memory(&s, (const char *)cfg_text, cfg_len, img + shift, st_len,
                                     "image", err, sizeof(err)))
            fail_msg("%s", err);
        for (int how = 0; how < 3; how++) {
            logits[shift][how] = malloc(n * sizeof(float));
            assert_non_null(logits[shift][how]);
            run(job, &s, KERNEL_F16, how, 2, logits[shift][how]);
            if (how == IN_PLACE) placed[shift] = job->embed_in[0] && job->embed_in[1];
            for (int r = 0; r < 2; r++) {
                assert_true(job->own_ok[r]);
                assert_false(job->qkv_in[r] || job->proj_in[r] || job->fc_in[r] || job->fcp_in[r]);
            }
        }
        model_source_close(&s);
        free(img);
    }
    /* one of the two placements has the tensor data 2-byte aligned, the other not */
    assert_int_equal(placed[0] + placed[1], 1);
    for (int shift = 0; shift < 2; shift++)
        for (int how = 0; how < 3; how++)
            assert_same(logits[0][0], logits[shift][how], n, "image", 2);
    for (int shift = 0; shift < 2; shift++)
        for (int how = 0; how < 3; how++) free(logits[shift][how]);
    free(cfg_text);
    free(job);
    temp_dir_remove(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_gpt2),
        cmocka_unit_test(test_gguf_llama),
        cmocka_unit_test(test_source_closed_first),
        cmocka_unit_test(test_memory_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
