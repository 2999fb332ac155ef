/* safetensors.c — a strict, mmap-based safetensors reader and an atomic writer (see
 * include/linshard/safetensors.h).
 *
 * Byte order: the format is little-endian on disk. This file assumes a little-endian host (x86-64,
 * aarch64) and copies lengths and tensor data as they are; the #error below keeps a big-endian
 * build from silently reading garbage. */
#include "linshard/kernels.h"
#include "linshard/safetensors.h"
#include "safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) &&                                 \
    __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we, before allocating. */
#define ST_HEADER_MAX 100000000u
/* JSON numbers arrive as doubles: integers from 2^53 on are no longer exact, so refuse them. */
#define ST_JSON_INT_LIMIT 9007199254740992.0
#define ST_META_KEY "__metadata__"

/* cJSON's parser resets a global error slot on every call; ranks run as threads here, so
 * serialise parses rather than race on it. */
static pthread_mutex_t cjson_parse_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- errors -------------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} st_ctx;

/* Copies s into buf with control bytes replaced, so names from the file cannot break the
 * one-line error (JSON may encode a newline in a key). */
static const char *printable(const char *s, char *buf, size_t len) {
    size_t n = 0;
    for (; s[n] && n + 1 < len; n++) {
        unsigned char ch = (unsigned char)s[n];
        buf[n] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    buf[n] = '\0';
    if (s[n] && len >= 4) memcpy(buf + len - 4, "...", 4);
    return buf;
}

__attribute__((format(printf, 3, 0))) static int vfail(const st_ctx *c, const char *tensor,
                                                       const char *fmt, va_list ap) {
    if (!c->err || c->errlen == 0) return -1;
    char msg[512], name[ST_NAME_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (tensor)
        snprintf(c->err, c->errlen, "%s: tensor '%s': %s", c->path,
                 printable(tensor, name, sizeof(name)), msg);
    else
        snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
    return -1;
}

/* "path: msg"; always returns -1. */
__attribute__((format(printf, 2, 3))) static int file_fail(const st_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

/* "path: tensor 'name': msg"; always returns -1. */
__attribute__((format(printf, 3, 4))) static int tensor_fail(const st_ctx *c, const char *name,
                                                             const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfail(c, name, fmt, ap);
    va_end(ap);
    return -1;
}

static void format_shape(const int64_t *shape, int ndim, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* ---- small helpers ------------------------------------------------------------------------- */

/* The format's dtypes, in st_dtype order: name and bytes per element (sizes validate every
 * tensor's data_offsets, whether or not linshard reads it). */
static const struct {
    const char *name;
    size_t size;
} dtypes[ST_N_DTYPES] = {
    {"F32", 4}, {"F16", 2},     {"BF16", 2},    {"BOOL", 1}, {"U8", 1},
    {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2},  {"U16", 2},
    {"I32", 4}, {"U32", 4},     {"I64", 8},     {"U64", 8},  {"F64", 8},
};

const char *st_dtype_name(st_dtype dtype) {
    return (unsigned)dtype < ST_N_DTYPES ? dtypes[dtype].name : "unknown";
}

size_t st_dtype_size(st_dtype dtype) {
    return (unsigned)dtype < ST_N_DTYPES ? dtypes[dtype].size : 0;
}

int st_dtype_readable(st_dtype dtype) {
    return dtype == ST_F32 || dtype == ST_F16 || dtype == ST_BF16;
}

static int parse_dtype(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_N_DTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (st_dtype)i;
            return 1;
        }
    }
    return 0;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d < ST_JSON_INT_LIMIT)) return 0; /* also rejects NaN */
    uint64_t v = (uint64_t)d;
    if ((double)v != d) return 0;
    *out = v;
    return 1;
}

/* numel of shape, or -1 if it (or numel * elem_size) does not fit a size_t. A zero dim makes the
 * tensor empty whatever the other dims are. */
