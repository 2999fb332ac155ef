/* session.h — generation as a library: a model split over a group of P ranks, decoding many
 * sequences at once (continuous batching). `linshard generate`, `bench generate` and
 * `linshard serve` are all written on it.
 *
 * SPMD with one driver. Every rank of the group opens the session (a collective) and then calls
 * session_step in a loop until it returns SESSION_DONE. Rank 0, the driver, alone adds and
 * cancels sequences and reads what they produce; at each step it sends the other ranks the
 * step's plan — which sequences join (their prompts and sampling parameters), which leave — in
 * one small broadcast, so the other ranks never see requests, text or HTTP, and every rank runs
 * the same collectives in the same order.
 *
 * A step: (1) the plan is broadcast; (2) each joining sequence takes a free slot of the KV cache
 * and its prompt is prefilled (model_extend_slot, in chunks of at most max_prefill tokens), and
 * its first token is sampled; (3) every sequence that was already running decodes one token,
 * all of them as one batch (model_decode_batch: the weights read once, 1 + 2 * n_layer
 * AllReduce of B rows for the whole step); (4) each is sampled with its own RNG stream, exactly
 * as sampling.h does for one (identical on every rank). So a sequence gets the same tokens
 * whatever else runs beside it, and the same as `generate` with the same seed and P.
 *
 * Validation: session_add checks everything about a request (token ids, lengths against the
 * context, sampling parameters, stop strings) on the driver BEFORE anything reaches the group;
 * a bad request is an error for that caller only (an HTTP 400), never a failed group. Once in
 * the group, only a failure of the machine (out of memory, a dead rank) fails it.
 *
 * Stop conditions, checked by the driver after each token: the tokenizer's end-of-text tokens
 * (tokenizer_is_stop), a stop string appearing in the text (the text is cut before it; text that
 * might be the start of a stop string is held back until it cannot be), max_tokens, and the
 * slot's context: a token is sampled from the last position the slot holds, and when the slot is
 * full that token cannot be decoded, so the sequence ends with it (prompt + generated =
 * context + 1, as `generate` has always counted: the last token is never stored). A sequence
 * that ended leaves in the next step's plan; its slot is then free for the queue.
 *
 * The plan on the wire (src/session/session.c): every step one broadcast of 5 + slots floats
 * ("session.plan": finish, counts, the leaving slots); only when sequences join, a second one
 * ("session.joins") with their prompts and sampling parameters — int32 words and 64-bit seeds
 * carried bit for bit in the float buffer. A step where B sequences decode and none joins costs
 * that one small broadcast, the model's decode step and one sampling collective per row.
 *
 * Threads: a session is used by its rank's thread only. The driver's calls (session_add,
 * session_cancel, session_finish, the events) are NOT thread-safe: a server's HTTP threads hand
 * requests to the thread that drives the session (see src/server/). */
#ifndef LINSHARD_SESSION_H
#define LINSHARD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "linshard/comm.h"
#include "linshard/kernels.h"
#include "linshard/model.h"
#include "linshard/model_source.h"
#include "linshard/sampling.h"
#include "linshard/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct session session;

typedef struct {
    int slots;         /* sequences decoded together at most (the server's --parallel); >= 1 */
    int context;       /* positions per sequence (prompt + generated); 0: the model's n_positions */
    int max_prefill;   /* prompt tokens one forward pass takes (longer prompts run in chunks);
                          0: 512 (or the context when smaller) */
    int max_queue;     /* sequences waiting for a slot at most; session_add says SESSION_BUSY
                          beyond; 0: 4 * slots */
    kernel_type wtype; /* the type the matrices are held as (model_source_stored_type for
                          "as stored") */
} session_opts;

/* What one sequence asks for. */
typedef struct {
    sampling_opts sampling; /* temperature 0: greedy */
    uint64_t seed;          /* the sequence's own RNG stream (sampler_seed) */
    int max_tokens;         /* tokens to generate at most, >= 1 */
    /* Stop strings (UTF-8, each 1..SESSION_MAX_STOP_BYTES bytes), at most SESSION_MAX_STOPS;
     * session_add copies them. */
    const char *const *stop;
    int n_stop;
} session_params;

#define SESSION_MAX_STOPS 4
#define SESSION_MAX_STOP_BYTES 256

/* Why a sequence ended (OpenAI's finish_reason: "stop" for EOS and STOP, "length" for LENGTH and
 * CONTEXT). */
typedef enum {
    SESSION_RUNNING = 0,
    SESSION_FINISH_EOS,       /* the model produced an end-of-text token (not part of the text) */
    SESSION_FINISH_STOP,      /* a stop string (not part of the text) */
    SESSION_FINISH_LENGTH,    /* max_tokens generated */
    SESSION_FINISH_CONTEXT,   /* the sequence filled its context */
    SESSION_FINISH_CANCELLED, /* session_cancel */
} session_finish_reason;

