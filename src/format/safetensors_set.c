/* safetensors_set.c — a model directory's weights in one or several safetensors files, and the
 * sharded writer (see include/linshard/safetensors_set.h). */
#include "linshard/safetensors_set.h"

#include "linshard/atomic_file.h"
#include "safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Hugging Face's shard names: model-00001-of-00003.safetensors. */
#define SHARD_NAME_FMT "model-%05d-of-%05d.safetensors"
/* Longer names than one directory entry can hold cannot name a file in dir. */
#define FILE_NAME_MAX 255

/* ---- helpers ------------------------------------------------------------------------------- */

/* Formats a one-line message into err; always returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...) {
    if (!err || errlen == 0) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "dir/name" in a new allocation, or NULL when out of memory. */
static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Why name cannot be a shard file in the model directory, or NULL if it can. The index comes
 * from the internet: a name must not reach outside dir. Symlinks inside dir are followed (the
 * Hugging Face cache is made of them); they are the directory owner's choice, not the index's. */
static const char *bad_file_name(const char *name) {
    if (!*name) return "is empty";
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return "is a directory reference (files must stay in the model directory)";
    if (strchr(name, '/') || strchr(name, '\\'))
        return "has a path separator (files must stay in the model directory)";
    if (strlen(name) > FILE_NAME_MAX) return "is longer than 255 bytes";
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return "contains a control character";
    return NULL;
}

