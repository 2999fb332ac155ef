/* gguf_writer.c — builds a GGUF v3 file (see include/linshard/gguf.h): metadata encoded into one
 * growing buffer as it is set, tensors recorded by reference (the caller's bytes or a fill
 * function), then everything streamed to a temporary file that is renamed into place.
 *
 * Layout written: "GGUF", 3, tensor count, metadata count, the metadata entries in the order set,
 * the tensor infos in the order added (offsets: each tensor at the next multiple of 32 after the
 * previous one), zero padding to 32, then each tensor's bytes followed by zero padding to 32 (as
 * llama.cpp's writers do, so the file also ends on a multiple of 32). */
#include "linshard/atomic_file.h"
#include "linshard/gguf.h"
#include "gguf_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN GGUF_DEFAULT_ALIGNMENT
#define FILL_CHUNK ((size_t)1 << 20) /* bytes asked of a fill function at a time */

typedef struct {
    char name[GGUF_NAME_MAX + 1];
    int type;
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t n_bytes;
    const void *data;
    gguf_fill_fn fill;
    void *user;
} wtensor;

struct gguf_writer {
    uint8_t *meta; /* the encoded metadata entries */
    size_t meta_len, meta_cap;
    char **keys;
    uint64_t n_kv;
    size_t keys_cap;
    wtensor *tensors;
    uint64_t n_tensors;
    size_t tensors_cap;
};

__attribute__((format(printf, 3, 4))) static int wfail(char *err, size_t errlen, const char *fmt,
                                                       ...) {
    if (!err || errlen == 0) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

gguf_writer *gguf_writer_new(void) {
    return calloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->meta);
    free(w->tensors);
    free(w);
}

/* ---- encoding metadata ------------------------------------------------------------------------
 */

/* Grows w->meta to hold n more bytes. */
static int reserve(gguf_writer *w, size_t n) {
    if (n <= w->meta_cap - w->meta_len) return 0;
    if (n > SIZE_MAX / 2 - w->meta_len) return -1;
    size_t cap = w->meta_cap ? w->meta_cap : 4096;
    while (cap - w->meta_len < n) cap *= 2;
    uint8_t *m = realloc(w->meta, cap);
    if (!m) return -1;
    w->meta = m;
    w->meta_cap = cap;
    return 0;
}

/* Appends (reserve first). */
static void put(gguf_writer *w, const void *p, size_t n) {
    if (n) memcpy(w->meta + w->meta_len, p, n);
    w->meta_len += n;
}

static void put_u32(gguf_writer *w, uint32_t v) {
    put(w, &v, 4);
}

static void put_u64(gguf_writer *w, uint64_t v) {
    put(w, &v, 8);
}

/* Checks key and reserves room for it plus value_bytes; on success the entry's key and type are
 * written and the caller appends value_bytes bytes. On failure nothing has changed. */
