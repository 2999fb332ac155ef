/* test_session.c — the session library (continuous batching), on the threads backend.
 *
 * The model is a seeded random GPT-2 (2 layers, 48 wide, 6 heads, vocabulary 257, context 64)
 * with the smallest byte-level tokenizer written beside it: GPT-2's 256 byte tokens, no merges,
 * and <|endoftext|> (id 256, the EOS), so that every token is one byte of text and EOS is
 * easy to provoke.
 *
 * What is checked:
 *   - the same seed gives the same tokens: six sequences (greedy, top-k, top-p, full
 *     vocabulary, a chunked prefill, one ending at the context) through a session of 3 slots,
 *     joining at different steps, each get exactly the tokens they get alone (1 slot), at
 *     P = 1, 2, 3;
 *   - stop strings (spanning two tokens: the text is cut before it; held-back text released
 *     when it turns out not to be a stop), EOS, max_tokens, the context limit, cancel (running
 *     and queued);
 *   - session_add refuses every bad request with a one-line message, and a later good request
 *     still completes; SESSION_BUSY when the queue is full;
 *   - the ledger: a step with B sequences decoding and nothing joining costs one broadcast
 *     ("session.plan"), no "session.joins", one model_decode_batch's AllReduces and one
 *     sampling allgather per row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linshard/kernels.h"
#include "linshard/model.h"
#include "linshard/model_source.h"
#include "linshard/session.h"
#include "linshard/tokenizer.h"
#include "temp_dir.h"

#define VOCAB 257
#define CONTEXT 64
#define EOS_ID 256
#define MAX_REQ 8
#define MAX_GEN 64
#define MAX_STEPS 256

static char *model_dir;
static model_source source;
static tokenizer *tok;

/* ---- the model and its tokenizer ------------------------------------------------------------ */

static void write_file(const char *dir, const char *name, const char *text) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    (void)state;
    model_dir = temp_dir_make("session");
    model_config shape = model_config_gpt2(2, 48, 6, VOCAB, CONTEXT, GELU_TANH);
    model_init_opts opts = {21, ST_F32, 0, 0, 0};
    char err[512];
    if (model_init_random(model_dir, &shape, &opts, err, sizeof(err))) return -1;
    /* vocab.json: GPT-2's 256 byte tokens in GPT-2's order (ids 0..93 are '!'..'~'), written
     * as \uXXXX escapes, then <|endoftext|> (256). No merges. */
    int cs[256], nb = 0, extra = 0; /* token nb is the character cs[nb] */
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cs[nb++] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)))
            cs[nb++] = 256 + extra++;
    char *json = malloc(8192);
    assert_non_null(json);
    size_t n = (size_t)snprintf(json, 8192, "{");
    for (int i = 0; i < 256; i++)
        n += (size_t)snprintf(json + n, 8192 - n, "\"\\u%04x\": %d, ", cs[i], i);
    snprintf(json + n, 8192 - n, "\"<|endoftext|>\": %d}", EOS_ID);
    write_file(model_dir, "vocab.json", json);
    free(json);
    write_file(model_dir, "merges.txt", "#version: 0.2\n");
    if (model_source_open(&source, model_dir, err, sizeof(err))) return -1;
    if (tokenizer_load_dir(&tok, model_dir, err, sizeof(err))) {
        fprintf(stderr, "tokenizer: %s\n", err);
        return -1;
    }
    if (tokenizer_eos(tok) != EOS_ID || tokenizer_vocab_size(tok) != VOCAB) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tokenizer_free(tok);
    model_source_close(&source);
    temp_dir_remove(model_dir);
    return 0;
}

/* ---- a scripted session --------------------------------------------------------------------- */

typedef struct {
    int prompt[CONTEXT];
    int n_prompt;
    session_params params;
    const char *stops[SESSION_MAX_STOPS];
    int join_step;   /* added before this step (retried at the next when SESSION_BUSY) */
    int cancel_step; /* > 0: session_cancel before this step */
} request;