static int cmp_entry(const void *a, const void *b) {
    const st_set_entry *x = a, *y = b;
    int c = strcmp(x->tensor->name, y->tensor->name);
    if (c) return c;
    return (x->file > y->file) - (x->file < y->file);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first entry called name (entries are sorted by name, then file), or NULL. */
static const st_set_entry *lower_bound(const st_set *s, const char *name) {
    int lo = 0, hi = s->n_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(s->tensors[mid].tensor->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n_tensors && strcmp(s->tensors[lo].tensor->name, name) == 0) return &s->tensors[lo];
    return NULL;
}

/* Fills s->tensors with every tensor of every opened file, sorted by name then file. */
static int build_entries(st_set *s, const char *where, char *err, size_t errlen) {
    size_t total = 0;
    for (int i = 0; i < s->n_files; i++) total += (size_t)s->files[i].n_tensors;
    if (total > (size_t)INT32_MAX) return fail(err, errlen, "%s: too many tensors", where);
    if (total == 0) return 0;
    s->tensors = malloc(total * sizeof(*s->tensors));
    if (!s->tensors) return fail(err, errlen, "%s: out of memory for %zu tensors", where, total);
    int k = 0;
    for (int i = 0; i < s->n_files; i++)
        for (int j = 0; j < s->files[i].n_tensors; j++)
            s->tensors[k++] = (st_set_entry){&s->files[i].tensors[j], i};
    s->n_tensors = k;
    qsort(s->tensors, total, sizeof(*s->tensors), cmp_entry);
    return 0;
}

/* Allocates room for n files (zeroed, so st_set_close is safe at any point after). */
static int alloc_files(st_set *s, int n, const char *where, char *err, size_t errlen) {
    s->files = calloc((size_t)n, sizeof(*s->files));
    s->file_names = calloc((size_t)n, sizeof(*s->file_names));
    if (!s->files || !s->file_names) return fail(err, errlen, "%s: out of memory", where);
    s->n_files = n;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Reads the index at path into a new NUL-terminated buffer. Returns 1 when read, 0 when there is
 * no index (the directory holds a single file), -1 with a message otherwise. */
static int read_index(const char *path, char **text, size_t *len, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    int rc = -1;
    if (fstat(fd, &sb) != 0) {
        fail(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        fail(err, errlen, "%s: not a regular file", path);
    } else if ((uintmax_t)sb.st_size > ST_SET_INDEX_MAX) {
        fail(err, errlen, "%s: %lld bytes, larger than the %u allowed for an index", path,
             (long long)sb.st_size, ST_SET_INDEX_MAX);
    } else {
        size_t n = (size_t)sb.st_size, got = 0;
        char *buf = malloc(n + 1);
        if (!buf) {
            fail(err, errlen, "%s: out of memory for %zu bytes", path, n);
        } else {
            int read_errno = 0;
            while (got < n) {
                ssize_t r = read(fd, buf + got, n - got);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) read_errno = errno;
                if (r <= 0) break;
                got += (size_t)r;
            }
            if (got != n) {
                fail(err, errlen, "%s: cannot read: %s", path,
                     read_errno ? strerror(read_errno) : "the file shrank while being read");
                free(buf);
            } else {
                buf[n] = '\0';
                *text = buf;
                *len = n;
                rc = 1;
            }
        }
    }
    close(fd);
    return rc;
}

/* A set of the one file at path, called name. */
static int open_one(st_set *s, const char *path, const char *name, char *err, size_t errlen) {
    int rc = -1;
    if (alloc_files(s, 1, path, err, errlen) == 0) {
        s->file_names[0] = strdup(name);
        if (!s->file_names[0])
            fail(err, errlen, "%s: out of memory", path);
        else if (st_open(&s->files[0], path, err, errlen) == 0)
            rc = build_entries(s, path, err, errlen);
    }
    return rc;
}

static int open_single(st_set *s, const char *dir, char *err, size_t errlen) {
    char *path = join(dir, ST_SET_SINGLE_NAME);
    if (!path) return fail(err, errlen, "%s: out of memory", dir);
    int rc = -1;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        /* A PyTorch pickle checkpoint: say so, and how to get safetensors from it. */
        char *bin = join(dir, "pytorch_model.bin"),
             *bin_index = join(dir, "pytorch_model.bin.index.json");
        int pickle = (bin && stat(bin, &sb) == 0) || (bin_index && stat(bin_index, &sb) == 0);
        free(bin);
        free(bin_index);
        if (pickle)
            fail(err, errlen,
                 "%s holds pytorch_model.bin, a PyTorch pickle: linshard reads only safetensors "
                 "(convert it with transformers: AutoModelForCausalLM.from_pretrained(DIR)"
                 ".save_pretrained(OUT, safe_serialization=True))",
                 dir);
        else
            fail(err, errlen,
                 "%s: neither " ST_SET_INDEX_NAME " nor " ST_SET_SINGLE_NAME " is there", dir);
    } else
        rc = open_one(s, path, ST_SET_SINGLE_NAME, err, errlen);
    free(path);
    return rc;
}

typedef struct {
    const char *tensor, *file; /* both point into the parsed index */
    int fidx;                  /* into st_set.file_names */
} index_pair;

static int cmp_pair(const void *a, const void *b) {
    return strcmp(((const index_pair *)a)->tensor, ((const index_pair *)b)->tensor);
}

/* Checks the weight_map object and collects its (tensor, file) pairs sorted by tensor. */
static int collect_pairs(const char *index, const cJSON *wm, index_pair **out, int *n_out,
                         char *err, size_t errlen) {
    char a[ST_NAME_MAX], b[ST_NAME_MAX];
    int n = cJSON_GetArraySize(wm);
    if (n == 0) return fail(err, errlen, "%s: \"weight_map\" is empty", index);
    index_pair *p = calloc((size_t)n, sizeof(*p));
    if (!p) return fail(err, errlen, "%s: out of memory for %d entries", index, n);
    *out = p;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        const char *name = it->string ? it->string : "";
        if (!cJSON_IsString(it))
            return fail(err, errlen, "%s: \"weight_map\" entry '%s' is %s, not a string", index,
                        st_internal_printable(name, a, sizeof(a)), st_internal_json_kind(it));
        if (strlen(name) >= ST_NAME_MAX)
            return fail(err, errlen,
                        "%s: tensor name '%s' of %zu bytes is longer than the %d allowed", index,
                        st_internal_printable(name, a, 48), strlen(name), ST_NAME_MAX - 1);
        const char *why = bad_file_name(it->valuestring);
        if (why)
            return fail(err, errlen, "%s: tensor '%s' maps to file name '%s', which %s", index,
                        st_internal_printable(name, a, sizeof(a)),
                        st_internal_printable(it->valuestring, b, sizeof(b)), why);
        p[k++] = (index_pair){name, it->valuestring, -1};
    }
    *n_out = k;
    qsort(p, (size_t)k, sizeof(*p), cmp_pair);
    for (int i = 1; i < k; i++)
        if (strcmp(p[i - 1].tensor, p[i].tensor) == 0) /* cJSON keeps both of a repeated key */
            return fail(err, errlen, "%s: tensor '%s' appears twice in \"weight_map\"", index,
                        st_internal_printable(p[i].tensor, a, sizeof(a)));
    return 0;
}

