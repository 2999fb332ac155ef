/* cmd_train.c — `linshard train`: GPT-2 trained on a text file, split over P ranks, with
 * checkpoints that any P resumes (gpt2_checkpoint.h).
 *
 * Every rank runs the same loop and draws the same batches: step s's B sequences start at
 * positions drawn from an RNG seeded with (seed, s), so a run's data order is the same at every
 * P and continues unchanged after --resume. Rank 0 prints progress, keeps the loss log and
 * writes OUT/train_log.csv (and OUT/loss.png with gnuplot, if installed) at each checkpoint,
 * just before committing it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/atomic_file.h"
#include "linshard/model.h"
#include "linshard/checkpoint.h"
#include "linshard/kernels.h"
#include "linshard/train.h"
#include "linshard/loss.h"
#include "linshard/sampling.h"
#include "linshard/timer.h"
#include "linshard/tokenizer.h"

static const char train_usage[] =
    "usage: linshard train --data FILE --out DIR [--model DIR | --layers L --embd E --heads H\n"
    "                      --ctx C] [--tp P] [--steps N] [--batch B] [--seq T] [--lr X]\n"
    "                      [--warmup W] [--decay-steps D] [--weight-decay D] [--clip C]\n"
    "                      [--save-every K] [--resume | --overwrite] [--seed S]\n"
    "                      [--val-fraction F]\n"
    "\n"
    "Trains GPT-2 on the text in FILE (GPT-2 tokenizer) with the model split over P ranks\n"
    "(threads): per step B sequences of T+1 tokens (gradient accumulation), AdamW, warm-up and\n"
    "cosine learning rate, clipping by the global gradient norm. One progress line per step on\n"
    "stderr. Checkpoints (Hugging Face layout, loadable by every command, resumable at any P)\n"
    "go to DIR, with DIR/train_log.csv (step,loss,val_loss,tokens_per_s) and DIR/loss.png\n"
    "(if gnuplot is installed).\n"
    "\n"
    "  --data FILE         training text; the last F of its tokens are held out for validation\n"
    "  --out DIR           checkpoint directory (created if missing; a non-empty DIR needs\n"
    "                      --resume or --overwrite)\n"
    "  --model DIR         start from this checkpoint; else a seeded random GPT-2 of\n"
    "  --layers L --embd E --heads H --ctx C   (default 2, 64, 4, 64; GPT-2 vocabulary)\n"
    "  --tp P              ranks (default 1)\n"
    "  --backend B         threads (default) or mpi, the default under mpirun -np P (--tp is P);\n"
    "                      rank 0 prints and writes the log and the checkpoints\n"
    "  --steps N           train until step N (default 100)\n"
    "  --batch B           sequences per step (default 4)\n"
    "  --seq T             tokens per sequence (default: the model's context, at most 64)\n"
    "  --lr X              peak learning rate (default 1e-3); decays to X/10\n"
    "  --warmup W          linear warm-up steps (default 0)\n"
    "  --decay-steps D     the cosine decay ends at step D (default N)\n"
    "  --weight-decay D    AdamW decoupled weight decay (default 0.1)\n"
    "  --clip C            clip the gradient to global norm C (default 1; 0 = off)\n"
    "  --save-every K      checkpoint and validation loss every K steps (default 0: at the end)\n"
    "  --resume            continue from DIR's checkpoint (any P); options not given (--steps\n"
    "                      and --save-every included) are taken from the checkpoint\n"
    "  --overwrite         start afresh in a non-empty DIR, replacing its checkpoint and log\n"
    "  --seed S            initial weights and batches (default 1): the same at every P\n"
    "  --val-fraction F    share of the tokens held out (default 0.1)\n"
    "  -h, --help          this text\n";

enum {
    O_DATA = 1,
    O_OUT,
    O_MODEL,
    O_LAYERS,
    O_EMBD,
    O_HEADS,
    O_CTX,
    O_TP,
    O_STEPS,
    O_BATCH,
    O_SEQ,
    O_LR,
    O_WARMUP,
    O_DECAY,
    O_WD,
    O_CLIP,
    O_SAVE,
    O_RESUME,
    O_OVERWRITE,
    O_SEED,
    O_VAL,
    O_BACKEND,
    O_HELP,
    O_COUNT
};

typedef struct {
    /* in */
    const char *out;
    model_config cfg;
    const st_set *file;
    const int *train;
    size_t n_train;
    const int *val;
    size_t n_val;
    train_state st; /* schedule, seed, batch, seq; st.step = the step to start from */
    long steps, save_every;
    int resume;
    /* rank 0 */
    char *log;
    size_t log_len, log_cap;
    int png;
} train_job;

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double lr_at(const train_state *st, long s) {
    if (s < st->warmup) return st->lr * (double)(s + 1) / (double)st->warmup;
    long span = st->decay_steps - st->warmup;
    double progress = span > 0 ? (double)(s - st->warmup) / (double)span : 1.0;
    if (progress > 1) progress = 1;
    return st->min_lr + 0.5 * (st->lr - st->min_lr) * (1 + cos(3.14159265358979323846 * progress));
}

