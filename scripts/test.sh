#!/usr/bin/env bash
# One command: install what is needed (apt packages, venv, libvirtd), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ELASTIC_TEST_REQUIRE_LIBVIRT=1
# A PostgreSQL cluster of its own on loopback (kept between runs, stopped on exit if started here):
# the store contract and the PostgreSQL tests run on it (ELASTIC_TEST_POSTGRES).
source scripts/pg_test_cluster.sh
pg_test_start
trap pg_test_stop EXIT
.venv/bin/python -m pytest -p no:cacheprovider "$@"
