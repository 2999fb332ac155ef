/* gpt2_checkpoint.c — saving a sharded model and its AdamW state as full Hugging Face tensors,
 * and reading the moments back at any P (see gpt2_checkpoint.h). */
#include "linshard/gpt2_checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/atomic_file.h"
#include "linshard/split.h"

/* ---- the layout of one rank's buffer ---------------------------------------------------------
 * The same tensors, in the same order, as gpt2_shard's views (gpt2.c's assign_views), each with
 * the part of the full tensor this rank holds: the inverse of the loader's read_span /
 * read_cols / read_qkv. */

typedef enum { PIECE_SPAN, PIECE_COLS, PIECE_QKV } piece_kind;

typedef struct {
    char name[64]; /* without the "transformer." prefix */
    int ndim;
    int64_t shape[2];
    piece_kind kind;
    int sharded;
    size_t start;          /* SPAN: first element */
    size_t rows, cols, c0; /* COLS: rows x cols tensor, columns [c0, c0 + n); QKV: rows, E, c0 */
    size_t n;              /* SPAN: elements; COLS: columns; QKV: columns per part (h_local*D) */
    size_t count;          /* floats in this rank's buffer */
} piece;

static size_t n_pieces(const gpt2_config *c) {
    return 4 + 12 * (size_t)c->n_layer;
}

static void add_piece(piece *p, size_t *k, const char *name, int ndim, int64_t d0, int64_t d1,
                      piece_kind kind, int sharded, size_t start, size_t rows, size_t cols,
                      size_t c0, size_t n) {
    piece *q = &p[(*k)++];
    snprintf(q->name, sizeof(q->name), "%s", name);
    q->ndim = ndim;
    q->shape[0] = d0;
    q->shape[1] = ndim == 2 ? d1 : 0;
    q->kind = kind;
    q->sharded = sharded;
    q->start = start;
    q->rows = rows;
    q->cols = cols;
    q->c0 = c0;
    q->n = n;
    q->count = kind == PIECE_SPAN ? n : kind == PIECE_COLS ? rows * n : 3 * rows * n;
}

