/* cmd_convert.c — `linshard convert`: a checkpoint rewritten with another storage type, e.g. to
 * ship a model at half or a quarter of the size. To a directory: safetensors (F32, F16, BF16),
 * every tensor kept with its name and shape, config.json copied. To a .gguf file: one GGUF file
 * (any type, Q8_0 and Q4_0 included, which safetensors cannot hold) with the metadata and tensor
 * names llama.cpp reads. Everything is written atomically. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_model.h"
#include "linshard/model.h"
#include "linshard/model_gguf.h"
#include "linshard/safetensors.h"

static const char convert_usage[] =
    "usage: linshard convert --model DIR --out DIR|FILE.gguf --dtype f32|f16|bf16|q8_0|q4_0\n"
    "\n"
    "With --out DIR: rewrites DIR's model.safetensors with every tensor stored as the given type\n"
    "(f32, f16 or bf16, rounded to nearest even) and copies config.json into the output\n"
    "directory (created if missing). With --out FILE.gguf: writes one GGUF v3 file, the format\n"
    "llama.cpp reads: the matrices as the given type (q8_0 and q4_0 are GGUF's blocks of 32),\n"
    "norms and biases as f32, the config as metadata, tensors under llama.cpp's names (a Llama's\n"
    "Q and K rows in llama.cpp's order), and the model's tokenizer under llama.cpp's keys (from\n"
    "DIR's tokenizer files, with tokenizer_config.json's chat_template; a GPT-2 without them:\n"
    "the built-in one), so that the file alone is the whole model.\n"
    "\n"
    "  --model DIR   the checkpoint to read (a Hugging Face directory)\n"
    "  --out PATH    a directory (safetensors) or a file ending in .gguf (must differ from\n"
    "                --model)\n"
    "  --dtype T     f32, f16, bf16, or (GGUF only) q8_0, q4_0\n"
    "  -h, --help    this text\n";

/* tokenizer_config.json's chat_template (a string) in dir, malloc'd, or NULL. */
static char *chat_template(const char *dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap), *out = NULL;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    cJSON *root = buf ? cJSON_ParseWithLength(buf, n) : NULL;
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "chat_template"));
    if (s) out = strdup(s);
    cJSON_Delete(root);
    free(buf);
    return out;
}

/* The tokenizer to write into the GGUF file: DIR's tokenizer files (refused in one line when
 * they do not load), else GPT-2's built-in one for a GPT-2; NULL with a note on stderr when there
 * is none or it does not fit the model's vocabulary. Returns 0, or -1 with err. */
static int source_tokenizer(const char *dir, const model_config *cfg, const char *out,
                            tokenizer **tok, char *err, size_t errlen) {
    static const char *const names[] = {"encoder.json", "vocab.json", "tokenizer.json"};
    int files = 0;
    *tok = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4096 + 32];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        files |= access(path, R_OK) == 0;
    }
    if (files || cfg->family == FAMILY_GPT2) {
        if (cli_load_tokenizer(dir, cfg, tok, err, errlen)) return -1;
    } else {
        fprintf(stderr, "linshard: note: %s has no tokenizer files: %s holds no tokenizer\n", dir,
                out);
        return 0;
    }
    if (tokenizer_vocab_size(*tok) > cfg->vocab_size) {
        fprintf(stderr,
                "linshard: note: the tokenizer has %d tokens, the model only %d: %s holds no "
                "tokenizer\n",
                tokenizer_vocab_size(*tok), cfg->vocab_size, out);
        tokenizer_free(*tok);
        *tok = NULL;
    }
    return 0;
}

