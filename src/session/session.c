/* session.c — continuous batching: many sequences decoded together by a model split over P
 * ranks (see include/linshard/session.h for the contract).
 *
 * Who knows what. Every rank holds its shard, the KV cache of opts.slots sequences, and per slot
 * what sampling needs (slot_state: the options, the RNG stream, the last token), because every
 * rank samples every token (sample_next_token is a collective, identical on every rank). Only
 * the driver (rank 0) holds the sequences themselves (seq_state: prompt, limits, stop strings,
 * the text stream): it decides who joins, who leaves and when a sequence ends, and tells the
 * others in the step's plan.
 *
 * The plan, per step (comm_broadcast carries floats; every int32 word and the halves of a
 * 64-bit seed travel bit for bit in those floats, copied in and out with memcpy — never
 * converted, so any bit pattern, NaN-like ones included, arrives as it left; the ledger counts
 * them as floats):
 *   1. "session.plan", every step, plan_words = PLAN_FIXED + slots words:
 *        [finish, n_leave, n_join, join_words, step, leaving slot 0, leaving slot 1, ...]
 *   2. "session.joins", only when n_join > 0, join_words words: per joining sequence
 *        [slot, n_prompt, temperature, top_k, top_p, seed low 32 bits, seed high 32 bits,
 *         prompt tokens...]
 * So a step where nothing joins costs one small broadcast beside the model's and the sampler's
 * collectives.
 *
 * A step, on every rank, in this order: leaving slots are emptied; each joining sequence takes
 * its slot, is prefilled in chunks of max_prefill (model_extend_slot) and samples its first token
 * from the last prompt position; then the slots that were busy before the step decode one token
 * each as one batch (model_decode_batch, in slot order), and each row is sampled with its slot's
 * options and RNG. The driver then looks at each new token (EOS, stop strings, max_tokens, the
 * context) and reports events; a sequence that ended leaves in the NEXT step's plan.
 *
 * The context: a sequence's slot holds `context` positions. A token is sampled from the logits
 * of the last position held; when the slot is full that token cannot be decoded, so the sequence
 * ends there (SESSION_FINISH_CONTEXT): prompt + generated = context + 1, as `generate` always
 * did (the last token is never stored). */
#include "linshard/session.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/timer.h"
#include "stop_text.h"

/* The plan's fixed words (step 1 above). */
enum { PLAN_FINISH, PLAN_N_LEAVE, PLAN_N_JOIN, PLAN_JOIN_WORDS, PLAN_STEP, PLAN_FIXED };
/* A join's fixed words (step 2 above), then its prompt. */
enum {
    JOIN_SLOT,
    JOIN_N_PROMPT,
    JOIN_TEMPERATURE,
    JOIN_TOP_K,
    JOIN_TOP_P,
    JOIN_SEED_LO,
    JOIN_SEED_HI,
    JOIN_FIXED
};

/* What every rank knows of a slot. */
typedef struct {
    int busy;       /* a sequence holds it */
    int joined_now; /* it joined in this step (prefilled, not decoded) */
    sampling_opts sampling;
    sampler_rng rng;
    int last_token; /* the token to decode next */
} slot_state;

/* A sequence, on the driver only. */
typedef struct {
    int id;
    int *prompt; /* [n_prompt], owned */
    int n_prompt;
    sampling_opts sampling;
    uint64_t seed;
    int max_tokens;
    int slot;        /* -1 while queued */
    int n_generated; /* EOS excluded */
    int cancel;      /* session_cancel: leave at the next step */
    int leaving;     /* it ended: its slot is emptied in the next step's plan */
    tokenizer_stream stream;
    stop_text stops;
} seq_state;

struct session {
    comm_t *comm;
    int rank, driver;
    model_shard m;
    const tokenizer *tok; /* driver: may be NULL (no text, no EOS, no stop strings) */
    session_opts o;       /* resolved: no zeros left */
    slot_state *slots;    /* [o.slots] */
    float *plan;          /* [plan_words] */
    size_t plan_words;
    float *joins; /* [joins_cap] words */
    size_t joins_cap;
    int *tokens;     /* [max(context, slots)]: a prompt being prefilled, or a batch's tokens */
    int *batch;      /* [slots]: the slots of a decode batch */
    float *scratch;  /* [2 * vocab] for sample_next_token */
    int done;        /* SESSION_DONE returned */
    long long steps; /* every rank: the step counter carried in the plan */

