#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages linshard needs to build and test, if missing.
# Run as root (or with sudo available). Does nothing when everything is already installed.
set -euo pipefail
packages=(
  build-essential cmake pkg-config  # the compiler and build system
  libopenmpi-dev openmpi-bin        # the mpi backend and the MPI_Allreduce peer in `bench comm`
  libcjson-dev                      # JSON (bench --json; safetensors headers and configs later)
  libcmocka-dev                     # unit tests
  libopenblas-dev                   # GEMM
  gnuplot-nox                       # train's loss.png
  libutf8proc-dev                   # Unicode categories for the GPT-2 tokenizer's pre-tokenisation
  libmicrohttpd-dev                 # the HTTP server of `linshard serve`
  curl                              # tests: drive `linshard serve` (CI adds nodejs, npm)
  python3                           # tests: scripts/doc_outputs.py checks the docs' pasted outputs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