static int shape_numel(const int64_t *shape, int ndim, size_t elem_size, size_t *numel) {
    size_t n = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d == 0) {
            *numel = 0;
            return 0;
        }
        if (d > SIZE_MAX || n > SIZE_MAX / (size_t)d)
            overflow = 1;
        else
            n *= (size_t)d;
    }
    if (overflow || n > SIZE_MAX / elem_size) return -1;
    *numel = n;
    return 0;
}

/* ---- reader -------------------------------------------------------------------------------- */

static int parse_entry(const st_ctx *c, const cJSON *e, const char *name, size_t data_size,
                       st_tensor *t) {
    if (!cJSON_IsObject(e)) return tensor_fail(c, name, "entry is %s, not an object", json_kind(e));
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!jd) return tensor_fail(c, name, "missing \"dtype\"");
    if (!js) return tensor_fail(c, name, "missing \"shape\"");
    if (!jo) return tensor_fail(c, name, "missing \"data_offsets\"");

    char buf[64];
    if (!cJSON_IsString(jd))
        return tensor_fail(c, name, "dtype is %s, not a string", json_kind(jd));
    if (!parse_dtype(jd->valuestring, &t->dtype))
        return tensor_fail(c, name, "unknown dtype '%s' (not a safetensors dtype)",
                           printable(jd->valuestring, buf, sizeof(buf)));

    if (!cJSON_IsArray(js)) return tensor_fail(c, name, "shape is %s, not an array", json_kind(js));
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_DIMS)
        return tensor_fail(c, name, "shape has %d dims, more than the %d supported", ndim,
                           ST_MAX_DIMS);
    const cJSON *d;
    int i = 0;
    cJSON_ArrayForEach(d, js) {
        uint64_t v;
        if (!json_uint(d, &v))
            return tensor_fail(c, name, "shape[%d] is not a non-negative integer", i);
        t->shape[i++] = (int64_t)v;
    }
    t->ndim = ndim;
    size_t es = st_dtype_size(t->dtype);
    char shape_s[256];
    format_shape(t->shape, t->ndim, shape_s, sizeof(shape_s));
    if (shape_numel(t->shape, t->ndim, es, &t->numel) != 0)
        return tensor_fail(c, name, "shape %s has too many elements (the byte count overflows)",
                           shape_s);

    uint64_t b, end;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &end))
        return tensor_fail(c, name, "data_offsets is not an array of two non-negative integers");
    if (b > end)
        return tensor_fail(c, name, "data_offsets [%" PRIu64 ", %" PRIu64 ") begin is after end", b,
                           end);
    if (end > data_size)
        return tensor_fail(c, name,
                           "data_offsets [%" PRIu64 ", %" PRIu64
                           ") end past the end of the data section (%zu bytes; file truncated?)",
                           b, end, data_size);
    size_t nbytes = t->numel * es;
    if (end - b != nbytes)
        return tensor_fail(c, name,
                           "data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRIu64
                           " bytes but shape %s of %s needs %zu",
                           b, end, end - b, shape_s, st_dtype_name(t->dtype), nbytes);
    t->begin = (size_t)b;
    t->end = (size_t)end;
    return 0;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int cmp_by_range(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Duplicate names (cJSON keeps both copies of a repeated key) and overlapping byte ranges. */
static int check_tensor_set(const st_ctx *c, const st_file *f) {
    if (f->n_tensors < 2) return 0;
    const st_tensor **v = malloc((size_t)f->n_tensors * sizeof(*v));
    if (!v) return file_fail(c, "out of memory");
    for (int i = 0; i < f->n_tensors; i++) v[i] = &f->tensors[i];
    qsort(v, (size_t)f->n_tensors, sizeof(*v), cmp_by_name);
    for (int i = 1; i < f->n_tensors; i++) {
        if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
            tensor_fail(c, v[i]->name, "appears twice in the header");
            free(v);
            return -1;
        }
    }
    /* Empty tensors occupy no bytes, so they cannot overlap anything. Among the rest, sorted by
     * begin, any overlap implies one between neighbours: if i overlaps j > i, then
     * begin[i+1] <= begin[j] < end[i]. */
    int m = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].end > f->tensors[i].begin) v[m++] = &f->tensors[i];
    qsort(v, (size_t)m, sizeof(*v), cmp_by_range);
    for (int i = 1; i < m; i++) {
        if (v[i]->begin < v[i - 1]->end) {
            char a[ST_NAME_MAX], b[ST_NAME_MAX];
            file_fail(c, "tensor '%s' [%zu, %zu) overlaps tensor '%s' [%zu, %zu)",
                      printable(v[i - 1]->name, a, sizeof(a)), v[i - 1]->begin, v[i - 1]->end,
                      printable(v[i]->name, b, sizeof(b)), v[i]->begin, v[i]->end);
            free(v);
            return -1;
        }
    }
    free(v);
    return 0;
}

