/* atomic_file.h — writing a file so that readers see the old version or the new one, never a
 * torn one: write a temporary file in the same directory, fsync it, rename it over the target.
 * An interrupted run leaves the previous file intact (and at worst a stray "*.tmp.<pid>"). */
#ifndef LINSHARD_ATOMIC_FILE_H
#define LINSHARD_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    FILE *fp;
    char tmp_path[4096];
    char path[4096];
} atomic_file;

/* Opens a temporary file beside path. Returns 0, or -1 with a message in err. */
int atomic_file_open(atomic_file *f, const char *path, char *err, size_t errlen);
/* Flushes, fsyncs, closes and renames into place. On failure removes the temporary file and
 * returns -1 with a message. */
int atomic_file_commit(atomic_file *f, char *err, size_t errlen);
/* Gives up: closes and removes the temporary file. */
void atomic_file_abort(atomic_file *f);

/* The whole file at once: n bytes of data to path, atomically. Returns 0, or -1 with err. */
int atomic_file_write(const char *path, const void *data, size_t n, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
