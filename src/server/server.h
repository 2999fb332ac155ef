/* server.h — the parts of `linshard serve` (src/server/), one idea per file:
 *
 *   api.c      the OpenAI request bodies: JSON parsed and validated into a serve_request, and the
 *              response bodies (whole, or server-sent-event chunks) and error objects written;
 *   engine.c   the driver: one thread (rank 0's) owns the session; HTTP threads hand it
 *              requests through a queue (mutex + condition variable) and read what it produced
 *              from each request's channel; it steps the session only while there is work;
 *   http.c     the libmicrohttpd daemon: routing, limits (body size, requests in flight), the
 *              wait for a whole response or the SSE stream, a client that goes away, the log;
 *   metrics.c  GET /metrics: the counters in Prometheus' text format.
 *
 * A request's life: an HTTP thread parses and validates the body (api_parse_*: 400 on any
 * problem, nothing queued), tokenizes the prompt, and submits it (engine_submit). The driver
 * takes it at its next turn, session_add's it (400 or 429 if the session refuses), and steps the
 * session; each step's events append text to the request's channel and wake the HTTP thread,
 * which writes it out (stream) or waits for the end (whole). The request is freed when both sides
 * have let go (refs). A client that goes away sets `cancel`; the driver session_cancel's it. */
#ifndef LINSHARD_SERVER_H
#define LINSHARD_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "linshard/chat.h"
#include "linshard/session.h"
#include "linshard/tokenizer.h"

/* Limits, stated in --help and docs/SERVING.md. */
#define SERVE_MAX_BODY_BYTES (1 << 20) /* a request body over 1 MiB: 413 */
#define SERVE_MAX_MESSAGES 256         /* messages in one chat request */
#define SERVE_MAX_CONNECTIONS 256      /* libmicrohttpd refuses connections beyond */

/* An OpenAI-style error: the HTTP status and {"error": {"message", "type", "param", "code"}}. */
typedef struct {
    int status;
    char message[512];
    const char *type; /* "invalid_request_error", "rate_limit_error", "server_error" */
    char param[64];   /* the field at fault (a copy: the request's JSON is freed), or "" */
    const char *code; /* a machine-readable word, or NULL */
} api_error;

