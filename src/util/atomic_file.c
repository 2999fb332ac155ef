/* atomic_file.c — temp file + fsync + rename (see atomic_file.h). */
#include "linshard/atomic_file.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int atomic_file_open(atomic_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof(*f));
    int n = snprintf(f->tmp_path, sizeof(f->tmp_path), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(f->tmp_path) || strlen(path) >= sizeof(f->path)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    strcpy(f->path, path);
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        snprintf(err, errlen, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        return -1;
    }
    return 0;
}

int atomic_file_commit(atomic_file *f, char *err, size_t errlen) {
    int failed = ferror(f->fp) || fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0;
    int saved = errno;
    if (fclose(f->fp) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    f->fp = NULL;
    if (!failed && rename(f->tmp_path, f->path) != 0) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        snprintf(err, errlen, "%s: write failed: %s", f->path, strerror(saved));
        remove(f->tmp_path);
        return -1;
    }
    return 0;
}

void atomic_file_abort(atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    remove(f->tmp_path);
}

int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    atomic_file f;
    if (atomic_file_open(&f, path, err, errlen)) return -1;
    if (n && fwrite(data, 1, n, f.fp) != n) {
        snprintf(err, errlen, "%s: write failed", path);
        atomic_file_abort(&f);
        return -1;
    }
    return atomic_file_commit(&f, err, errlen);
}
