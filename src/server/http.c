/* http.c — the HTTP side of `linshard serve`, on libmicrohttpd: routing, limits, whole responses
 * and server-sent-event streams, a client that goes away, one log line per request.
 *
 * Threads: libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so a
 * handler may block: a whole response waits on its request's channel until the driver (engine.c)
 * says it is done; a stream's reader callback waits for the next text. While waiting, every
 * 100 ms, the thread looks whether the client closed its socket (poll + a peeked recv: EOF); if it
 * did, the request is let go (engine_release cancels its sequence) and the connection closed.
 *
 * Limits (docs/SERVING.md): bodies over SERVE_MAX_BODY_BYTES are refused with 413 (by their
 * Content-Length before reading, or as they arrive); more requests in flight than the session's
 * slots and queue hold get 429 (engine_admit); libmicrohttpd itself accepts at most
 * SERVE_MAX_CONNECTIONS connections. Routes: POST /v1/completions, POST /v1/chat/completions,
 * GET /v1/models, /health, /metrics; another path is 404, another method 405 (with Allow). */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "linshard/timer.h"
#include "server.h"

struct http_server {
    struct MHD_Daemon *daemon;
    http_opts o;
    int port;
};

/* One connection's request (libmicrohttpd's con_cls), freed when the request completes. */
typedef struct {
    int endpoint; /* SERVE_EP_* */
    char *body;   /* the upload, malloc'd */
    size_t len, cap;
    int too_large; /* the body passed SERVE_MAX_BODY_BYTES: the rest is dropped, 413 */
    int fd;        /* the connection's socket, to notice a client that went away */
} conn_state;

/* A stream's state, owned by its libmicrohttpd response (freed by stream_free). */
typedef struct {
    http_server *h;
    serve_request *r;
    int fd;
    double t_start;
    char method[8];
    size_t text_sent; /* bytes of r->text already sent */
    int sent_role, sent_final, sent_usage, sent_done;
    char *out; /* the SSE bytes being written */
    size_t out_len, out_pos;
} stream_state;

static void log_request(const char *method, const char *url, int status, const char *what) {
    fprintf(stderr, "serve: %s %s %d %s\n", method, url, status, what);
}

