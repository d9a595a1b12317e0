#!/usr/bin/env bash
# One command: install what is needed, then run the server on its embedded defaults
# (SQLite and a drive pool under ./var, the local libvirt, listening on 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/elastic-api "$@" serve
