/* gguf.c — a strict GGUF reader: the header read with pread and validated in full by gguf_open,
 * metadata lookups, and tensor reads of a byte or row range into caller memory (see
 * include/linshard/gguf.h for the format and the rules).
 *
 * How the header is read: a cursor walks the file from byte 0, and every field is first asked
 * for with need(), which checks it against the end of the file (so a truncated file is an error,
 * never an out-of-bounds read) and grows a heap copy of the file's first bytes to cover it. While
 * parsing, keys and values are recorded as offsets into that copy (it moves when it grows); once
 * the whole header is in, they are used as pointers into it. Counts read from the file are checked
 * against the bytes left before anything is allocated for them. */
#include "linshard/gguf.h"
#include "gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The header (metadata + tensor infos) is held in memory; real ones are a few MB (a 128k-token
 * vocabulary with its merges is about 10 MB). Larger claims are refused before reading them. */
#define GGUF_HEADER_MAX ((uint64_t)256 << 20)
/* Arrays of arrays are allowed by the format; deeper than this is refused (no unbounded
 * recursion on hostile input). */
#define GGUF_NEST_MAX 8
#define GGUF_ALIGNMENT_MAX (1u << 30)
#define GGUF_READ_AHEAD ((uint64_t)1 << 20)

/* ---- type tables ------------------------------------------------------------------------------
 */

static const struct {
    const char *name;
    size_t size;
} value_types[GGUF_TYPE_COUNT] = {
    {"u8", 1},   {"i8", 1},     {"u16", 2},   {"i16", 2}, {"u32", 4}, {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"string", 0}, {"array", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8},
};

const char *gguf_type_name(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? value_types[t].name : "unknown";
}

size_t gguf_scalar_size(gguf_type t) {
    return (unsigned)t < GGUF_TYPE_COUNT ? value_types[t].size : 0;
}

/* Every ggml type id (ggml.h, ggml.c's type_traits; gguf-py's GGML_QUANT_SIZES): name, values
 * per block, bytes per block. Ids ggml has removed keep their name and have block 0. QK_K = 256. */
static const struct {
    const char *name;
    int block;
    size_t bytes;
} ggml_types[] = {
    [0] = {"f32", 1, 4},
    [1] = {"f16", 1, 2},
    [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},
    [4] = {"q4_2 (removed from ggml)", 0, 0},
    [5] = {"q4_3 (removed from ggml)", 0, 0},
    [6] = {"q5_0", 32, 22},
    [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},
    [9] = {"q8_1", 32, 40},
    [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},
    [12] = {"q4_K", 256, 144},
    [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},
    [15] = {"q8_K", 256, 292},
    [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},
    [18] = {"iq3_xxs", 256, 98},
    [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},
    [21] = {"iq3_s", 256, 110},
    [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136},
    [24] = {"i8", 1, 1},
    [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},
    [27] = {"i64", 1, 8},
    [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},
    [30] = {"bf16", 1, 2},
    [31] = {"q4_0_4_4 (removed from ggml)", 0, 0},
    [32] = {"q4_0_4_8 (removed from ggml)", 0, 0},
    [33] = {"q4_0_8_8 (removed from ggml)", 0, 0},
    [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},
    [36] = {"iq4_nl_4_4 (removed from ggml)", 0, 0},
    [37] = {"iq4_nl_4_8 (removed from ggml)", 0, 0},
    [38] = {"iq4_nl_8_8 (removed from ggml)", 0, 0},
    [39] = {"mxfp4", 32, 17},
    [40] = {"nvfp4", 64, 36},
    [41] = {"q1_0", 128, 18},
};
#define N_GGML_TYPES ((int)(sizeof(ggml_types) / sizeof(ggml_types[0])))

const char *gguf_ggml_type_name(int id) {
    return id >= 0 && id < N_GGML_TYPES ? ggml_types[id].name : NULL;
}

int gguf_ggml_block_size(int id) {
    return id >= 0 && id < N_GGML_TYPES ? ggml_types[id].block : 0;
}

size_t gguf_ggml_block_bytes(int id) {
    return id >= 0 && id < N_GGML_TYPES ? ggml_types[id].bytes : 0;
}

int gguf_ggml_to_kernel(int id, kernel_type *kt) {
    kernel_type k;
    switch (id) {
    case GGML_TYPE_F32:
        k = KERNEL_F32;
        break;
    case GGML_TYPE_F16:
        k = KERNEL_F16;
        break;
    case GGML_TYPE_BF16:
        k = KERNEL_BF16;
        break;
    case GGML_TYPE_Q8_0:
        k = KERNEL_Q8_0;
        break;
    case GGML_TYPE_Q4_0:
        k = KERNEL_Q4_0;
        break;
    default:
        return 0;
    }
    if (kt) *kt = k;
    return 1;
}

