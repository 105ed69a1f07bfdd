#!/usr/bin/env bash
# Builds llama.cpp's command-line tools (llama-bench, llama-completion, llama-quantize, llama-tokenize) from
# source, as the peer to measure Spool against. The source comes from the llama-cpp-python
# source package, which vendors the whole llama.cpp tree (ggml-org/llama.cpp@0c1e57098 in
# 0.3.36). It builds with cmake and ninja, also from the Python package registry.
# About 3 minutes on 2 cores.
#
#   bash bench/peer/install.sh                  # into ./.peer/llama.cpp (add .peer/ to .gitignore)
#   PREFIX=/somewhere JOBS=2 bash bench/peer/install.sh
#
# Result: $PREFIX/bin/llama-bench, llama-completion, llama-quantize, llama-tokenize. These are statically
# linked, built with -march=native and OpenMP.
set -euo pipefail
PREFIX=${PREFIX:-.peer/llama.cpp}
VERSION=${LLAMA_CPP_PY_VERSION:-0.3.36}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
log() { printf '[peer] %s\n' "$*" >&2; }
if [ -x "$PREFIX/bin/llama-bench" ]; then log "already built: $PREFIX/bin"; exit 0; fi
t0=$(date +%s)
python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q cmake ninja
export PATH="$PREFIX/venv/bin:$PATH"
cd "$PREFIX"
if [ ! -d "src/llama_cpp_python-$VERSION/vendor/llama.cpp" ]; then
  "$PREFIX/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d sdist
  mkdir -p src && tar -xzf "sdist/llama_cpp_python-$VERSION.tar.gz" -C src
fi
SRC="$PREFIX/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$SRC" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >/dev/null
cmake --build build --target llama-bench llama-completion llama-quantize llama-tokenize -j "$JOBS"
mkdir -p bin && cp -f build/bin/llama-bench build/bin/llama-completion build/bin/llama-quantize build/bin/llama-tokenize bin/
log "built in $(( $(date +%s) - t0 )) s: $PREFIX/bin"
