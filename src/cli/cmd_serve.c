/* cmd_serve.c — `linshard serve`: an OpenAI-compatible HTTP server over a model split over P
 * ranks, decoding the requests' sequences together (session.h; src/server/ does the serving).
 *
 * Processes and threads: every rank opens the session and loops on session_step. Rank 0 (the
 * printer process under MPI) also runs the HTTP daemon (libmicrohttpd's threads, started once the
 * model is loaded) and a signal thread; rank 0's thread is the session's driver (engine.c), the
 * other ranks only follow the driver's plan and never see HTTP. SIGINT and SIGTERM reach the
 * signal thread through a pipe: it stops new connections and new requests (503), in-flight
 * requests finish, then the driver ends the session on every rank and the program exits 0. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/chat.h"
#include "linshard/linshard.h"
#include "linshard/session.h"
#include "server.h"

static const char serve_usage[] =
    "usage: linshard serve [--model PATH] [--tp P] [--backend threads|mpi] [--host ADDR]\n"
    "                      [--port N] [--parallel N] [--queue N] [--ctx N] [--dtype T]\n"
    "\n"
    "Serves the model split over P ranks over HTTP with the OpenAI API: POST /v1/completions,\n"
    "POST /v1/chat/completions (both with \"stream\": true as server-sent events), GET\n"
    "/v1/models, GET /health, GET /metrics (Prometheus). Requests decode together, one batched\n"
    "step for all running sequences; a sequence gets the same tokens as when served alone. Prints\n"
    "\"serve: listening on http://ADDR:PORT\" on stdout when ready; logs one line per request on\n"
    "stderr. SIGINT or SIGTERM: no new requests, those in flight finish, exit 0.\n"
    "\n"
    "  --model PATH   a checkpoint of any family (a Hugging Face directory or a .gguf file) with\n"
    "                 its tokenizer, as `linshard generate` takes it; its chat template\n"
    "                 (tokenizer_config.json's or the GGUF's chat_template: ChatML, Llama 3,\n"
    "                 Llama 2 [INST], else none) renders chat messages. Without --model: the\n"
    "                 built-in default, a small GPT-2 (context 64) with no chat template\n"
    "  --tp P         ranks (default 1)\n"
    "  --backend B    threads (default) or mpi, the default under mpirun -np P (rank 0 serves)\n"
    "  --host ADDR    the address to listen on (default 127.0.0.1)\n"
    "  --port N       the port (default 8080; 0: any free port, printed)\n"
    "  --parallel N   sequences decoded together, each with its own KV-cache slot (default 4)\n"
    "  --queue N      requests waiting for a slot at most (default 4 x --parallel); beyond\n"
    "                 parallel + queue requests in flight, 429\n"
    "  --ctx N        positions per sequence, prompt + completion (default: the model's)\n"
    "  --dtype T      the type the weights are held as: auto (default: as stored), f32, f16,\n"
    "                 bf16, q8_0 or q4_0\n"
    "  -h, --help     this text\n"
    "\n"
    "Limits: request bodies of at most 1 MiB (413 beyond), 256 connections, 256 chat messages,\n"
    "4 stop strings; n must be 1. Errors are OpenAI's {\"error\": {\"message\", \"type\", "
    "\"param\",\n"
    "\"code\"}} with 400, 404, 405, 413, 429, 500 or 503 (docs/SERVING.md).\n";

typedef struct {
    const model_source *src;
    const tokenizer *tok;
    session_opts opts;
    engine *engine;
    api_model model;
    const char *host;
    int port, tp;
    /* The HTTP daemon, started by rank 0 once its shard is loaded. */
    pthread_mutex_t mu;
    http_server *http;
    int draining;
} serve_job;