static int begin_entry(gguf_writer *w, const char *key, gguf_type t, size_t value_bytes, char *err,
                       size_t errlen) {
    if (!w) return wfail(err, errlen, "gguf writer: no writer");
    if (!key) return wfail(err, errlen, "gguf writer: a NULL key");
    size_t kn = strlen(key);
    if (kn == 0 || kn > GGUF_KEY_MAX)
        return wfail(err, errlen, "gguf writer: key of %zu bytes (allowed 1..%u)", kn,
                     GGUF_KEY_MAX);
    if (strcmp(key, "general.alignment") == 0)
        return wfail(err, errlen, "gguf writer: key 'general.alignment' is the writer's (32)");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return wfail(err, errlen, "gguf writer: key '%s' set twice", key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 16;
        char **k = realloc(w->keys, cap * sizeof(*k));
        if (!k) return wfail(err, errlen, "gguf writer: out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = strdup(key);
    if (!copy || value_bytes > SIZE_MAX - 12 - kn || reserve(w, 12 + kn + value_bytes) != 0) {
        free(copy);
        return wfail(err, errlen, "gguf writer: key '%s': out of memory", key);
    }
    w->keys[w->n_kv++] = copy;
    put_u64(w, kn);
    put(w, key, kn);
    put_u32(w, (uint32_t)t);
    return 0;
}

static int scalar_ok(gguf_type t, const void *value, const char *key, char *err, size_t errlen) {
    if (gguf_scalar_size(t) == 0)
        return wfail(err, errlen, "gguf writer: key '%s': type %d is not a scalar type",
                     key ? key : "(null)", (int)t);
    if (t == GGUF_TYPE_BOOL && value && *(const uint8_t *)value > 1)
        return wfail(err, errlen, "gguf writer: key '%s': a bool must be 0 or 1",
                     key ? key : "(null)");
    return 0;
}

int gguf_writer_set(gguf_writer *w, const char *key, gguf_type t, const void *value, char *err,
                    size_t errlen) {
    if (scalar_ok(t, value, key, err, errlen) != 0) return -1;
    if (!value) return wfail(err, errlen, "gguf writer: key '%s': no value", key ? key : "(null)");
    size_t sz = gguf_scalar_size(t);
    if (begin_entry(w, key, t, sz, err, errlen) != 0) return -1;
    put(w, value, sz);
    return 0;
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, char *err, size_t errlen) {
    return gguf_writer_set(w, key, GGUF_TYPE_UINT32, &v, err, errlen);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v, char *err, size_t errlen) {
    return gguf_writer_set(w, key, GGUF_TYPE_FLOAT32, &v, err, errlen);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t len, char *err,
                        size_t errlen) {
    if (!s && len) return wfail(err, errlen, "gguf writer: key '%s': NULL string", key ? key : "");
    if (len > SIZE_MAX - 8) return wfail(err, errlen, "gguf writer: string too long");
    if (begin_entry(w, key, GGUF_TYPE_STRING, 8 + len, err, errlen) != 0) return -1;
    put_u64(w, len);
    put(w, s, len);
    return 0;
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type t, const void *data, uint64_t n,
                        char *err, size_t errlen) {
    if (scalar_ok(t, NULL, key, err, errlen) != 0) return -1;
    size_t sz = gguf_scalar_size(t);
    if (n > (SIZE_MAX - 12) / sz) return wfail(err, errlen, "gguf writer: array too long");
    if (n && !data) return wfail(err, errlen, "gguf writer: key '%s': no data", key ? key : "");
    if (t == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return wfail(err, errlen, "gguf writer: key '%s': a bool must be 0 or 1", key);
    if (begin_entry(w, key, GGUF_TYPE_ARRAY, 12 + (size_t)n * sz, err, errlen) != 0) return -1;
    put_u32(w, (uint32_t)t);
    put_u64(w, n);
    put(w, data, (size_t)n * sz);
    return 0;
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const size_t *lens, uint64_t n, char *err, size_t errlen) {
    if (n && !strs) return wfail(err, errlen, "gguf writer: key '%s': no strings", key ? key : "");
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i] && (!lens || lens[i]))
            return wfail(err, errlen, "gguf writer: key '%s': string %" PRIu64 " is NULL",
                         key ? key : "", i);
        size_t len = lens ? lens[i] : strlen(strs[i]);
        if (len > SIZE_MAX / 2 - total) return wfail(err, errlen, "gguf writer: array too long");
        total += 8 + len;
    }
    if (begin_entry(w, key, GGUF_TYPE_ARRAY, total, err, errlen) != 0) return -1;
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, n);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(strs[i]);
        put_u64(w, len);
        put(w, strs[i], len);
    }
    return 0;
}