/* Fills p[n_pieces(c)] for rank r of P; returns the rank's buffer size in floats. */
static size_t rank_layout(const gpt2_config *c, int r, int P, piece *p) {
    size_t E = (size_t)c->n_embd, D = E / (size_t)c->n_head, F = 4 * E;
    size_t V = (size_t)c->vocab_size, N = (size_t)c->n_positions;
    size_t c0 = split_offset((size_t)c->n_head, P, r) * D;
    size_t hd = split_count((size_t)c->n_head, P, r) * D;
    size_t f0 = split_offset(F, P, r), fl = split_count(F, P, r);
    size_t v0 = split_offset(V, P, r), vl = split_count(V, P, r);
    int64_t e = (int64_t)E;
    size_t k = 0;
    char name[64];
    add_piece(p, &k, "wte.weight", 2, (int64_t)V, e, PIECE_SPAN, 1, v0 * E, 0, 0, 0, vl * E);
    add_piece(p, &k, "wpe.weight", 2, (int64_t)N, e, PIECE_SPAN, 0, 0, 0, 0, 0, N * E);
    for (int l = 0; l < c->n_layer; l++) {
#define LAYER(suffix) (snprintf(name, sizeof(name), "h.%d.%s", l, suffix), name)
        add_piece(p, &k, LAYER("ln_1.weight"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
        add_piece(p, &k, LAYER("ln_1.bias"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
        add_piece(p, &k, LAYER("attn.c_attn.weight"), 2, e, 3 * e, PIECE_QKV, 1, 0, E, E, c0, hd);
        add_piece(p, &k, LAYER("attn.c_attn.bias"), 1, 3 * e, 0, PIECE_QKV, 1, 0, 1, E, c0, hd);
        add_piece(p, &k, LAYER("attn.c_proj.weight"), 2, e, e, PIECE_SPAN, 1, c0 * E, 0, 0, 0,
                  hd * E);
        add_piece(p, &k, LAYER("attn.c_proj.bias"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
        add_piece(p, &k, LAYER("ln_2.weight"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
        add_piece(p, &k, LAYER("ln_2.bias"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
        add_piece(p, &k, LAYER("mlp.c_fc.weight"), 2, e, 4 * e, PIECE_COLS, 1, 0, E, F, f0, fl);
        add_piece(p, &k, LAYER("mlp.c_fc.bias"), 1, 4 * e, 0, PIECE_SPAN, 1, f0, 0, 0, 0, fl);
        add_piece(p, &k, LAYER("mlp.c_proj.weight"), 2, 4 * e, e, PIECE_SPAN, 1, f0 * E, 0, 0, 0,
                  fl * E);
        add_piece(p, &k, LAYER("mlp.c_proj.bias"), 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
#undef LAYER
    }
    add_piece(p, &k, "ln_f.weight", 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
    add_piece(p, &k, "ln_f.bias", 1, e, 0, PIECE_SPAN, 0, 0, 0, 0, 0, E);
    size_t total = 0;
    for (size_t i = 0; i < k; i++) total += p[i].count;
    return total;
}

static size_t numel(const piece *p) {
    return (size_t)p->shape[0] * (p->ndim == 2 ? (size_t)p->shape[1] : 1);
}

/* full <- this piece of one rank's buffer (src). */
static void place(const piece *p, const float *src, float *full) {
    size_t bytes = p->n * sizeof(float);
    if (p->kind == PIECE_SPAN) {
        memcpy(full + p->start, src, bytes);
    } else if (p->kind == PIECE_COLS) {
        for (size_t i = 0; i < p->rows; i++)
            memcpy(full + i * p->cols + p->c0, src + i * p->n, bytes);
    } else { /* [rows, 3E] = [Q | K | V]; the rank holds [rows, 3 * hd] = [Q_h | K_h | V_h] */
        for (size_t part = 0; part < 3; part++)
            for (size_t i = 0; i < p->rows; i++)
                memcpy(full + i * 3 * p->cols + part * p->cols + p->c0,
                       src + i * 3 * p->n + part * p->n, bytes);
    }
}

/* ---- saving ------------------------------------------------------------------------------- */

typedef struct {
    size_t np;         /* pieces per rank */
    piece *pieces;     /* [P][np]: every rank's layout */
    size_t *full_off;  /* [np]: offset of each full tensor in the full buffer */
    size_t full_total; /* floats of all full tensors */
    size_t *counts;    /* [P]: each rank's buffer size */
    size_t gathered;   /* sum of counts */
} save_plan;

static void plan_free(save_plan *s) {
    free(s->pieces);
    free(s->full_off);
    free(s->counts);
    memset(s, 0, sizeof(*s));
}

static int plan_make(save_plan *s, const gpt2_shard *m, char *err, size_t errlen) {
    int P = m->P;
    memset(s, 0, sizeof(*s));
    s->np = n_pieces(&m->cfg);
    s->pieces = malloc((size_t)P * s->np * sizeof(piece));
    s->full_off = malloc(s->np * sizeof(size_t));
    s->counts = malloc((size_t)P * sizeof(size_t));
    if (!s->pieces || !s->full_off || !s->counts) {
        plan_free(s);
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    for (int r = 0; r < P; r++) {
        s->counts[r] = rank_layout(&m->cfg, r, P, s->pieces + (size_t)r * s->np);
        s->gathered += s->counts[r];
    }
    for (size_t i = 0; i < s->np; i++) {
        s->full_off[i] = s->full_total;
        s->full_total += numel(&s->pieces[i]);
    }
    /* The layout must be the shard's own: same size, and ln_f where the shard has it. */
    size_t lnf = 0;
    const piece *mine = s->pieces + (size_t)m->rank * s->np;
    for (size_t i = 0; i + 2 < s->np; i++) lnf += mine[i].count;
    if (s->counts[m->rank] != m->n_params || lnf != (size_t)(m->lnf_w - m->params)) {
        plan_free(s);
        snprintf(err, errlen, "checkpoint: rank %d's buffer layout is not the loader's", m->rank);
        return -1;
    }
    return 0;
}

/* All-gathers every rank's `local` (layout of shard->params) and, on rank 0, rebuilds the full
 * tensors into full[full_total]. */
static int gather_full(comm_t *comm, const save_plan *s, const float *local, float *gathered,
                       float *full, const char *tag) {
    int P = comm_size(comm), rank = comm_rank(comm);
    int rc = comm_allgather(comm, local, s->counts[rank], gathered, s->counts, tag);
    if (rc || rank != 0) return rc;
    const float *src = gathered;
    for (int r = 0; r < P; r++) {
        const piece *pr = s->pieces + (size_t)r * s->np;
        const float *q = src;
        for (size_t i = 0; i < s->np; i++) {
            if (pr[i].sharded || r == 0) place(&pr[i], q, full + s->full_off[i]);
            q += pr[i].count;
        }
        src += s->counts[r];
    }
    return 0;
}

/* Names (prefix + "transformer." + piece name) and write entries for n_sets full buffers. */
static int write_tensors(const save_plan *s, const char *path, const char *const *prefixes,
                         float *const *fulls, int n_sets, char *err, size_t errlen) {
    size_t n = s->np * (size_t)n_sets;
    st_write_tensor *t = calloc(n, sizeof(*t));
    char *names = malloc(n * 96);
    if (!t || !names) {
        free(t);
        free(names);
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    size_t k = 0;
    for (int set = 0; set < n_sets; set++)
        for (size_t i = 0; i < s->np; i++, k++) {
            const piece *p = &s->pieces[i];
            snprintf(names + k * 96, 96, "%stransformer.%s", prefixes[set], p->name);
            t[k].name = names + k * 96;
            t[k].dtype = ST_F32;
            t[k].ndim = p->ndim;
            t[k].shape[0] = p->shape[0];
            t[k].shape[1] = p->shape[1];
            t[k].data = fulls[set] + s->full_off[i];
        }
    int rc = st_write(path, t, (int)n, err, errlen);
    free(t);
    free(names);
    return rc;
}

/* The files of one checkpoint, committed together. trainer_state.json is last: a reader that
 * sees it sees a whole checkpoint. */
static const char *const checkpoint_files[] = {"model.safetensors", "config.json",
                                               "optimizer.safetensors", "trainer_state.json"};
#define N_CHECKPOINT_FILES (sizeof(checkpoint_files) / sizeof(checkpoint_files[0]))

static void file_path(char *buf, size_t len, const char *dir, const char *name, const char *ext) {
    snprintf(buf, len, "%s/%s%s", dir, name, ext);
}

/* Renames every NAME.next over NAME (those already renamed are skipped), then drops the marker. */
static int roll_forward(const char *dir, char *err, size_t errlen) {
    char next[4096], live[4096];
    for (size_t i = 0; i < N_CHECKPOINT_FILES; i++) {
        file_path(next, sizeof(next), dir, checkpoint_files[i], ".next");
        file_path(live, sizeof(live), dir, checkpoint_files[i], "");
        /* ENOENT: another process of the same job (MPI) finished this rename first. */
        if (access(next, F_OK) == 0 && rename(next, live) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot rename to %s: %s", next, live, strerror(errno));
            return -1;
        }
    }
    file_path(live, sizeof(live), dir, "checkpoint.commit", "");
    if (unlink(live) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: cannot remove: %s", live, strerror(errno));
        return -1;
    }
    return 0;
}

int gpt2_checkpoint_recover(const char *dir, char *err, size_t errlen) {
    char marker[4096], next[4096];
    file_path(marker, sizeof(marker), dir, "checkpoint.commit", "");
    if (access(marker, F_OK) == 0) return roll_forward(dir, err, errlen); /* committed */
    for (size_t i = 0; i < N_CHECKPOINT_FILES; i++) { /* a save that never committed */
        file_path(next, sizeof(next), dir, checkpoint_files[i], ".next");
        if (unlink(next) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "%s: cannot remove: %s", next, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int write_state(const char *dir, const gpt2_train_state *st, char *err, size_t errlen) {
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        snprintf(err, errlen, "trainer_state.json: out of memory");
        return -1;
    }
    cJSON_AddNumberToObject(root, "step", (double)st->step);
    cJSON_AddNumberToObject(root, "adam_step", (double)st->adam_step);
    cJSON_AddNumberToObject(root, "seed", (double)st->seed);
    cJSON_AddNumberToObject(root, "batch", st->batch);
    cJSON_AddNumberToObject(root, "seq", st->seq);
    cJSON_AddNumberToObject(root, "lr", st->lr);
    cJSON_AddNumberToObject(root, "min_lr", st->min_lr);
    cJSON_AddNumberToObject(root, "warmup", (double)st->warmup);
    cJSON_AddNumberToObject(root, "decay_steps", (double)st->decay_steps);
    cJSON_AddNumberToObject(root, "weight_decay", st->weight_decay);
    cJSON_AddNumberToObject(root, "clip", st->clip);
    cJSON_AddNumberToObject(root, "val_fraction", st->val_fraction);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, errlen, "trainer_state.json: out of memory");
        return -1;
    }
    char path[4096];
    file_path(path, sizeof(path), dir, "trainer_state.json", ".next");
    int rc = atomic_file_write(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int gpt2_checkpoint_save(comm_t *comm, const gpt2_shard *m, const gpt2_trainer *tr, const char *dir,
                         const gpt2_train_state *state, char *err, size_t errlen) {
    save_plan s;
    int rank = comm_rank(comm);
    if (tr->n_params != m->n_params) {
        snprintf(err, errlen, "checkpoint: the trainer was made for another shard");
        return -1;
    }
    if (plan_make(&s, m, err, errlen)) return -1;
    float *gathered = malloc(s.gathered * sizeof(float));
    float *full[3] = {NULL, NULL, NULL};
    int ok = gathered != NULL;
    if (rank == 0)
        for (int i = 0; i < 3; i++) ok = ok && (full[i] = malloc(s.full_total * sizeof(float)));
    /* Every rank must take part in the collectives, so agree on the allocation first. */
    float status = ok ? 0.0f : 1.0f;
    int rc = comm_allreduce_sum(comm, &status, 1, "checkpoint.status");
    if (!rc && status != 0.0f) {
        snprintf(err, errlen, "checkpoint: out of memory gathering %zu MiB",
                 s.gathered * sizeof(float) >> 20);
        rc = -1;
    }
    if (!rc) rc = gather_full(comm, &s, m->params, gathered, full[0], "checkpoint.params");
    if (!rc) rc = gather_full(comm, &s, tr->m, gathered, full[1], "checkpoint.adam_m");
    if (!rc) rc = gather_full(comm, &s, tr->v, gathered, full[2], "checkpoint.adam_v");
    if (rc > 0) snprintf(err, errlen, "checkpoint: %s", comm_status_string(rc));
    float wrote = 0.0f;
    if (!rc && rank == 0) {
        char path[4096];
        static const char *const model_prefix[] = {""};
        static const char *const opt_prefix[] = {"m.", "v."};
        /* Finish or discard an earlier interrupted save, write the new files beside the live
         * ones, commit them with the marker, move them into place. */
        int w = gpt2_checkpoint_recover(dir, err, errlen);
        file_path(path, sizeof(path), dir, "model.safetensors", ".next");
        if (!w) w = write_tensors(&s, path, model_prefix, full, 1, err, errlen);
        file_path(path, sizeof(path), dir, "config.json", ".next");
        if (!w) w = gpt2_config_write(path, &m->cfg, err, errlen);
        file_path(path, sizeof(path), dir, "optimizer.safetensors", ".next");
        if (!w) w = write_tensors(&s, path, opt_prefix, full + 1, 2, err, errlen);
        if (!w) w = write_state(dir, state, err, errlen);
        file_path(path, sizeof(path), dir, "checkpoint.commit", "");
        if (!w) w = atomic_file_write(path, "commit\n", 7, err, errlen);
        if (!w) w = roll_forward(dir, err, errlen);
        wrote = w ? 1.0f : 0.0f;
    }
    if (!rc) {
        rc = comm_broadcast(comm, &wrote, 1, 0, "checkpoint.status");
        if (rc > 0) snprintf(err, errlen, "checkpoint: %s", comm_status_string(rc));
        if (!rc && wrote != 0.0f) {
            if (rank != 0) snprintf(err, errlen, "checkpoint: rank 0 could not write %s", dir);
            rc = -1;
        }
    }
    for (int i = 0; i < 3; i++) free(full[i]);
    free(gathered);
    plan_free(&s);
    return rc ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int get_num(const cJSON *root, const char *key, double *out, const char *path, char *err,
                   size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "%s: missing or non-numeric \"%s\"", path, key);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

int gpt2_checkpoint_load_state(const char *dir, gpt2_train_state *st, char *err, size_t errlen) {
    if (gpt2_checkpoint_recover(dir, err, errlen)) return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/trainer_state.json", dir);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "no checkpoint in %s (cannot open trainer_state.json)", dir);
        return -1;
    }
    char *text = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        len < (1 << 20) && (text = malloc((size_t)len + 1)) != NULL)
        text[fread(text, 1, (size_t)len, fp)] = '\0';
    fclose(fp);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read", path);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "%s: not a JSON object", path);
        return -1;
    }
    double v[12];
    static const char *const keys[12] = {"step",        "adam_step",    "seed",   "batch",
                                         "seq",         "lr",           "min_lr", "warmup",
                                         "decay_steps", "weight_decay", "clip",   "val_fraction"};
    int rc = 0;
    for (int i = 0; i < 12 && !rc; i++) rc = get_num(root, keys[i], &v[i], path, err, errlen);
    cJSON_Delete(root);
    if (rc) return -1;
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 1 || v[4] < 1) {
        snprintf(err, errlen, "%s: step, adam_step, seed, batch or seq out of range", path);
        return -1;
    }
    memset(st, 0, sizeof(*st));
    st->step = (long)v[0];
    st->adam_step = (long)v[1];
    st->seed = (uint64_t)v[2];
    st->batch = (int)v[3];
    st->seq = (int)v[4];
    st->lr = v[5];
    st->min_lr = v[6];
    st->warmup = (long)v[7];
    st->decay_steps = (long)v[8];
    st->weight_decay = v[9];
    st->clip = v[10];
    st->val_fraction = v[11];
    return 0;
}

/* A view of the file holding only the tensors named prefix + X, renamed X, so the model loader
 * (and its slicing) reads them. view shares f's mapping; free view->tensors only. */
static int prefixed_view(const st_file *f, const char *prefix, st_file *view) {
    size_t pl = strlen(prefix);
    *view = *f;
    view->tensors = malloc(((size_t)f->n_tensors + 1) * sizeof(st_tensor));
    if (!view->tensors) return -1;
    view->n_tensors = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (strncmp(f->tensors[i].name, prefix, pl) == 0) {
            st_tensor *t = &view->tensors[view->n_tensors++];
            *t = f->tensors[i];
            memmove(t->name, t->name + pl, strlen(t->name + pl) + 1);
        }
    return 0;
}

int gpt2_checkpoint_load_optimizer(const gpt2_shard *m, gpt2_trainer *tr, const char *dir,
                                   char *err, size_t errlen) {
    gpt2_train_state st;
    if (tr->n_params != m->n_params) {
        snprintf(err, errlen, "checkpoint: the trainer was made for another shard");
        return -1;
    }
    if (gpt2_checkpoint_load_state(dir, &st, err, errlen)) return -1;
    char path[4096], msg[512];
    snprintf(path, sizeof(path), "%s/optimizer.safetensors", dir);
    st_file f;
    if (st_open(&f, path, err, errlen)) return -1;
    static const char *const prefixes[2] = {"m.", "v."};
    float *dst[2] = {tr->m, tr->v};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        st_file view;
        gpt2_shard tmp;
        if (prefixed_view(&f, prefixes[k], &view)) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
        if (gpt2_check_weights(&m->cfg, &view, msg, sizeof(msg)) ||
            gpt2_shard_load(&tmp, &m->cfg, &view, m->rank, m->P, 1, msg, sizeof(msg))) {
            /* The loader names model.safetensors; say which file and which moment. */
            const char *colon = strstr(msg, ": ");
            snprintf(err, errlen, "%s (%s*): %s", path, prefixes[k], colon ? colon + 2 : msg);
            rc = -1;
        } else {
            if (tmp.n_params == m->n_params)
                memcpy(dst[k], tmp.params, m->n_params * sizeof(float));
            else {
                snprintf(err, errlen, "%s: moments do not match the shard", path);
                rc = -1;
            }
            gpt2_shard_free(&tmp);
        }
        free(view.tensors);
    }
    st_close(&f);
    if (!rc) tr->step = st.adam_step;
    return rc;
}
