/* cli_model.h — running a model on P ranks for the commands that need it (forward, verify,
 * bench forward): open the checkpoint, load each rank's shard, run, collect results. */
#ifndef LINSHARD_CLI_MODEL_H
#define LINSHARD_CLI_MODEL_H

#include "cli.h"
#include "linshard/model.h"
#include "linshard/model_source.h"
#include "linshard/ledger.h"
#include "linshard/tokenizer.h"

typedef struct {
    /* in */
    const char *model_dir;
    const int *tokens;
    int T;
    int P;
    comm_backend_t backend;
    int want_logits;  /* gather full logits [T, V] into `logits` */
    int top_k;        /* > 0: top-k of the last position into top_ids / top_values */
    int repeats;      /* extra timed forward passes (best one reported) */
    int blas_threads; /* BLAS threads when P = 1 (ranks of P > 1 always get one core each) */
    int wtype_given;  /* 0: hold the matrices as the checkpoint stores them; 1: as wtype */
    kernel_type wtype;
    /* out (rank 0's view) */
    model_config cfg;
    float *logits; /* malloc'd by the run when want_logits; caller frees */
    int top_ids[16];
    float top_values[16];
    double load_seconds;
    double forward_seconds; /* best of `repeats` */
    double comm_seconds;    /* time inside collectives during that best pass */
    size_t weight_bytes;    /* rank 0's shard */
    kernel_type held_as;    /* the type the matrices were held as */
    size_t resident_bytes;  /* the process, after the forward passes (every rank loaded) */
    ledger_t ledger;        /* rank 0's ledger of the first forward pass; caller frees */
    int have_ledger;
} model_run;

/* --dtype's value: "auto" (*given = 0: as stored) or a type name (*given = 1, *wtype). Returns
 * 0, or prints a usage error for cmd and returns its exit status. */
int cli_parse_dtype(const char *cmd, const char *arg, int *given, kernel_type *wtype);
/* A comma-separated list of --dtype values into types[] (-1 for auto), at most max. Returns the
 * count, or -1 for a bad or empty list. */
int cli_parse_dtype_list(const char *arg, int *types, int max);
/* Bytes of this process's own memory resident now (RssAnon: a mapped checkpoint's page cache
 * not counted), 0 if unknown. */
size_t cli_resident_bytes(void);

/* Reads config.json, opens and checks model.safetensors, checks P and the tokens, then runs
 * the job on P ranks of the backend. Returns 0, or prints one error line and returns 1. */
int model_run_job(model_run *job);
void model_run_free(model_run *job);

/* GPT-2 small: 12 layers, 768 wide, 12 heads, vocabulary 50257, context 1024. */
model_config cli_shape_gpt2_small(void);
/* The small model verify builds without --model: 2 layers, 48 wide, 6 heads (P = 2, 3, 6
 * divide them; 4, 5 do not), a prime vocabulary of 101 that no P divides, context 32. */
model_config cli_shape_gpt2_tiny(void);
/* Llama 3.2 1B's shape: 16 layers, 2048 wide, 32 heads, 8 kv heads, MLP 8192, vocabulary
 * 128256, tied, RoPE theta 500000 with llama3 scaling; context 2048 (the model has 131072). */
model_config cli_shape_llama_1b(void);
/* "LlamaForCausalLM, 16 layers x 2048 wide, 32 heads (8 kv) of 64, MLP 8192, vocab 128256,
 * tied head": for headings. Returns buf. */
const char *cli_describe_model(const model_config *cfg, char *buf, size_t len);
/* The shape called name ("gpt2", "tiny", "llama-1b"); returns 0, or -1 for an unknown name. */
int cli_shape_named(const char *name, model_config *cfg);
/* FLOPs of one forward pass of T tokens (matmuls, the full masked attention, the LM head). */
double cli_forward_flops(const model_config *cfg, int T);

/* Writes a seeded random model of shape cfg into a new temporary directory; dir is a mkdtemp
 * template ("/tmp/linshard-...-XXXXXX") and receives the name. Returns 0, or -1 with err (and
 * nothing left behind). */
int cli_temp_model(char *dir, const model_config *cfg, uint64_t seed, char *err, size_t errlen);
/* Opens dir's weights (model.safetensors, or the files model.safetensors.index.json names) and
 * checks they hold every tensor cfg implies. Returns 0 (weights open), or -1 with err (closed). */
/* The tokenizer of a model directory, the one rule generate and tokenize share: its own files
 * (encoder.json, vocab.json or tokenizer.json) when it has them; else GPT-2's built-in one for a
 * GPT-2 checkpoint, and an error for any other family, whose ids would mean other text. cfg may
 * be NULL (then DIR/config.json says the family); model_dir NULL means the built-in one. */
int cli_load_tokenizer(const char *model_dir, const model_config *cfg, tokenizer **tok, char *err,
                       size_t errlen);
int cli_open_weights(const char *dir, const model_config *cfg, st_set *weights, char *err,
                     size_t errlen);

/* The built-in default model (data/default-model, embedded in the program), read in place.
 * Returns 0 (close it with model_source_close), or -1 with err. */
int cli_default_model_open(model_source *src, char *err, size_t errlen);

/* The model and tokenizer a generating command (generate, serve) runs: model_dir's checkpoint,
 * or without one the built-in default (saying so on stderr, as "CMD: no --model: ...", when
 * `announce`); P checked against its heads; its tokenizer (cli_load_tokenizer), checked to fit
 * the model's vocabulary. Returns 0 (close src, free *tok), or -1 with err (nothing open). */
int cli_open_generation_model(const char *cmd, const char *model_dir, int P, int announce,
                              model_source *src, tokenizer **tok, char *err, size_t errlen);
/* The config of the model at path: a directory's config.json, or a .gguf file's metadata.
 * 0, or -1 with err. */
int cli_model_config(const char *path, model_config *cfg, char *err, size_t errlen);
/* Removes a directory cli_temp_model made. */
void cli_remove_temp_model(const char *dir);

/* Runs the PyTorch peer, LINSHARD_PYTHON (default /usr/bin/python3, else python3 from PATH) on
 * LINSHARD_TORCH_BENCH (default the repository's bench/torch_gpt2_forward.py), with the
 * NULL-terminated args after them, without a shell; its stdout lines go to on_line. Prints one
 * note if it does not exit 0. Returns its exit status as cli_spawn does. */
int cli_torch_peer(const char *const *args, cli_line_fn on_line, void *ctx);

#endif