typedef struct {
    int id, added;
    int tokens[MAX_GEN], n_tokens;
    char text[4096];
    size_t text_len;
    size_t text_after[MAX_GEN + 2]; /* the text's length after each event */
    int n_events;
    int n_generated, n_prompt;
    int first_step, last_step;
    session_finish_reason finish;
} result;

typedef struct {
    uint64_t plan, joins, allreduce, allgather; /* this step's calls, from the ledger */
    int decoding;                               /* sequences decoded this step (driver's view) */
    int joining; /* sequences that joined (their first token) this step */
} step_ledger;

typedef struct {
    int P, slots, context, max_prefill, max_queue;
    request req[MAX_REQ];
    int n_req;
    result res[MAX_REQ];
    step_ledger steps[MAX_STEPS];
    int n_steps;
    session_stats stats;
    int busy_seen;
} script;

static uint64_t op_calls(const ledger_t *l, const char *tag, ledger_op op) {
    return tag ? ledger_tag_counts(l, tag, op).calls : ledger_op_total(l, op).calls;
}

static int script_rank(comm_t *comm, void *arg) {
    script *sc = arg;
    int r = comm_rank(comm);
    session_opts o = {sc->slots, sc->context, sc->max_prefill, sc->max_queue, KERNEL_F32};
    session *s;
    char err[512];
    if (session_open(&s, comm, &source, r == 0 ? tok : NULL, &o, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int rc = 0;
    for (int step = 0; step < MAX_STEPS; step++) {
        if (r == 0) {
            int all_done = 1;
            for (int i = 0; i < sc->n_req; i++) {
                request *q = &sc->req[i];
                result *res = &sc->res[i];
                if (!res->added && q->join_step <= step) {
                    q->params.stop = q->stops;
                    int id = session_add(s, q->prompt, q->n_prompt, &q->params, err, sizeof(err));
                    if (id == SESSION_BUSY) {
                        sc->busy_seen++;
                    } else if (id < 0) {
                        session_close(s);
                        return comm_fail(comm, "session_add refused request %d: %s", i, err);
                    } else {
                        res->id = id;
                        res->added = 1;
                        res->first_step = -1;
                    }
                }
                if (res->added && q->cancel_step > 0 && q->cancel_step == step)
                    session_cancel(s, res->id);
                if (!res->added || res->finish == SESSION_RUNNING) all_done = 0;
            }
            if (all_done) session_finish(s);
        }
        ledger_t before;
        if (ledger_copy(&before, comm_ledger(comm))) return comm_fail(comm, "out of memory");
        const session_event *ev = NULL;
        int n_ev = 0;
        rc = session_step(s, r == 0 ? &ev : NULL, r == 0 ? &n_ev : NULL);
        const ledger_t *after = comm_ledger(comm);
        if (r == 0 && step < MAX_STEPS) {
            step_ledger *sl = &sc->steps[step];
            sl->plan = op_calls(after, "session.plan", LEDGER_BROADCAST) -
                       op_calls(&before, "session.plan", LEDGER_BROADCAST);
            sl->joins = op_calls(after, "session.joins", LEDGER_BROADCAST) -
                        op_calls(&before, "session.joins", LEDGER_BROADCAST);
            sl->allreduce =
                op_calls(after, NULL, LEDGER_ALLREDUCE) - op_calls(&before, NULL, LEDGER_ALLREDUCE);
            sl->allgather =
                op_calls(after, NULL, LEDGER_ALLGATHER) - op_calls(&before, NULL, LEDGER_ALLGATHER);
            sc->n_steps = step + 1;
        }
        ledger_free(&before);
        for (int e = 0; e < n_ev; e++) {
            int i = 0;
            while (i < sc->n_req && !(sc->res[i].added && sc->res[i].id == ev[e].seq)) i++;
            if (i == sc->n_req)
                return comm_fail(comm, "an event for unknown sequence %d", ev[e].seq);
            result *res = &sc->res[i];
            if (res->finish != SESSION_RUNNING)
                return comm_fail(comm, "an event for sequence %d after it ended", ev[e].seq);
            if (res->first_step < 0) {
                res->first_step = step;
                if (ev[e].finish != SESSION_FINISH_CANCELLED) sc->steps[step].joining++;
            } else if (ev[e].finish != SESSION_FINISH_CANCELLED)
                sc->steps[step].decoding++;
            res->last_step = step;
            if (ev[e].token >= 0 && res->n_tokens < MAX_GEN)
                res->tokens[res->n_tokens++] = ev[e].token;
            if (res->text_len + ev[e].text_len > sizeof(res->text))
                return comm_fail(comm, "text too long");
            memcpy(res->text + res->text_len, ev[e].text, ev[e].text_len);
            res->text_len += ev[e].text_len;
            if (res->n_events < MAX_GEN + 2) res->text_after[res->n_events++] = res->text_len;
            res->n_generated = ev[e].n_generated;
            res->n_prompt = ev[e].n_prompt;
            res->finish = ev[e].finish;
        }
        if (rc) break;
    }
    if (r == 0) session_get_stats(s, &sc->stats);
    session_close(s);
    if (rc == SESSION_DONE) return 0;
    return rc ? rc : comm_fail(comm, "the session did not finish in %d steps", MAX_STEPS);
}

static void run_script(script *sc) {
    char err[512];
    for (int i = 0; i < sc->n_req; i++) memset(&sc->res[i], 0, sizeof(sc->res[i]));
    memset(sc->steps, 0, sizeof(sc->steps));
    sc->busy_seen = 0;
    int rc = comm_launch(COMM_BACKEND_THREADS, sc->P, script_rank, sc, err, sizeof(err));
    if (rc) fprintf(stderr, "session run failed: %s\n", err);
    assert_int_equal(rc, 0);
}

static request make_request(const int *prompt, int n_prompt, float temperature, int top_k,
                            float top_p, uint64_t seed, int max_tokens) {
    request q;
    memset(&q, 0, sizeof(q));
    memcpy(q.prompt, prompt, (size_t)n_prompt * sizeof(int));
    q.n_prompt = n_prompt;
    q.params.sampling = (sampling_opts){temperature, top_k, top_p};
    q.params.seed = seed;
    q.params.max_tokens = max_tokens;
    return q;
}

/* Runs request q alone in a session of one slot. */
static result run_alone(int P, const request *q, int max_prefill) {
    script *sc = calloc(1, sizeof(*sc));
    assert_non_null(sc);
    *sc = (script){.P = P, .slots = 1, .context = CONTEXT, .max_prefill = max_prefill};
    sc->req[0] = *q;
    sc->req[0].join_step = 0;
    sc->n_req = 1;
    run_script(sc);
    result out = sc->res[0];
    free(sc);
    return out;
}

/* ---- same seed, same tokens ----------------------------------------------------------------- */

static void six_requests(script *sc) {
    static const int p1[] = {1, 2, 3}, p2[] = {10, 20, 30, 40, 50}, p3[] = {99};
    static const int p4[] = {7, 8, 9, 10, 11, 12, 13, 14}, p6[] = {4, 4, 4};
    int p5[40];
    for (int i = 0; i < 40; i++) p5[i] = (i * 37 + 5) % 100;
    sc->req[0] = make_request(p1, 3, 0.0f, 0, 1.0f, 1, 20);  /* greedy */
    sc->req[1] = make_request(p2, 5, 0.9f, 5, 1.0f, 7, 25);  /* top-k */
    sc->req[2] = make_request(p3, 1, 1.0f, 0, 0.8f, 3, 15);  /* top-p */
    sc->req[3] = make_request(p4, 8, 1.2f, 0, 1.0f, 11, 30); /* the whole vocabulary */
    sc->req[4] = make_request(p5, 40, 0.0f, 0, 1.0f, 2, 40); /* chunks; the context */
    sc->req[5] = make_request(p6, 3, 0.7f, 20, 0.9f, 0xfedcba9876543210ull, 10); /* k and p */
    int joins[6] = {0, 0, 1, 1, 3, 6};
    for (int i = 0; i < 6; i++) sc->req[i].join_step = joins[i];
    sc->n_req = 6;
}

static void test_batched_equals_alone(void **state) {
    (void)state;
    for (int P = 1; P <= 3; P++) {
        script *sc = calloc(1, sizeof(*sc));
        assert_non_null(sc);
        *sc = (script){.P = P, .slots = 3, .context = CONTEXT, .max_prefill = 16};
        six_requests(sc);
        run_script(sc);
        assert_true(sc->stats.max_batch >= 2);
        assert_true(sc->stats.max_batch <= 3);
        int queued_some = 0;
        for (int i = 0; i < sc->n_req; i++) {
            result alone = run_alone(P, &sc->req[i], 16);
            const result *b = &sc->res[i];
            if (b->first_step > sc->req[i].join_step) queued_some = 1;
            assert_int_equal(b->finish, alone.finish);
            assert_int_equal(b->n_tokens, alone.n_tokens);
            assert_memory_equal(b->tokens, alone.tokens, (size_t)b->n_tokens * sizeof(int));
            assert_int_equal(b->text_len, alone.text_len);
            assert_memory_equal(b->text, alone.text, b->text_len);
            assert_int_equal(b->n_prompt, sc->req[i].n_prompt);
        }
        assert_true(queued_some); /* 3 slots: some waited in the queue */
        /* The long prompt ends at the context: 40 + 25 = 64 + 1 (the last token is not stored). */
        assert_int_equal(sc->res[4].finish, SESSION_FINISH_CONTEXT);
        assert_int_equal(sc->res[4].n_generated, CONTEXT - 40 + 1);
        assert_int_equal(sc->stats.prompt_tokens, 3 + 5 + 1 + 8 + 40 + 3);
        assert_int_equal(sc->stats.sequences_added, 6);
        assert_int_equal(sc->stats.sequences_finished, 6);
        free(sc);
    }
}

/* ---- stop conditions ------------------------------------------------------------------------ */

/* A sampled run long enough to have text to cut. */
static request text_request(void) {
    static const int p[] = {50, 60, 70};
    return make_request(p, 3, 1.0f, 0, 1.0f, 17, 40);
}

static int printable(const char *t, size_t from, size_t to) {
    if (to <= from) return 0;
    for (size_t i = from; i < to; i++)
        if (t[i] < 0x21 || t[i] > 0x7e) return 0;
    return 1;
}

/* Event e's text in r: [start, end). */
static size_t ev_start(const result *r, int e) {
    return e == 0 ? 0 : r->text_after[e - 1];
}

static void test_stop_string_spanning_two_tokens(void **state) {
    (void)state;
    request q = text_request();
    result full = run_alone(2, &q, 0);
    assert_int_equal(full.finish, SESSION_FINISH_LENGTH);
    assert_int_equal(full.n_generated, 40);
    /* The last character of event i's text and the first of event i + 1's (printable ASCII,
     * so the stop string is valid UTF-8). */
    int i = 10;
    while (i + 1 < full.n_events &&
           !(printable(full.text, full.text_after[i] - 1, full.text_after[i]) &&
             full.text_after[i] > ev_start(&full, i) &&
             printable(full.text, full.text_after[i], full.text_after[i] + 1) &&
             full.text_after[i + 1] > full.text_after[i]))
        i++;
    assert_true(i + 1 < full.n_events);
    char stop[3] = {full.text[full.text_after[i] - 1], full.text[full.text_after[i]], 0};
    const char *first = strstr(full.text, stop);
    assert_non_null(first);
    size_t cut = (size_t)(first - full.text);
    q.params.n_stop = 1;
    q.stops[0] = stop;
    result stopped = run_alone(2, &q, 0);
    assert_int_equal(stopped.finish, SESSION_FINISH_STOP);
    assert_int_equal(stopped.text_len, cut);
    assert_memory_equal(stopped.text, full.text, cut);
    /* The tokens are those of the run without the stop, up to the one completing it. */
    assert_memory_equal(stopped.tokens, full.tokens, (size_t)stopped.n_tokens * sizeof(int));
    assert_true(stopped.n_generated <= i + 2); /* event i + 1 is token i + 2 */
}

static void test_held_back_text_released(void **state) {
    (void)state;
    request q = text_request();
    result full = run_alone(1, &q, 0);
    /* A stop string that begins with the text of events j and j + 1 and then goes on with bytes
     * the run never makes: never a stop, but its start is held back a while. */
    int j = 5;
    while (j + 2 < full.n_events &&
           !(printable(full.text, ev_start(&full, j), full.text_after[j]) &&
             printable(full.text, full.text_after[j], full.text_after[j + 1])))
        j++;
    assert_true(j + 2 < full.n_events);
    size_t from = ev_start(&full, j), to = full.text_after[j + 1];
    char stop[64];
    memcpy(stop, full.text + from, to - from);
    memcpy(stop + (to - from), "\x01\x02\x03", 4);
    const char *stops[2] = {stop, "\x01\x02"};
    q.params.n_stop = 2;
    q.stops[0] = stops[0];
    q.stops[1] = stops[1];
    result held = run_alone(1, &q, 0);
    assert_int_equal(held.finish, SESSION_FINISH_LENGTH);
    assert_int_equal(held.text_len, full.text_len);
    assert_memory_equal(held.text, full.text, full.text_len);
    /* After event j + 1, the text of events j and j + 1 was still held back... */
    assert_true(held.text_after[j + 1] <= from);
    /* ...and every byte was released by the end. */
    assert_int_equal(held.text_after[held.n_events - 1], full.text_len);
}

static void test_eos_max_tokens_context(void **state) {
    (void)state;
    /* EOS: a hot sampler over 101 tokens meets id 100 soon; find a seed where it does. */
    static const int p[] = {5, 6};
    int found = 0;
    for (uint64_t seed = 1; seed < 200 && !found; seed++) {
        request q = make_request(p, 2, 5.0f, 0, 1.0f, seed, 60);
        result res = run_alone(1, &q, 0);
        if (res.finish != SESSION_FINISH_EOS) continue;
        found = 1;
        assert_int_equal(res.n_generated, res.n_tokens); /* EOS is not counted */
        assert_true(res.n_tokens < 60);
        for (int t = 0; t < res.n_tokens; t++) assert_int_not_equal(res.tokens[t], EOS_ID);
        for (size_t at = 0; at + 13 <= res.text_len; at++)
            assert_memory_not_equal(res.text + at, "<|endoftext|>", 13);
        assert_int_equal(res.n_events, res.n_tokens + 1); /* the last event: only the end */
    }
    assert_true(found);
    request q = make_request(p, 2, 0.0f, 0, 1.0f, 1, 7);
    result res = run_alone(1, &q, 0);
    assert_int_equal(res.finish, SESSION_FINISH_LENGTH);
    assert_int_equal(res.n_generated, 7);
    int longp[60];
    for (int i = 0; i < 60; i++) longp[i] = i % 90;
    q = make_request(longp, 60, 0.0f, 0, 1.0f, 1, 100);
    res = run_alone(1, &q, 0);
    assert_int_equal(res.finish, SESSION_FINISH_CONTEXT);
    assert_int_equal(res.n_generated, CONTEXT - 60 + 1);
    assert_string_equal(session_finish_name(SESSION_FINISH_CONTEXT), "length");
    assert_string_equal(session_finish_name(SESSION_FINISH_EOS), "stop");
}

static void test_cancel(void **state) {
    (void)state;
    for (int P = 1; P <= 2; P++) {
        script *sc = calloc(1, sizeof(*sc));
        assert_non_null(sc);
        *sc = (script){.P = P, .slots = 2, .context = CONTEXT};
        static const int p1[] = {1, 2}, p2[] = {30, 40}, p3[] = {5};
        sc->req[0] = make_request(p1, 2, 0.8f, 10, 1.0f, 1, 30);
        sc->req[1] = make_request(p2, 2, 0.8f, 10, 1.0f, 2, 30);
        sc->req[2] = make_request(p3, 1, 0.8f, 10, 1.0f, 3, 30); /* queued behind them */
        sc->req[1].cancel_step = 4;                              /* running */
        sc->req[2].cancel_step = 2;                              /* still queued */
        sc->n_req = 3;
        run_script(sc);
        assert_int_equal(sc->res[1].finish, SESSION_FINISH_CANCELLED);
        assert_int_equal(sc->res[1].last_step, 4);
        assert_int_equal(sc->res[1].n_tokens, 4); /* steps 0..3 */
        assert_int_equal(sc->res[2].finish, SESSION_FINISH_CANCELLED);
        assert_int_equal(sc->res[2].n_tokens, 0);
        assert_int_equal(sc->res[2].last_step, 2);
        /* The other one is untouched: as alone. */
        result alone = run_alone(P, &sc->req[0], 0);
        assert_int_equal(sc->res[0].finish, alone.finish);
        assert_int_equal(sc->res[0].n_tokens, alone.n_tokens);
        assert_true(alone.n_tokens > 4);
        assert_memory_equal(sc->res[0].tokens, alone.tokens, (size_t)alone.n_tokens * sizeof(int));
        free(sc);
    }
}

/* session_finish with sequences running and queued: the last step reports each cancelled. */
typedef struct {
    int cancelled_at_done, refused_after_finish, events_after_done, done_twice;
} finish_job;

static int finish_rank(comm_t *comm, void *arg) {
    finish_job *job = arg;
    int r = comm_rank(comm), rc = 0;
    session_opts o = {2, CONTEXT, 0, 0, KERNEL_F32};
    session *s;
    char err[256];
    if (session_open(&s, comm, &source, r == 0 ? tok : NULL, &o, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    const session_event *ev = NULL;
    int n = 0;
    if (r == 0) {
        int prompt[] = {1, 2, 3};
        session_params p = {{0.0f, 0, 1.0f}, 1, 50, NULL, 0};
        for (int i = 0; i < 3; i++)
            if (session_add(s, prompt, 3, &p, err, sizeof(err)) < 0) rc = -1;
        for (int step = 0; step < 2 && !rc; step++) rc = session_step(s, &ev, &n);
        session_finish(s);
        if (session_add(s, prompt, 3, &p, err, sizeof(err)) == -1 && err[0])
            job->refused_after_finish = 1;
        if (!rc) rc = session_step(s, &ev, &n);
        for (int e = 0; rc == SESSION_DONE && e < n; e++)
            if (ev[e].finish == SESSION_FINISH_CANCELLED && ev[e].token == -1)
                job->cancelled_at_done++;
        if (session_step(s, &ev, &n) == SESSION_DONE) job->done_twice = 1;
        job->events_after_done = n;
    } else {
        while (!rc) rc = session_step(s, NULL, NULL);
    }
    session_close(s);
    return rc == SESSION_DONE ? 0 : comm_fail(comm, "the session did not end: %d", rc);
}

static void test_finish_cancels_everything(void **state) {
    (void)state;
    for (int P = 1; P <= 2; P++) {
        finish_job job;
        memset(&job, 0, sizeof(job));
        char err[512];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, finish_rank, &job, err, sizeof(err)),
                         0);
        assert_int_equal(job.cancelled_at_done, 3); /* 2 running, 1 queued */
        assert_true(job.refused_after_finish);
        assert_true(job.done_twice);
        assert_int_equal(job.events_after_done, 0);
    }
}

/* ---- bad requests and a full queue ---------------------------------------------------------- */

typedef struct {
    int refused, busy_at, good_finished;
    char messages[20][256];
} bad_job;

static int bad_rank(comm_t *comm, void *arg) {
    bad_job *job = arg;
    int r = comm_rank(comm);
    session_opts o = {1, CONTEXT, 0, 2, KERNEL_F32};
    session *s;
    char err[256];
    if (session_open(&s, comm, &source, r == 0 ? tok : NULL, &o, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int rc = 0;
    if (r == 0) {
        int ok_prompt[] = {1, 2, 3}, bad_id[] = {1, VOCAB}, neg_id[] = {-1}, long_prompt[CONTEXT];
        for (int i = 0; i < CONTEXT; i++) long_prompt[i] = 1;
        session_params good = {{0.0f, 0, 1.0f}, 1, 5, NULL, 0};
        char too_long[SESSION_MAX_STOP_BYTES + 2];
        memset(too_long, 'a', sizeof(too_long) - 1);
        too_long[sizeof(too_long) - 1] = 0;
        const char *five[5] = {"a", "b", "c", "d", "e"}, *empty[1] = {""}, *bad_utf8[1] = {"\xff"},
                   *null_stop[1] = {NULL}, *too_long_stop[1] = {too_long};
        struct {
            const int *prompt;
            int n;
            session_params p;
        } bad[] = {
            {ok_prompt, 0, good},
            {NULL, 3, good},
            {bad_id, 2, good},
            {neg_id, 1, good},
            {long_prompt, CONTEXT, good},
            {ok_prompt, 3, {{-1.0f, 0, 1.0f}, 1, 5, NULL, 0}},
            {ok_prompt, 3, {{NAN, 0, 1.0f}, 1, 5, NULL, 0}},
            {ok_prompt, 3, {{1.0f, VOCAB + 1, 1.0f}, 1, 5, NULL, 0}},
            {ok_prompt, 3, {{1.0f, 0, 0.0f}, 1, 5, NULL, 0}},
            {ok_prompt, 3, {{1.0f, 0, 1.5f}, 1, 5, NULL, 0}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 0, NULL, 0}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, five, 5}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, NULL, 1}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, empty, 1}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, bad_utf8, 1}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, null_stop, 1}},
            {ok_prompt, 3, {{0.0f, 0, 1.0f}, 1, 5, too_long_stop, 1}},
        };
        int n_bad = (int)(sizeof(bad) / sizeof(bad[0]));
        for (int i = 0; i < n_bad; i++) {
            err[0] = 0;
            int id = session_add(s, bad[i].prompt, bad[i].n, &bad[i].p, err, sizeof(err));
            if (id == -1 && err[0] && !strchr(err, '\n')) job->refused++;
            snprintf(job->messages[i], sizeof(job->messages[i]), "%s", err);
        }
        if (session_add(s, ok_prompt, 3, NULL, err, sizeof(err)) == -1) job->refused++;
        /* The queue holds 2: the third is SESSION_BUSY. */
        int a = session_add(s, ok_prompt, 3, &good, err, sizeof(err));
        int b = session_add(s, ok_prompt, 3, &good, err, sizeof(err));
        int c = session_add(s, ok_prompt, 3, &good, err, sizeof(err));
        if (a >= 0 && b >= 0 && c == SESSION_BUSY) job->busy_at = 3;
        if (session_pending(s) != 2) job->busy_at = -1;
        for (int step = 0; step < 100 && !rc; step++) {
            const session_event *ev;
            int n;
            if (session_pending(s) == 0) session_finish(s);
            rc = session_step(s, &ev, &n);
            for (int e = 0; e < n; e++)
                if (ev[e].finish == SESSION_FINISH_LENGTH && ev[e].n_generated == 5)
                    job->good_finished++;
        }
    } else {
        while (!rc) rc = session_step(s, NULL, NULL);
    }
    session_close(s);
    return rc == SESSION_DONE ? 0 : comm_fail(comm, "the session did not end: %d", rc);
}