static int check_metadata(const st_ctx *c, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return file_fail(c, "\"" ST_META_KEY "\" is %s, not an object", json_kind(meta));
    const cJSON *m;
    cJSON_ArrayForEach(m, meta) {
        char buf[64];
        if (!cJSON_IsString(m))
            return file_fail(c, "\"" ST_META_KEY "\" entry '%s' is %s, not a string",
                             printable(m->string ? m->string : "", buf, sizeof(buf)), json_kind(m));
    }
    return 0;
}

static int parse_tensors(const st_ctx *c, st_file *f, const cJSON *root) {
    int count = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!it->string || strcmp(it->string, ST_META_KEY) != 0) count++;
    }
    if (count > 0) {
        f->tensors = calloc((size_t)count, sizeof(*f->tensors));
        if (!f->tensors) return file_fail(c, "out of memory for %d tensors", count);
    }
    cJSON_ArrayForEach(it, root) {
        const char *name = it->string ? it->string : "";
        if (strcmp(name, ST_META_KEY) == 0) {
            if (check_metadata(c, it) != 0) return -1;
            continue;
        }
        size_t len = strlen(name);
        if (len >= ST_NAME_MAX) {
            char buf[48];
            return file_fail(c, "tensor '%s' has a name of %zu bytes, longer than the %d allowed",
                             printable(name, buf, sizeof(buf)), len, ST_NAME_MAX - 1);
        }
        st_tensor *t = &f->tensors[f->n_tensors];
        memcpy(t->name, name, len + 1);
        if (parse_entry(c, it, name, f->data_size, t) != 0) return -1;
        f->n_tensors++;
    }
    return check_tensor_set(c, f);
}

