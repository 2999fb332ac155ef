/* gpt2_checkpoint.h — training checkpoints that any P can resume.
 *
 * A checkpoint is a directory in the Hugging Face layout, so every loader (and every P) reads
 * it like any other GPT-2:
 *   model.safetensors      full tensors, "transformer.<name>", F32
 *   config.json            model_config_save
 *   optimizer.safetensors  AdamW's moments in the same full layout: "m.transformer.<name>",
 *                          "v.transformer.<name>"
 *   trainer_state.json     the step and what the learning-rate schedule and the data order need
 * Saving is collective: each rank's flat buffers (parameters, then m, then v) are all-gathered
 * with uneven counts (comm_allgather), and rank 0 rebuilds each full tensor from the per-rank
 * slices the loader reads (Q/K/V head blocks of c_attn, column slices of c_fc, row slices of
 * the c_proj weights and of wte; replicated tensors from rank 0), then commits the four files
 * as one: each is written beside its live twin as NAME.next (temp + fsync + rename), then the
 * marker checkpoint.commit is written (atomically), then each NAME.next is renamed over NAME,
 * then the marker is removed. checkpoint_recover finishes an interrupted commit (marker
 * present: roll forward) or discards an interrupted save (no marker: the old checkpoint is
 * intact), so a killed run loses nothing that was saved before. Loading the moments reuses
 * the model loader on the "m." / "v." tensors, so they are sliced exactly as the parameters are:
 * a checkpoint saved at P = 2 resumes at P = 3. */
#ifndef LINSHARD_GPT2_CHECKPOINT_H
#define LINSHARD_GPT2_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/comm.h"
#include "linshard/model.h"
#include "linshard/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    long step;      /* training steps completed */
    long adam_step; /* the trainer's AdamW step (bias correction) */
    uint64_t seed;  /* data order: each step's batch is drawn from (seed, step) */
    int batch, seq;
    double lr, min_lr; /* peak and final learning rate */
    long warmup;       /* linear warm-up steps */
    long decay_steps;  /* cosine decay ends here */
    double weight_decay, clip, val_fraction;
    /* The run's options that `train --resume` restores when not given again. Checkpoints
     * written before they were kept read as steps = 100 and save_every = 0 (the options'
     * defaults: train to step 100, save only at the end). */
    long steps;      /* train until this step */
    long save_every; /* checkpoint every this many steps (0: at the end) */
} train_state;

/* Collective (every rank calls it with its own shard and trainer): writes the checkpoint into
 * dir (which must exist). Returns 0 on every rank, or -1 on every rank with a one-line message
 * in err (rank 0's write failure is broadcast to the others). */
int checkpoint_save(comm_t *comm, const model_shard *m, const model_trainer *tr, const char *dir,
                    const train_state *state, char *err, size_t errlen);

/* Brings dir to a complete checkpoint after an interrupted save (see above), and removes the
 * debris of killed writers: atomic_file / st_write temporaries ("NAME.tmp.<pid>") whose pid is
 * no longer alive. Idempotent; call before reading a checkpoint for resuming
 * (checkpoint_load_state does). Returns 0, or -1 with a message. */
int checkpoint_recover(const char *dir, char *err, size_t errlen);

/* Reads dir/trainer_state.json (after checkpoint_recover), checking every field's range (an
 * edited or corrupt file is refused, naming the field, rather than trusted). Returns 0, or -1
 * with a message (missing file included). */
int checkpoint_load_state(const char *dir, train_state *state, char *err, size_t errlen);

/* Reads this rank's slices of the moments from dir/optimizer.safetensors into tr->m and tr->v
 * (the same slices model_shard_load reads of the parameters), and tr->step from
 * trainer_state.json. Returns 0, or -1 with a message naming the file and the tensor. */
int checkpoint_load_optimizer(const model_shard *m, model_trainer *tr, const char *dir, char *err,
                              size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