    /* ---- driver only ---- */
    seq_state **by_slot; /* [slots]: the sequence in each slot, or NULL */
    seq_state **queue;   /* [max_queue], FIFO: queue[0] joins first */
    int n_queue;
    seq_state **dropped; /* [max_queue]: queued sequences cancelled, reported at the next step */
    int n_dropped;
    int next_id, finishing;
    session_event *events; /* [cap_events] of this step */
    size_t *text_at;       /* [cap_events]: where each event's text starts in text */
    int n_events, cap_events;
    char *text; /* this step's released text, every event's, end to end */
    size_t text_len, text_cap;
    char *piece; /* [piece_room]: one token's decoded bytes */
    size_t piece_room;
    session_stats st;
};

/* ---- words in floats ------------------------------------------------------------------------ */

static void put_word(float *buf, size_t i, int32_t v) {
    memcpy(&buf[i], &v, sizeof(v));
}
static int32_t get_word(const float *buf, size_t i) {
    int32_t v;
    memcpy(&v, &buf[i], sizeof(v));
    return v;
}
static void put_float(float *buf, size_t i, float v) {
    buf[i] = v;
}

const char *session_finish_name(session_finish_reason r) {
    switch (r) {
    case SESSION_FINISH_EOS:
    case SESSION_FINISH_STOP:
        return "stop";
    case SESSION_FINISH_LENGTH:
    case SESSION_FINISH_CONTEXT:
        return "length";
    case SESSION_FINISH_CANCELLED:
        return "cancelled";
    default:
        return "running";
    }
}

/* ---- open and close ------------------------------------------------------------------------- */

static void seq_free(seq_state *q) {
    if (!q) return;
    free(q->prompt);
    stop_text_free(&q->stops);
    free(q);
}