static void test_bad_requests_refused(void **state) {
    (void)state;
    for (int P = 1; P <= 2; P++) {
        bad_job job;
        memset(&job, 0, sizeof(job));
        char err[512];
        assert_int_equal(comm_launch(COMM_BACKEND_THREADS, P, bad_rank, &job, err, sizeof(err)), 0);
        for (int i = 0; i < 17; i++)
            if (!job.messages[i][0]) fail_msg("bad request %d got no message", i);
        assert_int_equal(job.refused, 18);
        assert_int_equal(job.busy_at, 3);
        assert_int_equal(job.good_finished, 2); /* the group still works */
    }
}

/* ---- the ledger of a step ------------------------------------------------------------------- */

typedef struct {
    uint64_t allreduce[4]; /* by B = 1..3 */
} decode_cost;

/* The AllReduces of one model_decode_batch of B rows at P (what helper code may batch). */
static int decode_cost_rank(comm_t *comm, void *arg) {
    decode_cost *dc = arg;
    model_shard m;
    char err[512];
    int rc = 0;
    if (model_source_load(&source, &m, comm_rank(comm), comm_size(comm), 3, KERNEL_F32, err,
                          sizeof(err)) ||
        model_shard_enable_slots(&m, 3, 8, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    int slots[3] = {0, 1, 2}, toks[3] = {1, 2, 3};
    for (int b = 1; b <= 3 && !rc; b++) {
        for (int sl = 0; sl < 3; sl++) model_slot_reset(&m, sl);
        uint64_t before = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls;
        rc = model_decode_batch(comm, &m, slots, toks, b);
        if (comm_rank(comm) == 0)
            dc->allreduce[b] = ledger_op_total(comm_ledger(comm), LEDGER_ALLREDUCE).calls - before;
    }
    model_shard_free(&m);
    return rc;
}

static void test_ledger_per_step(void **state) {
    (void)state;
    for (int P = 2; P <= 3; P++) {
        decode_cost dc;
        memset(&dc, 0, sizeof(dc));
        char err[512];
        assert_int_equal(
            comm_launch(COMM_BACKEND_THREADS, P, decode_cost_rank, &dc, err, sizeof(err)), 0);
        script *sc = calloc(1, sizeof(*sc));
        assert_non_null(sc);
        *sc = (script){.P = P, .slots = 3, .context = CONTEXT, .max_prefill = 16};
        six_requests(sc);
        run_script(sc);
        int checked = 0;
        for (int st = 0; st < sc->n_steps; st++) {
            const step_ledger *sl = &sc->steps[st];
            assert_int_equal(sl->plan, 1);                /* every step: one small broadcast */
            assert_int_equal(sl->joins, sl->joining > 0); /* one more only when some join */
            if (sl->joining) continue;
            if (sl->decoding == 0) {
                assert_int_equal(sl->allreduce, 0);
                continue;
            }
            /* B decoding, nothing joining: the model's step and one allgather per row. */
            assert_int_equal(sl->allreduce, dc.allreduce[sl->decoding]);
            assert_int_equal(sl->allgather, sl->decoding);
            checked++;
        }
        assert_true(checked >= 5);
        free(sc);
    }
}

int main(void) {
    kernel_set_threads(1); /* one core per rank: no BLAS threads under the ranks */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_stop_string_spanning_two_tokens),
        cmocka_unit_test(test_held_back_text_released),
        cmocka_unit_test(test_eos_max_tokens_context),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_finish_cancels_everything),
        cmocka_unit_test(test_bad_requests_refused),
        cmocka_unit_test(test_ledger_per_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