/* a * b into *out; 0, or -1 if it exceeds INT64_MAX (ggml's sizes are int64_t). */
static int mul_checked(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > (uint64_t)INT64_MAX / a) return -1;
    *out = a * b;
    return 0;
}

const char *gguf_tensor_layout(int type, int n_dims, const uint64_t *ne, uint64_t *n_elements,
                               uint64_t *n_rows, uint64_t *row_bytes, uint64_t *n_bytes) {
    int bs = gguf_ggml_block_size(type);
    if (bs <= 0) return "the type has no known size";
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) return "n_dims is outside 1..4";
    for (int d = 0; d < n_dims; d++)
        if (ne[d] > (uint64_t)INT64_MAX) return "a dimension exceeds 2^63 - 1";
    if (ne[0] % (uint64_t)bs != 0) return "ne[0] is not a whole number of the type's blocks";
    /* Checked in order, so huge dims overflow even when a later one is 0 (as ggml refuses). */
    uint64_t rows = 1, elems, rb, nb;
    for (int d = 1; d < n_dims; d++)
        if (mul_checked(rows, ne[d], &rows) != 0) return "the product of the dimensions overflows";
    if (mul_checked(ne[0], rows, &elems) != 0) return "the product of the dimensions overflows";
    if (mul_checked(ne[0] / (uint64_t)bs, gguf_ggml_block_bytes(type), &rb) != 0)
        return "the row's byte count overflows";
    if (mul_checked(rb, rows, &nb) != 0) return "the tensor's byte count overflows";
    *n_elements = elems;
    *n_rows = rows;
    *row_bytes = rb;
    *n_bytes = nb;
    return NULL;
}

/* ---- errors -----------------------------------------------------------------------------------
 */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
    char where[160]; /* "key 'general.name'", "tensor 'x'", ... or empty */
} ctx;

/* Copies the n bytes at s into buf (NUL-terminated) with control bytes replaced by '?', so a name
 * from the file cannot break the one-line error; long names end in "...". */
