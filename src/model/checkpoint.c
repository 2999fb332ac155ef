/* checkpoint.c — saving a sharded model and its AdamW state as full Hugging Face tensors,
 * and reading the moments back at any P (see checkpoint.h), all through the parameter table. */
#include "linshard/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linshard/atomic_file.h"
#include "linshard/params.h"
#include "linshard/split.h"

/* ---- the full tensors and every rank's part of them ---------------------------------------
 * Each rank's buffer is its parameter table (params.h); the full tensors are the checkpoint
 * tensors the table's sources name, each once. Rebuilding a full tensor places every rank's
 * blocks of it, the inverse of loading (replicated ones from rank 0 only). */

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t off; /* in the full buffer */
} full_tensor;

typedef struct {
    int P;
    model_param **tables; /* [P] each rank's table */
    int *n_table;         /* [P] */
    full_tensor *full;    /* unique checkpoint tensors, in table order */
    int n_full;
    size_t full_total; /* floats of all full tensors */
    size_t *counts;    /* [P]: each rank's buffer size */
    size_t gathered;   /* sum of counts */
} save_plan;

static void plan_free(save_plan *s) {
    for (int r = 0; s->tables && r < s->P; r++) free(s->tables[r]);
    free(s->tables);
    free(s->n_table);
    free(s->full);
    free(s->counts);
    memset(s, 0, sizeof(*s));
}

static int full_index(const save_plan *s, const char *name) {
    for (int i = 0; i < s->n_full; i++)
        if (!strcmp(s->full[i].name, name)) return i;
    return -1;
}

