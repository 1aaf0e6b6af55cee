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
# (loopback-only network namespaces), an emoji font (screenshots). Installed when we are root with apt.
if [ "$target" = test ]; then
  missing=()
  for pair in chromium:chromium espeak-ng:espeak-ng sox:sox ip:iproute2 unshare:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
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
echo "setup: installing Python packages into .venv ($target); the first run compiles llama-cpp-python (~5 min)"
.venv/bin/python -m pip install -q --upgrade pip
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q -r "${files[0]}"
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
echo "$digest" > "$stamp"