/* "stop", "length" or "cancelled": OpenAI's word for a reason. */
const char *session_finish_name(session_finish_reason r);

/* What a step did for one sequence (driver only). */
typedef struct {
    int seq;   /* the id session_add returned */
    int token; /* the token generated this step, or -1: the sequence only finished (cancelled,
                  or its end-of-text token, which is no part of the completion) */
    /* The text this step releases: whole UTF-8 characters, stop strings cut out, text that may
     * begin a stop string held back until it cannot. Owned by the session, valid until the next
     * session_step; not NUL-terminated. The concatenation of a sequence's texts is its whole
     * completion. */
    const char *text;
    size_t text_len;
    int n_prompt;                 /* the sequence's prompt tokens (for usage) */
    int n_generated;              /* tokens generated so far, this one included (EOS excluded) */
    session_finish_reason finish; /* non-zero: the sequence ended; its id is no longer valid */
} session_event;

/* session_add's and session_step's non-error returns. */
enum {
    SESSION_BUSY = -2, /* session_add: every slot and the queue are full: try later (HTTP 429) */
    SESSION_DONE = 1   /* session_step: the driver called session_finish; leave the loop */
};

/* Collective: every rank calls it with the same source and options. Loads this rank's shard
 * (model_source_load), gives it a KV cache of opts->slots sequences of opts->context positions
 * and activations for max(slots, max_prefill) rows. tok is used by the driver (rank 0) only and
 * may be NULL elsewhere; it must outlive the session. A driver without a tokenizer (a benchmark
 * on token ids) gets no text, no end-of-text stops and no stop strings: sequences run to
 * max_tokens or the context. Returns 0, or -1 with a one-line message (the caller fails the
 * group: the other ranks may have succeeded). */
int session_open(session **out, comm_t *comm, const model_source *src, const tokenizer *tok,
                 const session_opts *opts, char *err, size_t errlen);
void session_close(session *s);

/* Driver only. Validates a sequence and queues it: it joins at the next session_step that has a
 * free slot for it (queued sequences join in the order they were added). Returns its id (>= 0);
 * SESSION_BUSY when the queue is full; or -1 with a one-line message naming what is wrong with
 * the request (empty prompt, a token id outside the vocabulary, prompt longer than context - 1,
 * bad sampling parameters, max_tokens < 1, more than SESSION_MAX_STOPS stop strings, a stop
 * string empty, too long or not UTF-8; after session_finish, any request): nothing reached the
 * group. */
int session_add(session *s, const int *prompt, int n_prompt, const session_params *p, char *err,
                size_t errlen);

/* What session_add checks of the parameters alone (sampling against a vocabulary of `vocab`,
 * max_tokens, the stop strings), for a caller that wants to refuse a request before it has a
 * session (a command line). Returns 0, or -1 with the same one-line message. */
int session_check_params(const session_params *p, int vocab, char *err, size_t errlen);

/* Driver only. Ends a sequence at the next step (a client that went away): it gets one last event
 * with SESSION_FINISH_CANCELLED (token -1, and the text it held back) and its slot is freed; a
 * queued one gets that event without ever joining. Unknown or ended ids are ignored. */
void session_cancel(session *s, int seq);

/* Driver only: sequences running or queued. */
int session_pending(const session *s);

/* Driver only: the next session_step, on every rank, ends the session's loop (SESSION_DONE);
 * running and queued sequences are cancelled (drain them first to finish them): their
 * SESSION_FINISH_CANCELLED events come with that last step's events. */
void session_finish(session *s);

/* Collective: one step on every rank. On the driver, *events / *n_events receive what the step
 * did (owned by the session, valid until the next step); other ranks pass NULL. With nothing to
 * do a step costs one broadcast; a driver should wait for work (its own condition) rather than
 * spin on empty steps. Returns 0, SESSION_DONE, or a comm error (the group has failed). */
int session_step(session *s, const session_event **events, int *n_events);

/* Driver only: what the session has done so far. */
typedef struct {
    long long steps, decode_steps; /* steps; steps that decoded a batch */
    long long prompt_tokens, generated_tokens;
    long long sequences_added, sequences_finished;
    double prefill_seconds, decode_seconds; /* wall time in prefills, in batched decode steps */
    double comm_seconds;                    /* of which inside collectives (the ledger) */
    int running, queued;                    /* now */
    int max_batch;                          /* the largest decode batch so far */
} session_stats;
void session_get_stats(const session *s, session_stats *st);

/* The shard the session runs on this rank (for reports: weight bytes, the type held). */
const model_shard *session_shard(const session *s);

#ifdef __cplusplus
}
#endif
#endif
