#!/usr/bin/env bash
# Quickstart: set up .venv (and, as root, the system packages) if needed, then run the whole test suite.
# Extra arguments go to pytest (e.g. -m "not slow and not browser" for the fast unit tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
