#!/usr/bin/env bash
# Set up streamhive on a Debian machine (as root): system packages, a venv in .venv, the package.
# `scripts/setup.sh test` also installs what the test suite needs (ffmpeg, pytest, PyAV...).
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=${1:-}
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$want_tests" = test ]; then
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need+=(ffmpeg)
  command -v chromium >/dev/null || need+=(chromium)
  command -v npm >/dev/null || need+=(npm)
  command -v openssl >/dev/null || need+=(openssl)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$want_tests" = test ]; then
  .venv/bin/python -m pip install -q -e '.[fast,test]'
  # hls.js, dash.js and mpegts.js for the browser tests, at the versions in the lock file
  # (installed again whenever the lock file changes).
  if ! cmp -s tests/web/package-lock.json tests/web/node_modules/.installed-lock; then
    npm ci --prefix tests/web --no-audit --no-fund --loglevel=error
    cp tests/web/package-lock.json tests/web/node_modules/.installed-lock
  fi
else
  .venv/bin/python -m pip install -q -e '.[fast]'
fi
