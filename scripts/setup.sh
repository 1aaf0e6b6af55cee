#!/usr/bin/env bash
# Set up .venv at the repo root for the app ("app") or the test suite ("test"). Idempotent: a second
# run with unchanged requirement files only checks a stamp and returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-app}"
case "$target" in app) files=(requirements.txt requirements-nodeps.txt) ;;
  test) files=(requirements-test.txt requirements.txt requirements-nodeps.txt) ;;
  *) echo "usage: scripts/setup.sh app|test" >&2; exit 2 ;; esac

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi

# System packages the tests use: Chromium (browser test), espeak-ng + sox (test speech), iproute2
# (loopback-only network namespaces), an emoji font (screenshots), PostgreSQL (the vote store's Postgres
# tests). Installed when we are root with apt.
if [ "$target" = test ]; then
  missing=()
  for pair in chromium:chromium espeak-ng:espeak-ng sox:sox ip:iproute2 unshare:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing system packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "setup: missing system packages (install them for the browser/speech tests): ${missing[*]}" >&2
    fi
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.setup-$target"
digest=$(cat "${files[@]}" scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
  exit 0
fi
echo "setup: installing Python packages into .venv ($target)"
.venv/bin/python -m pip install -q --upgrade pip

# llama-cpp-python is source-only: build its wheel once per machine and CPU feature set, keep it in a cache
# keyed by version + build flags (pip's own wheel cache ignores CMAKE_ARGS). AVX2/FMA builds are ~3x faster
# than a generic one; CPUs without AVX2 get the generic build.
llama_version=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements.txt)
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
else
  llama_cmake="-DGGML_NATIVE=OFF"
fi
llama_cmake="${CMAKE_ARGS:-$llama_cmake}"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/speechlm_demo/wheels/llama-$(echo "$llama_version $llama_cmake" | sha256sum | cut -c1-12)"
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "setup: compiling llama-cpp-python $llama_version once for this machine (~5 min on 2 cores; needs gcc, g++, cmake)"
  CMAKE_ARGS="$llama_cmake" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$wheels" "llama-cpp-python==$llama_version"
fi
.venv/bin/python -m pip install -q --find-links "$wheels" -r "${files[0]}"
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
echo "$digest" > "$stamp"