int cmd_convert(int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"out", required_argument, 0, 'o'},
                                             {"dtype", required_argument, 0, 'd'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL;
    st_dtype dtype = ST_F32;
    int have_dtype = 0, c, ktype = KERNEL_F32;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'd':
            if ((ktype = kernel_type_from_name(optarg)) < 0)
                return cli_usage_error(
                    "convert", "--dtype must be f32, f16, bf16, q8_0 or q4_0, got '%s'", optarg);
            dtype = ktype == KERNEL_F16 ? ST_F16 : ktype == KERNEL_BF16 ? ST_BF16 : ST_F32;
            have_dtype = 1;
            break;
        case 'h':
            fputs(convert_usage, stdout);
            return EXIT_OK;
        case ':':
            return cli_usage_error("convert", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("convert", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("convert", "unexpected argument '%s'", argv[optind]);
    if (!model || !out || !have_dtype)
        return cli_usage_error("convert", "--model, --out and --dtype are required");
    if (!strcmp(model, out)) return cli_usage_error("convert", "--out must differ from --model");
    size_t out_len = strlen(out);
    int to_gguf = out_len > 5 && !strcmp(out + out_len - 5, ".gguf");
    if (!to_gguf && (ktype == KERNEL_Q8_0 || ktype == KERNEL_Q4_0))
        return cli_usage_error("convert",
                               "safetensors cannot hold %s blocks: give --out FILE.gguf for a "
                               "quantised checkpoint",
                               kernel_type_info((kernel_type)ktype)->name);

    char err[512], path[4096];
    model_config cfg;
    st_set file;
    if (model_config_load(model, &cfg, err, sizeof(err))) return cli_job_error("%s", err);
    if (cli_open_weights(model, &cfg, &file, err, sizeof(err))) return cli_job_error("%s", err);
    if (to_gguf) {
        tokenizer *tok = NULL;
        char *chat = chat_template(model);
        int rc = source_tokenizer(model, &cfg, out, &tok, err, sizeof(err)) ||
                         model_write_gguf_tokenizer(out, &cfg, &file, (kernel_type)ktype, tok,
                                                    tok ? chat : NULL, err, sizeof(err))
                     ? cli_job_error("%s", err)
                     : EXIT_OK;
        tokenizer_free(tok);
        free(chat);
        if (rc == EXIT_OK)
            printf("wrote %s (GGUF v3, matrices as %s)\n", out,
                   kernel_type_info((kernel_type)ktype)->name);
        st_set_close(&file);
        return rc;
    }
    int n = 0;
    for (int f = 0; f < file.n_files; f++) n += file.files[f].n_tensors;
    st_write_tensor *list = calloc((size_t)n + 1, sizeof(*list));
    int rc = list ? EXIT_OK : cli_job_error("out of memory");
    /* Every tensor of every file (a sharded checkpoint becomes one file). */
    for (int f = 0, k = 0; f < file.n_files && rc == EXIT_OK; f++)
        for (int i = 0; i < file.files[f].n_tensors && rc == EXIT_OK; i++, k++) {
            const st_tensor *t = &file.files[f].tensors[i];
            float *data = malloc((t->numel ? t->numel : 1) * sizeof(float));
            if (!data || st_read_f32(&file.files[f], t, 0, t->numel, data)) {
                free(data);
                rc = cli_job_error("%s: cannot read tensor '%s'", model, t->name);
                break;
            }
            list[k] =
                (st_write_tensor){.name = t->name, .dtype = dtype, .ndim = t->ndim, .data = data};
            memcpy(list[k].shape, t->shape, sizeof(t->shape));
        }
    if (rc == EXIT_OK && mkdir(out, 0755) != 0 && errno != EEXIST)
        rc = cli_job_error("%s: cannot create the directory", out);
    snprintf(path, sizeof(path), "%s/model.safetensors", out);
    if (rc == EXIT_OK && (st_write(path, list, n, err, sizeof(err)) ||
                          model_config_save(out, &cfg, err, sizeof(err))))
        rc = cli_job_error("%s", err);
    if (rc == EXIT_OK)
        printf("wrote %s/model.safetensors (%d tensors, %s) and %s/config.json\n", out, n,
               st_dtype_name(dtype), out);
    for (int i = 0; list && i < n; i++) free((void *)list[i].data);
    free(list);
    st_set_close(&file);
    return rc;
}
