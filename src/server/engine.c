/* engine.c — the driver of `linshard serve`: the one thread that owns the session (rank 0's
 * thread of the group), fed by the HTTP threads.
 *
 * Communication: one mutex guards the engine and every request's channel. HTTP threads append
 * requests to `incoming` and signal `wake`; the driver, when it has nothing running, sleeps on
 * `wake` (no empty steps: the other ranks sleep in the step's broadcast meanwhile). Each turn it
 * takes the whole incoming list, session_add's each request (a refusal goes back to that request
 * alone: 400 or 429), cancels the sequences whose clients went away, and runs one session_step
 * with the lock released; then, under the lock, it appends each event's text to its request's
 * channel and signals the request's `ready`. A request is freed by whichever side lets go last
 * (refs). Draining (SIGINT/SIGTERM): admissions answer 503; when nothing is in flight the driver
 * calls session_finish and the next step ends every rank's loop. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "linshard/timer.h"
#include "server.h"

struct engine {
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the driver: incoming, a cancel, draining */
    pthread_cond_t idle; /* engine_wait_idle: in_flight fell to 0, or the driver ended */
    serve_request *in_head, *in_tail;
    int n_incoming;
    int cancels; /* cancel flags set since the driver last looked */
    int max_in_flight, in_flight;
    int draining, ended;
    serve_counters counters;
};

const int serve_status_codes[9] = {200, 400, 404, 405, 413, 429, 500, 503, 0};
const char *const serve_endpoint_names[6] = {
    "/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "other"};

int serve_status_index(int status) {
    for (int i = 0; i < 8; i++)
        if (serve_status_codes[i] == status) return i;
    return 8;
}

engine *engine_new(int max_in_flight) {
    engine *e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->idle, NULL);
    e->max_in_flight = max_in_flight;
    return e;
}

void engine_free(engine *e) {
    if (!e) return;
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->idle);
    free(e);
}

void engine_lock(engine *e) {
    pthread_mutex_lock(&e->mu);
}
void engine_unlock(engine *e) {
    pthread_mutex_unlock(&e->mu);
}

int engine_admit(engine *e, api_error *err) {
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    if (e->draining || e->ended)
        rc = api_fail(err, 503, "server_error", NULL, "shutting_down",
                      "the server is shutting down and takes no new requests");
    else if (e->in_flight >= e->max_in_flight)
        rc = api_fail(err, 429, "rate_limit_error", NULL, "server_busy",
                      "the server has %d requests in flight, its limit (--parallel slots plus "
                      "the queue): try again later",
                      e->in_flight);
    else
        e->in_flight++;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void engine_leave(engine *e) {
    pthread_mutex_lock(&e->mu);
    e->in_flight--;
    if (e->in_flight == 0) {
        pthread_cond_broadcast(&e->idle);
        pthread_cond_signal(&e->wake); /* a drain may be waiting for this */
    }
    pthread_mutex_unlock(&e->mu);
}

void engine_submit(engine *e, serve_request *r) {
    pthread_mutex_lock(&e->mu);
    r->refs++;
    r->t_submit = timer_seconds();
    r->next = NULL;
    if (e->ended) { /* the group is gone: answer at once */
        api_fail(&r->error, 500, "server_error", NULL, NULL,
                 "the tensor-parallel group has stopped");
        r->done = 1;
        r->refs--;
    } else {
        if (e->in_tail)
            e->in_tail->next = r;
        else
            e->in_head = r;
        e->in_tail = r;
        e->n_incoming++;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
}

void engine_wait(engine *e, serve_request *r, double timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double whole = floor(timeout_s);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->ready, &e->mu, &ts);
}

/* Drops one reference to r; frees it at zero. Under the lock. */
static void unref(serve_request *r) {
    if (--r->refs == 0) serve_request_free(r);
}

void engine_release(engine *e, serve_request *r) {
    pthread_mutex_lock(&e->mu);
    if (!r->done) {
        r->cancel = 1;
        e->cancels++;
        e->counters.cancelled++;
        pthread_cond_signal(&e->wake);
    }
    unref(r);
    pthread_mutex_unlock(&e->mu);
}

void engine_count_answer(engine *e, int endpoint, int status) {
    pthread_mutex_lock(&e->mu);
    e->counters.answered[endpoint][serve_status_index(status)]++;
    pthread_mutex_unlock(&e->mu);
}

void engine_counters(engine *e, serve_counters *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->counters;
    out->incoming = e->n_incoming;
    out->in_flight = e->in_flight;
    pthread_mutex_unlock(&e->mu);
}

void engine_drain(engine *e) {
    pthread_mutex_lock(&e->mu);
    e->draining = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
}

int engine_ended(engine *e) {
    pthread_mutex_lock(&e->mu);
    int ended = e->ended;
    pthread_mutex_unlock(&e->mu);
    return ended;
}

int engine_wait_idle(engine *e, double timeout_s) {
    double until = timer_seconds() + timeout_s;
    pthread_mutex_lock(&e->mu);
    while (e->in_flight > 0 && !e->ended) {
        double left = until - timer_seconds();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)left;
        ts.tv_nsec += (long)((left - floor(left)) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->idle, &e->mu, &ts);
    }
    int idle = e->in_flight == 0;
    pthread_mutex_unlock(&e->mu);
    return idle;
}

