/* temp_dir.h — the tests' temporary model directories: made under /tmp, removed with the (flat)
 * files a model directory holds. For cmocka tests: failures are assertions. */
#ifndef LINSHARD_TESTS_TEMP_DIR_H
#define LINSHARD_TESTS_TEMP_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A new empty directory /tmp/linshard-test-NAME-XXXXXX; free it with temp_dir_remove. */
static inline char *temp_dir_make(const char *name) {
    char tmpl[128];
    snprintf(tmpl, sizeof(tmpl), "/tmp/linshard-test-%s-XXXXXX", name);
    char *dir = strdup(tmpl);
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* Removes dir's files and dir, and frees the name. */
static inline void temp_dir_remove(char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    const struct dirent *e;
    char path[600];
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
    free(dir);
}

#endif