int session_open(session **out, comm_t *comm, const model_source *src, const tokenizer *tok,
                 const session_opts *opts, char *err, size_t errlen) {
    *out = NULL;
    const model_config *cfg = &src->cfg;
    session_opts o = *opts;
    if (o.slots < 1 || o.slots > 4096) {
        snprintf(err, errlen, "session: %d slots: must be 1..4096", o.slots);
        return -1;
    }
    if (o.context == 0) o.context = cfg->n_positions;
    if (o.context < 2 || o.context > cfg->n_positions) {
        snprintf(err, errlen, "session: a context of %d positions: must be 2..%d (the model's)",
                 o.context, cfg->n_positions);
        return -1;
    }
    if (o.max_prefill == 0) o.max_prefill = o.context < 512 ? o.context : 512;
    if (o.max_prefill < 1) {
        snprintf(err, errlen, "session: max_prefill %d: must be >= 1 (0: the default)",
                 o.max_prefill);
        return -1;
    }
    if (o.max_prefill > o.context) o.max_prefill = o.context;
    if (o.max_queue == 0) o.max_queue = 4 * o.slots;
    if (o.max_queue < 1 || o.max_queue > 1 << 20) {
        snprintf(err, errlen, "session: max_queue %d: must be 1..%d (0: 4 x slots)", o.max_queue,
                 1 << 20);
        return -1;
    }
    int driver = comm_rank(comm) == 0;
    if (driver && tok && tokenizer_vocab_size(tok) > cfg->vocab_size) {
        snprintf(err, errlen, "session: the tokenizer has %d tokens but the model only %d",
                 tokenizer_vocab_size(tok), cfg->vocab_size);
        return -1;
    }
    session *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "session: out of memory");
        return -1;
    }
    s->comm = comm;
    s->rank = comm_rank(comm);
    s->driver = driver;
    s->tok = driver ? tok : NULL;
    s->o = o;
    int max_T = o.slots > o.max_prefill ? o.slots : o.max_prefill;
    if (model_source_load(src, &s->m, s->rank, comm_size(comm), max_T, o.wtype, err, errlen)) {
        free(s);
        return -1;
    }
    if (model_shard_enable_slots(&s->m, o.slots, o.context, err, errlen)) {
        model_shard_free(&s->m);
        free(s);
        return -1;
    }
    size_t S = (size_t)o.slots, Q = (size_t)o.max_queue;
    size_t n_tokens = (size_t)(o.context > o.slots ? o.context : o.slots);
    s->plan_words = PLAN_FIXED + S;
    s->slots = calloc(S, sizeof(slot_state));
    s->plan = calloc(s->plan_words, sizeof(float));
    s->tokens = malloc(n_tokens * sizeof(int));
    s->batch = malloc(S * sizeof(int));
    s->scratch = malloc(2 * (size_t)cfg->vocab_size * sizeof(float));
    int ok = s->slots && s->plan && s->tokens && s->batch && s->scratch;
    if (ok && driver) {
        /* A step's events: a cancelled leaver and a joiner (or a decoded row) per slot, plus
         * every queued or dropped sequence (cancelled at the finish). */
        s->cap_events = (int)(2 * S + 2 * Q + 1);
        s->by_slot = calloc(S, sizeof(seq_state *));
        s->queue = calloc(Q, sizeof(seq_state *));
        s->dropped = calloc(Q, sizeof(seq_state *));
        s->events = calloc((size_t)s->cap_events, sizeof(session_event));
        s->text_at = calloc((size_t)s->cap_events, sizeof(size_t));
        s->piece_room = tok ? TOKENIZER_STREAM_ROOM(tok) : 16;
        s->piece = malloc(s->piece_room);
        ok = s->by_slot && s->queue && s->dropped && s->events && s->text_at && s->piece;
    }
    if (!ok) {
        snprintf(err, errlen, "session: out of memory on rank %d", s->rank);
        session_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void session_close(session *s) {
    if (!s) return;
    if (s->by_slot)
        for (int i = 0; i < s->o.slots; i++) seq_free(s->by_slot[i]);
    for (int i = 0; i < s->n_queue; i++) seq_free(s->queue[i]);
    for (int i = 0; i < s->n_dropped; i++) seq_free(s->dropped[i]);
    free(s->by_slot);
    free(s->queue);
    free(s->dropped);
    free(s->events);
    free(s->text_at);
    free(s->text);
    free(s->piece);
    free(s->slots);
    free(s->plan);
    free(s->joins);
    free(s->tokens);
    free(s->batch);
    free(s->scratch);
    model_shard_free(&s->m);
    free(s);
}

const model_shard *session_shard(const session *s) {
    return &s->m;
}

/* ---- the driver's calls --------------------------------------------------------------------- */

int session_check_params(const session_params *p, int vocab, char *err, size_t errlen) {
    if (sampling_opts_check(&p->sampling, vocab, err, errlen)) return -1;
    if (p->max_tokens < 1) {
        snprintf(err, errlen, "max_tokens must be >= 1, got %d", p->max_tokens);
        return -1;
    }
    if (p->n_stop < 0 || p->n_stop > SESSION_MAX_STOPS || (p->n_stop > 0 && !p->stop)) {
        snprintf(err, errlen, "at most %d stop strings", SESSION_MAX_STOPS);
        return -1;
    }
    for (int i = 0; i < p->n_stop; i++) {
        size_t len = p->stop[i] ? strlen(p->stop[i]) : 0;
        if (len < 1 || len > SESSION_MAX_STOP_BYTES) {
            snprintf(err, errlen, "stop string %d: must be 1..%d bytes", i + 1,
                     SESSION_MAX_STOP_BYTES);
            return -1;
        }
        if (!stop_text_valid_utf8(p->stop[i], len)) {
            snprintf(err, errlen, "stop string %d is not valid UTF-8", i + 1);
            return -1;
        }
    }
    return 0;
}

int session_add(session *s, const int *prompt, int n_prompt, const session_params *p, char *err,
                size_t errlen) {
    const model_config *cfg = &s->m.cfg;
    if (!s->driver) {
        snprintf(err, errlen, "session_add: only the driver (rank 0) adds sequences");
        return -1;
    }
    if (s->finishing || s->done) {
        snprintf(err, errlen, "the session is shutting down");
        return -1;
    }
    if (!p) {
        snprintf(err, errlen, "no parameters");
        return -1;
    }
    if (!prompt || n_prompt < 1) {
        snprintf(err, errlen, "the prompt is empty");
        return -1;
    }
    if (n_prompt > s->o.context - 1) {
        snprintf(err, errlen,
                 "the prompt has %d tokens; at most %d fit the context of %d positions", n_prompt,
                 s->o.context - 1, s->o.context);
        return -1;
    }
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= cfg->vocab_size) {
            snprintf(err, errlen, "prompt token %d (at %d) is outside the vocabulary of %d",
                     prompt[i], i, cfg->vocab_size);
            return -1;
        }
    if (session_check_params(p, cfg->vocab_size, err, errlen)) return -1;
    if (p->n_stop > 0 && !s->tok) {
        snprintf(err, errlen, "stop strings need a tokenizer, and the session has none");
        return -1;
    }
    if (s->n_queue + s->n_dropped >= s->o.max_queue) return SESSION_BUSY;
    seq_state *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    q->prompt = malloc((size_t)n_prompt * sizeof(int));
    if (!q->prompt || stop_text_init(&q->stops, p->stop, p->n_stop, s->piece_room + 4)) {
        seq_free(q);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(q->prompt, prompt, (size_t)n_prompt * sizeof(int));
    q->n_prompt = n_prompt;
    q->sampling = p->sampling;
    q->seed = p->seed;
    q->max_tokens = p->max_tokens;
    q->slot = -1;
    if (s->tok) tokenizer_stream_init(&q->stream, s->tok);
    q->id = s->next_id;
    s->next_id = s->next_id == INT_MAX ? 0 : s->next_id + 1;
    s->queue[s->n_queue++] = q;
    s->st.sequences_added++;
    return q->id;
}

void session_cancel(session *s, int seq) {
    if (!s->driver) return;
    for (int i = 0; i < s->n_queue; i++)
        if (s->queue[i]->id == seq) {
            s->dropped[s->n_dropped++] = s->queue[i];
            memmove(&s->queue[i], &s->queue[i + 1],
                    (size_t)(s->n_queue - i - 1) * sizeof(*s->queue));
            s->n_queue--;
            return;
        }
    for (int i = 0; i < s->o.slots; i++) {
        seq_state *q = s->by_slot[i];
        if (q && q->id == seq && !q->leaving) q->cancel = 1;
    }
}

int session_pending(const session *s) {
    int n = s->n_queue;
    if (s->by_slot)
        for (int i = 0; i < s->o.slots; i++)
            if (s->by_slot[i] && !s->by_slot[i]->leaving) n++;
    return n;
}

void session_finish(session *s) {
    s->finishing = 1;
}

void session_get_stats(const session *s, session_stats *st) {
    *st = s->st;
    st->running = 0;
    if (s->by_slot)
        for (int i = 0; i < s->o.slots; i++)
            if (s->by_slot[i] && !s->by_slot[i]->leaving) st->running++;
    st->queued = s->n_queue;
}

/* ---- events and text (driver) --------------------------------------------------------------- */

/* Appends n bytes to this step's text. Returns 0, or -1 when out of memory. */
static int text_append(session *s, const char *bytes, size_t n) {
    if (n == 0) return 0;
    if (s->text_len + n > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (cap < s->text_len + n) cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) return -1;
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, bytes, n);
    s->text_len += n;
    return 0;
}