/* Fills e and returns -1 (for `return api_fail(...)`). */
int api_fail(api_error *e, int status, const char *type, const char *param, const char *code,
             const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* ---- a request, shared by its HTTP thread and the driver ------------------------------------ */

typedef struct serve_request {
    /* Set by the HTTP thread before engine_submit, read-only after. */
    int chat;          /* 1: /v1/chat/completions; 0: /v1/completions */
    int stream;        /* "stream": true */
    int include_usage; /* "stream_options": {"include_usage": true} */
    int *prompt;       /* token ids, malloc'd */
    int n_prompt;
    session_params params;
    char *stops[SESSION_MAX_STOPS]; /* params.stop points here; malloc'd copies */
    char id[40];                    /* "cmpl-..." / "chatcmpl-..." */
    long long created;              /* Unix seconds */
    double t_submit;                /* timer_seconds at engine_submit */

    /* The channel: guarded by the engine's mutex, `ready` signalled on every change. */
    pthread_cond_t ready;
    char *text; /* the completion so far (malloc'd, grows); text_len bytes */
    size_t text_len, text_cap;
    int done;                     /* the sequence ended (finish) or was refused (error) */
    session_finish_reason finish; /* why it ended */
    api_error error;              /* status != 0: refused by the session (400 / 429 / 500) */
    int n_prompt_used, n_generated;
    double t_first;             /* timer_seconds of the first generated token, 0 before */
    int cancel;                 /* the client went away: the driver cancels the sequence */
    int seq;                    /* the session's id, -1 until added */
    int refs;                   /* 2 while both the HTTP side and the driver hold it */
    struct serve_request *next; /* the driver's incoming queue / active list */
} serve_request;

/* A new request (refs 1: the HTTP side's), or NULL when out of memory. */
serve_request *serve_request_new(void);
/* Frees a request nobody else holds (before engine_submit, or after engine_release). */
void serve_request_free(serve_request *r);

/* ---- api.c: the OpenAI request bodies ------------------------------------------------------- */

/* What the HTTP side knows of the model for parsing. */
typedef struct {
    const tokenizer *tok;
    chat_template_kind chat_template;
    int context;          /* positions per sequence */
    int vocab_size;       /* the model's */
    const char *model_id; /* what /v1/models lists */
} api_model;

/* Parses a /v1/completions or /v1/chat/completions body into r (prompt tokenized, parameters
 * checked: everything session_add would refuse is refused here first, with the field named).
 * Returns 0, or -1 with e (400). */
int api_parse_request(const char *body, size_t len, int chat, const api_model *m, serve_request *r,
                      api_error *e);

/* Response bodies, malloc'd NUL-terminated JSON (NULL when out of memory). */
char *api_error_json(const api_error *e);
/* The whole response of a finished request: text, finish_reason, usage. */
char *api_response_json(const serve_request *r, const char *model_id, const char *text,
                        size_t text_len);
/* One SSE chunk's JSON: a piece of text (first: the chat's role delta too), or the last chunk's
 * finish_reason (finish != SESSION_RUNNING, text empty), or the usage chunk (usage_only). */
char *api_chunk_json(const serve_request *r, const char *model_id, const char *text,
                     size_t text_len, int first, session_finish_reason finish, int usage_only);
/* GET /v1/models. */
char *api_models_json(const char *model_id, long long created);

/* ---- engine.c: the driver ---------------------------------------------------------------------
 */

/* What the metrics show; a snapshot under the engine's mutex. */
typedef struct {
    session_stats session;   /* copied by the driver after each step */
    int incoming;            /* submitted, not yet taken by the driver */
    int in_flight;           /* admitted by HTTP and not yet answered */
    double step_seconds_sum; /* wall time of steps that did work */
    long long busy_steps;
    /* HTTP requests answered, by endpoint and status (http.c counts). */
    long long answered[6][9];
    long long cancelled;
} serve_counters;

enum {
    SERVE_EP_COMPLETIONS,
    SERVE_EP_CHAT,
    SERVE_EP_MODELS,
    SERVE_EP_HEALTH,
    SERVE_EP_METRICS,
    SERVE_EP_OTHER
};
/* The status codes counted: 200 400 404 405 413 429 500 503, other. */
int serve_status_index(int status);
extern const int serve_status_codes[9];
extern const char *const serve_endpoint_names[6];

typedef struct engine engine;

/* An engine for at most max_in_flight admitted requests (slots + queue). Returns NULL when out
 * of memory. */
engine *engine_new(int max_in_flight);
void engine_free(engine *e);

/* HTTP side. Admits one more request (0), or says why not: 429 when max_in_flight are in
 * flight, 503 when draining. Every admitted request ends with engine_leave. */
int engine_admit(engine *e, api_error *err);
void engine_leave(engine *e);
/* Hands r to the driver (refs becomes 2). */
void engine_submit(engine *e, serve_request *r);
/* Waits on r->ready (more text, the end) for at most timeout_s; the caller holds the lock
 * (engine_lock), which the wait lets go of meanwhile. */
void engine_wait(engine *e, serve_request *r, double timeout_s);
void engine_lock(engine *e);
void engine_unlock(engine *e);
/* The HTTP side lets go of r (cancelling it when it has not ended). */
void engine_release(engine *e, serve_request *r);
/* Counts an answered HTTP request. */
void engine_count_answer(engine *e, int endpoint, int status);
/* Copies the counters. */
void engine_counters(engine *e, serve_counters *out);

/* Stop accepting (admissions answer 503) and, once nothing is in flight, end the session's loop.
 * Safe from any thread. */
void engine_drain(engine *e);
/* Whether the driver has ended (the group failed, or drained). */
int engine_ended(engine *e);
/* Waits until nothing is in flight (true when drained) or timeout_s passes. */
int engine_wait_idle(engine *e, double timeout_s);

/* Rank 0's loop: takes requests, steps the session, dispatches events, until drained (returns 0)
 * or the group fails (returns the comm error; every request gets a 500). */
int engine_run_driver(engine *e, session *s);
/* Other ranks' loop: step until SESSION_DONE. */
int engine_run_follower(session *s);

/* ---- metrics.c ------------------------------------------------------------------------------ */

/* GET /metrics' body (Prometheus text format 0.0.4), malloc'd. */
char *metrics_text(const serve_counters *c, int slots, int tp);

/* ---- http.c --------------------------------------------------------------------------------- */

typedef struct http_server http_server;
typedef struct {
    const char *host;
    int port; /* 0: any free port */
    engine *engine;
    const api_model *model;
    int slots, tp;
} http_opts;
/* Starts the daemon (threads of its own). Returns NULL with a one-line message. */
http_server *http_start(const http_opts *o, char *err, size_t errlen);
int http_port(const http_server *h);
/* Stops accepting connections (those open carry on). */
void http_quiesce(http_server *h);
/* Closes every connection and frees the daemon. */
void http_stop(http_server *h);

#endif
