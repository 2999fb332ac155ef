#!/usr/bin/env bash
# only_kernels_call_blas.sh ROOT — the BLAS is reached only through the kernel layer.
#
# Issue 11's kernel layer (include/linshard/kernels.h) is the one interface to matrix products,
# so that other weight types and devices can plug in beneath the parallel layers. This check
# fails, listing file:line, if any C/C++ source or header outside src/kernels/ includes
# <cblas.h> or calls the BLAS by name (cblas_*, openblas_*): those go through kernel_sgemm,
# kernel_sgemv, kernel_set_threads and kernel_blas_description instead.
set -u
root=${1:?usage: only_kernels_call_blas.sh REPOSITORY_ROOT}
cd "$root" || exit 1
files=$(find src include tests bench examples fuzz -type f \
             \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) -not -path 'src/kernels/*' \
             2>/dev/null | sort)
if [ -z "$files" ]; then
    echo "only_kernels_call_blas: no sources found under $root" >&2
    exit 1
fi
pattern='#[[:space:]]*include[[:space:]]*[<"]cblas\.h[>"]|(^|[^A-Za-z0-9_])(cblas|openblas)_[A-Za-z0-9_]+[[:space:]]*\('
# shellcheck disable=SC2086 # one word per file name (none has spaces)
if grep -qE "$pattern" $files; then
    echo "the BLAS used outside src/kernels/ (call kernel_sgemm, kernel_sgemv," \
         "kernel_set_threads instead):" >&2
    # shellcheck disable=SC2086
    grep -nE "$pattern" $files | sed 's/^/  /' >&2
    exit 1
fi
echo "only_kernels_call_blas: $(echo "$files" | wc -l) files outside src/kernels/, none uses the BLAS"
