#!/usr/bin/env bash
# test-install.sh BUILD_DIR — installs a built tree into a temporary prefix and builds and runs
# the examples against it, the two ways a user would: find_package(linshard) (examples/ as a
# standalone CMake project) and pkg-config (cc/c++ straight from the command line). Also checks
# that nothing installed was compiled with -march=native. Needs a C and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
prefix=$(mktemp -d /tmp/linshard-install-XXXXXX)
trap 'rm -rf "$prefix"' EXIT

echo "test-install: cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(dirname "$(find "$prefix" -name linshard.pc)")")
for f in "$prefix/bin/linshard" "$prefix/include/linshard/linshard.h" "$libdir/liblinshard.a" \
         "$libdir/liblinshard.so" "$libdir/cmake/linshard/linshard-config.cmake"; do
  [ -e "$f" ] || { echo "test-install: missing $f" >&2; exit 1; }
done
"$prefix/bin/linshard" --version

# Portable: no -march/-mtune=native in what the installed targets were compiled with (the
# cache's flags and options; the generated flags where the generator writes flags.make), nor in
# anything installed that would pass flags on.
native=$(grep -E '^(CMAKE_C_FLAGS[A-Z_]*:STRING=.*-m(arch|tune)=native|LINSHARD_NATIVE:BOOL=ON)' \
           "$build/CMakeCache.txt" || true)
for f in "$build"/CMakeFiles/linshard_{objects,cli}.dir/flags.make "$libdir/pkgconfig/linshard.pc" \
         "$libdir"/cmake/linshard/*.cmake; do
  [ -e "$f" ] && grep -q -e '-march=native' -e '-mtune=native' "$f" && native+=" $f"
done
if [ -n "$native" ]; then
  echo "test-install: -march=native in an installed target: $native" >&2
  exit 1
fi

echo "test-install: find_package(linshard): linshard::linshard, then linshard::linshard_static"
cmake -S examples -B "$prefix/build-examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/build-examples" >/dev/null
"$prefix/build-examples/generate"
"$prefix/build-examples/generate_cpp"
cmake -S examples -B "$prefix/build-examples-static" -DCMAKE_PREFIX_PATH="$prefix" \
  -DLINSHARD_EXAMPLES_LINK=linshard::linshard_static >/dev/null
cmake --build "$prefix/build-examples-static" >/dev/null
if ldd "$prefix/build-examples-static/generate" | grep -q liblinshard; then
  echo "test-install: linshard::linshard_static linked the shared library" >&2
  exit 1
fi
"$prefix/build-examples-static/generate"
"$prefix/build-examples-static/generate_cpp"

echo "test-install: pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror examples/generate.c $(pkg-config --cflags --libs linshard) \
  -o "$prefix/generate-pc"
# shellcheck disable=SC2046
c++ -std=c++11 -Wall -Wextra -Werror examples/generate.cpp $(pkg-config --cflags --libs linshard) \
  -o "$prefix/generate-cpp-pc"
# The static library, with what pkg-config --static adds (Requires.private, Libs.private).
# shellcheck disable=SC2046
cc examples/generate.c $(pkg-config --cflags linshard) "$libdir/liblinshard.a" \
  $(pkg-config --static --libs linshard | sed 's/-llinshard//') -o "$prefix/generate-static"
LD_LIBRARY_PATH="$libdir" "$prefix/generate-pc"
LD_LIBRARY_PATH="$libdir" "$prefix/generate-cpp-pc"
"$prefix/generate-static"

# The builtin tokenizer's image (made at build time, embedded in builtin.c's object) is in both
# installed libraries: "Hello world" is GPT-2's 15496 995 through each.
echo "test-install: the builtin tokenizer, shared and static"
cat >"$prefix/tok.c" <<'EOF_C'
#include <stdio.h>
#include <stdlib.h>
#include "linshard/tokenizer.h"
int main(void) {
    tokenizer *t; char err[256]; int *ids; size_t n;
    if (tokenizer_load_builtin(&t, err, sizeof(err))) { fprintf(stderr, "%s\n", err); return 1; }
    if (tokenizer_encode(t, "Hello world", 11, &ids, &n) || n != 2 || ids[0] != 15496 || ids[1] != 995) return 1;
    free(ids); tokenizer_free(t); return 0;
}
EOF_C
# shellcheck disable=SC2046
cc "$prefix/tok.c" $(pkg-config --cflags --libs linshard) -o "$prefix/tok-shared"
# shellcheck disable=SC2046
cc "$prefix/tok.c" $(pkg-config --cflags linshard) "$libdir/liblinshard.a" \
  $(pkg-config --static --libs linshard | sed 's/-llinshard//') -o "$prefix/tok-static"
LD_LIBRARY_PATH="$libdir" "$prefix/tok-shared"
"$prefix/tok-static"
echo "test-install: ok"
