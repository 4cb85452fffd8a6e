#!/usr/bin/env bash
# Install (if needed) and run the whole test suite and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest -q -n 2 "$@"
