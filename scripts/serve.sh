#!/usr/bin/env bash
# One command: install what is needed, then run the server on its embedded defaults (SQLite and a
# drive pool under ./var, the local libvirt, listening on 127.0.0.1:8080). Setup runs in the
# checkout; the server runs where it was started, so ./var (and a relative --config) is relative
# to the caller's directory: from the checkout, that is the checkout's ./var.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
venv=${ELASTIC_API_VENV:-.venv}
[[ $venv == /* ]] || venv="$root/$venv"
exec "$venv/bin/elastic-api" "$@" serve
