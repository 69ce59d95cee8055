#!/usr/bin/env bash
# Set up everything the tests need, then run lint and the whole suite. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
# -p no:cacheprovider: CI clones are read-mostly; pytest exits 5 (a failure) when no test ran.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
