/* main.c — the linshard program: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "linshard/linshard.h"

static const char usage[] =
    "usage: linshard [--help] [--version] COMMAND [ARGS]\n"
    "\n"
    "Megatron-style tensor parallelism in C: a model's layers split across P ranks (threads\n"
    "in one process, or MPI processes), giving the same answer as the unsplit model.\n"
    "\n"
    "commands:\n"
    "  generate      text from a prompt, the model split over P ranks (streams tokens)\n"
    "  serve         an OpenAI-compatible HTTP server, the model split over P ranks, requests\n"
    "                decoded together (continuous batching)\n"
    "  tokenize      token ids of a text (GPT-2's, or a model's tokenizer.json), or back\n"
    "  forward       run a model on token ids split over P ranks; top-5 next tokens, logits\n"
    "  verify        check that P ranks give the unsplit model's logits, and the comm ledger\n"
    "  plan          derive where tensor parallelism communicates, and how many bytes\n"
    "  lab           each tensor-parallel layer beside its naive splits: error, comm, why\n"
    "  train         train GPT-2 on a text file split over P ranks; resumable checkpoints\n"
    "  convert       rewrite a checkpoint as f32, f16, bf16 (safetensors) or q8_0, q4_0 (GGUF)\n"
    "  init          write a seeded random checkpoint of any family (Hugging Face layout)\n"
    "  bench comm    time allreduce_sum on the threads backend beside the installed MPI's\n"
    "                MPI_Allreduce and one core's memcpy (the bandwidth reference)\n"
    "  bench forward prefill tokens/s for each P, beside P=1 and PyTorch\n"
    "  bench generate  decode tokens/s for each P, beside the bandwidth ceiling, PyTorch\n"
    "  bench train   GPT-2 training-step tokens/s for each P, beside P=1 and PyTorch\n"
    "  check comm    run the communicator's conformance checks on P ranks (threads or mpi)\n"
    "\n"
    "Run 'linshard COMMAND --help' for a command's options. Under mpirun -np P (Open MPI or\n"
    "MPICH) the commands that take --backend use the mpi backend with --tp P by themselves.\n"
    "exit status: 0 success, 1 the job failed, 2 bad usage.\n";

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("linshard %s (mpi backend: %s; OpenBLAS kernels: %s)\n", LINSHARD_VERSION,
               comm_backend_available(COMM_BACKEND_MPI) ? "built in" : "not built",
               kernel_blas_description());
        return EXIT_OK;
    }
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "forward")) return cmd_forward(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "lab")) return cmd_lab(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "init")) return cmd_init(argc - 1, argv + 1);
    if (!strcmp(cmd, "verify")) return cmd_verify(argc - 1, argv + 1);
    if (cmd[0] == '-') return cli_usage_error(NULL, "unknown option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}

int main(int argc, char **argv) {
    cli_limit_blas_workers(argv);
    cli_choose_blas_kernels(argv);
    /* Under MPI, how this rank ended decides whether the job finalises or is aborted. */
    return cli_end_job(run_command(argc, argv));
}
