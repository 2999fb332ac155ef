/* safetensors_set.h — the weights of one model directory, in one safetensors file or sharded the
 * way Hugging Face ships big models.
 *
 * A sharded directory holds model-00001-of-0000N.safetensors ... and model.safetensors.index.json:
 *   {"metadata": {"total_size": N}, "weight_map": {"tensor.name":
 * "model-00001-of-00002.safetensors",
 *                                                  ...}}
 * st_set_open reads the index when there is one (it wins over a model.safetensors beside it, as
 * the index is what a sharded save writes last), else dir/model.safetensors as a set of one. Each
 * file named by the index is opened once with st_open: mmapped and validated, its pages touched
 * only when a slice is read, so a rank still reads just its own slices.
 *
 * The index is checked strictly, each problem a one-line error naming the file: valid JSON, a
 * "weight_map" object of string values, file names that stay inside dir (no '/', '\\', "." or
 * ".."; symlinks are followed, as in the Hugging Face cache), at most ST_SET_MAX_FILES files, every
 * file present and valid, every tensor of the index in the file it names, and every tensor of an
 * opened file in the index under that file (a tensor in two files is refused as ambiguous).
 * "metadata" is not checked: total_size is advisory in the files Hugging Face writes. */
#ifndef LINSHARD_SAFETENSORS_SET_H
#define LINSHARD_SAFETENSORS_SET_H

#include <stddef.h>

#include "linshard/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_SET_INDEX_NAME "model.safetensors.index.json"
#define ST_SET_SINGLE_NAME "model.safetensors"
/* The largest public checkpoints ship a few hundred shards; each open shard is one mapping. */
#define ST_SET_MAX_FILES 4096
/* Indexes of real models are well under 1 MB; refuse a runaway file before reading it. */
#define ST_SET_INDEX_MAX (64u << 20)

typedef struct {
    const st_tensor *tensor;
    int file; /* index into st_set.files and st_set.file_names */
} st_set_entry;

typedef struct {
    int indexed; /* 1: read through model.safetensors.index.json; 0: a single model.safetensors */
    int n_files;
    st_file *files;
    char **file_names; /* as named in the index (no directory), or "model.safetensors" */
    /* Every tensor of the set, sorted by name: iterate tensors[0 .. n_tensors) to visit all. */
    int n_tensors;
    st_set_entry *tensors;
} st_set;

/* Opens the weights of the model directory dir. Returns 0, or -1 with a one-line message in err;
 * on failure s is left zeroed and owns nothing. */
int st_set_open(st_set *s, const char *dir, char *err, size_t errlen);
/* A set of one file at any path (an optimizer state, a single file named otherwise): 0, or -1
 * with a one-line message and s zeroed. */
int st_set_open_file(st_set *s, const char *path, char *err, size_t errlen);
/* A set of one file already in memory (st_open_memory: read in place, data must outlive s),
 * called name. 0, or -1 with a one-line message and s zeroed. */
int st_set_open_memory(st_set *s, const void *data, size_t size, const char *name, char *err,
                       size_t errlen);
/* Unmaps and frees everything, then zeroes s. Safe on a zeroed set, after a failed st_set_open,
 * and twice. */
void st_set_close(st_set *s);
/* The tensor called name, or NULL. When found and file is not NULL, *file is the st_file that
 * holds it (pass both to st_read_f32). */
const st_tensor *st_set_find(const st_set *s, const char *name, const st_file **file);

/* Writes tensors (in the given order, whole tensors) into dir as Hugging Face shards
 * model-00001-of-0000N.safetensors, each with at most max_file_bytes of tensor data (the header is
 * not counted, as in Hugging Face's max_shard_size; a tensor larger than that gets a file of its
 * own; 0 means no limit, so one shard), then writes model.safetensors.index.json last. Every file
 * is written atomically, and the index only once every shard it names is in place, so a reader
 * never sees an index naming missing files. dir is created if missing. Rewriting a directory that
 * already holds a set is not atomic as a whole (write a fresh directory and rename it for that);
 * other files in dir are left alone. Returns 0, or -1 with a one-line message in err. */
int st_write_sharded(const char *dir, const st_write_tensor *tensors, int n, size_t max_file_bytes,
                     char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
