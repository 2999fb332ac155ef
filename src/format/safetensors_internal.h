/* safetensors_internal.h — what safetensors.c shares with safetensors_set.c; not public API. */
#ifndef LINSHARD_SAFETENSORS_INTERNAL_H
#define LINSHARD_SAFETENSORS_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "linshard/safetensors.h"

/* s with control bytes replaced by '?' (and "..." when cut), so a name read from a file cannot
 * break a one-line error. */
const char *st_internal_printable(const char *s, char *buf, size_t len);
/* "an array", "a string", ...: what a JSON value is, for "X is <kind>, not ..." errors. */
const char *st_internal_json_kind(const cJSON *j);
/* cJSON_ParseWithLengthOpts under the lock that st_open uses: cJSON's parser writes a global
 * error slot, and ranks run as threads. */
cJSON *st_internal_parse_json(const char *text, size_t n, const char **end);
/* st_write's checks of the tensor list (names, dtypes, shapes, duplicates), with errors prefixed
 * by path; fills nbytes[i] with each tensor's data size. Returns 0 or -1. */
int st_internal_validate_write(const char *path, const st_write_tensor *tensors, int n,
                               size_t *nbytes, char *err, size_t errlen);

#endif