static int plan_make(save_plan *s, const model_shard *m, char *err, size_t errlen) {
    int P = m->P, max = model_param_table_max(&m->cfg);
    memset(s, 0, sizeof(*s));
    s->P = P;
    s->tables = calloc((size_t)P, sizeof(model_param *));
    s->n_table = calloc((size_t)P, sizeof(int));
    s->full = malloc((size_t)(3 * max) * sizeof(full_tensor));
    s->counts = malloc((size_t)P * sizeof(size_t));
    int ok = s->tables && s->n_table && s->full && s->counts;
    for (int r = 0; ok && r < P; r++) {
        if (!(s->tables[r] = malloc((size_t)max * sizeof(model_param)))) ok = 0;
        if (!ok) break;
        s->n_table[r] = model_param_table(&m->cfg, P, r, s->tables[r], NULL);
        s->counts[r] = model_param_table_floats(s->tables[r], s->n_table[r]);
        s->gathered += s->counts[r];
    }
    if (!ok) {
        plan_free(s);
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    for (int i = 0; i < s->n_table[0]; i++)
        for (int j = 0; j < s->tables[0][i].n_src; j++) {
            const param_source *src = &s->tables[0][i].src[j];
            if (full_index(s, src->name) >= 0) continue;
            full_tensor *f = &s->full[s->n_full++];
            snprintf(f->name, sizeof(f->name), "%s", src->name);
            f->ndim = src->ndim;
            f->shape[0] = src->shape[0];
            f->shape[1] = src->ndim == 2 ? src->shape[1] : 0;
            f->off = s->full_total;
            s->full_total += (size_t)src->shape[0] * (src->ndim == 2 ? (size_t)src->shape[1] : 1);
        }
    if (s->counts[m->rank] != m->n_params) {
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
        const model_param *table = s->tables[r];
        for (int i = 0; i < s->n_table[r]; i++) {
            if (!table[i].sharded && r != 0) continue;
            for (int j = 0; j < table[i].n_src; j++) {
                const full_tensor *f = &s->full[full_index(s, table[i].src[j].name)];
                model_param_place(&table[i].src[j], &table[i], src + table[i].offset,
                                  full + f->off);
            }
        }
        src += s->counts[r];
    }
    return 0;
}

/* Names (prefix + the family's save name) and write entries for n_sets full buffers. */
static int write_tensors(const save_plan *s, const model_config *cfg, const char *path,
                         const char *const *prefixes, float *const *fulls, int n_sets, char *err,
                         size_t errlen) {
    size_t n = (size_t)s->n_full * (size_t)n_sets;
    st_write_tensor *t = calloc(n, sizeof(*t));
    char *names = malloc(n * 128);
    if (!t || !names) {
        free(t);
        free(names);
        snprintf(err, errlen, "checkpoint: out of memory");
        return -1;
    }
    size_t k = 0;
    for (int set = 0; set < n_sets; set++)
        for (int i = 0; i < s->n_full; i++, k++) {
            const full_tensor *f = &s->full[i];
            char saved[112];
            model_save_name(cfg, f->name, saved, sizeof(saved));
            snprintf(names + k * 128, 128, "%s%s", prefixes[set], saved);
            t[k].name = names + k * 128;
            t[k].dtype = ST_F32;
            t[k].ndim = f->ndim;
            t[k].shape[0] = f->shape[0];
            t[k].shape[1] = f->shape[1];
            t[k].data = fulls[set] + f->off;
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

/* The pid of a writer's temporary "NAME.tmp.<pid>" (atomic_file, st_write), or 0. */
static long temp_pid(const char *name) {
    const char *tmp = strstr(name, ".tmp."), *next;
    if (!tmp) return 0;
    while ((next = strstr(tmp + 1, ".tmp.")) != NULL) tmp = next;
    const char *digits = tmp + 5;
    if (!*digits || strlen(digits) > 9) return 0;
    for (const char *p = digits; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return strtol(digits, NULL, 10);
}

/* Removes the temporaries of writers that were killed: their pid is gone (ESRCH). A live pid
 * (this process, another rank's, or an unrelated process that reused it) keeps its file: a
 * stray temporary is harmless, removing one being written is not. */
static void remove_dead_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        long pid = temp_pid(e->d_name);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        file_path(path, sizeof(path), dir, e->d_name, "");
        unlink(path);
    }
    closedir(d);
}

int checkpoint_recover(const char *dir, char *err, size_t errlen) {
    char marker[4096], next[4096];
    remove_dead_temps(dir);
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

static int write_state(const char *dir, const train_state *st, char *err, size_t errlen) {
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
    cJSON_AddNumberToObject(root, "steps", (double)st->steps);
    cJSON_AddNumberToObject(root, "save_every", (double)st->save_every);
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

int checkpoint_save(comm_t *comm, const model_shard *m, const model_trainer *tr, const char *dir,
                    const train_state *state, char *err, size_t errlen) {
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
        int w = checkpoint_recover(dir, err, errlen);
        file_path(path, sizeof(path), dir, "model.safetensors", ".next");
        if (!w) w = write_tensors(&s, &m->cfg, path, model_prefix, full, 1, err, errlen);
        file_path(path, sizeof(path), dir, "config.json", ".next");
        if (!w) w = model_config_write(path, &m->cfg, err, errlen);
        file_path(path, sizeof(path), dir, "optimizer.safetensors", ".next");
        if (!w) w = write_tensors(&s, &m->cfg, path, opt_prefix, full + 1, 2, err, errlen);
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

/* What trainer_state.json may hold: a file edited by hand or damaged must be refused, not
 * trusted: a val_fraction of 1.5 underflows the training share, and converting an
 * out-of-range double (a seed of 1e30) to an integer is undefined behaviour, so each range is
 * checked on the double before any conversion. Integers must be whole numbers; the bounds are
 * train's option limits. Optional fields (added later) take their default when missing. */
typedef struct {
    const char *key;
    double lo, hi;
    int lo_open, hi_open, integer, optional;
    double dflt;
    const char *want; /* for the message */
} state_field;

#define MAX_STEPS 1073741824.0 /* 2^30, train's --steps limit */
static const state_field state_fields[] = {
    {"step", 0, MAX_STEPS, 0, 0, 1, 0, 0, "an integer in [0, 2^30]"},
    {"adam_step", 0, 2147483647.0, 0, 0, 1, 0, 0, "an integer in [0, 2^31)"},
    {"seed", 0, 2147483647.0, 0, 0, 1, 0, 0, "an integer in [0, 2^31)"},
    {"batch", 1, 65536, 0, 0, 1, 0, 0, "an integer in [1, 65536]"},
    {"seq", 1, 65536, 0, 0, 1, 0, 0, "an integer in [1, 65536]"},
    {"lr", 0, DBL_MAX, 1, 0, 0, 0, 0, "a finite number > 0"},
    {"min_lr", 0, DBL_MAX, 1, 0, 0, 0, 0, "a finite number > 0"},
    {"warmup", 0, MAX_STEPS, 0, 0, 1, 0, 0, "an integer in [0, 2^30]"},
    {"decay_steps", 0, MAX_STEPS, 0, 0, 1, 0, 0, "an integer in [0, 2^30]"},
    {"weight_decay", 0, DBL_MAX, 0, 0, 0, 0, 0, "a finite number >= 0"},
    {"clip", 0, DBL_MAX, 0, 0, 0, 0, 0, "a finite number >= 0"},
    {"val_fraction", 0, 1, 0, 1, 0, 0, 0, "a number in [0, 1)"},
    {"steps", 1, MAX_STEPS, 0, 0, 1, 1, 100, "an integer in [1, 2^30]"},
    {"save_every", 0, MAX_STEPS, 0, 0, 1, 1, 0, "an integer in [0, 2^30]"},
};
#define N_STATE_FIELDS (sizeof(state_fields) / sizeof(state_fields[0]))

static int get_field(const cJSON *root, const state_field *f, double *out, const char *path,
                     char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, f->key);
    if (!v && f->optional) {
        *out = f->dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "%s: missing or non-numeric \"%s\"", path, f->key);
        return -1;
    }
    double x = v->valuedouble;
    /* NaN and the infinities fail every comparison, so they land here too */
    int in = (f->lo_open ? x > f->lo : x >= f->lo) && (f->hi_open ? x < f->hi : x <= f->hi);
    if (in && f->integer && x != (double)(long long)x) in = 0; /* in range: the cast is defined */
    if (!in) {
        snprintf(err, errlen, "%s: \"%s\" is %g, not %s", path, f->key, x, f->want);
        return -1;
    }
    *out = x;
    return 0;
}

int checkpoint_load_state(const char *dir, train_state *st, char *err, size_t errlen) {
    if (checkpoint_recover(dir, err, errlen)) return -1;
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
    double v[N_STATE_FIELDS];
    int rc = 0;
    for (size_t i = 0; i < N_STATE_FIELDS && !rc; i++)
        rc = get_field(root, &state_fields[i], &v[i], path, err, errlen);
    cJSON_Delete(root);
    if (rc) return -1;
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
    st->steps = (long)v[12];
    st->save_every = (long)v[13];
    return 0;
}

int checkpoint_load_optimizer(const model_shard *m, model_trainer *tr, const char *dir, char *err,
                              size_t errlen) {
    train_state st;
    if (tr->n_params != m->n_params) {
        snprintf(err, errlen, "checkpoint: the trainer was made for another shard");
        return -1;
    }
    if (checkpoint_load_state(dir, &st, err, errlen)) return -1;
    char path[4096], msg[512];
    snprintf(path, sizeof(path), "%s/optimizer.safetensors", dir);
    st_set f;
    if (st_set_open_file(&f, path, err, errlen)) return -1;
    /* The moments are sliced exactly as the parameters: the same table reads "m." + name. */
    static const char *const prefixes[2] = {"m.", "v."};
    float *dst[2] = {tr->m, tr->v};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++)
        for (int i = 0; i < m->n_table && !rc; i++)
            if (model_param_read(&m->cfg, &m->table[i], &f, prefixes[k],
                                 dst[k] + m->table[i].offset, msg, sizeof(msg))) {
                snprintf(err, errlen, "%s: %s", path, msg);
                rc = -1;
            }
    st_set_close(&f);
    if (!rc) tr->step = st.adam_step;
    return rc;
}
