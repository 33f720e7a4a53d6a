#!/usr/bin/env bash
# System packages the test suite needs beyond Python: a C compiler (the fake NVML library
# the GPU driver tests build) and Debian's chromium with fonts (the dashboards' end-to-end
# browser test, tests/dashboards/test_e2e_chromium.py). Installed with apt-get when missing
# and run as root; nothing is done when all are present. The PostgreSQL server comes from
# scripts/postgres_test_url.sh.
set -euo pipefail
missing=()
if ! command -v cc >/dev/null 2>&1; then
  missing+=(gcc libc6-dev)
fi
if ! command -v chromium >/dev/null 2>&1; then
  # Headless chromium draws text with whatever fonts fontconfig finds; without any the
  # charts' labels are empty boxes.
  missing+=(chromium fonts-dejavu-core fonts-liberation)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } >&2
else
  echo "warning: missing system packages: ${missing[*]}. Without a C compiler (cc) the" \
    "NVML driver tests fail; without chromium the dashboards' browser test fails." \
    "Install them with apt-get (or run this script as root)." >&2
fi
