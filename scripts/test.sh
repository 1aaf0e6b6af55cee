#!/usr/bin/env bash
# Quickstart: set up .venv (and, as root, the system packages) if needed, then run the whole test suite.
# With arguments, they go to a single pytest run (e.g. -m "not slow and not browser" for the fast unit
# tests only). Without, each group runs in its own Python process: the groups load different native
# runtimes (torch, CTranslate2, llama.cpp, onnxruntime, Arrow) and stay independent of each other.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit $?
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
status=0
for group in "tests --ignore=tests/cascade --ignore=tests/moshi --ignore=tests/votes --ignore=tests/clients --ignore=tests/qwen --ignore=tests/qwen_local" tests/cascade tests/moshi tests/votes "tests/clients tests/qwen" tests/qwen_local; do
  echo "== pytest $group"
  # shellcheck disable=SC2086
  .venv/bin/python -m pytest $group || status=1
done
exit $status