/* The distinct file names of the pairs, into s->file_names (sorted), and each pair's fidx. */
static int collect_files(st_set *s, const char *index, index_pair *p, int n, char *err,
                         size_t errlen) {
    const char **names = malloc((size_t)n * sizeof(*names));
    if (!names) return fail(err, errlen, "%s: out of memory", index);
    for (int i = 0; i < n; i++) names[i] = p[i].file;
    qsort(names, (size_t)n, sizeof(*names), cmp_str_ptr);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || strcmp(names[m - 1], names[i]) != 0) names[m++] = names[i];
    int rc = -1;
    if (m > ST_SET_MAX_FILES) {
        fail(err, errlen, "%s: names %d files, more than the %d allowed", index, m,
             ST_SET_MAX_FILES);
    } else if (alloc_files(s, m, index, err, errlen) == 0) {
        rc = 0;
        for (int i = 0; i < m && rc == 0; i++)
            if (!(s->file_names[i] = strdup(names[i])))
                rc = fail(err, errlen, "%s: out of memory", index);
        for (int i = 0; i < n && rc == 0; i++) {
            char **hit = bsearch(&p[i].file, s->file_names, (size_t)m, sizeof(char *), cmp_str_ptr);
            p[i].fidx = (int)(hit - s->file_names); /* always found: the names came from p */
        }
    }
    free(names);
    return rc;
}

static int open_files(st_set *s, const char *dir, const char *index, char *err, size_t errlen) {
    for (int i = 0; i < s->n_files; i++) {
        char *path = join(dir, s->file_names[i]);
        if (!path) return fail(err, errlen, "%s: out of memory", index);
        struct stat sb;
        int rc = 0;
        /* A missing shard is the common failure (an interrupted download): say so plainly.
         * Anything else is reported by st_open, which names the shard. */
        if (stat(path, &sb) != 0 && errno == ENOENT)
            rc = fail(err, errlen, "%s names %s, which is missing", index, s->file_names[i]);
        else
            rc = st_open(&s->files[i], path, err, errlen);
        free(path);
        if (rc) return -1;
    }
    return 0;
}

/* The index and the files must agree exactly: each tensor of the index in its file, no tensor in
 * two files, and no tensor of a file left out of the index. */
static int cross_check(const st_set *s, const char *index, const index_pair *p, int n, char *err,
                       size_t errlen) {
    char a[ST_NAME_MAX];
    const st_set_entry *end = s->tensors + s->n_tensors;
    for (int i = 0; i < n; i++) {
        /* Entries of one name are sorted by file: walk them to the file the index names. */
        const st_set_entry *e = lower_bound(s, p[i].tensor);
        while (e && e < end && strcmp(e->tensor->name, p[i].tensor) == 0 && e->file != p[i].fidx)
            e++;
        if (!e || e == end || strcmp(e->tensor->name, p[i].tensor) != 0)
            return fail(err, errlen, "%s: maps tensor '%s' to %s, which does not contain it", index,
                        st_internal_printable(p[i].tensor, a, sizeof(a)), s->file_names[p[i].fidx]);
    }
    for (int i = 1; i < s->n_tensors; i++) {
        const st_set_entry *x = &s->tensors[i - 1], *y = &s->tensors[i];
        if (strcmp(x->tensor->name, y->tensor->name) == 0)
            return fail(err, errlen,
                        "%s: tensor '%s' is in both %s and %s; refusing the ambiguous set", index,
                        st_internal_printable(x->tensor->name, a, sizeof(a)),
                        s->file_names[x->file], s->file_names[y->file]);
    }
    /* Now each pair has exactly one entry in its file; any entry without a pair is extra. */
    for (int i = 0; i < s->n_tensors; i++) {
        index_pair key = {s->tensors[i].tensor->name, NULL, 0};
        if (!bsearch(&key, p, (size_t)n, sizeof(*p), cmp_pair))
            return fail(err, errlen, "%s: %s holds tensor '%s', which the index does not name",
                        index, s->file_names[s->tensors[i].file],
                        st_internal_printable(key.tensor, a, sizeof(a)));
    }
    return 0;
}

