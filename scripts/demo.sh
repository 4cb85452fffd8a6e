#!/usr/bin/env bash
# Install (if needed) and run the main job on the embedded sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/maskdetect demo "$@"