static int log_append(train_job *job, const char *line) {
    size_t n = strlen(line);
    if (job->log_len + n + 1 > job->log_cap) {
        size_t cap = (job->log_cap + n + 1) * 2;
        char *p = realloc(job->log, cap);
        if (!p) return -1;
        job->log = p;
        job->log_cap = cap;
    }
    memcpy(job->log + job->log_len, line, n + 1);
    job->log_len += n;
    return 0;
}

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && len + strlen(prog) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, p, prog);
            if (access(buf, X_OK) == 0) return 1;
        }
        if (!colon) break;
        p = colon + 1;
    }
    return 0;
}

/* OUT/train_log.csv atomically, then OUT/loss.png if gnuplot is there (never an error). */
static int write_log(train_job *job, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/train_log.csv", job->out);
    atomic_file f;
    if (atomic_file_open(&f, path, err, errlen)) return -1;
    fputs("step,loss,val_loss,tokens_per_s\n", f.fp);
    if (job->log) fputs(job->log, f.fp);
    if (atomic_file_commit(&f, err, errlen)) return -1;
    if (!job->png || strchr(job->out, '\'') || strchr(job->out, '\n')) return 0;
    /* gnuplot reads a script file: started with an argument vector, never through a shell. */
    char script[4200], tmp[4200], png[4200];
    snprintf(script, sizeof(script), "%s/loss.gp.tmp", job->out);
    snprintf(tmp, sizeof(tmp), "%s/loss.png.tmp", job->out);
    snprintf(png, sizeof(png), "%s/loss.png", job->out);
    FILE *gp = fopen(script, "w");
    if (!gp) return 0;
    fprintf(gp,
            "set terminal png size 800,500\nset output '%s'\n"
            "set datafile separator ','\nset xlabel 'step'\nset ylabel 'loss'\nset key top right\n"
            "plot '%s' using 1:2 skip 1 with lines title 'train', "
            "'' using 1:3 skip 1 with linespoints title 'validation'\n",
            tmp, path);
    int wrote = fclose(gp) == 0;
    const char *argv[] = {"gnuplot", script, NULL};
    if (wrote && cli_spawn(argv, 1, NULL, NULL) == 0 && rename(tmp, png) == 0) {
        unlink(script);
        return 0;
    }
    unlink(tmp);
    unlink(script);
    return 0;
}

static int val_loss(comm_t *comm, model_shard *m, const train_job *job, float *scratch,
                    double *out) {
    int T = job->st.seq;
    if (job->n_val < 2) return 1; /* nothing held out */
    if ((size_t)T > job->n_val - 1) T = (int)(job->n_val - 1);
    size_t windows = (job->n_val - 1) / (size_t)T;
    if (windows > 8) windows = 8;
    double sum = 0;
    for (size_t w = 0; w < windows; w++) {
        const int *x = job->val + w * (size_t)T;
        float loss;
        int rc = model_forward(comm, m, x, T);
        if (!rc)
            rc = vocab_parallel_cross_entropy(comm, m->logits, T, m->v0, m->v_local,
                                              m->cfg.vocab_size, x + 1, &loss, NULL, scratch,
                                              "val_loss");
        if (rc) return -rc;
        sum += loss;
    }
    *out = sum / (double)windows;
    return 0;
}