static int open_indexed(st_set *s, const char *dir, const char *index, const char *text, size_t len,
                        char *err, size_t errlen) {
    if (memchr(text, '\0', len))
        return fail(err, errlen, "%s: not valid JSON: it contains a NUL byte", index);
    const char *end = text;
    cJSON *root = st_internal_parse_json(text, len, &end);
    if (!root)
        return fail(err, errlen, "%s: not valid JSON (parse error at byte %td of %zu)", index,
                    end - text, len);
    const char *q = end;
    while (q < text + len && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    index_pair *pairs = NULL;
    int n = 0, rc = -1;
    s->indexed = 1;
    if (q != text + len)
        fail(err, errlen, "%s: not valid JSON: unexpected data after the value at byte %td", index,
             q - text);
    else if (!cJSON_IsObject(root))
        fail(err, errlen, "%s: is %s, not a JSON object", index, st_internal_json_kind(root));
    else if (!wm)
        fail(err, errlen, "%s: has no \"weight_map\" object", index);
    else if (!cJSON_IsObject(wm))
        fail(err, errlen, "%s: \"weight_map\" is %s, not an object", index,
             st_internal_json_kind(wm));
    else if (collect_pairs(index, wm, &pairs, &n, err, errlen) == 0 &&
             collect_files(s, index, pairs, n, err, errlen) == 0 &&
             open_files(s, dir, index, err, errlen) == 0 &&
             build_entries(s, index, err, errlen) == 0)
        rc = cross_check(s, index, pairs, n, err, errlen);
    free(pairs);
    cJSON_Delete(root);
    return rc;
}

int st_set_open(st_set *s, const char *dir, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!s) return fail(err, errlen, "%s: no st_set to open into", dir ? dir : "(null)");
    memset(s, 0, sizeof(*s)); /* st_set_close is safe from here on, whatever happens */
    if (!dir || !*dir) return fail(err, errlen, "(null): no model directory given");
    char *index = join(dir, ST_SET_INDEX_NAME);
    if (!index) return fail(err, errlen, "%s: out of memory", dir);
    char *text = NULL;
    size_t len = 0;
    int r = read_index(index, &text, &len, err, errlen), rc = -1;
    if (r == 0)
        rc = open_single(s, dir, err, errlen);
    else if (r == 1)
        rc = open_indexed(s, dir, index, text, len, err, errlen);
    free(text);
    free(index);
    if (rc != 0) st_set_close(s);
    return rc;
}

int st_set_open_file(st_set *s, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!s) return fail(err, errlen, "%s: no st_set to open into", path ? path : "(null)");
    memset(s, 0, sizeof(*s));
    if (!path || !*path) return fail(err, errlen, "(null): no file given");
    const char *slash = strrchr(path, '/');
    int rc = open_one(s, path, slash ? slash + 1 : path, err, errlen);
    if (rc != 0) st_set_close(s);
    return rc;
}

int st_set_open_memory(st_set *s, const void *data, size_t size, const char *name, char *err,
                       size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!s) return fail(err, errlen, "%s: no st_set to open into", name ? name : "(null)");
    memset(s, 0, sizeof(*s));
    if (!name || !*name) name = "(memory)";
    int rc = -1;
    if (alloc_files(s, 1, name, err, errlen) == 0) {
        s->file_names[0] = strdup(name);
        if (!s->file_names[0])
            fail(err, errlen, "%s: out of memory", name);
        else if (st_open_memory(&s->files[0], data, size, name, err, errlen) == 0)
            rc = build_entries(s, name, err, errlen);
    }
    if (rc != 0) st_set_close(s);
    return rc;
}

void st_set_close(st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files) st_close(&s->files[i]);
        if (s->file_names) free(s->file_names[i]);
    }
    free(s->files);
    free(s->file_names);
    free(s->tensors);
    memset(s, 0, sizeof(*s));
}

