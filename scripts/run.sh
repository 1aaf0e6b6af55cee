#!/usr/bin/env bash
# Quickstart: set up .venv if needed, then serve the playground at http://127.0.0.1:7860.
# Extra arguments go to app.py (e.g. --engine echo --port 7861).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh app
exec .venv/bin/python app.py "$@"