/* A diverged run (a learning rate far too high) must not save what it diverged to: the first
 * non-finite loss, gradient norm, validation loss or weight stops it with one line naming the
 * step, and the last checkpoint (step `saved`) stays as it was. */
static int diverged(comm_t *comm, long step, const char *what, double value, long saved) {
    char kept[64] = "no checkpoint was written";
    if (saved > 0) snprintf(kept, sizeof(kept), "the checkpoint of step %ld stays", saved);
    return comm_fail(comm,
                     "step %ld: the %s is %s: training diverged; stopped without saving (%s; "
                     "a lower --lr?)",
                     step, what,
                     isnan(value) ? "NaN"
                     : value > 0  ? "+inf"
                                  : "-inf",
                     kept);
}

static int train_rank(comm_t *comm, void *arg) {
    train_job *job = arg;
    int r = comm_rank(comm), P = comm_size(comm), rc = 0;
    int B = job->st.batch, T = job->st.seq;
    model_shard m;
    model_trainer tr;
    char err[512];
    if (model_shard_load(&m, &job->cfg, job->file, r, P, T, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (model_trainer_init(&tr, &m, T, err, sizeof(err))) {
        model_shard_free(&m);
        return comm_fail(comm, "%s", err);
    }
    tr.grad_scale = 1.0f / (float)B;
    float *scratch = malloc(vocab_parallel_cross_entropy_scratch_floats(T, P) * sizeof(float));
    if (!scratch) rc = comm_fail(comm, "out of memory on rank %d", r);
    if (!rc && job->resume && checkpoint_load_optimizer(&m, &tr, job->out, err, sizeof(err)))
        rc = comm_fail(comm, "%s", err);
    train_state st = job->st;
    double t_start = timer_seconds();
    long first = st.step;
    for (long s = first; s < job->steps && !rc; s++) {
        double t0 = timer_seconds();
        sampler_rng rng;
        sampler_seed(&rng, mix64(mix64(st.seed) ^ (uint64_t)s));
        model_trainer_zero_grad(&tr);
        double loss_sum = 0;
        size_t starts = job->n_train - (size_t)T; /* sequences of T + 1 tokens */
        for (int b = 0; b < B && !rc; b++) {
            size_t at = (size_t)(sampler_uniform(&rng) * (double)starts);
            const int *x = job->train + at;
            float loss;
            rc = model_train_forward_backward(comm, &m, &tr, x, x + 1, T, &loss);
            loss_sum += loss;
        }
        double norm = 0;
        if (!rc) rc = model_grad_norm(comm, &m, &tr, &norm);
        if (rc) break;
        /* Both reduced over the ranks: every rank stops here alike, before the update. */
        if (!isfinite(loss_sum) || !isfinite(norm)) {
            rc = !isfinite(loss_sum) ? diverged(comm, s + 1, "loss", loss_sum / B, st.step)
                                     : diverged(comm, s + 1, "gradient norm", norm, st.step);
            break;
        }
        float clip = st.clip > 0 && norm > st.clip ? (float)(st.clip / norm) : 1.0f;
        double lr = lr_at(&st, s);
        model_adamw_step(&m, &tr, (float)lr, 0.9f, 0.95f, 1e-8f, (float)st.weight_decay, clip);
        long done = s + 1;
        int save = done == job->steps || (job->save_every > 0 && done % job->save_every == 0);
        double vloss = 0;
        int have_val = 0;
        if (save) {
            int v = val_loss(comm, &m, job, scratch, &vloss);
            if (v < 0) {
                rc = -v;
                break;
            }
            have_val = v == 0;
            if (have_val && !isfinite(vloss)) {
                rc = diverged(comm, done, "validation loss", vloss, st.step);
                break;
            }
            /* Each rank checks its own shard; one that fails ends the save on every rank. */
            for (size_t i = 0; i < m.n_params; i++)
                if (!isfinite(m.params[i])) {
                    char what[64];
                    snprintf(what, sizeof(what), "weight %zu of rank %d", i, r);
                    rc = diverged(comm, done, what, m.params[i], st.step);
                    break;
                }
            if (rc) break;
        }
        double dt = timer_seconds() - t0, tps = (double)B * T / dt;
        double mean = loss_sum / B;
        if (r == 0) {
            char line[256], vbuf[32] = "";
            if (have_val) snprintf(vbuf, sizeof(vbuf), "%.6f", vloss);
            snprintf(line, sizeof(line), "%ld,%.6f,%s,%.1f\n", done, mean, vbuf, tps);
            if (log_append(job, line)) rc = comm_fail(comm, "out of memory for the loss log");
            double per = (timer_seconds() - t_start) / (double)(done - first);
            fprintf(stderr,
                    "train: step %ld/%ld  loss %.4f%s%s  lr %.2e  norm %.3f  %.0f tokens/s  "
                    "%.1f s left\n",
                    done, job->steps, mean, have_val ? "  val " : "", vbuf, lr, norm, tps,
                    per * (double)(job->steps - done));
        }
        if (rc) break;
        if (save) {
            /* The log is written before the checkpoint is committed, never after: a run killed
             * between the two leaves rows beyond the checkpoint's step, which --resume drops
             * (load_old_log keeps rows up to the checkpoint's step) and computes again, whereas
             * the other order would lose the rows of a committed step for good. Every rank
             * waits for the log, so none starts the save (or the next step) on a failed one. */
            if (r == 0 && write_log(job, err, sizeof(err))) rc = comm_fail(comm, "%s", err);
            int b = comm_barrier(comm, "train.logged");
            if (!rc) rc = b;
            if (rc) break;
            st.step = done;
            st.adam_step = tr.step;
            if (checkpoint_save(comm, &m, &tr, job->out, &st, err, sizeof(err))) {
                rc = comm_fail(comm, "%s", err);
                break;
            }
        }
    }
    free(scratch);
    model_trainer_free(&tr);
    model_shard_free(&m);
    return rc;
}

/* Reads the whole file; returns 0 or -1 with errno-based message. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot open data file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                buf = NULL;
            }
            buf = p;
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "cannot read data file %s", path);
        return -1;
    }
    *text = buf;
    *len = n;
    return 0;
}

/* Keeps the rows of an earlier OUT/train_log.csv up to step `upto` (resume): rows beyond it
 * were logged by a run killed before it committed their checkpoint (see train_rank), and are
 * trained again; the next save rewrites the file without them. */
static int load_old_log(train_job *job, long upto) {
    char path[4096], line[512];
    snprintf(path, sizeof(path), "%s/train_log.csv", job->out);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof(line), fp)) {
        char *end;
        long step = strtol(line, &end, 10);
        if (end != line && *end == ',' && step >= 1 && step <= upto) rc = log_append(job, line);
    }
    fclose(fp);
    return rc;
}