static int parse_header(const st_ctx *c, st_file *f) {
    const uint8_t *p = f->map;
    uint64_t n;
    memcpy(&n, p, sizeof(n)); /* little-endian host, see the top of the file */
    if (n > ST_HEADER_MAX)
        return file_fail(c, "header length %" PRIu64 " is absurdly large (limit %u bytes)", n,
                         ST_HEADER_MAX);
    if (n > f->map_size - 8)
        return file_fail(c,
                         "header length %" PRIu64
                         " runs past the end of the file (only %zu bytes follow the length)",
                         n, f->map_size - 8);
    f->data = p + 8 + n;
    f->data_size = f->map_size - 8 - (size_t)n;

    /* Parse a NUL-terminated heap copy: the mapped header is not terminated, and a copy keeps any
     * parser read past the end inside our allocation (and visible to ASan). */
    char *text = malloc((size_t)n + 1);
    if (!text) return file_fail(c, "out of memory for a %" PRIu64 "-byte header", n);
    memcpy(text, p + 8, (size_t)n);
    text[n] = '\0';
    if (memchr(text, '\0', (size_t)n)) {
        free(text);
        return file_fail(c, "header is not valid JSON: it contains a NUL byte");
    }
    const char *end = text;
    pthread_mutex_lock(&cjson_parse_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    pthread_mutex_unlock(&cjson_parse_lock);
    int rc = 0;
    if (!root) {
        rc = file_fail(c, "header is not valid JSON (parse error at byte %td of %" PRIu64 ")",
                       end - text, n);
    } else {
        /* The format pads the header with spaces; anything else after the value is garbage. */
        const char *q = end;
        while (q < text + n && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
        if (q != text + n)
            rc = file_fail(c,
                           "header is not valid JSON: unexpected data after the value at byte %td",
                           q - text);
        else if (!cJSON_IsObject(root))
            rc = file_fail(c, "header is %s, not a JSON object", json_kind(root));
        else
            rc = parse_tensors(c, f, root);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

int st_open(st_file *f, const char *path, char *err, size_t errlen) {
    st_ctx c = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = '\0';
    if (!f) return file_fail(&c, "no st_file to open into");
    memset(f, 0, sizeof(*f)); /* st_close is safe from here on, whatever happens */
    if (!path) return file_fail(&c, "no path given");

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return file_fail(&c, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return file_fail(&c, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return file_fail(&c, "not a regular file");
    }
    if (sb.st_size < 8) {
        close(fd);
        return file_fail(&c, "file is %lld bytes, too short for the 8-byte header length",
                         (long long)sb.st_size);
    }
    if ((uintmax_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return file_fail(&c, "file of %lld bytes is too large to map", (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return file_fail(&c, "cannot mmap: %s", strerror(e));
    f->map = map;
    f->map_size = size;
    if (parse_header(&c, f) != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

int st_open_memory(st_file *f, const void *data, size_t size, const char *name, char *err,
                   size_t errlen) {
    st_ctx c = {name ? name : "(memory)", err, errlen};
    if (err && errlen) err[0] = '\0';
    if (!f) return file_fail(&c, "no st_file to open into");
    memset(f, 0, sizeof(*f));
    if (!data) return file_fail(&c, "no data given");
    if (size < 8)
        return file_fail(&c, "file is %zu bytes, too short for the 8-byte header length", size);
    f->map = (void *)(uintptr_t)data; /* never written: st_file's map is read-only */
    f->map_size = size;
    f->borrowed = 1;
    if (parse_header(&c, f) != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map && f->map_size && !f->borrowed) munmap(f->map, f->map_size);
    free(f->tensors);
    memset(f, 0, sizeof(*f));
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

int st_read_f32(const st_file *f, const st_tensor *t, size_t start, size_t count, float *out) {
    if (!f || !t || !st_dtype_readable(t->dtype)) return -1;
    if (start > t->numel || count > t->numel - start) return -1; /* no start + count overflow */
    if (count == 0) return 0;
    size_t es = st_dtype_size(t->dtype);
    /* Defensive: a hand-made st_tensor must still lie inside this file's data section. */
    if (!out || !f->data || es == 0 || t->begin > t->end || t->end > f->data_size ||
        t->numel > (t->end - t->begin) / es)
        return -1;
    const uint8_t *src = f->data + t->begin + start * es;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, src, count * sizeof(float));
        break; /* src may be unaligned */
    case ST_F16:
        if ((uintptr_t)src % 2 == 0) { /* the kernels' vectorised conversion (F16C) */
            kernel_type_info(KERNEL_F16)->to_f32(src, out, count);
            break;
        }
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, sizeof(h));
            out[i] = kernel_f16_to_f32(h);
        }
        break;
    case ST_BF16:
        if ((uintptr_t)src % 2 == 0) {
            kernel_type_info(KERNEL_BF16)->to_f32(src, out, count);
            break;
        }
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, sizeof(h));
            out[i] = kernel_bf16_to_f32(h);
        }
        break;
    default: /* refused above */
        return -1;
    }
    return 0;
}

/* ---- writer -------------------------------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int validate_write(const st_ctx *c, const st_write_tensor *tensors, int n, size_t *nbytes) {
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = &tensors[i];
        if (!t->name) return file_fail(c, "tensor #%d has a NULL name", i);
        size_t len = strlen(t->name);
        if (len >= ST_NAME_MAX) {
            char buf[48];
            return file_fail(c, "tensor '%s' has a name of %zu bytes, longer than the %d allowed",
                             printable(t->name, buf, sizeof(buf)), len, ST_NAME_MAX - 1);
        }
        if (strcmp(t->name, ST_META_KEY) == 0)
            return tensor_fail(c, t->name, "the name is reserved for the file's metadata");
        size_t es = st_dtype_size(t->dtype);
        if (es == 0) return tensor_fail(c, t->name, "unknown dtype %d", (int)t->dtype);
        if (!st_dtype_readable(t->dtype)) /* the data is float32, converted on writing */
            return tensor_fail(c, t->name, "cannot write dtype %s (only F32, F16 and BF16)",
                               st_dtype_name(t->dtype));
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return tensor_fail(c, t->name, "ndim %d is outside [0, %d]", t->ndim, ST_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                return tensor_fail(c, t->name, "shape[%d] is %" PRId64 ", negative", d,
                                   t->shape[d]);
            if ((double)t->shape[d] >= ST_JSON_INT_LIMIT) /* the reader's limit */
                return tensor_fail(c, t->name, "shape[%d] is %" PRId64 ", too large", d,
                                   t->shape[d]);
        }
        size_t numel;
        if (shape_numel(t->shape, t->ndim, es, &numel) != 0)
            return tensor_fail(c, t->name, "too many elements (the byte count overflows)");
        if (numel > 0 && !t->data) return tensor_fail(c, t->name, "data is NULL");
        nbytes[i] = numel * es;
    }
    if (n < 2) return 0;
    const char **names = malloc((size_t)n * sizeof(*names));
    if (!names) return file_fail(c, "out of memory");
    for (int i = 0; i < n; i++) names[i] = tensors[i].name;
    qsort(names, (size_t)n, sizeof(*names), cmp_str_ptr);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0) rc = tensor_fail(c, names[i], "name given twice");
    free(names);
    return rc;
}

/* A JSON integer written as text: cJSON prints numbers via "%.15g", which turns 10^15 into
 * "1e+15" that strict readers reject. */
static cJSON *json_int(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return cJSON_CreateRaw(buf);
}

/* Appends one tensor's {"dtype", "shape", "data_offsets"} entry; -1 when out of memory. */
static int add_entry(cJSON *root, const st_write_tensor *t, size_t begin, size_t end) {
    cJSON *e = cJSON_AddObjectToObject(root, t->name);
    if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype))) return -1;
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    if (!shape) return -1;
    for (int d = 0; d < t->ndim; d++) {
        cJSON *v = json_int((uint64_t)t->shape[d]);
        if (!v || !cJSON_AddItemToArray(shape, v)) {
            cJSON_Delete(v);
            return -1;
        }
    }
    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
    if (!offs) return -1;
    cJSON *b = json_int(begin);
    if (!b || !cJSON_AddItemToArray(offs, b)) {
        cJSON_Delete(b);
        return -1;
    }
    cJSON *en = json_int(end);
    if (!en || !cJSON_AddItemToArray(offs, en)) {
        cJSON_Delete(en);
        return -1;
    }
    return 0;
}