/* Releases what the stop-string filter lets go after taking n more bytes; *stopped as
 * stop_text_take. Returns 0, or -1 when out of memory. */
static int release(session *s, seq_state *q, const char *bytes, size_t n, int final, int *stopped) {
    size_t r = stop_text_take(&q->stops, bytes, n, final, stopped);
    if (text_append(s, q->stops.held, r)) return -1;
    stop_text_drop(&q->stops, *stopped ? q->stops.n_held : r);
    return 0;
}

/* Ends the text of a sequence that stops for any reason: the stream's incomplete character and
 * whatever was held back are released (a stop string among them still cuts). Returns 1 when a
 * stop string cut the text, 0 if not, -1 when out of memory. */
static int release_all(session *s, seq_state *q) {
    int stopped = 0, n = 0;
    if (s->tok) n = tokenizer_stream_flush(&q->stream, s->piece, s->piece_room);
    if (n < 0) n = 0;
    if (release(s, q, s->piece, (size_t)n, 1, &stopped)) return -1;
    return stopped;
}

/* Starts an event of sequence q; its text is what is appended to s->text until the next. */
static session_event *event_begin(session *s, const seq_state *q) {
    session_event *e = &s->events[s->n_events];
    memset(e, 0, sizeof(*e));
    s->text_at[s->n_events++] = s->text_len;
    e->seq = q->id;
    e->token = -1;
    e->n_prompt = q->n_prompt;
    e->n_generated = q->n_generated;
    return e;
}