/* The probe's name ends in ".tmp.<pid>", so checkpoint_recover removes it if a kill leaves it. */
#define PROBE_PREFIX ".write-probe.tmp."

/* Whether dir exists and holds anything but "." / ".." and write probes (another MPI process
 * of this job may be probing it at the same moment). */
static int dir_has_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0; /* missing, or not a directory: mkdir or the write probe says so */
    const struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL)
        found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                strncmp(e->d_name, PROBE_PREFIX, strlen(PROBE_PREFIX));
    closedir(d);
    return found;
}

/* Creates and removes a file in dir, so an unwritable --out is found before the training
 * rather than at the first save, after the work. */
static int probe_writable(const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/" PROBE_PREFIX "%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write to %s: %s", dir, strerror(errno));
        return -1;
    }
    close(fd);
    if (unlink(path) != 0) {
        snprintf(err, errlen, "cannot remove the probe file in %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int cmd_train(int argc, char **argv) {
    static const struct option longopts[] = {{"data", required_argument, 0, O_DATA},
                                             {"out", required_argument, 0, O_OUT},
                                             {"model", required_argument, 0, O_MODEL},
                                             {"layers", required_argument, 0, O_LAYERS},
                                             {"embd", required_argument, 0, O_EMBD},
                                             {"heads", required_argument, 0, O_HEADS},
                                             {"ctx", required_argument, 0, O_CTX},
                                             {"tp", required_argument, 0, O_TP},
                                             {"steps", required_argument, 0, O_STEPS},
                                             {"batch", required_argument, 0, O_BATCH},
                                             {"seq", required_argument, 0, O_SEQ},
                                             {"lr", required_argument, 0, O_LR},
                                             {"warmup", required_argument, 0, O_WARMUP},
                                             {"decay-steps", required_argument, 0, O_DECAY},
                                             {"weight-decay", required_argument, 0, O_WD},
                                             {"clip", required_argument, 0, O_CLIP},
                                             {"save-every", required_argument, 0, O_SAVE},
                                             {"resume", no_argument, 0, O_RESUME},
                                             {"overwrite", no_argument, 0, O_OVERWRITE},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"val-fraction", required_argument, 0, O_VAL},
                                             {"backend", required_argument, 0, O_BACKEND},
                                             {"help", no_argument, 0, O_HELP},
                                             {0, 0, 0, 0}};
    const char *data = NULL, *out = NULL, *model = NULL;
    long L = 2, E = 64, H = 4, C = 64, P = 1, steps = 100, batch = 4, seq = 0, warmup = 0,
         decay = 0, save_every = 0, seed = 1, v;
    double lr = 1e-3, wd = 0.1, clip = 1.0, valf = 0.1;
    int given[O_COUNT] = {0}, c;
    comm_backend_t backend = COMM_BACKEND_THREADS;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c > 0 && c < O_COUNT) given[c] = 1;
        int bad = 0;
        switch (c) {
        case O_DATA:
            data = optarg;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_MODEL:
            model = optarg;
            break;
        case O_LAYERS:
            bad = cli_parse_int(optarg, 1, 1024, &L);
            break;
        case O_EMBD:
            bad = cli_parse_int(optarg, 1, 1 << 16, &E);
            break;
        case O_HEADS:
            bad = cli_parse_int(optarg, 1, 1024, &H);
            break;
        case O_CTX:
            bad = cli_parse_int(optarg, 2, 1 << 16, &C);
            break;
        case O_TP:
            bad = cli_parse_int(optarg, 1, 256, &P);
            break;
        case O_STEPS:
            bad = cli_parse_int(optarg, 1, 1L << 30, &steps);
            break;
        case O_BATCH:
            bad = cli_parse_int(optarg, 1, 1 << 16, &batch);
            break;
        case O_SEQ:
            bad = cli_parse_int(optarg, 1, 1 << 16, &seq);
            break;
        case O_WARMUP:
            bad = cli_parse_int(optarg, 0, 1L << 30, &warmup);
            break;
        case O_DECAY:
            bad = cli_parse_int(optarg, 1, 1L << 30, &decay);
            break;
        case O_SAVE:
            bad = cli_parse_int(optarg, 0, 1L << 30, &save_every);
            break;
        case O_SEED:
            bad = cli_parse_int(optarg, 0, 0x7fffffffL, &seed);
            break;
        case O_LR:
            bad = parse_double(optarg, 1e-12, 10, &lr);
            break;
        case O_WD:
            bad = parse_double(optarg, 0, 10, &wd);
            break;
        case O_CLIP:
            bad = parse_double(optarg, 0, 1e30, &clip);
            break;
        case O_VAL:
            bad = parse_double(optarg, 0, 0.9, &valf);
            break;
        case O_RESUME:
        case O_OVERWRITE:
            break;
        case O_BACKEND: {
            int urc = cli_parse_backend("train", optarg, &backend);
            if (urc) return urc;
            break;
        }
        case O_HELP:
        case 'h':
            fputs(train_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        }
        if (bad) {
            const char *name = "?"; /* the long option's own name: argv may hold "--tp=0" or "0" */
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == c) name = o->name;
            return cli_usage_error("train", "bad value '%s' for --%s", optarg, name);
        }
    }
    (void)v;
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("train", "--data FILE is required");
    if (!out) return cli_usage_error("train", "--out DIR is required");
    int shape = given[O_LAYERS] || given[O_EMBD] || given[O_HEADS] || given[O_CTX];
    int resume = given[O_RESUME];
    if (model && shape)
        return cli_usage_error("train", "--model and shape flags exclude each other");
    if (resume && (model || shape))
        return cli_usage_error("train", "--resume takes the model from --out; drop --model and "
                                        "the shape flags");
    if (resume && given[O_OVERWRITE])
        return cli_usage_error("train", "--resume and --overwrite exclude each other");

    int urc = cli_resolve_backend("train", given[O_BACKEND], &backend, given[O_TP], &P);
    if (!urc) urc = cli_start_backend(backend, (int)P);
    if (urc) return urc;
    int printer = cli_is_printer(backend);
