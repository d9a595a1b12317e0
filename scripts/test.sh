#!/usr/bin/env bash
# One command: install what is needed (apt packages, venv, libvirtd), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ELASTIC_TEST_REQUIRE_LIBVIRT=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