/* The driver's look at a sequence's new token: EOS, text and stop strings, max_tokens, the
 * context. Reports the event. Returns 0, or -1 when out of memory. */
static int take_token(session *s, seq_state *q, int token) {
    session_event *e = event_begin(s, q);
    session_finish_reason finish = SESSION_RUNNING;
    int stopped = 0;
    if (s->tok && tokenizer_is_stop(s->tok, token)) {
        finish = SESSION_FINISH_EOS; /* not part of the text, not counted */
    } else {
        e->token = token;
        e->n_generated = ++q->n_generated;
        s->st.generated_tokens++;
        int n = 0;
        if (s->tok) n = tokenizer_stream_push(&q->stream, token, s->piece, s->piece_room);
        if (n < 0) n = 0; /* ids are checked: cannot happen */
        if (release(s, q, s->piece, (size_t)n, 0, &stopped)) return -1;
        if (stopped)
            finish = SESSION_FINISH_STOP;
        else if (q->n_generated >= q->max_tokens)
            finish = SESSION_FINISH_LENGTH;
        else if (model_slot_len(&s->m, q->slot) >= s->o.context)
            finish = SESSION_FINISH_CONTEXT;
    }
    if (finish != SESSION_RUNNING && finish != SESSION_FINISH_STOP) {
        int cut = release_all(s, q);
        if (cut < 0) return -1;
        if (cut) finish = SESSION_FINISH_STOP;
    }
    e->finish = finish;
    if (finish != SESSION_RUNNING) {
        q->leaving = 1;
        s->st.sequences_finished++;
    }
    return 0;
}

/* A sequence that ends by cancellation: its last event, with what it held back. */
static int take_cancel(session *s, seq_state *q) {
    session_event *e = event_begin(s, q);
    e->finish = SESSION_FINISH_CANCELLED;
    s->st.sequences_finished++;
    return release_all(s, q) < 0 ? -1 : 0;
}

/* Points each event at its text (s->text may have moved while it grew). */
static void events_finish(session *s) {
    for (int i = 0; i < s->n_events; i++) {
        size_t end = i + 1 < s->n_events ? s->text_at[i + 1] : s->text_len;
        s->events[i].text = s->text ? s->text + s->text_at[i] : "";
        s->events[i].text_len = end - s->text_at[i];
    }
}

/* ---- the plan ------------------------------------------------------------------------------- */

/* Driver: writes this step's plan (s->plan, and s->joins when sequences join), and moves the
 * sequences: those leaving are reported (cancelled) or just freed (ended last step), queued ones
 * take the free slots. Returns 0, or -1 when out of memory. */