/* The header JSON (tensors in the given order, "__metadata__" first), or NULL when out of
 * memory. Free with cJSON_free. */
static char *build_header(const st_write_tensor *tensors, int n, const size_t *nbytes) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, ST_META_KEY) : NULL;
    int ok = meta && cJSON_AddStringToObject(meta, "format", "pt");
    size_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        ok = add_entry(root, &tensors[i], off, off + nbytes[i]) == 0;
        off += nbytes[i];
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* Writes one tensor's data, converted to its dtype, in chunks so memory stays bounded. */
static int write_data(FILE *fp, const st_write_tensor *t, size_t numel) {
    if (numel == 0) return 0;
    if (t->dtype == ST_F32) return fwrite(t->data, sizeof(float), numel, fp) == numel ? 0 : -1;
    uint16_t buf[4096] = {0}; /* fully written before use; zeroed to keep cppcheck quiet */
    for (size_t i = 0; i < numel;) {
        size_t k = numel - i < 4096 ? numel - i : 4096;
        for (size_t j = 0; j < k; j++)
            buf[j] =
                t->dtype == ST_F16 ? st_f32_to_f16(t->data[i + j]) : st_f32_to_bf16(t->data[i + j]);
        if (fwrite(buf, sizeof(buf[0]), k, fp) != k) return -1;
        i += k;
    }
    return 0;
}