/* Appends text to r's channel (under the lock). Returns -1 when out of memory. */
static int append(serve_request *r, const char *text, size_t n) {
    if (!n) return 0;
    if (r->text_len + n > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n) cap *= 2;
        char *p = realloc(r->text, cap);
        if (!p) return -1;
        r->text = p;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, text, n);
    r->text_len += n;
    return 0;
}

/* Ends r from the driver's side: done, the HTTP side woken, the driver's reference dropped.
 * Under the lock. */
static void settle(serve_request *r) {
    r->done = 1;
    pthread_cond_broadcast(&r->ready);
    unref(r);
}

int engine_run_driver(engine *e, session *s) {
    serve_request *active = NULL; /* added to the session, not yet ended (the driver's own) */
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->in_head && !e->cancels && session_pending(s) == 0 &&
               !(e->draining && e->in_flight == 0))
            pthread_cond_wait(&e->wake, &e->mu);
        serve_request *batch = e->in_head;
        e->in_head = e->in_tail = NULL;
        e->n_incoming = 0;
        int cancels = e->cancels;
        e->cancels = 0;
        int finish = e->draining && e->in_flight == 0 && !batch;
        /* New requests: into the session, or refused (their clients get the reason). */
        while (batch) {
            serve_request *r = batch;
            batch = r->next;
            r->next = NULL;
            if (r->cancel) {
                r->finish = SESSION_FINISH_CANCELLED;
                settle(r);
                continue;
            }
            char err[256];
            pthread_mutex_unlock(&e->mu); /* session_add may copy a long prompt */
            int seq = session_add(s, r->prompt, r->n_prompt, &r->params, err, sizeof(err));
            pthread_mutex_lock(&e->mu);
            if (seq >= 0) {
                r->seq = seq;
                r->next = active;
                active = r;
                pthread_cond_broadcast(&r->ready); /* a stream may now send its headers */
            } else {
                if (seq == SESSION_BUSY)
                    api_fail(&r->error, 429, "rate_limit_error", NULL, "server_busy",
                             "every slot and the queue are full: try again later");
                else
                    api_fail(&r->error, 400, "invalid_request_error", NULL, NULL, "%s", err);
                settle(r);
            }
        }
        if (cancels)
            for (serve_request *r = active; r; r = r->next)
                if (r->cancel) session_cancel(s, r->seq);
        pthread_mutex_unlock(&e->mu);
        if (finish) session_finish(s);

        const session_event *ev = NULL;
        int n_ev = 0;
        double t0 = timer_seconds();
        rc = session_step(s, &ev, &n_ev);
        double t1 = timer_seconds();
        if (rc == SESSION_DONE) {
            rc = 0;
            break;
        }
        if (rc) break;

        pthread_mutex_lock(&e->mu);
        for (int i = 0; i < n_ev; i++) {
            serve_request **link = &active, *r;
            while ((r = *link) && r->seq != ev[i].seq) link = &r->next;
            if (!r) continue; /* not ours: cannot happen */
            if (append(r, ev[i].text, ev[i].text_len)) {
                api_fail(&r->error, 500, "server_error", NULL, NULL, "out of memory");
                session_cancel(s, r->seq);
            }
            if (ev[i].token >= 0 && r->t_first == 0) r->t_first = t1;
            r->n_prompt_used = ev[i].n_prompt;
            r->n_generated = ev[i].n_generated;
            if (ev[i].finish != SESSION_RUNNING) {
                r->finish = ev[i].finish;
                *link = r->next;
                r->next = NULL;
                settle(r);
            } else {
                pthread_cond_broadcast(&r->ready);
            }
        }
        session_get_stats(s, &e->counters.session);
        if (n_ev > 0) {
            e->counters.step_seconds_sum += t1 - t0;
            e->counters.busy_steps++;
        }
        pthread_mutex_unlock(&e->mu);
    }
    /* Ended: drained (nothing left), or the group failed (everyone waiting gets a 500). */
    pthread_mutex_lock(&e->mu);
    e->ended = 1;
    serve_request *lists[2] = {active, e->in_head};
    e->in_head = e->in_tail = NULL;
    for (int l = 0; l < 2; l++)
        while (lists[l]) {
            serve_request *r = lists[l];
            lists[l] = r->next;
            r->next = NULL;
            api_fail(&r->error, 500, "server_error", NULL, NULL,
                     "the tensor-parallel group has stopped");
            settle(r);
        }
    pthread_cond_broadcast(&e->idle);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int engine_run_follower(session *s) {
    for (;;) {
        int rc = session_step(s, NULL, NULL);
        if (rc == SESSION_DONE) return 0;
        if (rc) return rc;
    }
}