static int serve_rank(comm_t *comm, void *arg) {
    serve_job *job = arg;
    int r = comm_rank(comm), rc;
    session *s;
    char err[512];
    if (session_open(&s, comm, job->src, r == 0 ? job->tok : NULL, &job->opts, err, sizeof(err)))
        return comm_fail(comm, "%s", err);
    if (r != 0) {
        rc = engine_run_follower(s);
        session_close(s);
        return rc;
    }
    http_opts ho = {job->host, job->port, job->engine, &job->model, job->opts.slots, job->tp};
    http_server *h = http_start(&ho, err, sizeof(err));
    if (!h) {
        engine_drain(job->engine); /* nothing in flight: the first step ends every rank */
    } else {
        pthread_mutex_lock(&job->mu);
        job->http = h;
        if (job->draining) http_quiesce(h);
        pthread_mutex_unlock(&job->mu);
        fprintf(stderr,
                "serve: pid %ld, model %s, %d ranks, %d slots of %d positions, queue %d; chat "
                "template: %s\n",
                (long)getpid(), job->model.model_id, job->tp, job->opts.slots, job->opts.context,
                job->opts.max_queue, chat_template_name(job->model.chat_template));
        printf("serve: listening on http://%s:%d\n", job->host, http_port(h));
        fflush(stdout);
    }
    rc = engine_run_driver(job->engine, s);
    session_close(s);
    return h ? rc : comm_fail(comm, "%s", err);
}

/* SIGINT / SIGTERM: the handler (any thread may run it: OpenBLAS starts threads before main)
 * writes the signal's number into a pipe; the signal thread reads it and drains. A 0 written by
 * cmd_serve at the end ends the thread. */
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(signal_pipe[1], &b, 1);
    (void)n;
}