/* Whether the peer closed the connection: readable with nothing to read (EOF), or an error. */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (!(p.revents & POLLIN)) return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Queues body (malloc'd, taken) as the response. */
static enum MHD_Result reply(http_server *h, struct MHD_Connection *c, int endpoint, int status,
                             char *body, const char *content_type, const char *allow) {
    if (!body) { /* out of memory making the body: say so as briefly as possible */
        static char oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": "
                            "\"server_error\", \"param\": null, \"code\": null}}";
        status = 500;
        body = strdup(oom);
        if (!body) return MHD_NO;
        content_type = "application/json";
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    engine_count_answer(h->o.engine, endpoint, status);
    return rc;
}

static enum MHD_Result reply_error(http_server *h, struct MHD_Connection *c, int endpoint,
                                   const char *method, const char *url, const api_error *e,
                                   const char *allow) {
    log_request(method, url, e->status, e->message);
    return reply(h, c, endpoint, e->status, api_error_json(e), "application/json", allow);
}

/* ---- streams ------------------------------------------------------------------------------- */

/* Stages one "data: JSON\n\n" event (json malloc'd, taken). */
static int stage(stream_state *st, char *json) {
    if (!json) return -1;
    size_t n = strlen(json);
    char *out = malloc(n + 9);
    if (!out) {
        free(json);
        return -1;
    }
    memcpy(out, "data: ", 6);
    memcpy(out + 6, json, n);
    memcpy(out + 6 + n, "\n\n", 3);
    free(json);
    free(st->out);
    st->out = out;
    st->out_len = n + 8;
    st->out_pos = 0;
    return 0;
}

/* libmicrohttpd asks for the stream's next bytes: what is staged, else the next event (text,
 * the last chunk with finish_reason, the usage chunk, [DONE]), waiting for the driver if needed. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream_state *st = cls;
    serve_request *r = st->r;
    engine *e = st->h->o.engine;
    const char *model_id = st->h->o.model->model_id;
    (void)pos;
    while (st->out_pos == st->out_len) {
        int staged = -2; /* -2: nothing yet; 0: staged; -1: out of memory */
        engine_lock(e);
        while (staged == -2) {
            if (r->chat && !st->sent_role) {
                st->sent_role = 1;
                staged = stage(st, api_chunk_json(r, model_id, "", 0, 1, SESSION_RUNNING, 0));
            } else if (r->text_len > st->text_sent) {
                staged =
                    stage(st, api_chunk_json(r, model_id, r->text + st->text_sent,
                                             r->text_len - st->text_sent, 0, SESSION_RUNNING, 0));
                st->text_sent = r->text_len;
            } else if (r->done && !st->sent_final) {
                st->sent_final = 1;
                staged = stage(st, r->error.status
                                       ? api_error_json(&r->error)
                                       : api_chunk_json(r, model_id, "", 0, 0, r->finish, 0));
            } else if (r->done && r->include_usage && !st->sent_usage && !r->error.status) {
                st->sent_usage = 1;
                staged = stage(st, api_chunk_json(r, model_id, "", 0, 0, r->finish, 1));
            } else if (r->done && !st->sent_done) {
                st->sent_done = 1;
                free(st->out);
                st->out = strdup("data: [DONE]\n\n");
                st->out_len = st->out ? strlen(st->out) : 0;
                st->out_pos = 0;
                staged = st->out ? 0 : -1;
            } else if (r->done) {
                engine_unlock(e);
                return MHD_CONTENT_READER_END_OF_STREAM;
            } else {
                engine_wait(e, r, 0.1);
                if (!r->done && client_gone(st->fd)) {
                    engine_unlock(e);
                    return MHD_CONTENT_READER_END_WITH_ERROR; /* stream_free cancels it */
                }
            }
        }
        engine_unlock(e);
        if (staged < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out_len - st->out_pos;
    if (n > max) n = max;
    memcpy(buf, st->out + st->out_pos, n);
    st->out_pos += n;
    return (ssize_t)n;
}

/* The stream's response is gone (finished, or the client went away). */
static void stream_free(void *cls) {
    stream_state *st = cls;
    serve_request *r = st->r;
    engine *e = st->h->o.engine;
    engine_lock(e);
    int complete = r->done && st->sent_done;
    char what[160];
    snprintf(what, sizeof(what), "stream %d+%d tokens %.3f s%s%s", r->n_prompt_used, r->n_generated,
             timer_seconds() - st->t_start,
             complete ? " finish=" : " cancelled (the client went away)",
             complete ? (r->error.status ? "error" : session_finish_name(r->finish)) : "");
    int chat = r->chat;
    engine_unlock(e);
    log_request(st->method, chat ? "/v1/chat/completions" : "/v1/completions", 200, what);
    engine_count_answer(e, chat ? SERVE_EP_CHAT : SERVE_EP_COMPLETIONS, 200);
    engine_release(e, r);
    engine_leave(e);
    free(st->out);
    free(st);
}

/* ---- completions ---------------------------------------------------------------------------- */

static enum MHD_Result completion(http_server *h, struct MHD_Connection *c, conn_state *cs,
                                  const char *method, const char *url) {
    engine *e = h->o.engine;
    api_error err = {0};
    double t_start = timer_seconds();
    if (engine_admit(e, &err)) return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
    serve_request *r = serve_request_new();
    if (!r) {
        engine_leave(e);
        api_fail(&err, 500, "server_error", NULL, NULL, "out of memory");
        return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
    }
    if (api_parse_request(cs->body ? cs->body : "", cs->len, cs->endpoint == SERVE_EP_CHAT,
                          h->o.model, r, &err)) {
        serve_request_free(r);
        engine_leave(e);
        return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
    }
    engine_submit(e, r);
    /* Wait for the end (whole) or for the sequence to be taken (stream: a refusal is still an
     * error status, not a stream). */
    engine_lock(e);
    int gone = 0;
    while (!r->done && (!r->stream || r->seq < 0)) {
        engine_wait(e, r, 0.1);
        if (!r->done && client_gone(cs->fd)) {
            gone = 1;
            break;
        }
    }
    if (gone) {
        engine_unlock(e);
        log_request(method, url, 200, "cancelled (the client went away)");
        engine_count_answer(e, cs->endpoint, 200);
        engine_release(e, r);
        engine_leave(e);
        return MHD_NO; /* closes the connection */
    }
    if (r->done && r->error.status) {
        api_error refused = r->error;
        engine_unlock(e);
        engine_release(e, r);
        engine_leave(e);
        return reply_error(h, c, cs->endpoint, method, url, &refused, NULL);
    }
    if (!r->stream) {
        char *body = api_response_json(r, h->o.model->model_id, r->text, r->text_len);
        char what[160];
        snprintf(what, sizeof(what), "%d+%d tokens %.3f s finish=%s", r->n_prompt_used,
                 r->n_generated, timer_seconds() - t_start, session_finish_name(r->finish));
        engine_unlock(e);
        engine_release(e, r);
        engine_leave(e);
        log_request(method, url, 200, what);
        return reply(h, c, cs->endpoint, 200, body, "application/json", NULL);
    }
    engine_unlock(e);
    stream_state *st = calloc(1, sizeof(*st));
    struct MHD_Response *resp =
        st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free)
           : NULL;
    if (!resp) {
        free(st);
        engine_release(e, r);
        engine_leave(e);
        api_fail(&err, 500, "server_error", NULL, NULL, "out of memory");
        return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
    }
    st->h = h;
    st->r = r;
    st->fd = cs->fd;
    st->t_start = t_start;
    snprintf(st->method, sizeof(st->method), "%s", method);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp); /* stream_free runs when libmicrohttpd lets go of it */
    return rc;
}

