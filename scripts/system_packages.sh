#!/usr/bin/env bash
# System packages the test suite needs beyond Python: a C compiler (the fake NVML library
# the GPU driver tests build). Installed with apt-get when missing and run as root; the
# PostgreSQL server comes from scripts/postgres_test_url.sh.
set -euo pipefail
if command -v cc >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; } >&2
else
  echo "warning: no C compiler (cc); the NVML driver tests will fail. Install gcc." >&2
fi
