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
  command -v nft >/dev/null || need+=(nftables)  # UDP packet loss in the RTSP loss test...
  command -v ip >/dev/null || need+=(iproute2)    # ...inside a network namespace of its own
  # GStreamer's RTSP server: the independent "IP camera" the RTSP pull tests read from
  [ -x /usr/bin/python3 ] && /usr/bin/python3 tests/peers/gst_rtsp_server.py --check >/dev/null 2>&1 ||
    need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad)
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