static const char *printable(const char *s, size_t n, char *buf, size_t len) {
    size_t i = 0;
    for (; i < n && i + 1 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[i] = '\0';
    if (i < n && len >= 4) memcpy(buf + len - 4, "...", 4);
    return buf;
}

/* A tensor's name made printable into buf (96 bytes). */
static const char *tname(const gguf_tensor *t, char *buf) {
    return printable(t->name, strnlen(t->name, GGUF_NAME_MAX), buf, 96);
}

/* "path: where: message" (or "path: message"); always returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(const ctx *c, const char *fmt, ...) {
    if (!c->err || c->errlen == 0) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->where[0])
        snprintf(c->err, c->errlen, "%s: %s: %s", c->path, c->where, msg);
    else
        snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
    return -1;
}

__attribute__((format(printf, 2, 3))) static void set_where(ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->where, sizeof(c->where), fmt, ap);
    va_end(ap);
}

/* ---- the cursor -------------------------------------------------------------------------------
 */

typedef struct {
    ctx *c;
    int fd;
    uint64_t file_size;
    uint8_t *buf; /* the file's bytes [0, len) */
    size_t cap, len;
    uint64_t pos; /* next byte to parse */
} cursor;

/* Makes bytes [pos, pos + n) available in buf, or fails naming what was being read. */
static int need(cursor *r, uint64_t n, const char *what) {
    if (n > r->file_size - r->pos)
        return fail(r->c,
                    "truncated: %s at byte %" PRIu64 " needs %" PRIu64
                    " bytes, the file has %" PRIu64 " in all",
                    what, r->pos, n, r->file_size);
    uint64_t end = r->pos + n;
    if (end <= r->len) return 0;
    if (end > GGUF_HEADER_MAX)
        return fail(r->c,
                    "the header runs past %" PRIu64 " bytes, more than the %" PRIu64 " allowed",
                    end, GGUF_HEADER_MAX);
    uint64_t cap = r->cap ? r->cap : 65536;
    while (cap < end) cap *= 2;
    if (cap > GGUF_HEADER_MAX) cap = GGUF_HEADER_MAX;
    if (cap > r->file_size) cap = r->file_size; /* >= end, checked above */
    if (cap > r->cap) {
        uint8_t *nb = realloc(r->buf, (size_t)cap);
        if (!nb) return fail(r->c, "out of memory for a %" PRIu64 "-byte header", cap);
        r->buf = nb;
        r->cap = (size_t)cap;
    }
    /* Read ahead up to 1 MiB past what is needed (fewer preads for many small fields), within
     * the buffer and the file: the tensor data after the header is not read. */
    uint64_t want = end + GGUF_READ_AHEAD;
    if (want > r->cap) want = r->cap;
    if (want > r->file_size) want = r->file_size;
    while (r->len < want) {
        ssize_t got = pread(r->fd, r->buf + r->len, (size_t)(want - r->len), (off_t)r->len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return fail(r->c, "read error at byte %zu: %s", r->len, strerror(errno));
        if (got == 0) return fail(r->c, "the file shrank while being read (at byte %zu)", r->len);
        r->len += (size_t)got;
    }
    return 0;
}

static int rd_u32(cursor *r, uint32_t *v, const char *what) {
    if (need(r, 4, what) != 0) return -1;
    memcpy(v, r->buf + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(cursor *r, uint64_t *v, const char *what) {
    if (need(r, 8, what) != 0) return -1;
    memcpy(v, r->buf + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string: its bytes are at buf + *off, *len of them. */
static int rd_str(cursor *r, uint64_t *off, uint64_t *len, const char *what) {
    if (rd_u64(r, len, what) != 0) return -1;
    if (*len > r->file_size - r->pos) {
        char w[96];
        snprintf(w, sizeof(w), "%s (a string of %" PRIu64 " bytes)", what, *len);
        return need(r, *len, w);
    }
    if (need(r, *len, what) != 0) return -1;
    *off = r->pos;
    r->pos += *len;
    return 0;
}

/* ---- metadata values --------------------------------------------------------------------------
 */

struct gguf_kv {
    uint64_t key_off, key_len;
    gguf_type type;
    uint64_t val_off; /* scalar: its bytes; string: its bytes (val_len); array: first element */
    uint64_t val_len;
    gguf_type arr_type;
    uint64_t arr_n;
    uint64_t *str_offs; /* array of strings: offset of each element's u64 length */
};

/* The fewest bytes one value of type t can take in the file (bounds counts before allocating). */
static uint64_t min_value_bytes(gguf_type t) {
    if (t == GGUF_TYPE_STRING) return 8;
    if (t == GGUF_TYPE_ARRAY) return 12;
    return gguf_scalar_size(t);
}

static int rd_type(cursor *r, gguf_type *t, const char *what) {
    uint32_t v;
    if (rd_u32(r, &v, what) != 0) return -1;
    if (v >= GGUF_TYPE_COUNT)
        return fail(r->c, "%s %" PRIu32 " is not a GGUF value type (0..12)", what, v);
    *t = (gguf_type)v;
    return 0;
}

static int check_bools(cursor *r, uint64_t off, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (r->buf[off + i] > 1)
            return fail(r->c, "bool value %u is neither 0 nor 1", (unsigned)r->buf[off + i]);
    return 0;
}

/* Validates and skips one value of type t at the cursor; kv (top level only) records where it
 * is. depth counts enclosing arrays. */
static int rd_value(cursor *r, gguf_type t, int depth, struct gguf_kv *kv) {
    if (t == GGUF_TYPE_STRING) {
        uint64_t off, len;
        if (rd_str(r, &off, &len, "a string value") != 0) return -1;
        if (kv) kv->val_off = off, kv->val_len = len;
        return 0;
    }
    if (t != GGUF_TYPE_ARRAY) {
        size_t sz = gguf_scalar_size(t);
        if (need(r, sz, "a value") != 0) return -1;
        if (t == GGUF_TYPE_BOOL && check_bools(r, r->pos, 1) != 0) return -1;
        if (kv) kv->val_off = r->pos;
        r->pos += sz;
        return 0;
    }
    if (depth >= GGUF_NEST_MAX) return fail(r->c, "arrays nested more than %d deep", GGUF_NEST_MAX);
    gguf_type et = GGUF_TYPE_UINT8;
    uint64_t n;
    if (rd_type(r, &et, "array element type") != 0) return -1;
    if (rd_u64(r, &n, "array length") != 0) return -1;
    uint64_t left = r->file_size - r->pos, mb = min_value_bytes(et);
    if (n > left / mb)
        return fail(r->c,
                    "array of %" PRIu64 " %s values needs at least %" PRIu64
                    " bytes per value, only %" PRIu64 " bytes are left in the file",
                    n, gguf_type_name(et), mb, left);
    if (kv) kv->arr_type = et, kv->arr_n = n, kv->val_off = r->pos;
    if (et != GGUF_TYPE_STRING && et != GGUF_TYPE_ARRAY) {
        if (need(r, n * mb, "array elements") != 0) return -1;
        if (et == GGUF_TYPE_BOOL && check_bools(r, r->pos, n) != 0) return -1;
        r->pos += n * mb;
        return 0;
    }
    if (kv && et == GGUF_TYPE_STRING && n > 0) {
        kv->str_offs = malloc((size_t)n * sizeof(uint64_t)); /* n <= file bytes / 8 */
        if (!kv->str_offs) return fail(r->c, "out of memory for %" PRIu64 " strings", n);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (kv && kv->str_offs) kv->str_offs[i] = r->pos;
        if (rd_value(r, et, depth + 1, NULL) != 0) return -1;
    }
    return 0;
}

/* ---- lookups ----------------------------------------------------------------------------------
 */

static const char *key_ptr(const gguf_file *f, const struct gguf_kv *kv) {
    return (const char *)f->header + kv->key_off;
}

/* Compares key (n bytes) with C string s in the order used to sort kv_sorted (memcmp, then
 * length). */
static int key_cmp(const char *key, size_t n, const char *s, size_t sn) {
    int c = memcmp(key, s, n < sn ? n : sn);
    if (c != 0) return c;
    return n < sn ? -1 : n > sn ? 1 : 0;
}

/* qsort cannot take a context: the sorts below run on one thread during gguf_open and pass the
 * file through this thread-local pointer. */
static _Thread_local const gguf_file *sort_file;

static int cmp_kv(const void *a, const void *b) {
    const struct gguf_kv *x = &sort_file->kv[*(const int64_t *)a];
    const struct gguf_kv *y = &sort_file->kv[*(const int64_t *)b];
    return key_cmp(key_ptr(sort_file, x), (size_t)x->key_len, key_ptr(sort_file, y),
                   (size_t)y->key_len);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(sort_file->tensors[*(const int64_t *)a].name,
                  sort_file->tensors[*(const int64_t *)b].name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = &sort_file->tensors[*(const int64_t *)a];
    const gguf_tensor *y = &sort_file->tensors[*(const int64_t *)b];
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    if (!f || !key || !f->kv_sorted) return -1;
    size_t kn = strlen(key);
    int64_t lo = 0, hi = f->n_kv - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const struct gguf_kv *kv = &f->kv[f->kv_sorted[mid]];
        int c = key_cmp(key_ptr(f, kv), (size_t)kv->key_len, key, kn);
        if (c == 0) return f->kv_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f || !name || !f->tensors_sorted) return NULL;
    int64_t lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const gguf_tensor *t = &f->tensors[f->tensors_sorted[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* ---- gguf_open --------------------------------------------------------------------------------
 */

static int parse_kvs(cursor *r, gguf_file *f) {
    ctx *c = r->c;
    for (int64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        set_where(c, "key #%" PRId64, i);
        if (rd_str(r, &kv->key_off, &kv->key_len, "the key") != 0) return -1;
        if (kv->key_len == 0) return fail(c, "the key is empty");
        if (kv->key_len > GGUF_KEY_MAX)
            return fail(c, "the key is %" PRIu64 " bytes, more than the %u allowed", kv->key_len,
                        GGUF_KEY_MAX);
        char kb[96];
        set_where(
            c, "key '%s'",
            printable((const char *)r->buf + kv->key_off, (size_t)kv->key_len, kb, sizeof(kb)));
        if (rd_type(r, &kv->type, "value type") != 0) return -1;
        if (rd_value(r, kv->type, 0, kv) != 0) return -1;
    }
    c->where[0] = '\0';
    return 0;
}

static int parse_tensor_infos(cursor *r, gguf_file *f) {
    ctx *c = r->c;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        set_where(c, "tensor #%" PRId64, i);
        uint64_t off, len;
        if (rd_str(r, &off, &len, "the tensor name") != 0) return -1;
        const char *name = (const char *)r->buf + off;
        char nb[96];
        if (len == 0) return fail(c, "the name is empty");
        if (len > GGUF_NAME_MAX)
            return fail(c, "the name '%s' is %" PRIu64 " bytes, more than the %d allowed",
                        printable(name, (size_t)len, nb, sizeof(nb)), len, GGUF_NAME_MAX);
        if (memchr(name, '\0', (size_t)len))
            return fail(c, "the name '%s' contains a NUL byte",
                        printable(name, (size_t)len, nb, sizeof(nb)));
        memcpy(t->name, name, (size_t)len);
        t->name[len] = '\0';
        set_where(c, "tensor '%s'", printable(t->name, (size_t)len, nb, sizeof(nb)));

        uint32_t nd, type;
        if (rd_u32(r, &nd, "n_dims") != 0) return -1;
        if (nd < 1 || nd > GGUF_MAX_DIMS)
            return fail(c, "n_dims is %" PRIu32 ", not 1..%d", nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (int d = 0; d < t->n_dims; d++)
            if (rd_u64(r, &t->ne[d], "a dimension") != 0) return -1;
        if (rd_u32(r, &type, "the ggml type") != 0) return -1;
        if (rd_u64(r, &t->offset, "the data offset") != 0) return -1;
        const char *tn = gguf_ggml_type_name((int)type);
        if (type > INT32_MAX || !tn) return fail(c, "unknown ggml type id %" PRIu32, type);
        t->type = (int)type;
        if (gguf_ggml_block_size(t->type) == 0)
            return fail(c, "ggml type %s (id %d) cannot be read", tn, t->type);
        const char *why = gguf_tensor_layout(t->type, t->n_dims, t->ne, &t->n_elements, &t->n_rows,
                                             &t->row_bytes, &t->n_bytes);
        if (why) {
            char shape[128];
            int used = 0;
            for (int d = 0; d < t->n_dims; d++)
                used += snprintf(shape + used, sizeof(shape) - (size_t)used, "%s%" PRIu64,
                                 d ? ", " : "", t->ne[d]);
            return fail(c, "ne [%s] of %s: %s", shape, tn, why);
        }
    }
    c->where[0] = '\0';
    return 0;
}

/* general.alignment, if present: a u32 power of two. */
static int read_alignment(ctx *c, gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_find_key(f, "general.alignment");
    if (i < 0) return 0;
    const struct gguf_kv *kv = &f->kv[i];
    if (kv->type != GGUF_TYPE_UINT32)
        return fail(c, "general.alignment is a %s, not a u32", gguf_type_name(kv->type));
    uint32_t a;
    memcpy(&a, f->header + kv->val_off, 4);
    if (a == 0 || (a & (a - 1)) != 0 || a > GGUF_ALIGNMENT_MAX)
        return fail(c, "general.alignment %" PRIu32 " is not a power of two up to 2^30", a);
    f->alignment = a;
    return 0;
}

/* Sorted indices, duplicate keys and names, offsets, extents, overlaps. */
static int check_sets(ctx *c, gguf_file *f) {
    char nb[96], nb2[96];
    sort_file = f;
    if (f->n_kv > 0) {
        f->kv_sorted = malloc((size_t)f->n_kv * sizeof(int64_t));
        if (!f->kv_sorted) return fail(c, "out of memory");
        for (int64_t i = 0; i < f->n_kv; i++) f->kv_sorted[i] = i;
        qsort(f->kv_sorted, (size_t)f->n_kv, sizeof(int64_t), cmp_kv);
        for (int64_t i = 1; i < f->n_kv; i++) {
            const struct gguf_kv *a = &f->kv[f->kv_sorted[i - 1]], *b = &f->kv[f->kv_sorted[i]];
            if (key_cmp(key_ptr(f, a), (size_t)a->key_len, key_ptr(f, b), (size_t)b->key_len) ==
                0) {
                char kb[96];
                return fail(c, "key '%s' appears twice",
                            printable(key_ptr(f, b), (size_t)b->key_len, kb, sizeof(kb)));
            }
        }
    }
    if (read_alignment(c, f) != 0) return -1;
    /* The data section starts at the next multiple of the alignment after the tensor infos
     * (data_start holds their end here; it is at most the file size: no overflow). A file with
     * no tensors may end before it. */
    f->data_start = (f->data_start + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors == 0) return 0;
    f->tensors_sorted = malloc((size_t)f->n_tensors * sizeof(int64_t));
    int64_t *by_off = malloc((size_t)f->n_tensors * sizeof(int64_t));
    if (!f->tensors_sorted || !by_off) {
        free(by_off);
        return fail(c, "out of memory");
    }
    int rc = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) f->tensors_sorted[i] = by_off[i] = i;
    qsort(f->tensors_sorted, (size_t)f->n_tensors, sizeof(int64_t), cmp_tensor_name);
    for (int64_t i = 1; i < f->n_tensors && rc == 0; i++)
        if (strcmp(f->tensors[f->tensors_sorted[i - 1]].name,
                   f->tensors[f->tensors_sorted[i]].name) == 0)
            rc = fail(c, "tensor '%s' appears twice", tname(&f->tensors[f->tensors_sorted[i]], nb));
    if (rc == 0 && f->data_start > f->file_size)
        rc = fail(c,
                  "truncated: the data section starts at byte %" PRIu64 " but the file has %" PRIu64
                  " bytes",
                  f->data_start, f->file_size);
    uint64_t data_size = f->file_size - (rc == 0 ? f->data_start : 0);
    for (int64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        gguf_tensor *t = &f->tensors[i];
        set_where(c, "tensor '%s'", tname(t, nb));
        if (t->offset % f->alignment != 0)
            rc = fail(c, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                      t->offset, f->alignment);
        else if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            rc =
                fail(c,
                     "data [%" PRIu64 ", +%" PRIu64
                     ") runs past the end of the data section (%" PRIu64 " bytes; file truncated?)",
                     t->offset, t->n_bytes, data_size);
    }
    c->where[0] = '\0';
    /* Relative offsets checked; make them absolute, then look for overlaps among the non-empty
     * tensors: sorted by offset, any overlap shows between neighbours. */
    if (rc == 0) {
        for (int64_t i = 0; i < f->n_tensors; i++) f->tensors[i].offset += f->data_start;
        qsort(by_off, (size_t)f->n_tensors, sizeof(int64_t), cmp_tensor_offset);
        const gguf_tensor *prev = NULL;
        for (int64_t i = 0; i < f->n_tensors && rc == 0; i++) {
            const gguf_tensor *t = &f->tensors[by_off[i]];
            if (t->n_bytes == 0) continue;
            if (prev && t->offset < prev->offset + prev->n_bytes)
                rc = fail(c, "tensor '%s' overlaps tensor '%s'", tname(t, nb), tname(prev, nb2));
            prev = t;
        }
    }
    free(by_off);
    return rc;
}

static int parse(cursor *r, gguf_file *f) {
    ctx *c = r->c;
    if (need(r, 4, "the magic") != 0) return -1;
    if (memcmp(r->buf, GGUF_MAGIC, 4) != 0) {
        char mb[8];
        return fail(c, "not a GGUF file: the magic is '%s', not 'GGUF'",
                    printable((const char *)r->buf, 4, mb, sizeof(mb)));
    }
    r->pos = 4;
    if (rd_u32(r, &f->version, "the version") != 0) return -1;
    if (f->version != 3 && f->version != 2) {
        uint32_t v = f->version,
                 swapped = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
        if (swapped == 2 || swapped == 3)
            return fail(c,
                        "GGUF version %" PRIu32 " is a big-endian file; linshard reads "
                        "little-endian GGUF (version 3, or 2)",
                        swapped);
        return fail(c, "GGUF version %" PRIu32 " is not supported (linshard reads version 3, or 2)",
                    v);
    }
    uint64_t nt, nkv;
    if (rd_u64(r, &nt, "the tensor count") != 0) return -1;
    if (rd_u64(r, &nkv, "the metadata count") != 0) return -1;
    /* Each entry takes at least 13 bytes (key length, type, a u8) and each tensor info 32, all
     * of them inside the header's size limit. */
    uint64_t left = (r->file_size < GGUF_HEADER_MAX ? r->file_size : GGUF_HEADER_MAX) - r->pos;
    if (nkv > left / 13)
        return fail(c, "%" PRIu64 " metadata entries cannot fit in the %" PRIu64 " bytes left", nkv,
                    left);
    if (nt > left / 32)
        return fail(c, "%" PRIu64 " tensors cannot fit in the %" PRIu64 " bytes left", nt, left);
    f->n_kv = (int64_t)nkv;
    f->n_tensors = (int64_t)nt;
    if (nkv && !(f->kv = calloc((size_t)nkv, sizeof(*f->kv))))
        return fail(c, "out of memory for %" PRIu64 " metadata entries", nkv);
    if (nt && !(f->tensors = calloc((size_t)nt, sizeof(*f->tensors))))
        return fail(c, "out of memory for %" PRIu64 " tensors", nt);
    if (parse_kvs(r, f) != 0) return -1;
    if (parse_tensor_infos(r, f) != 0) return -1;
    /* Complete: the offsets recorded above are now valid pointers into f->header (shrunk to
     * what was read: the doubling may have left up to half of it unused). */
    uint8_t *shrunk = r->len ? realloc(r->buf, r->len) : NULL;
    f->header = shrunk ? shrunk : r->buf;
    f->header_size = r->len;
    r->buf = NULL;
    f->data_start = r->pos; /* rounded up to the alignment by check_sets */
    return check_sets(c, f);
}

int gguf_open(gguf_file *f, const char *path, char *err, size_t errlen) {
    ctx c = {path ? path : "(null)", err, errlen, ""};
    if (err && errlen) err[0] = '\0';
    if (!f) return fail(&c, "no gguf_file to open into");
    memset(f, 0, sizeof(*f));
    f->fd = -1; /* gguf_close is safe from here on */
    if (!path) return fail(&c, "no path given");

    f->path = strdup(path); /* before the descriptor: gguf_close closes fd only if path is set */
    if (!f->path) return fail(&c, "out of memory");
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        gguf_close(f);
        return fail(&c, "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) {
        int e = errno;
        gguf_close(f);
        return fail(&c, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        gguf_close(f);
        return fail(&c, "not a regular file");
    }
    f->file_size = (uint64_t)sb.st_size;
    cursor r = {&c, f->fd, f->file_size, NULL, 0, 0, 0};
    int rc = parse(&r, f);
    free(r.buf); /* NULL once parse has handed it to f */
    if (rc != 0) {
        gguf_close(f);
        return -1;
    }
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->fd >= 0 && f->path) close(f->fd);
    for (int64_t i = 0; f->kv && i < f->n_kv; i++) free(f->kv[i].str_offs);
    free(f->kv);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->tensors_sorted);
    free(f->header);
    free(f->path);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
}

/* ---- metadata getters -------------------------------------------------------------------------
 */

int64_t gguf_n_kv(const gguf_file *f) {
    return f ? f->n_kv : 0;
}

const char *gguf_kv_key(const gguf_file *f, int64_t i, size_t *len) {
    if (!f || i < 0 || i >= f->n_kv) return NULL;
    if (len) *len = (size_t)f->kv[i].key_len;
    return key_ptr(f, &f->kv[i]);
}

gguf_type gguf_kv_type(const gguf_file *f, int64_t i) {
    if (!f || i < 0 || i >= f->n_kv) return GGUF_TYPE_COUNT;
    return f->kv[i].type;
}

/* The entry for key, or NULL with "path: key 'key': missing" in err. */
static const struct gguf_kv *lookup(const gguf_file *f, const char *key, ctx *c) {
    if (!f || !key) {
        fail(c, "no file or no key");
        return NULL;
    }
    int64_t i = gguf_find_key(f, key);
    if (i < 0) {
        fail(c, "missing");
        return NULL;
    }
    return &f->kv[i];
}

static void getter_ctx(ctx *c, const gguf_file *f, const char *key, char *err, size_t errlen) {
    c->path = f && f->path ? f->path : "(no file)";
    c->err = err;
    c->errlen = errlen;
    char kb[96];
    set_where(c, "key '%s'", key ? printable(key, strlen(key), kb, sizeof(kb)) : "(null)");
}

/* A scalar integer (or bool) at p of type t as int64 (u64 values above INT64_MAX as their uint64
 * in *u with *big set). 0, or -1 if t is not an integer type. */
static int scalar_int(const uint8_t *p, gguf_type t, int64_t *v, uint64_t *u, int *big) {
    *big = 0;
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        *v = p[0];
        return 0;
    case GGUF_TYPE_INT8: {
        int8_t x;
        memcpy(&x, p, 1);
        *v = x;
        return 0;
    }
    case GGUF_TYPE_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        *v = x;
        return 0;
    }
    case GGUF_TYPE_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        *v = x;
        return 0;
    }
    case GGUF_TYPE_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        *v = x;
        return 0;
    }
    case GGUF_TYPE_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        *v = x;
        return 0;
    }
    case GGUF_TYPE_INT64: {
        memcpy(v, p, 8);
        return 0;
    }
    case GGUF_TYPE_UINT64: {
        memcpy(u, p, 8);
        if (*u > (uint64_t)INT64_MAX)
            *big = 1;
        else
            *v = (int64_t)*u;
        return 0;
    }
    default:
        return -1;
    }
}

/* An integer value within [lo, hi] (hi as uint64 so u64 fits). */
static int get_int(const gguf_file *f, const char *key, int64_t lo, uint64_t hi, int64_t *v,
                   uint64_t *u, char *err, size_t errlen) {
    ctx c;
    getter_ctx(&c, f, key, err, errlen);
    const struct gguf_kv *kv = lookup(f, key, &c);
    if (!kv) return -1;
    int big;
    if (kv->type == GGUF_TYPE_BOOL ||
        scalar_int(f->header + kv->val_off, kv->type, v, u, &big) != 0)
        return fail(&c, "is a %s, not an integer", gguf_type_name(kv->type));
    if (big) {
        if (*u > hi) return fail(&c, "value %" PRIu64 " is out of range", *u);
        return 0;
    }
    if (*v < lo || (*v >= 0 && (uint64_t)*v > hi))
        return fail(&c, "value %" PRId64 " is out of range", *v);
    *u = (uint64_t)*v;
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err, size_t errlen) {
    int64_t v;
    uint64_t u;
    if (get_int(f, key, 0, UINT32_MAX, &v, &u, err, errlen) != 0) return -1;
    *out = (uint32_t)u;
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, char *err, size_t errlen) {
    int64_t v;
    uint64_t u;
    if (get_int(f, key, 0, UINT64_MAX, &v, &u, err, errlen) != 0) return -1;
    *out = u;
    return 0;
}

int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, char *err, size_t errlen) {
    int64_t v;
    uint64_t u;
    if (get_int(f, key, INT32_MIN, INT32_MAX, &v, &u, err, errlen) != 0) return -1;
    *out = (int32_t)v;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen) {
    ctx c;
    getter_ctx(&c, f, key, err, errlen);
    const struct gguf_kv *kv = lookup(f, key, &c);
    if (!kv) return -1;
    if (kv->type == GGUF_TYPE_FLOAT32) {
        memcpy(out, f->header + kv->val_off, 4);
    } else if (kv->type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, f->header + kv->val_off, 8);
        *out = (float)d;
    } else {
        return fail(&c, "is a %s, not a float", gguf_type_name(kv->type));
    }
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, char *err, size_t errlen) {
    ctx c;
    getter_ctx(&c, f, key, err, errlen);
    const struct gguf_kv *kv = lookup(f, key, &c);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_BOOL)
        return fail(&c, "is a %s, not a bool", gguf_type_name(kv->type));
    *out = f->header[kv->val_off] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len, char *err,
                 size_t errlen) {
    ctx c;
    getter_ctx(&c, f, key, err, errlen);
    const struct gguf_kv *kv = lookup(f, key, &c);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_STRING)
        return fail(&c, "is a %s, not a string", gguf_type_name(kv->type));
    *s = (const char *)f->header + kv->val_off;
    *len = (size_t)kv->val_len;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_array *a, char *err, size_t errlen) {
    ctx c;
    getter_ctx(&c, f, key, err, errlen);
    const struct gguf_kv *kv = lookup(f, key, &c);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_ARRAY)
        return fail(&c, "is a %s, not an array", gguf_type_name(kv->type));
    a->file = f;
    a->kv = kv;
    a->type = kv->arr_type;
    a->n = kv->arr_n;
    return 0;
}