static void *signal_thread(void *arg) {
    serve_job *job = arg;
    for (;;) {
        unsigned char sig;
        ssize_t n = read(signal_pipe[0], &sig, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n != 1 || sig == 0) return NULL;
        fprintf(stderr, "serve: %s: no new requests; finishing those in flight\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
        pthread_mutex_lock(&job->mu);
        if (job->http && !job->draining) http_quiesce(job->http);
        job->draining = 1;
        pthread_mutex_unlock(&job->mu);
        engine_drain(job->engine);
    }
}

/* The name /v1/models shows: the checkpoint's file or directory name. */
static const char *model_name(const char *path, char *buf, size_t len) {
    if (!path) return "linshard-default";
    snprintf(buf, len, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash && slash[1] ? slash + 1 : buf;
}

int cmd_serve(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"tp", required_argument, 0, 'p'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"host", required_argument, 0, 'H'},
                                             {"port", required_argument, 0, 'P'},
                                             {"parallel", required_argument, 0, 'n'},
                                             {"queue", required_argument, 0, 'q'},
                                             {"ctx", required_argument, 0, 'c'},
                                             {"dtype", required_argument, 0, 'd'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model_dir = NULL, *host = "127.0.0.1";
    long P = 1, port = 8080, parallel = 4, queue = -1, ctx = 0;
    comm_backend_t backend = COMM_BACKEND_THREADS;
    int c, rc, backend_given = 0, tp_given = 0, wtype_given = 0;
    kernel_type wtype = KERNEL_F32;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'p':
            if (cli_parse_int(optarg, 1, 256, &P))
                return cli_usage_error("serve", "--tp must be an integer in 1..256, got '%s'",
                                       optarg);
            tp_given = 1;
            break;
        case 'b':
            if ((rc = cli_parse_backend("serve", optarg, &backend))) return rc;
            backend_given = 1;
            break;
        case 'H':
            host = optarg;
            break;
        case 'P':
            if (cli_parse_int(optarg, 0, 65535, &port))
                return cli_usage_error("serve", "--port must be an integer in 0..65535, got '%s'",
                                       optarg);
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, 1024, &parallel))
                return cli_usage_error(
                    "serve", "--parallel must be an integer in 1..1024, got '%s'", optarg);
            break;
        case 'q':
            if (cli_parse_int(optarg, 0, 1 << 16, &queue))
                return cli_usage_error("serve", "--queue must be an integer in 0..65536, got '%s'",
                                       optarg);
            break;
        case 'c':
            if (cli_parse_int(optarg, 2, 1 << 24, &ctx))
                return cli_usage_error("serve", "--ctx must be an integer >= 2, got '%s'", optarg);
            break;
        case 'd':
            if ((rc = cli_parse_dtype("serve", optarg, &wtype_given, &wtype))) return rc;
            break;
        case 'h':
            fputs(serve_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("serve", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if ((rc = cli_resolve_backend("serve", backend_given, &backend, tp_given, &P))) return rc;

    /* A client that goes away must not kill the server with SIGPIPE. SIGINT/SIGTERM: see
     * on_signal (under MPI the other ranks ignore them: rank 0's drain ends them). */
    signal(SIGPIPE, SIG_IGN);
    if (pipe(signal_pipe)) return cli_job_error("cannot make a pipe");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if ((rc = cli_start_backend(backend, (int)P))) return rc;
    int printer = cli_is_printer(backend);
    char err[512], name[512];
    tokenizer *tok = NULL;
    model_source src;
    int src_open = 0, have_signal_thread = 0;
    pthread_t sig_thread;
    serve_job job;
    memset(&job, 0, sizeof(job));
    pthread_mutex_init(&job.mu, NULL);
    rc = EXIT_OK;

    if (cli_open_generation_model("serve", model_dir, (int)P, printer, &src, &tok, err,
                                  sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    src_open = 1;
    if (chat_template_of_model(model_dir, &job.model.chat_template, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    if (ctx > src.cfg.n_positions) {
        rc = cli_job_error("--ctx %ld is more than the model's %d positions", ctx,
                           src.cfg.n_positions);
        goto done;
    }
    if (!wtype_given) wtype = model_source_stored_type(&src);
    if (model_check_weight_type(&src.cfg, wtype, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    job.src = &src;
    job.tok = tok;
    job.opts.slots = (int)parallel;
    job.opts.context = ctx ? (int)ctx : src.cfg.n_positions;
    job.opts.max_queue = queue >= 0 ? (int)queue : 4 * (int)parallel;
    job.opts.wtype = wtype;
    job.model.tok = tok;
    job.model.context = job.opts.context;
    job.model.vocab_size = src.cfg.vocab_size;
    job.model.model_id = model_name(model_dir, name, sizeof(name));
    job.host = host;
    job.port = (int)port;
    job.tp = (int)P;
    /* Requests in flight at most: every slot busy and the queue full (a queue of 0 still lets
     * the session take what the slots hold). */
    if (!(job.engine = engine_new(job.opts.slots + job.opts.max_queue))) {
        rc = cli_job_error("out of memory");
        goto done;
    }
    if (cli_reserve_blas(backend == COMM_BACKEND_MPI ? 1 : (int)P, 1, err, sizeof(err))) {
        rc = cli_job_error("%s", err);
        goto done;
    }
    kernel_set_threads(1);
    if (printer) {
        if (pthread_create(&sig_thread, NULL, signal_thread, &job)) {
            rc = cli_job_error("cannot start a thread");
            goto done;
        }
        have_signal_thread = 1;
    }
    if (comm_launch(backend, (int)P, serve_rank, &job, err, sizeof(err)))
        rc = cli_job_error("%s", err);
    else if (printer)
        fprintf(stderr, "serve: stopped\n");

done:
    if (job.http) http_stop(job.http);
    if (have_signal_thread) {
        unsigned char end = 0;
        if (write(signal_pipe[1], &end, 1) == 1) pthread_join(sig_thread, NULL);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    engine_free(job.engine);
    pthread_mutex_destroy(&job.mu);
    if (src_open) model_source_close(&src);
    if (tok) tokenizer_free(tok);
    cli_stop_backend(backend);
    return rc;
}