/* ---- tensors ----------------------------------------------------------------------------------
 */

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims,
                           const uint64_t *ne, const void *data, gguf_fill_fn fill, void *user,
                           char *err, size_t errlen) {
    if (!w || !name) return wfail(err, errlen, "gguf writer: no writer or a NULL tensor name");
    size_t len = strlen(name);
    if (len == 0 || len > GGUF_NAME_MAX)
        return wfail(err, errlen, "gguf writer: tensor name of %zu bytes (allowed 1..%d)", len,
                     GGUF_NAME_MAX);
    const char *tn = gguf_ggml_type_name(type);
    if (!tn || gguf_ggml_block_size(type) == 0)
        return wfail(err, errlen, "gguf writer: tensor '%s': ggml type %d has no known size", name,
                     type);
    if (!ne) return wfail(err, errlen, "gguf writer: tensor '%s': no dims", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return wfail(err, errlen, "gguf writer: tensor '%s': n_dims %d is outside 1..%d", name,
                     n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .fill = fill, .user = user};
    memcpy(t.name, name, len + 1);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    uint64_t elems, rows, row_bytes;
    const char *why =
        n_dims < 1 || n_dims > GGUF_MAX_DIMS
            ? "n_dims is outside 1..4"
            : gguf_tensor_layout(type, n_dims, t.ne, &elems, &rows, &row_bytes, &t.n_bytes);
    if (why) return wfail(err, errlen, "gguf writer: tensor '%s' (%s): %s", name, tn, why);
    if (t.n_bytes > 0 && !data && !fill)
        return wfail(err, errlen, "gguf writer: tensor '%s': no data and no fill function", name);
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return wfail(err, errlen, "gguf writer: tensor '%s' added twice", name);
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? 2 * w->tensors_cap : 16;
        wtensor *nt = realloc(w->tensors, cap * sizeof(*nt));
        if (!nt) return wfail(err, errlen, "gguf writer: out of memory");
        w->tensors = nt;
        w->tensors_cap = cap;
    }
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

static uint64_t pad_to(uint64_t n) {
    return (ALIGN - n % ALIGN) % ALIGN;
}

static int put_file(FILE *fp, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1;
}

static int put_pad(FILE *fp, uint64_t n) {
    static const uint8_t zeros[ALIGN];
    return put_file(fp, zeros, (size_t)n);
}

/* Streams one tensor's bytes: straight from the caller's memory, or FILL_CHUNK at a time from its
 * fill function through buf. */
static int put_tensor(FILE *fp, const wtensor *t, uint8_t *buf, const char *path, char *err,
                      size_t errlen) {
    if (t->data) {
        if (put_file(fp, t->data, (size_t)t->n_bytes) != 0)
            return wfail(err, errlen, "%s: write error", path);
        return 0;
    }
    for (uint64_t at = 0; at < t->n_bytes;) {
        size_t n = t->n_bytes - at < FILL_CHUNK ? (size_t)(t->n_bytes - at) : FILL_CHUNK;
        if (t->fill(t->user, at, n, buf) != 0)
            return wfail(err, errlen, "%s: tensor '%s': the fill function failed at byte %" PRIu64,
                         path, t->name, at);
        if (put_file(fp, buf, n) != 0) return wfail(err, errlen, "%s: write error", path);
        at += n;
    }
    return 0;
}

int gguf_writer_write(const gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (!w || !path) return wfail(err, errlen, "gguf writer: no writer or no path");
    atomic_file af;
    if (atomic_file_open(&af, path, err, errlen) != 0) return -1;
    FILE *fp = af.fp;
    uint32_t version = GGUF_VERSION;
    int bad = put_file(fp, GGUF_MAGIC, 4) || put_file(fp, &version, 4) ||
              put_file(fp, &w->n_tensors, 8) || put_file(fp, &w->n_kv, 8) ||
              put_file(fp, w->meta, w->meta_len);
    /* Tensor infos; offsets relative to the data section, each aligned. */
    uint64_t header = 24 + w->meta_len, offset = 0;
    for (uint64_t i = 0; i < w->n_tensors && !bad; i++) {
        const wtensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
        bad = put_file(fp, &len, 8) || put_file(fp, t->name, (size_t)len) || put_file(fp, &nd, 4) ||
              put_file(fp, t->ne, 8 * (size_t)t->n_dims) || put_file(fp, &type, 4) ||
              put_file(fp, &offset, 8);
        header += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        offset += t->n_bytes + pad_to(t->n_bytes);
    }
    if (bad || put_pad(fp, pad_to(header)) != 0) {
        atomic_file_abort(&af);
        return wfail(err, errlen, "%s: write error", path);
    }
    uint8_t *buf = NULL;
    int rc = 0;
    for (uint64_t i = 0; i < w->n_tensors && rc == 0; i++) {
        const wtensor *t = &w->tensors[i];
        if (!t->data && t->n_bytes > 0 && !buf && !(buf = malloc(FILL_CHUNK)))
            rc = wfail(err, errlen, "%s: out of memory", path);
        if (rc == 0) rc = put_tensor(fp, t, buf, path, err, errlen);
        if (rc == 0 && put_pad(fp, pad_to(t->n_bytes)) != 0)
            rc = wfail(err, errlen, "%s: write error", path);
    }
    free(buf);
    if (rc != 0) {
        atomic_file_abort(&af);
        return -1;
    }
    return atomic_file_commit(&af, err, errlen);
}