static int plan_write(session *s) {
    int S = s->o.slots, n_leave = 0, n_join = 0;
    size_t join_words = 0;
    memset(s->plan, 0, s->plan_words * sizeof(float));
    for (int i = 0; i < s->n_dropped; i++) {
        if (take_cancel(s, s->dropped[i])) return -1;
        seq_free(s->dropped[i]);
    }
    s->n_dropped = 0;
    if (s->finishing) { /* everything still here ends now */
        for (int sl = 0; sl < S; sl++) {
            seq_state *q = s->by_slot[sl];
            if (q && !q->leaving && take_cancel(s, q)) return -1;
            seq_free(q);
            s->by_slot[sl] = NULL;
        }
        for (int i = 0; i < s->n_queue; i++) {
            if (take_cancel(s, s->queue[i])) return -1;
            seq_free(s->queue[i]);
        }
        s->n_queue = 0;
        put_word(s->plan, PLAN_FINISH, 1);
        put_word(s->plan, PLAN_STEP, (int32_t)(s->steps & 0x7fffffff));
        return 0;
    }
    for (int sl = 0; sl < S; sl++) {
        seq_state *q = s->by_slot[sl];
        if (!q || !(q->leaving || q->cancel)) continue;
        if (!q->leaving && take_cancel(s, q)) return -1;
        seq_free(q);
        s->by_slot[sl] = NULL;
        put_word(s->plan, PLAN_FIXED + (size_t)n_leave++, sl);
    }
    /* Joins: the queue's head takes the free slots, lowest first. */
    for (int sl = 0; sl < S && n_join < s->n_queue; sl++) {
        if (s->by_slot[sl]) continue;
        int free_now = !s->slots[sl].busy;
        for (int i = 0; i < n_leave && !free_now; i++)
            free_now = get_word(s->plan, PLAN_FIXED + (size_t)i) == sl;
        if (!free_now) continue;
        seq_state *q = s->queue[n_join++];
        q->slot = sl;
        s->by_slot[sl] = q;
        join_words += JOIN_FIXED + (size_t)q->n_prompt;
    }
    if (join_words > s->joins_cap) {
        float *j = realloc(s->joins, join_words * sizeof(float));
        if (!j) return -1;
        s->joins = j;
        s->joins_cap = join_words;
    }
    size_t w = 0;
    for (int i = 0; i < n_join; i++) {
        const seq_state *q = s->queue[i];
        put_word(s->joins, w + JOIN_SLOT, q->slot);
        put_word(s->joins, w + JOIN_N_PROMPT, q->n_prompt);
        put_float(s->joins, w + JOIN_TEMPERATURE, q->sampling.temperature);
        put_word(s->joins, w + JOIN_TOP_K, q->sampling.top_k);
        put_float(s->joins, w + JOIN_TOP_P, q->sampling.top_p);
        put_word(s->joins, w + JOIN_SEED_LO, (int32_t)(uint32_t)(q->seed & 0xffffffffu));
        put_word(s->joins, w + JOIN_SEED_HI, (int32_t)(uint32_t)(q->seed >> 32));
        w += JOIN_FIXED;
        for (int t = 0; t < q->n_prompt; t++) put_word(s->joins, w++, q->prompt[t]);
    }
    memmove(s->queue, s->queue + n_join, (size_t)(s->n_queue - n_join) * sizeof(*s->queue));
    s->n_queue -= n_join;
    put_word(s->plan, PLAN_N_LEAVE, n_leave);
    put_word(s->plan, PLAN_N_JOIN, n_join);
    put_word(s->plan, PLAN_JOIN_WORDS, (int32_t)join_words);
    put_word(s->plan, PLAN_STEP, (int32_t)(s->steps & 0x7fffffff));
    return 0;
}

/* ---- the step ------------------------------------------------------------------------------- */

/* Samples row `row` of m.logits for slot sl (every rank), and on the driver takes the token. */
static int sample_slot(session *s, int sl, int row) {
    slot_state *ss = &s->slots[sl];
    const model_shard *m = &s->m;
    const float *logits = m->logits + (size_t)row * (size_t)m->v_local;
    int token, rc = sample_next_token(s->comm, logits, m->v0, m->v_local, m->cfg.vocab_size,
                                      &ss->sampling, &ss->rng, s->scratch, &token);
    if (rc) return rc;
    ss->last_token = token;
    if (s->driver && take_token(s, s->by_slot[sl], token))
        return comm_fail(s->comm, "session: out of memory on the driver");
    return 0;
}

/* Every rank: empties the leaving slots and prefills the joining sequences. */
static int run_joins(session *s, int n_join, size_t join_words) {
    const int S = s->o.slots;
    size_t w = 0;
    for (int i = 0; i < n_join; i++) {
        if (join_words - w < JOIN_FIXED) return comm_fail(s->comm, "session: a bad plan (joins)");
        int sl = get_word(s->joins, w + JOIN_SLOT), n = get_word(s->joins, w + JOIN_N_PROMPT);
        if (sl < 0 || sl >= S || s->slots[sl].busy || n < 1 || n > s->o.context - 1 ||
            join_words - w - JOIN_FIXED < (size_t)n)
            return comm_fail(s->comm, "session: a bad plan (join of slot %d)", sl);
        slot_state *ss = &s->slots[sl];
        ss->busy = 1;
        ss->joined_now = 1;
        ss->sampling.temperature = s->joins[w + JOIN_TEMPERATURE];
        ss->sampling.top_k = get_word(s->joins, w + JOIN_TOP_K);
        ss->sampling.top_p = s->joins[w + JOIN_TOP_P];
        uint64_t seed = (uint64_t)(uint32_t)get_word(s->joins, w + JOIN_SEED_LO) |
                        (uint64_t)(uint32_t)get_word(s->joins, w + JOIN_SEED_HI) << 32;
        sampler_seed(&ss->rng, seed);
        w += JOIN_FIXED;
        for (int t = 0; t < n; t++) s->tokens[t] = get_word(s->joins, w + (size_t)t);
        w += (size_t)n;
        model_slot_reset(&s->m, sl);
        double t0 = timer_seconds();
        int rc = 0, chunk = 0;
        for (int at = 0; at < n && !rc; at += chunk) {
            chunk = n - at < s->o.max_prefill ? n - at : s->o.max_prefill;
            rc = model_extend_slot(s->comm, &s->m, sl, s->tokens + at, chunk);
        }
        if (!rc) rc = sample_slot(s, sl, chunk - 1);
        if (rc) return rc;
        s->st.prompt_tokens += n;
        s->st.prefill_seconds += timer_seconds() - t0;
    }
    return 0;
}