const st_tensor *st_set_find(const st_set *s, const char *name, const st_file **file) {
    if (!s || !name) return NULL;
    const st_set_entry *e = lower_bound(s, name);
    if (!e) return NULL;
    if (file) *file = &s->files[e->file];
    return e->tensor;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* Best effort, as in st_write: makes the renames into dir durable. */
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* The index JSON (weight_map in the tensors' order), or NULL when out of memory. */
static char *build_index(const st_write_tensor *tensors, int n, const int *shard, int n_shards,
                         const size_t *nbytes) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += nbytes[i];
    char num[32], name[64];
    snprintf(num, sizeof(num), "%zu", total); /* cJSON would print 10^15 as 1e+15 */
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "metadata") : NULL;
    cJSON *wm = meta ? cJSON_AddObjectToObject(root, "weight_map") : NULL;
    int ok = wm && cJSON_AddRawToObject(meta, "total_size", num);
    for (int i = 0; ok && i < n; i++) {
        snprintf(name, sizeof(name), SHARD_NAME_FMT, shard[i] + 1, n_shards);
        ok = cJSON_AddStringToObject(wm, tensors[i].name, name) != NULL;
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return text;
}

int st_write_sharded(const char *dir, const st_write_tensor *tensors, int n, size_t max_file_bytes,
                     char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!dir || !*dir) return fail(err, errlen, "(null): no output directory given");
    if (n < 1 || !tensors)
        return fail(err, errlen, "%s: nothing to write (n = %d, tensors = %p)", dir, n,
                    (const void *)tensors);
    char *index = join(dir, ST_SET_INDEX_NAME);
    size_t *nbytes = calloc((size_t)n, sizeof(*nbytes));
    int *shard = calloc((size_t)n, sizeof(*shard));
    char *text = NULL;
    int rc = -1;
    if (!index || !nbytes || !shard) {
        fail(err, errlen, "%s: out of memory", dir);
        goto out;
    }
    /* Check every tensor before writing anything, so a bad one cannot leave half a set behind,
     * and names across all shards at once (the reader refuses a tensor in two files). */
    if (st_internal_validate_write(index, tensors, n, nbytes, err, errlen) != 0) goto out;

    /* Greedy, in order: a shard takes tensors while their data fits max_file_bytes. A shard
     * always takes its first tensor, so an oversized tensor gets a shard of its own; empty
     * tensors stay with the current shard. */
    int n_shards = 0;
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (n_shards == 0 || (max_file_bytes && used > 0 && nbytes[i] > 0 &&
                              (used >= max_file_bytes || nbytes[i] > max_file_bytes - used))) {
            n_shards++;
            used = 0;
        }
        shard[i] = n_shards - 1;
        used += nbytes[i];
    }
    if (n_shards > ST_SET_MAX_FILES) {
        fail(err, errlen, "%s: %d shards of at most %zu bytes, more than the %d a reader accepts",
             dir, n_shards, max_file_bytes, ST_SET_MAX_FILES);
        goto out;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fail(err, errlen, "%s: cannot create the directory: %s", dir, strerror(errno));
        goto out;
    }
    for (int first = 0, k = 0; first < n; k++) {
        int last = first;
        while (last < n && shard[last] == k) last++;
        char name[64];
        snprintf(name, sizeof(name), SHARD_NAME_FMT, k + 1, n_shards);
        char *path = join(dir, name);
        if (!path) {
            fail(err, errlen, "%s: out of memory", dir);
            goto out;
        }
        int w = st_write(path, tensors + first, last - first, err, errlen);
        free(path);
        if (w != 0) goto out;
        first = last;
    }
    text = build_index(tensors, n, shard, n_shards, nbytes);
    if (!text) {
        fail(err, errlen, "%s: out of memory building the index", index);
        goto out;
    }
    /* Last: until this rename, readers see the old index (or none), never one naming shards that
     * are not yet in place. */
    if (atomic_file_write(index, text, strlen(text), err, errlen) != 0) goto out;
    fsync_dir(dir);
    rc = 0;
out:
    cJSON_free(text);
    free(shard);
    free(nbytes);
    free(index);
    return rc;
}