/* Best effort: makes the rename itself durable. A failure here does not undo a complete file. */
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_write(const char *path, const st_write_tensor *tensors, int n, char *err, size_t errlen) {
    st_ctx c = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = '\0';
    if (!path || !*path) return file_fail(&c, "no output path given");
    if (n < 0 || (n > 0 && !tensors))
        return file_fail(&c, "invalid tensor list (n = %d, tensors = %p)", n,
                         (const void *)tensors);

    size_t *nbytes = calloc(n > 0 ? (size_t)n : 1, sizeof(*nbytes));
    if (!nbytes) return file_fail(&c, "out of memory");
    if (validate_write(&c, tensors, n, nbytes) != 0) {
        free(nbytes);
        return -1;
    }
    char *header = build_header(tensors, n, nbytes);
    if (!header) {
        free(nbytes);
        return file_fail(&c, "out of memory building the header");
    }
    /* Pad with spaces so the data section starts 8-byte aligned (the length field is 8 bytes). */
    size_t hlen = strlen(header), padded = (hlen + 7) & ~(size_t)7;

    size_t tmplen = strlen(path) + 32;
    char *tmp = malloc(tmplen);
    if (!tmp) {
        cJSON_free(header);
        free(nbytes);
        return file_fail(&c, "out of memory");
    }
    snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());

    int rc = -1, created = 0;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        file_fail(&c, "cannot create temporary file '%s': %s", tmp, strerror(errno));
        goto out;
    }
    created = 1;
    uint64_t len64 = padded; /* little-endian host */
    int ok = fwrite(&len64, sizeof(len64), 1, fp) == 1 && fwrite(header, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = write_data(fp, &tensors[i], nbytes[i] / st_dtype_size(tensors[i].dtype)) == 0;
    if (!ok || fflush(fp) != 0) {
        file_fail(&c, "cannot write '%s': %s", tmp, strerror(errno));
        fclose(fp);
        goto out;
    }
    if (fsync(fileno(fp)) != 0) {
        file_fail(&c, "cannot fsync '%s': %s", tmp, strerror(errno));
        fclose(fp);
        goto out;
    }
    if (fclose(fp) != 0) {
        file_fail(&c, "cannot close '%s': %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        file_fail(&c, "cannot rename '%s' into place: %s", tmp, strerror(errno));
        goto out;
    }
    fsync_parent_dir(path);
    rc = 0;
out:
    if (rc != 0 && created) unlink(tmp); /* never leave a partial file behind */
    free(tmp);
    cJSON_free(header);
    free(nbytes);
    return rc;
}

/* ---- shared with safetensors_set.c (see safetensors_internal.h) ---------------------------- */

const char *st_internal_json_kind(const cJSON *j) {
    return json_kind(j);
}

const char *st_internal_printable(const char *s, char *buf, size_t len) {
    return printable(s, buf, len);
}

cJSON *st_internal_parse_json(const char *text, size_t n, const char **end) {
    pthread_mutex_lock(&cjson_parse_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, end, 0);
    pthread_mutex_unlock(&cjson_parse_lock);
    return root;
}

int st_internal_validate_write(const char *path, const st_write_tensor *tensors, int n,
                               size_t *nbytes, char *err, size_t errlen) {
    st_ctx c = {path ? path : "(null)", err, errlen};
    return validate_write(&c, tensors, n, nbytes);
}

/* ---- conversions --------------------------------------------------------------------------- */

/* The kernels' conversions (types.c): one definition of each rounding in the program. */
float st_f16_to_f32(uint16_t h) {
    return kernel_f16_to_f32(h);
}

float st_bf16_to_f32(uint16_t b) {
    return kernel_bf16_to_f32(b);
}

uint16_t st_f32_to_f16(float f) {
    return kernel_f32_to_f16(f);
}

uint16_t st_f32_to_bf16(float f) {
    return kernel_f32_to_bf16(f);
}