/* Every rank: one token of every slot that was busy before this step, as batches of at most
 * max_T rows (one batch unless slots > max_T), each row then sampled. */
static int run_decode(session *s) {
    int B = 0;
    for (int sl = 0; sl < s->o.slots; sl++)
        if (s->slots[sl].busy && !s->slots[sl].joined_now) s->batch[B++] = sl;
    if (B == 0) return 0;
    double t0 = timer_seconds();
    for (int b0 = 0; b0 < B; b0 += s->m.max_T) {
        int nb = B - b0 < s->m.max_T ? B - b0 : s->m.max_T;
        for (int b = 0; b < nb; b++) s->tokens[b] = s->slots[s->batch[b0 + b]].last_token;
        int rc = model_decode_batch(s->comm, &s->m, s->batch + b0, s->tokens, nb);
        for (int b = 0; b < nb && !rc; b++) rc = sample_slot(s, s->batch[b0 + b], b);
        if (rc) return rc;
    }
    s->st.decode_steps++;
    s->st.decode_seconds += timer_seconds() - t0;
    if (B > s->st.max_batch) s->st.max_batch = B;
    return 0;
}

int session_step(session *s, const session_event **events, int *n_events) {
    if (events) *events = NULL;
    if (n_events) *n_events = 0;
    if (s->done) return SESSION_DONE;
    const ledger_t *ledger = comm_ledger(s->comm);
    double c0 = ledger_total_seconds(ledger);
    s->n_events = 0;
    s->text_len = 0;
    if (s->driver && plan_write(s)) return comm_fail(s->comm, "session: out of memory");
    int rc = comm_broadcast(s->comm, s->plan, s->plan_words, 0, "session.plan");
    if (rc) return rc;
    int finish = get_word(s->plan, PLAN_FINISH), n_leave = get_word(s->plan, PLAN_N_LEAVE);
    int n_join = get_word(s->plan, PLAN_N_JOIN), join_words = get_word(s->plan, PLAN_JOIN_WORDS);
    const int S = s->o.slots;
    if (n_leave < 0 || n_leave > S || n_join < 0 || n_join > S || join_words < 0 ||
        (n_join > 0) != (join_words > 0))
        return comm_fail(s->comm, "session: a bad plan (%d leave, %d join)", n_leave, n_join);
    s->steps++;
    s->st.steps++;
    if (finish) {
        s->done = 1;
        events_finish(s);
        if (events) *events = s->events;
        if (n_events) *n_events = s->n_events;
        return SESSION_DONE;
    }
    for (int i = 0; i < n_leave; i++) {
        int sl = get_word(s->plan, PLAN_FIXED + (size_t)i);
        if (sl < 0 || sl >= S || !s->slots[sl].busy)
            return comm_fail(s->comm, "session: a bad plan (slot %d leaves)", sl);
        s->slots[sl].busy = 0;
        model_slot_reset(&s->m, sl);
    }
    if (n_join > 0) {
        if ((size_t)join_words > s->joins_cap) { /* other ranks: room for what comes */
            float *j = realloc(s->joins, (size_t)join_words * sizeof(float));
            if (!j) return comm_fail(s->comm, "session: out of memory on rank %d", s->rank);
            s->joins = j;
            s->joins_cap = (size_t)join_words;
        }
        if ((rc = comm_broadcast(s->comm, s->joins, (size_t)join_words, 0, "session.joins")))
            return rc;
    }
    for (int sl = 0; sl < S; sl++) s->slots[sl].joined_now = 0;
    if ((rc = run_joins(s, n_join, (size_t)join_words)) || (rc = run_decode(s))) return rc;
    s->st.comm_seconds += ledger_total_seconds(ledger) - c0;
    if (s->driver) {
        events_finish(s);
        if (events) *events = s->events;
        if (n_events) *n_events = s->n_events;
    }
    return 0;
}