/* ---- routing ------------------------------------------------------------------------------- */

static int endpoint_of(const char *url) {
    for (int ep = 0; ep < SERVE_EP_OTHER; ep++)
        if (!strcmp(url, serve_endpoint_names[ep])) return ep;
    return SERVE_EP_OTHER;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    http_server *h = cls;
    conn_state *cs = *con_cls;
    api_error err = {0};
    (void)version;
    if (!cs) { /* the headers: route, and refuse what can be refused before the body */
        if (!(cs = calloc(1, sizeof(*cs)))) return MHD_NO;
        *con_cls = cs;
        cs->endpoint = endpoint_of(url);
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->fd = info ? info->connect_fd : -1;
        int post = cs->endpoint == SERVE_EP_COMPLETIONS || cs->endpoint == SERVE_EP_CHAT;
        if (cs->endpoint == SERVE_EP_OTHER) {
            api_fail(&err, 404, "invalid_request_error", NULL, "not_found",
                     "no such endpoint: %s %.200s (see GET /v1/models, POST /v1/completions, "
                     "POST /v1/chat/completions, GET /health, GET /metrics)",
                     method, url);
            return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
        }
        if (strcmp(method, post ? "POST" : "GET")) {
            api_fail(&err, 405, "invalid_request_error", NULL, "method_not_allowed",
                     "%s takes %s, not %.16s", url, post ? "POST" : "GET", method);
            return reply_error(h, c, cs->endpoint, method, url, &err, post ? "POST" : "GET");
        }
        /* A body over the limit is read and dropped, then refused (413): a reply before the
         * body would reach most clients as a reset connection. Past 16 times the limit it is
         * refused at once and the connection closed. */
        const char *length =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
        if (post && declared > SERVE_MAX_BODY_BYTES) cs->too_large = 1;
        if (post && declared > 16ull * SERVE_MAX_BODY_BYTES) {
            api_fail(&err, 413, "invalid_request_error", NULL, "request_too_large",
                     "the body is %s bytes; this server takes at most %d", length,
                     SERVE_MAX_BODY_BYTES);
            return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
        }
        if (post) return MHD_YES; /* the body follows */
    }
    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->too_large || cs->len + n > SERVE_MAX_BODY_BYTES) {
            cs->too_large = 1;
            free(cs->body);
            cs->body = NULL;
            cs->len = cs->cap = 0;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 4096;
            while (cap < cs->len + n + 1) cap *= 2;
            char *p = realloc(cs->body, cap);
            if (!p) return MHD_NO;
            cs->body = p;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        cs->body[cs->len] = '\0';
        return MHD_YES;
    }
    switch (cs->endpoint) {
    case SERVE_EP_COMPLETIONS:
    case SERVE_EP_CHAT:
        if (cs->too_large) {
            api_fail(&err, 413, "invalid_request_error", NULL, "request_too_large",
                     "the body is over %d bytes, this server's limit", SERVE_MAX_BODY_BYTES);
            return reply_error(h, c, cs->endpoint, method, url, &err, NULL);
        }
        return completion(h, c, cs, method, url);
    case SERVE_EP_MODELS:
        log_request(method, url, 200, "");
        return reply(h, c, cs->endpoint, 200, api_models_json(h->o.model->model_id, 0),
                     "application/json", NULL);
    case SERVE_EP_HEALTH: {
        serve_counters k;
        engine_counters(h->o.engine, &k);
        int ended = engine_ended(h->o.engine);
        char body[160];
        snprintf(body, sizeof(body), "{\"status\": \"%s\", \"slots\": %d, \"in_flight\": %d}",
                 ended ? "stopped" : "ok", h->o.slots, k.in_flight);
        log_request(method, url, ended ? 503 : 200, "");
        return reply(h, c, cs->endpoint, ended ? 503 : 200, strdup(body), "application/json", NULL);
    }
    default: { /* SERVE_EP_METRICS */
        serve_counters k;
        engine_counters(h->o.engine, &k);
        log_request(method, url, 200, "");
        return reply(h, c, cs->endpoint, 200, metrics_text(&k, h->o.slots, h->o.tp),
                     "text/plain; version=0.0.4", NULL);
    }
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fputs("serve: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

http_server *http_start(const http_opts *o, char *err, size_t errlen) {
    http_server *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->o = *o;
    char port[16];
    snprintf(port, sizeof(port), "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "--host %s: %s", o->host, gai_strerror(gai));
        free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        h, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)SERVE_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(err, errlen,
                 "cannot listen on %s port %d (in use, or not an address of this "
                 "machine)",
                 o->host, o->port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : o->port;
    return h;
}

int http_port(const http_server *h) {
    return h->port;
}

void http_quiesce(http_server *h) {
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void http_stop(http_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