const char *gguf_arr_str(const gguf_array *a, uint64_t i, size_t *len) {
    if (!a || !a->kv || a->type != GGUF_TYPE_STRING || i >= a->n || !a->kv->str_offs) return NULL;
    const uint8_t *p = a->file->header + a->kv->str_offs[i];
    uint64_t n;
    memcpy(&n, p, 8);
    if (len) *len = (size_t)n;
    return (const char *)p + 8;
}

const void *gguf_arr_data(const gguf_array *a) {
    if (!a || !a->kv || gguf_scalar_size(a->type) == 0) return NULL;
    return a->file->header + a->kv->val_off;
}

int gguf_arr_i64(const gguf_array *a, uint64_t i, int64_t *out) {
    size_t sz = a ? gguf_scalar_size(a->type) : 0;
    if (sz == 0 || i >= a->n) return -1;
    uint64_t u;
    int big;
    if (scalar_int(a->file->header + a->kv->val_off + i * sz, a->type, out, &u, &big) != 0 || big)
        return -1;
    return 0;
}

int gguf_arr_f64(const gguf_array *a, uint64_t i, double *out) {
    size_t sz = a ? gguf_scalar_size(a->type) : 0;
    if (sz == 0 || i >= a->n) return -1;
    const uint8_t *p = a->file->header + a->kv->val_off + i * sz;
    if (a->type == GGUF_TYPE_FLOAT32) {
        float x;
        memcpy(&x, p, 4);
        *out = x;
        return 0;
    }
    if (a->type == GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    int64_t v;
    uint64_t u;
    int big;
    if (scalar_int(p, a->type, &v, &u, &big) != 0) return -1;
    *out = big ? (double)u : (double)v;
    return 0;
}

/* ---- tensor reads -----------------------------------------------------------------------------
 */

int gguf_read_bytes(const gguf_file *f, const gguf_tensor *t, uint64_t begin, size_t n, void *out,
                    char *err, size_t errlen) {
    ctx c = {f && f->path ? f->path : "(no file)", err, errlen, ""};
    if (!f || !t || f->fd < 0) return fail(&c, "no file or no tensor");
    char nb[96];
    set_where(&c, "tensor '%s'",
              printable(t->name, strnlen(t->name, GGUF_NAME_MAX), nb, sizeof(nb)));
    if (!gguf_ggml_to_kernel(t->type, NULL)) {
        const char *tn = gguf_ggml_type_name(t->type);
        return fail(&c, "type %s is not supported (linshard reads f32, f16, bf16, q8_0, q4_0)",
                    tn ? tn : "unknown");
    }
    if (begin > t->n_bytes || n > t->n_bytes - begin)
        return fail(&c, "bytes [%" PRIu64 ", +%zu) are outside its %" PRIu64 " bytes", begin, n,
                    t->n_bytes);
    /* Defensive: a hand-made gguf_tensor must still lie inside the file. */
    if (t->offset > f->file_size || t->n_bytes > f->file_size - t->offset)
        return fail(&c, "lies outside the file");
    if (n > 0 && !out) return fail(&c, "no output buffer");
    uint8_t *dst = out;
    uint64_t at = t->offset + begin;
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(f->fd, dst + done, n - done, (off_t)(at + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return fail(&c, "read error at byte %" PRIu64 ": %s", at + done, strerror(errno));
        if (got == 0)
            return fail(&c, "the file ends at byte %" PRIu64 " (truncated since it was opened?)",
                        at + done);
        done += (size_t)got;
    }
    return 0;
}

int gguf_read_rows(const gguf_file *f, const gguf_tensor *t, uint64_t row0, uint64_t n_rows,
                   void *out, char *err, size_t errlen) {
    ctx c = {f && f->path ? f->path : "(no file)", err, errlen, ""};
    if (!f || !t) return fail(&c, "no file or no tensor");
    if (row0 > t->n_rows || n_rows > t->n_rows - row0) {
        char nb[96];
        set_where(&c, "tensor '%s'", tname(t, nb));
        return fail(&c, "rows [%" PRIu64 ", +%" PRIu64 ") are outside its %" PRIu64 " rows", row0,
                    n_rows, t->n_rows);
    }
    /* Within the tensor, so both products are at most n_bytes. */
    uint64_t bytes = n_rows * t->row_bytes;
    if (bytes > SIZE_MAX) return fail(&c, "the range does not fit in memory");
    return gguf_read_bytes(f, t, row0 * t->row_bytes, (size_t)bytes, out, err, errlen);
}
