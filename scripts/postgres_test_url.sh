#!/usr/bin/env bash
# Print the URL of a PostgreSQL database for the service tests, starting one if needed.
# HCP_TEST_POSTGRES_URL wins when set. Otherwise, on a machine with Debian's postgresql
# package (installed here when running as root with apt-get), start its cluster and make a
# role and database for the tests. Prints nothing when no server can be had; the tests that
# need one then fail and say so.
set -euo pipefail
if [ -n "${HCP_TEST_POSTGRES_URL:-}" ]; then
  echo "$HCP_TEST_POSTGRES_URL"
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
  else
    exit 0
  fi
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q .; then
  pg_createcluster "$version" main >&2
fi
cluster=$(pg_lsclusters -h | head -1)
read -r ver name port status _ <<<"$cluster"
if [ "$status" != "online" ]; then
  if [ "$(id -u)" = 0 ]; then pg_ctlcluster "$ver" "$name" start >&2; else exit 0; fi
fi
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sh -c "$1"; fi; }
as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='hcp'\"" | grep -q 1 \
  || as_postgres "psql -p $port -qc \"CREATE ROLE hcp LOGIN SUPERUSER PASSWORD 'hcp'\"" >&2
as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='hcp_test'\"" | grep -q 1 \
  || as_postgres "createdb -p $port -O hcp hcp_test" >&2
echo "postgresql+psycopg://hcp:hcp@127.0.0.1:$port/hcp_test"