/* cli_job_error decides which rank prints (and under MPI the job then ends in cli_end_job). */
#define JOB_ERROR(...) cli_job_error(__VA_ARGS__)

    train_job job;
    memset(&job, 0, sizeof(job));
    job.out = out;
    job.steps = steps;
    job.save_every = save_every;
    job.resume = resume;
    job.png = on_path("gnuplot");
    train_state *st = &job.st;
    char err[512], tmpdir[4096];
    /* the initial model of a fresh run goes to $TMPDIR (default /tmp) until it is loaded */
    const char *tmp_root = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/linshard-train-XXXXXX",
             tmp_root && *tmp_root ? tmp_root : "/tmp");
    int rc = EXIT_OK, made_model = 0, file_open = 0;
    st_set file;
    tokenizer *tok = NULL;
    char *text = NULL;
    int *ids = NULL;
    size_t n_text = 0, n_ids = 0;
    memset(&file, 0, sizeof(file));

    if (resume) {
        if (checkpoint_load_state(out, st, err, sizeof(err))) {
            rc = JOB_ERROR("--resume: %s", err);
            goto done;
        }
        model = out;
        if (given[O_SEED]) st->seed = (uint64_t)seed;
        if (given[O_BATCH]) st->batch = (int)batch;
        if (given[O_SEQ]) st->seq = (int)seq;
        if (given[O_LR]) st->lr = lr, st->min_lr = lr / 10;
        if (given[O_WARMUP]) st->warmup = warmup;
        if (given[O_DECAY]) st->decay_steps = decay;
        if (given[O_WD]) st->weight_decay = wd;
        if (given[O_CLIP]) st->clip = clip;
        if (given[O_VAL]) st->val_fraction = valf;
        if (given[O_STEPS]) st->steps = steps;
        if (given[O_SAVE]) st->save_every = save_every;
        steps = job.steps = st->steps;
        job.save_every = st->save_every;
        if (st->step >= steps) {
            rc = JOB_ERROR("the checkpoint in %s is at step %ld: --steps %ld leaves nothing "
                           "to do",
                           out, st->step, steps);
            goto done;
        }
    } else {
        st->step = 0;
        st->seed = (uint64_t)seed;
        st->batch = (int)batch;
        st->seq = (int)seq;
        st->lr = lr;
        st->min_lr = lr / 10;
        st->warmup = warmup;
        st->decay_steps = given[O_DECAY] ? decay : steps;
        st->weight_decay = wd;
        st->clip = clip;
        st->val_fraction = valf;
        st->steps = steps;
        st->save_every = save_every;
        if (!given[O_OVERWRITE] && dir_has_files(out)) {
            rc = JOB_ERROR("%s is not empty (a checkpoint?): --resume continues it, --overwrite "
                           "replaces it",
                           out);
            goto done;
        }
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        rc = JOB_ERROR("cannot create %s: %s", out, strerror(errno));
        goto done;
    }
    if (probe_writable(out, err, sizeof(err))) {
        rc = JOB_ERROR("%s", err);
        goto done;
    }

    if (!model) {
        model_config cfg = model_config_gpt2((int)L, (int)E, (int)H, 50257, (int)C, GELU_TANH);
        if (model_config_check(&cfg, err, sizeof(err))) {
            rc = JOB_ERROR("%s", err);
            goto done;
        }
        if (cli_temp_model(tmpdir, &cfg, (uint64_t)seed, err, sizeof(err))) {
            rc = JOB_ERROR("cannot build the initial model: %s", err);
            goto done;
        }
        made_model = 1;
        model = tmpdir;
    }
    if (model_config_load(made_model ? tmpdir : model, &job.cfg, err, sizeof(err)) ||
        model_train_supported(&job.cfg, err, sizeof(err)) ||
        model_config_check_tp(&job.cfg, (int)P, err, sizeof(err))) {
        rc = JOB_ERROR("%s", err);
        goto done;
    }
    if (st->seq == 0) st->seq = job.cfg.n_positions < 64 ? job.cfg.n_positions : 64;
    if (st->seq > job.cfg.n_positions) {
        rc = JOB_ERROR("--seq %d exceeds the model's context of %d", st->seq, job.cfg.n_positions);
        goto done;
    }
    if (cli_open_weights(model, &job.cfg, &file, err, sizeof(err))) {
        rc = JOB_ERROR("%s", err);
        goto done;
    }
    file_open = 1;
    if (made_model) {
        /* The weights are mapped and the config read: the directory is no longer needed, and
         * removing it now means a run killed later cannot leave it in /tmp. */
        cli_remove_temp_model(tmpdir);
        made_model = 0;
    }
    if (read_file(data, &text, &n_text, err, sizeof(err)) ||
        tokenizer_load_builtin(&tok, err, sizeof(err))) {
        rc = JOB_ERROR("%s", err);
        goto done;
    }
    if (tokenizer_vocab_size(tok) > job.cfg.vocab_size) {
        rc = JOB_ERROR("the tokenizer has %d tokens but the model only %d",
                       tokenizer_vocab_size(tok), job.cfg.vocab_size);
        goto done;
    }
    if (tokenizer_encode(tok, text, n_text, &ids, &n_ids)) {
        rc = JOB_ERROR("out of memory tokenising %s", data);
        goto done;
    }
    /* val_fraction < 1 (option and checkpoint are range-checked), but the product is rounded:
     * never let n_val exceed n_ids, so n_train cannot wrap around */
    job.n_val = (size_t)((double)n_ids * st->val_fraction);
    if (job.n_val > n_ids) job.n_val = n_ids;
    job.n_train = n_ids - job.n_val;
    job.train = ids;
    job.val = ids + job.n_train;
    if (job.n_train < (size_t)st->seq + 1) {
        rc = JOB_ERROR("%s: %zu training tokens, shorter than one sequence of %d + 1", data,
                       job.n_train, st->seq);
        goto done;
    }
    if (resume && load_old_log(&job, st->step)) {
        rc = JOB_ERROR("out of memory reading the loss log");
        goto done;
    }
    job.file = &file;
    if (cli_reserve_blas(backend == COMM_BACKEND_MPI ? 1 : (int)P, 1, err, sizeof(err))) {
        rc = JOB_ERROR("%s", err);
        goto done;
    }
    kernel_set_threads(1);
    if (printer)
        fprintf(
            stderr,
            "train: %zu tokens (%zu train, %zu validation); P=%ld; %s step %ld of %ld; batch %d x "
            "%d tokens\n",
            n_ids, job.n_train, job.n_val, P, resume ? "resuming at" : "starting at", st->step,
            steps, st->batch, st->seq);
    if (comm_launch(backend, (int)P, train_rank, &job, err, sizeof(err))) rc = JOB_ERROR("%s", err);
done:
    if (file_open) st_set_close(&file);
    if (made_model) cli_remove_temp_model(tmpdir);
    if (tok) tokenizer_free(tok);
    free(ids);
    free(text);
    free(job.log);
    cli_stop_backend(backend);
    return rc;
#undef JOB_ERROR
}
