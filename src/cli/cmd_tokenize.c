/* cmd_tokenize.c — `linshard tokenize`: text to token ids and back, with the builtin GPT-2
 * tokenizer or one loaded from a directory (GPT-2's files, or a Hugging Face tokenizer.json). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/tokenizer.h"

static const char tokenize_usage[] =
    "usage: linshard tokenize [--model DIR] TEXT | -\n"
    "       linshard tokenize [--model DIR] --decode ID,ID,...\n"
    "\n"
    "Encodes TEXT (or standard input, for '-') into token ids and prints them\n"
    "comma-separated on one line. Added tokens in the text (\"<|endoftext|>\",\n"
    "\"<|begin_of_text|>\", \"<|im_start|>\", \"<s>\", ...) are single ids; no BOS is added.\n"
    "With --decode, prints the text of the ids instead (their exact bytes, then a newline).\n"
    "\n"
    "  --model DIR      load the tokenizer from DIR: encoder.json + vocab.bpe, vocab.json +\n"
    "                   merges.txt, or tokenizer.json (+ tokenizer_config.json): GPT-2,\n"
    "                   Llama 3, Qwen2/Qwen3, Llama 2 / Mistral; or from a .gguf file (its\n"
    "                   own, else those files beside it); a GPT-2 checkpoint without them\n"
    "                   uses GPT-2's, built in, as generate does (default: built in)\n"
    "  --decode LIST    comma-separated token ids to decode\n"
    "  -h, --help       this text\n"
    "\n"
    "Text that starts with '-' goes after '--': linshard tokenize -- \"-5 degrees\".\n";

/* Reads all of standard input. Returns 0, or -1 when out of memory or on a read error. */
static int read_stdin(char **data, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) return -1;
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    if (ferror(stdin)) {
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

static int print_ids(const int *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    putchar('\n');
    return fflush(stdout) || ferror(stdout) ? cli_job_error("writing to standard output failed")
                                            : EXIT_OK;
}

static int encode_text(const tokenizer *tok, const char *arg) {
    char *text = NULL;
    size_t len;
    if (!strcmp(arg, "-")) {
        if (read_stdin(&text, &len)) return cli_job_error("reading standard input failed");
    } else {
        len = strlen(arg);
    }
    int *ids = NULL;
    size_t n = 0;
    int rc = tokenizer_encode(tok, text ? text : arg, len, &ids, &n)
                 ? cli_job_error("out of memory encoding %zu bytes", len)
                 : print_ids(ids, n);
    free(ids);
    free(text);
    return rc;
}

static int decode_ids(const tokenizer *tok, const int *ids, size_t n) {
    char *text = NULL, err[256];
    size_t len = 0;
    if (tokenizer_decode(tok, ids, n, &text, &len, err, sizeof(err)))
        return cli_job_error("%s", err);
    int bad = fwrite(text, 1, len, stdout) != len;
    free(text);
    putchar('\n');
    if (bad || fflush(stdout) || ferror(stdout))
        return cli_job_error("writing to standard output failed");
    return EXIT_OK;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"decode", required_argument, 0, 'd'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model_dir = NULL, *decode_arg = NULL, *bad = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case 'd':
            decode_arg = optarg;
            break;
        case 'h':
            fputs(tokenize_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("tokenize", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("tokenize", "unknown option '%s'", argv[optind - 1]);
        }
    }
    const char *text = optind < argc ? argv[optind] : NULL;
    if (text && optind + 1 < argc)
        return cli_usage_error("tokenize", "unexpected argument '%s' (quote the text)",
                               argv[optind + 1]);
    if (text && decode_arg)
        return cli_usage_error("tokenize", "give either text to encode or --decode, not both");
    if (!text && !decode_arg)
        return cli_usage_error("tokenize", "give the text to encode ('-' for standard input) or "
                                           "--decode ID,ID,...");
    int *ids = NULL, n_ids = 0;
    if (decode_arg && (n_ids = cli_parse_tokens(decode_arg, &ids, &bad)) < 0)
        return cli_usage_error("tokenize", "bad token id at '%s' in --decode", bad ? bad : "");

    tokenizer *tok = NULL;
    char err[512];
    /* The same tokenizer generate would use for this directory. */
    int rc = cli_load_tokenizer(model_dir, NULL, &tok, err, sizeof(err));
    if (rc) {
        free(ids);
        return cli_job_error("%s", err);
    }
    rc = decode_arg ? decode_ids(tok, ids, (size_t)n_ids) : encode_text(tok, text);
    tokenizer_free(tok);
    free(ids);
    return rc;
}
